//! The bank's loan-application policy over the verification pipeline: a valid presentation
//! of the four credentials is accepted, and every bad case is refused with its reason code.

use bizcred_core::base64url_encode;
use bizcred_core::keys::{Algorithm, PublicKey, SecretKey, Signer};
use bizcred_core::sd_jwt::{key_path, SdJwt};
use bizcred_core::status_list::{Status, StatusList};
use bizcred_core::trust::bundle::{self, StatusListCopy};
use bizcred_core::trust::entry::build;
use bizcred_core::trust::state::TrustState;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{
    example_claims as example, present, Agency, Credential, InMemoryRegistry,
};
use bizcred_verifier::{verify, Context, Policy, Presentation, Report, Verdict};
use rand_core::OsRng;
use serde_json::{json, Map, Value};

const ORIGIN: &str = "registry.bizcred.test/log";
const AUD: &str = "x509_san_dns:bank.bizcred.test";
const NONCE: &str = "Zq3v0ZbN5p1ol5cWQm2o";
/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800;
const ISSUED: i64 = NOW - 30 * 86_400;

/// An agency of the shared fixture with what this test varies: the type it issues and its
/// status list, and after a rotation the key that signs that list.
struct Issuer {
    agency: Agency,
    list: StatusList,
    ty: CredentialType,
    /// After a rotation, status lists are signed with the new key.
    status_signer: Option<(SecretKey, String)>,
}

impl Issuer {
    fn new(host: &str, ty: CredentialType) -> Issuer {
        Issuer {
            agency: Agency::new(host, ISSUED - 86_400),
            list: StatusList::new(1024, 2).expect("list"),
            ty,
            status_signer: None,
        }
    }
    fn issue(
        &self,
        claims: Map<String, Value>,
        holder: &PublicKey,
        idx: u64,
        iat: i64,
        exp: Option<i64>,
    ) -> SdJwt {
        self.issue_as(
            self.ty,
            claims,
            holder,
            idx,
            iat,
            exp,
            &self.agency.assertion,
            &self.agency.kid(),
        )
    }
    #[allow(clippy::too_many_arguments)]
    fn issue_as(
        &self,
        ty: CredentialType,
        claims: Map<String, Value>,
        holder: &PublicKey,
        idx: u64,
        iat: i64,
        exp: Option<i64>,
        key: &SecretKey,
        kid: &str,
    ) -> SdJwt {
        let c = Credential {
            ty,
            claims,
            holder,
            status_idx: idx,
            iat,
            exp,
            decoys: 2,
        };
        self.agency.issue_signed_by(c, key, kid)
    }
    fn status_token(&self, iat: i64) -> StatusListCopy {
        let exp = iat + 2 * 86_400;
        match &self.status_signer {
            Some((key, kid)) => self
                .agency
                .status_list_copy_signed_by(&self.list, iat, exp, key, kid),
            None => self.agency.status_list_copy(&self.list, iat, exp),
        }
    }
}

struct World {
    reg: InMemoryRegistry,
    agencies: Vec<Issuer>,
    holder: SecretKey,
    policy: Policy,
}

