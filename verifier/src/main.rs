//! `bizcred-verifier`: what a bank or agency runs to check presentations offline.
//!
//! Exit codes: 0 accept (or done), 1 reject (or refused), 2 error, 3 indeterminate.
//!
//! What the commands do are library calls (`store`, `sync`, `service`, `staff`); this file
//! parses arguments, reads passwords and passphrases, and prints.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use rand_core::OsRng;
use serde_json::{json, Value};

use bizcred_cli::{hinted, PassphraseArgs, SystemClock};
use bizcred_core::keys::SecretKey;
use bizcred_core::oid4vp;
use bizcred_core::time::Clock;
use bizcred_core::trust::bundle::BundleError;
use bizcred_core::trust::state::TrustState;
use bizcred_verifier::request;
use bizcred_verifier::service::{self, PresentationFile, ServiceConfig, ServiceState};
use bizcred_verifier::staff;
use bizcred_verifier::store::pg::{self, PgShared};
use bizcred_verifier::store::{self, StoreError, VerifierDir};
use bizcred_verifier::{Policy, Report, Verdict};

#[derive(Parser)]
#[command(
    name = "bizcred-verifier",
    version,
    about = "Verify bizcred presentations offline, against a synced trust bundle"
)]
struct Cli {
    #[command(flatten)]
    out: bizcred_cli::Output,
    #[command(flatten)]
    pass: PassphraseArgs,
    /// The verifier's data directory.
    #[arg(
        long,
        global = true,
        env = "BIZCRED_VERIFIER_DIR",
        default_value = "verifier-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the verifier: its key (did:jwk), Client Identifier and pinned registry anchor.
    Init {
        /// The registry trust anchor: JSON {origin, log_key_name, log_key}, or a file holding it.
        #[arg(long)]
        anchor: String,
        /// The registry URL for `sync`.
        #[arg(long)]
        registry: Option<String>,
    },
    /// Fetch, verify and store the registry's trust bundle.
    Sync {
        /// The registry URL (else the one given at init).
        registry: Option<String>,
    },
    /// Trust bundles from files (air-gapped verifiers).
    Bundle {
        #[command(subcommand)]
        action: BundleCmd,
    },
    /// Make an OpenID4VP request for a policy, as a URI or a file.
    Request {
        #[arg(long)]
        policy: PathBuf,
        /// Where the wallet posts its answer (a running `serve`); omit for file exchange.
        #[arg(long)]
        response_uri: Option<String>,
        /// Write the signed request object here (offline exchange).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds the request stays open.
        #[arg(long, default_value_t = store::DEFAULT_REQUEST_TTL)]
        ttl: i64,
    },
    /// Replace the operator token (it creates requests and reads results over HTTP); printed once.
    Token,
    /// Verify a presentation file (from `bizcred-wallet present --out`).
    Verify {
        presentation: PathBuf,
        #[arg(long)]
        policy: PathBuf,
    },
    /// Verify one credential file on its own, as a public record (from the public business
    /// repository): issuer, key, signature, type, authorization, schema and status against
    /// the synced trust bundle. No holder is proven: presentations need `verify`.
    VerifyRecord { credential: PathBuf },
    /// Serve OpenID4VP 1.0 verifier endpoints and the bank page (/desk).
    Serve {
        /// A policy file; repeat for several (the first is the default, for POST /requests
        /// and the bank page).
        #[arg(long, required = true)]
        policy: Vec<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// The public base URL (for request and response URIs).
        #[arg(long)]
        public_url: String,
        /// Seconds a request waits for the wallet's answer before it expires.
        #[arg(long, default_value_t = store::DEFAULT_REQUEST_TTL)]
        request_ttl: i64,
        /// How many requests may wait for an answer at once.
        #[arg(long, default_value_t = store::DEFAULT_MAX_PENDING)]
        max_pending: usize,
        /// The service is reached over TLS (a proxy in front of it terminates TLS): the bank
        /// page's cookies are marked Secure.
        #[arg(long)]
        secure_cookies: bool,
        /// Share pending requests, outcomes and receipts with other instances through
        /// PostgreSQL (postgres://user@host/database; else $BIZCRED_VERIFIER_DATABASE_URL,
        /// which keeps a password out of the process list). Each instance keeps its own copy
        /// of the data directory (anchor, bundles, key, staff accounts).
        #[arg(long, env = DATABASE_VAR, hide_env_values = true)]
        database: Option<String>,
        #[command(flatten)]
        serve: bizcred_cli::serve::ServeArgs,
    },
    /// Apply this binary's PostgreSQL migrations (serve refuses a database without them);
    /// with --from, move a data directory's pending requests and receipts there.
    Migrate {
        /// The PostgreSQL database (else $BIZCRED_VERIFIER_DATABASE_URL).
        #[arg(long, env = DATABASE_VAR, hide_env_values = true)]
        database: String,
        /// A verifier data directory: its unexpired pending requests move to the database
        /// (removed from the directory) and its receipts are copied, in one transaction,
        /// verified. Stop the verifier serving it first.
        #[arg(long, value_name = "DATA_DIR")]
        from: Option<PathBuf>,
    },
    /// Staff accounts of the bank page (/desk): roles officer (verify, upload, sync,
    /// history) and administrator (also staff accounts).
    Staff {
        #[command(subcommand)]
        action: bizcred_cli::staff::StaffCmd,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Import a bundle file.
    Import { file: PathBuf },
}

const PASS_VAR: &str = "BIZCRED_VERIFIER_PASSPHRASE";
const DATABASE_VAR: &str = "BIZCRED_VERIFIER_DATABASE_URL";
const PASS_PROMPT: &str = "Verifier key passphrase";

fn open_dir(dir: &Path) -> Result<VerifierDir> {
    VerifierDir::open(dir).map_err(|e| match e {
        StoreError::NotInitialized(_) => hinted(
            e.to_string(),
            bizcred_cli::command_line(&[
                "bizcred-verifier",
                "--data-dir",
                &dir.to_string_lossy(),
                "init",
                "--anchor",
                "anchor.json",
            ]),
        ),
        e => e.into(),
    })
}

/// Reads and parses a policy file.
fn load_policy(path: &Path) -> Result<Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Policy::from_toml(&text)?)
}

