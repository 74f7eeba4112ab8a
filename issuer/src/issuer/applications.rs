//! Applications and their prerequisites: an application for a type with prerequisites starts
//! with an OpenID4VP request; the presentation is verified offline against the registry's trust
//! bundle and its claims pre-fill the application.

use serde_json::{json, Map, Value};

use bizcred_core::keys::Algorithm;
use bizcred_core::{oid4vp, sd_jwt_vc};
use bizcred_schemas::CredentialType;
use bizcred_verifier::policy::{CredentialRequirement, Policy, Rules};
use bizcred_verifier::request::Pending;
use bizcred_verifier::{Context, Presentation, Verdict};

use super::staff::{Actor, Permission};
use super::{random_id, random_token, read, Error, Issuer};
use crate::store::{AppStatus, Application, ApplicationEvent, Swept};

/// Most records of each kind one sweep removes (a bounded pause).
pub const MAX_SWEEP: usize = 1000;

impl Issuer {
    /// Opens an application. For a type with prerequisites, returns the OpenID4VP request URI
    /// the applicant's wallet answers; otherwise the application waits for approval. Clerks
    /// and above; the audit event names the actor.
    pub fn create_application(
        &self,
        actor: &Actor,
        slug: &str,
        claims: Map<String, Value>,
    ) -> Result<(Application, Option<String>), Error> {
        self.create_application_with(actor, slug, claims, |_| {})
    }

    /// [`Issuer::create_application`], with `complete` filling in the record before it is
    /// stored (the applicant's capability).
    pub(super) fn create_application_with(
        &self,
        actor: &Actor,
        slug: &str,
        claims: Map<String, Value>,
        complete: impl FnOnce(&mut Application),
    ) -> Result<(Application, Option<String>), Error> {
        actor.require(Permission::OpenApplication)?;
        let (ty, prereq) = self
            .issues(slug)
            .ok_or_else(|| Error::UnknownConfiguration {
                id: slug.to_owned(),
            })?;
        let now = self.now();
        let mut app = Application {
            id: random_id(),
            credential_type: ty.slug().to_owned(),
            status: if prereq.is_empty() {
                AppStatus::AwaitingApproval
            } else {
                AppStatus::AwaitingPrerequisites
            },
            claims,
            verified_claims: Vec::new(),
            nonce: None,
            nonce_used: false,
            holder_thumbprint: None,
            verification: None,
            offer_id: None,
            created: now,
            history: Vec::new(),
            dependencies: Default::default(),
            capability: None,
        };
        let uri = if prereq.is_empty() {
            None
        } else {
            app.nonce = Some(random_token(16));
            Some(self.prerequisite_request_uri(&app.id))
        };
        complete(&mut app);
        self.store.create_application(&app, actor, now)?;
        Ok((app, uri))
    }

    /// The `openid4vp://` URI of application `app_id`'s prerequisite request (its request
    /// object by reference, signed under this agency's client ID).
    pub(super) fn prerequisite_request_uri(&self, app_id: &str) -> String {
        oid4vp::request_uri(
            &self.client_id(),
            &format!("{}/oid4vp/request/{app_id}", self.config.public_url),
        )
    }

    fn prerequisite_policy(&self, target: CredentialType, prereq: &[CredentialType]) -> Policy {
        let req = |id: &str, t: CredentialType, claims: &[&str], optional: &[&str]| {
            CredentialRequirement {
                id: id.to_owned(),
                credential_type: t,
                claims: claims.iter().map(|c| vec![(*c).to_owned()]).collect(),
                optional: optional.iter().map(|c| vec![(*c).to_owned()]).collect(),
                values: if t == CredentialType::CertificateOfIncorporation {
                    vec![("corporate_status".into(), vec![json!("active")])]
                } else {
                    Vec::new()
                },
            }
        };
        let credentials = prereq
            .iter()
            .map(|t| match t {
                CredentialType::CertificateOfIncorporation => req(
                    "incorporation",
                    *t,
                    &[
                        "legal_name",
                        "corporation_number",
                        "registered_office_address",
                        "corporate_status",
                    ],
                    &[],
                ),
                CredentialType::BusinessNumber => req(
                    "business_number",
                    *t,
                    &["business_number", "legal_name"],
                    &["operating_name", "corporation_number"],
                ),
                CredentialType::MunicipalBusinessLicence => req(
                    "municipal_licence",
                    *t,
                    &[
                        "licence_number",
                        "business_number",
                        "licensee_legal_name",
                        "premises_address",
                        "expiry_date",
                    ],
                    &["operating_name"],
                ),
                CredentialType::LiquorSalesLicence => req(
                    "liquor_licence",
                    *t,
                    &["licence_number", "business_number"],
                    &[],
                ),
            })
            .collect();
        Policy {
            name: format!("prerequisites-for-{}", target.slug()),
            credentials,
            rules: Rules {
                same_business_number: true,
                same_corporation_number: true,
                same_premises_address: true,
                same_legal_name: true,
                same_holder: true,
            },
            algorithms: vec![Algorithm::EdDSA, Algorithm::ES256],
            kb_max_age: 300,
            clock_skew: 60,
            max_registry_age: None,
            max_status_age: None,
            accept_recognized: true,
            digest: String::new(),
        }
    }

