//! Status lists at scale: the issuer's re-sign time and open (restart) time at 10 k, 100 k and
//! 1 M credentials, against a reference measured in the same run (one raw Ed25519 signature).
//!
//! `cargo bench -p bizcred-examples --bench status_scale [-- <credentials>...]` (default
//! `10000 100000 1000000`). Each size is run with the default list size (131,072 entries: 1 M
//! credentials roll over into 8 lists) and with one list of 1,048,576 entries. The stores are
//! filled through `Store::import_issued` (records, indices, list bits and audit entries, as
//! issuance writes them, without the OpenID4VCI round trips), 1 % of the credentials revoked
//! and 0.5 % suspended.
//!
//! With `BIZCRED_TEST_DATABASE_URL` set (a PostgreSQL server, as the stores' tests use), each
//! size is run again beside the sled run with the issuer's records in a fresh, migrated
//! database of that server (dropped afterwards), and reported as a ratio to the sled figure
//! and to the raw signature of the same run.

// The service binaries' allocator, so the figures are the binaries' figures.
#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use bizcred_examples::disk_bytes;
use bizcred_pg::testing::{shout, TestDb, DB_VAR};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_issuer::store::{CredentialRecord, CredentialStatus};
use bizcred_issuer::{Config, Issuer};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// The issuer's clock: moved by the bench so every re-sign is due (never ahead of the lists'
/// `iat` rule).
static CLOCK: AtomicI64 = AtomicI64::new(1_790_000_000);

fn clock() -> i64 {
    CLOCK.load(Ordering::SeqCst)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Time of one raw Ed25519 signature of 256 bytes (best of three rounds of 0.5 s).
fn reference() -> Duration {
    let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let msg = vec![7u8; 256];
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let (start, mut n) = (Instant::now(), 0u32);
        while start.elapsed() < Duration::from_millis(500) {
            drop(std::hint::black_box(key.sign(&msg)));
            n += 1;
        }
        best = best.min(start.elapsed() / n);
    }
    best
}

fn config(dir: &std::path::Path, list_size: u64, database: Option<&str>) -> Config {
    let database = database.map_or(String::new(), |u| format!("database = {u:?}\n"));
    Config::parse(&format!(
        "[agency]\nname_en = \"Bench\"\nname_fr = \"Banc\"\n[server]\npublic_url = \"http://localhost:9\"\nlisten = \"127.0.0.1:9\"\n[storage]\npath = {:?}\n{database}[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"r/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = {list_size}\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.join("data").to_string_lossy(),
        "00".repeat(32)
    ))
    .expect("config")
}

/// Fills the issuer's store with `n` credentials, list after list; returns one valid
/// credential's id.
fn fill(issuer: &Issuer, n: u64, list_size: u64) -> String {
    let kid = issuer.kid();
    let mut done = 0u64;
    let mut valid = String::new();
    while done < n {
        let mut open = issuer.store.open_status_list().expect("open list");
        if open.allocated >= open.size {
            open = issuer
                .store
                .open_next_status_list(open.list, list_size, clock())
                .expect("next list");
        }
        let take = (n - done).min(open.size - open.allocated).min(5_000);
        let recs: Vec<CredentialRecord> = (0..take)
            .map(|i| {
                let status = match OsRng.next_u32() % 1000 {
                    0..=9 => CredentialStatus::Revoked,
                    10..=14 => CredentialStatus::Suspended,
                    _ => CredentialStatus::Valid,
                };
                CredentialRecord {
                    id: format!("c{:09}", done + i),
                    application_id: format!("a{:09}", done + i),
                    vct: "urn:bizcred:ca-on:obr:certificate-of-incorporation:1".into(),
                    status_list: open.list,
                    status_idx: open.allocated + i,
                    status,
                    issued_at: clock(),
                    kid: kid.clone(),
                    credential_sha256: "ab".repeat(32),
                    history: Vec::new(),
                }
            })
            .collect();
        if let Some(r) = recs.iter().find(|r| r.status == CredentialStatus::Valid) {
            valid = r.id.clone();
        }
        issuer.store.import_issued(&recs, clock()).expect("import");
        done += take;
    }
    valid
}

/// The figures of one run, for the ratios between the backends.
struct Figures {
    one: Duration,
    all: Duration,
    change: Duration,
    open: Duration,
}

