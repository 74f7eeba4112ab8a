//! The wallet library's errors: one enum, each variant with a stable `SCREAMING_SNAKE` code.

use bizcred_core::keys::KeyError;
use bizcred_core::oid4vci::OfferError;
use bizcred_core::oid4vp::RequestError;
use bizcred_schemas::ReasonCode;

use crate::pending::PendingError;
use crate::vault::VaultError;

/// Why the wallet could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The encrypted store failed (see [`VaultError::code`]).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The HTTP client could not be built (no fallback client is used).
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A server could not be reached or its answer could not be read.
    #[error("cannot reach {url} for {what}")]
    Unreachable {
        /// What was being fetched.
        what: &'static str,
        /// Where.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A server answered with an error status.
    #[error("{what}: {status}: {}", .description.as_deref().or(.error.as_deref()).unwrap_or(.body.as_str()))]
    Http {
        /// What was being fetched.
        what: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The OAuth `error` member, when the body has one.
        error: Option<String>,
        /// The OAuth `error_description` member, when the body has one.
        description: Option<String>,
        /// The body as text, when it is not an OAuth error object.
        body: String,
    },
    /// The token endpoint refused the pre-authorized code or the transaction code.
    #[error("the token request: {status}: {}", .description.as_deref().or(.error.as_deref()).unwrap_or("refused"))]
    TokenRefused {
        /// The HTTP status code.
        status: u16,
        /// The OAuth `error` member.
        error: Option<String>,
        /// The OAuth `error_description` member.
        description: Option<String>,
    },
    /// A response is larger than the wallet reads.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// A response is not UTF-8 text.
    #[error("{what} is not UTF-8")]
    NotUtf8 {
        /// What was being read.
        what: &'static str,
    },
    /// A response or document does not have the expected JSON shape.
    #[error("{what} is not valid")]
    BadJson {
        /// What was being read.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The credential offer is refused.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// The offer has no pre-authorized code grant.
    #[error("the offer has no pre-authorized code")]
    NoPreAuthorizedCode,
    /// The offer needs a transaction code and none was given.
    #[error("this offer needs a transaction code")]
    TxCodeRequired,
    /// The issuer's metadata does not fit the offer.
    #[error("the issuer metadata: {0}")]
    Metadata(MetadataProblem),
    /// The issuer returned no credential.
    #[error("the issuer returned no credential")]
    NoCredential,
    /// A key proof or key-binding JWT could not be signed.
    #[error("cannot sign with the holder key")]
    Sign(#[source] bizcred_core::keys::SignError),
    /// The received credential was refused; nothing was stored.
    #[error("{0}")]
    Credential(CredentialProblem),
    /// A key could not be resolved from its DID.
    #[error("cannot resolve {kid}: {problem}")]
    Resolve {
        /// The DID URL.
        kid: String,
        /// Why.
        problem: ResolveProblem,
    },
    /// The holder key in the wallet is damaged or of the wrong size.
    #[error("damaged holder key")]
    HolderKey(#[source] KeyError),
    /// The presentation request is refused.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The request object does not verify with the verifier's DID.
    #[error("the request is not signed by the verifier it names")]
    RequestSignature(#[source] RequestError),
    /// The verifier asks for a format this wallet does not hold.
    #[error("the verifier asks for a {format} credential; this wallet holds SD-JWT VCs")]
    UnsupportedFormat {
        /// The requested format.
        format: String,
    },
    /// The wallet holds no credential that matches a query.
    #[error("you hold no {wanted} matching the request ({query_id}); nothing was sent")]
    NoMatch {
        /// The DCQL credential query id.
        query_id: String,
        /// What was asked for (a type name or the query id).
        wanted: String,
    },
    /// The request has no `response_uri` to send to.
    #[error("the request has no response_uri")]
    NoResponseUri,
    /// A stored credential does not parse (the store is damaged).
    #[error("the stored credential {id} is damaged")]
    StoredCredential {
        /// The credential id.
        id: String,
        /// Why.
        #[source]
        source: bizcred_core::sd_jwt::SdJwtError,
    },
    /// No credential with that id.
    #[error("no credential {0} in the wallet")]
    UnknownCredential(String),
    /// The status list could not be checked.
    #[error("the status list: {0}")]
    StatusList(StatusProblem),
    /// A backup does not hold credentials that parse.
    #[error("the backup holds a damaged credential {id}")]
    DamagedBackup {
        /// The credential id.
        id: String,
        /// Why.
        #[source]
        source: bizcred_core::sd_jwt::SdJwtError,
    },
    /// A backup holds an application record the wallet could not have written.
    #[error("the backup holds a damaged application {id}")]
    DamagedBackupApplication {
        /// The wallet's id of the application.
        id: String,
    },
    /// A backup is larger than the wallet reads.
    #[error("the backup is larger than {0} bytes")]
    BackupTooLarge(usize),
    /// The record of an interrupted receive could not be written, read or removed.
    #[error("the record of the interrupted receive {id}")]
    PendingRecord {
        /// The offer's id.
        id: String,
        /// Why.
        #[source]
        source: PendingError,
    },
    /// An interrupted receive cannot be resumed: its access token has expired. Nothing was
    /// stored and its record is removed.
    #[error("the interrupted receive from {issuer} cannot be resumed: its access token has expired; nothing was stored (ask the agency for a new offer)")]
    ReceiveExpired {
        /// The credential issuer.
        issuer: String,
    },
    /// `receive --resume` found no interrupted receive.
    #[error("there is no interrupted receive to resume")]
    NoPendingReceive,
    /// The agency URL is not `https://…` (or plain HTTP on localhost).
    #[error("{0} is not an agency URL (https://…, or http://localhost:<port>)")]
    AgencyUrl(String),
    /// The agency does not issue the type asked for.
    #[error("{agency} does not issue {slug}; it issues: {}", if .offered.is_empty() { "nothing".to_owned() } else { .offered.join(", ") })]
    TypeNotIssued {
        /// The agency.
        agency: String,
        /// The type asked for.
        slug: String,
        /// The types it issues.
        offered: Vec<String>,
    },
    /// The agency refused a request of its applicant API (its sentence and reason code).
    #[error("{what}: the agency answered {status}: {}", agency_reason(.description.as_deref(), .error.as_deref(), .code.as_deref()))]
    Agency {
        /// What was asked.
        what: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The OAuth-style `error`.
        error: Option<String>,
        /// The sentence.
        description: Option<String>,
        /// The agency's reason code.
        code: Option<String>,
    },
    /// The agency's list of types names another agency than the one asked, or no agency URL
    /// (no application was sent to it).
    #[error("{asked} answers as {answered}, not as the agency you named; no application was sent (check the agency's URL)")]
    AgencyMismatch {
        /// The agency the founder named (normalised).
        asked: String,
        /// The `credential_issuer` it answered (normalised).
        answered: String,
    },
    /// The agency's answer is not one the wallet keeps or follows.
    #[error("{what}: {problem}")]
    AgencyAnswer {
        /// What was read.
        what: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The agency was already found unreachable in this run; it was not asked again.
    #[error("{agency} could not be reached")]
    AgencyDown {
        /// The agency.
        agency: String,
    },
    /// No application with that id in the wallet.
    #[error("no application {0} in the wallet")]
    UnknownApplication(String),
    /// The agency's application id names applications at several agencies.
    #[error("{id} names applications at several agencies; use the wallet's id: {}", .ids.join(", "))]
    AmbiguousApplication {
        /// The id given.
        id: String,
        /// The wallet's ids of the applications it names.
        ids: Vec<String>,
    },
}

/// An agency's refusal: its sentence (else its error), and its code.
fn agency_reason(description: Option<&str>, error: Option<&str>, code: Option<&str>) -> String {
    let sentence = description.or(error).unwrap_or("no reason given");
    match code {
        Some(c) => format!("{sentence} ({c})"),
        None => sentence.to_owned(),
    }
}

/// What is wrong with issuer metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataProblem {
    /// The metadata names another issuer than the offer.
    #[error("it names another credential issuer than the offer")]
    OtherIssuer,
    /// The offered configuration is not described.
    #[error("the issuer does not describe {0}")]
    UnknownConfiguration(String),
    /// The offered configuration is not an SD-JWT VC.
    #[error("{id} is not an SD-JWT VC (format {format})")]
    NotSdJwtVc {
        /// The configuration id.
        id: String,
        /// Its format.
        format: String,
    },
}

/// Why a received credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialProblem {
    /// It is not an SD-JWT.
    #[error("the credential does not parse: {0}")]
    Parse(String),
    /// It has no `iss`.
    #[error("the credential has no iss")]
    NoIssuer,
    /// Its key is not a key of its issuer.
    #[error("the credential's key {kid} is not a key of its issuer {iss}")]
    ForeignKey {
        /// The header `kid`.
        kid: String,
        /// The `iss` claim.
        iss: String,
    },
    /// The signature or claims do not verify.
    #[error("the credential does not verify ({code}): {message}")]
    DoesNotVerify {
        /// The core's code.
        code: ReasonCode,
        /// The core's message.
        message: String,
    },
    /// It is not bound to this wallet's key.
    #[error("the credential is not bound to this wallet's key")]
    NotBound,
    /// Its `vct` is not the offered one.
    #[error("the credential's vct {got} is not the offered {offered}")]
    OtherVct {
        /// The credential's vct.
        got: String,
        /// The offered vct.
        offered: String,
    },
    /// Its claims break the type's schema.
    #[error("the credential breaks the {slug} schema: {errors}")]
    Schema {
        /// The type slug.
        slug: &'static str,
        /// The schema errors, joined.
        errors: String,
    },
}

/// Why a DID key could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveProblem {
    /// Not a did:key, did:jwk or did:webvh URL.
    #[error("only did:key, did:jwk and did:webvh are supported")]
    UnsupportedMethod,
    /// The DID or key is malformed.
    #[error("{0}")]
    Malformed(String),
    /// The did:webvh log does not verify.
    #[error("the DID log does not verify: {0}")]
    LogDoesNotVerify(String),
    /// The DID did not exist at that time.
    #[error("the DID did not exist at that time")]
    NotYetCreated,
    /// The log fetched is another DID's.
    #[error("the log fetched is not the log of that DID")]
    OtherLog,
    /// The key is not an assertion key.
    #[error("it was not an assertion key of its DID at that time")]
    NotAssertionKey,
    /// The key is not in the DID document.
    #[error("it is not a key of its DID at that time")]
    NoSuchKey,
}

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusProblem {
    /// Not signed by the credential's issuer.
    #[error("it is not signed by the credential's issuer")]
    ForeignSigner,
    /// It does not verify or the index is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl WalletError {
    /// The stable code of this error (one of the shared [`ReasonCode`]s).
    pub fn code(&self) -> ReasonCode {
        match self {
            WalletError::Vault(e) => e.code(),
            WalletError::HttpClient(_) => ReasonCode::HttpClientFailed,
            WalletError::Unreachable { .. } => ReasonCode::Unreachable,
            WalletError::Http { .. } => ReasonCode::HttpError,
            WalletError::TokenRefused { .. } => ReasonCode::TokenRefused,
            WalletError::TooLarge { .. } => ReasonCode::ResponseTooLarge,
            WalletError::NotUtf8 { .. } | WalletError::BadJson { .. } => ReasonCode::BadResponse,
            WalletError::Offer(_) => ReasonCode::OfferMalformed,
            WalletError::NoPreAuthorizedCode => ReasonCode::NoPreAuthorizedCode,
            WalletError::TxCodeRequired => ReasonCode::TxCodeRequired,
            WalletError::Metadata(_) => ReasonCode::BadIssuerMetadata,
            WalletError::NoCredential => ReasonCode::NoCredential,
            WalletError::Sign(_) => ReasonCode::SigningFailed,
            WalletError::Credential(p) => match p {
                CredentialProblem::DoesNotVerify { .. } => ReasonCode::CredentialDoesNotVerify,
                CredentialProblem::NotBound => ReasonCode::CredentialNotBound,
                CredentialProblem::Schema { .. } => ReasonCode::CredentialSchema,
                _ => ReasonCode::BadCredential,
            },
            WalletError::Resolve { .. } => ReasonCode::DidResolution,
            WalletError::HolderKey(_) => ReasonCode::HolderKeyDamaged,
            WalletError::Request(e) => e.code(),
            WalletError::RequestSignature(_) => ReasonCode::RequestSignature,
            WalletError::UnsupportedFormat { .. } => ReasonCode::UnsupportedFormat,
            WalletError::NoMatch { .. } => ReasonCode::NoMatchingCredential,
            WalletError::NoResponseUri => ReasonCode::NoResponseUri,
            WalletError::StoredCredential { .. } => ReasonCode::StoredCredentialDamaged,
            WalletError::UnknownCredential(_) => ReasonCode::UnknownCredential,
            WalletError::StatusList(_) => ReasonCode::StatusList,
            WalletError::DamagedBackup { .. }
            | WalletError::DamagedBackupApplication { .. }
            | WalletError::BackupTooLarge(_) => ReasonCode::BackupDamaged,
            WalletError::PendingRecord { source, .. } => source.code(),
            WalletError::ReceiveExpired { .. } => ReasonCode::ReceiveExpired,
            WalletError::NoPendingReceive => ReasonCode::NoPendingReceive,
            WalletError::AgencyUrl(_) => ReasonCode::AgencyUrlInvalid,
            WalletError::TypeNotIssued { .. } => ReasonCode::ApplicationTypeUnknown,
            // The agency's own code when it is one of the shared ones.
            WalletError::Agency { code, .. } => code
                .as_deref()
                .and_then(crate::applications::known_code)
                .unwrap_or(ReasonCode::HttpError),
            // The wallet's issuer-mismatch code (as for an offer's metadata naming another
            // issuer).
            WalletError::AgencyMismatch { .. } => ReasonCode::BadIssuerMetadata,
            WalletError::AgencyAnswer { .. } => ReasonCode::BadResponse,
            WalletError::AgencyDown { .. } => ReasonCode::Unreachable,
            WalletError::UnknownApplication(_) => ReasonCode::UnknownApplication,
            WalletError::AmbiguousApplication { .. } => ReasonCode::ApplicationAmbiguous,
        }
    }

    /// True when the error is a refusal the user can act on (exit 1), false for a failure of
    /// the wallet, the network or a server (exit 2).
    pub fn is_refusal(&self) -> bool {
        match self {
            WalletError::Vault(e) => e.is_refusal(),
            WalletError::Offer(_)
            | WalletError::NoPreAuthorizedCode
            | WalletError::TxCodeRequired
            | WalletError::TokenRefused { .. }
            | WalletError::Request(_)
            | WalletError::RequestSignature(_)
            | WalletError::UnsupportedFormat { .. }
            | WalletError::NoMatch { .. }
            | WalletError::UnknownCredential(_)
            | WalletError::ReceiveExpired { .. }
            | WalletError::NoPendingReceive
            | WalletError::AgencyUrl(_)
            | WalletError::TypeNotIssued { .. }
            | WalletError::AgencyMismatch { .. }
            | WalletError::UnknownApplication(_)
            | WalletError::AmbiguousApplication { .. } => true,
            // The agency refused what was asked (4xx); a 5xx is its failure.
            WalletError::Agency { status, .. } => (400..500).contains(status),
            _ => false,
        }
    }
}
