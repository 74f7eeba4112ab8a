//! bizcred-portal: the founder's single window. A business founder sees the restaurant's
//! checklist (incorporation, business number, municipal licence, liquor licence, in
//! prerequisite order), applies to each agency from one place, and follows every application
//! in one live tracker.
//!
//! * The agencies come from the registry's trust bundle, verified against the anchor pinned at
//!   `init` ([`bizcred_repository::trust::TrustDir`], the repository's own trust directory):
//!   for each type, the registered issuer authorized for it now ([`agency::agency_for`]); its
//!   URL is its did:webvh DID's base URL.
//! * The portal talks to each agency's applicant API ([`agency::Client`]): the types and the
//!   claims only the founder states, opening an application, following it by its capability,
//!   withdrawing it. It holds no credential and decides nothing: every state it shows is an
//!   agency's answer.
//! * The founder's applications (with their capabilities) live in a bounded, in-memory,
//!   server-side session ([`session`]); none is ever in a URL or a log line.
//! * The pages ([`pages`]): English and French, on `bizcred_web::public`, CSRF on every form,
//!   and a small embedded script polling `/tracker.json` for live updates.
//!
//! Embedding: [`start`] runs the whole service (pages, bundle sync, health and metrics) on a
//! listener in the caller's runtime; `bizcred-portal serve` is the same as a process.

pub mod agency;
pub mod checklist;
pub mod fields;
pub mod pages;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};

use bizcred_core::time::Clock;
use bizcred_core::trust::state::TrustState;
use bizcred_repository::trust::{TrustConfig, TrustDir};
use bizcred_schemas::{CredentialType, ReasonCode};

use crate::agency::{Agency, AgencyError, ApplicantTypes, View, POLL_TIMEOUT};
use crate::checklist::AppState;
use crate::session::{Application, KeepError, Kept, Limits, Sessions, Snapshot};

/// How long an agency's list of types is reused.
pub const TYPES_TTL: i64 = 30;
/// How long an agency's failure to list its types is remembered.
pub const TYPES_FAILURE_TTL: i64 = 3;
/// How long a session's polled states are reused (two tabs polling do not double the load).
pub const POLL_CACHE: Duration = Duration::from_millis(250);
/// Most agencies whose types are remembered.
pub const MAX_AGENCIES: usize = 256;

