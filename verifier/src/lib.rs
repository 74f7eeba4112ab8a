//! bizcred-verifier: offline verification of SD-JWT VC presentations.
//!
//! Given a presentation (an OpenID4VP `vp_token` with its nonce and audience), a
//! [`Policy`](policy::Policy), the [`TrustState`](bizcred_core::trust::state::TrustState)
//! imported from a trust bundle, and the time, [`verify::verify`] answers ACCEPT, REJECT or
//! INDETERMINATE with every check, every failure's stable reason code, and the `asOf` times
//! the answer rests on (registry design §4.6, §4.7, §4.10).
//!
//! The pipeline performs no network, file or clock access: the trust state, stapled status
//! lists and `now` are passed in. Two optional layers do I/O for those who embed the verifier:
//! `store` (feature `store`: the data directory with bundles, pending requests and receipts)
//! and `service` (feature `service`: the OpenID4VP endpoints as an axum `Router`, with the
//! bank page under `/desk` in `desk`, the staff roles in `staff` and the registry sync in
//! `sync`). The `bizcred-verifier` binary (feature `cli`) parses arguments and prints.
#![deny(missing_docs)]

#[cfg(feature = "service")]
pub mod desk;
pub mod policy;
pub mod receipt;
pub mod request;
#[cfg(feature = "service")]
pub mod service;
#[cfg(feature = "service")]
pub mod staff;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "service")]
pub mod sync;
pub mod verify;

pub use policy::Policy;
pub use verify::{verify, Context, Presentation, Report, Verdict};
