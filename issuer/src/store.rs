//! The issuer's durable records: applications, offers, access tokens, nonces, issued
//! credentials, status index allocation and values, signed status lists, and the hash-chained
//! audit log, behind one [`Store`] with two backends:
//!
//! * **sled** ([`sled::SledStore`], the embedded default: a directory, one process);
//! * **PostgreSQL** ([`pg::PgStore`]: any number of issuer instances on one database, chosen by
//!   `[storage] database = "postgres://…"` in `agency.toml` or `serve --database`).
//!
//! `Store` is a handle holding one backend (a closed enum, not a trait object): every call
//! site of the core keeps its one concrete type and its closures (`visit_*`), each method
//! dispatches to the backend that implements it, and what both share (the issuance queue that
//! groups concurrent issuances into one commit, the audit entries' hashing, the records'
//! encoding) is written once here. One contract test suite (`issuer/tests/store_contract.rs`)
//! holds both backends to the same behaviour.
//!
//! # The contract (both backends)
//!
//! * Issuing a credential is one transaction over the credential record, its status index
//!   (never allocated twice: a taken index refuses the issuance, nothing written), the list's
//!   allocation count, the access token's use (once), the application and the audit entry,
//!   durable before the call returns. Concurrent issuances share a commit (group commit); each
//!   keeps its own outcome.
//! * A pre-authorized code is redeemed once, a nonce taken once, an access token used for
//!   one issuance; of two compare-and-swaps of an application exactly one lands.
//! * A status change updates the list's stored bits in the transaction that records it; a
//!   signed list is stored only over an older one (`iat` strictly increasing).
//! * The audit log is one hash chain: appends are serialized and each links to the last.
//! * The event log ([`IssuerEvent`]: issued, suspended, revoked, reinstated) is appended in
//!   the transaction of the issuance or status change it tells of; its positions run from 1
//!   without gaps, in commit order.
//!
//! With PostgreSQL these hold across processes (see [`pg`] for how).

use std::path::Path;
use std::sync::Arc;

use bizcred_schemas::ReasonCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::issuer::Actor;

pub mod moving;
pub mod pg;
pub mod sled;

pub use self::pg::PgStore;
pub use self::sled::SledStore;

/// A storage failure, or a refused state change.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed.
    #[error("issuer storage: {0}")]
    Sled(#[from] ::sled::Error),
    /// The PostgreSQL database failed or could not be reached.
    #[error("issuer storage (PostgreSQL): {0}")]
    Postgres(Arc<sqlx::Error>),
    /// A command needs a PostgreSQL database and none is configured.
    #[error(
        "no PostgreSQL database is configured: set [storage] database in agency.toml, or pass \
         --database"
    )]
    NoDatabase,
    /// A database URL that is not a PostgreSQL URL (the URL itself is not repeated: it may
    /// hold a password).
    #[error("the database URL is not a PostgreSQL URL: {0}")]
    DatabaseUrl(String),
    /// The database's schema is older than this binary's migrations.
    #[error(
        "the database is not migrated to this version of bizcred-issuer (migrations {missing:?} \
         are not applied); run `bizcred-issuer migrate --config <agency.toml>`"
    )]
    SchemaBehind {
        /// The versions of this binary's migrations the database lacks.
        missing: Vec<i64>,
    },
    /// The database was migrated by a newer binary.
    #[error(
        "the database was migrated by a newer bizcred-issuer (migrations {unknown:?} are not \
         this binary's); run the newer binary"
    )]
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
    /// A sled store whose records were moved to PostgreSQL: serving it would make two issuers
    /// of one.
    #[error("this issuer's sled store was moved to PostgreSQL ({0}); serve it with the database")]
    Moved(String),
    /// The target of a move already holds other records (nothing was written).
    #[error("{0} already holds issuer records that are not this store's (nothing was written)")]
    NotEmpty(String),
    /// The records read back after a move differ from the original (nothing was kept).
    #[error("the moved records do not read back as the original: {0}")]
    MoveVerify(String),
    /// A stored value does not decode (the store was altered or damaged).
    #[error("corrupt {what} in the issuer store")]
    Corrupt {
        /// What could not be read.
        what: &'static str,
        /// Why.
        #[source]
        cause: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A value could not be encoded for storage (nothing was written).
    #[error("{what} could not be encoded for the issuer store")]
    Encode {
        /// What could not be written.
        what: &'static str,
        /// Why.
        #[source]
        cause: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A lock of the store was poisoned by a panic.
    #[error("the issuer store's {0} lock is poisoned")]
    Poisoned(&'static str),
    /// The group commit holding this write did not finish.
    #[error("the issuance commit did not finish")]
    Unfinished,
    /// A record is missing.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of record.
        what: &'static str,
        /// Its id (never a secret: codes and tokens are named by kind only).
        id: String,
    },
    /// The status index is already allocated.
    #[error("status index {0} is taken")]
    IndexTaken(u64),
    /// The access token was already used for an issuance.
    #[error("the access token was already used")]
    TokenUsed,
    /// The pre-authorized code was redeemed, voided or has expired.
    #[error("the pre-authorized code was used or has expired")]
    CodeUsedOrExpired,
    /// A revoked credential stays revoked.
    #[error("a revoked credential cannot be reinstated")]
    RevokedIsFinal,
    /// The application changed since it was read (a compare-and-swap lost): nothing written.
    #[error("application {id} changed meanwhile (it is now {status})")]
    ApplicationChanged {
        /// The application.
        id: String,
        /// Where it stands now.
        status: AppStatus,
    },
    /// A business's public credential changed since the bulk run read it (another run
    /// replaced it): nothing of the batch was written.
    #[error("the public record of {subject} changed meanwhile (another bulk run?)")]
    PublicRecordChanged {
        /// The corporation number.
        subject: String,
    },
    /// A status list not newer than the one recorded.
    #[error("a status list with iat {iat} is not newer than the recorded one ({held})")]
    StatusListNotNewer {
        /// The recorded `iat`.
        held: i64,
        /// The refused `iat`.
        iat: i64,
    },
}

impl StoreError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            StoreError::Sled(_) | StoreError::Postgres(_) => ReasonCode::StorageFailed,
            StoreError::DatabaseUrl(_) | StoreError::NoDatabase => ReasonCode::ConfigInvalid,
            StoreError::SchemaBehind { .. } => ReasonCode::DatabaseNotMigrated,
            StoreError::SchemaNewer { .. } => ReasonCode::DatabaseSchemaNewer,
            StoreError::SchemaMismatch { .. } => ReasonCode::DatabaseSchemaMismatch,
            StoreError::Moved(_) => ReasonCode::StorageMoved,
            StoreError::NotEmpty(_) => ReasonCode::StorageNotEmpty,
            StoreError::MoveVerify(_) => ReasonCode::MoveVerifyFailed,
            StoreError::Corrupt { .. } => ReasonCode::StoreCorrupt,
            StoreError::Encode { .. } => ReasonCode::StoreEncodingFailed,
            StoreError::Poisoned(_) => ReasonCode::StoreLockPoisoned,
            StoreError::Unfinished => ReasonCode::CommitUnfinished,
            StoreError::NotFound { .. } => ReasonCode::NotFound,
            StoreError::IndexTaken(_) => ReasonCode::StatusIndexTaken,
            StoreError::TokenUsed => ReasonCode::AccessTokenUsed,
            StoreError::CodeUsedOrExpired => ReasonCode::PreAuthorizedCodeUsedOrExpired,
            StoreError::RevokedIsFinal => ReasonCode::RevokedIsFinal,
            StoreError::ApplicationChanged { .. } => ReasonCode::ApplicationChanged,
            StoreError::StatusListNotNewer { .. } => ReasonCode::StatusListNotNewer,
            StoreError::PublicRecordChanged { .. } => ReasonCode::PublicRecordChanged,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError::Postgres(Arc::new(e))
    }
}

