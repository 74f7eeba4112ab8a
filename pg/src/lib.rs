//! The PostgreSQL plumbing the services' stores share (their tables, queries and migrations
//! stay theirs): [`Conn`], a small runtime of the store's own driving an sqlx pool whose
//! connections carry `application_name` and `lock_timeout`; [`schema_of`], where a database's
//! schema stands against a service's embedded migrations ([`Schema`]); [`migrate`]; and
//! [`redact_url`] for messages. Feature `testing`: [`testing`], a fresh database per test.

use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use bizcred_schemas::ReasonCode;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

#[cfg(feature = "testing")]
pub mod testing;

/// A failure of the shared plumbing; each service maps it onto its own storage error (same
/// codes, the service's own messages).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PostgreSQL database URL that does not parse (the URL itself is not repeated: it may
    /// hold a password).
    #[error("the database URL is not a PostgreSQL URL: {0}")]
    DatabaseUrl(String),
    /// The PostgreSQL database failed or could not be reached (or the runtime could not start).
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    /// The connection was used after it was closed.
    #[error("the database connection is closed")]
    Closed,
    /// The database's schema is older than the service's migrations.
    #[error("the database is not migrated (migrations {missing:?} are not applied)")]
    SchemaBehind {
        /// The versions of the service's migrations the database lacks.
        missing: Vec<i64>,
    },
    /// The database was migrated by a newer binary (or for another service).
    #[error("the database has migrations {unknown:?} this binary does not know")]
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
}

impl Error {
    /// The stable reason code (the one each service's storage error answers for it).
    pub fn code(&self) -> ReasonCode {
        match self {
            Error::DatabaseUrl(_) => ReasonCode::ConfigInvalid,
            Error::Postgres(_) => ReasonCode::StorageFailed,
            Error::Closed => ReasonCode::StoreCorrupt,
            Error::SchemaBehind { .. } => ReasonCode::DatabaseNotMigrated,
            Error::SchemaNewer { .. } => ReasonCode::DatabaseSchemaNewer,
            Error::SchemaMismatch { .. } => ReasonCode::DatabaseSchemaMismatch,
        }
    }
}

/// Where the database schema stands against a binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// Every migration is applied, none unknown.
    Current,
    /// Migrations of this binary are not applied (none at all on a new database).
    Behind {
        /// Their versions.
        missing: Vec<i64>,
    },
    /// The database has migrations this binary does not know.
    Newer {
        /// Their versions.
        unknown: Vec<i64>,
    },
    /// A migration differs from this binary's, or failed half-way.
    Mismatch {
        /// Its version.
        version: i64,
        /// What is wrong.
        problem: &'static str,
    },
}

impl Schema {
    /// `Ok` when current, else the error that refuses to serve.
    pub fn require_current(self) -> Result<(), Error> {
        match self {
            Schema::Current => Ok(()),
            Schema::Behind { missing } => Err(Error::SchemaBehind { missing }),
            Schema::Newer { unknown } => Err(Error::SchemaNewer { unknown }),
            Schema::Mismatch { version, problem } => {
                Err(Error::SchemaMismatch { version, problem })
            }
        }
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The versions applied now (empty: the database was current).
    pub applied: Vec<i64>,
    /// Every version of this binary.
    pub versions: Vec<i64>,
}

/// How a service connects.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The service's name: connections carry `application_name` `<service> <process id>`
    /// (`pg_stat_activity` shows which process holds a lock), the runtime's thread is
    /// `<service>-pg`.
    pub service: &'static str,
    /// PostgreSQL's `lock_timeout` on every connection (e.g. `"10s"`).
    pub lock_timeout: &'static str,
    /// Connections the pool keeps at most.
    pub max_connections: u32,
}

/// The `application_name` of `service`'s connections in this process:
/// `<service> <process id>`.
pub fn application_name(service: &str) -> String {
    format!("{service} {}", std::process::id())
}

/// The connect options for `url` under `settings` (the URL is never in the error).
pub fn connect_options(url: &str, settings: &Settings) -> Result<PgConnectOptions, Error> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| Error::DatabaseUrl(e.to_string()))?
        .application_name(&application_name(settings.service))
        .options([("lock_timeout", settings.lock_timeout)]))
}

