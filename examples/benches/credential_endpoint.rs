//! The OpenID4VCI credential endpoint over HTTP under concurrent load: real issuer instances
//! (`bizcred_issuer::service::app` over axum on loopback) in this process, driven by a
//! concurrent HTTP client through token → nonce → credential for offers made beforehand.
//!
//! `cargo bench -p bizcred-examples --bench credential_endpoint [-- <credentials> [<in flight>]]`
//! (default 4,000 credentials, 32 in flight). One issuer on sled is the reference; with
//! `BIZCRED_TEST_DATABASE_URL` set, two issuer instances on one fresh PostgreSQL database
//! (dropped afterwards) are run beside it, each wallet's token request sent to one instance
//! and its nonce and credential requests to the other. Every credential answered 200 was
//! committed before its response (`Store::record_issuance` is durable when it returns); the
//! bench checks afterwards that the store holds exactly as many credentials, on as many
//! distinct status indices, as it answered.
//!
//! Reported per backend: credentials per second (the whole load phase), the latency of the
//! credential request (p50, p99) and of the whole flow, and CPU time per credential: the
//! issuer's (this process's CPU minus the load generator's threads), the load generator's, and
//! on PostgreSQL the database server's (its backends serving the bench's database, read from
//! `/proc`; the server's shared background processes are not counted).

// The service binaries' allocator, so the figures are the binaries' figures.
#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bizcred_core::keys::{Algorithm, SecretKey};
use bizcred_core::oid4vci;
use bizcred_issuer::{Actor, Config, Issuer};
use bizcred_pg::testing::{shout, TestDb, DB_VAR};
use rand_core::OsRng;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

const PUBLIC: &str = "http://localhost:18111";
const CONFIG_ID: &str = "certificate-of-incorporation";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn config(dir: &std::path::Path, database: Option<&str>) -> Config {
    let database = database.map_or(String::new(), |u| format!("database = {u:?}\n"));
    Config::parse(&format!(
        "[agency]\nname_en = \"Bench\"\nname_fr = \"Banc\"\n[server]\npublic_url = \"{PUBLIC}\"\nlisten = \"127.0.0.1:0\"\n[storage]\npath = {:?}\n{database}[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"r/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"{CONFIG_ID}\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.join("data").to_string_lossy(),
        "00".repeat(32)
    ))
    .expect("config")
}

fn claims() -> Map<String, Value> {
    let mut v: Value = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/certificate-of-incorporation.json"
    ))
    .expect("json");
    let o = v.as_object_mut().expect("object");
    o.remove("business_number");
    o.clone()
}

/// CPU time (user + system) in clock ticks of `/proc/<what>/stat`.
fn ticks(stat: &str) -> Option<u64> {
    // The fields after the command name (which may hold spaces) end with ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name and state.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

const TICK: f64 = 0.01; // USER_HZ is 100 on Linux.

fn process_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    Duration::from_secs_f64(ticks(&s).expect("stat") as f64 * TICK)
}

/// The CPU ticks of every process whose command line names `db` (PostgreSQL backends show
/// their database in their title), by process id.
fn backends_of(db: &str) -> std::collections::HashMap<u32, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // A process that exited since the listing has no command line: not a backend.
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(db) {
            continue;
        }
        if let Some(t) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| ticks(&s))
        {
            out.insert(pid, t);
        }
    }
    out
}

/// One offer: its pre-authorized code and transaction code.
struct OfferCodes {
    code: String,
    tx: String,
}

/// Makes `n` approved applications with their offers through the issuer core (on two
/// threads).
fn offers(issuer: &Issuer, n: usize) -> Vec<OfferCodes> {
    let claims = claims();
    let out = Mutex::new(Vec::with_capacity(n));
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < n {
                    let (app, _) = issuer
                        .create_application(&Actor::Automation, CONFIG_ID, claims.clone())
                        .expect("application");
                    let offered = issuer
                        .approve(&Actor::Automation, &app.id, Map::new())
                        .expect("approve");
                    let oid4vci::OfferRef::ByValue(v) =
                        oid4vci::parse_offer_uri(&offered.credential_offer_by_value)
                            .expect("offer")
                    else {
                        panic!("an offer by value")
                    };
                    let code = v["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
                        .as_str()
                        .expect("code")
                        .to_owned();
                    out.lock().expect("offers").push(OfferCodes {
                        code,
                        tx: offered.tx_code.expect("staff hand over the code"),
                    });
                }
            });
        }
    });
    out.into_inner().expect("offers")
}

