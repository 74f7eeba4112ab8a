//! An OpenID4VCI issuer in the test process that keeps what the bizcred issuer keeps for a
//! lost answer: each access token's credential record and status index, re-issued (never a
//! second index) when the same token comes back with a fresh proof and nonce within its
//! lifetime. Nonces are single-use. It can lose the answer of the next credential request after
//! it committed the record (a 504, as a gateway that timed out answers), or hold it (so a test
//! kills the wallet while the answer is in flight).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference};
use bizcred_schemas::CredentialType;
use serde_json::{json, Map, Value};

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock")
}

/// What the issuer committed.
#[derive(Debug, Default)]
pub(crate) struct Books {
    /// Unused pre-authorized codes.
    pub(crate) codes: HashSet<String>,
    /// Access token -> the status index of its credential record, once issued.
    pub(crate) records: HashMap<String, Option<u64>>,
    /// Credentials signed (first issues and re-issues).
    pub(crate) signed: u32,
    /// Nonces handed out and not yet used.
    pub(crate) nonces: HashSet<String>,
    /// Lose the answer of the next credential request (after committing).
    pub(crate) lose_next_answer: bool,
    /// Hold the answer of the next credential request (after committing) for 30 s, longer
    /// than a test waits before it kills the wallet.
    pub(crate) hold_next_answer: bool,
    next_idx: u64,
    counter: u64,
}

/// The running issuer.
pub(crate) struct ReissuingIssuer {
    /// Its URL.
    pub(crate) base: String,
    /// Its books.
    pub(crate) books: Arc<Mutex<Books>>,
    _thread: std::thread::JoinHandle<()>,
}

