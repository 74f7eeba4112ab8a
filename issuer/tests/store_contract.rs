//! One contract for both stores of the issuer: every test here runs on sled and on
//! PostgreSQL (`on_sled::…`, `on_postgres::…`).
//!
//! A test asks its [`Place`] for store handles. On PostgreSQL each handle is its own
//! connection pool and runtime on one database, as two issuer instances would be: what
//! holds between the handles holds between processes. On sled a second handle is a clone of
//! the first (one process owns a sled store), so the same tests check the same outcomes.
//!
//! The PostgreSQL runs need `BIZCRED_TEST_DATABASE_URL` (each test gets a fresh database,
//! dropped after it): without it they say SKIPPED loudly and pass; under `CI=true` they fail.
//! `tests/postgres_store.rs` has what only PostgreSQL has (the schema check, the move from
//! sled, callers on async runtimes).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use bizcred_core::status_list::{self, Status};
use bizcred_core::webvh;
use bizcred_issuer::issuer::StatusAction;
use bizcred_issuer::keyfiles::SealedKeyFiles;
use bizcred_issuer::store::{
    sha256_hex, verify_audit, AccessToken, AppStatus, Application, BusinessIds, CredentialRecord,
    CredentialStatus, EventKind, Offer, PublicIssue, SignedList, Store, StoreError, Swept,
    MAX_EVENT_PAGE,
};
use bizcred_issuer::{Actor, Config, Issuer};
use bizcred_schemas::ReasonCode;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use common::TestDb;

/// Where a contract test runs.
enum Place {
    Sled {
        dir: tempfile::TempDir,
        store: Store,
    },
    Pg {
        dir: tempfile::TempDir,
        db: TestDb,
    },
}

impl Place {
    fn sled() -> Place {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("data").join("db")).expect("open");
        Place::Sled { dir, store }
    }

    fn pg(what: &str) -> Option<Place> {
        let server = common::server(what)?;
        Some(Place::Pg {
            dir: tempfile::tempdir().expect("tmp"),
            db: common::migrated(&server),
        })
    }

    /// Another handle on the store: a new connection pool (an instance) on PostgreSQL, a
    /// clone on sled.
    fn handle(&self) -> Store {
        match self {
            Place::Sled { store, .. } => store.clone(),
            Place::Pg { db, .. } => Store::connect(&db.url, 8).expect("connect"),
        }
    }

    /// `n` handles.
    fn handles(&self, n: usize) -> Vec<Store> {
        (0..n).map(|_| self.handle()).collect()
    }

    /// A second issuer instance beside `first`: its own connection pool on PostgreSQL; on
    /// sled, `first` itself (one process owns a sled store, and serves it as one issuer).
    fn second(&self, first: &Arc<Issuer>, cfg: &Config) -> Arc<Issuer> {
        match self {
            Place::Sled { .. } => first.clone(),
            Place::Pg { .. } => Arc::new(
                Issuer::new(
                    cfg.clone(),
                    self.handle(),
                    Box::new(SealedKeyFiles::new(
                        &cfg.storage,
                        Zeroizing::new(PASS.into()),
                    )),
                    now,
                )
                .expect("second instance"),
            ),
        }
    }

    /// An issuer configuration on this place's database (PostgreSQL) or on a sled store of
    /// its own (not the place's: sled lets one handle open a directory); the key files are in
    /// the storage directory either way.
    fn config(&self, list_size: u64) -> Config {
        let (dir, database) = match self {
            Place::Sled { dir, .. } => (dir, String::new()),
            Place::Pg { dir, db } => (dir, format!("database = {:?}\n", db.url)),
        };
        Config::parse(&format!(
            "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18086\"\n[storage]\npath = {:?}\n{database}[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = {list_size}\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.path().join("issuer").to_string_lossy(),
            "00".repeat(32)
        ))
        .expect("config")
    }
}

const URL: &str = "http://localhost:18086";
const PASS: &str = "correct horse battery staple";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn application(id: &str, status: AppStatus, created: i64) -> Application {
    Application {
        id: id.into(),
        credential_type: "certificate-of-incorporation".into(),
        status,
        claims: Map::new(),
        verified_claims: Vec::new(),
        nonce: None,
        nonce_used: false,
        holder_thumbprint: None,
        verification: None,
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
        offer: json!({"credential_issuer": URL, "offer": id}),
    }
}

fn access(app: &str, expires: i64) -> AccessToken {
    AccessToken {
        application_id: app.into(),
        configuration_id: "certificate-of-incorporation".into(),
        expires,
        used: false,
        credential_id: None,
        reissues: 0,
    }
}

/// An application `app-{n}` with an offer redeemed for the access token `token-{n}`.
fn redeemed(store: &Store, n: usize) -> String {
    let app = application(&format!("app-{n}"), AppStatus::Offered, 1_000);
    let o = offer(&format!("offer-{n}"), &app.id, 10_000);
    store
        .put_application(&app, 1_000, None)
        .expect("application");
    store.put_offer(&o, &app, 1_000).expect("offer");
    let hash = format!("token-{n}");
    store
        .redeem(&o.id, &hash, &access(&app.id, 10_000), 1_001)
        .expect("redeem");
    hash
}

