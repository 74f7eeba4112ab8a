//! Status lists end to end over the router: roll-over to a new list when one is full, and a
//! revocation after a burst and a restart reaching the registry's copy within one re-sign
//! interval.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bizcred_core::keys::{Algorithm, PublicKey, SecretKey};
use bizcred_core::status_list::{self, Status};
use bizcred_core::{oid4vci, sd_jwt, sd_jwt_vc, webvh};
use bizcred_issuer::{service, Config, Issuer};
use rand_core::OsRng;
use serde_json::{json, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

const TOKEN: &str = "staff-token";
const URL: &str = "http://localhost:18085";
/// The re-sign interval of these issuers (seconds).
const INTERVAL: u64 = 10;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The registry's store of pushed status lists, with its rule: a list older than the one
/// held for its URI is refused (409), a newer one replaces it. Served on loopback, where the
/// issuer pushes (`POST /status-lists`).
#[derive(Clone, Default)]
struct Pushed(Arc<Mutex<BTreeMap<String, (i64, String)>>>);

impl Pushed {
    async fn serve(&self) -> String {
        let held = self.clone();
        let app = axum::Router::new().route(
            "/status-lists",
            axum::routing::post(move |body: String| {
                let held = held.clone();
                async move {
                    let Ok((_, iat, uri)) = status_list::peek(&body) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let mut held = held.0.lock().expect("lock");
                    if held.get(&uri).is_some_and(|(old, _)| *old > iat) {
                        return StatusCode::CONFLICT;
                    }
                    held.insert(uri, (iat, body));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn get(&self, uri: &str) -> Option<(i64, String)> {
        self.0.lock().expect("lock").get(uri).cloned()
    }
}

fn config(dir: &std::path::Path, registry: &str, list_size: u64) -> Config {
    let hash = bizcred_issuer::store::sha256_hex(TOKEN.as_bytes());
    Config::parse(&format!(
        "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18085\"\n[storage]\npath = {:?}\n[registry]\nurl = \"{registry}\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = {list_size}\nresign_interval_seconds = {INTERVAL}\nvalidity_seconds = 600\n[admin]\ntoken_sha256 = [\"{hash}\"]\n",
        dir.join("data").to_string_lossy()
    ))
    .expect("config")
}

async fn call(issuer: &Arc<Issuer>, req: Request<Body>) -> (StatusCode, Value) {
    let resp = service::app(issuer.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let bytes = axum::body::to_bytes(resp.into_body(), 8 * 1024 * 1024)
        .await
        .expect("body");
    let v = if json {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    (status, v)
}

fn admin(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("req")
}

fn claims() -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    ))
    .expect("json");
    v.as_object_mut().expect("o").remove("business_number");
    v
}

/// The issuer's current key (from its DID log).
async fn issuer_key(issuer: &Arc<Issuer>) -> PublicKey {
    let (_, log) = call(
        issuer,
        Request::get("/.well-known/did.jsonl")
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    webvh::verify_log(log.as_str().expect("log"), None, now())
        .versions
        .last()
        .expect("version")
        .verification_method(&issuer.kid())
        .expect("key")
}

/// One credential over the OpenID4VCI endpoints: its record id and status reference.
async fn issue(issuer: &Arc<Issuer>, key: &PublicKey) -> (String, sd_jwt_vc::StatusReference) {
    let (s, app) = call(
        issuer,
        admin(
            "/admin/applications",
            json!({"credential_type": "certificate-of-incorporation", "claims": claims()}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{app}");
    let id = app["application_id"].as_str().expect("id");
    let (s, o) = call(
        issuer,
        admin(&format!("/admin/applications/{id}/approve"), json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let oid4vci::OfferRef::ByValue(offer) =
        oid4vci::parse_offer_uri(o["credential_offer_by_value"].as_str().expect("offer"))
            .expect("parse")
    else {
        panic!("by value")
    };
    let code = offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
        .as_str()
        .expect("code");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
            ("pre-authorized_code", code),
            ("tx_code", o["tx_code"].as_str().expect("tx")),
        ])
        .finish();
    let (s, t) = call(
        issuer,
        Request::post("/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let (_, n) = call(
        issuer,
        Request::post("/nonce").body(Body::empty()).expect("r"),
    )
    .await;
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let proof = oid4vci::proof_jwt(&holder, URL, n["c_nonce"].as_str(), now()).expect("proof");
    let (s, r) = call(
        issuer,
        Request::post("/credential")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", t["access_token"].as_str().expect("at")),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}})
                    .to_string(),
            ))
            .expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let sd = sd_jwt::SdJwt::parse(r["credentials"][0]["credential"].as_str().expect("vc"))
        .expect("parse");
    let vc = sd_jwt_vc::verify(
        &sd,
        key,
        &sd_jwt_vc::VerifyOptions {
            now: now(),
            clock_skew: 60,
            key_binding: None,
        },
    )
    .expect("verifies");
    (
        r["notification_id"].as_str().expect("id").to_owned(),
        vc.status.expect("status"),
    )
}

async fn change(issuer: &Arc<Issuer>, id: &str, action: &str) {
    let (s, r) = call(
        issuer,
        admin(
            &format!("/admin/credentials/{id}/{action}"),
            json!({"reason": "test"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
}

/// `GET /status/{n}`, verified for its URI with the issuer's key.
async fn served(issuer: &Arc<Issuer>, n: u32, key: &PublicKey) -> status_list::VerifiedStatusList {
    let (s, token) = call(
        issuer,
        Request::get(format!("/status/{n}"))
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{token}");
    status_list::verify_token(
        token.as_str().expect("token"),
        &format!("{URL}/status/{n}"),
        key,
        now(),
    )
    .expect("verifies")
}

#[tokio::test]
async fn a_full_list_rolls_over_to_a_new_list_with_its_own_url() {
    let registry = Pushed::default();
    let url = registry.serve().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (issuer, _) = Issuer::create(
        config(dir.path(), &url, 16),
        Zeroizing::new("pw".into()),
        now() - 10,
        now,
    )
    .expect("create");
    let issuer = Arc::new(issuer);
    let key = issuer_key(&issuer).await;
    // More issuances than one list holds: before, the 17th answered 503 (the list was a
    // lifetime cap).
    let mut issued = Vec::new();
    for _ in 0..21 {
        issued.push(issue(&issuer, &key).await);
    }
    let by_list = |n: u32| -> Vec<&(String, sd_jwt_vc::StatusReference)> {
        issued
            .iter()
            .filter(|(_, s)| s.uri == format!("{URL}/status/{n}"))
            .collect()
    };
    let (first, second) = (by_list(1), by_list(2));
    assert_eq!((first.len(), second.len()), (16, 5));
    let distinct: HashSet<(String, u64)> =
        issued.iter().map(|(_, s)| (s.uri.clone(), s.idx)).collect();
    assert_eq!(distinct.len(), 21, "an index was given twice");
    assert!(issued.iter().all(|(_, s)| s.idx < 16));
    // The records name their list and index too.
    for (id, s) in &issued {
        let rec = issuer.store.credential(id).expect("record");
        assert_eq!(format!("{URL}/status/{}", rec.status_list), s.uri);
        assert_eq!(rec.status_idx, s.idx);
    }
    // Revocations in both lists, a suspension in the second.
    change(&issuer, &first[3].0, "revoke").await;
    change(&issuer, &second[0].0, "revoke").await;
    change(&issuer, &second[1].0, "suspend").await;
    // Each list is served, signed for its own URI, and shows its own statuses (after the
    // re-sign the clock allows).
    tokio::time::sleep(Duration::from_secs(1)).await;
    issuer.refresh_status_lists().expect("re-sign");
    let one = served(&issuer, 1, &key).await;
    let two = served(&issuer, 2, &key).await;
    for (i, (_, s)) in first.iter().enumerate() {
        let want = if i == 3 {
            Status::Invalid
        } else {
            Status::Valid
        };
        assert_eq!(one.list.get(s.idx), Ok(want), "list 1 index {}", s.idx);
    }
    for (i, (_, s)) in second.iter().enumerate() {
        let want = match i {
            0 => Status::Invalid,
            1 => Status::Suspended,
            _ => Status::Valid,
        };
        assert_eq!(two.list.get(s.idx), Ok(want), "list 2 index {}", s.idx);
    }
    // Every list is pushed to the registry.
    issuer.push_status_list().await.expect("push");
    for n in [1, 2] {
        let (iat, token) = registry.get(&format!("{URL}/status/{n}")).expect("pushed");
        let v = status_list::verify_token(&token, &format!("{URL}/status/{n}"), &key, now())
            .expect("verifies");
        assert_eq!(v.iat, iat);
    }
    let (s, _) = call(
        &issuer,
        Request::get("/status/3").body(Body::empty()).expect("r"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn after_a_burst_and_a_restart_a_revocation_reaches_the_registry_within_one_interval() {
    let registry = Pushed::default();
    let url = registry.serve().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), &url, 1024);
    let (issuer, _) =
        Issuer::create(cfg.clone(), Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    let issuer = Arc::new(issuer);
    let key = issuer_key(&issuer).await;
    let (a, _) = issue(&issuer, &key).await;
    let (b, b_ref) = issue(&issuer, &key).await;
    let uri = format!("{URL}/status/1");
    // A burst of status changes, each signed (as far as the clock allows) and pushed as the
    // service does.
    let mut iats = Vec::new();
    for i in 0..30 {
        let to = if i % 2 == 0 {
            bizcred_issuer::StatusAction::Suspend
        } else {
            bizcred_issuer::StatusAction::Reinstate
        };
        issuer
            .set_status(&bizcred_issuer::Actor::Automation, &a, to, Some("burst"))
            .expect("status");
        issuer.push_status_list().await.expect("push");
        iats.push(
            status_list::peek(&issuer.status_list(1).expect("list"))
                .expect("peek")
                .1,
        );
        iats.push(registry.get(&uri).expect("pushed").0);
    }
    let newest = *iats.iter().max().expect("iats");
    assert!(newest > now(), "the burst ran ahead of the clock: {iats:?}");
    // A restart: the issuer is opened again from its store and key files.
    drop(issuer);
    let issuer = Arc::new(
        Issuer::open(cfg, Zeroizing::new("pw".into()), now).expect("reopen from the store"),
    );
    let revoked_at = Instant::now();
    change(&issuer, &b, "revoke").await;
    // The registry's copy carries the revocation within one re-sign interval (before, a change
    // coalesced after a burst waited for the next background round).
    let copy = loop {
        if let Some((iat, token)) = registry.get(&uri) {
            let v = status_list::verify_token(&token, &uri, &key, now()).expect("verifies");
            if v.list.get(b_ref.idx) == Ok(Status::Invalid) {
                break (iat, v);
            }
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(INTERVAL),
            "the registry's copy does not show the revocation {INTERVAL} s later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(copy.0 > newest, "iat {} after {newest}", copy.0);
    assert!(copy.0 <= now() + bizcred_issuer::issuer::MAX_IAT_LEAD);
    // The list served carries it too, newer than every earlier one.
    let v = served(&issuer, 1, &key).await;
    assert!(v.iat > newest);
    assert_eq!(v.list.get(b_ref.idx), Ok(Status::Invalid));
}
