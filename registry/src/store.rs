//! Durable storage of the registry log behind a small synchronous trait, with three
//! implementations: sled ([`SledStore`], the embedded default: no server), PostgreSQL
//! ([`pg::PgStore`], any number of registry instances on one database) and memory
//! ([`MemoryStore`], tests).
//!
//! # The contract
//!
//! * The log is append-only: entries sit at indices `0, 1, 2, ...` without gaps, in the order
//!   they were appended, and are never changed.
//! * [`Store::append_with`] is the one way to append. It holds the store's **write lock**
//!   (one writer at a time, across every process sharing the store), shows the writer the
//!   entries stored past the ones it had seen, and writes the entries the writer then plans
//!   after them, all or none, durably, before it returns. A registry validates what it
//!   appends in that plan, against the state replayed from exactly what is stored: two
//!   writers appending conflicting entries at once cannot both land.
//!   [`Store::append_all`] is the compare-and-swap form: append at `index`, which must be the
//!   log's size.
//! * Named blobs (the latest status list of each URI) change under the same lock
//!   ([`Store::put_blob_with`]), each write taking a version from one increasing counter:
//!   a reader that has seen every version up to `v` misses nothing by asking for versions
//!   after `v` ([`Store::blobs_since`]). Versions are compared only within one open store.
//! * [`Store::head`] is what is stored now (the log's size and the newest blob version): a
//!   reader compares it with what it holds to learn, in one cheap call, whether another
//!   writer changed anything.
//!
//! The trait is synchronous: the sequencer is a synchronous state machine (replay,
//! validation, Merkle proofs and signatures are CPU work between few storage calls), and the
//! HTTP service runs every registry call on tokio's blocking pool (see [`crate::service`]), so
//! neither a sled flush nor a PostgreSQL round trip or lock wait ever holds an async worker.
//! One test suite (`tests/store_contract.rs`) holds every implementation to this contract.

use std::path::Path;
use std::sync::Mutex;

pub mod pg;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("registry storage: {0}")]
    Sled(#[from] sled::Error),
    /// The PostgreSQL database failed or could not be reached.
    #[error("registry storage (PostgreSQL): {0}")]
    Postgres(#[from] sqlx::Error),
    /// A PostgreSQL database URL that does not parse (the URL itself is not repeated: it may
    /// hold a password).
    #[error("the database URL is not a PostgreSQL URL: {0}")]
    DatabaseUrl(String),
    /// The database's schema is older than this binary's migrations.
    #[error(
        "the database is not migrated to this version of bizcred-registry (migrations {missing:?} \
         are not applied); run `bizcred-registry migrate --database <URL>`"
    )]
    SchemaBehind {
        /// The versions of this binary's migrations the database lacks.
        missing: Vec<i64>,
    },
    /// The database was migrated by a newer binary.
    #[error(
        "the database was migrated by a newer bizcred-registry (migrations {unknown:?} are not \
         this binary's); run the newer binary"
    )]
    SchemaNewer {
        /// The applied versions this binary does not know.
        unknown: Vec<i64>,
    },
    /// An applied migration differs from this binary's, or failed half-way.
    #[error("migration {version} in the database {problem}; the schema needs an operator")]
    SchemaMismatch {
        /// The migration.
        version: i64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A sled store whose log was moved to PostgreSQL: serving it would fork the log.
    #[error("this registry's sled store was moved to PostgreSQL ({0}); serve it with --database")]
    Moved(String),
    /// An append at another index than the log's size (a concurrent writer, or a bug).
    #[error("registry storage: append at {index} but the log has {size} entries")]
    NotAtEnd {
        /// Where the append was asked.
        index: u64,
        /// The log's size.
        size: u64,
    },
    /// The stored log is not what this registry wrote.
    #[error("registry storage is corrupt: {0}")]
    Corrupt(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("registry storage: a lock was poisoned")]
    Poisoned,
    /// A fail point compiled into tests fired.
    #[error("registry storage: injected failure ({0})")]
    Injected(&'static str),
}

impl StoreError {
    /// The stable reason code.
    pub fn code(&self) -> bizcred_core::ReasonCode {
        use bizcred_core::ReasonCode;
        match self {
            StoreError::Sled(_)
            | StoreError::Postgres(_)
            | StoreError::Poisoned
            | StoreError::Injected(_) => ReasonCode::StorageFailed,
            StoreError::DatabaseUrl(_) => ReasonCode::ConfigInvalid,
            StoreError::SchemaBehind { .. } => ReasonCode::DatabaseNotMigrated,
            StoreError::SchemaNewer { .. } => ReasonCode::DatabaseSchemaNewer,
            StoreError::SchemaMismatch { .. } => ReasonCode::DatabaseSchemaMismatch,
            StoreError::Moved(_) => ReasonCode::StorageMoved,
            StoreError::NotAtEnd { .. } => ReasonCode::StorageConflict,
            StoreError::Corrupt(_) => ReasonCode::StoreCorrupt,
        }
    }
}

/// What a store holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// The log's size (the index the next entry takes).
    pub size: u64,
    /// The newest blob version (0: no blob).
    pub blob_version: u64,
}

