//! An application's life at the desk: staff edit the claims they enter, request changes,
//! refuse, record a withdrawal or approve (`offers`). Each is checked against the actor's role
//! and written as a compare-and-swap of the application record with its audit event: of two
//! staff acting on the same application at once exactly one wins, and the other is told where
//! the application now stands.

use std::str::FromStr;

use serde_json::{json, Map, Value};

use bizcred_schemas::{CredentialType, ReasonCode, Violation};

use super::staff::{required_reason, Actor, Permission};
use super::{Error, FieldError, Issuer};
use crate::store::{AppStatus, Application, ApplicationEvent, Offer, StoreError};

/// Most compare-and-swap attempts of one change (each lost attempt means another change
/// landed; the next attempt sees it).
const MAX_SWAP_TRIES: usize = 8;

/// Most applications one listing answers.
pub const MAX_APPLICATION_LIST: usize = 500;

impl FromStr for AppStatus {
    type Err = Error;

    /// The stored name (`awaiting_approval`, `changes_requested`, ...); anything else is
    /// [`Error::UnknownName`] (`NAME_UNKNOWN`).
    fn from_str(s: &str) -> Result<AppStatus, Error> {
        AppStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnknownName {
                what: "application state",
                name: s.chars().take(64).collect(),
            })
    }
}

/// What a change writes besides the application.
pub(super) struct Change {
    /// The audit event.
    pub(super) event: &'static str,
    /// Its details (the store adds the application's id, type and new state).
    pub(super) details: Value,
    /// An offer made with it (approval).
    pub(super) offer: Option<Offer>,
}

/// Which applications [`Issuer::applications_by`] answers, in which order, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationFilter {
    /// The states wanted; empty for every state.
    pub states: Vec<AppStatus>,
    /// Only applications for this type, if given.
    pub credential_type: Option<CredentialType>,
    /// Oldest first (the work queue's order) or newest first.
    pub oldest_first: bool,
    /// Most applications answered (at most [`MAX_APPLICATION_LIST`]).
    pub limit: usize,
}

impl Default for ApplicationFilter {
    /// Every state and type, oldest first, 100 at most.
    fn default() -> ApplicationFilter {
        ApplicationFilter {
            states: Vec::new(),
            credential_type: None,
            oldest_first: true,
            limit: 100,
        }
    }
}

/// A page of applications.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationList {
    /// The applications, in the order asked for (by creation time, then id).
    pub items: Vec<Application>,
    /// How many applications matched in all (more than `items.len()` when the limit cut).
    pub matched: usize,
}

/// The fields of a JSON Pointer token (RFC 6901 escaping).
fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The violations of a claim set as errors by field. A missing required claim is reported by
/// the schema at its parent object; here it is named by its own pointer, and an undefined claim
/// likewise, so each error sits next to its field.
pub fn field_errors(violations: Vec<Violation>) -> Vec<FieldError> {
    violations
        .into_iter()
        .map(|v| {
            let named = match v.code {
                // `"legal_name" is a required property`
                ReasonCode::SchemaRequired => v
                    .message
                    .strip_prefix('"')
                    .and_then(|m| m.split_once('"'))
                    .map(|(name, _)| name.to_owned()),
                // `Additional properties are not allowed ('extra' was unexpected)`
                ReasonCode::SchemaAdditionalProperties => v
                    .message
                    .split_once("('")
                    .and_then(|(_, m)| m.strip_suffix("' was unexpected)"))
                    .filter(|name| !name.contains('\''))
                    .map(str::to_owned),
                _ => None,
            };
            let field = match named {
                Some(name) => format!("{}/{}", v.path, pointer_token(&name)),
                None => v.path,
            };
            FieldError {
                field,
                message: v.message,
                code: v.code,
            }
        })
        .collect()
}

/// Merges staff-entered `claims` into the application's (a `null` removes a claim); a claim
/// verified from a prerequisite credential cannot change. Answers the names changed.
pub(super) fn merge_claims(
    app: &mut Application,
    claims: Map<String, Value>,
) -> Result<Vec<String>, Error> {
    let mut changed = Vec::new();
    for (k, v) in claims {
        let held = app.claims.get(&k);
        let same = match &v {
            Value::Null => held.is_none(),
            v => held == Some(v),
        };
        if same {
            continue;
        }
        if app.verified_claims.contains(&k) {
            return Err(Error::VerifiedClaimChanged { claim: k });
        }
        if v.is_null() {
            app.claims.remove(&k);
        } else {
            app.claims.insert(k.clone(), v);
        }
        changed.push(k);
    }
    Ok(changed)
}

