//! Status lists at scale: the issuer's re-sign time and open (restart) time at 10 k, 100 k and
//! 1 M credentials, against a reference measured in the same run (one raw Ed25519 signature).
//!
//! `cargo bench -p bizcred-examples --bench status_scale [-- <credentials>...]` (default
//! `10000 100000 1000000`). Each size is run with the default list size (131,072 entries: 1 M
//! credentials roll over into 8 lists) and with one list of 1,048,576 entries. The stores are
//! filled through `Store::import_issued` (records, indices, list bits and audit entries, as
//! issuance writes them, without the OpenID4VCI round trips), 1 % of the credentials revoked
//! and 0.5 % suspended.

// The service binaries' allocator, so the figures are the binaries' figures.
#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use bizcred_examples::disk_bytes;
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

fn config(dir: &std::path::Path, list_size: u64) -> Config {
    Config::parse(&format!(
        "[agency]\nname_en = \"Bench\"\nname_fr = \"Banc\"\n[server]\npublic_url = \"http://localhost:9\"\nlisten = \"127.0.0.1:9\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"r/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = {list_size}\n[admin]\ntoken_sha256 = [\"{}\"]\n",
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

fn run(n: u64, list_size: u64, reference: Duration) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), list_size);
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
    println!(
        "status: {n} credentials, {lists} list(s) of {list_size}: re-sign one list {:.1} ms ({:.0} raw signatures), all lists {:.1} ms ({:.0}); status change (durable, re-signed) {:.1} ms; open (restart) {:.0} ms ({:.0} raw signatures); token {} KiB; store {:.0} MiB ({} bytes/credential), filled in {:.1} s; reading every record (the old re-sign) {:.0} ms",
        ms(one),
        one.as_secs_f64() / r,
        ms(all),
        all.as_secs_f64() / r,
        ms(change),
        ms(open),
        open.as_secs_f64() / r,
        token.len() / 1024,
        disk_bytes(dir.path()).expect("the store's size") as f64 / (1024.0 * 1024.0),
        disk_bytes(dir.path()).expect("the store's size") / n.max(1),
        filled.as_secs_f64(),
        ms(read_all),
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
    for n in sizes {
        run(n, 131_072, reference);
        if n > 131_072 {
            run(n, 1 << 20, reference);
        }
    }
}
