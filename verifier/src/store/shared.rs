//! What the instances of a verifier service share: pending requests (with their nonce, state,
//! policy and expiry), the outcome of each transaction (the report and the signed receipt) and
//! the receipts' history. Two implementations hold one contract
//! (`verifier/tests/shared_contract.rs` runs the same tests on both):
//!
//! * [`DirShared`]: the data directory (`requests/`, `receipts/`) and, for the reports, the
//!   service's memory. One instance: a second process on the same directory would count
//!   pending requests of its own and not see the other's reports.
//! * `pg::PgShared` (feature `postgres`): one PostgreSQL database, any number of instances.
//!   A wallet may post its answer to another instance than the one that made the request,
//!   and every instance shows the outcome.
//!
//! # The contract
//!
//! * [`SharedStore::create`] keeps a request unless `max_pending` requests (waiting, or taken
//!   and not finished) already exist; expired ones are removed first and do not count. With
//!   several instances the count is of all of them.
//! * [`SharedStore::take`] hands a waiting, unexpired request to exactly one caller: of any
//!   number of answers at once, on any instances, one takes it, the others find nothing. A
//!   taken request is no longer served ([`Waiting::answering`]) and cannot be taken again.
//! * [`SharedStore::finish`] keeps the signed receipt (the history) and the report (the
//!   outcome) of a taken request and forgets the request. At most `max_results` reports are
//!   held (they hold disclosed claims), the oldest dropped first; receipts (digests, no
//!   personal data) are all kept.
//! * [`SharedStore::receipts`] lists the history newest first by (time, state), `limit` at
//!   a time, each page after the receipt `before`.
//!
//! The trait is synchronous, like the data directory's methods: the service calls it on
//! tokio's blocking pool, never on an async worker.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{OpenRequest, PendingIndex, ReceiptEntry, StoreError, VerifierDir};
use crate::verify::Report;

/// What a verdict left for the relying party.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The full report (with the disclosed claims).
    pub report: Report,
    /// The signed receipt.
    pub receipt: Value,
    /// The receipt's id (`AT-STATE`): the verdict page's address.
    pub receipt_id: String,
}

/// A request that exists and has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The request and its policy.
    pub request: OpenRequest,
    /// Whether an answer took it and is being verified (its request object is no longer
    /// served, and it cannot be answered again).
    pub answering: bool,
}

/// The storage the instances of a verifier service share (see the module documentation).
pub trait SharedStore: Send + Sync + std::fmt::Debug {
    /// Keeps `request` unless `max_pending` unexpired requests already exist
    /// ([`StoreError::TooManyPending`]); expired ones are removed first.
    fn create(&self, request: &OpenRequest, now: i64, max_pending: usize)
        -> Result<(), StoreError>;

    /// The unexpired request `state`, waiting or being answered.
    fn lookup(&self, state: &str, now: i64) -> Result<Option<Waiting>, StoreError>;

