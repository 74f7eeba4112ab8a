//! `bizcred-registry`: run and govern the DID and trust registry.
//!
//! Exit codes: 0 done, 1 refused (the registry rejected the entry, or not found), 2 error.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rand_core::OsRng;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use bizcred_cli::{hinted, HttpError, PassphraseArgs, SystemClock};
use bizcred_core::time::{self, Clock};
use bizcred_registry::admin::{
    self, AdminError, AuthorizationStatus, DataDir, KeyName, Planned, Storage,
};
use bizcred_registry::service::{self, AppState};
use bizcred_registry::store::{pg, StoreError};
use bizcred_registry::RegistryError;
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
    /// The key passphrase: --passphrase-file, else $BIZCRED_REGISTRY_PASSPHRASE, else a prompt.
    #[command(flatten)]
    pass: PassphraseArgs,
    /// Keep the log on PostgreSQL (postgres://user@host/database; else
    /// $BIZCRED_REGISTRY_DATABASE_URL, which keeps a password out of the process list)
    /// instead of sled in the data directory. Any number of instances may share it; each
    /// keeps its configuration and keys in its data directory.
    #[arg(long, env = "BIZCRED_REGISTRY_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
}

#[derive(Args, Clone)]
struct Target {
    #[command(flatten)]
    data: Data,
    /// Submit to a running registry instead of writing the data directory.
    #[arg(long, env = "BIZCRED_REGISTRY_URL")]
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
        #[command(flatten)]
        authority: AuthorityArgs,
    },
    /// Give the governing authority its did:webvh DID (init does; for a registry made before).
    AuthorityDid {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        authority: AuthorityArgs,
    },
    /// Recognize another registry's authority for a credential type (or revoke that): the
    /// issuers it authorizes for the type are then accepted by verifiers of this registry.
    Recognize {
        #[command(flatten)]
        target: Target,
        /// The other registry's authority (its DID; TRQP entity_id).
        #[arg(long)]
        authority: String,
        /// The other registry's trust anchor (the JSON its init printed, or a file holding it).
        #[arg(long, required_unless_present = "revoke")]
        anchor: Option<String>,
        #[arg(long = "type", value_parser = parse_type)]
        kind: CredentialType,
        /// Valid from (UTC, RFC 3339); default now.
        #[arg(long)]
        valid_from: Option<String>,
        /// Valid until (UTC, RFC 3339).
        #[arg(long)]
        valid_until: Option<String>,
        /// Revoke the recognition instead (from --at, default now).
        #[arg(long)]
        revoke: bool,
        /// When the revocation takes effect (UTC, RFC 3339); default now.
        #[arg(long, requires = "revoke")]
        at: Option<String>,
    },
    /// Keep a recognized registry's whole trust bundle, to carry it in this registry's bundles
    /// (verified against the anchor its recognition pins). Run it whenever that registry
    /// changes, at least as often as its freshness limits ask.
    RecognizedBundle {
        #[command(flatten)]
        target: Target,
        /// The recognized registry's bundle as a file.
        #[arg(long, conflicts_with = "from")]
        bundle: Option<PathBuf>,
        /// Fetch it from the recognized registry's URL (`<URL>/bundle`).
        #[arg(long)]
        from: Option<String>,
    },
    /// Serve the registry API.
    Serve {
        #[command(flatten)]
        data: Data,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        serve: bizcred_cli::serve::ServeArgs,
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
        #[arg(long = "type", required = true, value_parser = parse_type)]
        types: Vec<CredentialType>,
    },
    /// Authorize an issuer for a credential type.
    Authorize {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        did: String,
        #[arg(long = "type", value_parser = parse_type)]
        kind: CredentialType,
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
        #[arg(long = "type", value_parser = parse_type)]
        kind: CredentialType,
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
    /// Apply this binary's PostgreSQL migrations (serve refuses a database without them);
    /// with --from, move a sled registry's log there, verified.
    Migrate {
        /// The PostgreSQL database (else $BIZCRED_REGISTRY_DATABASE_URL).
        #[arg(long, env = "BIZCRED_REGISTRY_DATABASE_URL", hide_env_values = true)]
        database: String,
        /// A registry data directory on sled: its log (every entry and status list) moves to
        /// the database in one transaction, is verified (same entries, same checkpoint), and
        /// its sled store is marked moved. Stop the registry serving it first; afterwards
        /// serve with --data-dir <it> --database <URL>.
        #[arg(long, value_name = "DATA_DIR")]
        from: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct AuthorityArgs {
    /// Where this registry is served (https://host[:port][/path]; http only for localhost):
    /// the authority's did:webvh DID is made for it, its log served at the DID's location.
    /// Default: https://<the origin's host>.
    #[arg(long)]
    public_url: Option<String>,
    /// The governance framework's URL, named in the authority's DID document (default:
    /// <public URL>/governance, served by the registry).
    #[arg(long)]
    governance_framework: Option<String>,
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

const PASS_VAR: &str = "BIZCRED_REGISTRY_PASSPHRASE";
const PASS_PROMPT: &str = "Registry key passphrase";

/// Runs blocking work (a sled flush, a PostgreSQL call) without holding an async worker.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Data {
    fn dir(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }

    fn storage(&self) -> Storage {
        match &self.database {
            Some(url) => Storage::Postgres(url.clone()),
            None => Storage::Sled,
        }
    }

    fn passphrase(&self) -> Result<Zeroizing<String>> {
        self.pass.get(PASS_VAR, PASS_PROMPT)
    }

    fn hint(&self, e: AdminError) -> anyhow::Error {
        match e {
            AdminError::NotInitialized(_) => hinted(
                e.to_string(),
                bizcred_cli::command_line(&[
                    "bizcred-registry",
                    "init",
                    "--origin",
                    "registry.example.ca/log",
                    "--data-dir",
                    &self.data_dir.to_string_lossy(),
                ]),
            ),
            AdminError::DatabaseEmpty { sled: true, .. } => hinted(
                e.to_string(),
                format!(
                    "bizcred-registry migrate --from {} --database {}",
                    bizcred_cli::command_line(&[self.data_dir.to_string_lossy()]),
                    database_arg(self.database.as_deref().unwrap_or_default())
                ),
            ),
            AdminError::Store(e) => store_hint(e, self.database.as_deref()),
            AdminError::Registry(RegistryError::Store(e)) => {
                store_hint(e, self.database.as_deref())
            }
            e => e.into(),
        }
    }

    fn open(&self, now: i64) -> Result<admin::AnyRegistry> {
        let pass = self.passphrase()?;
        blocking(|| self.dir().open(pass.as_bytes(), now, &self.storage()))
            .map_err(|e| self.hint(e))
    }
}

/// A database URL for a hint: the URL itself when it holds no secret, else the variable that
/// should hold it.
fn database_arg(url: &str) -> String {
    if admin::redact_url(url) == url {
        bizcred_cli::command_line(&[url])
    } else {
        "\"$BIZCRED_REGISTRY_DATABASE_URL\"".to_owned()
    }
}

/// A storage error, with the command that fixes it when there is one.
fn store_hint(e: StoreError, database: Option<&str>) -> anyhow::Error {
    match (e, database) {
        (e @ StoreError::SchemaBehind { .. }, Some(url)) => hinted(
            e.to_string(),
            format!("bizcred-registry migrate --database {}", database_arg(url)),
        ),
        (e, _) => e.into(),
    }
}

/// A credential type by slug or vct.
fn parse_type(s: &str) -> Result<CredentialType, String> {
    CredentialType::from_slug(s)
        .or_else(|| CredentialType::from_vct(s))
        .ok_or_else(|| {
            format!(
                "unknown credential type {s}; one of: {}",
                CredentialType::ALL.map(|t| t.slug()).join(", ")
            )
        })
}

fn parse_time(s: Option<&str>, now: i64) -> Result<i64> {
    match s {
        None => Ok(now),
        Some(t) => time::parse_utc(t)
            .map_err(|_| anyhow!("{t} is not a UTC time like 2026-11-22T21:00:00Z")),
    }
}

/// Signs the entries a governance command plans (with the authority key of the data
/// directory) and submits them as one batch: to the data directory, or with `--url` to a
/// running registry. Exit 1 when the registry refuses them (nothing is appended then).
async fn governance(
    out: &bizcred_cli::Output,
    target: &Target,
    now: i64,
    plan: impl FnOnce(&str, &bizcred_core::keys::SecretKey) -> Result<Vec<Planned>, AdminError>,
) -> Result<ExitCode> {
    let data = &target.data;
    let cfg = data.dir().config().map_err(|e| data.hint(e))?;
    let pass = data.passphrase()?;
    let authority = data
        .dir()
        .key(KeyName::Authority, pass.as_bytes())
        .map_err(|e| data.hint(e))?;
    let planned = plan(&cfg.origin, &authority)?;
    let whats: Vec<String> = planned.iter().map(|p| p.what.clone()).collect();
    let entries: Vec<Value> = planned.into_iter().map(|p| p.entry).collect();
    let outcome: std::result::Result<u64, (String, String)> = match &target.url {
        None => {
            let mut reg = blocking(|| data.dir().open(pass.as_bytes(), now, &data.storage()))
                .map_err(|e| data.hint(e))?;
            match blocking(|| reg.append_all(entries, now)) {
                Ok(r) => Ok(r.start),
                Err(e @ RegistryError::Entry(_)) => {
                    Err((e.code().as_str().to_owned(), e.to_string()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Some(url) => {
            let token = target
                .token
                .as_deref()
                .ok_or_else(|| anyhow!("--url needs --token or $BIZCRED_REGISTRY_TOKEN"))?;
            let url = url.trim_end_matches('/');
            let resp = reqwest::Client::new()
                .post(format!("{url}/entries"))
                .bearer_auth(token)
                .json(&Value::Array(entries))
                .send()
                .await
                .with_context(|| format!("contacting the registry at {url}"))?;
            let status = resp.status();
            let body = resp.bytes().await?;
            if status.is_success() {
                let v: Value =
                    serde_json::from_slice(&body).context("the registry's answer is not JSON")?;
                Ok(v["index"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("the registry's answer has no index: {v}"))?)
            } else {
                let e = HttpError::from_body(status.as_u16(), &body);
                if status.is_client_error() && ![401, 403, 413, 415].contains(&status.as_u16()) {
                    Err((e.error, e.description))
                } else {
                    return Err(e.into());
                }
            }
        }
    };
    match outcome {
        Ok(start) => {
            for (i, what) in whats.iter().enumerate() {
                let index = start + i as u64;
                out.say(
                    &format!("{what}: appended as entry {index}"),
                    &json!({"result": "appended", "what": what, "index": index}),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((code, reason)) => {
            let what = whats.join("; ");
            out.say(
                &format!("refused: {what}: {reason} ({code}); nothing was appended"),
                &json!({"result": "refused", "what": what, "code": code, "reason": reason}),
            );
            Ok(ExitCode::from(1))
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let out = cli.out;
    let clock = SystemClock::from_env()?;
    let now = clock.now();
    match cli.command {
        Command::Init {
            data,
            origin,
            authority,
        } => {
            let pass = data.passphrase()?;
            let public_url = authority
                .public_url
                .clone()
                .unwrap_or_else(|| admin::default_public_url(&origin));
            // The URL is checked before anything is written.
            admin::did_host_and_path(&public_url)?;
            let made = blocking(|| {
                data.dir()
                    .init(&origin, pass.as_bytes(), now, &mut OsRng, &data.storage())
            })
            .map_err(|e| data.hint(e))?;
            let did = data.dir().create_authority_did(
                pass.as_bytes(),
                &public_url,
                authority.governance_framework.as_deref(),
                now,
                &mut OsRng,
            )?;
            let size = made.registry.state().size();
            out.say(
                &format!(
                    "registry {origin} created in {}\nadmin token (shown once; keep it secret): {}\ntrust anchor for verifiers: {}\nauthority DID: {} (its log: {}; TRQP endpoint: {})",
                    data.data_dir.display(),
                    made.admin_token.as_str(),
                    serde_json::to_string(&made.anchor)?,
                    did.did,
                    did.log_url,
                    did.trqp,
                ),
                &json!({"origin": origin, "admin_token": made.admin_token.as_str(), "anchor": made.anchor, "size": size, "storage": data.storage().describe(),
                        "authority_did": did.did, "authority_did_log": did.log_url, "trqp": did.trqp, "governance_framework": did.governance_framework}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::AuthorityDid { data, authority } => {
            let cfg = data.dir().config().map_err(|e| data.hint(e))?;
            let pass = data.passphrase()?;
            let public_url = authority
                .public_url
                .clone()
                .unwrap_or_else(|| admin::default_public_url(&cfg.origin));
            let did = data.dir().create_authority_did(
                pass.as_bytes(),
                &public_url,
                authority.governance_framework.as_deref(),
                now,
                &mut OsRng,
            )?;
            out.say(
                &format!(
                    "authority DID {} (its log: {}; TRQP endpoint: {}; governance framework: {})",
                    did.did, did.log_url, did.trqp, did.governance_framework
                ),
                &json!({"authority_did": did.did, "authority_did_log": did.log_url, "trqp": did.trqp, "governance_framework": did.governance_framework}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Recognize {
            target,
            authority,
            anchor,
            kind,
            valid_from,
            valid_until,
            revoke,
            at,
        } => {
            if revoke {
                let at = parse_time(at.as_deref(), now)?;
                return governance(&out, &target, now, |origin, key| {
                    Ok(vec![admin::revoke_recognition(
                        origin, key, &authority, kind, at, now, &mut OsRng,
                    )?])
                })
                .await;
            }
            let anchor = anchor.unwrap_or_default();
            let text = if anchor.trim_start().starts_with('{') {
                anchor
            } else {
                std::fs::read_to_string(&anchor).with_context(|| format!("reading {anchor}"))?
            };
            let anchor: bizcred_core::trust::bundle::TrustAnchor = serde_json::from_str(&text)
                .context(
                    "--anchor is not a trust anchor ({\"origin\", \"log_key_name\", \"log_key\"})",
                )?;
            let from = parse_time(valid_from.as_deref(), now)?;
            let until = valid_until
                .as_deref()
                .map(|u| parse_time(Some(u), now))
                .transpose()?;
            let ours = match target.data.dir().authority_did_log()? {
                Some(log) => Some(
                    bizcred_registry::sequencer::AuthorityDid::from_log(&log, now)
                        .map_err(|e| anyhow!("the authority's DID log does not verify: {e}"))?
                        .did,
                ),
                None => None,
            };
            governance(&out, &target, now, |origin, key| {
                Ok(vec![admin::recognize(
                    origin,
                    key,
                    ours.as_deref().unwrap_or(origin),
                    &authority,
                    &anchor,
                    kind,
                    from,
                    until,
                    now,
                    &mut OsRng,
                )?])
            })
            .await
        }
        Command::RecognizedBundle {
            target,
            bundle,
            from,
        } => {
            let text = match (bundle, from) {
                (Some(f), _) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, Some(u)) => {
                    let url = format!("{}/bundle", u.trim_end_matches('/'));
                    let resp = reqwest::get(&url)
                        .await
                        .with_context(|| format!("fetching {url}"))?;
                    let status = resp.status();
                    let body = resp.bytes().await?;
                    if !status.is_success() {
                        return Err(HttpError::from_body(status.as_u16(), &body))
                            .with_context(|| format!("fetching {url}"));
                    }
                    String::from_utf8(body.to_vec()).context("the bundle is not UTF-8")?
                }
                (None, None) => {
                    bail!("give --bundle <file> or --from <the recognized registry's URL>")
                }
            };
            let outcome: std::result::Result<(String, u64), (String, String)> = match &target.url {
                None => {
                    let data = &target.data;
                    let mut reg = data.open(now)?;
                    match blocking(|| reg.put_recognized_bundle(&text, now)) {
                        Ok(r) => Ok(r),
                        Err(e @ (RegistryError::Recognized(_) | RegistryError::Entry(_))) => {
                            Err((e.code().as_str().to_owned(), e.to_string()))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(url) => {
                    let token = target
                        .token
                        .as_deref()
                        .ok_or_else(|| anyhow!("--url needs --token or $BIZCRED_REGISTRY_TOKEN"))?;
                    let url = url.trim_end_matches('/');
                    let resp = reqwest::Client::new()
                        .post(format!("{url}/recognized-bundles"))
                        .bearer_auth(token)
                        .body(text)
                        .send()
                        .await
                        .with_context(|| format!("contacting the registry at {url}"))?;
                    let status = resp.status();
                    let body = resp.bytes().await?;
                    if status.is_success() {
                        let v: Value = serde_json::from_slice(&body)
                            .context("the registry's answer is not JSON")?;
                        Ok((
                            v["authority_id"].as_str().unwrap_or_default().to_owned(),
                            v["size"].as_u64().unwrap_or_default(),
                        ))
                    } else {
                        let e = HttpError::from_body(status.as_u16(), &body);
                        if status.as_u16() == 400 {
                            Err((e.error, e.description))
                        } else {
                            return Err(e.into());
                        }
                    }
                }
            };
            match outcome {
                Ok((authority, size)) => {
                    out.say(
                        &format!("kept the bundle of recognized authority {authority} ({size} entries); this registry's bundles carry it"),
                        &json!({"result": "kept", "authority_id": authority, "size": size}),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err((code, reason)) => {
                    out.say(
                        &format!("refused: {reason} ({code})"),
                        &json!({"result": "refused", "code": code, "reason": reason}),
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Serve {
            data,
            listen,
            serve,
        } => {
            let cfg = data.dir().config().map_err(|e| data.hint(e))?;
            let hashes = data.dir().admin_token_hashes()?;
            let reg = data.open(now)?;
            let size = reg.state().size();
            let state = Arc::new(AppState {
                registry: Mutex::new(reg),
                admin_token_hashes: hashes,
                clock: Arc::new(clock),
            });
            if let Storage::Postgres(_) = data.storage() {
                // Other instances append too: catch up in the background every second.
                tokio::spawn(service::keep_fresh(
                    state.clone(),
                    std::time::Duration::from_secs(1),
                ));
            }
            let server = bizcred_cli::serve::Server::bind(listen, &serve).await?;
            let storage = data.storage().describe();
            let (health, metrics) = observability(&state, &data.storage());
            let url = server.url()?;
            out.say(
                &format!(
                    "registry {} serving on {url} ({size} entries, storage: {storage})",
                    cfg.origin
                ),
                &json!({"listening": server.local_addr()?.to_string(), "origin": cfg.origin, "size": size, "storage": storage}),
            );
            server.run(service::app(state), &health, &metrics).await?;
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
                    let status = resp.status();
                    if !status.is_success() {
                        let body = resp.bytes().await?;
                        return Err(HttpError::from_body(status.as_u16(), &body))
                            .with_context(|| format!("fetching {url}"));
                    }
                    resp.text().await?
                }
                (None, None) => bail!("give --did-log <file> or --did <did>"),
            };
            governance(&out, &target, now, |origin, authority| {
                let (_, plan) = admin::onboard(
                    origin, authority, &log, &name_en, &name_fr, &types, now, &mut OsRng,
                )?;
                Ok(plan)
            })
            .await
        }
        Command::Authorize {
            target,
            did,
            kind,
            valid_from,
            valid_until,
        } => {
            let from = parse_time(valid_from.as_deref(), now)?;
            let until = valid_until
                .as_deref()
                .map(|u| parse_time(Some(u), now))
                .transpose()?;
            governance(&out, &target, now, |origin, authority| {
                Ok(vec![admin::authorize(
                    origin, authority, &did, kind, from, until, now, &mut OsRng,
                )?])
            })
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
            let at = parse_time(at.as_deref(), now)?;
            let status = if reinstate {
                AuthorizationStatus::Active
            } else if revoke {
                AuthorizationStatus::Revoked
            } else {
                AuthorizationStatus::Suspended
            };
            governance(&out, &target, now, |origin, authority| {
                Ok(vec![admin::change_authorization(
                    origin,
                    authority,
                    &did,
                    kind,
                    status,
                    at,
                    retroactive,
                    now,
                    &mut OsRng,
                )?])
            })
            .await
        }
        Command::DeclareCompromise {
            target,
            did,
            key_id,
            at,
        } => {
            let at = parse_time(Some(&at), now)?;
            governance(&out, &target, now, |origin, authority| {
                Ok(vec![admin::declare_compromise(
                    origin, authority, &did, &key_id, at, now, &mut OsRng,
                )?])
            })
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
                    let status = resp.status();
                    if !status.is_success() {
                        let body = resp.bytes().await?;
                        return Err(HttpError::from_body(status.as_u16(), &body))
                            .context("the registry refused the bundle request");
                    }
                    resp.text().await?
                }
                None => {
                    let reg = data.open(now)?;
                    blocking(|| reg.bundle(from, now))?
                }
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
        Command::Migrate { database, from } => {
            let shown = Storage::Postgres(database.clone()).describe();
            let migrated = blocking(|| pg::migrate(&database)).map_err(|e| store_hint(e, None))?;
            let applied = if migrated.applied.is_empty() {
                format!("{shown} is current (migrations {:?})", migrated.versions)
            } else {
                format!("{shown}: applied migrations {:?}", migrated.applied)
            };
            let Some(dir) = from else {
                out.say(
                    &applied,
                    &json!({"database": shown, "applied": migrated.applied, "versions": migrated.versions}),
                );
                return Ok(ExitCode::SUCCESS);
            };
            let data_dir = DataDir::new(&dir);
            let moved =
                blocking(|| data_dir.move_to_postgres(&database, now)).map_err(|e| match e {
                    AdminError::Store(e @ StoreError::Sled(_)) => anyhow!(
                        "{e}\nhint: stop the registry serving {} first (sled allows one process)",
                        dir.display()
                    ),
                    e => e.into(),
                })?;
            let size_line = moved.checkpoint.lines().nth(1).unwrap_or("");
            let root_line = moved.checkpoint.lines().nth(2).unwrap_or("");
            out.say(
                &format!(
                    "{applied}\n{} {} entries and {} status lists from {} to {shown}; verified: the same entries, the same checkpoint (size {size_line}, root {root_line}); the sled store is marked moved\nserve it with: bizcred-registry serve --data-dir {} --database <URL>",
                    if moved.already { "already moved:" } else { "moved" },
                    moved.entries,
                    moved.blobs,
                    dir.display(),
                    dir.display(),
                ),
                &json!({"database": shown, "applied": migrated.applied, "versions": migrated.versions,
                        "moved": {"from": dir, "entries": moved.entries, "blobs": moved.blobs,
                                  "checkpoint": moved.checkpoint, "already": moved.already, "verified": true}}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { data } => {
            let v = admin::status(&data.open(now)?);
            let issuers = v["issuers"].as_array().cloned().unwrap_or_default();
            let human = format!(
                "registry {}: {} entries, {} issuers\n{}",
                v["origin"].as_str().unwrap_or(""),
                v["size"],
                issuers.len(),
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
            out.say(&human, &v);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}

/// `/readyz` (the store answers; on PostgreSQL, its migrations are this binary's) and
/// `/metrics` (the log's size and the age of the newest checkpoint's data).
fn observability(
    state: &Arc<AppState>,
    storage: &Storage,
) -> (bizcred_cli::serve::Health, bizcred_cli::serve::Metrics) {
    let metrics = bizcred_cli::serve::Metrics::new("registry");
    let s = state.clone();
    metrics.gauge_fn(
        "log_entries",
        "Entries in the governance log this instance has replayed",
        move || match s.registry.lock() {
            Ok(r) => Some(r.state().size() as f64),
            Err(_) => {
                // No sample rather than a made-up size; /readyz reports the same lock.
                tracing::warn!("log size for /metrics: the registry's lock is poisoned");
                None
            }
        },
    );
    let store = state.clone();
    let mut health = bizcred_cli::serve::Health::new().check("storage", move || {
        let r = store
            .registry
            .lock()
            .map_err(|_| "the registry's lock is poisoned".to_owned())?;
        r.store().head().map(|_| ()).map_err(|e| e.to_string())
    });
    if let Storage::Postgres(url) = storage {
        let url = url.clone();
        health = health.check(
            "migrations",
            move || match bizcred_registry::store::pg::schema(&url) {
                Ok(bizcred_registry::store::pg::Schema::Current) => Ok(()),
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            },
        );
    }
    (health, metrics)
}
