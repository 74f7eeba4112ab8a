//! The issuance core: the issuer's state and operations, used by the HTTP service and the CLI.
//! It knows nothing of HTTP servers, file paths or passphrases: the store, the key store
//! ([`KeyStore`]) and the clock are given to it, and every refusal is an [`Error`] with a
//! stable code that the service maps to an OpenID4VCI response.
//!
//! * `offers`: credential issuer metadata, approval and the credential offer;
//! * `applications`: applications and their prerequisites (OpenID4VP);
//! * `credential`: the token, nonce and credential endpoints;
//! * `status`: status changes and the Token Status Lists (stored bits, roll-over);
//! * `keys`: the signing keys, the did:webvh DID, key rotation;
//! * `staff`: who acts ([`Actor`], [`StaffRole`]) and what each role may ([`Permission`]);
//! * `lifecycle`: the desk's actions on an application (edit claims, request changes, refuse,
//!   withdraw), each a compare-and-swap of the record, and the work queue;
//! * `records`: credential search and views, the audit report;
//! * `bulk`: public credentials issued in bulk from the registry's extract;
//! * `subscribe`: the event feed's signed pages, and a subscriber's checks of them.

mod applicant;
mod applications;
pub mod bulk;
mod credential;
pub mod dependents;
mod error;
mod keys;
mod lifecycle;
mod offers;
mod records;
mod staff;
mod status;
pub mod subscribe;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rand_core::{OsRng, RngCore};

use bizcred_core::oid4vp;
use bizcred_core::trust::bundle;
use bizcred_core::trust::state::TrustState;
use bizcred_core::webvh;
use bizcred_schemas::CredentialType;

use crate::config::Config;
use crate::store::{SignedList, Store};

pub use applicant::{
    applicant_claims, Opened, APPLICANT_OFFER_TTL, MAX_APPLICANT_OPENS_PER_MINUTE,
};
pub use applications::{prefill, MAX_SWEEP};
pub use credential::{
    DpopEndpoint, Presented, DPOP_MAX_AGE, DPOP_MAX_SKEW, DPOP_NONCE_TTL, MAX_EVENT_DESCRIPTION,
    MAX_NOTIFICATION_ID, MAX_REISSUES, NOTIFICATION_EVENTS,
};
pub use error::{Error, FieldError};
pub use keys::{KeyInfo, KeyStore, KeyStoreError};
pub use lifecycle::{field_errors, ApplicationFilter, ApplicationList, MAX_APPLICATION_LIST};
pub use offers::Offered;
pub use records::{
    AuditChain, AuditEntry, AuditReport, CredentialView, KeyClaims, MAX_AUDIT_LISTED,
    MAX_SEARCH_RESULTS,
};
pub use staff::{Actor, Permission, StaffRole, MAX_REASON_CHARS};
pub use status::{Resign, StatusAction, MAX_IAT_LEAD, PUBLISH_WAIT};

use keys::Keys;

/// Wrong transaction codes before an offer is voided.
pub const MAX_TX_ATTEMPTS: u32 = 5;
/// Access token lifetime.
pub const TOKEN_TTL: i64 = 600;
/// `c_nonce` lifetime.
pub const NONCE_TTL: i64 = 300;
/// Accepted key proof age.
pub const PROOF_MAX_AGE: i64 = 300;

/// The running issuer.
pub struct Issuer {
    /// Configuration.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// The issuer's did:webvh DID.
    pub did: String,
    keys: RwLock<Keys>,
    key_store: Box<dyn KeyStore>,
    trust: RwLock<Option<TrustState>>,
    /// The newest signed token of each status list (also kept in the store).
    status_tokens: RwLock<BTreeMap<u32, SignedList>>,
    /// A task waits to re-sign and push a coalesced change.
    resign_scheduled: AtomicBool,
    sign_lock: Mutex<()>,
    /// The clock.
    pub clock: std::sync::Arc<dyn bizcred_core::time::Clock>,
    http: reqwest::Client,
    /// The applicant API's openings this minute: (minute, count).
    applicant_window: Mutex<(i64, u32)>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// Reads one of the issuer's locks. Each holds a value that is only ever replaced whole (never
/// left half-written by a panicking writer), so a poisoned lock still holds a consistent value:
/// it is recovered on purpose rather than read as empty.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes one of the issuer's locks (see [`read`] for why poisoning is recovered).
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// The body of a refusal from the registry, or why it could not be read.
async fn refusal(r: reqwest::Response) -> Error {
    let status = r.status().as_u16();
    let body = match r.text().await {
        Ok(t) => t,
        Err(e) => format!("(body unreadable: {e})"),
    };
    Error::RegistryRefused { status, body }
}

fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    bizcred_core::base64url_encode(b)
}

