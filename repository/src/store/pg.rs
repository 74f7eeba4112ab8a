//! The repository's records on PostgreSQL (`sqlx`): any number of repository instances on one
//! database (`bizcred-repository --database postgres://…`).
//!
//! # Schema
//!
//! The versioned migrations of `repository/migrations/`, embedded in the binary
//! ([`MIGRATOR`]) and run by `bizcred-repository migrate` ([`migrate`]): `records` (by id,
//! with the subject, issue time and status list entry as columns and the record as JSON),
//! `feed_cursors`, `status_lists`. [`PgStore::connect`] refuses a database whose migrations
//! are missing or newer than the binary's, so an instance never serves a schema it does not
//! know. Give the repository a database of its own.
//!
//! # Several instances
//!
//! * A batch of records is one transaction of upserts (`INSERT … ON CONFLICT (id) DO UPDATE`),
//!   in id order (two instances writing overlapping batches lock their rows in one order, so
//!   they do not deadlock); a credential taken by two instances at once is one row.
//! * A status list's time only moves forward (`GREATEST`): an instance whose trust bundle is
//!   older does not make the others apply an older list again.
//! * What each instance derives (its search index) is rebuilt from these tables.
//!
//! # Bounded reads
//!
//! Listings ([`PgStore::in_list`], [`PgStore::all`], [`PgStore::subjects`]) are read a page
//! at a time with keyset pagination (each page starts after the last key of the one before),
//! never the whole table at once.
//!
//! # Threads
//!
//! The methods are synchronous. The store drives sqlx on a small runtime of its own
//! ([`bizcred_pg::Conn`]); a call from a worker of a multi-threaded tokio runtime waits in
//! `block_in_place`, a call from a current-thread runtime waits on a scoped thread of its own
//! (entering the store's runtime from an async task would panic), any other call blocks.

use std::collections::BTreeMap;

use bizcred_pg::Settings;
use sqlx::postgres::PgPool;

use super::Record;
use crate::{corrupt, Error};

pub use bizcred_pg::{Migrated, Schema};

/// The migrations of `repository/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for a lock before it fails (PostgreSQL's `lock_timeout`).
pub const LOCK_TIMEOUT: &str = "10s";

/// The advisory lock every write of records takes, so change numbers are in commit order
/// (`b"bcrpWRIT"`).
pub const WRITE_LOCK: i64 = 0x6263_7270_5752_4954;

/// Connections an instance keeps unless told otherwise.
pub const MAX_CONNECTIONS: u32 = 8;

/// Records written per statement of a batch.
pub const WRITE_CHUNK: usize = 1000;

/// Records read per page of [`PgStore::all`] (each up to a few dozen KiB).
pub const RECORD_PAGE: i64 = 256;

/// Keys read per page of [`PgStore::in_list`] and [`PgStore::subjects`].
pub const KEY_PAGE: i64 = 1000;

/// The service's name in its connections' `application_name` and its runtime's thread.
const SERVICE: &str = "bizcred-repository";

type Conn = bizcred_pg::Conn<Error>;

fn settings(max_connections: u32) -> Settings {
    Settings {
        service: SERVICE,
        lock_timeout: LOCK_TIMEOUT,
        max_connections: max_connections.max(1),
    }
}

fn open_conn(url: &str, max_connections: u32) -> Result<Conn, Error> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bizcred_pg::Error::DatabaseUrl(
            "it does not start with postgres:// or postgresql://".into(),
        )
        .into());
    }
    Ok(off_runtime(|| Conn::open(url, &settings(max_connections)))?)
}

/// Runs `f`, which blocks on the store's runtime, from wherever the caller is (see the module
/// documentation).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
        Err(_) => f(),
    }
}

/// Runs `f` on `conn`'s runtime from wherever the caller is.
fn run<T: Send>(
    conn: &Conn,
    f: impl AsyncFnOnce(&PgPool) -> Result<T, Error> + Send,
) -> Result<T, Error> {
    off_runtime(|| conn.run(f))
}

/// Applies this binary's missing migrations to the database at `url` (sqlx holds its own
/// advisory lock meanwhile, so two `migrate` commands at once are safe). A database migrated
/// by a newer binary, or whose applied migrations differ, is refused untouched.
pub fn migrate(url: &str) -> Result<Migrated, Error> {
    let conn = open_conn(url, 1)?;
    run(&conn, async |pool| {
        Ok(bizcred_pg::migrate(pool, &MIGRATOR).await?)
    })
}

/// Where the schema of the database at `url` stands.
pub fn schema(url: &str) -> Result<Schema, Error> {
    let conn = open_conn(url, 1)?;
    run(&conn, async |pool| {
        Ok(bizcred_pg::schema_of(pool, &MIGRATOR).await?)
    })
}

