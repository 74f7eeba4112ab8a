//! The real `bizcred-wallet` binary against a bizcred issuer's applicant API, in the test
//! process on loopback: `apply` for a type without prerequisites (and the refusals: a type the
//! agency does not issue, a claim the applicant may not state), `applications` following the
//! agency's decisions (an offer with the command that receives it and when it expires, a
//! request for changes with its note, answered with `answer`), `receive` of the offer,
//! `withdraw`, a backup carrying the applications, an application the agency no longer holds
//! (kept as such, not asked again), and the list once the agency is gone (the last known
//! states, not an error). The capability link is printed by `apply` only. An agency answering
//! as another agency is refused before anything is sent to it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bizcred_issuer::{service, Config, Issuer};
use serde_json::{json, Value};
use zeroize::Zeroizing;

const BIN: &str = env!("CARGO_BIN_EXE_bizcred-wallet");
const TOKEN: &str = "staff-token";
const TYPE: &str = "certificate-of-incorporation";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An agency issuing certificates of incorporation (no prerequisites), served on a loopback
/// port from its own thread until `stop` is sent.
struct Agency {
    _dir: tempfile::TempDir,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Agency {
    fn start() -> Agency {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let url = format!("http://localhost:{port}");
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = format!(
            "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"{url}\"\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"{TYPE}\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.path().join("data").to_string_lossy(),
            bizcred_issuer::store::sha256_hex(TOKEN.as_bytes())
        );
        let config = Config::parse(&cfg).expect("config");
        let (issuer, _) =
            Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
        let app = service::app(Arc::new(issuer));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Agency {
            _dir: dir,
            url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Staff's decision through the admin API (`approve` with the claims the agency sets, or
    /// `request-changes` with a reason).
    fn admin(&self, id: &str, decision: &str, body: Value) -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/admin/applications/{id}/{decision}", self.url))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .expect("admin");
            let status = r.status();
            let v: Value = r.json().await.expect("json");
            assert!(status.is_success(), "{decision}: {status} {v}");
            v
        })
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("agency thread");
        }
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the wallet: exit code, stdout, stderr.
fn wallet(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("--wallet-dir")
        .arg(dir)
        .args(args)
        .env("BIZCRED_WALLET_PASSPHRASE", "a wallet passphrase")
        .env_remove("BIZCRED_WALLET_DIR")
        .output()
        .expect("run the wallet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the wallet with `--json` and reads its one JSON object.
fn wallet_json(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out, err) = wallet(dir, &all);
    let v = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {out}\n{err}"));
    (code, v, err)
}

fn by_application<'a>(list: &'a Value, application_id: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|a| a["application_id"] == application_id)
        .unwrap_or_else(|| panic!("{application_id} not in {list}"))
}

