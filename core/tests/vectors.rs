//! Standard test vectors, read in place from `../shared/vectors` (or `$BIZCRED_VECTORS`):
//! RFC 9901 SD-JWT examples, sd-jwt-python test cases, SD-JWT VC examples, RFC 8037 Ed25519
//! JWS, and did:key vectors. Where the vectors are absent the tests say so loudly, and under
//! `CI=true` their absence is a failure.

use std::path::Path;

use bizcred_core::did;
use bizcred_core::jwk::Jwk;
use bizcred_core::jws::Jws;
use bizcred_core::keys::{PublicKey, SecretKey, Signer};
use bizcred_core::sd_jwt::{self, KbExpectations, SdJwt};
use bizcred_core::sd_jwt_vc;
use serde_json::Value;

mod common;
use common::{json, read, vectors};

/// Reads `name:` → `{x, y}` of a P-256 key from the vectors' `settings.yml` (flat YAML).
fn yaml_key(settings: &str, name: &str) -> PublicKey {
    let mut lines = settings
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(name));
    lines.next();
    let (mut x, mut y) = (None, None);
    for l in lines {
        let t = l.trim().trim_start_matches("- ");
        if let Some(v) = t.strip_prefix("x: ") {
            x = Some(v.trim().to_owned());
        } else if let Some(v) = t.strip_prefix("y: ") {
            y = Some(v.trim().to_owned());
        }
        if x.is_some() && y.is_some() {
            break;
        }
    }
    let jwk = Jwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x,
        y,
        kid: None,
        alg: None,
    };
    PublicKey::from_jwk(&jwk).expect("settings key")
}

fn yaml_value(settings: &str, key: &str) -> String {
    settings
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{key}: "))
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in settings"))
}

struct Suite {
    issuer: PublicKey,
    holder: PublicKey,
    nonce: String,
    audience: String,
}

fn suite(dir: &Path) -> Suite {
    let s = read(&dir.join("settings.yml"));
    let issuer_name = if s.contains("issuer_keys:") {
        "issuer_keys:"
    } else {
        "issuer_key:"
    };
    Suite {
        issuer: yaml_key(&s, issuer_name),
        holder: yaml_key(&s, "holder_key:"),
        nonce: yaml_value(&s, "key_binding_nonce"),
        audience: yaml_value(&s, "verifier"),
    }
}

/// Verifies every compact example of a folder and compares the claims with
/// `verified_contents.json`. Returns how many were checked.
fn run_examples(root: &Path, vc: bool) -> usize {
    let suite = suite(root);
    let mut checked = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    for dir in dirs
        .into_iter()
        .filter(|d| d.join("sd_jwt_presentation.txt").is_file())
    {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        // Example-mode files are folded for the RFC layout: remove all whitespace.
        let text: String = read(&dir.join("sd_jwt_presentation.txt"))
            .split_whitespace()
            .collect();
        let sd = SdJwt::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = json(&dir.join("verified_contents.json"));
        let kb_payload = dir.join("kb_jwt_payload.json");
        let now = if kb_payload.is_file() {
            json(&kb_payload)["iat"].as_i64().expect("kb iat")
        } else {
            1_700_000_000
        };
        let kb = KbExpectations {
            audience: &suite.audience,
            nonce: &suite.nonce,
            now,
            max_age: 300,
            max_future_skew: 60,
        };
        let claims = if vc {
            let opts = sd_jwt_vc::VerifyOptions {
                now,
                clock_skew: 0,
                key_binding: kb_payload.is_file().then_some(kb),
            };
            sd_jwt_vc::verify(&sd, &suite.issuer, &opts)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .claims
        } else {
            let v = sd_jwt::verify(&sd, &suite.issuer).unwrap_or_else(|e| panic!("{name}: {e}"));
            if kb_payload.is_file() {
                sd_jwt::verify_key_binding(&sd, &suite.holder, &kb)
                    .unwrap_or_else(|e| panic!("{name} KB: {e}"));
            }
            v.claims
        };
        assert_eq!(
            Value::Object(claims),
            expected,
            "{name}: verified claims differ"
        );
        // A tampered copy of the same presentation must fail for the reason we name.
        if let Some(first) = sd.disclosures.first() {
            let mut forged = sd.clone();
            let mut arr: Vec<Value> = serde_json::from_slice(
                &bizcred_core::base64url_decode(&first.encoded).expect("b64"),
            )
            .expect("json");
            let last = arr.len() - 1;
            arr[last] = Value::String("forged".into());
            let enc = bizcred_core::base64url_encode(Value::Array(arr).to_string());
            forged.disclosures[0] = sd_jwt::Disclosure::parse(&enc, 0).expect("disclosure");
            let err =
                sd_jwt::verify(&forged, &suite.issuer).expect_err("tampered disclosure must fail");
            assert_eq!(err.code(), "DISCLOSURE_NOT_REFERENCED", "{name}");
        }
        checked += 1;
    }
    checked
}

#[test]
fn rfc9901_examples_verify_to_the_published_claims() {
    let Some(v) = vectors() else { return };
    let n = run_examples(&v.join("sd-jwt-rfc9901-examples"), false);
    assert!(n >= 12, "only {n} RFC 9901 examples checked");
}

