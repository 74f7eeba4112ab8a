//! ToIP Trust Registry Query Protocol v2.0: the queries this registry answers, read strictly.
//!
//! The HTTPS binding defines `POST /authorization` and `POST /recognition` relative to an
//! endpoint's base URL; this registry's base is `/trqp/v2` (the authority's DID document
//! names it as its `TRQP` service). Queries and answers follow the specification's JSON
//! schemas (`trqp_{authorization,recognition}_{request,response}.schema.json`).
//!
//! # Input
//!
//! * The body is `application/json` (else 415), at most [`MAX_QUERY_LEN`] bytes, a JSON
//!   object; `entity_id`, `authority_id`, `action` and `resource` are non-empty strings
//!   without whitespace or control characters, at most [`MAX_ID_LEN`] bytes (400
//!   `REQUEST_INVALID` otherwise). Unknown members are ignored (versioning: a 2.x query's
//!   optional members this version does not know).
//! * `context`, when present, is a JSON object whose members are strings (the schema's
//!   `additionalProperties`); `context.time` is an RFC 3339 time in UTC (`Z` or `+00:00`),
//!   fractional seconds allowed: the query is evaluated at its whole second, and the answer's
//!   `time_requested` is the time exactly as sent. The `context` is echoed in the answer.
//!
//! # Unknown names (the choices the specification leaves open)
//!
//! The binding lists 404 for "entity, authority, action, or resource not recognized"; this
//! registry answers 404 with a problem document when:
//!
//! * `authority_id` is not this registry's authority (its did:webvh DID; the log origin only
//!   while the registry has no DID): `TRQP_AUTHORITY_UNKNOWN`;
//! * `action` is not `issue` (authorization) or `recognize` (recognition):
//!   `TRQP_ACTION_UNKNOWN`;
//! * `resource` is not a credential type the governance defines: `TRQP_RESOURCE_UNKNOWN`;
//! * `entity_id` is not a registered issuer (authorization), or an authority no recognition
//!   ever named (recognition): `TRQP_ENTITY_UNKNOWN`.
//!
//! A known entity that is not authorized (or recognized) for the resource at the time asked
//! (never for this type, not yet, no longer, suspended, revoked) is a 200 answer with
//! `authorized` (or `recognized`) `false` and the reason in `message`.

use bizcred_core::time;
use bizcred_core::ReasonCode;
use serde_json::{Map, Value};

/// Largest query body (bytes).
pub const MAX_QUERY_LEN: usize = 64 * 1024;
/// Largest identifier (entity, authority, action, resource), bytes.
pub const MAX_ID_LEN: usize = 2048;
/// The action of an authorization query.
pub const ACTION_ISSUE: &str = "issue";
/// The action of a recognition query.
pub const ACTION_RECOGNIZE: &str = "recognize";
/// The TRQP version this registry answers.
pub const VERSION: &str = "2.0";
/// The base path of the TRQP endpoint.
pub const BASE_PATH: &str = "/trqp/v2";

/// Why a TRQP query is not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrqpError {
    /// Not a well-formed query (400).
    #[error("{0}")]
    Invalid(String),
    /// Another authority (404).
    #[error("this registry answers for authority {ours}, not {asked}")]
    AuthorityUnknown {
        /// The authority asked about.
        asked: String,
        /// This registry's.
        ours: String,
    },
    /// An entity the authority has no statement about (404).
    #[error("{0}")]
    EntityUnknown(String),
    /// An action the authority does not define (404).
    #[error("action {asked:?} is not defined by this authority for this query (only {defined:?})")]
    ActionUnknown {
        /// The action asked about.
        asked: String,
        /// The one defined.
        defined: &'static str,
    },
    /// A resource the authority does not define (404).
    #[error("resource {0:?} is not a credential type this authority defines")]
    ResourceUnknown(String),
}

impl TrqpError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            TrqpError::Invalid(_) => ReasonCode::RequestInvalid,
            TrqpError::AuthorityUnknown { .. } => ReasonCode::TrqpAuthorityUnknown,
            TrqpError::EntityUnknown(_) => ReasonCode::TrqpEntityUnknown,
            TrqpError::ActionUnknown { .. } => ReasonCode::TrqpActionUnknown,
            TrqpError::ResourceUnknown(_) => ReasonCode::TrqpResourceUnknown,
        }
    }

    /// Whether the binding answers it 404 (else 400).
    pub fn is_not_found(&self) -> bool {
        !matches!(self, TrqpError::Invalid(_))
    }
}

/// A query, read strictly.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `entity_id`.
    pub entity_id: String,
    /// `authority_id`.
    pub authority_id: String,
    /// `action`.
    pub action: String,
    /// `resource`.
    pub resource: String,
    /// `context`, as sent.
    pub context: Option<Map<String, Value>>,
    /// `context.time` as sent, and as Unix seconds (fractions dropped).
    pub time: Option<(String, i64)>,
}

fn shown(s: &str) -> String {
    s.chars().take(128).collect()
}

