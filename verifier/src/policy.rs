//! Verification policies (TOML): which credentials, which claims, which cross-credential
//! rules, how fresh, which algorithms. A policy may only tighten the registry's freshness.

use serde::Deserialize;
use serde_json::{json, Value};

use bizcred_core::keys::Algorithm;
use bizcred_schemas::CredentialType;

/// Why a policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Larger than any policy.
    #[error("invalid policy: the policy file is larger than 256 KiB")]
    TooLarge,
    /// Not TOML, or a setting of the wrong kind, or an unknown setting.
    #[error("invalid policy: {0}")]
    Toml(#[source] toml::de::Error),
    /// No `[[credential]]`.
    #[error("invalid policy: a policy requests at least one credential")]
    NoCredential,
    /// A credential type that is none of the four.
    #[error("invalid policy: credential {id}: unknown type {kind}")]
    UnknownType {
        /// The credential query id.
        id: String,
        /// What the policy names.
        kind: String,
    },
    /// A credential id that is not a DCQL id.
    #[error("invalid policy: credential id {0:?} must be alphanumeric, _ or -")]
    BadId(String),
    /// The same credential id twice.
    #[error("invalid policy: credential id {0} appears twice")]
    DuplicateId(String),
    /// An accepted value that is not a JSON value (a TOML date).
    #[error("invalid policy: credential {id}: the accepted values of {claim} must be strings, numbers or booleans")]
    BadValue {
        /// The credential query id.
        id: String,
        /// The claim.
        claim: String,
    },
    /// An algorithm that is not accepted.
    #[error("invalid policy: {0}")]
    Algorithm(#[source] bizcred_core::keys::AlgorithmError),
    /// A number out of its range.
    #[error("invalid policy: {setting} must be {range}")]
    OutOfRange {
        /// The setting.
        setting: &'static str,
        /// Its range, in words.
        range: &'static str,
    },
}

impl PolicyError {
    /// The stable reason code.
    pub fn code(&self) -> bizcred_core::ReasonCode {
        match self {
            PolicyError::Algorithm(e) => e.code(),
            _ => bizcred_core::ReasonCode::PolicyInvalid,
        }
    }
}

/// One requested credential.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRequirement {
    /// The DCQL credential query id (also the `vp_token` key).
    pub id: String,
    /// The type.
    pub credential_type: CredentialType,
    /// Claims that must be disclosed (top-level names or dotted paths).
    pub claims: Vec<Vec<String>>,
    /// Claims requested but not required (disclosed when the credential has them).
    pub optional: Vec<Vec<String>>,
    /// Claims whose disclosed value must be one of these.
    pub values: Vec<(String, Vec<Value>)>,
}

/// Cross-credential rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Every disclosed `business_number` is the same.
    #[serde(default)]
    pub same_business_number: bool,
    /// Every disclosed `corporation_number` is the same.
    #[serde(default)]
    pub same_corporation_number: bool,
    /// Municipal and liquor licences name the same premises.
    #[serde(default)]
    pub same_premises_address: bool,
    /// Licensee and registration legal names equal the incorporation's `legal_name`.
    #[serde(default)]
    pub same_legal_name: bool,
    /// All credentials are bound to one holder key.
    #[serde(default)]
    pub same_holder: bool,
}

