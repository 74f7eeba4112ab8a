//! Router tests: every issuer endpoint and its refusals, without a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::{oid4vci, sd_jwt, sd_jwt_vc, webvh};
use bizcred_issuer::{service, Config, Issuer};
use rand_core::OsRng;
use serde_json::{json, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

const TOKEN: &str = "staff-token";
const URL: &str = "http://localhost:18084";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Fx {
    _dir: tempfile::TempDir,
    issuer: Arc<Issuer>,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().expect("tmp");
    let hash = bizcred_issuer::store::sha256_hex(TOKEN.as_bytes());
    let cfg = format!(
        "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18084\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\", \"business-number\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{hash}\"]\n",
        dir.path().join("data").to_string_lossy()
    );
    let config = Config::parse(&cfg).expect("config");
    let (issuer, _) =
        Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    let issuer = Arc::new(issuer);
    Fx { _dir: dir, issuer }
}

async fn call(f: &Fx, req: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let resp = service::app(f.issuer.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 8 * 1024 * 1024)
        .await
        .expect("body");
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let v = if is_json {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    (status, v, headers)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("req")
}

fn admin(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req")
}

fn form(uri: &str, pairs: &[(&str, &str)]) -> Request<Body> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("req")
}

/// A pre-authorized code token request.
fn token_req(code: &str, tx: &str) -> Request<Body> {
    form(
        "/token",
        &[
            ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
            ("pre-authorized_code", code),
            ("tx_code", tx),
        ],
    )
}

fn incorporation() -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    ))
    .expect("json");
    v.as_object_mut().expect("o").remove("business_number");
    v
}