/// A failure of the portal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trust directory failed, or a bundle was refused.
    #[error(transparent)]
    Trust(#[from] bizcred_repository::Error),
    /// No trust bundle is held yet.
    #[error("no trust bundle has been imported yet (run bizcred-portal sync)")]
    NoTrust,
    /// No registered agency is authorized for the type.
    #[error("no agency is authorized for {0}")]
    NoAgency(&'static str),
    /// The agency failed or refused.
    #[error(transparent)]
    Agency(#[from] AgencyError),
    /// The agency does not take applications for the type.
    #[error("the agency takes no application for {0}")]
    TypeNotOffered(&'static str),
    /// The session holds the most applications it may.
    #[error("this session holds the most applications the portal keeps ({0})")]
    Full(usize),
    /// The step takes no application now (one is under way or issued).
    #[error("the step for {0} takes no application now")]
    StepNotOpen(&'static str),
    /// The session ended.
    #[error("the session has ended")]
    SessionEnded,
    /// The service could not start.
    #[error("the portal could not start: {0}")]
    Start(String),
}

impl Error {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            Error::Trust(e) => e.code(),
            Error::NoTrust => ReasonCode::TrustBundleMissing,
            Error::NoAgency(_) => ReasonCode::NoAgencyForType,
            Error::Agency(e) => e.code(),
            Error::TypeNotOffered(_) => ReasonCode::UnknownCredentialConfiguration,
            Error::Full(_) => ReasonCode::PortalApplicationsFull,
            Error::StepNotOpen(_) => ReasonCode::FormInvalid,
            Error::SessionEnded => ReasonCode::SessionRequired,
            Error::Start(_) => ReasonCode::Unreachable,
        }
    }
}

/// Types listed by agencies, by agency URL: when read, and the answer.
type TypesCache = HashMap<String, (i64, Result<Arc<ApplicantTypes>, AgencyError>)>;

/// The portal: the trust held, the agencies' client, the sessions.
pub struct Portal {
    trust_dir: TrustDir,
    trust: RwLock<Option<Arc<TrustState>>>,
    clock: Arc<dyn Clock>,
    /// The applicant API client.
    pub client: agency::Client,
    /// The founders' sessions.
    pub sessions: Sessions,
    types: Mutex<TypesCache>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("trust_dir", &self.trust_dir)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// The trust directory of a data directory.
fn trust_path(data: &Path) -> PathBuf {
    data.join("trust")
}

impl Portal {
    /// Creates the data directory, pinned to the registry's anchor.
    pub fn init(data: &Path, config: TrustConfig) -> Result<(), Error> {
        TrustDir::init(&trust_path(data), config)?;
        Ok(())
    }

    /// Opens the data directory and replays the bundles held.
    pub fn open(data: &Path, clock: Arc<dyn Clock>, limits: Limits) -> Result<Portal, Error> {
        let trust_dir = TrustDir::open(&trust_path(data))?;
        let held = trust_dir.load(clock.now())?;
        Ok(Portal {
            trust_dir,
            trust: RwLock::new(held.map(Arc::new)),
            clock,
            client: agency::Client::new()?,
            sessions: Sessions::new(limits),
            types: Mutex::new(HashMap::new()),
        })
    }

    /// The current time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The registry's URL pinned at `init`.
    pub fn registry(&self) -> &str {
        &self.trust_dir.config.registry
    }

    /// The verified trust state held, if any.
    pub fn trust(&self) -> Option<Arc<TrustState>> {
        self.trust
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fetches and verifies the registry's newer bundle; answers the log size held.
    pub async fn sync(&self) -> Result<u64, Error> {
        let held = self.trust();
        let state = self.trust_dir.sync(held.as_deref(), self.now()).await?;
        let size = state.size();
        *self.trust.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(state));
        Ok(size)
    }

    /// The agency authorized for `ty` now.
    pub fn agency_for(&self, ty: CredentialType) -> Result<Agency, Error> {
        let trust = self.trust().ok_or(Error::NoTrust)?;
        agency::agency_for(&trust, ty, self.now()).ok_or(Error::NoAgency(ty.vct()))
    }

    /// What `agency` takes applications for (reused for [`TYPES_TTL`] seconds).
    pub async fn applicant_types(
        &self,
        agency: &Agency,
    ) -> Result<Arc<ApplicantTypes>, AgencyError> {
        let now = self.now();
        {
            let cache = self.types.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, answer)) = cache.get(&agency.url) {
                let ttl = if answer.is_ok() {
                    TYPES_TTL
                } else {
                    TYPES_FAILURE_TTL
                };
                if now - at < ttl {
                    return answer.clone();
                }
            }
        }
        let answer = self.client.types(&agency.url).await.map(Arc::new);
        let mut cache = self.types.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_AGENCIES && !cache.contains_key(&agency.url) {
            cache.clear();
        }
        cache.insert(agency.url.clone(), (now, answer.clone()));
        answer
    }

    /// The session's applications with the state each agency answers now (every agency
    /// asked at once, each within [`POLL_TIMEOUT`]; reused for [`POLL_CACHE`]). An agency
    /// that does not answer leaves the last known state, marked unreachable.
    pub async fn refresh(&self, session: &Snapshot) -> Snapshot {
        let Some(lock) = self.sessions.refresh_lock(session) else {
            return session.clone();
        };
        let _one_at_a_time = lock.lock().await;
        let current = self
            .sessions
            .snapshot(session)
            .unwrap_or_else(|| session.clone());
        if self.sessions.fresh(session, POLL_CACHE) {
            return current;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (n, app) in current.apps.iter().enumerate() {
            if app.state.is_settled() {
                continue;
            }
            let (client, uri) = (self.client.clone(), app.follow_uri());
            tasks.spawn(async move { (n, client.view(&uri, POLL_TIMEOUT).await) });
        }
        let now = self.now();
        while let Some(done) = tasks.join_next().await {
            let Ok((n, answer)) = done else { continue };
            self.sessions.update(session, n, |a| match answer {
                Ok(v) if v.application_id == a.application_id => a.apply_view(v),
                Ok(_) => {
                    tracing::warn!(agency = %a.agency_did, "an agency answered for another application");
                    a.unreachable_at = Some(now);
                }
                Err(e) if View::gone(&e) => {
                    tracing::info!(agency = %a.agency_did, "an agency no longer holds an application");
                    a.removed(now);
                }
                Err(e) => {
                    tracing::debug!(agency = %a.agency_did, code = %e.code(), "an application could not be followed");
                    a.unreachable_at = Some(now);
                }
            });
        }
        self.sessions.refreshed(session);
        self.sessions.snapshot(session).unwrap_or(current)
    }

    /// Opens an application for `ty` at the agency authorized for it, with `claims`, and keeps
    /// it in the session; answers its index (and the session's new id when it is the first).
    ///
    /// One at a time per session: the step is checked to take applications, a slot is
    /// reserved, the agency opens the application and it is kept, under the session's apply
    /// lock. An application the agency opened but the portal cannot keep (an answer it
    /// refuses, a session that ended meanwhile) is withdrawn at the agency: none is orphaned.
    pub async fn apply(
        &self,
        session: &Snapshot,
        ty: CredentialType,
        claims: &Map<String, Value>,
    ) -> Result<Kept, Error> {
        let lock = self
            .sessions
            .apply_lock(session)
            .ok_or(Error::SessionEnded)?;
        let _one_at_a_time = lock.lock().await;
        let current = self.refresh(session).await;
        let apps: Vec<(CredentialType, AppState)> = current
            .apps
            .iter()
            .map(|a| (a.ty, a.state.clone()))
            .collect();
        let open = checklist::steps(&apps)
            .iter()
            .any(|(x, st)| *x == ty && st.takes_applications());
        if !open {
            return Err(Error::StepNotOpen(ty.vct()));
        }
        let max = self.sessions.limits().max_applications;
        let keep_error = |e| match e {
            KeepError::Full => Error::Full(max),
            KeepError::Ended => Error::SessionEnded,
        };
        let slot = self.sessions.reserve(&current).map_err(keep_error)?;
        let agency = self.agency_for(ty)?;
        let types = self.applicant_types(&agency).await?;
        let offered = types
            .types
            .iter()
            .find(|t| t.vct == ty.vct())
            .ok_or(Error::TypeNotOffered(ty.vct()))?;
        let created = self
            .client
            .apply(&agency.url, &offered.credential_configuration_id, claims)
            .await?;
        let checked = created.check();
        let app = Application::new(
            agency.did.clone(),
            agency.name_en,
            agency.name_fr,
            agency.url,
            ty,
            created.application_id,
            created.capability,
            AppState::parse(&created.state),
            created.request_uri,
            self.now(),
        );
        if let Err(e) = checked {
            self.abandon(&app).await;
            return Err(e.into());
        }
        match self.sessions.keep(slot, app.clone()) {
            Ok(kept) => {
                tracing::info!(agency = %agency.did, vct = ty.vct(), "application opened");
                Ok(kept)
            }
            Err(e) => {
                self.abandon(&app).await;
                Err(keep_error(e))
            }
        }
    }

    /// Withdraws at its agency an application the portal could not keep.
    async fn abandon(&self, app: &Application) {
        let reason = "The single window could not keep this application; it was withdrawn so that none is left behind.";
        match self.client.withdraw(&app.follow_uri(), Some(reason)).await {
            Ok(_) => {
                tracing::warn!(agency = %app.agency_did, "an application the portal could not keep was withdrawn")
            }
            Err(e) => {
                tracing::warn!(agency = %app.agency_did, code = %e.code(), "an application the portal could not keep could not be withdrawn")
            }
        }
    }

    /// Sends the founder's claims for application `n` of the session to its agency (the
    /// answer to a request for more information), and keeps the agency's answer.
    pub async fn answer(
        &self,
        session: &Snapshot,
        n: usize,
        claims: &Map<String, Value>,
    ) -> Result<(), Error> {
        let current = self.sessions.snapshot(session).ok_or(Error::SessionEnded)?;
        let app = current.apps.get(n).ok_or(Error::SessionEnded)?;
        let v = self.client.claims(&app.follow_uri(), claims).await?;
        tracing::info!(agency = %app.agency_did, "an answer was sent to the agency");
        self.sessions.update(session, n, |a| {
            if v.application_id == a.application_id {
                a.apply_view(v);
            }
        });
        Ok(())
    }

    /// Withdraws application `n` of the session at its agency.
    pub async fn withdraw(&self, session: &Snapshot, n: usize) -> Result<(), Error> {
        let current = self.sessions.snapshot(session).ok_or(Error::SessionEnded)?;
        let app = current.apps.get(n).ok_or(Error::SessionEnded)?;
        let v = self.client.withdraw(&app.follow_uri(), None).await?;
        tracing::info!(agency = %app.agency_did, "application withdrawn");
        self.sessions.update(session, n, |a| {
            if v.application_id == a.application_id {
                a.apply_view(v);
            }
        });
        Ok(())
    }
}

/// How [`start`] runs the portal.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The data directory (made by `bizcred-portal init` or [`Portal::init`]).
    pub data: PathBuf,
    /// Where to listen (`127.0.0.1:0` for any free port).
    pub listen: SocketAddr,
    /// Time between bundle syncs.
    pub sync_every: Duration,
    /// Session bounds.
    pub limits: Limits,
    /// TLS, trusted proxies, shutdown grace.
    pub serve: bizcred_cli::serve::ServeArgs,
    /// Mark the session cookie `Secure` even without TLS here (TLS ended at a proxy).
    pub secure_cookie: bool,
}

impl StartOptions {
    /// Plain HTTP on `listen`, a sync every 60 s, the default bounds.
    pub fn new(data: impl Into<PathBuf>, listen: SocketAddr) -> StartOptions {
        StartOptions {
            data: data.into(),
            listen,
            sync_every: Duration::from_secs(60),
            limits: Limits::default(),
            serve: bizcred_cli::serve::ServeArgs::default(),
            secure_cookie: false,
        }
    }
}

/// A running portal (see [`start`]).
#[derive(Debug)]
pub struct Running {
    /// Its URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The portal itself.
    pub portal: Arc<Portal>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
    sync: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops it (requests in flight finish) and waits until it has.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(s) = self.stop.take() {
            // Refused only when the server already ended: its result is read below.
            let _ = s.send(());
        }
        self.sync.abort();
        match (&mut self.task).await {
            Ok(r) => r.map_err(Error::Start),
            Err(e) => Err(Error::Start(e.to_string())),
        }
    }
}