/// Reads a query body.
pub fn parse(body: &[u8]) -> Result<Query, TrqpError> {
    let bad = |m: String| TrqpError::Invalid(m);
    if body.len() > MAX_QUERY_LEN {
        return Err(bad(format!(
            "the query has {} bytes; at most {MAX_QUERY_LEN}",
            body.len()
        )));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let Value::Object(mut m) = v else {
        return Err(bad("the query is not a JSON object".into()));
    };
    let mut id = |k: &str| -> Result<String, TrqpError> {
        match m.remove(k) {
            Some(Value::String(s)) if s.is_empty() => Err(bad(format!("{k} is empty"))),
            Some(Value::String(s)) if s.len() > MAX_ID_LEN => {
                Err(bad(format!("{k} is longer than {MAX_ID_LEN} bytes")))
            }
            Some(Value::String(s)) if s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                Err(bad(format!(
                    "{k} holds whitespace or control characters (an identifier is one RFC 3986 string)"
                )))
            }
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(bad(format!("{k} is not a string"))),
            None => Err(bad(format!("{k} is missing"))),
        }
    };
    let entity_id = id("entity_id")?;
    let authority_id = id("authority_id")?;
    let action = id("action")?;
    let resource = id("resource")?;
    let context = match m.remove("context") {
        None => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => return Err(bad("context is not a JSON object".into())),
    };
    let mut time = None;
    if let Some(c) = &context {
        if let Some((k, _)) = c.iter().find(|(_, v)| !v.is_string()) {
            return Err(bad(format!("context.{} is not a string", shown(k))));
        }
        if let Some(t) = c.get("time").and_then(Value::as_str) {
            let at = time::parse_utc(t).map_err(|_| {
                bad(format!(
                    "context.time {:?} is not an RFC 3339 time in UTC (Z)",
                    shown(t)
                ))
            })?;
            time = Some((t.to_owned(), at));
        }
    }
    Ok(Query {
        entity_id,
        authority_id,
        action,
        resource,
        context,
        time,
    })
}

impl Query {
    /// The time the query is evaluated at: `context.time`, else `now`.
    pub fn at(&self, now: i64) -> i64 {
        self.time.as_ref().map_or(now, |(_, t)| *t)
    }

    /// The answer's members every response has: the query's four identifiers, the times
    /// and the echoed context; `decision` is `authorized` or `recognized`.
    pub fn answer(&self, decision: &str, yes: bool, message: String, now: i64) -> Value {
        let mut r = Map::new();
        r.insert("entity_id".into(), self.entity_id.clone().into());
        r.insert("authority_id".into(), self.authority_id.clone().into());
        r.insert("action".into(), self.action.clone().into());
        r.insert("resource".into(), self.resource.clone().into());
        r.insert(decision.into(), yes.into());
        if let Some((sent, _)) = &self.time {
            r.insert("time_requested".into(), sent.clone().into());
        }
        r.insert("time_evaluated".into(), time::format_utc(now).into());
        r.insert("message".into(), message.into());
        if let Some(c) = &self.context {
            r.insert("context".into(), Value::Object(c.clone()));
        }
        Value::Object(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: Value) -> Result<Query, ReasonCode> {
        parse(v.to_string().as_bytes()).map_err(|e| e.code())
    }

    #[test]
    fn queries_are_read_strictly() {
        let ok = serde_json::json!({"entity_id": "did:x:1", "authority_id": "did:x:a",
            "action": "issue", "resource": "urn:t", "context": {"time": "2026-01-02T03:04:05.123Z", "locator": "x"},
            "future_member": 1});
        let got = q(ok.clone()).expect("valid");
        assert_eq!(
            got.time,
            Some(("2026-01-02T03:04:05.123Z".into(), 1_767_323_045))
        );
        let a = got.answer("authorized", true, "m".into(), 1_767_323_100);
        assert_eq!(a["time_requested"], "2026-01-02T03:04:05.123Z");
        assert_eq!(a["context"], ok["context"]);
        assert!(a.get("future_member").is_none());
        for (k, v) in [
            ("action", Value::from("")),
            ("resource", Value::from("")),
            ("entity_id", Value::from("a b")),
            ("authority_id", Value::from(7)),
            ("context", Value::from("2026-01-02T03:04:05Z")),
            ("context", serde_json::json!([1])),
            ("context", serde_json::json!({"time": "yesterday"})),
            (
                "context",
                serde_json::json!({"time": "2026-01-02T03:04:05+01:00"}),
            ),
            ("context", serde_json::json!({"n": 1})),
        ] {
            let mut bad = ok.clone();
            bad[k] = v.clone();
            assert_eq!(q(bad), Err(ReasonCode::RequestInvalid), "{k} = {v}");
        }
        let mut missing = ok.clone();
        missing.as_object_mut().map(|m| m.remove("resource"));
        assert_eq!(q(missing), Err(ReasonCode::RequestInvalid));
        assert_eq!(
            parse(b"[]").map_err(|e| e.code()),
            Err(ReasonCode::RequestInvalid)
        );
        assert_eq!(
            parse(b"{").map_err(|e| e.code()),
            Err(ReasonCode::RequestInvalid)
        );
        let big = vec![b' '; MAX_QUERY_LEN + 1];
        assert_eq!(
            parse(&big).map_err(|e| e.code()),
            Err(ReasonCode::RequestInvalid)
        );
    }
}