/// Encodes a record; a failure is an error, never an empty record.
pub(crate) fn ser<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode {
        what: "a record",
        cause: Arc::new(e),
    })
}

pub(crate) fn de<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
        what: "record",
        cause: Arc::new(e),
    })
}

/// A big-endian `u64`/`i64` stored in 8 bytes; any other length is corruption.
pub(crate) fn be8(what: &'static str, v: &[u8]) -> Result<[u8; 8], StoreError> {
    v.try_into().map_err(|e| StoreError::Corrupt {
        what,
        cause: Arc::new(e),
    })
}

/// A credential's status, stored and answered as `valid`, `revoked` or `suspended`. A stored
/// value outside these is a decoding error, never a valid credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// Valid.
    Valid,
    /// Revoked (final).
    Revoked,
    /// Suspended (may be reinstated).
    Suspended,
}

impl CredentialStatus {
    /// The stored and answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Valid => "valid",
            CredentialStatus::Revoked => "revoked",
            CredentialStatus::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for CredentialStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an application stands. Stored and answered in snake case (`awaiting_approval`,
/// `changes_requested`, ...); a stored value outside these is a decoding error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// Waiting for the applicant's presentation of the prerequisite credentials.
    AwaitingPrerequisites,
    /// Ready for staff review and approval.
    AwaitingApproval,
    /// Staff asked for changes (the note says which); saving the corrected claims makes it
    /// ready for review again.
    ChangesRequested,
    /// An offer was made.
    Offered,
    /// The credential was issued.
    Issued,
    /// Refused by the agency, with a reason (final).
    Refused,
    /// Withdrawn by the applicant before an offer (final).
    Withdrawn,
}

impl AppStatus {
    /// Every state, in the order of the queue.
    pub const ALL: [AppStatus; 7] = [
        AppStatus::AwaitingPrerequisites,
        AppStatus::AwaitingApproval,
        AppStatus::ChangesRequested,
        AppStatus::Offered,
        AppStatus::Issued,
        AppStatus::Refused,
        AppStatus::Withdrawn,
    ];

    /// The stored and answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::AwaitingPrerequisites => "awaiting_prerequisites",
            AppStatus::AwaitingApproval => "awaiting_approval",
            AppStatus::ChangesRequested => "changes_requested",
            AppStatus::Offered => "offered",
            AppStatus::Issued => "issued",
            AppStatus::Refused => "refused",
            AppStatus::Withdrawn => "withdrawn",
        }
    }
}

impl std::fmt::Display for AppStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most events an application record keeps (the newest; the audit log keeps every one).
pub const MAX_APPLICATION_HISTORY: usize = 100;

/// One staff action on an application, kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationEvent {
    /// When (Unix seconds).
    pub time: i64,
    /// Who.
    pub actor: Actor,
    /// What (`claims_updated`, `changes_requested`, `refused`, `withdrawn`, `approved`).
    pub action: String,
    /// The state it left the application in.
    pub status: AppStatus,
    /// The reason or note given, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An application for a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// Random id.
    pub id: String,
    /// Credential type slug.
    pub credential_type: String,
    /// Status.
    pub status: AppStatus,
    /// Claims: provided by staff, or pre-filled from verified prerequisites.
    pub claims: Map<String, Value>,
    /// Claims verified from prerequisite credentials (cannot be changed by staff).
    #[serde(default)]
    pub verified_claims: Vec<String>,
    /// The OpenID4VP nonce for the prerequisite presentation.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Whether that nonce was used (one presentation per request).
    #[serde(default)]
    pub nonce_used: bool,
    /// Thumbprint of the holder key proven in the prerequisite presentation.
    #[serde(default)]
    pub holder_thumbprint: Option<String>,
    /// The prerequisite verification outcome (codes only).
    #[serde(default)]
    pub verification: Option<Value>,
    /// The offer made, if any.
    #[serde(default)]
    pub offer_id: Option<String>,
    /// Created (Unix seconds).
    pub created: i64,
    /// Staff actions on it, oldest first (at most [`MAX_APPLICATION_HISTORY`], the newest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ApplicationEvent>,
    /// The status list entries of its verified prerequisites and the review flags raised by
    /// upstream agencies' events about them (records written before have none).
    #[serde(default, skip_serializing_if = "Dependencies::is_empty")]
    pub dependencies: Dependencies,
    /// SHA-256 (hex) of the secret of the application's capability link, when the applicant
    /// opened it (issue #14): the link names `{id}.{secret}`; the secret itself is never kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
}

