//! Three real `bizcred-verifier serve --database` processes on one PostgreSQL database, on
//! loopback, each with its own copy of the data directory (as an operator copies or mounts
//! it). A request made on instance A is answered by the wallet on instance B and verified once
//! (ACCEPT); the same answer replayed to instance C is refused (`UNKNOWN_STATE`); the result
//! is read from A and C, and the bank page's verdict (with the disclosed claims) and history
//! are the same on every instance. One answer posted to all three at once is verified once;
//! `--max-pending` bounds the requests of all instances together. Before `migrate`, `serve`
//! refuses the database (`DATABASE_NOT_MIGRATED`, with the command that fixes it). A data
//! directory a service kept its requests and receipts in moves to the database with
//! `migrate --from`, and its waiting request is answered there.
//!
//! Needs `BIZCRED_TEST_DATABASE_URL` (see `common`): without it this says SKIPPED loudly and
//! passes; under `CI=true` it fails.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand_core::OsRng;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use bizcred_verifier::staff::{self, Actor, Role};
use bizcred_verifier::store::shared::{DirShared, SharedStore};
use bizcred_verifier::store::{OpenRequest, VerifierDir};

use common::world::{loan_policy, nonce_of, rejected_report, response_form, World, NOW};
use common::TestDb;

const PASS: &str = "verifier key passphrase";
const OFFICER_PW: &str = "officer password 1";
/// Every instance's public URL: the address of the proxy in front of them.
const PUBLIC: &str = "https://bank.test";

fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config/policies/loan-application.toml")
}

/// The offset that sets the binaries' clocks to the fixtures' time.
fn offset() -> String {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    (NOW - real).to_string()
}

fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizcred-verifier"));
    c.env("BIZCRED_VERIFIER_PASSPHRASE", PASS)
        .env("BIZCRED_CLOCK_OFFSET_SECONDS", offset())
        .env_remove("BIZCRED_VERIFIER_DIR")
        .env_remove("BIZCRED_VERIFIER_DATABASE_URL")
        .arg("--json")
        .arg("--data-dir")
        .arg(dir);
    c
}

/// Runs a command: (exit code, last JSON line of stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = bin(dir).args(args).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A serving instance; killed when dropped.
struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Killing a process that already exited fails; there is nothing else to do for it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_args<'a>(database: &'a str, policy: &'a str) -> Vec<&'a str> {
    vec![
        "serve",
        "--policy",
        policy,
        "--listen",
        "127.0.0.1:0",
        "--public-url",
        PUBLIC,
        "--max-pending",
        "4",
        "--database",
        database,
    ]
}

