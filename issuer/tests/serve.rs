//! Running the issuer for real: `/healthz`, `/readyz` and `/metrics` with the issuer's own
//! figures (router, no socket), and the real `bizcred-issuer serve` over HTTPS with JSON logs,
//! stopped by SIGTERM with exit code 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bizcred_core::keys::{Algorithm, SecretKey};
use bizcred_core::oid4vci;
use bizcred_issuer::{service, Config, Issuer};
use rand_core::OsRng;
use serde_json::{json, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

const TOKEN: &str = "ops-staff-token";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn config(dir: &std::path::Path, url: &str, port: u16) -> String {
    format!(
        "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{url}\"\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"r.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.join("data").to_string_lossy(),
        bizcred_issuer::store::sha256_hex(TOKEN.as_bytes())
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

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 8 * 1024 * 1024)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("req")
}

fn post(uri: &str, content_type: &str, body: String, bearer: Option<&str>) -> Request<Body> {
    let mut r = Request::post(uri).header(header::CONTENT_TYPE, content_type);
    if let Some(t) = bearer {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    r.body(Body::from(body)).expect("req")
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The value of an unlabelled sample in a Prometheus exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn health_readiness_and_the_issuers_metrics() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = "http://localhost:18094";
    let cfg = Config::parse(&config(dir.path(), url, 18094)).expect("config");
    let (issuer, _) =
        Issuer::create(cfg, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    let issuer = Arc::new(issuer);
    let app = bizcred_cli::serve::instrument(
        service::app(issuer.clone()),
        &service::health(&issuer),
        &service::metrics(&issuer),
    );

    assert_eq!(
        call(&app, get("/healthz")).await,
        (StatusCode::OK, "ok".into())
    );
    let (s, body) = call(&app, get("/readyz")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        json(&body),
        json!({"status": "ready", "checks": {"storage": "ok", "keys": "ok"}})
    );
    let (_, text) = call(&app, get("/metrics")).await;
    assert_eq!(
        sample(&text, "bizcred_issuer_credentials_issued_total"),
        Some(0.0),
        "{text}"
    );
    // A total kept by the store: what counts is its increase.
    let changes = sample(&text, "bizcred_issuer_status_changes_total").expect("changes");

    // One credential issued over OpenID4VCI, then revoked.
    let (s, a) = call(
        &app,
        post(
            "/admin/applications",
            "application/json",
            json!({"credential_type": "certificate-of-incorporation", "claims": incorporation()})
                .to_string(),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let id = json(&a)["application_id"].as_str().expect("id").to_owned();
    let (s, o) = call(
        &app,
        post(
            &format!("/admin/applications/{id}/approve"),
            "application/json",
            "{}".into(),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let o = json(&o);
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
        &app,
        post("/token", "application/x-www-form-urlencoded", form, None),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let token = json(&t)["access_token"].as_str().expect("token").to_owned();
    let (_, n) = call(
        &app,
        post("/nonce", "application/json", String::new(), None),
    )
    .await;
    let nonce = json(&n)["c_nonce"].as_str().expect("nonce").to_owned();
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let proof = oid4vci::proof_jwt(&holder, url, Some(&nonce), now()).expect("proof");
    let (s, c) = call(
        &app,
        post(
            "/credential",
            "application/json",
            json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}}).to_string(),
            Some(&token),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let (_, list) = call(
        &app,
        Request::get("/admin/credentials")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    let cred = json(&list)[0]["id"]
        .as_str()
        .expect("credential id")
        .to_owned();
    let (s, r) = call(
        &app,
        post(
            &format!("/admin/credentials/{cred}/revoke"),
            "application/json",
            json!({"reason": "dissolved"}).to_string(),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(call(&app, get("/status/1")).await.0, StatusCode::OK);

    let (s, text) = call(&app, get("/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        sample(&text, "bizcred_issuer_credentials_issued_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "bizcred_issuer_status_changes_total"),
        Some(changes + 1.0),
        "{text}"
    );
    let age = sample(&text, "bizcred_issuer_status_list_age_seconds").expect("age");
    assert!((0.0..=60.0).contains(&age), "{age}");
    for route in [
        "route=\"/credential\",method=\"POST\",status=\"2xx\"} 1",
        "route=\"/admin/credentials/{id}/{action}\",method=\"POST\",status=\"2xx\"} 1",
        "route=\"/status/{n}\",method=\"GET\",status=\"2xx\"} 1",
    ] {
        assert!(
            text.contains(&format!("bizcred_http_requests_total{{{route}")),
            "{route} in\n{text}"
        );
    }
    // No identifier reaches a label.
    for id in [cred.as_str(), id.as_str(), code] {
        assert!(!text.contains(id), "{id} in\n{text}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizcred-issuer"));
    c.env("BIZCRED_ISSUER_PASSPHRASE", "pw")
        .env_remove("RUST_LOG")
        .env_remove("BIZCRED_LOG_FORMAT");
    c
}

#[test]
fn serve_over_https_with_json_logs_and_stop_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let url = format!("https://localhost:{port}");
    let cfg = dir.path().join("agency.toml");
    std::fs::write(&cfg, config(dir.path(), &url, port)).expect("config");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
    let init = bin()
        .args(["--json", "init", "--config"])
        .arg(&cfg)
        .output()
        .expect("init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let log = dir.path().join("stderr.log");
    let mut child = bin()
        .args(["--json", "-v", "--log-format", "json", "serve", "--config"])
        .arg(&cfg)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let started = json(&line);
    assert_eq!(
        started["url"].as_str(),
        Some(format!("https://127.0.0.1:{port}").as_str()),
        "{line}"
    );

    let client = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).expect("pem"),
        )
        .build()
        .expect("client");
    let fetch = |path: &str| {
        let r = client.get(format!("{url}{path}")).send().expect(path);
        (r.status().as_u16(), r.text().expect("body"))
    };
    assert_eq!(fetch("/healthz"), (200, "ok".to_owned()));
    let (s, ready) = fetch("/readyz");
    assert_eq!(s, 200, "{ready}");
    assert_eq!(
        json(&ready)["checks"],
        json!({"storage": "ok", "keys": "ok"})
    );
    // The desk is on the same server.
    assert_eq!(fetch("/desk/login").0, 200);
    assert_eq!(
        fetch("/credential-offer/SECRET-OFFER-4711?name=Jane").0,
        404
    );
    assert_eq!(fetch("/status/1").0, 200);
    let (s, metrics) = fetch("/metrics");
    assert_eq!(s, 200);
    assert_eq!(
        sample(&metrics, "bizcred_issuer_credentials_issued_total"),
        Some(0.0)
    );
    assert!(
        metrics.contains(
            "bizcred_http_requests_total{route=\"/credential-offer/{id}\",method=\"GET\",status=\"4xx\"} 1"
        ),
        "{metrics}"
    );
    assert!(sample(&metrics, "bizcred_issuer_status_list_age_seconds").is_some());
    assert!(!metrics.contains("SECRET-OFFER-4711"));

    // SIGTERM: the issuer stops serving and exits 0.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Every log line is a JSON object; requests are logged by route template, never by path.
    let logs = std::fs::read_to_string(&log).expect("logs");
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(json)
        .collect();
    assert!(lines.iter().all(Value::is_object), "{logs}");
    assert!(
        lines.iter().any(|l| l["route"] == "/credential-offer/{id}"
            && l["status"] == 404
            && l["level"] == "INFO"),
        "{logs}"
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{logs}");
    for secret in ["SECRET-OFFER-4711", "Jane"] {
        assert!(!logs.contains(secret), "{secret} in\n{logs}");
    }
}
