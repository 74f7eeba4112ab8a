//! `bizcred-verifier`: what a bank or agency runs to check presentations offline.
//!
//! Exit codes: 0 accept (or done), 1 reject (or refused), 2 error, 3 indeterminate.

#[global_allocator]
static ALLOC: bizcred_cli::Allocator = bizcred_cli::Allocator;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, Subcommand};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use bizcred_core::keyfile::{self, KdfParams};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::oid4vp;
use bizcred_core::trust::bundle::{self, BundleError, TrustAnchor};
use bizcred_core::trust::state::TrustState;
use bizcred_verifier::request::{self, Pending};
use bizcred_verifier::{receipt, Context as VContext, Policy, Presentation, Report, Verdict};

#[derive(Parser)]
#[command(
    name = "bizcred-verifier",
    version,
    about = "Verify bizcred presentations offline, against a synced trust bundle"
)]
struct Cli {
    #[command(flatten)]
    out: bizcred_cli::Output,
    /// The verifier's data directory.
    #[arg(
        long,
        global = true,
        env = "BIZCRED_VERIFIER_DIR",
        default_value = "verifier-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the verifier: its key (did:jwk), Client Identifier and pinned registry anchor.
    Init {
        /// The registry trust anchor: JSON {origin, log_key_name, log_key}, or a file holding it.
        #[arg(long)]
        anchor: String,
        /// The registry URL for `sync`.
        #[arg(long)]
        registry: Option<String>,
    },
    /// Fetch, verify and store the registry's trust bundle.
    Sync {
        /// The registry URL (else the one given at init).
        registry: Option<String>,
    },
    /// Trust bundles from files (air-gapped verifiers).
    Bundle {
        #[command(subcommand)]
        action: BundleCmd,
    },
    /// Make an OpenID4VP request for a policy, as a URI or a file.
    Request {
        #[arg(long)]
        policy: PathBuf,
        /// Where the wallet posts its answer (a running `serve`); omit for file exchange.
        #[arg(long)]
        response_uri: Option<String>,
        /// Write the signed request object here (offline exchange).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a presentation file (from `bizcred-wallet present --out`).
    Verify {
        presentation: PathBuf,
        #[arg(long)]
        policy: PathBuf,
    },
    /// Serve OpenID4VP 1.0 verifier endpoints.
    Serve {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// The public base URL (for request and response URIs).
        #[arg(long)]
        public_url: String,
    },
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Import a bundle file.
    Import { file: PathBuf },
}

#[derive(Serialize, Deserialize)]
struct VConfig {
    client_id: String,
    kid: String,
    anchor: TrustAnchor,
    registry: Option<String>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn passphrase() -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("BIZCRED_VERIFIER_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password("Verifier key passphrase: ")
            .context("no passphrase (set BIZCRED_VERIFIER_PASSPHRASE)")?,
    ))
}

fn config(dir: &Path) -> Result<VConfig> {
    let p = dir.join("verifier.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {} (hint: run `bizcred-verifier init` first)",
            p.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn key(dir: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(dir.join("verifier.key"))
        .context("reading verifier.key (hint: run `bizcred-verifier init` first)")?;
    keyfile::open(&text, passphrase()?.as_bytes()).map_err(|e| anyhow!("verifier.key: {e}"))
}

/// The trust state: every accepted bundle, replayed in order.
fn trust(dir: &Path, anchor: &TrustAnchor) -> Result<Option<TrustState>> {
    let bdir = dir.join("bundles");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&bdir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => return Ok(None),
    };
    files.sort();
    let mut state: Option<TrustState> = None;
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        // Bundles were verified when stored; replay with their own time so that "now" does not
        // make old ones look like they come from the future.
        let t = bundle::parse(&text)
            .ok()
            .and_then(|b| bizcred_core::time::parse_utc(&b.issued_at).ok())
            .unwrap_or_else(now);
        state = Some(
            bundle::import(state.as_ref(), anchor, &text, t.max(now()))
                .map_err(|e| anyhow!("stored bundle {}: {e}", f.display()))?
                .state,
        );
    }
    Ok(state)
}

/// Reads and parses a policy file.
fn load_policy(path: &Path) -> Result<Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Policy::from_toml(&text)?)
}

/// What `sync` and `bundle import` report: the sentence, the JSON and the exit code.
fn bundle_outcome(
    done: &str,
    stored: std::result::Result<(TrustState, u64), BundleError>,
) -> (String, Value, ExitCode) {
    match stored {
        Ok((state, added)) => {
            let asof = state
                .registry_as_of
                .map(bizcred_core::time::format_utc)
                .unwrap_or_default();
            (
                format!(
                    "{done}: {} entries (+{added}), {} issuers, registry data as of {asof}",
                    state.size(),
                    state.issuers.len()
                ),
                json!({"size": state.size(), "added": added, "registry_as_of": asof}),
                ExitCode::SUCCESS,
            )
        }
        Err(e) => (
            format!(
                "bundle refused ({}): {e}; the trust state was not changed",
                e.code()
            ),
            json!({"refused": e.code(), "reason": e.to_string()}),
            ExitCode::from(1),
        ),
    }
}