impl World {
    fn new() -> World {
        let t = ISSUED - 86_400;
        let mut reg = InMemoryRegistry::new(ORIGIN, t, NOW);
        let agencies = vec![
            Issuer::new(
                "obr.bizcred.test",
                CredentialType::CertificateOfIncorporation,
            ),
            Issuer::new("cra.bizcred.test", CredentialType::BusinessNumber),
            Issuer::new(
                "toronto.bizcred.test",
                CredentialType::MunicipalBusinessLicence,
            ),
            Issuer::new("agco.bizcred.test", CredentialType::LiquorSalesLicence),
        ];
        for a in &agencies {
            reg.onboard(&a.agency, "Agency", "Agence", &[a.ty], t);
        }
        World {
            reg,
            agencies,
            holder: SecretKey::generate(Algorithm::EdDSA, &mut OsRng),
            policy: Policy::from_toml(include_str!(
                "../../examples/config/policies/loan-application.toml"
            ))
            .expect("policy"),
        }
    }
    fn push(&mut self, e: Value) {
        self.reg.push(e).expect("entry applies");
    }
    fn status_lists(&self, status_at: i64) -> Vec<StatusListCopy> {
        self.agencies
            .iter()
            .map(|a| a.status_token(status_at))
            .collect()
    }
    /// The verifier's trust state: a bundle signed at `at` with status lists signed at `status_at`.
    fn trust(&self, at: i64, status_at: i64) -> TrustState {
        self.reg
            .verifier_state(at, self.status_lists(status_at), at.max(NOW))
    }
    /// A bundle for a verifier holding `from` entries, signed at `at`, with status lists
    /// signed at `status_at`.
    fn bundle(&self, from: u64, at: i64, status_at: i64) -> String {
        self.reg.bundle(from, at, self.status_lists(status_at))
    }
    fn credentials(&self) -> Vec<SdJwt> {
        let hk = self.holder.public_key();
        self.agencies
            .iter()
            .enumerate()
            .map(|(i, a)| a.issue(example(a.ty), &hk, 10 + i as u64, ISSUED, None))
            .collect()
    }
    fn present(&self, creds: &[SdJwt]) -> Value {
        let mut vp = Map::new();
        for (req, sd) in self.policy.credentials.iter().zip(creds) {
            let p = present(sd, &req.claims, AUD, NONCE, NOW - 10, &self.holder);
            vp.insert(req.id.clone(), json!([p]));
        }
        Value::Object(vp)
    }
    fn check(&self, vp: &Value, trust: &TrustState) -> Report {
        let p = Presentation {
            vp_token: vp,
            nonce: NONCE,
            audience: AUD,
        };
        verify(
            &p,
            &self.policy,
            &Context {
                trust: Some(trust),
                stapled_status_lists: &[],
                now: NOW,
            },
        )
    }
}

fn codes(r: &Report) -> Vec<String> {
    r.failures
        .iter()
        .map(|f| f.code.as_str().to_owned())
        .collect()
}

fn rejected_with(r: &Report, code: &str) {
    assert_eq!(r.verdict, Verdict::Reject, "{:?}", r.failures);
    assert!(
        codes(r).iter().any(|c| c == code),
        "expected {code}, got {:?}",
        r.failures
    );
}

#[test]
fn the_bank_accepts_a_valid_loan_application() {
    let w = World::new();
    let trust = w.trust(NOW - 3600, NOW - 600);
    let r = w.check(&w.present(&w.credentials()), &trust);
    assert_eq!(r.verdict, Verdict::Accept, "{:?}", r.failures);
    assert_eq!(r.credentials.len(), 4);
    assert!(r.credentials.iter().all(|c| c.status == "valid"));
    assert_eq!(r.as_of.status.len(), 4);
    // Only what the policy asked for was disclosed: no directors, no capacity.
    assert!(!r.credentials[0].disclosed.contains_key("directors"));
    assert!(!r.credentials[3].disclosed.contains_key("capacity"));
    assert_eq!(r.credentials[3].disclosed["business_number"], "812345676");
}

