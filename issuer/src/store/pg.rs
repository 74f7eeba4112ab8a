//! The issuer's records on PostgreSQL (`sqlx`): any number of issuer instances on one
//! database, one issuer.
//!
//! # Schema
//!
//! The versioned migrations of `issuer/migrations/`, embedded in the binary ([`MIGRATOR`]) and
//! run by `bizcred-issuer migrate` ([`migrate`]). [`PgStore::connect`] refuses a database whose
//! migrations are missing or newer than the binary's ([`StoreError::SchemaBehind`],
//! [`StoreError::SchemaNewer`], [`StoreError::SchemaMismatch`]), so an instance never serves a
//! schema it does not know. sqlx keeps one `_sqlx_migrations` table per database: the issuer
//! needs a database of its own (not the registry's).
//!
//! # Several instances, one truth
//!
//! Every rule below holds between processes, because the database enforces it in the
//! transaction that writes, never a lock in one process' memory:
//!
//! * **A status index is never allocated twice.** `credentials` has `UNIQUE (status_list,
//!   status_idx)`; an issuance inserts its record with `ON CONFLICT DO NOTHING` in the
//!   transaction that uses the token and counts the allocation: an index another instance
//!   took (even uncommitted: the insert waits for it) refuses that issuance alone
//!   ([`StoreError::IndexTaken`]), and the core draws another.
//! * **A pre-authorized code, an access token and a nonce are used once.** Redeeming is one
//!   conditional `UPDATE offers SET used = true WHERE id = $1 AND NOT used AND expires > now`;
//!   an issuance uses its token with `UPDATE … WHERE hash = $1 AND NOT used`; a nonce is taken
//!   with `DELETE … RETURNING`. The row lock of the first writer makes the second wait, and it
//!   then sees the row changed (no row matches): exactly one wins.
//! * **Nonces are committed without waiting for their WAL flush** (`c_nonce`s, DPoP nonces,
//!   proofs' `jti`s, notifications seen: `put_nonce`, `put_nonces`, `take_nonce`). Each of
//!   those statements sets `synchronous_commit` off for its own transaction
//!   (`set_config(…, true)`): its commit is visible to every instance at once, so a nonce is
//!   still taken once across instances; only its durability waits. As with sled, where they
//!   are not flushed on their own: a nonce lost when the server crashes makes the wallet fetch
//!   another, and a take is made durable by the issuance or redemption that follows it (a
//!   synchronous commit flushes the WAL past every earlier record), so no crash lets one
//!   nonce serve twice.
//! * **An application's compare-and-swap** reads the record and its `version`, compares the
//!   record with the caller's, and writes with `UPDATE … WHERE id = $1 AND version = $v`: a
//!   write by any instance in between bumped the version, no row matches, and the loser is
//!   told the state the winner left ([`StoreError::ApplicationChanged`]).
//! * **The audit log stays one chain.** Every append takes the transaction-scoped advisory
//!   lock [`AUDIT_LOCK`] (`pg_advisory_xact_lock`), then reads the last entry's hash in the
//!   same transaction and inserts after it; the lock is held until commit, so appends from
//!   every instance are serialized and each links to the one before (the primary key on
//!   `seq` refuses a fork even without the lock). Appends come last in their transaction, so
//!   the lock is held for the few statements before the commit.
//! * **Status-list bits change with the record.** A status change locks the credential's
//!   row, updates it, and updates its list's bits with `set_byte` in the same transaction (the
//!   list's row is locked until commit: changes of one list are serialized).
//! * **A signed status list is stored only over an older one.** `INSERT … ON CONFLICT (list)
//!   DO UPDATE … WHERE status_signed.iat < excluded.iat`: of two instances signing at once the
//!   later `iat` is kept, the other is told [`StoreError::StatusListNotNewer`] and adopts the
//!   stored one (see `Issuer::refresh_list`).
//! * **The event log has no gaps.** An issuance or status change inserts its events in its
//!   own transaction under the advisory lock [`EVENT_LOCK`] after reading the last position;
//!   a transaction rolled back took no position.
//! * **Locks are taken in one order** (records' rows, then the list's row, then the event
//!   lock, then the audit lock), so transactions of different instances do not deadlock; a
//!   deadlock PostgreSQL still reports (two batches locking the same applications in
//!   different orders) retries the issuance batch.
//!
//! An instance killed mid-transaction (even `kill -9`) loses its connection; PostgreSQL rolls
//! the transaction back and releases its locks at once. Nothing is acknowledged before its
//! commit.
//!
//! # Threads
//!
//! The store's methods are synchronous, and the issuer calls them from tokio's blocking pool
//! and from async handlers alike. A `PgStore` therefore drives sqlx on a small runtime of its
//! own ([`IO_THREADS`] threads, holding the pool): a call spawns its query onto that runtime
//! and waits for the answer on a channel. The caller never enters a runtime, so no runtime
//! flavour makes it panic (calling `block_on` from an async task would). When the caller is a
//! worker of a multi-threaded runtime, the wait runs in `block_in_place`: tokio hands the
//! worker's other tasks to another thread meanwhile, so a slow query or a lock wait does not
//! stall the requests queued behind it. On a current-thread runtime the wait blocks that one
//! thread (there is no other to hand its tasks to); the query still runs, on the store's
//! runtime, so it cannot deadlock. (One case tokio itself refuses: a task of a `LocalSet`
//! driven by a multi-threaded runtime's `block_on` may not block in place; nothing in bizcred
//! runs a `LocalSet`, and such a caller would use `spawn_blocking`.)
//!
//! Measured on this 2-core machine (`tests/postgres_store.rs` prints it): eight async tasks on
//! two workers each waiting 400 ms for the audit lock kept a 1 ms ticker on the same runtime
//! within a few milliseconds of its beat (the same wait as a plain blocking call stalled it
//! 1.6 s); a small read costs about 250-400 µs from any thread, against about 120-350 µs with
//! sqlx driven on the caller's own runtime (the hand-off to the store's runtime and back).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::Row;

use super::{
    audit_entry, bits_len, corrupt_list, de, ser, sha256_hex, status_value, AccessToken,
    Application, BusinessIds, CredentialRecord, CredentialStatus, EventKind, FeedItem, IssuerEvent,
    ListBits, ListInfo, Offer, PendingIssuance, PublicIssue, PublicRecord, SignedList,
    StatusChange, StoreError, Swept, MAX_STATUS_HISTORY,
};
use crate::issuer::Actor;

/// The migrations of `issuer/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The transaction-scoped advisory lock every audit append takes (`b"bcisAUDT"`).
pub const AUDIT_LOCK: i64 = 0x6263_6973_4155_4454;

/// The advisory lock under which a batch of public credentials takes its feed positions
/// (`b"bcisPUBL"`).
pub const PUBLIC_LOCK: i64 = 0x6263_6973_5055_424c;

/// The advisory lock under which an issuance or status change takes its event log positions
/// (`b"bcisEVNT"`); taken before [`AUDIT_LOCK`], held to the commit.
pub const EVENT_LOCK: i64 = 0x6263_6973_4556_4e54;

/// The advisory lock a move from sled holds while it checks the target is empty and fills it
/// (`b"bcisMOVE"`).
pub const MOVE_LOCK: i64 = 0x6263_6973_4d4f_5645;

/// How long a statement waits for a lock before it fails (PostgreSQL's `lock_timeout`).
pub const LOCK_TIMEOUT: &str = "10s";

/// Threads of the store's own runtime (database I/O only: queries are awaited there, the
/// callers' threads wait for the answers).
pub const IO_THREADS: usize = 2;

/// Records read per query when visiting every application or credential.
pub const VISIT_PAGE: i64 = 256;

/// Times an issuance batch is tried when PostgreSQL reports a deadlock or a serialization
/// failure (the transaction was rolled back whole).
pub const BATCH_ATTEMPTS: usize = 3;

/// The `application_name` an instance's connections carry (`pg_stat_activity` shows which
/// process holds a lock): `bizcred-issuer <process id>`.
pub fn application_name() -> String {
    bizcred_pg::application_name(SERVICE)
}

/// The service's name in its connections' `application_name` and its runtime's threads.
const SERVICE: &str = "bizcred-issuer";

pub use bizcred_pg::{Migrated, Schema};

impl From<bizcred_pg::Error> for StoreError {
    fn from(e: bizcred_pg::Error) -> StoreError {
        match e {
            bizcred_pg::Error::DatabaseUrl(why) => StoreError::DatabaseUrl(why),
            bizcred_pg::Error::Postgres(e) => StoreError::from(e),
            bizcred_pg::Error::Closed => closed(),
            bizcred_pg::Error::SchemaBehind { missing } => StoreError::SchemaBehind { missing },
            bizcred_pg::Error::SchemaNewer { unknown } => StoreError::SchemaNewer { unknown },
            bizcred_pg::Error::SchemaMismatch { version, problem } => {
                StoreError::SchemaMismatch { version, problem }
            }
        }
    }
}