fn key(v: &VerifierDir, pass: &PassphraseArgs) -> Result<SecretKey> {
    Ok(v.key(pass.get(PASS_VAR, PASS_PROMPT)?.as_bytes())?)
}

/// What `sync` and `bundle import` report: the sentence, the JSON and the exit code.
fn bundle_outcome(
    done: &str,
    stored: std::result::Result<(TrustState, u64), BundleError>,
) -> (String, Value, ExitCode) {
    match stored {
        Ok((state, added)) => {
            let asof = state
                .registry_as_of
                .map(bizcred_core::time::format_utc)
                .unwrap_or_default();
            (
                format!(
                    "{done}: {} entries (+{added}), {} issuers, registry data as of {asof}",
                    state.size(),
                    state.issuers.len()
                ),
                json!({"size": state.size(), "added": added, "registry_as_of": asof}),
                ExitCode::SUCCESS,
            )
        }
        Err(e) => (
            format!(
                "bundle refused ({}): {e}; the trust state was not changed",
                e.code()
            ),
            json!({"refused": e.code(), "reason": e.to_string()}),
            ExitCode::from(1),
        ),
    }
}

fn exit_for(v: Verdict) -> ExitCode {
    match v {
        Verdict::Accept => ExitCode::SUCCESS,
        Verdict::Reject => ExitCode::from(1),
        Verdict::Indeterminate => ExitCode::from(3),
    }
}