/// Serves each issuer on a loopback port of its own, on `rt`; answers their URLs.
fn serve(rt: &tokio::runtime::Runtime, issuers: &[Arc<Issuer>]) -> Vec<String> {
    issuers
        .iter()
        .map(|i| {
            let app = bizcred_issuer::service::app(i.clone());
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            rt.spawn(async move {
                axum::serve(listener, app).await.expect("serve");
            });
            format!("http://{addr}")
        })
        .collect()
}

/// What one load phase measured.
struct Figures {
    ok: usize,
    failed: usize,
    wall: Duration,
    credential: Vec<Duration>,
    flow: Vec<Duration>,
    issuer_cpu: Duration,
    client_cpu: Duration,
    db_cpu: Option<Duration>,
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

/// Drives token → nonce → credential for every offer, `in_flight` wallets at once: wallet
/// `k`'s token request goes to `urls[k % len]`, its nonce and credential requests to the next
/// instance.
fn load(urls: &[String], offers: Vec<OfferCodes>, in_flight: usize, db: Option<&str>) -> Figures {
    // The load generator's own threads, whose CPU is counted apart from the issuer's.
    let client_ticks = Arc::new(AtomicU64::new(0));
    let on_stop = client_ticks.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .on_thread_stop(move || {
            if let Some(t) = std::fs::read_to_string("/proc/thread-self/stat")
                .ok()
                .and_then(|s| ticks(&s))
            {
                on_stop.fetch_add(t, Ordering::SeqCst);
            }
        })
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let offers = Arc::new(offers);
    let next = Arc::new(AtomicUsize::new(0));
    let urls: Arc<Vec<String>> = Arc::new(urls.to_vec());
    let db_before = db.map(backends_of);
    let cpu_before = process_cpu();
    let start = Instant::now();
    let results: Vec<(usize, usize, Vec<Duration>, Vec<Duration>)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (client, offers, next, urls) =
                (client.clone(), offers.clone(), next.clone(), urls.clone());
            tasks.push(tokio::spawn(async move {
                let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
                let (mut ok, mut failed, mut cred, mut flow) = (0, 0, Vec::new(), Vec::new());
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    let Some(o) = offers.get(k) else { break };
                    let (a, b) = (&urls[k % urls.len()], &urls[(k + 1) % urls.len()]);
                    let t0 = Instant::now();
                    let t: Value = client
                        .post(format!("{a}/token"))
                        .form(&[
                            ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
                            ("pre-authorized_code", &o.code),
                            ("tx_code", &o.tx),
                        ])
                        .send()
                        .await
                        .expect("token")
                        .json()
                        .await
                        .expect("token json");
                    let Some(token) = t["access_token"].as_str() else {
                        failed += 1;
                        continue;
                    };
                    let n: Value = client
                        .post(format!("{b}/nonce"))
                        .send()
                        .await
                        .expect("nonce")
                        .json()
                        .await
                        .expect("nonce json");
                    let c_nonce = n["c_nonce"].as_str().expect("c_nonce");
                    let proof =
                        oid4vci::proof_jwt(&holder, PUBLIC, Some(c_nonce), now()).expect("proof");
                    let t1 = Instant::now();
                    let r = client
                        .post(format!("{b}/credential"))
                        .bearer_auth(token)
                        .json(&json!({"credential_configuration_id": CONFIG_ID, "proofs": {"jwt": [proof]}}))
                        .send()
                        .await
                        .expect("credential");
                    let status = r.status();
                    let body: Value = r.json().await.expect("credential json");
                    let done = Instant::now();
                    if status == 200 && body["credentials"][0]["credential"].is_string() {
                        ok += 1;
                        cred.push(done - t1);
                        flow.push(done - t0);
                    } else {
                        failed += 1;
                        eprintln!("refused: {status} {body}");
                    }
                }
                (ok, failed, cred, flow)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("wallet"));
        }
        out
    });
    let wall = start.elapsed();
    let cpu = process_cpu() - cpu_before;
    let db_cpu = db.zip(db_before).map(|(db, before)| {
        let after = backends_of(db);
        let t: u64 = after
            .iter()
            .map(|(pid, t)| t.saturating_sub(*before.get(pid).unwrap_or(&0)))
            .sum();
        Duration::from_secs_f64(t as f64 * TICK)
    });
    drop(client);
    drop(rt);
    let client_cpu = Duration::from_secs_f64(client_ticks.load(Ordering::SeqCst) as f64 * TICK);
    let (mut ok, mut failed, mut credential, mut flow) = (0, 0, Vec::new(), Vec::new());
    for (o, f, c, w) in results {
        ok += o;
        failed += f;
        credential.extend(c);
        flow.extend(w);
    }
    credential.sort();
    flow.sort();
    Figures {
        ok,
        failed,
        wall,
        credential,
        flow,
        issuer_cpu: cpu.saturating_sub(client_cpu),
        client_cpu,
        db_cpu,
    }
}

