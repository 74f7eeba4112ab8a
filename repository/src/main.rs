//! `bizcred-repository`: the public business repository.
//!
//! Exit codes: 0 done, 1 refused / not found, 2 error.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use bizcred_cli::SystemClock;
use bizcred_repository::trust::TrustConfig;
use bizcred_repository::{IntakeReport, Repository, SearchQuery};

#[derive(Parser)]
#[command(
    name = "bizcred-repository",
    version,
    about = "The public business repository: public credentials verified on intake, searchable"
)]
struct Cli {
    #[command(flatten)]
    out: bizcred_cli::Output,
    /// The data directory.
    #[arg(
        long,
        env = "BIZCRED_REPOSITORY_DIR",
        default_value = "repository-data"
    )]
    data_dir: PathBuf,
    /// Keep the records in this PostgreSQL database (postgres://…), shared by any number of
    /// instances (serve, sync, pull, import, reindex, search, migrate); the trust directory
    /// and the search index stay in the data directory.
    #[arg(
        long,
        global = true,
        env = "BIZCRED_REPOSITORY_DATABASE_URL",
        hide_env_values = true
    )]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the repository, pinned to the registry's trust anchor.
    Init {
        /// The registry trust anchor: JSON {origin, log_key_name, log_key}, or a file holding it.
        #[arg(long)]
        anchor: String,
        /// The registry's URL (trust bundles).
        #[arg(long)]
        registry: String,
    },
    /// Fetch and verify the registry's newer trust bundle; apply its newer status lists.
    Sync,
    /// Take in every new public credential from issuers' public feeds
    /// (`<issuer-url>/public/credentials`), from where the last pull stopped.
    Pull {
        /// The issuers' URLs.
        #[arg(required = true)]
        issuers: Vec<String>,
    },
    /// Take in public credentials from a file (one per line), as an issuer's push would.
    Import { file: PathBuf },
    /// Rebuild the search index from the stored credentials.
    Reindex,
    /// Apply this binary's migrations to the PostgreSQL database (--database).
    Migrate,
    /// Search, as the search page does.
    Search {
        /// Name words, a business number or a corporation number.
        query: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        municipality: Option<String>,
        #[arg(long = "type")]
        entity_type: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: usize,
    },
    /// Serve the pages and the JSON API; sync the bundle and pull the issuers' feeds on a
    /// schedule (HTTPS with --tls-cert and --tls-key; /healthz, /readyz, /metrics).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Issuers whose public feeds are pulled (repeat).
        #[arg(long = "issuer")]
        issuers: Vec<String>,
        /// Seconds between syncs and pulls.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        #[command(flatten)]
        serve: bizcred_cli::serve::ServeArgs,
    },
}

fn open(cli: &Cli, clock: SystemClock) -> Result<Arc<Repository>> {
    Ok(Arc::new(
        Repository::open_with(&cli.data_dir, Arc::new(clock), cli.database.as_deref())
            .with_context(|| format!("opening the repository in {}", cli.data_dir.display()))?,
    ))
}

