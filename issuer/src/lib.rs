//! bizcred-issuer: the service each government body runs.
//!
//! * OpenID4VCI 1.0 (final): credential issuer and authorization server metadata, credential
//!   offers by value and by reference, the pre-authorized code grant with a transaction code,
//!   the nonce endpoint, the credential endpoint, which checks the `jwt` key proof (its key as
//!   a `jwk`, or a did:key or did:jwk `kid`) and returns an SD-JWT VC bound to the proof key
//!   through `cnf`, and the notification endpoint (`credential_accepted`,
//!   `credential_failure`, `credential_deleted`), recorded in the audit log.
//! * DPoP (RFC 9449) at the token, credential and notification endpoints: a token request with
//!   a proof gets an access token bound to the proof's key (`token_type: DPoP`), accepted only
//!   with the `DPoP` scheme and a proof by that key over its hash, never as a bearer token;
//!   every proof carries a nonce this issuer supplied (`DPoP-Nonce`), good once whichever
//!   instance answers, and a replayed proof (`jti`) is refused. Without a proof the token is a
//!   bearer token.
//! * The issuer's identity is a did:webvh DID; credentials carry `iss` = that DID and a `kid`
//!   DID URL; the DID log is served at the did:webvh location and mirrored by the registry.
//! * IETF Token Status List: a random, never reused index per credential, drawn in the open
//!   list (a new list with its own URL when one is full); each list's bits are kept in the store
//!   and changed with the status; lists are re-signed from those bits on a schedule and after
//!   changes, and pushed to the registry for trust bundles.
//! * Prerequisites: for a type that requires other agencies' credentials, the application
//!   starts with an OpenID4VP request; the presentation is verified offline against the
//!   registry's trust bundle, and its claims pre-fill the application.
//! * Every issuance, status change, key event and wallet notification lands in a hash-chained
//!   audit log.
//! * Public credentials: `bulk` issues one public certificate of incorporation per business of
//!   the registry's extract (no holder key, no personal data); `/public/credentials` is their
//!   feed ([`public`]).
//! * Agency events: every issuance and status change is appended to an event log in its own
//!   transaction; `/events` serves it as signed pages other agencies poll ([`events`]), and
//!   [`issuer::subscribe::Subscription`] is the subscriber's side.
//! * The agency desk (`/desk`, module [`desk`]): clerks, approvers and administrators work the
//!   queue, credentials, keys, the audit log and staff accounts in the browser.

pub mod admin_client;
pub mod config;
pub mod desk;
pub mod events;
pub mod issuer;
pub mod keyfiles;
pub mod public;
pub mod service;
pub mod store;

pub use config::Config;
pub use issuer::{
    Actor, ApplicationFilter, ApplicationList, AuditChain, AuditEntry, AuditReport, CredentialView,
    Error, FieldError, Issuer, KeyClaims, KeyInfo, Offered, Permission, StaffRole, StatusAction,
};
pub use service::ApiError;
pub use store::{
    AppStatus, Application, ApplicationEvent, CredentialRecord, CredentialStatus, StatusChange,
};
