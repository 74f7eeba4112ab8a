//! Signed verification receipts: what was checked, against which registry checkpoint and
//! status times, with which verdict. A bank keeps them for its records. The receipt holds a
//! digest of the presentation, not the personal data in it.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use bizcred_core::data_integrity::{self, ProofError};
use bizcred_core::keys::{PublicKey, Signer};
use bizcred_core::trust::entry::key_method;

use crate::verify::Report;

/// Builds and signs (`eddsa-jcs-2022`) a receipt for `report` over `presentation` (the exact
/// bytes received), by `verifier` (its identifier, e.g. its client id).
pub fn sign(
    report: &Report,
    presentation: &[u8],
    verifier: &str,
    signer: &impl Signer,
) -> Result<Value, ProofError> {
    let digest: String = Sha256::digest(presentation)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let failures: Vec<Value> = report
        .failures
        .iter()
        .map(|f| json!({"credential": f.credential, "code": f.code}))
        .collect();
    let credentials: Vec<Value> = report
        .credentials
        .iter()
        .map(|c| json!({"id": c.id, "vct": c.vct, "issuer": c.issuer, "issued_at": c.issued_at, "status": c.status}))
        .collect();
    let doc = json!({
        "type": "bizcred-verification-receipt/1",
        "verifier": verifier,
        "verified_at": report.verified_at,
        "policy": report.policy,
        "policy_sha256": report.policy_digest,
        "presentation_sha256": digest,
        "verdict": report.verdict,
        "last_known": report.last_known,
        "failures": failures,
        "credentials": credentials,
        "registry_checkpoint": report.checkpoint,
        "as_of": report.as_of,
        "checks": report.checks.len(),
    });
    let proof = data_integrity::sign(
        &doc,
        signer,
        &key_method(&signer.public_key()),
        &report.verified_at,
        "assertionMethod",
    )?;
    let mut out = doc;
    out["proof"] = proof;
    Ok(out)
}

/// Verifies a receipt's signature with the verifier's key.
pub fn verify(receipt: &Value, key: &PublicKey) -> Result<(), ProofError> {
    let mut doc = receipt.clone();
    let proof = doc
        .as_object_mut()
        .and_then(|m| m.remove("proof"))
        .ok_or(ProofError::Malformed("no proof"))?;
    data_integrity::verify(&doc, &proof, key, "assertionMethod")
}
