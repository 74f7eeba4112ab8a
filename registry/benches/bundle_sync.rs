//! Bundle sync for a bank that is 10,000 entries behind, on sled and on PostgreSQL in the
//! same run: the time from the bank's request (`GET /bundle?from=<what it holds>` over HTTP
//! on loopback, the registry's axum service in this process) to the bundle imported into the
//! bank's trust state (`bizcred_core::trust::bundle::import`: every entry's signature checked,
//! replayed, the consistency proof and the checkpoint verified). Target: < 1 s.
//!
//! `cargo bench -p bizcred-registry --bench bundle_sync`. PostgreSQL needs
//! `BIZCRED_TEST_DATABASE_URL` (a server; the bench creates its own database and drops it);
//! without it only sled runs, and the bench says so. `BIZCRED_BENCH_ENTRIES` changes the
//! 10,000.
//!
//! Figures: the best and the median of 5 timed syncs after one warm-up. On PostgreSQL also
//! the first sync from a second instance that did not make the appends (it replays the
//! 10,000 entries from the database before it answers), as a bank behind a load balancer
//! may meet right after a burst of appends.

// The service binaries' allocator, so the figures are the binary's figures.
#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle::{self, TrustAnchor};
use bizcred_core::trust::entry::build;
use bizcred_core::trust::state::TrustState;
use bizcred_registry::service::{app, token_hash, AppState};
use bizcred_registry::store::pg::PgStore;
use bizcred_registry::store::{SledStore, Store};
use bizcred_registry::Registry;
use bizcred_test_support::founding_entries;
use rand_core::OsRng;
use serde_json::Value;

const ORIGIN: &str = "registry.bizcred.bench/log";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn copy(k: &SecretKey) -> SecretKey {
    SecretKey::from_bytes(Algorithm::EdDSA, &k.to_bytes()).expect("copy")
}

/// The registry's keys, its founding entries and the entries the bank is behind by (signed
/// once, so both stores hold the same log).
struct Log {
    log_key: SecretKey,
    founding: Vec<Value>,
    behind: Vec<Value>,
}

impl Log {
    fn new(n: usize) -> Log {
        let authority = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let log_key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let at = now() - 3600;
        let founding = founding_entries(ORIGIN, &authority, &log_key.public_key(), at);
        let behind = (0..n)
            .map(|i| {
                build::credential_type(
                    ORIGIN,
                    &format!("urn:bizcred:bench:type:{i}"),
                    86_400,
                    86_400,
                    at,
                    &authority,
                    &mut OsRng,
                )
                .expect("entry")
            })
            .collect();
        Log {
            log_key,
            founding,
            behind,
        }
    }
}

/// A registry service on loopback, in its own runtime.
struct Served {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn serve(reg: Registry<Box<dyn Store>>) -> Served {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let state = Arc::new(AppState {
        registry: Mutex::new(reg),
        admin_token_hashes: vec![token_hash("bench")],
        clock: Arc::new(now),
    });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, app(state)).await });
    Served {
        url: format!("http://{addr}"),
        _rt: rt,
    }
}

/// One sync's times: the whole of it, and its two parts.
#[derive(Debug, Clone, Copy)]
struct Sync {
    /// Request to imported bundle.
    total: Duration,
    /// Request to the whole body received (the registry's refresh and export, the transfer).
    answer: Duration,
    /// The bank's import.
    import: Duration,
}

/// One sync: request, body, import. Returns its times and the bundle's size.
fn sync(
    http: &reqwest::blocking::Client,
    url: &str,
    bank: &TrustState,
    anchor: &TrustAnchor,
) -> (Sync, usize) {
    let t = Instant::now();
    let text = http
        .get(format!("{url}/bundle?from={}", bank.size()))
        .send()
        .expect("request")
        .error_for_status()
        .expect("status")
        .text()
        .expect("body");
    let answer = t.elapsed();
    let imported = bundle::import(Some(bank), anchor, &text, now()).expect("import");
    let total = t.elapsed();
    assert!(imported.state.size() > bank.size());
    (
        Sync {
            total,
            answer,
            import: total - answer,
        },
        text.len(),
    )
}

