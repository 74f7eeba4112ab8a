//! One contract, both implementations of what a verifier service's instances share: the data
//! directory with the service's memory (`DirShared`) and PostgreSQL (`PgShared`) run the same
//! tests (the module documentation of `bizcred_verifier::store::shared` states the contract).
//! A request is taken once, also by many answers at once on several handles (instances);
//! `max_pending` bounds the requests, also when handles create at once; expired requests are
//! swept and cannot be taken; the outcome (report and receipt) is kept, reports bounded,
//! receipts all kept and paged newest first. PostgreSQL only: the schema check at start-up
//! and the move of a data directory (`migrate --from`).
//!
//! The PostgreSQL run needs `BIZCRED_TEST_DATABASE_URL` (each test creates its own database
//! and drops it); without it those tests say SKIPPED loudly and pass, under `CI=true` they fail.

mod common;

use std::sync::{Arc, Barrier};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_schemas::ReasonCode;
use bizcred_verifier::store::pg::{self, PgShared, Schema};
use bizcred_verifier::store::shared::{DirShared, SharedStore};
use bizcred_verifier::store::{OpenRequest, StoreError, VerifierDir};
use bizcred_verifier::{Context, Presentation, Report, Verdict};
use rand_core::OsRng;
use serde_json::{json, Value};

use common::world::{loan_policy, rejected_report, World, NOW};
use common::TestDb;

/// A storage under test, and handles on it as several instances would hold them.
enum Backend {
    /// One instance: every handle is the same.
    Dir {
        _tmp: tempfile::TempDir,
        dir: Box<VerifierDir>,
        open: Arc<DirShared>,
    },
    /// Each handle its own connection pool, as another instance would have.
    Postgres(TestDb),
}

fn anchor() -> bizcred_core::trust::bundle::TrustAnchor {
    serde_json::from_value(json!({
        "origin": "registry.example/log",
        "log_key_name": "registry.example/log",
        "log_key": "AAAA"
    }))
    .expect("anchor")
}

