//! The verifier's OpenID4VP 1.0 service (feature `service`), embeddable in another service or
//! a bank's pages: `app(state)` is the router, tested without a socket.
//!
//! - `POST /requests` (operator token): a new request for the default policy: its
//!   `openid4vp://` URI, transaction id and expiry. Requests expire (`request_ttl`) and at
//!   most `max_pending` wait.
//! - `GET /oid4vp/request/{id}`: the signed request object (`oauth-authz-req+jwt`).
//! - `POST /oid4vp/response`: the wallet's `direct_post` answer
//!   (`application/x-www-form-urlencoded` only; anything else is `415`). An accepted
//!   presentation is answered `200 {}`; a refused one `400 invalid_request` with a generic
//!   sentence: the detailed verdict goes to the relying party only, so the endpoint is no
//!   oracle for the presenter. An answer to a request that is unknown, already answered or
//!   expired is `400` with the code `UNKNOWN_STATE`.
//! - `GET /transactions/{id}` (operator token): the report and the signed receipt.
//! - `/desk/…`: the bank page for signed-in staff (see [`crate::desk`]).
//!
//! # Several instances
//!
//! What instances must agree on is behind [`SharedStore`]: pending requests, the outcome of
//! each transaction and the receipts. [`ServiceState::new`] keeps them in the data directory
//! and memory (one instance); [`ServiceState::with_shared`] with `store::pg::PgShared` keeps
//! them in PostgreSQL, so a request made on one instance may be answered on another (verified
//! once: taking a request is atomic across instances), and its outcome, the verdict page and
//! the history are the same on every instance. The rest stays in each instance's copy of the
//! data directory: the pinned anchor, the accepted bundles, the request-signing key, the
//! operator token's hash and the staff accounts; the bank page's sign-in sessions are each
//! instance's own (a proxy in front keeps a member of staff on one instance).
//!
//! The handlers only translate HTTP: what they do is a method of [`ServiceState`] taking the
//! [`Actor`] who asks (the operator for the bearer token, a member of staff on the bank page),
//! which checks the actor's [`Permission`] itself.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand_core::OsRng;
use serde_json::{json, Value};

use bizcred_core::keys::{SecretKey, SignError};
use bizcred_core::oid4vp;
use bizcred_core::time::Clock;
use bizcred_core::ReasonCode;
use bizcred_web::accounts::Accounts;
use bizcred_web::Desk;

use crate::request::{self, Pending};
use crate::staff::{Actor, Forbidden, Permission, StaffError};
use crate::store::shared::{DirShared, SharedStore};
use crate::store::{LastSync, OpenRequest, ReceiptEntry, StoreError, VerifierDir};
use crate::sync::{SyncError, Synced};
use crate::{receipt, Context, Policy, Presentation, Report, Verdict};

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The public base URL (request and response URIs are under it).
    pub public_url: String,
    /// Seconds a request waits for its answer.
    pub request_ttl: i64,
    /// How many requests may wait at once (and how many reports are kept), across every
    /// instance sharing the storage.
    pub max_pending: usize,
    /// Whether the service runs under TLS: the bank page's cookies are then `Secure`.
    pub secure_cookies: bool,
}

pub use crate::store::shared::Outcome;

/// The service's state: the instance's data directory (anchor, bundles, key, staff accounts)
/// and the storage it shares with other instances (pending requests, outcomes, receipts).
pub struct ServiceState {
    dir: VerifierDir,
    shared: Arc<dyn SharedStore>,
    policies: Vec<Policy>,
    key: SecretKey,
    cfg: ServiceConfig,
    clock: Arc<dyn Clock>,
    sync_lock: tokio::sync::Mutex<()>,
    accounts: Accounts,
    desk: Arc<Desk>,
    /// Told each verdict reached (the binary counts them for `/metrics`).
    observer: std::sync::OnceLock<Box<dyn Fn(crate::Verdict) + Send + Sync>>,
}