/// Waits for `rx` without stalling an async worker: inside a multi-threaded runtime the wait
/// runs in `block_in_place` (the worker's other tasks move to another thread meanwhile);
/// elsewhere (no runtime, a blocking-pool thread, a current-thread runtime) it simply blocks.
fn wait<T>(rx: std::sync::mpsc::Receiver<T>) -> Option<T> {
    let recv = move || rx.recv().ok();
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(recv)
        }
        _ => recv(),
    }
}

/// The store's own runtime and the pool it drives.
struct Bridge {
    rt: Option<tokio::runtime::Runtime>,
    pool: Option<PgPool>,
}

impl Bridge {
    fn open(url: &str, max_connections: u32) -> Result<Bridge, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::DatabaseUrl(
                "it does not start with postgres:// or postgresql://".into(),
            ));
        }
        let settings = bizcred_pg::Settings {
            service: SERVICE,
            lock_timeout: LOCK_TIMEOUT,
            max_connections: max_connections.max(1),
        };
        let options = bizcred_pg::connect_options(url, &settings)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("bizcred-issuer-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres(Arc::new(sqlx::Error::Io(e))))?;
        let mut bridge = Bridge {
            rt: Some(rt),
            pool: None,
        };
        let pool = bridge.spawn(async move {
            Ok(PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?)
        })?;
        bridge.pool = Some(pool);
        Ok(bridge)
    }

    /// Runs `fut` on the store's runtime; the calling thread waits for its outcome.
    fn spawn<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(rt) = &self.rt else {
            return Err(closed());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            // The caller waits on the other end; it is gone only if it unwound.
            let _ = tx.send(fut.await);
        });
        // No answer: the task panicked or the runtime shut down before it finished (the
        // transaction, if any, was rolled back with its connection).
        wait(rx).unwrap_or(Err(StoreError::Unfinished))
    }

    /// Runs `f` with the pool on the store's runtime.
    fn run<T: Send + 'static, F>(&self, f: impl FnOnce(PgPool) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone().ok_or_else(closed)?;
        self.spawn(f(pool))
    }
}

fn closed() -> StoreError {
    StoreError::Postgres(Arc::new(sqlx::Error::PoolClosed))
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropped anywhere, also inside an async task: the pool's connections are closed within
        // the runtime they belong to, and the runtime is shut down without blocking.
        if let Some(rt) = self.rt.take() {
            {
                let _inside = rt.enter();
                drop(self.pool.take());
            }
            rt.shutdown_background();
        }
    }
}

/// Where `pool`'s schema stands against [`MIGRATOR`].
async fn schema_of(pool: &PgPool) -> Result<Schema, StoreError> {
    Ok(bizcred_pg::schema_of(pool, &MIGRATOR).await?)
}

/// Applies this binary's missing migrations to the database at `url` (sqlx holds its own
/// advisory lock meanwhile, so two `migrate` commands at once are safe). A database
/// migrated by a newer binary, or whose applied migrations differ, is refused untouched.
pub fn migrate(url: &str) -> Result<Migrated, StoreError> {
    let bridge = Bridge::open(url, 2)?;
    bridge.run(|pool| async move { Ok(bizcred_pg::migrate(&pool, &MIGRATOR).await?) })
}

/// Where the schema of the database at `url` stands.
pub fn schema(url: &str) -> Result<Schema, StoreError> {
    Bridge::open(url, 1)?.run(|pool| async move { schema_of(&pool).await })
}

fn db_int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|e| StoreError::Encode {
        what: "a number beyond the database's range",
        cause: Arc::new(e),
    })
}

fn from_db(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|e| StoreError::Corrupt {
        what,
        cause: Arc::new(e),
    })
}

fn list_of(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| StoreError::Corrupt {
        what: "status list number",
        cause: Arc::new(e),
    })
}

fn count_of(what: &'static str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| StoreError::Corrupt {
        what,
        cause: Arc::new(e),
    })
}

/// Whether PostgreSQL rolled the transaction back for a deadlock or a serialization failure
/// (trying it again may succeed).
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(e) => match e.as_ref() {
            sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001")),
            _ => false,
        },
        _ => false,
    }
}

/// Appends `events` (time, event, details) to the audit chain inside `tx`: takes the audit
/// lock (held until the transaction ends), reads the last entry's hash and inserts after it.
async fn append_audit(
    tx: &mut PgConnection,
    events: Vec<(i64, String, Value)>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(&mut *tx)
        .await?;
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (mut seq, mut prev) = match last {
        Some((s, h)) => (from_db("audit sequence number", s)? + 1, h),
        None => (0, "0".repeat(64)),
    };
    let (mut seqs, mut hashes, mut entries) = (Vec::new(), Vec::new(), Vec::new());
    for (time, event, details) in events {
        let (entry, hash) = audit_entry(seq, &prev, time, &event, details)?;
        seqs.push(db_int(seq)?);
        entries.push(ser(&entry)?);
        hashes.push(hash.clone());
        prev = hash;
        seq += 1;
    }
    sqlx::query(
        "INSERT INTO audit (seq, hash, entry) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bytea[])",
    )
    .bind(seqs)
    .bind(hashes)
    .bind(entries)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Appends `events` to the event log inside `tx`: takes the event lock (held until the
/// transaction ends), reads the last position and inserts after it, so positions run without
/// gaps (a transaction rolled back took none).
async fn append_events(tx: &mut PgConnection, events: Vec<IssuerEvent>) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENT_LOCK)
        .execute(&mut *tx)
        .await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let mut seq = from_db("event sequence number", last.unwrap_or(0))?;
    let (mut seqs, mut ids, mut kinds, mut bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for mut e in events {
        seq += 1;
        e.seq = seq;
        seqs.push(db_int(seq)?);
        ids.push(e.credential_id.clone());
        kinds.push(e.kind.as_str().to_owned());
        bodies.push(ser(&e)?);
    }
    sqlx::query(
        "INSERT INTO events (seq, credential_id, kind, body) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[])",
    )
    .bind(seqs)
    .bind(ids)
    .bind(kinds)
    .bind(bodies)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes `app` whole (a new version of it).
async fn upsert_application(tx: &mut PgConnection, app: &Application) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO applications (id, status, created, version, body) VALUES ($1, $2, $3, 1, $4) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, created = excluded.created, \
         body = excluded.body, version = applications.version + 1",
    )
    .bind(&app.id)
    .bind(app.status.as_str())
    .bind(app.created)
    .bind(ser(app)?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn upsert_offer(tx: &mut PgConnection, offer: &Offer) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO offers (id, application_id, configuration_id, code_hash, tx_hash, expires, \
         attempts, used, offer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (id) DO UPDATE SET application_id = excluded.application_id, \
         configuration_id = excluded.configuration_id, code_hash = excluded.code_hash, \
         tx_hash = excluded.tx_hash, expires = excluded.expires, attempts = excluded.attempts, \
         used = excluded.used, offer = excluded.offer",
    )
    .bind(&offer.id)
    .bind(&offer.application_id)
    .bind(&offer.configuration_id)
    .bind(&offer.code_hash)
    .bind(&offer.tx_hash)
    .bind(offer.expires)
    .bind(i64::from(offer.attempts))
    .bind(offer.used)
    .bind(ser(&offer.offer)?)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

const OFFER_COLUMNS: &str =
    "id, application_id, configuration_id, code_hash, tx_hash, expires, attempts, used, offer";

fn offer_of(row: &sqlx::postgres::PgRow) -> Result<Offer, StoreError> {
    let offer: Vec<u8> = row.try_get("offer")?;
    Ok(Offer {
        id: row.try_get("id")?,
        application_id: row.try_get("application_id")?,
        configuration_id: row.try_get("configuration_id")?,
        code_hash: row.try_get("code_hash")?,
        tx_hash: row.try_get("tx_hash")?,
        expires: row.try_get("expires")?,
        attempts: count_of("offer attempts", row.try_get("attempts")?)?,
        used: row.try_get("used")?,
        offer: de(&offer)?,
    })
}

const TOKEN_COLUMNS: &str =
    "hash, application_id, configuration_id, expires, used, credential_id, reissues";

fn token_of(row: &sqlx::postgres::PgRow) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        application_id: row.try_get("application_id")?,
        configuration_id: row.try_get("configuration_id")?,
        expires: row.try_get("expires")?,
        used: row.try_get("used")?,
        credential_id: row.try_get("credential_id")?,
        reissues: count_of("token re-issues", row.try_get("reissues")?)?,
    })
}

fn list_info_of(row: (i64, i64, i64)) -> Result<ListInfo, StoreError> {
    Ok(ListInfo {
        list: list_of(row.0)?,
        size: from_db("status list size", row.1)?,
        allocated: from_db("status list allocation", row.2)?,
    })
}

fn signed_of(row: (i64, i64, i64, String, String)) -> Result<(u32, SignedList), StoreError> {
    Ok((
        list_of(row.0)?,
        SignedList {
            iat: row.1,
            version: from_db("status list version", row.2)?,
            kid: row.3,
            token: row.4,
        },
    ))
}

