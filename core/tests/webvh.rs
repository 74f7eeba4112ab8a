//! did:webvh create / update / deactivate through our own API, and the refusals that protect
//! key history: empty or wrong proofs, broken pre-rotation, broken chains, times.

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::webvh::{self, WebvhError};
use rand_core::OsRng;
use serde_json::{json, Map, Value};

const T0: i64 = 1_790_000_000;

fn doc(assertion: &SecretKey) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": "{DID}",
        "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}",
            "publicKeyMultibase": did::multikey(&assertion.public_key())}],
        "assertionMethod": ["{DID}#key-1"],
    })
}

struct Setup {
    did: String,
    log: String,
    update: SecretKey,
    next: SecretKey,
}

fn setup() -> Setup {
    let update = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let next = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let params = webvh::pre_rotation_parameters(&update.public_key(), &next.public_key());
    let (did, line) =
        webvh::create("localhost%3A8081", doc(&assertion), params, T0, &update).expect("create");
    Setup {
        did,
        log: format!("{line}\n"),
        update,
        next,
    }
}

fn rotated_state(did: &str, key: &SecretKey, kid: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{"id": format!("{did}#{kid}"), "type": "Multikey", "controller": did,
            "publicKeyMultibase": did::multikey(&key.public_key())}],
        "assertionMethod": [format!("{did}#{kid}")],
    })
}

#[test]
fn create_rotate_and_resolve_at_a_time() {
    let s = setup();
    assert!(s.did.starts_with("did:webvh:Qm") && s.did.ends_with(":localhost%3A8081"));
    let log = webvh::verify_log(&s.log, None, T0 + 10);
    assert_eq!(log.error, None);
    let first_key = log.versions[0]
        .verification_method("#key-1")
        .expect("key-1");

    // Rotate the assertion key; pre-rotation: the committed next update key signs.
    let new_assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let after = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let params = webvh::pre_rotation_parameters(&s.next.public_key(), &after.public_key());
    let line = webvh::update(
        &log,
        rotated_state(&s.did, &new_assertion, "key-2"),
        params,
        T0 + 100,
        &s.next,
    )
    .expect("update");
    let text = format!("{}{line}\n", s.log);
    let log = webvh::verify_log(&text, None, T0 + 200);
    assert_eq!(log.error, None);
    assert_eq!(log.versions.len(), 2);

    // Key history: before the rotation key-1 is the assertion key, after it key-2.
    let before = log.at_time(T0 + 50).expect("v1");
    assert_eq!(before.verification_method("#key-1"), Some(first_key));
    assert!(before.has_relationship("assertionMethod", "#key-1"));
    let now = log.at_time(T0 + 150).expect("v2");
    assert_eq!(
        now.verification_method("#key-2"),
        Some(new_assertion.public_key())
    );
    assert_eq!(now.verification_method("#key-1"), None);
    assert!(log.at_time(T0 - 1).is_none());
    let r = webvh::resolve(&format!("{}?versionTime=2026-09-21T14:16:00Z", s.did), &log)
        .expect("at time");
    assert_eq!(r.version.number, 2);
    assert_eq!(
        r.document["service"][0]["serviceEndpoint"],
        "http://localhost:8081"
    );
}

#[test]
fn a_stolen_update_key_cannot_rotate_past_pre_rotation() {
    let s = setup();
    let log = webvh::verify_log(&s.log, None, T0 + 10);
    let thief = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let mut params = Map::new();
    params.insert(
        "updateKeys".into(),
        json!([did::multikey(&thief.public_key())]),
    );
    params.insert("nextKeyHashes".into(), json!([]));
    // Signed by the (stolen) current key, rotating to the thief's key.
    let line = webvh::update(
        &log,
        rotated_state(&s.did, &thief, "key-9"),
        params.clone(),
        T0 + 100,
        &s.update,
    )
    .expect("build");
    let log2 = webvh::verify_log(&format!("{}{line}\n", s.log), None, T0 + 200);
    assert!(
        matches!(
            log2.error,
            Some(WebvhError::InvalidParameters { entry: 2, .. })
        ),
        "{:?}",
        log2.error
    );
    assert_eq!(log2.versions.len(), 1, "the valid prefix survives");
    // Omitting updateKeys to inherit is refused too.
    params.remove("updateKeys");
    let line = webvh::update(
        &log,
        rotated_state(&s.did, &thief, "key-9"),
        params,
        T0 + 100,
        &s.update,
    )
    .expect("build");
    let log3 = webvh::verify_log(&format!("{}{line}\n", s.log), None, T0 + 200);
    assert!(matches!(
        log3.error,
        Some(WebvhError::InvalidParameters { entry: 2, .. })
    ));
}