impl std::fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceState")
            .field("dir", &self.dir.path())
            .field(
                "policies",
                &self.policies.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("cfg", &self.cfg)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// Why the service could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The data directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The receipt could not be signed.
    #[error("signing the receipt: {0}")]
    Receipt(#[from] bizcred_core::data_integrity::ProofError),
    /// The request object could not be signed.
    #[error("signing the request object: {0}")]
    Sign(#[from] SignError),
    /// The actor's role does not allow this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A staff account operation was refused or failed.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// No configured policy has this name.
    #[error("no policy named {0:?} is configured")]
    UnknownPolicy(String),
    /// The policies given to the service are not usable.
    #[error("the service's policies: {0}")]
    Policies(&'static str),
    /// An uploaded presentation file was refused (nothing was stored).
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The trust bundle could not be fetched or kept.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The bank page's message catalogue is incomplete.
    #[error("the bank page's catalogue: {0}")]
    Catalog(String),
}

impl ServiceError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            ServiceError::Store(e) => e.code(),
            ServiceError::Receipt(e) => e.code(),
            ServiceError::Sign(e) => e.code(),
            ServiceError::Forbidden(e) => e.code(),
            ServiceError::Staff(e) => e.code(),
            ServiceError::UnknownPolicy(_) | ServiceError::Policies(_) => ReasonCode::PolicyInvalid,
            ServiceError::Upload(e) => e.code(),
            ServiceError::Sync(e) => e.code(),
            ServiceError::Catalog(_) => ReasonCode::PageFailed,
        }
    }
}

/// Why an uploaded presentation file was refused; nothing is stored and no request consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// Larger than any presentation.
    #[error("the presentation file is larger than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: usize,
    },
    /// Not the JSON a wallet writes (`{"state", "vp_token", ...}`).
    #[error("the presentation file is not a wallet's presentation: {0}")]
    Malformed(&'static str),
    /// Its state names no open request of this verifier.
    #[error(
        "the presentation answers no open request of this verifier: unknown, answered or expired"
    )]
    UnknownState,
}

impl UploadError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            UploadError::TooLarge { .. } => ReasonCode::PresentationTooLarge,
            UploadError::Malformed(_) => ReasonCode::RequestMalformed,
            UploadError::UnknownState => ReasonCode::UnknownState,
        }
    }
}

/// Largest presentation file read (the `vp_token` bound and room for the rest).
pub const MAX_PRESENTATION_FILE: usize = 2 * crate::verify::MAX_PRESENTATION_LEN;

/// A presentation file of the offline exchange (what `bizcred-wallet present --out` writes).
#[derive(Debug, Clone, PartialEq)]
pub struct PresentationFile {
    /// The request it answers.
    pub state: String,
    /// The `vp_token`.
    pub vp_token: Value,
}

impl PresentationFile {
    /// Reads a presentation file: bounded JSON with a `state` string and a `vp_token` object.
    pub fn parse(raw: &[u8]) -> Result<PresentationFile, UploadError> {
        if raw.len() > MAX_PRESENTATION_FILE {
            return Err(UploadError::TooLarge {
                limit: MAX_PRESENTATION_FILE,
            });
        }
        let mut doc: Value =
            serde_json::from_slice(raw).map_err(|_| UploadError::Malformed("it is not JSON"))?;
        let state = doc
            .get("state")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(UploadError::Malformed("it has no state"))?
            .to_owned();
        let vp_token = doc
            .get_mut("vp_token")
            .filter(|v| v.is_object())
            .map(Value::take)
            .ok_or(UploadError::Malformed("it has no vp_token object"))?;
        Ok(PresentationFile { state, vp_token })
    }
}

/// A verification just started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Its transaction id (the request's `state`).
    pub state: String,
    /// The `openid4vp://` URI for the wallet (QR code or link).
    pub request_uri: String,
    /// The policy's name.
    pub policy: String,
    /// When the request expires (Unix seconds).
    pub expires_at: i64,
}

