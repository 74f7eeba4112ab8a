//! `bizcred-issuer`: run an agency's issuer.
//!
//! Exit codes: 0 done, 1 refused / not found, 2 error.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use bizcred_cli::{command_line, PassphraseArgs, SystemClock};
use bizcred_core::time::Clock;
use bizcred_issuer::admin_client::{AdminAction, AdminAnswer, AdminClient};
use bizcred_issuer::{service, Config, Issuer};

/// How often `serve` polls the upstream agencies' event feeds.
const SUBSCRIPTION_POLL: Duration = Duration::from_secs(2);

#[derive(Parser)]
#[command(
    name = "bizcred-issuer",
    version,
    about = "A bizcred agency issuer (OpenID4VCI, status lists, prerequisites)"
)]
struct Cli {
    #[command(flatten)]
    out: bizcred_cli::Output,
    /// The key passphrase: --passphrase-file, else $BIZCRED_ISSUER_PASSPHRASE, else a prompt.
    #[command(flatten)]
    pass: PassphraseArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the agency's keys (encrypted at rest) and its did:webvh DID.
    Init {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        db: bizcred_issuer::config::DatabaseArg,
    },
    /// Serve the issuer (HTTPS with --tls-cert and --tls-key; /healthz, /readyz, /metrics;
    /// SIGTERM or Ctrl-C stops it after the requests in flight).
    Serve {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        serve: bizcred_cli::serve::ServeArgs,
        #[command(flatten)]
        db: bizcred_issuer::config::DatabaseArg,
    },
    /// Apply the PostgreSQL database's migrations ([storage] database, or --database); with
    /// --from, move a sled store (the storage directory) into it, verified.
    Migrate {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        db: bizcred_issuer::config::DatabaseArg,
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Issue one public certificate of incorporation per business of a registry extract
    /// (JSON Lines, see issuer/EXTRACT.md); a rerun issues only what changed and revokes what
    /// it replaces. On sled, with the service stopped; on PostgreSQL, alongside it.
    Bulk {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        db: bizcred_issuer::config::DatabaseArg,
        /// The extract.
        #[arg(long)]
        from: PathBuf,
    },
    /// Generate an admin token and the hash to put in `admin.token_sha256`.
    Token,
    /// Show the DID and the current signing key (no secrets).
    Keys {
        #[arg(long)]
        config: PathBuf,
    },
    /// Check the hash chain of the audit log (with the service stopped).
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// The desk's staff accounts (works whether or not the service runs).
    Staff {
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        action: bizcred_cli::staff::StaffCmd,
    },
    /// Staff actions against a running issuer.
    Admin {
        /// The issuer's URL.
        #[arg(long, env = "BIZCRED_ISSUER_URL")]
        url: String,
        /// Admin bearer token.
        #[arg(long, env = "BIZCRED_ISSUER_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        action: AdminCmd,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the chain.
    Verify {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Open an application (with the claims of the system of record, as a JSON file).
    Apply {
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        claims: Option<PathBuf>,
    },
    /// Approve an application (remaining claims as a JSON file) and make the credential offer.
    Approve {
        id: String,
        #[arg(long)]
        claims: Option<PathBuf>,
    },
    /// Show an application.
    Show { id: String },
    /// List issued credentials.
    List,
    /// Refuse an application (final).
    Refuse {
        id: String,
        /// Why (required; recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Send an application back for changes.
    RequestChanges {
        id: String,
        /// Which changes (required; recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Record that the applicant withdrew an application not yet offered.
    Withdraw {
        id: String,
        /// Why (required; recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Revoke a credential (final).
    Revoke {
        id: String,
        /// Why (required; recorded in the credential's history and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Suspend a credential.
    Suspend {
        id: String,
        /// Why (required; recorded in the credential's history and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Reinstate a suspended credential.
    Reinstate {
        id: String,
        /// Why (optional).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Rotate the signing key (publishes a new did:webvh version to the registry). Retired
    /// keys stay listed in the DID document until the credentials they signed expired.
    RotateKey {
        /// A key id (`{did}#key-N`, repeatable) declared compromised: no longer listed. Declare
        /// it to the trust registry too (`bizcred-registry declare-compromise`).
        #[arg(long)]
        compromised: Vec<String>,
    },
}

fn passphrase(pass: &PassphraseArgs) -> Result<Zeroizing<String>> {
    pass.get(
        bizcred_issuer::keyfiles::PASSPHRASE_ENV,
        "Issuer key passphrase",
    )
}

fn load_config(path: &PathBuf) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Config::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

async fn admin(
    out: &bizcred_cli::Output,
    url: &str,
    token: &str,
    action: AdminCmd,
) -> Result<ExitCode> {
    let read_claims = |p: &Option<PathBuf>| -> Result<Value> {
        match p {
            None => Ok(json!({})),
            Some(p) => serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not JSON", p.display())),
        }
    };
    let call = match &action {
        AdminCmd::Apply { kind, claims } => AdminAction::Apply {
            credential_type: kind.clone(),
            claims: read_claims(claims)?,
        },
        AdminCmd::Approve { id, claims } => AdminAction::Approve {
            id: id.clone(),
            claims: read_claims(claims)?,
        },
        AdminCmd::Show { id } => AdminAction::Show { id: id.clone() },
        AdminCmd::List => AdminAction::List,
        AdminCmd::Refuse { id, reason } => AdminAction::Refuse {
            id: id.clone(),
            reason: reason.clone(),
        },
        AdminCmd::RequestChanges { id, reason } => AdminAction::RequestChanges {
            id: id.clone(),
            reason: reason.clone(),
        },
        AdminCmd::Withdraw { id, reason } => AdminAction::Withdraw {
            id: id.clone(),
            reason: reason.clone(),
        },
        AdminCmd::Revoke { id, reason } => AdminAction::Revoke {
            id: id.clone(),
            reason: reason.clone(),
        },
        AdminCmd::Suspend { id, reason } => AdminAction::Suspend {
            id: id.clone(),
            reason: reason.clone(),
        },
        AdminCmd::Reinstate { id, reason } => AdminAction::Reinstate {
            id: id.clone(),
            reason: reason.clone(),
        },
        AdminCmd::RotateKey { compromised } => AdminAction::RotateKey {
            compromised: compromised.clone(),
        },
    };
    let client = AdminClient::new(url, token, reqwest::Client::new());
    match client.call(&call).await? {
        AdminAnswer::Done(v) => {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
            let human = match &action {
                AdminCmd::Apply { .. } => match v["presentation_request"].as_str() {
                    Some(uri) => format!(
                        "application {} opened; the applicant presents the prerequisite credentials:\n  {}",
                        s("application_id"),
                        command_line(&["bizcred-wallet", "present", uri])
                    ),
                    None => format!(
                        "application {} opened; approve it with\n  {}",
                        s("application_id"),
                        command_line(&[
                            "bizcred-issuer",
                            "admin",
                            "--url",
                            url,
                            "approve",
                            &s("application_id")
                        ])
                    ),
                },
                AdminCmd::Approve { .. } if v["tx_code"].is_null() => format!(
                    "offer ready: the applicant sees it, with its transaction code, through their application link\n  offer: {}",
                    s("credential_offer_uri")
                ),
                AdminCmd::Approve { .. } => format!(
                    "offer ready. Give the applicant, separately:\n  offer:            {}\n  transaction code: {}",
                    s("credential_offer_uri"),
                    s("tx_code")
                ),
                _ => format!("{v:#}"),
            };
            out.say(&human, &v);
            Ok(ExitCode::SUCCESS)
        }
        AdminAnswer::Refused(v) => {
            out.say(
                &format!(
                    "refused: {} ({})",
                    v["error_description"].as_str().unwrap_or(""),
                    v["error"].as_str().unwrap_or("")
                ),
                &v,
            );
            Ok(ExitCode::from(1))
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let out = cli.out;
    // The wall clock, with the test offset of `bizcred_cli::clock`.
    let clock = SystemClock::from_env()?;
    match cli.command {
        Command::Init { config, db } => {
            let mut cfg = load_config(&config)?;
            db.apply(&mut cfg)?;
            let pass = passphrase(&cli.pass)?;
            let (did, log) = Issuer::init(&cfg, &pass, clock.now()).map_err(|e| anyhow!(e))?;
            let log_file = cfg.storage.join("did.jsonl");
            std::fs::write(&log_file, log)?;
            // The registry operator onboards the agency from the log file (the DID's URL serves
            // nothing until `serve` runs), with every name quoted for the shell.
            let log_path = log_file.to_string_lossy().into_owned();
            let mut words = vec![
                "bizcred-registry",
                "onboard",
                "--did-log",
                &log_path,
                "--name-en",
                &cfg.name_en,
                "--name-fr",
                &cfg.name_fr,
            ];
            for (t, _) in &cfg.types {
                words.extend(["--type", t.slug()]);
            }
            let next = command_line(&words);
            out.say(
                &format!(
                    "{} is {did}\nDID log: {} (served at {}/.well-known/did.jsonl once `bizcred-issuer serve` runs)\nnext: the registry operator runs\n  {next}",
                    cfg.name_en,
                    log_file.display(),
                    cfg.public_url,
                ),
                &json!({"did": did, "did_log": log_file, "kid": format!("{did}#key-1"), "next": next}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bulk { config, db, from } => {
            let mut cfg = load_config(&config)?;
            db.apply(&mut cfg)?;
            let issuer = Issuer::open(cfg, passphrase(&cli.pass)?, clock)
                .map_err(|e| anyhow!(e))
                .context("opening the issuer (stop a service on sled first)")?;
            let report = bulk(&issuer, &from, out.json)?;
            // The lists were re-signed from their bits; the registry gets them for bundles.
            let pushed = issuer.push_status_list().await;
            if let Err(e) = &pushed {
                tracing::warn!("status lists not pushed to the registry (the service pushes them when it runs): {e}");
            }
            let c = &report.counts;
            let mut text = format!(
                "{} lines: {} issued, {} reissued (previous revoked), {} unchanged, {} skipped",
                c.lines, c.issued, c.reissued, c.unchanged, c.skipped
            );
            for s in &report.skipped_lines {
                text.push_str(&format!("\n  line {}: {} {}", s.line, s.code, s.message));
            }
            if (c.skipped as usize) > report.skipped_lines.len() {
                text.push_str(&format!(
                    "\n  ... and {} more skipped lines",
                    c.skipped as usize - report.skipped_lines.len()
                ));
            }
            let mut v = serde_json::to_value(&report)?;
            v["status_lists_pushed"] = pushed.is_ok().into();
            out.say(&text, &v);
            Ok(if c.skipped > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Token => {
            let mut b = [0u8; 32];
            OsRng.fill_bytes(&mut b);
            // Hex, so a token never starts with `-` on a command line.
            let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let hash = bizcred_issuer::store::sha256_hex(token.as_bytes());
            out.say(&format!("admin token (keep it secret): {token}\nput in agency.toml: [admin] token_sha256 = [\"{hash}\"]"), &json!({"token": token, "token_sha256": hash}));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { config } => {
            let cfg = load_config(&config)?;
            let issuer =
                Issuer::open(cfg, passphrase(&cli.pass)?, clock).map_err(|e| anyhow!(e))?;
            out.say(
                &format!("DID {}\nsigning key {}", issuer.did, issuer.kid()),
                &json!({"did": issuer.did, "kid": issuer.kid()}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            action: AuditCmd::Verify { config },
        } => {
            let cfg = load_config(&config)?;
            let store = bizcred_issuer::store::Store::open_config(&cfg)
                .context("opening the store (stop a service on sled first)")?;
            match bizcred_issuer::store::verify_audit(&store.audit_entries()?) {
                Ok(n) => {
                    out.say(
                        &format!("audit log intact: {n} entries"),
                        &json!({"valid": true, "entries": n}),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err((seq, why)) => {
                    out.say(
                        &format!("audit log BROKEN at entry {seq}: {why}"),
                        &json!({"valid": false, "broken_at": seq, "reason": why}),
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Staff { config, action } => {
            let cfg = load_config(&config)?;
            let accounts = bizcred_web::Accounts::new(&cfg.storage, bizcred_issuer::desk::ROLES);
            bizcred_cli::staff::run(&accounts, &action, clock.now(), &out)
        }
        Command::Migrate { config, db, from } => {
            let mut cfg = load_config(&config)?;
            db.apply(&mut cfg)?;
            let done = bizcred_issuer::store::moving::migrate(&cfg, from.as_deref(), clock.now())?;
            out.say(&done.sentence(), &done.to_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config, serve, db } => {
            let mut cfg = load_config(&config)?;
            db.apply(&mut cfg)?;
            let listen = cfg.listen;
            let desk_settings = cfg.desk;
            let storage = cfg.storage.clone();
            let public_url = cfg.public_url.clone();
            let issuer =
                Arc::new(Issuer::open(cfg, passphrase(&cli.pass)?, clock).map_err(|e| anyhow!(e))?);
            if let Err(e) = issuer.sync_trust().await {
                tracing::warn!("trust bundle not synced yet: {e}");
            }
            if let Err(e) = issuer.push_status_list().await {
                tracing::warn!("status list not pushed yet: {e}");
            }
            let bg = issuer.clone();
            tokio::spawn(async move {
                let period = Duration::from_secs(bg.config.resign_interval.clamp(1, 30));
                loop {
                    tokio::time::sleep(period).await;
                    if let Err(e) = bg.sync_trust().await {
                        tracing::warn!("trust bundle sync: {e}");
                    }
                    if let Err(e) = bg.push_status_list().await {
                        tracing::warn!("status list push: {e}");
                    }
                    let sweeper = bg.clone();
                    match tokio::task::spawn_blocking(move || sweeper.sweep()).await {
                        Ok(Ok(swept)) => tracing::debug!("swept {swept:?}"),
                        Ok(Err(e)) => tracing::warn!("sweep: {e}"),
                        Err(e) => tracing::warn!("sweep task: {e}"),
                    }
                }
            });
            // Upstream agencies' event feeds (`[[subscription]]`): polled every few seconds; an
            // unreachable agency or a refused page is logged with its code and asked again
            // from the same cursor next round.
            if !issuer.config.subscriptions.is_empty() {
                let poller = issuer.clone();
                tokio::spawn(async move {
                    loop {
                        poller.poll_subscriptions().await;
                        tokio::time::sleep(SUBSCRIPTION_POLL).await;
                    }
                });
            }
            // TLS files are read and the SIGTERM / Ctrl-C handlers installed before the line
            // that says the issuer listens.
            let server = bizcred_cli::serve::Server::bind(listen, &serve).await?;
            let (addr, url) = (server.local_addr()?, server.url()?);
            out.say(
                &format!(
                    "{} issuing as {} on {url}",
                    issuer.config.name_en, issuer.did
                ),
                &json!({"listening": addr.to_string(), "url": url, "did": issuer.did}),
            );
            let health = service::health(&issuer);
            let metrics = service::metrics(&issuer);
            let desk = bizcred_issuer::desk::new_desk(
                &public_url,
                &storage,
                issuer.clock.clone(),
                desk_settings.secure_cookies,
                bizcred_web::SessionLimits {
                    idle: desk_settings.idle_seconds,
                    absolute: desk_settings.absolute_seconds,
                    ..bizcred_web::SessionLimits::default()
                },
            )
            .context("loading the desk's catalogues")?;
            let app = service::app(issuer.clone())
                .merge(bizcred_issuer::public::routes(issuer.clone()))
                .merge(bizcred_issuer::events::routes(issuer.clone()))
                .merge(bizcred_issuer::desk::routes(issuer, Arc::new(desk)));
            // Served with the connection info: client addresses (behind --trusted-proxy, the
            // forwarded ones) reach the desk's sign-in throttle. Returns once SIGTERM or
            // Ctrl-C came and the requests in flight finished (every issuance acknowledged
            // was flushed before its response).
            server.run(app, &health, &metrics).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { url, token, action } => admin(&out, &url, &token, action).await,
    }
}

/// Reads the extract line by line into a bulk run, with progress on stderr: a line rewritten
/// in place on a terminal (rate, ETA from the bytes read), a plain line every ten seconds
/// otherwise, nothing with --json.
fn bulk(
    issuer: &Issuer,
    from: &std::path::Path,
    json: bool,
) -> Result<bizcred_issuer::issuer::bulk::BulkReport> {
    use std::io::{BufRead, IsTerminal, Write};
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let total = file.metadata()?.len().max(1);
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut last = started;
    let mut run = issuer.bulk().map_err(|e| anyhow!(e))?;
    let (mut line, mut number, mut read) = (Vec::new(), 0u64, 0u64);
    loop {
        line.clear();
        // Bounded: a line longer than the limit is read no further than the limit plus one.
        let limit = bizcred_issuer::issuer::bulk::MAX_EXTRACT_LINE as u64 + 2;
        let n = std::io::Read::take(&mut reader, limit).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        read += n as u64;
        let complete = line.ends_with(b"\n");
        if !complete && n as u64 == limit {
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = std::io::Read::take(&mut reader, 1 << 16).read_until(b'\n', &mut rest)?;
                read += m as u64;
                if m == 0 || rest.ends_with(b"\n") {
                    break;
                }
            }
        }
        match std::str::from_utf8(&line) {
            Ok(text) => run
                .line(number, text.trim_end_matches(['\n', '\r']))
                .map_err(|e| anyhow!(e))?,
            Err(e) => run.reject_line(
                number,
                bizcred_core::ReasonCode::ExtractLineInvalid,
                format!("not UTF-8: {e}"),
            ),
        }
        if !json && last.elapsed() >= Duration::from_secs(if tty { 1 } else { 10 }) {
            last = std::time::Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let rate = number as f64 / secs;
            let eta = secs * (total.saturating_sub(read) as f64 / read.max(1) as f64);
            let c = run.counts();
            let msg = format!(
                "{number} lines ({:.0}%), {rate:.0} lines/s, ETA {eta:.0} s: {} issued, {} reissued, {} unchanged, {} skipped",
                100.0 * read as f64 / total as f64,
                c.issued,
                c.reissued,
                c.unchanged,
                c.skipped
            );
            let mut err = std::io::stderr().lock();
            if tty {
                let _ = write!(err, "\r\x1b[2K{msg}");
            } else {
                let _ = writeln!(err, "{msg}");
            }
        }
    }
    if tty && !json {
        let _ = writeln!(std::io::stderr());
    }
    run.finish().map_err(|e| anyhow!(e))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}
