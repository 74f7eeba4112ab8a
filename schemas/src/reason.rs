//! One vocabulary of reason codes for every refusal in bizcred: schemas, core, verifier,
//! issuer, registry and wallet. Each error type's `code()` answers a [`ReasonCode`]; reports,
//! HTTP error bodies and `--json` output carry its `SCREAMING_SNAKE` spelling, and every code
//! has a human sentence. `REASONS.md` at the root of the repository is the table of every
//! code, generated from [`ReasonCode::markdown_table`] and checked by a test.

use std::fmt;

macro_rules! reasons {
    ($( $section:literal { $( $variant:ident = $code:literal, $components:literal, $sentence:literal; )* } )*) => {
        /// A stable reason code (see the module documentation).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $( $(
                #[doc = $sentence]
                $variant,
            )* )*
        }

        impl ReasonCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ReasonCode] = &[$( $( ReasonCode::$variant, )* )*];

            /// The code as reports and APIs spell it.
            pub const fn as_str(self) -> &'static str {
                match self { $( $( ReasonCode::$variant => $code, )* )* }
            }

            /// What the code means, as a sentence.
            pub const fn sentence(self) -> &'static str {
                match self { $( $( ReasonCode::$variant => $sentence, )* )* }
            }

            /// The components that emit it.
            pub const fn components(self) -> &'static str {
                match self { $( $( ReasonCode::$variant => $components, )* )* }
            }

            /// The table section the code belongs to.
            pub const fn section(self) -> &'static str {
                match self { $( $( ReasonCode::$variant => $section, )* )* }
            }
        }
    };
}

