//! Recognition of another registry's authority (TRQP recognition), in memory: the
//! `RecognitionGranted` / `RecognitionRevoked` entries and their refusals, the recognized
//! registry's bundle carried in this registry's bundle and checked offline against the anchor
//! the recognition pins, and the queries a verifier asks of the result.

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle::{self, BundleError, RecognizedBundle, TrustAnchor};
use bizcred_core::trust::entry::build::{self, RecognitionTerms};
use bizcred_core::trust::note::{Checkpoint, SignedNote};
use bizcred_core::trust::state::{EntryError, TrustState};
use bizcred_core::webvh;
use bizcred_core::ReasonCode;
use bizcred_schemas::CredentialType;
use rand_core::OsRng;
use serde_json::{json, Value};

const T0: i64 = 1_790_000_000;
const NOW: i64 = T0 + 86_400;
const ON: &str = "registry.on.test/log";
const BC: &str = "registry.bc.test/log";
const BC_AUTHORITY: &str = "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFD:trust.bc.test";
const ON_AUTHORITY: &str = "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFE:trust.on.test";

fn key() -> SecretKey {
    SecretKey::generate(Algorithm::EdDSA, &mut OsRng)
}

struct Reg {
    origin: &'static str,
    authority: SecretKey,
    log_key: SecretKey,
    state: TrustState,
    entries: Vec<Value>,
}

impl Reg {
    fn new(origin: &'static str) -> Reg {
        let mut r = Reg {
            origin,
            authority: key(),
            log_key: key(),
            state: TrustState::empty(origin),
            entries: Vec::new(),
        };
        let g = build::genesis(
            origin,
            &[r.authority.public_key()],
            origin,
            &r.log_key.public_key(),
            T0,
            &r.authority,
            &mut OsRng,
        )
        .expect("genesis");
        r.push(g).expect("genesis applies");
        for t in CredentialType::ALL {
            let e = build::credential_type(
                origin,
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

    /// Registers an issuer at `host` authorized for `ty`; returns its DID.
    fn onboard(&mut self, host: &str, ty: CredentialType) -> String {
        let update = key();
        let assertion = key();
        let doc = json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": "{DID}",
            "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": did::multikey(&assertion.public_key())}],
            "assertionMethod": ["{DID}#key-1"],
        });
        let (issuer, line) = webvh::create(
            host,
            doc,
            webvh::pre_rotation_parameters(&update.public_key(), &key().public_key()),
            T0,
            &update,
        )
        .expect("create");
        let e = build::issuer_registered(
            self.origin,
            &issuer,
            host,
            host,
            &format!("{line}\n"),
            T0,
            &self.authority,
            &mut OsRng,
        )
        .expect("sign");
        self.push(e).expect("registration applies");
        let e = build::authorization_granted(
            self.origin,
            &issuer,
            ty.vct(),
            T0,
            None,
            T0,
            &self.authority,
            &mut OsRng,
        )
        .expect("sign");
        self.push(e).expect("grant applies");
        issuer
    }

    fn recognize(&self, entity: &str, ty: CredentialType, anchor: &TrustAnchor) -> Value {
        build::recognition_granted(
            self.origin,
            ON_AUTHORITY,
            &RecognitionTerms {
                entity_id: entity,
                resource: ty.vct(),
                valid_from: T0,
                valid_until: None,
                anchor,
            },
            T0,
            &self.authority,
            &mut OsRng,
        )
        .expect("sign")
    }

    fn revoke(&self, entity: &str, ty: CredentialType, at: i64) -> Value {
        build::recognition_revoked(
            self.origin,
            entity,
            ty.vct(),
            at,
            T0,
            &self.authority,
            &mut OsRng,
        )
        .expect("sign")
    }

    fn checkpoint(&self) -> String {
        let cp = Checkpoint {
            origin: self.origin.into(),
            size: self.state.size(),
            root: self.state.root(),
        };
        SignedNote::sign(&cp.body(), self.origin, &self.log_key).expect("sign")
    }

    fn bundle(&self, recognized: Vec<RecognizedBundle>) -> String {
        bundle::export_with_recognized(
            &self.state,
            &self.checkpoint(),
            0,
            &self.entries,
            Vec::new(),
            recognized,
            NOW - 60,
            &self.log_key,
        )
        .expect("export")
    }

    fn anchor(&self) -> TrustAnchor {
        TrustAnchor::of(&self.state).expect("anchor")
    }
}

