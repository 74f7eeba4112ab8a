//! Writes a realistic synthetic Ontario Business Registry extract (the format of
//! `issuer/EXTRACT.md`), deterministic for a seed; see `bizcred_examples::extract`.
//!
//! `cargo run --release -p bizcred-examples --bin registry-extract -- --count 1600000 --seed 7 --out extract.jsonl`
//!
//! `--generation 2` (same seed and count) writes the next extract of the same population, with
//! about 1 % of its corporations changed (names, moves, dissolutions, amalgamations).
//! `--json` prints a summary (or `{"error", "reason"}`) as the last line: on stdout with
//! `--out`, on stderr when the extract itself goes to stdout. Exit codes: 0 written, 2 error
//! (`error: …` on stderr; nothing is left at `--out`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bizcred_examples::extract::{self, ExtractError, Summary};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Write a synthetic Ontario Business Registry extract (JSON Lines)")]
struct Args {
    /// Corporations in the population.
    #[arg(long)]
    count: usize,
    /// The population's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// 1 for the population as drawn; each next generation changes about 1 % of it.
    #[arg(long, default_value_t = 1)]
    generation: u32,
    /// The file to write (replaced whole once complete); stdout when absent.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print a JSON summary at the end.
    #[arg(long)]
    json: bool,
}

/// Writes `path.partial` and renames it to `path` once complete, so `path` is never a
/// half-written extract.
fn write_file(args: &Args, path: &Path) -> Result<Summary, ExtractError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| {
        let file = std::fs::File::create(&partial)?;
        let summary = extract::write_jsonl(args.seed, args.count, args.generation, &file)?;
        file.sync_all()?;
        std::fs::rename(&partial, path)?;
        Ok(summary)
    })();
    if written.is_err() {
        // Nothing to keep of a failed run; the file may not exist.
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let result = match &args.out {
        Some(path) => write_file(&args, path),
        None => extract::write_jsonl(
            args.seed,
            args.count,
            args.generation,
            std::io::stdout().lock(),
        ),
    };
    let seconds = started.elapsed().as_secs_f64();
    // The summary must not mix with an extract written to stdout.
    let report = |text: String| {
        if args.out.is_some() {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    };
    match result {
        Ok(summary) => {
            if args.json {
                let mut v = json!({
                    "count": args.count,
                    "seed": args.seed,
                    "generation": args.generation,
                    "extract_date": extract::extract_date(args.generation).to_string(),
                    "path": args.out.as_ref().map(|p| p.display().to_string()),
                    "change_per_million": extract::CHANGE_PER_MILLION,
                    "seconds": (seconds * 1000.0).round() / 1000.0,
                });
                if let (Value::Object(o), Value::Object(s)) = (&mut v, summary.to_json()) {
                    o.extend(s);
                }
                report(v.to_string());
            } else {
                let to = args
                    .out
                    .as_ref()
                    .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
                report(format!(
                    "wrote {} lines ({} bytes) of generation {} to {to} in {seconds:.2} s",
                    summary.lines, summary.bytes, args.generation
                ));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The bizcred error contract: `error: …` on stderr; with --json also
            // {"error", "reason"}, where the summary would have gone.
            eprintln!("error: {e}");
            if args.json {
                report(json!({"error": e.to_string(), "reason": e.code()}).to_string());
            }
            ExitCode::from(2)
        }
    }
}
