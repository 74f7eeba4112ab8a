//! Shared plumbing of the bizcred service binaries (`bizcred-registry`, `bizcred-issuer`,
//! `bizcred-verifier`): logs on stderr (never stdout, which is data; text or, with
//! `--log-format json` or `BIZCRED_LOG_FORMAT=json`, one JSON object a line), the tokio
//! runtime, and the error contract: a failed command prints `error: <cause chain>` on stderr,
//! with `--json` also `{"error": ...}` on stdout, and exits 2. Each service binary declares
//! [`Allocator`] as its global allocator. [`serve`] is what every `serve` command shares: TLS,
//! trusted proxies, `/healthz`, `/readyz`, `/metrics`, graceful shutdown.

use std::future::Future;
use std::process::ExitCode;

pub mod clock;
pub mod passphrase;
pub mod serve;
pub mod staff;

pub use clock::SystemClock;
pub use passphrase::PassphraseArgs;

/// An error that comes with the next step the user can take (a command that runs). Printed as
/// `error: <message>` and `hint: <hint>` on stderr; with `--json`, `{"error", "hint"}` on stdout.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do about it: a command line that runs.
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// An error with a hint (see [`Hinted`]).
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// The registry trust anchor an `init --anchor` names: its JSON (`{origin, log_key_name,
/// log_key}`, or the registry's `init` answer holding it as `anchor`), or a file holding it.
pub fn trust_anchor(arg: &str) -> anyhow::Result<bizcred_core::trust::bundle::TrustAnchor> {
    use anyhow::Context;
    let text = if arg.trim_start().starts_with('{') {
        arg.to_owned()
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?
    };
    let v: serde_json::Value = serde_json::from_str(&text).context("the anchor is not JSON")?;
    serde_json::from_value(v.get("anchor").cloned().unwrap_or(v))
        .context("the anchor needs origin, log_key_name and log_key")
}

/// Quotes `s` for a POSIX shell (single quotes; a `'` inside becomes `'\''`), unless it needs
/// none. Hints print command lines a user can paste.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A command line from its words, each quoted as needed (see [`shell_quote`]).
pub fn command_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A bizcred service's error answer over HTTP: the status and the OAuth-style
/// `{"error", "error_description"}` body every bizcred service (and OpenID4VCI/VP) uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The HTTP status code.
    pub status: u16,
    /// The `error` code (or `http_<status>` when the body had none).
    pub error: String,
    /// The `error_description` (or the start of the body).
    pub description: String,
}

impl HttpError {
    /// Reads an error answer; a body that is not the JSON error object is kept (shortened) as
    /// the description, so nothing the server said is lost.
    pub fn from_body(status: u16, body: &[u8]) -> HttpError {
        // A body that is not JSON is no error object: its text becomes the description.
        let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k))
                .and_then(|x| x.as_str())
                .map(str::to_owned)
        };
        let text = String::from_utf8_lossy(body);
        HttpError {
            status,
            // `{error, error_description}`, or an RFC 9457 problem document with the stable
            // code in its `code` member.
            error: field("error")
                .or_else(|| field("code"))
                .unwrap_or_else(|| format!("http_{status}")),
            description: field("error_description")
                .or_else(|| field("detail"))
                .unwrap_or_else(|| text.chars().take(300).collect()),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.description)
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_apostrophes() {
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            shell_quote("Registre des entreprises de l'Ontario"),
            "'Registre des entreprises de l'\\''Ontario'"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {}",
                shell_quote("l'Ontario \"$HOME\" `x` ; &")
            ))
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "l'Ontario \"$HOME\" `x` ; &"
        );
    }
}

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
    /// The format of the logs on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = LOG_FORMAT_VAR,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// The environment variable that chooses the log format (`--log-format` wins).
pub const LOG_FORMAT_VAR: &str = "BIZCRED_LOG_FORMAT";

/// How logs are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields (never a request path beyond its route template, a query string or a body).
    Json,
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
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        );
    match out.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
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
    let result = rt.block_on(command);
    // Tasks still running (a background loop, a request past the shutdown grace) end here;
    // blocking work is waited for, boundedly.
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    match result {
        Ok(code) => code,
        Err(e) => {
            let hint = e
                .chain()
                .find_map(|c| c.downcast_ref::<Hinted>())
                .map(|h| h.hint.clone());
            if out.json {
                let mut v = serde_json::json!({"error": format!("{e:#}")});
                if let Some(h) = &hint {
                    v["hint"] = h.clone().into();
                }
                println!("{v}");
            }
            eprintln!("error: {e:#}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod output_tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        out: Output,
    }

    #[test]
    fn log_format_is_text_unless_asked() {
        let cli = Cli::try_parse_from(["x"]).expect("parse");
        // The test environment may set the variable; the option wins over it.
        if std::env::var_os(LOG_FORMAT_VAR).is_none() {
            assert_eq!(cli.out.log_format, LogFormat::Text);
        }
        let cli = Cli::try_parse_from(["x", "--log-format", "json"]).expect("parse");
        assert_eq!(cli.out.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
    }
}
