//! Schema validation plus the identifier and date checks a JSON Schema cannot express.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::claims::Claims;
use crate::ids::{BusinessNumber, Date, PostalCode};
use crate::reason::ReasonCode;
use crate::CredentialType;

/// One violation of a claim set: where (a JSON Pointer), a stable code, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer to the offending value (`""` for the claim set itself).
    pub path: String,
    /// The reason: a JSON Schema keyword's (`SCHEMA_REQUIRED`, `SCHEMA_PATTERN`, ...) or an
    /// identifier check's (`BN_CHECK_DIGIT`, `POSTAL_CODE_FORMAT`, `DATE_FORMAT`,
    /// `PROGRAM_ACCOUNT_MISMATCH`, `EXPIRY_NOT_AFTER_ISSUE`).
    pub code: ReasonCode,
    /// A human sentence.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(claims)"
        } else {
            &self.path
        };
        write!(f, "{path}: {} [{}]", self.message, self.code)
    }
}

/// Whether every required claim must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// The full claim set, as an issuer holds it: required claims must be there.
    Complete,
    /// A selectively disclosed subset, as a verifier sees it: what is there must be valid, but
    /// undisclosed claims are not missing.
    Disclosed,
}

fn validator(t: CredentialType) -> &'static jsonschema::Validator {
    static CELLS: [OnceLock<jsonschema::Validator>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    CELLS[t as usize].get_or_init(|| {
        // The embedded schemas are compiled by this crate's tests.
        let schema: Value = serde_json::from_str(t.schema_json()).expect("embedded schema is JSON");
        jsonschema::draft202012::new(&schema).expect("embedded schema compiles")
    })
}

/// The reason code of a failed JSON Schema keyword.
fn keyword_reason(keyword: &str) -> ReasonCode {
    match keyword {
        "required" => ReasonCode::SchemaRequired,
        "type" => ReasonCode::SchemaType,
        "pattern" => ReasonCode::SchemaPattern,
        "enum" => ReasonCode::SchemaEnum,
        "const" => ReasonCode::SchemaConst,
        "format" => ReasonCode::SchemaFormat,
        "additionalProperties" | "unevaluatedProperties" => ReasonCode::SchemaAdditionalProperties,
        "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" | "multipleOf"
        | "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
        | "maxProperties" => ReasonCode::SchemaRange,
        // Every other keyword (oneOf, uniqueItems, dependentRequired, ...) is reported as a
        // violation of the schema; the message names the keyword.
        _ => ReasonCode::SchemaViolation,
    }
}

/// Checks `claims` against the type's schema and identifier rules; returns every violation.
pub fn check_claims(t: CredentialType, claims: &Value, mode: Completeness) -> Vec<Violation> {
    let mut out: Vec<Violation> = validator(t)
        .iter_errors(claims)
        .filter(|e| !(mode == Completeness::Disclosed && e.kind().keyword() == "required"))
        .map(|e| Violation {
            path: e.instance_path().as_str().to_owned(),
            code: keyword_reason(e.kind().keyword()),
            message: e.to_string(),
        })
        .collect();
    if claims.is_object() {
        semantic_checks(t, claims, &mut out);
    }
    out
}

/// Validates and types a claim set. `Err` holds every violation, never only the first.
pub fn parse_claims(t: CredentialType, claims: &Value) -> Result<Claims, Vec<Violation>> {
    let violations = check_claims(t, claims, Completeness::Complete);
    if !violations.is_empty() {
        return Err(violations);
    }
    let typed = match t {
        CredentialType::CertificateOfIncorporation => {
            serde_json::from_value(claims.clone()).map(Claims::CertificateOfIncorporation)
        }
        CredentialType::BusinessNumber => {
            serde_json::from_value(claims.clone()).map(Claims::BusinessNumber)
        }
        CredentialType::MunicipalBusinessLicence => {
            serde_json::from_value(claims.clone()).map(Claims::MunicipalBusinessLicence)
        }
        CredentialType::LiquorSalesLicence => {
            serde_json::from_value(claims.clone()).map(Claims::LiquorSalesLicence)
        }
    };
    typed.map_err(|e| {
        vec![Violation {
            path: String::new(),
            code: ReasonCode::SchemaType,
            message: e.to_string(),
        }]
    })
}

const DATE_CLAIMS: [&str; 4] = [
    "incorporation_date",
    "registration_date",
    "issue_date",
    "expiry_date",
];
const ADDRESS_CLAIMS: [&str; 4] = [
    "registered_office_address",
    "business_address",
    "premises_address",
    "address",
];

