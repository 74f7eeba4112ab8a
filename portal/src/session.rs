//! The founder's sessions: server-side, in memory, bounded. A session id is 32 random bytes
//! sent only in the `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS); the table is
//! keyed by its SHA-256 (the id itself is not kept). A session ends after an idle and an
//! absolute timeout; a full table drops the expired ones, then the least recently used. A
//! session holds at most [`Limits::max_applications`] applications, each with its agency's
//! capability (a secret: never in a URL, a log line or a `Debug` output).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use sha2::{Digest, Sha256};

use bizcred_schemas::CredentialType;
use bizcred_web::session::random_token;

use crate::agency::View;
use crate::checklist::AppState;

/// The bounds of the session table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A session ends after this many seconds without a request.
    pub idle: i64,
    /// A session ends this many seconds after it began, whatever the activity.
    pub absolute: i64,
    /// Most sessions held (the least recently used is dropped for a new one).
    pub max_sessions: usize,
    /// Most applications one session holds.
    pub max_applications: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle: 4 * 3600,
            absolute: 7 * 86_400,
            max_sessions: 10_000,
            max_applications: 32,
        }
    }
}

/// One application made through the portal, with what its agency last said about it.
#[derive(Clone)]
pub struct Application {
    /// The agency's DID.
    pub agency_did: String,
    /// The agency's registered names (English, French).
    pub agency_en: String,
    /// The agency's French name.
    pub agency_fr: String,
    /// The agency's base URL.
    pub agency_url: String,
    /// The credential type applied for.
    pub ty: CredentialType,
    /// The agency's application id.
    pub application_id: String,
    /// The capability (`<id>.<secret>`): the only key to the application at the agency.
    capability: String,
    /// The last known state.
    pub state: AppState,
    /// When the agency says the last known state began (Unix seconds).
    pub state_time: i64,
    /// The agency's last full answer, if any.
    pub view: Option<View>,
    /// The `openid4vp://` request for the prerequisites, while they are awaited.
    pub request_uri: Option<String>,
    /// When the agency last failed to answer (cleared by an answer).
    pub unreachable_at: Option<i64>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("agency_did", &self.agency_did)
            .field("ty", &self.ty)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// A new application, as the agency answered its creation.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        agency_did: String,
        agency_en: String,
        agency_fr: String,
        agency_url: String,
        ty: CredentialType,
        application_id: String,
        capability: String,
        state: AppState,
        request_uri: Option<String>,
        now: i64,
    ) -> Application {
        Application {
            agency_did,
            agency_en,
            agency_fr,
            agency_url,
            ty,
            application_id,
            capability,
            state,
            state_time: now,
            view: None,
            request_uri,
            unreachable_at: None,
        }
    }

    /// The capability link at the agency (`{agency}/applicant/{capability}`): a secret.
    pub fn follow_uri(&self) -> String {
        format!(
            "{}/applicant/{}",
            self.agency_url.trim_end_matches('/'),
            self.capability
        )
    }

    /// Takes the agency's answer.
    pub fn apply_view(&mut self, v: View) {
        self.state = AppState::parse(&v.state);
        self.state_time = v.updated;
        // The request made at creation stands while prerequisites are awaited, if the view
        // does not repeat it.
        if v.request_uri.is_some() || self.state != AppState::AwaitingPrerequisites {
            self.request_uri = v.request_uri.clone();
        }
        self.unreachable_at = None;
        self.view = Some(v);
    }
}

/// What a session holds.
struct Session {
    csrf: String,
    created: i64,
    last_seen: i64,
    apps: Vec<Application>,
    refreshed: Option<Instant>,
    refresh: Arc<tokio::sync::Mutex<()>>,
}

/// A session as a request sees it.
#[derive(Clone)]
pub struct Snapshot {
    /// The id's SHA-256 (the table's key).
    key: [u8; 32],
    /// The session's CSRF token.
    pub csrf: String,
    /// Its applications, index `n` is `/applications/{n}`.
    pub apps: Vec<Application>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("apps", &self.apps)
            .finish_non_exhaustive()
    }
}

