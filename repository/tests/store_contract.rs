//! One contract for both stores of the repository: every test here runs on sled and on
//! PostgreSQL (`on_sled::…`, `on_postgres::…`).
//!
//! A test asks its [`Place`] for store handles. On PostgreSQL each handle is its own
//! connection pool and runtime on one database, as two repository instances would be; on
//! sled a second handle is a clone of the first (one process owns a sled store).
//!
//! The PostgreSQL runs need `BIZCRED_TEST_DATABASE_URL` (each test gets a fresh database,
//! dropped after it): without it they say SKIPPED loudly and pass; under `CI=true` they fail.
//! `postgres_only` holds what only PostgreSQL has (the schema check, callers on async
//! runtimes, two repository instances on one database).

use std::collections::BTreeSet;
use std::sync::Arc;

use bizcred_pg::testing::{server, TestDb};
use bizcred_repository::store::{pg, Record, Store};
use bizcred_repository::Error;
use bizcred_schemas::ReasonCode;
use serde_json::{json, Map};

/// Where a contract test runs.
enum Place {
    Sled {
        _dir: tempfile::TempDir,
        store: Store,
    },
    Pg {
        db: TestDb,
    },
}

impl Place {
    fn sled() -> Place {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("db")).expect("open");
        Place::Sled { _dir: dir, store }
    }

    fn pg(what: &str) -> Option<Place> {
        let server = server(what)?;
        Some(Place::Pg {
            db: TestDb::migrated(&server, pg::migrate),
        })
    }

    /// Another handle on the store: a new connection pool (an instance) on PostgreSQL, a
    /// clone on sled.
    fn handle(&self) -> Store {
        match self {
            Place::Sled { store, .. } => store.clone(),
            Place::Pg { db } => Store::connect(&db.url, 4).expect("connect"),
        }
    }
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
                        super::Place::pg(concat!("repository store contract: ", stringify!($name)))
                    {
                        super::$name(&place);
                    }
                }
            )*
        }
    };
}

contract!(
    records_are_kept_and_found_by_id_subject_and_status_entry,
    a_record_written_again_is_replaced_and_the_last_of_a_batch_wins,
    listings_are_complete_in_order_across_pages,
    cursors_and_list_times_are_kept,
    what_one_handle_writes_the_other_reads,
    concurrent_overlapping_batches_all_land,
    every_record_at_one_status_entry_is_found,
);

fn record(i: usize, subject: &str, issued_at: i64, idx: u64) -> Record {
    let mut claims = Map::new();
    claims.insert("corporation_number".into(), json!(subject));
    claims.insert("legal_name".into(), json!(format!("Entreprise Éloïse {i}")));
    claims.insert(
        "registered_office_address".into(),
        json!({"locality": "Sudbury", "postal_code": "P3A 1A1"}),
    );
    claims.insert("share_classes".into(), json!([1, 2.5, null, true]));
    Record {
        id: format!("{:064x}", i + 1),
        subject: subject.to_owned(),
        vct: "https://bizcred.test/vct/incorporation".into(),
        issuer: "did:webvh:obr.bizcred.test".into(),
        issued_at,
        status_uri: "https://obr.bizcred.test/status/1".into(),
        status_idx: idx,
        claims,
        status: "valid".into(),
        status_as_of: 1_700_000_000,
        verified_at: 1_700_000_100,
        text: format!("eyJhbGciOiJFUzI1NiJ9.{i}.sig~"),
    }
}