impl ReissuingIssuer {
    /// Starts the issuer on loopback (a did:key issuer: nothing else to fetch); serves for
    /// `secs` seconds.
    pub(crate) fn start(secs: u64) -> ReissuingIssuer {
        use axum::routing::{get, post};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let books = Arc::new(Mutex::new(Books {
            next_idx: 7_000,
            ..Books::default()
        }));
        let issuer = Arc::new(SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng));
        let b = base.clone();
        let bk = books.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let meta = json!({"credential_issuer": b, "credential_endpoint": format!("{b}/credential"),
                    "nonce_endpoint": format!("{b}/nonce"),
                    "credential_configurations_supported": {"bn": {"format": "dc+sd-jwt", "vct": CredentialType::BusinessNumber.vct()}},
                    "display": [{"name": "Canada Revenue Agency", "locale": "en-CA"}]});
                let asm = json!({"issuer": b, "token_endpoint": format!("{b}/token")});
                let (bt, bn, bc) = (bk.clone(), bk.clone(), bk);
                let aud = b.clone();
                let status_uri = format!("{b}/status/1");
                let app = axum::Router::new()
                    .route(
                        "/.well-known/openid-credential-issuer",
                        get(move || async move { axum::Json(meta) }),
                    )
                    .route(
                        "/.well-known/oauth-authorization-server",
                        get(move || async move { axum::Json(asm) }),
                    )
                    .route(
                        "/token",
                        post(move |body: String| {
                            let books = bt.clone();
                            async move {
                                let form: HashMap<String, String> =
                                    form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                                let mut bk = books.lock().expect("books");
                                let code = form.get("pre-authorized_code").cloned().unwrap_or_default();
                                if !bk.codes.remove(&code) {
                                    return (
                                        axum::http::StatusCode::BAD_REQUEST,
                                        axum::Json(json!({"error": "invalid_grant", "error_description": "the offer was used or has expired"})),
                                    );
                                }
                                bk.counter += 1;
                                let token = format!("at-{}-{code}", bk.counter);
                                bk.records.insert(token.clone(), None);
                                (
                                    axum::http::StatusCode::OK,
                                    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 600})),
                                )
                            }
                        }),
                    )
                    .route(
                        "/nonce",
                        post(move || {
                            let books = bn.clone();
                            async move {
                                let mut bk = books.lock().expect("books");
                                bk.counter += 1;
                                let n = format!("cn-{}", bk.counter);
                                bk.nonces.insert(n.clone());
                                axum::Json(json!({"c_nonce": n}))
                            }
                        }),
                    )
                    .route(
                        "/credential",
                        post(move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                            let (books, issuer, aud, status_uri) =
                                (bc.clone(), issuer.clone(), aud.clone(), status_uri.clone());
                            async move {
                                let bad = |s: axum::http::StatusCode, e: &str, m: &str| {
                                    (s, axum::Json(json!({"error": e, "error_description": m})))
                                };
                                let token = headers
                                    .get("authorization")
                                    .and_then(|h| h.to_str().ok())
                                    .and_then(|h| h.strip_prefix("Bearer "))
                                    .unwrap_or_default()
                                    .to_owned();
                                let (answer, hold) = {
                                let mut bk = books.lock().expect("books");
                                let Some(record) = bk.records.get(&token).copied() else {
                                    return bad(axum::http::StatusCode::UNAUTHORIZED, "invalid_token", "unknown access token");
                                };
                                let Some(proof) = body.0["proofs"]["jwt"][0].as_str() else {
                                    return bad(axum::http::StatusCode::BAD_REQUEST, "invalid_proof", "no proof");
                                };
                                let Ok(p) = bizcred_core::oid4vci::verify_proof_jwt(proof, &aud, now(), 300) else {
                                    return bad(axum::http::StatusCode::BAD_REQUEST, "invalid_proof", "the proof does not verify");
                                };
                                if !p.nonce.as_ref().is_some_and(|n| bk.nonces.remove(n)) {
                                    return bad(axum::http::StatusCode::BAD_REQUEST, "invalid_nonce", "the nonce is unknown or used");
                                }
                                let idx = match record {
                                    Some(idx) => idx,
                                    None => {
                                        bk.next_idx += 1;
                                        let idx = bk.next_idx;
                                        bk.records.insert(token.clone(), Some(idx));
                                        idx
                                    }
                                };
                                bk.signed += 1;
                                let did = bizcred_core::did::did_key(&issuer.public_key());
                                let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
                                let claims: Map<String, Value> = serde_json::from_str(include_str!(
                                    "../../../schemas/examples/valid/business-number.json"
                                ))
                                .expect("claims");
                                let sd = sd_jwt_vc::issue(
                                    Issuance {
                                        vct: CredentialType::BusinessNumber.vct(),
                                        issuer: &did,
                                        kid: Some(&kid),
                                        iat: now(),
                                        nbf: None,
                                        exp: None,
                                        holder_key: Some(&p.key),
                                        status: Some(StatusReference { idx, uri: status_uri }),
                                        disclosable: sd_jwt_vc::default_disclosable(
                                            CredentialType::BusinessNumber,
                                            &claims,
                                        ),
                                        claims,
                                        decoys: 0,
                                    },
                                    issuer.as_ref(),
                                    &mut rand_core::OsRng,
                                )
                                .expect("issue");
                                let hold = std::mem::take(&mut bk.hold_next_answer);
                                if std::mem::take(&mut bk.lose_next_answer) {
                                    return bad(axum::http::StatusCode::GATEWAY_TIMEOUT, "server_error", "the answer was lost");
                                }
                                (
                                    (
                                        axum::http::StatusCode::OK,
                                        axum::Json(json!({"credentials": [{"credential": sd.serialize()}]})),
                                    ),
                                    hold,
                                )
                                };
                                if hold {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    return bad(axum::http::StatusCode::GATEWAY_TIMEOUT, "server_error", "held");
                                }
                                answer
                            }
                        }),
                    );
                listener.set_nonblocking(true).expect("nb");
                let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ =
                    tokio::time::timeout(Duration::from_secs(secs), axum::serve(l, app)).await;
            });
        });
        ReissuingIssuer {
            base,
            books,
            _thread: thread,
        }
    }

    /// A new single-use offer (by value, no transaction code); its URI.
    pub(crate) fn offer(&self, code: &str) -> String {
        self.books
            .lock()
            .expect("books")
            .codes
            .insert(code.to_owned());
        let offer = json!({"credential_issuer": self.base, "credential_configuration_ids": ["bn"],
            "grants": {bizcred_core::oid4vci::PRE_AUTHORIZED_GRANT: {"pre-authorized_code": code}}});
        bizcred_core::oid4vci::offer_uri_by_value(&offer)
    }

    /// The status indices of every credential record, in order.
    pub(crate) fn issued_indices(&self) -> Vec<u64> {
        let bk = self.books.lock().expect("books");
        let mut v: Vec<u64> = bk.records.values().filter_map(|r| *r).collect();
        v.sort_unstable();
        v
    }
}
