//! SD-JWT VC issue → present → verify for the four credential types, and every refusal the
//! foundation promises, each asserting its specific error code.

use bizcred_core::jws;
use bizcred_core::keys::{Algorithm, PublicKey, SecretKey, Signer};
use bizcred_core::sd_jwt::{self, key_path, ClaimPath, KbExpectations, PathSegment, SdJwt};
use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference, VerifyOptions};
use bizcred_core::{base64url_decode, base64url_encode};
use bizcred_schemas::CredentialType;
use rand_core::OsRng;
use serde_json::{json, Map, Value};

const ISS: &str = "did:webvh:QmIssuer:localhost%3A8081";
const AUD: &str = "x509_san_dns:bank.example";
const NONCE: &str = "hb8R2p0zZ4mEo1dI";
const IAT: i64 = 1_790_000_000;
const NOW: i64 = IAT + 3_600;

struct Fixture {
    issuer: SecretKey,
    holder: SecretKey,
    issued: SdJwt,
}

fn example(ty: CredentialType) -> Map<String, Value> {
    let path = format!(
        "{}/../schemas/examples/valid/{}.json",
        env!("CARGO_MANIFEST_DIR"),
        ty.slug()
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("example")).expect("json")
}

fn issue(ty: CredentialType, alg: Algorithm) -> Fixture {
    let issuer = SecretKey::generate(alg, &mut OsRng);
    let holder = SecretKey::generate(alg, &mut OsRng);
    let claims = example(ty);
    let holder_key = holder.public_key();
    let req = Issuance {
        vct: ty.vct(),
        issuer: ISS,
        kid: Some("did:webvh:QmIssuer:localhost%3A8081#key-1"),
        iat: IAT,
        nbf: Some(IAT),
        exp: Some(IAT + 365 * 86_400),
        holder_key: Some(&holder_key),
        status: Some(StatusReference {
            idx: 4711,
            uri: "http://localhost:8081/status/1".into(),
        }),
        disclosable: sd_jwt_vc::default_disclosable(ty, &claims),
        claims,
        decoys: 3,
    };
    let issued = sd_jwt_vc::issue(req, &issuer, &mut OsRng).expect("issue");
    Fixture {
        issuer,
        holder,
        issued,
    }
}

fn kb(now: i64) -> KbExpectations<'static> {
    KbExpectations {
        audience: AUD,
        nonce: NONCE,
        now,
        max_age: 300,
        max_future_skew: 60,
    }
}

fn opts(now: i64) -> VerifyOptions<'static> {
    VerifyOptions {
        now,
        clock_skew: 60,
        key_binding: Some(kb(now)),
    }
}

impl Fixture {
    fn present(&self, paths: &[ClaimPath]) -> SdJwt {
        self.issued
            .select(paths)
            .expect("select")
            .bind(AUD, NONCE, NOW, &self.holder)
            .expect("bind")
    }
    fn verify(&self, sd: &SdJwt) -> Result<sd_jwt_vc::VerifiedCredential, sd_jwt::SdJwtError> {
        // Always through the wire form, as a verifier receives it.
        let parsed = SdJwt::parse(&sd.serialize())?;
        sd_jwt_vc::verify(&parsed, &self.issuer.public_key(), &opts(NOW))
    }
    fn code(&self, sd: &SdJwt) -> &'static str {
        self.verify(sd)
            .expect_err("must be refused")
            .code()
            .as_str()
    }
}

fn resign(
    f: &Fixture,
    sd: &SdJwt,
    edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
    key: &impl Signer,
) -> SdJwt {
    let parts: Vec<&str> = sd.jwt.split('.').collect();
    let mut header: Map<String, Value> =
        serde_json::from_slice(&base64url_decode(parts[0]).expect("h")).expect("h");
    let mut payload: Map<String, Value> =
        serde_json::from_slice(&base64url_decode(parts[1]).expect("p")).expect("p");
    edit(&mut header, &mut payload);
    header.remove("alg");
    let jwt = jws::sign(header, Value::Object(payload).to_string().as_bytes(), key).expect("sign");
    let _ = f;
    SdJwt { jwt, ..sd.clone() }
}

