//! One contract, every store: memory, sled and PostgreSQL run the same tests (the module
//! documentation of `bizcred_registry::store` states the contract). Appends land only at the
//! log's size, batches land whole or not at all, writers are serialized and see what others
//! appended, blobs keep increasing versions, and (sled, PostgreSQL) everything survives a
//! reopen. Then the same for registries: two registries on one store (two instances on one
//! database) append conflicting entries and only one lands, each sees the other's appends.
//!
//! The PostgreSQL run needs `BIZCRED_TEST_DATABASE_URL` (each test creates its own database
//! and drops it); without it those tests say SKIPPED loudly and pass, under `CI=true` they fail.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::entry::build;
use bizcred_registry::store::pg::PgStore;
use bizcred_registry::store::{Head, MemoryStore, SledStore, Store, StoreError};
use bizcred_registry::Registry;
use bizcred_schemas::ReasonCode;
use bizcred_test_support::{founding_entries, Agency};
use rand_core::OsRng;
use serde_json::Value;

use common::TestDb;

/// A storage under test: handles on it as several writers (processes) would hold them.
enum Backend {
    Memory(Arc<MemoryStore>),
    Sled {
        dir: tempfile::TempDir,
        open: Option<Arc<SledStore>>,
    },
    Postgres(TestDb),
}

impl Backend {
    fn memory() -> Option<Backend> {
        Some(Backend::Memory(Arc::default()))
    }

    fn sled() -> Option<Backend> {
        Some(Backend::Sled {
            dir: tempfile::tempdir().expect("tempdir"),
            open: None,
        })
    }

    fn postgres() -> Option<Backend> {
        let server = common::server("the store contract on PostgreSQL")?;
        Some(Backend::Postgres(common::migrated(&server)))
    }

    /// A handle on the storage: for PostgreSQL a new connection pool, as another instance
    /// would have; sled allows one process, so its handles share one open store.
    fn handle(&mut self) -> Box<dyn Store> {
        match self {
            Backend::Memory(m) => Box::new(m.clone()),
            Backend::Sled { dir, open } => {
                let s = open.get_or_insert_with(|| {
                    Arc::new(SledStore::open(&dir.path().join("db")).expect("open sled"))
                });
                Box::new(s.clone())
            }
            Backend::Postgres(db) => Box::new(PgStore::connect(&db.url).expect("connect")),
        }
    }

    /// A handle after closing and reopening the storage (every other handle must be dropped),
    /// or `None` for memory, which keeps nothing.
    fn reopen(&mut self) -> Option<Box<dyn Store>> {
        match self {
            Backend::Memory(_) => None,
            Backend::Sled { open, .. } => {
                let s = open.take().expect("open");
                assert_eq!(Arc::strong_count(&s), 1, "a handle is still held");
                drop(s);
                Some(self.handle())
            }
            Backend::Postgres(_) => Some(self.handle()),
        }
    }
}