impl Backend {
    fn dir() -> Option<Backend> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, _) =
            VerifierDir::init(tmp.path(), anchor(), None, b"pass", &mut OsRng).expect("init");
        let open = Arc::new(DirShared::open(&dir, NOW).expect("open"));
        Some(Backend::Dir {
            _tmp: tmp,
            dir: Box::new(dir),
            open,
        })
    }

    fn postgres() -> Option<Backend> {
        let server = common::server("the verifier's shared-store contract on PostgreSQL")?;
        Some(Backend::Postgres(common::migrated(&server)))
    }

    fn handle(&self) -> Arc<dyn SharedStore> {
        match self {
            Backend::Dir { open, .. } => open.clone(),
            Backend::Postgres(db) => Arc::new(PgShared::connect(&db.url).expect("connect")),
        }
    }

    /// Whether handles are separate instances (PostgreSQL) or one (the directory).
    fn name(&self) -> &'static str {
        match self {
            Backend::Dir { dir, .. } => {
                assert!(dir.path().exists());
                "directory"
            }
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// A new request for the loan policy, valid `ttl` seconds from `now`.
fn request(now: i64, ttl: i64) -> OpenRequest {
    OpenRequest::generate(
        "decentralized_identifier:did:jwk:test",
        "https://bank.test/oid4vp/response",
        Some("loan-application"),
        now,
        ttl,
        &mut OsRng,
    )
}

/// A small report (REJECT: the presentation is no SD-JWT) and a receipt stating it.
fn rejected(state: &str) -> (Report, Value) {
    let report = rejected_report(state);
    let receipt = json!({"policy": report.policy, "verdict": report.verdict, "state": state});
    (report, receipt)
}

fn code<T: std::fmt::Debug>(r: Result<T, StoreError>) -> ReasonCode {
    r.expect_err("refused").code()
}

fn a_request_is_taken_once_and_its_outcome_kept(b: Backend) {
    let a = b.handle();
    let other = b.handle();
    let r = request(NOW, 600);
    let state = r.pending.state.clone();
    a.create(&r, NOW, 10).expect("create");
    // Every handle sees it waiting, with its nonce and policy.
    let w = other
        .lookup(&state, NOW + 1)
        .expect("lookup")
        .expect("waiting");
    assert_eq!(w.request, r);
    assert!(!w.answering);
    assert_eq!(other.pending_count(NOW + 1).expect("count"), 1);
    // Taken once: a second take, on any handle, finds nothing.
    let taken = other.take(&state, NOW + 2).expect("take").expect("taken");
    assert_eq!(taken, r);
    assert!(a.take(&state, NOW + 2).expect("again").is_none());
    assert!(other.take(&state, NOW + 2).expect("again").is_none());
    let w = a
        .lookup(&state, NOW + 2)
        .expect("lookup")
        .expect("being answered");
    assert!(w.answering, "shown as being answered");
    assert!(a.outcome(&state).expect("outcome").is_none(), "not yet");
    // The outcome is kept and read on every handle; the request is gone.
    let (report, receipt) = rejected(&state);
    let o = other
        .finish(&state, report.clone(), receipt.clone(), NOW + 3, 10)
        .expect("finish");
    assert_eq!(o.receipt_id, format!("{}-{state}", NOW + 3));
    for h in [&a, &other] {
        let held = h.outcome(&state).expect("outcome").expect("held");
        assert_eq!(held.report, report);
        assert_eq!(held.receipt, receipt);
        assert_eq!(held.receipt_id, o.receipt_id);
        assert_eq!(
            h.receipt(&o.receipt_id).expect("receipt"),
            Some(receipt.clone())
        );
        assert_eq!(
            h.receipt_of(&state).expect("receipt of"),
            Some(o.receipt_id.clone())
        );
        assert!(h.lookup(&state, NOW + 3).expect("lookup").is_none());
        assert!(h.take(&state, NOW + 3).expect("take").is_none());
    }
    assert_eq!(a.pending_count(NOW + 3).expect("count"), 0);
    let history = a.receipts(10, None).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, o.receipt_id);
    assert_eq!(history[0].verdict, "REJECT");
    assert_eq!(history[0].policy, "loan-application");
    // Names that are no receipt id or state are nothing.
    for bad in ["../verifier", "x-y", "", "1-../../etc"] {
        assert!(a.receipt(bad).expect("no receipt").is_none(), "{bad}");
        assert!(a.lookup(bad, NOW).expect("no request").is_none(), "{bad}");
        assert!(a.take(bad, NOW).expect("no request").is_none(), "{bad}");
    }
    assert!(a.ready().is_ok(), "{}", b.name());
}

fn pending_requests_are_bounded_and_expired_ones_swept(b: Backend) {
    let a = b.handle();
    let other = b.handle();
    let first = request(NOW, 600);
    a.create(&first, NOW, 3).expect("1");
    other.create(&request(NOW, 600), NOW, 3).expect("2");
    let third = request(NOW, 100);
    a.create(&third, NOW, 3).expect("3");
    // The bound counts every handle's requests.
    assert_eq!(
        code(other.create(&request(NOW, 600), NOW + 1, 3)),
        ReasonCode::TooManyPending
    );
    // A taken request still counts until its outcome is kept.
    a.take(&first.pending.state, NOW + 1)
        .expect("take")
        .expect("taken");
    assert_eq!(
        code(a.create(&request(NOW, 600), NOW + 1, 3)),
        ReasonCode::TooManyPending
    );
    // The third expires: no longer served or taken, not counted, swept at the next creation.
    assert!(a
        .lookup(&third.pending.state, NOW + 100)
        .expect("lookup")
        .is_none());
    assert!(other
        .take(&third.pending.state, NOW + 100)
        .expect("take")
        .is_none());
    assert_eq!(a.pending_count(NOW + 100).expect("count"), 2);
    other
        .create(&request(NOW + 100, 600), NOW + 100, 3)
        .expect("room after expiry");
    // Everything expires; the sweep removes them all.
    let swept = a.sweep(NOW + 10_000).expect("sweep") + other.sweep(NOW + 10_000).expect("sweep");
    assert!(swept <= 3, "{swept}");
    assert_eq!(a.pending_count(NOW + 10_000).expect("count"), 0);
    assert!(
        a.lookup(&first.pending.state, NOW + 1)
            .expect("lookup")
            .is_none(),
        "swept, even looked up with an earlier time"
    );
}

