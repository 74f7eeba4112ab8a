//! PostgreSQL storage of what a verifier service's instances share (feature `postgres`,
//! `sqlx`): any number of `bizcred-verifier serve --database URL` instances on one database.
//!
//! # Tables
//!
//! `pending_requests` (the requests waiting for an answer, with nonce, policy and expiry),
//! `receipts` (every signed receipt: the history) and `outcomes` (the full report of each
//! transaction). The schema is the versioned migrations in `verifier/migrations/`, embedded
//! in the binary ([`MIGRATOR`]) and run by `bizcred-verifier migrate --database URL`
//! ([`migrate`]). [`PgShared::connect`] refuses a database whose migrations are missing or
//! newer than the binary's ([`StoreError::SchemaBehind`], [`StoreError::SchemaNewer`],
//! [`StoreError::SchemaMismatch`]). Give the verifier a database of its own: one migrated for
//! another service is refused the same way.
//!
//! # Several instances
//!
//! * **A response is verified once.** Taking a request is one conditional `UPDATE … SET
//!   answering_at … WHERE answering_at IS NULL AND expires_at > now RETURNING …`: of any
//!   number of answers posted at once to any instances, PostgreSQL's row lock lets one
//!   update the row; the others find it taken and answer `UNKNOWN_STATE`. The row stays
//!   (counted, shown as being answered) until the transaction that keeps the outcome
//!   deletes it, or it expires.
//! * **`max_pending` across instances.** A request is created in a transaction that takes
//!   the transaction-scoped advisory lock [`PENDING_LOCK`], deletes the expired rows, counts
//!   the others and inserts only below the bound: creations are serialized, so the count is
//!   exact. The table never holds more than `max_pending` rows (of the largest setting).
//! * **Every instance shows every outcome.** The receipt, the report and the removal of the
//!   request are one transaction; `GET /transactions/{id}`, the verdict page and the history
//!   read them from the database. At most `max_results` reports are kept (the oldest deleted
//!   in the same transaction); receipts are all kept, paged from the database by
//!   `(at, state)` on an index.
//!
//! # Threads
//!
//! The [`SharedStore`] trait is synchronous. `PgShared` drives sqlx on a runtime of its own
//! (one worker thread) and each call blocks its caller until the database answers: call it
//! where blocking is allowed (the service runs it on tokio's blocking pool, the binary's
//! commands in `tokio::task::block_in_place`).

use std::sync::Arc;

use bizcred_pg::Settings;
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::Row;

use super::shared::{Outcome, SharedStore, Waiting};
use super::{OpenRequest, ReceiptEntry, ReceiptId, StoreError, VerifierDir, MAX_RECEIPT_LEN};
use crate::request::Pending;
use crate::verify::Report;

pub use bizcred_pg::{redact_url, Migrated, Schema};

/// The migrations of `verifier/migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The key of the transaction-scoped advisory lock that serializes request creations
/// (`b"bcverPND"`).
pub const PENDING_LOCK: i64 = 0x6263_7665_7250_4e44;

/// How long a creation waits for the lock before it fails (PostgreSQL's `lock_timeout`).
pub const LOCK_TIMEOUT: &str = "10s";

/// Connections each instance keeps (its handlers run on the blocking pool, each call one
/// short statement or transaction).
pub const MAX_CONNECTIONS: u32 = 8;

/// Largest page of the history read at once.
pub const MAX_PAGE: usize = 1000;

/// The shared runtime and pool, answering this store's errors.
type Conn = bizcred_pg::Conn<StoreError>;

/// How the verifier connects (its runtime's thread is `bizcred-verifier-pg`).
const SETTINGS: Settings = Settings {
    service: "bizcred-verifier",
    lock_timeout: LOCK_TIMEOUT,
    max_connections: MAX_CONNECTIONS,
};

/// The `application_name` an instance's connections carry: `bizcred-verifier <process id>`.
pub fn application_name() -> String {
    bizcred_pg::application_name(SETTINGS.service)
}

