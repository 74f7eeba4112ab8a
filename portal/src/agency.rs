//! The agencies, as the registry's verified trust state names them, and a client of their
//! applicant API (`APPLICANT_API.md`): the types each takes applications for and the claims
//! only the founder can state, opening an application, following it by its capability link,
//! withdrawing it. Answers are bounded; the capability link is never put in an error or a log
//! line (`reqwest`'s errors are stripped of their URL).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use bizcred_core::trust::state::TrustState;
use bizcred_core::webvh::WebvhDid;
use bizcred_schemas::{CredentialType, ReasonCode};

/// Largest answer read from an agency.
pub const MAX_ANSWER: usize = 256 * 1024;
/// Longest capability kept (`<id>.<secret>`).
pub const MAX_CAPABILITY: usize = 512;
/// Longest application id taken (a longer one is refused, not cut).
pub const MAX_APPLICATION_ID: usize = 200;
/// The scheme of a presentation request for the wallet.
pub const REQUEST_SCHEME: &str = "openid4vp://";
/// The scheme of a credential offer for the wallet.
pub const OFFER_SCHEME: &str = "openid-credential-offer://";
/// How long one call to an agency may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one poll of an application's state may take.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(1500);

/// An agency: a registered issuer authorized for a type now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    /// Its did:webvh DID.
    pub did: String,
    /// Its registered English name.
    pub name_en: String,
    /// Its registered French name.
    pub name_fr: String,
    /// Its public URL (the DID's base URL).
    pub url: String,
}

impl Agency {
    /// Its name in `lang`.
    pub fn name(&self, lang: bizcred_web::Lang) -> &str {
        match lang {
            bizcred_web::Lang::En => &self.name_en,
            bizcred_web::Lang::Fr => &self.name_fr,
        }
    }
}

/// The agency the trust state authorizes for `ty` at `now`: the first registered issuer (in
/// DID order) with an authorization in force whose DID is a did:webvh one.
pub fn agency_for(state: &TrustState, ty: CredentialType, now: i64) -> Option<Agency> {
    state.issuers.values().find_map(|i| {
        state.authorized(&i.did, ty.vct(), now).ok()?;
        let url = WebvhDid::parse(&i.did).ok()?.base_url();
        Some(Agency {
            did: i.did.clone(),
            name_en: i.name_en.clone(),
            name_fr: i.name_fr.clone(),
            url,
        })
    })
}

/// What an agency takes applications for (`GET /applicant/types`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ApplicantTypes {
    /// The agency's credential issuer URL.
    pub credential_issuer: String,
    /// Its types.
    pub types: Vec<ApplicantType>,
}

/// One type an agency takes applications for.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ApplicantType {
    /// The configuration id to apply with.
    pub credential_configuration_id: String,
    /// The type's `vct`.
    pub vct: String,
    /// The `vct`s of the prerequisite types, in order.
    #[serde(default)]
    pub prerequisites: Vec<String>,
    /// The claims only the founder can state.
    #[serde(default)]
    pub applicant_claims: Vec<String>,
}

/// The agency's answer to a new application.
#[derive(Clone, Deserialize)]
pub struct Created {
    /// The agency's id.
    pub application_id: String,
    /// The capability (`<id>.<secret>`).
    pub capability: String,
    /// The state it starts in.
    pub state: String,
    /// The prerequisites' presentation request, when the type has prerequisites.
    #[serde(default)]
    pub request_uri: Option<String>,
}

/// An application id the portal takes: not empty, at most [`MAX_APPLICATION_ID`] characters.
fn check_application_id(id: &str) -> Result<(), AgencyError> {
    if id.is_empty() || id.chars().count() > MAX_APPLICATION_ID {
        return Err(AgencyError::Malformed(format!(
            "the application id is empty or longer than {MAX_APPLICATION_ID} characters"
        )));
    }
    Ok(())
}