fn store_bundle(
    dir: &Path,
    anchor: &TrustAnchor,
    text: &str,
) -> Result<std::result::Result<(TrustState, u64), BundleError>> {
    let held = trust(dir, anchor)?;
    match bundle::import(held.as_ref(), anchor, text, now()) {
        Ok(imported) => {
            let bdir = dir.join("bundles");
            std::fs::create_dir_all(&bdir)?;
            let n = std::fs::read_dir(&bdir)?.count();
            let tmp = bdir.join(format!(".{n:06}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, bdir.join(format!("{n:06}.json")))?;
            Ok(Ok((imported.state, imported.added)))
        }
        Err(e) => {
            if let BundleError::Fork(ev) = &e {
                let edir = dir.join("evidence");
                std::fs::create_dir_all(&edir)?;
                std::fs::write(
                    edir.join(format!("fork-{}.json", now())),
                    serde_json::to_string_pretty(ev.as_ref())?,
                )?;
            }
            Ok(Err(e))
        }
    }
}

fn exit_for(v: Verdict) -> ExitCode {
    match v {
        Verdict::Accept => ExitCode::SUCCESS,
        Verdict::Reject => ExitCode::from(1),
        Verdict::Indeterminate => ExitCode::from(3),
    }
}

fn human_report(r: &Report) -> String {
    let mut s = format!("{:?} under policy {}\n", r.verdict, r.policy)
        .to_uppercase()
        .replacen(
            &format!("UNDER POLICY {}", r.policy.to_uppercase()),
            &format!("under policy {}", r.policy),
            1,
        );
    if let Some(l) = r.last_known {
        s.push_str(&format!("  last known decision on older data: {l:?}\n"));
    }
    for c in &r.credentials {
        s.push_str(&format!(
            "  {} from {} ({}): {}\n",
            c.id,
            c.issuer_name.as_deref().unwrap_or(&c.issuer),
            c.status,
            c.disclosed.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    for f in &r.failures {
        s.push_str(
            &format!(
                "  {:?} {}{}: {}\n",
                f.severity,
                f.credential
                    .as_deref()
                    .map(|c| format!("{c} "))
                    .unwrap_or_default(),
                f.code,
                f.message
            )
            .replace("Reject ", "✗ ")
            .replace("Indeterminate ", "? "),
        );
    }
    if let Some(reg) = &r.as_of.registry {
        s.push_str(&format!(
            "  registry data as of {reg}; {} status lists\n",
            r.as_of.status.len()
        ));
    }
    s.trim_end().to_owned()
}

fn save_receipt(dir: &Path, state: &str, receipt: &Value) -> Result<PathBuf> {
    let rdir = dir.join("receipts");
    std::fs::create_dir_all(&rdir)?;
    let p = rdir.join(format!("{}-{state}.json", now()));
    std::fs::write(&p, serde_json::to_string_pretty(receipt)?)?;
    Ok(p)
}

fn new_pending(cfg: &VConfig, response_uri: &str) -> Pending {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    let state = bizcred_core::base64url_encode(b);
    OsRng.fill_bytes(&mut b);
    Pending {
        state,
        nonce: bizcred_core::base64url_encode(b),
        client_id: cfg.client_id.clone(),
        response_uri: response_uri.to_owned(),
        expires_at: now() + 600,
    }
}

fn save_pending(dir: &Path, p: &Pending) -> Result<()> {
    let rdir = dir.join("requests");
    std::fs::create_dir_all(&rdir)?;
    std::fs::write(
        rdir.join(format!("{}.json", p.state)),
        serde_json::to_string(p)?,
    )?;
    Ok(())
}

fn take_pending(dir: &Path, state: &str) -> Result<Option<Pending>> {
    if state.is_empty()
        || !state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(None);
    }
    let p = dir.join("requests").join(format!("{state}.json"));
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(None);
    };
    // One answer per request: the nonce is spent.
    std::fs::remove_file(&p)?;
    Ok(Some(serde_json::from_str(&text)?))
}

fn evaluate(
    dir: &Path,
    cfg: &VConfig,
    policy: &Policy,
    vp: &Value,
    pending: &Pending,
    raw: &[u8],
) -> Result<(Report, Value)> {
    let trust = trust(dir, &cfg.anchor)?;
    let report = bizcred_verifier::verify(
        &Presentation {
            vp_token: vp,
            nonce: &pending.nonce,
            audience: &pending.client_id,
        },
        policy,
        &VContext {
            trust: trust.as_ref(),
            stapled_status_lists: &[],
            now: now(),
        },
    );
    let r = receipt::sign(&report, raw, &cfg.client_id, &key(dir)?)?;
    Ok((report, r))
}

struct ServeState {
    dir: PathBuf,
    cfg: VConfig,
    policy: Policy,
    public_url: String,
    key: SecretKey,
    results: Mutex<std::collections::HashMap<String, Value>>,
}

fn err(status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": msg.into()})),
    )
        .into_response()
}

async fn new_request(State(s): State<Arc<ServeState>>) -> Response {
    let p = new_pending(&s.cfg, &format!("{}/oid4vp/response", s.public_url));
    if let Err(e) = save_pending(&s.dir, &p) {
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        );
    }
    let uri = oid4vp::request_uri(
        &s.cfg.client_id,
        &format!("{}/oid4vp/request/{}", s.public_url, p.state),
    );
    (
        StatusCode::CREATED,
        Json(json!({"transaction_id": p.state, "request_uri": uri, "policy": s.policy.name})),
    )
        .into_response()
}

async fn request_object(
    State(s): State<Arc<ServeState>>,
    UrlPath(state): UrlPath<String>,
) -> Response {
    let path = s.dir.join("requests").join(format!("{state}.json"));
    let ok_state = state
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let Some(p) = ok_state
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten()
        .and_then(|t| serde_json::from_str::<Pending>(&t).ok())
    else {
        return err(
            StatusCode::NOT_FOUND,
            "invalid_request_uri",
            "no such request",
        );
    };
    let claims = request::request_object(&s.policy, &p, now());
    match oid4vp::sign_request_object(&claims, &s.cfg.kid, &s.key) {
        Ok(jwt) => (
            [(header::CONTENT_TYPE, "application/oauth-authz-req+jwt")],
            jwt,
        )
            .into_response(),
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    }
}

async fn response(State(s): State<Arc<ServeState>>, body: Bytes) -> Response {
    if body.len() > bizcred_verifier::verify::MAX_PRESENTATION_LEN * 2 {
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the response is too large",
        );
    }
    let (vp, state) = match oid4vp::parse_response_body(&body) {
        Ok(x) => x,
        Err(e) => return err(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    let state = state.unwrap_or_default();
    let pending = match take_pending(&s.dir, &state) {
        Ok(Some(p)) if p.expires_at > now() => p,
        Ok(_) => {
            return err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "unknown, answered or expired request (state)",
            )
        }
        Err(e) => {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            )
        }
    };
    match evaluate(&s.dir, &s.cfg, &s.policy, &vp, &pending, &body) {
        Ok((report, receipt)) => {
            let _ = save_receipt(&s.dir, &state, &receipt);
            let summary = json!({"transaction_id": state, "verdict": report.verdict, "failures": report.failures.iter().map(|f| json!({"credential": f.credential, "code": f.code})).collect::<Vec<_>>()});
            if let Ok(mut r) = s.results.lock() {
                r.insert(state.clone(), json!({"report": report, "receipt": receipt}));
            }
            Json(summary).into_response()
        }
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    }
}