/// The repository's records on PostgreSQL (see the module documentation).
pub struct PgStore {
    conn: Conn,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn decode(body: &str) -> Result<Record, Error> {
    serde_json::from_str(body).map_err(corrupt("record"))
}

fn unsigned(text: &str, what: &'static str) -> Result<u64, Error> {
    text.parse().map_err(|_| Error::Corrupt {
        what,
        cause: format!("{text:?} is not an unsigned 64-bit number"),
    })
}

/// Iterates pages fetched by `fetch` (which keeps its own keyset position) until a short one.
struct Paged<T, F> {
    fetch: F,
    page: std::vec::IntoIter<T>,
    size: usize,
    done: bool,
}

impl<T, F: FnMut() -> Result<Vec<T>, Error>> Paged<T, F> {
    fn new(size: i64, fetch: F) -> Paged<T, F> {
        Paged {
            fetch,
            page: Vec::new().into_iter(),
            size: usize::try_from(size).unwrap_or(1),
            done: false,
        }
    }
}

impl<T, F: FnMut() -> Result<Vec<T>, Error>> Iterator for Paged<T, F> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.page.next() {
                return Some(Ok(x));
            }
            if self.done {
                return None;
            }
            match (self.fetch)() {
                Ok(page) => {
                    self.done = page.len() < self.size;
                    if page.is_empty() {
                        return None;
                    }
                    self.page = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` with at most `max_connections` connections and
    /// checks that its schema is this binary's (refusing a database not migrated, or migrated
    /// by a newer binary).
    pub fn connect(url: &str, max_connections: u32) -> Result<PgStore, Error> {
        let store = PgStore {
            conn: open_conn(url, max_connections)?,
        };
        store.schema_current()?;
        Ok(store)
    }

    /// Whether the database's migrations are still this binary's (one query).
    pub fn schema_current(&self) -> Result<(), Error> {
        let schema = self.run(async |pool| Ok(bizcred_pg::schema_of(pool, &MIGRATOR).await?))?;
        Ok(schema.require_current()?)
    }

    fn run<T: Send>(
        &self,
        f: impl AsyncFnOnce(&PgPool) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        run(&self.conn, f)
    }

    /// Whether a credential is held.
    pub fn contains(&self, id: &str) -> Result<bool, Error> {
        self.run(async |pool| {
            Ok(
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM records WHERE id = $1)")
                    .bind(id)
                    .fetch_one(pool)
                    .await
                    .map_err(bizcred_pg::Error::from)?,
            )
        })
    }

    /// Keeps `records` in one transaction, durable before it returns; a record held already
    /// is written again as given (of one id given twice, the last), unless the one held has
    /// a newer status (`status_as_of`): of two instances refreshing one record from different
    /// sources at once, the older status never overwrites the newer.
    pub fn put(&self, records: &[Record]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        // In id order, once each: the last of an id wins, and rows are locked in one order.
        let by_id: BTreeMap<&str, &Record> = records.iter().map(|r| (r.id.as_str(), r)).collect();
        let mut rows = Vec::with_capacity(by_id.len());
        for r in by_id.values() {
            rows.push((*r, serde_json::to_string(r).map_err(corrupt("record"))?));
        }
        self.run(async |pool| {
            let db = |e: sqlx::Error| Error::from(bizcred_pg::Error::from(e));
            let mut tx = pool.begin().await.map_err(db)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            for chunk in rows.chunks(WRITE_CHUNK) {
                let ids: Vec<&str> = chunk.iter().map(|(r, _)| r.id.as_str()).collect();
                let subjects: Vec<&str> = chunk.iter().map(|(r, _)| r.subject.as_str()).collect();
                let issued: Vec<i64> = chunk.iter().map(|(r, _)| r.issued_at).collect();
                let uris: Vec<&str> = chunk.iter().map(|(r, _)| r.status_uri.as_str()).collect();
                let idxs: Vec<String> = chunk
                    .iter()
                    .map(|(r, _)| r.status_idx.to_string())
                    .collect();
                let bodies: Vec<&str> = chunk.iter().map(|(_, b)| b.as_str()).collect();
                sqlx::query(
                    "INSERT INTO records (id, subject, issued_at, status_uri, status_idx, body) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], \
                                          $5::text[]::numeric[], $6::text[]::json[]) \
                     ON CONFLICT (id) DO UPDATE SET changed = nextval('records_changed'), \
                       subject = excluded.subject, issued_at = excluded.issued_at, status_uri = excluded.status_uri, \
                       status_idx = excluded.status_idx, body = excluded.body \
                     WHERE COALESCE((records.body->>'status_as_of')::int8, 0) \
                        <= COALESCE((excluded.body->>'status_as_of')::int8, 0)",
                )
                .bind(ids)
                .bind(subjects)
                .bind(issued)
                .bind(uris)
                .bind(idxs)
                .bind(bodies)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            Ok(())
        })
    }

    /// The last change number given (0 before any write).
    pub fn last_change(&self) -> Result<u64, Error> {
        let last: Option<i64> = self.run(async |pool| {
            Ok(sqlx::query_scalar("SELECT max(changed) FROM records")
                .fetch_one(pool)
                .await
                .map_err(bizcred_pg::Error::from)?)
        })?;
        Ok(last.map_or(0, |l| u64::try_from(l).unwrap_or(0)))
    }

    /// The subjects of records written after change number `after`, at most `limit` writes,
    /// with the last change number read.
    pub fn changed_since(&self, after: u64, limit: i64) -> Result<(Vec<String>, u64), Error> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows: Vec<(i64, String)> = self.run(async |pool| {
            Ok(sqlx::query_as(
                "SELECT changed, subject FROM records WHERE changed > $1 ORDER BY changed LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(bizcred_pg::Error::from)?)
        })?;
        let last = rows.last().map_or(after, |(c, _)| *c);
        Ok((
            rows.into_iter().map(|(_, s)| s).collect(),
            u64::try_from(last).unwrap_or(0),
        ))
    }

    /// A record.
    pub fn get(&self, id: &str) -> Result<Option<Record>, Error> {
        let body: Option<String> = self.run(async |pool| {
            Ok(
                sqlx::query_scalar("SELECT body::text FROM records WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(bizcred_pg::Error::from)?,
            )
        })?;
        body.as_deref().map(decode).transpose()
    }

    /// Every credential about `subject`, oldest first (then by id).
    pub fn of_subject(&self, subject: &str) -> Result<Vec<Record>, Error> {
        let bodies: Vec<String> = self.run(async |pool| {
            Ok(sqlx::query_scalar(
                "SELECT body::text FROM records WHERE subject = $1 ORDER BY issued_at, id",
            )
            .bind(subject)
            .fetch_all(pool)
            .await
            .map_err(bizcred_pg::Error::from)?)
        })?;
        bodies.iter().map(|b| decode(b)).collect()
    }

    /// The ids of the credentials at entry `idx` of status list `uri`.
    pub fn at_status(&self, uri: &str, idx: u64) -> Result<Vec<String>, Error> {
        let idx = idx.to_string();
        self.run(async |pool| {
            Ok(sqlx::query_scalar(
                "SELECT id FROM records WHERE status_uri = $1 AND status_idx = $2::numeric \
                 ORDER BY id",
            )
            .bind(uri)
            .bind(&idx)
            .fetch_all(pool)
            .await
            .map_err(bizcred_pg::Error::from)?)
        })
    }

    /// The credentials whose status is in list `uri`: (index, id), in index order, read
    /// [`KEY_PAGE`] at a time.
    pub fn in_list(&self, uri: &str) -> impl Iterator<Item = Result<(u64, String), Error>> + '_ {
        let uri = uri.to_owned();
        let mut after: Option<(u64, String)> = None;
        Paged::new(KEY_PAGE, move || {
            let (idx, id) = after
                .as_ref()
                .map_or(("-1".to_owned(), String::new()), |(i, id)| {
                    (i.to_string(), id.clone())
                });
            let rows: Vec<(String, String)> = self.run(async |pool| {
                Ok(sqlx::query_as(
                    "SELECT status_idx::text AS idx, id FROM records WHERE status_uri = $1 \
                     AND (status_idx, id) > ($2::numeric, $3) ORDER BY records.status_idx, records.id LIMIT $4",
                )
                .bind(&uri)
                .bind(&idx)
                .bind(&id)
                .bind(KEY_PAGE)
                .fetch_all(pool)
                .await
                .map_err(bizcred_pg::Error::from)?)
            })?;
            let page = rows
                .into_iter()
                .map(|(i, id)| Ok((unsigned(&i, "status list index")?, id)))
                .collect::<Result<Vec<_>, Error>>()?;
            after = page.last().cloned();
            Ok(page)
        })
    }

    /// Every record, in id order, read [`RECORD_PAGE`] at a time.
    pub fn all(&self) -> impl Iterator<Item = Result<Record, Error>> + '_ {
        let mut after: Option<String> = None;
        Paged::new(RECORD_PAGE, move || {
            let bodies: Vec<String> = self.run(async |pool| {
                let q = match &after {
                    None => {
                        sqlx::query_scalar("SELECT body::text FROM records ORDER BY id LIMIT $1")
                            .bind(RECORD_PAGE)
                    }
                    Some(a) => sqlx::query_scalar(
                        "SELECT body::text FROM records WHERE id > $2 ORDER BY id LIMIT $1",
                    )
                    .bind(RECORD_PAGE)
                    .bind(a.as_str()),
                };
                Ok(q.fetch_all(pool).await.map_err(bizcred_pg::Error::from)?)
            })?;
            let page = bodies
                .iter()
                .map(|b| decode(b))
                .collect::<Result<Vec<Record>, Error>>()?;
            after = page.last().map(|r| r.id.clone());
            Ok(page)
        })
    }

    /// Every subject, once each, in order, read [`KEY_PAGE`] at a time.
    pub fn subjects(&self) -> impl Iterator<Item = Result<String, Error>> + '_ {
        let mut after: Option<String> = None;
        Paged::new(KEY_PAGE, move || {
            let page: Vec<String> = self.run(async |pool| {
                let q = match &after {
                    None => sqlx::query_scalar(
                        "SELECT DISTINCT subject FROM records ORDER BY subject LIMIT $1",
                    )
                    .bind(KEY_PAGE),
                    Some(a) => sqlx::query_scalar(
                        "SELECT DISTINCT subject FROM records WHERE subject > $2 \
                         ORDER BY subject LIMIT $1",
                    )
                    .bind(KEY_PAGE)
                    .bind(a.as_str()),
                };
                Ok(q.fetch_all(pool).await.map_err(bizcred_pg::Error::from)?)
            })?;
            after = page.last().cloned();
            Ok(page)
        })
    }

    /// How many records are held.
    pub fn count(&self) -> Result<usize, Error> {
        let n: i64 = self.run(async |pool| {
            Ok(sqlx::query_scalar("SELECT count(*) FROM records")
                .fetch_one(pool)
                .await
                .map_err(bizcred_pg::Error::from)?)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many records are held (0 when the database cannot say: the failure is logged).
    pub fn len(&self) -> usize {
        self.count().unwrap_or_else(|e| {
            tracing::warn!("counting the repository's records: {e}");
            0
        })
    }

    /// Whether none is held (`true` when the database cannot say: the failure is logged).
    pub fn is_empty(&self) -> bool {
        let any = self.run(async |pool| {
            Ok(
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM records)")
                    .fetch_one(pool)
                    .await
                    .map_err(bizcred_pg::Error::from)?,
            )
        });
        match any {
            Ok(any) => !any,
            Err(e) => {
                tracing::warn!("reading the repository's records: {e}");
                true
            }
        }
    }

    /// The last feed position taken from `feed` (0: none yet).
    pub fn cursor(&self, feed: &str) -> Result<u64, Error> {
        let at: Option<String> = self.run(async |pool| {
            Ok(
                sqlx::query_scalar("SELECT position::text FROM feed_cursors WHERE feed = $1")
                    .bind(feed)
                    .fetch_optional(pool)
                    .await
                    .map_err(bizcred_pg::Error::from)?,
            )
        })?;
        at.map_or(Ok(0), |t| unsigned(&t, "feed cursor"))
    }

    /// Records the feed position taken (durable).
    pub fn set_cursor(&self, feed: &str, seq: u64) -> Result<(), Error> {
        self.run(async |pool| {
            sqlx::query(
                "INSERT INTO feed_cursors (feed, position) VALUES ($1, $2::numeric) \
                 ON CONFLICT (feed) DO UPDATE SET position = excluded.position",
            )
            .bind(feed)
            .bind(seq.to_string())
            .execute(pool)
            .await
            .map_err(bizcred_pg::Error::from)?;
            Ok(())
        })
    }

    /// The `iat` of status list `uri` as last applied.
    pub fn list_applied(&self, uri: &str) -> Result<Option<i64>, Error> {
        self.run(async |pool| {
            Ok(
                sqlx::query_scalar("SELECT iat FROM status_lists WHERE uri = $1")
                    .bind(uri)
                    .fetch_optional(pool)
                    .await
                    .map_err(bizcred_pg::Error::from)?,
            )
        })
    }

    /// Records that status list `uri` as of `iat` was applied (a later time already recorded
    /// is kept).
    pub fn set_list_applied(&self, uri: &str, iat: i64) -> Result<(), Error> {
        self.run(async |pool| {
            sqlx::query(
                "INSERT INTO status_lists (uri, iat) VALUES ($1, $2) ON CONFLICT (uri) \
                 DO UPDATE SET iat = GREATEST(status_lists.iat, excluded.iat)",
            )
            .bind(uri)
            .bind(iat)
            .execute(pool)
            .await
            .map_err(bizcred_pg::Error::from)?;
            Ok(())
        })
    }

    /// Nothing to flush: every write is committed before it returns.
    pub fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}