fn serve(dir: &Path, database: &str) -> Instance {
    let policy = policy_file().to_string_lossy().into_owned();
    let mut child = bin(dir)
        .args(serve_args(database, &policy))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not started: {line}"));
    let addr = v["listening"]
        .as_str()
        .or(v["url"].as_str())
        .expect("address")
        .trim_start_matches("http://")
        .to_owned();
    Instance {
        child,
        url: format!("http://{addr}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn new_request(i: &Instance, token: &str) -> (StatusCode, Value) {
    json_of(
        client()
            .post(format!("{}/requests", i.url))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .expect("post"),
    )
    .await
}

async fn answer(i: &Instance, form: &str) -> (StatusCode, Value) {
    json_of(
        client()
            .post(format!("{}/oid4vp/response", i.url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .expect("post"),
    )
    .await
}

async fn transaction(i: &Instance, token: &str, tx: &str) -> (StatusCode, Value) {
    json_of(
        client()
            .get(format!("{}/transactions/{tx}", i.url))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .expect("get"),
    )
    .await
}

/// The wallet: fetches the request object of `tx` from `from` and answers it (the form).
async fn wallet(world: &World, from: &Instance, tx: &str) -> String {
    let r = client()
        .get(format!("{}/oid4vp/request/{tx}", from.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let jwt = r.text().await.expect("jwt");
    let (nonce, aud) = nonce_of(&jwt);
    response_form(&world.vp_token(&loan_policy(), &aud, &nonce), tx)
}

/// A member of staff's browser on one instance's bank page (cookies by hand).
struct Browser {
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> (StatusCode, String, String) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header(COOKIE, cookie).send().await.expect("send");
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().expect("cookie");
            let kv = c.split(';').next().unwrap_or(c);
            if let Some((k, v)) = kv.split_once('=') {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, location, resp.text().await.expect("body"))
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String, String) {
        let r = client().get(format!("{}{path}", self.base));
        self.send(r).await
    }

    async fn signed_in(base: &str) -> Browser {
        let mut b = Browser {
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        };
        let (_, _, login) = b.get("/desk/login").await;
        let csrf = login
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a csrf field")
            .to_owned();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("csrf", csrf.as_str()),
                ("name", "olu"),
                ("password", OFFICER_PW),
            ])
            .finish();
        let r = client()
            .post(format!("{}/desk/login", b.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let (status, _, page) = b.send(r).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        b
    }
}

#[test]
fn a_response_to_another_instance_is_verified_once() {
    let Some(server) = common::server("three verifier instances on one database") else {
        return;
    };
    let db = TestDb::create(&server);
    let world = World::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    // The operator's data directory: key, anchor, the bundle, an officer; copied to each
    // instance.
    let origin = tmp.path().join("origin");
    let (dir, token) = VerifierDir::init(
        &origin,
        world.reg.anchor(),
        None,
        PASS.as_bytes(),
        &mut OsRng,
    )
    .expect("init");
    let token = token.expose().to_owned();
    dir.store_bundle(&world.bundle(), NOW)
        .expect("store")
        .expect("accepted");
    staff::add(
        &staff::accounts(&origin),
        &Actor::Operator,
        "olu",
        Role::Officer,
        OFFICER_PW,
        NOW,
    )
    .expect("olu");
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let d = tmp.path().join(n);
            copy_dir(&origin, &d);
            d
        })
        .collect();

    // Not migrated: serve refuses the database, with its code and the command that fixes it.
    let policy = policy_file().to_string_lossy().into_owned();
    let (code, _, err) = run(&dirs[0], &serve_args(&db.url, &policy));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("DATABASE_NOT_MIGRATED"), "{err}");
    assert!(err.contains("bizcred-verifier migrate --database"), "{err}");
    let (code, v, err) = run(&dirs[0], &["migrate", "--database", &db.url]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["applied"], serde_json::json!([1]), "{v}");
    let (code, v, _) = run(&dirs[0], &["migrate", "--database", &db.url]);
    assert_eq!(code, 0);
    assert_eq!(v["applied"], serde_json::json!([]), "current: {v}");

    let a = serve(&dirs[0], &db.url);
    let b = serve(&dirs[1], &db.url);
    let c = serve(&dirs[2], &db.url);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(three_instances(&world, &token, [&a, &b, &c]));
}

/// What the wallet, the operator and the officers see of instances `a`, `b` and `c`.
async fn three_instances(world: &World, token: &str, [a, b, c]: [&Instance; 3]) {
    // A makes the request; the wallet fetches it from B and answers B.
    let (st, v) = new_request(a, token).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let tx = v["transaction_id"].as_str().expect("tx").to_owned();
    assert!(v["request_uri"]
        .as_str()
        .expect("uri")
        .contains("bank.test"));
    let form = wallet(world, b, &tx).await;
    let (st, v) = answer(b, &form).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Replayed to C: refused, with the reason code, and nothing changes.
    let (st, v) = answer(c, &form).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "UNKNOWN_STATE", "{v}");
    let (st, _) = answer(a, &form).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "and to A");
    // The result is read from A (which made the request) and from C.
    for i in [a, c] {
        let (st, r) = transaction(i, token, &tx).await;
        assert_eq!(st, StatusCode::OK, "{r}");
        assert_eq!(r["report"]["verdict"], "ACCEPT", "{r}");
        assert!(r["receipt"]["proof"].is_object(), "{r}");
    }
    // The request object is no longer served anywhere.
    let r = client()
        .get(format!("{}/oid4vp/request/{tx}", c.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The bank page on A: the waiting page leads to the verdict, with the disclosed claims
    // (the full report, from the database); the history on C lists it.
    let mut on_a = Browser::signed_in(&a.url).await;
    let (st, verdict, _) = on_a.get(&format!("/desk/wait/{tx}")).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(verdict.starts_with("/desk/verifications/"), "{verdict}");
    let (st, _, page) = on_a.get(&verdict).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(page.contains("data-verdict=\"ACCEPT\""), "{page}");
    assert!(page.contains("812345676"), "the disclosed business number");
    let mut on_c = Browser::signed_in(&c.url).await;
    let (_, _, history) = on_c.get("/desk/history").await;
    assert!(
        history.contains(&format!("href=\"{verdict}\"")),
        "{history}"
    );
    let (st, _, page) = on_c.get(&verdict).await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.contains("812345676"));

    // One answer posted to the three at once: verified once.
    let (_, v) = new_request(c, token).await;
    let tx2 = v["transaction_id"].as_str().expect("tx").to_owned();
    let form = wallet(world, a, &tx2).await;
    let (ra, rb, rc) = tokio::join!(answer(a, &form), answer(b, &form), answer(c, &form));
    let answers = [ra, rb, rc];
    let ok = answers
        .iter()
        .filter(|(st, _)| *st == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{answers:?}");
    for (st, v) in answers.iter().filter(|(st, _)| *st != StatusCode::OK) {
        assert_eq!(*st, StatusCode::BAD_REQUEST);
        assert_eq!(v["code"], "UNKNOWN_STATE", "{v}");
    }
    let (st, r) = transaction(b, token, &tx2).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["report"]["verdict"], "ACCEPT");

    // --max-pending 4 counts the requests of every instance.
    for (n, i) in [a, b, c, a].into_iter().enumerate() {
        let (st, v) = new_request(i, token).await;
        assert_eq!(st, StatusCode::CREATED, "request {n}: {v}");
    }
    for i in [a, b, c] {
        let (st, v) = new_request(i, token).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["code"], "TOO_MANY_PENDING", "{v}");
    }
}