/// Most prerequisite references and review flags an application keeps.
pub const MAX_DEPENDENCIES: usize = 16;

/// What an application depends on upstream: the status list entries of the prerequisite
/// credentials presented for it, and the flags raised when an upstream agency revoked or
/// suspended one of them (issue #14).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// The verified prerequisites' status list entries, as presented.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<PrerequisiteRef>,
    /// Open review flags (at most [`MAX_DEPENDENCIES`]), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<ReviewFlag>,
}

impl Dependencies {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.prerequisites.is_empty() && self.flags.is_empty()
    }
}

/// A presented prerequisite credential's status list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrerequisiteRef {
    /// Its `vct`.
    pub vct: String,
    /// Its issuer's DID.
    pub issuer: String,
    /// The URI of its status list.
    pub status_list: String,
    /// Its index there.
    pub status_idx: u64,
}

/// Why an application (and the credentials issued from it) is flagged for review: an upstream
/// agency's event about one of its prerequisites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewFlag {
    /// The event (`credential_revoked` or `credential_suspended`).
    pub event: EventKind,
    /// Its position in the upstream agency's event log.
    pub seq: u64,
    /// The upstream agency's DID.
    pub upstream: String,
    /// The prerequisite's `vct`.
    pub vct: String,
    /// The prerequisite's status list URI.
    pub status_list: String,
    /// Its index there.
    pub status_idx: u64,
    /// When the event happened upstream (Unix seconds).
    pub time: i64,
    /// When this agency took it (Unix seconds).
    pub flagged_at: i64,
    /// Credentials of this agency suspended automatically for it (the type's
    /// `auto_suspend_dependents` policy); reinstated when the prerequisite is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_suspended: Vec<String>,
}

impl Application {
    /// Records a staff action (keeping the newest [`MAX_APPLICATION_HISTORY`]).
    pub fn record(&mut self, event: ApplicationEvent) {
        self.history.push(event);
        let over = self.history.len().saturating_sub(MAX_APPLICATION_HISTORY);
        self.history.drain(..over);
    }

    /// The credential was issued to the applicant's wallet: the application's final state,
    /// recorded with its time (the applicant's tracker shows when).
    pub fn mark_issued(&mut self, now: i64) {
        self.status = AppStatus::Issued;
        self.record(ApplicationEvent {
            time: now,
            actor: crate::issuer::Actor::Applicant,
            action: "credential_issued".to_owned(),
            status: AppStatus::Issued,
            note: None,
        });
    }

    /// When the application last changed state (its newest recorded event, else its creation).
    pub fn updated(&self) -> i64 {
        self.history.last().map_or(self.created, |e| e.time)
    }

    /// The newest note or reason given (what changes were asked for, why it was refused).
    pub fn last_note(&self) -> Option<&ApplicationEvent> {
        self.history.iter().rev().find(|e| e.note.is_some())
    }
}

/// A credential offer with its pre-authorized code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Random id (the by-reference URL path).
    pub id: String,
    /// The application.
    pub application_id: String,
    /// The credential configuration id.
    pub configuration_id: String,
    /// SHA-256 of the pre-authorized code (hex).
    pub code_hash: String,
    /// SHA-256 of the transaction code (hex).
    pub tx_hash: String,
    /// Expiry (Unix seconds).
    pub expires: i64,
    /// Wrong transaction codes so far.
    pub attempts: u32,
    /// Whether the code was redeemed (single use).
    pub used: bool,
    /// The offer object.
    pub offer: Value,
}

/// An access token from the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The application.
    pub application_id: String,
    /// The credential configuration id.
    pub configuration_id: String,
    /// Expiry.
    pub expires: i64,
    /// Whether a credential was issued with it.
    pub used: bool,
    /// The credential issued with it (a repeated request re-issues that one).
    #[serde(default)]
    pub credential_id: Option<String>,
    /// Re-issues granted so far.
    #[serde(default)]
    pub reissues: u32,
}

/// An issued credential's record (no claims: those stay in the application).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Random id.
    pub id: String,
    /// The application.
    pub application_id: String,
    /// `vct`.
    pub vct: String,
    /// The status list holding the index (`/status/{n}`); records written before lists rolled
    /// over are in list 1.
    #[serde(default = "first_list")]
    pub status_list: u32,
    /// Status list index.
    pub status_idx: u64,
    /// `valid`, `revoked` or `suspended`.
    pub status: CredentialStatus,
    /// Issued at.
    pub issued_at: i64,
    /// Signing key id.
    pub kid: String,
    /// SHA-256 of the credential as issued (hex).
    pub credential_sha256: String,
    /// Its status changes, oldest first (at most [`MAX_STATUS_HISTORY`], the newest; records
    /// written before histories were kept have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<StatusChange>,
}

/// Most status changes a credential record keeps (the newest; the audit log keeps every one).
pub const MAX_STATUS_HISTORY: usize = 100;

/// One status change of a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// When (Unix seconds).
    pub time: i64,
    /// The status it took.
    pub status: CredentialStatus,
    /// Who changed it.
    pub actor: Actor,
    /// Why (required to revoke or suspend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn first_list() -> u32 {
    1
}

/// The 2-bit value of a status in a list (Token Status List: valid 0, revoked ("invalid") 1,
/// suspended 2).
pub(crate) fn status_value(s: CredentialStatus) -> u8 {
    match s {
        CredentialStatus::Valid => 0,
        CredentialStatus::Revoked => 1,
        CredentialStatus::Suspended => 2,
    }
}

/// Bytes of a packed list of `size` 2-bit entries.
pub(crate) fn bits_len(size: u64) -> usize {
    (size.saturating_mul(2)).div_ceil(8) as usize
}

/// Sets entry `idx` of packed 2-bit bytes (the Token Status List layout: entry `i` is bits
/// `2i..2i+2`, least significant first).
pub(crate) fn put_bits(bytes: &mut [u8], idx: u64, value: u8) -> Result<(), StoreError> {
    let byte = usize::try_from(idx / 4).ok().and_then(|b| bytes.get_mut(b));
    let Some(byte) = byte else {
        return Err(corrupt_list("a status index beyond its list"));
    };
    let shift = (idx % 4) * 2;
    *byte = (*byte & !(0b11 << shift)) | ((value & 0b11) << shift);
    Ok(())
}

