//! Soak: the real `bizcred-issuer` binary serving OpenID4VCI over loopback HTTP, driven by
//! concurrent clients at a fixed rate for a set time. Every 10 s it prints the throughput,
//! the errors by kind, the credential endpoint's p50/p99, the issuer process's RSS (from
//! `/proc`), the disk bytes of its store and the bytes per credential.
//!
//! `cargo bench -p bizcred-examples --bench soak -- --minutes 10 [--clients 8] [--rate 200]`
//! (`--seconds N` for a shorter run; `--rate 0`: as fast as the clients can go). Each
//! credential is one holder's whole flow: application and approval (the admin API), the token
//! endpoint, the nonce endpoint, then the timed credential request with a fresh key proof.

use bizcred_examples::disk_bytes;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey};
use bizcred_core::oid4vci;
use bizcred_schemas::CredentialType;
use rand_core::OsRng;
use serde_json::{json, Value};

const ADMIN: &str = "soak-admin-token";
const PASSPHRASE: &str = "soak passphrase";

/// The command line: `--minutes`, `--seconds`, `--clients`, `--rate`.
struct Args {
    duration: Duration,
    clients: usize,
    rate: f64,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<f64> {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    let duration = match (flag("--seconds"), flag("--minutes")) {
        (Some(s), _) => Duration::from_secs_f64(s),
        (None, Some(m)) => Duration::from_secs_f64(m * 60.0),
        (None, None) => Duration::from_secs(600),
    };
    Args {
        duration,
        clients: flag("--clients").map_or(8, |c| c as usize).max(1),
        rate: flag("--rate").unwrap_or(200.0),
    }
}

/// The directory of the release binaries; under cargo, the issuer is built there first.
fn issuer_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let mut dir = exe.parent().expect("dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "bizcred-issuer",
            "--bin",
            "bizcred-issuer",
        ]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().expect("cargo build").success(),
            "building the issuer failed"
        );
    }
    dir.join("bizcred-issuer")
}

/// The issuer process, killed on drop.
struct Issuer {
    child: Child,
    url: String,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, dir: &Path) -> Issuer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://localhost:{port}");
    let cfg = dir.join("agency.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agency]\nname_en = \"Soak\"\nname_fr = \"Endurance\"\n[server]\npublic_url = \"{url}\"\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"r.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.join("data").to_string_lossy(),
            bizcred_issuer::store::sha256_hex(ADMIN.as_bytes())
        ),
    )
    .expect("config");
    let run = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.env("BIZCRED_ISSUER_PASSPHRASE", PASSPHRASE)
            .arg("--json")
            .args(args)
            .arg("--config")
            .arg(&cfg);
        c
    };
    let init = run(&["init"]).output().expect("init");
    assert!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut child = run(&["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    assert!(
        line.contains("listening"),
        "the issuer did not start: {line}"
    );
    Issuer { child, url }
}

