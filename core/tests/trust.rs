//! The trust registry's data end to end, in memory: onboard the four agencies, export a
//! bundle, import it into empty verifier state, and answer the verifier's questions; then
//! every bad input the registry design names, each with its specific error and the held state
//! unchanged.

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle::{self, BundleError, TrustAnchor};
use bizcred_core::trust::entry::build;
use bizcred_core::trust::note::{Checkpoint, SignedNote};
use bizcred_core::trust::state::{EntryError, TrustError, TrustState};
use bizcred_core::webvh;
use bizcred_schemas::CredentialType;
use rand_core::OsRng;
use serde_json::{json, Map, Value};

const ORIGIN: &str = "registry.bizcred.test/log";
const T0: i64 = 1_790_000_000;
const NOW: i64 = T0 + 86_400;

struct Agency {
    did: String,
    log: String,
    next_update: SecretKey,
    assertion: SecretKey,
}

fn agency(host: &str) -> Agency {
    let update = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let next_update = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let doc = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": "{DID}",
        "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": did::multikey(&assertion.public_key())}],
        "assertionMethod": ["{DID}#key-1"],
    });
    let p = webvh::pre_rotation_parameters(&update.public_key(), &next_update.public_key());
    let (did, line) = webvh::create(host, doc, p, T0, &update).expect("create");
    Agency {
        did,
        log: format!("{line}\n"),
        next_update,
        assertion,
    }
}

struct Reg {
    authority: SecretKey,
    log_key: SecretKey,
    state: TrustState,
    entries: Vec<Value>,
}

impl Reg {
    fn new() -> Reg {
        let authority = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let log_key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let mut r = Reg {
            state: TrustState::empty(ORIGIN),
            entries: Vec::new(),
            authority,
            log_key,
        };
        let g = build::genesis(
            ORIGIN,
            &[r.authority.public_key()],
            ORIGIN,
            &r.log_key.public_key(),
            T0,
            &r.authority,
            &mut OsRng,
        )
        .expect("genesis");
        r.push(g).expect("genesis applies");
        for t in CredentialType::ALL {
            let e = build::credential_type(
                ORIGIN,
                t.vct(),
                86_400,
                7 * 86_400,
                T0,
                &r.authority,
                &mut OsRng,
            )
            .expect("type");
            r.push(e).expect("type applies");
        }
        r
    }
    fn push(&mut self, e: Value) -> Result<(), EntryError> {
        self.state.apply(&e, NOW)?;
        self.entries.push(e);
        Ok(())
    }
    fn onboard(&mut self, a: &Agency, name: &str, types: &[CredentialType]) {
        let e = build::issuer_registered(
            ORIGIN,
            &a.did,
            name,
            name,
            &a.log,
            T0,
            &self.authority,
            &mut OsRng,
        )
        .expect("e");
        self.push(e).expect("issuer applies");
        for t in types {
            let e = build::authorization_granted(
                ORIGIN,
                &a.did,
                t.vct(),
                T0,
                None,
                T0,
                &self.authority,
                &mut OsRng,
            )
            .expect("e");
            self.push(e).expect("grant applies");
        }
    }
    fn checkpoint(&self) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: self.state.size(),
            root: self.state.root(),
        };
        SignedNote::sign(&cp.body(), ORIGIN, &self.log_key).expect("sign")
    }
    fn bundle(&self, from: u64, at: i64) -> String {
        bundle::export(
            &self.state,
            &self.checkpoint(),
            from,
            &self.entries,
            Vec::new(),
            at,
            &self.log_key,
        )
        .expect("export")
    }
    fn anchor(&self) -> TrustAnchor {
        TrustAnchor::of(&self.state).expect("anchor")
    }
}

fn four() -> (Reg, Vec<Agency>) {
    let mut r = Reg::new();
    let obr = agency("obr.bizcred.test");
    let cra = agency("cra.bizcred.test");
    let city = agency("toronto.bizcred.test");
    let agco = agency("agco.bizcred.test");
    r.onboard(
        &obr,
        "Ontario Business Registry",
        &[CredentialType::CertificateOfIncorporation],
    );
    r.onboard(
        &cra,
        "Canada Revenue Agency",
        &[CredentialType::BusinessNumber],
    );
    r.onboard(
        &city,
        "City of Toronto",
        &[CredentialType::MunicipalBusinessLicence],
    );
    r.onboard(&agco, "AGCO", &[CredentialType::LiquorSalesLicence]);
    (r, vec![obr, cra, city, agco])
}

