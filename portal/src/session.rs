//! The founder's sessions: server-side, in memory, bounded. A session id is 32 random bytes
//! sent only in the `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS); the table is
//! keyed by its SHA-256 (the id itself is not kept). A session ends after an idle and an
//! absolute timeout. A session begins with the founder's first application (a page read
//! begins none); a full table drops the expired ones, then the least recently used one that
//! holds no application, and refuses a new session rather than drop a founder's
//! applications. The id changes when the first application is kept (the old one stops
//! working). A session holds at most [`Limits::max_applications`] applications, each with
//! its agency's capability (a secret: never in a URL, a log line or a `Debug` output).

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
    /// Most sessions held (the least recently used without applications is dropped for a
    /// new one).
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

    /// The agency no longer holds it (swept or removed): final, with no request or offer.
    pub fn removed(&mut self, now: i64) {
        self.state = AppState::Removed;
        self.state_time = now;
        self.request_uri = None;
        self.unreachable_at = None;
        if let Some(v) = &mut self.view {
            v.offer = None;
            v.request_uri = None;
        }
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
    /// Slots reserved for applications being opened at an agency.
    reserved: usize,
    refreshed: Option<Instant>,
    refresh: Arc<tokio::sync::Mutex<()>>,
    /// One application opened at a time (the check that a step is open, the agency's
    /// answer and keeping it are one step).
    apply: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    /// Holds applications (kept, or being opened): never dropped for another session.
    fn holds(&self) -> bool {
        !self.apps.is_empty() || self.reserved > 0
    }
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

/// The table holds [`Limits::max_sessions`] live sessions, each holding applications: no
/// session is dropped for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// A slot reserved for an application being opened (released when dropped unless kept).
#[derive(Debug)]
pub struct Reservation<'a> {
    sessions: &'a Sessions,
    key: [u8; 32],
    held: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            if let Some(s) = self.sessions.table().get_mut(&self.key) {
                s.reserved = s.reserved.saturating_sub(1);
            }
        }
    }
}

/// An application kept: its index, and the session's new id when this was its first (the
/// cookie must change; the old id no longer works).
#[derive(Debug, Clone)]
pub struct Kept {
    /// Index `n` of `/applications/{n}`.
    pub n: usize,
    /// The session's new id, when it changed.
    pub new_id: Option<String>,
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

    /// Starts a session (with `csrf` as its CSRF token, or a new one); answers its id (for
    /// the cookie) and its snapshot. A full table drops the expired sessions, then the least
    /// recently used ones holding no application; when every one holds applications, none is
    /// dropped and the new session is refused.
    pub fn create(&self, now: i64, csrf: Option<String>) -> Result<(String, Snapshot), TableFull> {
        let id = random_token(32);
        let k = key(&id);
        let csrf = csrf.unwrap_or_else(|| random_token(32));
        let mut t = self.table();
        if t.len() >= self.limits.max_sessions {
            t.retain(|_, s| self.live(s, now));
            while t.len() >= self.limits.max_sessions.max(1) {
                let Some(oldest) = t
                    .iter()
                    .filter(|(_, s)| !s.holds())
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| *k)
                else {
                    return Err(TableFull);
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
                reserved: 0,
                refreshed: None,
                refresh: Arc::new(tokio::sync::Mutex::new(())),
                apply: Arc::new(tokio::sync::Mutex::new(())),
            },
        );
        Ok((
            id,
            Snapshot {
                key: k,
                csrf,
                apps: Vec::new(),
            },
        ))
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

    /// Reserves a slot for an application about to be opened at an agency (the session
    /// cannot be dropped for another meanwhile).
    pub fn reserve(&self, of: &Snapshot) -> Result<Reservation<'_>, KeepError> {
        let mut t = self.table();
        let s = t.get_mut(&of.key).ok_or(KeepError::Ended)?;
        if s.apps.len() + s.reserved >= self.limits.max_applications {
            return Err(KeepError::Full);
        }
        s.reserved += 1;
        Ok(Reservation {
            sessions: self,
            key: of.key,
            held: true,
        })
    }

    /// Keeps a new application in the slot reserved for it; answers its index, and the
    /// session's new id when it is the session's first application.
    pub fn keep(&self, mut slot: Reservation<'_>, app: Application) -> Result<Kept, KeepError> {
        let mut t = self.table();
        let mut s = t.remove(&slot.key).ok_or(KeepError::Ended)?;
        slot.held = false;
        s.reserved = s.reserved.saturating_sub(1);
        s.apps.push(app);
        let n = s.apps.len() - 1;
        if n > 0 {
            t.insert(slot.key, s);
            return Ok(Kept { n, new_id: None });
        }
        let id = random_token(32);
        t.insert(key(&id), s);
        Ok(Kept {
            n,
            new_id: Some(id),
        })
    }

    /// Whether the session has room for another application.
    pub fn has_room(&self, of: &Snapshot) -> bool {
        of.apps.len() < self.limits.max_applications
    }

