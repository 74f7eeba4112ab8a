//! `bizcred-portal`: the founder's single window.
//!
//! Exit codes: 0 done, 1 refused, 2 error.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;

use bizcred_cli::SystemClock;
use bizcred_portal::session::Limits;
use bizcred_portal::Portal;
use bizcred_repository::trust::TrustConfig;

#[derive(Parser)]
#[command(
    name = "bizcred-portal",
    version,
    about = "The founder's single window: the restaurant's checklist across agencies, applications and a live tracker"
)]
struct Cli {
    #[command(flatten)]
    out: bizcred_cli::Output,
    /// The data directory (the pinned registry anchor and the trust bundles).
    #[arg(
        long = "data",
        alias = "data-dir",
        global = true,
        env = "BIZCRED_PORTAL_DIR",
        default_value = "portal-data"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, pinned to the registry's trust anchor.
    Init {
        /// The registry trust anchor: JSON {origin, log_key_name, log_key}, or a file holding it.
        #[arg(long)]
        anchor: String,
        /// The registry's URL (trust bundles).
        #[arg(long)]
        registry: String,
    },
    /// Fetch and verify the registry's newer trust bundle.
    Sync,
    /// Serve the pages; sync the bundle on a schedule (HTTPS with --tls-cert and --tls-key;
    /// /healthz, /readyz, /metrics).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8095")]
        listen: SocketAddr,
        /// Seconds between bundle syncs.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Mark the session cookie Secure without TLS here (TLS ended at a reverse proxy).
        #[arg(long)]
        secure_cookie: bool,
        /// Most founders' sessions held at once (the least recently used is dropped).
        #[arg(long, default_value_t = Limits::default().max_sessions)]
        max_sessions: usize,
        /// Most applications one session holds.
        #[arg(long, default_value_t = Limits::default().max_applications)]
        max_applications: usize,
        /// A session ends after this many seconds without a request.
        #[arg(long, default_value_t = Limits::default().idle)]
        idle_timeout: i64,
        #[command(flatten)]
        serve: bizcred_cli::serve::ServeArgs,
    },
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let clock = SystemClock::from_env()?;
    let out = &cli.out;
    match &cli.command {
        Command::Init { anchor, registry } => {
            let anchor = bizcred_cli::trust_anchor(anchor)?;
            Portal::init(
                &cli.data,
                TrustConfig {
                    anchor,
                    registry: registry.clone(),
                },
            )?;
            out.say(
                &format!(
                    "portal created in {}\nnext: bizcred-portal --data {} serve",
                    cli.data.display(),
                    cli.data.display()
                ),
                &json!({"data": cli.data}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync => {
            let portal = Portal::open(&cli.data, Arc::new(clock), Limits::default())?;
            let size = portal.sync().await?;
            out.say(
                &format!("trust bundle verified: {size} log entries"),
                &json!({"log_size": size}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            interval,
            secure_cookie,
            max_sessions,
            max_applications,
            idle_timeout,
            serve,
        } => {
            let limits = Limits {
                max_sessions: (*max_sessions).max(1),
                max_applications: (*max_applications).max(1),
                idle: (*idle_timeout).max(60),
                ..Limits::default()
            };
            let portal = Arc::new(Portal::open(&cli.data, Arc::new(clock), limits)?);
            bizcred_portal::spawn_sync(portal.clone(), Duration::from_secs((*interval).max(1)));
            let server = bizcred_cli::serve::Server::bind(*listen, serve).await?;
            let (addr, url) = (server.local_addr()?, server.url()?);
            out.say(
                &format!("founder's single window on {url}"),
                &json!({"listening": addr.to_string(), "url": url}),
            );
            let (health, metrics) = bizcred_portal::health_and_metrics(&portal);
            let secure = *secure_cookie || serve.tls_cert.is_some();
            let app = bizcred_portal::pages::routes(portal, secure);
            server.run(app, &health, &metrics).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}
