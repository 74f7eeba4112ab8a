//! `bizcred-wallet`: the business owner's wallet.
//!
//! Receives SD-JWT VCs over OpenID4VCI 1.0 (pre-authorized code flow), keeps them encrypted at
//! rest, and presents exactly the claims a verifier asks for, with consent, over OpenID4VP 1.0
//! (`direct_post`) or as a file. Exit codes: 0 done, 1 not found / refused, 2 error.
//!
//! This file parses arguments, asks on the terminal and prints; the wallet is the
//! `bizcred_wallet` library.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use rand_core::OsRng;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use bizcred_cli::{PassphraseArgs, SystemClock};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::time::{self, Clock};
use bizcred_schemas::Lang;

use bizcred_wallet::applications::{self, AppState, Refreshed, StoredApplication};
use bizcred_wallet::consent::{label, Consent};
use bizcred_wallet::issuance::{self, ReceiveOptions};
use bizcred_wallet::pending::{offer_id, PendingDir, PendingReceives};
use bizcred_wallet::presentation::{self, type_name, VerifierAnswer};
use bizcred_wallet::store::StoredCredential;
use bizcred_wallet::{backup, net, status};
use bizcred_wallet::{SledVault, Vault, VaultError, WalletError};

#[derive(Parser)]
#[command(
    name = "bizcred-wallet",
    version,
    about = "The bizcred wallet: receive, keep and present business credentials"
)]
struct Cli {
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Less output.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// The wallet directory (else $BIZCRED_WALLET_DIR, else the user's data directory).
    #[arg(long, global = true, env = "BIZCRED_WALLET_DIR")]
    wallet_dir: Option<PathBuf>,
    /// The wallet passphrase: --passphrase-file, else $BIZCRED_WALLET_PASSPHRASE, else a
    /// prompt.
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Display language.
    #[arg(long, global = true, value_enum, default_value_t = LangArg::En)]
    lang: LangArg,
    #[command(subcommand)]
    command: Command,
}

/// The display languages.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LangArg {
    /// English.
    En,
    /// Français.
    Fr,
}

/// The holder key algorithms.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AlgArg {
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
    /// P-256 ECDSA.
    #[value(name = "ES256")]
    Es256,
}

