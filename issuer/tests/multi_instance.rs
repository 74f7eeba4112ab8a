//! The real `bizcred-issuer` binary on PostgreSQL, on loopback.
//!
//! * `migrate`: a sled deployment moved with `migrate --from`, its old store refused by
//!   `serve` from then on, the moved issuer served from the database; a database not
//!   migrated refused by `serve`; `migrate` without a database refused.
//! * Three `serve` instances on one database under concurrent OpenID4VCI load (each step of
//!   each issuance sent to an instance drawn at random), one of them killed with `kill -9`
//!   in the middle: every credential answered 200 is recorded, with the status index it
//!   names, no index is held twice, a pre-authorized code and a nonce replayed at another
//!   instance are refused, the audit chain verifies, and the status list any instance
//!   publishes afterwards carries the changes made on the others.
//!
//! Needs `BIZCRED_TEST_DATABASE_URL` (see `common`): without it these say SKIPPED loudly and
//! pass; under `CI=true` they fail.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, PublicKey, SecretKey};
use bizcred_core::status_list::{self, Status};
use bizcred_core::{oid4vci, sd_jwt, sd_jwt_vc, webvh};
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use common::TestDb;

const PASS: &str = "correct horse battery staple";
const TOKEN: &str = "multi-instance-staff-token";
const PUBLIC: &str = "http://localhost:18091";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An `agency.toml` listening on a port of the system's choosing (so any number of instances
/// share it), with the issuer's records in `database` when given.
fn config(storage: &Path, database: Option<&str>) -> String {
    let database = database.map_or(String::new(), |u| format!("database = {u:?}\n"));
    format!(
        "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{PUBLIC}\"\nlisten = \"127.0.0.1:0\"\n[storage]\npath = {:?}\n{database}[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 256\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        storage.to_string_lossy(),
        bizcred_issuer::store::sha256_hex(TOKEN.as_bytes())
    )
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizcred-issuer"));
    c.env("BIZCRED_ISSUER_PASSPHRASE", PASS)
        .env_remove("BIZCRED_ISSUER_DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("BIZCRED_LOG_FORMAT");
    c
}

/// Runs `bizcred-issuer --json args`: (exit code, last JSON line of stdout, stderr).
fn run(args: &[&str]) -> (i32, Value, String) {
    let out = bin().arg("--json").args(args).output().expect("run");
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

fn ok(args: &[&str]) -> Value {
    let (code, v, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {v} {err}");
    v
}

/// A serving instance; killed (`kill -9`) when dropped.
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

/// `serve`: the instance once it listens, or what it said when it stopped instead.
fn serve(cfg: &Path, extra: &[&str]) -> Result<Instance, String> {
    let mut child = bin()
        .args(["--json", "serve", "--config"])
        .arg(cfg)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let addr = serde_json::from_str::<Value>(&line)
        .ok()
        .and_then(|v| v["listening"].as_str().map(str::to_owned));
    match addr {
        Some(addr) => Ok(Instance {
            child,
            url: format!("http://{addr}"),
        }),
        None => {
            // It said why it stopped (or it is stuck): it does not serve either way.
            let _ = child.kill();
            let _ = child.wait();
            Err(line)
        }
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn claims() -> Value {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    ))
    .expect("json");
    v.as_object_mut().expect("o").remove("business_number");
    v
}

#[test]
fn migrate_moves_a_sled_deployment_and_its_old_store_is_not_served_again() {
    let Some(server) = common::server("bizcred-issuer migrate") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("data");
    let db = TestDb::create(&server);
    let (sled_cfg, pg_cfg) = (dir.path().join("sled.toml"), dir.path().join("pg.toml"));
    std::fs::write(&sled_cfg, config(&storage, None)).expect("config");
    std::fs::write(&pg_cfg, config(&storage, Some(&db.url))).expect("config");
    let did = ok(&["init", "--config", &sled_cfg.to_string_lossy()])["did"]
        .as_str()
        .expect("did")
        .to_owned();
    // A credential's worth of records on sled (the serve writes the first signed list).
    {
        let sled = serve(&sled_cfg, &[]).expect("serve on sled");
        assert_eq!(
            client()
                .get(format!("{}/status/1", sled.url))
                .send()
                .expect("list")
                .status(),
            200
        );
    }

    // Not migrated: serve refuses the database; migrate needs one.
    let e = serve(&pg_cfg, &[]).err().expect("not migrated");
    assert!(e.contains("migrate"), "{e}");
    let (code, v, _) = run(&["migrate", "--config", &sled_cfg.to_string_lossy()]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("no PostgreSQL database")),
        "{v}"
    );

    // The move (sled exits asynchronously: a store still locked is retried shortly).
    let deadline = Instant::now() + Duration::from_secs(20);
    let moved = loop {
        let (code, v, err) = run(&[
            "migrate",
            "--config",
            &pg_cfg.to_string_lossy(),
            "--from",
            &storage.to_string_lossy(),
        ]);
        if code == 0 {
            break v;
        }
        assert!(Instant::now() < deadline, "{v} {err}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(moved["moved"]["verified"], true, "{moved}");
    assert_eq!(moved["moved"]["already"], false, "{moved}");
    assert_eq!(
        moved["moved"]["counts"]["signed status lists"], 1,
        "{moved}"
    );
    assert!(moved["database"].as_str().is_some_and(|d| !d.contains('?')));
    // Again: already there, nothing written.
    let again = ok(&[
        "migrate",
        "--config",
        &pg_cfg.to_string_lossy(),
        "--from",
        &storage.to_string_lossy(),
    ]);
    assert_eq!(again["moved"]["already"], true, "{again}");

    // The sled store is refused; the database serves the same issuer, its chain intact.
    let e = serve(&sled_cfg, &[]).err().expect("moved");
    assert!(e.contains("moved to PostgreSQL"), "{e}");
    let pg = serve(&sled_cfg, &["--database", &db.url]).expect("serve on PostgreSQL");
    let log = client()
        .get(format!("{}/.well-known/did.jsonl", pg.url))
        .send()
        .expect("log")
        .text()
        .expect("text");
    assert!(log.contains(&did), "{log}");
    // Ready while the database's migrations are this binary's; not once a newer one migrated
    // it.
    let ready = || {
        let r = client()
            .get(format!("{}/readyz", pg.url))
            .send()
            .expect("readyz");
        (r.status().as_u16(), r.text().expect("body"))
    };
    assert_eq!(ready().0, 200);
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', TRUE, '\\x00', 0)",
    );
    let (s, body) = ready();
    assert_eq!(s, 503, "{body}");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["failing"], json!(["storage"]), "{body}");
    db.execute("DELETE FROM _sqlx_migrations WHERE version = 99990101000000");
    assert_eq!(ready().0, 200);
    drop(pg);
    let audit = ok(&["audit", "verify", "--config", &pg_cfg.to_string_lossy()]);
    assert_eq!(audit["valid"], true, "{audit}");
    assert_eq!(
        audit["entries"], moved["moved"]["audit_entries"],
        "{audit} {moved}"
    );
}

/// One issuance over OpenID4VCI, each step at an instance drawn from the live ones.
struct Load {
    urls: Vec<String>,
    alive: Vec<AtomicBool>,
    http: reqwest::blocking::Client,
}

/// What an issuance ended with.
enum Outcome {
    /// 200: the credential and its record id.
    Issued(String, String),
    /// A step's answer was lost (an instance died): the issuance is abandoned.
    Lost,
}

impl Load {
    fn pick(&self, not: Option<usize>) -> usize {
        loop {
            let i = (OsRng.next_u32() as usize) % self.urls.len();
            if self.alive[i].load(Ordering::SeqCst) && Some(i) != not {
                return i;
            }
        }
    }

    /// Sends a request to a live instance; a connection that fails (a killed instance) is
    /// tried again at another, `retry` times. Answers the instance and (status, body).
    fn send(
        &self,
        retry: bool,
        not: Option<usize>,
        make: impl Fn(&reqwest::blocking::Client, &str) -> reqwest::blocking::RequestBuilder,
    ) -> Option<(usize, u16, Value)> {
        for _ in 0..5 {
            let i = self.pick(not);
            match make(&self.http, &self.urls[i]).send() {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.json().unwrap_or(Value::Null);
                    return Some((i, status, body));
                }
                Err(_) if retry => continue,
                Err(_) => return None,
            }
        }
        None
    }

    fn admin(&self, path: &str, body: Value) -> Option<(u16, Value)> {
        self.send(false, None, |c, u| {
            c.post(format!("{u}{path}")).bearer_auth(TOKEN).json(&body)
        })
        .map(|(_, s, v)| (s, v))
    }

    fn issue(&self, replays: &AtomicUsize) -> Outcome {
        let Some((201, app)) = self.admin(
            "/admin/applications",
            json!({"credential_type": "certificate-of-incorporation", "claims": claims()}),
        ) else {
            return Outcome::Lost;
        };
        let id = app["application_id"].as_str().expect("id").to_owned();
        let Some((201, o)) = self.admin(&format!("/admin/applications/{id}/approve"), json!({}))
        else {
            return Outcome::Lost;
        };
        let oid4vci::OfferRef::ByValue(offer) =
            oid4vci::parse_offer_uri(o["credential_offer_by_value"].as_str().expect("offer"))
                .expect("parse")
        else {
            panic!("by value")
        };
        let code = offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
            .as_str()
            .expect("code")
            .to_owned();
        let form = [
            ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT.to_owned()),
            ("pre-authorized_code", code),
            ("tx_code", o["tx_code"].as_str().expect("tx").to_owned()),
        ];
        let token = |not| self.send(false, not, |c, u| c.post(format!("{u}/token")).form(&form));
        let Some((at, 200, t)) = token(None) else {
            return Outcome::Lost;
        };
        let access = t["access_token"].as_str().expect("at").to_owned();
        // The code again, at another instance: used.
        if let Some((_, s, v)) = token(Some(at)) {
            assert_eq!(
                (s, v["error"].as_str()),
                (400, Some("invalid_grant")),
                "{v}"
            );
            replays.fetch_add(1, Ordering::SeqCst);
        }
        let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        // A lost answer is asked again with the same token and a fresh proof (the retry of
        // a lost response), at another instance.
        for _ in 0..3 {
            let Some((_, 200, n)) = self.send(true, None, |c, u| c.post(format!("{u}/nonce")))
            else {
                continue;
            };
            let proof =
                oid4vci::proof_jwt(&holder, PUBLIC, n["c_nonce"].as_str(), now()).expect("proof");
            let body = json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}});
            let credential = |not| {
                self.send(false, not, |c, u| {
                    c.post(format!("{u}/credential"))
                        .bearer_auth(&access)
                        .json(&body)
                })
            };
            match credential(None) {
                Some((at, 200, r)) => {
                    // The same proof (its nonce) again, at another instance: refused.
                    if let Some((_, s, v)) = credential(Some(at)) {
                        assert_eq!(
                            (s, v["error"].as_str()),
                            (400, Some("invalid_nonce")),
                            "{v}"
                        );
                        replays.fetch_add(1, Ordering::SeqCst);
                    }
                    return Outcome::Issued(
                        r["credentials"][0]["credential"]
                            .as_str()
                            .expect("vc")
                            .to_owned(),
                        r["notification_id"].as_str().expect("id").to_owned(),
                    );
                }
                Some((_, s, v)) => panic!("credential: {s} {v}"),
                None => continue,
            }
        }
        Outcome::Lost
    }
}