fn ids(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

/// Records round-trip whole; `of_subject` is in time order, `in_list` in index order (up to
/// `u64::MAX`), `contains`, `len` and `is_empty` agree.
fn records_are_kept_and_found_by_id_subject_and_status_entry(place: &Place) {
    let store = place.handle();
    assert!(store.is_empty());
    assert_eq!(store.len(), 0);
    let a_late = record(0, "1000001", 300, 7);
    let a_early = record(1, "1000001", 100, u64::MAX);
    let b = record(2, "1000002", 200, 0);
    let mut other_list = record(3, "1000002", 200, 5);
    other_list.status_uri = "https://obr.bizcred.test/status/2".into();
    store
        .put(&[
            a_late.clone(),
            a_early.clone(),
            b.clone(),
            other_list.clone(),
        ])
        .expect("put");
    assert!(!store.is_empty());
    assert_eq!(store.len(), 4);
    assert!(store.contains(&a_late.id).expect("contains"));
    assert!(!store.contains(&"f".repeat(64)).expect("contains"));
    assert_eq!(store.get(&a_early.id).expect("get"), Some(a_early.clone()));
    assert_eq!(store.get(&"f".repeat(64)).expect("get"), None);
    assert_eq!(
        store.of_subject("1000001").expect("of_subject"),
        vec![a_early.clone(), a_late.clone()]
    );
    assert!(store.of_subject("100000").expect("of_subject").is_empty());
    let listed: Vec<(u64, String)> = store
        .in_list("https://obr.bizcred.test/status/1")
        .collect::<Result<_, _>>()
        .expect("in_list");
    assert_eq!(
        listed,
        vec![
            (0, b.id.clone()),
            (7, a_late.id.clone()),
            (u64::MAX, a_early.id)
        ]
    );
    assert_eq!(
        store
            .in_list("https://obr.bizcred.test/status/2")
            .collect::<Result<Vec<_>, _>>()
            .expect("in_list"),
        vec![(5, other_list.id)]
    );
    assert_eq!(
        store
            .in_list("https://obr.bizcred.test/status/")
            .collect::<Result<Vec<_>, _>>()
            .expect("in_list"),
        vec![]
    );
    store.flush().expect("flush");
    store.put(&[]).expect("an empty batch");
    assert_eq!(store.len(), 4);
}

/// A record put again replaces the one held (its status is newer); of one id given twice in
/// a batch the last is kept.
fn a_record_written_again_is_replaced_and_the_last_of_a_batch_wins(place: &Place) {
    let store = place.handle();
    let r = record(0, "1000001", 100, 3);
    store.put(std::slice::from_ref(&r)).expect("put");
    let mut revoked = r.clone();
    revoked.status = "revoked".into();
    revoked.status_as_of = 1_700_000_500;
    store
        .put(std::slice::from_ref(&revoked))
        .expect("put again");
    assert_eq!(store.len(), 1);
    assert_eq!(store.get(&r.id).expect("get"), Some(revoked.clone()));
    assert_eq!(
        store.of_subject("1000001").expect("of_subject"),
        vec![revoked.clone()]
    );
    // An older status (another instance's refresh from an older list) never overwrites it.
    store.put(std::slice::from_ref(&r)).expect("put older");
    assert_eq!(store.get(&r.id).expect("get"), Some(revoked.clone()));
    let mut suspended = r.clone();
    suspended.status = "suspended".into();
    suspended.status_as_of = 1_700_000_600;
    store
        .put(&[revoked.clone(), suspended.clone()])
        .expect("put twice in one batch");
    assert_eq!(store.len(), 1);
    assert_eq!(store.get(&r.id).expect("get"), Some(suspended));
}

/// `all`, `subjects` and `in_list` give everything, once, in order, over more records than a
/// page of either backend's reads.
fn listings_are_complete_in_order_across_pages(place: &Place) {
    let store = place.handle();
    let n = 2_600;
    // Subjects where one is a prefix of another ("12" and "120…"), several records each.
    let subject = |i: usize| {
        if i.is_multiple_of(100) {
            "12".to_owned()
        } else {
            format!("12{:05}", i / 3)
        }
    };
    let records: Vec<Record> = (0..n)
        .map(|i| record(i, &subject(i), 1_000 + (i % 7) as i64, (n - i) as u64))
        .collect();
    for chunk in records.chunks(1_000) {
        store.put(chunk).expect("put");
    }
    assert_eq!(store.len(), n);
    let all: Vec<Record> = store.all().collect::<Result<_, _>>().expect("all");
    let mut want = records.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ids(&all), ids(&want));
    assert_eq!(all, want);
    let subjects: Vec<String> = store
        .subjects()
        .collect::<Result<_, _>>()
        .expect("subjects");
    let distinct: BTreeSet<String> = (0..n).map(subject).collect();
    assert_eq!(subjects, distinct.into_iter().collect::<Vec<_>>());
    assert_eq!(subjects.first().map(String::as_str), Some("12"));
    let listed: Vec<(u64, String)> = store
        .in_list("https://obr.bizcred.test/status/1")
        .collect::<Result<_, _>>()
        .expect("in_list");
    let mut want: Vec<(u64, String)> = records
        .iter()
        .map(|r| (r.status_idx, r.id.clone()))
        .collect();
    want.sort();
    assert_eq!(listed, want);
    // A listing read partly and dropped is fine; one read again starts from the beginning.
    assert_eq!(store.subjects().take(3).count(), 3);
    assert_eq!(store.all().count(), n);
}