fn of_many_answers_at_once_one_takes_the_request(b: Backend) {
    let handles: Vec<Arc<dyn SharedStore>> = (0..4).map(|_| b.handle()).collect();
    for round in 0..5 {
        let r = request(NOW, 600);
        handles[round % 4].create(&r, NOW, 100).expect("create");
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let h = handles[i % 4].clone();
                let state = r.pending.state.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    h.take(&state, NOW + 1).expect("take").is_some()
                })
            })
            .collect();
        let won = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .filter(|w| *w)
            .count();
        assert_eq!(won, 1, "round {round}: one answer takes the request");
    }
}

fn concurrent_creations_never_exceed_the_bound(b: Backend) {
    let handles: Vec<Arc<dyn SharedStore>> = (0..4).map(|_| b.handle()).collect();
    let barrier = Arc::new(Barrier::new(12));
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let h = handles[i % 4].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                match h.create(&request(NOW, 600), NOW, 5) {
                    Ok(()) => true,
                    Err(e) => {
                        assert_eq!(e.code(), ReasonCode::TooManyPending, "{e}");
                        false
                    }
                }
            })
        })
        .collect();
    let made = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .filter(|m| *m)
        .count();
    assert_eq!(made, 5);
    assert_eq!(handles[0].pending_count(NOW).expect("count"), 5);
}

fn the_history_pages_newest_first(b: Backend) {
    let a = b.handle();
    let other = b.handle();
    // Two at the same second: ordered by state within it.
    let mut made = Vec::new();
    for (i, at) in [1000, 3000, 2000, 3000, 500].into_iter().enumerate() {
        let r = request(NOW, 600);
        let h = if i % 2 == 0 { &a } else { &other };
        h.create(&r, NOW, 100).expect("create");
        h.take(&r.pending.state, NOW).expect("take").expect("taken");
        let (report, receipt) = rejected(&r.pending.state);
        let o = h
            .finish(&r.pending.state, report, receipt, NOW + at, 100)
            .expect("finish");
        made.push((NOW + at, r.pending.state.clone(), o.receipt_id.clone()));
    }
    made.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
    let want: Vec<&str> = made.iter().map(|m| m.2.as_str()).collect();
    let first = a.receipts(2, None).expect("page 1");
    let second = other.receipts(2, Some(&first[1].id)).expect("page 2");
    let third = a.receipts(2, Some(&second[1].id)).expect("page 3");
    let got: Vec<&str> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(got, want);
    assert_eq!(third.len(), 1);
    assert!(a
        .receipts(2, Some(&third[0].id))
        .expect("past the end")
        .is_empty());
    assert_eq!(first[0].at, made[0].0);
    // A `before` that is no receipt id lists from the newest.
    assert_eq!(a.receipts(1, Some("../x")).expect("odd")[0].id, want[0]);
}

fn reports_are_bounded_receipts_kept(b: Backend) {
    let a = b.handle();
    let mut states = Vec::new();
    for i in 0..3 {
        let r = request(NOW, 600);
        a.create(&r, NOW, 100).expect("create");
        a.take(&r.pending.state, NOW).expect("take").expect("taken");
        let (report, receipt) = rejected(&r.pending.state);
        a.finish(&r.pending.state, report, receipt, NOW + i, 2)
            .expect("finish");
        states.push(r.pending.state);
    }
    // The oldest report is dropped: its receipt stays, and leads to its verdict.
    assert!(a.outcome(&states[0]).expect("outcome").is_none());
    assert!(a.outcome(&states[1]).expect("outcome").is_some());
    assert!(a.outcome(&states[2]).expect("outcome").is_some());
    let id = a.receipt_of(&states[0]).expect("receipt of").expect("kept");
    assert!(a.receipt(&id).expect("receipt").is_some());
    assert_eq!(a.receipts(10, None).expect("history").len(), 3);
}

