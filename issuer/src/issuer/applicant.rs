//! The applicant's side of an application (issue #14): the founder (through the single window
//! or the wallet) opens an application for a type this agency issues, answers its prerequisite
//! request from the wallet, states what only the founder knows, withdraws it and follows its
//! state, without staff.
//!
//! The applicant is identified by the application's capability link, `{id}.{secret}`: the
//! secret is 32 random bytes, only its SHA-256 is stored, and it is compared in constant time.
//! The link is a secret like a password (never logged: the service logs route templates only)
//! and carries nothing personal. Once the prerequisites are verified the application is bound to
//! the holder that answered its request (its key thumbprint is kept), and the credential offer
//! made on approval is shown only through the link, with a transaction code derived from the
//! stored capability hash and the offer id, so that the link's holder, and no one who only saw
//! the offer, can redeem it.

use std::sync::PoisonError;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use bizcred_core::oid4vci;
use bizcred_schemas::CredentialType;

use super::lifecycle::{field_errors, Change};
use super::staff::{reason_text, Actor, Permission};
use super::{random_token, Error, Issuer};
use crate::store::{sha256_hex, AppStatus, Application, ApplicationEvent};

/// Most applications the applicant API opens per minute on one instance (unanswered ones are
/// swept when their prerequisite request expires).
pub const MAX_APPLICANT_OPENS_PER_MINUTE: u32 = 600;

/// Least lifetime of an offer made on an applicant's application (seconds): the founder
/// comes back to the link when they can, not while staff wait.
pub const APPLICANT_OFFER_TTL: i64 = 3 * 24 * 3600;

/// Longest capability link token read (`{24 hex}.{43 base64url}` is 68).
const MAX_CAPABILITY_LEN: usize = 128;

/// The claims only the applicant can state for a type: what a verified prerequisite
/// credential does not say and the agency does not set itself (numbers, dates, status).
pub fn applicant_claims(ty: CredentialType) -> &'static [&'static str] {
    match ty {
        CredentialType::CertificateOfIncorporation => &[
            "legal_name",
            "entity_type",
            "registered_office_address",
            "directors",
        ],
        // The program accounts carry numbers the CRA assigns from the business number.
        CredentialType::BusinessNumber => &["operating_name"],
        CredentialType::MunicipalBusinessLicence => &["licence_category", "premises_address"],
        CredentialType::LiquorSalesLicence => &["licence_class", "endorsements", "capacity"],
    }
}

/// The 6-digit transaction code of an offer made on an applicant's application: derived from
/// the stored capability hash and the offer id, so it is shown through the capability link
/// without being stored.
pub(super) fn capability_tx_code(capability_hash: &str, offer_id: &str) -> String {
    let d = Sha256::new()
        .chain_update(b"bizcred applicant tx_code\0")
        .chain_update(capability_hash.as_bytes())
        .chain_update(b"\0")
        .chain_update(offer_id.as_bytes())
        .finalize();
    let mut n = [0u8; 8];
    n.copy_from_slice(&d[..8]);
    format!("{:06}", u64::from_be_bytes(n) % 1_000_000)
}

/// An application the applicant opened: its capability link and, for a type with
/// prerequisites, the OpenID4VP request the wallet answers.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The application.
    pub application: Application,
    /// `{id}.{secret}`: the capability (a secret: not logged, not `Debug`-printed elsewhere).
    pub capability: String,
    /// The `openid4vp://` request URI, when the type has prerequisites.
    pub request_uri: Option<String>,
}

impl Issuer {
    /// What the applicant API offers: each type this agency issues, its prerequisites (by
    /// `vct`, in order) and the claims only the applicant states.
    pub fn applicant_types(&self) -> Value {
        let types: Vec<Value> = self
            .config
            .types
            .iter()
            .map(|(ty, prereq)| {
                json!({
                    "credential_configuration_id": ty.slug(),
                    "vct": ty.vct(),
                    "prerequisites": prereq.iter().map(|p| p.vct()).collect::<Vec<_>>(),
                    "applicant_claims": applicant_claims(*ty),
                })
            })
            .collect();
        json!({"credential_issuer": self.config.public_url, "types": types})
    }

    /// Refuses past [`MAX_APPLICANT_OPENS_PER_MINUTE`] openings in the current minute.
    fn throttle_applicants(&self, now: i64) -> Result<(), Error> {
        let mut w = self
            .applicant_window
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let minute = now.div_euclid(60);
        if w.0 != minute {
            *w = (minute, 0);
        }
        if w.1 >= MAX_APPLICANT_OPENS_PER_MINUTE {
            return Err(Error::ApplicantsThrottled);
        }
        w.1 += 1;
        Ok(())
    }