/// Applies, approves, and returns (pre-authorized code, tx code, offer id).
async fn offer(f: &Fx) -> (String, String, String) {
    let (s, app, _) = call(
        f,
        admin(
            "/admin/applications",
            json!({"credential_type": "certificate-of-incorporation", "claims": incorporation()}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "awaiting_approval");
    assert!(
        app["presentation_request"].is_null(),
        "no prerequisites for incorporation"
    );
    let id = app["application_id"].as_str().expect("id");
    let (s, o, _) = call(
        f,
        admin(&format!("/admin/applications/{id}/approve"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let uri = o["credential_offer_uri"].as_str().expect("uri");
    let oid4vci::OfferRef::ByReference(url) = oid4vci::parse_offer_uri(uri).expect("parse") else {
        panic!("by reference")
    };
    let offer_id = url.rsplit('/').next().expect("id").to_owned();
    let oid4vci::OfferRef::ByValue(by_value) =
        oid4vci::parse_offer_uri(o["credential_offer_by_value"].as_str().expect("v"))
            .expect("parse")
    else {
        panic!("by value")
    };
    let code = by_value["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
        .as_str()
        .expect("code")
        .to_owned();
    (
        code,
        o["tx_code"].as_str().expect("tx").to_owned(),
        offer_id,
    )
}

async fn access_token(f: &Fx) -> String {
    let (code, tx, _) = offer(f).await;
    let (s, t, h) = call(f, token_req(&code, &tx)).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        h.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    t["access_token"].as_str().expect("token").to_owned()
}

async fn c_nonce(f: &Fx) -> String {
    let (s, n, _) = call(f, Request::post("/nonce").body(Body::empty()).expect("r")).await;
    assert_eq!(s, StatusCode::OK);
    n["c_nonce"].as_str().expect("nonce").to_owned()
}

fn credential_req(token: &str, body: &Value) -> Request<Body> {
    Request::post("/credential")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req")
}

#[tokio::test]
async fn metadata_did_log_and_status_list() {
    let f = fixture();
    let (s, m, _) = call(&f, get("/.well-known/openid-credential-issuer")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(m["credential_issuer"], URL);
    let c = &m["credential_configurations_supported"]["certificate-of-incorporation"];
    assert_eq!(c["format"], "dc+sd-jwt");
    assert_eq!(
        c["vct"],
        "urn:bizcred:ca-on:obr:certificate-of-incorporation:1"
    );
    assert_eq!(c["credential_metadata"]["display"][1]["locale"], "fr-CA");
    assert_eq!(
        c["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );
    let (_, asm, _) = call(&f, get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(asm["token_endpoint"], format!("{URL}/token"));
    let (s, log, _) = call(&f, get("/.well-known/did.jsonl")).await;
    assert_eq!(s, StatusCode::OK);
    let verified = webvh::verify_log(log.as_str().expect("text"), None, now());
    assert_eq!(verified.error, None);
    assert_eq!(verified.versions[0].id(), f.issuer.did);
    let (s, token, h) = call(&f, get("/status/1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/statuslist+jwt")
    );
    let (kid, _, sub) = bizcred_core::status_list::peek(token.as_str().expect("t")).expect("peek");
    assert_eq!(sub, format!("{URL}/status/1"));
    let key = verified.versions[0].verification_method(&kid).expect("key");
    bizcred_core::status_list::verify_token(token.as_str().expect("t"), &sub, &key, now())
        .expect("signed by the issuer");
}

#[tokio::test]
async fn issuance_end_to_end_and_status_changes() {
    let f = fixture();
    let (code, tx, offer_id) = offer(&f).await;
    let (s, o, _) = call(&f, get(&format!("/credential-offer/{offer_id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        o["credential_configuration_ids"],
        json!(["certificate-of-incorporation"])
    );
    let (s, t, _) = call(&f, token_req(&code, &tx)).await;
    assert_eq!(s, StatusCode::OK);
    let token = t["access_token"].as_str().expect("t");
    // The code is single use, and the offer is gone.
    let (s, e, _) = call(&f, token_req(&code, &tx)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        call(&f, get(&format!("/credential-offer/{offer_id}")))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The credential, bound to the proof key.
    let holder = SecretKey::generate(Algorithm::ES256, &mut OsRng);
    let nonce = c_nonce(&f).await;
    let proof = oid4vci::proof_jwt(&holder, URL, Some(&nonce), now()).expect("proof");
    let (s, r, _) = call(&f, credential_req(token, &json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let text = r["credentials"][0]["credential"]
        .as_str()
        .expect("credential");
    let sd = sd_jwt::SdJwt::parse(text).expect("parse");
    let (_, log, _) = call(&f, get("/.well-known/did.jsonl")).await;
    let key = webvh::verify_log(log.as_str().expect("t"), None, now()).versions[0]
        .verification_method(&f.issuer.kid())
        .expect("key");
    let vc = sd_jwt_vc::verify(
        &sd,
        &key,
        &sd_jwt_vc::VerifyOptions {
            now: now(),
            clock_skew: 60,
            key_binding: None,
        },
    )
    .expect("verifies");
    assert_eq!(vc.issuer, f.issuer.did);
    assert_eq!(vc.holder_key, Some(holder.public_key()));
    assert_eq!(vc.claims["legal_name"], "Jennifer Ventures Inc.");
    assert_eq!(vc.claims["directors"].as_array().map(Vec::len), Some(2));
    // A lost response: the wallet repeats the request with the same token and a fresh proof
    // (here of a new key) and gets the credential again, for the same record and status index.
    // Before: 401 invalid_token, and the holder needed a whole new application.
    let again = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let retry = |key: &SecretKey, nonce: &str| {
        let proof = oid4vci::proof_jwt(key, URL, Some(nonce), now()).expect("proof");
        credential_req(
            token,
            &json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}}),
        )
    };
    let (s, r2, _) = call(&f, retry(&again, &c_nonce(&f).await)).await;
    assert_eq!(s, StatusCode::OK, "{r2}");
    assert_eq!(r2["notification_id"], r["notification_id"]);
    let sd2 = sd_jwt::SdJwt::parse(r2["credentials"][0]["credential"].as_str().expect("c"))
        .expect("parse");
    let vc2 = sd_jwt_vc::verify(
        &sd2,
        &key,
        &sd_jwt_vc::VerifyOptions {
            now: now(),
            clock_skew: 60,
            key_binding: None,
        },
    )
    .expect("verifies");
    assert_eq!(vc2.holder_key, Some(again.public_key()));
    assert_eq!(
        vc2.status.as_ref().map(|s| s.idx),
        vc.status.as_ref().map(|s| s.idx)
    );
    let business = |c: &serde_json::Map<String, Value>| {
        let mut c = c.clone();
        c.remove("cnf");
        c
    };
    assert_eq!(business(&vc2.claims), business(&vc.claims));
    // The nonce is still single use, and re-issues are bounded.
    let nonce = c_nonce(&f).await;
    assert_eq!(call(&f, retry(&holder, &nonce)).await.0, StatusCode::OK);
    let (_, e, _) = call(&f, retry(&holder, &nonce)).await;
    assert_eq!(e["error"], "invalid_nonce");
    // Two re-issues so far; the rest up to the bound, then a refusal.
    for _ in 2..bizcred_issuer::issuer::MAX_REISSUES {
        assert_eq!(
            call(&f, retry(&holder, &c_nonce(&f).await)).await.0,
            StatusCode::OK
        );
    }
    let (s, e, h) = call(&f, retry(&holder, &c_nonce(&f).await)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    assert!(h.get(header::WWW_AUTHENTICATE).is_some());
    // Status changes, durable and in the list.
    let (_, list, _) = call(
        &f,
        Request::get("/admin/credentials")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "one record: {list}");
    let id = list[0]["id"].as_str().expect("id");
    let idx = list[0]["status_idx"].as_u64().expect("idx");
    assert_eq!(vc.status.as_ref().map(|s| s.idx), Some(idx));
    // Revoking or suspending needs a reason.
    for action in ["suspend", "revoke"] {
        for body in [json!({}), json!({"reason": "  "})] {
            let (s, e, _) = call(
                &f,
                admin(&format!("/admin/credentials/{id}/{action}"), body),
            )
            .await;
            assert_eq!(
                (s, e["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("REASON_REQUIRED")),
                "{e}"
            );
        }
    }
    for (action, want) in [("suspend", 2u8), ("reinstate", 0), ("revoke", 1)] {
        let (s, rec, _) = call(
            &f,
            admin(
                &format!("/admin/credentials/{id}/{action}"),
                json!({"reason": format!("{action} for the test")}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{rec}");
        let last = &rec["history"][rec["history"].as_array().map_or(0, Vec::len) - 1];
        assert_eq!(last["actor"], json!({"kind": "automation"}), "{rec}");
        let (_, token, _) = call(&f, get("/status/1")).await;
        let v = bizcred_core::status_list::verify_token(
            token.as_str().expect("t"),
            &format!("{URL}/status/1"),
            &key,
            now(),
        )
        .expect("list");
        assert_eq!(v.list.get(idx).map(|s| s.value()), Ok(want), "{action}");
    }
    let (s, e, _) = call(
        &f,
        admin(&format!("/admin/credentials/{id}/reinstate"), json!({})),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (_, audit, _) = call(
        &f,
        Request::get("/admin/audit")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_eq!(audit["valid"], true);
    assert!(audit["entries"].as_u64().expect("n") >= 7);
}

/// The prerequisites were presented with one key; the wallet asks for the new credential with a
/// fresh key (one key per credential, for unlinkability). The access token was granted for the
/// application, which is the link: the credential is issued, bound to the fresh key.
#[tokio::test]
async fn a_fresh_key_receives_the_credential_of_an_application_proven_with_another() {
    let f = fixture();
    let (code, tx, _) = offer(&f).await;
    let presented_with = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let id = f
        .issuer
        .store
        .applications()
        .expect("applications")
        .into_iter()
        .next()
        .expect("one")
        .id;
    let before = f.issuer.store.application(&id).expect("app");
    let mut after = before.clone();
    after.holder_thumbprint = Some(presented_with.public_key().thumbprint());
    f.issuer
        .store
        .swap_application(&before, &after, None, now(), "test", Value::Null)
        .expect("swap");
    let (s, t, _) = call(&f, token_req(&code, &tx)).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let token = t["access_token"].as_str().expect("t");
    let fresh = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let proof = oid4vci::proof_jwt(&fresh, URL, Some(&c_nonce(&f).await), now()).expect("proof");
    let (s, r, _) = call(&f, credential_req(token, &json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let sd = sd_jwt::SdJwt::parse(r["credentials"][0]["credential"].as_str().expect("c"))
        .expect("parse");
    let payload = sd.unverified_payload().expect("payload");
    assert_eq!(
        sd_jwt_vc::holder_key(&payload).expect("cnf"),
        Some(fresh.public_key())
    );
}

#[tokio::test]
async fn token_endpoint_refusals() {
    let f = fixture();
    let (code, tx, _) = offer(&f).await;
    let g = oid4vci::PRE_AUTHORIZED_GRANT;
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("grant_type", "authorization_code"), ("code", "x")],
            "unsupported_grant_type",
        ),
        (vec![("pre-authorized_code", &code)], "invalid_request"),
        (vec![("grant_type", g)], "invalid_request"),
        (
            vec![
                ("grant_type", g),
                ("pre-authorized_code", "nope"),
                ("tx_code", &tx),
            ],
            "invalid_grant",
        ),
        (
            vec![("grant_type", g), ("pre-authorized_code", &code)],
            "invalid_request",
        ),
    ];
    // Refusals of the issuance core carry their reason code.
    let (_, e, _) = call(&f, form("/token", &[("grant_type", "authorization_code")])).await;
    assert_eq!(e["code"], "UNSUPPORTED_GRANT_TYPE");
    for (pairs, want) in cases {
        let (s, e, _) = call(&f, form("/token", &pairs)).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(want)),
            "{pairs:?}"
        );
    }
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(call(&f, req).await.1["error"], "invalid_request");
    // Wrong transaction codes are limited: after five, even the right one fails.
    for _ in 0..5 {
        let (_, e, _) = call(&f, token_req(&code, "000000x")).await;
        assert_eq!(e["error"], "invalid_grant");
    }
    let (_, e, _) = call(&f, token_req(&code, &tx)).await;
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn credential_endpoint_refusals() {
    let f = fixture();
    let token = access_token(&f).await;
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let req = |body: Value| credential_req(&token, &body);
    let conf = "certificate-of-incorporation";
    let expect = |s: StatusCode, e: &Value, want: &str| {
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(want)),
            "{e}"
        )
    };
    // No token; wrong content type; malformed JSON.
    let r = Request::post("/credential")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(call(&f, r).await.0, StatusCode::UNAUTHORIZED);
    let r = Request::post("/credential")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .expect("r");
    let (s, e, _) = call(&f, r).await;
    expect(s, &e, "invalid_credential_request");
    let r = Request::post("/credential")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{nope"))
        .expect("r");
    let (s, e, _) = call(&f, r).await;
    expect(s, &e, "invalid_credential_request");
    // Unknown configuration; a configuration the token was not granted for.
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": "fishing-licence", "proofs": {"jwt": ["x"]}})),
    )
    .await;
    expect(s, &e, "unknown_credential_configuration");
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": "business-number", "proofs": {"jwt": ["x"]}})),
    )
    .await;
    expect(s, &e, "invalid_credential_request");
    // Proofs: missing, wrong audience, wrong typ, alg none, another key than the header's, no nonce, a reused nonce.
    let (s, e, _) = call(&f, req(json!({"credential_configuration_id": conf}))).await;
    expect(s, &e, "invalid_proof");
    let n = c_nonce(&f).await;
    let wrong_aud =
        oid4vci::proof_jwt(&holder, "http://elsewhere.test", Some(&n), now()).expect("p");
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [wrong_aud]}})),
    )
    .await;
    expect(s, &e, "invalid_proof");
    let mut h = serde_json::Map::new();
    h.insert("typ".into(), "JWT".into());
    h.insert(
        "jwk".into(),
        serde_json::to_value(holder.public_key().to_jwk()).expect("jwk"),
    );
    let wrong_typ = bizcred_core::jws::sign(
        h,
        json!({"aud": URL, "iat": now(), "nonce": n})
            .to_string()
            .as_bytes(),
        &holder,
    )
    .expect("s");
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [wrong_typ]}})),
    )
    .await;
    expect(s, &e, "invalid_proof");
    let none = format!(
        "{}.{}.",
        bizcred_core::base64url_encode(
            json!({"alg": "none", "typ": oid4vci::PROOF_TYP, "jwk": holder.public_key().to_jwk()})
                .to_string()
        ),
        bizcred_core::base64url_encode(json!({"aud": URL, "iat": now(), "nonce": n}).to_string())
    );
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [none]}})),
    )
    .await;
    expect(s, &e, "invalid_proof");
    let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let good = oid4vci::proof_jwt(&holder, URL, Some(&n), now()).expect("p");
    let forged = {
        let parts: Vec<&str> = good.split('.').collect();
        let sig = other
            .sign(format!("{}.{}", parts[0], parts[1]).as_bytes())
            .expect("s");
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            bizcred_core::base64url_encode(sig)
        )
    };
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [forged]}})),
    )
    .await;
    expect(s, &e, "invalid_proof");
    let no_nonce = oid4vci::proof_jwt(&holder, URL, None, now()).expect("p");
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [no_nonce]}})),
    )
    .await;
    expect(s, &e, "invalid_proof");
    let stale = oid4vci::proof_jwt(&holder, URL, Some("never-issued"), now()).expect("p");
    let (s, e, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [stale]}})),
    )
    .await;
    expect(s, &e, "invalid_nonce");
    let (s, e, _) = call(&f, req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [good.clone(), good.clone()]}}))).await;
    expect(s, &e, "invalid_credential_request");
    // The good proof works once; its nonce cannot be replayed (the token is spent anyway).
    let (s, r, _) = call(
        &f,
        req(json!({"credential_configuration_id": conf, "proofs": {"jwt": [good]}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Oversized bodies are refused before parsing.
    let big = json!({"credential_configuration_id": conf, "pad": "x".repeat(300 * 1024)});
    assert_eq!(call(&f, req(big)).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn admin_refusals() {
    let f = fixture();
    let no_token = Request::post("/admin/applications")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(call(&f, no_token).await.0, StatusCode::UNAUTHORIZED);
    let wrong = Request::post("/admin/applications")
        .header(header::AUTHORIZATION, "Bearer guess")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(call(&f, wrong).await.0, StatusCode::FORBIDDEN);
    let text = Request::post("/admin/applications")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(call(&f, text).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, e, _) = call(
        &f,
        admin(
            "/admin/applications",
            json!({"credential_type": "liquor-sales-licence"}),
        ),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("unknown_credential_configuration")
        )
    );
    // Claims that break the schema are refused with every violation listed; nothing is offered.
    let mut bad = incorporation();
    bad["corporation_number"] = "12".into();
    bad["registered_office_address"]["postal_code"] = "D6J 2Y7".into();
    let (_, app, _) = call(
        &f,
        admin(
            "/admin/applications",
            json!({"credential_type": "certificate-of-incorporation", "claims": bad}),
        ),
    )
    .await;
    let id = app["application_id"].as_str().expect("id");
    let (s, e, _) = call(
        &f,
        admin(&format!("/admin/applications/{id}/approve"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let msg = e["error_description"].as_str().expect("d");
    assert!(
        msg.contains("/corporation_number")
            && msg.contains("/registered_office_address/postal_code"),
        "{msg}"
    );
    // Automation sends an application back for changes and refuses it, with a reason.
    for (decision, body) in [
        ("request-changes", json!({})),
        ("refuse", json!({"reason": ""})),
    ] {
        let (s, e, _) = call(
            &f,
            admin(&format!("/admin/applications/{id}/{decision}"), body),
        )
        .await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("REASON_REQUIRED")),
            "{decision}: {e}"
        );
    }
    let (s, app, _) = call(
        &f,
        admin(
            &format!("/admin/applications/{id}/request-changes"),
            json!({"reason": "the corporation number has 7 to 10 digits"}),
        ),
    )
    .await;
    assert_eq!(
        (s, app["status"].as_str()),
        (StatusCode::OK, Some("changes_requested"))
    );
    let (s, app, _) = call(
        &f,
        admin(
            &format!("/admin/applications/{id}/refuse"),
            json!({"reason": "not corrected"}),
        ),
    )
    .await;
    assert_eq!(
        (s, app["status"].as_str()),
        (StatusCode::OK, Some("refused"))
    );
    assert_eq!(app["history"][1]["actor"]["kind"], "automation", "{app}");
    let (s, e, _) = call(
        &f,
        admin(
            &format!("/admin/applications/{id}/refuse"),
            json!({"reason": "again"}),
        ),
    )
    .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("APPLICATION_NOT_AWAITING_APPROVAL")
        )
    );
    let (s, _, _) = call(
        &f,
        admin(&format!("/admin/applications/{id}/decide"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A type with prerequisites starts with an OpenID4VP request for them.
    let (_, app, _) = call(
        &f,
        admin(
            "/admin/applications",
            json!({"credential_type": "business-number"}),
        ),
    )
    .await;
    let uri = app["presentation_request"].as_str().expect("request");
    let bizcred_core::oid4vp::AuthorizationRequest::ByReference {
        client_id,
        request_uri,
    } = bizcred_core::oid4vp::parse_request_uri(uri).expect("parse")
    else {
        panic!("by reference")
    };
    assert_eq!(
        client_id,
        format!("decentralized_identifier:{}", f.issuer.did)
    );
    let path = request_uri.strip_prefix(URL).expect("path");
    let (s, jwt, _) = call(&f, get(path)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, log, _) = call(&f, get("/.well-known/did.jsonl")).await;
    let verified = webvh::verify_log(log.as_str().expect("t"), None, now());
    let req = bizcred_core::oid4vp::verify_request_object(
        jwt.as_str().expect("jwt"),
        &client_id,
        |kid| {
            verified.versions[0]
                .verification_method(kid)
                .ok_or_else(|| "no key".to_owned())
        },
    )
    .expect("signed request");
    assert_eq!(
        req["dcql_query"]["credentials"][0]["meta"]["vct_values"][0],
        "urn:bizcred:ca-on:obr:certificate-of-incorporation:1"
    );
    // Approving before the prerequisites are proven is refused.
    let app_id = app["application_id"].as_str().expect("id");
    let (s, _, _) = call(
        &f,
        admin(&format!("/admin/applications/{app_id}/approve"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // A forged or malformed presentation response does not advance the application.
    let r = form(
        "/oid4vp/response",
        &[
            ("vp_token", "{\"incorporation\": [\"a.b.c~\"]}"),
            ("state", app_id),
        ],
    );
    let (s, verdict, _) = call(&f, r).await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(verdict["verdict"], "ACCEPT");
    let r = form("/oid4vp/response", &[("vp_token", "{}"), ("state", "nope")]);
    assert_eq!(call(&f, r).await.1["error"], "invalid_request");
}

fn applicant(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req")
}

/// The claims of `incorporation()` the founder states (the agency sets the rest).
fn founder_incorporation_claims() -> Value {
    let all = incorporation();
    let mut out = serde_json::Map::new();
    for k in [
        "legal_name",
        "entity_type",
        "registered_office_address",
        "directors",
    ] {
        out.insert(k.to_owned(), all[k].clone());
    }
    Value::Object(out)
}

/// Opens an incorporation application through the applicant API; answers (id, capability).
async fn applicant_opens(f: &Fx) -> (String, String) {
    let (s, o, h) = call(
        f,
        applicant(
            "/applicant/applications",
            json!({"credential_configuration_id": "certificate-of-incorporation", "claims": founder_incorporation_claims()}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(
        h.get(header::REFERRER_POLICY).and_then(|v| v.to_str().ok()),
        Some("no-referrer")
    );
    assert_eq!(o["state"], "awaiting_approval");
    assert!(o["request_uri"].is_null(), "no prerequisites");
    let cap = o["capability"].as_str().expect("capability").to_owned();
    let id = o["application_id"].as_str().expect("id").to_owned();
    assert!(cap.starts_with(&format!("{id}.")) && cap.len() > id.len() + 40);
    assert_eq!(o["follow_uri"], format!("{URL}/applicant/{cap}"));
    (id, cap)
}

/// The founder opens an application without staff, follows it, states a claim, and withdraws
/// it; a link with another application's secret is refused; a clerk cannot then approve it.
#[tokio::test]
async fn an_applicant_opens_follows_and_withdraws_an_application() {
    let f = fixture();
    let (s, types, _) = call(&f, get("/applicant/types")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(types["credential_issuer"], URL);
    let bn = types["types"]
        .as_array()
        .expect("types")
        .iter()
        .find(|t| t["credential_configuration_id"] == "business-number")
        .expect("bn");
    assert_eq!(
        bn["prerequisites"],
        json!([bizcred_schemas::CredentialType::CertificateOfIncorporation.vct()])
    );
    assert_eq!(bn["applicant_claims"], json!(["operating_name"]));

    let (id, cap) = applicant_opens(&f).await;
    let (other_id, other_cap) = applicant_opens(&f).await;
    let (s, v, _) = call(&f, get(&format!("/applicant/{cap}"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["application_id"], id.as_str());
    assert_eq!(v["state"], "awaiting_approval");
    assert_eq!(v["claims"]["legal_name"], incorporation()["legal_name"]);

    // Another application's secret on this id, a made-up id, a malformed link: one refusal.
    let secret = other_cap.split_once('.').expect("dot").1;
    for bad in [
        format!("{id}.{secret}"),
        format!("{other_id}.{}", cap.split_once('.').expect("dot").1),
        format!("{}.{secret}", "ab".repeat(12)),
        "no-dot".to_owned(),
        format!("{id}.{}", "A".repeat(300)),
    ] {
        let (s, e, _) = call(&f, get(&format!("/applicant/{bad}"))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{bad}: {e}");
        assert_eq!(e["code"], "CAPABILITY_INVALID");
    }

    // While staff review it, the claims are what they see: the founder changes them only when
    // asked to.
    let (s, e, _) = call(
        &f,
        applicant(
            &format!("/applicant/{cap}/claims"),
            json!({"claims": {"legal_name": "Jennifer Ventures Holdings Inc."}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "APPLICATION_CLAIMS_LOCKED");
    let (s, e, _) = call(
        &f,
        admin(
            &format!("/admin/applications/{id}/request-changes"),
            json!({"reason": "the legal name must end with Holdings Inc."}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert!(
        e.get("capability").is_none(),
        "staff never see its hash: {e}"
    );
    let (_, v, _) = call(&f, get(&format!("/applicant/{cap}"))).await;
    assert_eq!(v["state"], "changes_requested");
    assert_eq!(v["note"], "the legal name must end with Holdings Inc.");

    // Only what the founder can state: the agency sets the corporation number.
    let (s, e, _) = call(
        &f,
        applicant(
            &format!("/applicant/{cap}/claims"),
            json!({"claims": {"corporation_number": "1000001"}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["code"], "APPLICANT_CLAIM_NOT_ALLOWED");
    let (s, e, _) = call(
        &f,
        applicant(
            &format!("/applicant/{cap}/claims"),
            json!({"claims": {"legal_name": 42}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["code"], "CLAIMS_INVALID");
    let (s, v, _) = call(
        &f,
        applicant(
            &format!("/applicant/{cap}/claims"),
            json!({"claims": {"legal_name": "Jennifer Ventures Holdings Inc."}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["claims"]["legal_name"], "Jennifer Ventures Holdings Inc.");
    assert_eq!(v["state"], "awaiting_approval", "ready for review again");
    let last = v["history"]
        .as_array()
        .expect("h")
        .last()
        .expect("e")
        .clone();
    assert_eq!(
        (last["action"].as_str(), last["by"].as_str()),
        (Some("claims_updated"), Some("applicant"))
    );

    let (s, v, _) = call(
        &f,
        applicant(
            &format!("/applicant/{cap}/withdraw"),
            json!({"reason": "opened by mistake"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "withdrawn");
    assert_eq!(v["note"], "opened by mistake");
    // A clerk who then approves it is told where it stands; nothing is offered.
    let (s, e, _) = call(
        &f,
        admin(&format!("/admin/applications/{id}/approve"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "APPLICATION_NOT_AWAITING_APPROVAL");
    let (s, e, _) = call(
        &f,
        applicant(&format!("/applicant/{cap}/withdraw"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "APPLICATION_NOT_WITHDRAWABLE");
    let (s, v, _) = call(&f, get(&format!("/applicant/{cap}"))).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("withdrawn"))
    );
    assert!(v["offer"].is_null());
}

/// Approved, the offer and its transaction code are shown through the capability link only;
/// the wallet redeems them and the application shows as issued.
#[tokio::test]
async fn an_applicant_sees_the_offer_and_the_issuance() {
    let f = fixture();
    let (id, cap) = applicant_opens(&f).await;
    let agency = json!({"claims": {"corporation_number": incorporation()["corporation_number"], "incorporation_date": incorporation()["incorporation_date"], "jurisdiction": incorporation()["jurisdiction"], "corporate_status": "active"}});
    let (s, o, _) = call(
        &f,
        admin(&format!("/admin/applications/{id}/approve"), agency),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let (s, v, _) = call(&f, get(&format!("/applicant/{cap}"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "offered");
    assert!(
        o["tx_code"].is_null(),
        "staff never see the applicant's code: {o}"
    );
    assert_eq!(o["tx_code_delivery"], "application_link");
    // Nor the capability's hash the code derives from.
    let (s, shown, _) = call(
        &f,
        Request::get(format!("/admin/applications/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{shown}");
    assert!(shown.get("capability").is_none(), "{shown}");
    assert_eq!(shown["opened_by_applicant"], true);
    assert_eq!(v["offer"]["tx_code"].as_str().map(str::len), Some(6));
    assert_eq!(
        v["offer"]["credential_offer_uri"],
        o["credential_offer_uri"]
    );
    // The same link opened in a browser: a page, in the browser's language, with the code.
    let tx = v["offer"]["tx_code"].as_str().expect("tx").to_owned();
    for (lang, words) in [
        ("en-CA,en;q=0.8", "Approved: your credential offer is ready"),
        (
            "fr-CA,fr;q=0.9",
            "Approuvée : votre offre d’attestation est prête",
        ),
    ] {
        let req = Request::get(format!("/applicant/{cap}"))
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header(header::ACCEPT_LANGUAGE, lang)
            .body(Body::empty())
            .expect("req");
        let (s, page, h) = call(&f, req).await;
        assert_eq!(s, StatusCode::OK);
        let html = page.as_str().expect("html");
        assert!(html.contains(words) && html.contains(&tx), "{html}");
        assert_eq!(
            h.get(header::REFERRER_POLICY).and_then(|v| v.to_str().ok()),
            Some("no-referrer")
        );
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    let oid4vci::OfferRef::ByReference(url) =
        oid4vci::parse_offer_uri(v["offer"]["credential_offer_uri"].as_str().expect("u"))
            .expect("parse")
    else {
        panic!("by reference")
    };
    let path = url.strip_prefix(URL).expect("ours");
    let (s, offer, _) = call(&f, get(path)).await;
    assert_eq!(s, StatusCode::OK, "{offer}");
    let code = offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
        .as_str()
        .expect("code");
    let (s, t, _) = call(
        &f,
        token_req(code, v["offer"]["tx_code"].as_str().expect("tx")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let proof = oid4vci::proof_jwt(&key, URL, Some(&c_nonce(&f).await), now()).expect("proof");
    let (s, r, _) = call(&f, credential_req(t["access_token"].as_str().expect("t"), &json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (_, v, _) = call(&f, get(&format!("/applicant/{cap}"))).await;
    assert_eq!(v["state"], "issued");
    assert!(v["offer"].is_null());
    let last = v["history"]
        .as_array()
        .expect("h")
        .last()
        .expect("event")
        .clone();
    assert_eq!(last["action"], "credential_issued");
    assert!(v["updated"].as_i64() >= v["created"].as_i64());
}

/// A type with prerequisites answers the wallet's request URI until it is answered; unknown
/// types are refused with their code.
#[tokio::test]
async fn an_applicant_application_with_prerequisites_waits_for_the_wallet() {
    let f = fixture();
    let (s, o, _) = call(
        &f,
        applicant(
            "/applicant/applications",
            json!({"credential_configuration_id": "business-number", "claims": {"operating_name": "Jennifer's Bistro"}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    assert_eq!(o["state"], "awaiting_prerequisites");
    let uri = o["request_uri"].as_str().expect("request uri");
    assert!(uri.starts_with("openid4vp://"), "{uri}");
    let id = o["application_id"].as_str().expect("id");
    assert!(
        uri.contains(&format!("oid4vp%2Frequest%2F{id}"))
            || uri.contains(&format!("oid4vp/request/{id}")),
        "{uri}"
    );
    let (s, v, _) = call(
        &f,
        get(&format!(
            "/applicant/{}",
            o["capability"].as_str().expect("c")
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["request_uri"], uri);
    assert_eq!(v["claims"]["operating_name"], "Jennifer's Bistro");
    let (s, r, _) = call(&f, get(&format!("/oid4vp/request/{id}"))).await;
    assert_eq!(s, StatusCode::OK, "{r}");

    let (s, e, _) = call(
        &f,
        applicant(
            "/applicant/applications",
            json!({"credential_configuration_id": "liquor-sales-licence"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["code"], "UNKNOWN_CREDENTIAL_CONFIGURATION");
    let (s, e, _) = call(&f, applicant("/applicant/applications", json!({}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
}
