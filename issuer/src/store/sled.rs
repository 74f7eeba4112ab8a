//! The issuer's records on sled, the embedded default: one process owns the store (sled locks
//! its directory), so its transactions and a mutex-free group commit are all it needs.
//!
//! Issuing a credential is one sled transaction over the credential record, the status index
//! allocation, the status value, the access token, the application and the audit log, flushed
//! before the response: a crash at any point leaves either all of it or none of it, so an
//! index is never allocated twice and an issued credential's record is never lost.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use super::{
    audit_entry, be8, bits_len, corrupt_list, de, put_bits, ser, sha256_hex, status_value,
    AccessToken, AppStatus, Application, BusinessIds, CredentialRecord, CredentialStatus,
    EventKind, FeedItem, IssuerEvent, ListBits, ListInfo, Offer, PendingIssuance, PublicIssue,
    PublicRecord, SignedList, StatusChange, StoreError, Swept, MAX_STATUS_HISTORY,
};
use crate::issuer::Actor;

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> StoreError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// bounded sweep reads no further).
fn first_matching<T>(
    tree: &sled::Tree,
    max: usize,
    pick: impl Fn(&sled::IVec) -> Result<Option<T>, StoreError>,
) -> Result<Vec<(sled::IVec, T)>, StoreError> {
    let mut out = Vec::new();
    for kv in tree.iter() {
        if out.len() >= max {
            break;
        }
        let (k, v) = kv?;
        if let Some(t) = pick(&v)? {
            out.push((k, t));
        }
    }
    Ok(out)
}

fn tser<T: Serialize>(v: &T) -> Result<Vec<u8>, ConflictableTransactionError<StoreError>> {
    ser(v).map_err(abort)
}

/// The key of a status index: the list number, then the index (both big-endian).
fn idx_key(list: u32, idx: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&list.to_be_bytes());
    k[4..].copy_from_slice(&idx.to_be_bytes());
    k
}

/// The issuer's store on sled (one process).
#[derive(Debug, Clone)]
pub struct SledStore {
    pub(super) db: sled::Db,
    pub(super) apps: sled::Tree,
    pub(super) offers: sled::Tree,
    pub(super) codes: sled::Tree,
    pub(super) tokens: sled::Tree,
    pub(super) nonces: sled::Tree,
    pub(super) creds: sled::Tree,
    /// Allocated status indices: (list, index) -> credential id.
    pub(super) status_idx: sled::Tree,
    /// Each list's packed bits, after its version: list -> version ++ bits.
    pub(super) status_bits: sled::Tree,
    /// Each list's size and allocation count: list -> size ++ allocated.
    pub(super) status_alloc: sled::Tree,
    /// Each list's newest signed token: list -> [`SignedList`].
    pub(super) status_signed: sled::Tree,
    pub(super) meta: sled::Tree,
    pub(super) audit: sled::Tree,
    /// Applications awaiting a presentation, by creation time (for expiry).
    pub(super) pending: sled::Tree,
    /// Each business's current public credential: corporation number -> [`PublicRecord`].
    pub(super) public: sled::Tree,
    /// The public feed: sequence number (big-endian) -> [`FeedItem`].
    pub(super) feed: sled::Tree,
    /// The event log: sequence number (big-endian) -> [`IssuerEvent`].
    pub(super) events: sled::Tree,
    commit: std::sync::Arc<GroupCommit>,
}

/// Stores before per-list state: the one list's last `iat` and token (migrated at open).
const STATUS_LIST_IAT: &str = "status_list_iat";
const PENDING_INDEXED: &str = "pending_indexed";
/// The list indices are drawn in.
pub(super) const STATUS_OPEN_LIST: &str = "status_open_list";
/// Set once the lists' bits are stored (built from the records once, for older stores).
pub(super) const STATUS_BITS_KEPT: &str = "status_bits_kept";
/// Stores before per-list state: the one list's last token (migrated at open).
const STATUS_LIST_TOKEN: &str = "status_list_token";
/// The public feed's last sequence number (kept in `meta`).
pub(super) const PUBLIC_SEQ: &str = "public_seq";
/// The event log's last sequence number (kept in `meta`).
pub(super) const EVENT_SEQ: &str = "event_seq";
/// The audit log's next sequence number and head hash (kept in `meta`).
pub(super) const AUDIT_SEQ: &str = "audit_seq";
/// See [`AUDIT_SEQ`].
pub(super) const AUDIT_HEAD: &str = "audit_head";

/// The file in a sled store's directory that says its records were moved to PostgreSQL.
pub const MOVED_MARKER: &str = "MOVED-TO-POSTGRESQL";

/// The pending-request index key of an application: creation time, then id.
fn pending_key(app: &Application) -> Vec<u8> {
    let mut k = app.created.to_be_bytes().to_vec();
    k.extend_from_slice(app.id.as_bytes());
    k
}

/// Who has asked for durability and how far the flushes have got (see [`SledStore::flush`]).
#[derive(Debug, Default)]
struct GroupCommit {
    state: std::sync::Mutex<CommitState>,
    done: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct CommitState {
    /// Tickets handed out (one per durable write).
    written: u64,
    /// Every ticket up to this one is durable.
    flushed: u64,
    /// A flush is running.
    flushing: bool,
}

/// Ends a flush, even one that unwinds: clears `flushing`, records how far it got, wakes the
/// waiters (one of them leads the next flush).
struct FlushLeader<'a> {
    commit: &'a GroupCommit,
    target: u64,
    done: bool,
}

impl Drop for FlushLeader<'_> {
    fn drop(&mut self) {
        let mut st = self
            .commit
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.flushing = false;
        if self.done {
            st.flushed = st.flushed.max(self.target);
        }
        self.commit.done.notify_all();
    }
}

fn audit_append(
    meta: &TransactionalTree,
    audit: &TransactionalTree,
    time: i64,
    event: &str,
    details: Value,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    // A damaged sequence number aborts the append: never restart at 0 over older entries.
    let seq = match meta.get(AUDIT_SEQ)? {
        Some(v) => u64::from_be_bytes(be8("audit sequence number", &v).map_err(abort)?),
        None => 0,
    };
    // The chain starts from zeros only when it is empty: a lost head is damage, never a
    // silent new chain.
    let prev = match (meta.get(AUDIT_HEAD)?, seq) {
        (Some(v), _) => String::from_utf8(v.to_vec()).map_err(|e| {
            abort(StoreError::Corrupt {
                what: "audit head",
                cause: Arc::new(e),
            })
        })?,
        (None, 0) => "0".repeat(64),
        (None, _) => {
            return Err(abort(StoreError::Corrupt {
                what: "audit head",
                cause: Arc::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the audit log has entries but no head",
                )),
            }))
        }
    };
    let (entry, hash) = audit_entry(seq, &prev, time, event, details).map_err(abort)?;
    audit.insert(&seq.to_be_bytes(), tser(&entry)?)?;
    meta.insert(AUDIT_SEQ, &(seq + 1).to_be_bytes())?;
    meta.insert(AUDIT_HEAD, hash.as_bytes())?;
    Ok(())
}

/// Appends `event` to the event log after the last position (kept in `meta`), in the caller's
/// transaction: positions run from 1 without gaps.
fn event_append(
    meta: &TransactionalTree,
    events: &TransactionalTree,
    mut event: IssuerEvent,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    // A damaged sequence number aborts the append: never restart over older events.
    let seq = match meta.get(EVENT_SEQ)? {
        Some(v) => u64::from_be_bytes(be8("event sequence number", &v).map_err(abort)?),
        None => 0,
    };
    event.seq = seq + 1;
    events.insert(&event.seq.to_be_bytes(), tser(&event)?)?;
    meta.insert(EVENT_SEQ, &event.seq.to_be_bytes())?;
    Ok(())
}