#[test]
fn a_data_directory_moves_to_postgres_with_one_command() {
    let Some(server) = common::server("bizcred-verifier migrate --from") else {
        return;
    };
    let db = TestDb::create(&server);
    let world = World::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir_path = tmp.path().join("bank");
    let (dir, token) = VerifierDir::init(
        &dir_path,
        world.reg.anchor(),
        None,
        PASS.as_bytes(),
        &mut OsRng,
    )
    .expect("init");
    let token = token.expose().to_owned();
    dir.store_bundle(&world.bundle(), NOW)
        .expect("store")
        .expect("accepted");
    staff::add(
        &staff::accounts(&dir_path),
        &Actor::Operator,
        "olu",
        Role::Officer,
        OFFICER_PW,
        NOW,
    )
    .expect("olu");
    // What a service on the directory left: a request the wallet has not answered yet, and
    // the receipt of one it answered.
    let files = DirShared::open(&dir, NOW).expect("open");
    let waiting = OpenRequest::generate(
        &dir.config().client_id,
        &format!("{PUBLIC}/oid4vp/response"),
        Some("loan-application"),
        NOW,
        3600,
        &mut OsRng,
    );
    files.create(&waiting, NOW, 10).expect("create");
    let answered =
        OpenRequest::generate(&dir.config().client_id, PUBLIC, None, NOW, 600, &mut OsRng);
    files.create(&answered, NOW, 10).expect("create");
    files
        .take(&answered.pending.state, NOW)
        .expect("take")
        .expect("taken");
    let receipt = serde_json::json!({"policy": "loan-application", "verdict": "REJECT"});
    let kept = files
        .finish(
            &answered.pending.state,
            rejected_report(&answered.pending.state),
            receipt,
            NOW + 5,
            10,
        )
        .expect("finish");
    drop(files);

    let d = dir_path.as_path();
    let (code, v, err) = run(
        d,
        &[
            "migrate",
            "--database",
            &db.url,
            "--from",
            &d.to_string_lossy(),
        ],
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["applied"], serde_json::json!([1]), "{v}");
    assert_eq!(v["moved"]["requests"], 1, "{v}");
    assert_eq!(v["moved"]["receipts"], 1, "{v}");
    // Again: nothing new.
    let (code, v, _) = run(
        d,
        &[
            "migrate",
            "--database",
            &db.url,
            "--from",
            &d.to_string_lossy(),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(v["moved"]["requests"], 0, "{v}");
    assert_eq!(v["moved"]["already"], 1, "{v}");
    // Served from the database: the moved request is answered (ACCEPT), the history has the
    // old receipt.
    let a = serve(d, &db.url);
    let b = serve(d, &db.url);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let tx = &waiting.pending.state;
            let form = wallet(&world, &a, tx).await;
            let (st, v) = answer(&b, &form).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            let (st, r) = transaction(&a, &token, tx).await;
            assert_eq!(st, StatusCode::OK, "{r}");
            assert_eq!(r["report"]["verdict"], "ACCEPT", "{r}");
            let mut on_b = Browser::signed_in(&b.url).await;
            let (_, _, history) = on_b.get("/desk/history").await;
            assert!(
                history.contains(&format!("/desk/verifications/{}", kept.receipt_id)),
                "{history}"
            );
        });
}
