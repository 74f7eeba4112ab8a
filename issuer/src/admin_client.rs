//! A client of a running issuer's admin API (bearer admin token), for `bizcred-issuer admin`
//! and for staff tools that drive an issuer from elsewhere.

use serde_json::{json, Value};

/// One staff action.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminAction {
    /// Open an application for a type with the claims of the system of record.
    Apply {
        /// The credential type (slug or vct).
        credential_type: String,
        /// Claims (a JSON object).
        claims: Value,
    },
    /// Approve an application with the remaining claims; the answer holds the offer.
    Approve {
        /// The application id.
        id: String,
        /// Claims (a JSON object).
        claims: Value,
    },
    /// Show an application.
    Show {
        /// The application id.
        id: String,
    },
    /// List issued credentials.
    List,
    /// Refuse an application (final).
    Refuse {
        /// The application id.
        id: String,
        /// Why (required).
        reason: String,
    },
    /// Send an application back for changes.
    RequestChanges {
        /// The application id.
        id: String,
        /// Which changes (required).
        reason: String,
    },
    /// Record that the applicant withdrew an application.
    Withdraw {
        /// The application id.
        id: String,
        /// Why (required).
        reason: String,
    },
    /// Revoke a credential.
    Revoke {
        /// The credential id.
        id: String,
        /// Why (required).
        reason: String,
    },
    /// Suspend a credential.
    Suspend {
        /// The credential id.
        id: String,
        /// Why (required).
        reason: String,
    },
    /// Reinstate a suspended credential.
    Reinstate {
        /// The credential id.
        id: String,
        /// Why, if said.
        reason: Option<String>,
    },
    /// Rotate the signing key.
    RotateKey {
        /// Key ids (`{did}#key-N`) declared compromised: the new DID version does not list them.
        compromised: Vec<String>,
    },
}

impl AdminAction {
    /// The method (`true` for POST), path and body of the request.
    fn request(&self) -> (bool, String, Option<Value>) {
        match self {
            AdminAction::Apply {
                credential_type,
                claims,
            } => (
                true,
                "/admin/applications".to_owned(),
                Some(json!({"credential_type": credential_type, "claims": claims})),
            ),
            AdminAction::Approve { id, claims } => (
                true,
                format!("/admin/applications/{}/approve", segment(id)),
                Some(json!({"claims": claims})),
            ),
            AdminAction::Show { id } => {
                (false, format!("/admin/applications/{}", segment(id)), None)
            }
            AdminAction::List => (false, "/admin/credentials".to_owned(), None),
            AdminAction::Refuse { id, reason } => (
                true,
                format!("/admin/applications/{}/refuse", segment(id)),
                Some(json!({"reason": reason})),
            ),
            AdminAction::RequestChanges { id, reason } => (
                true,
                format!("/admin/applications/{}/request-changes", segment(id)),
                Some(json!({"reason": reason})),
            ),
            AdminAction::Withdraw { id, reason } => (
                true,
                format!("/admin/applications/{}/withdraw", segment(id)),
                Some(json!({"reason": reason})),
            ),
            AdminAction::Revoke { id, reason } => (
                true,
                format!("/admin/credentials/{}/revoke", segment(id)),
                Some(json!({"reason": reason})),
            ),
            AdminAction::Suspend { id, reason } => (
                true,
                format!("/admin/credentials/{}/suspend", segment(id)),
                Some(json!({"reason": reason})),
            ),
            AdminAction::Reinstate { id, reason } => (
                true,
                format!("/admin/credentials/{}/reinstate", segment(id)),
                Some(json!({"reason": reason})),
            ),
            AdminAction::RotateKey { compromised } => (
                true,
                "/admin/keys/rotate".to_owned(),
                (!compromised.is_empty()).then(|| json!({"compromised": compromised})),
            ),
        }
    }
}

/// An id as one URL path segment (percent-encoded, so an id cannot name another path).
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Why an admin call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The issuer could not be reached, or its answer not read.
    #[error("contacting {url} (is `bizcred-issuer serve` running?): {source}")]
    Unreachable {
        /// The issuer's URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer that is not JSON.
    #[error("the issuer answered {status} with no JSON: {text}")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The start of the answer.
        text: String,
    },
    /// The admin token was refused, or the issuer failed (not a refusal of the action).
    #[error("{status}: {description}")]
    Failed {
        /// The HTTP status.
        status: u16,
        /// The issuer's `error_description` (or its answer).
        description: String,
    },
}

impl AdminClientError {
    /// The stable reason code.
    pub fn code(&self) -> bizcred_core::ReasonCode {
        match self {
            AdminClientError::Unreachable { .. } => bizcred_core::ReasonCode::Unreachable,
            AdminClientError::NotJson { .. } => bizcred_core::ReasonCode::BadResponse,
            AdminClientError::Failed { .. } => bizcred_core::ReasonCode::HttpError,
        }
    }
}

/// The issuer's answer to an action that reached it: done, or refused (with its OAuth-style
/// `error` and `error_description`).
#[derive(Debug, Clone, PartialEq)]
pub enum AdminAnswer {
    /// Done; the answer's JSON.
    Done(Value),
    /// Refused (a 4xx other than an authentication failure); the answer's JSON.
    Refused(Value),
}

/// A client of one issuer's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the issuer at `url` with the admin `token`.
    pub fn new(url: &str, token: &str, http: reqwest::Client) -> AdminClient {
        AdminClient {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        }
    }

    /// Takes `action`.
    pub async fn call(&self, action: &AdminAction) -> Result<AdminAnswer, AdminClientError> {
        let (post, path, body) = action.request();
        let target = format!("{}{path}", self.url);
        let req = if post {
            self.http.post(&target)
        } else {
            self.http.get(&target)
        };
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let unreachable = |source| AdminClientError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        let text = resp.text().await.map_err(unreachable)?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        match parsed {
            Some(v) if status.is_success() => Ok(AdminAnswer::Done(v)),
            // Every answer of the admin API is JSON: another one is shown as it came.
            None if status.is_success() => Err(AdminClientError::NotJson {
                status: status.as_u16(),
                text: text.chars().take(300).collect(),
            }),
            v if status.as_u16() == 401 || status.as_u16() == 403 || status.is_server_error() => {
                Err(AdminClientError::Failed {
                    status: status.as_u16(),
                    description: v
                        .as_ref()
                        .and_then(|v| v["error_description"].as_str())
                        .map_or_else(|| text.chars().take(300).collect(), str::to_owned),
                })
            }
            Some(v) => Ok(AdminAnswer::Refused(v)),
            None => Ok(AdminAnswer::Refused(json!({
                "error_description": text.chars().take(300).collect::<String>()
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_path_segment() {
        let (_, path, body) = AdminAction::Revoke {
            id: "../keys/rotate".into(),
            reason: "fraud".into(),
        }
        .request();
        assert_eq!(path, "/admin/credentials/..%2Fkeys%2Frotate/revoke");
        assert_eq!(body, Some(json!({"reason": "fraud"})));
        let (post, path, body) = AdminAction::List.request();
        assert!(!post && path == "/admin/credentials" && body.is_none());
    }
}