    /// The session's apply lock (one application opened at a time).
    pub(crate) fn apply_lock(&self, of: &Snapshot) -> Option<Arc<tokio::sync::Mutex<()>>> {
        self.table().get(&of.key).map(|s| s.apply.clone())
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

    fn create(s: &Sessions, now: i64) -> (String, Snapshot) {
        s.create(now, None).expect("room")
    }

    /// Keeps `app` in the session `id`; answers its index and the session's id after it.
    fn keep(s: &Sessions, id: &str, a: Application) -> Result<(usize, String), KeepError> {
        let snap = s.touch(id, 0).ok_or(KeepError::Ended)?;
        let slot = s.reserve(&snap)?;
        let kept = s.keep(slot, a)?;
        Ok((kept.n, kept.new_id.unwrap_or_else(|| id.to_owned())))
    }

    #[test]
    fn sessions_expire_and_the_table_is_bounded() {
        let s = Sessions::new(Limits {
            idle: 10,
            absolute: 100,
            max_sessions: 3,
            max_applications: 2,
        });
        let (a, _) = create(&s, 0);
        assert!(s.touch(&a, 5).is_some());
        assert!(s.touch(&a, 16).is_none(), "idle for 11 s");
        let (b, _) = create(&s, 0);
        for t in (9..=99).step_by(9) {
            assert!(s.touch(&b, t).is_some());
        }
        assert!(
            s.touch(&b, 101).is_none(),
            "older than the absolute timeout"
        );
        let ids: Vec<String> = (0..5).map(|i| create(&s, 200 + i).0).collect();
        assert_eq!(s.len(), 3);
        assert!(s.touch(&ids[0], 205).is_none(), "the oldest was evicted");
        assert!(s.touch(&ids[4], 205).is_some());
        assert!(s.touch("not-a-session", 205).is_none());
    }

    #[test]
    fn a_full_table_drops_sessions_without_applications_and_never_a_founders() {
        let s = Sessions::new(Limits {
            max_sessions: 3,
            ..Limits::default()
        });
        let (a, _) = create(&s, 0);
        let (_, a2) = keep(&s, &a, app(0)).expect("kept");
        let (b, _) = create(&s, 1);
        let (c, c_snap) = create(&s, 2);
        // A slot being opened holds the session too.
        let slot = s.reserve(&c_snap).expect("room");
        // b is the only session without applications: dropped, though a is older.
        let (d, _) = create(&s, 3);
        assert!(s.touch(&b, 4).is_none(), "b held nothing");
        assert!(s.touch(&a2, 4).is_some(), "a's applications are kept");
        assert!(s.touch(&c, 4).is_some(), "c is opening one");
        // d holds nothing: dropped for e; then every session holds applications.
        let (e, _) = create(&s, 5);
        assert!(s.touch(&d, 5).is_none());
        keep(&s, &e, app(1)).expect("kept");
        assert_eq!(s.create(6, None).map(|_| ()), Err(TableFull));
        assert_eq!(s.len(), 3);
        // The abandoned slot is released: c may be dropped again.
        drop(slot);
        assert!(s.create(7, None).is_ok());
        assert!(s.touch(&c, 8).is_none());
    }

    #[test]
    fn the_session_id_changes_with_its_first_application() {
        let s = Sessions::new(Limits::default());
        let (id, snap) = s.create(0, Some("token".into())).expect("room");
        assert_eq!(snap.csrf, "token");
        let (n, id2) = keep(&s, &id, app(0)).expect("kept");
        assert_eq!(n, 0);
        assert_ne!(id, id2);
        assert!(s.touch(&id, 1).is_none(), "the old id no longer works");
        let now = s.touch(&id2, 1).expect("the new one does");
        assert_eq!(now.csrf, "token");
        assert_eq!(now.apps.len(), 1);
        let (n, id3) = keep(&s, &id2, app(1)).expect("kept");
        assert_eq!(
            (n, id3.as_str()),
            (1, id2.as_str()),
            "only the first changes it"
        );
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_applications() {
        let s = Sessions::new(Limits {
            max_applications: 2,
            ..Limits::default()
        });
        let (id, _) = create(&s, 0);
        let (n, id) = keep(&s, &id, app(0)).expect("kept");
        assert_eq!(n, 0);
        let snap = s.touch(&id, 0).expect("live");
        let slot = s.reserve(&snap).expect("room for one more");
        assert_eq!(
            s.reserve(&snap).map(|_| ()),
            Err(KeepError::Full),
            "reserved"
        );
        assert_eq!(s.keep(slot, app(1)).map(|k| k.n), Ok(1));
        assert_eq!(keep(&s, &id, app(2)), Err(KeepError::Full));
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
        let (id, _) = create(&s, 0);
        let (_, id) = keep(&s, &id, a).expect("kept");
        let snap = s.touch(&id, 0).expect("live");
        let shown = format!("{:?} {:?}", s, s.snapshot(&snap));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains(&snap.csrf), "{shown}");
    }
}
