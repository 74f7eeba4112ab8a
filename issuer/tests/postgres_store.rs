//! What only the PostgreSQL store has: the schema check at start-up, the move of a sled
//! deployment into PostgreSQL, and synchronous calls from async tasks of either runtime
//! flavour (answered, never a panic, the other tasks kept running). The contract both stores
//! share is `tests/store_contract.rs`.
//!
//! Needs `BIZCRED_TEST_DATABASE_URL` (see `common`): without it these say SKIPPED loudly and
//! pass; under `CI=true` they fail.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bizcred_core::status_list::{self, Status};
use bizcred_core::webvh;
use bizcred_issuer::issuer::StatusAction;
use bizcred_issuer::keyfiles::SealedKeyFiles;
use bizcred_issuer::store::moving::{move_open_store, KINDS};
use bizcred_issuer::store::pg::{self, Schema, AUDIT_LOCK};
use bizcred_issuer::store::{
    sha256_hex, verify_audit, AccessToken, AppStatus, Application, CredentialRecord,
    CredentialStatus, Offer, SledStore, Store, StoreError,
};
use bizcred_issuer::{Actor, Config, Issuer};
use bizcred_schemas::ReasonCode;
use serde_json::{json, Map};
use sqlx::Connection;
use zeroize::Zeroizing;

use common::TestDb;

const URL: &str = "http://localhost:18087";
const PASS: &str = "correct horse battery staple";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn config(storage: &std::path::Path, database: Option<&str>) -> Config {
    let database = database.map_or(String::new(), |u| format!("database = {u:?}\n"));
    Config::parse(&format!(
        "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18087\"\n[storage]\npath = {:?}\n{database}[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 16\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        storage.to_string_lossy(),
        "00".repeat(32)
    ))
    .expect("config")
}

fn keys(cfg: &Config) -> Box<SealedKeyFiles> {
    Box::new(SealedKeyFiles::new(
        &cfg.storage,
        Zeroizing::new(PASS.into()),
    ))
}

#[test]
fn a_database_not_migrated_or_migrated_by_a_newer_binary_is_not_served() {
    let Some(server) = common::server("the schema check") else {
        return;
    };
    let db = TestDb::create(&server);
    assert!(matches!(pg::schema(&db.url), Ok(Schema::Behind { .. })));
    let e = Store::connect(&db.url, 2).expect_err("not migrated");
    assert_eq!(e.code(), ReasonCode::DatabaseNotMigrated);
    assert!(e.to_string().contains("bizcred-issuer migrate"), "{e}");
    // A configuration naming the database is refused the same way.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), Some(&db.url));
    let e = Issuer::init(&cfg, PASS, now()).expect_err("not migrated");
    assert_eq!(e.code(), ReasonCode::DatabaseNotMigrated);

    let migrated = pg::migrate(&db.url).expect("migrate");
    assert_eq!(migrated.applied, migrated.versions);
    assert!(pg::migrate(&db.url).expect("again").applied.is_empty());
    assert_eq!(pg::schema(&db.url).expect("schema"), Schema::Current);
    Store::connect(&db.url, 2).expect("current");

    // A migration this binary does not know: a newer binary migrated it.
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', TRUE, '\\x00', 0)",
    );
    let e = Store::connect(&db.url, 2).expect_err("newer");
    assert_eq!(e.code(), ReasonCode::DatabaseSchemaNewer);
    assert_eq!(
        pg::migrate(&db.url).expect_err("refused").code(),
        ReasonCode::DatabaseSchemaNewer
    );
    db.execute("DELETE FROM _sqlx_migrations WHERE version = 99990101000000");
    // An applied migration that differs from this binary's.
    db.execute("UPDATE _sqlx_migrations SET checksum = '\\x00'");
    let e = Store::connect(&db.url, 2).expect_err("mismatch");
    assert_eq!(e.code(), ReasonCode::DatabaseSchemaMismatch);

    let e = Store::connect("mysql://nowhere/db", 2).expect_err("not postgres");
    assert_eq!(e.code(), ReasonCode::ConfigInvalid);
}

fn application(id: &str, status: AppStatus, created: i64) -> Application {
    let mut claims = Map::new();
    claims.insert("legal_name".into(), json!("Érable Inc. \u{0} ✓"));
    claims.insert("employees".into(), json!(12.5));
    Application {
        id: id.into(),
        credential_type: "certificate-of-incorporation".into(),
        status,
        claims,
        verified_claims: vec!["legal_name".into()],
        nonce: Some("n".into()),
        nonce_used: false,
        holder_thumbprint: None,
        verification: Some(json!({"ok": true})),
        offer_id: None,
        created,
        history: Vec::new(),
        dependencies: Default::default(),
        capability: None,
    }
}