fn record(n: usize, list: u32, idx: u64) -> CredentialRecord {
    CredentialRecord {
        id: format!("cred-{n}"),
        application_id: format!("app-{n}"),
        vct: "https://bizcred.example/vct/certificate-of-incorporation".into(),
        status_list: list,
        status_idx: idx,
        status: CredentialStatus::Valid,
        issued_at: 1_002,
        kid: "did:example:obr#key-1".into(),
        credential_sha256: "00".repeat(32),
        history: Vec::new(),
    }
}

fn events(store: &Store, event: &str) -> usize {
    let entries = store.audit_entries().expect("audit");
    assert_eq!(verify_audit(&entries), Ok(entries.len()), "the audit chain");
    entries.iter().filter(|e| e["event"] == event).count()
}

/// Runs `f(i, handle)` on `n` threads started together, the handles taken in turn.
fn race<T: Send + 'static>(
    handles: &[Store],
    n: usize,
    f: impl Fn(usize, &Store) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (f, barrier, store) = (
                f.clone(),
                barrier.clone(),
                handles[i % handles.len()].clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                f(i, &store)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect()
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sled {
            $( #[test] fn $name() { super::$name(&super::Place::sled()); } )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(place) =
                        super::Place::pg(concat!("store contract: ", stringify!($name)))
                    {
                        super::$name(&place);
                    }
                }
            )*
        }
    };
}

contract!(
    concurrent_issuances_keep_their_own_outcomes,
    a_status_index_is_never_allocated_twice,
    a_code_a_token_and_a_nonce_are_used_once,
    the_audit_log_stays_one_chain,
    a_status_change_and_its_bits_land_together,
    a_signed_list_is_kept_only_over_an_older_one,
    the_list_served_shows_a_change_made_on_another_instance,
    of_two_compare_and_swaps_one_lands,
    the_sweep_is_bounded_and_removes_only_what_expired,
    a_full_list_rolls_over_once,
    public_records_replace_revoke_and_feed_in_one_transaction,
    events_land_with_their_changes_and_run_without_gaps,
);

/// Issuances from two handles at once: each gets its own outcome, a refused one refuses only
/// itself, and what was acknowledged is exactly what is stored.
fn concurrent_issuances_keep_their_own_outcomes(place: &Place) {
    let handles = place.handles(2);
    let store = &handles[0];
    store.prepare_status_lists(1024).expect("lists");
    let n = 24;
    let tokens: Vec<String> = (0..n).map(|i| redeemed(store, i)).collect();
    // 0..20 are distinct; 20 and 21 want one status index; 22 and 23 use 22's token.
    let jobs: Arc<Vec<(CredentialRecord, String)>> = Arc::new(
        (0..n)
            .map(|i| {
                let idx = if i == 21 { 20 } else { i as u64 };
                let tok = tokens[if i == 23 { 22 } else { i }].clone();
                (record(i, 1, idx), tok)
            })
            .collect(),
    );
    let outcomes = race(&handles, n, move |i, s| {
        s.record_issuance(&jobs[i].0, &jobs[i].1, 1_002)
    });
    for (i, o) in outcomes.iter().enumerate().take(20) {
        assert!(o.is_ok(), "issuance {i}: {o:?}");
    }
    let one_of = |a: usize, b: usize, lost: fn(&Result<(), StoreError>) -> bool| {
        assert_eq!(
            [&outcomes[a], &outcomes[b]]
                .iter()
                .filter(|o| o.is_ok())
                .count(),
            1,
            "{a} / {b}"
        );
        assert!(lost(&outcomes[a]) || lost(&outcomes[b]), "{a} / {b}");
    };
    one_of(20, 21, |o| matches!(o, Err(StoreError::IndexTaken(20))));
    one_of(22, 23, |o| matches!(o, Err(StoreError::TokenUsed)));
    for s in &handles {
        assert_eq!(s.credentials().expect("credentials").len(), 22);
        assert_eq!(s.open_status_list().expect("list").allocated, 22);
        assert_eq!(events(s, "credential_issued"), 22);
    }
    for (i, o) in outcomes.iter().enumerate() {
        let app = store.application(&format!("app-{i}")).expect("app");
        assert_eq!(
            app.status == AppStatus::Issued,
            o.is_ok(),
            "application {i}"
        );
    }
}

/// Many issuances racing for the indices of a small list from two handles (the core's way:
/// draw, and draw again when the index was taken): every index is held once.
fn a_status_index_is_never_allocated_twice(place: &Place) {
    let handles = place.handles(2);
    handles[0].prepare_status_lists(64).expect("lists");
    let (threads, each) = (8, 6);
    for i in 0..threads * each {
        redeemed(&handles[0], i);
    }
    let per_thread = race(&handles, threads, move |t, s| {
        let mut taken_seen = 0;
        let mut got = Vec::new();
        for k in 0..each {
            let n = t * each + k;
            loop {
                let idx = OsRng.next_u64() % 64;
                match s.record_issuance(&record(n, 1, idx), &format!("token-{n}"), 1_002) {
                    Ok(()) => {
                        got.push(idx);
                        break;
                    }
                    Err(StoreError::IndexTaken(i)) => {
                        assert_eq!(i, idx);
                        taken_seen += 1;
                        assert!(taken_seen < 10_000, "no free index found");
                    }
                    Err(e) => panic!("issuance {n}: {e}"),
                }
            }
        }
        got
    });
    let all: Vec<u64> = per_thread.into_iter().flatten().collect();
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), threads * each);
    assert_eq!(distinct.len(), all.len(), "an index was given twice");
    for s in &handles {
        let held: HashSet<u64> = s
            .credentials()
            .expect("credentials")
            .iter()
            .map(|c| c.status_idx)
            .collect();
        assert_eq!(held, distinct);
        assert_eq!(
            s.open_status_list().expect("list").allocated,
            all.len() as u64
        );
        for idx in 0..64 {
            assert_eq!(
                s.index_taken(1, idx).expect("taken"),
                distinct.contains(&idx)
            );
        }
        let free = s.free_index(1, 64, 0).expect("free").expect("some free");
        assert!(!distinct.contains(&free));
        assert_eq!(events(s, "credential_issued"), all.len());
    }
}