#[test]
fn tampering_and_forgery() {
    let w = World::new();
    let trust = w.trust(NOW - 3600, NOW - 600);
    let creds = w.credentials();
    let good = w.present(&creds);
    let swap = |id: &str, f: &dyn Fn(&str) -> String| -> Value {
        let mut v = good.clone();
        let p = v[id][0].as_str().expect("s").to_owned();
        v[id] = json!([f(&p)]);
        v
    };
    // Tampered disclosure: a changed licence number, re-encoded.
    let tampered = swap("liquor_licence", &|p| {
        let mut sd = SdJwt::parse(p).expect("p");
        let i = sd
            .disclosures
            .iter()
            .position(|d| d.name.as_deref() == Some("licence_number"))
            .expect("d");
        let forged = json!(["c2FsdHNhbHQ", "licence_number", "LSL-000001"]).to_string();
        sd.disclosures[i] =
            bizcred_core::sd_jwt::Disclosure::parse(&base64url_encode(forged), 0).expect("d");
        let sd = SdJwt { kb_jwt: None, ..sd };
        sd.bind(AUD, NONCE, NOW - 10, &w.holder)
            .expect("b")
            .serialize()
    });
    rejected_with(&w.check(&tampered, &trust), "DISCLOSURE_NOT_REFERENCED");
    // Duplicated disclosure.
    let dup = swap("liquor_licence", &|p| {
        let mut sd = SdJwt::parse(p).expect("p");
        sd.disclosures.push(sd.disclosures[0].clone());
        SdJwt { kb_jwt: None, ..sd }
            .bind(AUD, NONCE, NOW - 10, &w.holder)
            .expect("b")
            .serialize()
    });
    rejected_with(&w.check(&dup, &trust), "DUPLICATE_DISCLOSURE");
    // A claim smuggled in as a disclosure the issuer never signed.
    let smuggled = swap("liquor_licence", &|p| {
        let mut sd = SdJwt::parse(p).expect("p");
        let extra = json!(["c2FsdA", "capacity", {"indoor": 900, "outdoor": 900}]).to_string();
        sd.disclosures
            .push(bizcred_core::sd_jwt::Disclosure::parse(&base64url_encode(extra), 0).expect("d"));
        SdJwt { kb_jwt: None, ..sd }
            .bind(AUD, NONCE, NOW - 10, &w.holder)
            .expect("b")
            .serialize()
    });
    rejected_with(&w.check(&smuggled, &trust), "DISCLOSURE_NOT_REFERENCED");
    // alg none and HMAC.
    for (alg, code) in [("none", "ALG_NONE"), ("HS256", "ALG_SYMMETRIC")] {
        let forged = swap("liquor_licence", &|p| {
            let parts: Vec<&str> = p.splitn(2, '.').collect();
            let header = base64url_encode(
                json!({"alg": alg, "typ": "dc+sd-jwt", "kid": w.agencies[3].agency.kid()})
                    .to_string(),
            );
            format!("{header}.{}", parts[1])
        });
        rejected_with(&w.check(&forged, &trust), code);
    }
    // Signed by another key under the AGCO's name.
    let impostor = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let a = &w.agencies[3];
    let forged = a.issue_as(
        a.ty,
        example(a.ty),
        &w.holder.public_key(),
        13,
        ISSUED,
        None,
        &impostor,
        &a.agency.kid(),
    );
    let mut c = creds.clone();
    c[3] = forged;
    rejected_with(&w.check(&w.present(&c), &trust), "BAD_SIGNATURE");
    // The signed vct changed to another type's: the signature is checked before anything
    // the credential says is acted on, so this is a bad signature, not a type mismatch.
    let retyped = swap("liquor_licence", &|p| {
        let sd = SdJwt::parse(p).expect("p");
        let parts: Vec<&str> = sd.jwt.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&bizcred_core::base64url_decode(parts[1]).expect("b64"))
                .expect("json");
        payload["vct"] = CredentialType::MunicipalBusinessLicence.vct().into();
        let jwt = format!(
            "{}.{}.{}",
            parts[0],
            base64url_encode(payload.to_string()),
            parts[2]
        );
        let sd = SdJwt {
            jwt,
            kb_jwt: None,
            ..sd
        };
        sd.bind(AUD, NONCE, NOW - 10, &w.holder)
            .expect("b")
            .serialize()
    });
    let r = w.check(&retyped, &trust);
    rejected_with(&r, "BAD_SIGNATURE");
    assert!(
        !codes(&r).contains(&"WRONG_CREDENTIAL_TYPE".to_owned()),
        "{:?}",
        codes(&r)
    );
}