fn offer(id: &str, app: &str, expires: i64) -> Offer {
    Offer {
        id: id.into(),
        application_id: app.into(),
        configuration_id: "certificate-of-incorporation".into(),
        code_hash: sha256_hex(format!("code-{id}").as_bytes()),
        tx_hash: sha256_hex(b"1234"),
        expires,
        attempts: 0,
        used: false,
        offer: json!({"credential_issuer": URL, "grants": {"id": id}}),
    }
}

fn record(n: usize, list: u32, idx: u64, at: i64) -> CredentialRecord {
    CredentialRecord {
        id: format!("cred-{n}"),
        application_id: format!("app-{n}"),
        vct: "https://bizcred.example/vct/certificate-of-incorporation".into(),
        status_list: list,
        status_idx: idx,
        status: CredentialStatus::Valid,
        issued_at: at,
        kid: "did:example:obr#key-1".into(),
        credential_sha256: "00".repeat(32),
        history: Vec::new(),
    }
}

/// Everything a store answers, to compare two stores.
fn everything(s: &Store) -> serde_json::Value {
    let lists = s.status_lists().expect("lists");
    let bits: Vec<_> = lists
        .iter()
        .map(|l| {
            let b = s.status_bits(l.list).expect("bits");
            json!([b.version, b.size, b.bytes])
        })
        .collect();
    let meta: Vec<_> = ["did", "did_log", "assertion_n", "update_n"]
        .iter()
        .map(|k| s.meta_get(k).expect("meta"))
        .collect();
    json!({
        "applications": s.applications().expect("applications"),
        "credentials": s.credentials().expect("credentials"),
        "lists": lists.iter().map(|l| json!([l.list, l.size, l.allocated])).collect::<Vec<_>>(),
        "open": s.open_status_list().expect("open").list,
        "bits": bits,
        "signed": s.signed_status_lists().expect("signed"),
        "meta": meta,
        "audit": s.audit_entries().expect("audit"),
    })
}

