//! Shared plumbing of the bizcred service binaries (`bizcred-registry`, `bizcred-issuer`,
//! `bizcred-verifier`): logs on stderr (never stdout, which is data), the tokio runtime, and
//! the error contract: a failed command prints `error: <cause chain>` on stderr, with `--json`
//! also `{"error": ...}` on stdout, and exits 2. Each service binary declares [`Allocator`]
//! as its global allocator.

use std::future::Future;
use std::process::ExitCode;

/// The service binaries' global allocator (mimalloc), declared in each `main.rs` with
/// `#[global_allocator] static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;`.
/// The benches use it too, so they measure what the binaries run.
pub use mimalloc::MiMalloc as Allocator;

/// The output options every service binary takes (`#[command(flatten)]` into its CLI).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Output {
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Less output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Output {
    /// Reports a result: `data` on stdout with `--json`, else `human` unless `-q`.
    pub fn say(&self, human: &str, data: &serde_json::Value) {
        if self.json {
            println!("{data}");
        } else if !self.quiet {
            println!("{human}");
        }
    }
}

/// Sets up logging, runs `command` on a multi-threaded runtime, and maps an error to exit 2.
pub fn main(out: Output, command: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let level = if out.quiet {
        "error"
    } else {
        ["warn", "info", "debug"][usize::from(out.verbose.min(2))]
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            if out.json {
                println!("{}", serde_json::json!({"error": format!("{e:#}")}));
            }
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