reasons! {
    "Identifiers and claim schemas (schemas)" {
        BnFormat = "BN_FORMAT", "schemas", "A business number is not nine digits.";
        BnCheckDigit = "BN_CHECK_DIGIT", "schemas", "A business number fails its check digit.";
        ProgramAccountFormat = "PROGRAM_ACCOUNT_FORMAT", "schemas", "A program account number is not nine digits, two letters and four digits.";
        ProgramAccountMismatch = "PROGRAM_ACCOUNT_MISMATCH", "schemas", "A program account belongs to another business number.";
        CorporationNumberFormat = "CORPORATION_NUMBER_FORMAT", "schemas", "A corporation number is not seven to ten digits.";
        PostalCodeFormat = "POSTAL_CODE_FORMAT", "schemas", "A postal code is not a Canadian postal code.";
        DateFormat = "DATE_FORMAT", "schemas", "A date is not a real calendar date of the form YYYY-MM-DD.";
        ExpiryNotAfterIssue = "EXPIRY_NOT_AFTER_ISSUE", "schemas", "A licence expires on or before the day it was issued.";
        SchemaRequired = "SCHEMA_REQUIRED", "schemas", "A claim the credential type requires is missing.";
        SchemaType = "SCHEMA_TYPE", "schemas", "A claim has the wrong JSON type.";
        SchemaPattern = "SCHEMA_PATTERN", "schemas", "A claim does not have the form its schema requires.";
        SchemaEnum = "SCHEMA_ENUM", "schemas", "A claim is not one of the values its schema allows.";
        SchemaConst = "SCHEMA_CONST", "schemas", "A claim differs from the one value its schema allows.";
        SchemaFormat = "SCHEMA_FORMAT", "schemas", "A claim is not in the format its schema names.";
        SchemaAdditionalProperties = "SCHEMA_ADDITIONAL_PROPERTIES", "schemas", "The claims include one the credential type does not define.";
        SchemaRange = "SCHEMA_RANGE", "schemas", "A number, string or list is outside the bounds of its schema.";
        SchemaViolation = "SCHEMA_VIOLATION", "schemas, verifier", "The claims break another rule of the credential type's schema.";
    }
    "Keys, JWS, DIDs (core)" {
        AlgNone = "ALG_NONE", "core, verifier", "The algorithm \"none\" is refused by name.";
        AlgSymmetric = "ALG_SYMMETRIC", "core, verifier", "A symmetric (HMAC) algorithm is refused: credentials need a public-key signature.";
        AlgUnsupported = "ALG_UNSUPPORTED", "core, verifier", "The algorithm is neither EdDSA nor ES256.";
        AlgKeyMismatch = "ALG_KEY_MISMATCH", "core, verifier", "The algorithm does not belong to the key.";
        KeyInvalid = "KEY_INVALID", "core", "A key is not a valid Ed25519 or P-256 key.";
        KeyTypeUnsupported = "KEY_TYPE_UNSUPPORTED", "core", "A key is of a type other than Ed25519 or P-256.";
        SigningFailed = "SIGNING_FAILED", "core, issuer, wallet, registry, verifier", "The signer could not sign.";
        MalformedJws = "MALFORMED_JWS", "core, verifier", "A JWS is not three base64url parts with a JSON header and payload.";
        UnknownCriticalHeader = "UNKNOWN_CRITICAL_HEADER", "core, verifier", "The JWS marks a header parameter critical that is not understood.";
        BadSignature = "BAD_SIGNATURE", "core, verifier", "The signature does not verify with the issuer's key.";
        TimeMalformed = "TIME_MALFORMED", "core", "A time is not a UTC timestamp of the form YYYY-MM-DDTHH:MM:SSZ.";
        KeyFileMalformed = "KEY_FILE_MALFORMED", "core, issuer, verifier, registry", "A sealed key file is damaged, is not a key file, or was sealed for another purpose.";
        KeyFileTooLarge = "KEY_FILE_TOO_LARGE", "core", "A sealed key file is larger than any key file.";
        WrongPassphrase = "WRONG_PASSPHRASE", "core, wallet, issuer, verifier, registry", "The passphrase is wrong, or the sealed file was altered.";
        DidUnsupportedMethod = "DID_UNSUPPORTED_METHOD", "core", "The DID method is not did:key, did:jwk or did:webvh.";
        DidInvalid = "DID_INVALID", "core", "The DID is not well formed.";
        DidUnsupportedKey = "DID_UNSUPPORTED_KEY", "core", "The DID names a key of an unsupported type.";
        DidUnknownFragment = "DID_UNKNOWN_FRAGMENT", "core", "The DID URL names a verification method the document does not have.";
        WebvhInvalidDid = "WEBVH_INVALID_DID", "core, wallet", "The did:webvh DID or its URL is not well formed.";
        WebvhInvalidLog = "WEBVH_INVALID_LOG", "core, registry", "A did:webvh log entry, its parameters, proof or witnesses do not verify.";
        WebvhNotFound = "WEBVH_NOT_FOUND", "core, wallet, registry", "The did:webvh DID or the requested version does not exist.";
        WebvhTooLarge = "WEBVH_TOO_LARGE", "core", "The did:webvh log is larger than the bound.";
        DataIntegrityProofInvalid = "DATA_INTEGRITY_PROOF_INVALID", "core", "A Data Integrity proof is malformed, of another cryptosuite or purpose, or does not verify.";
    }
    "SD-JWT and SD-JWT VC (core)" {
        SdJwtTooLarge = "SD_JWT_TOO_LARGE", "core, verifier", "The SD-JWT is larger than the bound.";
        SdJwtMalformed = "SD_JWT_MALFORMED", "core, verifier", "The SD-JWT is not issuer JWT, disclosures and key-binding JWT separated by tildes.";
        UnsupportedSdAlg = "UNSUPPORTED_SD_ALG", "core, verifier", "The _sd_alg is not sha-256.";
        DisclosureMalformed = "DISCLOSURE_MALFORMED", "core, verifier", "A disclosure is not base64url JSON.";
        DisclosureWrongShape = "DISCLOSURE_WRONG_SHAPE", "core, verifier", "A disclosure is not [salt, name, value] or [salt, value].";
        DisclosureNotReferenced = "DISCLOSURE_NOT_REFERENCED", "core, verifier", "A disclosure's digest is not in the signed payload (a changed or smuggled claim).";
        DuplicateDisclosure = "DUPLICATE_DISCLOSURE", "core, verifier", "The same disclosure is presented twice.";
        DuplicateDigest = "DUPLICATE_DIGEST", "core, verifier", "The same digest appears twice in the signed payload.";
        ReservedClaimName = "RESERVED_CLAIM_NAME", "core, verifier", "A disclosure names _sd, ... or _sd_alg.";
        ClaimNameCollision = "CLAIM_NAME_COLLISION", "core, verifier", "A disclosure would overwrite a claim already present.";
        SdPathNotFound = "SD_PATH_NOT_FOUND", "core", "An issuer asked to make disclosable a claim that is not there.";
        KbMissing = "KB_MISSING", "core, verifier", "The presentation has no key-binding JWT.";
        KbMalformed = "KB_MALFORMED", "core, verifier", "The key-binding JWT is not well formed.";
        KbWrongTyp = "KB_WRONG_TYP", "core, verifier", "The key-binding JWT's typ is not kb+jwt.";
        KbBadSignature = "KB_BAD_SIGNATURE", "core, verifier", "The key-binding JWT is not signed by the holder key bound to the credential.";
        KbNonceMismatch = "KB_NONCE_MISMATCH", "core, verifier", "The key-binding JWT does not carry the requested nonce.";
        KbAudienceMismatch = "KB_AUDIENCE_MISMATCH", "core, verifier", "The key-binding JWT is addressed to another verifier.";
        KbIatStale = "KB_IAT_STALE", "core, verifier", "The key-binding JWT is too old.";
        KbIatInFuture = "KB_IAT_IN_FUTURE", "core, verifier", "The key-binding JWT is dated in the future.";
        KbSdHashMismatch = "KB_SD_HASH_MISMATCH", "core, verifier", "The key-binding JWT's sd_hash does not cover this presentation.";
        NoHolderKey = "NO_HOLDER_KEY", "core, verifier, issuer, wallet", "There is no usable holder key (cnf.jwk, or the wallet's key).";
        WrongTyp = "WRONG_TYP", "core, verifier", "The credential's typ is not dc+sd-jwt.";
        MissingClaim = "MISSING_CLAIM", "core, verifier", "A required registered claim (iss, vct, iat, cnf) is missing.";
        RegisteredClaimDisclosable = "REGISTERED_CLAIM_DISCLOSABLE", "core, verifier", "A registered claim that must stay in the clear was selectively disclosable.";
        Expired = "EXPIRED", "core, verifier", "The credential is past its exp.";
        NotYetValid = "NOT_YET_VALID", "core, verifier", "The credential is before its nbf.";
        IssuedInFuture = "ISSUED_IN_FUTURE", "core, verifier", "The credential's iat is in the future.";
    }
    "Token Status List (core)" {
        StatusListMalformed = "STATUS_LIST_MALFORMED", "core, verifier, registry", "A status list token is not a well-formed Token Status List.";
        StatusListSignatureInvalid = "STATUS_LIST_SIGNATURE_INVALID", "core, verifier", "A status list token's signature does not verify.";
        StatusListWrongUri = "STATUS_LIST_WRONG_URI", "core, verifier", "A status list token's sub is not the URI it was fetched for.";
        StatusExpired = "STATUS_EXPIRED", "core, verifier", "The status list is past its exp.";
        StatusIndexOutOfRange = "STATUS_INDEX_OUT_OF_RANGE", "core, verifier", "The credential's status index is outside its list.";
        StatusListCompressionFailed = "STATUS_LIST_COMPRESSION_FAILED", "core, issuer", "The status list could not be compressed (it is never signed empty).";
    }
    "Trust registry data (core)" {
        EntryMalformed = "ENTRY_MALFORMED", "core, registry", "A governance entry is not well formed.";
        EntryWrongRegistry = "ENTRY_WRONG_REGISTRY", "core, registry", "A governance entry names another registry.";
        EntryBadSignature = "ENTRY_BAD_SIGNATURE", "core, registry", "A governance entry's signature does not verify.";
        EntryNotAuthority = "ENTRY_NOT_AUTHORITY", "core, registry", "A governance entry is not signed by an authority key.";
        EntryDuplicate = "ENTRY_DUPLICATE", "core, registry", "The entry is already in the log (or the issuer already registered).";
        EntryGenesis = "ENTRY_GENESIS", "core, registry", "A genesis entry is missing, repeated or misplaced.";
        EntryReference = "ENTRY_REFERENCE", "core, registry", "A governance entry names an issuer or type the registry does not hold.";
        EntryDidLog = "ENTRY_DID_LOG", "core, registry", "The mirrored did:webvh lines do not verify as the next entries of the issuer's log.";
        EntryTooLarge = "ENTRY_TOO_LARGE", "core, registry", "A governance entry is larger than the bound.";
        MerkleProofInvalid = "MERKLE_PROOF_INVALID", "core", "A Merkle inclusion or consistency proof has the wrong length or does not lead to the root.";
        NoteMalformed = "NOTE_MALFORMED", "core", "A signed note (checkpoint) is not well formed.";
        NoteNotSigned = "NOTE_NOT_SIGNED", "core", "A signed note carries no valid signature by the expected key.";
        CheckpointInvalid = "CHECKPOINT_INVALID", "core, verifier", "The checkpoint is malformed or not signed by the pinned log key.";
        BundleMalformed = "BUNDLE_MALFORMED", "core, verifier", "The trust bundle is not well formed or larger than the bound.";
        BundleWrongRegistry = "BUNDLE_WRONG_REGISTRY", "core, verifier", "The trust bundle comes from another registry than the pinned one.";
        BundleBadSignature = "BUNDLE_BAD_SIGNATURE", "core, verifier", "The trust bundle is not signed by the pinned log key.";
        BundleOlder = "BUNDLE_OLDER", "core, verifier", "The trust bundle is older than the state held (kept the newer one).";
        RegistryEquivocation = "REGISTRY_EQUIVOCATION", "core, verifier", "The registry signed two different histories (fork evidence kept).";
        BundleGap = "BUNDLE_GAP", "core, verifier", "The trust bundle does not continue from the state held.";
        BundleInconsistent = "BUNDLE_INCONSISTENT", "core, verifier", "The trust bundle's consistency proof does not verify.";
        BundleCorrupt = "BUNDLE_CORRUPT", "core, verifier", "The trust bundle's entries do not hash to its checkpoint.";
        BundleEntryInvalid = "BUNDLE_ENTRY_INVALID", "core, verifier", "An entry of the trust bundle does not apply.";
        BundleTimeInvalid = "BUNDLE_TIME_INVALID", "core, verifier", "The trust bundle's time is malformed or in the future.";
        IssuerUnknown = "ISSUER_UNKNOWN", "core, verifier", "The issuer is not registered.";
        IssuerNotAuthorized = "ISSUER_NOT_AUTHORIZED", "core, verifier", "The issuer is not authorized for this credential type at the proof time.";
        KeyNotValidAtProofTime = "KEY_NOT_VALID_AT_PROOF_TIME", "core, verifier", "The signing key was not in the issuer's DID at the proof time.";
        IssuerDidDeactivated = "ISSUER_DID_DEACTIVATED", "core, verifier", "The issuer's DID is deactivated.";
        KeyCompromised = "KEY_COMPROMISED", "core, verifier", "The signing key was declared compromised before the proof time.";
        KeyCompromisedPredated = "KEY_COMPROMISED_PREDATED", "core, verifier", "The signing key's compromise may predate the proof time (undecided).";
        RecognitionNotInForce = "RECOGNITION_NOT_IN_FORCE", "core, verifier, registry", "The other registry's authority is not recognized for this credential type at that time (never for this type, revoked, or outside the recognition's validity).";
        BundleRecognizedInvalid = "BUNDLE_RECOGNIZED_INVALID", "core, verifier, registry", "A recognized registry's bundle does not verify against the anchor its recognition pins (or no recognition names its authority).";
    }
    "Trust registry service and TRQP (registry, verifier)" {
        RequestInvalid = "REQUEST_INVALID", "registry, repository", "The request is not well formed: not JSON, or a member missing, empty or of the wrong type (TRQP: action and resource non-empty, context an object of strings, context.time an RFC 3339 UTC time).";
        RequestTooLarge = "REQUEST_TOO_LARGE", "registry", "The request body is larger than the endpoint accepts.";
        MediaTypeUnsupported = "MEDIA_TYPE_UNSUPPORTED", "registry", "The request's Content-Type is not the one the endpoint takes (application/json).";
        PathNotFound = "PATH_NOT_FOUND", "registry", "The service has no endpoint at this path.";
        MethodNotAllowed = "METHOD_NOT_ALLOWED", "registry", "The endpoint does not take this HTTP method.";
        InternalError = "INTERNAL_ERROR", "registry", "The service failed unexpectedly (it logged why); nothing was changed.";
        AdminTokenMissing = "ADMIN_TOKEN_MISSING", "registry", "The request needs a bearer admin token.";
        AdminTokenInvalid = "ADMIN_TOKEN_INVALID", "registry", "The bearer token is not an admin token of this registry.";
        TrqpAuthorityUnknown = "TRQP_AUTHORITY_UNKNOWN", "registry", "The TRQP query names an authority this registry does not answer for.";
        TrqpEntityUnknown = "TRQP_ENTITY_UNKNOWN", "registry", "The TRQP query names an entity the authority has no statement about (no such registered issuer, no such recognized authority).";
        TrqpActionUnknown = "TRQP_ACTION_UNKNOWN", "registry", "The TRQP query names an action the authority does not define (issue for authorization, recognize for recognition).";
        TrqpResourceUnknown = "TRQP_RESOURCE_UNKNOWN", "registry", "The TRQP query names a resource (credential type) the authority does not define.";
        AuthorityDidMissing = "AUTHORITY_DID_MISSING", "registry", "The registry has no authority DID yet (bizcred-registry authority-did creates it).";
        RecognitionNotAccepted = "RECOGNITION_NOT_ACCEPTED", "verifier", "The issuer is authorized through a recognized registry, which the policy does not accept.";
    }
    "Protocol messages (core)" {
        OfferMalformed = "OFFER_MALFORMED", "core, wallet", "A credential offer is not a well-formed OpenID4VCI offer.";
        KeyProofInvalid = "KEY_PROOF_INVALID", "core, issuer", "The OpenID4VCI key proof is not well formed.";
        KeyProofNoNonce = "KEY_PROOF_NO_NONCE", "core, issuer", "The OpenID4VCI key proof carries no nonce.";
        RequestMalformed = "REQUEST_MALFORMED", "core, wallet, verifier", "An OpenID4VP request or response is not well formed.";
        WalletErrorResponse = "WALLET_ERROR_RESPONSE", "core, issuer", "The wallet answered an OpenID4VP request with an error instead of a presentation.";
    }
    "Verification (verifier)" {
        PresentationTooLarge = "PRESENTATION_TOO_LARGE", "verifier", "The presentation is larger than the bound.";
        MalformedPresentation = "MALFORMED_PRESENTATION", "verifier", "The vp_token is not a JSON object of presentations by query id.";
        UnexpectedPresentations = "UNEXPECTED_PRESENTATIONS", "verifier", "The vp_token answers queries that were not asked.";
        CredentialMissing = "CREDENTIAL_MISSING", "verifier", "A credential the policy requires was not presented.";
        WrongCredentialType = "WRONG_CREDENTIAL_TYPE", "verifier", "A signed credential is of another type than the query asked.";
        AlgNotAccepted = "ALG_NOT_ACCEPTED", "verifier", "The algorithm is valid but not accepted by the policy.";
        RequiredClaimNotDisclosed = "REQUIRED_CLAIM_NOT_DISCLOSED", "verifier", "A claim the policy requires was not disclosed.";
        ClaimValueNotAccepted = "CLAIM_VALUE_NOT_ACCEPTED", "verifier", "A disclosed claim has a value the policy does not accept.";
        LicenceNotYetValid = "LICENCE_NOT_YET_VALID", "verifier", "The licence's issue date is in the future.";
        LicenceExpired = "LICENCE_EXPIRED", "verifier", "The licence's expiry date has passed.";
        Revoked = "REVOKED", "verifier", "The credential is revoked.";
        Suspended = "SUSPENDED", "verifier", "The credential is suspended.";
        StatusUnknownValue = "STATUS_UNKNOWN_VALUE", "verifier", "The status list holds a value that means neither valid, revoked nor suspended.";
        StatusStale = "STATUS_STALE", "verifier", "The status list is older than the freshness limit (undecided; last known decision given).";
        StatusUnavailable = "STATUS_UNAVAILABLE", "verifier", "No status list for the credential is held (undecided).";
        RegistryStale = "REGISTRY_STALE", "verifier", "The registry data is older than the freshness limit (undecided; last known decision given).";
        TrustBundleMissing = "TRUST_BUNDLE_MISSING", "verifier", "No trust bundle has been imported (undecided).";
        TrustBundleExpired = "TRUST_BUNDLE_EXPIRED", "verifier", "The trust bundle is past its validity (undecided).";
        ClockUntrusted = "CLOCK_UNTRUSTED", "verifier", "The verifier's clock is earlier than data it holds (undecided).";
        BusinessMismatch = "BUSINESS_MISMATCH", "verifier", "The credentials are about different business numbers.";
        PremisesMismatch = "PREMISES_MISMATCH", "verifier", "The licences are for different premises.";
        LegalNameMismatch = "LEGAL_NAME_MISMATCH", "verifier", "The credentials name different legal names.";
        HolderMismatch = "HOLDER_MISMATCH", "verifier", "The credentials are bound to different holder keys.";
        PolicyInvalid = "POLICY_INVALID", "verifier", "A verification policy is not valid (its sentence names the setting).";
        TooManyPending = "TOO_MANY_PENDING", "verifier", "As many requests as allowed are already waiting for an answer.";
    }
    "Services and storage (issuer, registry, verifier, wallet)" {
        IoError = "IO_ERROR", "verifier, registry", "A file could not be read or written.";
        NotInitialized = "NOT_INITIALIZED", "verifier, registry, issuer, wallet", "There is nothing here yet (run init first).";
        AlreadyInitialized = "ALREADY_INITIALIZED", "verifier, registry, issuer, wallet", "Init was asked where one already exists.";
        ConfigInvalid = "CONFIG_INVALID", "registry, issuer, verifier", "A configuration file or setting is missing or wrong.";
        StoreCorrupt = "STORE_CORRUPT", "verifier, registry, issuer", "Stored data does not decode as what was written.";
        StorageFailed = "STORAGE_FAILED", "registry, issuer, verifier, wallet", "The storage engine failed.";
        StorageConflict = "STORAGE_CONFLICT", "registry", "A write raced another writer (nothing was written).";
        DatabaseNotMigrated = "DATABASE_NOT_MIGRATED", "registry, issuer, verifier", "The database lacks migrations of this binary (run its migrate command); nothing is served.";
        DatabaseSchemaNewer = "DATABASE_SCHEMA_NEWER", "registry, issuer, verifier", "The database was migrated by a newer binary; this one does not serve it.";
        DatabaseSchemaMismatch = "DATABASE_SCHEMA_MISMATCH", "registry, issuer, verifier", "An applied database migration differs from this binary's, or failed half-way.";
        StorageMoved = "STORAGE_MOVED", "registry, issuer", "The embedded store was moved to PostgreSQL; serving it would fork its data.";
        StorageNotEmpty = "STORAGE_NOT_EMPTY", "registry, issuer", "The target storage already holds other data (nothing was written).";
        MoveVerifyFailed = "MOVE_VERIFY_FAILED", "registry, issuer, verifier", "The moved data does not match the original (a log: the same state and checkpoint; an issuer's records, lists and audit chain: the same digests; receipts: the same documents).";
        StoreLockPoisoned = "STORE_LOCK_POISONED", "issuer", "A storage lock was poisoned by a failure elsewhere.";
        StoreEncodingFailed = "STORE_ENCODING_FAILED", "issuer", "A record could not be encoded (nothing was written).";
        CommitUnfinished = "COMMIT_UNFINISHED", "issuer", "A group commit ended without an outcome for this write.";
        NotFound = "NOT_FOUND", "issuer", "The record does not exist.";
        OutOfRange = "OUT_OF_RANGE", "registry", "An index or size is outside the log.";
        DidLogEmpty = "DID_LOG_EMPTY", "registry", "The agency's did:webvh log has no entry.";
        DidLogInvalid = "DID_LOG_INVALID", "issuer", "The agency's own did:webvh log does not verify.";
        HttpClientFailed = "HTTP_CLIENT_FAILED", "issuer, wallet", "The HTTP client could not be built (no fallback client is used).";
        Unreachable = "UNREACHABLE", "issuer, wallet, verifier", "A service could not be reached.";
        HttpError = "HTTP_ERROR", "wallet, verifier", "A service answered with an HTTP error.";
        RegistryRefused = "REGISTRY_REFUSED", "issuer", "The registry refused a submission.";
        RandomnessFailed = "RANDOMNESS_FAILED", "issuer", "The system's random number generator failed.";
    }
    "Issuance (issuer)" {
        NoGrantType = "NO_GRANT_TYPE", "issuer", "The token request has no grant_type.";
        UnsupportedGrantType = "UNSUPPORTED_GRANT_TYPE", "issuer", "The grant type is not the pre-authorized code.";
        NoPreAuthorizedCode = "NO_PRE_AUTHORIZED_CODE", "issuer, wallet", "The pre-authorized code is missing.";
        NoTxCode = "NO_TX_CODE", "issuer", "The transaction code is missing.";
        TxCodeRequired = "TX_CODE_REQUIRED", "wallet", "The offer needs a transaction code (--tx-code).";
        UnknownPreAuthorizedCode = "UNKNOWN_PRE_AUTHORIZED_CODE", "issuer", "The pre-authorized code is unknown.";
        PreAuthorizedCodeUsedOrExpired = "PRE_AUTHORIZED_CODE_USED_OR_EXPIRED", "issuer", "The pre-authorized code was used or has expired.";
        WrongTxCode = "WRONG_TX_CODE", "issuer", "The transaction code is wrong.";
        InvalidAccessToken = "INVALID_ACCESS_TOKEN", "issuer", "The access token is unknown or expired.";
        AccessTokenUsed = "ACCESS_TOKEN_USED", "issuer", "The access token has already obtained its credential.";
        InvalidCredentialRequest = "INVALID_CREDENTIAL_REQUEST", "issuer", "The credential request is not well formed.";
        UnknownCredentialConfiguration = "UNKNOWN_CREDENTIAL_CONFIGURATION", "issuer", "The credential configuration is not one of this issuer's.";
        InvalidProof = "INVALID_PROOF", "issuer", "The key proof is not valid.";
        ProofRefused = "PROOF_REFUSED", "issuer", "The key proof is refused (typ, alg, audience, time or key).";
        InvalidNonce = "INVALID_NONCE", "issuer", "The key proof's nonce is unknown or used.";
        StatusListFull = "STATUS_LIST_FULL", "issuer", "The status list has no free index left.";
        NoFreeStatusIndex = "NO_FREE_STATUS_INDEX", "issuer", "No unused status index could be drawn.";
        StatusIndexTaken = "STATUS_INDEX_TAKEN", "issuer", "The status index is already in use (never reused).";
        StatusListNotNewer = "STATUS_LIST_NOT_NEWER", "issuer", "A status list older than the last signed one was not stored.";
        RevokedIsFinal = "REVOKED_IS_FINAL", "issuer", "A revoked credential cannot change status again.";
        OfferNotFound = "OFFER_NOT_FOUND", "issuer", "The credential offer does not exist.";
        OfferUsedOrExpired = "OFFER_USED_OR_EXPIRED", "issuer", "The credential offer was used or has expired.";
        ApplicationNotAwaitingApproval = "APPLICATION_NOT_AWAITING_APPROVAL", "issuer", "The application is not waiting for approval.";
        ApplicationTypeUnknown = "APPLICATION_TYPE_UNKNOWN", "issuer, wallet", "The application names a credential type this agency does not issue.";
        VerifiedClaimChanged = "VERIFIED_CLAIM_CHANGED", "issuer", "A claim verified from a prerequisite credential cannot be changed.";
        ClaimsInvalid = "CLAIMS_INVALID", "issuer", "The claims break the credential type's schema.";
        RequestAlreadyAnswered = "REQUEST_ALREADY_ANSWERED", "issuer", "The prerequisite request was already answered.";
        PresentationMalformed = "PRESENTATION_MALFORMED", "issuer", "The prerequisite presentation is not well formed.";
        NoState = "NO_STATE", "issuer", "The response has no state.";
        UnknownState = "UNKNOWN_STATE", "issuer, verifier", "The response's state names no open request.";
        PresentationReplay = "PRESENTATION_REPLAY", "issuer", "The presentation was already used.";
        ApplicationWithoutNonce = "APPLICATION_WITHOUT_NONCE", "issuer", "The application has no open presentation request.";
        KeyStoreFailed = "KEY_STORE_FAILED", "issuer", "The issuer's keys could not be read or written.";
        IssuerMetadataDamaged = "ISSUER_METADATA_DAMAGED", "issuer", "The issuer's stored metadata is damaged.";
        StaffForbidden = "STAFF_FORBIDDEN", "issuer, verifier, web", "The staff member's role does not allow this action.";
        NameUnknown = "NAME_UNKNOWN", "issuer", "A staff role, application state or status action is not one the issuer knows.";
        ReasonRequired = "REASON_REQUIRED", "issuer", "This action needs a reason (refuse, request changes, withdraw, revoke, suspend).";
        ReasonTooLong = "REASON_TOO_LONG", "issuer", "A reason or note is longer than the issuer keeps.";
        ApplicationChanged = "APPLICATION_CHANGED", "issuer", "The application kept changing while the action was taken; reload it and try again.";
        ApplicationNotWithdrawable = "APPLICATION_NOT_WITHDRAWABLE", "issuer", "The application can no longer be withdrawn: an offer was made or it was decided.";
        CapabilityInvalid = "CAPABILITY_INVALID", "issuer", "The application link is not valid: no application of this agency answers to it.";
        ApplicationsThrottled = "APPLICATIONS_THROTTLED", "issuer", "The agency opens as many applications per minute as it allows; try again in a minute.";
        ApplicationClaimsLocked = "APPLICATION_CLAIMS_LOCKED", "issuer", "The applicant can change the claims only while the application waits for its prerequisites or after the agency asked for changes.";
        ApplicantClaimNotAllowed = "APPLICANT_CLAIM_NOT_ALLOWED", "issuer", "The applicant may not state this claim: the agency sets it or a verified prerequisite credential provides it.";
        StatusNotPublished = "STATUS_NOT_PUBLISHED", "issuer", "The status change is recorded, but its status list could not be signed in time; the next re-sign publishes it.";
    }
    "Sender-constrained tokens (DPoP, RFC 9449) and notifications (core, issuer)" {
        DpopProofMalformed = "DPOP_PROOF_MALFORMED", "core, issuer", "The DPoP proof is not one JWT of typ dpop+jwt with a public jwk header (of its alg) and the claims jti, htm, htu and iat.";
        DpopProofBadSignature = "DPOP_PROOF_BAD_SIGNATURE", "core, issuer", "The DPoP proof's signature does not verify with the key in its header.";
        DpopHtmMismatch = "DPOP_HTM_MISMATCH", "core, issuer", "The DPoP proof is for another HTTP method (htm) than the request's.";
        DpopHtuMismatch = "DPOP_HTU_MISMATCH", "core, issuer", "The DPoP proof is for another URL (htu) than the request's.";
        DpopIatOutsideWindow = "DPOP_IAT_OUTSIDE_WINDOW", "core, issuer", "The DPoP proof is too old or dated too far ahead (iat).";
        DpopAthMismatch = "DPOP_ATH_MISMATCH", "core, issuer", "The DPoP proof's ath is missing or is not the hash of the access token presented with it.";
        DpopProofMissing = "DPOP_PROOF_MISSING", "issuer", "The access token is presented with the DPoP scheme but the request has no DPoP proof (one DPoP header).";
        DpopProofReplayed = "DPOP_PROOF_REPLAYED", "issuer", "The DPoP proof (its jti) was already used.";
        DpopNonceMissing = "DPOP_NONCE_MISSING", "issuer", "The DPoP proof carries no nonce; the issuer requires the one it supplies in the DPoP-Nonce header.";
        DpopNonceInvalid = "DPOP_NONCE_INVALID", "issuer", "The DPoP proof's nonce is not one the issuer supplied, or was used or has expired; a fresh one is in the DPoP-Nonce header.";
        DpopKeyMismatch = "DPOP_KEY_MISMATCH", "issuer", "The DPoP proof is signed with another key than the one the access token is bound to.";
        DpopTokenAsBearer = "DPOP_TOKEN_AS_BEARER", "issuer", "A DPoP-bound access token was presented as a bearer token.";
        DpopTokenNotBound = "DPOP_TOKEN_NOT_BOUND", "issuer", "An access token bound to no DPoP key was presented with the DPoP scheme.";
        InvalidNotificationId = "INVALID_NOTIFICATION_ID", "issuer", "The notification_id is not the one of the credential issued with this access token.";
        InvalidNotificationRequest = "INVALID_NOTIFICATION_REQUEST", "issuer", "The notification request is malformed: notification_id, event (credential_accepted, credential_failure, credential_deleted) or event_description.";
    }
    "Wallet (wallet)" {
        ResponseTooLarge = "RESPONSE_TOO_LARGE", "wallet", "A service's answer is larger than the bound.";
        BadResponse = "BAD_RESPONSE", "wallet", "A service's answer is not the JSON it should be.";
        TokenRefused = "TOKEN_REFUSED", "wallet", "The issuer refused the token request.";
        BadIssuerMetadata = "BAD_ISSUER_METADATA", "wallet", "The issuer's metadata is not usable.";
        NoCredential = "NO_CREDENTIAL", "wallet", "The issuer's answer holds no credential.";
        CredentialDoesNotVerify = "CREDENTIAL_DOES_NOT_VERIFY", "wallet", "The received credential does not verify with the issuer's key (nothing stored).";
        CredentialNotBound = "CREDENTIAL_NOT_BOUND", "wallet", "The received credential is not bound to the wallet's key (nothing stored).";
        CredentialSchema = "CREDENTIAL_SCHEMA", "wallet", "The received credential breaks its type's schema (nothing stored).";
        BadCredential = "BAD_CREDENTIAL", "wallet", "The received credential is not usable (nothing stored).";
        DidResolution = "DID_RESOLUTION", "wallet", "The issuer's DID could not be resolved.";
        HolderKeyDamaged = "HOLDER_KEY_DAMAGED", "wallet", "The wallet's holder key is damaged.";
        RequestSignature = "REQUEST_SIGNATURE", "core, wallet", "The verifier's request object is not signed by its client id's key.";
        UnsupportedFormat = "UNSUPPORTED_FORMAT", "wallet", "The request asks for a credential format the wallet does not hold.";
        NoMatchingCredential = "NO_MATCHING_CREDENTIAL", "wallet", "The wallet holds no credential that answers the request (nothing sent).";
        NoResponseUri = "NO_RESPONSE_URI", "wallet", "The request has no response_uri.";
        StoredCredentialDamaged = "STORED_CREDENTIAL_DAMAGED", "wallet", "A stored credential is damaged.";
        UnknownCredential = "UNKNOWN_CREDENTIAL", "wallet", "The wallet holds no credential with this id.";
        StatusList = "STATUS_LIST", "wallet", "A credential's status list could not be fetched or verified.";
        BackupDamaged = "BACKUP_DAMAGED", "wallet", "The backup is damaged, too large or not a wallet backup.";
        WalletLocked = "WALLET_LOCKED", "wallet", "The wallet's store is in use by another process.";
        KdfFailed = "KDF_FAILED", "core, wallet", "The passphrase could not be stretched into a key.";
        EncryptionFailed = "ENCRYPTION_FAILED", "core, wallet", "A record could not be encrypted (nothing was stored).";
        RecordDamaged = "RECORD_DAMAGED", "wallet", "A stored record is damaged.";
        ReceiveExpired = "RECEIVE_EXPIRED", "wallet", "An interrupted receive cannot be resumed: its access token has expired (nothing stored).";
        NoPendingReceive = "NO_PENDING_RECEIVE", "wallet", "There is no interrupted receive to resume.";
        AgencyUrlInvalid = "AGENCY_URL_INVALID", "wallet", "The agency URL is not https:// (or plain HTTP on localhost), or carries a query, fragment or credentials.";
        UnknownApplication = "UNKNOWN_APPLICATION", "wallet", "The wallet keeps no application with this id.";
        ApplicationAmbiguous = "APPLICATION_AMBIGUOUS", "wallet", "The agency's application id names applications at several agencies; use the wallet's id.";
        TooManyApplications = "TOO_MANY_APPLICATIONS", "wallet", "The wallet keeps as many applications as it may, all still open (nothing was sent).";
    }
    "Staff pages (web)" {
        LoginFailed = "LOGIN_FAILED", "web", "The account name or password is wrong, or the account is disabled.";
        LoginThrottled = "LOGIN_THROTTLED", "web", "Too many failed sign-ins for this account or address: wait before trying again.";
        SessionRequired = "SESSION_REQUIRED", "web", "The page needs a signed-in session, and there is none or it has expired.";
        CsrfRejected = "CSRF_REJECTED", "web", "A form was posted without the token of the session that served it.";
        FormTooLarge = "FORM_TOO_LARGE", "web", "A form is larger than the page accepts.";
        FormInvalid = "FORM_INVALID", "web", "A form is not URL-encoded text, or a field is missing or repeated.";
        AccountExists = "ACCOUNT_EXISTS", "web", "A staff account with this name exists already.";
        AccountUnknown = "ACCOUNT_UNKNOWN", "web", "There is no staff account with this name.";
        AccountName = "ACCOUNT_NAME", "web", "An account name is 1 to 64 lower-case letters, digits, dots, dashes or underscores.";
        AccountRole = "ACCOUNT_ROLE", "web", "The role is not one this service has.";
        PasswordWeak = "PASSWORD_WEAK", "web", "A password must be 12 to 1024 characters long.";
        AccountsFile = "ACCOUNTS_FILE", "web", "The staff accounts file could not be read or written (nothing changed).";
        TooManyAccounts = "TOO_MANY_ACCOUNTS", "web", "The service holds the most staff accounts it allows.";
        PageNotFound = "PAGE_NOT_FOUND", "web", "There is no such page.";
        PageFailed = "PAGE_FAILED", "web", "The page could not be produced (the service logged why; nothing was changed by the page itself).";
    }
    "Public records: bulk issuance and the repository (issuer, repository)" {
        PublicRecordChanged = "PUBLIC_RECORD_CHANGED", "issuer", "A business's public credential was replaced by another run meanwhile: nothing of the batch was written.";
        ExtractLineInvalid = "EXTRACT_LINE_INVALID", "issuer", "A registry extract line is not a JSON object of the documented members (it was skipped).";
        ExtractPersonalData = "EXTRACT_PERSONAL_DATA", "issuer", "A registry extract line carries personal data (directors), which public credentials never hold (it was skipped).";
        ExtractDuplicate = "EXTRACT_DUPLICATE", "issuer", "A corporation number appears twice in one extract (the later line was skipped).";
        ExtractAmalgamation = "EXTRACT_AMALGAMATION", "issuer", "An amalgamated corporation does not name the corporation it amalgamated into, or a corporation that is not amalgamated names one.";
        PublicRecordHolderBound = "PUBLIC_RECORD_HOLDER_BOUND", "verifier, repository", "The credential is bound to a holder's key: it is a business's own credential, not a public record.";
        PublicRecordRefused = "PUBLIC_RECORD_REFUSED", "repository", "The credential is not a public record the repository can hold: not an SD-JWT VC, or it names no corporation or business number, or it has no status list entry.";
        PublicRecordTooLarge = "PUBLIC_RECORD_TOO_LARGE", "repository", "A credential or a batch pushed to the repository is larger than the repository accepts.";
        SearchQueryInvalid = "SEARCH_QUERY_INVALID", "repository", "The search query is empty after normalization, too long, or a filter has an unknown value.";
        BusinessNotFound = "BUSINESS_NOT_FOUND", "repository", "The repository holds no public credential about this business.";
        RepositoryBusy = "REPOSITORY_BUSY", "repository", "The repository is verifying another push; push again in a moment (it verifies one at a time).";
        FeedUnreachable = "FEED_UNREACHABLE", "repository", "An issuer's public feed could not be read (the repository keeps what it holds).";
    }
    "Agency events: the signed event feed and its subscribers (issuer)" {
        EventPageMalformed = "EVENT_PAGE_MALFORMED", "issuer", "An event page is not a compact JWS of type bizcred-events+jwt with the documented members, or is larger than a subscriber accepts.";
        EventPageWrongIssuer = "EVENT_PAGE_WRONG_ISSUER", "issuer", "An event page names, or is signed by, an issuer other than the one subscribed to.";
        EventPageStale = "EVENT_PAGE_STALE", "issuer", "An event page was signed too long ago, or is dated ahead of the clock, to say what the issuer holds now.";
        EventPageReplayed = "EVENT_PAGE_REPLAYED", "issuer", "An event page answers a position before the subscriber's cursor: events already taken are not taken twice.";
        EventPageGap = "EVENT_PAGE_GAP", "issuer", "An event page starts after the subscriber's cursor, skips a position, or ends elsewhere than its last event: events would be missed.";
        EventOutOfOrder = "EVENT_OUT_OF_ORDER", "issuer", "An event page's events are not in increasing order of position.";
    }
    "The founder's single window (portal)" {
        ApplicantApiMalformed = "APPLICANT_API_MALFORMED", "portal", "An agency's answer is not its applicant API's (not the documented JSON, too large, or another agency's).";
        NoAgencyForType = "NO_AGENCY_FOR_TYPE", "portal", "No registered agency is authorized for this credential type in the trust bundle held.";
        PortalApplicationsFull = "PORTAL_APPLICATIONS_FULL", "portal", "This session holds the most applications the portal keeps for one session.";
        PortalSessionsFull = "PORTAL_SESSIONS_FULL", "portal", "The portal holds as many founders' sessions as it may, each with applications: no new session begins until one ends.";
    }
}

