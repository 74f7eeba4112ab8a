//! Consent as data: who asks, why, and exactly which claims of which credentials would be
//! disclosed. The terminal (or a portal) shows it and answers yes or no.

use serde::Serialize;
use serde_json::Value;

use bizcred_core::sd_jwt;
use bizcred_schemas::{CredentialType, Lang};

use crate::error::WalletError;
use crate::presentation::{type_name, Chosen, PresentationRequest};
use crate::store::value_at;

/// What the user is asked to agree to.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Consent {
    /// The verifier's Client Identifier.
    pub client_id: String,
    /// The name the verifier gives itself (unverified), when it gives one.
    pub verifier_name: Option<String>,
    /// Why the verifier asks, when it says.
    pub purpose: Option<String>,
    /// The credentials and claims that would be disclosed.
    pub credentials: Vec<ConsentCredential>,
}

/// One credential in a consent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConsentCredential {
    /// The DCQL query it answers.
    pub query_id: String,
    /// The wallet's credential id.
    pub credential_id: String,
    /// The credential type.
    pub vct: String,
    /// The type's display name.
    pub type_name: String,
    /// Who issued it.
    pub issuer_name: String,
    /// The claims disclosed.
    pub claims: Vec<ConsentClaim>,
}

/// One disclosed claim.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConsentClaim {
    /// The claim path.
    pub path: Vec<Value>,
    /// Its label in the consent's language.
    pub label: String,
    /// Its value.
    pub value: Option<Value>,
}

impl Consent {
    /// Builds the consent for a request and the credentials chosen to answer it.
    pub fn new(
        req: &PresentationRequest,
        chosen: &[Chosen],
        lang: Lang,
    ) -> Result<Consent, WalletError> {
        let mut credentials = Vec::new();
        for ch in chosen {
            let c = &ch.credential;
            let claims = c.claims()?;
            let items = ch
                .paths
                .iter()
                .map(|p| {
                    let path = match sd_jwt::claim_path_json(p) {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    ConsentClaim {
                        label: label(&c.vct, &path, lang),
                        value: value_at(&claims, &path).cloned(),
                        path,
                    }
                })
                .collect();
            credentials.push(ConsentCredential {
                query_id: ch.query_id.clone(),
                credential_id: c.id.clone(),
                vct: c.vct.clone(),
                type_name: type_name(&c.vct, lang),
                issuer_name: c.issuer_name.clone(),
                claims: items,
            });
        }
        Ok(Consent {
            client_id: req.client_id.clone(),
            verifier_name: req.client_metadata.client_name.clone(),
            purpose: req.purpose(),
            credentials,
        })
    }
}

/// A claim's label in `lang` (else its path joined with dots).
pub fn label(vct: &str, path: &[Value], lang: Lang) -> String {
    CredentialType::from_vct(vct)
        .and_then(|t| t.metadata().label(path, lang).map(str::to_owned))
        .unwrap_or_else(|| {
            path.iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".")
        })
}