fn push(out: &mut Vec<Violation>, path: String, code: ReasonCode, message: String) {
    out.push(Violation {
        path,
        code,
        message,
    });
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// The checks a schema pattern cannot express. Each runs only where the value already has the
/// shape its pattern asks for, so one fault is reported once.
fn semantic_checks(t: CredentialType, claims: &Value, out: &mut Vec<Violation>) {
    let s = |k: &str| claims.get(k).and_then(Value::as_str);

    if let Some(bn) = s("business_number") {
        if digits(bn, 9) {
            if let Err(e) = bn.parse::<BusinessNumber>() {
                push(out, "/business_number".into(), e.code(), e.to_string());
            }
        }
    }
    for k in DATE_CLAIMS {
        if let Some(d) = s(k) {
            if d.len() == 10 && d.parse::<Date>().is_err() {
                push(
                    out,
                    format!("/{k}"),
                    ReasonCode::DateFormat,
                    format!("{d} is not a calendar date"),
                );
            }
        }
    }
    for k in ADDRESS_CLAIMS {
        let pc = claims
            .get(k)
            .and_then(|a| a.get("postal_code"))
            .and_then(Value::as_str);
        if let Some(pc) = pc {
            let shaped = pc.len() == 7
                && pc.bytes().enumerate().all(|(i, b)| match i {
                    0 | 2 | 5 => b.is_ascii_uppercase(),
                    3 => b == b' ',
                    _ => b.is_ascii_digit(),
                });
            if shaped {
                if let Err(e) = pc.parse::<PostalCode>() {
                    push(out, format!("/{k}/postal_code"), e.code(), e.to_string());
                }
            }
        }
    }
    if let (Some(i), Some(x)) = (s("issue_date"), s("expiry_date")) {
        if let (Ok(i), Ok(x)) = (i.parse::<Date>(), x.parse::<Date>()) {
            if x <= i {
                push(
                    out,
                    "/expiry_date".into(),
                    ReasonCode::ExpiryNotAfterIssue,
                    format!("the expiry date {x} is not after the issue date {i}"),
                );
            }
        }
    }
    if t == CredentialType::BusinessNumber {
        let accounts = claims.get("program_accounts").and_then(Value::as_array);
        for (n, acct) in accounts.into_iter().flatten().enumerate() {
            let field = |k: &str| acct.get(k).and_then(Value::as_str);
            let Some(number) = field("account_number") else {
                continue;
            };
            if number.len() != 15 || !number.is_ascii() {
                continue; // the schema pattern reports it
            }
            let expected_bn = s("business_number").unwrap_or_default();
            let mismatch = &number[..9] != expected_bn
                || field("program").is_some_and(|p| p != &number[9..11])
                || field("reference").is_some_and(|r| r != &number[11..]);
            if mismatch {
                push(
                    out,
                    format!("/program_accounts/{n}/account_number"),
                    ReasonCode::ProgramAccountMismatch,
                    format!(
                        "{number} is not business number {expected_bn} with this entry's program and reference"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn examples() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
    }

    fn read(p: &std::path::Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect("read example")).expect("json")
    }

    #[test]
    fn valid_examples_parse() {
        for t in CredentialType::ALL {
            let v = read(&examples().join("valid").join(format!("{}.json", t.slug())));
            let claims = parse_claims(t, &v).unwrap_or_else(|e| panic!("{t}: {e:?}"));
            assert_eq!(
                claims.business_number().map(|b| b.as_ref()),
                match t {
                    CredentialType::CertificateOfIncorporation => None,
                    _ => Some("812345676"),
                }
            );
            // The typed claims serialize back to the same JSON.
            assert_eq!(serde_json::to_value(&claims).expect("ser"), v, "{t}");
        }
    }

    #[test]
    fn invalid_examples_report_every_expected_violation() {
        let mut seen = 0;
        for entry in std::fs::read_dir(examples().join("invalid")).expect("dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            let slug = name.split("--").next().expect("slug");
            let t = CredentialType::from_slug(slug).expect("known type");
            let case = read(&path);
            let expected: BTreeSet<(String, String)> = case["expect"]
                .as_array()
                .expect("expect")
                .iter()
                .map(|e| {
                    (
                        e["path"].as_str().expect("p").into(),
                        e["code"].as_str().expect("c").into(),
                    )
                })
                .collect();
            let got: BTreeSet<(String, String)> = parse_claims(t, &case["claims"])
                .expect_err(&name)
                .into_iter()
                .map(|v| (v.path, v.code.as_str().to_owned()))
                .collect();
            assert_eq!(got, expected, "{name}");
            seen += 1;
        }
        assert!(seen >= 11, "only {seen} invalid examples");
    }

    #[test]
    fn disclosed_subsets_skip_required_but_not_patterns() {
        let t = CredentialType::LiquorSalesLicence;
        let partial =
            serde_json::json!({"licence_number": "LSL-826104", "business_number": "812345676"});
        assert!(check_claims(t, &partial, Completeness::Disclosed).is_empty());
        assert!(!check_claims(t, &partial, Completeness::Complete).is_empty());
        let bad = serde_json::json!({"business_number": "812345670"});
        let v = check_claims(t, &bad, Completeness::Disclosed);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].code, "BN_CHECK_DIGIT");
    }

    #[test]
    fn not_an_object() {
        let v = check_claims(
            CredentialType::BusinessNumber,
            &serde_json::json!([1]),
            Completeness::Complete,
        );
        assert_eq!(v[0].code, "SCHEMA_TYPE");
    }
}
