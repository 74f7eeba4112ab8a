//! The real `bizcred-registry` binary on PostgreSQL, on loopback.
//!
//! * Three instances on one database: DID updates of three agencies submitted to all of them
//!   at once land once each, in one log every instance serves identically; the same signed
//!   entry sent to the three at once lands once; one instance is killed with `kill -9` under
//!   that load and the others keep appending within seconds; a bundle fetched before the kill
//!   and one fetched after verify against the same trust anchor (the verifier's import).
//! * A sled registry moved with `migrate --from`: verified, idempotent, the sled store refused
//!   from then on, the same signed checkpoint served from PostgreSQL, a database holding
//!   another log refused.
//!
//! Needs `BIZCRED_TEST_DATABASE_URL` (see `common`): without it these say SKIPPED loudly and
//! pass; under `CI=true` they fail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle::{self, TrustAnchor};
use bizcred_core::webvh;
use bizcred_registry::admin::{DataDir, KeyName};
use bizcred_schemas::ReasonCode;
use bizcred_test_support::Agency;
use rand_core::OsRng;
use serde_json::{json, Value};

use common::TestDb;

const PASS: &str = "correct horse battery staple";
const ORIGIN: &str = "registry.bizcred.test/log";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizcred-registry"));
    c.env("BIZCRED_REGISTRY_PASSPHRASE", PASS)
        .env_remove("BIZCRED_REGISTRY_TOKEN")
        .env_remove("BIZCRED_REGISTRY_DIR")
        .env_remove("BIZCRED_REGISTRY_DATABASE_URL");
    c
}

/// Runs `bizcred-registry --json args`: (exit code, last JSON line of stdout, stderr).
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

/// Runs a printed hint with `sh -c`, the binary first on the PATH.
fn run_hint(hint: &str) -> std::process::Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_bizcred-registry"))
        .parent()
        .expect("bin dir");
    let out = Command::new("sh")
        .arg("-c")
        .arg(hint)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("BIZCRED_REGISTRY_DATABASE_URL")
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "the hint {hint} runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