#[test]
fn a_sled_deployment_moves_to_postgresql_whole_and_goes_on_there() {
    let Some(server) = common::server("the move from sled") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let t0 = now();
    // A sled deployment with a bit of everything: an initialized issuer, two status lists
    // (the first full), changed statuses, signed lists, applications in several states,
    // offers live, used and expired, access tokens, nonces, and the audit log of it all.
    let sled_cfg = config(dir.path(), None);
    let sled_path = dir.path().join("db");
    let sled = SledStore::open(&sled_path).expect("sled");
    let store = Store::from(sled.clone());
    Issuer::initialize(&sled_cfg, &store, keys(&sled_cfg).as_ref(), t0 - 10).expect("init");
    let issuer = Issuer::new(sled_cfg.clone(), store.clone(), keys(&sled_cfg), now).expect("open");
    for (i, status) in [
        AppStatus::AwaitingPrerequisites,
        AppStatus::AwaitingApproval,
        AppStatus::Offered,
        AppStatus::Refused,
    ]
    .into_iter()
    .enumerate()
    {
        store
            .put_application(
                &application(&format!("app-{i}"), status, t0),
                t0,
                Some("saved"),
            )
            .expect("app");
    }
    let app = store.application("app-2").expect("app");
    for (id, expires) in [
        ("live", t0 + 600),
        ("expired", t0 - 1),
        ("redeemed", t0 + 600),
    ] {
        store
            .put_offer(&offer(id, "app-2", expires), &app, t0)
            .expect("offer");
    }
    let token = AccessToken {
        application_id: "app-2".into(),
        configuration_id: "certificate-of-incorporation".into(),
        expires: t0 + 600,
        used: false,
        credential_id: None,
        reissues: 0,
    };
    store
        .redeem("redeemed", "token-hash", &token, t0)
        .expect("redeem");
    store
        .record_issuance(&record(2, 1, 3, t0), "token-hash", t0)
        .expect("issue");
    store.put_nonce("nonce-live", t0 + 300).expect("nonce");
    store.put_nonce("nonce-old", t0 - 1).expect("nonce");
    let fill: Vec<CredentialRecord> = (10..25)
        .map(|n| record(n, 1, if n < 13 { n as u64 - 10 } else { n as u64 - 9 }, t0))
        .collect();
    store.import_issued(&fill, t0).expect("fill list 1");
    assert_eq!(store.open_status_list().expect("open").allocated, 16);
    store.open_next_status_list(1, 16, t0).expect("list 2");
    store
        .import_issued(&[record(30, 2, 7, t0)], t0)
        .expect("list 2");
    issuer
        .set_status(
            &Actor::Automation,
            "cred-11",
            StatusAction::Revoke,
            Some("fraud"),
        )
        .expect("revoke");
    issuer
        .set_status(
            &Actor::Automation,
            "cred-30",
            StatusAction::Suspend,
            Some("audit"),
        )
        .expect("suspend");
    issuer.refresh_status_lists().expect("signed");
    let before = everything(&store);
    assert_eq!(before["signed"].as_object().map(|o| o.len()), Some(2));

    // The move.
    let db = common::migrated(&server);
    let moved =
        move_open_store(&sled, &sled_path, &db.url, "the test database", 16, t0).expect("moved");
    assert!(!moved.already);
    let count = |kind: &str| {
        moved
            .counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| *n)
    };
    assert_eq!(moved.counts.len(), KINDS.len());
    assert_eq!(count("credentials"), Some(17));
    assert_eq!(count("applications"), Some(4));
    assert_eq!(count("status lists"), Some(2));
    // The event log: the issuance, the revocation and the suspension.
    assert_eq!(count("events"), Some(3));
    let entries = store.audit_entries().expect("audit");
    assert_eq!(moved.audit_entries, entries.len() as u64);
    assert_eq!(
        Some(moved.audit_head.as_str()),
        entries.last().and_then(|e| e["hash"].as_str())
    );

    // PostgreSQL answers what sled answered, record for record.
    let pg = Store::connect(&db.url, 4).expect("connect");
    assert_eq!(everything(&pg), before);
    assert_eq!(
        pg.events(0, 10).expect("events"),
        store.events(0, 10).expect("events")
    );
    for id in ["live", "expired", "redeemed"] {
        assert_eq!(
            pg.offer(id).expect("offer"),
            store.offer(id).expect("offer")
        );
        assert_eq!(
            pg.offer_by_code(&format!("code-{id}")).expect("code"),
            store.offer_by_code(&format!("code-{id}")).expect("code")
        );
    }
    assert_eq!(
        pg.token("token-hash").expect("t"),
        store.token("token-hash").expect("t")
    );
    for c in store.credentials().expect("credentials") {
        assert!(pg.index_taken(c.status_list, c.status_idx).expect("taken"));
    }
    assert!(pg.take_nonce("nonce-live", t0).expect("live"));
    assert!(!pg.take_nonce("nonce-old", t0).expect("expired"));

    // The sled store is not served again; moving it again finds it there already.
    let e = Store::open(&sled_path).expect_err("moved");
    assert_eq!(e.code(), ReasonCode::StorageMoved);
    assert!(matches!(e, StoreError::Moved(ref why) if why.contains("the test database")));
    let again = move_open_store(&sled, &sled_path, &db.url, "the test database", 16, t0);
    // The nonces taken above are a difference: the database no longer holds exactly this
    // store.
    assert_eq!(
        again.expect_err("changed").code(),
        ReasonCode::StorageNotEmpty
    );
    pg.put_nonce("nonce-live", t0 + 300).expect("put back");
    pg.put_nonce("nonce-old", t0 - 1).expect("put back");
    let again =
        move_open_store(&sled, &sled_path, &db.url, "the test database", 16, t0).expect("already");
    assert!(again.already);
    assert_eq!(again.counts, moved.counts);

    // A database holding anything else is refused untouched; one not migrated too.
    let other = common::migrated(&server);
    let o = Store::connect(&other.url, 2).expect("other");
    o.meta_put("did", b"did:webvh:someone-else").expect("meta");
    let e = move_open_store(&sled, &sled_path, &other.url, "another", 16, t0).expect_err("full");
    assert_eq!(e.code(), ReasonCode::StorageNotEmpty);
    assert!(o.applications().expect("apps").is_empty());
    let bare = TestDb::create(&server);
    let e = move_open_store(&sled, &sled_path, &bare.url, "bare", 16, t0).expect_err("bare");
    assert_eq!(e.code(), ReasonCode::DatabaseNotMigrated);

    // The issuer goes on on PostgreSQL: the same DID and keys, the moved lists served, the
    // next change signed after them, the audit chain continued.
    let pg_cfg = config(dir.path(), Some(&db.url));
    let on_pg = Issuer::open(pg_cfg, Zeroizing::new(PASS.into()), now).expect("open on pg");
    assert_eq!(on_pg.did, issuer.did);
    let moved_token = on_pg.status_list(1).expect("list 1");
    assert_eq!(moved_token, issuer.status_list(1).expect("list 1"));
    on_pg
        .set_status(
            &Actor::Automation,
            "cred-12",
            StatusAction::Suspend,
            Some("check"),
        )
        .expect("suspend on pg");
    let key = webvh::verify_log(&on_pg.did_log().expect("log"), None, now() + 60)
        .versions
        .last()
        .expect("v")
        .verification_method(&on_pg.kid())
        .expect("key");
    let uri = format!("{URL}/status/1");
    let old = status_list::verify_token(&moved_token, &uri, &key, now()).expect("old");
    let new = status_list::verify_token(&on_pg.status_list(1).expect("list"), &uri, &key, now())
        .expect("new");
    assert!(new.iat > old.iat);
    assert_eq!(new.list.get(1).expect("11"), Status::Invalid);
    assert_eq!(new.list.get(2).expect("12"), Status::Suspended);
    let chain = on_pg.store.audit_entries().expect("audit");
    assert_eq!(verify_audit(&chain), Ok(entries.len() + 1));
    assert_eq!(chain[..entries.len()], entries[..]);
}