/// A named blob and the version its last write took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The name.
    pub name: String,
    /// The value.
    pub value: Vec<u8>,
    /// Its version (greater than every version written before it; at least 1).
    pub version: u64,
}

/// A writer's plan, called under the write lock with the entries stored from the index the
/// writer asked for: the entries to append after them, or `None` to write nothing.
pub type AppendPlan<'a> = &'a mut dyn FnMut(&[Vec<u8>]) -> Option<Vec<Vec<u8>>>;

/// A blob writer's plan, called under the write lock with the blob's current value: its new
/// value, or `None` to leave it.
pub type BlobPlan<'a> = &'a mut dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>>;

/// Append-only entry storage with named blobs (see the module documentation).
pub trait Store: Send + 'static {
    /// What is stored now.
    fn head(&self) -> Result<Head, StoreError>;

    /// The entries from index `from` to the end, in order (none when `from` is the size or
    /// beyond).
    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Holds the write lock, calls `plan` with the entries stored from index `from` (which
    /// must not exceed the log's size: [`StoreError::NotAtEnd`]) and appends what it returns
    /// after them, all or none, durable when this returns. Returns the index of the first
    /// appended entry, or `None` when the plan declined (nothing was written).
    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError>;

    /// Blobs written after version `after`, in version order (every blob for 0).
    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError>;

    /// Holds the write lock, calls `plan` with the current value of blob `name` and stores
    /// what it returns, durable when this returns. Returns the version written, or `None`
    /// when the plan declined.
    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError>;

    /// Every entry, in order.
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.entries_from(0)
    }

    /// Appends `entries` at `index`, which must be the log's size ([`StoreError::NotAtEnd`]
    /// otherwise, and nothing is written), all or none, durable when it returns.
    fn append_all(&self, index: u64, entries: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut past = 0;
        let done = self.append_with(index, &mut |newer| {
            past = newer.len() as u64;
            newer.is_empty().then(|| entries.to_vec())
        })?;
        match done {
            Some(_) => Ok(()),
            None => Err(StoreError::NotAtEnd {
                index,
                size: index + past,
            }),
        }
    }

    /// Appends one entry at `index` (see [`Store::append_all`]).
    fn append(&self, index: u64, entry: &[u8]) -> Result<(), StoreError> {
        self.append_all(index, &[entry.to_vec()])
    }

    /// Stores blob `name`, whatever it held. Returns the version written.
    fn put_blob(&self, name: &str, value: &[u8]) -> Result<u64, StoreError> {
        self.put_blob_with(name, &mut |_| Some(value.to_vec()))?
            .ok_or(StoreError::Corrupt(
                "an unconditional blob write was declined".into(),
            ))
    }

    /// Every blob, in version order.
    fn blobs(&self) -> Result<Vec<Blob>, StoreError> {
        self.blobs_since(0)
    }
}