/// A verification policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Name (for reports and receipts).
    pub name: String,
    /// Requested credentials.
    pub credentials: Vec<CredentialRequirement>,
    /// Cross-credential rules.
    pub rules: Rules,
    /// Accepted signature algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Oldest acceptable key-binding JWT (seconds).
    pub kb_max_age: i64,
    /// Tolerated clock skew (seconds).
    pub clock_skew: i64,
    /// Local limit on registry data age (seconds), tightening the registry's.
    pub max_registry_age: Option<i64>,
    /// Local limit on status list age (seconds), tightening the registry's.
    pub max_status_age: Option<i64>,
    /// Whether a credential from an issuer of a registry this registry recognizes (for its
    /// type) is accepted (`[recognition] accept`, default true: the governance authority the
    /// verifier pins decides recognitions; a policy may only refuse them).
    pub accept_recognized: bool,
    /// The policy text's SHA-256 (hex), for receipts.
    pub digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    claims: Vec<String>,
    #[serde(default)]
    optional_claims: Vec<String>,
    #[serde(default)]
    values: toml::Table,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKb {
    max_age_seconds: Option<i64>,
    clock_skew_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFreshness {
    max_registry_age_seconds: Option<i64>,
    max_status_age_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecognition {
    #[serde(default = "yes")]
    accept: bool,
}

fn yes() -> bool {
    true
}

impl Default for RawRecognition {
    fn default() -> RawRecognition {
        RawRecognition { accept: true }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    key_binding: RawKb,
    #[serde(default)]
    freshness: RawFreshness,
    #[serde(default)]
    rules: Rules,
    #[serde(default)]
    recognition: RawRecognition,
    credential: Vec<RawCredential>,
}

fn to_json(v: &toml::Value) -> Option<Value> {
    match v {
        toml::Value::String(s) => Some(Value::from(s.as_str())),
        toml::Value::Integer(i) => Some(Value::from(*i)),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number),
        toml::Value::Boolean(b) => Some(Value::from(*b)),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

impl Policy {
    /// The policy of a credential of type `ty` verified on its own, as a public record is:
    /// that one credential (query id `record`), no claim required, the default algorithms,
    /// clock skew and freshness. It is never a presentation policy: it asks for no key
    /// binding (see `verify::verify_record`).
    pub fn public_record(ty: CredentialType) -> Policy {
        Policy {
            name: format!("public record ({})", ty.slug()),
            credentials: vec![CredentialRequirement {
                id: "record".into(),
                credential_type: ty,
                claims: Vec::new(),
                optional: Vec::new(),
                values: Vec::new(),
            }],
            rules: Rules::default(),
            algorithms: vec![Algorithm::EdDSA, Algorithm::ES256],
            kb_max_age: 300,
            clock_skew: 60,
            max_registry_age: None,
            max_status_age: None,
            accept_recognized: true,
            digest: String::new(),
        }
    }

    /// Parses a TOML policy.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > 256 * 1024 {
            return Err(PolicyError::TooLarge);
        }
        let raw: RawPolicy = toml::from_str(text).map_err(PolicyError::Toml)?;
        let _ = raw.description;
        if raw.credential.is_empty() {
            return Err(PolicyError::NoCredential);
        }
        let mut credentials = Vec::new();
        for c in raw.credential {
            let credential_type = CredentialType::from_slug(&c.kind)
                .or_else(|| CredentialType::from_vct(&c.kind))
                .ok_or_else(|| PolicyError::UnknownType {
                    id: c.id.clone(),
                    kind: c.kind.clone(),
                })?;
            if c.id.is_empty()
                || !c
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(PolicyError::BadId(c.id));
            }
            if credentials
                .iter()
                .any(|x: &CredentialRequirement| x.id == c.id)
            {
                return Err(PolicyError::DuplicateId(c.id));
            }
            let claims = c
                .claims
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect();
            let optional = c
                .optional_claims
                .iter()
                .map(|p| p.split('.').map(str::to_owned).collect())
                .collect();
            let values = c
                .values
                .iter()
                .map(|(k, v)| {
                    let list = match v {
                        toml::Value::Array(a) => a.iter().map(to_json).collect(),
                        other => to_json(other).map(|x| vec![x]),
                    };
                    list.map(|l| (k.clone(), l))
                        .ok_or_else(|| PolicyError::BadValue {
                            id: c.id.clone(),
                            claim: k.clone(),
                        })
                })
                .collect::<Result<_, _>>()?;
            credentials.push(CredentialRequirement {
                id: c.id,
                credential_type,
                claims,
                optional,
                values,
            });
        }
        let algorithms = match raw.algorithms {
            None => vec![Algorithm::EdDSA, Algorithm::ES256],
            Some(a) => a
                .iter()
                .map(|s| Algorithm::from_jose(s).map_err(PolicyError::Algorithm))
                .collect::<Result<_, _>>()?,
        };
        let positive =
            |v: Option<i64>, setting: &'static str| -> Result<Option<i64>, PolicyError> {
                match v {
                    Some(x) if x <= 0 => Err(PolicyError::OutOfRange {
                        setting,
                        range: "a positive number of seconds",
                    }),
                    other => Ok(other),
                }
            };
        use sha2::Digest;
        let digest = sha2::Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Policy {
            name: raw.name,
            credentials,
            rules: raw.rules,
            algorithms,
            kb_max_age: positive(
                raw.key_binding.max_age_seconds,
                "key_binding.max_age_seconds",
            )?
            .unwrap_or(300),
            clock_skew: match raw.key_binding.clock_skew_seconds {
                None => 60,
                Some(s) if (0..=600).contains(&s) => s,
                Some(_) => {
                    return Err(PolicyError::OutOfRange {
                        setting: "key_binding.clock_skew_seconds",
                        range: "between 0 and 600 seconds",
                    })
                }
            },
            max_registry_age: positive(
                raw.freshness.max_registry_age_seconds,
                "freshness.max_registry_age_seconds",
            )?,
            max_status_age: positive(
                raw.freshness.max_status_age_seconds,
                "freshness.max_status_age_seconds",
            )?,
            accept_recognized: raw.recognition.accept,
            digest,
        })
    }

    /// The OpenID4VP 1.0 DCQL query for this policy.
    pub fn dcql(&self) -> Value {
        let credentials: Vec<Value> = self
            .credentials
            .iter()
            .map(|c| {
                let claims: Vec<Value> = c
                    .claims
                    .iter()
                    .chain(&c.optional)
                    .map(|p| {
                        let mut q = json!({"path": p});
                        if let Some((_, vals)) =
                            c.values.iter().find(|(k, _)| p.len() == 1 && &p[0] == k)
                        {
                            q["values"] = Value::Array(vals.clone());
                        }
                        q
                    })
                    .collect();
                json!({
                    "id": c.id,
                    "format": "dc+sd-jwt",
                    "meta": {"vct_values": [c.credential_type.vct()]},
                    "claims": claims,
                })
            })
            .collect();
        json!({"credentials": credentials})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_errors_not_clamped() {
        let base =
            "name = \"p\"\n[[credential]]\nid = \"inc\"\ntype = \"certificate-of-incorporation\"\n";
        let skew = base.replace(
            "[[credential]]",
            "[key_binding]\nclock_skew_seconds = 3600\n[[credential]]",
        );
        let e = Policy::from_toml(&skew)
            .expect_err("a skew of an hour is refused, not cut to ten minutes");
        assert!(
            e.to_string().contains("key_binding.clock_skew_seconds"),
            "{e}"
        );
        assert_eq!(e.code(), "POLICY_INVALID");
        let date = format!("{base}values = {{ incorporation_date = 2026-01-01 }}\n");
        let e = Policy::from_toml(&date).expect_err("a TOML date is no JSON value");
        assert!(matches!(e, PolicyError::BadValue { .. }), "{e}");
        let alg = base.replace("name = \"p\"", "name = \"p\"\nalgorithms = [\"HS256\"]");
        let e = Policy::from_toml(&alg).expect_err("HMAC");
        assert_eq!(e.code(), "ALG_SYMMETRIC");
    }

    #[test]
    fn the_bank_policy_parses() {
        let p = Policy::from_toml(include_str!(
            "../../examples/config/policies/loan-application.toml"
        ))
        .expect("policy");
        assert_eq!(p.credentials.len(), 4);
        assert!(p.rules.same_business_number && p.rules.same_holder);
        let dcql = p.dcql();
        assert_eq!(
            dcql["credentials"][3]["meta"]["vct_values"][0],
            CredentialType::LiquorSalesLicence.vct()
        );
        for bad in [
            "name = 'x'\n[[credential]]\nid='a'\ntype='fishing-licence'\n",
            "name = 'x'\n",
            "name = 'x'\nalgorithms=['HS256']\n[[credential]]\nid='a'\ntype='business-number'\n",
            "name = 'x'\nunknown = 1\n[[credential]]\nid='a'\ntype='business-number'\n",
            "name = 'x'\n[freshness]\nmax_status_age_seconds = -1\n[[credential]]\nid='a'\ntype='business-number'\n",
        ] {
            assert!(Policy::from_toml(bad).is_err(), "{bad}");
        }
    }
}