/// A random identifier: hex, so it never starts with `-` on a command line.
fn random_id() -> String {
    let mut b = [0u8; 12];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Issuer {
    /// Opens an initialized issuer over its store and key store.
    pub fn new(
        config: Config,
        store: Store,
        key_store: Box<dyn KeyStore>,
        clock: impl bizcred_core::time::Clock + 'static,
    ) -> Result<Issuer, Error> {
        let clock: std::sync::Arc<dyn bizcred_core::time::Clock> = std::sync::Arc::new(clock);
        let did = store
            .meta_get("did")?
            .ok_or(Error::NotInitialized)
            .and_then(|d| String::from_utf8(d).map_err(|_| Error::Metadata("DID")))?;
        let keys = Keys::load(&store, key_store.as_ref(), &did, clock.now())?;
        // Start-up reads the lists' recorded tokens; it builds no list from records (only a
        // store from before the bits were kept gets them built, once).
        store.prepare_status_lists(config.list_size)?;
        let status_tokens = store.signed_status_lists()?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Issuer {
            config,
            store,
            did,
            keys: RwLock::new(keys),
            key_store,
            trust: RwLock::new(None),
            // A change stored but not signed before a crash shows as a version of the bits
            // newer than the signed one: the next re-sign signs it.
            status_tokens: RwLock::new(status_tokens),
            resign_scheduled: AtomicBool::new(false),
            sign_lock: Mutex::new(()),
            clock,
            http,
            applicant_window: Mutex::new((0, 0)),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The current signing key id.
    pub fn kid(&self) -> String {
        read(&self.keys).kid.clone()
    }

    /// The did:webvh log (did.jsonl).
    pub fn did_log(&self) -> Result<String, Error> {
        let log = self
            .store
            .meta_get("did_log")?
            .ok_or(Error::Metadata("DID log"))?;
        String::from_utf8(log).map_err(|_| Error::Metadata("DID log"))
    }

    fn issues(&self, slug: &str) -> Option<(CredentialType, Vec<CredentialType>)> {
        self.config
            .types
            .iter()
            .find(|(t, _)| t.slug() == slug)
            .cloned()
    }

    /// The OpenID4VP Client Identifier of this issuer (as a verifier of prerequisites).
    pub fn client_id(&self) -> String {
        format!("{}{}", oid4vp::DID_PREFIX, self.did)
    }

    /// Syncs the trust bundle from the registry (incrementally); returns its size.
    pub async fn sync_trust(&self) -> Result<u64, Error> {
        let held = read(&self.trust).clone();
        let from = held.as_ref().map_or(0, TrustState::size);
        let text = self
            .http
            .get(format!("{}/bundle?from={from}", self.config.registry_url))
            .send()
            .await
            .map_err(Error::RegistryUnreachable)?
            .text()
            .await
            .map_err(Error::RegistryUnreachable)?;
        let imported = bundle::import(held.as_ref(), &self.config.anchor, &text, self.now())
            .map_err(Error::Bundle)?;
        let size = imported.state.size();
        *write(&self.trust) = Some(imported.state);
        Ok(size)
    }
}

/// Verifies the local did:webvh log; the versions, or why it does not verify.
fn verified_log(log: &str, now: i64) -> Result<webvh::VerifiedLog, Error> {
    let verified = webvh::verify_log(log, None, now);
    match verified.error {
        Some(e) => Err(Error::DidLog(e)),
        None => Ok(verified),
    }
}

#[cfg(test)]
mod tests;