/// Where a started verification is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the wallet.
    Waiting {
        /// The request's `openid4vp://` URI.
        request_uri: String,
        /// The policy's name.
        policy: String,
        /// When it expires.
        expires_at: i64,
    },
    /// The wallet answered: the verdict page is the receipt's.
    Answered {
        /// The receipt's id.
        receipt_id: String,
    },
    /// Unknown, or expired without an answer.
    Gone,
}

/// What a wallet's `direct_post` answer came to.
#[derive(Debug, Clone)]
pub enum Responded {
    /// Verified (accepted or not).
    Verified(Arc<Outcome>),
    /// Not a well-formed response.
    Malformed(String),
    /// No `state`.
    NoState,
    /// Its `state` names no open request.
    UnknownState,
}

/// A kept verification: its signed receipt, and while the service still holds it the full
/// report (checks, failures' sentences, disclosed claims).
#[derive(Debug, Clone)]
pub struct Verification {
    /// The receipt's id.
    pub id: String,
    /// The signed receipt.
    pub receipt: Value,
    /// The full outcome, if still held in memory.
    pub outcome: Option<Arc<Outcome>>,
}

/// How fresh one policy's trust data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFreshness {
    /// The policy's name.
    pub policy: String,
    /// How old the registry data may be for it (seconds).
    pub limit: i64,
    /// Whether the data held is within it (false without data).
    pub fresh: bool,
}

/// The trust bundle held: when it was synced and how fresh it is for each policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStatus {
    /// The registry URL `sync` uses.
    pub registry: Option<String>,
    /// The last accepted bundle.
    pub last_sync: Option<LastSync>,
    /// The registry data's signed time.
    pub registry_as_of: Option<i64>,
    /// Its age now (seconds).
    pub age: Option<i64>,
    /// Entries held.
    pub size: u64,
    /// Registered issuers.
    pub issuers: usize,
    /// Each policy's limit.
    pub policies: Vec<PolicyFreshness>,
}