#[test]
fn every_type_round_trips_with_both_algorithms() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        for ty in CredentialType::ALL {
            let f = issue(ty, alg);
            // Issued form: every business claim is concealed, nothing is readable without disclosures.
            let payload = f.issued.unverified_payload().expect("payload");
            assert!(
                !payload.contains_key("legal_name") && !payload.contains_key("business_number")
            );
            assert_eq!(payload["vct"], ty.vct());
            // The holder verifies what it received: all claims come back, and they pass the schema.
            let all = sd_jwt_vc::verify(
                &f.issued,
                &f.issuer.public_key(),
                &VerifyOptions {
                    now: NOW,
                    clock_skew: 60,
                    key_binding: None,
                },
            )
            .expect("issued credential verifies");
            let business = Value::Object(all.business_claims());
            assert_eq!(business, Value::Object(example(ty)), "{ty}");
            bizcred_schemas::parse_claims(ty, &business).expect("schema");
            assert_eq!(
                all.status,
                Some(StatusReference {
                    idx: 4711,
                    uri: "http://localhost:8081/status/1".into()
                })
            );
            // A presentation of just the business number.
            let p = f.present(&[key_path(&["business_number"])]);
            let v = f.verify(&p).expect("presentation verifies");
            let expect_bn = ty != CredentialType::CertificateOfIncorporation;
            assert_eq!(v.business_claims().len(), usize::from(expect_bn), "{ty}");
            assert_eq!(v.holder_key, Some(f.holder.public_key()));
        }
    }
}

#[test]
fn directors_are_disclosed_one_by_one() {
    let f = issue(CredentialType::CertificateOfIncorporation, Algorithm::EdDSA);
    let first = vec![PathSegment::Key("directors".into()), PathSegment::Index(0)];
    let v = f.verify(&f.present(&[first])).expect("verifies");
    assert_eq!(
        v.claims["directors"],
        json!([{"given_name": "Jennifer", "family_name": "Jones"}])
    );
    let v = f
        .verify(&f.present(&[key_path(&["directors"])]))
        .expect("verifies");
    assert_eq!(v.claims["directors"].as_array().map(Vec::len), Some(2));
    let v = f
        .verify(&f.present(&[key_path(&["legal_name"])]))
        .expect("verifies");
    assert!(!v.claims.contains_key("directors"));
}

#[test]
fn tampered_disclosure() {
    let f = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    let mut p = f.present(&[key_path(&["capacity"])]);
    let d = &p.disclosures[0];
    let raw = String::from_utf8(base64url_decode(&d.encoded).expect("b64")).expect("utf8");
    let forged = raw.replace("60", "600");
    assert_ne!(raw, forged);
    p.disclosures[0] = sd_jwt::Disclosure::parse(&base64url_encode(forged), 0).expect("parse");
    let p = p.bind(AUD, NONCE, NOW, &f.holder).expect("rebind");
    assert_eq!(f.code(&p), "DISCLOSURE_NOT_REFERENCED");
}

#[test]
fn disclosure_not_in_the_payload() {
    let f = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    let other = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    let mut p = f
        .issued
        .select(&[key_path(&["licence_number"])])
        .expect("select");
    let foreign = other
        .issued
        .select(&[key_path(&["capacity"])])
        .expect("select")
        .disclosures;
    p.disclosures.extend(foreign);
    let p = p.bind(AUD, NONCE, NOW, &f.holder).expect("bind");
    assert_eq!(f.code(&p), "DISCLOSURE_NOT_REFERENCED");
}

#[test]
fn same_disclosure_twice() {
    let f = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    let mut p = f
        .issued
        .select(&[key_path(&["licence_number"])])
        .expect("select");
    p.disclosures.push(p.disclosures[0].clone());
    let p = p.bind(AUD, NONCE, NOW, &f.holder).expect("bind");
    assert_eq!(f.code(&p), "DUPLICATE_DISCLOSURE");
}

#[test]
fn unknown_sd_alg() {
    let f = issue(CredentialType::BusinessNumber, Algorithm::EdDSA);
    let p = f
        .issued
        .select(&[key_path(&["legal_name"])])
        .expect("select");
    let p = resign(
        &f,
        &p,
        |_, pl| {
            pl.insert("_sd_alg".into(), "sha-3000".into());
        },
        &f.issuer,
    );
    let p = p.bind(AUD, NONCE, NOW, &f.holder).expect("bind");
    assert_eq!(f.code(&p), "UNSUPPORTED_SD_ALG");
}

#[test]
fn alg_none_and_hmac() {
    let f = issue(CredentialType::BusinessNumber, Algorithm::EdDSA);
    let p = f.present(&[key_path(&["legal_name"])]);
    let parts: Vec<&str> = p.jwt.split('.').collect();
    for (alg, code) in [
        ("none", "ALG_NONE"),
        ("HS256", "ALG_SYMMETRIC"),
        ("RS256", "ALG_UNSUPPORTED"),
    ] {
        let header = base64url_encode(json!({"alg": alg, "typ": "dc+sd-jwt"}).to_string());
        let forged = SdJwt {
            jwt: format!("{header}.{}.", parts[1]),
            ..p.clone()
        };
        assert_eq!(f.code(&forged), code, "{alg}");
    }
}

