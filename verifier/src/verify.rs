//! The offline verification pipeline: a presentation (an OpenID4VP `vp_token`) against a
//! policy, the local trust state, and the time passed in.
//!
//! Every check runs and every failure is listed with a stable reason code; the verdict is
//! REJECT if any check rejects, else INDETERMINATE if any check could not be decided on fresh
//! enough data (with the last known decision where one exists), else ACCEPT. There is never a
//! silent ACCEPT on stale data.

use bizcred_core::ReasonCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use bizcred_core::jws::Jws;
use bizcred_core::keys::PublicKey;
use bizcred_core::sd_jwt::{KbExpectations, SdJwt};
use bizcred_core::sd_jwt_vc::{self, VerifiedCredential, VerifyOptions};
use bizcred_core::status_list::{self, Status, StatusListError};
use bizcred_core::time;
use bizcred_core::trust::bundle::StatusListCopy;
use bizcred_core::trust::state::TrustState;
use bizcred_schemas::{check_claims, Completeness, CredentialType, Date};

use crate::policy::{CredentialRequirement, Policy};

/// Largest `vp_token` (serialized) we evaluate.
pub const MAX_PRESENTATION_LEN: usize = 1024 * 1024;
/// Registry data older than this is never used (registry design §4.10 `hardLimit`).
pub const HARD_LIMIT: i64 = 7 * 86_400;

/// The name of every check the pipeline runs (`Check::check`), in the order it runs them.
pub const CHECKS: [&str; 21] = [
    "size",
    "format",
    "registry_freshness",
    "present",
    "algorithm",
    "issuer_key",
    "key_status",
    "signature_and_disclosures",
    "type",
    "authorization",
    "schema",
    "claims",
    "claim_values",
    "licence_dates",
    "status",
    "same_business",
    "same_corporation",
    "same_premises",
    "same_legal_name",
    "same_holder",
    "public_record",
];

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every check passed on fresh enough data.
    Accept,
    /// At least one check failed.
    Reject,
    /// Nothing failed, but something could not be decided on fresh enough data.
    Indeterminate,
}