#[test]
fn three_instances_on_one_database_one_killed_under_load() {
    let Some(server) = common::server("three issuer instances on one database") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db = TestDb::create(&server);
    let cfg = dir.path().join("agency.toml");
    std::fs::write(&cfg, config(&dir.path().join("data"), Some(&db.url))).expect("config");
    let cfg_s = cfg.to_string_lossy().into_owned();
    let m = ok(&["migrate", "--config", &cfg_s]);
    assert!(
        m["applied"].as_array().is_some_and(|a| !a.is_empty()),
        "{m}"
    );
    ok(&["init", "--config", &cfg_s]);
    let mut instances: Vec<Option<Instance>> = (0..3)
        .map(|_| Some(serve(&cfg, &[]).expect("serve")))
        .collect();
    let load = Arc::new(Load {
        urls: instances
            .iter()
            .map(|i| i.as_ref().expect("up").url.clone())
            .collect(),
        alive: (0..3).map(|_| AtomicBool::new(true)).collect(),
        http: client(),
    });

    // Eight clients, twenty issuances each; instance 0 is killed once a third are done.
    let (clients, each) = (8, 20);
    let issued: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (lost, replays) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (load, issued, lost, replays) =
                (load.clone(), issued.clone(), lost.clone(), replays.clone());
            std::thread::spawn(move || {
                for _ in 0..each {
                    match load.issue(&replays) {
                        Outcome::Issued(vc, id) => issued.lock().expect("lock").push((vc, id)),
                        Outcome::Lost => {
                            lost.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let third = clients * each / 3;
    while issued.lock().expect("lock").len() < third {
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    load.alive[0].store(false, Ordering::SeqCst);
    drop(instances[0].take()); // kill -9
    let killed_at = issued.lock().expect("lock").len();
    for w in workers {
        w.join().expect("client");
    }
    let elapsed = started.elapsed();
    let issued = issued.lock().expect("lock").clone();
    let lost = lost.load(Ordering::SeqCst);
    eprintln!(
        "three instances, one killed after {killed_at} credentials: {} issued with 200, {lost} \
         abandoned (an answer lost with the instance), {} replays refused, in {elapsed:?}",
        issued.len(),
        replays.load(Ordering::SeqCst)
    );
    assert!(issued.len() > killed_at, "the others went on issuing");
    assert!(replays.load(Ordering::SeqCst) > 0);
    let live = || {
        instances
            .iter()
            .flatten()
            .map(|i| i.url.clone())
            .collect::<Vec<_>>()
    };
    let (one, two) = (live()[0].clone(), live()[1].clone());

    // Every credential answered 200 is recorded, with the index it names; no index twice.
    let http = client();
    let log = http
        .get(format!("{one}/.well-known/did.jsonl"))
        .send()
        .expect("log")
        .text()
        .expect("text");
    let (kid, _, _) = status_list::peek(
        &http
            .get(format!("{one}/status/1"))
            .send()
            .expect("list")
            .text()
            .expect("token"),
    )
    .expect("peek");
    let key: PublicKey = webvh::verify_log(&log, None, now() + 60)
        .versions
        .last()
        .expect("version")
        .verification_method(&kid)
        .expect("the signing key");
    let records: Vec<Value> = http
        .get(format!("{two}/admin/credentials"))
        .bearer_auth(TOKEN)
        .send()
        .expect("list")
        .json()
        .expect("json");
    let by_id: BTreeMap<&str, &Value> = records
        .iter()
        .map(|r| (r["id"].as_str().expect("id"), r))
        .collect();
    let held: HashSet<(u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r["status_list"].as_u64().unwrap_or(1),
                r["status_idx"].as_u64().expect("idx"),
            )
        })
        .collect();
    assert_eq!(held.len(), records.len(), "an index is held twice");
    for (vc, id) in &issued {
        let rec = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} not recorded"));
        let sd = sd_jwt::SdJwt::parse(vc).expect("parse");
        let v = sd_jwt_vc::verify(
            &sd,
            &key,
            &sd_jwt_vc::VerifyOptions {
                now: now(),
                clock_skew: 60,
                key_binding: None,
            },
        )
        .expect("verifies");
        let status = v.status.expect("status");
        assert_eq!(Some(status.idx), rec["status_idx"].as_u64(), "{id}");
        assert_eq!(
            status.uri,
            format!(
                "{PUBLIC}/status/{}",
                rec["status_list"].as_u64().unwrap_or(1)
            )
        );
    }

    // Status changes on one instance and another; the list each publishes afterwards carries
    // them all, re-signed.
    let change = |url: &str, id: &str, action: &str| {
        let r = http
            .post(format!("{url}/admin/credentials/{id}/{action}"))
            .bearer_auth(TOKEN)
            .json(&json!({"reason": "test"}))
            .send()
            .expect(action);
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    };
    let ids: Vec<&str> = issued.iter().map(|(_, id)| id.as_str()).take(5).collect();
    for (n, id) in ids.iter().enumerate() {
        let (url, action) = match n {
            0 | 1 => (&one, "revoke"),
            2 => (&two, "revoke"),
            _ => (&two, "suspend"),
        };
        change(url, id, action);
    }
    for url in [&one, &two] {
        let token = http
            .get(format!("{url}/status/1"))
            .send()
            .expect("status")
            .text()
            .expect("token");
        let list = status_list::verify_token(&token, &format!("{PUBLIC}/status/1"), &key, now())
            .expect("the list verifies");
        for r in &records {
            let id = r["id"].as_str().expect("id");
            let want = match ids.iter().position(|i| *i == id) {
                Some(0..=2) => Status::Invalid,
                Some(_) => Status::Suspended,
                None => Status::Valid,
            };
            let idx = r["status_idx"].as_u64().expect("idx");
            assert_eq!(list.list.get(idx).expect("entry"), want, "{id} at {url}");
        }
    }

    // The audit chain is one chain: every issuance and change in it once.
    let audit = ok(&["audit", "verify", "--config", &cfg_s]);
    assert_eq!(audit["valid"], true, "{audit}");
    let store = bizcred_issuer::store::Store::connect(&db.url, 1).expect("connect");
    let entries = store.audit_entries().expect("entries");
    let count = |event: &str| entries.iter().filter(|e| e["event"] == event).count();
    assert_eq!(count("credential_issued"), records.len());
    assert_eq!(count("status_changed"), 5);
    assert_eq!(audit["entries"].as_u64(), Some(entries.len() as u64));
    drop(instances);
}