fn rotate(a: &Agency, log: &webvh::VerifiedLog, at: i64) -> (String, SecretKey) {
    let new_assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let after = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let state = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": a.did,
        "verificationMethod": [{"id": format!("{}#key-2", a.did), "type": "Multikey", "controller": a.did, "publicKeyMultibase": did::multikey(&new_assertion.public_key())}],
        "assertionMethod": [format!("{}#key-2", a.did)],
    });
    let p = webvh::pre_rotation_parameters(&a.next_update.public_key(), &after.public_key());
    (
        webvh::update(log, state, p, at, &a.next_update).expect("update"),
        new_assertion,
    )
}

#[test]
fn onboarded_registry_answers_the_verifier_offline() {
    let (mut r, agencies) = four();
    let (city, agco) = (&agencies[2], &agencies[3]);
    let liquor = CredentialType::LiquorSalesLicence.vct();
    let imported = bundle::import(None, &r.anchor(), &r.bundle(0, NOW), NOW).expect("import");
    let s = imported.state;
    assert_eq!(imported.added, r.state.size());
    assert!(
        s.authorized(&agco.did, liquor, NOW).is_ok(),
        "the AGCO may issue liquor licences"
    );
    let err = s
        .authorized(&city.did, liquor, NOW)
        .expect_err("the City may not");
    assert_eq!(err.code(), "ISSUER_NOT_AUTHORIZED");
    assert_eq!(
        s.issuer_key(&agco.did, "#key-1", NOW).expect("key"),
        agco.assertion.public_key()
    );
    assert_eq!(s.registry_as_of, Some(NOW));
    assert_eq!(
        s.type_definition(liquor).map(|t| t.max_status_age),
        Some(86_400)
    );

    // The AGCO rotates its assertion key; the registry mirrors the new did:webvh entry.
    let rotated_at = NOW + 100;
    let (line, new_key) = rotate(agco, &r.state.issuers[&agco.did].log, rotated_at);
    let e = build::did_log_entries(ORIGIN, &agco.did, &line, rotated_at, &r.log_key, &mut OsRng)
        .expect("e");
    r.push(e).expect("the rotation mirrors");
    let later = rotated_at + 60;
    let s2 = bundle::import(Some(&s), &r.anchor(), &r.bundle(s.size(), later), later)
        .expect("incremental import")
        .state;
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-1", rotated_at - 1)
            .expect("old key before"),
        agco.assertion.public_key()
    );
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-1", rotated_at + 1)
            .expect_err("old key after")
            .code(),
        "KEY_NOT_VALID_AT_PROOF_TIME"
    );
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-2", rotated_at + 1)
            .expect("new key"),
        new_key.public_key()
    );
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-2", rotated_at - 1)
            .expect_err("new key before")
            .code(),
        "KEY_NOT_VALID_AT_PROOF_TIME"
    );

    // Suspension (prospective) and a declared compromise.
    let e = build::authorization_changed(
        ORIGIN,
        &agco.did,
        liquor,
        "suspended",
        later + 10,
        false,
        later,
        &r.authority,
        &mut OsRng,
    )
    .expect("e");
    r.push(e).expect("suspend");
    let e = build::key_compromised(
        ORIGIN,
        &agco.did,
        "#key-2",
        later + 20,
        later,
        &r.authority,
        &mut OsRng,
    )
    .expect("e");
    r.push(e).expect("compromise");
    let s3 = bundle::import(
        Some(&s2),
        &r.anchor(),
        &r.bundle(s2.size(), later + 30),
        later + 30,
    )
    .expect("import")
    .state;
    assert!(
        s3.authorized(&agco.did, liquor, later + 5).is_ok(),
        "prospective: earlier proofs unaffected"
    );
    assert_eq!(
        s3.authorized(&agco.did, liquor, later + 11)
            .expect_err("suspended")
            .code(),
        "ISSUER_NOT_AUTHORIZED"
    );
    assert_eq!(
        s3.issuer_key(&agco.did, "#key-2", later + 25)
            .expect_err("after")
            .code(),
        "KEY_COMPROMISED"
    );
    assert_eq!(
        s3.issuer_key(&agco.did, "#key-2", later + 15)
            .expect_err("before")
            .code(),
        "KEY_COMPROMISED_PREDATED"
    );
    assert_eq!(
        s3.authorized("did:webvh:QmUnknown:x.test", liquor, later)
            .expect_err("unknown"),
        TrustError::IssuerUnknown("did:webvh:QmUnknown:x.test".into())
    );
}

fn entry_err(r: &mut Reg, e: Value) -> EntryError {
    let before = r.state.clone();
    let err = r.state.apply(&e, NOW).expect_err("must be refused");
    assert_eq!(r.state, before, "state unchanged");
    err
}