/// One store of `n` credentials in lists of `list_size`: on sled, or in the PostgreSQL
/// database at `database`.
fn run(n: u64, list_size: u64, reference: Duration, database: Option<&str>) -> Figures {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), list_size, database);
    let (issuer, _) = Issuer::create(
        cfg.clone(),
        Zeroizing::new("pw".into()),
        clock() - 10,
        clock,
    )
    .expect("create");
    let start = Instant::now();
    let valid = fill(&issuer, n, list_size);
    let filled = start.elapsed();
    let lists = issuer.store.status_lists().expect("lists").len();
    let interval = issuer.config.resign_interval as i64;
    CLOCK.fetch_add(interval, Ordering::SeqCst);
    issuer.refresh_status_lists().expect("first signatures");
    let token = issuer.status_list(1).expect("token");
    // One list re-signed (what a status change or a stale list costs): stored bits read,
    // list built, compressed, signed, recorded durably.
    let changed = issuer.store.credential(&valid).expect("record").status_list;
    let one = median(
        (0..15)
            .map(|_| {
                CLOCK.fetch_add(interval, Ordering::SeqCst);
                let t = Instant::now();
                issuer.refresh_list(changed).expect("re-sign");
                t.elapsed()
            })
            .collect(),
    );
    // Every list re-signed (the background loop when all are stale).
    let all = median(
        (0..5)
            .map(|_| {
                CLOCK.fetch_add(interval, Ordering::SeqCst);
                let t = Instant::now();
                issuer.refresh_status_lists().expect("re-sign");
                t.elapsed()
            })
            .collect(),
    );
    // A status change: record and bits in one durable transaction, then the list re-signed.
    CLOCK.fetch_add(interval, Ordering::SeqCst);
    let t = Instant::now();
    issuer
        .set_status(
            &bizcred_issuer::Actor::Automation,
            &valid,
            bizcred_issuer::StatusAction::Suspend,
            Some("benchmark"),
        )
        .expect("suspend");
    let change = t.elapsed();
    // What every re-sign read before the bits were stored: every credential record.
    let t = Instant::now();
    let records = issuer.store.credentials().expect("records").len();
    let read_all = t.elapsed();
    assert_eq!(records as u64, n);
    drop(issuer);
    // Restart: open the store and the keys, and answer the status list.
    let opens: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let issuer =
                Issuer::open(cfg.clone(), Zeroizing::new("pw".into()), clock).expect("reopen");
            issuer.status_list(changed).expect("served");
            let d = t.elapsed();
            drop(issuer);
            d
        })
        .collect();
    let open = median(opens);
    let r = reference.as_secs_f64();
    let store = match database {
        Some(_) => "PostgreSQL".to_owned(),
        None => format!(
            "sled, store {:.0} MiB ({} bytes/credential)",
            disk_bytes(dir.path()).expect("the store's size") as f64 / (1024.0 * 1024.0),
            disk_bytes(dir.path()).expect("the store's size") / n.max(1)
        ),
    };
    println!(
        "status ({store}): {n} credentials, {lists} list(s) of {list_size}: re-sign one list {:.1} ms ({:.0} raw signatures), all lists {:.1} ms ({:.0}); status change (durable, re-signed) {:.1} ms; open (restart) {:.0} ms ({:.0} raw signatures); token {} KiB; filled in {:.1} s; reading every record (the old re-sign) {:.0} ms",
        ms(one),
        one.as_secs_f64() / r,
        ms(all),
        all.as_secs_f64() / r,
        ms(change),
        ms(open),
        open.as_secs_f64() / r,
        token.len() / 1024,
        filled.as_secs_f64(),
        ms(read_all),
    );
    Figures {
        one,
        all,
        change,
        open,
    }
}

/// Runs `n` credentials in lists of `list_size` on sled, then (with a server) on a fresh
/// PostgreSQL database, and prints PostgreSQL's figures as ratios to sled's.
fn both(n: u64, list_size: u64, reference: Duration, server: Option<&str>) {
    let sled = run(n, list_size, reference, None);
    let Some(server) = server else {
        return;
    };
    let db = TestDb::migrated(server, bizcred_issuer::store::pg::migrate);
    let pg = run(n, list_size, reference, Some(&db.url));
    drop(db);
    let x = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "status (PostgreSQL against sled, same run): {n} credentials, lists of {list_size}: re-sign one list {:.1} ms = {:.2} x sled ({:.1} ms) = {:.0} raw signatures; all lists {:.2} x sled; status change {:.2} x sled; open {:.2} x sled",
        ms(pg.one),
        x(pg.one, sled.one),
        ms(sled.one),
        x(pg.one, reference),
        x(pg.all, sled.all),
        x(pg.change, sled.change),
        x(pg.open, sled.open),
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    let reference = reference();
    println!(
        "reference: one raw Ed25519 signature of 256 bytes: {:.1} us (ed25519-dalek, one core)",
        reference.as_secs_f64() * 1e6
    );
    // PostgreSQL beside sled when a server is named (said loudly when not).
    let server = std::env::var(DB_VAR).ok().filter(|u| !u.trim().is_empty());
    if server.is_none() {
        shout(
            "status_scale on PostgreSQL",
            &format!("{DB_VAR} is not set"),
        );
    }
    for n in sizes {
        both(n, 131_072, reference, server.as_deref());
        if n > 131_072 {
            both(n, 1 << 20, reference, server.as_deref());
        }
    }
}
