//! The restaurant journey: Jennifer Jones takes Jennifer Ventures Inc. from incorporation to a
//! start-up loan without carrying paper between counters. Every party is a real bizcred
//! process on loopback, with sled storage in a temporary directory.
//!
//! `cargo run --release -p bizcred-examples --bin restaurant-journey [-- --json]`

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::{json, Value};

use bizcred_examples::{obtain, Bank, Business, Wallet, World};
use bizcred_schemas::CredentialType;

#[derive(Parser)]
#[command(about = "Run the bizcred restaurant journey end to end on loopback")]
struct Args {
    /// Print the full record of each step as a JSON line.
    #[arg(long)]
    json: bool,
}

struct Out {
    json: bool,
    step: usize,
}

impl Out {
    fn step(&mut self, line: &str, record: Value) {
        self.step += 1;
        if self.json {
            println!(
                "{}",
                json!({"step": self.step, "summary": line, "record": record})
            );
        } else {
            println!("{:>2}. {line}", self.step);
        }
    }
}

fn verdict(r: &Value) -> String {
    r["report"]["verdict"].as_str().unwrap_or("?").to_owned()
}

fn failures(r: &Value) -> Vec<String> {
    r["report"]["failures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn run(args: &Args) -> Result<()> {
    let mut out = Out {
        json: args.json,
        step: 0,
    };
    let started = std::time::Instant::now();
    let mut world = World::start(&[])?;
    out.step(
        &format!("the registry and four agencies are running on loopback (registry {})", world.registry_url),
        json!({"registry": world.registry_url, "agencies": world.agencies.iter().map(|a| json!({"name": a.spec.name_en, "did": a.did, "url": a.url})).collect::<Vec<_>>()}),
    );
    let biz = Business::jennifer();
    let wallet = Wallet::create(&world.bins, world.root.path(), "jennifer-wallet")?;

    let r = obtain(
        &world,
        &wallet,
        "obr",
        CredentialType::CertificateOfIncorporation,
        Some(&biz.incorporation()),
        &json!({}),
    )?;
    out.step("Ontario Business Registry staff approved the incorporation; Jennifer's wallet received the certificate of incorporation", r);
    let r = obtain(
        &world,
        &wallet,
        "cra",
        CredentialType::BusinessNumber,
        None,
        &biz.business_number_claims(),
    )?;
    out.step("the CRA verified Jennifer's certificate of incorporation, pre-filled the application from it, and issued business number 812345676", r);
    let r = obtain(
        &world,
        &wallet,
        "city",
        CredentialType::MunicipalBusinessLicence,
        None,
        &biz.municipal_claims(),
    )?;
    out.step("the City of Toronto verified incorporation and business number, and issued the eating-establishment licence", r);
    let r = obtain(
        &world,
        &wallet,
        "agco",
        CredentialType::LiquorSalesLicence,
        None,
        &biz.liquor_claims(-30, 700),
    )?;
    out.step("the AGCO verified incorporation, business number and the municipal licence for the same premises, and issued the liquor sales licence", r);

    let bank = Bank::start(
        &world,
        include_str!("../../../verifier/policies/loan-application.toml"),
    )?;
    let synced = bank.sync(&world)?;
    world.stop_network();
    let r = bank.ask(&world, &wallet)?;
    if verdict(&r) != "ACCEPT" {
        bail!(
            "the bank did not accept the loan application: {:?}",
            failures(&r)
        );
    }
    out.step(
        &format!(
            "the bank synced its trust bundle ({} entries), went offline from every issuer and the registry, and ACCEPTED the loan application; signed receipt for {}",
            synced["size"],
            r["receipt"]["presentation_sha256"].as_str().unwrap_or("").get(..16).unwrap_or("")
        ),
        r,
    );

    world.start_network()?;
    let creds = world.admin("agco", &["list"])?;
    let liquor_id = creds
        .as_array()
        .and_then(|a| a.first())
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    world.admin("agco", &["suspend", &liquor_id])?;
    bank.sync(&world)?;
    let r = bank.ask(&world, &wallet)?;
    if verdict(&r) != "REJECT" || !failures(&r).contains(&"SUSPENDED".to_owned()) {
        bail!("after the suspension the bank should reject as SUSPENDED: {} {:?} as_of {} suspended {}", verdict(&r), failures(&r), r["report"]["as_of"], liquor_id);
    }
    out.step("the AGCO suspended the liquor licence; after its next sync the bank REJECTED the same application as SUSPENDED", r);

    world.admin("agco", &["reinstate", &liquor_id])?;
    let rotated = world.admin("city", &["rotate-key"])?;
    bank.sync(&world)?;
    let r = bank.ask(&world, &wallet)?;
    if verdict(&r) != "ACCEPT" {
        bail!(
            "after the City's key rotation the bank should still accept: {}",
            r["report"]["failures"]
        );
    }
    out.step(
        &format!("the AGCO reinstated the licence; the City rotated its signing key to {}; the municipal licence signed before the rotation is still ACCEPTED", rotated["kid"].as_str().unwrap_or("")),
        json!({"rotation": rotated, "result": r}),
    );
    if !out.json {
        println!("done in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
