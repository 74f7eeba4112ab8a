//! The restaurant journey: Jennifer Jones takes Jennifer Ventures Inc. from incorporation to a
//! start-up loan without carrying paper between counters. Every party is a real bizcred
//! process on loopback, with sled storage in a temporary directory.
//!
//! `cargo run --release -p bizcred-examples --bin restaurant-journey [-- --json]`

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Run the bizcred restaurant journey end to end on loopback")]
struct Args {
    /// Print the full record of each step as a JSON line.
    #[arg(long)]
    json: bool,
    /// Start every party with desk accounts, print the desk addresses and leave them running
    /// for a person to click through in a browser (Enter stops them).
    #[arg(long, conflicts_with = "json")]
    desk: bool,
    /// Generate a registry extract of --count businesses, bulk-issue it at the Ontario Business
    /// Registry, fill the public business repository from its feed, and leave the search page
    /// running (Enter stops it).
    #[arg(long, conflicts_with_all = ["json", "desk"])]
    repository: bool,
    /// Start the founder's single window with the registry, the agencies (desk accounts) and
    /// an empty wallet, print the addresses and wallet commands, and leave them running for a
    /// person to take the restaurant through every agency from the portal (Enter stops them).
    #[arg(long, conflicts_with_all = ["json", "desk", "repository"])]
    portal: bool,
    /// Businesses in the --repository extract.
    #[arg(long, default_value_t = 2_000, requires = "repository")]
    count: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = std::time::Instant::now();
    let mut n = 0;
    // The demo builds the service binaries it starts (`cargo run` builds only this one).
    if let Err(e) = bizcred_examples::Bins::build() {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    if args.desk {
        return desk();
    }
    if args.repository {
        return repository(args.count);
    }
    if args.portal {
        return until_enter(bizcred_examples::portal_demo(&mut |line| {
            println!("{line}")
        }));
    }
    let result = bizcred_examples::restaurant_journey(&mut |line, record| {
        n += 1;
        if args.json {
            println!("{}", json!({"step": n, "summary": line, "record": record}));
        } else {
            println!("{n:>2}. {line}");
        }
    });
    match result {
        Ok(()) => {
            if !args.json {
                println!("done in {:.1} s", started.elapsed().as_secs_f64());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn repository(count: usize) -> ExitCode {
    let demo = match bizcred_examples::repository_demo(count, &mut |line| println!("{line}")) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let p = &demo.pick;
    println!();
    println!("The public business repository: {}", demo.url);
    println!(
        "  try {}/search?q={} (a name), or its business number {} or corporation number {}",
        demo.url,
        p.legal_name.split_whitespace().next().unwrap_or_default(),
        p.business_number.as_deref().unwrap_or("-"),
        p.corporation_number
    );
    println!(
        "  every credential downloads from its business page; check one offline with\n    bizcred-verifier --data-dir {} verify-record <file>",
        demo.verifier_dir.display()
    );
    println!();
    println!("Press Enter to stop every service (their data is deleted).");
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: reading the terminal: {e}");
    }
    drop(demo);
    ExitCode::SUCCESS
}

fn desk() -> ExitCode {
    until_enter(bizcred_examples::desk_demo(&mut |line| println!("{line}")))
}

/// Keeps a demo's services running until Enter.
fn until_enter<T>(demo: anyhow::Result<T>) -> ExitCode {
    let demo = match demo {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!();
    println!("Press Enter to stop every service (their data is deleted).");
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: reading the terminal: {e}");
    }
    drop(demo);
    ExitCode::SUCCESS
}