    fn pending(&self, app: &Application) -> Result<Pending, Error> {
        Ok(Pending {
            state: app.id.clone(),
            nonce: awaited_nonce(app)?,
            client_id: self.client_id(),
            response_uri: format!("{}/oid4vp/response", self.config.public_url),
            expires_at: app.created + self.prerequisite_ttl(),
        })
    }

    /// How long a prerequisite request stays open (then the sweep removes the application).
    pub fn prerequisite_ttl(&self) -> i64 {
        self.config.offer_ttl.max(3600)
    }

    /// Removes, up to [`MAX_SWEEP`] of each kind, used or expired offers and their codes,
    /// expired access tokens and `c_nonce`s, and applications whose prerequisite request
    /// expired unanswered. The service runs it on a schedule.
    pub fn sweep(&self) -> Result<Swept, Error> {
        let now = self.now();
        Ok(self
            .store
            .sweep(now, now - self.prerequisite_ttl(), MAX_SWEEP)?)
    }

    /// The signed request object for an application's prerequisite presentation.
    pub fn request_object(&self, app_id: &str) -> Result<String, Error> {
        let app = self.store.application(app_id)?;
        let (ty, prereq) =
            self.issues(&app.credential_type)
                .ok_or_else(|| Error::ApplicationTypeUnknown {
                    id: app.id.clone(),
                    ty: app.credential_type.clone(),
                })?;
        if app.status != AppStatus::AwaitingPrerequisites || app.nonce_used {
            return Err(Error::RequestAnswered);
        }
        let policy = self.prerequisite_policy(ty, &prereq);
        let claims =
            bizcred_verifier::request::request_object(&policy, &self.pending(&app)?, self.now());
        let keys = read(&self.keys);
        Ok(oid4vp::sign_request_object(
            &claims,
            &keys.kid,
            &keys.assertion,
        )?)
    }

    /// Handles the wallet's `direct_post` response for a prerequisite presentation.
    pub fn handle_presentation(&self, body: &[u8]) -> Result<Value, Error> {
        let (vp_token, state) =
            oid4vp::parse_response_body(body).map_err(Error::BadPresentation)?;
        let state = state.ok_or(Error::NoState)?;
        let before = self.store.application(&state).map_err(|e| match e {
            crate::store::StoreError::NotFound { .. } => Error::UnknownState,
            e => e.into(),
        })?;
        let mut app = before.clone();
        if app.status != AppStatus::AwaitingPrerequisites || app.nonce_used {
            return Err(Error::PresentationReplay);
        }
        let (ty, prereq) =
            self.issues(&app.credential_type)
                .ok_or_else(|| Error::ApplicationTypeUnknown {
                    id: app.id.clone(),
                    ty: app.credential_type.clone(),
                })?;
        let policy = self.prerequisite_policy(ty, &prereq);
        let now = self.now();
        let trust = read(&self.trust).clone();
        let nonce = awaited_nonce(&app)?;
        let report = bizcred_verifier::verify(
            &Presentation {
                vp_token: &vp_token,
                nonce: &nonce,
                audience: &self.client_id(),
            },
            &policy,
            &Context {
                trust: trust.as_ref(),
                stapled_status_lists: &[],
                now,
            },
        );
        app.nonce_used = true;
        let codes: Vec<Value> = report
            .failures
            .iter()
            .map(|f| json!({"credential": f.credential, "code": f.code}))
            .collect();
        app.verification = Some(json!({"verdict": report.verdict, "failures": codes}));
        if report.verdict == Verdict::Accept {
            let verified: Vec<(CredentialType, Map<String, Value>)> = report
                .credentials
                .iter()
                .filter_map(|c| CredentialType::from_vct(&c.vct).map(|t| (t, c.disclosed.clone())))
                .collect();
            let prefill = prefill(ty, &verified);
            app.verified_claims = prefill.keys().cloned().collect();
            for (k, v) in prefill {
                app.claims.insert(k, v);
            }
            // An accepted presentation is key-bound: without its holder key the issuance could
            // not be tied to the holder, so that is an error, not an unbound application.
            app.holder_thumbprint = Some(report_holder(&vp_token).ok_or(Error::NoHolderKey)?);
            // The prerequisites' status list entries, to match upstream agencies' events.
            app.dependencies.prerequisites = super::dependents::presented_prerequisites(&vp_token);
            app.status = AppStatus::AwaitingApproval;
        } else {
            // A refused presentation does not consume the application: the applicant may try
            // again with a new request.
            app.nonce = Some(random_token(16));
            app.nonce_used = false;
        }
        let event = if report.verdict == Verdict::Accept {
            "prerequisites_verified"
        } else {
            "prerequisites_refused"
        };
        app.record(ApplicationEvent {
            time: now,
            actor: Actor::Applicant,
            action: event.to_owned(),
            status: app.status,
            note: None,
        });
        // Only over the record the presentation was verified for: a withdrawal or another
        // answer that landed meanwhile wins, and this answer is a replay.
        match self
            .store
            .swap_application(&before, &app, None, now, event, Value::Null)
        {
            Ok(()) => {}
            Err(crate::store::StoreError::ApplicationChanged { .. }) => {
                return Err(Error::PresentationReplay)
            }
            Err(e) => return Err(e.into()),
        }
        Ok(json!({
            "application_id": app.id,
            "verdict": report.verdict,
            "failures": report.failures.iter().map(|f| json!({"credential": f.credential, "code": f.code, "message": f.message})).collect::<Vec<_>>(),
        }))
    }
}