/// Why an application could not be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepError {
    /// The session ended meanwhile.
    Ended,
    /// The session holds [`Limits::max_applications`] already.
    Full,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    limits: Limits,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("created", &self.created)
            .field("apps", &self.apps.len())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// An empty table.
    pub fn new(limits: Limits) -> Sessions {
        Sessions {
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn table(&self) -> MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Every write replaces whole fields: a poisoned table is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self, s: &Session, now: i64) -> bool {
        now - s.last_seen <= self.limits.idle && now - s.created <= self.limits.absolute
    }

    /// Starts a session; answers its id (for the cookie) and its snapshot.
    pub fn create(&self, now: i64) -> (String, Snapshot) {
        let id = random_token(32);
        let k = key(&id);
        let csrf = random_token(32);
        let mut t = self.table();
        if t.len() >= self.limits.max_sessions {
            t.retain(|_, s| {
                now - s.last_seen <= self.limits.idle && now - s.created <= self.limits.absolute
            });
            while t.len() >= self.limits.max_sessions.max(1) {
                let Some(oldest) = t.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
                else {
                    break;
                };
                t.remove(&oldest);
            }
        }
        t.insert(
            k,
            Session {
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                apps: Vec::new(),
                refreshed: None,
                refresh: Arc::new(tokio::sync::Mutex::new(())),
            },
        );
        (
            id,
            Snapshot {
                key: k,
                csrf,
                apps: Vec::new(),
            },
        )
    }

    /// The live session with this id (its idle clock restarts), or `None`.
    pub fn touch(&self, id: &str, now: i64) -> Option<Snapshot> {
        let k = key(id);
        let mut t = self.table();
        let s = t.get_mut(&k)?;
        if !self.live(s, now) {
            t.remove(&k);
            return None;
        }
        s.last_seen = now;
        Some(Snapshot {
            key: k,
            csrf: s.csrf.clone(),
            apps: s.apps.clone(),
        })
    }

    /// The session's current applications.
    pub fn snapshot(&self, of: &Snapshot) -> Option<Snapshot> {
        let t = self.table();
        let s = t.get(&of.key)?;
        Some(Snapshot {
            key: of.key,
            csrf: s.csrf.clone(),
            apps: s.apps.clone(),
        })
    }

    /// Keeps a new application in the session; answers its index.
    pub fn keep(&self, of: &Snapshot, app: Application) -> Result<usize, KeepError> {
        let mut t = self.table();
        let s = t.get_mut(&of.key).ok_or(KeepError::Ended)?;
        if s.apps.len() >= self.limits.max_applications {
            return Err(KeepError::Full);
        }
        s.apps.push(app);
        Ok(s.apps.len() - 1)
    }

    /// Whether the session has room for another application.
    pub fn has_room(&self, of: &Snapshot) -> bool {
        of.apps.len() < self.limits.max_applications
    }

    /// The session's refresh lock (one refresh of its applications at a time).
    pub(crate) fn refresh_lock(&self, of: &Snapshot) -> Option<Arc<tokio::sync::Mutex<()>>> {
        self.table().get(&of.key).map(|s| s.refresh.clone())
    }

    /// Whether the session's applications were refreshed within `within`.
    pub(crate) fn fresh(&self, of: &Snapshot, within: std::time::Duration) -> bool {
        self.table()
            .get(&of.key)
            .and_then(|s| s.refreshed)
            .is_some_and(|at| at.elapsed() <= within)
    }

    /// Applies `f` to application `n` of the session (if both still exist).
    pub(crate) fn update(&self, of: &Snapshot, n: usize, f: impl FnOnce(&mut Application)) {
        if let Some(a) = self
            .table()
            .get_mut(&of.key)
            .and_then(|s| s.apps.get_mut(n))
        {
            f(a);
        }
    }

    /// Marks the session's applications refreshed now.
    pub(crate) fn refreshed(&self, of: &Snapshot) {
        if let Some(s) = self.table().get_mut(&of.key) {
            s.refreshed = Some(Instant::now());
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(n: usize) -> Application {
        Application::new(
            "did:webvh:x:localhost%3A1".into(),
            "Agency".into(),
            "Agence".into(),
            "http://localhost:1".into(),
            CredentialType::CertificateOfIncorporation,
            format!("app-{n}"),
            format!("app-{n}.secret"),
            AppState::AwaitingApproval,
            None,
            0,
        )
    }

    #[test]
    fn sessions_expire_and_the_table_is_bounded() {
        let s = Sessions::new(Limits {
            idle: 10,
            absolute: 100,
            max_sessions: 3,
            max_applications: 2,
        });
        let (a, _) = s.create(0);
        assert!(s.touch(&a, 5).is_some());
        assert!(s.touch(&a, 16).is_none(), "idle for 11 s");
        let (b, _) = s.create(0);
        for t in (9..=99).step_by(9) {
            assert!(s.touch(&b, t).is_some());
        }
        assert!(
            s.touch(&b, 101).is_none(),
            "older than the absolute timeout"
        );
        let ids: Vec<String> = (0..5).map(|i| s.create(200 + i).0).collect();
        assert_eq!(s.len(), 3);
        assert!(s.touch(&ids[0], 205).is_none(), "the oldest was evicted");
        assert!(s.touch(&ids[4], 205).is_some());
        assert!(s.touch("not-a-session", 205).is_none());
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_applications() {
        let s = Sessions::new(Limits {
            max_applications: 2,
            ..Limits::default()
        });
        let (id, snap) = s.create(0);
        assert_eq!(s.keep(&snap, app(0)), Ok(0));
        assert_eq!(s.keep(&snap, app(1)), Ok(1));
        assert_eq!(s.keep(&snap, app(2)), Err(KeepError::Full));
        let now = s.touch(&id, 1).expect("live");
        assert_eq!(now.apps.len(), 2);
        assert!(!s.has_room(&now));
        assert_eq!(now.apps[1].application_id, "app-1");
    }

    #[test]
    fn the_capability_stays_out_of_debug_output() {
        let a = app(7);
        assert_eq!(a.follow_uri(), "http://localhost:1/applicant/app-7.secret");
        let shown = format!("{a:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let s = Sessions::new(Limits::default());
        let (_, snap) = s.create(0);
        s.keep(&snap, a).expect("kept");
        let shown = format!("{:?} {:?}", s, s.snapshot(&snap));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains(&snap.csrf), "{shown}");
    }
}
