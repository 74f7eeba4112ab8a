//! PostgreSQL storage (`sqlx`): any number of registry instances on one database, one truth.
//!
//! # Tables
//!
//! `log_entries (idx, body)`: the log, one row per entry at indices without gaps;
//! `blobs (name, value, version)`: named values with versions from one increasing counter.
//! The schema is the versioned migrations in `registry/migrations/`, embedded in the binary
//! ([`MIGRATOR`]) and run by `bizcred-registry migrate --database URL` ([`migrate`]).
//! [`PgStore::connect`] refuses a database whose migrations are missing or newer than the
//! binary's ([`StoreError::SchemaBehind`], [`StoreError::SchemaNewer`],
//! [`StoreError::SchemaMismatch`]), so an instance never serves a schema it does not know.
//!
//! # Several instances
//!
//! * **Appends are serialized through the database.** Every write is one transaction that
//!   first takes the transaction-scoped advisory lock [`APPEND_LOCK`]
//!   (`pg_advisory_xact_lock`): whoever holds it is the log's one sequencer until it commits
//!   or rolls back. There is no leader to elect and nothing to take over: an instance killed
//!   mid-append (even `kill -9`) loses its connection, PostgreSQL rolls its transaction back
//!   and releases the lock at once, and the next instance waiting for the lock appends. A
//!   lock held longer than `lock_timeout` (10 s) fails the waiting append instead of hanging.
//! * **Validation against the stored state.** Under the lock, the transaction reads the
//!   entries appended since the writer's last look (by other instances) and hands them to the
//!   writer's plan ([`Store::append_with`]); the sequencer replays them onto its state and
//!   validates its batch after them, then the batch is inserted at the log's size and
//!   committed. So every entry is validated against the state replayed from exactly what the
//!   database holds when it lands; two instances appending conflicting entries at once are
//!   serialized, and the second one's validation sees the first one's entries and refuses.
//!   The primary key on `idx` refuses a second entry at an index even without the lock.
//! * **Every instance serves reads.** Before it answers, an instance asks the database for
//!   its [`Head`] (one query on two indexes) and reads only what changed since its last look
//!   (see `Registry::refresh`): an answer reflects every append committed before the request
//!   arrived, on any instance. Staleness is therefore bounded by the request itself, not by
//!   a polling interval. `serve` also refreshes every second in the background
//!   (`service::keep_fresh`), so the replay of another instance's burst of appends is seldom
//!   left to a request.
//! * **Blobs** (status lists) change under the same lock, each write taking the next version,
//!   so versions are assigned in commit order and a reader asking for versions after the
//!   newest it has seen misses none.
//!
//! # Threads
//!
//! The [`Store`] trait is synchronous. `PgStore` drives sqlx on a runtime of its own (one
//! worker thread, like a synchronous PostgreSQL client), and each call blocks its caller until
//! the database answers. It must therefore be called where blocking is allowed: the service
//! calls the registry on tokio's blocking pool, the binary's commands from
//! `tokio::task::block_in_place`. Called from an async task it would panic (tokio refuses to
//! block a worker thread).

use bizcred_pg::Settings;
use sqlx::postgres::PgPool;
use sqlx::Row;

use super::{AppendPlan, Blob, BlobPlan, Head, Store, StoreError};

pub use bizcred_pg::{Migrated, Schema};

/// The migrations of `registry/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The key of the transaction-scoped advisory lock every write takes (`b"bcregLOG"`).
pub const APPEND_LOCK: i64 = 0x6263_7265_674c_4f47;

/// How long an append waits for the lock before it fails (PostgreSQL's `lock_timeout`).
pub const LOCK_TIMEOUT: &str = "10s";

/// Connections each instance keeps (its registry calls are serialized; reads and the odd
/// concurrent command need few).
pub const MAX_CONNECTIONS: u32 = 4;

/// The shared runtime and pool, answering this store's errors.
type Conn = bizcred_pg::Conn<StoreError>;