impl ReasonCode {
    /// The code spelled `s`, if it is one.
    pub fn parse(s: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The Markdown table of every code (`REASONS.md`).
    pub fn markdown_table() -> String {
        let mut out = String::from(
            "# Reason codes\n\nEvery refusal in bizcred carries one of these codes (`--json` output, \
             verification reports, HTTP error bodies' `code`, receipts). Generated from \
             `bizcred_schemas::ReasonCode`: `cargo test -p bizcred-tests --test reasons` fails when \
             this file and the code differ, or when a code is emitted nowhere; \
             `BIZCRED_BLESS=1 cargo test -p bizcred-tests --test reasons` rewrites it.\n",
        );
        let mut section = "";
        for c in ReasonCode::ALL {
            if c.section() != section {
                section = c.section();
                out.push_str(&format!(
                    "\n## {section}\n\n| code | emitted by | meaning |\n|---|---|---|\n"
                ));
            }
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                c.as_str(),
                c.components(),
                c.sentence()
            ));
        }
        out
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ReasonCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ReasonCode, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ReasonCode::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reason code {s}")))
    }
}

impl PartialEq<&str> for ReasonCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_screaming_snake_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ReasonCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{s} is not SCREAMING_SNAKE"
            );
            assert_eq!(ReasonCode::parse(s), Some(*c));
            assert!(c.sentence().ends_with('.'), "{s}");
            let json = serde_json::to_string(c).expect("json");
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<ReasonCode>(&json).expect("back"), *c);
        }
        assert!(serde_json::from_str::<ReasonCode>("\"NOT_A_CODE\"").is_err());
    }
}