fn carried(bundle: String) -> Vec<RecognizedBundle> {
    vec![RecognizedBundle {
        authority_id: BC_AUTHORITY.into(),
        bundle,
    }]
}

#[test]
fn a_recognized_registry_reaches_the_verifier_and_is_refused_once_revoked() {
    let mut bc = Reg::new(BC);
    let bc_issuer = bc.onboard("id.bcreg.test", CredentialType::CertificateOfIncorporation);
    let mut on = Reg::new(ON);
    let on_issuer = on.onboard("obr.on.test", CredentialType::CertificateOfIncorporation);
    let grant = on.recognize(
        BC_AUTHORITY,
        CredentialType::CertificateOfIncorporation,
        &bc.anchor(),
    );
    on.push(grant).expect("the recognition applies");
    let vct = CredentialType::CertificateOfIncorporation.vct();
    let r = on
        .state
        .recognition(BC_AUTHORITY, vct, NOW)
        .expect("in force");
    assert_eq!(r.anchor, bc.anchor());
    assert_eq!(r.entry_index, on.state.size() - 1);
    // Another type is not recognized.
    let other = on
        .state
        .recognition(BC_AUTHORITY, CredentialType::BusinessNumber.vct(), NOW)
        .expect_err("not for this type");
    assert_eq!(other.code(), ReasonCode::RecognitionNotInForce);

    // The verifier imports ON's bundle carrying BC's: BC's issuer is found in BC's state.
    let text = on.bundle(carried(bc.bundle(Vec::new())));
    let held = bundle::import(None, &on.anchor(), &text, NOW)
        .expect("imported")
        .state;
    let (authority, foreign) = held
        .recognized_registry_of(&bc_issuer)
        .expect("BC's issuer is in BC's recognized state");
    assert_eq!(authority, BC_AUTHORITY);
    assert!(foreign.authorized(&bc_issuer, vct, NOW).is_ok());
    assert!(held.recognized_registry_of(&on_issuer).is_none());
    assert_eq!(foreign.registry_as_of, Some(NOW - 60));

    // BC grows; an older copy of its bundle afterwards does not replace the newer state.
    let first_bc = bc.bundle(Vec::new());
    let later_issuer = bc.onboard("id2.bcreg.test", CredentialType::CertificateOfIncorporation);
    let held = bundle::import(
        Some(&held),
        &on.anchor(),
        &on.bundle(carried(bc.bundle(Vec::new()))),
        NOW,
    )
    .expect("newer")
    .state;
    assert!(held.recognized_registry_of(&later_issuer).is_some());
    let held = bundle::import(
        Some(&held),
        &on.anchor(),
        &on.bundle(carried(first_bc)),
        NOW,
    )
    .expect("an older recognized bundle is no error")
    .state;
    assert!(
        held.recognized_registry_of(&later_issuer).is_some(),
        "the newer recognized state is kept"
    );

    // Revoked from NOW + 10: in force before, refused from then on.
    let revoke = on.revoke(
        BC_AUTHORITY,
        CredentialType::CertificateOfIncorporation,
        NOW + 10,
    );
    on.push(revoke).expect("the revocation applies");
    let held = bundle::import(
        Some(&held),
        &on.anchor(),
        &on.bundle(carried(bc.bundle(Vec::new()))),
        NOW,
    )
    .expect("imported")
    .state;
    assert!(held.recognition(BC_AUTHORITY, vct, NOW + 9).is_ok());
    let e = held
        .recognition(BC_AUTHORITY, vct, NOW + 10)
        .expect_err("revoked");
    assert_eq!(e.code(), ReasonCode::RecognitionNotInForce);
    assert!(e.to_string().contains("revoked"), "{e}");
    // Granted again later: one recognition in force again.
    let again = on.recognize(
        BC_AUTHORITY,
        CredentialType::CertificateOfIncorporation,
        &bc.anchor(),
    );
    on.push(again)
        .expect("a revoked recognition may be granted again");
}

