//! The wallet's receive against a bizcred issuer in the test process, on loopback: the issuer
//! advertises DPoP, so the wallet gets a DPoP-bound token (RFC 9449) and presents it with
//! proofs by its holder key, following the issuer's nonces; once the credential is stored it
//! tells the notification endpoint `credential_accepted`, which the issuer's audit log records.
//! An interrupted receive resumes with the same bound token.

use std::sync::Arc;

use bizcred_core::keys::{Algorithm, SecretKey};
use bizcred_issuer::{service, Config, Issuer};
use bizcred_schemas::Lang;
use bizcred_wallet::issuance::{self, OfferSource, ReceiveOptions};
use bizcred_wallet::pending::{offer_id, PendingDir, PendingReceives};
use bizcred_wallet::{net, SledVault, Vault};
use serde_json::{json, Value};
use zeroize::Zeroizing;

const TOKEN: &str = "staff-token";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn opts() -> ReceiveOptions<'static> {
    ReceiveOptions {
        tx_code: None,
        lang: Lang::En,
        now_ms: now() * 1000,
    }
}

struct Agency {
    _dir: tempfile::TempDir,
    issuer: Arc<Issuer>,
    url: String,
}

/// An issuer of certificates of incorporation serving on a loopback port.
async fn agency() -> Agency {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("http://localhost:{port}");
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = format!(
        "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"{url}\"\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.path().join("data").to_string_lossy(),
        bizcred_issuer::store::sha256_hex(TOKEN.as_bytes())
    );
    let config = Config::parse(&cfg).expect("config");
    let (issuer, _) =
        Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    let issuer = Arc::new(issuer);
    let app = service::app(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Agency {
        _dir: dir,
        issuer,
        url,
    }
}

/// An approved application's offer (by value) and its transaction code.
async fn offer(c: &reqwest::Client, a: &Agency) -> (String, String) {
    let mut claims: Value = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    ))
    .expect("json");
    claims.as_object_mut().expect("o").remove("business_number");
    let app: Value = c
        .post(format!("{}/admin/applications", a.url))
        .bearer_auth(TOKEN)
        .json(&json!({"credential_type": "certificate-of-incorporation", "claims": claims}))
        .send()
        .await
        .expect("apply")
        .json()
        .await
        .expect("json");
    let id = app["application_id"].as_str().expect("id");
    let o: Value = c
        .post(format!("{}/admin/applications/{id}/approve", a.url))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("approve")
        .json()
        .await
        .expect("json");
    (
        o["credential_offer_by_value"]
            .as_str()
            .expect("offer")
            .to_owned(),
        o["tx_code"].as_str().expect("tx").to_owned(),
    )
}

fn notifications(a: &Agency) -> Vec<Value> {
    a.issuer
        .store
        .audit_entries()
        .expect("audit")
        .into_iter()
        .filter(|e| e["event"] == "wallet_notification")
        .map(|e| e["details"].clone())
        .collect()
}

#[tokio::test]
async fn the_wallet_receives_with_dpop_and_notifies_the_issuer() {
    let a = agency().await;
    let c = net::client().expect("client");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("w");
    let v = SledVault::create(&dir, b"pass").expect("vault");
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        v.set_holder_key(&SecretKey::generate(alg, &mut rand_core::OsRng))
            .expect("key");
        let pending = PendingDir::new(&dir, &v.holder_key().expect("key"));
        let (uri, tx) = offer(&c, &a).await;
        let o = match issuance::parse_offer_uri(&uri).expect("offer") {
            OfferSource::ByValue(o) => o,
            OfferSource::ByReference(u) => panic!("by value, not {u}"),
        };
        let id = offer_id(&uri);
        let with_tx = ReceiveOptions {
            tx_code: Some(&tx),
            ..opts()
        };
        let mut steps = Vec::new();
        let p = issuance::start(&c, &v, &pending, &id, &o, with_tx, &mut |s| {
            steps.push(s.to_owned())
        })
        .await
        .expect("token");
        assert!(
            p.dpop,
            "{alg}: the issuer advertises DPoP: the token is bound"
        );
        assert_eq!(
            p.notification_endpoint.as_deref(),
            Some(format!("{}/notification", a.url).as_str())
        );
        // The answer is lost once: the bound token is used again, with a new proof, on resume.
        let holder = v.holder_key().expect("key");
        let lost = issuance::request_credential(&c, &holder, &p, now(), &mut |_| {})
            .await
            .expect("issued");
        assert!(!lost.is_empty());
        let p = pending.pending_for(&id).expect("read").expect("pending");
        assert!(p.dpop, "kept with the pending receive");
        let rec = issuance::resume(&c, &v, &pending, &p, opts(), &mut |s| {
            steps.push(s.to_owned())
        })
        .await
        .expect("resumed");
        assert!(
            steps
                .iter()
                .any(|s| s == "notified the issuer: credential_accepted"),
            "{steps:?}"
        );
        assert!(pending.pending().expect("pending").is_empty());
        // The issuer's audit log holds the notification for that credential.
        let recorded = notifications(&a);
        let last = recorded.last().expect("a notification");
        assert_eq!(last["event"], "credential_accepted");
        let issued = a.issuer.store.credentials().expect("records");
        let record = issued
            .iter()
            .find(|r| r.id == last["credential_id"])
            .expect("the notified credential is issued");
        assert_eq!(rec.status_idx, Some(record.status_idx));
    }
    assert_eq!(notifications(&a).len(), 2);
}
