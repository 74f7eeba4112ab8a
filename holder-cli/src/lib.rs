//! `bizcred-wallet`: the business owner's wallet as a library, so the command line, a portal
//! or a test can drive it.
//!
//! - [`issuance`]: the OpenID4VCI 1.0 client (offer, metadata, token, nonce, key proof,
//!   credential request), which verifies a credential before it is stored;
//! - [`presentation`]: the OpenID4VP 1.0 client (request parsing and verification, DCQL
//!   matching, key-bound presentations, `direct_post`);
//! - [`consent`]: what is asked, by whom and why, as data;
//! - [`history`]: what was disclosed, to whom, when;
//! - [`vault`]: the encrypted store behind the [`vault::Vault`] trait ([`vault::SledVault`]);
//! - [`pending`]: receives in progress (an access token granted, the credential not yet
//!   stored), sealed, so an interrupted `receive` is resumed;
//! - [`backup`], [`status`]: encrypted backups, and credential status from status lists;
//! - [`net`]: the HTTP client (no fallback client) and DID key resolution;
//! - [`applications`]: applications to an agency over its applicant API, kept in the vault.
//!
//! The library reads no clock: every function that needs the time takes it.

pub mod applications;
pub mod backup;
pub mod consent;
pub mod error;
pub mod history;
pub mod issuance;
pub mod net;
pub mod pending;
pub mod presentation;
pub mod status;
pub mod store;
pub mod vault;

pub use error::WalletError;
pub use vault::{SledVault, Vault, VaultError};