fn serve(dir: &Path, database: Option<&str>) -> Instance {
    let mut cmd = bin();
    cmd.args(["--json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir);
    if let Some(db) = database {
        cmd.env("BIZCRED_REGISTRY_DATABASE_URL", db);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not started: {line}"));
    Instance {
        child,
        url: format!("http://{}", v["listening"].as_str().expect("addr")),
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn text(url: &str) -> String {
    let r = client().get(url).send().expect("get");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.text().expect("text")
}

/// The size a signed checkpoint states.
fn size_of(checkpoint: &str) -> u64 {
    checkpoint
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("size")
}

/// An agency whose DID log the test extends: each update is signed with the pre-rotated key.
struct Updater {
    agency: Agency,
    log: webvh::VerifiedLog,
    update_key: SecretKey,
    step: i64,
}

impl Updater {
    fn new(agency: Agency) -> Updater {
        let log = webvh::verify_log(&agency.log, None, now());
        let update_key =
            SecretKey::from_bytes(Algorithm::EdDSA, &agency.next_update.to_bytes()).expect("key");
        Updater {
            agency,
            log,
            update_key,
            step: 0,
        }
    }

    /// The next update line and the key that will sign the one after.
    fn next_line(&mut self) -> (String, SecretKey) {
        let next = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let mut p = serde_json::Map::new();
        p.insert(
            "updateKeys".into(),
            json!([bizcred_core::did::multikey(&self.update_key.public_key())]),
        );
        p.insert(
            "nextKeyHashes".into(),
            json!([webvh::next_key_hash(&next.public_key())]),
        );
        let state = self.log.versions.last().expect("a version").state.clone();
        self.step += 1;
        let line = webvh::update(
            &self.log,
            state,
            p,
            now() - 3000 + self.step,
            &self.update_key,
        )
        .expect("update");
        (line, next)
    }

    fn landed(&mut self, line: &str, next: SecretKey) {
        self.log = webvh::verify_log(&format!("{}{line}\n", self.log.text()), None, now());
        assert!(self.log.error.is_none(), "{:?}", self.log.error);
        self.update_key = next;
    }
}

/// What a load client did: its DID, each acknowledged (line, index), when each was.
type ClientRun = (String, Vec<(String, u64)>, Vec<Instant>);

#[test]
fn three_instances_one_log_kill_9_and_bundles_before_and_after() {
    let Some(server) = common::server("several registry instances on one database") else {
        return;
    };
    let db = TestDb::create(&server);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("reg");
    let dir_s = dir.to_str().expect("path");
    // Serving refuses a database without this binary's migrations; the hint, run as printed
    // by a POSIX shell, migrates it; migrating again applies nothing.
    let (code, v, err) = run(&[
        "init",
        "--origin",
        ORIGIN,
        "--data-dir",
        dir_s,
        "--database",
        &db.url,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not migrated"), "{err}");
    let hint = v["hint"].as_str().expect("a hint");
    assert!(
        hint.starts_with("bizcred-registry migrate --database"),
        "{hint}"
    );
    run_hint(hint);
    let migrated = ok(&["migrate", "--database", &db.url]);
    assert_eq!(migrated["applied"], json!([]));
    assert_eq!(migrated["versions"], json!([1]));
    let init = ok(&[
        "init",
        "--origin",
        ORIGIN,
        "--data-dir",
        dir_s,
        "--database",
        &db.url,
    ]);
    let token = init["admin_token"].as_str().expect("token").to_owned();
    let anchor: TrustAnchor = serde_json::from_value(init["anchor"].clone()).expect("anchor");

    // Three agencies, onboarded through the data directory onto the database.
    let t = now() - 3600;
    let mut updaters = Vec::new();
    for (i, ty) in [
        "business-number",
        "municipal-business-licence",
        "liquor-sales-licence",
    ]
    .into_iter()
    .enumerate()
    {
        let a = Agency::new(&format!("agency{i}.bizcred.test"), t);
        let f = tmp.path().join(format!("{i}.jsonl"));
        std::fs::write(&f, &a.log).expect("write");
        ok(&[
            "onboard",
            "--did-log",
            f.to_str().expect("p"),
            "--name-en",
            "A",
            "--name-fr",
            "A",
            "--type",
            ty,
            "--data-dir",
            dir_s,
            "--database",
            &db.url,
        ]);
        updaters.push(Updater::new(a));
    }
    let instances: Vec<Instance> = (0..3).map(|_| serve(&dir, Some(&db.url))).collect();
    let urls: Vec<String> = instances.iter().map(|i| i.url.clone()).collect();

    // The bank's bundle before anything else happens.
    let before_text = text(&format!("{}/bundle?from=0", urls[0]));
    let before = bundle::import(None, &anchor, &before_text, now())
        .expect("the first bundle verifies")
        .state;
    assert_eq!(
        before.size(),
        11,
        "genesis, four types, three agencies with one type each"
    );

    // One signed entry sent to the three instances at once lands once.
    let authority = DataDir::new(&dir)
        .key(KeyName::Authority, PASS.as_bytes())
        .expect("authority key");
    let entry = bizcred_core::trust::entry::build::credential_type(
        ORIGIN,
        "urn:bizcred:test:once",
        86_400,
        86_400,
        now() - 60,
        &authority,
        &mut OsRng,
    )
    .expect("entry");
    let gate = Arc::new(Barrier::new(3));
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let joins: Vec<_> = urls
            .iter()
            .map(|u| {
                let (gate, entry, token) = (gate.clone(), entry.clone(), token.clone());
                s.spawn(move || {
                    gate.wait();
                    let r = client()
                        .post(format!("{u}/entries"))
                        .bearer_auth(&token)
                        .json(&entry)
                        .send()
                        .expect("post");
                    (
                        r.status().as_u16(),
                        r.json::<Value>().unwrap_or(Value::Null),
                    )
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        answers.iter().filter(|a| a.0 == 201).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.0 == 409 && a.1["code"] == ReasonCode::EntryDuplicate.as_str())
            .count(),
        2,
        "{answers:?}"
    );

    // Load: one client per agency, each sending its DID updates to the three instances in
    // turn; instance 1 is killed with kill -9 once 30 updates are acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let dead = Arc::new(AtomicBool::new(false));
    let mut instances = instances;
    let victim = instances.remove(1);
    let victim_url = victim.url.clone();
    // The killer waits until the victim holds the append lock (pg_locks, by the victim's
    // application_name), then kills it at once (SIGKILL, as kill -9): the sequencer dies
    // mid-append. If it is never seen holding the lock within 10 s, it is killed anyway.
    let held_at_kill = Arc::new(AtomicBool::new(false));
    let killer = {
        let (acked, killed_at, dead) = (acked.clone(), killed_at.clone(), dead.clone());
        let held_at_kill = held_at_kill.clone();
        let db_url = db.url.clone();
        let mut victim = victim;
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while acked.load(Ordering::SeqCst) < 30 {
                assert!(
                    Instant::now() < deadline,
                    "the load never reached 30 updates"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let name = format!("bizcred-registry {}", victim.child.id());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            let held = rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::postgres::PgConnection::connect(&db_url)
                    .await
                    .expect("conn");
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    let holds: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1",
                    )
                    .bind(&name)
                    .fetch_one(&mut c)
                    .await
                    .expect("pg_locks");
                    if holds > 0 {
                        return true;
                    }
                }
                false
            });
            // SIGKILL, like kill -9.
            let _ = victim.child.kill();
            *killed_at.lock().expect("lock") = Some(Instant::now());
            held_at_kill.store(held, Ordering::SeqCst);
            dead.store(true, Ordering::SeqCst);
            let _ = victim.child.wait();
        })
    };
    const AFTER_KILL: usize = 10;
    let results: Vec<ClientRun> = std::thread::scope(|s| {
        let joins: Vec<_> = updaters
            .iter_mut()
            .enumerate()
            .map(|(c, u)| {
                let (urls, acked, dead) = (urls.clone(), acked.clone(), dead.clone());
                let victim_url = victim_url.clone();
                s.spawn(move || {
                    let http = client();
                    let did = u.agency.did.clone();
                    // (line, index) of every acknowledged update; when each was acknowledged.
                    let mut mine: Vec<(String, u64)> = Vec::new();
                    let mut times = Vec::new();
                    let mut after_kill = 0;
                    let mut turn = c;
                    let deadline = Instant::now() + Duration::from_secs(180);
                    while after_kill < AFTER_KILL {
                        assert!(Instant::now() < deadline, "client {c} stalled");
                        let (line, next) = u.next_line();
                        // Until acknowledged or seen in the log: another instance on failure.
                        loop {
                            let url = &urls[turn % urls.len()];
                            turn += 1;
                            match http
                                .post(format!("{url}/dids/{did}/log"))
                                .body(line.clone())
                                .send()
                            {
                                Ok(r) if r.status().is_success() => {
                                    let v: Value = r.json().expect("json");
                                    mine.push((line.clone(), v["index"].as_u64().expect("index")));
                                    times.push(Instant::now());
                                    acked.fetch_add(1, Ordering::SeqCst);
                                    if dead.load(Ordering::SeqCst) {
                                        after_kill += 1;
                                    }
                                    break;
                                }
                                Ok(r) => {
                                    let status = r.status();
                                    let body = r.text().unwrap_or_default();
                                    // A line that landed before its instance died is refused
                                    // when sent again: it is in the log, unacknowledged.
                                    let log = http
                                        .get(format!("{}/dids/{did}/did.jsonl", urls[0]))
                                        .send()
                                        .and_then(|r| r.text())
                                        .unwrap_or_default();
                                    assert!(
                                        log.lines().any(|l| l == line.trim_end()),
                                        "client {c}: {status} {body}"
                                    );
                                    break;
                                }
                                Err(e) => {
                                    // Only the victim fails to answer; whether the line
                                    // landed was decided by the database (committed, or
                                    // rolled back when its connection died).
                                    assert_eq!(*url, victim_url, "{e}");
                                }
                            }
                        }
                        u.landed(&line, next);
                    }
                    (did, mine, times)
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().expect("client"))
            .collect()
    });
    killer.join().expect("killer");
    let killed = killed_at.lock().expect("lock").expect("killed");

    // The others kept appending within seconds of the kill.
    let first_after = results
        .iter()
        .flat_map(|r| r.2.iter())
        .filter(|t| **t > killed)
        .min()
        .expect("appends after the kill");
    assert!(
        *first_after - killed < Duration::from_secs(5),
        "the first append after the kill took {:?}",
        *first_after - killed
    );

    assert!(
        held_at_kill.load(Ordering::SeqCst),
        "the victim was never seen holding the append lock"
    );
    eprintln!(
        "{} updates acknowledged ({} before the kill, the victim seen holding the append lock just before it); \
         first append on another instance {:?} after the kill",
        results.iter().map(|r| r.1.len()).sum::<usize>(),
        results.iter().flat_map(|r| r.2.iter()).filter(|t| **t <= killed).count(),
        *first_after - killed
    );
    // One log: both survivors serve the same signed checkpoint; every acknowledged update is
    // in it once, at the index it was acknowledged with, and the mirrored logs hold each
    // acknowledged line once.
    let live: Vec<&str> = urls
        .iter()
        .filter(|u| **u != victim_url)
        .map(String::as_str)
        .collect();
    assert_eq!(live.len(), 2);
    let cp0 = text(&format!("{}/checkpoint", live[0]));
    let cp1 = text(&format!("{}/checkpoint", live[1]));
    assert_eq!(cp0, cp1, "one truth");
    let size = size_of(&cp0);
    let mut indices = BTreeSet::new();
    for (did, mine, _) in &results {
        let log = text(&format!("{}/dids/{did}/did.jsonl", live[1]));
        for (line, index) in mine {
            assert!(indices.insert(*index), "index {index} acknowledged twice");
            assert!(*index < size);
            assert_eq!(
                log.lines().filter(|l| *l == line.trim_end()).count(),
                1,
                "an acknowledged update of {did} is in its mirrored log once"
            );
        }
    }
    let mut by_index: BTreeMap<u64, Value> = BTreeMap::new();
    let mut start = 0;
    while start < size {
        let end = (start + 1000).min(size);
        let page: Vec<Value> = serde_json::from_str(&text(&format!(
            "{}/entries?start={start}&end={end}",
            live[0]
        )))
        .expect("entries");
        for (i, e) in page.into_iter().enumerate() {
            by_index.insert(start + i as u64, e);
        }
        start = end;
    }
    for (did, mine, _) in &results {
        for (_, index) in mine {
            assert_eq!(
                by_index[index]["did"],
                json!(did),
                "entry {index} is {did}'s update"
            );
        }
    }

    // The bank's bundle after: it extends the one from before, against the same anchor.
    let after_text = text(&format!("{}/bundle?from={}", live[1], before.size()));
    let after = bundle::import(Some(&before), &anchor, &after_text, now())
        .expect("the bundle after the kill verifies against the same anchor")
        .state;
    assert_eq!(after.size(), size);
    assert_eq!(
        after.root(),
        bundle::import(
            None,
            &anchor,
            &text(&format!("{}/bundle?from=0", live[0])),
            now()
        )
        .expect("a full bundle verifies")
        .state
        .root()
    );
    drop(instances);
}

#[test]
fn a_sled_registry_moves_to_postgres_verified() {
    let Some(server) = common::server("moving a sled registry to PostgreSQL") else {
        return;
    };
    let db = TestDb::create(&server);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("reg");
    let dir_s = dir.to_str().expect("path");
    let init = ok(&["init", "--origin", ORIGIN, "--data-dir", dir_s]);
    let anchor: TrustAnchor = serde_json::from_value(init["anchor"].clone()).expect("anchor");
    let agency = Agency::new("agco.bizcred.test", now() - 3600);
    let f = tmp.path().join("agco.jsonl");
    std::fs::write(&f, &agency.log).expect("write");
    ok(&[
        "onboard",
        "--did-log",
        f.to_str().expect("p"),
        "--name-en",
        "AGCO",
        "--name-fr",
        "CAJO",
        "--type",
        "liquor-sales-licence",
        "--data-dir",
        dir_s,
    ]);
    // A status list is kept too (a named blob).
    let sled = serve(&dir, None);
    let list = bizcred_core::status_list::StatusList::new(1024, 2).expect("list");
    let copy = agency.status_list_copy(&list, now() - 10, now() + 86_400);
    let r = client()
        .post(format!("{}/status-lists", sled.url))
        .body(copy.token.clone())
        .send()
        .expect("post");
    assert!(r.status().is_success());
    let checkpoint_before = text(&format!("{}/checkpoint", sled.url));
    drop(sled);

    // The database, migrated but empty, is not served for this data directory: its log is
    // still on sled, and the hint moves it.
    ok(&["migrate", "--database", &db.url]);
    let (code, v, err) = run(&["status", "--data-dir", dir_s, "--database", &db.url]);
    assert_eq!(code, 2, "{v}");
    assert!(err.contains("holds no registry log"), "{err}");
    let hint = v["hint"].as_str().expect("a hint");
    assert!(hint.contains("migrate --from"), "{hint}");
    let out = String::from_utf8_lossy(&run_hint(hint).stdout).into_owned();
    let size = size_of(&checkpoint_before);
    assert!(
        out.contains(&format!("moved {size} entries and 1 status lists")),
        "{out}"
    );
    assert!(out.contains("verified"), "{out}");
    let moved = ok(&["migrate", "--database", &db.url, "--from", dir_s]);
    assert_eq!(moved["applied"], json!([]));
    assert_eq!(moved["moved"]["entries"], json!(size));
    assert_eq!(moved["moved"]["blobs"], json!(1));
    assert_eq!(moved["moved"]["verified"], json!(true));
    assert_eq!(moved["moved"]["already"], json!(true));
    // Idempotent: again, nothing is written and the move is verified again.
    let again = ok(&["migrate", "--database", &db.url, "--from", dir_s]);
    assert_eq!(again["moved"]["already"], json!(true));
    assert_eq!(again["moved"]["checkpoint"], moved["moved"]["checkpoint"]);
    // The sled store is not served again (it would fork the log)...
    let (code, v, err) = run(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir_s]);
    assert_eq!(code, 2, "{v}");
    assert!(err.contains("moved to PostgreSQL"), "{err}");
    // ...the database is, with the same signed checkpoint, status list and anchor.
    let pg = serve(&dir, Some(&db.url));
    assert_eq!(text(&format!("{}/checkpoint", pg.url)), checkpoint_before);
    let b = text(&format!("{}/bundle?from=0", pg.url));
    assert!(b.contains(&copy.token));
    bundle::import(None, &anchor, &b, now()).expect("the moved registry's bundle verifies");
    drop(pg);

    // Another registry's log is not moved onto this one.
    let other = tmp.path().join("other");
    ok(&[
        "init",
        "--origin",
        "other.bizcred.test/log",
        "--data-dir",
        other.to_str().expect("p"),
    ]);
    let (code, v, err) = run(&[
        "migrate",
        "--database",
        &db.url,
        "--from",
        other.to_str().expect("p"),
    ]);
    assert_eq!(code, 2, "{v}");
    assert!(
        err.contains("already holds a registry log; nothing was written"),
        "{err}"
    );
    // The library says why with a code.
    let e = DataDir::new(&other)
        .move_to_postgres(&db.url, now())
        .expect_err("refused");
    assert_eq!(e.code(), ReasonCode::StorageNotEmpty);
    let e = bizcred_registry::store::SledStore::open(&dir.join("db")).expect_err("moved");
    assert_eq!(e.code(), ReasonCode::StorageMoved);
}