/// A store shared between owners (a test keeps a handle while the registry uses it).
impl<S: Store + Sync> Store for std::sync::Arc<S> {
    fn head(&self) -> Result<Head, StoreError> {
        (**self).head()
    }
    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        (**self).entries_from(from)
    }
    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError> {
        (**self).append_with(from, plan)
    }
    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError> {
        (**self).blobs_since(after)
    }
    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError> {
        (**self).put_blob_with(name, plan)
    }
}

/// Whichever store a registry was opened on.
impl Store for Box<dyn Store> {
    fn head(&self) -> Result<Head, StoreError> {
        (**self).head()
    }
    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        (**self).entries_from(from)
    }
    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError> {
        (**self).append_with(from, plan)
    }
    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError> {
        (**self).blobs_since(after)
    }
    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError> {
        (**self).put_blob_with(name, plan)
    }
}

/// sled's page cache for the registry: the log is small and read from memory after start-up
/// (the sequencer replays it), so a modest cache bounds the process's memory.
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Blobs held in memory with their versions (the memory store's, and the sled store's
/// versions, which live only as long as the open store: one process owns a sled store).
#[derive(Debug, Default)]
struct Versions {
    /// The newest version given.
    newest: u64,
    /// Each blob's name and version.
    of: std::collections::BTreeMap<String, u64>,
}

impl Versions {
    fn bump(&mut self, name: &str) -> u64 {
        self.newest += 1;
        self.of.insert(name.to_owned(), self.newest);
        self.newest
    }
}

/// In-memory storage (tests).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    entries: Vec<Vec<u8>>,
    blobs: std::collections::BTreeMap<String, Vec<u8>>,
    versions: Versions,
}

impl MemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl Store for MemoryStore {
    fn head(&self) -> Result<Head, StoreError> {
        let m = self.lock()?;
        Ok(Head {
            size: m.entries.len() as u64,
            blob_version: m.versions.newest,
        })
    }

    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let m = self.lock()?;
        Ok(usize::try_from(from)
            .ok()
            .and_then(|f| m.entries.get(f..))
            .map(<[Vec<u8>]>::to_vec)
            .unwrap_or_default())
    }

    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError> {
        // The mutex is the write lock: the plan runs while no other writer can append.
        let mut m = self.lock()?;
        let size = m.entries.len() as u64;
        if from > size {
            return Err(StoreError::NotAtEnd { index: from, size });
        }
        let Some(batch) = plan(&m.entries[from as usize..]) else {
            return Ok(None);
        };
        m.entries.extend(batch);
        Ok(Some(size))
    }

    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError> {
        let m = self.lock()?;
        Ok(blobs_after(&m.versions, after, |name| {
            m.blobs.get(name).cloned()
        }))
    }

    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError> {
        let mut m = self.lock()?;
        let Some(value) = plan(m.blobs.get(name).map(Vec::as_slice)) else {
            return Ok(None);
        };
        m.blobs.insert(name.to_owned(), value);
        Ok(Some(m.versions.bump(name)))
    }
}

/// The blobs of `versions` newer than `after`, in version order, with their values.
fn blobs_after(
    versions: &Versions,
    after: u64,
    mut value: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Vec<Blob> {
    let mut out: Vec<Blob> = versions
        .of
        .iter()
        .filter(|(_, v)| **v > after)
        .filter_map(|(name, version)| {
            value(name).map(|value| Blob {
                name: name.clone(),
                value,
                version: *version,
            })
        })
        .collect();
    out.sort_by_key(|b| b.version);
    out
}

/// sled storage: tree `entries` keyed by big-endian index, tree `blobs` by name; every write
/// is flushed before it is acknowledged, so a crash never loses an appended entry. sled
/// allows one process per store, so the write lock is a mutex, and blob versions are kept in
/// memory (numbered afresh, in name order, when the store opens).
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    entries: sled::Tree,
    blobs: sled::Tree,
    /// The write lock, and the blob versions it hands out.
    writer: Mutex<Versions>,
}