    /// Takes the waiting, unexpired request `state`: once, across every instance.
    fn take(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, StoreError>;

    /// Keeps the outcome of the taken request `state` answered at `now` (its receipt id is
    /// `now-state`) and forgets the request; at most `max_results` reports are held.
    fn finish(
        &self,
        state: &str,
        report: Report,
        receipt: Value,
        now: i64,
        max_results: usize,
    ) -> Result<Arc<Outcome>, StoreError>;

    /// The outcome of the transaction `state`, while its report is held.
    fn outcome(&self, state: &str) -> Result<Option<Arc<Outcome>>, StoreError>;

    /// The receipt `id`, if it is kept.
    fn receipt(&self, id: &str) -> Result<Option<Value>, StoreError>;

    /// The id of the receipt kept for the request `state`, if any.
    fn receipt_of(&self, state: &str) -> Result<Option<String>, StoreError>;

    /// The kept receipts, newest first: at most `limit`, older than the receipt `before` when
    /// given.
    fn receipts(&self, limit: usize, before: Option<&str>)
        -> Result<Vec<ReceiptEntry>, StoreError>;

    /// Removes the expired requests; returns how many.
    fn sweep(&self, now: i64) -> Result<usize, StoreError>;

    /// How many unexpired requests exist (waiting or being answered).
    fn pending_count(&self, now: i64) -> Result<usize, StoreError>;

    /// Whether the storage can serve: reachable, and (a database) migrated to this binary's
    /// schema.
    fn ready(&self) -> Result<(), StoreError>;
}

/// Reports held in memory, oldest dropped first beyond the bound.
#[derive(Debug, Default)]
struct Results {
    by_state: HashMap<String, Arc<Outcome>>,
    order: VecDeque<String>,
}

/// The data directory and the service's memory (see the module documentation).
#[derive(Debug)]
pub struct DirShared {
    dir: VerifierDir,
    pending: Mutex<PendingIndex>,
    results: Mutex<Results>,
}

impl DirShared {
    /// The requests and receipts of `dir` (expired requests are removed).
    pub fn open(dir: &VerifierDir, now: i64) -> Result<DirShared, StoreError> {
        let dir = dir.handle();
        let pending = PendingIndex::load(&dir, now)?;
        Ok(DirShared {
            dir,
            pending: Mutex::new(pending),
            results: Mutex::new(Results::default()),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, PendingIndex> {
        // The index only mirrors the files; after a panic elsewhere it is still sound.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SharedStore for DirShared {
    fn create(
        &self,
        request: &OpenRequest,
        now: i64,
        max_pending: usize,
    ) -> Result<(), StoreError> {
        self.index().insert(&self.dir, request, now, max_pending)
    }

    fn lookup(&self, state: &str, now: i64) -> Result<Option<Waiting>, StoreError> {
        if let Some(request) = self.dir.request(state, now)? {
            return Ok(Some(Waiting {
                request,
                answering: false,
            }));
        }
        Ok(self.dir.answering(state, now)?.map(|request| Waiting {
            request,
            answering: true,
        }))
    }

    fn take(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, StoreError> {
        let taken = self.dir.take_request(state, now)?;
        if taken.is_none() {
            // Expired (its files are gone) or never here: no longer counted.
            if self.dir.answering(state, i64::MIN)?.is_none() {
                self.index().forget(state);
            }
        }
        Ok(taken)
    }

    fn finish(
        &self,
        state: &str,
        report: Report,
        receipt: Value,
        now: i64,
        max_results: usize,
    ) -> Result<Arc<Outcome>, StoreError> {
        let file = self.dir.save_receipt(state, &receipt, now)?;
        self.dir.forget_request(state)?;
        self.index().forget(state);
        let outcome = Arc::new(Outcome {
            report,
            receipt,
            receipt_id: super::receipt_id(&file).unwrap_or_default(),
        });
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        if r.by_state
            .insert(state.to_owned(), outcome.clone())
            .is_none()
        {
            r.order.push_back(state.to_owned());
        }
        while r.order.len() > max_results.max(1) {
            if let Some(old) = r.order.pop_front() {
                r.by_state.remove(&old);
            }
        }
        Ok(outcome)
    }

    fn outcome(&self, state: &str) -> Result<Option<Arc<Outcome>>, StoreError> {
        Ok(self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_state
            .get(state)
            .cloned())
    }

    fn receipt(&self, id: &str) -> Result<Option<Value>, StoreError> {
        self.dir.receipt(id)
    }

    fn receipt_of(&self, state: &str) -> Result<Option<String>, StoreError> {
        self.dir.receipt_of(state)
    }

    fn receipts(
        &self,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<ReceiptEntry>, StoreError> {
        self.dir.receipts(limit, before)
    }

    fn sweep(&self, now: i64) -> Result<usize, StoreError> {
        self.index().expire(&self.dir, now)
    }

    fn pending_count(&self, now: i64) -> Result<usize, StoreError> {
        let mut idx = self.index();
        idx.expire(&self.dir, now)?;
        Ok(idx.len())
    }

    fn ready(&self) -> Result<(), StoreError> {
        // The directory is there and readable.
        let p = self.dir.path();
        std::fs::metadata(p)
            .map(|_| ())
            .map_err(|source| StoreError::Io {
                path: p.to_owned(),
                source,
            })
    }
}