/// A change applied to the first log entry.
type Mutation = Box<dyn FnOnce(&mut Value)>;

fn mutate_first(log: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(log.lines().next().expect("line")).expect("json");
    f(&mut v);
    format!("{}\n", v)
}

#[test]
fn empty_missing_or_wrong_proofs_are_refused() {
    let s = setup();
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "empty proof array",
            Box::new(|v: &mut Value| v["proof"] = json!([])),
            "invalidDid",
        ),
        (
            "no proof",
            Box::new(|v: &mut Value| {
                v.as_object_mut().expect("o").remove("proof");
            }),
            "invalidDid",
        ),
        (
            "proof over other content",
            Box::new(|v: &mut Value| v["state"]["assertionMethod"] = json!([])),
            "invalidProof",
        ),
        (
            "signature of another key",
            Box::new(|v: &mut Value| {
                let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
                let sig = other.sign(b"x").expect("sign");
                v["proof"][0]["proofValue"] =
                    format!("z{}", bs58::encode(sig).into_string()).into();
            }),
            "invalidProof",
        ),
        (
            "wrong cryptosuite",
            Box::new(|v: &mut Value| v["proof"][0]["cryptosuite"] = "ecdsa-jcs-2019".into()),
            "invalidProof",
        ),
        (
            "proof purpose",
            Box::new(|v: &mut Value| v["proof"][0]["proofPurpose"] = "authentication".into()),
            "invalidProof",
        ),
        (
            "key not authorized",
            Box::new(|v: &mut Value| {
                let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
                let mk = did::multikey(&other.public_key());
                let mut unsigned = v.clone();
                unsigned.as_object_mut().expect("o").remove("proof");
                let p = bizcred_core::data_integrity::sign(
                    &unsigned,
                    &other,
                    &format!("did:key:{mk}#{mk}"),
                    "2026-09-21T00:00:00Z",
                    "assertionMethod",
                )
                .expect("sign");
                v["proof"] = json!([p]);
            }),
            "invalidProof",
        ),
        (
            "unknown method",
            Box::new(|v: &mut Value| v["parameters"]["method"] = "did:webvh:0.5".into()),
            "invalidDid",
        ),
    ];
    for (name, f, code) in cases {
        let text = mutate_first(&s.log, f);
        let log = webvh::verify_log(&text, None, T0 + 10);
        let err = log
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(log.versions.is_empty(), "{name}");
        assert_eq!(err.resolution_error(), code, "{name}: {err}");
    }
}

#[test]
fn chain_times_and_deactivation() {
    let s = setup();
    let log = webvh::verify_log(&s.log, None, T0 + 10);
    // versionTime: future, and not after the previous entry.
    let far = webvh::verify_log(&s.log, None, T0 - 3600);
    assert!(matches!(
        far.error,
        Some(WebvhError::InvalidEntry { entry: 1, .. })
    ));
    let after = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let mut params = webvh::pre_rotation_parameters(&s.next.public_key(), &after.public_key());
    let same_time = webvh::update(
        &log,
        rotated_state(&s.did, &after, "k"),
        params.clone(),
        T0,
        &s.next,
    )
    .expect("b");
    let l = webvh::verify_log(&format!("{}{same_time}\n", s.log), None, T0 + 10);
    assert!(matches!(
        l.error,
        Some(WebvhError::InvalidEntry { entry: 2, .. })
    ));
    // Deactivation, then nothing more.
    params.insert("deactivated".into(), json!(true));
    params.insert("nextKeyHashes".into(), json!([]));
    let deact = webvh::update(
        &log,
        rotated_state(&s.did, &after, "k"),
        params,
        T0 + 5,
        &s.next,
    )
    .expect("b");
    let text = format!("{}{deact}\n", s.log);
    let l = webvh::verify_log(&text, None, T0 + 10);
    assert_eq!(l.error, None);
    let r = webvh::resolve(&s.did, &l).expect("resolves");
    assert_eq!(r.metadata["deactivated"], true);
    let more = webvh::update(
        &l,
        rotated_state(&s.did, &after, "k"),
        Map::new(),
        T0 + 6,
        &s.next,
    )
    .expect("b");
    let l2 = webvh::verify_log(&format!("{text}{more}\n"), None, T0 + 10);
    assert!(matches!(
        l2.error,
        Some(WebvhError::InvalidEntry { entry: 3, .. })
    ));
    // Reordered entries break the chain.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(0, 1);
    let l3 = webvh::verify_log(&lines.join("\n"), None, T0 + 10);
    assert!(l3.versions.is_empty() && l3.error.is_some());
}