#[derive(Subcommand)]
enum Command {
    /// Create the wallet and its holder key.
    Init {
        /// Key algorithm.
        #[arg(long, value_enum, default_value_t = AlgArg::EdDsa)]
        alg: AlgArg,
    },
    /// Receive a credential from an offer (openid-credential-offer://...). A receive that
    /// was interrupted after the agency granted it (a lost answer, a killed process) is
    /// resumed by running the same command again, or `receive --resume`.
    Receive {
        #[arg(required_unless_present = "resume")]
        offer: Option<String>,
        /// The transaction code the agency gave you (else a prompt).
        #[arg(long)]
        tx_code: Option<String>,
        /// Resume every interrupted receive (its access token is kept, sealed, until the
        /// credential is stored).
        #[arg(long, conflicts_with_all = ["offer", "tx_code"])]
        resume: bool,
    },
    /// List held credentials.
    List,
    /// Show one credential's claims.
    Show { id: String },
    /// Present credentials to a verifier (openid4vp://...), or offline with --request/--out.
    Present {
        /// The request URI.
        uri: Option<String>,
        /// A request handed over as a file (offline).
        #[arg(long, requires = "out", conflicts_with = "uri")]
        request: Option<PathBuf>,
        /// Where to write the presentation (offline).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Consent without asking (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Refresh the status of held credentials from their status lists.
    Status,
    /// What was disclosed, to whom, when.
    History,
    /// Write an encrypted backup of the credentials and the applications (their follow links
    /// are secrets: the whole backup is sealed with the wallet passphrase).
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore credentials and applications from an encrypted backup.
    Import {
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Delete a credential.
    Delete { id: String },
    /// Apply to an agency for a credential: checks that the agency issues the type, opens the
    /// application with your claims, presents its prerequisites exactly as `present` does
    /// (with your consent, unless --yes), keeps the application in the wallet (encrypted) and
    /// prints the link to follow it and its state.
    Apply {
        /// The agency's URL (https://..., or http://localhost:<port>).
        agency: String,
        /// The credential type, as the agency names it (e.g. municipal-business-licence).
        #[arg(long = "type", value_name = "SLUG")]
        type_id: String,
        /// A claim only you can state, name=value (a value that parses as JSON is taken as
        /// JSON, else as a string); repeat for each claim.
        #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = applications::parse_claim_arg)]
        claims: Vec<(String, Value)>,
        /// Consent to presenting the prerequisites without asking (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Your applications and their states. Each state is read from its agency (the default);
    /// when an agency cannot be reached its last known state is shown with its time. Offers
    /// come with the command that receives them; refusals and requested changes with the
    /// agency's note; and the flags agencies raised about the credentials they relied on.
    Applications {
        /// Read each state from its agency (the default; see --no-refresh).
        #[arg(long, conflicts_with = "no_refresh")]
        refresh: bool,
        /// Show what the wallet last saw, without asking the agencies.
        #[arg(long)]
        no_refresh: bool,
        /// Also show each application's follow link (a secret: whoever holds it sees the
        /// application and can withdraw it).
        #[arg(long)]
        links: bool,
    },
    /// Withdraw an application (while no offer was made and nothing was decided).
    Withdraw {
        /// The application: the wallet's id, or the agency's application id.
        id: String,
        /// Why (told to the agency).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Answer an agency's request for changes: send the claims only you can state again
    /// (the agency takes them while the application is sent back for changes, or waits for
    /// its prerequisites), and print the application's new state.
    Answer {
        /// The application: the wallet's id, or the agency's application id.
        id: String,
        /// A claim, name=value, as for `apply` (a value that parses as JSON is taken as JSON,
        /// else as a string); repeat for each claim.
        #[arg(long = "claim", value_name = "NAME=VALUE", required = true, value_parser = applications::parse_claim_arg)]
        claims: Vec<(String, Value)>,
    },
    /// Shell completions.
    Completions { shell: clap_complete::Shell },
}

struct Ui {
    json: bool,
    quiet: bool,
    color: bool,
    lang: Lang,
    /// The shared clock (with its test offset, `BIZCRED_CLOCK_OFFSET_SECONDS`).
    clock: SystemClock,
}

impl Ui {
    /// Seconds since the epoch; the library takes the time from here.
    fn now(&self) -> i64 {
        self.clock.now()
    }
    /// Milliseconds since the epoch (orders credentials received within one second). A clock
    /// before 1970 reads as 0, so every credential looks future-dated and is refused.
    fn now_ms(&self) -> i64 {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        ms.saturating_add(self.clock.offset().saturating_mul(1000))
    }
    fn step(&self, msg: &str) {
        if !self.quiet && !self.json {
            eprintln!("  … {msg}");
        }
    }
    fn bold(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn out(&self, human: &str, data: &Value) {
        if self.json {
            println!("{data}");
        } else if !self.quiet {
            println!("{human}");
        }
    }
}

/// An error with a hint the user can act on (exit 1).
#[derive(Debug)]
struct Refused {
    msg: String,
    hint: Option<String>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}
impl std::error::Error for Refused {}

fn refused(msg: impl Into<String>, hint: Option<String>) -> anyhow::Error {
    anyhow::Error::new(Refused {
        msg: msg.into(),
        hint,
    })
}

/// A library error with a command that continues (a receive to resume).
#[derive(Debug)]
struct WithHint {
    error: WalletError,
    hint: String,
}

impl std::fmt::Display for WithHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}
impl std::error::Error for WithHint {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// A `bizcred-wallet` command line on the wallet at `dir`, every word quoted for the shell.
fn wallet_command(dir: &Path, args: &[&str]) -> String {
    let dir = dir.to_string_lossy();
    let mut words = vec!["bizcred-wallet", "--wallet-dir", dir.as_ref()];
    words.extend_from_slice(args);
    bizcred_cli::command_line(&words)
}

/// The message, exit code and hint (a command that runs) for a vault error.
fn explain_vault(e: &VaultError, dir: &Path) -> (String, u8, Option<String>) {
    let hint = match e {
        VaultError::Missing(_) => Some(wallet_command(dir, &["init"])),
        VaultError::Exists(_) => Some(wallet_command(dir, &["list"])),
        _ => None,
    };
    let msg = match e {
        VaultError::WrongPassphrase => "wrong passphrase; the wallet was not changed (check \
                                        BIZCRED_WALLET_PASSPHRASE or --passphrase-file)"
            .to_owned(),
        VaultError::Exists(_) => format!("{} (use --wallet-dir for another one)", chain(e)),
        other => chain(other),
    };
    (msg, if e.is_refusal() { 1 } else { 2 }, hint)
}

/// The message, exit code and hint (a command that runs) for a library error. Advice that
/// is no command is part of the message.
fn explain(e: &WalletError, dir: &Path) -> (String, u8, Option<String>) {
    let advice = match e {
        WalletError::Vault(v) => return explain_vault(v, dir),
        WalletError::Offer(_) => {
            Some("pass the openid-credential-offer:// link the agency gave you")
        }
        WalletError::TxCodeRequired => {
            Some("pass --tx-code with the code the agency gave you separately")
        }
        WalletError::TokenRefused { .. } => {
            Some("check the transaction code; an offer is single-use and expires")
        }
        WalletError::Request(_) => Some("pass the openid4vp:// link the verifier showed you"),
        WalletError::RequestSignature(_) => Some("nothing was sent"),
        _ => None,
    };
    let hint = match e {
        WalletError::NoMatch { .. } | WalletError::UnknownCredential(_) => {
            Some(wallet_command(dir, &["list"]))
        }
        WalletError::UnknownApplication(_) | WalletError::AmbiguousApplication { .. } => {
            Some(wallet_command(dir, &["applications", "--no-refresh"]))
        }
        _ => None,
    };
    let msg = match advice {
        Some(a) => format!("{} ({a})", chain(e)),
        None => chain(e),
    };
    (msg, if e.is_refusal() { 1 } else { 2 }, hint)
}

/// An error's message followed by its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn wallet_dir(cli: &Cli) -> PathBuf {
    if let Some(d) = &cli.wallet_dir {
        return d.clone();
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("bizcred-wallet")
}

const PASSPHRASE_VAR: &str = "BIZCRED_WALLET_PASSPHRASE";

/// The passphrase from the shared sources; a new wallet's prompted passphrase is asked twice.
fn passphrase(cli: &Cli, confirm: bool) -> Result<Zeroizing<String>> {
    let prompted =
        cli.passphrase.passphrase_file.is_none() && std::env::var_os(PASSPHRASE_VAR).is_none();
    let p = cli.passphrase.get(PASSPHRASE_VAR, "Wallet passphrase")?;
    if confirm && prompted {
        let again = Zeroizing::new(rpassword::prompt_password("Again: ")?);
        if *again != *p {
            anyhow::bail!("the passphrases differ");
        }
    }
    Ok(p)
}

fn open(cli: &Cli) -> Result<SledVault> {
    let v = SledVault::open(&wallet_dir(cli), passphrase(cli, false)?.as_bytes())?;
    #[cfg(debug_assertions)]
    let v = v.with_fail_point(fail_point);
    Ok(v)
}

/// Debug (test) builds only: when `BIZCRED_WALLET_FAIL_POINT` names this point, the process
/// writes the point's name to `BIZCRED_WALLET_FAIL_POINT_FILE` and waits there to be killed,
/// so a crash test kills it exactly while a write is in flight. Release builds have no such
/// hook.
#[cfg(debug_assertions)]
fn fail_point(point: &str) {
    if std::env::var("BIZCRED_WALLET_FAIL_POINT").ok().as_deref() != Some(point) {
        return;
    }
    if let Some(f) = std::env::var_os("BIZCRED_WALLET_FAIL_POINT_FILE") {
        // The test polls for this file; if it cannot be written the test times out and says so.
        let _ = std::fs::write(f, point);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.contains_key("street_address") => {
            ["street_address", "locality", "region", "postal_code"]
                .iter()
                .filter_map(|k| m.get(*k).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(", ")
        }
        Value::Array(a) => a.iter().map(render).collect::<Vec<_>>().join("; "),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}: {}", render(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

fn print_received(ui: &Ui, rec: &StoredCredential) {
    ui.out(
        &format!(
            "received {} from {} (id {})",
            ui.bold(&type_name(&rec.vct, ui.lang)),
            rec.issuer_name,
            rec.id
        ),
        &json!({"id": rec.id, "vct": rec.vct, "issuer": rec.issuer, "issuer_name": rec.issuer_name}),
    );
}

/// `receive --resume`: every interrupted receive, in turn.
async fn resume_all(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    let v = open(cli)?;
    let pending = PendingDir::new(&wallet_dir(cli), &v.holder_key()?);
    let c = net::client()?;
    let all = pending.pending()?;
    if all.is_empty() {
        return Err(WalletError::NoPendingReceive.into());
    }
    for p in all {
        let rec = issuance::resume(&c, &v, &pending, &p, receive_options(ui, None), &mut |s| {
            ui.step(s)
        })
        .await
        .map_err(|e| resumable(cli, &pending, &p.id, e))?;
        print_received(ui, &rec);
    }
    Ok(ExitCode::SUCCESS)
}

fn receive_options<'a>(ui: &Ui, tx_code: Option<&'a str>) -> ReceiveOptions<'a> {
    ReceiveOptions {
        tx_code,
        lang: ui.lang,
        now_ms: ui.now_ms(),
    }
}

/// A failed receive whose record is still pending hints at resuming it.
fn resumable(cli: &Cli, pending: &PendingDir, id: &str, e: WalletError) -> anyhow::Error {
    match pending.pending_for(id) {
        Ok(Some(_)) => anyhow::Error::new(WithHint {
            error: e,
            hint: wallet_command(&wallet_dir(cli), &["receive", "--resume"]),
        }),
        _ => e.into(),
    }
}

async fn receive(cli: &Cli, ui: &Ui, offer_uri: &str, tx: Option<String>) -> Result<ExitCode> {
    let v = open(cli)?;
    let pending = PendingDir::new(&wallet_dir(cli), &v.holder_key()?);
    let c = net::client()?;
    let id = offer_id(offer_uri);
    // The same offer again: an interrupted receive of it is resumed (a used offer could not
    // be redeemed twice).
    if let Some(p) = pending.pending_for(&id)? {
        let rec = issuance::resume(&c, &v, &pending, &p, receive_options(ui, None), &mut |s| {
            ui.step(s)
        })
        .await
        .map_err(|e| resumable(cli, &pending, &id, e))?;
        print_received(ui, &rec);
        return Ok(ExitCode::SUCCESS);
    }
    let source = issuance::parse_offer_uri(offer_uri)?;
    if let issuance::OfferSource::ByReference(url) = &source {
        ui.step(&format!("fetching the offer from {url}"));
    }
    let offer = issuance::resolve_offer(&c, source).await?;
    offer.pre_authorized()?;
    let tx_code = match (offer.tx_code(), tx) {
        (None, _) => None,
        (Some(_), Some(t)) => Some(Zeroizing::new(t)),
        (Some(_), None) if !std::io::stdin().is_terminal() => {
            return Err(WalletError::TxCodeRequired.into())
        }
        (Some(desc), None) => {
            eprint!(
                "{}: ",
                desc.description.as_deref().unwrap_or("Transaction code")
            );
            std::io::stderr().flush()?;
            Some(Zeroizing::new(read_line()?))
        }
    };
    let rec = issuance::receive(
        &c,
        &v,
        &pending,
        &id,
        &offer,
        receive_options(ui, tx_code.as_ref().map(|t| t.as_str())),
        &mut |s| ui.step(s),
    )
    .await
    .map_err(|e| resumable(cli, &pending, &id, e))?;
    print_received(ui, &rec);
    Ok(ExitCode::SUCCESS)
}

fn list(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    let creds = open(cli)?.credentials()?;
    if ui.json {
        let items: Vec<Value> = creds
            .iter()
            .map(|c| json!({"id": c.id, "vct": c.vct, "type": type_name(&c.vct, ui.lang), "issuer": c.issuer, "issuer_name": c.issuer_name, "issued_at": c.iat.map(time::format_utc), "expires_at": c.exp.map(time::format_utc), "status": c.last_status}))
            .collect();
        println!("{}", Value::Array(items));
        return Ok(ExitCode::SUCCESS);
    }
    if creds.is_empty() {
        println!("the wallet holds no credentials; receive one with the offer link an agency gives you (bizcred-wallet receive --help)");
        return Ok(ExitCode::SUCCESS);
    }
    let (h_id, h_ty, h_is, h_st) = if ui.lang == Lang::Fr {
        ("ID", "TYPE", "ÉMETTEUR", "STATUT")
    } else {
        ("ID", "TYPE", "ISSUER", "STATUS")
    };
    println!(
        "{}",
        ui.bold(&format!("{h_id:<13} {h_ty:<34} {h_is:<36} {h_st}"))
    );
    for c in creds {
        println!(
            "{:<13} {:<34} {:<36} {}",
            c.id,
            type_name(&c.vct, ui.lang),
            c.issuer_name,
            c.last_status.as_deref().unwrap_or("not checked")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn find(v: &dyn Vault, id: &str) -> Result<StoredCredential> {
    Ok(v.credential(id)?
        .ok_or_else(|| WalletError::UnknownCredential(id.to_owned()))?)
}

fn show(cli: &Cli, ui: &Ui, id: &str) -> Result<ExitCode> {
    let v = open(cli)?;
    let c = find(&v, id)?;
    let claims = c.claims()?;
    if ui.json {
        println!(
            "{}",
            json!({"id": c.id, "vct": c.vct, "issuer": c.issuer, "issuer_name": c.issuer_name, "issued_at": c.iat.map(time::format_utc), "expires_at": c.exp.map(time::format_utc), "status": c.last_status, "claims": claims})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} — {}",
        ui.bold(&type_name(&c.vct, ui.lang)),
        c.issuer_name
    );
    for (k, val) in &claims {
        println!(
            "  {:<32} {}",
            label(&c.vct, &[json!(k)], ui.lang),
            render(val)
        );
    }
    println!(
        "  {:<32} {}",
        "issued / émis",
        c.iat.map(time::format_utc).unwrap_or_default()
    );
    println!(
        "  {:<32} {}",
        "status / statut",
        c.last_status.as_deref().unwrap_or("not checked")
    );
    Ok(ExitCode::SUCCESS)
}

/// Shows the consent and asks on the terminal; true when the user agrees.
fn ask_consent(ui: &Ui, consent: &Consent, yes: bool, again: String) -> Result<bool> {
    if !ui.json && !ui.quiet {
        let who = match &consent.verifier_name {
            Some(n) => format!("{} ({n})", ui.bold(&consent.client_id)),
            None => ui.bold(&consent.client_id),
        };
        println!("{who} asks for:");
        if let Some(p) = &consent.purpose {
            println!("  why: {p}");
        }
        for c in &consent.credentials {
            println!("  {} from {}", ui.bold(&c.type_name), c.issuer_name);
            for claim in &c.claims {
                let val = claim.value.as_ref().map(render).unwrap_or_default();
                println!("    {:<30} {}", claim.label, val);
            }
        }
    }
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused(
            "consent is needed; nothing was sent (pass --yes to consent in scripts)",
            Some(again),
        ));
    }
    eprint!("Share exactly this? [y/N] ");
    std::io::stderr().flush()?;
    Ok(matches!(
        read_line()?.as_str(),
        "y" | "Y" | "yes" | "o" | "oui"
    ))
}

/// What a presentation came to: the data `--json` prints, the sentence, and the exit code.
struct Presented {
    /// The `--json` object.
    data: Value,
    /// The sentence for a person.
    human: String,
    /// True when the sentence is an error (stderr), false for a result (stdout).
    error: bool,
    /// 0 accepted (or written), 1 declined, refused or not accepted.
    code: u8,
}

impl Presented {
    fn print(&self, ui: &Ui) -> ExitCode {
        if self.error {
            if ui.json {
                println!("{}", self.data);
            }
            eprintln!("error: {}", self.human);
        } else {
            ui.out(&self.human, &self.data);
        }
        ExitCode::from(self.code)
    }
}

async fn present(
    cli: &Cli,
    ui: &Ui,
    uri: Option<&str>,
    request: Option<&Path>,
    out_file: Option<&Path>,
    yes: bool,
) -> Result<ExitCode> {
    let v = open(cli)?;
    Ok(present_with(&v, cli, ui, uri, request, out_file, yes)
        .await?
        .print(ui))
}

/// What `present` does, on an open wallet: load and verify the request, match it, ask for
/// consent (unless `yes`), then send the presentation or write it to `out_file`. `apply` runs
/// this for an application's prerequisites.
async fn present_with(
    v: &SledVault,
    cli: &Cli,
    ui: &Ui,
    uri: Option<&str>,
    request: Option<&Path>,
    out_file: Option<&Path>,
    yes: bool,
) -> Result<Presented> {
    let key = v.holder_key()?;
    let c = net::client()?;
    let text = match (uri, request) {
        (Some(u), _) => u.to_owned(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => {
            return Err(refused(
                "give the verifier's openid4vp:// request, or --request and --out with the request and presentation files",
                None,
            ))
        }
    };
    let source = presentation::parse_request(&text)?;
    let req = presentation::load_request(&c, source, ui.now(), &mut |s| ui.step(s)).await?;
    let chosen = presentation::match_dcql(&v.credentials()?, &req.dcql_query, ui.now())?;
    let consent = Consent::new(&req, &chosen, ui.lang)?;
    // The same command with --yes, for a script that consents.
    let mut again = vec!["present"];
    let (req_s, out_s) = (
        request.map(|p| p.to_string_lossy()),
        out_file.map(|p| p.to_string_lossy()),
    );
    if let Some(u) = uri {
        again.push(u);
    }
    if let Some(r) = &req_s {
        again.extend(["--request", r.as_ref()]);
    }
    if let Some(o) = &out_s {
        again.extend(["--out", o.as_ref()]);
    }
    again.push("--yes");
    let again = wallet_command(&wallet_dir(cli), &again);
    if !ask_consent(ui, &consent, yes, again)? {
        presentation::record_declined(v, &req, ui.now())?;
        return Ok(Presented {
            data: json!({"result": "declined"}),
            human: "declined: nothing was sent".to_owned(),
            error: false,
            code: 1,
        });
    }
    let p = presentation::build_presentation(&key, &req, &chosen, ui.now())?;
    let client_id = &req.client_id;
    if let Some(out) = out_file {
        let doc = presentation::presentation_file(&req, &p);
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", out.display()))?;
        presentation::record_written(v, &req, &p, out, ui.now())?;
        return Ok(Presented {
            data: json!({"result": "written", "file": out, "verifier": client_id, "disclosed": p.disclosed}),
            human: format!("presentation for {client_id} written to {}", out.display()),
            error: false,
            code: 0,
        });
    }
    let response_uri = req.response_uri.clone().ok_or(WalletError::NoResponseUri)?;
    ui.step(&format!("sending the presentation to {response_uri}"));
    let answer = presentation::send_and_record(&c, v, &req, &p, ui.now()).await?;
    Ok(match &answer {
        VerifierAnswer::Refused {
            status,
            error,
            description,
            body,
        } => {
            let error = error.as_deref().unwrap_or("no error code");
            let description = description.as_deref().unwrap_or("no description");
            Presented {
                data: json!({"result": "refused", "status": status, "error": error, "error_description": description, "answer": body}),
                human: format!(
                    "{client_id} refused the presentation ({status}): {error}: {description}"
                ),
                error: true,
                code: 1,
            }
        }
        VerifierAnswer::Answered { failures, body, .. } => {
            let outcome = answer.outcome();
            let human = if failures.is_empty() {
                format!("{client_id} answered: {outcome}")
            } else {
                format!("{client_id} answered: {outcome} ({})", failures.join(", "))
            };
            Presented {
                data: json!({"result": "sent", "verifier": client_id, "answer": body, "disclosed": p.disclosed}),
                human,
                error: false,
                code: if answer.accepted() { 0 } else { 1 },
            }
        }
    })
}

/// The command that receives an application's offer.
fn receive_command(dir: &Path, offer: &applications::AppOffer) -> String {
    let mut words = vec!["receive", offer.credential_offer_uri.as_str()];
    if let Some(t) = &offer.tx_code {
        words.extend(["--tx-code", t.as_str()]);
    }
    wallet_command(dir, &words)
}

/// An application as `--json` prints it; its follow link only when `link`.
fn application_json(ui: &Ui, dir: &Path, a: &StoredApplication, link: bool) -> Value {
    let type_name = a
        .vct
        .as_deref()
        .map(|v| type_name(v, ui.lang))
        .unwrap_or_else(|| a.credential_configuration_id.clone());
    let mut j = json!({
        "id": a.id,
        "agency": a.agency,
        "application_id": a.application_id,
        "type": a.credential_configuration_id,
        "vct": a.vct,
        "type_name": type_name,
        "state": a.state,
        "state_text": a.state.describe(),
        "applied_at": time::format_utc(a.applied_at),
        "last_seen": time::format_utc(a.last_seen),
        "updated": a.updated.map(time::format_utc),
        "note": a.note,
        "request_uri": a.request_uri,
        "present_command": a.request_uri.as_deref().map(|u| wallet_command(dir, &["present", u])),
        "offer": a.offer.as_ref().map(|o| json!({
            "credential_offer_uri": o.credential_offer_uri,
            "tx_code": o.tx_code,
            "expires": o.expires.map(time::format_utc),
            "expired": o.expires.is_some_and(|e| e <= ui.now()),
            "used": o.used,
            "receive_command": (!o.used && o.expires.is_none_or(|e| e > ui.now())).then(|| receive_command(dir, o)),
        })),
        "flags": a.flags.iter().map(|f| json!({
            "event": f.event, "vct": f.vct, "type_name": type_name_of(ui, &f.vct), "time": time::format_utc(f.time),
        })).collect::<Vec<_>>(),
    });
    if link {
        j["follow_uri"] = json!(a.follow_uri.expose());
    }
    j
}

fn type_name_of(ui: &Ui, vct: &str) -> String {
    type_name(vct, ui.lang)
}

/// The lines under an application in the human listing: note, offer, prerequisites, flags.
fn application_details(ui: &Ui, dir: &Path, a: &StoredApplication) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = &a.note {
        let what = match a.state {
            AppState::Refused => "refused",
            AppState::ChangesRequested => "changes requested",
            _ => "note",
        };
        out.push(format!("{what}: {n}"));
    }
    if a.offer.as_ref().is_some_and(|o| o.used) {
        out.push("offered; the offer was used (the credential was received)".to_owned());
    }
    if let Some(o) = a.offer.as_ref().filter(|o| !o.used) {
        match o.expires {
            Some(e) if e <= ui.now() => out.push(format!(
                "offered; the offer expired at {} (ask the agency for a new one)",
                time::format_utc(e)
            )),
            Some(e) => {
                out.push(format!(
                    "offered; the offer expires at {}; receive it with:",
                    time::format_utc(e)
                ));
                out.push(format!("  {}", receive_command(dir, o)));
            }
            None => {
                out.push(
                    "offered (the agency gave no expiry for the offer); receive it with:"
                        .to_owned(),
                );
                out.push(format!("  {}", receive_command(dir, o)));
            }
        }
    }
    if let Some(u) = &a.request_uri {
        out.push(
            "the agency waits for the prerequisite credentials; present them with:".to_owned(),
        );
        out.push(format!("  {}", wallet_command(dir, &["present", u])));
    }
    for f in &a.flags {
        let what = match f.event.as_str() {
            "credential_revoked" => "was revoked",
            "credential_suspended" => "was suspended",
            other => other,
        };
        out.push(format!(
            "flag: the {} it relied on {what} ({})",
            type_name_of(ui, &f.vct),
            time::format_utc(f.time)
        ));
    }
    out
}

async fn apply(
    cli: &Cli,
    ui: &Ui,
    agency: &str,
    type_id: &str,
    claims: &[(String, Value)],
    yes: bool,
) -> Result<ExitCode> {
    let claims = applications::claims_object(claims).map_err(|m| refused(m, None))?;
    let agency = applications::agency_base(agency)?;
    let v = open(cli)?;
    // Checked before the agency is asked: an application it opened is always kept.
    if !v.has_room_for_application()? {
        return Err(WalletError::from(VaultError::TooManyApplications {
            limit: applications::MAX_APPLICATIONS,
        })
        .into());
    }
    let c = net::client()?;
    ui.step(&format!("reading the types {agency} issues"));
    let types = applications::agency_types(&c, &agency).await?;
    let Some(ty) = types.find(type_id) else {
        return Err(WalletError::TypeNotIssued {
            agency: types.credential_issuer.clone(),
            slug: applications::clean(type_id, 100),
            offered: types.ids(),
        }
        .into());
    };
    ui.step(&format!("applying at {}", types.credential_issuer));
    let opened = applications::open(&c, &types, ty, claims, ui.now()).await?;
    let mut app = opened.record;
    v.put_application(&app)?;
    let dir = wallet_dir(cli);
    // The prerequisites, presented by `present`'s own code path.
    let mut presentation = Value::Null;
    let mut code = 0u8;
    if let Some(uri) = &opened.request_uri {
        ui.step("presenting the prerequisite credentials");
        match present_with(&v, cli, ui, Some(uri), None, None, yes).await {
            Ok(p) => {
                if !ui.json {
                    if p.error {
                        eprintln!("error: {}", p.human);
                    } else if !ui.quiet {
                        println!("{}", p.human);
                    }
                }
                code = p.code;
                presentation = p.data;
            }
            Err(e) => {
                let (msg, c, hint, error_code) = describe(&e, &dir);
                if !ui.json {
                    eprintln!("error: the prerequisites were not presented: {msg}");
                    if let Some(h) = &hint {
                        eprintln!("hint: {h}");
                    }
                }
                code = c;
                presentation =
                    json!({"result": "failed", "error": msg, "code": error_code, "hint": hint});
            }
        }
    }
    // The state as the agency has it now.
    match applications::fetch(&c, &app).await {
        Ok(view) => {
            app.update(&view, ui.now());
            v.put_application(&app)?;
        }
        Err(e) => ui.step(&format!(
            "the state could not be read again ({}); it is the one the agency answered",
            chain(&e)
        )),
    }
    let j = json!({
        "result": "applied",
        "application": application_json(ui, &dir, &app, false),
        "follow_uri": app.follow_uri.expose(),
        "state": app.state,
        "presentation": presentation,
    });
    if ui.json {
        println!("{j}");
    } else if !ui.quiet {
        let name = app
            .vct
            .as_deref()
            .map(|v| type_name(v, ui.lang))
            .unwrap_or_else(|| app.credential_configuration_id.clone());
        println!(
            "applied to {} for {}: application {} (in this wallet: {})",
            app.agency,
            ui.bold(&name),
            app.application_id,
            app.id
        );
        println!("state: {}", ui.bold(app.state.as_str()));
        for line in application_details(ui, &dir, &app) {
            println!("  {line}");
        }
        println!("follow it: {}", app.follow_uri.expose());
        println!("  (keep this link private: whoever holds it sees the application and can withdraw it; `bizcred-wallet applications` follows it for you)");
    }
    Ok(ExitCode::from(code))
}

async fn list_applications(cli: &Cli, ui: &Ui, refresh: bool, links: bool) -> Result<ExitCode> {
    let v = open(cli)?;
    let dir = wallet_dir(cli);
    let mut rows: Vec<(StoredApplication, Option<Refreshed>)> = if refresh {
        let c = net::client()?;
        applications::refresh_all(&c, &v, ui.now(), &mut |s| ui.step(s))
            .await?
            .into_iter()
            .map(|(a, r)| (a, Some(r)))
            .collect()
    } else {
        v.applications()?.into_iter().map(|a| (a, None)).collect()
    };
    rows.sort_by(|(x, _), (y, _)| (x.applied_at, &x.id).cmp(&(y.applied_at, &y.id)));
    if ui.json {
        let items: Vec<Value> = rows
            .iter()
            .map(|(a, r)| {
                let mut j = application_json(ui, &dir, a, links);
                j["refresh"] = match r {
                    None => Value::Null,
                    Some(Refreshed::Fresh) => json!({"result": "fresh"}),
                    Some(Refreshed::Unreachable(e)) => {
                        json!({"result": "unreachable", "error": chain(e), "code": e.code().as_str()})
                    }
                    Some(Refreshed::Failed(e)) => {
                        json!({"result": "failed", "error": chain(e), "code": e.code().as_str()})
                    }
                    Some(Refreshed::NoLongerHeld) => json!({"result": "no_longer_held"}),
                };
                j
            })
            .collect();
        println!("{}", Value::Array(items));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("the wallet keeps no application; apply with bizcred-wallet apply <agency-url> --type <type>");
        return Ok(ExitCode::SUCCESS);
    }
    for (a, r) in &rows {
        let name = a
            .vct
            .as_deref()
            .map(|v| type_name(v, ui.lang))
            .unwrap_or_else(|| a.credential_configuration_id.clone());
        println!(
            "{}  {}  at {}  (application {})",
            a.id,
            ui.bold(&name),
            a.agency,
            a.application_id
        );
        let seen = time::format_utc(a.last_seen);
        match r {
            Some(Refreshed::Unreachable(_)) => println!(
                "  state: {} (last known, seen {seen}: the agency could not be reached)",
                ui.bold(a.state.as_str())
            ),
            Some(Refreshed::Failed(e)) => println!(
                "  state: {} (last known, seen {seen}: the agency did not give the state: {})",
                ui.bold(a.state.as_str()),
                chain(e)
            ),
            _ if a.state == AppState::NoLongerHeld => println!(
                "  state: {} (since {seen}; not asked again)",
                ui.bold(a.state.describe())
            ),
            _ => println!("  state: {} (seen {seen})", ui.bold(a.state.as_str())),
        }
        for line in application_details(ui, &dir, a) {
            println!("  {line}");
        }
        if links {
            println!("  follow: {}", a.follow_uri.expose());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn withdraw(cli: &Cli, ui: &Ui, id: &str, reason: Option<&str>) -> Result<ExitCode> {
    let v = open(cli)?;
    let mut a = applications::find(&v, id)?;
    let c = net::client()?;
    ui.step(&format!("withdrawing {} at {}", a.application_id, a.agency));
    let view = applications::withdraw(&c, &a, reason)
        .await
        .map_err(|e| no_longer_held(&v, &mut a, e, ui.now()))?;
    a.update(&view, ui.now());
    v.put_application(&a)?;
    let dir = wallet_dir(cli);
    ui.out(
        &format!(
            "application {} at {}: {}",
            a.application_id, a.agency, a.state
        ),
        &json!({"result": "withdrawn", "application": application_json(ui, &dir, &a, false)}),
    );
    Ok(ExitCode::SUCCESS)
}

/// An agency's refusal of a request to the follow link: when the agency holds no application
/// behind it (`CAPABILITY_INVALID`), the record is kept in its final state first.
fn no_longer_held(
    v: &dyn Vault,
    a: &mut StoredApplication,
    e: WalletError,
    now: i64,
) -> anyhow::Error {
    if applications::is_no_longer_held(&e) {
        a.mark_no_longer_held(now);
        if let Err(store) = v.put_application(a) {
            return WalletError::from(store).into();
        }
    }
    e.into()
}

async fn answer(cli: &Cli, ui: &Ui, id: &str, claims: &[(String, Value)]) -> Result<ExitCode> {
    let claims = applications::claims_object(claims).map_err(|m| refused(m, None))?;
    let v = open(cli)?;
    let mut a = applications::find(&v, id)?;
    let c = net::client()?;
    ui.step(&format!(
        "sending {} claims for {} to {}",
        claims.len(),
        a.application_id,
        a.agency
    ));
    let view = applications::answer(&c, &a, claims)
        .await
        .map_err(|e| no_longer_held(&v, &mut a, e, ui.now()))?;
    a.update(&view, ui.now());
    v.put_application(&a)?;
    let dir = wallet_dir(cli);
    ui.out(
        &format!(
            "application {} at {}: {}",
            a.application_id,
            a.agency,
            ui.bold(a.state.describe())
        ),
        &json!({"result": "answered", "application": application_json(ui, &dir, &a, false)}),
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    let v = open(cli)?;
    let c = net::client()?;
    let mut results = Vec::new();
    for (cred, outcome) in status::refresh(&c, &v, ui.now(), &mut |s| ui.step(s)).await? {
        match outcome {
            Ok(s) => results.push(
                json!({"id": cred.id, "type": type_name(&cred.vct, ui.lang), "status": s.as_str()}),
            ),
            Err(e) => eprintln!("  {}: status unavailable: {}", cred.id, chain(&e)),
        }
    }
    let human = results
        .iter()
        .map(|r| {
            format!(
                "{:<13} {:<34} {}",
                r["id"].as_str().unwrap_or(""),
                r["type"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    ui.out(
        if human.is_empty() {
            "no credential carries a status reference"
        } else {
            &human
        },
        &Value::Array(results),
    );
    Ok(ExitCode::SUCCESS)
}

fn history(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    let h = open(cli)?.history()?;
    if ui.json {
        println!("{}", serde_json::to_value(&h)?);
        return Ok(ExitCode::SUCCESS);
    }
    if h.is_empty() {
        println!("nothing has been disclosed");
    }
    for e in h {
        println!(
            "{}  {}  {}  [{}]",
            time::format_utc(e.time),
            e.verifier,
            e.outcome,
            e.channel
        );
        for c in e.credentials {
            let claims: Vec<String> = c.claims.iter().map(|p| label(&c.vct, p, ui.lang)).collect();
            println!("    {}: {}", type_name(&c.vct, ui.lang), claims.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init(cli: &Cli, ui: &Ui, alg: AlgArg) -> Result<ExitCode> {
    let alg = match alg {
        AlgArg::EdDsa => Algorithm::EdDSA,
        AlgArg::Es256 => Algorithm::ES256,
    };
    let dir = wallet_dir(cli);
    let pass = passphrase(cli, true)?;
    let v = SledVault::create(&dir, pass.as_bytes())?;
    let key = SecretKey::generate(alg, &mut OsRng);
    v.set_holder_key(&key)?;
    let thumb = key.public_key().thumbprint();
    ui.out(
        &format!(
            "wallet created in {} with an {alg} holder key ({thumb})",
            dir.display()
        ),
        &json!({"dir": dir, "alg": alg.as_str(), "key_thumbprint": thumb}),
    );
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    match &cli.command {
        Command::Init { alg } => init(cli, ui, *alg),
        Command::Receive {
            offer: Some(offer),
            tx_code,
            ..
        } => receive(cli, ui, offer, tx_code.clone()).await,
        Command::Receive { offer: None, .. } => resume_all(cli, ui).await,
        Command::List => list(cli, ui),
        Command::Show { id } => show(cli, ui, id),
        Command::Present {
            uri,
            request,
            out,
            yes,
        } => {
            present(
                cli,
                ui,
                uri.as_deref(),
                request.as_deref(),
                out.as_deref(),
                *yes,
            )
            .await
        }
        Command::Status => status(cli, ui).await,
        Command::History => history(cli, ui),
        Command::Export { out } => {
            let v = open(cli)?;
            let (blob, n) = backup::export(&v, passphrase(cli, false)?.as_bytes())?;
            std::fs::write(out, blob).with_context(|| format!("writing {}", out.display()))?;
            ui.out(
                &format!(
                    "{} credentials and {} applications backed up to {} (encrypted with the wallet passphrase)",
                    n.credentials,
                    n.applications,
                    out.display()
                ),
                &json!({"file": out, "credentials": n.credentials, "applications": n.applications}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { input } => {
            let v = open(cli)?;
            let blob =
                std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
            let n =
                backup::import(&v, passphrase(cli, false)?.as_bytes(), &blob).map_err(
                    |e| match e {
                        WalletError::Vault(VaultError::WrongPassphrase) => refused(
                            "the passphrase does not open this backup; nothing was imported",
                            None,
                        ),
                        other => other.into(),
                    },
                )?;
            ui.out(
                &format!(
                    "{} credentials and {} applications imported",
                    n.credentials, n.applications
                ),
                &json!({"imported": n.credentials, "applications": n.applications}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { id } => {
            let v = open(cli)?;
            if v.delete_credential(id)? {
                ui.out(&format!("deleted {id}"), &json!({"deleted": id}));
                Ok(ExitCode::SUCCESS)
            } else {
                Err(WalletError::UnknownCredential(id.clone()).into())
            }
        }
        Command::Apply {
            agency,
            type_id,
            claims,
            yes,
        } => apply(cli, ui, agency, type_id, claims, *yes).await,
        Command::Applications {
            no_refresh, links, ..
        } => list_applications(cli, ui, !*no_refresh, *links).await,
        Command::Withdraw { id, reason } => withdraw(cli, ui, id, reason.as_deref()).await,
        Command::Answer { id, claims } => answer(cli, ui, id, claims).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "bizcred-wallet",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An error's message, exit code, hint (a command that runs) and reason code.
fn describe(e: &anyhow::Error, dir: &Path) -> (String, u8, Option<String>, Option<&'static str>) {
    if let Some(r) = e.downcast_ref::<Refused>() {
        (r.msg.clone(), 1, r.hint.clone(), None)
    } else if let Some(w) = e.downcast_ref::<WithHint>() {
        let (msg, code, _) = explain(&w.error, dir);
        (
            msg,
            code,
            Some(w.hint.clone()),
            Some(w.error.code().as_str()),
        )
    } else if let Some(w) = e.downcast_ref::<WalletError>() {
        let (msg, code, hint) = explain(w, dir);
        (msg, code, hint, Some(w.code().as_str()))
    } else if let Some(v) = e.downcast_ref::<VaultError>() {
        let (msg, code, hint) = explain_vault(v, dir);
        (msg, code, hint, Some(v.code().as_str()))
    } else {
        (format!("{e:#}"), 2, None, None)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let clock = match SystemClock::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let ui = Ui {
        clock,
        json: cli.json,
        quiet: cli.quiet,
        color: std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
        lang: match cli.lang {
            LangArg::En => Lang::En,
            LangArg::Fr => Lang::Fr,
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(&cli, &ui)) {
        Ok(code) => code,
        Err(e) => {
            let (msg, code, hint, error_code) = describe(&e, &wallet_dir(&cli));
            if ui.json {
                println!(
                    "{}",
                    json!({"error": msg, "code": error_code, "hint": hint})
                );
            }
            eprintln!("error: {msg}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bizcred-wallet").chain(args.iter().copied()))
    }

    #[test]
    fn apply_takes_a_type_repeated_claims_and_yes() {
        let cli = parse(&[
            "apply",
            "http://localhost:8084",
            "--type",
            "municipal-business-licence",
            "--claim",
            "licence_category=restaurant",
            "--claim",
            r#"premises_address={"street":"1 Main St","city":"Ottawa"}"#,
            "--claim",
            "seats=40",
            "--yes",
            "--json",
        ])
        .expect("parses");
        assert!(cli.json);
        let Command::Apply {
            agency,
            type_id,
            claims,
            yes,
        } = cli.command
        else {
            panic!("not apply");
        };
        assert_eq!(agency, "http://localhost:8084");
        assert_eq!(type_id, "municipal-business-licence");
        assert!(yes);
        assert_eq!(
            claims,
            vec![
                ("licence_category".to_owned(), json!("restaurant")),
                (
                    "premises_address".to_owned(),
                    json!({"street": "1 Main St", "city": "Ottawa"})
                ),
                ("seats".to_owned(), json!(40)),
            ]
        );
        // No claims and no --yes is fine; the type is required; a claim needs a name and '='.
        assert!(parse(&["apply", "https://city.example", "--type", "x"]).is_ok());
        assert!(parse(&["apply", "https://city.example"]).is_err());
        assert!(parse(&["apply", "--type", "x"]).is_err());
        for bad in ["novalue", "=x", "bad name=x"] {
            let e = parse(&[
                "apply",
                "https://city.example",
                "--type",
                "x",
                "--claim",
                bad,
            ])
            .err()
            .expect(bad);
            // A usage error: clap exits 2.
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn applications_refresh_by_default_withdraw_takes_a_reason_and_answer_claims() {
        let Command::Applications {
            refresh,
            no_refresh,
            links,
        } = parse(&["applications"]).expect("parses").command
        else {
            panic!("not applications");
        };
        assert!(!refresh && !no_refresh && !links, "refreshes by default");
        assert!(parse(&["applications", "--refresh"]).is_ok());
        assert!(parse(&["applications", "--no-refresh", "--links"]).is_ok());
        assert!(parse(&["applications", "--refresh", "--no-refresh"]).is_err());
        let Command::Withdraw { id, reason } = parse(&["withdraw", "a1b2", "--reason", "moved"])
            .expect("parses")
            .command
        else {
            panic!("not withdraw");
        };
        assert_eq!((id.as_str(), reason.as_deref()), ("a1b2", Some("moved")));
        assert!(parse(&["withdraw"]).is_err());
        let Command::Answer { id, claims } = parse(&[
            "answer",
            "a1b2",
            "--claim",
            "legal_name=Jennifer Ventures Inc.",
            "--claim",
            "capacity=40",
        ])
        .expect("parses")
        .command
        else {
            panic!("not answer");
        };
        assert_eq!(id, "a1b2");
        assert_eq!(
            claims,
            vec![
                ("legal_name".to_owned(), json!("Jennifer Ventures Inc.")),
                ("capacity".to_owned(), json!(40)),
            ]
        );
        // A claim is required; a reason is not taken.
        assert!(parse(&["answer", "a1b2"]).is_err());
        assert!(parse(&["answer", "a1b2", "--claim", "a=1", "--reason", "x"]).is_err());
    }

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
