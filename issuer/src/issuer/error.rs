//! Why the issuance core refused or failed: one typed error with a stable `code()`. The HTTP
//! layer (`service`) maps each to an OpenID4VCI / OAuth error response and a status code.

use bizcred_core::keys::SignError;
use bizcred_core::sd_jwt::SdJwtError;
use bizcred_core::status_list::StatusListError;
use bizcred_core::trust::bundle::BundleError;
use bizcred_core::webvh::WebvhError;
use bizcred_core::{oid4vci, oid4vp};
use bizcred_schemas::ReasonCode;

use super::keys::KeyStoreError;
use super::staff::{Permission, StaffRole};
use crate::store::{AppStatus, StoreError};

/// One claim that breaks the type's schema, named so a page can show the message next to its
/// field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The claim, as a JSON Pointer into the claim set (`/legal_name`,
    /// `/registered_office_address/postal_code`, `/directors/0/family_name`); a missing
    /// required claim is named by its own pointer. `""` is the claim set as a whole.
    pub field: String,
    /// What is wrong, in English.
    pub message: String,
    /// The stable reason (`SCHEMA_REQUIRED`, `SCHEMA_PATTERN`, `BN_CHECK_DIGIT`, ...).
    pub code: ReasonCode,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field = if self.field.is_empty() {
            "(claims)"
        } else {
            &self.field
        };
        write!(f, "{field}: {} [{}]", self.message, self.code)
    }
}

