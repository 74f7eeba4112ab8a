//! DPoP (RFC 9449) at the token, credential and notification endpoints, and the OpenID4VCI
//! notification endpoint, through the router without a socket: every refusal with its reason
//! code, its OAuth error and (at the protected endpoints) its `WWW-Authenticate: DPoP`
//! challenge; plain bearer tokens unchanged.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use bizcred_core::dpop;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::{oid4vci, sd_jwt, sd_jwt_vc};
use bizcred_issuer::{service, Config, Issuer};
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

const TOKEN: &str = "staff-token";
const URL: &str = "http://localhost:18085";
const CONFIG: &str = "certificate-of-incorporation";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Fx {
    _dir: Arc<tempfile::TempDir>,
    issuer: Arc<Issuer>,
}

fn config(dir: &std::path::Path, database: Option<&str>) -> Config {
    let hash = bizcred_issuer::store::sha256_hex(TOKEN.as_bytes());
    let database = database.map_or(String::new(), |u| format!("database = {u:?}\n"));
    let cfg = format!(
        "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18085\"\n[storage]\npath = {:?}\n{database}[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{hash}\"]\n",
        dir.join("data").to_string_lossy()
    );
    Config::parse(&cfg).expect("config")
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().expect("tmp");
    let (issuer, _) = Issuer::create(
        config(dir.path(), None),
        Zeroizing::new("pw".into()),
        now() - 10,
        now,
    )
    .expect("create");
    Fx {
        _dir: Arc::new(dir),
        issuer: Arc::new(issuer),
    }
}

struct Answer {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["code"].as_str()
    }
    fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }
    fn nonce(&self) -> String {
        self.headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .expect("a DPoP-Nonce header")
            .to_owned()
    }
    fn challenge(&self) -> &str {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// A refusal: status, OAuth error, reason code.
    fn refused(&self) -> (StatusCode, Option<&str>, Option<&str>) {
        (self.status, self.error(), self.code())
    }
}

async fn call(f: &Fx, req: Request<Body>) -> Answer {
    let resp = service::app(f.issuer.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 8 * 1024 * 1024)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
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

fn jti() -> String {
    let mut b = [0u8; 12];
    OsRng.fill_bytes(&mut b);
    bizcred_core::base64url_encode(b)
}

/// A DPoP proof by `key` for `POST {URL}{path}`.
fn proof(key: &SecretKey, path: &str, token: Option<&str>, nonce: Option<&str>) -> String {
    dpop::proof(
        key,
        "POST",
        &format!("{URL}{path}"),
        token,
        nonce,
        &jti(),
        now(),
    )
    .expect("proof")
}

/// The issuer's signing key, from its DID log.
fn issuer_key(f: &Fx) -> bizcred_core::keys::PublicKey {
    let log = f.issuer.did_log().expect("log");
    bizcred_core::webvh::verify_log(&log, None, now()).versions[0]
        .verification_method(&f.issuer.kid())
        .expect("key")
}

/// Applies and approves; returns the pre-authorized code and the transaction code.
async fn offer(f: &Fx) -> (String, String) {
    let mut claims: Value = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    ))
    .expect("json");
    claims.as_object_mut().expect("o").remove("business_number");
    let a = call(
        f,
        admin(
            "/admin/applications",
            json!({"credential_type": CONFIG, "claims": claims}),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["application_id"].as_str().expect("id");
    let o = call(
        f,
        admin(&format!("/admin/applications/{id}/approve"), json!({})),
    )
    .await;
    assert_eq!(o.status, StatusCode::CREATED, "{}", o.body);
    let oid4vci::OfferRef::ByValue(v) =
        oid4vci::parse_offer_uri(o.body["credential_offer_by_value"].as_str().expect("v"))
            .expect("parse")
    else {
        panic!("by value")
    };
    (
        v["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
            .as_str()
            .expect("code")
            .to_owned(),
        o.body["tx_code"].as_str().expect("tx").to_owned(),
    )
}

fn token_req(code: &str, tx: &str, dpop: Option<&str>) -> Request<Body> {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
            ("pre-authorized_code", code),
            ("tx_code", tx),
        ])
        .finish();
    let mut r =
        Request::post("/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(p) = dpop {
        r = r.header("DPoP", p);
    }
    r.body(Body::from(body)).expect("req")
}

/// A POST of `body` to `path` with `Authorization: <scheme> <token>` and the DPoP proofs.
fn protected(path: &str, scheme: &str, token: &str, dpop: &[&str], body: &Value) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::AUTHORIZATION, format!("{scheme} {token}"))
        .header(header::CONTENT_TYPE, "application/json");
    for p in dpop {
        r = r.header("DPoP", *p);
    }
    r.body(Body::from(body.to_string())).expect("req")
}