#[test]
fn trust_failures() {
    let mut w = World::new();
    let creds = w.credentials();
    // The City signs a liquor licence: not authorized.
    let city = &w.agencies[2];
    let hk = w.holder.public_key();
    let bogus = city.issue_as(
        CredentialType::LiquorSalesLicence,
        example(CredentialType::LiquorSalesLicence),
        &hk,
        99,
        ISSUED,
        None,
        &city.agency.assertion,
        &city.agency.kid(),
    );
    let trust = w.trust(NOW - 3600, NOW - 600);
    let mut c = creds.clone();
    c[3] = bogus;
    rejected_with(&w.check(&w.present(&c), &trust), "ISSUER_NOT_AUTHORIZED");
    // An unknown issuer.
    let stranger = Issuer::new("stranger.bizcred.test", CredentialType::LiquorSalesLicence);
    let mut c = creds.clone();
    c[3] = stranger.issue(
        example(CredentialType::LiquorSalesLicence),
        &hk,
        1,
        ISSUED,
        None,
    );
    rejected_with(&w.check(&w.present(&c), &trust), "ISSUER_UNKNOWN");

    // The AGCO rotates its key; a credential dated after the rotation but signed with the old
    // key is refused, while the one issued before stays valid.
    let rotated_at = NOW - 5 * 86_400;
    let agco = &w.agencies[3].agency;
    let (line, new_key) = agco.rotation(rotated_at);
    let (did, kid2) = (agco.did.clone(), format!("{}#key-2", agco.did));
    w.reg
        .mirror(&did, &line, rotated_at)
        .expect("rotation mirrored");
    w.agencies[3].status_signer = Some((new_key, kid2));
    let trust = w.trust(NOW - 3600, NOW - 600);
    let r = w.check(&w.present(&creds), &trust);
    assert_eq!(
        r.verdict,
        Verdict::Accept,
        "issued before the rotation: {:?}",
        r.failures
    );
    let a = &w.agencies[3];
    let late = a.issue(example(a.ty), &hk, 20, rotated_at + 60, None);
    let mut c = creds.clone();
    c[3] = late;
    rejected_with(
        &w.check(&w.present(&c), &trust),
        "KEY_NOT_VALID_AT_PROOF_TIME",
    );

    // A declared compromise of the City's key.
    let city_did = w.agencies[2].agency.did.clone();
    let e = build::key_compromised(
        ORIGIN,
        &city_did,
        "#key-1",
        ISSUED - 10,
        NOW - 7200,
        &w.reg.authority,
        &mut OsRng,
    )
    .expect("e");
    w.push(e);
    let trust = w.trust(NOW - 3600, NOW - 600);
    rejected_with(&w.check(&w.present(&creds), &trust), "KEY_COMPROMISED");
}

#[test]
fn status_validity_and_schema() {
    let mut w = World::new();
    let creds = w.credentials();
    // Revoked and suspended.
    w.agencies[3].list.set(13, Status::Suspended).expect("set");
    w.agencies[1].list.set(11, Status::Invalid).expect("set");
    let trust = w.trust(NOW - 3600, NOW - 600);
    let r = w.check(&w.present(&creds), &trust);
    rejected_with(&r, "SUSPENDED");
    rejected_with(&r, "REVOKED");
    w.agencies[3].list.set(13, Status::Valid).expect("set");
    w.agencies[1].list.set(11, Status::Valid).expect("set");
    let hk = w.holder.public_key();
    let a = &w.agencies[3];
    // Expired credential (exp) and an expired licence (expiry_date).
    let mut c = creds.clone();
    c[3] = a.issue(example(a.ty), &hk, 13, ISSUED, Some(NOW - 3600));
    let trust = w.trust(NOW - 3600, NOW - 600);
    rejected_with(&w.check(&w.present(&c), &trust), "EXPIRED");
    let mut claims = example(a.ty);
    claims.insert("issue_date".into(), "2024-05-20".into());
    claims.insert("expiry_date".into(), "2025-05-19".into());
    c[3] = a.issue(claims, &hk, 13, ISSUED, None);
    rejected_with(&w.check(&w.present(&c), &trust), "LICENCE_EXPIRED");
    // Not yet valid: issued (iat) in the future.
    c[3] = a.issue(example(a.ty), &hk, 13, NOW + 3600, None);
    rejected_with(&w.check(&w.present(&c), &trust), "ISSUED_IN_FUTURE");
    // A schema violation signed by the issuer itself (a BN that fails its check digit).
    let mut claims = example(a.ty);
    claims.insert("business_number".into(), "812345670".into());
    c[3] = a.issue(claims, &hk, 13, ISSUED, None);
    let r = w.check(&w.present(&c), &trust);
    rejected_with(&r, "SCHEMA_VIOLATION");
    rejected_with(&r, "BUSINESS_MISMATCH");
}

