//! `bizcred-wallet`: the business owner's wallet.
//!
//! Receives SD-JWT VCs over OpenID4VCI 1.0 (pre-authorized code flow), keeps them encrypted at
//! rest, and presents exactly the claims a verifier asks for, with consent, over OpenID4VP 1.0
//! (`direct_post`) or as a file. Exit codes: 0 done, 1 not found / refused, 2 error.

mod net;
mod vault;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::oid4vci::{self, OfferRef};
use bizcred_core::oid4vp::{self, AuthorizationRequest};
use bizcred_core::sd_jwt::{self, ClaimPath, SdJwt};
use bizcred_core::sd_jwt_vc::{self, VerifyOptions};
use bizcred_core::{status_list, time};
use bizcred_schemas::{CredentialType, Lang};

use vault::{Vault, VaultError};

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
    /// A file holding the passphrase (else $BIZCRED_WALLET_PASSPHRASE, else a prompt).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    /// Display language: en or fr.
    #[arg(long, global = true, default_value = "en")]
    lang: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the wallet and its holder key.
    Init {
        /// Key algorithm: EdDSA (default) or ES256.
        #[arg(long, default_value = "EdDSA")]
        alg: String,
    },
    /// Receive a credential from an offer (openid-credential-offer://...).
    Receive {
        offer: String,
        /// The transaction code the agency gave you (else a prompt).
        #[arg(long)]
        tx_code: Option<String>,
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
    /// Write an encrypted backup.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore credentials from an encrypted backup.
    Import {
        #[arg(long = "in")]
        input: PathBuf,
    },
    /// Delete a credential.
    Delete { id: String },
    /// Shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Holder {
    alg: Algorithm,
    secret: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Stored {
    id: String,
    vct: String,
    issuer: String,
    issuer_name: String,
    credential: String,
    /// Milliseconds since the epoch.
    received_at: i64,
    iat: Option<i64>,
    exp: Option<i64>,
    status_uri: Option<String>,
    status_idx: Option<u64>,
    last_status: Option<String>,
    status_checked_at: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct HistoryEntry {
    time: i64,
    verifier: String,
    channel: String,
    credentials: Vec<Value>,
    outcome: String,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Ui {
    json: bool,
    quiet: bool,
    color: bool,
    lang: Lang,
}

impl Ui {
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

/// An error with a hint the user can act on, and the exit code.
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

fn refused(msg: impl Into<String>, hint: Option<&str>) -> anyhow::Error {
    anyhow::Error::new(Refused {
        msg: msg.into(),
        hint: hint.map(str::to_owned),
    })
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

fn passphrase(cli: &Cli, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(f) = &cli.passphrase_file {
        let p = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(Zeroizing::new(p.trim_end_matches(['\n', '\r']).to_owned()));
    }
    if let Ok(p) = std::env::var("BIZCRED_WALLET_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let p = Zeroizing::new(
        rpassword::prompt_password("Wallet passphrase: ")
            .context("no passphrase (set BIZCRED_WALLET_PASSPHRASE or --passphrase-file)")?,
    );
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("Again: ")?);
        if *again != *p {
            bail!("the passphrases differ");
        }
    }
    Ok(p)
}

fn open(cli: &Cli) -> Result<Vault> {
    let dir = wallet_dir(cli);
    match Vault::open(&dir, passphrase(cli, false)?.as_bytes()) {
        Ok(v) => Ok(v),
        Err(VaultError::Missing(d)) => Err(refused(
            format!("no wallet in {d}"),
            Some("run `bizcred-wallet init` first"),
        )),
        Err(VaultError::WrongPassphrase) => Err(refused(
            "wrong passphrase; the wallet was not changed",
            Some("check BIZCRED_WALLET_PASSPHRASE or --passphrase-file"),
        )),
        Err(e) => Err(e.into()),
    }
}

fn holder(v: &Vault) -> Result<SecretKey> {
    let h: Holder = v
        .get("keys", "holder")?
        .ok_or_else(|| anyhow!("the wallet has no holder key"))?;
    let bytes = Zeroizing::new(
        bizcred_core::base64url_decode(&h.secret).map_err(|_| anyhow!("damaged holder key"))?,
    );
    Ok(SecretKey::from_bytes(h.alg, &bytes)?)
}

fn type_name(vct: &str, lang: Lang) -> String {
    CredentialType::from_vct(vct)
        .map(|t| t.metadata().display_name(lang).to_owned())
        .unwrap_or_else(|| vct.to_owned())
}

fn label(vct: &str, path: &[Value], lang: Lang) -> String {
    CredentialType::from_vct(vct)
        .and_then(|t| t.metadata().label(path, lang).map(str::to_owned))
        .unwrap_or_else(|| {
            path.iter()
                .map(|p| {
                    p.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| p.to_string())
                })
                .collect::<Vec<_>>()
                .join(".")
        })
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

fn read_tx_code(given: Option<String>, offer: &Value) -> Result<Option<String>> {
    let grant = &offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT];
    if grant.get("tx_code").is_none() {
        return Ok(None);
    }
    if let Some(t) = given {
        return Ok(Some(t));
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused(
            "this offer needs a transaction code",
            Some("pass --tx-code <code> (the agency gave it to you separately)"),
        ));
    }
    let desc = grant["tx_code"]["description"]
        .as_str()
        .unwrap_or("Transaction code");
    eprint!("{desc}: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Some(line.trim().to_owned()))
}

async fn receive(cli: &Cli, ui: &Ui, offer_uri: &str, tx: Option<String>) -> Result<ExitCode> {
    let v = open(cli)?;
    let key = holder(&v)?;
    let c = net::client();
    let offer = match oid4vci::parse_offer_uri(offer_uri).map_err(|e| {
        refused(
            e.to_string(),
            Some("pass the openid-credential-offer:// link the agency gave you"),
        )
    })? {
        OfferRef::ByValue(o) => o,
        OfferRef::ByReference(url) => {
            ui.step(&format!("fetching the offer from {url}"));
            let o = net::get_json(&c, &url, "the credential offer").await?;
            oid4vci::check_offer(&o).map_err(|e| refused(e.to_string(), None))?;
            o
        }
    };
    let issuer_url = offer["credential_issuer"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let config_id = offer["credential_configuration_ids"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let code = offer["grants"][oid4vci::PRE_AUTHORIZED_GRANT]["pre-authorized_code"]
        .as_str()
        .ok_or_else(|| refused("the offer has no pre-authorized code", None))?
        .to_owned();
    ui.step(&format!("reading {issuer_url}'s metadata"));
    let meta = net::get_json(
        &c,
        &format!("{issuer_url}/.well-known/openid-credential-issuer"),
        "the issuer metadata",
    )
    .await?;
    if meta["credential_issuer"]
        .as_str()
        .map(|s| s.trim_end_matches('/'))
        != Some(issuer_url.as_str())
    {
        bail!("the metadata names another credential issuer than the offer");
    }
    let conf = meta["credential_configurations_supported"]
        .get(&config_id)
        .cloned()
        .ok_or_else(|| anyhow!("the issuer does not describe {config_id}"))?;
    if conf["format"] != "dc+sd-jwt" {
        bail!(
            "{config_id} is not an SD-JWT VC (format {})",
            conf["format"]
        );
    }
    let as_url = meta["authorization_servers"][0]
        .as_str()
        .unwrap_or(&issuer_url)
        .trim_end_matches('/')
        .to_owned();
    let as_meta = net::get_json(
        &c,
        &format!("{as_url}/.well-known/oauth-authorization-server"),
        "the authorization server metadata",
    )
    .await?;
    let token_endpoint = as_meta["token_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("no token_endpoint"))?
        .to_owned();
    let tx_code = read_tx_code(tx, &offer)?;
    ui.step("exchanging the pre-authorized code");
    let mut form = vec![
        ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
        ("pre-authorized_code", code.as_str()),
    ];
    if let Some(t) = &tx_code {
        form.push(("tx_code", t.as_str()));
    }
    let tok = net::post_form(&c, &token_endpoint, &form, "the token request")
        .await
        .map_err(|e| {
            refused(
                e.to_string(),
                Some("check the transaction code; an offer is single-use and expires"),
            )
        })?;
    let access = tok["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no access_token"))?
        .to_owned();
    let nonce = match meta["nonce_endpoint"].as_str() {
        Some(n) => {
            let r = c.post(n).send().await.context("requesting a c_nonce")?;
            let v: Value = r.json().await.context("the nonce response is not JSON")?;
            v["c_nonce"].as_str().map(str::to_owned)
        }
        None => None,
    };
    let proof = oid4vci::proof_jwt(&key, &issuer_url, nonce.as_deref(), now())?;
    ui.step("requesting the credential");
    let endpoint = meta["credential_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("no credential_endpoint"))?;
    let resp = net::post_json(
        &c,
        endpoint,
        Some(&access),
        &json!({"credential_configuration_id": config_id, "proofs": {"jwt": [proof]}}),
        "the credential request",
    )
    .await?;
    let text = resp["credentials"][0]["credential"]
        .as_str()
        .ok_or_else(|| anyhow!("the issuer returned no credential"))?
        .to_owned();

    // Verify before storing anything.
    ui.step("verifying the credential with the issuer's DID");
    let sd = SdJwt::parse(&text).map_err(|e| anyhow!("the credential does not parse: {e}"))?;
    let payload = sd.unverified_payload()?;
    let header = bizcred_core::jws::Jws::decode(&sd.jwt)?;
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no iss"))?
        .to_owned();
    let iat = payload
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or_else(now);
    let kid = header
        .header_str("kid")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{iss}#key-1"));
    if !kid.starts_with(&format!("{iss}#")) {
        bail!("the credential's key {kid} is not a key of its issuer {iss}");
    }
    let issuer_key = net::resolve_key(&c, &kid, iat, now(), true).await?;
    let vc = sd_jwt_vc::verify(
        &sd,
        &issuer_key,
        &VerifyOptions {
            now: now(),
            clock_skew: 300,
            key_binding: None,
        },
    )
    .map_err(|e| anyhow!("the credential does not verify ({}): {e}", e.code()))?;
    if vc.holder_key.as_ref() != Some(&key.public_key()) {
        bail!("the credential is not bound to this wallet's key");
    }
    if conf["vct"].as_str() != Some(vc.vct.as_str()) {
        bail!(
            "the credential's vct {} is not the offered {}",
            vc.vct,
            conf["vct"]
        );
    }
    if let Some(ty) = CredentialType::from_vct(&vc.vct) {
        if let Err(errs) = bizcred_schemas::parse_claims(ty, &Value::Object(vc.business_claims())) {
            bail!(
                "the credential breaks the {} schema: {}",
                ty.slug(),
                errs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    let issuer_name = meta["display"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|x| {
                    x["locale"].as_str().is_some_and(|l| {
                        l.starts_with(if ui.lang == Lang::Fr { "fr" } else { "en" })
                    })
                })
                .or(d.first())
        })
        .and_then(|d| d["name"].as_str())
        .unwrap_or(&iss)
        .to_owned();
    let id = format!(
        "c{}",
        &bizcred_core::base64url_encode(sha2_digest(text.as_bytes()))[..10]
    );
    let rec = Stored {
        id: id.clone(),
        vct: vc.vct.clone(),
        issuer: iss,
        issuer_name: issuer_name.clone(),
        credential: text,
        received_at: now_ms(),
        iat: vc.iat,
        exp: vc.exp,
        status_uri: vc.status.as_ref().map(|s| s.uri.clone()),
        status_idx: vc.status.as_ref().map(|s| s.idx),
        last_status: None,
        status_checked_at: None,
    };
    v.put("credentials", &id, &rec)?;
    ui.out(
        &format!(
            "received {} from {} (id {id})",
            ui.bold(&type_name(&rec.vct, ui.lang)),
            issuer_name
        ),
        &json!({"id": id, "vct": rec.vct, "issuer": rec.issuer, "issuer_name": issuer_name}),
    );
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds since the epoch (orders credentials received within one second).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn sha2_digest(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

fn list(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    let v = open(cli)?;
    let creds: Vec<(String, Stored)> = v.all("credentials")?;
    if ui.json {
        let items: Vec<Value> = creds
            .iter()
            .map(|(_, c)| json!({"id": c.id, "vct": c.vct, "type": type_name(&c.vct, ui.lang), "issuer": c.issuer, "issuer_name": c.issuer_name, "issued_at": c.iat.map(time::format_utc), "expires_at": c.exp.map(time::format_utc), "status": c.last_status}))
            .collect();
        println!("{}", Value::Array(items));
        return Ok(ExitCode::SUCCESS);
    }
    if creds.is_empty() {
        println!("the wallet holds no credentials\nhint: receive one with `bizcred-wallet receive <offer>`");
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
    for (_, c) in creds {
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

fn find(v: &Vault, id: &str) -> Result<Stored> {
    v.get("credentials", id)?.ok_or_else(|| {
        refused(
            format!("no credential {id} in the wallet"),
            Some("see `bizcred-wallet list`"),
        )
    })
}

fn claims_of(c: &Stored) -> Result<Map<String, Value>> {
    let sd = SdJwt::parse(&c.credential)?;
    let payload = sd.unverified_payload()?;
    let mut claims = sd_jwt::process(payload, &sd.disclosures)?;
    for k in sd_jwt_vc::CLEAR_CLAIMS.iter().chain(&["iat", "sub", "jti"]) {
        claims.remove(*k);
    }
    Ok(claims)
}

fn show(cli: &Cli, ui: &Ui, id: &str) -> Result<ExitCode> {
    let v = open(cli)?;
    let c = find(&v, id)?;
    let claims = claims_of(&c)?;
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

/// The request object claims, verified: from a URI (fetched) or a file's text.
async fn load_request(c: &reqwest::Client, ui: &Ui, text: &str) -> Result<Map<String, Value>> {
    let text = text.trim();
    let (client_id, jwt) = if text.starts_with("openid4vp:") || text.contains("client_id=") {
        match oid4vp::parse_request_uri(text).map_err(|e| {
            refused(
                e.to_string(),
                Some("pass the openid4vp:// link the verifier showed you"),
            )
        })? {
            AuthorizationRequest::ByReference {
                client_id,
                request_uri,
            } => {
                ui.step(&format!("fetching the request from {request_uri}"));
                (
                    client_id,
                    net::get_text(c, &request_uri, "the presentation request").await?,
                )
            }
            AuthorizationRequest::Signed { client_id, request } => (client_id, request),
            AuthorizationRequest::Plain(params) => {
                oid4vp::check_request(&params).map_err(|e| refused(e.to_string(), None))?;
                return Ok(params);
            }
        }
    } else {
        // A bare request object (offline exchange): the client_id is inside; the signature
        // still has to verify with that client's DID.
        let j = bizcred_core::jws::Jws::decode(text).map_err(|_| {
            refused(
                "the request file is neither an openid4vp:// URI nor a request object",
                None,
            )
        })?;
        let cid = j
            .claims()?
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the request object has no client_id"))?;
        (cid, text.to_owned())
    };
    let header = bizcred_core::jws::Jws::decode(&jwt)
        .map_err(|e| anyhow!("the request object does not decode: {e}"))?;
    let kid = header.header_str("kid").unwrap_or_default().to_owned();
    let key = net::resolve_key(c, &kid, now(), now(), false)
        .await
        .map_err(|e| anyhow!("cannot verify the verifier's request: {e}"))?;
    oid4vp::verify_request_object(&jwt, &client_id, |_| Ok(key.clone())).map_err(|e| {
        refused(
            e.to_string(),
            Some("the request is not signed by the verifier it names; nothing was sent"),
        )
    })
}

struct Chosen {
    query_id: String,
    cred: Stored,
    paths: Vec<ClaimPath>,
}

fn value_at<'a>(claims: &'a Map<String, Value>, path: &[Value]) -> Option<&'a Value> {
    let mut cur = claims.get(path.first()?.as_str()?)?;
    for seg in &path[1..] {
        cur = match seg {
            Value::String(k) => cur.get(k)?,
            Value::Number(n) => cur.get(n.as_u64()? as usize)?,
            _ => return Some(cur),
        };
    }
    Some(cur)
}

fn choose(v: &Vault, dcql: &Value) -> Result<Vec<Chosen>> {
    let held: Vec<(String, Stored)> = v.all("credentials")?;
    let queries = dcql["credentials"]
        .as_array()
        .ok_or_else(|| anyhow!("the request has no DCQL credential queries"))?;
    let mut out = Vec::new();
    for q in queries {
        let id = q["id"].as_str().unwrap_or_default().to_owned();
        if q["format"] != "dc+sd-jwt" {
            return Err(refused(
                format!(
                    "the verifier asks for a {} credential; this wallet holds SD-JWT VCs",
                    q["format"]
                ),
                None,
            ));
        }
        let vcts: Vec<&str> = q["meta"]["vct_values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let claims_q: Vec<Value> = q["claims"].as_array().cloned().unwrap_or_default();
        let mut candidates: Vec<&Stored> = held
            .iter()
            .map(|(_, c)| c)
            .filter(|c| vcts.is_empty() || vcts.contains(&c.vct.as_str()))
            .filter(|c| {
                c.exp.is_none_or(|e| e > now()) && c.last_status.as_deref() != Some("revoked")
            })
            .filter(|c| {
                let Ok(claims) = claims_of(c) else {
                    return false;
                };
                claims_q.iter().all(|cq| {
                    let Some(path) = cq["path"].as_array() else {
                        return false;
                    };
                    match (value_at(&claims, path), cq["values"].as_array()) {
                        (Some(val), Some(allowed)) => allowed.contains(val),
                        (Some(_), None) => true,
                        (None, _) => false,
                    }
                }) || claims_q.is_empty()
            })
            .collect();
        // The most recent first; among equals, the last received.
        candidates.sort_by_key(|c| std::cmp::Reverse((c.iat, c.received_at)));
        let Some(best) = candidates.first() else {
            let want = vcts
                .first()
                .map(|v| type_name(v, Lang::En))
                .unwrap_or(id.clone());
            return Err(refused(
                format!("you hold no {want} matching the request ({id}); nothing was sent"),
                Some("receive it first with `bizcred-wallet receive`"),
            ));
        };
        // Claims the credential does not have are simply not disclosed.
        let claims = claims_of(best)?;
        let paths: Vec<ClaimPath> = if claims_q.is_empty() {
            claims.keys().map(|k| sd_jwt::key_path(&[k])).collect()
        } else {
            claims_q
                .iter()
                .filter(|cq| {
                    cq["path"]
                        .as_array()
                        .is_some_and(|p| value_at(&claims, p).is_some())
                })
                .filter_map(|cq| sd_jwt::claim_path(&cq["path"]))
                .collect()
        };
        out.push(Chosen {
            query_id: id,
            cred: (*best).clone(),
            paths,
        });
    }
    Ok(out)
}

fn consent(ui: &Ui, verifier: &str, chosen: &[Chosen], yes: bool) -> Result<bool> {
    if !ui.json && !ui.quiet {
        println!("{} asks for:", ui.bold(verifier));
        for c in chosen {
            println!(
                "  {} from {}",
                ui.bold(&type_name(&c.cred.vct, ui.lang)),
                c.cred.issuer_name
            );
            let claims = claims_of(&c.cred)?;
            for p in &c.paths {
                let pj = sd_jwt::claim_path_json(p);
                let path = pj.as_array().cloned().unwrap_or_default();
                let val = value_at(&claims, &path).map(render).unwrap_or_default();
                println!("    {:<30} {}", label(&c.cred.vct, &path, ui.lang), val);
            }
        }
    }
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused(
            "consent is needed; nothing was sent",
            Some("pass --yes to consent in scripts"),
        ));
    }
    eprint!("Share exactly this? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "o" | "oui"))
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
    let key = holder(&v)?;
    let c = net::client();
    let text = match (uri, request) {
        (Some(u), _) => u.to_owned(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) => {
            return Err(refused(
                "give the verifier's openid4vp:// request, or --request <file> --out <file>",
                None,
            ))
        }
    };
    let req = load_request(&c, ui, &text).await?;
    let client_id = req["client_id"].as_str().unwrap_or_default().to_owned();
    let nonce = req["nonce"].as_str().unwrap_or_default().to_owned();
    let state = req.get("state").and_then(Value::as_str).map(str::to_owned);
    let chosen = choose(&v, &req["dcql_query"])?;
    if !consent(ui, &client_id, &chosen, yes)? {
        let _ = v.put(
            "history",
            &v.next_id()?,
            &HistoryEntry {
                time: now(),
                verifier: client_id.clone(),
                channel: "declined".into(),
                credentials: Vec::new(),
                outcome: "declined".into(),
            },
        );
        ui.out("declined: nothing was sent", &json!({"result": "declined"}));
        return Ok(ExitCode::from(1));
    }
    let mut vp = Map::new();
    let mut disclosed = Vec::new();
    for ch in &chosen {
        let sd = SdJwt::parse(&ch.cred.credential)?;
        let p = sd
            .select(&ch.paths)?
            .bind(&client_id, &nonce, now(), &key)?;
        vp.insert(ch.query_id.clone(), json!([p.serialize()]));
        disclosed.push(json!({"credential": ch.cred.id, "vct": ch.cred.vct, "claims": ch.paths.iter().map(|p| sd_jwt::claim_path_json(p)).collect::<Vec<_>>()}));
    }
    let vp_token = Value::Object(vp);
    if let Some(out) = out_file {
        let doc =
            json!({"vp_token": vp_token, "state": state, "client_id": client_id, "nonce": nonce});
        std::fs::write(out, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", out.display()))?;
        v.put(
            "history",
            &v.next_id()?,
            &HistoryEntry {
                time: now(),
                verifier: client_id.clone(),
                channel: format!("file {}", out.display()),
                credentials: disclosed.clone(),
                outcome: "written".into(),
            },
        )?;
        ui.out(&format!("presentation for {client_id} written to {}", out.display()), &json!({"result": "written", "file": out, "verifier": client_id, "disclosed": disclosed}));
        return Ok(ExitCode::SUCCESS);
    }
    let response_uri = req["response_uri"]
        .as_str()
        .ok_or_else(|| anyhow!("no response_uri"))?
        .to_owned();
    ui.step(&format!("sending the presentation to {response_uri}"));
    let body = oid4vp::response_body(&vp_token, state.as_deref());
    let resp = c
        .post(&response_uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {response_uri}"))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    let outcome = answer["verdict"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if status.is_success() {
                "sent".into()
            } else {
                format!("refused ({status})")
            }
        });
    v.put(
        "history",
        &v.next_id()?,
        &HistoryEntry {
            time: now(),
            verifier: client_id.clone(),
            channel: response_uri,
            credentials: disclosed.clone(),
            outcome: outcome.clone(),
        },
    )?;
    if !status.is_success() {
        ui.out(
            &format!(
                "the verifier refused the response: {}",
                answer["error_description"].as_str().unwrap_or("")
            ),
            &json!({"result": "refused", "answer": answer}),
        );
        return Ok(ExitCode::from(1));
    }
    let reasons: Vec<String> = answer["failures"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| x["code"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    let human = if reasons.is_empty() {
        format!("{client_id} answered: {outcome}")
    } else {
        format!("{client_id} answered: {outcome} ({})", reasons.join(", "))
    };
    ui.out(
        &human,
        &json!({"result": "sent", "verifier": client_id, "answer": answer, "disclosed": disclosed}),
    );
    Ok(if outcome == "ACCEPT" || outcome == "sent" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn status(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    let v = open(cli)?;
    let c = net::client();
    let mut results = Vec::new();
    for (id, mut cred) in v.all::<Stored>("credentials")? {
        let (Some(uri), Some(idx)) = (cred.status_uri.clone(), cred.status_idx) else {
            continue;
        };
        ui.step(&format!("checking {uri}"));
        let outcome = async {
            let token = net::get_text(&c, &uri, "the status list").await?;
            let (kid, iat, _) = status_list::peek(&token)?;
            if !kid.starts_with(&format!("{}#", cred.issuer)) {
                bail!("the status list is not signed by the credential's issuer");
            }
            let key = net::resolve_key(&c, &kid, iat, now(), true).await?;
            let list = status_list::verify_token(&token, &uri, &key, now())?;
            Ok(match list.list.get(idx)? {
                status_list::Status::Valid => "valid",
                status_list::Status::Invalid => "revoked",
                status_list::Status::Suspended => "suspended",
                status_list::Status::Other(_) => "unknown",
            })
        }
        .await;
        let s = match outcome {
            Ok(s) => s.to_owned(),
            Err(e) => {
                eprintln!("  {id}: status unavailable: {e}");
                continue;
            }
        };
        cred.last_status = Some(s.clone());
        cred.status_checked_at = Some(now());
        v.put("credentials", &id, &cred)?;
        results.push(json!({"id": id, "type": type_name(&cred.vct, ui.lang), "status": s}));
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
    let v = open(cli)?;
    let h: Vec<(String, HistoryEntry)> = v.all("history")?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_value(h.iter().map(|(_, e)| e).collect::<Vec<_>>())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if h.is_empty() {
        println!("nothing has been disclosed");
    }
    for (_, e) in h {
        println!(
            "{}  {}  {}  [{}]",
            time::format_utc(e.time),
            e.verifier,
            e.outcome,
            e.channel
        );
        for c in e.credentials {
            let vct = c["vct"].as_str().unwrap_or("");
            let claims: Vec<String> = c["claims"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            label(vct, p.as_array().map(Vec::as_slice).unwrap_or(&[]), ui.lang)
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!("    {}: {}", type_name(vct, ui.lang), claims.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: &Cli, ui: &Ui) -> Result<ExitCode> {
    match &cli.command {
        Command::Init { alg } => {
            let alg = Algorithm::from_jose(alg)
                .map_err(|e| refused(e.to_string(), Some("use EdDSA or ES256")))?;
            let dir = wallet_dir(cli);
            let pass = passphrase(cli, true)?;
            let v = Vault::create(&dir, pass.as_bytes()).map_err(|e| match e {
                VaultError::Exists(d) => refused(
                    format!("a wallet already exists in {d}"),
                    Some("use --wallet-dir for another one"),
                ),
                other => other.into(),
            })?;
            let key = SecretKey::generate(alg, &mut OsRng);
            v.put(
                "keys",
                "holder",
                &Holder {
                    alg,
                    secret: bizcred_core::base64url_encode(key.to_bytes().as_slice()),
                },
            )?;
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
        Command::Receive { offer, tx_code } => receive(cli, ui, offer, tx_code.clone()).await,
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
            let creds: Vec<(String, Stored)> = v.all("credentials")?;
            let plain = Zeroizing::new(serde_json::to_vec(&creds)?);
            let blob = vault::seal_passphrase(passphrase(cli, false)?.as_bytes(), &plain)?;
            std::fs::write(out, blob).with_context(|| format!("writing {}", out.display()))?;
            ui.out(
                &format!(
                    "{} credentials backed up to {} (encrypted with the wallet passphrase)",
                    creds.len(),
                    out.display()
                ),
                &json!({"file": out, "credentials": creds.len()}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { input } => {
            let v = open(cli)?;
            let blob =
                std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
            if blob.len() > 64 * 1024 * 1024 {
                bail!("the backup is larger than 64 MiB");
            }
            let plain =
                vault::open_passphrase(passphrase(cli, false)?.as_bytes(), &blob).map_err(|e| {
                    match e {
                        VaultError::WrongPassphrase => refused(
                            "the passphrase does not open this backup; nothing was imported",
                            None,
                        ),
                        other => other.into(),
                    }
                })?;
            let creds: Vec<(String, Stored)> =
                serde_json::from_slice(&plain).context("the backup is damaged")?;
            for (_, c) in &creds {
                SdJwt::parse(&c.credential)
                    .map_err(|e| anyhow!("the backup holds a damaged credential {}: {e}", c.id))?;
            }
            v.put_all("credentials", &creds)?;
            ui.out(
                &format!("{} credentials imported", creds.len()),
                &json!({"imported": creds.len()}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { id } => {
            let v = open(cli)?;
            if v.delete("credentials", id)? {
                ui.out(&format!("deleted {id}"), &json!({"deleted": id}));
                Ok(ExitCode::SUCCESS)
            } else {
                Err(refused(
                    format!("no credential {id} in the wallet"),
                    Some("see `bizcred-wallet list`"),
                ))
            }
        }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = Ui {
        json: cli.json,
        quiet: cli.quiet,
        color: std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
        lang: Lang::parse(&cli.lang).unwrap_or_default(),
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
            let (code, hint) = match e.downcast_ref::<Refused>() {
                Some(r) => (1, r.hint.clone()),
                None => (2, None),
            };
            if ui.json {
                println!("{}", json!({"error": format!("{e:#}"), "hint": hint}));
            }
            eprintln!("error: {e:#}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            ExitCode::from(code)
        }
    }
}