/// Checks that the store holds every credential answered, each on its own status index.
fn check(issuer: &Issuer, answered: usize) {
    let recs = issuer.store.credentials().expect("records");
    let indices: HashSet<(u32, u64)> = recs.iter().map(|r| (r.status_list, r.status_idx)).collect();
    assert_eq!(
        recs.len(),
        answered,
        "every credential answered is recorded"
    );
    assert_eq!(indices.len(), recs.len(), "no status index is held twice");
}

fn report(name: &str, f: &Figures, reference: Option<&Figures>) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f.ok.max(1) as f64;
    let rate = f.ok as f64 / f.wall.as_secs_f64();
    let vs = reference
        .map(|r| {
            let rr = r.ok as f64 / r.wall.as_secs_f64();
            let rc = r.issuer_cpu.as_secs_f64() / r.ok.max(1) as f64;
            format!(
                "; {:.2} x sled's rate, issuer CPU {:.2} x sled's",
                rate / rr,
                f.issuer_cpu.as_secs_f64() / f.ok.max(1) as f64 / rc
            )
        })
        .unwrap_or_default();
    println!(
        "{name}: {} credentials ({} refused) in {:.2} s = {:.0} credentials/s; credential request p50 {:.1} ms, p99 {:.1} ms; whole flow p50 {:.1} ms, p99 {:.1} ms; CPU per credential: issuer {:.0} us, load generator {:.0} us{}{vs}",
        f.ok,
        f.failed,
        f.wall.as_secs_f64(),
        rate,
        pct(&f.credential, 0.5),
        pct(&f.credential, 0.99),
        pct(&f.flow, 0.5),
        pct(&f.flow, 0.99),
        per(f.issuer_cpu),
        per(f.client_cpu),
        f.db_cpu
            .map(|d| format!(", PostgreSQL backends {:.0} us", per(d)))
            .unwrap_or_default(),
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(4_000);
    let in_flight = args.get(1).copied().unwrap_or(32);
    // The issuers' runtime: two workers, as the service binary has on this machine.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "credential endpoint: {n} credentials, {in_flight} wallets in flight, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // sled: the reference.
    let dir = tempfile::tempdir().expect("tmp");
    let (sled, _) = Issuer::create(
        config(dir.path(), None),
        Zeroizing::new("pw".into()),
        now() - 10,
        now,
    )
    .expect("create");
    let sled = Arc::new(sled);
    let codes = offers(&sled, n);
    let urls = serve(&server_rt, std::slice::from_ref(&sled));
    let on_sled = load(&urls, codes, in_flight, None);
    report("sled, one instance", &on_sled, None);
    check(&sled, on_sled.ok);

    let Some(server) = std::env::var(DB_VAR).ok().filter(|u| !u.trim().is_empty()) else {
        shout(
            "credential_endpoint on PostgreSQL",
            &format!("{DB_VAR} is not set"),
        );
        return;
    };
    let db = TestDb::migrated(&server, bizcred_issuer::store::pg::migrate);
    let dir = tempfile::tempdir().expect("tmp");
    let (a, _) = Issuer::create(
        config(dir.path(), Some(&db.url)),
        Zeroizing::new("pw".into()),
        now() - 10,
        now,
    )
    .expect("create");
    let b = Issuer::open(
        config(dir.path(), Some(&db.url)),
        Zeroizing::new("pw".into()),
        now,
    )
    .expect("open");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let codes = offers(&a, n);
    let urls = serve(&server_rt, &[a.clone(), b.clone()]);
    let on_pg = load(&urls, codes, in_flight, Some(&db.name));
    report("PostgreSQL, two instances", &on_pg, Some(&on_sled));
    check(&a, on_pg.ok);
    drop(server_rt);
    drop((a, b));
    drop(db);
}