fn a_report_reads_back_whole(b: Backend) {
    // A real ACCEPT: every check, the credentials and their disclosed claims.
    let world = World::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, _) =
        VerifierDir::init(tmp.path(), world.reg.anchor(), None, b"pass", &mut OsRng).expect("init");
    dir.store_bundle(&world.bundle(), NOW)
        .expect("store")
        .expect("accepted");
    let trust = dir.trust(NOW).expect("trust");
    let policy = loan_policy();
    let r = request(NOW, 600);
    let vp = world.vp_token(&policy, "aud", &r.pending.nonce);
    let report = bizcred_verifier::verify(
        &Presentation {
            vp_token: &vp,
            nonce: &r.pending.nonce,
            audience: "aud",
        },
        &policy,
        &Context {
            trust: trust.as_ref(),
            stapled_status_lists: &[],
            now: NOW,
        },
    );
    assert_eq!(report.verdict, Verdict::Accept, "{report:?}");
    assert!(!report.credentials[0].disclosed.is_empty());
    let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let receipt =
        bizcred_verifier::receipt::sign(&report, vp.to_string().as_bytes(), "verifier", &key)
            .expect("receipt");
    let a = b.handle();
    a.create(&r, NOW, 10).expect("create");
    a.take(&r.pending.state, NOW).expect("take").expect("taken");
    a.finish(&r.pending.state, report.clone(), receipt.clone(), NOW, 10)
        .expect("finish");
    let held = b
        .handle()
        .outcome(&r.pending.state)
        .expect("outcome")
        .expect("held");
    assert_eq!(held.report, report);
    assert_eq!(held.receipt, receipt);
    bizcred_verifier::receipt::verify(&held.receipt, &key.public_key())
        .expect("the receipt read back verifies");
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod directory {
            $( #[test] fn $test() { if let Some(b) = super::Backend::dir() { super::$test(b) } } )*
        }
        mod postgres {
            $( #[test] fn $test() { if let Some(b) = super::Backend::postgres() { super::$test(b) } } )*
        }
    };
}

contract!(
    a_request_is_taken_once_and_its_outcome_kept,
    pending_requests_are_bounded_and_expired_ones_swept,
    of_many_answers_at_once_one_takes_the_request,
    concurrent_creations_never_exceed_the_bound,
    the_history_pages_newest_first,
    reports_are_bounded_receipts_kept,
    a_report_reads_back_whole,
);

#[test]
fn postgres_schema_is_checked_at_start() {
    let Some(server) = common::server("the verifier's schema check") else {
        return;
    };
    let db = TestDb::create(&server);
    // Not migrated: refused with its code.
    assert_eq!(
        pg::schema(&db.url).expect("schema"),
        Schema::Behind { missing: vec![1] }
    );
    assert_eq!(
        code(PgShared::connect(&db.url)),
        ReasonCode::DatabaseNotMigrated
    );
    // Migrated (twice: the second finds it current).
    let m = pg::migrate(&db.url).expect("migrate");
    assert_eq!(m.applied, vec![1]);
    let again = pg::migrate(&db.url).expect("again");
    assert!(again.applied.is_empty());
    let live = PgShared::connect(&db.url).expect("connect");
    live.ready().expect("ready");
    // A newer binary's migration: refused, also by a running instance's readiness.
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    );
    assert_eq!(
        code(PgShared::connect(&db.url)),
        ReasonCode::DatabaseSchemaNewer
    );
    assert_eq!(code(live.ready()), ReasonCode::DatabaseSchemaNewer);
    assert_eq!(code(pg::migrate(&db.url)), ReasonCode::DatabaseSchemaNewer);
    db.execute("DELETE FROM _sqlx_migrations WHERE version = 9999");
    // An applied migration that differs from the binary's.
    db.execute("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 1");
    assert_eq!(
        code(PgShared::connect(&db.url)),
        ReasonCode::DatabaseSchemaMismatch
    );
    // A URL that is none.
    assert_eq!(
        code(PgShared::connect("not a url")),
        ReasonCode::ConfigInvalid
    );
    // A database migrated for another service (a migration of the same version that differs).
    let other = TestDb::create(&server);
    other.execute(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    );
    other.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'registry log', true, '\\x01', 0)",
    );
    assert_eq!(
        code(PgShared::connect(&other.url)),
        ReasonCode::DatabaseSchemaMismatch
    );
}