/// A presentation request the portal shows: an `openid4vp://` URI.
fn check_request_uri(uri: Option<&str>) -> Result<(), AgencyError> {
    match uri {
        Some(u) if !u.starts_with(REQUEST_SCHEME) => Err(AgencyError::Malformed(format!(
            "the presentation request is not an {REQUEST_SCHEME} URI"
        ))),
        _ => Ok(()),
    }
}

impl Created {
    /// Whether the portal takes the answer: its application id and presentation request.
    pub fn check(&self) -> Result<(), AgencyError> {
        check_application_id(&self.application_id)?;
        check_request_uri(self.request_uri.as_deref())
    }
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("application_id", &self.application_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A credential offer ready for the wallet. Its `Debug` shows neither the offer nor its
/// transaction code (each lets the holder of it take the credential).
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Offer {
    /// `openid-credential-offer://?credential_offer_uri=...`
    pub credential_offer_uri: String,
    /// The transaction code.
    #[serde(default, deserialize_with = "lenient")]
    pub tx_code: Option<String>,
    /// Until when (Unix seconds).
    #[serde(default, deserialize_with = "lenient")]
    pub expires: Option<i64>,
}

impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("tx_code", &self.tx_code.as_ref().map(|_| "…"))
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// An upstream event flagged on the application.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Flag {
    /// `credential_suspended` or `credential_revoked`.
    pub event: String,
    /// The upstream type's `vct`.
    pub vct: String,
    /// When (Unix seconds).
    #[serde(default, deserialize_with = "lenient")]
    pub time: i64,
}

/// Most flags read from one answer.
pub const MAX_FLAGS: usize = 64;

/// A member read when it is readable, its default otherwise (a newer or faulty agency's
/// member does not fail the whole answer).
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// The readable flags (an unreadable one is skipped), at most [`MAX_FLAGS`].
fn lenient_flags<'de, D>(d: D) -> Result<Vec<Flag>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let v = Value::deserialize(d)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Flag::deserialize(f).ok())
        .take(MAX_FLAGS)
        .collect())
}