async fn result(State(s): State<Arc<ServeState>>, UrlPath(state): UrlPath<String>) -> Response {
    match s.results.lock().ok().and_then(|r| r.get(&state).cloned()) {
        Some(v) => Json(v).into_response(),
        None => err(
            StatusCode::NOT_FOUND,
            "not_found",
            "no result for this transaction (yet)",
        ),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = cli.data_dir.clone();
    let say = |human: &str, data: &Value| cli.out.say(human, data);
    match cli.command {
        Command::Init { anchor, registry } => {
            if dir.join("verifier.json").exists() {
                bail!("{} already holds a verifier", dir.display());
            }
            let text = if anchor.trim_start().starts_with('{') {
                anchor
            } else {
                std::fs::read_to_string(&anchor).with_context(|| format!("reading {anchor}"))?
            };
            let v: Value = serde_json::from_str(&text).context("the anchor is not JSON")?;
            let anchor: TrustAnchor = serde_json::from_value(v.get("anchor").cloned().unwrap_or(v))
                .context("the anchor needs origin, log_key_name and log_key")?;
            std::fs::create_dir_all(&dir)?;
            let k = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
            std::fs::write(
                dir.join("verifier.key"),
                keyfile::seal(&k, passphrase()?.as_bytes(), KdfParams::DEFAULT, &mut OsRng)?,
            )?;
            let did = bizcred_core::did::did_jwk(&k.public_key());
            let cfg = VConfig {
                client_id: format!("{}{did}", oid4vp::DID_PREFIX),
                kid: format!("{did}#0"),
                anchor,
                registry,
            };
            std::fs::write(
                dir.join("verifier.json"),
                serde_json::to_string_pretty(&cfg)?,
            )?;
            say(
                &format!(
                    "verifier created in {}; client id {}",
                    dir.display(),
                    cfg.client_id
                ),
                &json!({"client_id": cfg.client_id}),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { registry } => {
            let cfg = config(&dir)?;
            let url = registry
                .or(cfg.registry.clone())
                .ok_or_else(|| anyhow!("give the registry URL"))?;
            let from = trust(&dir, &cfg.anchor)?.map_or(0, |s| s.size());
            let resp = reqwest::get(format!("{}/bundle?from={from}", url.trim_end_matches('/')))
                .await
                .with_context(|| format!("cannot reach the registry at {url}"))?;
            if !resp.status().is_success() {
                bail!("the registry answered {}", resp.status());
            }
            let text = resp.text().await?;
            let (human, data, code) = bundle_outcome(
                "trust bundle synced",
                store_bundle(&dir, &cfg.anchor, &text)?,
            );
            say(&human, &data);
            Ok(code)
        }
        Command::Bundle {
            action: BundleCmd::Import { file },
        } => {
            let cfg = config(&dir)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let (human, data, code) =
                bundle_outcome("bundle imported", store_bundle(&dir, &cfg.anchor, &text)?);
            say(&human, &data);
            Ok(code)
        }
        Command::Request {
            policy,
            response_uri,
            out,
        } => {
            let cfg = config(&dir)?;
            let pol = load_policy(&policy)?;
            let p = new_pending(
                &cfg,
                response_uri.as_deref().unwrap_or("urn:bizcred:offline"),
            );
            save_pending(&dir, &p)?;
            let jwt = oid4vp::sign_request_object(
                &request::request_object(&pol, &p, now()),
                &cfg.kid,
                &key(&dir)?,
            )?;
            match out {
                Some(f) => {
                    std::fs::write(&f, &jwt)?;
                    say(
                        &format!(
                            "request {} for policy {} written to {}",
                            p.state,
                            pol.name,
                            f.display()
                        ),
                        &json!({"transaction_id": p.state, "file": f}),
                    );
                }
                None => {
                    let uri = format!(
                        "{}{}",
                        oid4vp::SCHEME,
                        format_args!(
                            "?{}",
                            form_query(&[("client_id", &cfg.client_id), ("request", &jwt)])
                        )
                    );
                    say(
                        &uri,
                        &json!({"transaction_id": p.state, "request_uri": uri}),
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            presentation,
            policy,
        } => {
            let cfg = config(&dir)?;
            let pol = load_policy(&policy)?;
            let raw = std::fs::read(&presentation)
                .with_context(|| format!("reading {}", presentation.display()))?;
            if raw.len() > 2 * bizcred_verifier::verify::MAX_PRESENTATION_LEN {
                bail!("the presentation file is larger than the limit");
            }
            let doc: Value =
                serde_json::from_slice(&raw).context("the presentation file is not JSON")?;
            let state = doc["state"].as_str().unwrap_or_default();
            let pending = take_pending(&dir, state)?.ok_or_else(|| anyhow!("the presentation answers no open request of this verifier (state {state:?}); make one with `bizcred-verifier request`"))?;
            let (report, receipt) = evaluate(&dir, &cfg, &pol, &doc["vp_token"], &pending, &raw)?;
            let file = save_receipt(&dir, state, &receipt)?;
            say(
                &format!("{}\n  receipt: {}", human_report(&report), file.display()),
                &json!({"report": report, "receipt": receipt, "receipt_file": file}),
            );
            Ok(exit_for(report.verdict))
        }
        Command::Serve {
            policy,
            listen,
            public_url,
        } => {
            let cfg = config(&dir)?;
            let pol = load_policy(&policy)?;
            let k = key(&dir)?;
            let state = Arc::new(ServeState {
                dir,
                cfg,
                policy: pol,
                public_url: public_url.trim_end_matches('/').to_owned(),
                key: k,
                results: Mutex::new(Default::default()),
            });
            let app = Router::new()
                .route("/requests", post(new_request))
                .route("/oid4vp/request/{state}", get(request_object))
                .route("/oid4vp/response", post(response))
                .route("/transactions/{state}", get(result))
                .route("/healthz", get(|| async { "ok" }))
                .layer(axum::extract::DefaultBodyLimit::max(4 * 1024 * 1024))
                .with_state(state);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            let addr = listener.local_addr()?;
            say(
                &format!("verifier serving on http://{addr}"),
                &json!({"listening": addr.to_string()}),
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn form_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bizcred_cli::main(cli.out, run(cli))
}