/// How the registry connects (its runtime's thread is `bizcred-registry-pg`).
const SETTINGS: Settings = Settings {
    service: "bizcred-registry",
    lock_timeout: LOCK_TIMEOUT,
    max_connections: MAX_CONNECTIONS,
};

/// The `application_name` an instance's connections carry (`pg_stat_activity` shows which
/// process holds the append lock): `bizcred-registry <process id>`.
pub fn application_name() -> String {
    bizcred_pg::application_name(SETTINGS.service)
}

impl From<bizcred_pg::Error> for StoreError {
    fn from(e: bizcred_pg::Error) -> StoreError {
        match e {
            bizcred_pg::Error::DatabaseUrl(why) => StoreError::DatabaseUrl(why),
            bizcred_pg::Error::Postgres(e) => StoreError::Postgres(e),
            bizcred_pg::Error::Closed => {
                StoreError::Corrupt("the database connection is closed".into())
            }
            bizcred_pg::Error::SchemaBehind { missing } => StoreError::SchemaBehind { missing },
            bizcred_pg::Error::SchemaNewer { unknown } => StoreError::SchemaNewer { unknown },
            bizcred_pg::Error::SchemaMismatch { version, problem } => {
                StoreError::SchemaMismatch { version, problem }
            }
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
    Conn::open(url, &SETTINGS)?.run(async |pool| Ok(bizcred_pg::migrate(pool, &MIGRATOR).await?))
}

/// Where the schema of the database at `url` stands (for `migrate --check` and tests).
pub fn schema(url: &str) -> Result<Schema, StoreError> {
    Conn::open(url, &SETTINGS)?.run(async |pool| schema_of(pool).await)
}

/// The registry's storage on PostgreSQL (see the module documentation).
pub struct PgStore {
    conn: Conn,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn to_index(i: u64) -> Result<i64, StoreError> {
    i64::try_from(i).map_err(|_| StoreError::Corrupt(format!("index {i} is out of range")))
}

fn from_index(i: i64) -> Result<u64, StoreError> {
    u64::try_from(i).map_err(|_| StoreError::Corrupt(format!("stored index {i} is negative")))
}

/// `SELECT idx, body FROM log_entries WHERE idx >= from`, checked to be without gaps.
async fn entries_from<'e>(
    db: impl sqlx::PgExecutor<'e>,
    from: u64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows = sqlx::query("SELECT idx, body FROM log_entries WHERE idx >= $1 ORDER BY idx")
        .bind(to_index(from)?)
        .fetch_all(db)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let idx = from_index(row.try_get("idx")?)?;
        if idx != from + i as u64 {
            return Err(StoreError::Corrupt(format!(
                "gap in the stored log at {}",
                from + i as u64
            )));
        }
        out.push(row.try_get("body")?);
    }
    Ok(out)
}

async fn log_size<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<u64, StoreError> {
    let size: i64 = sqlx::query_scalar("SELECT coalesce(max(idx) + 1, 0) FROM log_entries")
        .fetch_one(db)
        .await?;
    from_index(size)
}

fn conflict_or(e: sqlx::Error, index: u64) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::NotAtEnd {
            index,
            size: index + 1,
        },
        _ => StoreError::Postgres(e),
    }
}