#[test]
fn bad_recognitions_are_refused_with_their_reasons() {
    let bc = Reg::new(BC);
    let mut on = Reg::new(ON);
    let ty = CredentialType::CertificateOfIncorporation;
    let err = |on: &mut Reg, e: Value| on.push(e).expect_err("refused").code();

    // Not a DID.
    let e = on.recognize("registry.bc.test", ty, &bc.anchor());
    assert_eq!(err(&mut on, e), ReasonCode::EntryMalformed);
    // A log key that is not a key.
    let mut bad = bc.anchor();
    bad.log_key = "z6Mknotakey".into();
    let e = on.recognize(BC_AUTHORITY, ty, &bad);
    assert_eq!(err(&mut on, e), ReasonCode::EntryMalformed);
    // Itself.
    let e = on.recognize(BC_AUTHORITY, ty, &on.anchor());
    assert_eq!(err(&mut on, e), ReasonCode::EntryReference);
    // Another action.
    let mut e = on.recognize(BC_AUTHORITY, ty, &bc.anchor());
    e["action"] = "issue".into();
    assert_eq!(err(&mut on, e), ReasonCode::EntryBadSignature);
    // Revoking what was never granted.
    let e = on.revoke(BC_AUTHORITY, ty, NOW);
    assert_eq!(err(&mut on, e), ReasonCode::EntryReference);
    // Signed by a key that is not an authority key.
    let mut e = on.recognize(BC_AUTHORITY, ty, &bc.anchor());
    let rogue = build::recognition_granted(
        ON,
        ON_AUTHORITY,
        &RecognitionTerms {
            entity_id: BC_AUTHORITY,
            resource: ty.vct(),
            valid_from: T0,
            valid_until: None,
            anchor: &bc.anchor(),
        },
        T0,
        &bc.authority,
        &mut OsRng,
    )
    .expect("sign");
    assert_eq!(err(&mut on, rogue), ReasonCode::EntryNotAuthority);
    // Granted once; granted again while in force, or with another anchor: refused.
    on.push(e.clone()).expect("applies");
    e = on.recognize(BC_AUTHORITY, ty, &bc.anchor());
    assert_eq!(err(&mut on, e), ReasonCode::EntryReference);
    let other = Reg::new("registry.other.test/log");
    let e = on.recognize(
        BC_AUTHORITY,
        CredentialType::BusinessNumber,
        &other.anchor(),
    );
    assert_eq!(err(&mut on, e), ReasonCode::EntryReference);
    // The same registry under another authority's name.
    let e = on.recognize(
        "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFF:x.test",
        ty,
        &bc.anchor(),
    );
    assert_eq!(err(&mut on, e), ReasonCode::EntryReference);
}

#[test]
fn recognized_bundles_that_do_not_check_are_refused_and_state_is_kept() {
    let mut bc = Reg::new(BC);
    bc.onboard("id.bcreg.test", CredentialType::CertificateOfIncorporation);
    let mut on = Reg::new(ON);
    // Carried before any recognition names BC: refused.
    let text = on.bundle(carried(bc.bundle(Vec::new())));
    let e = bundle::import(None, &on.anchor(), &text, NOW).expect_err("no recognition");
    assert_eq!(e.code(), ReasonCode::BundleRecognizedInvalid);

    let grant = on.recognize(
        BC_AUTHORITY,
        CredentialType::CertificateOfIncorporation,
        &bc.anchor(),
    );
    on.push(grant).expect("applies");
    let held = bundle::import(None, &on.anchor(), &on.bundle(Vec::new()), NOW)
        .expect("imported")
        .state;

    // A bundle of another registry (not the pinned one) under BC's name.
    let impostor = Reg::new(BC);
    let text = on.bundle(carried(impostor.bundle(Vec::new())));
    let e = bundle::import(Some(&held), &on.anchor(), &text, NOW).expect_err("impostor");
    assert_eq!(e.code(), ReasonCode::BundleRecognizedInvalid);
    match &e {
        BundleError::Recognized { authority, error } => {
            assert_eq!(authority, BC_AUTHORITY);
            assert_eq!(error.code(), ReasonCode::BundleBadSignature);
        }
        other => panic!("{other:?}"),
    }
    // A recognized bundle carrying recognized bundles of its own (no transitivity).
    let nested = bc.bundle(carried(Reg::new("registry.qc.test/log").bundle(Vec::new())));
    let e = bundle::import(Some(&held), &on.anchor(), &on.bundle(carried(nested)), NOW)
        .expect_err("nested");
    assert_eq!(e.code(), ReasonCode::BundleRecognizedInvalid);
    // Garbage.
    let e = bundle::import(
        Some(&held),
        &on.anchor(),
        &on.bundle(carried("{}".into())),
        NOW,
    )
    .expect_err("garbage");
    assert_eq!(e.code(), ReasonCode::BundleRecognizedInvalid);
    // The held state is as it was.
    assert!(held.recognized.is_empty());
    // A bundle without recognized bundles serializes as before (no `recognized` member).
    let plain: Value = serde_json::from_str(&on.bundle(Vec::new())).expect("json");
    assert!(plain.get("recognized").is_none());
}