    /// Opens an application for `slug` on the applicant's behalf, with the claims only the
    /// applicant states (any other: `APPLICANT_CLAIM_NOT_ALLOWED`; values checked against the
    /// type's schema, `CLAIMS_INVALID`). Answers its capability link and, for a type with
    /// prerequisites, the request the wallet answers.
    pub fn open_applicant_application(
        &self,
        slug: &str,
        claims: Map<String, Value>,
    ) -> Result<Opened, Error> {
        let (ty, _) = self
            .issues(slug)
            .ok_or_else(|| Error::UnknownConfiguration {
                id: slug.chars().take(64).collect(),
            })?;
        let claims = applicant_only(ty, claims)?;
        check_stated(ty, &claims)?;
        self.throttle_applicants(self.now())?;
        let secret = random_token(32);
        let (app, uri) = self.create_application_with(&Actor::Applicant, slug, claims, |app| {
            app.capability = Some(sha256_hex(secret.as_bytes()));
        })?;
        let capability = format!("{}.{secret}", app.id);
        Ok(Opened {
            application: app,
            capability,
            request_uri: uri,
        })
    }

    /// The application a capability link names, or `CAPABILITY_INVALID` (an unknown id, a
    /// secret of another application, or an application opened by staff).
    pub fn application_by_capability(&self, capability: &str) -> Result<Application, Error> {
        if capability.len() > MAX_CAPABILITY_LEN {
            return Err(Error::CapabilityInvalid);
        }
        let (id, secret) = capability.split_once('.').ok_or(Error::CapabilityInvalid)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::CapabilityInvalid);
        }
        let app = match self.store.application(id) {
            Ok(app) => app,
            Err(crate::store::StoreError::NotFound { .. }) => return Err(Error::CapabilityInvalid),
            Err(e) => return Err(e.into()),
        };
        let presented = sha256_hex(secret.as_bytes());
        match &app.capability {
            Some(held) if bool::from(held.as_bytes().ct_eq(presented.as_bytes())) => Ok(app),
            _ => Err(Error::CapabilityInvalid),
        }
    }

    /// The applicant's view of an application: its state, claims, the note staff left, the
    /// open request or the offer with its transaction code, upstream flags and history.
    pub fn applicant_view(&self, app: &Application) -> Value {
        let ty = CredentialType::from_slug(&app.credential_type);
        let request_uri = (app.status == AppStatus::AwaitingPrerequisites && !app.nonce_used)
            .then(|| self.prerequisite_request_uri(&app.id));
        let offer = match (&app.offer_id, &app.capability, app.status) {
            (Some(id), Some(cap), AppStatus::Offered) => match self.store.offer(id) {
                Ok(o) => Some(json!({
                    "credential_offer_uri": oid4vci::offer_uri_by_reference(&format!(
                        "{}/credential-offer/{id}",
                        self.config.public_url
                    )),
                    "tx_code": capability_tx_code(cap, id),
                    "expires": o.expires,
                    "used": o.used,
                })),
                // The view says the offer could not be read rather than inventing one.
                Err(e) => Some(json!({"error": e.code().as_str()})),
            },
            _ => None,
        };
        let note = match app.status {
            AppStatus::ChangesRequested | AppStatus::Refused | AppStatus::Withdrawn => {
                app.last_note().and_then(|e| e.note.clone())
            }
            _ => None,
        };
        let flags: Vec<Value> = app
            .dependencies
            .flags
            .iter()
            .map(|f| json!({"event": f.event, "vct": f.vct, "time": f.time, "flagged_at": f.flagged_at, "auto_suspended": !f.auto_suspended.is_empty()}))
            .collect();
        let history: Vec<Value> = app
            .history
            .iter()
            .map(|e| json!({"time": e.time, "action": e.action, "state": e.status.as_str(), "by": match e.actor { Actor::Staff { .. } | Actor::Automation => "agency", Actor::Applicant => "applicant" }}))
            .collect();
        json!({
            "application_id": app.id,
            "credential_configuration_id": app.credential_type,
            "credential_issuer": self.config.public_url,
            "state": app.status.as_str(),
            "created": app.created,
            "updated": app.updated(),
            "claims": app.claims,
            "verified_claims": app.verified_claims,
            // A type this build does not know (a record from a newer one): no claim to state.
            "applicant_claims": ty.map(applicant_claims).unwrap_or_default(),
            "note": note,
            "request_uri": request_uri,
            "verification": app.verification,
            "offer": offer,
            "flags": flags,
            "history": history,
        })
    }

    /// The applicant states or corrects the claims only it can (`null` removes one), while the
    /// application waits for its prerequisites or was sent back for changes (it is then ready
    /// for review again); never while staff review it, so what they approve is what they saw.
    /// The values are checked against the type's schema.
    pub fn applicant_update_claims(
        &self,
        capability: &str,
        claims: Map<String, Value>,
    ) -> Result<Application, Error> {
        let app = self.application_by_capability(capability)?;
        Actor::Applicant.require(Permission::EditClaims)?;
        let ty = self.application_type(&app)?;
        let claims = applicant_only(ty, claims)?;
        let (app, ()) = self.change_application(&app.id, |app, now| {
            if !matches!(
                app.status,
                AppStatus::AwaitingPrerequisites | AppStatus::ChangesRequested
            ) {
                return Err(Error::ClaimsLocked {
                    id: app.id.clone(),
                    status: app.status,
                });
            }
            let changed = super::lifecycle::merge_claims(app, claims.clone())?;
            check_stated(ty, &app.claims)?;
            if app.status == AppStatus::ChangesRequested {
                app.status = AppStatus::AwaitingApproval;
            }
            app.record(ApplicationEvent {
                time: now,
                actor: Actor::Applicant,
                action: "claims_updated".to_owned(),
                status: app.status,
                note: None,
            });
            let change = Change {
                event: "claims_updated",
                details: json!({"actor": Actor::Applicant.audit(), "claims": changed}),
                offer: None,
            };
            Ok(((), change))
        })?;
        Ok(app)
    }

    /// The applicant withdraws its application (before an offer), with an optional reason.
    pub fn applicant_withdraw(
        &self,
        capability: &str,
        reason: Option<&str>,
    ) -> Result<Application, Error> {
        let app = self.application_by_capability(capability)?;
        Actor::Applicant.require(Permission::Withdraw)?;
        let reason = reason_text(reason)?;
        let (app, ()) = self.change_application(&app.id, |app, now| {
            if !matches!(
                app.status,
                AppStatus::AwaitingPrerequisites
                    | AppStatus::AwaitingApproval
                    | AppStatus::ChangesRequested
            ) {
                return Err(Error::NotWithdrawable {
                    id: app.id.clone(),
                    status: app.status,
                });
            }
            app.status = AppStatus::Withdrawn;
            app.record(ApplicationEvent {
                time: now,
                actor: Actor::Applicant,
                action: "application_withdrawn".to_owned(),
                status: AppStatus::Withdrawn,
                note: reason.clone(),
            });
            let change = Change {
                event: "application_withdrawn",
                details: json!({"actor": Actor::Applicant.audit(), "reason": reason}),
                offer: None,
            };
            Ok(((), change))
        })?;
        Ok(app)
    }
}

