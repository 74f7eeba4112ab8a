//! The trust registry's data, shared by the registry (which writes it) and verifiers (which
//! import it offline): RFC 9162 Merkle proofs, C2SP signed checkpoints, signed governance
//! entries, the replayed [`state::TrustState`] and the signed [`bundle`].

pub mod bundle;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod state;
