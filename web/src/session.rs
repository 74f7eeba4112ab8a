//! Sessions and login throttling, in memory and bounded.
//!
//! A session id is 32 random bytes, sent only in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` under TLS) scoped to `/desk` and named per service, so one service's cookie is
//! no session on another. The table is keyed by the id's SHA-256 (the id itself is never kept),
//! sessions end after an idle and an absolute timeout, and a full table evicts the least
//! recently used. Each session has its own CSRF token.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `success` or `error`.
    pub kind: FlashKind,
    /// The text, already in the page's language.
    pub text: String,
}

impl Flash {
    /// Whether it reports a refusal (shown as an alert).
    pub fn is_error(&self) -> bool {
        self.kind == FlashKind::Error
    }
}

/// What a flash message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// Something was done.
    Success,
    /// Something was refused.
    Error,
}

/// A signed-in member of staff.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Account name.
    pub user: String,
    /// Role at sign-in.
    pub role: String,
    /// This session's CSRF token.
    pub csrf: String,
    /// Signed in at.
    pub created: i64,
    /// Last request.
    pub last_seen: i64,
    /// The account's generation at sign-in (a later change ends the session).
    pub account_generation: u64,
    flash: Option<Flash>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Session lifetimes and the table's bound.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Ends after this many seconds without a request.
    pub idle: i64,
    /// Ends this many seconds after sign-in, whatever the activity.
    pub absolute: i64,
    /// Most sessions held.
    pub max: usize,
}

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            idle: 15 * 60,
            absolute: 8 * 3600,
            max: 10_000,
        }
    }
}

/// Random bytes, base64url.
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    bizcred_core::base64url_encode(b)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Two tokens compared in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// An empty table.
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Every write replaces or removes whole entries: a poisoned table is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self, s: &Session, now: i64) -> bool {
        now - s.last_seen <= self.limits.idle && now - s.created <= self.limits.absolute
    }

    /// Starts a session (a new id every sign-in); returns its id for the cookie.
    pub fn create(&self, user: &str, role: &str, account_generation: u64, now: i64) -> String {
        let id = random_token(32);
        let mut t = self.table();
        if t.len() >= self.limits.max {
            t.retain(|_, s| {
                now - s.last_seen <= self.limits.idle && now - s.created <= self.limits.absolute
            });
            while t.len() >= self.limits.max {
                let Some(oldest) = t.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
                else {
                    break;
                };
                t.remove(&oldest);
            }
        }
        t.insert(
            key(&id),
            Session {
                user: user.to_owned(),
                role: role.to_owned(),
                csrf: random_token(32),
                created: now,
                last_seen: now,
                account_generation,
                flash: None,
            },
        );
        id
    }

    /// The live session with this id (its idle clock restarts), or `None`: unknown, idle too
    /// long or too old (an expired one is removed).
    pub fn touch(&self, id: &str, now: i64) -> Option<Session> {
        let k = key(id);
        let mut t = self.table();
        let s = t.get_mut(&k)?;
        if !self.live(s, now) {
            t.remove(&k);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.table().remove(&key(id));
    }

    /// Ends every session of an account.
    pub fn end_user(&self, user: &str) {
        self.table().retain(|_, s| s.user != user);
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.table().get_mut(&key(id)) {
            s.flash = Some(flash);
        }
    }

    /// Takes the message left for this page, if any.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.table().get_mut(&key(id)).and_then(|s| s.flash.take())
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

/// Login throttling: after `max_failures` failed sign-ins within `window` seconds for one key
/// (an account name, a client address), that key is refused until the window has passed.
#[derive(Debug)]
pub struct Throttle {
    window: i64,
    max_failures: u32,
    cap: usize,
    map: Mutex<HashMap<String, (u32, i64)>>,
}

impl Throttle {
    /// A throttle; `cap` bounds the keys remembered.
    pub fn new(max_failures: u32, window: i64, cap: usize) -> Throttle {
        Throttle {
            window,
            max_failures,
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, i64)>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(seconds to wait)` when the key is locked out.
    pub fn check(&self, key: &str, now: i64) -> Result<(), i64> {
        match self.table().get(key) {
            Some((n, first)) if *n >= self.max_failures && now - first < self.window => {
                Err(self.window - (now - first))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure.
    pub fn fail(&self, key: &str, now: i64) {
        let mut t = self.table();
        if t.len() >= self.cap && !t.contains_key(key) {
            t.retain(|_, (_, first)| now - *first < self.window);
            if t.len() >= self.cap {
                // Still full of live entries: forget the oldest rather than grow.
                if let Some(k) = t
                    .iter()
                    .min_by_key(|(_, (_, f))| *f)
                    .map(|(k, _)| k.clone())
                {
                    t.remove(&k);
                }
            }
        }
        let e = t.entry(key.to_owned()).or_insert((0, now));
        if now - e.1 >= self.window {
            *e = (0, now);
        }
        e.0 += 1;
    }

    /// Forgets a key's failures (after a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.table().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old_and_are_bounded() {
        let s = Sessions::new(SessionLimits {
            idle: 10,
            absolute: 100,
            max: 3,
        });
        let a = s.create("ana", "clerk", 0, 0);
        assert_eq!(s.touch(&a, 5).map(|x| x.user), Some("ana".into()));
        assert!(s.touch(&a, 16).is_none(), "idle 11 s");
        let b = s.create("bo", "clerk", 0, 0);
        for t in (9..=99).step_by(9) {
            assert!(s.touch(&b, t).is_some());
        }
        assert!(s.touch(&b, 101).is_none(), "absolute");
        let ids: Vec<String> = (0..5).map(|i| s.create("x", "clerk", 0, 200 + i)).collect();
        assert_eq!(s.len(), 3);
        assert!(s.touch(&ids[0], 205).is_none(), "oldest evicted");
        assert!(s.touch(&ids[4], 205).is_some());
        assert!(s.touch("not-a-session", 205).is_none());
    }

    #[test]
    fn throttle_locks_after_failures_then_releases() {
        let t = Throttle::new(3, 60, 10);
        for i in 0..3 {
            assert!(t.check("user:ana", i).is_ok());
            t.fail("user:ana", i);
        }
        assert_eq!(t.check("user:ana", 10), Err(50));
        assert!(t.check("user:ana", 61).is_ok());
        for i in 0..20 {
            t.fail(&format!("ip:{i}"), 100);
        }
        assert!(t.table().len() <= 10);
    }
}