pub(crate) fn corrupt_list(why: &'static str) -> StoreError {
    StoreError::Corrupt {
        what: "status list",
        cause: Arc::new(std::io::Error::new(std::io::ErrorKind::InvalidData, why)),
    }
}

/// A status list's size and how many of its indices are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListInfo {
    /// Its number (`/status/{list}`).
    pub list: u32,
    /// Entries.
    pub size: u64,
    /// Indices allocated so far.
    pub allocated: u64,
}

impl ListInfo {
    pub(crate) fn encode(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.size.to_be_bytes());
        v[8..].copy_from_slice(&self.allocated.to_be_bytes());
        v
    }

    pub(crate) fn decode(list: u32, v: &[u8]) -> Result<ListInfo, StoreError> {
        if v.len() != 16 {
            return Err(corrupt_list("a list's size record is not 16 bytes"));
        }
        Ok(ListInfo {
            list,
            size: u64::from_be_bytes(be8("status list size", &v[..8])?),
            allocated: u64::from_be_bytes(be8("status list allocation", &v[8..])?),
        })
    }
}

/// A status list's stored bits: the packed 2-bit entries and the version of the last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListBits {
    /// Incremented by every transaction that changes an entry.
    pub version: u64,
    /// Entries.
    pub size: u64,
    /// The packed entries (2 bits each, the Token Status List layout).
    pub bytes: Vec<u8>,
}

/// The newest signed token of a status list, as recorded before it is served or pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedList {
    /// Its `iat`.
    pub iat: i64,
    /// The version of the bits it carries.
    pub version: u64,
    /// The key that signed it.
    pub kid: String,
    /// The token.
    pub token: String,
}

/// A business's current public credential (bulk issuance from the registry's extract): one
/// per subject (the corporation number), replaced when the business's content changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicRecord {
    /// The corporation number.
    pub subject: String,
    /// The credential issued for it.
    pub credential_id: String,
    /// SHA-256 (hex) of the extract content it was issued from (canonical JSON).
    pub content_sha256: String,
    /// Its position in the public feed.
    pub seq: u64,
    /// Issued at.
    pub issued_at: i64,
}

/// One public credential to record (see [`Store::record_public`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIssue {
    /// The credential's record (status index allocated, never used before).
    pub rec: CredentialRecord,
    /// The corporation number.
    pub subject: String,
    /// SHA-256 (hex) of the extract content.
    pub content_sha256: String,
    /// The credential as issued (public: served on the feed).
    pub credential: String,
    /// The subject's current public credential this one replaces (revoked in the same
    /// transaction), with why; `None` for a subject seen for the first time.
    pub replaces: Option<(String, String)>,
}

/// One public credential in the issuer's public feed (`/public/credentials`), in the order
/// they were issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedItem {
    /// Position in the feed, from 1.
    pub seq: u64,
    /// The credential's id.
    pub credential_id: String,
    /// The corporation number.
    pub subject: String,
    /// The credential.
    pub credential: String,
}

/// Most items one read of the public feed answers.
pub const MAX_FEED_PAGE: usize = 1000;

/// What happened to a credential, as the issuer's event feed (`/events`) tells other agencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Issued (also a public credential of a bulk run).
    CredentialIssued,
    /// Suspended.
    CredentialSuspended,
    /// Revoked (final).
    CredentialRevoked,
    /// Reinstated (valid again after a suspension).
    CredentialReinstated,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 4] = [
        EventKind::CredentialIssued,
        EventKind::CredentialSuspended,
        EventKind::CredentialRevoked,
        EventKind::CredentialReinstated,
    ];

    /// The stored and published name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CredentialIssued => "credential_issued",
            EventKind::CredentialSuspended => "credential_suspended",
            EventKind::CredentialRevoked => "credential_revoked",
            EventKind::CredentialReinstated => "credential_reinstated",
        }
    }

    /// The event of a status change to `to`.
    pub fn of_change(to: CredentialStatus) -> EventKind {
        match to {
            CredentialStatus::Valid => EventKind::CredentialReinstated,
            CredentialStatus::Suspended => EventKind::CredentialSuspended,
            CredentialStatus::Revoked => EventKind::CredentialRevoked,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest business identifier an event carries (longer claim values are left out).
pub const MAX_BUSINESS_ID_LEN: usize = 64;

/// The identifiers of the business a credential is about, as far as its claims carry them:
/// never a person's name, an address or any other claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BusinessIds {
    /// The Ontario corporation number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corporation_number: Option<String>,
    /// The CRA business number (BN9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<String>,
    /// The licence number (municipal or liquor licence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_number: Option<String>,
}

impl BusinessIds {
    /// The identifiers of a public credential: its subject's corporation number.
    pub fn public(subject: &str) -> BusinessIds {
        BusinessIds {
            corporation_number: Some(subject.chars().take(MAX_BUSINESS_ID_LEN).collect()),
            ..BusinessIds::default()
        }
    }

    /// The identifiers of the credential issued for application `application_id`: from the
    /// application's claims (`corporation_number`, `business_number`, `licence_number`, only
    /// when they are strings of at most [`MAX_BUSINESS_ID_LEN`] characters); a public
    /// credential (`public:` and the corporation number, no application) carries its
    /// corporation number.
    pub fn of(application_id: &str, app: Option<&Application>) -> BusinessIds {
        if let Some(subject) = application_id.strip_prefix("public:") {
            return BusinessIds::public(subject);
        }
        let claim = |name: &str| {
            app.and_then(|a| a.claims.get(name))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && v.chars().count() <= MAX_BUSINESS_ID_LEN)
                .map(str::to_owned)
        };
        BusinessIds {
            corporation_number: claim("corporation_number"),
            business_number: claim("business_number"),
            licence_number: claim("licence_number"),
        }
    }
}

/// One event of the issuer's append-only event log: a credential issued or its status
/// changed, recorded in the transaction that issued or changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerEvent {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When (Unix seconds).
    pub time: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The credential's id.
    pub credential_id: String,
    /// Its `vct`.
    pub vct: String,
    /// Its status list (`/status/{n}`).
    pub status_list: u32,
    /// Its index in that list.
    pub status_idx: u64,
    /// The business it is about (identifiers only).
    #[serde(default)]
    pub business: BusinessIds,
}