fn figures(label: &str, mut runs: Vec<Sync>, bytes: usize, behind: usize) {
    runs.sort_by_key(|r| r.total);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = runs[runs.len() / 2];
    println!(
        "bundle sync, bank {behind} entries behind, {label}: best {:.0} ms, median {:.0} ms \
         (median: answer {:.0} ms, import {:.0} ms; {} KiB; target < 1 s)",
        ms(runs[0].total),
        ms(median.total),
        ms(median.answer),
        ms(median.import),
        bytes / 1024
    );
}

/// A registry on `store` with the founding entries, and the bank's state (it holds them).
fn found(store: Box<dyn Store>, log: &Log) -> (Registry<Box<dyn Store>>, TrustState) {
    let mut reg = Registry::open(store, ORIGIN, copy(&log.log_key), now()).expect("open");
    reg.append_all(log.founding.clone(), now())
        .expect("founding");
    let anchor = reg.anchor().expect("anchor");
    let bank = bundle::import(None, &anchor, &reg.bundle(0, now()).expect("bundle"), now())
        .expect("the bank's first bundle")
        .state;
    (reg, bank)
}

/// Appends the entries the bank is behind by, in batches.
fn grow(reg: &mut Registry<Box<dyn Store>>, log: &Log, label: &str) {
    let t = Instant::now();
    for batch in log.behind.chunks(Registry::<Box<dyn Store>>::MAX_BATCH) {
        reg.append_all(batch.to_vec(), now()).expect("append");
    }
    println!(
        "{label}: {} entries appended in batches of {} in {:.1} s",
        log.behind.len(),
        Registry::<Box<dyn Store>>::MAX_BATCH,
        t.elapsed().as_secs_f64()
    );
}

fn rounds(
    http: &reqwest::blocking::Client,
    url: &str,
    bank: &TrustState,
    anchor: &TrustAnchor,
) -> (Vec<Sync>, usize) {
    const ROUNDS: usize = 5;
    let (_, bytes) = sync(http, url, bank, anchor);
    (
        (0..ROUNDS)
            .map(|_| sync(http, url, bank, anchor).0)
            .collect(),
        bytes,
    )
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments are filters this bench has no use for.
    let n: usize = std::env::var("BIZCRED_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let log = Log::new(n);
    let http = reqwest::blocking::Client::new();

    // sled.
    let dir = tempfile::tempdir().expect("tempdir");
    let sled: Box<dyn Store> = Box::new(SledStore::open(&dir.path().join("db")).expect("sled"));
    let (mut reg, bank) = found(sled, &log);
    grow(&mut reg, &log, "sled");
    let anchor = reg.anchor().expect("anchor");
    let served = serve(reg);
    let (runs, bytes) = rounds(&http, &served.url, &bank, &anchor);
    figures("sled", runs, bytes, n);
    drop(served);

    // PostgreSQL.
    let Some(server) = common::server("the bundle sync bench on PostgreSQL") else {
        return;
    };
    let db = common::migrated(&server);
    let connect = || Box::new(PgStore::connect(&db.url).expect("connect")) as Box<dyn Store>;
    let (mut reg, bank) = found(connect(), &log);
    // Other instances that last looked before the appends: their first answer catches up.
    let others: Vec<Registry<Box<dyn Store>>> = (0..3)
        .map(|_| Registry::open(connect(), ORIGIN, copy(&log.log_key), now()).expect("open"))
        .collect();
    grow(&mut reg, &log, "PostgreSQL");
    let anchor = reg.anchor().expect("anchor");
    let served = serve(reg);
    let (runs, bytes) = rounds(&http, &served.url, &bank, &anchor);
    figures("PostgreSQL, the instance that appended", runs, bytes, n);
    drop(served);
    let cold = others
        .into_iter()
        .map(|other| {
            let served = serve(other);
            sync(&http, &served.url, &bank, &anchor).0
        })
        .collect();
    figures(
        "PostgreSQL, another instance (its first answer replays the new entries from the database)",
        cold,
        bytes,
        n,
    );
}