#[test]
fn apply_follow_receive_withdraw_and_an_agency_gone() {
    let mut agency = Agency::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let w = tmp.path().join("w");
    let (code, _, err) = wallet(&w, &["init"]);
    assert_eq!(code, 0, "{err}");

    // A type the agency does not issue: refused, naming the ones it does.
    let (code, v, _) = wallet_json(
        &w,
        &["apply", &agency.url, "--type", "liquor-sales-licence"],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "APPLICATION_TYPE_UNKNOWN");
    assert!(
        v["error"].as_str().expect("error").contains(TYPE),
        "lists what it issues: {v}"
    );
    // A claim only the agency sets: the agency's sentence and code.
    let (code, v, _) = wallet_json(
        &w,
        &[
            "apply",
            &agency.url,
            "--type",
            TYPE,
            "--claim",
            "corporation_number=5012345",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "APPLICANT_CLAIM_NOT_ALLOWED", "{v}");
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("(APPLICANT_CLAIM_NOT_ALLOWED)"),
        "{v}"
    );
    assert!(
        wallet_json(&w, &["applications"]).1 == json!([]),
        "nothing kept"
    );
    // The agency answers as another URL than the one named (here, its own under another
    // host name): refused before any application is sent.
    let other_name = agency.url.replace("localhost", "127.0.0.1");
    let (code, v, _) = wallet_json(
        &w,
        &[
            "apply",
            &format!("{other_name}/"),
            "--type",
            TYPE,
            "--claim",
            "legal_name=Jennifer Ventures Inc.",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "BAD_ISSUER_METADATA", "{v}");
    let msg = v["error"].as_str().expect("error");
    assert!(
        msg.contains(&other_name)
            && msg.contains(&agency.url)
            && msg.contains("no application was sent"),
        "{v}"
    );
    assert_eq!(
        wallet_json(&w, &["applications"]).1,
        json!([]),
        "nothing kept"
    );

    // Two applications: JSON values are taken as JSON, others as strings.
    let address = r#"registered_office_address={"street_address":"42 Ossington Avenue","locality":"Toronto","region":"ON","postal_code":"M6J 2Y7","country":"CA"}"#;
    let directors = r#"directors=[{"given_name":"Jennifer","family_name":"Jones"}]"#;
    let (code, first, err) = wallet_json(
        &w,
        &[
            "apply",
            &agency.url,
            "--type",
            TYPE,
            "--claim",
            "legal_name=Jennifer Ventures Inc.",
            "--claim",
            "entity_type=business_corporation",
            "--claim",
            address,
            "--claim",
            directors,
        ],
    );
    assert_eq!(code, 0, "{first} {err}");
    assert_eq!(first["result"], "applied");
    assert_eq!(first["state"], "awaiting_approval");
    assert_eq!(first["presentation"], Value::Null, "no prerequisites");
    let follow = first["follow_uri"].as_str().expect("follow_uri").to_owned();
    assert!(
        follow.starts_with(&format!("{}/applicant/", agency.url)),
        "{follow}"
    );
    let secret = follow.rsplit('.').next().expect("secret").to_owned();
    assert!(secret.len() >= 16, "{follow}");
    let a1 = first["application"]["application_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(first["application"].get("follow_uri").is_none());
    // The human form prints the link and the state too.
    let (code, out, err) = wallet(
        &w,
        &[
            "apply",
            &agency.url,
            "--type",
            TYPE,
            "--claim",
            "legal_name=Jennifer Ventures",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("state: awaiting_approval") && out.contains("/applicant/"),
        "{out}"
    );
    let (_, list, _) = wallet_json(&w, &["applications"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let a2 = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["application_id"] != a1.as_str())
        .expect("the second")["application_id"]
        .as_str()
        .expect("id")
        .to_owned();

    // The agency decides: an offer for the first, changes requested for the second.
    agency.admin(
        &a1,
        "approve",
        json!({"claims": {"corporation_number": "5012345", "incorporation_date": "2026-03-02", "jurisdiction": "CA-ON", "corporate_status": "active"}}),
    );
    agency.admin(
        &a2,
        "request-changes",
        json!({"reason": "The legal name needs its suffix (Inc.)."}),
    );
    let (code, list, _) = wallet_json(&w, &["applications"]);
    assert_eq!(code, 0);
    let text = list.to_string();
    assert!(
        !text.contains(&secret),
        "no capability without --links: {text}"
    );
    let one = by_application(&list, &a1);
    assert_eq!(one["state"], "offered", "{one}");
    assert_eq!(one["refresh"]["result"], "fresh");
    let offer = &one["offer"];
    assert!(offer["expires"].is_string(), "{offer}");
    assert_eq!(offer["expired"], false);
    let offer_uri = offer["credential_offer_uri"].as_str().expect("offer uri");
    let tx = offer["tx_code"].as_str().expect("tx_code");
    let cmd = offer["receive_command"].as_str().expect("receive command");
    assert!(cmd.contains(" receive ") && cmd.contains(tx), "{cmd}");
    let two = by_application(&list, &a2);
    assert_eq!(two["state"], "changes_requested");
    assert_eq!(two["note"], "The legal name needs its suffix (Inc.).");
    let (_, human, _) = wallet(&w, &["applications"]);
    assert!(
        human.contains("the offer expires at")
            && human.contains("receive it with:")
            && human.contains("changes requested: The legal name"),
        "{human}"
    );
    let (_, linked, _) = wallet_json(&w, &["applications", "--links"]);
    assert_eq!(by_application(&linked, &a1)["follow_uri"], follow.as_str());

    // The offer is received with the command shown.
    let (code, out, err) = wallet(&w, &["receive", offer_uri, "--tx-code", tx]);
    assert_eq!(code, 0, "{out} {err}");

    // The second is answered: a claim the applicant may not state, and a value the schema
    // refuses, come back with the agency's sentence and code; the corrected name is taken
    // and the application waits for the agency again.
    let (code, v, _) = wallet_json(&w, &["answer", &a2, "--claim", "corporation_number=1"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "APPLICANT_CLAIM_NOT_ALLOWED", "{v}");
    let (code, v, _) = wallet_json(&w, &["answer", &a2, "--claim", "entity_type=sole_trader"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "CLAIMS_INVALID", "{v}");
    assert!(
        v["error"].as_str().expect("error").contains("/entity_type"),
        "names the field: {v}"
    );
    let (code, out, err) = wallet(
        &w,
        &[
            "answer",
            &a2,
            "--claim",
            "legal_name=Jennifer Ventures Inc.",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains(&format!(
            "application {a2} at {}: awaiting_approval",
            agency.url
        )),
        "{out}"
    );
    let (_, list, _) = wallet_json(&w, &["applications", "--no-refresh"]);
    assert_eq!(
        by_application(&list, &a2)["state"],
        "awaiting_approval",
        "kept: {list}"
    );
    // Once it waits for the agency again, its claims are the agency's to review: refused.
    let (code, v, _) = wallet_json(
        &w,
        &[
            "answer",
            &a2,
            "--claim",
            "legal_name=Jennifer Ventures Ltd.",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]
            .as_str()
            .expect("error")
            .contains("the agency answered 409"),
        "{v}"
    );
    let (code, _, err) = wallet(&w, &["answer", &a2]);
    assert_eq!(code, 2, "a claim is required: {err}");

    // The second is withdrawn (by the agency's id); the first can no longer be.
    let (code, v, err) = wallet_json(&w, &["withdraw", &a2, "--reason", "applied again"]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["application"]["state"], "withdrawn");
    let (code, v, _) = wallet_json(&w, &["withdraw", &a1]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], "APPLICATION_NOT_WITHDRAWABLE", "{v}");
    let (code, v, _) = wallet_json(&w, &["withdraw", "0000"]);
    assert_eq!((code, &v["code"]), (1, &json!("UNKNOWN_APPLICATION")));

    let (_, list, _) = wallet_json(&w, &["applications"]);
    assert_eq!(by_application(&list, &a1)["state"], "issued", "{list}");
    assert_eq!(by_application(&list, &a2)["state"], "withdrawn");

    // A backup carries the applications: restored into another wallet with the second's link
    // spoilt (as if the agency no longer held it), the agency answers CAPABILITY_INVALID and
    // the application is kept as no longer held by the agency.
    let backup = tmp.path().join("backup");
    let (code, v, err) = wallet_json(&w, &["export", "--out", &backup.to_string_lossy()]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["applications"], 2, "{v}");
    let sealed = std::fs::read(&backup).expect("backup");
    assert!(
        !sealed.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the follow links are sealed"
    );
    let pass = b"a wallet passphrase";
    let plain = bizcred_wallet::vault::open_backup(pass, &sealed).expect("open");
    let mut contents: Value = serde_json::from_slice(&plain).expect("contents");
    for a in contents["applications"]
        .as_array_mut()
        .expect("applications")
    {
        if a["application_id"] == a2.as_str() {
            let link = a["follow_uri"].as_str().expect("link").to_owned();
            a["follow_uri"] = json!(format!("{}x", &link[..link.len() - 1]));
        }
    }
    let spoilt =
        bizcred_wallet::vault::seal_backup(pass, &serde_json::to_vec(&contents).expect("contents"))
            .expect("seal");
    std::fs::write(&backup, spoilt).expect("write");
    let w2 = tmp.path().join("w2");
    assert_eq!(wallet(&w2, &["init"]).0, 0);
    let (code, v, err) = wallet_json(&w2, &["import", "--in", &backup.to_string_lossy()]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(
        (&v["imported"], &v["applications"]),
        (&json!(1), &json!(2)),
        "{v}"
    );
    let (code, list, err) = wallet_json(&w2, &["applications"]);
    assert_eq!(code, 0, "{list} {err}");
    assert_eq!(by_application(&list, &a1)["state"], "issued", "{list}");
    let gone = by_application(&list, &a2);
    assert_eq!(gone["state"], "no_longer_held", "{gone}");
    assert_eq!(gone["state_text"], "no longer held by the agency");
    assert_eq!(gone["refresh"]["result"], "no_longer_held");
    let (_, human, _) = wallet(&w2, &["applications"]);
    assert!(human.contains("no longer held by the agency"), "{human}");

    // The agency is gone: the last known states, said to be so, and no error exit.
    agency.stop();
    let (_, list, _) = wallet_json(&w2, &["applications"]);
    assert_eq!(
        by_application(&list, &a2)["refresh"]["result"],
        "no_longer_held",
        "not asked again: {list}"
    );
    assert_eq!(
        by_application(&list, &a1)["refresh"]["result"],
        "unreachable"
    );
    let (code, list, err) = wallet_json(&w, &["applications"]);
    assert_eq!(code, 0, "{list} {err}");
    for a in list.as_array().expect("list") {
        assert_eq!(a["refresh"]["result"], "unreachable", "{a}");
        assert_eq!(a["refresh"]["code"], "UNREACHABLE");
    }
    assert_eq!(by_application(&list, &a1)["state"], "issued");
    let (code, out, err) = wallet(&w, &["applications"]);
    assert_eq!(code, 0);
    assert!(out.contains("could not be reached"), "{out}");
    assert!(
        !out.contains(&secret) && !err.contains(&secret) && !list.to_string().contains(&secret),
        "the capability is in no error: {out} {err}"
    );
}
