//! The repository's records: every accepted public credential as issued, with what its
//! verification found, by business and by status list entry; each issuer feed's cursor; the
//! time of each status list as last applied.
//!
//! [`Store`] is a handle on one backend (a closed enum):
//!
//! * **sled** ([`sled::SledStore`], the embedded default: a directory, one process);
//! * **PostgreSQL** ([`pg::PgStore`]: any number of repository instances on one database,
//!   chosen by `--database postgres://…`; each instance keeps its trust directory and search
//!   index in its data directory).
//!
//! Each method dispatches to the backend that implements it; one contract test suite
//! (`repository/tests/store_contract.rs`) holds both to the same behaviour.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;

pub mod pg;
pub mod sled;

pub use self::pg::PgStore;
pub use self::sled::SledStore;

/// A public credential the repository holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// SHA-256 (hex) of the credential's text: its address.
    pub id: String,
    /// The business it is about: its corporation number, else its business number.
    pub subject: String,
    /// `vct`.
    pub vct: String,
    /// The issuer's DID.
    pub issuer: String,
    /// `iat`.
    pub issued_at: i64,
    /// The status list holding its status.
    pub status_uri: String,
    /// Its index there.
    pub status_idx: u64,
    /// Its claims (all in clear: a public record).
    pub claims: Map<String, Value>,
    /// `valid`, `revoked`, `suspended`, or `unknown` (no list yet).
    pub status: String,
    /// The `iat` of the status list that said so.
    pub status_as_of: i64,
    /// When it was verified on intake.
    pub verified_at: i64,
    /// The credential as issued.
    pub text: String,
}

impl Record {
    /// A claim as text.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// The store: a handle on its backend (cheap to clone; clones share it).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sled(SledStore),
    Pg(Arc<PgStore>),
}

/// One of two iterators (a listing of either backend).
enum Either<A, B> {
    Sled(A),
    Pg(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Either::Sled(a) => a.next(),
            Either::Pg(b) => b.next(),
        }
    }
}

/// Calls the backend's method of the same name.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sled(s) => s.$method($($arg),*),
            Backend::Pg(p) => p.$method($($arg),*),
        }
    };
}

impl From<SledStore> for Store {
    fn from(s: SledStore) -> Store {
        Store {
            backend: Backend::Sled(s),
        }
    }
}

impl From<PgStore> for Store {
    fn from(p: PgStore) -> Store {
        Store {
            backend: Backend::Pg(Arc::new(p)),
        }
    }
}

impl Store {
    /// Opens (or creates) the sled store in `path`.
    pub fn open(path: &Path) -> Result<Store, Error> {
        SledStore::open(path).map(Store::from)
    }

    /// Connects to the PostgreSQL database at `url` with at most `max_connections`
    /// connections, refusing a database whose schema is not this binary's (not migrated:
    /// `DATABASE_NOT_MIGRATED`; migrated by a newer binary: `DATABASE_SCHEMA_NEWER`).
    pub fn connect(url: &str, max_connections: u32) -> Result<Store, Error> {
        PgStore::connect(url, max_connections).map(Store::from)
    }

    /// Whether the store may be served by this binary now: on PostgreSQL, the database's
    /// migrations are still this binary's (a newer binary may have migrated it since); sled
    /// has nothing to check.
    pub fn schema_current(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Pg(p) => p.schema_current(),
        }
    }

    /// Whether other instances may write this store meanwhile (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    /// Whether a credential is held.
    pub fn contains(&self, id: &str) -> Result<bool, Error> {
        dispatch!(self.contains(id))
    }

    /// Keeps `records` (each with its indexes), durable before it returns. A record held
    /// already is written again as given (the same credential: its status may be newer),
    /// unless the one held has a newer status (`status_as_of`): of two writers refreshing one
    /// record from different sources, the older status never overwrites the newer.
    pub fn put(&self, records: &[Record]) -> Result<(), Error> {
        dispatch!(self.put(records))
    }

    /// A record.
    pub fn get(&self, id: &str) -> Result<Option<Record>, Error> {
        dispatch!(self.get(id))
    }

    /// The last change number of a shared store (0 on sled, which has none).
    pub fn last_change(&self) -> Result<u64, Error> {
        match &self.backend {
            Backend::Sled(_) => Ok(0),
            Backend::Pg(p) => p.last_change(),
        }
    }

    /// The subjects of records written after change number `after` (at most `limit` writes)
    /// and the last change number read: how an instance follows the others' writes to a
    /// shared store. On sled (one process: every write was this instance's, and indexed by
    /// it) nothing, at `after`.
    pub fn changed_since(&self, after: u64, limit: i64) -> Result<(Vec<String>, u64), Error> {
        match &self.backend {
            Backend::Sled(_) => Ok((Vec::new(), after)),
            Backend::Pg(p) => p.changed_since(after, limit),
        }
    }

    /// Every credential about `subject`, oldest first.
    pub fn of_subject(&self, subject: &str) -> Result<Vec<Record>, Error> {
        dispatch!(self.of_subject(subject))
    }

    /// The credentials whose status is in list `uri`: (index, id), in index order.
    pub fn in_list(&self, uri: &str) -> impl Iterator<Item = Result<(u64, String), Error>> + '_ {
        match &self.backend {
            Backend::Sled(s) => Either::Sled(s.in_list(uri)),
            Backend::Pg(p) => Either::Pg(p.in_list(uri)),
        }
    }

    /// The ids of the credentials at entry `idx` of status list `uri`.
    pub fn at_status(&self, uri: &str, idx: u64) -> Result<Vec<String>, Error> {
        dispatch!(self.at_status(uri, idx))
    }

    /// Every record, in id order (for a rebuild of the index).
    pub fn all(&self) -> impl Iterator<Item = Result<Record, Error>> + '_ {
        match &self.backend {
            Backend::Sled(s) => Either::Sled(s.all()),
            Backend::Pg(p) => Either::Pg(p.all()),
        }
    }

    /// Every subject, once each, in order.
    pub fn subjects(&self) -> impl Iterator<Item = Result<String, Error>> + '_ {
        match &self.backend {
            Backend::Sled(s) => Either::Sled(s.subjects()),
            Backend::Pg(p) => Either::Pg(p.subjects()),
        }
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        dispatch!(self.len())
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        dispatch!(self.is_empty())
    }

    /// The last feed position taken from `feed`.
    pub fn cursor(&self, feed: &str) -> Result<u64, Error> {
        dispatch!(self.cursor(feed))
    }

    /// Records the feed position taken (durable).
    pub fn set_cursor(&self, feed: &str, seq: u64) -> Result<(), Error> {
        dispatch!(self.set_cursor(feed, seq))
    }

    /// The `iat` of status list `uri` as last applied.
    pub fn list_applied(&self, uri: &str) -> Result<Option<i64>, Error> {
        dispatch!(self.list_applied(uri))
    }

    /// Records that status list `uri` as of `iat` was applied.
    pub fn set_list_applied(&self, uri: &str, iat: i64) -> Result<(), Error> {
        dispatch!(self.set_list_applied(uri, iat))
    }

    /// Flushes what was written.
    pub fn flush(&self) -> Result<(), Error> {
        dispatch!(self.flush())
    }
}