/// The claims, when every one is an applicant claim of `ty`.
fn applicant_only(
    ty: CredentialType,
    claims: Map<String, Value>,
) -> Result<Map<String, Value>, Error> {
    let allowed = applicant_claims(ty);
    if let Some(k) = claims.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::ApplicantClaimNotAllowed {
            claim: k.chars().take(64).collect(),
        });
    }
    Ok(claims)
}

/// Checks the values the applicant stated against the type's schema: a violation at one of
/// them is refused (`CLAIMS_INVALID`, by field); what is still missing is not (the prerequisites
/// and the agency fill it in before approval).
fn check_stated(ty: CredentialType, claims: &Map<String, Value>) -> Result<(), Error> {
    let Err(v) = bizcred_schemas::parse_claims(ty, &Value::Object(claims.clone())) else {
        return Ok(());
    };
    let stated: Vec<_> = field_errors(v)
        .into_iter()
        .filter(|e| {
            claims
                .keys()
                .any(|k| e.field == format!("/{k}") || e.field.starts_with(&format!("/{k}/")))
        })
        .collect();
    if stated.is_empty() {
        Ok(())
    } else {
        Err(Error::ClaimsInvalid {
            ty: ty.slug(),
            violations: stated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applicant_claims_are_schema_claims_no_prerequisite_fills() {
        for ty in CredentialType::ALL {
            let schema: Value = serde_json::from_str(ty.schema_json()).expect("schema");
            let props = schema["properties"].as_object().expect("properties");
            let filled = super::super::prefill(
                ty,
                &ty.prerequisites()
                    .iter()
                    .map(|p| {
                        let all: Map<String, Value> =
                            serde_json::from_str::<Value>(p.schema_json()).expect("schema")
                                ["properties"]
                                .as_object()
                                .expect("props")
                                .keys()
                                .map(|k| (k.clone(), Value::Bool(true)))
                                .collect();
                        (*p, all)
                    })
                    .collect::<Vec<_>>(),
            );
            for c in applicant_claims(ty) {
                assert!(props.contains_key(*c), "{ty}: {c} is not in the schema");
                assert!(!filled.contains_key(*c), "{ty}: {c} is pre-filled");
            }
        }
    }

    #[test]
    fn tx_codes_are_six_digits_and_differ_by_offer_and_capability() {
        let a = capability_tx_code("aa", "o1");
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, capability_tx_code("aa", "o1"));
        let others = [
            capability_tx_code("aa", "o2"),
            capability_tx_code("ab", "o1"),
        ];
        assert!(others.iter().any(|o| *o != a));
    }

    #[test]
    fn only_applicant_claims_pass_and_bad_values_are_named() {
        let ty = CredentialType::MunicipalBusinessLicence;
        let bad = Map::from_iter([("business_number".to_owned(), json!("812345676"))]);
        assert_eq!(
            applicant_only(ty, bad)
                .expect_err("not the applicant's")
                .code(),
            bizcred_schemas::ReasonCode::ApplicantClaimNotAllowed
        );
        let ok = Map::from_iter([("licence_category".to_owned(), json!("eating_establishment"))]);
        assert!(check_stated(ty, &applicant_only(ty, ok).expect("ok")).is_ok());
        let wrong = Map::from_iter([("premises_address".to_owned(), json!(7))]);
        let e = check_stated(ty, &wrong).expect_err("bad value");
        assert_eq!(e.code(), bizcred_schemas::ReasonCode::ClaimsInvalid);
    }
}