fn report_text(what: &str, r: &IntakeReport) -> String {
    let mut t = format!(
        "{what}: {} accepted, {} held already, {} refused",
        r.accepted, r.already_held, r.refused
    );
    if r.waiting_for_bundle > 0 {
        t.push_str(&format!(
            ", {} issued after the trust bundle held (taken after the next sync)",
            r.waiting_for_bundle
        ));
    }
    for f in &r.refusals {
        t.push_str(&format!("\n  #{}: {} {}", f.index, f.code, f.message));
    }
    t
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let clock = SystemClock::from_env()?;
    let out = &cli.out;
    match &cli.command {
        Command::Init { anchor, registry } => {
            let anchor = bizcred_cli::trust_anchor(anchor)?;
            Repository::init(
                &cli.data_dir,
                TrustConfig {
                    anchor,
                    registry: registry.clone(),
                },
            )?;
            out.say(
                &format!(
                    "repository created in {}\nnext: bizcred-repository --data-dir {} sync",
                    cli.data_dir.display(),
                    cli.data_dir.display()
                ),
                &json!({"data_dir": cli.data_dir}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync => {
            let repo = open(&cli, clock)?;
            let s = repo.sync().await?;
            out.say(
                &format!(
                    "trust bundle verified: {} log entries; {} status lists applied, {} statuses changed",
                    s.log_size, s.lists_applied, s.statuses_changed
                ),
                &serde_json::to_value(&s)?,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Pull { issuers } => {
            let repo = open(&cli, clock)?;
            let mut all = Vec::new();
            let mut refused = false;
            for i in issuers {
                let r = repo.pull(i).await?;
                refused |= r.refused > 0;
                out.say(&report_text(i, &r), &Value::Null);
                all.push(json!({"issuer": i, "report": r}));
            }
            if out.json {
                out.say("", &json!({"pulled": all}));
            }
            Ok(if refused {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Import { file } => {
            let repo = open(&cli, clock)?;
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let mut lines = std::io::BufReader::new(f).lines();
            let mut failed: Option<std::io::Error> = None;
            // Batches of 5,000 lines; a read error ends them and is answered below.
            let batches = std::iter::from_fn(|| {
                let mut batch = Vec::new();
                for line in lines.by_ref() {
                    match line {
                        Ok(l) if l.trim().is_empty() => {}
                        Ok(l) => {
                            batch.push(l);
                            if batch.len() >= 5_000 {
                                break;
                            }
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                (!batch.is_empty()).then_some(batch)
            });
            let total = repo.intake_all(batches)?;
            repo.commit()?;
            if let Some(e) = failed {
                return Err(anyhow::Error::new(e).context(format!(
                    "reading {} (what was read before is kept)",
                    file.display()
                )));
            }
            out.say(
                &report_text(&file.display().to_string(), &total),
                &serde_json::to_value(&total)?,
            );
            Ok(if total.refused > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Migrate => {
            let Some(url) = cli.database.as_deref() else {
                anyhow::bail!(
                    "migrate needs the database: --database or BIZCRED_REPOSITORY_DATABASE_URL"
                );
            };
            let m = bizcred_repository::store::pg::migrate(url)
                .with_context(|| format!("migrating {}", bizcred_pg::redact_url(url)))?;
            out.say(
                &format!(
                    "database migrated: {} applied now, {} in all",
                    m.applied.len(),
                    m.versions.len()
                ),
                &json!({"applied": m.applied, "versions": m.versions}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex => {
            let repo = open(&cli, clock)?;
            let n = repo.reindex()?;
            out.say(
                &format!("index rebuilt: {n} businesses"),
                &json!({"businesses": n}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Search {
            query,
            status,
            municipality,
            entity_type,
            page,
        } => {
            let repo = open(&cli, clock)?;
            let r = repo.search(&SearchQuery {
                q: query.clone(),
                status: status.clone(),
                municipality: municipality.clone(),
                entity_type: entity_type.clone(),
                page: Some(*page),
                per_page: None,
            })?;
            let mut text = format!("{} businesses", r.total);
            for b in &r.results {
                text.push_str(&format!(
                    "\n  {}  {}  ({}, {})",
                    b.subject, b.name, b.corporate_status, b.municipality
                ));
            }
            out.say(&text, &serde_json::to_value(&r)?);
            Ok(if r.total == 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Serve {
            listen,
            issuers,
            interval,
            serve,
        } => {
            let repo = open(&cli, clock)?;
            let bg = repo.clone();
            let issuers = issuers.clone();
            let period = Duration::from_secs((*interval).max(1));
            tokio::spawn(async move {
                loop {
                    if let Err(e) = bg.sync().await {
                        tracing::warn!("trust bundle sync: {e}");
                    }
                    // Another instance's intake and status refreshes, into this one's index.
                    let follower = bg.clone();
                    match tokio::task::spawn_blocking(move || follower.follow_changes()).await {
                        Ok(Ok(n)) if n > 0 => {
                            tracing::info!("followed {n} writes of other instances")
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::warn!("following other instances' writes: {e}"),
                        Err(e) => tracing::warn!("following other instances' writes: {e}"),
                    }
                    for i in &issuers {
                        match bg.pull(i).await {
                            Ok(r) if r.refused > 0 => tracing::warn!(
                                "pulled {i}: {} accepted, {} refused (first: {:?})",
                                r.accepted,
                                r.refused,
                                r.refusals.first().map(|f| f.code)
                            ),
                            Ok(r) => tracing::info!(
                                "pulled {i}: {} accepted, {} waiting for a newer trust bundle",
                                r.accepted,
                                r.waiting_for_bundle
                            ),
                            Err(e) => tracing::warn!("pull {i}: {e}"),
                        }
                        match bg.follow_events(i).await {
                            Ok(n) if n > 0 => tracing::info!("{i}'s events changed {n} statuses"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("events of {i}: {e} ({})", e.code()),
                        }
                    }
                    tokio::time::sleep(period).await;
                }
            });
            let server = bizcred_cli::serve::Server::bind(*listen, serve).await?;
            let (addr, url) = (server.local_addr()?, server.url()?);
            out.say(
                &format!("public business repository on {url}"),
                &json!({"listening": addr.to_string(), "url": url}),
            );
            let r = repo.clone();
            let health = bizcred_cli::serve::Health::new().check("trust", move || {
                if r.trust().is_some() {
                    Ok(())
                } else {
                    Err("no trust bundle yet".to_owned())
                }
            });
            let metrics = bizcred_cli::serve::Metrics::new("repository");
            let r = repo.clone();
            metrics.gauge_fn(
                "businesses_indexed",
                "Businesses in the search index",
                move || Some(r.index.len() as f64),
            );
            let app = bizcred_repository::service::api(repo.clone())
                .merge(bizcred_repository::pages::routes(repo.clone()));
            server.run(app, &health, &metrics).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}