#[test]
fn bad_entries_are_refused_with_their_reasons() {
    let (mut r, agencies) = four();
    let agco = &agencies[3];
    let liquor = CredentialType::LiquorSalesLicence.vct();
    // Forged signature: content changed after signing.
    let mut e = build::authorization_granted(
        ORIGIN,
        &agencies[2].did,
        liquor,
        T0,
        None,
        T0,
        &r.authority,
        &mut OsRng,
    )
    .expect("e");
    e["resource"] = CredentialType::BusinessNumber.vct().into();
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_BAD_SIGNATURE");
    // Signed by a key that is not an authority key.
    let rogue = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let e = build::authorization_granted(
        ORIGIN,
        &agencies[2].did,
        liquor,
        T0,
        None,
        T0,
        &rogue,
        &mut OsRng,
    )
    .expect("e");
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_NOT_AUTHORITY");
    // Another registry's entry.
    let e = build::authorization_granted(
        "other.test/log",
        &agencies[2].did,
        liquor,
        T0,
        None,
        T0,
        &r.authority,
        &mut OsRng,
    )
    .expect("e");
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_WRONG_REGISTRY");
    // A replayed (duplicated) entry.
    let dup = r.entries[6].clone();
    assert_eq!(entry_err(&mut r, dup).code(), "ENTRY_DUPLICATE");
    // A second genesis.
    let g = build::genesis(
        ORIGIN,
        &[r.authority.public_key()],
        ORIGIN,
        &r.log_key.public_key(),
        T0,
        &r.authority,
        &mut OsRng,
    )
    .expect("g");
    assert_eq!(entry_err(&mut r, g).code(), "ENTRY_GENESIS");
    // A did:webvh update that does not chain: built on a stale copy of the log.
    let log = r.state.issuers[&agco.did].log.clone();
    let (line1, _) = rotate(agco, &log, NOW - 100);
    let e =
        build::did_log_entries(ORIGIN, &agco.did, &line1, NOW, &r.log_key, &mut OsRng).expect("e");
    r.push(e).expect("first update applies");
    let (stale, _) = rotate(agco, &log, NOW - 50);
    let e =
        build::did_log_entries(ORIGIN, &agco.did, &stale, NOW, &r.log_key, &mut OsRng).expect("e");
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_DID_LOG");
    // A did:webvh update that breaks pre-rotation: signed by a key never committed.
    let thief = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let current = r.state.issuers[&agco.did].log.clone();
    let mut p = Map::new();
    p.insert(
        "updateKeys".into(),
        json!([did::multikey(&thief.public_key())]),
    );
    p.insert("nextKeyHashes".into(), json!([]));
    let bad = webvh::update(
        &current,
        current.versions[1].state.clone(),
        p,
        NOW - 10,
        &thief,
    )
    .expect("build");
    let e =
        build::did_log_entries(ORIGIN, &agco.did, &bad, NOW, &r.log_key, &mut OsRng).expect("e");
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_DID_LOG");
    // Authorizing an unregistered issuer, an oversized entry.
    let e = build::authorization_granted(
        ORIGIN,
        "did:webvh:QmNope:x.test",
        liquor,
        T0,
        None,
        T0,
        &r.authority,
        &mut OsRng,
    )
    .expect("e");
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_REFERENCE");
    let huge = "x".repeat(bizcred_core::trust::entry::MAX_ENTRY_LEN);
    let e = build::issuer_registered(
        ORIGIN,
        &agco.did,
        &huge,
        "",
        &agco.log,
        T0,
        &r.authority,
        &mut OsRng,
    )
    .expect("e");
    assert_eq!(entry_err(&mut r, e).code(), "ENTRY_TOO_LARGE");
}

fn import_err(held: Option<&TrustState>, anchor: &TrustAnchor, text: &str) -> BundleError {
    bundle::import(held, anchor, text, NOW + 1000).expect_err("must be refused")
}

fn tamper(text: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(text).expect("json");
    f(&mut v);
    v.to_string()
}

