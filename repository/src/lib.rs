//! bizcred-repository: the public business repository. Anyone finds a business by name,
//! business number or corporation number and sees what government says about it, each
//! statement a public credential they can download and verify themselves.
//!
//! * Intake ([`Repository::intake`]): public credentials pushed by issuers or pulled from their
//!   public feeds are verified offline against the registry's trust bundle (issuer trusted and
//!   authorized for the type, key valid at issuance, signature, schema, status) and refused
//!   with the reason code otherwise; a credential bound to a holder key is refused: it is a
//!   business's own, not a public record.
//! * Storage ([`store`]: sled in the data directory, or PostgreSQL shared by several
//!   instances): every accepted credential as issued, by business and by status list entry;
//!   statuses are refreshed from the status lists of each newer bundle.
//! * Search ([`index`], tantivy): derived from the stored credentials (rebuilt by
//!   [`Repository::reindex`]): names folded for accents and case and matched with one typo,
//!   exact business and corporation numbers, filters, active businesses first.
//! * The service ([`service`]): the JSON API and the pages (English and French).

pub mod index;
pub mod pages;
pub mod repository;
pub mod service;
pub mod store;
pub mod trust;

pub use repository::{Business, IntakeReport, Refusal, Repository, SearchQuery, SearchResults};

use bizcred_schemas::ReasonCode;

/// A failure of the repository, or a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage engine failed.
    #[error("storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// The PostgreSQL database failed, could not be reached, or its schema is not this
    /// binary's (the URL is never in the message: it may hold a password).
    #[error("{}", database_message(.0))]
    Database(bizcred_pg::Error),
    /// The search index failed.
    #[error("the search index failed: {0}")]
    Index(String),
    /// Stored data does not decode.
    #[error("stored {what} does not decode: {cause}")]
    Corrupt {
        /// What.
        what: &'static str,
        /// Why.
        cause: String,
    },
    /// A file of the data directory could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// The data directory was never initialized.
    #[error("no repository in {0} (run bizcred-repository init)")]
    NotInitialized(String),
    /// Init over an existing repository.
    #[error("a repository exists in {0} already")]
    AlreadyInitialized(String),
    /// No trust bundle yet: nothing can be verified.
    #[error("no trust bundle has been imported yet (run bizcred-repository sync)")]
    NoTrust,
    /// The registry's bundle could not be fetched.
    #[error(transparent)]
    Sync(#[from] bizcred_verifier::sync::SyncError),
    /// The registry's bundle was refused.
    #[error("the trust bundle was refused: {0}")]
    Bundle(#[from] bizcred_core::trust::bundle::BundleError),
    /// A search query the repository does not take.
    #[error("{0}")]
    Query(String),
    /// A request that is not well formed (a push that is not `{"credentials": [...]}`).
    #[error("{0}")]
    Request(String),
    /// No public credential about this business.
    #[error("the repository holds no public credential about {0}")]
    NotFound(String),
    /// A pushed credential or batch is too large.
    #[error("{0}")]
    TooLarge(String),
    /// An issuer's event page was refused (its reason code: a signature or key the trust
    /// bundle does not vouch for, a stale or replayed page, a gap): nothing was applied.
    #[error("the event page of {url} was refused: {message}")]
    EventsRefused {
        /// The feed.
        url: String,
        /// Why.
        code: ReasonCode,
        /// A sentence.
        message: String,
    },
    /// Another push is being verified (one at a time: each uses every core).
    #[error("the repository is verifying another push; push again in a moment")]
    Busy,
    /// An issuer's public feed could not be read.
    #[error("cannot read the public feed at {url}: {cause}")]
    Feed {
        /// The feed.
        url: String,
        /// Why.
        cause: String,
    },
}

impl Error {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            Error::Storage(_) | Error::Index(_) | Error::Io { .. } => ReasonCode::StorageFailed,
            Error::Database(e) => e.code(),
            Error::Corrupt { .. } => ReasonCode::StoreCorrupt,
            Error::NotInitialized(_) => ReasonCode::NotInitialized,
            Error::AlreadyInitialized(_) => ReasonCode::AlreadyInitialized,
            Error::NoTrust => ReasonCode::TrustBundleMissing,
            Error::Sync(e) => e.code(),
            Error::Bundle(e) => e.code(),
            Error::Query(_) => ReasonCode::SearchQueryInvalid,
            Error::Request(_) => ReasonCode::RequestInvalid,
            Error::NotFound(_) => ReasonCode::BusinessNotFound,
            Error::TooLarge(_) => ReasonCode::PublicRecordTooLarge,
            Error::Feed { .. } => ReasonCode::FeedUnreachable,
            Error::EventsRefused { code, .. } => *code,
            Error::Busy => ReasonCode::RepositoryBusy,
        }
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(e: tantivy::TantivyError) -> Error {
        Error::Index(e.to_string())
    }
}

impl From<bizcred_pg::Error> for Error {
    fn from(e: bizcred_pg::Error) -> Error {
        // Not a source: the message says it all already (a chain would repeat it).
        Error::Database(e)
    }
}

fn database_message(e: &bizcred_pg::Error) -> String {
    match e {
        bizcred_pg::Error::SchemaBehind { missing } => format!(
            "the database is not migrated to this version of bizcred-repository (migrations \
             {missing:?} are not applied); run `bizcred-repository --database <url> migrate`"
        ),
        bizcred_pg::Error::SchemaNewer { unknown } => format!(
            "the database was migrated by a newer bizcred-repository (migrations {unknown:?} \
             are not this binary's); run the newer binary"
        ),
        other => format!("repository database: {other}"),
    }
}

pub(crate) fn corrupt(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
    move |e| Error::Corrupt {
        what,
        cause: e.to_string(),
    }
}

pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        cause: e.to_string(),
    }
}
