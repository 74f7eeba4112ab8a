//! What the verifier's storage tests share: the fixtures ([`world`]); for PostgreSQL
//! (`bizcred_pg::testing`), the server from `BIZCRED_TEST_DATABASE_URL` and a fresh database
//! per test, here migrated for the verifier.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod world;

pub use bizcred_pg::testing::{server, shout, under_ci, with_database, TestDb, DB_VAR};

/// Creates a database and applies the verifier's migrations.
pub fn migrated(server: &str) -> TestDb {
    TestDb::migrated(server, bizcred_verifier::store::pg::migrate)
}