/// A refusal or failure of the issuance core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token request names no grant type.
    #[error("no grant_type")]
    NoGrantType,
    /// A grant type other than the pre-authorized code.
    #[error("only the pre-authorized code grant")]
    UnsupportedGrantType,
    /// The token request lacks the pre-authorized code.
    #[error("no pre-authorized_code")]
    NoPreAuthorizedCode,
    /// The token request lacks the transaction code the offer requires.
    #[error("this offer requires a tx_code")]
    NoTxCode,
    /// No offer has this pre-authorized code.
    #[error("unknown pre-authorized code")]
    UnknownCode,
    /// The pre-authorized code was redeemed, voided or has expired.
    #[error("the pre-authorized code was used or has expired")]
    CodeUsedOrExpired,
    /// A wrong transaction code.
    #[error("wrong transaction code ({attempts_left} attempts left)")]
    WrongTxCode {
        /// Attempts left before the offer is voided.
        attempts_left: u32,
    },
    /// The access token is unknown, used or expired.
    #[error("the access token is unknown, used or expired")]
    InvalidToken,
    /// The credential request is malformed or does not match the token.
    #[error("{0}")]
    BadCredentialRequest(&'static str),
    /// A credential configuration (type) this agency does not issue.
    #[error("this agency does not issue {id}")]
    UnknownConfiguration {
        /// The configuration id asked for.
        id: String,
    },
    /// The key proof is missing or malformed.
    #[error("{0}")]
    BadProof(&'static str),
    /// The key proof does not verify.
    #[error("the key proof: {0}")]
    ProofRefused(#[source] oid4vci::ProofError),
    /// The proof's `c_nonce` is unknown, used or expired.
    #[error("the c_nonce is unknown, used or expired; fetch a new one")]
    InvalidNonce,
    /// The DPoP proof fails a check of RFC 9449 §4.3 that needs no state.
    #[error("{0}")]
    Dpop(#[source] bizcred_core::dpop::DpopError),
    /// The DPoP proof's `jti` was seen before.
    #[error("this DPoP proof was already used (its jti); make a new one")]
    DpopReplay,
    /// The DPoP proof carries no nonce.
    #[error("the DPoP proof must carry the nonce this issuer supplies (DPoP-Nonce)")]
    DpopNonceMissing,
    /// The DPoP proof's nonce is not one this issuer supplied, or was used or has expired.
    #[error("the DPoP proof's nonce is unknown, used or expired; use the one in DPoP-Nonce")]
    DpopNonceInvalid,
    /// The DPoP proof is signed by another key than the one the access token is bound to.
    #[error("the DPoP proof is not signed by the key the access token is bound to")]
    DpopKeyMismatch,
    /// The access token is presented with the DPoP scheme and no DPoP proof.
    #[error("the DPoP scheme needs a DPoP proof (one DPoP header)")]
    DpopProofMissing,
    /// A DPoP-bound access token presented as a bearer token.
    #[error("the access token is DPoP-bound: present it with the DPoP scheme and a proof")]
    DpopTokenAsBearer,
    /// A bearer access token presented with the DPoP scheme.
    #[error("the access token is not DPoP-bound: present it as a bearer token")]
    DpopTokenNotBound,
    /// The notification names another credential than the access token's.
    #[error("the notification_id is not the one of the credential issued with this access token")]
    InvalidNotificationId,
    /// The notification request is malformed.
    #[error("{0}")]
    InvalidNotificationRequest(&'static str),
    /// The credential the access token issued was revoked: it is not issued again.
    #[error("the credential issued with this access token was revoked")]
    CredentialRevoked,
    /// Every index of the status list is taken.
    #[error("the status list is full")]
    StatusListFull,
    /// No free status index was found in a few tries.
    #[error("could not allocate a status index")]
    NoFreeIndex,
    /// No offer with this id.
    #[error("no such offer")]
    OfferNotFound,
    /// The offer was redeemed or has expired.
    #[error("the offer was used or has expired")]
    OfferUsedOrExpired,
    /// The application is not awaiting approval (or review): another action decided it first,
    /// or it waits for something else.
    #[error("application {id} is {status}, not awaiting approval")]
    NotAwaitingApproval {
        /// The application.
        id: String,
        /// Where it stands.
        status: AppStatus,
    },
    /// Staff tried to change a claim verified from a prerequisite credential.
    #[error("{claim} was verified from a prerequisite credential and cannot be changed")]
    VerifiedClaimChanged {
        /// The claim.
        claim: String,
    },
    /// The claims do not satisfy the type's schema (nothing was saved).
    #[error("the claims do not satisfy the {ty} schema: {}", violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ClaimsInvalid {
        /// The type's slug.
        ty: &'static str,
        /// Every violation, by field.
        violations: Vec<FieldError>,
    },
    /// The actor's role does not allow the action.
    #[error("{name}{} may not {action}", role.map(|r| format!(" is a {r} and")).unwrap_or_default())]
    Forbidden {
        /// The staff member (`applicant` for the applicant).
        name: String,
        /// Their role (none for the applicant).
        role: Option<StaffRole>,
        /// What they tried.
        action: Permission,
    },
    /// A name (staff role, application state, status action) nothing knows.
    #[error("{name:?} is not a {what}")]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// The name given (at most 64 characters of it).
        name: String,
    },
    /// The action needs a reason and none (or only blanks) was given.
    #[error("a reason is required to {action}")]
    ReasonRequired {
        /// The action.
        action: Permission,
    },
    /// A reason or note longer than the issuer keeps.
    #[error("a reason or note is at most {max} characters")]
    ReasonTooLong {
        /// The bound.
        max: usize,
    },
    /// The application can no longer be withdrawn.
    #[error("application {id} is {status}: it can no longer be withdrawn")]
    NotWithdrawable {
        /// The application.
        id: String,
        /// Where it stands.
        status: AppStatus,
    },
    /// A status change is stored but its list was not signed in time (the next re-sign
    /// publishes it).
    #[error("the status change is recorded, but status list {list} was not re-signed in time; the next re-sign publishes it")]
    StatusNotPublished {
        /// The list.
        list: u32,
    },
    /// An application names a type this agency no longer issues.
    #[error("application {id} is for {ty}, which this agency does not issue")]
    ApplicationTypeUnknown {
        /// The application.
        id: String,
        /// Its type.
        ty: String,
    },
    /// The prerequisite request was already answered.
    #[error("this request was already answered")]
    RequestAnswered,
    /// The presentation response is malformed.
    #[error("malformed presentation response: {0}")]
    BadPresentation(#[source] oid4vp::RequestError),
    /// The presentation response has no `state`.
    #[error("no state")]
    NoState,
    /// The presentation response's `state` names no application.
    #[error("unknown state")]
    UnknownState,
    /// The prerequisite presentation was already answered.
    #[error("this presentation request was already answered (replay)")]
    PresentationReplay,
    /// An application awaiting a presentation holds no nonce (damaged record).
    #[error("application {0} awaits a presentation but holds no nonce")]
    NoAwaitedNonce(String),
    /// An accepted presentation named no holder key.
    #[error("the accepted presentation names no holder key")]
    NoHolderKey,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The issuer's keys could not be loaded or saved.
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    /// The status list could not be built or signed.
    #[error("status list: {0}")]
    StatusList(#[from] StatusListError),
    /// The credential could not be issued (signing).
    #[error("issuing the credential: {0}")]
    Issue(#[source] SdJwtError),
    /// A signature failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The operating system's randomness failed.
    #[error("randomness: {0}")]
    Random(#[source] rand_core::Error),
    /// The issuer's DID log is missing, does not verify, or could not be extended.
    #[error("the DID log: {0}")]
    DidLog(#[source] WebvhError),
    /// The store holds no issuer yet.
    #[error("the store holds no issuer (hint: run `bizcred-issuer init` first)")]
    NotInitialized,
    /// The store already holds an issuer.
    #[error("the store already holds an issuer")]
    AlreadyInitialized,
    /// The store's issuer metadata is missing or damaged.
    #[error("the issuer store's {0} is missing or damaged")]
    Metadata(&'static str),
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The registry could not be reached.
    #[error("the registry is unreachable: {0}")]
    RegistryUnreachable(#[source] reqwest::Error),
    /// The registry refused.
    #[error("the registry refused ({status}): {body}")]
    RegistryRefused {
        /// HTTP status.
        status: u16,
        /// Its answer.
        body: String,
    },
    /// The registry's trust bundle was refused.
    #[error("the trust bundle: {0}")]
    Bundle(#[source] BundleError),
    /// An upstream agency's event feed could not be read.
    #[error("the upstream agency's event feed is unreachable: {0}")]
    UpstreamUnreachable(#[source] reqwest::Error),
    /// An upstream agency's event feed answered an HTTP error.
    #[error("the upstream agency's event feed answered HTTP {0}")]
    UpstreamRefused(u16),
    /// An upstream agency's event page was refused (the cursor stays).
    #[error("the upstream agency's event page: {0}")]
    EventPage(#[source] super::subscribe::SubscribeError),
    /// No application answers to the capability link (an unknown application, or the secret of
    /// another one).
    #[error("the application link is not valid")]
    CapabilityInvalid,
    /// The applicant tried to change the claims while staff review the application or after
    /// it was decided.
    #[error("application {id} is {status}: its claims can change only while it waits for the prerequisites or after the agency asked for changes")]
    ClaimsLocked {
        /// The application.
        id: String,
        /// Where it stands.
        status: AppStatus,
    },
    /// Too many applications opened through the applicant API this minute.
    #[error(
        "the agency opens as many applications per minute as it allows; try again in a minute"
    )]
    ApplicantsThrottled,
    /// The applicant stated a claim the agency sets or a verified credential provides.
    #[error("the applicant may not state {claim:?}: the agency sets it or a verified prerequisite credential provides it")]
    ApplicantClaimNotAllowed {
        /// The claim.
        claim: String,
    },
    /// No trust bundle is held yet to verify an upstream agency's events with.
    #[error("no trust bundle is held yet")]
    NoTrustBundle,
    /// No registered issuer has the subscribed URL's host (and no DID was configured).
    #[error("no registered issuer is at {0}")]
    UpstreamUnknown(String),
}

impl Error {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            Error::NoGrantType => ReasonCode::NoGrantType,
            Error::UnsupportedGrantType => ReasonCode::UnsupportedGrantType,
            Error::NoPreAuthorizedCode => ReasonCode::NoPreAuthorizedCode,
            Error::NoTxCode => ReasonCode::NoTxCode,
            Error::UnknownCode => ReasonCode::UnknownPreAuthorizedCode,
            Error::CodeUsedOrExpired => ReasonCode::PreAuthorizedCodeUsedOrExpired,
            Error::WrongTxCode { .. } => ReasonCode::WrongTxCode,
            Error::InvalidToken => ReasonCode::InvalidAccessToken,
            Error::BadCredentialRequest(_) => ReasonCode::InvalidCredentialRequest,
            Error::UnknownConfiguration { .. } => ReasonCode::UnknownCredentialConfiguration,
            Error::BadProof(_) => ReasonCode::InvalidProof,
            Error::ProofRefused(_) => ReasonCode::ProofRefused,
            Error::InvalidNonce => ReasonCode::InvalidNonce,
            Error::Dpop(e) => e.code(),
            Error::DpopReplay => ReasonCode::DpopProofReplayed,
            Error::DpopNonceMissing => ReasonCode::DpopNonceMissing,
            Error::DpopNonceInvalid => ReasonCode::DpopNonceInvalid,
            Error::DpopKeyMismatch => ReasonCode::DpopKeyMismatch,
            Error::DpopProofMissing => ReasonCode::DpopProofMissing,
            Error::DpopTokenAsBearer => ReasonCode::DpopTokenAsBearer,
            Error::DpopTokenNotBound => ReasonCode::DpopTokenNotBound,
            Error::InvalidNotificationId => ReasonCode::InvalidNotificationId,
            Error::InvalidNotificationRequest(_) => ReasonCode::InvalidNotificationRequest,
            Error::CredentialRevoked => ReasonCode::Revoked,
            Error::StatusListFull => ReasonCode::StatusListFull,
            Error::NoFreeIndex => ReasonCode::NoFreeStatusIndex,
            Error::OfferNotFound => ReasonCode::OfferNotFound,
            Error::OfferUsedOrExpired => ReasonCode::OfferUsedOrExpired,
            Error::NotAwaitingApproval { .. } => ReasonCode::ApplicationNotAwaitingApproval,
            Error::VerifiedClaimChanged { .. } => ReasonCode::VerifiedClaimChanged,
            Error::ClaimsInvalid { .. } => ReasonCode::ClaimsInvalid,
            Error::Forbidden { .. } => ReasonCode::StaffForbidden,
            Error::UnknownName { .. } => ReasonCode::NameUnknown,
            Error::ReasonRequired { .. } => ReasonCode::ReasonRequired,
            Error::ReasonTooLong { .. } => ReasonCode::ReasonTooLong,
            Error::NotWithdrawable { .. } => ReasonCode::ApplicationNotWithdrawable,
            Error::StatusNotPublished { .. } => ReasonCode::StatusNotPublished,
            Error::ApplicationTypeUnknown { .. } => ReasonCode::ApplicationTypeUnknown,
            Error::RequestAnswered => ReasonCode::RequestAlreadyAnswered,
            // The wallet declined or failed (its error answer), not a malformed presentation.
            Error::BadPresentation(oid4vp::RequestError::WalletAnswered { .. }) => {
                ReasonCode::WalletErrorResponse
            }
            Error::BadPresentation(_) => ReasonCode::PresentationMalformed,
            Error::NoState => ReasonCode::NoState,
            Error::UnknownState => ReasonCode::UnknownState,
            Error::PresentationReplay => ReasonCode::PresentationReplay,
            Error::NoAwaitedNonce(_) => ReasonCode::ApplicationWithoutNonce,
            Error::NoHolderKey => ReasonCode::NoHolderKey,
            Error::Store(e) => e.code(),
            Error::Keys(_) => ReasonCode::KeyStoreFailed,
            Error::StatusList(e) => e.code(),
            Error::Issue(e) => e.code(),
            Error::Sign(_) => ReasonCode::SigningFailed,
            Error::Random(_) => ReasonCode::RandomnessFailed,
            Error::DidLog(_) => ReasonCode::DidLogInvalid,
            Error::NotInitialized => ReasonCode::NotInitialized,
            Error::AlreadyInitialized => ReasonCode::AlreadyInitialized,
            Error::Metadata(_) => ReasonCode::IssuerMetadataDamaged,
            Error::HttpClient(_) => ReasonCode::HttpClientFailed,
            Error::RegistryUnreachable(_) => ReasonCode::Unreachable,
            Error::RegistryRefused { .. } => ReasonCode::RegistryRefused,
            Error::Bundle(e) => e.code(),
            Error::UpstreamUnreachable(_) => ReasonCode::Unreachable,
            Error::UpstreamRefused(_) => ReasonCode::FeedUnreachable,
            Error::EventPage(e) => e.code(),
            Error::NoTrustBundle => ReasonCode::TrustBundleMissing,
            Error::UpstreamUnknown(_) => ReasonCode::IssuerUnknown,
            Error::CapabilityInvalid => ReasonCode::CapabilityInvalid,
            Error::ClaimsLocked { .. } => ReasonCode::ApplicationClaimsLocked,
            Error::ApplicantsThrottled => ReasonCode::ApplicationsThrottled,
            Error::ApplicantClaimNotAllowed { .. } => ReasonCode::ApplicantClaimNotAllowed,
        }
    }
}