#[test]
fn postgres_takes_over_a_data_directory() {
    let Some(server) = common::server("moving a data directory to PostgreSQL") else {
        return;
    };
    let db = common::migrated(&server);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, _) =
        VerifierDir::init(tmp.path(), anchor(), None, b"pass", &mut OsRng).expect("init");
    // What a service on the directory left: two waiting requests, one expired, two receipts.
    let files = DirShared::open(&dir, NOW).expect("open");
    let waiting = [request(NOW, 600), request(NOW, 600)];
    for r in &waiting {
        files.create(r, NOW, 10).expect("create");
    }
    files
        .create(&request(NOW - 700, 600), NOW - 700, 10)
        .expect("old");
    let mut answered = Vec::new();
    for at in [NOW - 50, NOW - 40] {
        let r = request(NOW - 100, 600);
        files.create(&r, NOW - 100, 10).expect("create");
        files
            .take(&r.pending.state, at)
            .expect("take")
            .expect("taken");
        let (report, receipt) = rejected(&r.pending.state);
        answered.push(
            files
                .finish(&r.pending.state, report, receipt, at, 10)
                .expect("finish")
                .receipt_id
                .clone(),
        );
    }
    drop(files);
    let target = PgShared::connect(&db.url).expect("connect");
    let moved = target.move_from(&dir, NOW).expect("move");
    assert_eq!((moved.requests, moved.receipts, moved.already), (2, 2, 0));
    // The requests are the database's now: answerable there once, no longer in the directory.
    let files = DirShared::open(&dir, NOW).expect("reopen");
    for r in &waiting {
        assert!(files
            .lookup(&r.pending.state, NOW)
            .expect("lookup")
            .is_none());
        let w = target
            .lookup(&r.pending.state, NOW)
            .expect("lookup")
            .expect("moved");
        assert_eq!(w.request, *r);
    }
    assert_eq!(target.pending_count(NOW).expect("count"), 2);
    assert!(target
        .take(&waiting[0].pending.state, NOW + 1)
        .expect("take")
        .is_some());
    // The history reads the same from the database; the receipts stay in the directory.
    let history: Vec<String> = target
        .receipts(10, None)
        .expect("history")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(history, [answered[1].clone(), answered[0].clone()]);
    assert_eq!(files.receipts(10, None).expect("files").len(), 2);
    // Again: nothing new, nothing doubled.
    let again = target.move_from(&dir, NOW).expect("again");
    assert_eq!((again.requests, again.receipts, again.already), (0, 0, 2));
    // A directory holding a different receipt under an id the database has: refused whole.
    let file = dir
        .path()
        .join("receipts")
        .join(format!("{}.json", answered[0]));
    std::fs::write(&file, r#"{"policy":"loan-application","verdict":"ACCEPT"}"#).expect("edit");
    files
        .create(&request(NOW, 600), NOW, 10)
        .expect("another request");
    let e = target.move_from(&dir, NOW).expect_err("differs");
    assert_eq!(e.code(), ReasonCode::MoveVerifyFailed, "{e}");
    assert_eq!(files.pending_count(NOW).expect("count"), 1, "nothing moved");
    assert_eq!(target.pending_count(NOW).expect("count"), 2);
}