/// A small runtime of the store's own (one worker thread, like a synchronous PostgreSQL
/// client), and the pool it drives. Each [`Conn::run`] blocks its caller until the database
/// answers: call it where blocking is allowed (tokio's blocking pool, `block_in_place`).
/// `E` is the service's storage error, what the calls it runs answer.
pub struct Conn<E> {
    rt: Option<tokio::runtime::Runtime>,
    pool: Option<PgPool>,
    error: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Conn<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl<E: From<Error>> Conn<E> {
    /// Starts the runtime and connects to the database at `url`.
    pub fn open(url: &str, settings: &Settings) -> Result<Conn<E>, Error> {
        let options = connect_options(url, settings)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{}-pg", settings.service))
            .enable_all()
            .build()
            .map_err(|e| Error::Postgres(sqlx::Error::Io(e)))?;
        let pool = rt.block_on(
            PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options),
        )?;
        Ok(Conn {
            rt: Some(rt),
            pool: Some(pool),
            error: PhantomData,
        })
    }

    /// Runs `f` with the pool on the runtime, blocking until it is done.
    pub fn run<T>(&self, f: impl AsyncFnOnce(&PgPool) -> Result<T, E>) -> Result<T, E> {
        match (&self.rt, &self.pool) {
            (Some(rt), Some(pool)) => rt.block_on(f(pool)),
            _ => Err(Error::Closed.into()),
        }
    }
}

impl<E> Drop for Conn<E> {
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

/// Where `pool`'s schema stands against `migrator` (its up migrations).
pub async fn schema_of(pool: &PgPool, migrator: &Migrator) -> Result<Schema, Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let applied: Vec<(i64, Vec<u8>, bool)> = if exists {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let ours: Vec<&sqlx::migrate::Migration> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    let unknown: Vec<i64> = applied
        .iter()
        .map(|a| a.0)
        .filter(|v| !ours.iter().any(|m| m.version == *v))
        .collect();
    if !unknown.is_empty() {
        return Ok(Schema::Newer { unknown });
    }
    for (version, checksum, success) in &applied {
        if !success {
            return Ok(Schema::Mismatch {
                version: *version,
                problem: "failed half-way",
            });
        }
        if ours
            .iter()
            .any(|m| m.version == *version && *m.checksum != **checksum)
        {
            return Ok(Schema::Mismatch {
                version: *version,
                problem: "differs from this binary's",
            });
        }
    }
    let missing: Vec<i64> = ours
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.iter().any(|a| a.0 == *v))
        .collect();
    if missing.is_empty() {
        Ok(Schema::Current)
    } else {
        Ok(Schema::Behind { missing })
    }
}

/// Applies `migrator`'s missing migrations to `pool`'s database (sqlx holds its own advisory
/// lock meanwhile, so two `migrate` commands at once are safe). A database migrated by a
/// newer binary, or whose applied migrations differ, is refused untouched.
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> Result<Migrated, Error> {
    let missing = match schema_of(pool, migrator).await? {
        Schema::Current => Vec::new(),
        Schema::Behind { missing } => missing,
        other => {
            other.require_current()?;
            Vec::new()
        }
    };
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => Error::Postgres(e),
        other => Error::Postgres(sqlx::Error::Migrate(Box::new(other))),
    })?;
    Ok(Migrated {
        applied: missing,
        versions: migrator.iter().map(|m| m.version).collect(),
    })
}

/// A database URL without its password and parameters (which may hold one), for messages.
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<a database URL>".to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://reg:s3cret@db.example:5432/registry?sslmode=require&password=x"),
            "postgres://reg@db.example:5432/registry"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("not a url s3cret"), "<a database URL>");
    }

    #[test]
    fn a_bad_url_is_config_invalid_and_not_repeated() {
        let settings = Settings {
            service: "bizcred-test",
            lock_timeout: "1s",
            max_connections: 1,
        };
        let e = Conn::<Error>::open("postgres://u:s3cret@h:notaport/d", &settings)
            .err()
            .map(|e| (e.code(), e.to_string()));
        let (code, text) = e.unwrap_or((ReasonCode::StorageFailed, String::new()));
        assert_eq!(code, ReasonCode::ConfigInvalid);
        assert!(!text.contains("s3cret"));
    }
}