/// The nonce an application awaiting its prerequisites was given; without one no presentation
/// can be bound to it (never the empty nonce).
fn awaited_nonce(app: &Application) -> Result<String, Error> {
    app.nonce
        .clone()
        .ok_or_else(|| Error::NoAwaitedNonce(app.id.clone()))
}

/// The holder key thumbprint of the first presented credential, kept with the application
/// for its record (a wallet may use a fresh key for each credential: `same_holder` holds when
/// every key-binding JWT answered the application's request, and the issuance need not use it).
fn report_holder(vp_token: &Value) -> Option<String> {
    let first = vp_token.as_object()?.values().next()?;
    let text = first
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .or_else(|| first.as_str())?;
    let sd = bizcred_core::sd_jwt::SdJwt::parse(text).ok()?;
    let payload = sd.unverified_payload().ok()?;
    sd_jwt_vc::holder_key(&payload)
        .ok()
        .flatten()
        .map(|k| k.thumbprint())
}

/// Claims of the new credential taken from verified prerequisite credentials: the business
/// tells government once.
pub fn prefill(
    target: CredentialType,
    verified: &[(CredentialType, Map<String, Value>)],
) -> Map<String, Value> {
    use CredentialType::*;
    let from = |t: CredentialType, k: &str| {
        verified
            .iter()
            .find(|(ty, _)| *ty == t)
            .and_then(|(_, c)| c.get(k))
            .cloned()
    };
    let rules: &[(&str, CredentialType, &str)] = match target {
        CertificateOfIncorporation => &[],
        BusinessNumber => &[
            ("legal_name", CertificateOfIncorporation, "legal_name"),
            (
                "corporation_number",
                CertificateOfIncorporation,
                "corporation_number",
            ),
            (
                "business_address",
                CertificateOfIncorporation,
                "registered_office_address",
            ),
        ],
        MunicipalBusinessLicence => &[
            (
                "licensee_legal_name",
                CertificateOfIncorporation,
                "legal_name",
            ),
            (
                "corporation_number",
                CertificateOfIncorporation,
                "corporation_number",
            ),
            ("business_number", BusinessNumber, "business_number"),
            ("operating_name", BusinessNumber, "operating_name"),
        ],
        LiquorSalesLicence => &[
            (
                "licensee_legal_name",
                CertificateOfIncorporation,
                "legal_name",
            ),
            ("business_number", BusinessNumber, "business_number"),
            ("operating_name", BusinessNumber, "operating_name"),
            (
                "premises_address",
                MunicipalBusinessLicence,
                "premises_address",
            ),
            (
                "municipal_licence_number",
                MunicipalBusinessLicence,
                "licence_number",
            ),
        ],
    };
    rules
        .iter()
        .filter_map(|(to, t, k)| from(*t, k).map(|v| ((*to).to_owned(), v)))
        .collect()
}