/// The file in a sled store's directory that says the log was moved to PostgreSQL.
pub const MOVED_MARKER: &str = "MOVED-TO-POSTGRESQL";

impl SledStore {
    /// Opens (or creates) the store at `path`. A store whose log was moved to PostgreSQL
    /// (see [`MOVED_MARKER`]) is refused ([`StoreError::Moved`]).
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        if let Ok(text) = std::fs::read_to_string(path.join(MOVED_MARKER)) {
            return Err(StoreError::Moved(text.trim().to_owned()));
        }
        Self::open_moved(path)
    }

    /// Opens the store at `path` even when its log was moved (to read it, never to serve it).
    pub fn open_moved(path: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let entries = db.open_tree("entries")?;
        let blobs = db.open_tree("blobs")?;
        let mut versions = Versions::default();
        for kv in blobs.iter() {
            let (k, _) = kv?;
            versions.bump(&blob_name(&k)?);
        }
        Ok(SledStore {
            db,
            entries,
            blobs,
            writer: Mutex::new(versions),
        })
    }

    /// Marks the store as moved to PostgreSQL (`what` says where and when, without the URL's
    /// password): [`SledStore::open`] refuses it from then on.
    pub fn mark_moved(path: &Path, what: &str) -> Result<(), StoreError> {
        std::fs::write(path.join(MOVED_MARKER), format!("{what}\n"))
            .map_err(|e| StoreError::Corrupt(format!("writing {MOVED_MARKER}: {e}")))
    }

    fn size(&self) -> Result<u64, StoreError> {
        // The last key, not `len()` (which walks the whole tree).
        match self.entries.last()? {
            None => Ok(0),
            Some((k, _)) => Ok(index_of(&k)? + 1),
        }
    }
}

fn index_of(k: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(k.try_into().map_err(|_| {
        StoreError::Corrupt("an entry key is not 8 bytes".into())
    })?))
}

fn blob_name(k: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(k.to_vec())
        .map_err(|_| StoreError::Corrupt("a blob name is not UTF-8".into()))
}

impl Store for SledStore {
    fn head(&self) -> Result<Head, StoreError> {
        let blob_version = self.writer.lock().map_err(|_| StoreError::Poisoned)?.newest;
        Ok(Head {
            size: self.size()?,
            blob_version,
        })
    }

    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for (i, kv) in self.entries.range(from.to_be_bytes()..).enumerate() {
            let (k, v) = kv?;
            let expected = from + i as u64;
            if index_of(&k)? != expected {
                return Err(StoreError::Corrupt(format!(
                    "gap in the stored log at {expected}"
                )));
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let _writer = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let size = self.size()?;
        if from > size {
            return Err(StoreError::NotAtEnd { index: from, size });
        }
        let newer = self.entries_from(from)?;
        let Some(batch) = plan(&newer) else {
            return Ok(None);
        };
        // One transaction: a crash leaves every entry of the batch or none.
        let done = self.entries.transaction(|tx| {
            for (i, e) in batch.iter().enumerate() {
                let at = size + i as u64;
                if tx.get(at.to_be_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::NotAtEnd {
                        index: at,
                        size: at + 1,
                    }));
                }
                tx.insert(&at.to_be_bytes(), e.as_slice())?;
            }
            Ok(())
        });
        match done {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.db.flush()?;
        Ok(Some(size))
    }

    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError> {
        let versions = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let mut failed = None;
        let out = blobs_after(&versions, after, |name| match self.blobs.get(name) {
            Ok(v) => v.map(|v| v.to_vec()),
            Err(e) => {
                failed = Some(e);
                None
            }
        });
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError> {
        let mut versions = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let current = self.blobs.get(name.as_bytes())?;
        let Some(value) = plan(current.as_deref()) else {
            return Ok(None);
        };
        self.blobs.insert(name.as_bytes(), value)?;
        self.db.flush()?;
        Ok(Some(versions.bump(name)))
    }
}
