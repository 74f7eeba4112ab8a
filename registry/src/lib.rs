//! bizcred-registry: the DID and trust registry.
//!
//! Stage 1 of the registry design (`design/registry.md`): one append-only log of signed
//! entries (genesis, issuers with their mirrored did:webvh logs, credential types,
//! authorizations, key status), hashed as RFC 9162 Merkle leaves, with C2SP signed
//! checkpoints, inclusion and consistency proofs, and signed trust bundles that verifiers
//! import offline (`bizcred_core::trust::bundle::import`).
//!
//! * [`Registry`] is the sequencer: it validates every entry against the replayed
//!   [`TrustState`](bizcred_core::trust::state::TrustState) before it appends it, durably,
//!   through a [`store::Store`].
//! * [`store`] holds the log: sled in the data directory by default, or PostgreSQL
//!   ([`store::pg`]), where any number of instances share one database: appends are
//!   serialized by a transaction-scoped advisory lock and validated against the state
//!   replayed from what is stored at that moment, and every instance refreshes from the
//!   database before it answers.
//! * [`service::app`] is the HTTP API (axum), testable without a socket.
//!
//! The sequencer takes time and randomness as parameters; the binary supplies the clock.

pub mod admin;
pub mod sequencer;
pub mod service;
pub mod store;
pub mod trqp;

pub use sequencer::{Registry, RegistryError};