fn human_report(r: &Report) -> String {
    let mut s = format!("{:?} under policy {}\n", r.verdict, r.policy)
        .to_uppercase()
        .replacen(
            &format!("UNDER POLICY {}", r.policy.to_uppercase()),
            &format!("under policy {}", r.policy),
            1,
        );
    if let Some(l) = r.last_known {
        s.push_str(&format!("  last known decision on older data: {l:?}\n"));
    }
    for c in &r.credentials {
        s.push_str(&format!(
            "  {} from {} ({}): {}\n",
            c.id,
            c.issuer_name.as_deref().unwrap_or(&c.issuer),
            c.status,
            c.disclosed.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    for f in &r.failures {
        s.push_str(
            &format!(
                "  {:?} {}{}: {}\n",
                f.severity,
                f.credential
                    .as_deref()
                    .map(|c| format!("{c} "))
                    .unwrap_or_default(),
                f.code,
                f.message
            )
            .replace("Reject ", "✗ ")
            .replace("Indeterminate ", "? "),
        );
    }
    if let Some(reg) = &r.as_of.registry {
        s.push_str(&format!(
            "  registry data as of {reg}; {} status lists\n",
            r.as_of.status.len()
        ));
    }
    s.trim_end().to_owned()
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = cli.data_dir.clone();
    let clock = SystemClock::from_env()?;
    let say = |human: &str, data: &Value| cli.out.say(human, data);
    match cli.command {
        Command::Init { anchor, registry } => {
            let anchor = bizcred_cli::trust_anchor(&anchor)?;
            let pass = cli.pass.get(PASS_VAR, PASS_PROMPT)?;
            let (v, token) =
                VerifierDir::init(&dir, anchor, registry, pass.as_bytes(), &mut OsRng)?;
            let cfg = v.config();
            say(
                &format!(
                    "verifier created in {}; client id {}\noperator token (shown once; it creates requests and reads results): {}",
                    dir.display(),
                    cfg.client_id,
                    token.expose()
                ),
                &json!({"client_id": cfg.client_id, "operator_token": token.expose()}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Token => {
            let mut v = open_dir(&dir)?;
            let token = v.rotate_token(&mut OsRng)?;
            say(
                &format!(
                    "new operator token (shown once; the previous one no longer works): {}",
                    token.expose()
                ),
                &json!({"operator_token": token.expose()}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { registry } => {
            let v = open_dir(&dir)?;
            let synced = bizcred_verifier::sync::sync(&v, registry.as_deref(), clock.now())
                .await
                .map_err(|e| match e {
                    bizcred_verifier::sync::SyncError::NoRegistry => {
                        anyhow!("give the registry URL: bizcred-verifier sync <registry-url>")
                    }
                    e => e.into(),
                })?;
            let (human, data, code) = bundle_outcome("trust bundle synced", synced);
            say(&human, &data);
            Ok(code)
        }
        Command::Bundle {
            action: BundleCmd::Import { file },
        } => {
            let v = open_dir(&dir)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (human, data, code) =
                bundle_outcome("bundle imported", v.store_bundle(&text, clock.now())?);
            say(&human, &data);
            Ok(code)
        }
        Command::Request {
            policy,
            response_uri,
            out,
            ttl,
        } => {
            let v = open_dir(&dir)?;
            let pol = load_policy(&policy)?;
            let now = clock.now();
            v.sweep(now)?;
            let p = v.new_pending(
                response_uri.as_deref().unwrap_or("urn:bizcred:offline"),
                now,
                ttl,
                &mut OsRng,
            )?;
            let jwt = oid4vp::sign_request_object(
                &request::request_object(&pol, &p, now),
                &v.config().kid,
                &key(&v, &cli.pass)?,
            )?;
            match out {
                Some(f) => {
                    std::fs::write(&f, &jwt)?;
                    say(
                        &format!(
                            "request {} for policy {} written to {}",
                            p.state,
                            pol.name,
                            f.display()
                        ),
                        &json!({"transaction_id": p.state, "file": f}),
                    );
                }
                None => {
                    let uri = format!(
                        "{}{}",
                        oid4vp::SCHEME,
                        format_args!(
                            "?{}",
                            form_query(&[("client_id", &v.config().client_id), ("request", &jwt)])
                        )
                    );
                    say(
                        &uri,
                        &json!({"transaction_id": p.state, "request_uri": uri}),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            presentation,
            policy,
        } => {
            let v = open_dir(&dir)?;
            let pol = load_policy(&policy)?;
            let raw = std::fs::read(&presentation)
                .with_context(|| format!("reading {}", presentation.display()))?;
            let doc = PresentationFile::parse(&raw)?;
            let state = doc.state.as_str();
            let now = clock.now();
            let pending = v.take_pending(state, now)?.ok_or_else(|| {
                hinted(
                    format!("the presentation answers no open request of this verifier (state {state:?}): unknown, answered or expired"),
                    bizcred_cli::command_line(&[
                        "bizcred-verifier",
                        "--data-dir",
                        &dir.to_string_lossy(),
                        "request",
                        "--policy",
                        &policy.to_string_lossy(),
                        "--out",
                        "request.jwt",
                    ]),
                )
            })?;
            let k = key(&v, &cli.pass)?;
            let (o, receipt_file) =
                service::evaluate(&v, &pol, &k, &doc.vp_token, &pending, &raw, now)?;
            say(
                &format!(
                    "{}\n  receipt: {}",
                    human_report(&o.report),
                    receipt_file.display()
                ),
                &json!({"report": o.report, "receipt": o.receipt, "receipt_file": receipt_file}),
            );
            Ok(exit_for(o.report.verdict))
        }
        Command::VerifyRecord { credential } => {
            let v = open_dir(&dir)?;
            let raw = std::fs::read(&credential)
                .with_context(|| format!("reading {}", credential.display()))?;
            let now = clock.now();
            let trust = v.trust(now)?;
            let text = String::from_utf8_lossy(&raw);
            let report = bizcred_verifier::verify::verify_record(
                text.trim(),
                &bizcred_verifier::verify::Context {
                    trust: trust.as_ref(),
                    stapled_status_lists: &[],
                    now,
                },
            );
            say(&human_report(&report), &json!({ "report": report }));
            Ok(exit_for(report.verdict))
        }
        Command::Serve {
            policy,
            listen,
            public_url,
            request_ttl,
            max_pending,
            secure_cookies,
            database,
            serve,
        } => {
            let v = open_dir(&dir)?;
            if v.config().operator_token_sha256.is_none() {
                return Err(hinted(
                    "this verifier has no operator token yet; `serve` needs one to protect its requests and results",
                    bizcred_cli::command_line(&[
                        "bizcred-verifier",
                        "--data-dir",
                        &dir.to_string_lossy(),
                        "token",
                    ]),
                ));
            }
            if request_ttl <= 0 || max_pending == 0 {
                bail!("--request-ttl and --max-pending must be positive");
            }
            let policies = policy
                .iter()
                .map(|p| load_policy(p))
                .collect::<Result<Vec<_>>>()?;
            let k = key(&v, &cli.pass)?;
            let state = Arc::new(service_state(
                v,
                database.as_deref(),
                policies,
                k,
                ServiceConfig {
                    public_url,
                    request_ttl,
                    max_pending,
                    secure_cookies,
                },
                clock,
            )?);
            let app = service::app(state.clone());
            let server = bizcred_cli::serve::Server::bind(listen, &serve).await?;
            let (health, metrics) = observability(&state);
            let url = server.url()?;
            say(
                &format!("verifier serving on {url}; the bank page is /desk"),
                &json!({"listening": server.local_addr()?.to_string(), "desk": format!("{url}/desk")}),
            );
            server.run(app, &health, &metrics).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { database, from } => migrate(&database, from.as_deref(), clock, &cli.out),
        Command::Staff { action } => {
            // The accounts live in an initialized data directory (a missing one hints at init).
            open_dir(&dir)?;
            bizcred_cli::staff::run(&staff::accounts(&dir), &action, clock.now(), &cli.out)
        }
    }
}

/// The service's state: what instances share in the data directory and memory, or in the
/// PostgreSQL database at `database` (its schema checked first).
fn service_state(
    dir: VerifierDir,
    database: Option<&str>,
    policies: Vec<Policy>,
    key: SecretKey,
    cfg: ServiceConfig,
    clock: SystemClock,
) -> Result<ServiceState> {
    let clock: Arc<dyn Clock> = Arc::new(clock);
    Ok(match database {
        None => ServiceState::new(dir, policies, key, cfg, clock)?,
        Some(url) => {
            let shared = tokio::task::block_in_place(|| PgShared::connect(url))
                .map_err(|e| db_error(e, Some(url)))?;
            ServiceState::with_shared(dir, Arc::new(shared), policies, key, cfg, clock)?
        }
    })
}

/// A storage error with its reason code, and the command that fixes it when there is one.
fn db_error(e: StoreError, database: Option<&str>) -> anyhow::Error {
    let message = format!("{}: {e}", e.code());
    match (&e, database) {
        (StoreError::SchemaBehind { .. }, Some(url)) => {
            // The URL itself when it holds no secret, else the variable that should hold it.
            let url = if pg::redact_url(url) == url {
                bizcred_cli::command_line(&[url])
            } else {
                format!("\"${DATABASE_VAR}\"")
            };
            hinted(
                message,
                format!("bizcred-verifier migrate --database {url}"),
            )
        }
        _ => anyhow!(message),
    }
}

/// `migrate`: the database's migrations, and with `from` the move of a data directory.
fn migrate(
    database: &str,
    from: Option<&Path>,
    clock: SystemClock,
    out: &bizcred_cli::Output,
) -> Result<ExitCode> {
    let shown = pg::redact_url(database);
    let migrated =
        tokio::task::block_in_place(|| pg::migrate(database)).map_err(|e| db_error(e, None))?;
    let applied = if migrated.applied.is_empty() {
        format!("{shown} is current (migrations {:?})", migrated.versions)
    } else {
        format!("{shown}: applied migrations {:?}", migrated.applied)
    };
    let Some(dir) = from else {
        out.say(
            &applied,
            &json!({"database": shown, "applied": migrated.applied, "versions": migrated.versions}),
        );
        return Ok(ExitCode::SUCCESS);
    };
    let v = open_dir(dir)?;
    let moved =
        tokio::task::block_in_place(|| PgShared::connect(database)?.move_from(&v, clock.now()))
            .map_err(|e| db_error(e, Some(database)))?;
    out.say(
        &format!(
            "{applied}\nmoved {} pending requests and copied {} receipts ({} already there) from {} to {shown}\nserve with: bizcred-verifier --data-dir {} serve --database <URL> ...",
            moved.requests,
            moved.receipts,
            moved.already,
            dir.display(),
            dir.display(),
        ),
        &json!({"database": shown, "applied": migrated.applied, "versions": migrated.versions,
                "moved": {"from": dir, "requests": moved.requests, "receipts": moved.receipts,
                          "already": moved.already}}),
    );
    Ok(ExitCode::SUCCESS)
}

fn form_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}

/// `/readyz` (the shared storage answers; the trust bundle is held) and `/metrics`
/// (verifications by verdict, the trust bundle's age).
fn observability(
    state: &Arc<service::ServiceState>,
) -> (bizcred_cli::serve::Health, bizcred_cli::serve::Metrics) {
    let metrics = bizcred_cli::serve::Metrics::new("verifier");
    let verdicts = metrics.counter_by(
        "verifications",
        "Presentations verified, by verdict",
        "verdict",
        &["accept", "reject", "indeterminate"],
    );
    state.observe_verdicts(move |v| {
        verdicts.inc(match v {
            bizcred_verifier::Verdict::Accept => "accept",
            bizcred_verifier::Verdict::Reject => "reject",
            bizcred_verifier::Verdict::Indeterminate => "indeterminate",
        })
    });
    let s = state.clone();
    metrics.gauge_fn(
        "bundle_age_seconds",
        "Seconds since the registry data of the trust bundle held was signed",
        move || match s.bundle_age() {
            Ok(age) => age.map(|a| a as f64),
            Err(e) => {
                // No sample rather than a made-up age; the cause is in the log.
                tracing::warn!("bundle age for /metrics: {e}");
                None
            }
        },
    );
    let (storage, trust) = (state.clone(), state.clone());
    let health = bizcred_cli::serve::Health::new()
        .check("storage", move || storage.storage_ready())
        .check("trust_bundle", move || match trust.bundle_age() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("no trust bundle yet: run bizcred-verifier sync".to_owned()),
            Err(e) => Err(e.to_string()),
        });
    (health, metrics)
}