impl IssuerEvent {
    /// The event `kind` of `rec` at `time` (its position is given when it is appended).
    pub(crate) fn new(
        kind: EventKind,
        rec: &CredentialRecord,
        business: BusinessIds,
        time: i64,
    ) -> IssuerEvent {
        IssuerEvent {
            seq: 0,
            time,
            kind,
            credential_id: rec.id.clone(),
            vct: rec.vct.clone(),
            status_list: rec.status_list,
            status_idx: rec.status_idx,
            business,
        }
    }
}

/// Most events one read of the event log answers.
pub const MAX_EVENT_PAGE: usize = 500;

/// The audit entry of a batch of public credentials: how many, the feed positions, a digest of
/// their ids (each one is in the feed and in its record), and every revocation by name.
pub(crate) fn public_batch_audit(
    items: &[PublicIssue],
    recorded: &[PublicRecord],
    revoked: Vec<Value>,
) -> Value {
    let mut ids = Sha256::new();
    for i in items {
        ids.update(i.rec.id.as_bytes());
        ids.update(b"\n");
    }
    json!({
        "count": items.len(),
        "first_seq": recorded.first().map(|r| r.seq),
        "last_seq": recorded.last().map(|r| r.seq),
        "credential_ids_sha256": ids.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "revoked": revoked,
    })
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Used or expired offers, with their pre-authorized codes.
    pub offers: usize,
    /// Expired access tokens.
    pub tokens: usize,
    /// Expired `c_nonce`s.
    pub nonces: usize,
    /// Applications whose prerequisite request expired unanswered.
    pub pending: usize,
}

/// Most issuances one commit writes.
pub const MAX_ISSUANCE_BATCH: usize = 64;

/// Issuances waiting to be committed, and the outcomes of committed ones (see
/// [`Store::record_issuance`]).
#[derive(Debug, Default)]
struct IssuanceQueue {
    state: std::sync::Mutex<IssuanceState>,
    done: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct IssuanceState {
    next_ticket: u64,
    pending: Vec<PendingIssuance>,
    outcomes: std::collections::HashMap<u64, Result<(), StoreError>>,
    committing: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct PendingIssuance {
    pub(crate) ticket: u64,
    pub(crate) rec: CredentialRecord,
    pub(crate) token_hash: String,
    pub(crate) now: i64,
}

/// Ends an issuance commit, even one that unwinds: every issuance of the batch gets its
/// outcome (an error if the commit never finished), and the next caller may lead.
struct CommitLeader<'a> {
    q: &'a IssuanceQueue,
    batch: &'a [PendingIssuance],
    outcomes: Option<Result<Vec<Result<(), StoreError>>, StoreError>>,
}

impl Drop for CommitLeader<'_> {
    fn drop(&mut self) {
        let mut st = self
            .q
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.committing = false;
        let unfinished = || Err(StoreError::Unfinished);
        match self.outcomes.take() {
            Some(Ok(each)) => {
                for (p, o) in self.batch.iter().zip(each) {
                    st.outcomes.insert(p.ticket, o);
                }
            }
            Some(Err(e)) => {
                for p in self.batch {
                    st.outcomes.insert(p.ticket, Err(e.clone()));
                }
            }
            None => {
                for p in self.batch {
                    st.outcomes.insert(p.ticket, unfinished());
                }
            }
        }
        self.q.done.notify_all();
    }
}

/// SHA-256, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// nothing.
pub(crate) fn audit_canonical(v: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| StoreError::Encode {
        what: "an audit entry",
        cause: Arc::new(e),
    })
}

/// The audit entry `seq` linking to `prev`, with its hash (the JCS of the entry without it).
pub(crate) fn audit_entry(
    seq: u64,
    prev: &str,
    time: i64,
    event: &str,
    details: Value,
) -> Result<(Value, String), StoreError> {
    let mut entry = json!({"seq": seq, "time": bizcred_core::time::format_utc(time), "event": event, "details": details, "prev": prev});
    let hash = sha256_hex(&audit_canonical(&entry)?);
    entry["hash"] = hash.clone().into();
    Ok((entry, hash))
}

/// Which backend a [`Store`] holds.
#[derive(Debug, Clone)]
enum Backend {
    Sled(SledStore),
    Pg(PgStore),
}

/// The issuer's store: a handle on its backend (cheap to clone; clones share it).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    issuances: Arc<IssuanceQueue>,
}

/// Calls the backend's method of the same name.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sled(s) => s.$method($($arg),*),
            Backend::Pg(p) => p.$method($($arg),*),
        }
    };
}

impl From<SledStore> for Store {
    fn from(s: SledStore) -> Store {
        Store {
            backend: Backend::Sled(s),
            issuances: Arc::default(),
        }
    }
}

impl From<PgStore> for Store {
    fn from(p: PgStore) -> Store {
        Store {
            backend: Backend::Pg(p),
            issuances: Arc::default(),
        }
    }
}