async fn c_nonce(f: &Fx) -> (String, String) {
    let a = call(f, Request::post("/nonce").body(Body::empty()).expect("r")).await;
    assert_eq!(a.status, StatusCode::OK);
    (
        a.body["c_nonce"].as_str().expect("nonce").to_owned(),
        a.nonce(),
    )
}

/// A credential request body with a fresh key proof by `holder`.
async fn credential_body(f: &Fx, holder: &SecretKey) -> (Value, String) {
    let (c, dpop_nonce) = c_nonce(f).await;
    let proof = oid4vci::proof_jwt(holder, URL, Some(&c), now()).expect("proof");
    (
        json!({"credential_configuration_id": CONFIG, "proofs": {"jwt": [proof]}}),
        dpop_nonce,
    )
}

/// The token endpoint with DPoP, as a client does it: the first proof without a nonce is
/// answered `use_dpop_nonce` with one; the second, with it, gets the bound token.
async fn dpop_token(f: &Fx, key: &SecretKey) -> (String, String) {
    let (code, tx) = offer(f).await;
    let first = call(
        f,
        token_req(&code, &tx, Some(&proof(key, "/token", None, None))),
    )
    .await;
    assert_eq!(
        first.refused(),
        (
            StatusCode::BAD_REQUEST,
            Some("use_dpop_nonce"),
            Some("DPOP_NONCE_MISSING")
        )
    );
    let n = first.nonce();
    let t = call(
        f,
        token_req(&code, &tx, Some(&proof(key, "/token", None, Some(&n)))),
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.body["token_type"], "DPoP");
    (
        t.body["access_token"].as_str().expect("t").to_owned(),
        t.nonce(),
    )
}

#[tokio::test]
async fn metadata_advertises_dpop_notifications_and_binding_methods() {
    let f = fixture();
    let asm = call(&f, get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(
        asm.body["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );
    let m = call(&f, get("/.well-known/openid-credential-issuer")).await;
    assert_eq!(
        m.body["notification_endpoint"],
        format!("{URL}/notification")
    );
    assert_eq!(
        m.body["credential_configurations_supported"][CONFIG]
            ["cryptographic_binding_methods_supported"],
        json!(["jwk", "did:key", "did:jwk"])
    );
}

#[tokio::test]
async fn token_endpoint_refusals_leave_the_offer_usable() {
    let f = fixture();
    let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let (code, tx) = offer(&f).await;
    let first = call(
        &f,
        token_req(&code, &tx, Some(&proof(&key, "/token", None, None))),
    )
    .await;
    let n = first.nonce();
    // A nonce the issuer never supplied; a c_nonce is not a DPoP nonce either.
    let a = call(
        &f,
        token_req(
            &code,
            &tx,
            Some(&proof(&key, "/token", None, Some("made-up"))),
        ),
    )
    .await;
    assert_eq!(
        a.refused(),
        (
            StatusCode::BAD_REQUEST,
            Some("use_dpop_nonce"),
            Some("DPOP_NONCE_INVALID")
        )
    );
    let (c, _) = c_nonce(&f).await;
    let a = call(
        &f,
        token_req(&code, &tx, Some(&proof(&key, "/token", None, Some(&c)))),
    )
    .await;
    assert_eq!(a.code(), Some("DPOP_NONCE_INVALID"));
    // Wrong URL, wrong method, a signature by another key than the header's.
    let a = call(
        &f,
        token_req(
            &code,
            &tx,
            Some(&proof(&key, "/credential", None, Some(&n))),
        ),
    )
    .await;
    assert_eq!(
        a.refused(),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_dpop_proof"),
            Some("DPOP_HTU_MISMATCH")
        )
    );
    let get_proof = dpop::proof(
        &key,
        "GET",
        &format!("{URL}/token"),
        None,
        Some(&n),
        &jti(),
        now(),
    )
    .expect("p");
    let a = call(&f, token_req(&code, &tx, Some(&get_proof))).await;
    assert_eq!(a.code(), Some("DPOP_HTM_MISMATCH"));
    let good = proof(&key, "/token", None, Some(&n));
    let other = proof(
        &SecretKey::generate(Algorithm::EdDSA, &mut OsRng),
        "/token",
        None,
        Some(&n),
    );
    let forged = format!(
        "{}.{}",
        good.rsplit_once('.').expect("jws").0,
        other.rsplit_once('.').expect("jws").1
    );
    let a = call(&f, token_req(&code, &tx, Some(&forged))).await;
    assert_eq!(
        a.refused(),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_dpop_proof"),
            Some("DPOP_PROOF_BAD_SIGNATURE")
        )
    );
    // Two DPoP headers.
    let mut two = token_req(&code, &tx, Some(&good));
    two.headers_mut()
        .append("DPoP", good.parse().expect("header"));
    assert_eq!(call(&f, two).await.code(), Some("DPOP_PROOF_MALFORMED"));
    // None of that touched the offer: the proof with the supplied nonce gets the token, and
    // the same proof again is a replay.
    let t = call(&f, token_req(&code, &tx, Some(&good))).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.body["token_type"], "DPoP");
    let again = call(&f, token_req(&code, &tx, Some(&good))).await;
    assert_eq!(
        again.refused(),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_dpop_proof"),
            Some("DPOP_PROOF_REPLAYED")
        )
    );
    // Every answer to a DPoP request carries the next nonce.
    assert!(!again.nonce().is_empty());
}