#[test]
fn rfc9901_simple_disclosure_digest_is_the_one_in_the_rfc() {
    let Some(v) = vectors() else { return };
    let text: String = read(&v.join("sd-jwt-rfc9901-examples/simple/sd_jwt_issuance.txt"))
        .split_whitespace()
        .collect();
    let sd = SdJwt::parse(&text).expect("parse");
    assert!(sd
        .disclosures
        .iter()
        .any(|d| d.digest == "jsu9yVulwQQlhFlM_3JlzMaSFzglhQG0DpfayQwLUK4"));
}

#[test]
fn sd_jwt_python_testcases_verify() {
    let Some(v) = vectors() else { return };
    let n = run_examples(&v.join("sd-jwt-python-testcases"), false);
    assert!(n >= 14, "only {n} test cases checked");
}

#[test]
fn sd_jwt_vc_examples_verify_with_key_binding() {
    let Some(v) = vectors() else { return };
    let root = v.join("sd-jwt-vc-examples");
    let n = run_examples(&root, true);
    assert_eq!(n, 3);
    // 01 carries a KB-JWT: replaying it to another verifier fails on the audience.
    let text: String = read(&root.join("01/sd_jwt_presentation.txt"))
        .split_whitespace()
        .collect();
    let sd = SdJwt::parse(&text).expect("parse");
    let s = suite(&root);
    let now = json(&root.join("01/kb_jwt_payload.json"))["iat"]
        .as_i64()
        .expect("iat");
    let kb = KbExpectations {
        audience: "https://bank.example",
        nonce: &s.nonce,
        now,
        max_age: 300,
        max_future_skew: 60,
    };
    let opts = sd_jwt_vc::VerifyOptions {
        now,
        clock_skew: 0,
        key_binding: Some(kb),
    };
    let err = sd_jwt_vc::verify(&sd, &s.issuer, &opts).expect_err("wrong audience");
    assert_eq!(err.code(), "KB_AUDIENCE_MISMATCH");
}

#[test]
fn rfc8037_ed25519_jws_and_thumbprint() {
    let Some(v) = vectors() else { return };
    let a = json(&v.join("rfc8037/ed25519-appendix-a.json"));
    let key = SecretKey::from_private_jwk(&a["A.1_private_key_jwk"]).expect("A.1");
    let public: Jwk = serde_json::from_value(a["A.2_public_key_jwk"].clone()).expect("A.2");
    let pk = PublicKey::from_jwk(&public).expect("A.2 key");
    assert_eq!(key.public_key(), pk);
    assert_eq!(
        public.thumbprint().as_deref(),
        a["A.3_jwk_thumbprint_sha256"].as_str()
    );
    let input = a["A.4_signing_input"].as_str().expect("input");
    let sig = key.sign(input.as_bytes()).expect("sign");
    assert_eq!(
        bizcred_core::base64url_encode(sig),
        a["A.4_signature_b64u"].as_str().expect("sig")
    );
    let jws = Jws::decode(a["A.4_compact_jws"].as_str().expect("jws")).expect("decode");
    jws.verify(&pk).expect("A.5 verifies");
    assert_eq!(
        jws.payload,
        a["A.4_payload"].as_str().expect("payload").as_bytes()
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn did_key_vectors_round_trip() {
    let Some(v) = vectors() else { return };
    let dir = v.join("w3c-ccg-did-method-key/test-vectors");
    let mut checked = 0;
    let ed = json(&dir.join("ed25519-x25519.json"));
    for (did_str, entry) in ed.as_object().expect("object") {
        let vkp = &entry["verificationKeyPair"];
        let pk = match vkp["publicKeyBase58"].as_str() {
            Some(b58) => {
                let bytes: [u8; 32] = bs58::decode(b58)
                    .into_vec()
                    .expect("b58")
                    .try_into()
                    .expect("32");
                PublicKey::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&bytes).expect("point"))
            }
            None => PublicKey::from_jwk(
                &serde_json::from_value(vkp["publicKeyJwk"].clone()).expect("jwk"),
            )
            .expect("key"),
        };
        // The seed is the Ed25519 secret key: it must derive the same DID.
        let seed = hex(entry["seed"].as_str().expect("seed"));
        let sk = SecretKey::from_bytes(bizcred_core::keys::Algorithm::EdDSA, &seed).expect("seed");
        assert_eq!(sk.public_key(), pk, "{did_str}");
        assert_eq!(&did::did_key(&pk), did_str);
        assert_eq!(did::resolve_key(did_str).expect("resolve"), pk);
        checked += 1;
    }
    let nist = json(&dir.join("nist-curves.json"));
    for (did_str, entry) in nist.as_object().expect("object") {
        let vm = &entry["verificationMethod"];
        if !did_str.starts_with("did:key:zDn") {
            // P-384 and P-521 are not bizcred algorithms.
            assert_eq!(
                did::resolve(did_str).err(),
                Some(did::DidError::UnsupportedKey),
                "{did_str}"
            );
            continue;
        }
        let pk = match vm["publicKeyBase58"].as_str() {
            Some(b58) => PublicKey::P256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(
                    &bs58::decode(b58).into_vec().expect("b58"),
                )
                .expect("point"),
            ),
            None => PublicKey::from_jwk(
                &serde_json::from_value(vm["publicKeyJwk"].clone()).expect("jwk"),
            )
            .expect("key"),
        };
        assert_eq!(&did::did_key(&pk), did_str);
        assert_eq!(did::resolve_key(did_str).expect("resolve"), pk);
        if vm["privateKeyJwk"].is_object() {
            let sk = SecretKey::from_private_jwk(&vm["privateKeyJwk"]).expect("private");
            assert_eq!(sk.public_key(), pk);
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} did:key vectors checked");
}
