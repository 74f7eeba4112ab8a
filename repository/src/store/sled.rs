//! The repository's records on sled (the embedded default: a directory, one process).
//!
//! Trees: `records` (credential id, the SHA-256 of its text, to [`Record`]), `by_subject`
//! (subject, then issued-at and id, to nothing: a business's credentials in time order),
//! `by_list` (status list URI, index and id, to the id: what a newer list or event changes), `cursors`
//! (an issuer's feed URL to the last position taken), `meta` (each status list's `iat` as last
//! applied).

use std::path::Path;
use std::sync::Arc;

use super::Record;
use crate::{corrupt, Error};

/// The sled store (cheap to clone; clones share it).
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    by_subject: sled::Tree,
    by_list: sled::Tree,
    cursors: sled::Tree,
    meta: sled::Tree,
    /// Serializes writers: a put reads what is held to keep the newer status.
    write: Arc<std::sync::Mutex<()>>,
}

fn subject_key(subject: &str, issued_at: i64, id: &str) -> Vec<u8> {
    let mut k = subject.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&issued_at.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

fn list_key(uri: &str, idx: u64) -> Vec<u8> {
    let mut k = uri.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&idx.to_be_bytes());
    k
}

impl SledStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<SledStore, Error> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        Ok(SledStore {
            records: db.open_tree("records")?,
            by_subject: db.open_tree("by_subject")?,
            by_list: db.open_tree("by_list")?,
            cursors: db.open_tree("cursors")?,
            meta: db.open_tree("meta")?,
            write: Arc::new(std::sync::Mutex::new(())),
            db,
        })
    }

    /// Whether a credential is held.
    pub fn contains(&self, id: &str) -> Result<bool, Error> {
        Ok(self.records.contains_key(id.as_bytes())?)
    }

    /// Keeps `records` (each with its indexes), durable before it returns. A record held
    /// already is written again as given (the same credential: its status may be newer),
    /// unless the one held has a newer status (`status_as_of`): an older status never
    /// overwrites a newer one.
    pub fn put(&self, records: &[Record]) -> Result<(), Error> {
        let _writer = self
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Of one id given twice, the last; a record held with a newer status stays.
        let mut last: std::collections::BTreeMap<&str, &Record> = std::collections::BTreeMap::new();
        for rec in records {
            last.insert(rec.id.as_str(), rec);
        }
        let mut r = sled::Batch::default();
        let mut s = sled::Batch::default();
        let mut l = sled::Batch::default();
        for rec in last.into_values() {
            if self
                .get(&rec.id)?
                .is_some_and(|held| held.status_as_of > rec.status_as_of)
            {
                continue;
            }
            r.insert(
                rec.id.as_bytes(),
                serde_json::to_vec(rec).map_err(corrupt("record"))?,
            );
            s.insert(subject_key(&rec.subject, rec.issued_at, &rec.id), &[][..]);
            // Every record at an entry (two credentials may share one), keyed by id too.
            let mut k = list_key(&rec.status_uri, rec.status_idx);
            k.extend_from_slice(rec.id.as_bytes());
            l.insert(k, rec.id.as_bytes());
        }
        // The indexes first: a record is never stored without them.
        self.by_subject.apply_batch(s)?;
        self.by_list.apply_batch(l)?;
        self.records.apply_batch(r)?;
        self.db.flush()?;
        Ok(())
    }

    /// A record.
    pub fn get(&self, id: &str) -> Result<Option<Record>, Error> {
        self.records
            .get(id.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(corrupt("record")))
            .transpose()
    }

    /// Every credential about `subject`, oldest first.
    pub fn of_subject(&self, subject: &str) -> Result<Vec<Record>, Error> {
        let mut prefix = subject.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for k in self.by_subject.scan_prefix(&prefix).keys() {
            let k = k?;
            let id = std::str::from_utf8(&k[prefix.len() + 8..]).map_err(|e| Error::Corrupt {
                what: "subject index",
                cause: e.to_string(),
            })?;
            if let Some(r) = self.get(id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The credentials whose status is in list `uri`: (index, id).
    pub fn in_list(&self, uri: &str) -> impl Iterator<Item = Result<(u64, String), Error>> + '_ {
        let mut prefix = uri.as_bytes().to_vec();
        prefix.push(0);
        let n = prefix.len();
        self.by_list.scan_prefix(prefix).map(move |kv| {
            let (k, v) = kv?;
            let bad = |cause: String| Error::Corrupt {
                what: "status list index",
                cause,
            };
            let idx: [u8; 8] = k
                .get(n..n + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("key length".into()))?;
            let id = String::from_utf8(v.to_vec()).map_err(|e| bad(e.to_string()))?;
            Ok((u64::from_be_bytes(idx), id))
        })
    }

    /// The ids of the credentials at entry `idx` of status list `uri`.
    pub fn at_status(&self, uri: &str, idx: u64) -> Result<Vec<String>, Error> {
        self.by_list
            .scan_prefix(list_key(uri, idx))
            .values()
            .map(|v| {
                String::from_utf8(v?.to_vec()).map_err(|e| Error::Corrupt {
                    what: "status list index",
                    cause: e.to_string(),
                })
            })
            .collect()
    }

    /// Every record, in id order (for a rebuild of the index).
    pub fn all(&self) -> impl Iterator<Item = Result<Record, Error>> + '_ {
        self.records
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v?).map_err(corrupt("record")))
    }

    /// Every subject, once each, in order.
    pub fn subjects(&self) -> impl Iterator<Item = Result<String, Error>> + '_ {
        let mut last: Option<String> = None;
        self.by_subject.iter().keys().filter_map(move |k| {
            let k = match k {
                Ok(k) => k,
                Err(e) => return Some(Err(e.into())),
            };
            let end = k.iter().position(|b| *b == 0).unwrap_or(k.len());
            let s = String::from_utf8_lossy(&k[..end]).into_owned();
            if last.as_deref() == Some(s.as_str()) {
                return None;
            }
            last = Some(s.clone());
            Some(Ok(s))
        })
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The last feed position taken from `feed`.
    pub fn cursor(&self, feed: &str) -> Result<u64, Error> {
        Ok(self
            .cursors
            .get(feed.as_bytes())?
            .map(|v| v.as_ref().try_into().map(u64::from_be_bytes))
            .transpose()
            .map_err(|_| Error::Corrupt {
                what: "feed cursor",
                cause: "not 8 bytes".into(),
            })?
            .unwrap_or(0))
    }

    /// Records the feed position taken (durable).
    pub fn set_cursor(&self, feed: &str, seq: u64) -> Result<(), Error> {
        self.cursors.insert(feed.as_bytes(), &seq.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The `iat` of status list `uri` as last applied.
    pub fn list_applied(&self, uri: &str) -> Result<Option<i64>, Error> {
        let k = format!("list_iat:{uri}");
        self.meta
            .get(k.as_bytes())?
            .map(|v| {
                v.as_ref()
                    .try_into()
                    .map(i64::from_be_bytes)
                    .map_err(|_| Error::Corrupt {
                        what: "status list time",
                        cause: "not 8 bytes".into(),
                    })
            })
            .transpose()
    }

    /// Records that status list `uri` as of `iat` was applied.
    pub fn set_list_applied(&self, uri: &str, iat: i64) -> Result<(), Error> {
        let k = format!("list_iat:{uri}");
        self.meta.insert(k.as_bytes(), &iat.to_be_bytes())?;
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }
}