#[tokio::test]
async fn a_dpop_bound_token_obtains_and_notifies_only_with_its_key() {
    let f = fixture();
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let key = SecretKey::generate(alg, &mut OsRng);
        let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let (token, n) = dpop_token(&f, &key).await;
        let (body, n2) = credential_body(&f, &holder).await;
        let unauthorized = |a: &Answer, error: &str, code: &str| {
            assert_eq!(
                a.refused(),
                (StatusCode::UNAUTHORIZED, Some(error), Some(code)),
                "{}",
                a.body
            );
            assert!(
                a.challenge()
                    .starts_with(&format!("DPoP error=\"{error}\"")),
                "{}",
                a.challenge()
            );
            assert!(a.challenge().contains("algs=\"EdDSA ES256\""));
        };
        // A DPoP nonce is not a c_nonce, whatever the key proof calls it.
        let sneaky =
            oid4vci::proof_jwt(&holder, URL, Some(&format!("dpop:{n}")), now()).expect("proof");
        let p = proof(&key, "/credential", Some(&token), Some(&n2));
        let a = call(
            &f,
            protected(
                "/credential",
                "DPoP",
                &token,
                &[&p],
                &json!({"credential_configuration_id": CONFIG, "proofs": {"jwt": [sneaky]}}),
            ),
        )
        .await;
        assert_eq!(
            a.refused(),
            (
                StatusCode::BAD_REQUEST,
                Some("invalid_nonce"),
                Some("INVALID_NONCE")
            )
        );
        let n2 = a.nonce();
        // As a bearer token: refused, and told to use DPoP.
        let a = call(&f, protected("/credential", "Bearer", &token, &[], &body)).await;
        unauthorized(&a, "invalid_token", "DPOP_TOKEN_AS_BEARER");
        // The DPoP scheme without a proof; with a proof by another key; with the hash of
        // another token; without a nonce (told the nonce to use).
        let a = call(&f, protected("/credential", "DPoP", &token, &[], &body)).await;
        unauthorized(&a, "invalid_dpop_proof", "DPOP_PROOF_MISSING");
        let stranger = SecretKey::generate(alg, &mut OsRng);
        let p = proof(&stranger, "/credential", Some(&token), Some(&n));
        let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        unauthorized(&a, "invalid_dpop_proof", "DPOP_KEY_MISMATCH");
        let p = proof(&key, "/credential", Some("another-token"), Some(&n));
        let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        unauthorized(&a, "invalid_dpop_proof", "DPOP_ATH_MISMATCH");
        let p = proof(&key, "/credential", Some(&token), None);
        let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        unauthorized(&a, "use_dpop_nonce", "DPOP_NONCE_MISSING");
        let fresh = a.nonce();
        // A proof made for the token endpoint is not one for the credential endpoint.
        let p = proof(&key, "/token", Some(&token), Some(&fresh));
        let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        unauthorized(&a, "invalid_dpop_proof", "DPOP_HTU_MISMATCH");
        // The nonce of the nonce endpoint's answer, by the bound key: the credential.
        let p = proof(&key, "/credential", Some(&token), Some(&n2));
        let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let next = a.nonce();
        let text = a.body["credentials"][0]["credential"].as_str().expect("c");
        let sd = sd_jwt::SdJwt::parse(text).expect("parse");
        let vc = sd_jwt_vc::verify(
            &sd,
            &issuer_key(&f),
            &sd_jwt_vc::VerifyOptions {
                now: now(),
                clock_skew: 60,
                key_binding: None,
            },
        )
        .expect("verifies");
        // The credential is bound to the key proof's key; DPoP only binds the token.
        assert_eq!(vc.holder_key, Some(holder.public_key()));
        let id = a.body["notification_id"].as_str().expect("id").to_owned();
        // The same proof again is a replay.
        let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        unauthorized(&a, "invalid_dpop_proof", "DPOP_PROOF_REPLAYED");

        // The notification: the same rules, then 204, recorded once however often it is sent.
        let note = json!({"notification_id": id, "event": "credential_accepted"});
        let a = call(&f, protected("/notification", "Bearer", &token, &[], &note)).await;
        unauthorized(&a, "invalid_token", "DPOP_TOKEN_AS_BEARER");
        let mut nonce = next;
        for _ in 0..2 {
            let p = proof(&key, "/notification", Some(&token), Some(&nonce));
            let a = call(&f, protected("/notification", "DPoP", &token, &[&p], &note)).await;
            assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
            nonce = a.nonce();
        }
        let p = proof(&stranger, "/notification", Some(&token), Some(&nonce));
        let a = call(&f, protected("/notification", "DPoP", &token, &[&p], &note)).await;
        unauthorized(&a, "invalid_dpop_proof", "DPOP_KEY_MISMATCH");
        let recorded: Vec<Value> = f
            .issuer
            .store
            .audit_entries()
            .expect("audit")
            .into_iter()
            .filter(|e| e["event"] == "wallet_notification" && e["details"]["credential_id"] == id)
            .collect();
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0]["details"]["event"], "credential_accepted");
    }
}

