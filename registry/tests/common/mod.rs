//! Shared fixtures: agencies with did:webvh DIDs, and a registry with its keys.
#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::webvh;
use serde_json::json;

pub struct Agency {
    pub did: String,
    pub log: String,
    pub update: SecretKey,
    pub next_update: SecretKey,
    pub assertion: SecretKey,
}

pub fn agency(host: &str, t: i64) -> Agency {
    let update = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let next_update = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let assertion = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let doc = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": "{DID}",
        "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": did::multikey(&assertion.public_key())}],
        "assertionMethod": ["{DID}#key-1"],
    });
    let p = webvh::pre_rotation_parameters(&update.public_key(), &next_update.public_key());
    let (did, line) = webvh::create(host, doc, p, t, &update).expect("create");
    Agency {
        did,
        log: format!("{line}\n"),
        update,
        next_update,
        assertion,
    }
}

/// The next did:webvh line of `a`: a new assertion key `#key-2`, signed with the committed
/// next update key.
pub fn rotation(a: &Agency, t: i64) -> (String, SecretKey) {
    let log = webvh::verify_log(&a.log, None, t);
    let new_assertion = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let after = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let state = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": a.did,
        "verificationMethod": [{"id": format!("{}#key-2", a.did), "type": "Multikey", "controller": a.did, "publicKeyMultibase": did::multikey(&new_assertion.public_key())}],
        "assertionMethod": [format!("{}#key-2", a.did)],
    });
    let p = webvh::pre_rotation_parameters(&a.next_update.public_key(), &after.public_key());
    (
        webvh::update(&log, state, p, t, &a.next_update).expect("update"),
        new_assertion,
    )
}