/// Holds the audit lock from a connection of its own for `hold`, from a thread of its own;
/// returns once the lock is taken.
fn hold_audit_lock(url: &str, hold: Duration) -> std::thread::JoinHandle<()> {
    let url = url.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let mut c = sqlx::postgres::PgConnection::connect(&url)
                .await
                .expect("c");
            let mut t = c.begin().await.expect("begin");
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK)
                .execute(&mut *t)
                .await
                .expect("lock");
            tx.send(()).expect("send");
            tokio::time::sleep(hold).await;
            t.commit().await.expect("commit");
        });
    });
    rx.recv().expect("locked");
    t
}

/// The largest gap a task ticking every millisecond saw while `work` ran on the runtime.
async fn worst_gap(work: impl std::future::Future<Output = ()>) -> Duration {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let ticker = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        while !s.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            worst = worst.max(last.elapsed());
            last = Instant::now();
        }
        worst
    });
    work.await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    ticker.await.expect("ticker")
}

#[test]
fn calls_from_async_tasks_are_answered_without_stalling_the_runtime() {
    let Some(server) = common::server("the store on async runtimes") else {
        return;
    };
    let db = common::migrated(&server);
    let store = Store::connect(&db.url, 8).expect("connect");
    store.prepare_status_lists(64).expect("lists");

    // A current-thread runtime: a call from its one thread is answered, no panic.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        store
            .audit(1, "from_a_current_thread_task", json!({}))
            .expect("audit");
        let s = store.clone();
        tokio::spawn(async move { s.meta_put("k", b"v").expect("put") })
            .await
            .expect("task");
    });
    // Dropped inside an async task, the store closes without a panic either.
    let other = Store::connect(&db.url, 1).expect("connect");
    rt.block_on(async move { drop(other) });

    // A multi-threaded runtime of two workers; eight tasks call the store while another
    // connection holds the audit lock for 400 ms, so each call waits that long. A task
    // ticking every millisecond keeps ticking: the waiting workers handed their queues on.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let hold = Duration::from_millis(400);
    let holder = hold_audit_lock(&db.url, hold);
    let started = Instant::now();
    let ours = rt.block_on(worst_gap(async {
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.audit(2, "from_a_worker", json!({"i": i})) })
            })
            .collect();
        for c in calls {
            c.await.expect("task").expect("audit");
        }
    }));
    let waited = started.elapsed();
    holder.join().expect("holder");
    assert!(waited >= hold, "the calls waited for the lock ({waited:?})");
    // The same wait as a plain blocking call on the workers, for comparison.
    let naive = rt.block_on(worst_gap(async {
        let calls: Vec<_> = (0..8)
            .map(|_| tokio::spawn(async move { std::thread::sleep(hold) }))
            .collect();
        for c in calls {
            c.await.expect("task");
        }
    }));
    // Round trips of a small read, from a plain thread and from a worker.
    let n = 500;
    let t = Instant::now();
    for _ in 0..n {
        store.meta_get("k").expect("get");
    }
    let plain = t.elapsed() / n;
    let s = store.clone();
    let from_worker = rt.block_on(async move {
        let t = Instant::now();
        for _ in 0..n {
            s.meta_get("k").expect("get");
        }
        t.elapsed() / n
    });
    // The same read with sqlx on the calling thread's own runtime: what the hand-off costs.
    let url = db.url.clone();
    let direct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .expect("pool");
            let t = Instant::now();
            for _ in 0..n {
                let _: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                        .bind("k")
                        .fetch_optional(&pool)
                        .await
                        .expect("get");
            }
            t.elapsed() / n
        });
    eprintln!(
        "PostgreSQL store on async runtimes: 8 calls waiting {hold:?} for the audit lock on 2 \
         workers: worst tick gap {ours:?} (the same wait as a plain blocking call: {naive:?}); \
         a read's round trip {plain:?} from a plain thread, {from_worker:?} from a worker, \
         {direct:?} with sqlx on the caller's own runtime"
    );
    assert!(
        ours < Duration::from_millis(150),
        "a 1 ms ticker stalled {ours:?} while calls waited"
    );
    assert!(naive > ours, "the comparison shows the stall it avoids");
    assert_eq!(
        store
            .audit_entries()
            .expect("audit")
            .iter()
            .filter(|e| e["event"] == "from_a_worker")
            .count(),
        8
    );
}