impl SledStore {
    /// Opens (or creates) the store.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(path, crate::config::DEFAULT_CACHE_MB)
    }

    /// Opens (or creates) the store with a page cache of `cache_mb` MiB (sled's own default
    /// is 1 GiB). A store whose records were moved to PostgreSQL ([`MOVED_MARKER`]) is
    /// refused ([`StoreError::Moved`]): serving it would make two issuers of one.
    pub fn open_with_cache(path: &Path, cache_mb: u64) -> Result<SledStore, StoreError> {
        if let Ok(text) = std::fs::read_to_string(path.join(MOVED_MARKER)) {
            return Err(StoreError::Moved(text.trim().to_owned()));
        }
        SledStore::open_moved(path, cache_mb)
    }

    /// Marks the store at `path` as moved to PostgreSQL (`what` says where and when, without
    /// the URL's password): [`SledStore::open_with_cache`] refuses it from then on.
    pub fn mark_moved(path: &Path, what: &str) -> Result<(), StoreError> {
        std::fs::write(path.join(MOVED_MARKER), format!("{what}\n")).map_err(|e| {
            StoreError::Corrupt {
                what: "moved marker",
                cause: Arc::new(e),
            }
        })
    }

    /// Opens the store even when its records were moved (to read them, never to serve them).
    pub fn open_moved(path: &Path, cache_mb: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .open()?;
        let store = SledStore {
            apps: db.open_tree("applications")?,
            offers: db.open_tree("offers")?,
            codes: db.open_tree("codes")?,
            tokens: db.open_tree("tokens")?,
            nonces: db.open_tree("nonces")?,
            creds: db.open_tree("credentials")?,
            status_idx: db.open_tree("status_idx")?,
            status_bits: db.open_tree("status_bits")?,
            status_alloc: db.open_tree("status_alloc")?,
            status_signed: db.open_tree("status_signed")?,
            meta: db.open_tree("meta")?,
            audit: db.open_tree("audit")?,
            pending: db.open_tree("pending_requests")?,
            public: db.open_tree("public_records")?,
            feed: db.open_tree("public_feed")?,
            events: db.open_tree("events")?,
            commit: std::sync::Arc::default(),
            db,
        };
        store.index_pending()?;
        Ok(store)
    }

    /// Indexes the applications awaiting a presentation by creation time, once (stores
    /// written before the index existed).
    fn index_pending(&self) -> Result<(), StoreError> {
        if self.meta.get(PENDING_INDEXED)?.is_some() {
            return Ok(());
        }
        for v in self.apps.iter().values() {
            let app: Application = de(&v?)?;
            if app.status == AppStatus::AwaitingPrerequisites {
                self.pending.insert(pending_key(&app), app.id.as_bytes())?;
            }
        }
        self.meta.insert(PENDING_INDEXED, &[1u8][..])?;
        self.flush()
    }

    /// Makes every write this thread has completed durable. Group commit: a caller whose
    /// writes are already covered by a flush that started after them returns without its
    /// own fsync; one caller flushes for everyone waiting.
    fn flush(&self) -> Result<(), StoreError> {
        let poisoned = |_| StoreError::Poisoned("flush");
        let mut st = self.commit.state.lock().map_err(poisoned)?;
        // Tickets are taken after the caller's writes completed.
        st.written += 1;
        let ticket = st.written;
        loop {
            if st.flushed >= ticket {
                return Ok(());
            }
            if st.flushing {
                st = self.commit.done.wait(st).map_err(poisoned)?;
                continue;
            }
            st.flushing = true;
            let mut leader = FlushLeader {
                commit: &self.commit,
                target: st.written,
                done: false,
            };
            drop(st);
            let flushed = self.db.flush();
            leader.done = flushed.is_ok();
            drop(leader);
            flushed?;
            st = self.commit.state.lock().map_err(poisoned)?;
        }
    }

    /// Appends an audit event on its own (durable).
    pub fn audit(&self, time: i64, event: &str, details: Value) -> Result<(), StoreError> {
        (&self.meta, &self.audit)
            .transaction(|(m, a)| audit_append(m, a, time, event, details.clone()))?;
        self.flush()
    }

    /// A metadata value.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    /// Sets a metadata value (durable).
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        self.flush()
    }

    /// Makes the status lists ready: a new store gets list 1 of `list_size` entries; a store
    /// written before the lists' bits were kept gets them built from its credential records,
    /// once, in one pass (its indices re-keyed by list, its last signed list kept as list 1's,
    /// so the next `iat` still follows it). Later opens read nothing but a marker. Durable when
    /// it returns.
    pub fn prepare_status_lists(&self, list_size: u64) -> Result<(), StoreError> {
        if self.meta.get(STATUS_BITS_KEPT)?.is_some() {
            return Ok(());
        }
        // Redone whole if interrupted: every step below is idempotent.
        let mut lists: std::collections::BTreeMap<u32, (u64, Vec<(u64, u8)>)> =
            std::collections::BTreeMap::new();
        for v in self.creds.iter().values() {
            let rec: CredentialRecord = de(&v?)?;
            self.status_idx
                .insert(idx_key(rec.status_list, rec.status_idx), rec.id.as_bytes())?;
            let e = lists.entry(rec.status_list).or_default();
            e.0 += 1;
            let value = status_value(rec.status);
            if value != 0 {
                e.1.push((rec.status_idx, value));
            }
        }
        lists.entry(1).or_default();
        // Keys of the single list (an 8-byte index) are replaced by (list, index) keys.
        for k in self.status_idx.iter().keys() {
            let k = k?;
            if k.len() == 8 {
                self.status_idx.remove(k)?;
            }
        }
        let mut open = 1;
        for (list, (allocated, set)) in &lists {
            let top = self
                .status_idx
                .scan_prefix(list.to_be_bytes())
                .keys()
                .next_back()
                .transpose()?
                .map_or(0, |k| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&k[4..]);
                    u64::from_be_bytes(b) + 1
                });
            let size = list_size.max(top);
            let mut bytes = vec![0u8; bits_len(size)];
            for (idx, value) in set {
                put_bits(&mut bytes, *idx, *value)?;
            }
            let mut v = 1u64.to_be_bytes().to_vec();
            v.extend_from_slice(&bytes);
            self.status_bits.insert(list.to_be_bytes(), v)?;
            let info = ListInfo {
                list: *list,
                size,
                allocated: *allocated,
            };
            self.status_alloc
                .insert(list.to_be_bytes(), &info.encode())?;
            open = open.max(*list);
        }
        if let (Some(iat), Some(token)) = (
            self.meta.get(STATUS_LIST_IAT)?,
            self.meta.get(STATUS_LIST_TOKEN)?,
        ) {
            let iat = i64::from_be_bytes(be8("status list iat", &iat)?);
            let token = String::from_utf8(token.to_vec()).map_err(|e| StoreError::Corrupt {
                what: "status list token",
                cause: Arc::new(e),
            })?;
            // Version 0 and no key: the bits (version 1) are signed again at the first chance.
            let signed = SignedList {
                iat,
                version: 0,
                kid: String::new(),
                token,
            };
            self.status_signed
                .insert(1u32.to_be_bytes(), ser(&signed)?)?;
            self.meta.remove(STATUS_LIST_IAT)?;
            self.meta.remove(STATUS_LIST_TOKEN)?;
        }
        self.meta.insert(STATUS_OPEN_LIST, &open.to_be_bytes())?;
        self.meta.insert(STATUS_BITS_KEPT, &[1u8][..])?;
        self.flush()
    }

    /// Every status list, in order.
    pub fn status_lists(&self) -> Result<Vec<ListInfo>, StoreError> {
        self.status_alloc
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let list: [u8; 4] = k.as_ref().try_into().map_err(|e| StoreError::Corrupt {
                    what: "status list number",
                    cause: Arc::new(e),
                })?;
                ListInfo::decode(u32::from_be_bytes(list), &v)
            })
            .collect()
    }

    /// A status list's size and allocation.
    pub fn status_list_info(&self, list: u32) -> Result<ListInfo, StoreError> {
        let v = self
            .status_alloc
            .get(list.to_be_bytes())?
            .ok_or_else(|| StoreError::NotFound {
                what: "status list",
                id: list.to_string(),
            })?;
        ListInfo::decode(list, &v)
    }

    /// The list new indices are drawn in.
    pub fn open_status_list(&self) -> Result<ListInfo, StoreError> {
        let open = self
            .meta
            .get(STATUS_OPEN_LIST)?
            .ok_or_else(|| corrupt_list("no open list (the store was not prepared)"))?;
        let open: [u8; 4] = open.as_ref().try_into().map_err(|e| StoreError::Corrupt {
            what: "open status list",
            cause: Arc::new(e),
        })?;
        self.status_list_info(u32::from_be_bytes(open))
    }

    /// Opens the list after `full` (of `size` entries, all valid) and draws new indices in it,
    /// with an audit event, durably. When another caller already rolled over, the open list is
    /// answered as it is.
    pub fn open_next_status_list(
        &self,
        full: u32,
        size: u64,
        now: i64,
    ) -> Result<ListInfo, StoreError> {
        let next = full
            .checked_add(1)
            .ok_or_else(|| corrupt_list("no list number after the last"))?;
        let info = (
            &self.meta,
            &self.status_alloc,
            &self.status_bits,
            &self.audit,
        )
            .transaction(|(m, al, b, a)| {
                let open = m
                    .get(STATUS_OPEN_LIST)?
                    .ok_or_else(|| abort(corrupt_list("no open list")))?;
                if open.as_ref() != full.to_be_bytes() {
                    let open = u32::from_be_bytes(open.as_ref().try_into().map_err(|e| {
                        abort(StoreError::Corrupt {
                            what: "open status list",
                            cause: Arc::new(e),
                        })
                    })?);
                    let v = al
                        .get(open.to_be_bytes())?
                        .ok_or_else(|| abort(corrupt_list("the open list has no size")))?;
                    return ListInfo::decode(open, &v).map_err(abort);
                }
                let info = ListInfo {
                    list: next,
                    size,
                    allocated: 0,
                };
                let mut v = 0u64.to_be_bytes().to_vec();
                v.resize(8 + bits_len(size), 0);
                b.insert(&next.to_be_bytes(), v)?;
                al.insert(&next.to_be_bytes(), &info.encode())?;
                m.insert(STATUS_OPEN_LIST, &next.to_be_bytes())?;
                audit_append(
                    m,
                    a,
                    now,
                    "status_list_opened",
                    json!({"list": next, "size": size, "after": full}),
                )?;
                Ok(info)
            })?;
        self.flush()?;
        Ok(info)
    }

    /// Whether a status index of a list is taken.
    pub fn index_taken(&self, list: u32, idx: u64) -> Result<bool, StoreError> {
        Ok(self.status_idx.contains_key(idx_key(list, idx))?)
    }

    /// The first free index of a list (`size` entries) at or after `start`, wrapping around;
    /// `None` when every index is taken.
    pub fn free_index(&self, list: u32, size: u64, start: u64) -> Result<Option<u64>, StoreError> {
        let start = start.min(size);
        for (from, to) in [(start, size), (0, start)] {
            let mut want = from;
            for k in self
                .status_idx
                .range(idx_key(list, from)..idx_key(list, to))
                .keys()
            {
                let k = k?;
                let taken = u64::from_be_bytes(be8("status index", &k[4..])?);
                if taken != want {
                    return Ok(Some(want));
                }
                want += 1;
            }
            if want < to {
                return Ok(Some(want));
            }
        }
        Ok(None)
    }

    /// Up to `n` free indices of a list, in order from `start`, wrapping around.
    pub fn free_indices(
        &self,
        list: u32,
        size: u64,
        start: u64,
        n: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let start = start.min(size);
        let mut free = Vec::with_capacity(n.min(1 << 20));
        for (from, to) in [(start, size), (0, start)] {
            let mut want = from;
            let mut taken = self
                .status_idx
                .range(idx_key(list, from)..idx_key(list, to))
                .keys();
            while free.len() < n && want < to {
                match taken.next().transpose()? {
                    Some(k) => {
                        let t = u64::from_be_bytes(be8("status index", &k[4..])?);
                        while want < t && free.len() < n {
                            free.push(want);
                            want += 1;
                        }
                        want = want.max(t + 1);
                    }
                    None => {
                        let room = (to - want).min((n - free.len()) as u64);
                        free.extend(want..want + room);
                        want += room;
                    }
                }
            }
        }
        Ok(free)
    }

    /// The current public records of those of `subjects` that have one.
    pub fn public_records(
        &self,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, PublicRecord>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for s in subjects {
            if let Some(v) = self.public.get(s.as_bytes())? {
                out.insert(s.clone(), de(&v)?);
            }
        }
        Ok(out)
    }

    /// Records a batch of public credentials (see [`crate::store::Store::record_public`]).
    pub fn record_public(
        &self,
        items: &[PublicIssue],
        now: i64,
    ) -> Result<Vec<PublicRecord>, StoreError> {
        let out = (
            &self.creds,
            &self.status_idx,
            &self.status_alloc,
            &self.status_bits,
            &self.public,
            &self.feed,
            &self.meta,
            &self.audit,
            &self.events,
        )
            .transaction(|(c, s, al, b, p, f, m, a, ev)| {
                let mut lists: std::collections::BTreeMap<u32, ListInfo> =
                    std::collections::BTreeMap::new();
                let mut bits: std::collections::BTreeMap<u32, Vec<u8>> =
                    std::collections::BTreeMap::new();
                let mut seq = match m.get(PUBLIC_SEQ)? {
                    Some(v) => u64::from_be_bytes(be8("public feed sequence", &v).map_err(abort)?),
                    None => 0,
                };
                let mut out = Vec::with_capacity(items.len());
                let mut revoked = Vec::new();
                for item in items {
                    let rec = &item.rec;
                    // The subject's current record must be the one this item replaces.
                    let current: Option<PublicRecord> = p
                        .get(item.subject.as_bytes())?
                        .map(|v| de(&v))
                        .transpose()
                        .map_err(abort)?;
                    let expected = item.replaces.as_ref().map(|(id, _)| id.as_str());
                    if current.as_ref().map(|r| r.credential_id.as_str()) != expected {
                        return Err(abort(StoreError::PublicRecordChanged {
                            subject: item.subject.clone(),
                        }));
                    }
                    let list = match lists.entry(rec.status_list) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let v = al.get(rec.status_list.to_be_bytes())?.ok_or_else(|| {
                                abort(StoreError::NotFound {
                                    what: "status list",
                                    id: rec.status_list.to_string(),
                                })
                            })?;
                            e.insert(ListInfo::decode(rec.status_list, &v).map_err(abort)?)
                        }
                    };
                    let key = idx_key(rec.status_list, rec.status_idx);
                    if rec.status_idx >= list.size || s.get(key)?.is_some() {
                        return Err(abort(StoreError::IndexTaken(rec.status_idx)));
                    }
                    list.allocated += 1;
                    s.insert(&key, rec.id.as_bytes())?;
                    c.insert(rec.id.as_bytes(), tser(rec)?)?;
                    let business = BusinessIds::public(&item.subject);
                    event_append(m, ev, IssuerEvent::new(EventKind::CredentialIssued, rec, business, now))?;
                    if let Some((old_id, why)) = &item.replaces {
                        let mut old: CredentialRecord = de(&c.get(old_id.as_bytes())?.ok_or_else(|| {
                            abort(StoreError::NotFound {
                                what: "credential",
                                id: old_id.clone(),
                            })
                        })?)
                        .map_err(abort)?;
                        if old.status != CredentialStatus::Revoked {
                            old.status = CredentialStatus::Revoked;
                            old.history.push(StatusChange {
                                time: now,
                                status: CredentialStatus::Revoked,
                                actor: Actor::Automation,
                                reason: Some(why.clone()),
                            });
                            let over = old.history.len().saturating_sub(MAX_STATUS_HISTORY);
                            old.history.drain(..over);
                            c.insert(old_id.as_bytes(), tser(&old)?)?;
                            let lb = match bits.entry(old.status_list) {
                                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                                std::collections::btree_map::Entry::Vacant(e) => {
                                    let v = b.get(old.status_list.to_be_bytes())?.ok_or_else(|| {
                                        abort(corrupt_list("a credential's list has no bits"))
                                    })?;
                                    if v.len() < 8 {
                                        return Err(abort(corrupt_list("a list's bits have no version")));
                                    }
                                    e.insert(v.to_vec())
                                }
                            };
                            put_bits(&mut lb[8..], old.status_idx, status_value(CredentialStatus::Revoked))
                                .map_err(abort)?;
                            revoked.push(json!({"credential_id": old_id, "replaced_by": rec.id, "reason": why}));
                            let business = BusinessIds::public(&item.subject);
                            event_append(m, ev, IssuerEvent::new(EventKind::CredentialRevoked, &old, business, now))?;
                        }
                    }
                    seq += 1;
                    let record = PublicRecord {
                        subject: item.subject.clone(),
                        credential_id: rec.id.clone(),
                        content_sha256: item.content_sha256.clone(),
                        seq,
                        issued_at: rec.issued_at,
                    };
                    p.insert(item.subject.as_bytes(), tser(&record)?)?;
                    let feed_item = FeedItem {
                        seq,
                        credential_id: rec.id.clone(),
                        subject: item.subject.clone(),
                        credential: item.credential.clone(),
                    };
                    f.insert(&seq.to_be_bytes(), tser(&feed_item)?)?;
                    out.push(record);
                }
                for (n, info) in &lists {
                    al.insert(&n.to_be_bytes(), &info.encode())?;
                }
                for (n, mut v) in bits {
                    let version = u64::from_be_bytes(be8("status list version", &v[..8]).map_err(abort)?);
                    v[..8].copy_from_slice(&version.saturating_add(1).to_be_bytes());
                    b.insert(&n.to_be_bytes(), v)?;
                }
                m.insert(PUBLIC_SEQ, &seq.to_be_bytes())?;
                if !out.is_empty() {
                    audit_append(m, a, now, "public_credentials_issued", super::public_batch_audit(items, &out, revoked))?;
                }
                Ok(out)
            })?;
        self.flush()?;
        Ok(out)
    }

    /// The public feed after `after`, at most `limit` items.
    pub fn public_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedItem>, StoreError> {
        self.feed
            .range(after.saturating_add(1).to_be_bytes()..)
            .values()
            .take(limit)
            .map(|v| de(&v?))
            .collect()
    }

    /// The event log after `after`, at most `limit` events.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<IssuerEvent>, StoreError> {
        self.events
            .range(after.saturating_add(1).to_be_bytes()..)
            .values()
            .take(limit)
            .map(|v| de(&v?))
            .collect()
    }

    /// The version of a list's bits (changed by every status change in it).
    pub fn status_version(&self, list: u32) -> Result<u64, StoreError> {
        let v = self
            .status_bits
            .get(list.to_be_bytes())?
            .ok_or_else(|| StoreError::NotFound {
                what: "status list",
                id: list.to_string(),
            })?;
        Ok(u64::from_be_bytes(be8(
            "status list version",
            &v[..v.len().min(8)],
        )?))
    }

    /// A list's stored bits: all a re-sign reads (never the credential records).
    pub fn status_bits(&self, list: u32) -> Result<ListBits, StoreError> {
        let info = self.status_list_info(list)?;
        let v = self
            .status_bits
            .get(list.to_be_bytes())?
            .ok_or_else(|| corrupt_list("a list without its bits"))?;
        if v.len() != 8 + bits_len(info.size) {
            return Err(corrupt_list("a list's bits do not match its size"));
        }
        Ok(ListBits {
            version: u64::from_be_bytes(be8("status list version", &v[..8])?),
            size: info.size,
            bytes: v[8..].to_vec(),
        })
    }

    /// The newest signed token of each list.
    pub fn signed_status_lists(
        &self,
    ) -> Result<std::collections::BTreeMap<u32, SignedList>, StoreError> {
        self.status_signed
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let list: [u8; 4] = k.as_ref().try_into().map_err(|e| StoreError::Corrupt {
                    what: "status list number",
                    cause: Arc::new(e),
                })?;
                Ok((u32::from_be_bytes(list), de(&v)?))
            })
            .collect()
    }

    /// The newest signed token of list `list`, if any.
    pub fn signed_status_list(&self, list: u32) -> Result<Option<SignedList>, StoreError> {
        self.status_signed
            .get(list.to_be_bytes())?
            .map(|v| de(&v))
            .transpose()
    }

    /// Records a newly signed list in one durable write, before it is served or pushed: after a
    /// restart the next one is never older. A list whose `iat` is not after the recorded one
    /// is refused and nothing is written.
    pub fn put_signed_status_list(&self, list: u32, signed: &SignedList) -> Result<(), StoreError> {
        self.status_signed.transaction(|t| {
            if let Some(held) = t.get(list.to_be_bytes())? {
                let held: SignedList = de(&held).map_err(abort)?;
                if signed.iat <= held.iat {
                    return Err(abort(StoreError::StatusListNotNewer {
                        held: held.iat,
                        iat: signed.iat,
                    }));
                }
            }
            t.insert(&list.to_be_bytes(), tser(signed)?)?;
            Ok(())
        })?;
        self.flush()
    }

    /// Stores an application (and an audit event), durably.
    pub fn put_application(
        &self,
        app: &Application,
        time: i64,
        event: Option<&str>,
    ) -> Result<(), StoreError> {
        (&self.apps, &self.pending, &self.meta, &self.audit).transaction(|(apps, p, m, a)| {
            apps.insert(app.id.as_bytes(), tser(app)?)?;
            if app.status == AppStatus::AwaitingPrerequisites {
                p.insert(pending_key(app), app.id.as_bytes())?;
            } else {
                p.remove(pending_key(app))?;
            }
            if let Some(ev) = event {
                audit_append(m, a, time, ev, json!({"application_id": app.id, "type": app.credential_type, "status": app.status}))?;
            }
            Ok(())
        })?;
        self.flush()
    }

    /// Stores a new application with an `application_created` audit event naming who opened
    /// it, durably.
    pub fn create_application(
        &self,
        app: &Application,
        actor: &Actor,
        time: i64,
    ) -> Result<(), StoreError> {
        (&self.apps, &self.pending, &self.meta, &self.audit).transaction(|(apps, p, m, a)| {
            apps.insert(app.id.as_bytes(), tser(app)?)?;
            if app.status == AppStatus::AwaitingPrerequisites {
                p.insert(pending_key(app), app.id.as_bytes())?;
            }
            audit_append(m, a, time, "application_created", json!({"application_id": app.id, "type": app.credential_type, "status": app.status, "actor": actor.audit()}))?;
            Ok(())
        })?;
        self.flush()
    }

    /// An application.
    pub fn application(&self, id: &str) -> Result<Application, StoreError> {
        de(&self.apps.get(id)?.ok_or_else(|| StoreError::NotFound {
            what: "application",
            id: id.to_owned(),
        })?)
    }

    /// Every application.
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.apps.iter().values().map(|v| de(&v?)).collect()
    }

    /// Calls `f` with each application in turn (one decoded at a time).
    pub fn visit_applications(
        &self,
        mut f: impl FnMut(Application) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for v in self.apps.iter().values() {
            f(de(&v?)?)?;
        }
        Ok(())
    }

    /// Calls `f` with each credential record in turn (one decoded at a time).
    pub fn visit_credentials(
        &self,
        mut f: impl FnMut(CredentialRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for v in self.creds.iter().values() {
            f(de(&v?)?)?;
        }
        Ok(())
    }

    /// Replaces application `before` by `after` only if the stored record still equals
    /// `before` (a compare-and-swap), with `offer` (and its code) when one is made and an
    /// audit `event` with `details`; all in one transaction, durable when it returns. When the
    /// record changed meanwhile nothing is written and the answer is
    /// [`StoreError::ApplicationChanged`] with its current state.
    pub fn swap_application(
        &self,
        before: &Application,
        after: &Application,
        offer: Option<&Offer>,
        time: i64,
        event: &str,
        details: Value,
    ) -> Result<(), StoreError> {
        (
            &self.apps,
            &self.pending,
            &self.offers,
            &self.codes,
            &self.meta,
            &self.audit,
        )
            .transaction(|(apps, p, o, c, m, a)| {
                let raw = apps.get(before.id.as_bytes())?.ok_or_else(|| {
                    abort(StoreError::NotFound {
                        what: "application",
                        id: before.id.clone(),
                    })
                })?;
                let current: Application = de(&raw).map_err(abort)?;
                if current != *before {
                    return Err(abort(StoreError::ApplicationChanged {
                        id: current.id,
                        status: current.status,
                    }));
                }
                apps.insert(after.id.as_bytes(), tser(after)?)?;
                if after.status == AppStatus::AwaitingPrerequisites {
                    p.insert(pending_key(after), after.id.as_bytes())?;
                } else {
                    p.remove(pending_key(after))?;
                }
                if let Some(offer) = offer {
                    o.insert(offer.id.as_bytes(), tser(offer)?)?;
                    c.insert(offer.code_hash.as_bytes(), offer.id.as_bytes())?;
                }
                audit_append(m, a, time, event, details.clone())?;
                Ok(())
            })?;
        self.flush()
    }

    /// Records an offer for an application, durably.
    pub fn put_offer(&self, offer: &Offer, app: &Application, time: i64) -> Result<(), StoreError> {
        (
            &self.offers,
            &self.codes,
            &self.apps,
            &self.meta,
            &self.audit,
        )
            .transaction(|(o, c, apps, m, a)| {
                o.insert(offer.id.as_bytes(), tser(offer)?)?;
                c.insert(offer.code_hash.as_bytes(), offer.id.as_bytes())?;
                apps.insert(app.id.as_bytes(), tser(app)?)?;
                audit_append(
                    m,
                    a,
                    time,
                    "offer_created",
                    json!({"application_id": app.id, "offer_id": offer.id}),
                )?;
                Ok(())
            })?;
        self.flush()
    }

    /// An offer by id.
    pub fn offer(&self, id: &str) -> Result<Offer, StoreError> {
        de(&self.offers.get(id)?.ok_or_else(|| StoreError::NotFound {
            what: "offer",
            id: id.to_owned(),
        })?)
    }

    /// The offer of a pre-authorized code.
    pub fn offer_by_code(&self, code: &str) -> Result<Option<Offer>, StoreError> {
        let Some(id) = self.codes.get(sha256_hex(code.as_bytes()))? else {
            return Ok(None);
        };
        self.offer(&String::from_utf8_lossy(&id)).map(Some)
    }

    /// Counts a wrong transaction code; returns the attempts so far.
    pub fn offer_failed_attempt(&self, offer_id: &str, max: u32) -> Result<u32, StoreError> {
        let n = self.offers.transaction(|o| {
            let mut offer: Offer = de(&o.get(offer_id)?.ok_or_else(|| {
                abort(StoreError::NotFound {
                    what: "offer",
                    id: offer_id.to_owned(),
                })
            })?)
            .map_err(abort)?;
            offer.attempts += 1;
            if offer.attempts >= max {
                offer.used = true;
            }
            o.insert(offer_id.as_bytes(), tser(&offer)?)?;
            Ok(offer.attempts)
        })?;
        self.flush()?;
        Ok(n)
    }

    /// Redeems a pre-authorized code: marks the offer used and stores the access token, in one
    /// transaction (a code is never redeemed twice).
    pub fn redeem(
        &self,
        offer_id: &str,
        token_hash: &str,
        token: &AccessToken,
        now: i64,
    ) -> Result<(), StoreError> {
        (&self.offers, &self.tokens).transaction(|(o, t)| {
            let mut offer: Offer = de(&o.get(offer_id)?.ok_or_else(|| {
                abort(StoreError::NotFound {
                    what: "offer",
                    id: offer_id.to_owned(),
                })
            })?)
            .map_err(abort)?;
            if offer.used || now >= offer.expires {
                return Err(abort(StoreError::CodeUsedOrExpired));
            }
            offer.used = true;
            o.insert(offer_id.as_bytes(), tser(&offer)?)?;
            t.insert(token_hash.as_bytes(), tser(token)?)?;
            Ok(())
        })?;
        self.flush()
    }

    /// An access token by its hash.
    pub fn token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        self.tokens.get(hash)?.map(|v| de(&v)).transpose()
    }

    /// Stores a fresh `c_nonce` valid until `expires`.
    ///
    /// Not flushed on its own: a nonce lost in a crash only makes the wallet fetch another.
    pub fn put_nonce(&self, nonce: &str, expires: i64) -> Result<(), StoreError> {
        self.nonces
            .insert(nonce.as_bytes(), &expires.to_be_bytes())?;
        Ok(())
    }

    /// Consumes a `c_nonce`: true when it existed and had not expired.
    ///
    /// Not flushed on its own: the issuance that follows flushes it with the credential's
    /// record, and without an issuance a replayed nonce grants nothing.
    pub fn take_nonce(&self, nonce: &str, now: i64) -> Result<bool, StoreError> {
        match self.nonces.remove(nonce.as_bytes())? {
            Some(v) => Ok(i64::from_be_bytes(be8("c_nonce expiry", &v)?) > now),
            None => Ok(false),
        }
    }

    /// One transaction and one flush for a batch of issuances; the outer error fails them
    /// all, an inner one only its own.
    pub(super) fn commit_issuances(
        &self,
        batch: &[PendingIssuance],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let outcomes = (&self.creds, &self.status_idx, &self.status_alloc, &self.tokens, &self.apps, &self.meta, &self.audit, &self.events).transaction(|(c, s, al, t, apps, m, a, ev)| {
            let mut outcomes = Vec::with_capacity(batch.len());
            for p in batch {
                let rec = &p.rec;
                let key = idx_key(rec.status_list, rec.status_idx);
                // Every check before any write, so a refused issuance writes nothing.
                let list = match al.get(rec.status_list.to_be_bytes())?.map(|v| ListInfo::decode(rec.status_list, &v)).transpose() {
                    Ok(Some(list)) if rec.status_idx < list.size => list,
                    Ok(_) => {
                        outcomes.push(Err(StoreError::NotFound { what: "status list index", id: format!("{}/{}", rec.status_list, rec.status_idx) }));
                        continue;
                    }
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                };
                if s.get(key)?.is_some() {
                    outcomes.push(Err(StoreError::IndexTaken(rec.status_idx)));
                    continue;
                }
                let Some(raw) = t.get(p.token_hash.as_bytes())? else {
                    outcomes.push(Err(StoreError::NotFound { what: "access token", id: String::new() }));
                    continue;
                };
                let mut token: AccessToken = match de(&raw) {
                    Ok(token) => token,
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                };
                if token.used {
                    outcomes.push(Err(StoreError::TokenUsed));
                    continue;
                }
                let app = match apps.get(rec.application_id.as_bytes())?.map(|v| de::<Application>(&v)).transpose() {
                    Ok(app) => app,
                    Err(e) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                };
                token.used = true;
                token.credential_id = Some(rec.id.clone());
                t.insert(p.token_hash.as_bytes(), tser(&token)?)?;
                s.insert(&key, rec.id.as_bytes())?;
                // The index's entry in the list's bits is valid (0) from the list's creation
                // and no index is allocated twice: only the allocation count changes.
                let list = ListInfo { allocated: list.allocated + 1, ..list };
                al.insert(&rec.status_list.to_be_bytes(), &list.encode())?;
                c.insert(rec.id.as_bytes(), tser(rec)?)?;
                let business = BusinessIds::of(&rec.application_id, app.as_ref());
                event_append(m, ev, IssuerEvent::new(EventKind::CredentialIssued, rec, business, p.now))?;
                if let Some(mut app) = app {
                    app.mark_issued(p.now);
                    apps.insert(app.id.as_bytes(), tser(&app)?)?;
                }
                audit_append(m, a, p.now, "credential_issued", json!({"credential_id": rec.id, "vct": rec.vct, "status_list": rec.status_list, "status_idx": rec.status_idx, "kid": rec.kid, "credential_sha256": rec.credential_sha256}))?;
                outcomes.push(Ok(()));
            }
            Ok(outcomes)
        })?;
        self.flush()?;
        Ok(outcomes)
    }

    /// Imports credentials issued elsewhere (an issuer's records moved from another store;
    /// the benchmarks' large stores), with no access token: each record, its status index,
    /// its list's allocation count and bits, and an audit event, in one transaction, durable
    /// when it returns. Refused whole when an index is taken or outside its list.
    pub fn import_issued(&self, recs: &[CredentialRecord], now: i64) -> Result<(), StoreError> {
        (
            &self.creds,
            &self.status_idx,
            &self.status_alloc,
            &self.status_bits,
            &self.meta,
            &self.audit,
        )
            .transaction(|(c, s, al, b, m, a)| {
                let mut lists: std::collections::BTreeMap<u32, (ListInfo, Option<Vec<u8>>)> =
                    std::collections::BTreeMap::new();
                for rec in recs {
                    let list = match lists.entry(rec.status_list) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            let v = al.get(rec.status_list.to_be_bytes())?.ok_or_else(|| {
                                abort(StoreError::NotFound {
                                    what: "status list",
                                    id: rec.status_list.to_string(),
                                })
                            })?;
                            e.insert((
                                ListInfo::decode(rec.status_list, &v).map_err(abort)?,
                                None,
                            ))
                        }
                    };
                    let key = idx_key(rec.status_list, rec.status_idx);
                    if rec.status_idx >= list.0.size || s.get(key)?.is_some() {
                        return Err(abort(StoreError::IndexTaken(rec.status_idx)));
                    }
                    list.0.allocated += 1;
                    let value = status_value(rec.status);
                    if value != 0 {
                        if list.1.is_none() {
                            let bits = b
                                .get(rec.status_list.to_be_bytes())?
                                .ok_or_else(|| abort(corrupt_list("a list without its bits")))?;
                            if bits.len() != 8 + bits_len(list.0.size) {
                                return Err(abort(corrupt_list(
                                    "a list's bits do not match its size",
                                )));
                            }
                            list.1 = Some(bits.to_vec());
                        }
                        if let Some(bits) = list.1.as_mut() {
                            put_bits(&mut bits[8..], rec.status_idx, value).map_err(abort)?;
                        }
                    }
                    s.insert(&key, rec.id.as_bytes())?;
                    c.insert(rec.id.as_bytes(), tser(rec)?)?;
                    audit_append(m, a, now, "credential_imported", json!({"credential_id": rec.id, "vct": rec.vct, "status_list": rec.status_list, "status_idx": rec.status_idx, "status": rec.status, "kid": rec.kid, "credential_sha256": rec.credential_sha256}))?;
                }
                for (n, (info, bits)) in lists {
                    al.insert(&n.to_be_bytes(), &info.encode())?;
                    if let Some(mut bits) = bits {
                        let version = u64::from_be_bytes(
                            be8("status list version", &bits[..bits.len().min(8)])
                                .map_err(abort)?,
                        );
                        bits[..8].copy_from_slice(&version.saturating_add(1).to_be_bytes());
                        b.insert(&n.to_be_bytes(), bits)?;
                    }
                }
                Ok(())
            })?;
        self.flush()
    }

    /// Changes a credential's status, recording who and why in its history and the audit
    /// log, and its list's bits, in one transaction (durable before it returns). Answers the
    /// record and the version of its list's bits that holds the change. A revoked credential
    /// only stays revoked ([`StoreError::RevokedIsFinal`]).
    pub fn set_status(
        &self,
        id: &str,
        status: CredentialStatus,
        actor: &Actor,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(CredentialRecord, u64), StoreError> {
        let out = (&self.creds, &self.status_bits, &self.meta, &self.audit, &self.apps, &self.events).transaction(
            |(c, b, m, a, apps, ev)| {
                let mut rec: CredentialRecord = de(&c.get(id)?.ok_or_else(|| {
                    abort(StoreError::NotFound {
                        what: "credential",
                        id: id.to_owned(),
                    })
                })?)
                .map_err(abort)?;
                if rec.status == CredentialStatus::Revoked && status != CredentialStatus::Revoked {
                    return Err(abort(StoreError::RevokedIsFinal));
                }
                let from = rec.status;
                rec.status = status;
                rec.history.push(StatusChange {
                    time: now,
                    status,
                    actor: actor.clone(),
                    reason: reason.map(str::to_owned),
                });
                let over = rec.history.len().saturating_sub(MAX_STATUS_HISTORY);
                rec.history.drain(..over);
                c.insert(id.as_bytes(), tser(&rec)?)?;
                // The list's bits change with the record, in this transaction.
                let list = rec.status_list.to_be_bytes();
                let mut bits = b
                    .get(list)?
                    .ok_or_else(|| abort(corrupt_list("a credential's list has no bits")))?
                    .to_vec();
                if bits.len() < 8 {
                    return Err(abort(corrupt_list("a list's bits have no version")));
                }
                let version =
                    u64::from_be_bytes(be8("status list version", &bits[..8]).map_err(abort)?);
                let version = version.saturating_add(1);
                bits[..8].copy_from_slice(&version.to_be_bytes());
                put_bits(&mut bits[8..], rec.status_idx, status_value(status)).map_err(abort)?;
                b.insert(&list, bits)?;
                let mut details = json!({"credential_id": id, "from": from, "to": status, "actor": actor.audit()});
                if let Some(r) = reason {
                    details["reason"] = r.into();
                }
                audit_append(m, a, now, "status_changed", details)?;
                if from != status {
                    let app = apps
                        .get(rec.application_id.as_bytes())?
                        .map(|v| de::<Application>(&v))
                        .transpose()
                        .map_err(abort)?;
                    let business = BusinessIds::of(&rec.application_id, app.as_ref());
                    event_append(m, ev, IssuerEvent::new(EventKind::of_change(status), &rec, business, now))?;
                }
                Ok((rec, version))
            },
        )?;
        self.flush()?;
        Ok(out)
    }

    /// A credential record.
    pub fn credential(&self, id: &str) -> Result<CredentialRecord, StoreError> {
        de(&self.creds.get(id)?.ok_or_else(|| StoreError::NotFound {
            what: "credential",
            id: id.to_owned(),
        })?)
    }

    /// Records a re-issue of `rec` with the access token that issued it (counted against
    /// `max`), and its audit event, durably. The record and its status index stay as they are.
    pub fn record_reissue(
        &self,
        token_hash: &str,
        rec: &CredentialRecord,
        kid: &str,
        credential_sha256: &str,
        now: i64,
        max: u32,
    ) -> Result<(), StoreError> {
        (&self.tokens, &self.meta, &self.audit).transaction(|(t, m, a)| {
            let raw = t.get(token_hash.as_bytes())?.ok_or_else(|| {
                abort(StoreError::NotFound {
                    what: "access token",
                    id: String::new(),
                })
            })?;
            let mut token: AccessToken = de(&raw).map_err(abort)?;
            if token.credential_id.as_deref() != Some(rec.id.as_str()) || token.reissues >= max {
                return Err(abort(StoreError::TokenUsed));
            }
            token.reissues += 1;
            t.insert(token_hash.as_bytes(), tser(&token)?)?;
            audit_append(
                m,
                a,
                now,
                "credential_reissued",
                json!({"credential_id": rec.id, "status_idx": rec.status_idx, "kid": kid, "credential_sha256": credential_sha256}),
            )?;
            Ok(())
        })?;
        self.flush()
    }

    /// Removes, up to `max` of each kind: used or expired offers (and their codes), access
    /// tokens and `c_nonce`s expired at `now`, and applications still awaiting a presentation
    /// created before `pending_before` (an audit event each). Durable when it returns.
    pub fn sweep(&self, now: i64, pending_before: i64, max: usize) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        let dead = first_matching(&self.offers, max, |v| {
            let offer: Offer = de(v)?;
            Ok((offer.used || now >= offer.expires).then_some(offer.code_hash))
        })?;
        // Counted only when this sweep removed it (another one may have meanwhile).
        for (k, code) in dead {
            let removed = (&self.offers, &self.codes).transaction(|(o, c)| {
                let removed = o.remove(&k)?.is_some();
                c.remove(code.as_bytes())?;
                Ok::<bool, ConflictableTransactionError<StoreError>>(removed)
            })?;
            swept.offers += usize::from(removed);
        }
        let dead = first_matching(&self.tokens, max, |v| {
            Ok((now >= de::<AccessToken>(v)?.expires).then_some(()))
        })?;
        for (k, ()) in dead {
            swept.tokens += usize::from(self.tokens.remove(k)?.is_some());
        }
        let dead = first_matching(&self.nonces, max, |v| {
            Ok((i64::from_be_bytes(be8("c_nonce expiry", v)?) <= now).then_some(()))
        })?;
        for (k, ()) in dead {
            swept.nonces += usize::from(self.nonces.remove(k)?.is_some());
        }
        let mut dead = Vec::new();
        for kv in self
            .pending
            .range(..pending_before.to_be_bytes().to_vec())
            .take(max)
        {
            let (k, id) = kv?;
            dead.push((k, String::from_utf8_lossy(&id).into_owned()));
        }
        for (k, id) in dead {
            let removed = (&self.apps, &self.pending, &self.meta, &self.audit).transaction(
                |(apps, p, m, a)| {
                    p.remove(&k)?;
                    let Some(v) = apps.get(id.as_bytes())? else {
                        return Ok(false);
                    };
                    let app: Application = de(&v).map_err(abort)?;
                    // Answered meanwhile: only the index entry was stale.
                    if app.status != AppStatus::AwaitingPrerequisites {
                        return Ok(false);
                    }
                    apps.remove(id.as_bytes())?;
                    audit_append(
                        m,
                        a,
                        now,
                        "application_expired",
                        json!({"application_id": id, "type": app.credential_type}),
                    )?;
                    Ok(true)
                },
            )?;
            if removed {
                swept.pending += 1;
            }
        }
        self.flush()?;
        Ok(swept)
    }

    /// Every credential record.
    pub fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        self.creds.iter().values().map(|v| de(&v?)).collect()
    }

    /// Writes raw bytes as a credential record (tests of damaged stores).
    #[cfg(test)]
    pub(crate) fn put_raw_credential(&self, id: &str, raw: &[u8]) -> Result<(), StoreError> {
        self.creds.insert(id, raw)?;
        Ok(())
    }

    /// Turns this store into one written before the lists' bits were kept (tests of the
    /// migration): list 1's indices keyed by index alone, no bits, no per-list state, the last
    /// signed list in the old metadata keys.
    #[cfg(test)]
    pub(crate) fn make_legacy(&self) -> Result<(), StoreError> {
        for kv in self.status_idx.iter() {
            let (k, v) = kv?;
            self.status_idx.remove(&k)?;
            self.status_idx.insert(&k[4..], v)?;
        }
        if let Some(signed) = self.signed_status_lists()?.remove(&1) {
            self.meta
                .insert(STATUS_LIST_IAT, &signed.iat.to_be_bytes())?;
            self.meta
                .insert(STATUS_LIST_TOKEN, signed.token.as_bytes())?;
        }
        self.status_bits.clear()?;
        self.status_alloc.clear()?;
        self.status_signed.clear()?;
        self.meta.remove(STATUS_OPEN_LIST)?;
        self.meta.remove(STATUS_BITS_KEPT)?;
        self.flush()
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<Value>, StoreError> {
        self.audit.iter().values().map(|v| de(&v?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{sha256_hex, verify_audit};
    use serde_json::Map;

    fn record(status: CredentialStatus) -> CredentialRecord {
        CredentialRecord {
            id: "cred-1".into(),
            application_id: "app-1".into(),
            vct: "https://bizcred.example/vct/business-number".into(),
            status_list: 1,
            status_idx: 7,
            status,
            issued_at: 1_000,
            kid: "did:example:cra#key-1".into(),
            credential_sha256: "00".repeat(32),
            history: Vec::new(),
        }
    }

    #[test]
    fn states_keep_their_stored_names_and_an_unknown_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let mut rec = record(CredentialStatus::Suspended);
        store
            .creds
            .insert(rec.id.as_bytes(), ser(&rec).expect("ser"))
            .expect("insert");
        let raw: Value =
            serde_json::from_slice(&store.creds.get("cred-1").expect("get").expect("some"))
                .expect("json");
        assert_eq!(raw["status"], "suspended");
        assert_eq!(store.credentials().expect("read"), vec![rec.clone()]);
        // A state nothing knows (a typo, a newer version's state) is not read as valid.
        rec.id = "cred-2".into();
        let mut altered = serde_json::to_value(&rec).expect("v");
        altered["status"] = "revokd".into();
        store
            .creds
            .insert("cred-2", altered.to_string().as_bytes())
            .expect("insert");
        assert!(matches!(
            store.credentials(),
            Err(StoreError::Corrupt { what: "record", .. })
        ));
        assert!(matches!(
            store.set_status(
                "cred-2",
                CredentialStatus::Revoked,
                &Actor::Automation,
                None,
                1_001
            ),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn imported_credentials_take_their_indices_and_bits_all_or_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        store.prepare_status_lists(16).expect("lists");
        let mut a = record(CredentialStatus::Valid);
        let mut b = record(CredentialStatus::Revoked);
        b.id = "cred-2".into();
        b.status_idx = 9;
        store
            .import_issued(&[a.clone(), b.clone()], 1_000)
            .expect("import");
        assert!(store.index_taken(1, 7).expect("taken"));
        assert!(store.index_taken(1, 9).expect("taken"));
        assert_eq!(store.open_status_list().expect("open").allocated, 2);
        let bits = store.status_bits(1).expect("bits");
        assert_eq!((bits.version, bits.bytes[9 / 4] >> 2), (2, 1));
        // A taken index (or one outside the list) refuses the whole import.
        a.id = "cred-3".into();
        b.id = "cred-4".into();
        b.status_idx = 3;
        for bad in [7, 16] {
            a.status_idx = bad;
            assert!(matches!(
                store.import_issued(&[b.clone(), a.clone()], 1_001),
                Err(StoreError::IndexTaken(_))
            ));
        }
        assert!(!store.index_taken(1, 3).expect("taken"));
        assert_eq!(store.credentials().expect("records").len(), 2);
        assert_eq!(store.status_bits(1).expect("bits").version, 2);
        assert!(verify_audit(&store.audit_entries().expect("audit")).is_ok());
    }

    #[test]
    fn a_value_that_cannot_be_encoded_is_an_error_not_an_empty_record() {
        // JSON object keys are strings: this map cannot be encoded.
        let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert!(matches!(
            ser(&bad),
            Err(StoreError::Encode {
                what: "a record",
                ..
            })
        ));
    }

    #[test]
    fn a_damaged_audit_sequence_number_stops_the_append() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        store.audit(1_000, "first", json!({})).expect("audit");
        store.audit(1_001, "second", json!({})).expect("audit");
        store.meta.insert(AUDIT_SEQ, &[1u8][..]).expect("damage");
        // Before: the damaged number read as 0, and entry 0 was overwritten.
        assert!(matches!(
            store.audit(1_002, "third", json!({})),
            Err(StoreError::Corrupt {
                what: "audit sequence number",
                ..
            })
        ));
        let entries = store.audit_entries().expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["event"], "first");
        assert_eq!(verify_audit(&entries), Ok(2));
        // A lost head does not start a new chain either.
        store
            .meta
            .insert("audit_seq", &2u64.to_be_bytes()[..])
            .expect("repair");
        store.meta.remove("audit_head").expect("damage");
        assert!(matches!(
            store.audit(1_002, "third", json!({})),
            Err(StoreError::Corrupt {
                what: "audit head",
                ..
            })
        ));
        assert_eq!(store.audit_entries().expect("entries").len(), 2);
    }

    #[test]
    fn a_damaged_nonce_expiry_is_an_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        store.put_nonce("n1", 2_000).expect("nonce");
        assert_eq!(store.take_nonce("n1", 1_000).ok(), Some(true));
        assert_eq!(store.take_nonce("n1", 1_000).ok(), Some(false));
        store.nonces.insert("n2", &[0xffu8; 3][..]).expect("damage");
        assert!(matches!(
            store.take_nonce("n2", 1_000),
            Err(StoreError::Corrupt { .. })
        ));
    }

    fn app(id: &str, status: AppStatus, created: i64) -> Application {
        Application {
            id: id.into(),
            credential_type: "business-number".into(),
            status,
            claims: Map::new(),
            verified_claims: Vec::new(),
            nonce: None,
            nonce_used: false,
            holder_thumbprint: None,
            verification: None,
            offer_id: None,
            created,
            history: Vec::new(),
            dependencies: Default::default(),
            capability: None,
        }
    }

    fn offer(id: &str, app: &str, expires: i64) -> Offer {
        Offer {
            id: id.into(),
            application_id: app.into(),
            configuration_id: "business-number".into(),
            code_hash: sha256_hex(format!("code-{id}").as_bytes()),
            tx_hash: "tx".into(),
            expires,
            attempts: 0,
            used: false,
            offer: json!({}),
        }
    }

    #[test]
    fn the_sweep_removes_what_expired_and_nothing_live_bounded() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let approved = app("a3", AppStatus::AwaitingApproval, 100);
        store.put_application(&approved, 100, None).expect("app");
        for (id, expires) in [("live", 2_000), ("used", 2_000), ("expired", 900)] {
            store
                .put_offer(&offer(id, "a3", expires), &approved, 100)
                .expect("offer");
        }
        store.offer_failed_attempt("used", 1).expect("void");
        let token = |expires| AccessToken {
            application_id: "a3".into(),
            configuration_id: "business-number".into(),
            expires,
            used: false,
            credential_id: None,
            reissues: 0,
        };
        store
            .tokens
            .insert("t-live", ser(&token(2_000)).expect("ser"))
            .expect("t");
        store
            .tokens
            .insert("t-old", ser(&token(900)).expect("ser"))
            .expect("t");
        store.put_nonce("n-live", 2_000).expect("n");
        store.put_nonce("n-old", 900).expect("n");
        let waiting = |id, created| app(id, AppStatus::AwaitingPrerequisites, created);
        store
            .put_application(&waiting("a-old", 100), 100, Some("application_created"))
            .expect("app");
        store
            .put_application(&waiting("a-new", 1_500), 1_500, None)
            .expect("app");
        // Answered in time: it leaves the pending index.
        let mut answered = waiting("a-answered", 100);
        store.put_application(&answered, 100, None).expect("app");
        answered.status = AppStatus::AwaitingApproval;
        store.put_application(&answered, 200, None).expect("app");

        let swept = store.sweep(1_000, 1_000, 1_000).expect("sweep");
        assert_eq!(
            swept,
            Swept {
                offers: 2,
                tokens: 1,
                nonces: 1,
                pending: 1
            }
        );
        assert!(store.offer("live").is_ok());
        assert!(store.offer_by_code("code-live").expect("code").is_some());
        for gone in ["used", "expired"] {
            assert!(matches!(
                store.offer(gone),
                Err(StoreError::NotFound { .. })
            ));
            assert!(store
                .offer_by_code(&format!("code-{gone}"))
                .expect("code")
                .is_none());
        }
        assert!(store.token("t-live").expect("t").is_some());
        assert!(store.token("t-old").expect("t").is_none());
        assert_eq!(store.take_nonce("n-live", 1_000).ok(), Some(true));
        assert!(store.nonces.get("n-old").expect("n").is_none());
        assert!(matches!(
            store.application("a-old"),
            Err(StoreError::NotFound { .. })
        ));
        for kept in ["a-new", "a-answered", "a3"] {
            assert!(store.application(kept).is_ok(), "{kept}");
        }
        let entries = store.audit_entries().expect("audit");
        assert_eq!(
            entries
                .iter()
                .filter(|e| e["event"] == "application_expired")
                .count(),
            1
        );
        assert!(verify_audit(&entries).is_ok());
        assert_eq!(
            store.sweep(1_000, 1_000, 1_000).expect("again"),
            Swept::default()
        );
        // Bounded: at most `max` of each kind a sweep.
        for i in 0..5 {
            store.put_nonce(&format!("x{i}"), 900).expect("n");
        }
        assert_eq!(store.sweep(1_000, 1_000, 2).expect("bounded").nonces, 2);
        assert_eq!(store.nonces.len(), 3);
    }

    #[test]
    fn a_swap_over_a_record_that_changed_writes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        // Through the front, which adds the application to the details.
        let store = crate::store::Store::open(&dir.path().join("db")).expect("open");
        let before = app("a1", AppStatus::AwaitingApproval, 100);
        store.put_application(&before, 100, None).expect("app");
        let mut first = before.clone();
        first.status = AppStatus::Refused;
        let mut second = before.clone();
        second.status = AppStatus::Offered;
        store
            .swap_application(&before, &first, None, 101, "application_refused", json!({}))
            .expect("first wins");
        // The second was decided on the record as it was before the first: refused whole.
        let o = offer("o1", "a1", 1_000);
        assert!(matches!(
            store.swap_application(&before, &second, Some(&o), 102, "offer_created", json!({})),
            Err(StoreError::ApplicationChanged {
                status: AppStatus::Refused,
                ..
            })
        ));
        assert_eq!(
            store.application("a1").expect("a1").status,
            AppStatus::Refused
        );
        assert!(matches!(
            store.offer("o1"),
            Err(StoreError::NotFound { .. })
        ));
        let entries = store.audit_entries().expect("audit");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["details"]["status"], "refused");
    }

    #[test]
    fn an_audit_entry_without_a_hash_breaks_the_chain() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        store.audit(1_000, "first", json!({})).expect("audit");
        let mut entries = store.audit_entries().expect("entries");
        entries[0].as_object_mut().expect("o").remove("hash");
        assert_eq!(
            verify_audit(&entries),
            Err((0, "the entry has no hash".to_owned()))
        );
    }
}