/// Syncs the bundle now and then every `every`, logging failures.
pub fn spawn_sync(portal: Arc<Portal>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match portal.sync().await {
                Ok(size) => tracing::debug!(size, "trust bundle synced"),
                Err(e) => tracing::warn!(code = %e.code(), "trust bundle sync: {e}"),
            }
            tokio::time::sleep(every.max(Duration::from_millis(100))).await;
        }
    })
}

/// `/readyz`'s checks and `/metrics`' gauges of a portal.
pub fn health_and_metrics(
    portal: &Arc<Portal>,
) -> (bizcred_cli::serve::Health, bizcred_cli::serve::Metrics) {
    let p = portal.clone();
    let health = bizcred_cli::serve::Health::new().check("trust", move || {
        if p.trust().is_some() {
            Ok(())
        } else {
            Err("no trust bundle yet".to_owned())
        }
    });
    let metrics = bizcred_cli::serve::Metrics::new("portal");
    let p = portal.clone();
    metrics.gauge_fn("portal_sessions", "Founders' sessions held", move || {
        Some(p.sessions.len() as f64)
    });
    (health, metrics)
}

/// Runs the portal in the caller's tokio runtime: opens `options.data` (with `clock`), syncs
/// the trust bundle on a schedule, serves the pages with `/healthz`, `/readyz` and `/metrics`
/// on `options.listen`, until [`Running::stop`] (or SIGTERM / Ctrl-C, as every service does).
/// The first sync runs before the pages answer, so a fresh data directory is ready once this
/// returns (a failed first sync is logged; `/readyz` says 503 until one succeeds).
pub async fn start(options: StartOptions, clock: Arc<dyn Clock>) -> Result<Running, Error> {
    let portal = Arc::new(Portal::open(&options.data, clock, options.limits)?);
    if let Err(e) = portal.sync().await {
        tracing::warn!(code = %e.code(), "first trust bundle sync: {e}");
    }
    let sync = spawn_sync(portal.clone(), options.sync_every);
    let server = bizcred_cli::serve::Server::bind(options.listen, &options.serve)
        .await
        .map_err(|e| Error::Start(format!("{e:#}")))?;
    let addr = server
        .local_addr()
        .map_err(|e| Error::Start(format!("{e:#}")))?;
    let url = server.url().map_err(|e| Error::Start(format!("{e:#}")))?;
    let secure = options.secure_cookie || options.serve.tls_cert.is_some();
    let app = pages::routes(portal.clone(), secure);
    let (health, metrics) = health_and_metrics(&portal);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run_until(app, &health, &metrics, async move {
                // Sent by `stop`, or dropped with `Running`: either way the server stops.
                let _ = stopped.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
    });
    Ok(Running {
        url,
        addr,
        portal,
        stop: Some(stop),
        task,
        sync,
    })
}