#[test]
fn a_newer_status_list_replaces_the_held_one_even_within_the_same_second() {
    let mut w = World::new();
    let creds = w.credentials();
    let anchor = w.reg.anchor();
    let first = w.trust(NOW - 3600, NOW - 600);
    assert_eq!(w.check(&w.present(&creds), &first).verdict, Verdict::Accept);
    // The liquor licence is suspended and the list re-signed within the same second.
    w.agencies[3].list.set(13, Status::Suspended).expect("set");
    let text = w.bundle(first.size(), NOW - 3500, NOW - 600);
    let second = bundle::import(Some(&first), &anchor, &text, NOW)
        .expect("import")
        .state;
    rejected_with(&w.check(&w.present(&creds), &second), "SUSPENDED");
    // An older copy of the list never replaces the newer one.
    w.agencies[3].list.set(13, Status::Valid).expect("set");
    let text = w.bundle(second.size(), NOW - 3400, NOW - 700);
    let third = bundle::import(Some(&second), &anchor, &text, NOW)
        .expect("import")
        .state;
    rejected_with(&w.check(&w.present(&creds), &third), "SUSPENDED");
}

#[test]
fn key_binding_and_cross_credential_rules() {
    let w = World::new();
    let trust = w.trust(NOW - 3600, NOW - 600);
    let creds = w.credentials();
    let present_with = |aud: &str, nonce: &str, iat: i64, key: &SecretKey| -> Value {
        let mut vp = w.present(&creds);
        let sel = creds[3]
            .select(&[key_path(&["licence_number"])])
            .expect("s");
        vp["liquor_licence"] = json!([sel.bind(aud, nonce, iat, key).expect("b").serialize()]);
        vp
    };
    rejected_with(
        &w.check(
            &present_with(AUD, "other-nonce", NOW - 10, &w.holder),
            &trust,
        ),
        "KB_NONCE_MISMATCH",
    );
    rejected_with(
        &w.check(
            &present_with("x509_san_dns:evil.test", NONCE, NOW - 10, &w.holder),
            &trust,
        ),
        "KB_AUDIENCE_MISMATCH",
    );
    rejected_with(
        &w.check(&present_with(AUD, NONCE, NOW - 3600, &w.holder), &trust),
        "KB_IAT_STALE",
    );
    let thief = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    rejected_with(
        &w.check(&present_with(AUD, NONCE, NOW - 10, &thief), &trust),
        "KB_BAD_SIGNATURE",
    );
    // A wrong sd_hash: bind, then drop a disclosure.
    let mut vp = w.present(&creds);
    let mut sd = SdJwt::parse(vp["liquor_licence"][0].as_str().expect("s")).expect("p");
    sd.disclosures.pop();
    vp["liquor_licence"] = json!([sd.serialize()]);
    rejected_with(&w.check(&vp, &trust), "KB_SD_HASH_MISMATCH");
    // Only the licence number: the policy's required claims are missing.
    rejected_with(
        &w.check(&present_with(AUD, NONCE, NOW - 10, &w.holder), &trust),
        "REQUIRED_CLAIM_NOT_DISCLOSED",
    );
    // Another business's liquor licence, held by someone else.
    let other_holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let a = &w.agencies[3];
    let mut claims = example(a.ty);
    claims.insert("business_number".into(), "123456782".into());
    claims.insert("licensee_legal_name".into(), "Someone Else Ltd.".into());
    let mut c = creds.clone();
    c[3] = a.issue(claims, &other_holder.public_key(), 13, ISSUED, None);
    let mut vp = w.present(&c);
    let req = &w.policy.credentials[3];
    vp["liquor_licence"] = json!([present(
        &c[3],
        &req.claims,
        AUD,
        NONCE,
        NOW - 10,
        &other_holder
    )]);
    let r = w.check(&vp, &trust);
    rejected_with(&r, "BUSINESS_MISMATCH");
    rejected_with(&r, "LEGAL_NAME_MISMATCH");
    // Its key-binding JWT answers this request, so same_holder holds: the presenter controls
    // every key; the business rules are what refuse it.
    assert!(
        !codes(&r).contains(&"HOLDER_MISMATCH".to_owned()),
        "{:?}",
        r.failures
    );
    // A wallet with a fresh key per credential: every key-binding JWT answers the request.
    let keys: Vec<SecretKey> = (0..4)
        .map(|_| SecretKey::generate(Algorithm::EdDSA, &mut OsRng))
        .collect();
    let mut vp = Map::new();
    for (i, (a, req)) in w.agencies.iter().zip(&w.policy.credentials).enumerate() {
        let sd = a.issue(
            example(a.ty),
            &keys[i].public_key(),
            20 + i as u64,
            ISSUED,
            None,
        );
        let p = present(&sd, &req.claims, AUD, NONCE, NOW - 10, &keys[i]);
        vp.insert(req.id.clone(), json!([p]));
    }
    let r = w.check(&Value::Object(vp.clone()), &trust);
    assert_eq!(r.verdict, Verdict::Accept, "{:?}", r.failures);
    // One of them answering another request is refused for its key binding.
    let a = &w.agencies[3];
    let req = &w.policy.credentials[3];
    let sd = a.issue(example(a.ty), &keys[3].public_key(), 24, ISSUED, None);
    vp.insert(
        req.id.clone(),
        json!([present(
            &sd,
            &req.claims,
            AUD,
            "another-request",
            NOW - 10,
            &keys[3]
        )]),
    );
    rejected_with(&w.check(&Value::Object(vp), &trust), "KB_NONCE_MISMATCH");
    // Missing credential, and an oversized presentation.
    let mut vp = w.present(&creds);
    vp.as_object_mut().expect("o").remove("incorporation");
    rejected_with(&w.check(&vp, &trust), "CREDENTIAL_MISSING");
    let mut vp = w.present(&creds);
    vp["padding"] = json!("x".repeat(bizcred_verifier::verify::MAX_PRESENTATION_LEN));
    rejected_with(&w.check(&vp, &trust), "PRESENTATION_TOO_LARGE");
}

