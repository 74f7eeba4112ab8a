//! What the services' PostgreSQL tests share (feature `testing`): the server from
//! `BIZCRED_TEST_DATABASE_URL` (without it they say so loudly and pass; under `CI=true` its
//! absence is a failure), and a fresh database per test, dropped after it.
#![allow(clippy::expect_used)]

use std::io::Write;

use rand_core::{OsRng, RngCore};
use sqlx::Connection;

/// The variable naming the PostgreSQL server tests use (a URL; its database is only used to
/// create and drop the tests' own databases).
pub const DB_VAR: &str = "BIZCRED_TEST_DATABASE_URL";

/// Whether this run is CI (`CI=true`), where a missing server is a failure.
pub fn under_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Says on the terminal, past the test harness's capture, that `what` did not run.
pub fn shout(what: &str, why: &str) {
    let bar = "=".repeat(78);
    // Writing to the terminal fails only when stderr is closed; there is no one to tell then.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n{bar}\nSKIPPED (PostgreSQL): {what}: {why}\n{bar}"
    );
}

/// The server URL, or `None` after a loud skip; under CI its absence panics.
pub fn server(what: &str) -> Option<String> {
    match std::env::var(DB_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let why =
                format!("{DB_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)");
            assert!(!under_ci(), "{what}: {why}, and CI=true requires it");
            shout(what, &why);
            None
        }
    }
}

/// `url` with its database replaced by `name` (parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a URL with a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
}

fn admin(server: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c = sqlx::postgres::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("connecting to {DB_VAR}: {e}"));
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = c.close().await;
    });
}

/// A fresh database `bizcred_test_<random>` on the server, dropped (with its connections)
/// when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    server: String,
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Creates an empty database (not migrated).
    pub fn create(server: &str) -> TestDb {
        let name = format!("bizcred_test_{:016x}", OsRng.next_u64());
        admin(server, &format!("CREATE DATABASE {name}"));
        TestDb {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        }
    }

    /// Creates a database and applies a service's migrations with `migrate` (its
    /// `store::pg::migrate`), panicking when they fail.
    pub fn migrated<T, E: std::fmt::Debug>(
        server: &str,
        migrate: impl FnOnce(&str) -> Result<T, E>,
    ) -> TestDb {
        let db = TestDb::create(server);
        migrate(&db.url).expect("migrate");
        db
    }

    /// Runs one statement on this database.
    pub fn execute(&self, sql: &str) {
        admin(&self.url, sql);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