/// Resident set size of process `pid` in bytes, from `/proc/{pid}/status`.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// What happened in a window (and in the whole run).
#[derive(Default)]
struct Tally {
    ok: u64,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// A failed step, named by its stage and what came back.
async fn failure(
    stage: &str,
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, String> {
    match r {
        Err(e) if e.is_timeout() => Err(format!("{stage}: timeout")),
        Err(e) if e.is_connect() => Err(format!("{stage}: connect")),
        Err(_) => Err(format!("{stage}: transport")),
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                Ok(body)
            } else {
                Err(format!(
                    "{stage}: {} {}",
                    status.as_u16(),
                    body["error"].as_str().unwrap_or("-")
                ))
            }
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One holder's whole flow; the credential request's latency.
async fn one(client: &reqwest::Client, url: &str, claims: &Value) -> Result<Duration, String> {
    let app = failure(
        "apply",
        client
            .post(format!("{url}/admin/applications"))
            .bearer_auth(ADMIN)
            .json(&json!({"credential_type": "certificate-of-incorporation", "claims": claims}))
            .send()
            .await,
    )
    .await?;
    let id = app["application_id"].as_str().ok_or("apply: no id")?;
    let o = failure(
        "approve",
        client
            .post(format!("{url}/admin/applications/{id}/approve"))
            .bearer_auth(ADMIN)
            .json(&json!({}))
            .send()
            .await,
    )
    .await?;
    let by_value = o["credential_offer_by_value"]
        .as_str()
        .ok_or("approve: no offer")?;
    let Ok(oid4vci::OfferRef::ByValue(offer)) = oid4vci::parse_offer_uri(by_value) else {
        return Err("approve: offer unreadable".into());
    };
    let code = offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
        .as_str()
        .ok_or("approve: no code")?;
    let tx = o["tx_code"].as_str().ok_or("approve: no tx_code")?;
    let t = failure(
        "token",
        client
            .post(format!("{url}/token"))
            .form(&[
                ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
                ("pre-authorized_code", code),
                ("tx_code", tx),
            ])
            .send()
            .await,
    )
    .await?;
    let access = t["access_token"].as_str().ok_or("token: none")?;
    let n = failure("nonce", client.post(format!("{url}/nonce")).send().await).await?;
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let proof = oid4vci::proof_jwt(&holder, url, n["c_nonce"].as_str(), now())
        .map_err(|_| "proof: not signed".to_owned())?;
    let start = Instant::now();
    let r = failure(
        "credential",
        client
            .post(format!("{url}/credential"))
            .bearer_auth(access)
            .json(&json!({"credential_configuration_id": "certificate-of-incorporation", "proofs": {"jwt": [proof]}}))
            .send()
            .await,
    )
    .await?;
    let took = start.elapsed();
    r["credentials"][0]["credential"]
        .as_str()
        .ok_or("credential: none in the answer")?;
    Ok(took)
}

fn main() {
    let args = args();
    let bin = issuer_binary();
    let dir = tempfile::tempdir().expect("tmp");
    let issuer = start(&bin, dir.path());
    let pid = issuer.child.id();
    let store = dir.path().join("data");
    println!(
        "soak: {} for {:.0} s, {} clients, target {} credentials/s; issuer pid {pid}",
        issuer.url,
        args.duration.as_secs_f64(),
        args.clients,
        if args.rate > 0.0 {
            format!("{:.0}", args.rate)
        } else {
            "max".into()
        }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let window = Arc::new(Mutex::new(Tally::default()));
    let total = Arc::new(Mutex::new(Tally::default()));
    let mut claims = bizcred_examples::example_claims(CredentialType::CertificateOfIncorporation);
    if let Some(o) = claims.as_object_mut() {
        o.remove("business_number");
    }
    let claims = Arc::new(claims);
    let start = Instant::now();
    let end = start + args.duration;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        // Each client keeps its share of the rate: request k starts no earlier than
        // k × clients / rate after the start.
        let gap = if args.rate > 0.0 {
            Duration::from_secs_f64(args.clients as f64 / args.rate)
        } else {
            Duration::ZERO
        };
        let mut tasks = Vec::new();
        for c in 0..args.clients {
            let (client, url, claims) = (client.clone(), issuer.url.clone(), claims.clone());
            let (window, total) = (window.clone(), total.clone());
            tasks.push(tokio::spawn(async move {
                let mut next = tokio::time::Instant::from_std(start) + gap.mul_f64(c as f64 / args.clients as f64);
                while Instant::now() < end {
                    tokio::time::sleep_until(next).await;
                    next += gap;
                    let outcome = one(&client, &url, &claims).await;
                    for t in [&window, &total] {
                        let mut t = t.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        match &outcome {
                            Ok(d) => {
                                t.ok += 1;
                                t.latencies.push(*d);
                            }
                            Err(kind) => *t.errors.entry(kind.clone()).or_default() += 1,
                        }
                    }
                }
            }));
        }
        let (mut peak, mut last) = (0u64, Instant::now());
        let mut report = tokio::time::interval(Duration::from_secs(10));
        report.tick().await;
        while Instant::now() < end {
            report.tick().await;
            let mut w = std::mem::take(&mut *window.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            let secs = last.elapsed().as_secs_f64();
            last = Instant::now();
            let done = total.lock().unwrap_or_else(std::sync::PoisonError::into_inner).ok;
            let (rss, disk) = (rss(pid).unwrap_or(0), disk_bytes(&store).expect("the store's size"));
            let (p50, p99) = (w.pct(0.50), w.pct(0.99));
            peak = peak.max(rss);
            println!(
                "t={:>4.0}s {:>6.0} credentials/s  errors {:?}  p50 {:.1} ms  p99 {:.1} ms  RSS {:.0} MiB  disk {:.1} MiB  {} credentials, {} bytes/credential",
                start.elapsed().as_secs_f64(),
                w.ok as f64 / secs,
                w.errors,
                p50,
                p99,
                rss as f64 / 1048576.0,
                disk as f64 / 1048576.0,
                done,
                disk / done.max(1)
            );
        }
        for t in tasks {
            t.await.expect("a client task panicked");
        }
        let mut t = std::mem::take(&mut *total.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let disk = disk_bytes(&store).expect("the store's size");
        let rss_end = rss(pid).unwrap_or(0);
        let (p50, p99) = (t.pct(0.50), t.pct(0.99));
        println!(
            "soak total: {} credentials in {:.0} s ({:.0}/s), errors {:?}, p50 {:.1} ms, p99 {:.1} ms, RSS peak {:.0} MiB (end {:.0} MiB), disk {:.1} MiB, {} bytes/credential",
            t.ok,
            start.elapsed().as_secs_f64(),
            t.ok as f64 / start.elapsed().as_secs_f64(),
            t.errors,
            p50,
            p99,
            peak.max(rss_end) as f64 / 1048576.0,
            rss_end as f64 / 1048576.0,
            disk as f64 / 1048576.0,
            disk / t.ok.max(1)
        );
    });
    drop(issuer);
}