async fn list_info(db: &mut PgConnection, list: u32) -> Result<ListInfo, StoreError> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT list, size, allocated FROM status_lists WHERE list = $1")
            .bind(i64::from(list))
            .fetch_optional(&mut *db)
            .await?;
    row.map(list_info_of)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "status list",
            id: list.to_string(),
        })
}

/// Inserts the credential records of one import or move (their indices checked by the unique
/// constraint): the ones inserted, in the order given.
async fn insert_credentials(
    tx: &mut PgConnection,
    recs: &[CredentialRecord],
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut inserted = Vec::with_capacity(recs.len());
    for chunk in recs.chunks(1000) {
        let (mut ids, mut apps, mut lists, mut idxs, mut states, mut bodies) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for rec in chunk {
            ids.push(rec.id.clone());
            apps.push(rec.application_id.clone());
            lists.push(i64::from(rec.status_list));
            idxs.push(db_int(rec.status_idx)?);
            states.push(rec.status.as_str().to_owned());
            bodies.push(ser(rec)?);
        }
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "INSERT INTO credentials (id, application_id, status_list, status_idx, status, body) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], \
             $6::bytea[]) ON CONFLICT (status_list, status_idx) DO NOTHING \
             RETURNING status_list, status_idx",
        )
        .bind(ids)
        .bind(apps)
        .bind(lists)
        .bind(idxs)
        .bind(states)
        .bind(bodies)
        .fetch_all(&mut *tx)
        .await?;
        inserted.extend(rows);
    }
    Ok(inserted)
}

/// A transaction kept open across several calls (the move from sled), run step by step on
/// the store's runtime. Dropped before [`HeldTx::commit`], it is rolled back there (a
/// transaction's connection may only be released inside the runtime that drives it).
pub(super) struct HeldTx {
    tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
    bridge: Arc<Bridge>,
}

/// The transaction of a [`HeldTx`].
pub(super) type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

impl HeldTx {
    /// Runs `f` with the transaction; `f` hands it back with its answer. When `f` fails the
    /// transaction is gone (rolled back), and every later step fails.
    pub(super) fn step<T: Send + 'static, F>(
        &mut self,
        f: impl FnOnce(Tx) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<(Tx, T), StoreError>> + Send + 'static,
    {
        let tx = self.tx.take().ok_or(StoreError::Unfinished)?;
        let (tx, answer) = self.bridge.spawn(f(tx))?;
        self.tx = Some(tx);
        Ok(answer)
    }

    /// Commits the transaction.
    pub(super) fn commit(mut self) -> Result<(), StoreError> {
        let tx = self.tx.take().ok_or(StoreError::Unfinished)?;
        self.bridge.spawn(async move { Ok(tx.commit().await?) })
    }
}

impl Drop for HeldTx {
    fn drop(&mut self) {
        if let (Some(tx), Some(rt)) = (self.tx.take(), &self.bridge.rt) {
            rt.spawn(async move {
                // A rollback that fails leaves it to the server, which rolls back a
                // transaction whose connection closes.
                let _ = tx.rollback().await;
            });
        }
    }
}