/// A feed's cursor starts at 0 and keeps the last position set (up to `u64::MAX`); a status
/// list's time is unknown until set.
fn cursors_and_list_times_are_kept(place: &Place) {
    let store = place.handle();
    let feed = "https://obr.bizcred.test/public/credentials";
    assert_eq!(store.cursor(feed).expect("cursor"), 0);
    store.set_cursor(feed, 1_000).expect("set");
    store.set_cursor(feed, 2_000).expect("set");
    assert_eq!(store.cursor(feed).expect("cursor"), 2_000);
    store
        .set_cursor("https://cra.bizcred.test/public/credentials", u64::MAX)
        .expect("set");
    assert_eq!(
        store
            .cursor("https://cra.bizcred.test/public/credentials")
            .expect("cursor"),
        u64::MAX
    );
    assert_eq!(store.cursor(feed).expect("cursor"), 2_000);
    let uri = "https://obr.bizcred.test/status/1";
    assert_eq!(store.list_applied(uri).expect("applied"), None);
    store.set_list_applied(uri, 1_700_000_000).expect("set");
    assert_eq!(
        store.list_applied(uri).expect("applied"),
        Some(1_700_000_000)
    );
    store.set_list_applied(uri, 1_700_000_600).expect("set");
    assert_eq!(
        store.list_applied(uri).expect("applied"),
        Some(1_700_000_600)
    );
    assert_eq!(
        store
            .list_applied("https://obr.bizcred.test/status/2")
            .expect("applied"),
        None
    );
}

/// Records, cursors and list times written through one handle are read through another.
fn what_one_handle_writes_the_other_reads(place: &Place) {
    let (one, two) = (place.handle(), place.handle());
    let r = record(0, "1000001", 100, 3);
    one.put(std::slice::from_ref(&r)).expect("put");
    one.set_cursor("https://obr.bizcred.test/public/credentials", 42)
        .expect("cursor");
    one.set_list_applied("https://obr.bizcred.test/status/1", 9)
        .expect("applied");
    assert_eq!(two.get(&r.id).expect("get"), Some(r.clone()));
    assert_eq!(two.of_subject("1000001").expect("of_subject"), vec![r]);
    assert_eq!(
        two.cursor("https://obr.bizcred.test/public/credentials")
            .expect("cursor"),
        42
    );
    assert_eq!(
        two.list_applied("https://obr.bizcred.test/status/1")
            .expect("applied"),
        Some(9)
    );
    assert_eq!(two.len(), 1);
}

/// Two handles writing overlapping batches at once (in opposite orders): every record lands
/// once, neither write fails.
fn concurrent_overlapping_batches_all_land(place: &Place) {
    let handles = [place.handle(), place.handle()];
    let records: Vec<Record> = (0..1_500)
        .map(|i| record(i, &format!("{}", 2_000_000 + i / 2), 100, i as u64))
        .collect();
    let records = Arc::new(records);
    std::thread::scope(|s| {
        for (k, h) in handles.iter().enumerate() {
            let records = records.clone();
            s.spawn(move || {
                for round in 0..3 {
                    let mut batch: Vec<Record> = records[k * 500..(k * 500 + 1_000)].to_vec();
                    if (k + round) % 2 == 1 {
                        batch.reverse();
                    }
                    h.put(&batch).expect("put");
                }
            });
        }
    });
    assert_eq!(handles[1].len(), 1_500);
    let all: Vec<Record> = handles[0].all().collect::<Result<_, _>>().expect("all");
    assert_eq!(all, *records);
}

/// What only the PostgreSQL store has.
mod postgres_only {
    use super::*;

    use bizcred_core::status_list::StatusList;
    use bizcred_repository::trust::TrustConfig;
    use bizcred_repository::{Repository, SearchQuery};
    use bizcred_schemas::CredentialType;
    use bizcred_test_support::{example_claims, Agency, InMemoryRegistry};