/// Codes, access tokens and nonces from two handles at once: exactly one use each.
fn a_code_a_token_and_a_nonce_are_used_once(place: &Place) {
    let handles = place.handles(2);
    let store = &handles[0];
    store.prepare_status_lists(1024).expect("lists");
    let app = application("app-1", AppStatus::Offered, 1_000);
    store.put_application(&app, 1_000, None).expect("app");
    store
        .put_offer(&offer("offer-1", "app-1", 10_000), &app, 1_000)
        .expect("offer");
    assert!(store.offer_by_code("code-offer-1").expect("code").is_some());
    // The code: eight redemptions at once, one wins.
    let outcomes = race(&handles, 8, |i, s| {
        s.redeem(
            "offer-1",
            &format!("t-{i}"),
            &access("app-1", 10_000),
            1_001,
        )
    });
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    for o in outcomes.iter().filter(|o| o.is_err()) {
        assert!(matches!(o, Err(StoreError::CodeUsedOrExpired)), "{o:?}");
    }
    let winner = outcomes.iter().position(Result::is_ok).expect("a winner");
    let token = format!("t-{winner}");
    for s in &handles {
        assert!(s.offer("offer-1").expect("offer").used);
        for i in 0..8 {
            assert_eq!(
                s.token(&format!("t-{i}")).expect("token").is_some(),
                i == winner
            );
        }
    }
    assert!(matches!(
        store.redeem("nowhere", "t-x", &access("app-1", 10_000), 1_001),
        Err(StoreError::NotFound { .. })
    ));
    // An expired code, and one voided by wrong transaction codes.
    store
        .put_offer(&offer("offer-2", "app-1", 1_000), &app, 1_000)
        .expect("offer");
    assert!(matches!(
        store.redeem("offer-2", "t-y", &access("app-1", 10_000), 1_000),
        Err(StoreError::CodeUsedOrExpired)
    ));
    store
        .put_offer(&offer("offer-3", "app-1", 10_000), &app, 1_000)
        .expect("offer");
    assert_eq!(handles[0].offer_failed_attempt("offer-3", 2).expect("1"), 1);
    assert_eq!(handles[1].offer_failed_attempt("offer-3", 2).expect("2"), 2);
    let e = store
        .redeem("offer-3", "t-z", &access("app-1", 10_000), 1_001)
        .expect_err("voided");
    assert_eq!(e.code(), ReasonCode::PreAuthorizedCodeUsedOrExpired);

    // The token: two issuances with it at once (distinct indices), one wins.
    let outcomes = race(&handles, 2, move |i, s| {
        s.record_issuance(&record(i, 1, 100 + i as u64), &token, 1_002)
    });
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Err(StoreError::TokenUsed))));
    let issued = outcomes.iter().position(Result::is_ok).expect("issued");
    let used = handles[1]
        .token(&format!("t-{winner}"))
        .expect("token")
        .expect("kept");
    assert!(used.used);
    assert_eq!(used.credential_id, Some(format!("cred-{issued}")));
    // Re-issues with it are counted, from either handle, up to the bound.
    let rec = record(issued, 1, 100 + issued as u64);
    let tok = format!("t-{winner}");
    assert!(handles[0]
        .record_reissue(&tok, &rec, "k", "s", 1_003, 2)
        .is_ok());
    assert!(handles[1]
        .record_reissue(&tok, &rec, "k", "s", 1_003, 2)
        .is_ok());
    assert!(matches!(
        handles[0].record_reissue(&tok, &rec, "k", "s", 1_003, 2),
        Err(StoreError::TokenUsed)
    ));
    assert_eq!(events(store, "credential_reissued"), 2);

    // The nonce: eight takes at once, one succeeds; an expired one never does.
    handles[0].put_nonce("n-1", 2_000).expect("nonce");
    let taken = race(&handles, 8, |_, s| {
        s.take_nonce("n-1", 1_000).expect("take")
    });
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "{taken:?}");
    handles[1].put_nonce("n-2", 900).expect("nonce");
    assert!(!handles[0].take_nonce("n-2", 1_000).expect("expired"));
    assert!(!handles[1].take_nonce("n-unknown", 1_000).expect("unknown"));
}