/// The issuer's records on PostgreSQL (see the module documentation). Clones share the
/// connection pool.
#[derive(Clone)]
pub struct PgStore {
    bridge: Arc<Bridge>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (at most `max_connections` connections) and checks
    /// that its schema is this binary's (refusing a database not migrated, or migrated by a
    /// newer binary).
    pub fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let bridge = Bridge::open(url, max_connections)?;
        bridge
            .run(|pool| async move { schema_of(&pool).await })?
            .require_current()?;
        Ok(PgStore {
            bridge: Arc::new(bridge),
        })
    }

    /// Whether the database's migrations are this binary's (one query).
    pub fn schema_current(&self) -> Result<(), StoreError> {
        Ok(self
            .run(|pool| async move { schema_of(&pool).await })?
            .require_current()?)
    }

    /// Runs `f` with the pool on the store's runtime (see the module documentation).
    pub(super) fn run<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(PgPool) -> F,
    ) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.bridge.run(f)
    }

    /// Begins a transaction kept open across calls.
    pub(super) fn begin(&self) -> Result<HeldTx, StoreError> {
        let tx = self.run(|pool| async move { Ok(pool.begin().await?) })?;
        Ok(HeldTx {
            tx: Some(tx),
            bridge: self.bridge.clone(),
        })
    }

    /// Appends an audit event on its own (durable).
    pub fn audit(&self, time: i64, event: &str, details: Value) -> Result<(), StoreError> {
        let event = event.to_owned();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            append_audit(&mut tx, vec![(time, event, details)]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// A metadata value.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.run(|pool| async move {
            Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(&pool)
                .await?)
        })
    }

    /// Sets a metadata value (durable).
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.run(|pool| async move {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    /// A new store gets list 1 of `list_size` entries, open; later calls (from any instance)
    /// find it and change nothing.
    pub fn prepare_status_lists(&self, list_size: u64) -> Result<(), StoreError> {
        let size = db_int(list_size)?;
        let bits = vec![0u8; bits_len(list_size)];
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            // Two instances starting at once: each insert keeps the first one's row.
            sqlx::query(
                "INSERT INTO status_lists (list, size, allocated) VALUES (1, $1, 0) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(size)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO status_bits (list, version, bits) VALUES (1, 1, $1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(bits)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO status_open (one, list) VALUES (TRUE, 1) ON CONFLICT DO NOTHING",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every status list, in order.
    pub fn status_lists(&self) -> Result<Vec<ListInfo>, StoreError> {
        self.run(|pool| async move {
            let rows: Vec<(i64, i64, i64)> =
                sqlx::query_as("SELECT list, size, allocated FROM status_lists ORDER BY list")
                    .fetch_all(&pool)
                    .await?;
            rows.into_iter().map(list_info_of).collect()
        })
    }

    /// A status list's size and allocation.
    pub fn status_list_info(&self, list: u32) -> Result<ListInfo, StoreError> {
        self.run(|pool| async move { list_info(&mut *pool.acquire().await?, list).await })
    }

    /// The list new indices are drawn in.
    pub fn open_status_list(&self) -> Result<ListInfo, StoreError> {
        self.run(|pool| async move {
            let row: Option<(i64, i64, i64)> = sqlx::query_as(
                "SELECT l.list, l.size, l.allocated FROM status_open o \
                 JOIN status_lists l ON l.list = o.list",
            )
            .fetch_optional(&pool)
            .await?;
            row.map(list_info_of)
                .transpose()?
                .ok_or_else(|| corrupt_list("no open list (the store was not prepared)"))
        })
    }

    /// Opens the list after `full` (see [`super::Store::open_next_status_list`]); the open
    /// list's row is locked meanwhile, so of two instances rolling over at once one opens the
    /// next list and the other answers it.
    pub fn open_next_status_list(
        &self,
        full: u32,
        size: u64,
        now: i64,
    ) -> Result<ListInfo, StoreError> {
        let next = full
            .checked_add(1)
            .ok_or_else(|| corrupt_list("no list number after the last"))?;
        let db_size = db_int(size)?;
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let open: Option<i64> =
                sqlx::query_scalar("SELECT list FROM status_open WHERE one FOR UPDATE")
                    .fetch_optional(&mut *tx)
                    .await?;
            let open = list_of(open.ok_or_else(|| corrupt_list("no open list"))?)?;
            if open != full {
                return list_info(&mut tx, open).await;
            }
            sqlx::query("INSERT INTO status_lists (list, size, allocated) VALUES ($1, $2, 0)")
                .bind(i64::from(next))
                .bind(db_size)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO status_bits (list, version, bits) VALUES ($1, 0, $2)")
                .bind(i64::from(next))
                .bind(vec![0u8; bits_len(size)])
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE status_open SET list = $1 WHERE one")
                .bind(i64::from(next))
                .execute(&mut *tx)
                .await?;
            append_audit(
                &mut tx,
                vec![(
                    now,
                    "status_list_opened".to_owned(),
                    json!({"list": next, "size": size, "after": full}),
                )],
            )
            .await?;
            tx.commit().await?;
            Ok(ListInfo {
                list: next,
                size,
                allocated: 0,
            })
        })
    }

    /// Whether a status index of a list is taken.
    pub fn index_taken(&self, list: u32, idx: u64) -> Result<bool, StoreError> {
        let idx = db_int(idx)?;
        self.run(|pool| async move {
            Ok(sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM credentials WHERE status_list = $1 AND status_idx = $2)",
            )
            .bind(i64::from(list))
            .bind(idx)
            .fetch_one(&pool)
            .await?)
        })
    }

    /// The first free index of a list (`size` entries) at or after `start`, wrapping around;
    /// `None` when every index is taken.
    pub fn free_index(&self, list: u32, size: u64, start: u64) -> Result<Option<u64>, StoreError> {
        let start = start.min(size);
        let (db_start, db_size) = (db_int(start)?, db_int(size)?);
        self.run(|pool| async move {
            for (from, to) in [(db_start, db_size), (0, db_start)] {
                if from >= to {
                    continue;
                }
                let free: Option<i64> = sqlx::query_scalar(
                    "SELECT s FROM generate_series($2::bigint, $3::bigint - 1) AS s \
                     WHERE NOT EXISTS (SELECT 1 FROM credentials \
                                       WHERE status_list = $1 AND status_idx = s) \
                     ORDER BY s LIMIT 1",
                )
                .bind(i64::from(list))
                .bind(from)
                .bind(to)
                .fetch_optional(&pool)
                .await?;
                if let Some(i) = free {
                    return Ok(Some(from_db("status index", i)?));
                }
            }
            Ok(None)
        })
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
        let (db_start, db_size) = (db_int(start)?, db_int(size)?);
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.run(|pool| async move {
            let mut free = Vec::new();
            for (from, to) in [(db_start, db_size), (0, db_start)] {
                let want = n - free.len() as i64;
                if from >= to || want <= 0 {
                    continue;
                }
                let got: Vec<i64> = sqlx::query_scalar(
                    "SELECT s FROM generate_series($2::bigint, $3::bigint - 1) AS s \
                     WHERE NOT EXISTS (SELECT 1 FROM credentials \
                                       WHERE status_list = $1 AND status_idx = s) \
                     ORDER BY s LIMIT $4",
                )
                .bind(i64::from(list))
                .bind(from)
                .bind(to)
                .bind(want)
                .fetch_all(&pool)
                .await?;
                for i in got {
                    free.push(from_db("status index", i)?);
                }
            }
            Ok(free)
        })
    }

    /// The current public records of those of `subjects` that have one.
    pub fn public_records(
        &self,
        subjects: &[String],
    ) -> Result<HashMap<String, PublicRecord>, StoreError> {
        let subjects = subjects.to_vec();
        self.run(|pool| async move {
            let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
                "SELECT subject, credential_id, content_sha256, seq, issued_at \
                 FROM public_records WHERE subject = ANY($1::text[])",
            )
            .bind(&subjects)
            .fetch_all(&pool)
            .await?;
            rows.into_iter()
                .map(|(subject, credential_id, content_sha256, seq, issued_at)| {
                    Ok((
                        subject.clone(),
                        PublicRecord {
                            subject,
                            credential_id,
                            content_sha256,
                            seq: from_db("public feed sequence", seq)?,
                            issued_at,
                        },
                    ))
                })
                .collect()
        })
    }

    /// Records a batch of public credentials (see [`crate::store::Store::record_public`]).
    pub fn record_public(
        &self,
        items: &[PublicIssue],
        now: i64,
    ) -> Result<Vec<PublicRecord>, StoreError> {
        let items = items.to_vec();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PUBLIC_LOCK)
                .execute(&mut *tx)
                .await?;
            // The subjects' current records, locked: each must be the one its item replaces.
            let subjects: Vec<String> = items.iter().map(|i| i.subject.clone()).collect();
            let current: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
                "SELECT subject, credential_id FROM public_records \
                 WHERE subject = ANY($1::text[]) FOR UPDATE",
            )
            .bind(&subjects)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
            for item in &items {
                let expected = item.replaces.as_ref().map(|(id, _)| id);
                if current.get(&item.subject) != expected {
                    return Err(StoreError::PublicRecordChanged {
                        subject: item.subject.clone(),
                    });
                }
            }
            // The lists' allocation counts, locked.
            let mut lists: BTreeMap<u32, ListInfo> = BTreeMap::new();
            for item in &items {
                let n = item.rec.status_list;
                let info = match lists.entry(n) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let row: Option<(i64, i64, i64)> = sqlx::query_as(
                            "SELECT list, size, allocated FROM status_lists WHERE list = $1 FOR UPDATE",
                        )
                        .bind(i64::from(n))
                        .fetch_optional(&mut *tx)
                        .await?;
                        e.insert(row.map(list_info_of).transpose()?.ok_or_else(|| {
                            StoreError::NotFound {
                                what: "status list",
                                id: n.to_string(),
                            }
                        })?)
                    }
                };
                if item.rec.status_idx >= info.size {
                    return Err(StoreError::IndexTaken(item.rec.status_idx));
                }
                info.allocated += 1;
            }
            let recs: Vec<CredentialRecord> = items.iter().map(|i| i.rec.clone()).collect();
            let inserted = insert_credentials(&mut tx, &recs).await?;
            if inserted.len() != recs.len() {
                let got: HashSet<(i64, i64)> = inserted.into_iter().collect();
                let taken = recs
                    .iter()
                    .find(|r| !got.contains(&(i64::from(r.status_list), r.status_idx as i64)))
                    .map_or(0, |r| r.status_idx);
                return Err(StoreError::IndexTaken(taken));
            }
            for (n, info) in &lists {
                sqlx::query("UPDATE status_lists SET allocated = $2 WHERE list = $1")
                    .bind(i64::from(*n))
                    .bind(db_int(info.allocated)?)
                    .execute(&mut *tx)
                    .await?;
            }
            // The replaced credentials: revoked, with the change in their history and bits.
            let mut revoked = Vec::new();
            let mut revoked_recs: HashMap<String, CredentialRecord> = HashMap::new();
            for item in &items {
                let Some((old_id, why)) = &item.replaces else {
                    continue;
                };
                let body: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT body FROM credentials WHERE id = $1 FOR UPDATE")
                        .bind(old_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let mut old: CredentialRecord = de(&body.ok_or_else(|| StoreError::NotFound {
                    what: "credential",
                    id: old_id.clone(),
                })?)?;
                if old.status == CredentialStatus::Revoked {
                    continue;
                }
                old.status = CredentialStatus::Revoked;
                old.history.push(StatusChange {
                    time: now,
                    status: CredentialStatus::Revoked,
                    actor: Actor::Automation,
                    reason: Some(why.clone()),
                });
                let over = old.history.len().saturating_sub(MAX_STATUS_HISTORY);
                old.history.drain(..over);
                sqlx::query("UPDATE credentials SET status = $2, body = $3 WHERE id = $1")
                    .bind(old_id)
                    .bind(CredentialStatus::Revoked.as_str())
                    .bind(ser(&old)?)
                    .execute(&mut *tx)
                    .await?;
                let byte = i32::try_from(old.status_idx / 4)
                    .map_err(|_| corrupt_list("a status index beyond its list"))?;
                let shift = (old.status_idx % 4) * 2;
                let keep = i32::from(!(0b11u8 << shift));
                let set = i32::from((status_value(CredentialStatus::Revoked) & 0b11) << shift);
                let changed = sqlx::query(
                    "UPDATE status_bits SET version = version + 1, \
                     bits = set_byte(bits, $2, (get_byte(bits, $2) & $3) | $4) \
                     WHERE list = $1 AND length(bits) > $2",
                )
                .bind(i64::from(old.status_list))
                .bind(byte)
                .bind(keep)
                .bind(set)
                .execute(&mut *tx)
                .await?;
                if changed.rows_affected() != 1 {
                    return Err(corrupt_list("a credential's list has no bits for its index"));
                }
                revoked.push(json!({"credential_id": old_id, "replaced_by": item.rec.id, "reason": why}));
                revoked_recs.insert(item.rec.id.clone(), old);
            }
            // Each item's events in its order, as the embedded store appends them: the new
            // credential issued, then the one it replaces revoked.
            let mut events = Vec::new();
            for item in &items {
                let rec = &item.rec;
                let business = BusinessIds::public(&item.subject);
                events.push(IssuerEvent::new(EventKind::CredentialIssued, rec, business, now));
                if let Some(old) = revoked_recs.get(&rec.id) {
                    let business = BusinessIds::public(&item.subject);
                    events.push(IssuerEvent::new(EventKind::CredentialRevoked, old, business, now));
                }
            }
            // Feed positions after the last one, under PUBLIC_LOCK.
            let last: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM public_feed")
                .fetch_one(&mut *tx)
                .await?;
            let mut seq = from_db("public feed sequence", last.unwrap_or(0))?;
            let mut out = Vec::with_capacity(items.len());
            let (mut f_seq, mut f_id, mut f_subject, mut f_cred) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut p_hash, mut p_issued) = (Vec::new(), Vec::new());
            for item in &items {
                seq += 1;
                out.push(PublicRecord {
                    subject: item.subject.clone(),
                    credential_id: item.rec.id.clone(),
                    content_sha256: item.content_sha256.clone(),
                    seq,
                    issued_at: item.rec.issued_at,
                });
                f_seq.push(db_int(seq)?);
                f_id.push(item.rec.id.clone());
                f_subject.push(item.subject.clone());
                f_cred.push(item.credential.clone());
                p_hash.push(item.content_sha256.clone());
                p_issued.push(item.rec.issued_at);
            }
            sqlx::query(
                "INSERT INTO public_feed (seq, credential_id, subject, credential) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[])",
            )
            .bind(&f_seq)
            .bind(&f_id)
            .bind(&f_subject)
            .bind(&f_cred)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO public_records (subject, credential_id, content_sha256, seq, issued_at) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
                 ON CONFLICT (subject) DO UPDATE SET credential_id = EXCLUDED.credential_id, \
                 content_sha256 = EXCLUDED.content_sha256, seq = EXCLUDED.seq, \
                 issued_at = EXCLUDED.issued_at",
            )
            .bind(&f_subject)
            .bind(&f_id)
            .bind(&p_hash)
            .bind(&f_seq)
            .bind(&p_issued)
            .execute(&mut *tx)
            .await?;
            append_events(&mut tx, events).await?;
            if !out.is_empty() {
                let details = super::public_batch_audit(&items, &out, revoked);
                append_audit(&mut tx, vec![(now, "public_credentials_issued".to_owned(), details)])
                    .await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// The event log after `after`, at most `limit` events.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<IssuerEvent>, StoreError> {
        let after = db_int(after)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|pool| async move {
            let rows: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&pool)
                    .await?;
            rows.iter().map(|b| de(b)).collect()
        })
    }

    /// The public feed after `after`, at most `limit` items.
    pub fn public_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedItem>, StoreError> {
        let after = db_int(after)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|pool| async move {
            let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
                "SELECT seq, credential_id, subject, credential FROM public_feed \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(&pool)
            .await?;
            rows.into_iter()
                .map(|(seq, credential_id, subject, credential)| {
                    Ok(FeedItem {
                        seq: from_db("public feed sequence", seq)?,
                        credential_id,
                        subject,
                        credential,
                    })
                })
                .collect()
        })
    }

    /// The version of a list's bits (changed by every status change in it).
    pub fn status_version(&self, list: u32) -> Result<u64, StoreError> {
        self.run(|pool| async move {
            let v: Option<i64> =
                sqlx::query_scalar("SELECT version FROM status_bits WHERE list = $1")
                    .bind(i64::from(list))
                    .fetch_optional(&pool)
                    .await?;
            match v {
                Some(v) => from_db("status list version", v),
                None => Err(StoreError::NotFound {
                    what: "status list",
                    id: list.to_string(),
                }),
            }
        })
    }

    /// A list's stored bits: all a re-sign reads (never the credential records).
    pub fn status_bits(&self, list: u32) -> Result<ListBits, StoreError> {
        self.run(|pool| async move {
            let row: Option<(i64, Option<i64>, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT l.size, b.version, b.bits FROM status_lists l \
                 LEFT JOIN status_bits b ON b.list = l.list WHERE l.list = $1",
            )
            .bind(i64::from(list))
            .fetch_optional(&pool)
            .await?;
            let Some((size, version, bits)) = row else {
                return Err(StoreError::NotFound {
                    what: "status list",
                    id: list.to_string(),
                });
            };
            let (Some(version), Some(bytes)) = (version, bits) else {
                return Err(corrupt_list("a list without its bits"));
            };
            let size = from_db("status list size", size)?;
            if bytes.len() != bits_len(size) {
                return Err(corrupt_list("a list's bits do not match its size"));
            }
            Ok(ListBits {
                version: from_db("status list version", version)?,
                size,
                bytes,
            })
        })
    }

    /// The newest signed token of each list.
    pub fn signed_status_lists(&self) -> Result<BTreeMap<u32, SignedList>, StoreError> {
        self.run(|pool| async move {
            let rows: Vec<(i64, i64, i64, String, String)> = sqlx::query_as(
                "SELECT list, iat, version, kid, token FROM status_signed ORDER BY list",
            )
            .fetch_all(&pool)
            .await?;
            rows.into_iter().map(signed_of).collect()
        })
    }

    /// The newest signed token of list `list`, if any.
    pub fn signed_status_list(&self, list: u32) -> Result<Option<SignedList>, StoreError> {
        self.run(|pool| async move {
            let row: Option<(i64, i64, i64, String, String)> = sqlx::query_as(
                "SELECT list, iat, version, kid, token FROM status_signed WHERE list = $1",
            )
            .bind(i64::from(list))
            .fetch_optional(&pool)
            .await?;
            Ok(row.map(signed_of).transpose()?.map(|(_, s)| s))
        })
    }

    /// Records a newly signed list only over an older one (see the module documentation).
    pub fn put_signed_status_list(&self, list: u32, signed: &SignedList) -> Result<(), StoreError> {
        let signed = signed.clone();
        let version = db_int(signed.version)?;
        self.run(|pool| async move {
            let stored: Option<i64> = sqlx::query_scalar(
                "INSERT INTO status_signed (list, iat, version, kid, token) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (list) DO UPDATE SET iat = excluded.iat, \
                 version = excluded.version, kid = excluded.kid, token = excluded.token \
                 WHERE status_signed.iat < excluded.iat RETURNING iat",
            )
            .bind(i64::from(list))
            .bind(signed.iat)
            .bind(version)
            .bind(&signed.kid)
            .bind(&signed.token)
            .fetch_optional(&pool)
            .await?;
            if stored.is_some() {
                return Ok(());
            }
            let held: Option<i64> =
                sqlx::query_scalar("SELECT iat FROM status_signed WHERE list = $1")
                    .bind(i64::from(list))
                    .fetch_optional(&pool)
                    .await?;
            Err(StoreError::StatusListNotNewer {
                held: held.unwrap_or(signed.iat),
                iat: signed.iat,
            })
        })
    }

    /// Stores an application (and an audit event), durably.
    pub fn put_application(
        &self,
        app: &Application,
        time: i64,
        event: Option<&str>,
    ) -> Result<(), StoreError> {
        let app = app.clone();
        let event = event.map(|e| {
            (
                time,
                e.to_owned(),
                json!({"application_id": app.id, "type": app.credential_type, "status": app.status}),
            )
        });
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            upsert_application(&mut tx, &app).await?;
            append_audit(&mut tx, event.into_iter().collect()).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores a new application with an `application_created` audit event, durably.
    pub fn create_application(
        &self,
        app: &Application,
        actor: &Actor,
        time: i64,
    ) -> Result<(), StoreError> {
        let app = app.clone();
        let details = json!({"application_id": app.id, "type": app.credential_type, "status": app.status, "actor": actor.audit()});
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            upsert_application(&mut tx, &app).await?;
            append_audit(
                &mut tx,
                vec![(time, "application_created".to_owned(), details)],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// An application.
    pub fn application(&self, id: &str) -> Result<Application, StoreError> {
        let id = id.to_owned();
        self.run(|pool| async move {
            let body: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT body FROM applications WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&pool)
                    .await?;
            de(&body.ok_or(StoreError::NotFound {
                what: "application",
                id,
            })?)
        })
    }

    /// Every application, in id order.
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        let mut out = Vec::new();
        self.visit_applications(|a| {
            out.push(a);
            Ok(())
        })?;
        Ok(out)
    }

    /// The bodies of `table` after id `after`, a page at a time.
    fn page(
        &self,
        table: &'static str,
        after: Option<String>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.run(|pool| async move {
            let sql = format!(
                "SELECT id, body FROM {table} WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2"
            );
            Ok(sqlx::query_as(&sql)
                .bind(after)
                .bind(VISIT_PAGE)
                .fetch_all(&pool)
                .await?)
        })
    }

    fn visit<T: for<'a> serde::Deserialize<'a>>(
        &self,
        table: &'static str,
        mut f: impl FnMut(T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut after = None;
        loop {
            let page = self.page(table, after.take())?;
            let full = page.len() as i64 == VISIT_PAGE;
            for (id, body) in page {
                f(de(&body)?)?;
                after = Some(id);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Calls `f` with each application in turn, in id order (a page read at a time).
    pub fn visit_applications(
        &self,
        f: impl FnMut(Application) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.visit("applications", f)
    }

    /// Calls `f` with each credential record in turn, in id order (a page read at a time).
    pub fn visit_credentials(
        &self,
        f: impl FnMut(CredentialRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.visit("credentials", f)
    }

    /// The compare-and-swap of an application (see the module documentation).
    pub fn swap_application(
        &self,
        before: &Application,
        after: &Application,
        offer: Option<&Offer>,
        time: i64,
        event: &str,
        details: Value,
    ) -> Result<(), StoreError> {
        let (before, after) = (before.clone(), after.clone());
        let offer = offer.cloned();
        let event = event.to_owned();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let current =
                async |tx: &mut PgConnection| -> Result<Option<(Application, i64)>, StoreError> {
                    let row: Option<(Vec<u8>, i64)> =
                        sqlx::query_as("SELECT body, version FROM applications WHERE id = $1")
                            .bind(&before.id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    row.map(|(b, v)| Ok((de::<Application>(&b)?, v)))
                        .transpose()
                };
            let not_found = || StoreError::NotFound {
                what: "application",
                id: before.id.clone(),
            };
            let (app, version) = current(&mut tx).await?.ok_or_else(not_found)?;
            if app != before {
                return Err(StoreError::ApplicationChanged {
                    id: app.id,
                    status: app.status,
                });
            }
            let swapped = sqlx::query(
                "UPDATE applications SET status = $3, created = $4, body = $5, \
                 version = version + 1 WHERE id = $1 AND version = $2",
            )
            .bind(&after.id)
            .bind(version)
            .bind(after.status.as_str())
            .bind(after.created)
            .bind(ser(&after)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if swapped == 0 {
                // Written by another instance since it was read: its state now.
                let (app, _) = current(&mut tx).await?.ok_or_else(not_found)?;
                return Err(StoreError::ApplicationChanged {
                    id: app.id,
                    status: app.status,
                });
            }
            if let Some(offer) = &offer {
                upsert_offer(&mut tx, offer).await?;
            }
            append_audit(&mut tx, vec![(time, event, details)]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records an offer for an application, durably.
    pub fn put_offer(&self, offer: &Offer, app: &Application, time: i64) -> Result<(), StoreError> {
        let (offer, app) = (offer.clone(), app.clone());
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            upsert_offer(&mut tx, &offer).await?;
            upsert_application(&mut tx, &app).await?;
            append_audit(
                &mut tx,
                vec![(
                    time,
                    "offer_created".to_owned(),
                    json!({"application_id": app.id, "offer_id": offer.id}),
                )],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn offer_where(
        &self,
        column: &'static str,
        value: String,
    ) -> Result<Option<Offer>, StoreError> {
        self.run(|pool| async move {
            let sql = format!("SELECT {OFFER_COLUMNS} FROM offers WHERE {column} = $1");
            let row = sqlx::query(&sql).bind(value).fetch_optional(&pool).await?;
            row.as_ref().map(offer_of).transpose()
        })
    }

    /// An offer by id.
    pub fn offer(&self, id: &str) -> Result<Offer, StoreError> {
        self.offer_where("id", id.to_owned())?
            .ok_or_else(|| StoreError::NotFound {
                what: "offer",
                id: id.to_owned(),
            })
    }

    /// The offer of a pre-authorized code.
    pub fn offer_by_code(&self, code: &str) -> Result<Option<Offer>, StoreError> {
        self.offer_where("code_hash", sha256_hex(code.as_bytes()))
    }

    /// Counts a wrong transaction code in one statement (voiding the offer at `max`).
    pub fn offer_failed_attempt(&self, offer_id: &str, max: u32) -> Result<u32, StoreError> {
        let id = offer_id.to_owned();
        self.run(|pool| async move {
            let n: Option<i64> = sqlx::query_scalar(
                "UPDATE offers SET attempts = attempts + 1, used = used OR attempts + 1 >= $2 \
                 WHERE id = $1 RETURNING attempts",
            )
            .bind(&id)
            .bind(i64::from(max))
            .fetch_optional(&pool)
            .await?;
            match n {
                Some(n) => count_of("offer attempts", n),
                None => Err(StoreError::NotFound { what: "offer", id }),
            }
        })
    }

    /// Redeems a pre-authorized code with one conditional update (see the module
    /// documentation) and stores the access token, in one transaction.
    pub fn redeem(
        &self,
        offer_id: &str,
        token_hash: &str,
        token: &AccessToken,
        now: i64,
    ) -> Result<(), StoreError> {
        let (id, hash, token) = (offer_id.to_owned(), token_hash.to_owned(), token.clone());
        let reissues = i64::from(token.reissues);
        self.run(|pool| async move {
            // One statement, so one implicit transaction: the token is stored only when this
            // statement's conditional update used the code.
            let redeemed: Option<String> = sqlx::query_scalar(
                "WITH r AS (UPDATE offers SET used = TRUE \
                            WHERE id = $1 AND NOT used AND expires > $2 RETURNING id) \
                 INSERT INTO access_tokens (hash, application_id, configuration_id, expires, \
                 used, credential_id, reissues) SELECT $3, $4, $5, $6, $7, $8, $9 FROM r \
                 ON CONFLICT (hash) DO UPDATE SET application_id = excluded.application_id, \
                 configuration_id = excluded.configuration_id, expires = excluded.expires, \
                 used = excluded.used, credential_id = excluded.credential_id, \
                 reissues = excluded.reissues RETURNING hash",
            )
            .bind(&id)
            .bind(now)
            .bind(&hash)
            .bind(&token.application_id)
            .bind(&token.configuration_id)
            .bind(token.expires)
            .bind(token.used)
            .bind(&token.credential_id)
            .bind(reissues)
            .fetch_optional(&pool)
            .await?;
            if redeemed.is_none() {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offers WHERE id = $1)")
                        .bind(&id)
                        .fetch_one(&pool)
                        .await?;
                return Err(if exists {
                    StoreError::CodeUsedOrExpired
                } else {
                    StoreError::NotFound { what: "offer", id }
                });
            }
            Ok(())
        })
    }

    /// An access token by its hash.
    pub fn token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        let hash = hash.to_owned();
        self.run(|pool| async move {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE hash = $1");
            let row = sqlx::query(&sql).bind(hash).fetch_optional(&pool).await?;
            row.as_ref().map(token_of).transpose()
        })
    }

    /// Stores a fresh `c_nonce` valid until `expires` (committed, visible to every instance;
    /// see the module documentation for its durability).
    pub fn put_nonce(&self, nonce: &str, expires: i64) -> Result<(), StoreError> {
        let nonce = nonce.to_owned();
        self.run(|pool| async move {
            sqlx::query(
                "WITH s AS (SELECT set_config('synchronous_commit', 'off', true)) \
                 INSERT INTO nonces (nonce, expires) SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM s) \
                 ON CONFLICT (nonce) DO UPDATE SET expires = excluded.expires",
            )
            .bind(nonce)
            .bind(expires)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    /// Takes a `c_nonce` with `DELETE … RETURNING`: true when it existed and had not expired
    /// (see the module documentation for its durability).
    pub fn take_nonce(&self, nonce: &str, now: i64) -> Result<bool, StoreError> {
        let nonce = nonce.to_owned();
        self.run(|pool| async move {
            let expires: Option<i64> = sqlx::query_scalar(
                "WITH s AS (SELECT set_config('synchronous_commit', 'off', true)) \
                 DELETE FROM nonces WHERE nonce = $1 AND EXISTS (SELECT 1 FROM s) \
                 RETURNING expires",
            )
            .bind(nonce)
            .fetch_optional(&pool)
            .await?;
            Ok(expires.is_some_and(|e| e > now))
        })
    }

    /// Stores several fresh nonces in one statement (see [`super::Store::put_nonces`]).
    pub fn put_nonces(&self, nonces: &[(&str, i64)]) -> Result<(), StoreError> {
        let (names, expires): (Vec<String>, Vec<i64>) =
            nonces.iter().map(|(n, e)| ((*n).to_owned(), *e)).unzip();
        self.run(|pool| async move {
            sqlx::query(
                "WITH s AS (SELECT set_config('synchronous_commit', 'off', true)) \
                 INSERT INTO nonces (nonce, expires) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[]) WHERE EXISTS (SELECT 1 FROM s) \
                 ON CONFLICT (nonce) DO UPDATE SET expires = excluded.expires",
            )
            .bind(names)
            .bind(expires)
            .execute(&pool)
            .await?;
            Ok(())
        })
    }

    /// An access token with its application, in one query (see
    /// [`super::Store::token_with_application`]).
    pub fn token_with_application(
        &self,
        hash: &str,
    ) -> Result<Option<(AccessToken, Option<Application>)>, StoreError> {
        let hash = hash.to_owned();
        self.run(|pool| async move {
            let row = sqlx::query(
                "SELECT t.application_id, t.configuration_id, t.expires, t.used, \
                 t.credential_id, t.reissues, a.body FROM access_tokens t \
                 LEFT JOIN applications a ON a.id = t.application_id WHERE t.hash = $1",
            )
            .bind(hash)
            .fetch_optional(&pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let body: Option<Vec<u8>> = row.try_get("body")?;
            let app = body.map(|b| de::<Application>(&b)).transpose()?;
            Ok(Some((token_of(&row)?, app)))
        })
    }

    /// The open list and the first free one of `candidates` (modulo its size), in one query
    /// (see [`super::Store::draw_index`]).
    pub fn draw_index(&self, candidates: &[u64]) -> Result<(ListInfo, Option<u64>), StoreError> {
        // Below 2^63, so the database's bigint holds each.
        let candidates: Vec<i64> = candidates.iter().map(|c| (c >> 1) as i64).collect();
        self.run(|pool| async move {
            let row: Option<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
                "SELECT l.list, l.size, l.allocated, \
                 (SELECT u.c % l.size FROM UNNEST($1::bigint[]) WITH ORDINALITY AS u(c, o) \
                  WHERE NOT EXISTS (SELECT 1 FROM credentials k \
                                    WHERE k.status_list = l.list AND k.status_idx = u.c % l.size) \
                  ORDER BY u.o LIMIT 1) \
                 FROM status_open o JOIN status_lists l ON l.list = o.list",
            )
            .bind(candidates)
            .fetch_optional(&pool)
            .await?;
            let (list, size, allocated, free) =
                row.ok_or_else(|| corrupt_list("no open list (the store was not prepared)"))?;
            let open = list_info_of((list, size, allocated))?;
            let free = free.map(|i| from_db("status index", i)).transpose()?;
            Ok((open, free))
        })
    }

    /// One transaction for a batch of issuances; the outer error fails them all, an inner one
    /// only its own (a refused issuance writes nothing). Retried whole after a deadlock.
    pub(super) fn commit_issuances(
        &self,
        batch: &[PendingIssuance],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let batch = batch.to_vec();
        self.run(|pool| async move {
            let mut attempt = 1;
            loop {
                match commit_batch(&pool, &batch).await {
                    Err(e) if retryable(&e) && attempt < BATCH_ATTEMPTS => attempt += 1,
                    done => return done,
                }
            }
        })
    }

    /// Imports credentials issued elsewhere (see [`super::Store::import_issued`]), in one
    /// transaction: refused whole when an index is taken or outside its list.
    pub fn import_issued(&self, recs: &[CredentialRecord], now: i64) -> Result<(), StoreError> {
        let recs = recs.to_vec();
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            // Each list's size and allocation, and its bits (with their version) once a
            // record needs them changed.
            type Lists = BTreeMap<u32, (ListInfo, Option<(u64, Vec<u8>)>)>;
            let mut lists: Lists = BTreeMap::new();
            for rec in &recs {
                let list = match lists.entry(rec.status_list) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let row: Option<(i64, i64, i64)> = sqlx::query_as(
                            "SELECT list, size, allocated FROM status_lists \
                             WHERE list = $1 FOR UPDATE",
                        )
                        .bind(i64::from(rec.status_list))
                        .fetch_optional(&mut *tx)
                        .await?;
                        let info = row.map(list_info_of).transpose()?.ok_or_else(|| {
                            StoreError::NotFound {
                                what: "status list",
                                id: rec.status_list.to_string(),
                            }
                        })?;
                        e.insert((info, None))
                    }
                };
                if rec.status_idx >= list.0.size {
                    return Err(StoreError::IndexTaken(rec.status_idx));
                }
                list.0.allocated += 1;
                let value = status_value(rec.status);
                if value != 0 {
                    if list.1.is_none() {
                        let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
                            "SELECT version, bits FROM status_bits WHERE list = $1 FOR UPDATE",
                        )
                        .bind(i64::from(rec.status_list))
                        .fetch_optional(&mut *tx)
                        .await?;
                        let (version, bits) =
                            row.ok_or_else(|| corrupt_list("a list without its bits"))?;
                        if bits.len() != bits_len(list.0.size) {
                            return Err(corrupt_list("a list's bits do not match its size"));
                        }
                        list.1 = Some((from_db("status list version", version)?, bits));
                    }
                    if let Some((_, bits)) = list.1.as_mut() {
                        super::put_bits(bits, rec.status_idx, value)?;
                    }
                }
            }
            let inserted = insert_credentials(&mut tx, &recs).await?;
            if inserted.len() != recs.len() {
                let got: std::collections::HashSet<(i64, i64)> = inserted.into_iter().collect();
                let taken = recs
                    .iter()
                    .find(|r| {
                        !got.contains(&(i64::from(r.status_list), r.status_idx as i64))
                    })
                    .map_or(0, |r| r.status_idx);
                // Dropping the transaction rolls every insert back.
                return Err(StoreError::IndexTaken(taken));
            }
            for (n, (info, bits)) in &lists {
                sqlx::query("UPDATE status_lists SET allocated = $2 WHERE list = $1")
                    .bind(i64::from(*n))
                    .bind(db_int(info.allocated)?)
                    .execute(&mut *tx)
                    .await?;
                if let Some((version, bits)) = bits {
                    sqlx::query("UPDATE status_bits SET version = $2, bits = $3 WHERE list = $1")
                        .bind(i64::from(*n))
                        .bind(db_int(version.saturating_add(1))?)
                        .bind(bits)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let events = recs
                .iter()
                .map(|rec| {
                    (
                        now,
                        "credential_imported".to_owned(),
                        json!({"credential_id": rec.id, "vct": rec.vct, "status_list": rec.status_list, "status_idx": rec.status_idx, "status": rec.status, "kid": rec.kid, "credential_sha256": rec.credential_sha256}),
                    )
                })
                .collect();
            append_audit(&mut tx, events).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Changes a credential's status and its list's bits in one transaction (see the module
    /// documentation).
    pub fn set_status(
        &self,
        id: &str,
        status: CredentialStatus,
        actor: &Actor,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(CredentialRecord, u64), StoreError> {
        let id = id.to_owned();
        let change = StatusChange {
            time: now,
            status,
            actor: actor.clone(),
            reason: reason.map(str::to_owned),
        };
        let (who, reason) = (actor.audit(), reason.map(str::to_owned));
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let body: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT body FROM credentials WHERE id = $1 FOR UPDATE")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut rec: CredentialRecord = de(&body.ok_or_else(|| StoreError::NotFound {
                what: "credential",
                id: id.clone(),
            })?)?;
            if rec.status == CredentialStatus::Revoked && status != CredentialStatus::Revoked {
                return Err(StoreError::RevokedIsFinal);
            }
            // The same details, in the same order, as the embedded store's.
            let from = rec.status;
            let mut details =
                json!({"credential_id": id, "from": from, "to": status, "actor": who});
            if let Some(r) = &reason {
                details["reason"] = r.clone().into();
            }
            rec.status = status;
            rec.history.push(change);
            let over = rec.history.len().saturating_sub(MAX_STATUS_HISTORY);
            rec.history.drain(..over);
            sqlx::query("UPDATE credentials SET status = $2, body = $3 WHERE id = $1")
                .bind(&id)
                .bind(status.as_str())
                .bind(ser(&rec)?)
                .execute(&mut *tx)
                .await?;
            // The list's bits change with the record, in this transaction (its row locked).
            let byte = i32::try_from(rec.status_idx / 4)
                .map_err(|_| corrupt_list("a status index beyond its list"))?;
            let shift = (rec.status_idx % 4) * 2;
            let keep = i32::from(!(0b11u8 << shift));
            let set = i32::from((status_value(status) & 0b11) << shift);
            let version: Option<i64> = sqlx::query_scalar(
                "UPDATE status_bits SET version = version + 1, \
                 bits = set_byte(bits, $2, (get_byte(bits, $2) & $3) | $4) \
                 WHERE list = $1 AND length(bits) > $2 RETURNING version",
            )
            .bind(i64::from(rec.status_list))
            .bind(byte)
            .bind(keep)
            .bind(set)
            .fetch_optional(&mut *tx)
            .await?;
            let version = version
                .ok_or_else(|| corrupt_list("a credential's list has no bits for its index"))?;
            if from != status {
                let app: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT body FROM applications WHERE id = $1")
                        .bind(&rec.application_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let app = app.map(|b| de::<Application>(&b)).transpose()?;
                let business = BusinessIds::of(&rec.application_id, app.as_ref());
                let event = IssuerEvent::new(EventKind::of_change(status), &rec, business, now);
                append_events(&mut tx, vec![event]).await?;
            }
            append_audit(&mut tx, vec![(now, "status_changed".to_owned(), details)]).await?;
            tx.commit().await?;
            Ok((rec, from_db("status list version", version)?))
        })
    }

    /// A credential record.
    pub fn credential(&self, id: &str) -> Result<CredentialRecord, StoreError> {
        let id = id.to_owned();
        self.run(|pool| async move {
            let body: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT body FROM credentials WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&pool)
                    .await?;
            de(&body.ok_or(StoreError::NotFound {
                what: "credential",
                id,
            })?)
        })
    }

    /// Records a re-issue with one conditional update of the token (bounded by `max`), and
    /// its audit event, in one transaction.
    pub fn record_reissue(
        &self,
        token_hash: &str,
        rec: &CredentialRecord,
        kid: &str,
        credential_sha256: &str,
        now: i64,
        max: u32,
    ) -> Result<(), StoreError> {
        let hash = token_hash.to_owned();
        let credential_id = rec.id.clone();
        let details = json!({"credential_id": rec.id, "status_idx": rec.status_idx, "kid": kid, "credential_sha256": credential_sha256});
        self.run(|pool| async move {
            let mut tx = pool.begin().await?;
            let counted = sqlx::query(
                "UPDATE access_tokens SET reissues = reissues + 1 \
                 WHERE hash = $1 AND credential_id = $2 AND reissues < $3",
            )
            .bind(&hash)
            .bind(&credential_id)
            .bind(i64::from(max))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if counted == 0 {
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM access_tokens WHERE hash = $1)",
                )
                .bind(&hash)
                .fetch_one(&mut *tx)
                .await?;
                return Err(if exists {
                    StoreError::TokenUsed
                } else {
                    StoreError::NotFound {
                        what: "access token",
                        id: String::new(),
                    }
                });
            }
            append_audit(
                &mut tx,
                vec![(now, "credential_reissued".to_owned(), details)],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes up to `max` of each kind of what expired (see [`super::Store::sweep`]); rows
    /// another instance is sweeping meanwhile are skipped (`SKIP LOCKED`), never waited for.
    pub fn sweep(&self, now: i64, pending_before: i64, max: usize) -> Result<Swept, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.run(|pool| async move {
            let offers = sqlx::query(
                "DELETE FROM offers WHERE id IN (SELECT id FROM offers \
                 WHERE used OR expires <= $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .bind(max)
            .execute(&pool)
            .await?
            .rows_affected();
            let tokens = sqlx::query(
                "DELETE FROM access_tokens WHERE hash IN (SELECT hash FROM access_tokens \
                 WHERE expires <= $1 ORDER BY hash LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .bind(max)
            .execute(&pool)
            .await?
            .rows_affected();
            let nonces = sqlx::query(
                "DELETE FROM nonces WHERE nonce IN (SELECT nonce FROM nonces \
                 WHERE expires <= $1 ORDER BY nonce LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now)
            .bind(max)
            .execute(&pool)
            .await?
            .rows_affected();
            let mut tx = pool.begin().await?;
            let mut expired: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
                "DELETE FROM applications WHERE id IN (SELECT id FROM applications \
                 WHERE status = 'awaiting_prerequisites' AND created < $1 \
                 ORDER BY created, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING created, id, body",
            )
            .bind(pending_before)
            .bind(max)
            .fetch_all(&mut *tx)
            .await?;
            expired.sort();
            let mut events = Vec::with_capacity(expired.len());
            for (_, id, body) in &expired {
                let app: Application = de(body)?;
                events.push((
                    now,
                    "application_expired".to_owned(),
                    json!({"application_id": id, "type": app.credential_type}),
                ));
            }
            append_audit(&mut tx, events).await?;
            tx.commit().await?;
            let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            Ok(Swept {
                offers: n(offers),
                tokens: n(tokens),
                nonces: n(nonces),
                pending: expired.len(),
            })
        })
    }

    /// Every credential record, in id order.
    pub fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        let mut out = Vec::new();
        self.visit_credentials(|c| {
            out.push(c);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<Value>, StoreError> {
        self.run(|pool| async move {
            let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT entry FROM audit ORDER BY seq")
                .fetch_all(&pool)
                .await?;
            rows.iter().map(|e| de(e)).collect()
        })
    }
}

/// [`PgStore::commit_issuances`], once: a fixed number of statements whatever the batch's
/// size (each works on every issuance of the batch at once), so a batch costs about as many
/// round trips as one issuance.
async fn commit_batch(
    pool: &PgPool,
    batch: &[PendingIssuance],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    // None: not refused so far.
    let mut outcomes: Vec<Option<Result<(), StoreError>>> = vec![None; batch.len()];
    let mut wanted: Vec<i64> = batch.iter().map(|p| i64::from(p.rec.status_list)).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let sizes: HashMap<i64, i64> =
        sqlx::query_as::<_, (i64, i64)>("SELECT list, size FROM status_lists WHERE list = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    // The applications, locked in id order (two batches lock them in one order).
    let mut app_ids: Vec<String> = batch.iter().map(|p| p.rec.application_id.clone()).collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let mut apps: HashMap<String, Result<Application, StoreError>> =
        sqlx::query_as::<_, (String, Vec<u8>)>(
            "SELECT id, body FROM applications WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&app_ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id, body)| (id, de::<Application>(&body)))
        .collect();
    // Every check before any write that stays, so a refused issuance writes nothing.
    let mut rows = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (p, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        let rec = &p.rec;
        let list = i64::from(rec.status_list);
        let idx = db_int(rec.status_idx)?;
        if sizes.get(&list).is_none_or(|size| idx >= *size) {
            *outcome = Some(Err(StoreError::NotFound {
                what: "status list index",
                id: format!("{}/{}", rec.status_list, rec.status_idx),
            }));
            continue;
        }
        if let Some(Err(e)) = apps.get(&rec.application_id) {
            *outcome = Some(Err(e.clone()));
            continue;
        }
        match ser(rec) {
            Ok(body) => {
                rows.0.push(rec.id.clone());
                rows.1.push(rec.application_id.clone());
                rows.2.push(list);
                rows.3.push(idx);
                rows.4.push(rec.status.as_str().to_owned());
                rows.5.push(body);
            }
            Err(e) => *outcome = Some(Err(e)),
        }
    }
    // The allocation: the unique (list, index) refuses an index taken by anyone (another
    // instance, or an earlier issuance of this batch).
    let inserted: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO credentials (id, application_id, status_list, status_idx, status, body) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], \
         $6::bytea[]) ON CONFLICT (status_list, status_idx) DO NOTHING RETURNING id",
    )
    .bind(rows.0)
    .bind(rows.1)
    .bind(rows.2)
    .bind(rows.3)
    .bind(rows.4)
    .bind(rows.5)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let (mut hashes, mut creds) = (Vec::new(), Vec::new());
    for (p, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        if outcome.is_some() {
            continue;
        }
        if inserted.contains(&p.rec.id) {
            hashes.push(p.token_hash.clone());
            creds.push(p.rec.id.clone());
        } else {
            *outcome = Some(Err(StoreError::IndexTaken(p.rec.status_idx)));
        }
    }
    // The tokens' one use (of two issuances of the batch with one token, one gets it).
    let took: HashSet<String> = sqlx::query_scalar(
        "UPDATE access_tokens t SET used = TRUE, credential_id = u.cred \
         FROM UNNEST($1::text[], $2::text[]) AS u(hash, cred) \
         WHERE t.hash = u.hash AND NOT t.used RETURNING u.cred",
    )
    .bind(&hashes)
    .bind(&creds)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let refused: Vec<String> = creds
        .iter()
        .filter(|c| !took.contains(*c))
        .cloned()
        .collect();
    if !refused.is_empty() {
        // Their records go: a refused issuance writes nothing.
        sqlx::query("DELETE FROM credentials WHERE id = ANY($1)")
            .bind(&refused)
            .execute(&mut *tx)
            .await?;
        let known: HashSet<String> =
            sqlx::query_scalar("SELECT hash FROM access_tokens WHERE hash = ANY($1)")
                .bind(&hashes)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        for (p, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            if outcome.is_none() && refused.contains(&p.rec.id) {
                *outcome = Some(Err(if known.contains(&p.token_hash) {
                    StoreError::TokenUsed
                } else {
                    StoreError::NotFound {
                        what: "access token",
                        id: String::new(),
                    }
                }));
            }
        }
    }
    // What is issued: the applications marked issued, the lists' allocation counts, the
    // audit entries.
    let mut allocated: BTreeMap<i64, i64> = BTreeMap::new();
    let mut issued_apps: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut events = Vec::new();
    let mut issued = Vec::new();
    for (p, outcome) in batch.iter().zip(outcomes.iter_mut()) {
        if outcome.is_some() {
            continue;
        }
        let rec = &p.rec;
        let app = apps.get(&rec.application_id).and_then(|a| a.as_ref().ok());
        let business = BusinessIds::of(&rec.application_id, app);
        issued.push(IssuerEvent::new(
            EventKind::CredentialIssued,
            rec,
            business,
            p.now,
        ));
        if let Some(Ok(app)) = apps.get_mut(&rec.application_id) {
            app.mark_issued(p.now);
            issued_apps.insert(app.id.clone(), ser(app)?);
        }
        *allocated.entry(i64::from(rec.status_list)).or_default() += 1;
        events.push((
            p.now,
            "credential_issued".to_owned(),
            json!({"credential_id": rec.id, "vct": rec.vct, "status_list": rec.status_list, "status_idx": rec.status_idx, "kid": rec.kid, "credential_sha256": rec.credential_sha256}),
        ));
        *outcome = Some(Ok(()));
    }
    if !issued_apps.is_empty() {
        let (ids, bodies): (Vec<String>, Vec<Vec<u8>>) = issued_apps.into_iter().unzip();
        sqlx::query(
            "UPDATE applications a SET status = 'issued', body = u.body, version = a.version + 1 \
             FROM UNNEST($1::text[], $2::bytea[]) AS u(id, body) WHERE a.id = u.id",
        )
        .bind(ids)
        .bind(bodies)
        .execute(&mut *tx)
        .await?;
    }
    // The lists' rows, then the audit lock: the last locks taken, held only to the commit.
    for (list, n) in allocated {
        sqlx::query("UPDATE status_lists SET allocated = allocated + $2 WHERE list = $1")
            .bind(list)
            .bind(n)
            .execute(&mut *tx)
            .await?;
    }
    append_events(&mut tx, issued).await?;
    append_audit(&mut tx, events).await?;
    tx.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(StoreError::Unfinished)))
        .collect())
}
