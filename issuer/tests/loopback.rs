//! The real `bizcred-issuer` binary on loopback: init, serve, issue over HTTP, and a
//! `kill -9` under load that loses no issued credential's record and never reuses an index.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bizcred_core::keys::{Algorithm, SecretKey};
use bizcred_core::oid4vci;
use serde_json::{json, Value};

const TOKEN: &str = "loopback-staff-token";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizcred-issuer"));
    c.env("BIZCRED_ISSUER_PASSPHRASE", "pw");
    c
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn issue_over_http_then_kill_9_under_load() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://localhost:{port}");
    let cfg = dir.path().join("agency.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{url}\"\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"r.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.path().join("data").to_string_lossy(),
            bizcred_issuer::store::sha256_hex(TOKEN.as_bytes())
        ),
    )
    .expect("config");
    // A missing setting is a clear startup error.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[agency]\nname_en = \"x\"\n").expect("w");
    let out = bin()
        .args(["serve", "--config"])
        .arg(&broken)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing field"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

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
    let mut child = bin()
        .args(["--json", "serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    assert!(line.contains("listening"), "{line}");

    let client = reqwest::blocking::Client::new();
    let claims: Value = {
        let mut v: Value = serde_json::from_str(include_str!(
            "../../schemas/examples/valid/certificate-of-incorporation.json"
        ))
        .expect("json");
        v.as_object_mut().expect("o").remove("business_number");
        v
    };
    // Prepare offers, then redeem them from two threads while the process is killed.
    let mut offers = Vec::new();
    for _ in 0..60 {
        let app: Value = client
            .post(format!("{url}/admin/applications"))
            .bearer_auth(TOKEN)
            .json(&json!({"credential_type": "certificate-of-incorporation", "claims": claims}))
            .send()
            .expect("apply")
            .json()
            .expect("json");
        let id = app["application_id"].as_str().expect("id").to_owned();
        let o: Value = client
            .post(format!("{url}/admin/applications/{id}/approve"))
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .expect("approve")
            .json()
            .expect("json");
        let oid4vci::OfferRef::ByValue(offer) =
            oid4vci::parse_offer_uri(o["credential_offer_by_value"].as_str().expect("offer"))
                .expect("parse")
        else {
            panic!("by value")
        };
        offers.push((
            offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
                .as_str()
                .expect("code")
                .to_owned(),
            o["tx_code"].as_str().expect("tx").to_owned(),
        ));
    }
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let queue = Arc::new(Mutex::new(offers));
    let pid = child.id();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (queue, acknowledged, url) = (queue.clone(), acknowledged.clone(), url.clone());
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let holder = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
            loop {
                let Some((code, tx)) = queue.lock().expect("q").pop() else { return };
                let Ok(r) = client.post(format!("{url}/token")).form(&[("grant_type", oid4vci::PRE_AUTHORIZED_GRANT), ("pre-authorized_code", &code), ("tx_code", &tx)]).send() else { return };
                let Ok(t) = r.json::<Value>() else { return };
                let Some(token) = t["access_token"].as_str() else { return };
                let Ok(n) = client.post(format!("{url}/nonce")).send().and_then(|r| r.json::<Value>()) else { return };
                let proof = oid4vci::proof_jwt(&holder, &url, n["c_nonce"].as_str(), now()).expect("proof");
                let Ok(r) = client.post(format!("{url}/credential")).bearer_auth(token).json(&json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}})).send() else { return };
                let Ok(body) = r.json::<Value>() else { return };
                if let Some(c) = body["credentials"][0]["credential"].as_str() {
                    acknowledged.lock().expect("a").push(bizcred_issuer::store::sha256_hex(c.as_bytes()));
                }
            }
        }));
    }
    // The kill lands under load, not at a guessed delay: once 20 issuances are acknowledged
    // (with offers left, so both workers are mid-flow), the process is killed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while acknowledged.lock().expect("a").len() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never reached 20 issuances"
        );
        std::thread::yield_now();
    }
    let left_at_kill = queue.lock().expect("q").len();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    let _ = child.wait();
    for w in workers {
        w.join().expect("worker");
    }
    assert!(
        left_at_kill > 0,
        "every offer was used before the kill: it did not land under load"
    );
    let acknowledged = acknowledged.lock().expect("a").clone();
    assert!(acknowledged.len() >= 20, "{} issued", acknowledged.len());

    // The audit chain is intact, every acknowledged credential has its record, and no status
    // index is shared.
    let out = bin()
        .args(["--json", "audit", "verify", "--config"])
        .arg(&cfg)
        .output()
        .expect("audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let store =
        bizcred_issuer::store::Store::open(&dir.path().join("data").join("db")).expect("store");
    let records = store.credentials().expect("records");
    let digests: HashSet<&str> = records
        .iter()
        .map(|r| r.credential_sha256.as_str())
        .collect();
    for a in &acknowledged {
        assert!(
            digests.contains(a.as_str()),
            "an acknowledged credential lost its record"
        );
    }
    let indices: HashSet<u64> = records.iter().map(|r| r.status_idx).collect();
    assert_eq!(
        indices.len(),
        records.len(),
        "a status index was allocated twice"
    );
    assert!(records.len() >= acknowledged.len());
}