#[test]
fn stale_data_is_never_a_silent_accept() {
    let w = World::new();
    let vp = w.present(&w.credentials());
    // Registry data three days old: the bank's policy allows two.
    let r = w.check(&vp, &w.trust(NOW - 3 * 86_400, NOW - 600));
    assert_eq!(r.verdict, Verdict::Indeterminate, "{:?}", r.failures);
    assert_eq!(codes(&r), vec!["REGISTRY_STALE"]);
    assert_eq!(r.last_known, Some(Verdict::Accept));
    // Past the hard limit: no last known advice.
    let r = w.check(&vp, &w.trust(NOW - 8 * 86_400, NOW - 600));
    assert_eq!(r.verdict, Verdict::Indeterminate);
    assert!(codes(&r).contains(&"TRUST_BUNDLE_EXPIRED".to_owned()));
    assert_eq!(r.last_known, None);
    // Licence status lists older than 24 h.
    let r = w.check(&vp, &w.trust(NOW - 3600, NOW - 30 * 3600));
    assert_eq!(r.verdict, Verdict::Indeterminate);
    assert!(
        codes(&r).iter().all(|c| c == "STATUS_STALE"),
        "{:?}",
        r.failures
    );
    // No trust state at all.
    let p = Presentation {
        vp_token: &vp,
        nonce: NONCE,
        audience: AUD,
    };
    let r = verify(
        &p,
        &w.policy,
        &Context {
            trust: None,
            stapled_status_lists: &[],
            now: NOW,
        },
    );
    assert_eq!(r.verdict, Verdict::Indeterminate);
    assert!(codes(&r).contains(&"TRUST_BUNDLE_MISSING".to_owned()));
}

#[test]
fn receipts_are_signed_and_hold_no_personal_data() {
    let w = World::new();
    let trust = w.trust(NOW - 3600, NOW - 600);
    let vp = w.present(&w.credentials());
    let r = w.check(&vp, &trust);
    let bank = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let receipt = bizcred_verifier::receipt::sign(&r, vp.to_string().as_bytes(), AUD, &bank)
        .expect("receipt");
    bizcred_verifier::receipt::verify(&receipt, &bank.public_key()).expect("verifies");
    assert_eq!(receipt["verdict"], "ACCEPT");
    assert!(!receipt.to_string().contains("Jennifer"));
    let mut forged = receipt.clone();
    forged["verdict"] = "REJECT".into();
    assert!(bizcred_verifier::receipt::verify(&forged, &bank.public_key()).is_err());
}