#[test]
fn signature_by_another_key() {
    let f = issue(CredentialType::MunicipalBusinessLicence, Algorithm::EdDSA);
    let impostor = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let p = f
        .issued
        .select(&[key_path(&["licence_number"])])
        .expect("select");
    let p = resign(&f, &p, |_, _| {}, &impostor)
        .bind(AUD, NONCE, NOW, &f.holder)
        .expect("bind");
    assert_eq!(f.code(&p), "BAD_SIGNATURE");
    // And a verifier holding an ES256 key for an EdDSA issuer refuses before verifying.
    let p256 = SecretKey::generate(Algorithm::ES256, &mut OsRng).public_key();
    let err = sd_jwt_vc::verify(&f.present(&[]), &p256, &opts(NOW)).expect_err("mismatch");
    assert_eq!(err.code(), "ALG_KEY_MISMATCH");
}

#[test]
fn key_binding_failures() {
    let f = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    let sel = f
        .issued
        .select(&[key_path(&["licence_number"])])
        .expect("select");
    let case = |p: SdJwt| f.code(&p);
    assert_eq!(
        case(
            sel.clone()
                .bind(AUD, "another-nonce", NOW, &f.holder)
                .expect("b")
        ),
        "KB_NONCE_MISMATCH"
    );
    assert_eq!(
        case(
            sel.clone()
                .bind("https://other.example", NONCE, NOW, &f.holder)
                .expect("b")
        ),
        "KB_AUDIENCE_MISMATCH"
    );
    assert_eq!(
        case(
            sel.clone()
                .bind(AUD, NONCE, NOW - 301, &f.holder)
                .expect("b")
        ),
        "KB_IAT_STALE"
    );
    assert_eq!(
        case(
            sel.clone()
                .bind(AUD, NONCE, NOW + 61, &f.holder)
                .expect("b")
        ),
        "KB_IAT_IN_FUTURE"
    );
    let thief = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    assert_eq!(
        case(sel.clone().bind(AUD, NONCE, NOW, &thief).expect("b")),
        "KB_BAD_SIGNATURE"
    );
    assert_eq!(case(sel.clone()), "KB_MISSING");
    // sd_hash: bind, then drop a disclosure the KB-JWT covered.
    let two = f
        .issued
        .select(&[key_path(&["licence_number"]), key_path(&["capacity"])])
        .expect("select");
    let mut p = two.bind(AUD, NONCE, NOW, &f.holder).expect("b");
    p.disclosures.pop();
    assert_eq!(case(p), "KB_SD_HASH_MISMATCH");
    // A KB-JWT with another typ.
    let mut p = sel.clone();
    let payload = json!({"iat": NOW, "aud": AUD, "nonce": NONCE, "sd_hash": "x"});
    let mut h = Map::new();
    h.insert("typ".into(), "JWT".into());
    p.kb_jwt = Some(jws::sign(h, payload.to_string().as_bytes(), &f.holder).expect("sign"));
    assert_eq!(case(p), "KB_WRONG_TYP");
}

#[test]
fn validity_window_and_typ() {
    let f = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    let p = f.present(&[key_path(&["licence_number"])]);
    let parsed = SdJwt::parse(&p.serialize()).expect("parse");
    let key = f.issuer.public_key();
    let late = IAT + 365 * 86_400 + 61;
    let o = VerifyOptions {
        now: late,
        clock_skew: 60,
        key_binding: None,
    };
    assert_eq!(
        sd_jwt_vc::verify(&parsed, &key, &o)
            .expect_err("EXPIRED")
            .code(),
        "EXPIRED"
    );
    let o = VerifyOptions {
        now: IAT - 61,
        clock_skew: 60,
        key_binding: None,
    };
    assert_eq!(
        sd_jwt_vc::verify(&parsed, &key, &o)
            .expect_err("early")
            .code(),
        "NOT_YET_VALID"
    );
    let sel = f.issued.select(&[]).expect("select");
    let p = resign(
        &f,
        &sel,
        |h, _| {
            h.insert("typ".into(), "vc+sd-jwt+foo".into());
        },
        &f.issuer,
    );
    assert_eq!(
        f.code(&p.bind(AUD, NONCE, NOW, &f.holder).expect("b")),
        "WRONG_TYP"
    );
}

