//! `bizcred-registry`: run and govern the DID and trust registry.
//!
//! Exit codes: 0 done, 1 refused (the registry rejected the entry, or not found), 2 error.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use bizcred_core::keyfile::{self, KdfParams};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::time;
use bizcred_core::trust::entry::build;
use bizcred_registry::service::{self, AppState};
use bizcred_registry::store::{SledStore, Store};
use bizcred_registry::{Registry, RegistryError};
use bizcred_schemas::CredentialType;

#[derive(Parser)]
#[command(
    name = "bizcred-registry",
    version,
    about = "The bizcred DID and trust registry"
)]
struct Cli {
    #[command(flatten)]
    out: bizcred_cli::Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Data {
    /// The registry's data directory (keys, configuration, sled database).
    #[arg(long, env = "BIZCRED_REGISTRY_DIR", default_value = "registry-data")]
    data_dir: PathBuf,
    /// File holding the key passphrase (else $BIZCRED_REGISTRY_PASSPHRASE, else a prompt).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct Target {
    #[command(flatten)]
    data: Data,
    /// Submit to a running registry instead of writing the data directory.
    #[arg(long)]
    url: Option<String>,
    /// Admin bearer token for --url (else $BIZCRED_REGISTRY_TOKEN).
    #[arg(long, env = "BIZCRED_REGISTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create the registry: authority and log keys, genesis, the four credential types.
    Init {
        #[command(flatten)]
        data: Data,
        /// The log's origin (its unique name), e.g. registry.bizcred.ca/log.
        #[arg(long)]
        origin: String,
    },
    /// Serve the registry API.
    Serve {
        #[command(flatten)]
        data: Data,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Register an agency's issuer DID and authorize its credential types, in one step.
    Onboard {
        #[command(flatten)]
        target: Target,
        /// The agency's did:webvh log (did.jsonl) as a file.
        #[arg(long, conflicts_with = "did")]
        did_log: Option<PathBuf>,
        /// The agency's DID: its log is fetched from where did:webvh publishes it.
        #[arg(long)]
        did: Option<String>,
        /// English name.
        #[arg(long)]
        name_en: String,
        /// French name.
        #[arg(long)]
        name_fr: String,
        /// Credential types it may issue (slug or vct), repeatable.
        #[arg(long = "type", required = true)]
        types: Vec<String>,
    },
    /// Authorize an issuer for a credential type.
    Authorize {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        did: String,
        #[arg(long = "type")]
        kind: String,
        /// Valid from (UTC, RFC 3339); default now.
        #[arg(long)]
        valid_from: Option<String>,
        /// Valid until (UTC, RFC 3339).
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// Suspend (or revoke, or reinstate) an issuer's authorization for a type.
    Suspend {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        did: String,
        #[arg(long = "type")]
        kind: String,
        /// Effective time (UTC, RFC 3339); default now.
        #[arg(long)]
        at: Option<String>,
        /// Apply to every credential, also those signed before (default: only from --at on).
        #[arg(long)]
        retroactive: bool,
        /// Revoke instead of suspend.
        #[arg(long, conflicts_with = "reinstate")]
        revoke: bool,
        /// Reinstate a suspended authorization.
        #[arg(long)]
        reinstate: bool,
    },
    /// Declare an issuer key compromised from a time on.
    DeclareCompromise {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        did: String,
        /// The verification method id (`#key-1` or a full DID URL).
        #[arg(long)]
        key_id: String,
        /// When the compromise began (UTC, RFC 3339).
        #[arg(long)]
        at: String,
    },
    /// Trust bundles.
    Bundle {
        #[command(subcommand)]
        action: BundleCmd,
    },
    /// Show the registry's size, issuers and authorizations.
    Status {
        #[command(flatten)]
        data: Data,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Write the signed trust bundle to a file (for an air-gapped verifier).
    Export {
        #[command(flatten)]
        data: Data,
        /// Fetch it from a running registry instead.
        #[arg(long)]
        url: Option<String>,
        /// Entries the verifier already holds.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Serialize, Deserialize)]
struct Config {
    origin: String,
    admin_token_sha256: Vec<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn passphrase(data: &Data) -> Result<Zeroizing<String>> {
    if let Some(f) = &data.passphrase_file {
        let p = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(Zeroizing::new(p.trim_end_matches(['\n', '\r']).to_owned()));
    }
    if let Ok(p) = std::env::var("BIZCRED_REGISTRY_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    let p = rpassword::prompt_password("Registry key passphrase: ")
        .context("no passphrase (set BIZCRED_REGISTRY_PASSPHRASE or --passphrase-file)")?;
    Ok(Zeroizing::new(p))
}

fn load_key(data: &Data, name: &str) -> Result<SecretKey> {
    let path = data.data_dir.join(name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (hint: run `bizcred-registry init` first)",
            path.display()
        )
    })?;
    let pass = passphrase(data)?;
    keyfile::open(&text, pass.as_bytes()).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn load_config(dir: &Path) -> Result<Config> {
    let path = dir.join("registry.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (hint: run `bizcred-registry init` first)",
            path.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a registry configuration", path.display()))
}

fn open_local(data: &Data) -> Result<Registry<Box<dyn Store>>> {
    let cfg = load_config(&data.data_dir)?;
    let log_key = load_key(data, "log.key")?;
    let store: Box<dyn Store> = Box::new(SledStore::open(&data.data_dir.join("db"))?);
    Ok(Registry::open(store, &cfg.origin, log_key, now())?)
}

fn parse_type(s: &str) -> Result<CredentialType> {
    CredentialType::from_slug(s)
        .or_else(|| CredentialType::from_vct(s))
        .ok_or_else(|| {
            anyhow!(
                "unknown credential type {s}; one of: {}",
                CredentialType::ALL.map(|t| t.slug()).join(", ")
            )
        })
}

fn parse_time(s: Option<&str>) -> Result<i64> {
    match s {
        None => Ok(now()),
        Some(t) => time::parse_utc(t)
            .map_err(|_| anyhow!("{t} is not a UTC time like 2026-11-22T21:00:00Z")),
    }
}

/// Where governance entries go: straight into the data directory, or to a running registry.
enum Sink {
    Local(Box<Registry<Box<dyn Store>>>),
    Remote {
        url: String,
        token: String,
        client: reqwest::Client,
    },
}

impl Sink {
    fn open(t: &Target) -> Result<(Sink, String)> {
        match &t.url {
            Some(url) => {
                let cfg = load_config(&t.data.data_dir).ok();
                let token = t
                    .token
                    .clone()
                    .ok_or_else(|| anyhow!("--url needs --token or $BIZCRED_REGISTRY_TOKEN"))?;
                let origin = match cfg {
                    Some(c) => c.origin,
                    None => {
                        bail!("the data directory with the authority key is needed to sign entries")
                    }
                };
                Ok((
                    Sink::Remote {
                        url: url.trim_end_matches('/').to_owned(),
                        token,
                        client: reqwest::Client::new(),
                    },
                    origin,
                ))
            }
            None => {
                let r = open_local(&t.data)?;
                let origin = r.state().origin.clone();
                Ok((Sink::Local(Box::new(r)), origin))
            }
        }
    }

    async fn append(&mut self, entry: Value) -> Result<Result<u64, String>> {
        match self {
            Sink::Local(r) => match r.append(entry, now()) {
                Ok(i) => Ok(Ok(i)),
                Err(RegistryError::Entry(e)) => Ok(Err(format!("{} ({})", e, e.code()))),
                Err(e) => Err(e.into()),
            },
            Sink::Remote { url, token, client } => {
                let resp = client
                    .post(format!("{url}/entries"))
                    .bearer_auth(token)
                    .json(&entry)
                    .send()
                    .await
                    .context("contacting the registry")?;
                let status = resp.status();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if status.is_success() {
                    Ok(Ok(body["index"].as_u64().unwrap_or_default()))
                } else if status.is_client_error()
                    && status.as_u16() != 401
                    && status.as_u16() != 403
                {
                    Ok(Err(format!(
                        "{} ({})",
                        body["error_description"].as_str().unwrap_or(""),
                        body["error"].as_str().unwrap_or("")
                    )))
                } else {
                    bail!(
                        "the registry answered {status}: {}",
                        body["error_description"].as_str().unwrap_or("")
                    )
                }
            }
        }
    }
}

async fn governance(
    out: &bizcred_cli::Output,
    target: &Target,
    entries: Vec<(String, Maker)>,
) -> Result<ExitCode> {
    let (mut sink, origin) = Sink::open(target)?;
    let authority = load_key(&target.data, "authority.key")?;
    for (what, make) in entries {
        let entry = make(&origin, &authority)?;
        match sink.append(entry).await? {
            Ok(index) => {
                out.say(
                    &format!("{what}: appended as entry {index}"),
                    &json!({"result": "appended", "what": what, "index": index}),
                );
            }
            Err(reason) => {
                out.say(
                    &format!("refused: {what}: {reason}"),
                    &json!({"result": "refused", "what": what, "reason": reason}),
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds and signs one governance entry, given the origin and the authority key.
type Maker = Box<dyn FnOnce(&str, &SecretKey) -> Result<Value>>;

async fn run(cli: Cli) -> Result<ExitCode> {
    let out = cli.out;
    match cli.command {
        Command::Init { data, origin } => {
            if data.data_dir.join("registry.json").exists() {
                bail!("{} already holds a registry", data.data_dir.display());
            }
            std::fs::create_dir_all(&data.data_dir)?;
            let pass = passphrase(&data)?;
            let authority = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
            let log_key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
            for (name, key) in [("authority.key", &authority), ("log.key", &log_key)] {
                let text = keyfile::seal(key, pass.as_bytes(), KdfParams::DEFAULT, &mut OsRng)?;
                write_private(&data.data_dir.join(name), text.as_bytes())?;
            }
            let mut token = [0u8; 32];
            OsRng.fill_bytes(&mut token);
            // Hex, so a token never starts with `-` on a command line.
            let token = Zeroizing::new(hex(&token));
            let cfg = Config {
                origin: origin.clone(),
                admin_token_sha256: vec![hex(&service::token_hash(&token))],
            };
            std::fs::write(
                data.data_dir.join("registry.json"),
                serde_json::to_string_pretty(&cfg)?,
            )?;
            let store: Box<dyn Store> = Box::new(SledStore::open(&data.data_dir.join("db"))?);
            let mut reg = Registry::open(
                store,
                &origin,
                SecretKey::from_bytes(Algorithm::EdDSA, &log_key.to_bytes())?,
                now(),
            )?;
            let t = now();
            reg.append(
                build::genesis(
                    &origin,
                    &[authority.public_key()],
                    &origin,
                    &log_key.public_key(),
                    t,
                    &authority,
                    &mut OsRng,
                )
                .map_err(|e| anyhow!(e))?,
                t,
            )?;
            for ty in CredentialType::ALL {
                // Registry design §4.13: licences 24 h of status age, the others 7 days; 7 days of registry age.
                let status_age = match ty {
                    CredentialType::MunicipalBusinessLicence
                    | CredentialType::LiquorSalesLicence => 86_400,
                    _ => 7 * 86_400,
                };
                reg.append(
                    build::credential_type(
                        &origin,
                        ty.vct(),
                        status_age,
                        7 * 86_400,
                        t,
                        &authority,
                        &mut OsRng,
                    )
                    .map_err(|e| anyhow!(e))?,
                    t,
                )?;
            }
            let anchor = reg
                .anchor()
                .ok_or_else(|| anyhow!("no anchor after genesis"))?;
            out.say(
                &format!(
                    "registry {origin} created in {}\nadmin token (shown once; keep it secret): {}\ntrust anchor for verifiers: {}",
                    data.data_dir.display(),
                    token.as_str(),
                    serde_json::to_string(&anchor)?
                ),
                &json!({"origin": origin, "admin_token": token.as_str(), "anchor": anchor, "size": reg.state().size()}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { data, listen } => {
            let cfg = load_config(&data.data_dir)?;
            let hashes = cfg
                .admin_token_sha256
                .iter()
                .map(|h| unhex(h).ok_or_else(|| anyhow!("bad token hash in registry.json")))
                .collect::<Result<Vec<_>>>()?;
            let reg = open_local(&data)?;
            let size = reg.state().size();
            let state = Arc::new(AppState {
                registry: Mutex::new(reg),
                admin_token_hashes: hashes,
                clock: now,
            });
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr()?;
            out.say(
                &format!(
                    "registry {} serving on http://{addr} ({size} entries)",
                    cfg.origin
                ),
                &json!({"listening": addr.to_string(), "origin": cfg.origin, "size": size}),
            );
            axum::serve(listener, service::app(state))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Onboard {
            target,
            did_log,
            did,
            name_en,
            name_fr,
            types,
        } => {
            let log = match (did_log, &did) {
                (Some(f), _) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, Some(d)) => {
                    let parsed = bizcred_core::webvh::WebvhDid::parse(d)?;
                    let url = parsed.log_url();
                    let resp = reqwest::get(&url)
                        .await
                        .with_context(|| format!("fetching {url}"))?;
                    if !resp.status().is_success() {
                        bail!("fetching {url}: {}", resp.status());
                    }
                    resp.text().await?
                }
                (None, None) => bail!("give --did-log <file> or --did <did>"),
            };
            let verified = bizcred_core::webvh::verify_log(&log, None, now());
            if let Some(e) = &verified.error {
                bail!("the agency's did:webvh log does not verify: {e}");
            }
            let issuer = verified
                .versions
                .last()
                .map(|v| v.id().to_owned())
                .ok_or_else(|| anyhow!("empty log"))?;
            let types = types
                .iter()
                .map(|t| parse_type(t))
                .collect::<Result<Vec<_>>>()?;
            let t = now();
            let mut makers: Vec<(String, Maker)> = Vec::new();
            {
                let (issuer, log) = (issuer.clone(), log.clone());
                makers.push((
                    format!("register {issuer} ({name_en})"),
                    Box::new(move |o, k| {
                        build::issuer_registered(
                            o, &issuer, &name_en, &name_fr, &log, t, k, &mut OsRng,
                        )
                        .map_err(|e| anyhow!(e))
                    }),
                ));
            }
            for ty in types {
                let issuer = issuer.clone();
                makers.push((
                    format!("authorize {issuer} for {}", ty.slug()),
                    Box::new(move |o, k| {
                        build::authorization_granted(
                            o,
                            &issuer,
                            ty.vct(),
                            t,
                            None,
                            t,
                            k,
                            &mut OsRng,
                        )
                        .map_err(|e| anyhow!(e))
                    }),
                ));
            }
            governance(&out, &target, makers).await
        }
        Command::Authorize {
            target,
            did,
            kind,
            valid_from,
            valid_until,
        } => {
            let ty = parse_type(&kind)?;
            let from = parse_time(valid_from.as_deref())?;
            let until = valid_until
                .as_deref()
                .map(|u| parse_time(Some(u)))
                .transpose()?;
            let t = now();
            let what = format!("authorize {did} for {}", ty.slug());
            governance(
                &out,
                &target,
                vec![(
                    what,
                    Box::new(move |o, k| {
                        build::authorization_granted(
                            o,
                            &did,
                            ty.vct(),
                            from,
                            until,
                            t,
                            k,
                            &mut OsRng,
                        )
                        .map_err(|e| anyhow!(e))
                    }),
                )],
            )
            .await
        }
        Command::Suspend {
            target,
            did,
            kind,
            at,
            retroactive,
            revoke,
            reinstate,
        } => {
            let ty = parse_type(&kind)?;
            let at = parse_time(at.as_deref())?;
            let status = if reinstate {
                "active"
            } else if revoke {
                "revoked"
            } else {
                "suspended"
            };
            let t = now();
            let what = format!("{status} {did} for {}", ty.slug());
            governance(
                &out,
                &target,
                vec![(
                    what,
                    Box::new(move |o, k| {
                        build::authorization_changed(
                            o,
                            &did,
                            ty.vct(),
                            status,
                            at,
                            retroactive,
                            t,
                            k,
                            &mut OsRng,
                        )
                        .map_err(|e| anyhow!(e))
                    }),
                )],
            )
            .await
        }
        Command::DeclareCompromise {
            target,
            did,
            key_id,
            at,
        } => {
            let at = parse_time(Some(&at))?;
            let t = now();
            let what = format!("declare {key_id} of {did} compromised");
            governance(
                &out,
                &target,
                vec![(
                    what,
                    Box::new(move |o, k| {
                        build::key_compromised(o, &did, &key_id, at, t, k, &mut OsRng)
                            .map_err(|e| anyhow!(e))
                    }),
                )],
            )
            .await
        }
        Command::Bundle {
            action:
                BundleCmd::Export {
                    data,
                    url,
                    from,
                    out: file,
                },
        } => {
            let text = match url {
                Some(u) => {
                    let resp =
                        reqwest::get(format!("{}/bundle?from={from}", u.trim_end_matches('/')))
                            .await
                            .context("contacting the registry")?;
                    if !resp.status().is_success() {
                        bail!("the registry answered {}", resp.status());
                    }
                    resp.text().await?
                }
                None => open_local(&data)?.bundle(from, now())?,
            };
            std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
            let b = bizcred_core::trust::bundle::parse(&text)?;
            out.say(
                &format!(
                    "trust bundle with {} entries written to {}",
                    b.entries.len(),
                    file.display()
                ),
                &json!({"file": file, "entries": b.entries.len(), "from": from}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { data } => {
            let reg = open_local(&data)?;
            let s = reg.state();
            let issuers: Vec<Value> = s
                .issuers
                .values()
                .map(|i| {
                    let types: Vec<&str> = s.authorizations.iter().filter(|a| a.entity_id == i.did).map(|a| a.resource.as_str()).collect();
                    json!({"did": i.did, "name": i.name_en, "versions": i.log.versions.len(), "types": types})
                })
                .collect();
            let human = format!(
                "registry {}: {} entries, {} issuers\n{}",
                s.origin,
                s.size(),
                s.issuers.len(),
                issuers
                    .iter()
                    .map(|i| format!(
                        "  {} {} → {}",
                        i["name"].as_str().unwrap_or(""),
                        i["did"].as_str().unwrap_or(""),
                        i["types"]
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            out.say(&human, &json!({"origin": s.origin, "size": s.size(), "issuers": issuers, "anchor": reg.anchor()}));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let v: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect();
    v?.try_into().ok()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}