fn e(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn code(r: Result<impl std::fmt::Debug, StoreError>) -> ReasonCode {
    r.expect_err("refused").code()
}

fn empty_store(b: &mut Backend) {
    let s = b.handle();
    assert_eq!(s.head().expect("head"), Head::default());
    assert!(s.load().expect("load").is_empty());
    assert!(s.entries_from(3).expect("from").is_empty());
    assert!(s.blobs().expect("blobs").is_empty());
}

fn appends_only_at_the_size(b: &mut Backend) {
    let s = b.handle();
    assert_eq!(
        code(s.append_all(1, &[e("x")])),
        ReasonCode::StorageConflict
    );
    assert_eq!(s.head().expect("head").size, 0, "nothing was written");
    s.append_all(0, &[e("a"), e("b")]).expect("at 0");
    assert_eq!(
        code(s.append_all(0, &[e("c")])),
        ReasonCode::StorageConflict
    );
    assert_eq!(
        code(s.append_all(1, &[e("c")])),
        ReasonCode::StorageConflict
    );
    assert_eq!(
        code(s.append_all(3, &[e("c")])),
        ReasonCode::StorageConflict
    );
    s.append(2, b"c").expect("at 2");
    assert_eq!(s.load().expect("load"), vec![e("a"), e("b"), e("c")]);
    assert_eq!(s.entries_from(1).expect("from 1"), vec![e("b"), e("c")]);
    assert!(s.entries_from(3).expect("from 3").is_empty());
    assert_eq!(s.head().expect("head").size, 3);
    // A writer that claims to have seen more than is stored is refused before its plan runs.
    let mut called = false;
    let r = s.append_with(4, &mut |_| {
        called = true;
        Some(vec![e("d")])
    });
    assert_eq!(code(r), ReasonCode::StorageConflict);
    assert!(!called);
}

fn batches_are_all_or_none(b: &mut Backend) {
    let s = b.handle();
    // A plan that declines writes nothing.
    assert_eq!(s.append_with(0, &mut |_| None).expect("declined"), None);
    assert_eq!(s.head().expect("head").size, 0);
    let batch: Vec<Vec<u8>> = (0..50).map(|i| e(&format!("first {i}"))).collect();
    assert_eq!(
        s.append_with(0, &mut |_| Some(batch.clone()))
            .expect("batch"),
        Some(0)
    );
    assert_eq!(s.load().expect("load"), batch);
    // Two writers race to append a batch at the same index: one lands whole, the other not at
    // all, and nothing interleaves.
    let batches: Vec<Vec<Vec<u8>>> = (0..2)
        .map(|w| {
            (0..10)
                .map(|i| e(&format!("writer {w} entry {i}")))
                .collect()
        })
        .collect();
    let gate = Arc::new(Barrier::new(2));
    let outcomes: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
        let joins: Vec<_> = batches
            .iter()
            .map(|batch| {
                let handle = b.handle();
                let gate = gate.clone();
                scope.spawn(move || {
                    gate.wait();
                    handle.append_all(50, batch)
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().expect("writer"))
            .collect()
    });
    let landed: Vec<usize> = (0..2).filter(|i| outcomes[*i].is_ok()).collect();
    assert_eq!(landed.len(), 1, "exactly one batch lands: {outcomes:?}");
    let lost = 1 - landed[0];
    assert_eq!(
        outcomes[lost].as_ref().map_err(StoreError::code).err(),
        Some(ReasonCode::StorageConflict)
    );
    assert_eq!(s.entries_from(50).expect("tail"), batches[landed[0]]);
    assert_eq!(s.head().expect("head").size, 60);
}

fn writers_see_what_others_appended(b: &mut Backend) {
    let one = b.handle();
    let two = b.handle();
    one.append_all(0, &[e("a"), e("b")]).expect("one");
    // The second writer last saw an empty log: its plan is shown what the first appended.
    let mut shown = Vec::new();
    let at = two
        .append_with(0, &mut |newer| {
            shown = newer.to_vec();
            Some(vec![e("c")])
        })
        .expect("two");
    assert_eq!(shown, vec![e("a"), e("b")]);
    assert_eq!(at, Some(2));
    assert_eq!(one.load().expect("load"), vec![e("a"), e("b"), e("c")]);
    assert_eq!(
        one.head().expect("head").size,
        3,
        "the first sees the second's append"
    );
}

fn concurrent_writers_are_serialized(b: &mut Backend) {
    const WRITERS: usize = 4;
    const EACH: usize = 15;
    let gate = Arc::new(Barrier::new(WRITERS));
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let handle = b.handle();
            let gate = gate.clone();
            scope.spawn(move || {
                gate.wait();
                let mut known = 0u64;
                for i in 0..EACH {
                    // Each writer also tries to take the one "claim": a plan declines it when
                    // the entries it is shown hold one (a conflict only one may win).
                    let claim = i == 0;
                    let mut seen_claim = false;
                    let at = handle
                        .append_with(known, &mut |newer| {
                            seen_claim = newer.iter().any(|n| n.starts_with(b"claim"));
                            let mut out = vec![e(&format!("w{w} #{i}"))];
                            if claim && !seen_claim {
                                out.push(e(&format!("claim by w{w}")));
                            }
                            Some(out)
                        })
                        .expect("append")
                        .expect("planned");
                    known = at + 1 + u64::from(claim && !seen_claim);
                }
            });
        }
    });
    let all = b.handle().load().expect("load");
    let text: Vec<String> = all
        .iter()
        .map(|x| String::from_utf8_lossy(x).into_owned())
        .collect();
    // Exactly one claim; every writer's entries once each, in its order.
    assert_eq!(
        text.iter().filter(|t| t.starts_with("claim")).count(),
        1,
        "{text:?}"
    );
    assert_eq!(all.len(), WRITERS * EACH + 1);
    for w in 0..WRITERS {
        let mine: Vec<&String> = text
            .iter()
            .filter(|t| t.starts_with(&format!("w{w} ")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("w{w} #{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}

fn blobs_have_increasing_versions(b: &mut Backend) {
    let s = b.handle();
    let other = b.handle();
    let v1 = s.put_blob("status:a", b"1").expect("a");
    let v2 = other.put_blob("status:b", b"2").expect("b");
    let v3 = s.put_blob("status:a", b"3").expect("a again");
    assert!(0 < v1 && v1 < v2 && v2 < v3, "{v1} {v2} {v3}");
    assert_eq!(other.head().expect("head").blob_version, v3);
    let all: Vec<(String, Vec<u8>, u64)> = other
        .blobs()
        .expect("blobs")
        .into_iter()
        .map(|x| (x.name, x.value, x.version))
        .collect();
    assert_eq!(
        all,
        vec![
            ("status:b".into(), e("2"), v2),
            ("status:a".into(), e("3"), v3)
        ]
    );
    let since: Vec<String> = s
        .blobs_since(v2)
        .expect("since")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(since, vec!["status:a".to_owned()]);
    assert!(s.blobs_since(v3).expect("none").is_empty());
    // A conditional write sees the current value; declining leaves value and version.
    let mut seen = None;
    let r = other
        .put_blob_with("status:a", &mut |cur| {
            seen = cur.map(<[u8]>::to_vec);
            None
        })
        .expect("declined");
    assert_eq!((r, seen), (None, Some(e("3"))));
    assert_eq!(s.head().expect("head").blob_version, v3);
    let mut fresh = Some(e("x"));
    let v4 = s
        .put_blob_with("status:new", &mut |cur| {
            assert!(cur.is_none());
            fresh.take()
        })
        .expect("new")
        .expect("written");
    assert!(v4 > v3);
}

fn everything_survives_a_reopen(b: &mut Backend) {
    {
        let s = b.handle();
        s.append_all(0, &[e("a"), e("b")]).expect("append");
        s.put_blob("status:x", b"list").expect("blob");
        s.put_blob("status:y", b"other").expect("blob");
    }
    let Some(s) = b.reopen() else {
        return; // memory keeps nothing by design
    };
    assert_eq!(s.load().expect("load"), vec![e("a"), e("b")]);
    let mut blobs: Vec<(String, Vec<u8>)> = s
        .blobs()
        .expect("blobs")
        .into_iter()
        .map(|x| (x.name, x.value))
        .collect();
    blobs.sort();
    assert_eq!(
        blobs,
        vec![
            ("status:x".into(), e("list")),
            ("status:y".into(), e("other"))
        ]
    );
    let h = s.head().expect("head");
    assert_eq!(h.size, 2);
    assert!(h.blob_version >= 2);
    s.append_all(2, &[e("c")])
        .expect("appends go on at the size");
    assert!(s.put_blob("status:x", b"newer").expect("blob") > h.blob_version);
}

// --- Registries sharing one store (instances sharing one database). ---

const ORIGIN: &str = "registry.bizcred.test/log";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock")
}

fn copy(k: &SecretKey) -> SecretKey {
    SecretKey::from_bytes(Algorithm::EdDSA, &k.to_bytes()).expect("copy")
}

struct Keys {
    authority: SecretKey,
    log: SecretKey,
}

/// Founds a registry on the storage; returns the keys.
fn founded(b: &mut Backend) -> Keys {
    let keys = Keys {
        authority: SecretKey::generate(Algorithm::EdDSA, &mut OsRng),
        log: SecretKey::generate(Algorithm::EdDSA, &mut OsRng),
    };
    let t = now() - 600;
    let mut reg = Registry::open(b.handle(), ORIGIN, copy(&keys.log), t).expect("open");
    reg.append_all(
        founding_entries(ORIGIN, &keys.authority, &keys.log.public_key(), t),
        t,
    )
    .expect("founding");
    keys
}

fn type_entry(keys: &Keys, vct: &str) -> Value {
    build::credential_type(
        ORIGIN,
        vct,
        86_400,
        86_400,
        now() - 60,
        &keys.authority,
        &mut OsRng,
    )
    .expect("entry")
}

fn instance(b: &mut Backend, keys: &Keys) -> Registry<Box<dyn Store>> {
    Registry::open(b.handle(), ORIGIN, copy(&keys.log), now()).expect("open")
}

fn registries_see_each_others_appends(b: &mut Backend) {
    let keys = founded(b);
    let mut one = instance(b, &keys);
    let mut two = instance(b, &keys);
    let r = one
        .append(type_entry(&keys, "urn:test:one"), now())
        .expect("one appends");
    assert_eq!(r, 5);
    assert_eq!(two.state().size(), 5, "not yet refreshed");
    assert!(two.refresh(now()).expect("refresh"), "something changed");
    assert_eq!(two.state().size(), 6);
    assert_eq!(
        two.checkpoint(),
        one.checkpoint(),
        "one truth, one checkpoint"
    );
    assert!(!two.refresh(now()).expect("refresh"), "nothing new");
    // The second appends without refreshing: its batch lands after the first's entry, and the
    // first's entry is now in its state too.
    let r = two
        .append_all(
            vec![
                type_entry(&keys, "urn:test:two"),
                type_entry(&keys, "urn:test:three"),
            ],
            now(),
        )
        .expect("two appends");
    assert_eq!(r, 6..8);
    one.refresh(now()).expect("refresh");
    assert_eq!(one.checkpoint(), two.checkpoint());
    assert_eq!(
        one.entries(0, 8).expect("entries"),
        two.entries(0, 8).expect("entries")
    );
}

fn conflicting_appends_on_two_registries_land_once(b: &mut Backend) {
    let keys = founded(b);
    let agency = Agency::new("agco.bizcred.test", now() - 3600);
    let mut one = instance(b, &keys);
    let mut two = instance(b, &keys);
    // The same registration submitted to both (neither has seen the other's): the one
    // validated second is validated against the state with the first's entry, and refused.
    let registration = build::issuer_registered(
        ORIGIN,
        &agency.did,
        "AGCO",
        "CAJO",
        &agency.log,
        now() - 60,
        &keys.authority,
        &mut OsRng,
    )
    .expect("entry");
    one.append(registration.clone(), now())
        .expect("first lands");
    let err = two
        .append(registration, now())
        .expect_err("the same entry does not land twice");
    assert_eq!(err.code(), ReasonCode::EntryDuplicate);
    // Two different updates of one DID log, each valid on its own, raced from two threads:
    // only one becomes the log's next version; the other is refused as not extending it.
    two.refresh(now()).expect("refresh");
    let forks: Vec<String> = (0..2).map(|_| agency.rotation(now() - 30).0).collect();
    let gate = Arc::new(Barrier::new(2));
    let outcomes: Vec<Result<u64, ReasonCode>> = std::thread::scope(|scope| {
        let joins: Vec<_> = [&mut one, &mut two]
            .into_iter()
            .zip(&forks)
            .map(|(reg, line)| {
                let gate = gate.clone();
                let did = agency.did.clone();
                scope.spawn(move || {
                    gate.wait();
                    reg.submit_did_lines(&did, line, now(), &mut OsRng)
                        .map_err(|e| e.code())
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().expect("thread"))
            .collect()
    });
    let landed = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(landed, 1, "{outcomes:?}");
    assert!(
        outcomes.contains(&Err(ReasonCode::EntryDidLog)),
        "{outcomes:?}"
    );
    one.refresh(now()).expect("refresh");
    two.refresh(now()).expect("refresh");
    assert_eq!(one.checkpoint(), two.checkpoint());
    assert_eq!(one.state().size(), 7);
    assert_eq!(
        one.state().issuers[&agency.did].log.versions.len(),
        2,
        "one rotation mirrored, not two"
    );
}

fn a_newer_status_list_is_never_replaced_by_another_instance(b: &mut Backend) {
    let keys = founded(b);
    let agency = Agency::new("agco.bizcred.test", now() - 3600);
    let mut one = instance(b, &keys);
    let (_, plan) = bizcred_registry::admin::onboard(
        ORIGIN,
        &keys.authority,
        &agency.log,
        "AGCO",
        "CAJO",
        &[bizcred_schemas::CredentialType::LiquorSalesLicence],
        now() - 60,
        &mut OsRng,
    )
    .expect("plan");
    one.append_all(plan.into_iter().map(|p| p.entry).collect(), now())
        .expect("onboard");
    let mut two = instance(b, &keys);
    let list = bizcred_core::status_list::StatusList::new(1024, 2).expect("list");
    let newer = agency.status_list_copy(&list, now() - 10, now() + 86_400);
    let older = agency.status_list_copy(&list, now() - 100, now() + 86_400);
    one.put_status_list(&newer.token).expect("newer");
    // The second instance has not seen the newer list; the store has, and refuses the older.
    let err = two
        .put_status_list(&older.token)
        .expect_err("older refused");
    assert_eq!(err.code(), ReasonCode::StatusListMalformed);
    two.refresh(now()).expect("refresh");
    let bundle = two.bundle(0, now()).expect("bundle");
    assert!(
        bundle.contains(&newer.token),
        "the bundle carries the newer list"
    );
    assert!(!bundle.contains(&older.token));
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $case() { if let Some(mut b) = super::Backend::memory() { super::$case(&mut b) } } )*
        }
        mod sled {
            $( #[test] fn $case() { if let Some(mut b) = super::Backend::sled() { super::$case(&mut b) } } )*
        }
        mod postgres {
            $( #[test] fn $case() { if let Some(mut b) = super::Backend::postgres() { super::$case(&mut b) } } )*
        }
    };
}

contract!(
    empty_store,
    appends_only_at_the_size,
    batches_are_all_or_none,
    writers_see_what_others_appended,
    concurrent_writers_are_serialized,
    blobs_have_increasing_versions,
    everything_survives_a_reopen,
    registries_see_each_others_appends,
    conflicting_appends_on_two_registries_land_once,
    a_newer_status_list_is_never_replaced_by_another_instance,
);

// --- PostgreSQL only: the lock, the schema check, the move from sled. ---

/// A writer that dies holding the append lock (its backend terminated, as a `kill -9` of its
/// process ends its connection) holds up the others only until PostgreSQL notices.
#[test]
fn postgres_a_dead_lock_holder_is_taken_over_at_once() {
    let Some(server) = common::server("lock takeover") else {
        return;
    };
    let db = common::migrated(&server);
    let store = PgStore::connect(&db.url).expect("connect");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut holder = rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::postgres::PgConnection::connect(&db.url)
            .await
            .expect("conn");
        sqlx::query("BEGIN").execute(&mut c).await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(bizcred_registry::store::pg::APPEND_LOCK)
            .execute(&mut c)
            .await
            .expect("lock");
        c
    });
    let pid: i32 = rt
        .block_on(sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut holder))
        .expect("pid");
    let started = Instant::now();
    let waiting = std::thread::spawn(move || {
        let r = store.append_all(0, &[e("after the holder died")]);
        (r.map_err(|e| e.code()), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "the append waits for the lock");
    db.execute(&format!("SELECT pg_terminate_backend({pid})"));
    let killed = started.elapsed();
    let (r, done) = waiting.join().expect("writer");
    assert_eq!(r, Ok(()));
    assert!(
        done - killed < Duration::from_secs(3),
        "taken over {:?} after the holder died",
        done - killed
    );
    drop(holder);
}

#[test]
fn postgres_serving_needs_this_binarys_schema() {
    let Some(server) = common::server("schema check") else {
        return;
    };
    let db = TestDb::create(&server);
    let err = PgStore::connect(&db.url).expect_err("not migrated");
    assert_eq!(err.code(), ReasonCode::DatabaseNotMigrated, "{err}");
    let first = bizcred_registry::store::pg::migrate(&db.url).expect("migrate");
    assert!(!first.applied.is_empty());
    let again = bizcred_registry::store::pg::migrate(&db.url).expect("again");
    assert!(again.applied.is_empty(), "idempotent");
    PgStore::connect(&db.url).expect("current");
    // A migration of a newer binary: this one refuses to serve, and to migrate.
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
    );
    let err = PgStore::connect(&db.url).expect_err("newer");
    assert_eq!(err.code(), ReasonCode::DatabaseSchemaNewer, "{err}");
    let err = bizcred_registry::store::pg::migrate(&db.url).expect_err("newer");
    assert_eq!(err.code(), ReasonCode::DatabaseSchemaNewer, "{err}");
    db.execute("DELETE FROM _sqlx_migrations WHERE version = 99990101000000");
    // An applied migration that differs from this binary's.
    db.execute("UPDATE _sqlx_migrations SET checksum = '\\x01'");
    let err = PgStore::connect(&db.url).expect_err("mismatch");
    assert_eq!(err.code(), ReasonCode::DatabaseSchemaMismatch, "{err}");
}

#[test]
fn postgres_a_bad_url_is_a_configuration_error_without_the_password() {
    let err = PgStore::connect("postgres://u:s3cret@127.0.0.1:notaport/db").expect_err("bad");
    assert_eq!(err.code(), ReasonCode::ConfigInvalid);
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