impl From<bizcred_pg::Error> for StoreError {
    fn from(e: bizcred_pg::Error) -> StoreError {
        match e {
            bizcred_pg::Error::DatabaseUrl(why) => StoreError::DatabaseUrl(why),
            bizcred_pg::Error::Postgres(e) => StoreError::Postgres(e),
            bizcred_pg::Error::Closed => {
                StoreError::CorruptRow("the database connection is closed".into())
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

/// Where the schema of the database at `url` stands.
pub fn schema(url: &str) -> Result<Schema, StoreError> {
    Conn::open(url, &SETTINGS)?.run(async |pool| schema_of(pool).await)
}

/// What the instances share, on PostgreSQL (see the module documentation).
pub struct PgShared {
    conn: Conn,
}

impl std::fmt::Debug for PgShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgShared").finish_non_exhaustive()
    }
}

/// What [`PgShared::move_from`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Moved {
    /// Unexpired pending requests moved (their files removed from the directory).
    pub requests: usize,
    /// Receipts copied.
    pub receipts: usize,
    /// Receipts the database already held, the same (an earlier move).
    pub already: usize,
}

fn corrupt(what: &str) -> impl FnOnce(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::CorruptRow(format!("{what}: {e}"))
}

fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

fn bound(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn request_of(row: &sqlx::postgres::PgRow) -> Result<OpenRequest, StoreError> {
    Ok(OpenRequest {
        pending: Pending {
            state: row.try_get("state")?,
            nonce: row.try_get("nonce")?,
            client_id: row.try_get("client_id")?,
            response_uri: row.try_get("response_uri")?,
            expires_at: row.try_get("expires_at")?,
        },
        policy: row.try_get("policy")?,
    })
}

const REQUEST_COLUMNS: &str = "state, nonce, client_id, response_uri, policy, expires_at";

/// The policy and verdict a receipt states (the history's columns).
fn receipt_columns(receipt: &Value) -> (String, String) {
    let text = |k: &str| {
        receipt
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (text("policy"), text("verdict"))
}

async fn insert_receipt<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: &ReceiptId,
    text: &str,
    receipt: &Value,
) -> Result<bool, StoreError> {
    let (policy, verdict) = receipt_columns(receipt);
    let done = sqlx::query(
        "INSERT INTO receipts (id, at, state, policy, verdict, receipt) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(id.to_string())
    .bind(id.at)
    .bind(&id.state)
    .bind(policy)
    .bind(verdict)
    .bind(text)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl PgShared {
    /// Connects to the database at `url` and checks that its schema is this binary's
    /// (refusing a database not migrated, or migrated by a newer binary).
    pub fn connect(url: &str) -> Result<PgShared, StoreError> {
        let conn = Conn::open(url, &SETTINGS)?;
        conn.run(async |pool| schema_of(pool).await)?
            .require_current()?;
        Ok(PgShared { conn })
    }

    /// Moves what the data directory `dir` holds into the database: its unexpired pending
    /// requests (their files are removed once the database has them, so a request is never
    /// answerable in two places) and a copy of every receipt (the files stay). One
    /// transaction; receipts already moved are skipped, a different receipt under the same
    /// id refuses the whole move ([`StoreError::MoveDiffers`]). Stop the service on `dir`
    /// first.
    pub fn move_from(&self, dir: &VerifierDir, now: i64) -> Result<Moved, StoreError> {
        let requests: Vec<OpenRequest> = dir
            .sweep(now)?
            .into_iter()
            .map(|p| {
                Ok(dir
                    .request(&p.state, now)?
                    .or(dir.answering(&p.state, now)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?
            .into_iter()
            .flatten()
            .collect();
        let mut receipts = Vec::new();
        for id in dir.receipt_ids()? {
            if let Some(v) = dir.receipt(&id.to_string())? {
                receipts.push((id, v));
            }
        }
        let moved = self.conn.run(async |pool| {
            let mut tx = pool.begin().await?;
            let mut moved = Moved::default();
            for r in &requests {
                let p = &r.pending;
                let done = sqlx::query(
                    "INSERT INTO pending_requests \
                     (state, nonce, client_id, response_uri, policy, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(&p.state)
                .bind(&p.nonce)
                .bind(&p.client_id)
                .bind(&p.response_uri)
                .bind(&r.policy)
                .bind(p.expires_at)
                .execute(&mut *tx)
                .await?;
                let held: Option<sqlx::postgres::PgRow> = sqlx::query(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM pending_requests WHERE state = $1"
                ))
                .bind(&p.state)
                .fetch_optional(&mut *tx)
                .await?;
                if held.as_ref().map(request_of).transpose()?.as_ref() != Some(r) {
                    return Err(StoreError::MoveDiffers {
                        what: format!("the request {}", p.state),
                        problem: "the database holds another request with its state",
                    });
                }
                if done.rows_affected() == 1 {
                    moved.requests += 1;
                }
            }
            for (id, receipt) in &receipts {
                let text = serde_json::to_string(receipt).map_err(corrupt("a receipt"))?;
                if insert_receipt(&mut *tx, id, &text, receipt).await? {
                    moved.receipts += 1;
                } else {
                    moved.already += 1;
                }
                let held: Option<String> =
                    sqlx::query_scalar("SELECT receipt FROM receipts WHERE id = $1")
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                let same = held
                    .as_deref()
                    .map(serde_json::from_str::<Value>)
                    .transpose()
                    .map_err(corrupt("a receipt"))?
                    .is_some_and(|v| v == *receipt);
                if !same {
                    return Err(StoreError::MoveDiffers {
                        what: format!("the receipt {id}"),
                        problem: "the database holds another receipt under its id",
                    });
                }
            }
            tx.commit().await?;
            Ok(moved)
        })?;
        // The database has them: the directory no longer answers them.
        for r in &requests {
            if let Some(p) = dir.pending_path(&r.pending.state) {
                super::remove(&p)?;
            }
            dir.forget_request(&r.pending.state)?;
        }
        Ok(moved)
    }
}

impl SharedStore for PgShared {
    fn create(
        &self,
        request: &OpenRequest,
        now: i64,
        max_pending: usize,
    ) -> Result<(), StoreError> {
        self.conn.run(async |pool| {
            let mut tx = pool.begin().await?;
            // Creations are serialized: the count below is the count when the row lands.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PENDING_LOCK)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM pending_requests WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_requests")
                .fetch_one(&mut *tx)
                .await?;
            if count(n) >= max_pending {
                // Dropping the transaction rolls it back (the sweep too: nothing changes).
                return Err(StoreError::TooManyPending(count(n)));
            }
            let p = &request.pending;
            sqlx::query(
                "INSERT INTO pending_requests \
                 (state, nonce, client_id, response_uri, policy, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&p.state)
            .bind(&p.nonce)
            .bind(&p.client_id)
            .bind(&p.response_uri)
            .bind(&request.policy)
            .bind(p.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn lookup(&self, state: &str, now: i64) -> Result<Option<Waiting>, StoreError> {
        self.conn.run(async |pool| {
            let row = sqlx::query(&format!(
                "SELECT {REQUEST_COLUMNS}, answering_at IS NOT NULL AS answering \
                 FROM pending_requests WHERE state = $1 AND expires_at > $2"
            ))
            .bind(state)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(Waiting {
                    request: request_of(&r)?,
                    answering: r.try_get("answering")?,
                })
            })
            .transpose()
        })
    }

    fn take(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, StoreError> {
        self.conn.run(async |pool| {
            // One statement: PostgreSQL lets one of any number of concurrent updates change
            // the row; the others re-check the condition and find it taken.
            let row = sqlx::query(&format!(
                "UPDATE pending_requests SET answering_at = $2 \
                 WHERE state = $1 AND answering_at IS NULL AND expires_at > $2 \
                 RETURNING {REQUEST_COLUMNS}"
            ))
            .bind(state)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(request_of).transpose()
        })
    }

    fn finish(
        &self,
        state: &str,
        report: Report,
        receipt: Value,
        now: i64,
        max_results: usize,
    ) -> Result<Arc<Outcome>, StoreError> {
        let id = ReceiptId {
            at: now,
            state: state.to_owned(),
        };
        let name = super::receipt_name(state, now);
        if id.to_string() != name {
            return Err(StoreError::CorruptRow(
                "a request's state is not a receipt id".into(),
            ));
        }
        let receipt_text = serde_json::to_string(&receipt).map_err(corrupt("a receipt"))?;
        let report_text = serde_json::to_string(&report).map_err(corrupt("a report"))?;
        self.conn.run(async |pool| {
            let mut tx = pool.begin().await?;
            if !insert_receipt(&mut *tx, &id, &receipt_text, &receipt).await? {
                return Err(StoreError::CorruptRow(format!(
                    "the request {state} was answered twice"
                )));
            }
            sqlx::query("INSERT INTO outcomes (state, report) VALUES ($1, $2)")
                .bind(state)
                .bind(&report_text)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM pending_requests WHERE state = $1")
                .bind(state)
                .execute(&mut *tx)
                .await?;
            // Bounded: the newest max_results reports stay.
            sqlx::query(
                "DELETE FROM outcomes WHERE seq <= \
                 (SELECT seq FROM outcomes ORDER BY seq DESC OFFSET $1 LIMIT 1)",
            )
            .bind(bound(max_results.max(1)))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })?;
        Ok(Arc::new(Outcome {
            report,
            receipt,
            receipt_id: name,
        }))
    }

    fn outcome(&self, state: &str) -> Result<Option<Arc<Outcome>>, StoreError> {
        let row: Option<(String, String, String)> = self.conn.run(async |pool| {
            Ok(sqlx::query_as(
                "SELECT o.report, r.receipt, r.id FROM outcomes o \
                 JOIN receipts r ON r.state = o.state WHERE o.state = $1",
            )
            .bind(state)
            .fetch_optional(pool)
            .await?)
        })?;
        let Some((report, receipt, receipt_id)) = row else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Outcome {
            report: serde_json::from_str(&report).map_err(corrupt("a report"))?,
            receipt: serde_json::from_str(&receipt).map_err(corrupt("a receipt"))?,
            receipt_id,
        })))
    }

    fn receipt(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let Some(id) = ReceiptId::parse(id) else {
            return Ok(None);
        };
        let text: Option<String> = self.conn.run(async |pool| {
            Ok(
                sqlx::query_scalar("SELECT receipt FROM receipts WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(pool)
                    .await?,
            )
        })?;
        let Some(text) = text else {
            return Ok(None);
        };
        if text.len() as u64 > MAX_RECEIPT_LEN {
            return Err(StoreError::CorruptRow(format!(
                "the receipt {id} is larger than any receipt written"
            )));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(corrupt("a receipt"))
    }

    fn receipt_of(&self, state: &str) -> Result<Option<String>, StoreError> {
        self.conn.run(async |pool| {
            Ok(
                sqlx::query_scalar("SELECT id FROM receipts WHERE state = $1")
                    .bind(state)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    fn receipts(
        &self,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<ReceiptEntry>, StoreError> {
        // A `before` that is no receipt id lists from the newest, as the directory does.
        let before = before.and_then(ReceiptId::parse);
        let limit = bound(limit.min(MAX_PAGE));
        let rows: Vec<(String, i64, String, String)> = self.conn.run(async |pool| {
            Ok(match &before {
                Some(b) => {
                    sqlx::query_as(
                        "SELECT id, at, policy, verdict FROM receipts \
                     WHERE (at, state) < ($1, $2) ORDER BY at DESC, state DESC LIMIT $3",
                    )
                    .bind(b.at)
                    .bind(&b.state)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query_as(
                        "SELECT id, at, policy, verdict FROM receipts \
                     ORDER BY at DESC, state DESC LIMIT $1",
                    )
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
                }
            })
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, at, policy, verdict)| ReceiptEntry {
                id,
                at,
                policy,
                verdict,
            })
            .collect())
    }

    fn sweep(&self, now: i64) -> Result<usize, StoreError> {
        self.conn.run(async |pool| {
            let done = sqlx::query("DELETE FROM pending_requests WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
        })
    }

    fn pending_count(&self, now: i64) -> Result<usize, StoreError> {
        self.conn.run(async |pool| {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pending_requests WHERE expires_at > $1")
                    .bind(now)
                    .fetch_one(pool)
                    .await?;
            Ok(count(n))
        })
    }

    fn ready(&self) -> Result<(), StoreError> {
        Ok(self
            .conn
            .run(async |pool| schema_of(pool).await)?
            .require_current()?)
    }
}