impl Issuer {
    /// The type of an application, as this agency issues it.
    pub(super) fn application_type(&self, app: &Application) -> Result<CredentialType, Error> {
        CredentialType::from_slug(&app.credential_type)
            .filter(|t| self.issues(t.slug()).is_some())
            .ok_or_else(|| Error::ApplicationTypeUnknown {
                id: app.id.clone(),
                ty: app.credential_type.clone(),
            })
    }

    /// Checks an application's claims against its type's schema: every violation by field.
    pub(super) fn check_application_claims(&self, app: &Application) -> Result<(), Error> {
        let ty = self.application_type(app)?;
        match bizcred_schemas::parse_claims(ty, &Value::Object(app.claims.clone())) {
            Ok(_) => Ok(()),
            Err(v) => Err(Error::ClaimsInvalid {
                ty: ty.slug(),
                violations: field_errors(v),
            }),
        }
    }

    /// Changes application `id` with `f` as a compare-and-swap: `f` sees the stored record
    /// (and the time), decides or refuses; the change is written only if the record did not
    /// change meanwhile, else `f` runs again on the new record (which usually refuses, saying
    /// where the application stands now).
    pub(super) fn change_application<T>(
        &self,
        id: &str,
        mut f: impl FnMut(&mut Application, i64) -> Result<(T, Change), Error>,
    ) -> Result<(Application, T), Error> {
        let mut lost = None;
        for _ in 0..MAX_SWAP_TRIES {
            let before = self.store.application(id)?;
            let mut after = before.clone();
            let now = self.now();
            let (out, change) = f(&mut after, now)?;
            match self.store.swap_application(
                &before,
                &after,
                change.offer.as_ref(),
                now,
                change.event,
                change.details,
            ) {
                Ok(()) => return Ok((after, out)),
                Err(e @ StoreError::ApplicationChanged { .. }) => lost = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(lost.map_or(Error::Metadata("application"), Error::Store))
    }

    /// A staff action on an application that needs a reason and leaves it in `to`, from one of
    /// the states `from`.
    fn decide(
        &self,
        actor: &Actor,
        app_id: &str,
        action: Permission,
        reason: &str,
        (from, to): (&[AppStatus], AppStatus),
        event: &'static str,
    ) -> Result<Application, Error> {
        actor.require(action)?;
        let reason = required_reason(Some(reason), action)?;
        let (app, ()) = self.change_application(app_id, |app, now| {
            if !from.contains(&app.status) {
                return Err(if action == Permission::Withdraw {
                    Error::NotWithdrawable {
                        id: app.id.clone(),
                        status: app.status,
                    }
                } else {
                    Error::NotAwaitingApproval {
                        id: app.id.clone(),
                        status: app.status,
                    }
                });
            }
            app.status = to;
            app.record(ApplicationEvent {
                time: now,
                actor: actor.clone(),
                action: event.to_owned(),
                status: to,
                note: Some(reason.clone()),
            });
            let change = Change {
                event,
                details: json!({"actor": actor.audit(), "reason": reason}),
                offer: None,
            };
            Ok(((), change))
        })?;
        Ok(app)
    }

    /// Saves the claims staff enter (from the agency's system of record) on an application
    /// awaiting approval or sent back for changes; a sent-back application is then ready for
    /// review again. `claims` are merged into the held ones (`null` removes one). A claim
    /// verified from a prerequisite credential cannot change (`VERIFIED_CLAIM_CHANGED`); the
    /// merged claims must satisfy the type's schema, else [`Error::ClaimsInvalid`] names every
    /// field (`CLAIMS_INVALID`) and nothing is saved. Clerks and above.
    pub fn update_claims(
        &self,
        actor: &Actor,
        app_id: &str,
        claims: Map<String, Value>,
    ) -> Result<Application, Error> {
        actor.require(Permission::EditClaims)?;
        let (app, ()) = self.change_application(app_id, |app, now| {
            if !matches!(
                app.status,
                AppStatus::AwaitingApproval | AppStatus::ChangesRequested
            ) {
                return Err(Error::NotAwaitingApproval {
                    id: app.id.clone(),
                    status: app.status,
                });
            }
            let changed = merge_claims(app, claims.clone())?;
            self.check_application_claims(app)?;
            app.status = AppStatus::AwaitingApproval;
            app.record(ApplicationEvent {
                time: now,
                actor: actor.clone(),
                action: "claims_updated".to_owned(),
                status: app.status,
                note: None,
            });
            // Names of the claims changed, never their values (the audit log holds no
            // personal data).
            let change = Change {
                event: "claims_updated",
                details: json!({"actor": actor.audit(), "claims": changed}),
                offer: None,
            };
            Ok(((), change))
        })?;
        Ok(app)
    }

    /// Sends an application awaiting approval back for changes, with a `note` saying which
    /// (required: `REASON_REQUIRED`). Clerks and above.
    pub fn request_changes(
        &self,
        actor: &Actor,
        app_id: &str,
        note: &str,
    ) -> Result<Application, Error> {
        self.decide(
            actor,
            app_id,
            Permission::RequestChanges,
            note,
            (
                &[AppStatus::AwaitingApproval, AppStatus::ChangesRequested],
                AppStatus::ChangesRequested,
            ),
            "changes_requested",
        )
    }

    /// Refuses an application awaiting approval (or sent back for changes), with a `reason`
    /// (required: `REASON_REQUIRED`). Final. Approvers and above. When another decision came
    /// first: `APPLICATION_NOT_AWAITING_APPROVAL` with the state it left.
    pub fn refuse(&self, actor: &Actor, app_id: &str, reason: &str) -> Result<Application, Error> {
        self.decide(
            actor,
            app_id,
            Permission::Refuse,
            reason,
            (
                &[AppStatus::AwaitingApproval, AppStatus::ChangesRequested],
                AppStatus::Refused,
            ),
            "application_refused",
        )
    }

    /// Records that the applicant withdrew an application not yet offered, with the `reason`
    /// given (required). Final. Clerks and above; an application offered, issued or decided
    /// cannot be withdrawn (`APPLICATION_NOT_WITHDRAWABLE`).
    pub fn withdraw(
        &self,
        actor: &Actor,
        app_id: &str,
        reason: &str,
    ) -> Result<Application, Error> {
        self.decide(
            actor,
            app_id,
            Permission::Withdraw,
            reason,
            (
                &[
                    AppStatus::AwaitingPrerequisites,
                    AppStatus::AwaitingApproval,
                    AppStatus::ChangesRequested,
                ],
                AppStatus::Withdrawn,
            ),
            "application_withdrawn",
        )
    }

    /// An application.
    pub fn application(&self, app_id: &str) -> Result<Application, Error> {
        Ok(self.store.application(app_id)?)
    }

    /// The applications matching `filter`, by age, at most `filter.limit` (bounded by
    /// [`MAX_APPLICATION_LIST`]); `matched` counts every match.
    pub fn applications_by(&self, filter: &ApplicationFilter) -> Result<ApplicationList, Error> {
        let limit = filter.limit.min(MAX_APPLICATION_LIST);
        let key = |a: &Application| (a.created, a.id.clone());
        let order = |a: &Application, b: &Application| {
            if filter.oldest_first {
                key(a).cmp(&key(b))
            } else {
                key(b).cmp(&key(a))
            }
        };
        let mut items: Vec<Application> = Vec::new();
        let mut matched = 0usize;
        self.store.visit_applications(|app| {
            let wanted = (filter.states.is_empty() || filter.states.contains(&app.status))
                && filter
                    .credential_type
                    .is_none_or(|t| t.slug() == app.credential_type);
            if wanted {
                matched += 1;
                items.push(app);
                // Never more than twice the limit held: the best `limit` are kept.
                if items.len() >= limit.saturating_mul(2).max(64) {
                    items.sort_by(order);
                    items.truncate(limit);
                }
            }
            Ok(())
        })?;
        items.sort_by(order);
        items.truncate(limit);
        Ok(ApplicationList { items, matched })
    }
}
