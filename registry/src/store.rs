//! Durable storage of the registry log behind a small trait: sled by default (embedded, no
//! server), in memory for tests; a PostgreSQL store can implement the same trait for
//! multi-instance deployments.

use std::path::Path;
use std::sync::Mutex;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed.
    #[error("registry storage: {0}")]
    Sled(#[from] sled::Error),
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
            StoreError::Sled(_) | StoreError::Poisoned | StoreError::Injected(_) => {
                ReasonCode::StorageFailed
            }
            StoreError::NotAtEnd { .. } => ReasonCode::StorageConflict,
            StoreError::Corrupt(_) => ReasonCode::StoreCorrupt,
        }
    }
}

/// Append-only entry storage.
pub trait Store: Send + 'static {
    /// Every entry, in order (canonical JSON bytes).
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Appends `entries` at `index` (which must be the current size) and the following
    /// indices, all or none. Durable when it returns.
    fn append_all(&self, index: u64, entries: &[Vec<u8>]) -> Result<(), StoreError>;
    /// Appends one entry at `index` (see [`Store::append_all`]).
    fn append(&self, index: u64, entry: &[u8]) -> Result<(), StoreError> {
        self.append_all(index, &[entry.to_vec()])
    }
    /// Stores a named blob (e.g. the latest status list of a URI). Durable when it returns.
    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Every named blob.
    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// A store shared between owners (a test keeps a handle while the registry uses it).
impl<S: Store + Sync> Store for std::sync::Arc<S> {
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        (**self).load()
    }
    fn append_all(&self, index: u64, entries: &[Vec<u8>]) -> Result<(), StoreError> {
        (**self).append_all(index, entries)
    }
    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).put_blob(key, value)
    }
    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        (**self).blobs()
    }
}

/// sled's page cache for the registry: the log is small and read from memory after start-up
/// (the sequencer replays it), so a modest cache bounds the process's memory.
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// In-memory storage (tests).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<Vec<Vec<u8>>>,
    blobs: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .entries
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .clone())
    }
    fn append_all(&self, index: u64, entries: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut e = self.entries.lock().map_err(|_| StoreError::Poisoned)?;
        if e.len() as u64 != index {
            return Err(StoreError::NotAtEnd {
                index,
                size: e.len() as u64,
            });
        }
        e.extend(entries.iter().cloned());
        Ok(())
    }
    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut b = self.blobs.lock().map_err(|_| StoreError::Poisoned)?;
        b.retain(|(k, _)| k != key);
        b.push((key.to_owned(), value.to_vec()));
        Ok(())
    }
    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self.blobs.lock().map_err(|_| StoreError::Poisoned)?.clone())
    }
}

/// sled storage: tree `entries` keyed by big-endian index, tree `blobs` by name; every write
/// is flushed before it is acknowledged, so a crash never loses an appended entry.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    entries: sled::Tree,
    blobs: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let entries = db.open_tree("entries")?;
        let blobs = db.open_tree("blobs")?;
        Ok(SledStore { db, entries, blobs })
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for (i, kv) in self.entries.iter().enumerate() {
            let (k, v) = kv?;
            let idx = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("entry key {i} is not 8 bytes")))?,
            );
            if idx != i as u64 {
                return Err(StoreError::Corrupt(format!("gap in the stored log at {i}")));
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    fn append_all(&self, index: u64, entries: &[Vec<u8>]) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let size = self.entries.len() as u64;
        if size != index {
            return Err(StoreError::NotAtEnd { index, size });
        }
        // One transaction: a crash leaves every entry of the batch or none.
        let done = self.entries.transaction(|tx| {
            for (i, e) in entries.iter().enumerate() {
                let at = index + i as u64;
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
        Ok(())
    }

    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.blobs.insert(key.as_bytes(), value)?;
        self.db.flush()?;
        Ok(())
    }

    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.blobs
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let k = String::from_utf8(k.to_vec())
                    .map_err(|_| StoreError::Corrupt("a blob name is not UTF-8".into()))?;
                Ok((k, v.to_vec()))
            })
            .collect()
    }
}
