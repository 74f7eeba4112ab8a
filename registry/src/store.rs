//! Durable storage of the registry log behind a small trait: sled by default (embedded, no
//! server), in memory for tests; a PostgreSQL store can implement the same trait for
//! multi-instance deployments.

use std::path::Path;
use std::sync::Mutex;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("registry storage: {0}")]
pub struct StoreError(pub String);

/// Append-only entry storage.
pub trait Store: Send + 'static {
    /// Every entry, in order (canonical JSON bytes).
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Appends `entry` at `index`, which must be the current size. Durable when it returns.
    fn append(&self, index: u64, entry: &[u8]) -> Result<(), StoreError>;
    /// Stores a named blob (e.g. the latest status list of a URI). Durable when it returns.
    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Every named blob.
    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

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
            .map_err(|_| StoreError("poisoned".into()))?
            .clone())
    }
    fn append(&self, index: u64, entry: &[u8]) -> Result<(), StoreError> {
        let mut e = self
            .entries
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        if e.len() as u64 != index {
            return Err(StoreError(format!(
                "append at {index} but the log has {} entries",
                e.len()
            )));
        }
        e.push(entry.to_vec());
        Ok(())
    }
    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut b = self
            .blobs
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?;
        b.retain(|(k, _)| k != key);
        b.push((key.to_owned(), value.to_vec()));
        Ok(())
    }
    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .blobs
            .lock()
            .map_err(|_| StoreError("poisoned".into()))?
            .clone())
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
        let db = sled::open(path).map_err(|e| StoreError(e.to_string()))?;
        let entries = db
            .open_tree("entries")
            .map_err(|e| StoreError(e.to_string()))?;
        let blobs = db
            .open_tree("blobs")
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(SledStore { db, entries, blobs })
    }
}

impl Store for SledStore {
    fn load(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for (i, kv) in self.entries.iter().enumerate() {
            let (k, v) = kv.map_err(|e| StoreError(e.to_string()))?;
            let idx = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| StoreError("bad key".into()))?,
            );
            if idx != i as u64 {
                return Err(StoreError(format!("gap in the stored log at {i}")));
            }
            out.push(v.to_vec());
        }
        Ok(out)
    }

    fn append(&self, index: u64, entry: &[u8]) -> Result<(), StoreError> {
        let size = self.entries.len() as u64;
        if size != index {
            return Err(StoreError(format!(
                "append at {index} but the log has {size} entries"
            )));
        }
        let prev = self
            .entries
            .compare_and_swap(index.to_be_bytes(), None as Option<&[u8]>, Some(entry))
            .map_err(|e| StoreError(e.to_string()))?;
        if prev.is_err() {
            return Err(StoreError(format!("entry {index} already exists")));
        }
        self.db.flush().map_err(|e| StoreError(e.to_string()))?;
        Ok(())
    }

    fn put_blob(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.blobs
            .insert(key.as_bytes(), value)
            .map_err(|e| StoreError(e.to_string()))?;
        self.db.flush().map_err(|e| StoreError(e.to_string()))?;
        Ok(())
    }

    fn blobs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.blobs
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(|e| StoreError(e.to_string()))?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }
}