/// Whether a failure rejects, or leaves the answer undecided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Rejects.
    Reject,
    /// Undecided (stale or missing data).
    Indeterminate,
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The credential query id, or `None` for the presentation as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Stable reason code.
    pub code: ReasonCode,
    /// A human sentence.
    pub message: String,
    /// Reject or indeterminate.
    pub severity: Severity,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The credential query id, or `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Which check.
    pub check: &'static str,
    /// `pass`, `fail` or `indeterminate`.
    pub outcome: &'static str,
}

/// A check as a stored report spells it, read back into the pipeline's names.
#[derive(Deserialize)]
struct StoredCheck {
    credential: Option<String>,
    check: String,
    outcome: String,
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Check, D::Error> {
        let c = StoredCheck::deserialize(d)?;
        let one_of =
            |s: &str, names: &[&'static str]| {
                names.iter().find(|n| **n == s).copied().ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown check or outcome {s:?}"))
                })
            };
        Ok(Check {
            credential: c.credential,
            check: one_of(&c.check, &CHECKS)?,
            outcome: one_of(&c.outcome, &["pass", "fail", "indeterminate"])?,
        })
    }
}

/// What was verified of one credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialSummary {
    /// The credential query id.
    pub id: String,
    /// `vct`.
    pub vct: String,
    /// Issuer DID.
    pub issuer: String,
    /// Issuer name from the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_name: Option<String>,
    /// Issued at (RFC 3339).
    pub issued_at: Option<String>,
    /// The disclosed business claims.
    pub disclosed: Map<String, Value>,
    /// `valid`, `revoked`, `suspended`, or `unknown`.
    pub status: String,
    /// When the issuer belongs to a registry this registry recognizes: through which
    /// recognition it was accepted (or refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recognition: Option<ThroughRecognition>,
}

/// The recognition an issuer of another registry was checked through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThroughRecognition {
    /// The recognized authority (the other registry's authority DID).
    pub authority_id: String,
    /// Its registry's log origin.
    pub log_origin: String,
    /// The `RecognitionGranted` entry's index in this registry's log, when one is in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
}

/// The times the decision rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AsOf {
    /// Registry data as of (signed bundle time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Status list URI → its `iat`.
    pub status: BTreeMap<String, String>,
}

/// The verification report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// ACCEPT, REJECT or INDETERMINATE.
    pub verdict: Verdict,
    /// For INDETERMINATE on stale data: what the fresh-data checks decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known: Option<Verdict>,
    /// Every failure.
    pub failures: Vec<Finding>,
    /// Every check.
    pub checks: Vec<Check>,
    /// Verified credentials.
    pub credentials: Vec<CredentialSummary>,
    /// Data times.
    pub as_of: AsOf,
    /// The policy's name.
    pub policy: String,
    /// The policy text's SHA-256.
    pub policy_digest: String,
    /// The registry checkpoint used (size and root), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The verifier's time.
    pub verified_at: String,
}

/// What the holder presented and what the verifier asked.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The `vp_token`: a JSON object from credential query id to an array of presentations
    /// (OpenID4VP 1.0 with DCQL).
    pub vp_token: &'a Value,
    /// The nonce the verifier sent.
    pub nonce: &'a str,
    /// The verifier's client identifier (the KB-JWT `aud`).
    pub audience: &'a str,
}

/// What the verifier knows, and when it is.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Trust state from the last imported bundle, if any.
    pub trust: Option<&'a TrustState>,
    /// Status list tokens the holder stapled to the presentation.
    pub stapled_status_lists: &'a [StatusListCopy],
    /// The verifier's time, Unix seconds.
    pub now: i64,
}

/// Codes whose failure leaves the answer undecided rather than rejected.
const INDETERMINATE: [ReasonCode; 8] = [
    ReasonCode::RegistryStale,
    ReasonCode::TrustBundleExpired,
    ReasonCode::TrustBundleMissing,
    ReasonCode::StatusStale,
    ReasonCode::StatusExpired,
    ReasonCode::StatusUnavailable,
    ReasonCode::KeyCompromisedPredated,
    ReasonCode::ClockUntrusted,
];
/// Of those, the ones that mean "stale": a last known decision can be given.
const STALE: [ReasonCode; 2] = [ReasonCode::RegistryStale, ReasonCode::StatusStale];

struct Run<'a> {
    /// Whether each credential must carry a key-binding JWT answering the request (every
    /// presentation); off only for a public record verified on its own ([`verify_record`]).
    key_binding: bool,
    holder_keys: sd_jwt_vc::HolderKeys,
    failures: Vec<Finding>,
    checks: Vec<Check>,
    ctx: Context<'a>,
    policy: &'a Policy,
}

impl Run<'_> {
    fn pass(&mut self, cred: Option<&str>, check: &'static str) {
        self.checks.push(Check {
            credential: cred.map(str::to_owned),
            check,
            outcome: "pass",
        });
    }
    fn fail(&mut self, cred: Option<&str>, check: &'static str, code: ReasonCode, message: String) {
        let severity = if INDETERMINATE.contains(&code) {
            Severity::Indeterminate
        } else {
            Severity::Reject
        };
        let outcome = if severity == Severity::Reject {
            "fail"
        } else {
            "indeterminate"
        };
        self.checks.push(Check {
            credential: cred.map(str::to_owned),
            check,
            outcome,
        });
        self.failures.push(Finding {
            credential: cred.map(str::to_owned),
            code,
            message,
            severity,
        });
    }
}

/// One verified credential, for the cross-credential rules.
struct Verified {
    req: CredentialRequirement,
    vc: VerifiedCredential,
}

/// Verifies `presentation` under `policy` with what the verifier knows.
pub fn verify(presentation: &Presentation<'_>, policy: &Policy, ctx: &Context<'_>) -> Report {
    run_verify(presentation, policy, ctx, true)
}

/// Verifies one credential on its own, as a public record is (the repository's downloads,
/// `bizcred-verifier verify-record`): issuer key at the proof time, key status, signature,
/// type, authorization, schema, licence dates, status and registry freshness, against what
/// the verifier knows. There is no holder to prove anything: a credential bound to a holder
/// key proves nothing about who shows it, which is why every policy of a presentation asks
/// for key binding and refuses a public record (`NO_HOLDER_KEY`).
pub fn verify_record(text: &str, ctx: &Context<'_>) -> Report {
    // The type named by the (not yet verified) payload chooses which checks apply; the
    // signature check then covers it.
    let vct = SdJwt::parse(text)
        .ok()
        .and_then(|sd| Jws::decode(&sd.jwt).ok())
        .and_then(|j| j.claims().ok())
        .and_then(|p| p.get("vct").and_then(Value::as_str).map(str::to_owned));
    // A vct of no known type is checked as a certificate of incorporation: once the
    // signature verifies, the type check refuses it (WRONG_CREDENTIAL_TYPE).
    let ty = vct
        .as_deref()
        .and_then(CredentialType::from_vct)
        .unwrap_or(CredentialType::CertificateOfIncorporation);
    let policy = Policy::public_record(ty);
    let vp_token = serde_json::json!({ "record": [text] });
    run_verify(
        &Presentation {
            vp_token: &vp_token,
            nonce: "",
            audience: "",
        },
        &policy,
        ctx,
        false,
    )
}

fn run_verify(
    presentation: &Presentation<'_>,
    policy: &Policy,
    ctx: &Context<'_>,
    key_binding: bool,
) -> Report {
    let mut run = Run {
        key_binding,
        holder_keys: sd_jwt_vc::HolderKeys::default(),
        failures: Vec::new(),
        checks: Vec::new(),
        ctx: *ctx,
        policy,
    };
    let mut as_of = AsOf::default();
    let mut summaries = Vec::new();
    let mut verified: Vec<Verified> = Vec::new();

    let size = json_size(presentation.vp_token);
    let tokens = presentation.vp_token.as_object();
    if size > MAX_PRESENTATION_LEN {
        run.fail(
            None,
            "size",
            ReasonCode::PresentationTooLarge,
            format!("the presentation has {size} bytes; the limit is {MAX_PRESENTATION_LEN}"),
        );
    } else if tokens.is_none() {
        run.fail(
            None,
            "format",
            ReasonCode::MalformedPresentation,
            "vp_token is not a JSON object of credential query ids".into(),
        );
    }

    // Registry freshness (signed times only).
    registry_freshness(&mut run, &mut as_of);

    if size <= MAX_PRESENTATION_LEN {
        if let Some(tokens) = tokens {
            for req in &policy.credentials {
                let list: Vec<&str> = match tokens.get(&req.id) {
                    Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                    Some(Value::String(s)) => vec![s.as_str()],
                    _ => Vec::new(),
                };
                match list.as_slice() {
                    [] => run.fail(
                        Some(&req.id),
                        "present",
                        ReasonCode::CredentialMissing,
                        format!("no {} was presented", req.credential_type.slug()),
                    ),
                    [one] => {
                        if let Some(v) = check_credential(
                            &mut run,
                            req,
                            one,
                            presentation,
                            &mut as_of,
                            &mut summaries,
                        ) {
                            verified.push(v);
                        }
                    }
                    _ => run.fail(
                        Some(&req.id),
                        "present",
                        ReasonCode::UnexpectedPresentations,
                        format!("{} presentations for one requested credential", list.len()),
                    ),
                }
            }
        }
    }
    cross_credential_rules(&mut run, &verified);

    let rejected = run.failures.iter().any(|f| f.severity == Severity::Reject);
    let undecided = run
        .failures
        .iter()
        .any(|f| f.severity == Severity::Indeterminate);
    let (verdict, last_known) = if rejected {
        (Verdict::Reject, None)
    } else if undecided {
        let only_stale = run.failures.iter().all(|f| STALE.contains(&f.code));
        (
            Verdict::Indeterminate,
            only_stale.then_some(Verdict::Accept),
        )
    } else {
        (Verdict::Accept, None)
    };
    let checkpoint = ctx
        .trust
        .and_then(|t| t.checkpoint_note.as_ref())
        .map(|n| n.lines().take(3).collect::<Vec<_>>().join(" "));
    Report {
        verdict,
        last_known,
        failures: run.failures,
        checks: run.checks,
        credentials: summaries,
        as_of,
        policy: policy.name.clone(),
        policy_digest: policy.digest.clone(),
        checkpoint,
        verified_at: time::format_utc(ctx.now),
    }
}

/// The serialized size of a JSON value, bounded work: strings dominate a `vp_token`.
fn json_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(json_size).sum::<usize>() + a.len() + 2,
        Value::Object(m) => {
            m.iter()
                .map(|(k, v)| k.len() + 3 + json_size(v))
                .sum::<usize>()
                + 2
        }
        other => other.to_string().len(),
    }
}

/// How old (seconds) the registry data may be for `policy`: the registry's limit for the
/// requested types (the hard limit when it defines none), tightened by the policy's own.
pub fn registry_age_limit(policy: &Policy, trust: &TrustState) -> i64 {
    let registry_limit = policy
        .credentials
        .iter()
        .filter_map(|c| {
            trust
                .type_definition(c.credential_type.vct())
                .map(|t| t.max_registry_age)
        })
        .min()
        .unwrap_or(HARD_LIMIT);
    policy
        .max_registry_age
        .map_or(registry_limit, |p| p.min(registry_limit))
}

fn registry_freshness(run: &mut Run<'_>, as_of: &mut AsOf) {
    let now = run.ctx.now;
    let Some(trust) = run.ctx.trust else {
        run.fail(
            None,
            "registry_freshness",
            ReasonCode::TrustBundleMissing,
            "no trust bundle has been imported; run `bizcred-verifier sync`".into(),
        );
        return;
    };
    let Some(at) = trust.registry_as_of else {
        run.fail(
            None,
            "registry_freshness",
            ReasonCode::TrustBundleMissing,
            "the trust state has no signed time".into(),
        );
        return;
    };
    as_of.registry = Some(time::format_utc(at));
    let age = now - at;
    let limit = registry_age_limit(run.policy, trust);
    if age < -300 {
        run.fail(
            None,
            "registry_freshness",
            ReasonCode::ClockUntrusted,
            format!("the registry data is dated {} seconds in the future", -age),
        );
    } else if age > HARD_LIMIT {
        run.fail(
            None,
            "registry_freshness",
            ReasonCode::TrustBundleExpired,
            format!(
                "the trust bundle is {age} seconds old, past the {HARD_LIMIT}-second hard limit"
            ),
        );
    } else if age > limit {
        run.fail(
            None,
            "registry_freshness",
            ReasonCode::RegistryStale,
            format!("the registry data is {age} seconds old; the limit is {limit}"),
        );
    } else {
        run.pass(None, "registry_freshness");
    }
}

fn check_credential(
    run: &mut Run<'_>,
    req: &CredentialRequirement,
    text: &str,
    p: &Presentation<'_>,
    as_of: &mut AsOf,
    summaries: &mut Vec<CredentialSummary>,
) -> Option<Verified> {
    let id = Some(req.id.as_str());
    let sd = match SdJwt::parse(text) {
        Ok(sd) => sd,
        Err(e) => {
            run.fail(id, "format", e.code(), e.to_string());
            return None;
        }
    };
    // Decoded once: the payload names the issuer and key; the same decoding is verified below.
    let header = Jws::decode(&sd.jwt).ok();
    let payload = header.as_ref().and_then(|h| h.claims().ok());
    let (Some(header), Some(payload)) = (header, payload) else {
        run.fail(
            id,
            "format",
            ReasonCode::MalformedJws,
            "the issuer-signed JWT does not decode".into(),
        );
        return None;
    };
    let s = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(iss), Some(vct)) = (s("iss"), s("vct")) else {
        run.fail(
            id,
            "format",
            ReasonCode::MissingClaim,
            "the credential lacks iss or vct".into(),
        );
        return None;
    };
    let iat = payload.get("iat").and_then(Value::as_i64);
    let kid = header.header_str("kid").map(str::to_owned);

    // Algorithm.
    match header.algorithm() {
        Ok(a) if run.policy.algorithms.contains(&a) => run.pass(id, "algorithm"),
        Ok(a) => run.fail(
            id,
            "algorithm",
            ReasonCode::AlgNotAccepted,
            format!("{a} is not accepted by the policy"),
        ),
        Err(e) => {
            run.fail(id, "algorithm", e.code(), e.to_string());
            return None;
        }
    }

    let Some(trust) = run.ctx.trust else {
        run.fail(
            id,
            "issuer_key",
            ReasonCode::TrustBundleMissing,
            "no trust state to find the issuer's key".into(),
        );
        return None;
    };
    let Some(iat) = iat else {
        run.fail(
            id,
            "issuer_key",
            ReasonCode::MissingClaim,
            "the credential has no iat (the proof time)".into(),
        );
        return None;
    };
    let Some(kid) = kid else {
        run.fail(
            id,
            "issuer_key",
            ReasonCode::KeyNotValidAtProofTime,
            "the credential header names no key (kid)".into(),
        );
        return None;
    };
    // The issuer's registry: this one, or a recognized registry that registers it (its
    // state came in the recognized bundle this registry's bundle carries).
    let (registry, through) = match trust.recognized_registry_of(&iss) {
        Some((authority, st)) => (st, Some(authority.to_owned())),
        None => (trust, None),
    };
    // Issuer key at the proof time, from the mirrored DID history.
    let key = match registry.key_at(&iss, &kid, iat) {
        Ok(k) => {
            run.pass(id, "issuer_key");
            k
        }
        Err(e) => {
            run.fail(id, "issuer_key", e.code(), e.to_string());
            return None;
        }
    };
    match registry.compromise(&iss, &kid, iat) {
        None => run.pass(id, "key_status"),
        Some(e) => run.fail(id, "key_status", e.code(), e.to_string()),
    }
    // Signature, disclosures, validity window and key binding.
    let kb = KbExpectations {
        audience: p.audience,
        nonce: p.nonce,
        now: run.ctx.now,
        max_age: run.policy.kb_max_age,
        max_future_skew: run.policy.clock_skew,
    };
    let opts = VerifyOptions {
        now: run.ctx.now,
        clock_skew: run.policy.clock_skew,
        key_binding: run.key_binding.then_some(kb),
    };
    let vc =
        match sd_jwt_vc::verify_decoded(&sd, header, payload, &key, &opts, &mut run.holder_keys) {
            Ok(vc) => {
                run.pass(id, "signature_and_disclosures");
                vc
            }
            Err(e) => {
                run.fail(id, "signature_and_disclosures", e.code(), e.to_string());
                return None;
            }
        };
    // Only now, with the issuer's signature checked, is what the credential says acted on:
    // a changed vct is a bad signature, not a type mismatch.
    if vct != req.credential_type.vct() {
        run.fail(
            id,
            "type",
            ReasonCode::WrongCredentialType,
            format!("expected {}, got {vct}", req.credential_type.vct()),
        );
        return None;
    }
    run.pass(id, "type");
    // Authorization of the issuer for the type at the proof time (by its own registry, and
    // for an issuer of a recognized registry, that registry recognized now for the type).
    let recognition = match &through {
        None => {
            match trust.authorized(&iss, &vct, iat) {
                Ok(_) => run.pass(id, "authorization"),
                Err(e) => run.fail(id, "authorization", e.code(), e.to_string()),
            }
            None
        }
        Some(authority) => Some(recognized_authorization(
            run, id, trust, registry, authority, &iss, &vct, iat,
        )),
    };
    // On its own (no key binding asked), only a public record: a credential bound to a holder
    // proves nothing about whoever shows it.
    if !run.key_binding {
        if vc.holder_key.is_some() {
            run.fail(
                id,
                "public_record",
                ReasonCode::PublicRecordHolderBound,
                "the credential is bound to a holder's key: only a presentation with key binding proves it".into(),
            );
        } else {
            run.pass(id, "public_record");
        }
    }
    if let Some(hk) = &vc.holder_key {
        if !run.policy.algorithms.contains(&hk.algorithm()) {
            run.fail(
                id,
                "algorithm",
                ReasonCode::AlgNotAccepted,
                format!("holder key algorithm {} is not accepted", hk.algorithm()),
            );
        }
    }
    let disclosed = vc.business_claims();
    // Schema of what was disclosed.
    let root = Value::Object(disclosed);
    let violations = check_claims(req.credential_type, &root, Completeness::Disclosed);
    if violations.is_empty() {
        run.pass(id, "schema");
    }
    for v in violations {
        run.fail(id, "schema", ReasonCode::SchemaViolation, v.to_string());
    }
    // Requested claims and values.
    let mut all_there = true;
    for path in &req.claims {
        if path
            .iter()
            .try_fold(&root, |cur, seg| cur.get(seg))
            .is_none()
        {
            all_there = false;
            run.fail(
                id,
                "claims",
                ReasonCode::RequiredClaimNotDisclosed,
                format!("{} was not disclosed", path.join(".")),
            );
        }
    }
    if all_there {
        run.pass(id, "claims");
    }
    for (claim, accepted) in &req.values {
        match root.get(claim) {
            Some(v) if accepted.contains(v) => run.pass(id, "claim_values"),
            Some(v) => run.fail(
                id,
                "claim_values",
                ReasonCode::ClaimValueNotAccepted,
                format!(
                    "{claim} is {v}, not one of {}",
                    Value::Array(accepted.clone())
                ),
            ),
            None => {}
        }
    }
    // Licence dates.
    let disclosed = match root {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    licence_dates(run, id, &disclosed);
    // Status.
    let status = check_status(run, id, &vc, registry, as_of, req.credential_type);

    summaries.push(CredentialSummary {
        id: req.id.clone(),
        vct: vc.vct.clone(),
        issuer: vc.issuer.clone(),
        issuer_name: registry.issuers.get(&vc.issuer).map(|i| i.name_en.clone()),
        issued_at: vc.iat.map(time::format_utc),
        disclosed,
        status,
        recognition,
    });
    Some(Verified {
        req: req.clone(),
        vc,
    })
}

/// The authorization of an issuer of a recognized registry: the policy accepts recognized
/// registries, this registry recognizes that registry's authority for the type now (a revoked
/// recognition refuses every credential through it, whatever its proof time), that registry
/// authorizes the issuer for the type at the proof time, and its data is fresh enough.
#[allow(clippy::too_many_arguments)]
fn recognized_authorization(
    run: &mut Run<'_>,
    id: Option<&str>,
    trust: &TrustState,
    registry: &TrustState,
    authority: &str,
    iss: &str,
    vct: &str,
    iat: i64,
) -> ThroughRecognition {
    let now = run.ctx.now;
    let in_force = trust.recognition(authority, vct, now);
    let through = ThroughRecognition {
        authority_id: authority.to_owned(),
        log_origin: registry.origin.clone(),
        entry: in_force.as_ref().ok().map(|r| r.entry_index),
    };
    if !run.policy.accept_recognized {
        run.fail(
            id,
            "authorization",
            ReasonCode::RecognitionNotAccepted,
            format!("{iss} is authorized through recognized authority {authority}, which the policy does not accept"),
        );
        return through;
    }
    if let Err(e) = in_force {
        run.fail(id, "authorization", e.code(), e.to_string());
        return through;
    }
    if let Err(e) = registry.authorized(iss, vct, iat) {
        run.fail(id, "authorization", e.code(), e.to_string());
        return through;
    }
    // The recognized registry's data, like this one's: signed times only.
    let limit = registry_age_limit(run.policy, trust);
    match registry.registry_as_of {
        None => run.fail(
            id,
            "authorization",
            ReasonCode::TrustBundleMissing,
            format!("no signed time for the data of recognized registry {}", registry.origin),
        ),
        Some(at) if now - at > HARD_LIMIT => run.fail(
            id,
            "authorization",
            ReasonCode::TrustBundleExpired,
            format!(
                "the data of recognized registry {} is {} seconds old, past the {HARD_LIMIT}-second hard limit",
                registry.origin,
                now - at
            ),
        ),
        Some(at) if now - at > limit => run.fail(
            id,
            "authorization",
            ReasonCode::RegistryStale,
            format!(
                "the data of recognized registry {} is {} seconds old; the limit is {limit}",
                registry.origin,
                now - at
            ),
        ),
        Some(_) => run.pass(id, "authorization"),
    }
    through
}

fn licence_dates(run: &mut Run<'_>, id: Option<&str>, disclosed: &Map<String, Value>) {
    let today: Option<Date> = time::format_utc(run.ctx.now)[..10].parse().ok();
    let date = |k: &str| {
        disclosed
            .get(k)
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<Date>().ok())
    };
    let (Some(today), issue, expiry) = (today, date("issue_date"), date("expiry_date")) else {
        return;
    };
    if issue.is_none() && expiry.is_none() {
        return;
    }
    if let Some(i) = issue {
        if today < i {
            run.fail(
                id,
                "licence_dates",
                ReasonCode::LicenceNotYetValid,
                format!("the licence takes effect on {i}"),
            );
            return;
        }
    }
    if let Some(x) = expiry {
        if today > x {
            run.fail(
                id,
                "licence_dates",
                ReasonCode::LicenceExpired,
                format!("the licence expired on {x}"),
            );
            return;
        }
    }
    run.pass(id, "licence_dates");
}

fn check_status(
    run: &mut Run<'_>,
    id: Option<&str>,
    vc: &VerifiedCredential,
    trust: &TrustState,
    as_of: &mut AsOf,
    ty: CredentialType,
) -> String {
    let Some(reference) = &vc.status else {
        run.fail(
            id,
            "status",
            ReasonCode::StatusUnavailable,
            "the credential carries no status reference".into(),
        );
        return "unknown".into();
    };
    let now = run.ctx.now;
    let issuer_prefix = format!("{}#", vc.issuer);
    // The trust state's copy was verified with the issuer's key when the bundle was imported;
    // only its expiry depends on now. Stapled copies are verified here. The freshest valid
    // list wins: an old stapled list never overrides a newer one.
    let mut stapled: Vec<status_list::VerifiedStatusList> = Vec::new();
    let mut expired = false;
    let mut last_err = None;
    for token in run
        .ctx
        .stapled_status_lists
        .iter()
        .filter(|s| s.uri == reference.uri)
        .map(|s| s.token.as_str())
    {
        let verified = status_list::peek(token).and_then(|(kid, iat, _)| {
            if !kid.starts_with(&issuer_prefix) {
                return Err(StatusListError::Malformed(
                    "not signed by the credential's issuer",
                ));
            }
            let key: PublicKey = trust.key_at(&vc.issuer, &kid, iat).map_err(|_| {
                StatusListError::Malformed("not signed by a key of the credential's issuer")
            })?;
            status_list::verify_token(token, &reference.uri, &key, now)
        });
        match verified {
            Ok(v) => stapled.push(v),
            Err(StatusListError::Expired { .. }) => expired = true,
            Err(e) => last_err = Some(e),
        }
    }
    let mut best: Option<&status_list::VerifiedStatusList> = stapled.iter().max_by_key(|v| v.iat);
    if let Some(v) = trust.verified_status.get(&reference.uri) {
        if !v.kid.starts_with(&issuer_prefix) {
            last_err = Some(StatusListError::Malformed(
                "not signed by the credential's issuer",
            ));
        } else if v.exp.is_some_and(|e| now >= e) {
            expired = true;
        } else if best.is_none_or(|b| v.iat > b.iat) {
            best = Some(v);
        }
    } else if trust.status_lists.contains_key(&reference.uri) {
        last_err = Some(StatusListError::Malformed(
            "the list does not verify with the issuer's key",
        ));
    }
    let Some(list) = best else {
        let (code, msg) = if expired {
            (
                ReasonCode::StatusExpired,
                format!("the status list {} has expired", reference.uri),
            )
        } else {
            (
                ReasonCode::StatusUnavailable,
                format!(
                    "no valid status list for {}{}",
                    reference.uri,
                    last_err.map(|e| format!(" ({e})")).unwrap_or_default()
                ),
            )
        };
        run.fail(id, "status", code, msg);
        return "unknown".into();
    };
    as_of
        .status
        .insert(reference.uri.clone(), time::format_utc(list.iat));
    let status = match list.list.get(reference.idx) {
        Ok(s) => s,
        Err(e) => {
            run.fail(id, "status", e.code(), e.to_string());
            return "unknown".into();
        }
    };
    let registry_limit = trust
        .type_definition(ty.vct())
        .map_or(86_400, |t| t.max_status_age);
    let limit = run
        .policy
        .max_status_age
        .map_or(registry_limit, |p| p.min(registry_limit));
    let label = match status {
        Status::Valid => "valid",
        Status::Invalid => "revoked",
        Status::Suspended => "suspended",
        Status::Other(_) => "unknown",
    };
    match status {
        Status::Invalid => run.fail(
            id,
            "status",
            ReasonCode::Revoked,
            "the issuer revoked this credential".into(),
        ),
        Status::Suspended => run.fail(
            id,
            "status",
            ReasonCode::Suspended,
            "the issuer suspended this credential".into(),
        ),
        Status::Other(v) => run.fail(
            id,
            "status",
            ReasonCode::StatusUnknownValue,
            format!("status value {v}"),
        ),
        Status::Valid if now - list.iat > limit => run.fail(
            id,
            "status",
            ReasonCode::StatusStale,
            format!(
                "the status list is {} seconds old; the limit is {limit}",
                now - list.iat
            ),
        ),
        Status::Valid => run.pass(id, "status"),
    }
    label.into()
}

fn cross_credential_rules(run: &mut Run<'_>, verified: &[Verified]) {
    let rules = run.policy.rules;
    let claim = |v: &Verified, k: &str| v.vc.claims.get(k).cloned();
    let distinct = |vals: Vec<Value>| {
        let mut d: Vec<Value> = Vec::new();
        for v in vals {
            if !d.contains(&v) {
                d.push(v);
            }
        }
        d
    };
    // The same identifier wherever a credential names it.
    for (enabled, key, check, what) in [
        (
            rules.same_business_number,
            "business_number",
            "same_business",
            "business numbers",
        ),
        (
            rules.same_corporation_number,
            "corporation_number",
            "same_corporation",
            "corporation numbers",
        ),
    ] {
        if !enabled {
            continue;
        }
        let vals = distinct(verified.iter().filter_map(|v| claim(v, key)).collect());
        if vals.len() > 1 {
            run.fail(
                None,
                check,
                ReasonCode::BusinessMismatch,
                format!(
                    "the credentials name different {what}: {}",
                    Value::Array(vals)
                ),
            );
        } else {
            run.pass(None, check);
        }
    }
    let of = |t: CredentialType| verified.iter().find(|v| v.req.credential_type == t);
    if rules.same_premises_address {
        let (m, l) = (
            of(CredentialType::MunicipalBusinessLicence),
            of(CredentialType::LiquorSalesLicence),
        );
        if let (Some(m), Some(l)) = (m, l) {
            let same_address = claim(m, "premises_address") == claim(l, "premises_address");
            let same_licence = match (
                claim(m, "licence_number"),
                claim(l, "municipal_licence_number"),
            ) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if !same_address {
                run.fail(
                    None,
                    "same_premises",
                    ReasonCode::PremisesMismatch,
                    "the municipal and liquor licences name different premises".into(),
                );
            } else if !same_licence {
                run.fail(
                    None,
                    "same_premises",
                    ReasonCode::PremisesMismatch,
                    "the liquor licence names another municipal licence".into(),
                );
            } else {
                run.pass(None, "same_premises");
            }
        }
    }
    if rules.same_legal_name {
        let legal =
            of(CredentialType::CertificateOfIncorporation).and_then(|v| claim(v, "legal_name"));
        if let Some(legal) = legal {
            let others: Vec<Value> = verified
                .iter()
                .filter_map(|v| {
                    claim(v, "licensee_legal_name").or_else(|| {
                        if v.req.credential_type == CredentialType::BusinessNumber {
                            claim(v, "legal_name")
                        } else {
                            None
                        }
                    })
                })
                .collect();
            if others.iter().any(|o| o != &legal) {
                run.fail(
                    None,
                    "same_legal_name",
                    ReasonCode::LegalNameMismatch,
                    format!("a credential names a legal name other than {legal}"),
                );
            } else {
                run.pass(None, "same_legal_name");
            }
        }
    }
    if rules.same_holder && run.key_binding {
        // Every credential here passed its key binding, and every key-binding JWT answered
        // this one request (its nonce and audience): whoever presents controls every holder
        // key, whether the wallet keeps one key or a fresh key per credential. A credential
        // bound to no key cannot prove that.
        if verified.iter().any(|v| v.vc.holder_key.is_none()) {
            run.fail(
                None,
                "same_holder",
                ReasonCode::HolderMismatch,
                "a credential is bound to no holder key".into(),
            );
        } else {
            run.pass(None, "same_holder");
        }
    } else if rules.same_holder {
        let holders: Vec<String> = verified
            .iter()
            .map(|v| {
                v.vc.holder_key
                    .as_ref()
                    .map(PublicKey::thumbprint)
                    .unwrap_or_default()
            })
            .collect();
        if holders.iter().any(|h| h.is_empty() || h != &holders[0]) {
            run.fail(
                None,
                "same_holder",
                ReasonCode::HolderMismatch,
                "the credentials are bound to different holders".into(),
            );
        } else {
            run.pass(None, "same_holder");
        }
    }
}