impl Store {
    /// Opens (or creates) the sled store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        SledStore::open(path).map(Store::from)
    }

    /// Opens (or creates) the sled store at `path` with a page cache of `cache_mb` MiB (sled's
    /// own default is 1 GiB).
    pub fn open_with_cache(path: &Path, cache_mb: u64) -> Result<Store, StoreError> {
        SledStore::open_with_cache(path, cache_mb).map(Store::from)
    }

    /// Connects to the PostgreSQL database at `url` with at most `max_connections`
    /// connections, refusing a database whose schema is not this binary's (not migrated:
    /// [`StoreError::SchemaBehind`]; migrated by a newer binary: [`StoreError::SchemaNewer`]).
    pub fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        PgStore::connect(url, max_connections).map(Store::from)
    }

    /// The store `cfg` names: its PostgreSQL database when `storage.database` is set, else
    /// the sled store in its storage directory.
    pub fn open_config(cfg: &Config) -> Result<Store, StoreError> {
        match &cfg.database {
            Some(url) => Store::connect(url.expose(), cfg.max_connections),
            None => Store::open_with_cache(&cfg.storage.join("db"), cfg.cache_mb),
        }
    }

    /// Whether other processes may write this store meanwhile (PostgreSQL): what a process
    /// holds in memory from it (signed status lists) must then be read again before it is
    /// served.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Pg(_))
    }

    /// Whether the store may be served by this binary now: on PostgreSQL, the database's
    /// migrations are still this binary's (a newer binary may have migrated it since this
    /// one started; [`StoreError::SchemaNewer`]); sled has nothing to check.
    pub fn schema_current(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Pg(p) => p.schema_current(),
        }
    }

    /// The backend's name (`sled`, `postgresql`), for logs and health reports.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sled(_) => "sled",
            Backend::Pg(_) => "postgresql",
        }
    }

    /// Appends an audit event on its own (durable).
    pub fn audit(&self, time: i64, event: &str, details: Value) -> Result<(), StoreError> {
        dispatch!(self.audit(time, event, details))
    }

    /// A metadata value.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self.meta_get(key))
    }

    /// Sets a metadata value (durable).
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        dispatch!(self.meta_put(key, value))
    }

    /// Makes the status lists ready: a new store gets list 1 of `list_size` entries; a sled
    /// store written before the lists' bits were kept gets them built from its credential
    /// records, once. Later opens read nothing but a marker. Durable when it returns.
    pub fn prepare_status_lists(&self, list_size: u64) -> Result<(), StoreError> {
        dispatch!(self.prepare_status_lists(list_size))
    }

    /// Every status list, in order.
    pub fn status_lists(&self) -> Result<Vec<ListInfo>, StoreError> {
        dispatch!(self.status_lists())
    }

    /// A status list's size and allocation.
    pub fn status_list_info(&self, list: u32) -> Result<ListInfo, StoreError> {
        dispatch!(self.status_list_info(list))
    }

    /// The list new indices are drawn in.
    pub fn open_status_list(&self) -> Result<ListInfo, StoreError> {
        dispatch!(self.open_status_list())
    }

    /// Opens the list after `full` (of `size` entries, all valid) and draws new indices in it,
    /// with an audit event, durably. When another caller already rolled over, the open list is
    /// answered as it is.
    pub fn open_next_status_list(
        &self,
        full: u32,
        size: u64,
        now: i64,
    ) -> Result<ListInfo, StoreError> {
        dispatch!(self.open_next_status_list(full, size, now))
    }

    /// Whether a status index of a list is taken.
    pub fn index_taken(&self, list: u32, idx: u64) -> Result<bool, StoreError> {
        dispatch!(self.index_taken(list, idx))
    }

    /// The first free index of a list (`size` entries) at or after `start`, wrapping around;
    /// `None` when every index is taken.
    pub fn free_index(&self, list: u32, size: u64, start: u64) -> Result<Option<u64>, StoreError> {
        dispatch!(self.free_index(list, size, start))
    }

    /// The version of a list's bits (changed by every status change in it).
    pub fn status_version(&self, list: u32) -> Result<u64, StoreError> {
        dispatch!(self.status_version(list))
    }

    /// Up to `n` free indices of a list (`size` entries), in order from `start`, wrapping
    /// around: one scan, for bulk issuance.
    pub fn free_indices(
        &self,
        list: u32,
        size: u64,
        start: u64,
        n: usize,
    ) -> Result<Vec<u64>, StoreError> {
        dispatch!(self.free_indices(list, size, start, n))
    }

    /// The current public records of those of `subjects` (corporation numbers) that have one.
    pub fn public_records(
        &self,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, PublicRecord>, StoreError> {
        dispatch!(self.public_records(subjects))
    }

    /// Records a batch of public credentials in one transaction, durable before it returns:
    /// each credential's record, status index and list allocation (as an issuance), the
    /// subject's public record (replaced), the feed entry, and the revocation of the
    /// credential each one replaces (its record, history and list bits), with one audit entry
    /// for the batch. Refused whole ([`StoreError::PublicRecordChanged`]) when a subject's
    /// current credential is not the one the batch replaces, or when an index is taken.
    pub fn record_public(
        &self,
        items: &[PublicIssue],
        now: i64,
    ) -> Result<Vec<PublicRecord>, StoreError> {
        dispatch!(self.record_public(items, now))
    }

    /// The public feed: up to `limit` (at most [`MAX_FEED_PAGE`]) credentials after position
    /// `after`, in order.
    pub fn public_feed(&self, after: u64, limit: usize) -> Result<Vec<FeedItem>, StoreError> {
        dispatch!(self.public_feed(after, limit.min(MAX_FEED_PAGE)))
    }

    /// The event log: up to `limit` (at most [`MAX_EVENT_PAGE`]) events after position
    /// `after`, in order. Every issuance, status change and public record appends its events
    /// in the transaction that records it.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<IssuerEvent>, StoreError> {
        dispatch!(self.events(after, limit.min(MAX_EVENT_PAGE)))
    }

    /// A list's stored bits: all a re-sign reads (never the credential records).
    pub fn status_bits(&self, list: u32) -> Result<ListBits, StoreError> {
        dispatch!(self.status_bits(list))
    }

    /// The newest signed token of each list.
    pub fn signed_status_lists(
        &self,
    ) -> Result<std::collections::BTreeMap<u32, SignedList>, StoreError> {
        dispatch!(self.signed_status_lists())
    }

    /// The newest signed token of list `list`, if it was ever signed.
    pub fn signed_status_list(&self, list: u32) -> Result<Option<SignedList>, StoreError> {
        dispatch!(self.signed_status_list(list))
    }

    /// Records a newly signed list in one durable write, before it is served or pushed: after a
    /// restart the next one is never older. A list whose `iat` is not after the recorded one
    /// is refused ([`StoreError::StatusListNotNewer`]) and nothing is written: of two signers
    /// racing (two instances), the later `iat` is kept.
    pub fn put_signed_status_list(&self, list: u32, signed: &SignedList) -> Result<(), StoreError> {
        dispatch!(self.put_signed_status_list(list, signed))
    }

    /// Stores an application (and an audit event), durably.
    pub fn put_application(
        &self,
        app: &Application,
        time: i64,
        event: Option<&str>,
    ) -> Result<(), StoreError> {
        dispatch!(self.put_application(app, time, event))
    }

    /// Stores a new application with an `application_created` audit event naming who opened
    /// it, durably.
    pub fn create_application(
        &self,
        app: &Application,
        actor: &Actor,
        time: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self.create_application(app, actor, time))
    }

    /// An application.
    pub fn application(&self, id: &str) -> Result<Application, StoreError> {
        dispatch!(self.application(id))
    }

    /// Every application.
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        dispatch!(self.applications())
    }

    /// Calls `f` with each application in turn, in id order (one decoded at a time; from
    /// PostgreSQL, read a page at a time).
    pub fn visit_applications(
        &self,
        f: impl FnMut(Application) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        dispatch!(self.visit_applications(f))
    }

    /// Calls `f` with each credential record in turn, in id order (one decoded at a time; from
    /// PostgreSQL, read a page at a time).
    pub fn visit_credentials(
        &self,
        f: impl FnMut(CredentialRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        dispatch!(self.visit_credentials(f))
    }

    /// Replaces application `before` by `after` only if the stored record still equals
    /// `before` (a compare-and-swap), with `offer` (and its code) when one is made and an
    /// audit `event` whose details are `details` with the application's id, type and new
    /// status; all in one transaction, durable when it returns. When the record changed
    /// meanwhile nothing is written and the answer is [`StoreError::ApplicationChanged`] with
    /// its current state: of two racing changes exactly one wins (also from two instances).
    pub fn swap_application(
        &self,
        before: &Application,
        after: &Application,
        offer: Option<&Offer>,
        time: i64,
        event: &str,
        details: Value,
    ) -> Result<(), StoreError> {
        let mut details = match details {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => Map::from_iter([("details".to_owned(), other)]),
        };
        details.insert("application_id".into(), after.id.clone().into());
        details.insert("type".into(), after.credential_type.clone().into());
        details.insert("status".into(), after.status.as_str().into());
        let details = Value::Object(details);
        dispatch!(self.swap_application(before, after, offer, time, event, details))
    }

    /// Records an offer for an application, durably.
    pub fn put_offer(&self, offer: &Offer, app: &Application, time: i64) -> Result<(), StoreError> {
        dispatch!(self.put_offer(offer, app, time))
    }

    /// An offer by id.
    pub fn offer(&self, id: &str) -> Result<Offer, StoreError> {
        dispatch!(self.offer(id))
    }

    /// The offer of a pre-authorized code.
    pub fn offer_by_code(&self, code: &str) -> Result<Option<Offer>, StoreError> {
        dispatch!(self.offer_by_code(code))
    }

    /// Counts a wrong transaction code (voiding the offer at `max`); returns the attempts so
    /// far.
    pub fn offer_failed_attempt(&self, offer_id: &str, max: u32) -> Result<u32, StoreError> {
        dispatch!(self.offer_failed_attempt(offer_id, max))
    }

    /// Redeems a pre-authorized code: marks the offer used and stores the access token, in one
    /// transaction (a code is never redeemed twice: [`StoreError::CodeUsedOrExpired`]).
    pub fn redeem(
        &self,
        offer_id: &str,
        token_hash: &str,
        token: &AccessToken,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self.redeem(offer_id, token_hash, token, now))
    }

    /// An access token by its hash.
    pub fn token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        dispatch!(self.token(hash))
    }

    /// Stores a fresh `c_nonce` valid until `expires`.
    ///
    /// On sled not flushed on its own: a nonce lost in a crash only makes the wallet fetch
    /// another.
    pub fn put_nonce(&self, nonce: &str, expires: i64) -> Result<(), StoreError> {
        dispatch!(self.put_nonce(nonce, expires))
    }

    /// Consumes a `c_nonce`: true when it existed and had not expired (once: a second take
    /// answers false, whichever instance asks).
    pub fn take_nonce(&self, nonce: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self.take_nonce(nonce, now))
    }

    /// Stores several fresh nonces at once, each valid until its `expires` (as
    /// [`Store::put_nonce`] each; on PostgreSQL one statement).
    pub fn put_nonces(&self, nonces: &[(&str, i64)]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => nonces.iter().try_for_each(|(n, e)| s.put_nonce(n, *e)),
            Backend::Pg(p) => p.put_nonces(nonces),
        }
    }

    /// An access token by its hash, with the application it was granted for (`None` when
    /// that application is not stored); on PostgreSQL one query.
    pub fn token_with_application(
        &self,
        hash: &str,
    ) -> Result<Option<(AccessToken, Option<Application>)>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let Some(token) = s.token(hash)? else {
                    return Ok(None);
                };
                let app = match s.application(&token.application_id) {
                    Ok(app) => Some(app),
                    Err(StoreError::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                Ok(Some((token, app)))
            }
            Backend::Pg(p) => p.token_with_application(hash),
        }
    }

    /// The list new indices are drawn in, and the first of `candidates` (each taken modulo
    /// that list's size) that no credential holds, if any; on PostgreSQL one query. A free
    /// index here may still be taken by a concurrent issuance before it commits (the
    /// issuance's transaction refuses it then: [`StoreError::IndexTaken`]).
    pub fn draw_index(&self, candidates: &[u64]) -> Result<(ListInfo, Option<u64>), StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                let open = s.open_status_list()?;
                for c in candidates {
                    let idx = c % open.size.max(1);
                    if !s.index_taken(open.list, idx)? {
                        return Ok((open, Some(idx)));
                    }
                }
                Ok((open, None))
            }
            Backend::Pg(p) => p.draw_index(candidates),
        }
    }

    /// Records an issued credential, atomically with its status index, the access token's
    /// use, the application's status and the audit event; durable when it returns.
    ///
    /// Concurrent issuances are committed together: the first caller to find no commit
    /// running takes every pending issuance (up to [`MAX_ISSUANCE_BATCH`]), writes them in
    /// one transaction and commits once; each caller gets its own issuance's outcome. A
    /// refused issuance (taken index: [`StoreError::IndexTaken`]; used token:
    /// [`StoreError::TokenUsed`]) refuses only itself and writes nothing.
    pub fn record_issuance(
        &self,
        rec: &CredentialRecord,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let q = &self.issuances;
        let poisoned = |_| StoreError::Poisoned("issuance queue");
        let mut st = q.state.lock().map_err(poisoned)?;
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.pending.push(PendingIssuance {
            ticket,
            rec: rec.clone(),
            token_hash: token_hash.to_owned(),
            now,
        });
        loop {
            if let Some(outcome) = st.outcomes.remove(&ticket) {
                return outcome;
            }
            if st.committing {
                st = q.done.wait(st).map_err(poisoned)?;
                continue;
            }
            st.committing = true;
            let take = st.pending.len().min(MAX_ISSUANCE_BATCH);
            let batch: Vec<PendingIssuance> = st.pending.drain(..take).collect();
            drop(st);
            let mut leader = CommitLeader {
                q,
                batch: &batch,
                outcomes: None,
            };
            leader.outcomes = Some(dispatch!(self.commit_issuances(&batch)));
            drop(leader);
            st = q.state.lock().map_err(poisoned)?;
        }
    }

    /// Imports credentials issued elsewhere (an issuer's records moved from another store;
    /// the benchmarks' large stores), with no access token: each record, its status index,
    /// its list's allocation count and bits, and an audit event, in one transaction, durable
    /// when it returns. Refused whole when an index is taken or outside its list.
    pub fn import_issued(&self, recs: &[CredentialRecord], now: i64) -> Result<(), StoreError> {
        dispatch!(self.import_issued(recs, now))
    }

    /// Changes a credential's status, recording who and why in its history and the audit
    /// log, and its list's bits, in one transaction (durable before it returns). Answers the
    /// record and the version of its list's bits that holds the change. A revoked credential
    /// only stays revoked ([`StoreError::RevokedIsFinal`]).
    pub fn set_status(
        &self,
        id: &str,
        status: CredentialStatus,
        actor: &Actor,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(CredentialRecord, u64), StoreError> {
        dispatch!(self.set_status(id, status, actor, reason, now))
    }

    /// A credential record.
    pub fn credential(&self, id: &str) -> Result<CredentialRecord, StoreError> {
        dispatch!(self.credential(id))
    }

    /// Records a re-issue of `rec` with the access token that issued it (counted against
    /// `max`), and its audit event, durably. The record and its status index stay as they are.
    pub fn record_reissue(
        &self,
        token_hash: &str,
        rec: &CredentialRecord,
        kid: &str,
        credential_sha256: &str,
        now: i64,
        max: u32,
    ) -> Result<(), StoreError> {
        dispatch!(self.record_reissue(token_hash, rec, kid, credential_sha256, now, max))
    }

    /// Removes, up to `max` of each kind: used or expired offers (and their codes), access
    /// tokens and `c_nonce`s expired at `now`, and applications still awaiting a presentation
    /// created before `pending_before` (an audit event each). Durable when it returns.
    pub fn sweep(&self, now: i64, pending_before: i64, max: usize) -> Result<Swept, StoreError> {
        dispatch!(self.sweep(now, pending_before, max))
    }

    /// Every credential record.
    pub fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        dispatch!(self.credentials())
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<Value>, StoreError> {
        dispatch!(self.audit_entries())
    }

    /// The sled backend (tests of stores written by older versions).
    #[cfg(test)]
    fn sled(&self) -> Result<&SledStore, StoreError> {
        match &self.backend {
            Backend::Sled(s) => Ok(s),
            Backend::Pg(_) => Err(StoreError::NotFound {
                what: "sled backend",
                id: String::new(),
            }),
        }
    }

    /// Writes raw bytes as a credential record (tests of damaged stores; sled only).
    #[cfg(test)]
    pub(crate) fn put_raw_credential(&self, id: &str, raw: &[u8]) -> Result<(), StoreError> {
        self.sled()?.put_raw_credential(id, raw)
    }

    /// Turns this sled store into one written before the lists' bits were kept (tests of the
    /// migration).
    #[cfg(test)]
    pub(crate) fn make_legacy(&self) -> Result<(), StoreError> {
        self.sled()?.make_legacy()
    }
}