impl PgStore {
    /// Connects to the database at `url` and checks that its schema is this binary's
    /// (refusing a database not migrated, or migrated by a newer binary).
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let conn = Conn::open(url, &SETTINGS)?;
        conn.run(async |pool| schema_of(pool).await)?
            .require_current()?;
        Ok(PgStore { conn })
    }

    /// Where the database's schema stands now (for a readiness check: reachable, and still
    /// this binary's schema).
    pub fn schema(&self) -> Result<Schema, StoreError> {
        self.conn.run(async |pool| schema_of(pool).await)
    }

    /// Whether the log and the blobs are empty (a target `migrate --from` may fill).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let h = self.head()?;
        Ok(h.size == 0 && h.blob_version == 0)
    }

    /// Writes a whole log and its blobs into an empty store, in one transaction: all of it or
    /// nothing. Refuses (writing nothing) when the store is not empty.
    pub fn fill(&self, entries: &[Vec<u8>], blobs: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.conn.run(async |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
            let size = log_size(&mut *tx).await?;
            let blob_count: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs")
                .fetch_one(&mut *tx)
                .await?;
            if size != 0 || blob_count != 0 {
                return Err(StoreError::NotAtEnd { index: 0, size });
            }
            // Chunks bound each statement's parameters; the transaction holds them together.
            for (n, chunk) in entries.chunks(1000).enumerate() {
                let start = (n * 1000) as u64;
                let idx: Vec<i64> = (0..chunk.len() as u64)
                    .map(|i| to_index(start + i))
                    .collect::<Result<_, _>>()?;
                sqlx::query(
                    "INSERT INTO log_entries (idx, body) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
                )
                .bind(idx)
                .bind(chunk.to_vec())
                .execute(&mut *tx)
                .await?;
            }
            for (i, (name, value)) in blobs.iter().enumerate() {
                sqlx::query("INSERT INTO blobs (name, value, version) VALUES ($1, $2, $3)")
                    .bind(name)
                    .bind(value)
                    .bind(to_index(i as u64 + 1)?)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

impl Store for PgStore {
    fn head(&self) -> Result<Head, StoreError> {
        self.conn.run(async |pool| {
            let (size, version): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT coalesce(max(idx) + 1, 0) FROM log_entries), \
                        (SELECT coalesce(max(version), 0) FROM blobs)",
            )
            .fetch_one(pool)
            .await?;
            Ok(Head {
                size: from_index(size)?,
                blob_version: from_index(version)?,
            })
        })
    }

    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.conn.run(async |pool| entries_from(pool, from).await)
    }

    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError> {
        self.conn.run(async |pool| {
            let mut tx = pool.begin().await?;
            // The one sequencer: until this transaction ends, no other instance appends.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
            let size = log_size(&mut *tx).await?;
            if from > size {
                return Err(StoreError::NotAtEnd { index: from, size });
            }
            let newer = entries_from(&mut *tx, from).await?;
            let Some(batch) = plan(&newer) else {
                // Dropping the transaction rolls it back and releases the lock.
                return Ok(None);
            };
            if !batch.is_empty() {
                let idx: Vec<i64> = (0..batch.len() as u64)
                    .map(|i| to_index(size + i))
                    .collect::<Result<_, _>>()?;
                sqlx::query(
                    "INSERT INTO log_entries (idx, body) SELECT * FROM UNNEST($1::bigint[], $2::bytea[])",
                )
                .bind(idx)
                .bind(batch)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, size))?;
            }
            tx.commit().await?;
            Ok(Some(size))
        })
    }

    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError> {
        self.conn.run(async |pool| {
            let rows: Vec<(String, Vec<u8>, i64)> = sqlx::query_as(
                "SELECT name, value, version FROM blobs WHERE version > $1 ORDER BY version",
            )
            .bind(to_index(after)?)
            .fetch_all(pool)
            .await?;
            rows.into_iter()
                .map(|(name, value, version)| {
                    Ok(Blob {
                        name,
                        value,
                        version: from_index(version)?,
                    })
                })
                .collect()
        })
    }

    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError> {
        self.conn.run(async |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await?;
            let current: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT value FROM blobs WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(value) = plan(current.as_deref()) else {
                return Ok(None);
            };
            // Under the lock, the next version is one past the newest: commit order.
            let version: i64 = sqlx::query_scalar(
                "INSERT INTO blobs (name, value, version) \
                 VALUES ($1, $2, (SELECT coalesce(max(version), 0) + 1 FROM blobs)) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, version = excluded.version \
                 RETURNING version",
            )
            .bind(name)
            .bind(value)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            from_index(version).map(Some)
        })
    }
}