/// Appends from two handles at once make one chain.
fn the_audit_log_stays_one_chain(place: &Place) {
    let handles = place.handles(2);
    let (threads, each) = (8, 25);
    race(&handles, threads, move |t, s| {
        for k in 0..each {
            if k % 5 == 0 {
                let app = application(&format!("a-{t}-{k}"), AppStatus::AwaitingApproval, 1_000);
                s.put_application(&app, 1_000, Some("application_saved"))
                    .expect("application");
            } else {
                s.audit(1_000 + k as i64, "test_event", json!({"thread": t, "k": k}))
                    .expect("append");
            }
        }
    });
    for s in &handles {
        let entries = s.audit_entries().expect("entries");
        assert_eq!(verify_audit(&entries), Ok(threads * each));
        let seqs: HashSet<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs.len(), threads * each);
    }
    assert_eq!(
        handles[0].audit_entries().expect("a"),
        handles[1].audit_entries().expect("b")
    );
}

/// The 2-bit entry `idx` of packed bytes.
fn entry(bytes: &[u8], idx: u64) -> u8 {
    (bytes[(idx / 4) as usize] >> ((idx % 4) * 2)) & 0b11
}

/// Status changes of one list from two handles at once: each record and its bit change
/// together, none is lost, and every change moves the list's version.
fn a_status_change_and_its_bits_land_together(place: &Place) {
    let handles = place.handles(2);
    let store = &handles[0];
    store.prepare_status_lists(64).expect("lists");
    let recs: Vec<CredentialRecord> = (0..40).map(|i| record(i, 1, i as u64)).collect();
    store.import_issued(&recs, 1_000).expect("import");
    let before = store.status_bits(1).expect("bits");
    assert!(before.bytes.iter().all(|b| *b == 0));
    let want = |i: usize| {
        if i.is_multiple_of(2) {
            CredentialStatus::Revoked
        } else {
            CredentialStatus::Suspended
        }
    };
    let versions = race(&handles, 8, move |t, s| {
        let mut versions = Vec::new();
        for i in (t..40).step_by(8) {
            let (rec, version) = s
                .set_status(
                    &format!("cred-{i}"),
                    want(i),
                    &Actor::Automation,
                    Some("test"),
                    1_001,
                )
                .expect("set");
            assert_eq!(rec.status, want(i));
            assert_eq!(rec.history.len(), 1);
            versions.push(version);
        }
        versions
    });
    let versions: Vec<u64> = versions.into_iter().flatten().collect();
    let distinct: HashSet<u64> = versions.iter().copied().collect();
    assert_eq!(distinct.len(), 40, "every change took its own version");
    for s in &handles {
        let bits = s.status_bits(1).expect("bits");
        assert_eq!(bits.version, before.version + 40);
        for i in 0..40u64 {
            let value = if i.is_multiple_of(2) { 1 } else { 2 };
            assert_eq!(entry(&bits.bytes, i), value, "index {i}");
            assert_eq!(
                s.credential(&format!("cred-{i}")).expect("c").status,
                want(i as usize)
            );
        }
        for i in 40..64 {
            assert_eq!(entry(&bits.bytes, i), 0);
        }
        assert_eq!(s.status_version(1).expect("version"), bits.version);
    }
    // Reinstated: the bit goes back with the record; a revoked one stays revoked.
    let (_, v) = handles[1]
        .set_status(
            "cred-1",
            CredentialStatus::Valid,
            &Actor::Automation,
            None,
            1_002,
        )
        .expect("reinstate");
    assert_eq!(entry(&handles[0].status_bits(1).expect("bits").bytes, 1), 0);
    let e = handles[0]
        .set_status(
            "cred-0",
            CredentialStatus::Valid,
            &Actor::Automation,
            None,
            1_002,
        )
        .expect_err("final");
    assert_eq!(e.code(), ReasonCode::RevokedIsFinal);
    assert_eq!(handles[1].status_version(1).expect("version"), v);
    assert!(matches!(
        store.set_status(
            "nowhere",
            CredentialStatus::Revoked,
            &Actor::Automation,
            Some("x"),
            1
        ),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(events(store, "status_changed"), 41);
}

/// Signed lists from two handles at once: the one with the largest `iat` is kept, every
/// other is refused with what was held.
fn a_signed_list_is_kept_only_over_an_older_one(place: &Place) {
    let handles = place.handles(2);
    handles[0].prepare_status_lists(64).expect("lists");
    let signed = |iat: i64| SignedList {
        iat,
        version: iat as u64,
        kid: "did:example:obr#key-1".into(),
        token: format!("token-{iat}"),
    };
    for round in 0..4i64 {
        let base = 1_000 + round * 100;
        let outcomes = race(&handles, 8, move |i, s| {
            s.put_signed_status_list(1, &signed(base + i as i64))
        });
        for o in &outcomes {
            match o {
                Ok(()) => {}
                Err(StoreError::StatusListNotNewer { held, iat }) => assert!(held >= iat),
                Err(e) => panic!("{e}"),
            }
        }
        for s in &handles {
            let held = s.signed_status_list(1).expect("read").expect("held");
            assert_eq!(held, signed(base + 7), "the newest is kept");
            assert_eq!(s.signed_status_lists().expect("all")[&1], signed(base + 7));
        }
    }
    // Not newer: refused, nothing written.
    let e = handles[1]
        .put_signed_status_list(1, &signed(1_307))
        .expect_err("same iat");
    assert_eq!(e.code(), ReasonCode::StatusListNotNewer);
    assert!(handles[0].signed_status_list(2).expect("none").is_none());
}

/// Two issuer instances on one store: a status change made on one is in the list the other
/// serves afterwards, re-signed with a larger `iat`.
fn the_list_served_shows_a_change_made_on_another_instance(place: &Place) {
    let cfg = place.config(64);
    let t0 = now();
    let (a, _) =
        Issuer::create(cfg.clone(), Zeroizing::new(PASS.into()), t0 - 10, now).expect("create");
    let a = Arc::new(a);
    let b = place.second(&a, &cfg);
    let recs: Vec<CredentialRecord> = (0..3).map(|i| record(i, 1, 10 + i as u64)).collect();
    a.store.import_issued(&recs, t0).expect("import");
    let log = a.did_log().expect("log");
    let key = webvh::verify_log(&log, None, t0 + 60)
        .versions
        .last()
        .expect("version")
        .verification_method(&a.kid())
        .expect("key");
    let uri = format!("{URL}/status/1");
    let served = |i: &Issuer| {
        let token = i.status_list(1).expect("list");
        status_list::verify_token(&token, &uri, &key, now()).expect("verifies")
    };
    let first = served(&b);
    assert_eq!(first.list.get(10).expect("entry"), Status::Valid);
    a.set_status(
        &Actor::Automation,
        "cred-0",
        StatusAction::Revoke,
        Some("fraud"),
    )
    .expect("revoke on a");
    let after_a = served(&b);
    assert_eq!(after_a.list.get(10).expect("entry"), Status::Invalid);
    assert!(after_a.iat > first.iat);
    b.set_status(
        &Actor::Automation,
        "cred-1",
        StatusAction::Suspend,
        Some("audit"),
    )
    .expect("suspend on b");
    let after_b = served(&a);
    assert_eq!(after_b.list.get(10).expect("entry"), Status::Invalid);
    assert_eq!(after_b.list.get(11).expect("entry"), Status::Suspended);
    assert_eq!(after_b.list.get(12).expect("entry"), Status::Valid);
    assert!(after_b.iat > after_a.iat);
    assert_eq!(served(&b), after_b, "both serve the newest list recorded");
    let held = a.store.signed_status_list(1).expect("read").expect("held");
    assert_eq!(held.version, a.store.status_version(1).expect("version"));
}

/// Compare-and-swaps of one application from two handles at once: one lands per round,
/// the others are told the state it left, and only the winner's offer is kept.
fn of_two_compare_and_swaps_one_lands(place: &Place) {
    let handles = place.handles(2);
    let store = &handles[0];
    let first = application("app-cas", AppStatus::AwaitingApproval, 1_000);
    store.put_application(&first, 1_000, None).expect("app");
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(6));
        let outcomes = race(&handles, 6, move |i, s| {
            let before = s.application("app-cas").expect("read");
            barrier.wait();
            let mut after = before.clone();
            after.status = if i.is_multiple_of(2) {
                AppStatus::ChangesRequested
            } else {
                AppStatus::AwaitingApproval
            };
            after.claims.insert("winner".into(), json!(i));
            after.claims.insert("round".into(), json!(round));
            let o = offer(&format!("o-{round}-{i}"), "app-cas", 10_000);
            (
                after.clone(),
                s.swap_application(&before, &after, Some(&o), 1_001, "decided", json!({"i": i})),
            )
        });
        let won: Vec<&(Application, Result<(), StoreError>)> =
            outcomes.iter().filter(|(_, o)| o.is_ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        let winner = &won[0].0;
        for (_, o) in &outcomes {
            match o {
                Ok(()) => {}
                Err(StoreError::ApplicationChanged { id, status }) => {
                    assert_eq!(id, "app-cas");
                    assert_eq!(*status, winner.status);
                }
                Err(e) => panic!("{e}"),
            }
        }
        for s in &handles {
            assert_eq!(&s.application("app-cas").expect("app"), winner);
            let w = winner.claims["winner"].as_u64().expect("winner");
            for i in 0..6 {
                let kept = s.offer(&format!("o-{round}-{i}")).is_ok();
                assert_eq!(kept, i == w, "offer {i} of round {round}");
            }
        }
    }
    assert_eq!(events(store, "decided"), 5);
    let decided = store.audit_entries().expect("audit");
    let last = decided
        .iter()
        .rev()
        .find(|e| e["event"] == "decided")
        .expect("e");
    assert_eq!(last["details"]["application_id"], "app-cas");
    assert!(matches!(
        store.swap_application(
            &application("nowhere", AppStatus::AwaitingApproval, 1),
            &application("nowhere", AppStatus::Refused, 1),
            None,
            1,
            "x",
            Value::Null
        ),
        Err(StoreError::NotFound { .. })
    ));
}

/// The sweep removes at most `max` of each kind a call, never anything live, and two
/// sweeping at once remove each thing once.
fn the_sweep_is_bounded_and_removes_only_what_expired(place: &Place) {
    let handles = place.handles(2);
    let store = &handles[0];
    let approved = application("a3", AppStatus::AwaitingApproval, 100);
    store.put_application(&approved, 100, None).expect("app");
    // Offers: 2 live, 3 expired, 2 used (one voided, one redeemed).
    for (id, expires) in [
        ("live-1", 2_000),
        ("live-2", 2_000),
        ("exp-1", 900),
        ("exp-2", 900),
        ("exp-3", 1_000),
        ("void", 2_000),
        ("redeemed", 2_000),
    ] {
        store
            .put_offer(&offer(id, "a3", expires), &approved, 100)
            .expect("offer");
    }
    store.offer_failed_attempt("void", 1).expect("void");
    // Tokens: 2 live, 3 expired.
    store
        .redeem("redeemed", "t-live-0", &access("a3", 2_000), 100)
        .expect("redeem");
    for (i, expires) in [(1, 2_000), (2, 900), (3, 900), (4, 1_000)] {
        let o = offer(&format!("for-token-{i}"), "a3", 2_000);
        store.put_offer(&o, &approved, 100).expect("offer");
        store
            .redeem(&o.id, &format!("t-{i}"), &access("a3", expires), 100)
            .expect("redeem");
    }
    // Nonces: 1 live, 5 expired.
    store.put_nonce("n-live", 2_000).expect("n");
    for i in 0..5 {
        store.put_nonce(&format!("n-old-{i}"), 900 + i).expect("n");
    }
    // Applications awaiting a presentation: 4 old, 1 new, 1 answered in time.
    for i in 0..4 {
        let a = application(
            &format!("old-{i}"),
            AppStatus::AwaitingPrerequisites,
            100 + i,
        );
        store
            .put_application(&a, 100, Some("application_created"))
            .expect("app");
    }
    let young = application("young", AppStatus::AwaitingPrerequisites, 1_500);
    store.put_application(&young, 1_500, None).expect("app");
    let mut answered = application("answered", AppStatus::AwaitingPrerequisites, 100);
    store.put_application(&answered, 100, None).expect("app");
    answered.status = AppStatus::AwaitingApproval;
    store.put_application(&answered, 200, None).expect("app");

    // Dead: offers 3 expired + void + redeemed + the 4 redeemed for tokens = 9; tokens 3;
    // nonces 5; applications 4.
    let one = store.sweep(1_000, 1_000, 2).expect("bounded");
    assert_eq!(
        one,
        Swept {
            offers: 2,
            tokens: 2,
            nonces: 2,
            pending: 2
        }
    );
    // The rest, swept by both handles at once, a few at a time: each removed once.
    let mut total = one;
    loop {
        let got = race(&handles, 2, |_, s| s.sweep(1_000, 1_000, 2).expect("sweep"));
        let round = got.iter().fold(Swept::default(), |a, s| Swept {
            offers: a.offers + s.offers,
            tokens: a.tokens + s.tokens,
            nonces: a.nonces + s.nonces,
            pending: a.pending + s.pending,
        });
        for s in &got {
            assert!(s.offers <= 2 && s.tokens <= 2 && s.nonces <= 2 && s.pending <= 2);
        }
        if round == Swept::default() {
            break;
        }
        total.offers += round.offers;
        total.tokens += round.tokens;
        total.nonces += round.nonces;
        total.pending += round.pending;
    }
    assert_eq!(
        total,
        Swept {
            offers: 9,
            tokens: 3,
            nonces: 5,
            pending: 4
        }
    );
    for s in &handles {
        for live in ["live-1", "live-2"] {
            assert!(s.offer(live).is_ok(), "{live}");
            assert!(s
                .offer_by_code(&format!("code-{live}"))
                .expect("code")
                .is_some());
        }
        for gone in ["exp-1", "exp-2", "exp-3", "void", "redeemed"] {
            assert!(
                matches!(s.offer(gone), Err(StoreError::NotFound { .. })),
                "{gone}"
            );
            assert!(s
                .offer_by_code(&format!("code-{gone}"))
                .expect("code")
                .is_none());
        }
        assert!(s.token("t-live-0").expect("t").is_some());
        assert!(s.token("t-1").expect("t").is_some());
        for gone in ["t-2", "t-3", "t-4"] {
            assert!(s.token(gone).expect("t").is_none(), "{gone}");
        }
        for kept in ["young", "answered", "a3"] {
            assert!(s.application(kept).is_ok(), "{kept}");
        }
        for i in 0..4 {
            assert!(s.application(&format!("old-{i}")).is_err());
        }
        assert_eq!(events(s, "application_expired"), 4);
    }
    assert!(store.take_nonce("n-live", 1_000).expect("live"));
}

/// Two handles rolling over a full list at once open one next list.
fn a_full_list_rolls_over_once(place: &Place) {
    let handles = place.handles(2);
    handles[0].prepare_status_lists(16).expect("lists");
    let recs: Vec<CredentialRecord> = (0..16).map(|i| record(i, 1, i as u64)).collect();
    handles[0].import_issued(&recs, 1_000).expect("fill");
    let full = handles[1].open_status_list().expect("open");
    assert_eq!((full.list, full.allocated, full.size), (1, 16, 16));
    assert_eq!(handles[0].free_index(1, 16, 5).expect("free"), None);
    let opened = race(&handles, 6, |_, s| {
        s.open_next_status_list(1, 32, 1_001).expect("roll over")
    });
    for info in &opened {
        assert_eq!((info.list, info.size, info.allocated), (2, 32, 0));
    }
    for s in &handles {
        assert_eq!(s.status_lists().expect("lists").len(), 2);
        assert_eq!(s.open_status_list().expect("open").list, 2);
        let bits = s.status_bits(2).expect("bits");
        assert_eq!((bits.size, bits.bytes.len()), (32, 8));
        assert_eq!(events(s, "status_list_opened"), 1);
    }
    // An index outside its list, or a list that does not exist, is refused whole.
    let e = handles[0]
        .import_issued(&[record(100, 2, 3), record(101, 2, 32)], 1_002)
        .expect_err("outside");
    assert!(matches!(e, StoreError::IndexTaken(32)), "{e:?}");
    assert!(!handles[1].index_taken(2, 3).expect("taken"));
    assert!(matches!(
        handles[0].import_issued(&[record(102, 9, 0)], 1_002),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        handles[0].status_list_info(9),
        Err(StoreError::NotFound { .. })
    ));
}

fn public(n: usize, idx: u64, subject: &str, content: &str, replaces: Option<&str>) -> PublicIssue {
    PublicIssue {
        rec: record(n, 1, idx),
        subject: subject.into(),
        content_sha256: content.into(),
        credential: format!("credential-{n}~"),
        replaces: replaces.map(|id| (id.to_owned(), "superseded".to_owned())),
    }
}

/// Public records (bulk issuance): a batch lands whole with its feed positions and one audit
/// entry; a replacement revokes the credential it replaces (record, history and list bits)
/// in the same transaction; two runs replacing the same business: one lands, the other is
/// refused whole (`PUBLIC_RECORD_CHANGED`) and writes nothing; free indices are listed in
/// order around the taken ones.
fn public_records_replace_revoke_and_feed_in_one_transaction(place: &Place) {
    let handles = place.handles(2);
    handles[0].prepare_status_lists(64).expect("lists");
    handles[0]
        .import_issued(&[record(900, 1, 2)], 1_000)
        .expect("one taken");
    assert_eq!(
        handles[1].free_indices(1, 64, 0, 4).expect("free"),
        vec![0, 1, 3, 4]
    );
    assert_eq!(
        handles[1].free_indices(1, 64, 62, 4).expect("free"),
        vec![62, 63, 0, 1]
    );
    let first = handles[0]
        .record_public(
            &[
                public(1, 0, "1000001", "a", None),
                public(2, 1, "1000002", "b", None),
            ],
            1_001,
        )
        .expect("first batch");
    assert_eq!(first.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    let held = handles[1]
        .public_records(&["1000001".into(), "1000002".into(), "1000003".into()])
        .expect("records");
    assert_eq!(held.len(), 2);
    assert_eq!(held["1000001"].credential_id, "cred-1");
    // Two runs replace 1000001 at once: one lands.
    let outcomes = race(&handles, 2, |i, s| {
        s.record_public(
            &[public(
                10 + i,
                3 + i as u64,
                "1000001",
                "a2",
                Some("cred-1"),
            )],
            1_002,
        )
    });
    let landed: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
    assert_eq!(landed.len(), 1, "{outcomes:?}");
    for o in &outcomes {
        if let Err(e) = o {
            assert_eq!(e.code(), ReasonCode::PublicRecordChanged);
        }
    }
    for s in &handles {
        let old = s.credential("cred-1").expect("old");
        assert_eq!(old.status, CredentialStatus::Revoked);
        assert_eq!(old.history.len(), 1);
        let bits = s.status_bits(1).expect("bits");
        assert_eq!(entry(&bits.bytes, 0), 1);
        let feed = s.public_feed(0, 10).expect("feed");
        assert_eq!(
            feed.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(s.public_feed(2, 10).expect("feed").len(), 1);
        assert_eq!(events(s, "public_credentials_issued"), 2);
    }
    // The loser wrote nothing: its index is free.
    let loser = outcomes.iter().position(|o| o.is_err()).expect("a loser");
    assert!(!handles[0].index_taken(1, 3 + loser as u64).expect("taken"));
}

/// The event log: each issuance, status change and public record appends its events in its
/// own transaction (a refused one appends none); positions run from 1 without gaps under
/// concurrent issuances and changes from two handles (two instances on PostgreSQL); events
/// carry the business's identifiers and nothing else of the claims; reads are bounded.
fn events_land_with_their_changes_and_run_without_gaps(place: &Place) {
    let handles = place.handles(2);
    let store = &handles[0];
    store.prepare_status_lists(1024).expect("lists");
    let n = 18;
    let tokens: Vec<String> = (0..n).map(|i| redeemed(store, i)).collect();
    // The first application names a person and an address beside the business's numbers.
    let mut app = store.application("app-0").expect("app");
    let mut claims = Map::new();
    claims.insert("legal_name".into(), json!("Ristorante Jennifer Inc."));
    claims.insert("corporation_number".into(), json!("1234567"));
    claims.insert("business_number".into(), json!("812345676"));
    claims.insert(
        "directors".into(),
        json!([{"given_name": "Jennifer", "family_name": "Tremblay"}]),
    );
    claims.insert(
        "registered_office_address".into(),
        json!({"street_address": "12 Queen St W", "postal_code": "M5H 2N2"}),
    );
    app.claims = claims;
    store.put_application(&app, 1_000, None).expect("claims");
    // 16 and 17 share one token: one of them is refused and appends nothing.
    let jobs: Arc<Vec<(CredentialRecord, String)>> = Arc::new(
        (0..n)
            .map(|i| {
                let tok = tokens[if i == 17 { 16 } else { i }].clone();
                (record(i, 1, i as u64), tok)
            })
            .collect(),
    );
    let outcomes = race(&handles, n, move |i, s| {
        s.record_issuance(&jobs[i].0, &jobs[i].1, 1_002)
    });
    let issued: HashSet<String> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_ok())
        .map(|(i, _)| format!("cred-{i}"))
        .collect();
    assert_eq!(issued.len(), n - 1, "{outcomes:?}");
    for s in &handles {
        let log = s.events(0, 100).expect("events");
        assert_eq!(
            log.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..n as u64).collect::<Vec<_>>(),
            "positions from 1 without gaps"
        );
        assert!(log.iter().all(|e| e.kind == EventKind::CredentialIssued));
        let ids: HashSet<String> = log.iter().map(|e| e.credential_id.clone()).collect();
        assert_eq!(
            ids, issued,
            "an event for each issuance acknowledged, none else"
        );
        let first = log
            .iter()
            .find(|e| e.credential_id == "cred-0")
            .expect("cred-0");
        assert_eq!(
            first.business,
            BusinessIds {
                corporation_number: Some("1234567".into()),
                business_number: Some("812345676".into()),
                licence_number: None,
            }
        );
        assert_eq!((first.status_list, first.status_idx), (1, 0));
        assert_eq!(first.vct, record(0, 1, 0).vct);
        let text = serde_json::to_string(&log).expect("json");
        for personal in ["Jennifer", "Tremblay", "Queen St", "M5H", "Ristorante"] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
    }
    // Status changes from two handles at once: each lands with its event.
    let changes = race(&handles, 8, |t, s| {
        s.set_status(
            &format!("cred-{t}"),
            if t.is_multiple_of(2) {
                CredentialStatus::Suspended
            } else {
                CredentialStatus::Revoked
            },
            &Actor::Automation,
            Some("test"),
            1_003,
        )
        .map(|(rec, _)| rec.status)
    });
    assert!(changes.iter().all(Result::is_ok), "{changes:?}");
    let log = handles[1].events(0, 100).expect("events");
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..n as u64 + 8).collect::<Vec<_>>()
    );
    for e in &log[n - 1..] {
        let t: usize = e.credential_id["cred-".len()..].parse().expect("n");
        let want = if t.is_multiple_of(2) {
            EventKind::CredentialSuspended
        } else {
            EventKind::CredentialRevoked
        };
        assert_eq!(e.kind, want, "{e:?}");
        assert_eq!(e.time, 1_003);
    }
    // Reinstated: its event; a revoked one stays revoked and a refused change appends nothing;
    // a change to the status held changes nothing to tell.
    store
        .set_status(
            "cred-0",
            CredentialStatus::Valid,
            &Actor::Automation,
            None,
            1_004,
        )
        .expect("reinstate");
    let refused = handles[1].set_status(
        "cred-1",
        CredentialStatus::Valid,
        &Actor::Automation,
        None,
        1_004,
    );
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.code()),
        Err(ReasonCode::RevokedIsFinal)
    );
    store
        .set_status(
            "cred-1",
            CredentialStatus::Revoked,
            &Actor::Automation,
            Some("again"),
            1_004,
        )
        .expect("revoked again");
    let log = handles[1].events(n as u64 + 6, 100).expect("tail");
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[1].seq, log[1].kind, log[1].credential_id.as_str()),
        (n as u64 + 8, EventKind::CredentialReinstated, "cred-0")
    );
    assert_eq!(
        log[1].business.corporation_number.as_deref(),
        Some("1234567")
    );
    // Public records: the new credential issued, then the one it replaces revoked, with the
    // corporation number.
    handles[1]
        .record_public(&[public(100, 100, "1000001", "a", None)], 1_005)
        .expect("public");
    store
        .record_public(&[public(101, 101, "1000001", "b", Some("cred-100"))], 1_006)
        .expect("replacement");
    for s in &handles {
        let tail = s.events(n as u64 + 8, 100).expect("tail");
        let got: Vec<_> = tail
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.kind,
                    e.credential_id.as_str(),
                    e.business.corporation_number.as_deref(),
                )
            })
            .collect();
        let base = n as u64 + 8;
        assert_eq!(
            got,
            vec![
                (
                    base + 1,
                    EventKind::CredentialIssued,
                    "cred-100",
                    Some("1000001")
                ),
                (
                    base + 2,
                    EventKind::CredentialIssued,
                    "cred-101",
                    Some("1000001")
                ),
                (
                    base + 3,
                    EventKind::CredentialRevoked,
                    "cred-100",
                    Some("1000001")
                ),
            ]
        );
        // Bounded reads: a page from a cursor, and never more than the page's bound.
        let page = s.events(2, 3).expect("page");
        assert_eq!(
            page.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(s.events(base + 3, 10).expect("end").len(), 0);
        assert!(s.events(0, usize::MAX).expect("all").len() <= MAX_EVENT_PAGE);
    }
    // A refused public batch (the replaced credential is no longer current) appends nothing.
    let stale = store.record_public(&[public(102, 102, "1000001", "c", Some("cred-100"))], 1_007);
    assert_eq!(
        stale.map(|_| ()).map_err(|e| e.code()),
        Err(ReasonCode::PublicRecordChanged)
    );
    assert_eq!(
        store.events(0, 100).expect("events").len(),
        n - 1 + 8 + 1 + 3
    );
}