/// Verifies the audit chain: each entry's hash covers it and links to the previous one.
/// Returns the number of entries, or the sequence number of the first broken link.
pub fn verify_audit(entries: &[Value]) -> Result<usize, (u64, String)> {
    let mut chain = AuditVerifier::default();
    for e in entries {
        chain.push(e)?;
    }
    Ok(chain.entries())
}

/// [`verify_audit`] an entry at a time (a chain read in pages).
#[derive(Debug, Clone)]
pub struct AuditVerifier {
    next: u64,
    prev: String,
}

impl Default for AuditVerifier {
    fn default() -> AuditVerifier {
        AuditVerifier {
            next: 0,
            prev: "0".repeat(64),
        }
    }
}

impl AuditVerifier {
    /// Checks the next entry: its sequence number, its link to the previous one and its hash.
    pub fn push(&mut self, e: &Value) -> Result<(), (u64, String)> {
        let seq = e.get("seq").and_then(Value::as_u64).unwrap_or(u64::MAX);
        if seq != self.next {
            return Err((self.next, "sequence gap".into()));
        }
        if e.get("prev").and_then(Value::as_str) != Some(self.prev.as_str()) {
            return Err((seq, "does not link to the previous entry".into()));
        }
        let mut body = e.clone();
        let Some(hash) = body
            .as_object_mut()
            .and_then(|m| m.remove("hash"))
            .and_then(|h| h.as_str().map(str::to_owned))
        else {
            return Err((seq, "the entry has no hash".into()));
        };
        let Ok(canon) = audit_canonical(&body) else {
            return Err((seq, "the entry cannot be canonicalized".into()));
        };
        if sha256_hex(&canon) != hash {
            return Err((seq, "hash does not match the entry (altered)".into()));
        }
        self.prev = hash;
        self.next += 1;
        Ok(())
    }

    /// Entries verified so far.
    pub fn entries(&self) -> usize {
        usize::try_from(self.next).unwrap_or(usize::MAX)
    }

    /// The hash of the last entry verified (zeros before the first).
    pub fn head(&self) -> &str {
        &self.prev
    }
}