    /// 2026-11-22T12:00:00Z.
    const NOW: i64 = 1_795_348_800;
    const ISSUED: i64 = NOW - 30 * 86_400;
    const INC: CredentialType = CredentialType::CertificateOfIncorporation;

    fn code(e: Error) -> ReasonCode {
        e.code()
    }

    #[test]
    fn a_database_not_migrated_or_a_bad_url_is_refused_with_its_code() {
        let Some(server) = server("repository store: schema check") else {
            return;
        };
        let db = TestDb::create(&server);
        let e = Store::connect(&db.url, 2)
            .map(|_| ())
            .expect_err("not migrated");
        assert_eq!(code(e), ReasonCode::DatabaseNotMigrated);
        let m = pg::migrate(&db.url).expect("migrate");
        assert_eq!(m.applied, vec![1]);
        assert_eq!(
            pg::migrate(&db.url).expect("again").applied,
            Vec::<i64>::new()
        );
        let store = Store::connect(&db.url, 2).expect("connect");
        store.schema_current().expect("current");
        assert!(store.is_shared());
        // A newer binary's migration: this one no longer serves the database.
        db.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (99, 'newer', true, '\\x00', 0)",
        );
        assert_eq!(
            code(store.schema_current().expect_err("newer")),
            ReasonCode::DatabaseSchemaNewer
        );
        let e = Store::connect("mysql://u:s3cret@h/d", 2)
            .map(|_| ())
            .expect_err("url");
        assert!(!e.to_string().contains("s3cret"));
        assert_eq!(code(e), ReasonCode::ConfigInvalid);
    }

    #[test]
    fn the_store_is_called_from_async_tasks_of_either_runtime_flavour() {
        let Some(server) = server("repository store: async callers") else {
            return;
        };
        let db = TestDb::migrated(&server, pg::migrate);
        let store = Store::connect(&db.url, 2).expect("connect");
        let r = record(0, "1000001", 100, 3);
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        current.block_on(async {
            let store = Store::connect(&db.url, 2).expect("connect in an async task");
            store.put(std::slice::from_ref(&r)).expect("put");
            assert!(store.contains(&r.id).expect("contains"));
            assert_eq!(store.subjects().count(), 1);
        });
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let s = store.clone();
        let url = db.url.clone();
        let got = multi
            .block_on(async move {
                tokio::spawn(async move {
                    let other = Store::connect(&url, 2).expect("connect in an async task");
                    assert!(other.contains(&r.id).expect("contains"));
                    s.get(&r.id)
                })
                .await
            })
            .expect("task")
            .expect("get");
        assert!(got.is_some());
    }

    struct World {
        reg: InMemoryRegistry,
        obr: Agency,
        list: StatusList,
    }

    impl World {
        fn new() -> World {
            let t = ISSUED - 86_400;
            let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t, NOW);
            let obr = Agency::new("obr.bizcred.test", t);
            reg.onboard(
                &obr,
                "Ontario Business Registry",
                "Registre des entreprises de l'Ontario",
                &[INC],
                t,
            );
            World {
                reg,
                obr,
                list: StatusList::new(1024, 2).expect("list"),
            }
        }

        /// An instance: its own data directory (trust and index) on the database `url`.
        fn instance(&self, dir: &std::path::Path, url: &str) -> Arc<Repository> {
            Repository::init(
                dir,
                TrustConfig {
                    anchor: self.reg.anchor(),
                    registry: "http://127.0.0.1:9".into(),
                },
            )
            .expect("init");
            let lists = vec![self
                .obr
                .status_list_copy(&self.list, NOW - 600, NOW + 86_400)];
            let bundle = self.reg.bundle(0, NOW - 3600, lists);
            std::fs::write(
                dir.join("trust").join("bundles").join("000000.json"),
                bundle,
            )
            .expect("bundle");
            let now = || NOW;
            Arc::new(Repository::open_with(dir, Arc::new(now), Some(url)).expect("open"))
        }

        fn record(&self, corp: &str, name: &str, idx: u64) -> String {
            let mut c = example_claims(INC);
            c.remove("directors");
            c.insert("corporation_number".into(), json!(corp));
            c.insert("legal_name".into(), json!(name));
            c.insert("corporate_status".into(), json!("active"));
            self.obr.issue_public(INC, c, idx, ISSUED).serialize()
        }
    }

    fn names(r: &Repository, q: &str) -> Vec<String> {
        r.search(&SearchQuery {
            q: q.into(),
            ..SearchQuery::default()
        })
        .expect("search")
        .results
        .into_iter()
        .map(|s| s.name)
        .collect()
    }

    /// Two instances on one database, each with its own data directory: what one takes in,
    /// the other holds (held already, its business page) and finds once it reindexes or
    /// follows the database's changes; a third instance starting with an empty index rebuilds
    /// it at start-up.
    #[test]
    fn two_instances_on_one_database_see_each_others_intake() {
        let Some(server) = server("repository: two instances on one database") else {
            return;
        };
        let db = TestDb::migrated(&server, pg::migrate);
        let w = World::new();
        let (d1, d2, d3) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let one = w.instance(d1.path(), &db.url);
        let two = w.instance(d2.path(), &db.url);
        let batch = vec![
            w.record("1000001", "Boulangerie Éloïse Inc.", 1),
            w.record("1000002", "Maple Leaf Plumbing Ltd.", 2),
        ];
        let report = one.intake(&batch).expect("intake");
        one.commit().expect("commit");
        assert_eq!((report.accepted, report.refused), (2, 0), "{report:?}");
        assert_eq!(names(&one, "eloise"), vec!["Boulangerie Éloïse Inc."]);
        // The second holds them already (one database) ...
        let again = two.intake(&batch).expect("intake");
        assert_eq!((again.accepted, again.already_held), (0, 2));
        assert_eq!(
            two.business("1000002").expect("business").summary.name,
            "Maple Leaf Plumbing Ltd."
        );
        // ... and finds them once its own index is rebuilt from the database.
        assert!(names(&two, "eloise").is_empty());
        assert_eq!(two.reindex().expect("reindex"), 2);
        assert_eq!(names(&two, "eloise"), vec!["Boulangerie Éloïse Inc."]);
        // The second takes in a third business; the first follows the database's changes
        // into its own index (as serve does every round) without a rebuild.
        let more = vec![w.record("1000003", "Les Entreprises Gagné Ltée", 3)];
        assert_eq!(two.intake(&more).expect("intake").accepted, 1);
        two.commit().expect("commit");
        assert!(names(&one, "gagne").is_empty());
        assert!(one.follow_changes().expect("follow") >= 1);
        assert_eq!(names(&one, "gagne"), vec!["Les Entreprises Gagné Ltée"]);
        assert_eq!(one.follow_changes().expect("follow"), 0);
        // The second, rebuilt before that write, follows it too; after a rebuild, only what
        // came after.
        assert_eq!(two.follow_changes().expect("follow"), 1);
        assert_eq!(one.reindex().expect("reindex"), 3);
        assert_eq!(one.follow_changes().expect("follow"), 0);
        // A new instance's empty index is rebuilt when it opens.
        let three = w.instance(d3.path(), &db.url);
        assert_eq!(three.index.len(), 3);
        assert_eq!(names(&three, "plumbing"), vec!["Maple Leaf Plumbing Ltd."]);
        assert_eq!(three.store.len(), 3);
    }
}

/// Two credentials at one status list entry (an issuer's list reused, or two issuers' lists
/// at one URI): both are found at that entry and listed, on either store.
fn every_record_at_one_status_entry_is_found(place: &Place) {
    let store = place.handle();
    store
        .put(&[
            record(1, "1000001", 10, 7),
            record(2, "1000002", 11, 7),
            record(3, "1000003", 12, 8),
        ])
        .expect("put");
    let mut at = store
        .at_status("https://obr.bizcred.test/status/1", 7)
        .expect("at");
    at.sort();
    assert_eq!(at, vec![format!("{:064x}", 2), format!("{:064x}", 3)]);
    assert!(store
        .at_status("https://obr.bizcred.test/status/1", 9)
        .expect("at")
        .is_empty());
    let listed: Vec<(u64, String)> = store
        .in_list("https://obr.bizcred.test/status/1")
        .collect::<Result<_, _>>()
        .expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed.iter().filter(|(i, _)| *i == 7).count(), 2);
}