#[test]
fn bad_bundles_are_refused_and_state_is_kept() {
    let (mut r, agencies) = four();
    let anchor = r.anchor();
    let first = r.bundle(0, NOW);
    let held = bundle::import(None, &anchor, &first, NOW)
        .expect("import")
        .state;

    // Reordered, truncated and duplicated entries no longer reproduce the checkpoint root, or
    // fail the bundle signature when re-signed by someone else.
    let reordered = tamper(&first, |v| {
        v["entries"].as_array_mut().expect("a").swap(3, 4)
    });
    assert_eq!(
        import_err(None, &anchor, &reordered).code(),
        "BUNDLE_BAD_SIGNATURE"
    );
    let lk = SecretKey::from_bytes(Algorithm::EdDSA, &r.log_key.to_bytes()).expect("k");
    let resign = |text: String| -> String {
        let mut b = bundle::parse(&text).expect("parse");
        b.proof = None;
        let doc = serde_json::to_value(&b).expect("v");
        let vm = bizcred_core::trust::entry::key_method(&lk.public_key());
        b.proof = Some(
            bizcred_core::data_integrity::sign(&doc, &lk, &vm, &b.issued_at, "assertionMethod")
                .expect("sign"),
        );
        serde_json::to_string(&b).expect("s")
    };
    // Even signed by the log key, reordered entries fail the root check (an entry's prerequisites
    // may even be missing).
    let e = import_err(None, &anchor, &resign(reordered));
    assert!(
        matches!(e.code().as_str(), "BUNDLE_CORRUPT" | "BUNDLE_ENTRY_INVALID"),
        "{e}"
    );
    let truncated = resign(tamper(&first, |v| {
        v["entries"].as_array_mut().expect("a").pop();
    }));
    assert_eq!(
        import_err(None, &anchor, &truncated).code(),
        "BUNDLE_MALFORMED"
    );
    let duplicated = resign(tamper(&first, |v| {
        let a = v["entries"].as_array_mut().expect("a");
        let last = a.len() - 1;
        a[last] = a[last - 1].clone();
    }));
    assert_eq!(
        import_err(None, &anchor, &duplicated).code(),
        "BUNDLE_ENTRY_INVALID"
    );

    // A checkpoint whose root does not match the entries.
    let wrong_root = {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: r.state.size(),
            root: [7u8; 32],
        };
        let note = SignedNote::sign(&cp.body(), ORIGIN, &lk).expect("sign");
        resign(tamper(&first, |v| v["checkpoint"] = note.into()))
    };
    assert_eq!(
        import_err(None, &anchor, &wrong_root).code(),
        "BUNDLE_CORRUPT"
    );

    // Grow the log; an incremental bundle with a broken consistency proof is a fork.
    let a = agency("new.bizcred.test");
    r.onboard(&a, "New agency", &[CredentialType::BusinessNumber]);
    let second = r.bundle(held.size(), NOW + 500);
    let bad_proof = resign(tamper(&second, |v| {
        v["consistency"][0] = base64_of([1u8; 32]).into()
    }));
    let err = import_err(Some(&held), &anchor, &bad_proof);
    assert_eq!(err.code(), "REGISTRY_EQUIVOCATION");
    let newer = bundle::import(Some(&held), &anchor, &second, NOW + 1000)
        .expect("good incremental")
        .state;
    assert_eq!(newer.size(), r.state.size());
    assert!(newer.issuers.contains_key(&a.did));

    // An older bundle after a newer one.
    assert_eq!(
        import_err(Some(&newer), &anchor, &first).code(),
        "BUNDLE_OLDER"
    );
    // Same size, other root: equivocation, with both checkpoints as evidence.
    let err = import_err(Some(&held), &anchor, &fork_bundle(&r, held.size()));
    match err {
        BundleError::Fork(ev) => assert_ne!(ev.held, ev.received),
        other => panic!("expected a fork, got {other}"),
    }
    // Another registry's bundle, and a bundle signed by another log key.
    let (other, _) = four();
    assert_eq!(
        import_err(None, &anchor, &other.bundle(0, NOW)).code(),
        "BUNDLE_BAD_SIGNATURE"
    );
    let other_anchor = TrustAnchor {
        origin: "another.test/log".into(),
        ..anchor.clone()
    };
    assert_eq!(
        import_err(None, &other_anchor, &first).code(),
        "BUNDLE_WRONG_REGISTRY"
    );
    // Oversized and garbage input.
    assert_eq!(import_err(None, &anchor, "{").code(), "BUNDLE_MALFORMED");
    let _ = agencies;
}

fn base64_of(h: [u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// A registry with the same keys but different history, at the same size as `held_size`.
fn fork_bundle(real: &Reg, held_size: u64) -> String {
    // Same authority and log key as the real registry, different entries.
    let mut f = Reg {
        authority: SecretKey::from_bytes(Algorithm::EdDSA, &real.authority.to_bytes()).expect("k"),
        log_key: SecretKey::from_bytes(Algorithm::EdDSA, &real.log_key.to_bytes()).expect("k"),
        state: TrustState::empty(ORIGIN),
        entries: Vec::new(),
    };
    let g = build::genesis(
        ORIGIN,
        &[f.authority.public_key()],
        ORIGIN,
        &f.log_key.public_key(),
        T0,
        &f.authority,
        &mut OsRng,
    )
    .expect("g");
    f.push(g).expect("g");
    while f.state.size() < held_size {
        let e = build::credential_type(
            ORIGIN,
            &format!("urn:x:{}", f.state.size()),
            60,
            60,
            T0,
            &f.authority,
            &mut OsRng,
        )
        .expect("e");
        f.push(e).expect("e");
    }
    f.bundle(0, NOW + 10)
}
