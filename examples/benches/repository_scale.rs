//! The public business repository at scale, in one process on the embedded stores: a
//! synthetic registry extract bulk-issued by a real issuer (signed, durably recorded), its
//! public feed verified into a real repository (store and index), then searched by 8
//! concurrent clients and its business pages opened. Rates are reported as ratios to the
//! machine's raw Ed25519 ceilings measured in the same run (signatures and verifications per
//! second on every core), because the machines are noisy.
//!
//! `cargo bench -p bizcred-examples --bench repository_scale [-- <businesses>]` (default
//! 100000; the figure is 1600000).

// The service binaries' allocator, so the figures are the binaries' figures.
#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle::StatusListCopy;
use bizcred_examples::extract;
use bizcred_issuer::{Config, Issuer};
use bizcred_repository::trust::TrustConfig;
use bizcred_repository::{Repository, SearchQuery};
use bizcred_schemas::CredentialType;
use bizcred_test_support::InMemoryRegistry;
use rand_core::{OsRng, RngCore};
use serde_json::json;
use zeroize::Zeroizing;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Operations per second of `op` on every core (each thread for one second, best of two).
fn ceiling(op: impl Fn() + Sync) -> anyhow::Result<f64> {
    let mut best: f64 = 0.0;
    for _ in 0..2 {
        let total: u64 = std::thread::scope(|s| -> anyhow::Result<u64> {
            let hs: Vec<_> = (0..threads())
                .map(|_| {
                    s.spawn(|| {
                        let (start, mut n) = (Instant::now(), 0u64);
                        while start.elapsed() < Duration::from_secs(1) {
                            op();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a reference thread panicked"))
                })
                .sum()
        })?;
        best = best.max(total as f64);
    }
    Ok(best)
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let msg = vec![7u8; 600];
    let sig = key.sign(&msg)?;
    let pk = key.public_key();
    let sign_ceiling = ceiling(|| drop(std::hint::black_box(key.sign(&msg))))?;
    pk.verify(&msg, &sig)?;
    // The signature verifies (checked above): each round's result is only kept from the
    // optimizer.
    let verify_ceiling = ceiling(|| {
        let _ = std::hint::black_box(pk.verify(&msg, &sig));
    })?;
    println!(
        "raw Ed25519 on {} cores: {sign_ceiling:.0} signatures/s, {verify_ceiling:.0} verifications/s",
        threads()
    );

    let dir = tempfile::Builder::new()
        .prefix("bizcred-repository-bench-")
        .tempdir()?;
    let cfg = Config::parse(&format!(
        "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"https://obr.bizcred.test\"\nlisten = \"127.0.0.1:9\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.bizcred.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.path().join("issuer").to_string_lossy(),
        "00".repeat(32)
    ))?;
    let t0 = now();
    let issuer = Issuer::create(cfg, Zeroizing::new("bench".into()), t0 - 60, now)?.0;

    // 1. Bulk issuance: every line parsed, validated, signed and durably recorded.
    let started = Instant::now();
    let mut run = issuer.bulk()?;
    for (i, line) in extract::generate(2026, n, 1)?.enumerate() {
        run.line(i as u64 + 1, &line.to_json())?;
    }
    let report = run.finish()?;
    let bulk = started.elapsed();
    let issued = report.counts.issued;
    let bulk_rate = issued as f64 / bulk.as_secs_f64();
    println!(
        "bulk issuance: {issued} of {} lines in {:.1} s: {bulk_rate:.0}/s = {:.0} % of the signing ceiling ({} skipped)",
        report.counts.lines,
        bulk.as_secs_f64(),
        100.0 * bulk_rate / sign_ceiling,
        report.counts.skipped
    );

    // The registry knows the issuer; its bundle carries the issuer's signed lists.
    let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t0 - 120, t0);
    reg.onboard_did(
        &issuer.did,
        &issuer.did_log()?,
        "Ontario Business Registry",
        "Registre des entreprises de l'Ontario",
        &[CredentialType::CertificateOfIncorporation],
        t0 - 30,
    );
    let mut lists = Vec::new();
    for info in issuer.store.status_lists()? {
        lists.push(StatusListCopy {
            uri: issuer.status_uri(info.list),
            token: issuer.status_list(info.list)?,
        });
    }
    let repo_dir = dir.path().join("repository");
    Repository::init(
        &repo_dir,
        TrustConfig {
            anchor: reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )?;
    std::fs::write(
        repo_dir.join("trust/bundles/000000.json"),
        reg.bundle(0, now(), lists),
    )?;
    let repo = Arc::new(Repository::open(&repo_dir, Arc::new(now))?);

    // 2. Intake: the public feed read in pages, verified on every core, stored, indexed.
    let started = Instant::now();
    let mut after = 0u64;
    let mut failed = None;
    // Batches of 5,000 from the feed; the next verified while the one before is stored.
    let batches = std::iter::from_fn(|| {
        let mut batch = Vec::new();
        while batch.len() < 5_000 {
            match issuer.store.public_feed(after, 1000) {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    after = page.last().map_or(after, |i| i.seq);
                    batch.extend(page.into_iter().map(|i| i.credential));
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        (!batch.is_empty()).then_some(batch)
    });
    let r = repo.intake_all(batches)?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    anyhow::ensure!(
        r.refused == 0,
        "refused at intake: {:?}",
        r.refusals.first()
    );
    let accepted = r.accepted;
    repo.commit()?;
    let intake = started.elapsed();
    let intake_rate = accepted as f64 / intake.as_secs_f64();
    println!(
        "intake: {accepted} verified, stored and indexed in {:.1} s: {intake_rate:.0}/s = {:.0} % of the verification ceiling",
        intake.as_secs_f64(),
        100.0 * intake_rate / verify_ceiling
    );
    println!(
        "extract -> issued -> verified -> searchable: {:.1} s for {n} businesses",
        (bulk + intake).as_secs_f64()
    );

    // 3. Search by 8 concurrent clients: misspelt names, business and corporation numbers.
    let sample: Vec<extract::ExtractLine> = extract::generate(2026, n, 1)?
        .step_by((n / 2000).max(1))
        .collect();
    let queries: Vec<String> = sample
        .iter()
        .enumerate()
        .map(|(i, l)| match i % 3 {
            0 => {
                // Drop one letter of the longest word: a typo.
                let mut words: Vec<String> =
                    l.legal_name.split_whitespace().map(str::to_owned).collect();
                if let Some(w) = words.iter_mut().max_by_key(|w| w.chars().count()) {
                    if w.chars().count() > 4 {
                        let cut = w.chars().count() / 2;
                        *w = w
                            .chars()
                            .enumerate()
                            .filter(|(k, _)| *k != cut)
                            .map(|(_, c)| c)
                            .collect();
                    }
                }
                words.truncate(3);
                words.join(" ")
            }
            1 => l
                .business_number
                .clone()
                .unwrap_or_else(|| l.corporation_number.clone()),
            _ => l.corporation_number.clone(),
        })
        .collect();
    let started = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|s| -> anyhow::Result<Vec<Duration>> {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let (repo, queries) = (&repo, &queries);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut i = t;
                    while out.len() < 400 {
                        let q = SearchQuery {
                            q: queries[i % queries.len()].clone(),
                            ..SearchQuery::default()
                        };
                        let t = Instant::now();
                        // A refused search is not a fast one: the run fails.
                        std::hint::black_box(repo.search(&q))?;
                        out.push(t.elapsed());
                        i += 8;
                    }
                    Ok::<_, bizcred_repository::Error>(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a search client panicked"))??,
            );
        }
        Ok(all)
    })?;
    let searches = latencies.len() as f64 / started.elapsed().as_secs_f64();
    let (s50, s99) = (pct(latencies.clone(), 0.5), pct(latencies, 0.99));
    println!("search, 8 clients: p50 {s50:.1} ms, p99 {s99:.1} ms, {searches:.0} searches/s");

    // 4. Business pages: every credential verified again at view time.
    let mut pages = Vec::new();
    for _ in 0..300 {
        let l = &sample[(OsRng.next_u32() as usize) % sample.len()];
        let t = Instant::now();
        repo.business(&l.corporation_number)?;
        pages.push(t.elapsed());
    }
    let (b50, b99) = (pct(pages.clone(), 0.5), pct(pages, 0.99));
    println!("business page: p50 {b50:.1} ms, p99 {b99:.1} ms");
    let rss = peak_rss_mb();
    println!("peak RSS {rss:.0} MiB");
    println!(
        "{}",
        json!({
            "businesses": n,
            "cores": threads(),
            "sign_ceiling_per_s": sign_ceiling,
            "verify_ceiling_per_s": verify_ceiling,
            "bulk_s": bulk.as_secs_f64(),
            "bulk_per_s": bulk_rate,
            "bulk_of_sign_ceiling": bulk_rate / sign_ceiling,
            "intake_s": intake.as_secs_f64(),
            "intake_per_s": intake_rate,
            "intake_of_verify_ceiling": intake_rate / verify_ceiling,
            "total_s": (bulk + intake).as_secs_f64(),
            "search_p50_ms": s50,
            "search_p99_ms": s99,
            "business_page_p50_ms": b50,
            "business_page_p99_ms": b99,
            "peak_rss_mib": rss,
        })
    );
    Ok(())
}