/// The application as its agency shows it to the founder (`GET {follow_uri}`). Only its id
/// and state must be readable: any other member the portal cannot read (an offer the agency
/// answers `{"error": ...}` for, an unreadable flag, a member of a newer API) is taken as
/// absent. Its `Debug` shows no claim, offer or request.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
pub struct View {
    /// The agency's id.
    pub application_id: String,
    /// The type's configuration id.
    #[serde(default, deserialize_with = "lenient")]
    pub credential_configuration_id: String,
    /// The state.
    pub state: String,
    /// Opened at.
    #[serde(default, deserialize_with = "lenient")]
    pub created: i64,
    /// Last changed at.
    #[serde(default, deserialize_with = "lenient")]
    pub updated: i64,
    /// The claims as they stand.
    #[serde(default, deserialize_with = "lenient")]
    pub claims: Map<String, Value>,
    /// The claims proven by prerequisites.
    #[serde(default, deserialize_with = "lenient")]
    pub verified_claims: Vec<String>,
    /// The claims the founder states.
    #[serde(default, deserialize_with = "lenient")]
    pub applicant_claims: Vec<String>,
    /// The reason of a refusal, or the changes requested.
    #[serde(default, deserialize_with = "lenient")]
    pub note: Option<String>,
    /// The prerequisites' presentation request, while awaited.
    #[serde(default, deserialize_with = "lenient")]
    pub request_uri: Option<String>,
    /// The offer, once approved.
    #[serde(default, deserialize_with = "lenient")]
    pub offer: Option<Offer>,
    /// Upstream events.
    #[serde(default, deserialize_with = "lenient_flags")]
    pub flags: Vec<Flag>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("application_id", &self.application_id)
            .field(
                "credential_configuration_id",
                &self.credential_configuration_id,
            )
            .field("state", &self.state)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .field("claims", &self.claims.len())
            .field("offer", &self.offer)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl View {
    /// Whether the portal takes the answer: its application id, its presentation request
    /// (`openid4vp://`) and its offer (`openid-credential-offer://`).
    pub fn check(&self) -> Result<(), AgencyError> {
        check_application_id(&self.application_id)?;
        check_request_uri(self.request_uri.as_deref())?;
        match &self.offer {
            Some(o) if !o.credential_offer_uri.starts_with(OFFER_SCHEME) => {
                Err(AgencyError::Malformed(format!(
                    "the credential offer is not an {OFFER_SCHEME} URI"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The agency's refusal means the application is gone there (403 `CAPABILITY_INVALID`:
    /// swept or removed).
    pub fn gone(e: &AgencyError) -> bool {
        matches!(e, AgencyError::Refused { status: 403, code_text, .. } if code_text == "CAPABILITY_INVALID")
    }
}

/// Why an agency call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgencyError {
    /// The agency could not be reached or did not answer in time.
    #[error("the agency could not be reached: {0}")]
    Unreachable(String),
    /// The agency refused, with its sentence and code.
    #[error("{description} ({code_text})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth-style error.
        error: String,
        /// The agency's sentence.
        description: String,
        /// Its reason code, as sent.
        code_text: String,
    },
    /// The answer is not the applicant API's.
    #[error("the agency's answer is not the applicant API's: {0}")]
    Malformed(String),
}

impl AgencyError {
    /// The stable reason code: the agency's own for a refusal.
    pub fn code(&self) -> ReasonCode {
        match self {
            AgencyError::Unreachable(_) => ReasonCode::Unreachable,
            AgencyError::Refused { code_text, .. } => {
                ReasonCode::parse(code_text).unwrap_or(ReasonCode::ApplicantApiMalformed)
            }
            AgencyError::Malformed(_) => ReasonCode::ApplicantApiMalformed,
        }
    }
}

/// A client of the agencies' applicant API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

fn unreachable(e: reqwest::Error) -> AgencyError {
    AgencyError::Unreachable(e.without_url().to_string())
}

impl Client {
    /// A client (rustls, no redirects followed: an agency's answer is its own).
    pub fn new() -> Result<Client, AgencyError> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(unreachable)?;
        Ok(Client { http })
    }

    async fn read(resp: reqwest::Response) -> Result<(u16, Vec<u8>), AgencyError> {
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(AgencyError::Malformed("the answer is too large".into()));
        }
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(AgencyError::Malformed("the answer is too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    fn answer<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, AgencyError> {
        if (200..300).contains(&status) {
            return serde_json::from_slice(body).map_err(|e| AgencyError::Malformed(e.to_string()));
        }
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |k: &str, max: usize| -> String {
            v[k].as_str().unwrap_or("").chars().take(max).collect()
        };
        let description = text("error_description", 1000);
        Err(AgencyError::Refused {
            status,
            error: text("error", 100),
            description: if description.is_empty() {
                format!("HTTP {status}")
            } else {
                description
            },
            code_text: text("code", 100),
        })
    }

    /// `GET {agency}/applicant/types`, checked to be the agency's own answer (its
    /// `credential_issuer` is the agency's URL).
    pub async fn types(&self, agency_url: &str) -> Result<ApplicantTypes, AgencyError> {
        let base = agency_url.trim_end_matches('/');
        let resp = self
            .http
            .get(format!("{base}/applicant/types"))
            .send()
            .await
            .map_err(unreachable)?;
        let (status, body) = Client::read(resp).await?;
        let t: ApplicantTypes = Client::answer(status, &body)?;
        if t.credential_issuer.trim_end_matches('/') != base {
            return Err(AgencyError::Malformed(format!(
                "the agency at {base} answers for {}",
                t.credential_issuer
            )));
        }
        Ok(t)
    }

    /// `POST {agency}/applicant/applications`.
    pub async fn apply(
        &self,
        agency_url: &str,
        configuration_id: &str,
        claims: &Map<String, Value>,
    ) -> Result<Created, AgencyError> {
        let base = agency_url.trim_end_matches('/');
        let resp = self
            .http
            .post(format!("{base}/applicant/applications"))
            .json(&serde_json::json!({
                "credential_configuration_id": configuration_id,
                "claims": claims,
            }))
            .send()
            .await
            .map_err(unreachable)?;
        let (status, body) = Client::read(resp).await?;
        let c: Created = Client::answer(status, &body)?;
        let ok = !c.capability.is_empty()
            && c.capability.len() <= MAX_CAPABILITY
            && c.capability
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~'));
        if !ok {
            return Err(AgencyError::Malformed(
                "the capability is not URL-safe text".into(),
            ));
        }
        Ok(c)
    }

    /// `GET {follow_uri}` within `timeout`.
    pub async fn view(&self, follow_uri: &str, timeout: Duration) -> Result<View, AgencyError> {
        let resp = self
            .http
            .get(follow_uri)
            .timeout(timeout)
            .send()
            .await
            .map_err(unreachable)?;
        let (status, body) = Client::read(resp).await?;
        Client::view_answer(status, &body)
    }

    /// An answer that is a view, checked ([`View::check`]).
    fn view_answer(status: u16, body: &[u8]) -> Result<View, AgencyError> {
        let v: View = Client::answer(status, body)?;
        v.check()?;
        Ok(v)
    }

    /// `POST {follow_uri}/claims`: the founder's answer to the agency's request for more
    /// information (or a change while prerequisites are awaited).
    pub async fn claims(
        &self,
        follow_uri: &str,
        claims: &Map<String, Value>,
    ) -> Result<View, AgencyError> {
        let resp = self
            .http
            .post(format!("{follow_uri}/claims"))
            .json(&serde_json::json!({ "claims": claims }))
            .send()
            .await
            .map_err(unreachable)?;
        let (status, body) = Client::read(resp).await?;
        Client::view_answer(status, &body)
    }

    /// `POST {follow_uri}/withdraw`, with the founder's (or the portal's) reason.
    pub async fn withdraw(
        &self,
        follow_uri: &str,
        reason: Option<&str>,
    ) -> Result<View, AgencyError> {
        let body = match reason {
            Some(r) => serde_json::json!({ "reason": r }),
            None => serde_json::json!({}),
        };
        let resp = self
            .http
            .post(format!("{follow_uri}/withdraw"))
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        let (status, body) = Client::read(resp).await?;
        Client::view_answer(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_agencys_sentence_and_code() {
        let e = Client::answer::<View>(
            400,
            br#"{"error":"invalid_request","error_description":"No such type.","code":"APPLICANT_CLAIM_NOT_ALLOWED"}"#,
        )
        .expect_err("refused");
        assert_eq!(e.code(), ReasonCode::ApplicantClaimNotAllowed);
        assert_eq!(e.to_string(), "No such type. (APPLICANT_CLAIM_NOT_ALLOWED)");
        let e = Client::answer::<View>(502, b"<html>").expect_err("refused");
        assert_eq!(e.code(), ReasonCode::ApplicantApiMalformed);
        assert!(e.to_string().starts_with("HTTP 502"));
        let e = Client::answer::<View>(200, b"{}").expect_err("not a view");
        assert_eq!(e.code(), ReasonCode::ApplicantApiMalformed);
    }

    #[test]
    fn a_view_reads_the_documented_members() {
        let v: View = Client::answer(
            200,
            br#"{"application_id":"a1","credential_configuration_id":"liquor-sales-licence",
                "state":"offered","created":1,"updated":2,"claims":{},"verified_claims":[],
                "applicant_claims":["capacity"],"note":null,
                "offer":{"credential_offer_uri":"openid-credential-offer://?x","tx_code":"123456","expires":9},
                "flags":[{"event":"credential_suspended","vct":"urn:x","time":3}],
                "history":[{"time":1,"action":"opened","state":"awaiting_approval"}]}"#,
        )
        .expect("view");
        assert_eq!(v.state, "offered");
        assert_eq!(v.offer.and_then(|o| o.tx_code).as_deref(), Some("123456"));
        assert_eq!(v.flags.len(), 1);
    }

    fn view(json: &str) -> Result<View, AgencyError> {
        Client::view_answer(200, json.as_bytes())
    }

    #[test]
    fn an_unreadable_offer_flag_or_member_does_not_fail_the_view() {
        let v = view(
            r#"{"application_id":"a1","state":"offered","updated":"soon","claims":[1],
                "offer":{"error":"OFFER_UNAVAILABLE"},
                "flags":[{"event":"credential_revoked"},{"event":"credential_suspended","vct":"urn:x","time":3},7],
                "surprise":{"a":1}}"#,
        )
        .expect("a view");
        assert_eq!(v.state, "offered");
        assert_eq!(
            v.offer, None,
            "the offer the agency could not give is absent"
        );
        assert_eq!(v.updated, 0);
        assert!(v.claims.is_empty());
        assert_eq!(v.flags.len(), 1, "only the readable flag");
        assert_eq!(v.flags[0].vct, "urn:x");
        // The id and the state are the view: without them it is not one.
        assert_eq!(
            view(r#"{"application_id":"a1"}"#)
                .map(|_| ())
                .map_err(|e| e.code()),
            Err(ReasonCode::ApplicantApiMalformed)
        );
    }

    #[test]
    fn uris_must_be_the_wallets_and_ids_are_not_cut() {
        let with = |extra: &str| {
            view(&format!(
                r#"{{"application_id":"a1","state":"offered"{extra}}}"#
            ))
        };
        assert!(with(r#","request_uri":"openid4vp://?client_id=x""#).is_ok());
        assert!(
            with(r#","offer":{"credential_offer_uri":"openid-credential-offer://?x"}"#).is_ok()
        );
        for bad in [
            r#","request_uri":"https://evil.example/?x""#,
            r#","request_uri":"javascript:alert(1)""#,
            r#","offer":{"credential_offer_uri":"https://evil.example/offer"}"#,
            r#","offer":{"credential_offer_uri":"openid4vp://?x"}"#,
        ] {
            assert_eq!(
                with(bad).map(|_| ()).map_err(|e| e.code()),
                Err(ReasonCode::ApplicantApiMalformed),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_APPLICATION_ID + 1);
        let v = view(&format!(
            r#"{{"application_id":"{long}","state":"offered"}}"#
        ));
        assert_eq!(
            v.map_err(|e| e.code()).err(),
            Some(ReasonCode::ApplicantApiMalformed)
        );
        let created = |id: &str, req: &str| Created {
            application_id: id.into(),
            capability: "c.s".into(),
            state: "awaiting_prerequisites".into(),
            request_uri: Some(req.into()),
        };
        assert!(created("a1", "openid4vp://?x").check().is_ok());
        assert!(created(&long, "openid4vp://?x").check().is_err());
        assert!(created(&"é".repeat(MAX_APPLICATION_ID), "openid4vp://?x")
            .check()
            .is_ok());
        assert!(created("a1", "http://x").check().is_err());
    }

    #[test]
    fn debug_shows_no_claim_offer_or_code() {
        let v = view(
            r#"{"application_id":"a1","state":"offered","claims":{"legal_name":"Secret Corp"},
                "request_uri":"openid4vp://?request_uri=hidden-request",
                "offer":{"credential_offer_uri":"openid-credential-offer://?hidden-offer","tx_code":"493817"}}"#,
        )
        .expect("view");
        let shown = format!("{v:?} {:?}", v.offer);
        for secret in [
            "Secret Corp",
            "legal_name",
            "hidden-request",
            "hidden-offer",
            "493817",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("a1") && shown.contains("offered"), "{shown}");
    }

    #[test]
    fn a_capability_the_agency_no_longer_knows_means_the_application_is_gone() {
        let e = Client::answer::<View>(
            403,
            br#"{"error":"invalid_token","error_description":"No application.","code":"CAPABILITY_INVALID"}"#,
        )
        .expect_err("refused");
        assert!(View::gone(&e));
        let other = Client::answer::<View>(403, br#"{"error":"forbidden","code":"CSRF_REJECTED"}"#)
            .expect_err("refused");
        assert!(!View::gone(&other));
        assert!(!View::gone(&AgencyError::Unreachable("down".into())));
    }
}