#[test]
fn smuggled_and_colliding_claims() {
    let f = issue(CredentialType::LiquorSalesLicence, Algorithm::EdDSA);
    // A disclosure that would overwrite a claim in the clear.
    let sel = f.issued.select(&[]).expect("select");
    let smuggled = sd_jwt::Disclosure::parse(
        &base64url_encode(json!(["c2FsdA", "vct", "urn:other"]).to_string()),
        0,
    )
    .expect("d");
    let p = resign(
        &f,
        &sel,
        |_, pl| {
            pl.get_mut("_sd")
                .and_then(Value::as_array_mut)
                .expect("_sd")
                .push(Value::String(smuggled.digest.clone()));
        },
        &f.issuer,
    );
    let p = SdJwt {
        disclosures: vec![smuggled.clone()],
        ..p
    }
    .bind(AUD, NONCE, NOW, &f.holder)
    .expect("b");
    assert_eq!(f.code(&p), "CLAIM_NAME_COLLISION");
    // A registered claim provided only through a disclosure.
    let p = resign(
        &f,
        &sel,
        |_, pl| {
            pl.remove("vct");
            pl.get_mut("_sd")
                .and_then(Value::as_array_mut)
                .expect("_sd")
                .push(Value::String(smuggled.digest.clone()));
        },
        &f.issuer,
    );
    let p = SdJwt {
        disclosures: vec![smuggled.clone()],
        ..p
    }
    .bind(AUD, NONCE, NOW, &f.holder)
    .expect("b");
    assert_eq!(f.code(&p), "REGISTERED_CLAIM_DISCLOSABLE");
    // The same digest twice in the signed payload.
    let p = resign(
        &f,
        &sel,
        |_, pl| {
            let sd = pl
                .get_mut("_sd")
                .and_then(Value::as_array_mut)
                .expect("_sd");
            let first = sd[0].clone();
            sd.push(first);
        },
        &f.issuer,
    );
    assert_eq!(
        f.code(&p.bind(AUD, NONCE, NOW, &f.holder).expect("b")),
        "DUPLICATE_DIGEST"
    );
    // An array-element disclosure used for an object member.
    let elem = sd_jwt::Disclosure::parse(&base64url_encode(json!(["c2FsdA", "x"]).to_string()), 0)
        .expect("d");
    let p = resign(
        &f,
        &sel,
        |_, pl| {
            pl.get_mut("_sd")
                .and_then(Value::as_array_mut)
                .expect("_sd")
                .push(Value::String(elem.digest.clone()));
        },
        &f.issuer,
    );
    let p = SdJwt {
        disclosures: vec![elem],
        ..p
    }
    .bind(AUD, NONCE, NOW, &f.holder)
    .expect("b");
    assert_eq!(f.code(&p), "DISCLOSURE_WRONG_SHAPE");
}

#[test]
fn issuers_cannot_conceal_registered_claims_or_miss_paths() {
    let issuer = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let ty = CredentialType::BusinessNumber;
    let base = |disclosable: Vec<ClaimPath>| Issuance {
        vct: ty.vct(),
        issuer: ISS,
        kid: None,
        iat: IAT,
        nbf: None,
        exp: None,
        holder_key: None,
        status: None,
        claims: example(ty),
        disclosable,
        decoys: 0,
    };
    let err = sd_jwt_vc::issue(base(vec![key_path(&["status"])]), &issuer, &mut OsRng)
        .expect_err("status");
    assert_eq!(err.code(), "REGISTERED_CLAIM_DISCLOSABLE");
    let err = sd_jwt_vc::issue(base(vec![key_path(&["legal_nam"])]), &issuer, &mut OsRng)
        .expect_err("typo");
    assert_eq!(err.code(), "SD_PATH_NOT_FOUND");
}

#[test]
fn malformed_and_oversized_input() {
    for (input, code) in [
        ("no-tilde", "SD_JWT_MALFORMED"),
        ("~", "SD_JWT_MALFORMED"),
        ("a.b.c~~", "SD_JWT_MALFORMED"),
        ("a.b.c~!!~", "DISCLOSURE_MALFORMED"),
        ("a.b.c~WzFd~", "DISCLOSURE_MALFORMED"),
    ] {
        assert_eq!(
            SdJwt::parse(input).expect_err(input).code(),
            code,
            "{input}"
        );
    }
    let huge = format!("a.b.c~{}~", "A".repeat(sd_jwt::MAX_SD_JWT_LEN));
    assert_eq!(
        SdJwt::parse(&huge).expect_err("huge").code(),
        "SD_JWT_TOO_LARGE"
    );
    let many = format!(
        "a.b.c~{}",
        "WyJzIiwxXQ~".repeat(sd_jwt::MAX_DISCLOSURES + 1)
    );
    assert_eq!(
        SdJwt::parse(&many).expect_err("many").code(),
        "SD_JWT_TOO_LARGE"
    );
    let f = issue(CredentialType::BusinessNumber, Algorithm::EdDSA);
    let garbage = SdJwt {
        jwt: "e30.e30.AAAA".into(),
        disclosures: vec![],
        kb_jwt: None,
    };
    assert_eq!(
        sd_jwt_vc::verify(&garbage, &f.issuer.public_key(), &opts(NOW))
            .expect_err("g")
            .code(),
        "MALFORMED_JWS"
    );
    let _: PublicKey = f.issuer.public_key();
}