#[tokio::test]
async fn bearer_tokens_keep_working_and_notifications_are_checked() {
    let f = fixture();
    let (code, tx) = offer(&f).await;
    let t = call(&f, token_req(&code, &tx, None)).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.body["token_type"], "Bearer");
    assert!(t.headers.get("dpop-nonce").is_none());
    let token = t.body["access_token"].as_str().expect("t").to_owned();
    let holder = SecretKey::generate(Algorithm::ES256, &mut OsRng);
    let (body, n) = credential_body(&f, &holder).await;
    // A bearer token is not DPoP-bound: the DPoP scheme is refused.
    let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let p = proof(&key, "/credential", Some(&token), Some(&n));
    let a = call(&f, protected("/credential", "DPoP", &token, &[&p], &body)).await;
    assert_eq!(
        a.refused(),
        (
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            Some("DPOP_TOKEN_NOT_BOUND")
        )
    );
    // The scheme's case does not matter (RFC 9110 §11.1).
    let a = call(&f, protected("/credential", "bearer", &token, &[], &body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let id = a.body["notification_id"].as_str().expect("id").to_owned();
    let notify = |body: Value| protected("/notification", "Bearer", &token, &[], &body);
    // Before a credential was issued with a token, no notification_id is its.
    let (code2, tx2) = offer(&f).await;
    let t2 = call(&f, token_req(&code2, &tx2, None)).await;
    let unused = t2.body["access_token"].as_str().expect("t");
    let a = call(
        &f,
        protected(
            "/notification",
            "Bearer",
            unused,
            &[],
            &json!({"notification_id": id, "event": "credential_accepted"}),
        ),
    )
    .await;
    assert_eq!(
        a.refused(),
        (
            StatusCode::BAD_REQUEST,
            Some("invalid_notification_id"),
            Some("INVALID_NOTIFICATION_ID")
        )
    );
    for (bad, why) in [
        (
            json!({"notification_id": "nope", "event": "credential_accepted"}),
            "INVALID_NOTIFICATION_ID",
        ),
        (
            json!({"notification_id": id, "event": "credential_lost"}),
            "INVALID_NOTIFICATION_REQUEST",
        ),
        (
            json!({"notification_id": id}),
            "INVALID_NOTIFICATION_REQUEST",
        ),
        (
            json!({"event": "credential_accepted"}),
            "INVALID_NOTIFICATION_REQUEST",
        ),
        (
            json!({"notification_id": 7, "event": "credential_accepted"}),
            "INVALID_NOTIFICATION_REQUEST",
        ),
        (
            json!({"notification_id": id, "event": "credential_failure", "event_description": "a \"quoted\" word"}),
            "INVALID_NOTIFICATION_REQUEST",
        ),
        (
            json!(["not", "an", "object"]),
            "INVALID_NOTIFICATION_REQUEST",
        ),
    ] {
        let a = call(&f, notify(bad.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.code(), Some(why), "{bad}");
        let error = if why == "INVALID_NOTIFICATION_ID" {
            "invalid_notification_id"
        } else {
            "invalid_notification_request"
        };
        assert_eq!(a.error(), Some(error), "{bad}");
    }
    // No token at all.
    let a = call(
        &f,
        Request::post("/notification")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .expect("r"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.challenge().contains("DPoP"), "{}", a.challenge());
    // Accepted, then deleted: two entries; unknown members are ignored (OpenID4VCI §11.1).
    let a = call(
        &f,
        notify(json!({"notification_id": id, "event": "credential_failure", "event_description": "Could not store the Credential. Out of storage.", "extra": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = call(
        &f,
        notify(json!({"notification_id": id, "event": "credential_deleted"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let events: Vec<(String, String)> = f
        .issuer
        .audit_report(50)
        .expect("report")
        .entries
        .iter()
        .filter(|e| e.event == "wallet_notification")
        .map(|e| {
            (
                e.details["event"].as_str().unwrap_or("").to_owned(),
                e.details["event_description"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("credential_deleted".to_owned(), String::new()),
            (
                "credential_failure".to_owned(),
                "Could not store the Credential. Out of storage.".to_owned()
            ),
        ]
    );
}

/// Two instances on one PostgreSQL database: a DPoP nonce one supplies is good once at the
/// other, and a proof one accepted is a replay at the other.
#[test]
fn dpop_nonces_and_replays_hold_across_instances_on_postgres() {
    let Some(server) = common::server("DPoP across two issuer instances on one database") else {
        return;
    };
    let db = common::migrated(&server);
    let dir = Arc::new(tempfile::tempdir().expect("tmp"));
    let (a, _) = Issuer::create(
        config(dir.path(), Some(&db.url)),
        Zeroizing::new("pw".into()),
        now() - 10,
        now,
    )
    .expect("create");
    let b = Issuer::open(
        config(dir.path(), Some(&db.url)),
        Zeroizing::new("pw".into()),
        now,
    )
    .expect("open");
    let (a, b) = (
        Fx {
            _dir: dir.clone(),
            issuer: Arc::new(a),
        },
        Fx {
            _dir: dir,
            issuer: Arc::new(b),
        },
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let key = SecretKey::generate(Algorithm::ES256, &mut OsRng);
        let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let (code, tx) = offer(&a).await;
        let first = call(
            &a,
            token_req(&code, &tx, Some(&proof(&key, "/token", None, None))),
        )
        .await;
        let n = first.nonce();
        // Supplied by A, used at B.
        let good = proof(&key, "/token", None, Some(&n));
        let t = call(&b, token_req(&code, &tx, Some(&good))).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.body);
        assert_eq!(t.body["token_type"], "DPoP");
        let token = t.body["access_token"].as_str().expect("t").to_owned();
        // The same proof at A: a replay.
        let again = call(&a, token_req(&code, &tx, Some(&good))).await;
        assert_eq!(again.code(), Some("DPOP_PROOF_REPLAYED"));
        // The credential at A with the nonce B's nonce endpoint supplied; its proof replayed
        // at B.
        let (body, n2) = credential_body(&b, &holder).await;
        let p = proof(&key, "/credential", Some(&token), Some(&n2));
        let r = call(&a, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r2 = call(&b, protected("/credential", "DPoP", &token, &[&p], &body)).await;
        assert_eq!(
            r2.refused(),
            (
                StatusCode::UNAUTHORIZED,
                Some("invalid_dpop_proof"),
                Some("DPOP_PROOF_REPLAYED")
            )
        );
        // A nonce is used once, whichever instance takes it.
        let n3 = r.nonce();
        let id = r.body["notification_id"].as_str().expect("id");
        let note = json!({"notification_id": id, "event": "credential_accepted"});
        let p = proof(&key, "/notification", Some(&token), Some(&n3));
        let ok = call(&b, protected("/notification", "DPoP", &token, &[&p], &note)).await;
        assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.body);
        let p = proof(&key, "/notification", Some(&token), Some(&n3));
        let spent = call(&a, protected("/notification", "DPoP", &token, &[&p], &note)).await;
        assert_eq!(
            spent.refused(),
            (
                StatusCode::UNAUTHORIZED,
                Some("use_dpop_nonce"),
                Some("DPOP_NONCE_INVALID")
            )
        );
        assert!(spent
            .challenge()
            .starts_with("DPoP error=\"use_dpop_nonce\""));
    });
}
