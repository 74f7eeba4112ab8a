//! What the PostgreSQL tests share (`bizcred_pg::testing`): the server from
//! `BIZCRED_TEST_DATABASE_URL`, and a fresh database per test, here migrated for the issuer.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use bizcred_pg::testing::{server, shout, under_ci, with_database, TestDb, DB_VAR};

/// Creates a database and applies the issuer's migrations.
pub fn migrated(server: &str) -> TestDb {
    TestDb::migrated(server, bizcred_issuer::store::pg::migrate)
}