impl ServiceState {
    /// The state over an opened data directory, its policies (the first is the default, for
    /// `POST /requests` and the bank page), its request-signing key, settings and clock.
    /// Pending requests and receipts are kept in the directory and reports in memory
    /// ([`DirShared`]: one instance); expired requests left in the directory are removed. The
    /// bank page's staff accounts are `staff.json` in the directory.
    pub fn new(
        dir: VerifierDir,
        policies: Vec<Policy>,
        key: SecretKey,
        cfg: ServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<ServiceState, ServiceError> {
        let shared = Arc::new(DirShared::open(&dir, clock.now())?);
        ServiceState::with_shared(dir, shared, policies, key, cfg, clock)
    }

    /// The state as [`ServiceState::new`], keeping what instances share in `shared` (e.g.
    /// PostgreSQL: every instance on the same database, each with a copy of the data
    /// directory).
    pub fn with_shared(
        dir: VerifierDir,
        shared: Arc<dyn SharedStore>,
        policies: Vec<Policy>,
        key: SecretKey,
        mut cfg: ServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<ServiceState, ServiceError> {
        if policies.is_empty() {
            return Err(ServiceError::Policies("at least one policy is needed"));
        }
        if policies
            .iter()
            .enumerate()
            .any(|(i, p)| policies[..i].iter().any(|q| q.name == p.name))
        {
            return Err(ServiceError::Policies("two policies have the same name"));
        }
        cfg.public_url = cfg.public_url.trim_end_matches('/').to_owned();
        let accounts = crate::staff::accounts(dir.path());
        let desk = crate::desk::desk(accounts.clone(), clock.clone(), cfg.secure_cookies)
            .map_err(|e| ServiceError::Catalog(e.to_string()))?;
        Ok(ServiceState {
            dir,
            shared,
            policies,
            key,
            cfg,
            clock,
            sync_lock: tokio::sync::Mutex::new(()),
            accounts,
            desk: Arc::new(desk),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Sets what is told each verdict the service reaches (once; a second call is refused and
    /// returns `false`).
    pub fn observe_verdicts(
        &self,
        observer: impl Fn(crate::Verdict) + Send + Sync + 'static,
    ) -> bool {
        self.observer.set(Box::new(observer)).is_ok()
    }

    /// The current time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The data directory.
    pub fn dir(&self) -> &VerifierDir {
        &self.dir
    }

    /// The storage shared with other instances.
    pub fn shared(&self) -> &Arc<dyn SharedStore> {
        &self.shared
    }

    /// Whether the shared storage can serve (for a readiness check): reachable and, a
    /// database, migrated to this binary's schema. Blocks: call it off the async workers.
    pub fn storage_ready(&self) -> Result<(), ServiceError> {
        Ok(self.shared.ready()?)
    }

    /// The configured policies, the default first.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy named `name` (`None`: the default).
    pub fn policy(&self, name: Option<&str>) -> Result<&Policy, ServiceError> {
        match name {
            None => Ok(&self.policies[0]),
            Some(n) => self
                .policies
                .iter()
                .find(|p| p.name == n)
                .ok_or_else(|| ServiceError::UnknownPolicy(n.chars().take(100).collect())),
        }
    }

    /// The staff accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The bank page's desk (sessions, catalogue).
    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    fn request_uri(&self, state: &str) -> String {
        oid4vp::request_uri(
            &self.dir.config().client_id,
            &format!("{}/oid4vp/request/{state}", self.cfg.public_url),
        )
    }

    /// Starts a verification under the policy `policy` (`None`: the default): a pending
    /// request the wallet fetches by its URI. At most `max_pending` wait.
    pub fn start(&self, actor: &Actor, policy: Option<&str>) -> Result<Started, ServiceError> {
        actor.check(Permission::Verify)?;
        let policy = self.policy(policy)?;
        let now = self.clock.now();
        let request = OpenRequest::generate(
            &self.dir.config().client_id,
            &format!("{}/oid4vp/response", self.cfg.public_url),
            Some(&policy.name),
            now,
            self.cfg.request_ttl,
            &mut OsRng,
        );
        self.shared.create(&request, now, self.cfg.max_pending)?;
        let p = request.pending;
        tracing::info!(by = actor.name(), policy = %policy.name, "verification started");
        Ok(Started {
            request_uri: self.request_uri(&p.state),
            state: p.state,
            policy: policy.name.clone(),
            expires_at: p.expires_at,
        })
    }

    /// The signed request object of the open request `state` (`None`: unknown, answered or
    /// expired). Served to wallets without authentication: it holds nothing secret.
    pub fn request_object(&self, state: &str) -> Result<Option<String>, ServiceError> {
        let now = self.clock.now();
        let Some(open) = self.waiting(state, now)? else {
            return Ok(None);
        };
        let policy = self.policy(open.policy.as_deref())?;
        let claims = request::request_object(policy, &open.pending, now);
        Ok(Some(oid4vp::sign_request_object(
            &claims,
            &self.dir.config().kid,
            &self.key,
        )?))
    }

    /// The request object of `state` as a file for the offline exchange (staff only).
    pub fn request_file(&self, actor: &Actor, state: &str) -> Result<Option<String>, ServiceError> {
        actor.check(Permission::Verify)?;
        self.request_object(state)
    }

    /// Where the verification `state` is.
    pub fn progress(&self, actor: &Actor, state: &str) -> Result<Progress, ServiceError> {
        actor.check(Permission::Verify)?;
        if let Some(o) = self.shared.outcome(state)? {
            return Ok(Progress::Answered {
                receipt_id: o.receipt_id.clone(),
            });
        }
        // Waiting, or taken by an answer being verified (on this or another instance).
        if let Some(w) = self.shared.lookup(state, self.clock.now())? {
            let open = w.request;
            return Ok(Progress::Waiting {
                request_uri: self.request_uri(&open.pending.state),
                policy: self.policy(open.policy.as_deref())?.name.clone(),
                expires_at: open.pending.expires_at,
            });
        }
        // Answered longer ago than reports are held (or, on one instance, before it started).
        Ok(match self.shared.receipt_of(state)? {
            Some(receipt_id) => Progress::Answered { receipt_id },
            None => Progress::Gone,
        })
    }

    /// The request `state` if it waits for its answer (not taken, not expired).
    fn waiting(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, ServiceError> {
        Ok(self
            .shared
            .lookup(state, now)?
            .filter(|w| !w.answering)
            .map(|w| w.request))
    }

    /// Verifies `vp_token` answering the open request (taken, so answered once) and keeps the
    /// outcome.
    fn answer(
        &self,
        state: &str,
        vp_token: &Value,
        raw: &[u8],
    ) -> Result<Option<Arc<Outcome>>, ServiceError> {
        let now = self.clock.now();
        // Taken once, across every instance sharing the storage.
        let Some(open) = self.shared.take(state, now)? else {
            return Ok(None);
        };
        let policy = self.policy(open.policy.as_deref())?;
        let (report, receipt) = assess(
            &self.dir,
            policy,
            &self.key,
            vp_token,
            &open.pending,
            raw,
            now,
        )?;
        tracing::info!(verdict = ?report.verdict, policy = %policy.name, "presentation verified");
        if let Some(observe) = self.observer.get() {
            observe(report.verdict);
        }
        let outcome = self.shared.finish(
            &open.pending.state,
            report,
            receipt,
            now,
            self.cfg.max_pending,
        )?;
        Ok(Some(outcome))
    }

    /// A wallet's `direct_post` body (`vp_token` and `state`): verified when it answers an
    /// open request.
    pub fn respond(&self, body: &[u8]) -> Result<Responded, ServiceError> {
        let (vp, state) = match oid4vp::parse_response_body(body) {
            Ok((vp, Some(state))) => (vp, state),
            Ok((_, None)) => return Ok(Responded::NoState),
            Err(e) => return Ok(Responded::Malformed(e.to_string())),
        };
        Ok(match self.answer(&state, &vp, body)? {
            Some(o) => Responded::Verified(o),
            None => Responded::UnknownState,
        })
    }

    /// Verifies an uploaded presentation file (the offline exchange). A file that is not a
    /// wallet's presentation, or answers no open request, is refused before anything is
    /// stored or any request consumed.
    pub fn upload(&self, actor: &Actor, raw: &[u8]) -> Result<Arc<Outcome>, ServiceError> {
        actor.check(Permission::Upload)?;
        let file = PresentationFile::parse(raw)?;
        let Some(open) = self.waiting(&file.state, self.clock.now())? else {
            return Err(UploadError::UnknownState.into());
        };
        // A request made for a policy this service no longer has is refused before it is
        // consumed.
        self.policy(open.policy.as_deref())?;
        self.answer(&file.state, &file.vp_token, raw)?
            .ok_or_else(|| UploadError::UnknownState.into())
    }

    /// The outcome of the verification `state`, while its report is held (on any instance
    /// sharing the storage).
    pub fn result(&self, actor: &Actor, state: &str) -> Result<Option<Arc<Outcome>>, ServiceError> {
        actor.check(Permission::Verify)?;
        Ok(self.shared.outcome(state)?)
    }

    /// The kept verification `id` (a receipt id).
    pub fn verification(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<Option<Verification>, ServiceError> {
        actor.check(Permission::History)?;
        let Some(receipt) = self.shared.receipt(id)? else {
            return Ok(None);
        };
        let outcome = match id.split_once('-') {
            Some((_, state)) => self.shared.outcome(state)?.filter(|o| o.receipt_id == id),
            None => None,
        };
        Ok(Some(Verification {
            id: id.to_owned(),
            receipt,
            outcome,
        }))
    }

    /// The most recent verifications (from the kept receipts), newest first, older than
    /// `before` when given.
    pub fn history(
        &self,
        actor: &Actor,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<ReceiptEntry>, ServiceError> {
        actor.check(Permission::History)?;
        Ok(self.shared.receipts(limit, before)?)
    }

    /// Seconds since the registry data held was signed (`None` before the first sync), for
    /// `/metrics`.
    pub fn bundle_age(&self) -> Result<Option<i64>, ServiceError> {
        let now = self.clock.now();
        Ok(self
            .dir
            .trust(now)?
            .and_then(|t| t.registry_as_of)
            .map(|at| now - at))
    }

    /// The trust bundle held and its freshness for each policy.
    pub fn trust_status(&self, actor: &Actor) -> Result<TrustStatus, ServiceError> {
        actor.check(Permission::Verify)?;
        let now = self.clock.now();
        let trust = self.dir.trust(now)?;
        let at = trust.as_ref().and_then(|t| t.registry_as_of);
        let age = at.map(|a| now - a);
        let policies = self
            .policies
            .iter()
            .map(|p| {
                let limit = trust.as_ref().map_or(
                    p.max_registry_age.unwrap_or(crate::verify::HARD_LIMIT),
                    |t| crate::verify::registry_age_limit(p, t),
                );
                PolicyFreshness {
                    policy: p.name.clone(),
                    limit,
                    fresh: age.is_some_and(|a| a <= limit && a >= -300),
                }
            })
            .collect();
        Ok(TrustStatus {
            registry: self.dir.config().registry.clone(),
            last_sync: self.dir.last_sync()?,
            registry_as_of: at,
            age,
            size: trust.as_ref().map_or(0, |t| t.size()),
            issuers: trust.as_ref().map_or(0, |t| t.issuers.len()),
            policies,
        })
    }

    /// Syncs the trust bundle from the configured registry (one sync at a time).
    pub async fn sync(&self, actor: &Actor) -> Result<Synced, ServiceError> {
        actor.check(Permission::Sync)?;
        let _one = self.sync_lock.lock().await;
        let synced = crate::sync::sync(&self.dir, None, self.clock.now()).await?;
        match &synced {
            Ok((s, added)) => {
                tracing::info!(
                    by = actor.name(),
                    size = s.size(),
                    added,
                    "trust bundle synced"
                )
            }
            Err(e) => tracing::warn!(by = actor.name(), code = %e.code(), "trust bundle refused"),
        }
        Ok(synced)
    }
}

/// Verifies a presentation against the directory's trust state and signs the receipt, for the
/// request `pending` (already taken): the report and the receipt, kept nowhere yet.
pub fn assess(
    dir: &VerifierDir,
    policy: &Policy,
    key: &SecretKey,
    vp_token: &Value,
    pending: &Pending,
    raw: &[u8],
    now: i64,
) -> Result<(Report, Value), ServiceError> {
    let trust = dir.trust(now)?;
    let report = crate::verify(
        &Presentation {
            vp_token,
            nonce: &pending.nonce,
            audience: &pending.client_id,
        },
        policy,
        &Context {
            trust: trust.as_ref(),
            stapled_status_lists: &[],
            now,
        },
    );
    let receipt = receipt::sign(&report, raw, &dir.config().client_id, key)?;
    Ok((report, receipt))
}

/// [`assess`], then the receipt saved in the directory and the taken request forgotten
/// (`bizcred-verifier verify`): the outcome and the receipt's file.
pub fn evaluate(
    dir: &VerifierDir,
    policy: &Policy,
    key: &SecretKey,
    vp_token: &Value,
    pending: &Pending,
    raw: &[u8],
    now: i64,
) -> Result<(Outcome, std::path::PathBuf), ServiceError> {
    let (report, receipt) = assess(dir, policy, key, vp_token, pending, raw, now)?;
    let receipt_file = dir.save_receipt(&pending.state, &receipt, now)?;
    dir.forget_request(&pending.state)?;
    let receipt_id = crate::store::receipt_id(&receipt_file).unwrap_or_default();
    Ok((
        Outcome {
            report,
            receipt,
            receipt_id,
        },
        receipt_file,
    ))
}

/// The router: the OpenID4VP endpoints and the bank page under `/desk`.
pub fn app(state: Arc<ServiceState>) -> Router {
    Router::new()
        .route("/requests", post(new_request))
        .route("/oid4vp/request/{state}", get(request_object))
        .route("/oid4vp/response", post(response))
        .route("/transactions/{state}", get(result))
        .layer(axum::extract::DefaultBodyLimit::max(
            2 * crate::verify::MAX_PRESENTATION_LEN,
        ))
        .with_state(state.clone())
        .merge(crate::desk::routes(state))
}

/// Runs `f` on the state off the async workers (it reads and writes files or the database).
pub(crate) async fn blocking<T: Send + 'static>(
    s: &Arc<ServiceState>,
    f: impl FnOnce(&ServiceState) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s)).await
}

fn err(status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": msg.into()})),
    )
        .into_response()
}

/// An error body with its reason code (`code`), as the other services answer.
fn coded(status: StatusCode, error: &str, code: ReasonCode, msg: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": msg.into(), "code": code.as_str()})),
    )
        .into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("verifier service: {e}");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the verifier could not complete the request",
    )
}

/// Whether the call carries the operator's bearer token.
fn is_operator(s: &ServiceState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.dir.is_operator(t))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": "invalid_token", "error_description": "the operator token is missing or wrong"})),
    )
        .into_response()
}

async fn new_request(State(s): State<Arc<ServiceState>>, headers: HeaderMap) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    match blocking(&s, |s| s.start(&Actor::Operator, None)).await {
        Ok(Ok(started)) => (
            StatusCode::CREATED,
            Json(json!({
                "transaction_id": started.state,
                "request_uri": started.request_uri,
                "policy": started.policy,
                "expires_at": bizcred_core::time::format_utc(started.expires_at),
            })),
        )
            .into_response(),
        Ok(Err(ServiceError::Store(e @ StoreError::TooManyPending(_)))) => coded(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.code(),
            e.to_string(),
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn request_object(
    State(s): State<Arc<ServiceState>>,
    UrlPath(state): UrlPath<String>,
) -> Response {
    match blocking(&s, move |s| s.request_object(&state)).await {
        Ok(Ok(Some(jwt))) => (
            [(header::CONTENT_TYPE, "application/oauth-authz-req+jwt")],
            jwt,
        )
            .into_response(),
        Ok(Ok(None)) => err(
            StatusCode::NOT_FOUND,
            "invalid_request_uri",
            "no such request, or it was answered or has expired",
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn response(State(s): State<Arc<ServiceState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        return err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "the response must be sent as application/x-www-form-urlencoded (direct_post)",
        );
    }
    match blocking(&s, move |s| s.respond(&body)).await {
        Ok(Ok(Responded::Verified(o))) if o.report.verdict == Verdict::Accept => {
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        Ok(Ok(Responded::Verified(_))) => err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the presentation was not accepted; the verifier's staff have the details",
        ),
        Ok(Ok(Responded::Malformed(m))) => err(StatusCode::BAD_REQUEST, "invalid_request", m),
        Ok(Ok(Responded::NoState)) => err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the response has no state",
        ),
        // Answered already (on this or another instance), expired or never made: the same
        // answer for all three.
        Ok(Ok(Responded::UnknownState)) => coded(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            ReasonCode::UnknownState,
            "unknown, answered or expired request (state)",
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn result(
    State(s): State<Arc<ServiceState>>,
    headers: HeaderMap,
    UrlPath(state): UrlPath<String>,
) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    match blocking(&s, move |s| s.result(&Actor::Operator, &state)).await {
        Ok(Ok(Some(o))) => Json(json!({"report": o.report, "receipt": o.receipt})).into_response(),
        Ok(Ok(None)) => err(
            StatusCode::NOT_FOUND,
            "not_found",
            "no result for this transaction (yet)",
        ),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}
