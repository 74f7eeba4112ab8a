//! The registry operator's commands as library calls: create a registry in a data directory,
//! open it, build the governance entries of `onboard`, `authorize`, `suspend` and
//! `declare-compromise`, submit them (to the data directory or to a running registry, as one
//! batch), and summarise the state. The binary parses arguments, gets the passphrase and
//! prints; time and randomness are passed in.
//!
//! ```text
//! registry.json   origin, SHA-256 of the admin tokens
//! authority.key   signs governance entries (sealed with the operator's passphrase)
//! log.key         signs checkpoints and bundles (sealed likewise)
//! authority-did.key        the update key of the authority's did:webvh DID (sealed likewise)
//! authority.did.jsonl      the authority's did:webvh log (served at its DID's location)
//! db/             the sled store: entries and status lists (unless the log is on PostgreSQL)
//! ```
//!
//! With [`Storage::Postgres`], the entries and status lists live in a PostgreSQL database
//! shared by every instance, and each instance's data directory holds only the
//! configuration and keys. [`DataDir::move_to_postgres`] moves a sled registry's log there.

use std::path::{Path, PathBuf};

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use bizcred_core::data_integrity::ProofError;
use bizcred_core::keyfile::{self, KdfParams, KeyFileError};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::bundle::TrustAnchor;
use bizcred_core::trust::entry::build::{self, RecognitionTerms};
use bizcred_core::webvh;
use bizcred_core::ReasonCode;
use bizcred_schemas::CredentialType;

use crate::store::pg::PgStore;
use crate::store::{SledStore, Store, StoreError};
use crate::{Registry, RegistryError};

/// A registry over whichever store the directory holds.
pub type AnyRegistry = Registry<Box<dyn Store>>;

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No registry here yet.
    #[error("{0} holds no registry")]
    NotInitialized(PathBuf),
    /// `init` where a registry exists.
    #[error("{0} already holds a registry")]
    AlreadyInitialized(PathBuf),
    /// `registry.json` does not parse.
    #[error("{path} is not a registry configuration: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// An admin token hash in `registry.json` is not 64 hex digits.
    #[error("{0}: an admin token hash is not 64 hexadecimal digits")]
    TokenHash(PathBuf),
    /// A key file could not be opened.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: KeyFileError,
    },
    /// An entry could not be signed.
    #[error("signing the entry: {0}")]
    Sign(#[from] ProofError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The agency's did:webvh log does not verify.
    #[error("the agency's did:webvh log does not verify: {0}")]
    DidLog(#[source] webvh::WebvhError),
    /// The agency's did:webvh log has no entry.
    #[error("the agency's did:webvh log is empty")]
    EmptyDidLog,
    /// The target storage holds another log (`init`, or `migrate --from` onto a database that
    /// holds a different log); nothing was written.
    #[error("{0} already holds a registry log; nothing was written")]
    StorageNotEmpty(String),
    /// A PostgreSQL database that holds no log, for a data directory that has a registry.
    #[error(
        "{database} holds no registry log{}",
        if *sled { "; this data directory's log is still on sled (move it with migrate --from)" } else { "" }
    )]
    DatabaseEmpty {
        /// The database, without its password.
        database: String,
        /// Whether the data directory has a sled store (whose log was not moved).
        sled: bool,
    },
    /// The moved log does not replay to what the original does.
    #[error("the log moved to PostgreSQL does not match the sled store: {0}")]
    MoveVerifyFailed(String),
    /// The public URL cannot name a did:webvh DID.
    #[error("{url} cannot be the authority's public URL: {reason}")]
    PublicUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The authority DID could not be created.
    #[error("creating the authority's did:webvh DID: {0}")]
    AuthorityDid(#[source] webvh::WebvhError),
}

impl AdminError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            AdminError::Io { .. } => ReasonCode::IoError,
            AdminError::NotInitialized(_) => ReasonCode::NotInitialized,
            AdminError::AlreadyInitialized(_) => ReasonCode::AlreadyInitialized,
            AdminError::Config { .. } | AdminError::TokenHash(_) => ReasonCode::ConfigInvalid,
            AdminError::Key { source, .. } => source.code(),
            AdminError::Sign(e) => e.code(),
            AdminError::Registry(e) => e.code(),
            AdminError::Store(e) => e.code(),
            AdminError::DidLog(e) => e.code(),
            AdminError::EmptyDidLog => ReasonCode::DidLogEmpty,
            AdminError::StorageNotEmpty(_) => ReasonCode::StorageNotEmpty,
            AdminError::DatabaseEmpty { .. } => ReasonCode::NotInitialized,
            AdminError::MoveVerifyFailed(_) => ReasonCode::MoveVerifyFailed,
            AdminError::PublicUrl { .. } => ReasonCode::ConfigInvalid,
            AdminError::AuthorityDid(e) => e.code(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AdminError + '_ {
    move |source| AdminError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `registry.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The log's origin (its unique name).
    pub origin: String,
    /// SHA-256 (hex) of each admin token.
    pub admin_token_sha256: Vec<String>,
}

/// The two keys of a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    /// Signs governance entries.
    Authority,
    /// Signs checkpoints and bundles.
    Log,
    /// Updates the authority's did:webvh DID.
    DidUpdate,
}

impl KeyName {
    fn file(self) -> &'static str {
        match self {
            KeyName::Authority => "authority.key",
            KeyName::Log => "log.key",
            KeyName::DidUpdate => "authority-did.key",
        }
    }
}

/// The authority DID's log file in the data directory.
const AUTHORITY_DID_LOG: &str = "authority.did.jsonl";

/// What [`DataDir::create_authority_did`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityDidMade {
    /// The DID.
    pub did: String,
    /// Where its log is published (the did:webvh DID-to-HTTPS transformation).
    pub log_url: String,
    /// The TRQP endpoint's base URL its document names.
    pub trqp: String,
    /// The governance framework's URL its document names.
    pub governance_framework: String,
}

/// The did:webvh part after the SCID for a registry served at `public_url`
/// (`https://host[:port][/path]`, or `http://localhost[:port]` for a test on this machine).
pub fn did_host_and_path(public_url: &str) -> Result<String, AdminError> {
    let bad = |reason: &str| AdminError::PublicUrl {
        url: public_url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = public_url
        .split_once("://")
        .ok_or_else(|| bad("not an absolute URL"))?;
    let rest = rest.trim_end_matches('/');
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    if authority.contains(['@', '?', '#']) || path.contains(['?', '#']) {
        return Err(bad("a public URL has no user, query or fragment"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    match (scheme, host.as_str()) {
        ("https", h) if h != "localhost" => {}
        ("http", "localhost") => {}
        _ => return Err(bad("did:webvh resolves to https (http only for localhost)")),
    }
    let mut out = host;
    if let Some(p) = port {
        out.push_str("%3A");
        out.push_str(p);
    }
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push(':');
        out.push_str(seg);
    }
    Ok(out)
}

/// The public URL a registry's origin suggests: `https://<the origin's host>`.
pub fn default_public_url(origin: &str) -> String {
    format!("https://{}", origin.split('/').next().unwrap_or(origin))
}

/// What `init` made.
pub struct Initialized {
    /// The registry, open.
    pub registry: AnyRegistry,
    /// The admin token (shown once; only its hash is kept).
    pub admin_token: Zeroizing<String>,
    /// The anchor verifiers pin.
    pub anchor: TrustAnchor,
}

impl std::fmt::Debug for Initialized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initialized")
            .field("anchor", &self.anchor)
            .finish_non_exhaustive()
    }
}

/// Where a registry's log and status lists are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// The sled store in the data directory (`db/`): the default.
    Sled,
    /// A PostgreSQL database, by its URL, which any number of instances share.
    Postgres(String),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Storage {
    /// `sled`, or `PostgreSQL <URL without its password or parameters>`.
    pub fn describe(&self) -> String {
        match self {
            Storage::Sled => "sled".to_owned(),
            Storage::Postgres(url) => format!("PostgreSQL {}", redact_url(url)),
        }
    }
}

/// A database URL without its password and parameters (which may hold one), for messages.
pub use bizcred_pg::redact_url;

/// What [`DataDir::move_to_postgres`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Entries moved (the log's size).
    pub entries: u64,
    /// Named blobs (status lists) moved.
    pub blobs: usize,
    /// The checkpoint body (origin, size, root) before and after the move.
    pub checkpoint: String,
    /// The database already held exactly this log (an earlier move): nothing was written.
    pub already: bool,
}

/// The checkpoint body (origin, size, root) `entries` replay to.
fn replayed_checkpoint(origin: &str, entries: &[Vec<u8>], now: i64) -> Result<String, AdminError> {
    let mut state = bizcred_core::trust::state::TrustState::empty(origin);
    for (i, bytes) in entries.iter().enumerate() {
        let e: Value = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("stored entry {i} is not JSON: {e}")))?;
        state.apply(&e, now).map_err(RegistryError::Entry)?;
    }
    Ok(bizcred_core::trust::note::Checkpoint {
        origin: origin.to_owned(),
        size: state.size(),
        root: state.root(),
    }
    .body())
}

/// A registry's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

/// Freshness limits of the four types (registry design §4.13): licences 24 h of status age,
/// the others 7 days; 7 days of registry age for all.
fn freshness(ty: CredentialType) -> (i64, i64) {
    let status_age = match ty {
        CredentialType::MunicipalBusinessLicence | CredentialType::LiquorSalesLicence => 86_400,
        _ => 7 * 86_400,
    };
    (status_age, 7 * 86_400)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl DataDir {
    /// The directory at `path` (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> DataDir {
        DataDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the registry: authority and log keys sealed with `passphrase`, an admin token,
    /// the genesis entry and the four credential types with their freshness limits.
    ///
    /// With [`Storage::Postgres`], the database must be migrated and hold no log yet.
    pub fn init(
        &self,
        origin: &str,
        passphrase: &[u8],
        now: i64,
        rng: &mut impl CryptoRngCore,
        storage: &Storage,
    ) -> Result<Initialized, AdminError> {
        let cfg_path = self.path.join("registry.json");
        if cfg_path.exists() {
            return Err(AdminError::AlreadyInitialized(self.path.clone()));
        }
        std::fs::create_dir_all(&self.path).map_err(io(&self.path))?;
        // The store first: a database holding another registry's log refuses before any key
        // is written.
        let store = self.store(storage)?;
        if store.head()? != crate::store::Head::default() {
            return Err(AdminError::StorageNotEmpty(storage.describe()));
        }
        let authority = SecretKey::generate(Algorithm::EdDSA, rng);
        let log_key = SecretKey::generate(Algorithm::EdDSA, rng);
        for (name, key) in [(KeyName::Authority, &authority), (KeyName::Log, &log_key)] {
            let text =
                keyfile::seal(key, passphrase, KdfParams::DEFAULT, rng).map_err(|source| {
                    AdminError::Key {
                        path: self.path.join(name.file()),
                        source,
                    }
                })?;
            write_private(&self.path.join(name.file()), text.as_bytes())?;
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(raw.as_mut());
        // Hex, so a token never starts with `-` on a command line.
        let admin_token = Zeroizing::new(hex(raw.as_ref()));
        let cfg = Config {
            origin: origin.to_owned(),
            admin_token_sha256: vec![hex(&crate::service::token_hash(&admin_token))],
        };
        let text = serde_json::to_string_pretty(&cfg).map_err(|source| AdminError::Config {
            path: cfg_path.clone(),
            source,
        })?;
        let mut entries = vec![build::genesis(
            origin,
            &[authority.public_key()],
            origin,
            &log_key.public_key(),
            now,
            &authority,
            rng,
        )?];
        for ty in CredentialType::ALL {
            let (status_age, registry_age) = freshness(ty);
            entries.push(build::credential_type(
                origin,
                ty.vct(),
                status_age,
                registry_age,
                now,
                &authority,
                rng,
            )?);
        }
        let mut registry = Registry::open(store, origin, log_key, now)?;
        registry.append_all(entries, now)?;
        // The configuration is written last: a directory without it is not a registry yet.
        std::fs::write(&cfg_path, text).map_err(io(&cfg_path))?;
        let anchor = registry
            .anchor()
            .ok_or(AdminError::Registry(RegistryError::Range(
                "no anchor after genesis".into(),
            )))?;
        Ok(Initialized {
            registry,
            admin_token,
            anchor,
        })
    }

    /// `registry.json`.
    pub fn config(&self) -> Result<Config, AdminError> {
        let path = self.path.join("registry.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AdminError::NotInitialized(self.path.clone()))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_str(&text).map_err(|source| AdminError::Config { path, source })
    }

    /// The admin token hashes the service accepts.
    pub fn admin_token_hashes(&self) -> Result<Vec<[u8; 32]>, AdminError> {
        self.config()?
            .admin_token_sha256
            .iter()
            .map(|h| {
                unhex32(h).ok_or_else(|| AdminError::TokenHash(self.path.join("registry.json")))
            })
            .collect()
    }

    /// Opens one of the keys with `passphrase`.
    pub fn key(&self, name: KeyName, passphrase: &[u8]) -> Result<SecretKey, AdminError> {
        let path = self.path.join(name.file());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AdminError::NotInitialized(self.path.clone()))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        keyfile::open(&text, passphrase).map_err(|source| AdminError::Key { path, source })
    }

    /// Opens the registry on `storage` (replaying and re-validating every stored entry).
    pub fn open(
        &self,
        passphrase: &[u8],
        now: i64,
        storage: &Storage,
    ) -> Result<AnyRegistry, AdminError> {
        let cfg = self.config()?;
        let log_key = self.key(KeyName::Log, passphrase)?;
        let store = self.store(storage)?;
        // An initialized registry's log is never empty (init appends the genesis before it
        // writes its configuration): an empty database is one that was never filled, and
        // serving it would hand verifiers an empty registry.
        if let Storage::Postgres(_) = storage {
            if store.head()?.size == 0 {
                return Err(AdminError::DatabaseEmpty {
                    database: storage.describe(),
                    sled: self.sled_path().is_dir(),
                });
            }
        }
        let mut reg = Registry::open(store, &cfg.origin, log_key, now)?;
        if let Some(log) = self.authority_did_log()? {
            reg.set_authority_did(&log, now)?;
        }
        Ok(reg)
    }

    /// The authority's did:webvh log, if it has a DID.
    pub fn authority_did_log(&self) -> Result<Option<String>, AdminError> {
        let path = self.path.join(AUTHORITY_DID_LOG);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Gives the governing authority its own did:webvh DID, served by the registry at
    /// `public_url` (where its log is published: the DID-to-HTTPS transformation of the DID).
    /// The document lists the authority key (which signs governance entries) as an
    /// assertion method, and two services: `#trqp` (type `TRQP`, the TRQP v2.0 endpoint's
    /// base URL, `<public_url>/trqp/v2`) and `#governance-framework` (type
    /// `GovernanceFramework`, `governance_framework`, by default `<public_url>/governance`).
    /// Its update key is a new key, sealed with `passphrase` in `authority-did.key`.
    pub fn create_authority_did(
        &self,
        passphrase: &[u8],
        public_url: &str,
        governance_framework: Option<&str>,
        now: i64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<AuthorityDidMade, AdminError> {
        self.config()?;
        let log_path = self.path.join(AUTHORITY_DID_LOG);
        if log_path.exists() {
            return Err(AdminError::AlreadyInitialized(log_path));
        }
        let host = did_host_and_path(public_url)?;
        let base = public_url.trim_end_matches('/');
        let trqp = format!("{base}{}", crate::trqp::BASE_PATH);
        let egf = governance_framework
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{base}/governance"));
        let authority = self.key(KeyName::Authority, passphrase)?;
        let mk = bizcred_core::did::multikey(&authority.public_key());
        let doc = json!({
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": "{DID}",
            "verificationMethod": [{"id": "{DID}#authority-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": mk}],
            "assertionMethod": ["{DID}#authority-1"],
            "service": [
                {"id": "{DID}#trqp", "type": "TRQP", "serviceEndpoint": trqp},
                {"id": "{DID}#governance-framework", "type": "GovernanceFramework", "serviceEndpoint": egf},
            ],
        });
        let update = SecretKey::generate(Algorithm::EdDSA, rng);
        let mut params = serde_json::Map::new();
        params.insert(
            "updateKeys".into(),
            json!([bizcred_core::did::multikey(&update.public_key())]),
        );
        params.insert("portable".into(), false.into());
        let (did, line) =
            webvh::create(&host, doc, params, now, &update).map_err(AdminError::AuthorityDid)?;
        let log = format!("{line}\n");
        // Verified as any resolver will.
        crate::sequencer::AuthorityDid::from_log(&log, now).map_err(AdminError::AuthorityDid)?;
        let key_path = self.path.join(KeyName::DidUpdate.file());
        let sealed =
            keyfile::seal(&update, passphrase, KdfParams::DEFAULT, rng).map_err(|source| {
                AdminError::Key {
                    path: key_path.clone(),
                    source,
                }
            })?;
        write_private(&key_path, sealed.as_bytes())?;
        write_private(&log_path, log.as_bytes())?;
        let log_url = webvh::WebvhDid::parse(&did)
            .map_err(AdminError::AuthorityDid)?
            .log_url();
        Ok(AuthorityDidMade {
            did,
            log_url,
            trqp,
            governance_framework: egf,
        })
    }

    /// The store: sled in `db/` (refused once moved to PostgreSQL), or the PostgreSQL
    /// database (refused unless its schema is this binary's).
    pub fn store(&self, storage: &Storage) -> Result<Box<dyn Store>, AdminError> {
        Ok(match storage {
            Storage::Sled => Box::new(SledStore::open(&self.sled_path())?),
            Storage::Postgres(url) => Box::new(PgStore::connect(url)?),
        })
    }

    fn sled_path(&self) -> PathBuf {
        self.path.join("db")
    }

    /// Moves this registry's sled log (every entry and named blob) into the PostgreSQL
    /// database at `url` (migrated, see [`crate::store::pg::migrate`]), in one transaction,
    /// then verifies it: the entries and blobs read back are the same bytes, and both replay
    /// to the same checkpoint (origin, size, Merkle root; the log key signs equal bodies
    /// into equal notes). The sled store is then marked moved, so it is never served again
    /// (a second log would fork the first).
    ///
    /// Idempotent: a database that already holds exactly this log is verified and left as
    /// it is (`already`); one holding anything else is refused, untouched
    /// ([`AdminError::StorageNotEmpty`]). The sled store must not be served meanwhile (sled
    /// refuses a second process).
    pub fn move_to_postgres(&self, url: &str, now: i64) -> Result<Moved, AdminError> {
        let cfg = self.config()?;
        let sled_path = self.sled_path();
        if !sled_path.is_dir() {
            return Err(AdminError::NotInitialized(self.path.clone()));
        }
        let sled = SledStore::open_moved(&sled_path)?;
        let entries = sled.load()?;
        let blobs: Vec<(String, Vec<u8>)> = sled
            .blobs()?
            .into_iter()
            .map(|b| (b.name, b.value))
            .collect();
        let checkpoint = replayed_checkpoint(&cfg.origin, &entries, now)?;
        let target = Storage::Postgres(url.to_owned());
        let pg = PgStore::connect(url)?;
        let sorted = |mut v: Vec<(String, Vec<u8>)>| {
            v.sort();
            v
        };
        let already = !pg.is_empty()?;
        if already {
            let held: Vec<(String, Vec<u8>)> =
                pg.blobs()?.into_iter().map(|b| (b.name, b.value)).collect();
            if pg.load()? != entries || sorted(held) != sorted(blobs.clone()) {
                return Err(AdminError::StorageNotEmpty(target.describe()));
            }
        } else {
            pg.fill(&entries, &blobs).map_err(|e| match e {
                // Another writer filled it meanwhile.
                StoreError::NotAtEnd { .. } => AdminError::StorageNotEmpty(target.describe()),
                e => e.into(),
            })?;
        }
        // Verify what the database holds now, read back from it.
        let moved = pg.load()?;
        let moved_blobs: Vec<(String, Vec<u8>)> =
            pg.blobs()?.into_iter().map(|b| (b.name, b.value)).collect();
        if moved != entries {
            return Err(AdminError::MoveVerifyFailed(format!(
                "{} entries read back, {} moved, or their bytes differ",
                moved.len(),
                entries.len()
            )));
        }
        if sorted(moved_blobs) != sorted(blobs.clone()) {
            return Err(AdminError::MoveVerifyFailed("the blobs differ".into()));
        }
        let after = replayed_checkpoint(&cfg.origin, &moved, now)?;
        if after != checkpoint {
            return Err(AdminError::MoveVerifyFailed(format!(
                "checkpoint before:\n{checkpoint}after:\n{after}"
            )));
        }
        SledStore::mark_moved(
            &sled_path,
            &format!(
                "moved to {} at {} ({} entries)",
                target.describe(),
                bizcred_core::time::format_utc(now),
                entries.len()
            ),
        )?;
        Ok(Moved {
            entries: entries.len() as u64,
            blobs: blobs.len(),
            checkpoint,
            already,
        })
    }
}

/// One governance entry to sign, with the sentence that describes it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// What the entry does, for the operator.
    pub what: String,
    /// The signed entry.
    pub entry: Value,
}

/// The entries that onboard an agency: its registration (with its verified did:webvh log)
/// and an authorization for each type, valid from `now`. Submitted together, they apply all
/// or none. Returns the issuer DID and the entries.
#[allow(clippy::too_many_arguments)]
pub fn onboard(
    origin: &str,
    authority: &SecretKey,
    did_log: &str,
    name_en: &str,
    name_fr: &str,
    types: &[CredentialType],
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<(String, Vec<Planned>), AdminError> {
    let verified = webvh::verify_log(did_log, None, now);
    if let Some(e) = verified.error {
        return Err(AdminError::DidLog(e));
    }
    let issuer = verified
        .versions
        .last()
        .map(|v| v.id().to_owned())
        .ok_or(AdminError::EmptyDidLog)?;
    let mut plan = vec![Planned {
        what: format!("register {issuer} ({name_en})"),
        entry: build::issuer_registered(
            origin, &issuer, name_en, name_fr, did_log, now, authority, rng,
        )?,
    }];
    for ty in types {
        plan.push(Planned {
            what: format!("authorize {issuer} for {}", ty.slug()),
            entry: build::authorization_granted(
                origin,
                &issuer,
                ty.vct(),
                now,
                None,
                now,
                authority,
                rng,
            )?,
        });
    }
    Ok((issuer, plan))
}

/// What an authorization becomes (`suspend`, `--revoke`, `--reinstate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationStatus {
    /// Reinstated.
    Active,
    /// Suspended (may be reinstated).
    Suspended,
    /// Revoked (final).
    Revoked,
}

impl AuthorizationStatus {
    /// The status as the entry names it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationStatus::Active => "active",
            AuthorizationStatus::Suspended => "suspended",
            AuthorizationStatus::Revoked => "revoked",
        }
    }
}

/// The entry that authorizes `did` for `ty` from `from` (until `until`).
#[allow(clippy::too_many_arguments)]
pub fn authorize(
    origin: &str,
    authority: &SecretKey,
    did: &str,
    ty: CredentialType,
    from: i64,
    until: Option<i64>,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Planned, AdminError> {
    Ok(Planned {
        what: format!("authorize {did} for {}", ty.slug()),
        entry: build::authorization_granted(
            origin,
            did,
            ty.vct(),
            from,
            until,
            now,
            authority,
            rng,
        )?,
    })
}

/// The entry that changes the authorization of `did` for `ty` at `at`.
#[allow(clippy::too_many_arguments)]
pub fn change_authorization(
    origin: &str,
    authority: &SecretKey,
    did: &str,
    ty: CredentialType,
    status: AuthorizationStatus,
    at: i64,
    retroactive: bool,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Planned, AdminError> {
    Ok(Planned {
        what: format!("{} {did} for {}", status.as_str(), ty.slug()),
        entry: build::authorization_changed(
            origin,
            did,
            ty.vct(),
            status.as_str(),
            at,
            retroactive,
            now,
            authority,
            rng,
        )?,
    })
}

/// The entry that declares key `key_id` of `did` compromised from `at`.
pub fn declare_compromise(
    origin: &str,
    authority: &SecretKey,
    did: &str,
    key_id: &str,
    at: i64,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Planned, AdminError> {
    Ok(Planned {
        what: format!("declare {key_id} of {did} compromised"),
        entry: build::key_compromised(origin, did, key_id, at, now, authority, rng)?,
    })
}

/// The entry that recognizes `entity` (another registry's authority, whose registry has
/// `anchor`) for `ty` from `from` (until `until`); `authority_id` is this registry's authority.
#[allow(clippy::too_many_arguments)]
pub fn recognize(
    origin: &str,
    authority: &SecretKey,
    authority_id: &str,
    entity: &str,
    anchor: &TrustAnchor,
    ty: CredentialType,
    from: i64,
    until: Option<i64>,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Planned, AdminError> {
    Ok(Planned {
        what: format!(
            "recognize {entity} (registry {}) for {}",
            anchor.origin,
            ty.slug()
        ),
        entry: build::recognition_granted(
            origin,
            authority_id,
            &RecognitionTerms {
                entity_id: entity,
                resource: ty.vct(),
                valid_from: from,
                valid_until: until,
                anchor,
            },
            now,
            authority,
            rng,
        )?,
    })
}

/// The entry that ends the recognition of `entity` for `ty` at `at`.
pub fn revoke_recognition(
    origin: &str,
    authority: &SecretKey,
    entity: &str,
    ty: CredentialType,
    at: i64,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Result<Planned, AdminError> {
    Ok(Planned {
        what: format!("revoke the recognition of {entity} for {}", ty.slug()),
        entry: build::recognition_revoked(origin, entity, ty.vct(), at, now, authority, rng)?,
    })
}

/// The registry's state for `status`: size, issuers and their authorized types, anchor.
pub fn status(reg: &AnyRegistry) -> Value {
    let s = reg.state();
    let issuers: Vec<Value> = s
        .issuers
        .values()
        .map(|i| {
            let types: Vec<&str> = s
                .authorizations
                .iter()
                .filter(|a| a.entity_id == i.did)
                .map(|a| a.resource.as_str())
                .collect();
            json!({"did": i.did, "name": i.name_en, "versions": i.log.versions.len(), "types": types})
        })
        .collect();
    let recognitions: Vec<Value> = s
        .recognitions
        .iter()
        .map(|r| {
            json!({"entity_id": r.entity_id, "resource": r.resource, "log_origin": r.anchor.origin,
                "revoked_at": r.revoked_at.map(bizcred_core::time::format_utc)})
        })
        .collect();
    json!({"origin": s.origin, "size": s.size(), "issuers": issuers, "anchor": reg.anchor(),
        "authority_id": reg.authority_id(), "recognitions": recognitions})
}

/// Writes a new file readable by its owner only, flushed to disk.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AdminError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn token_hashes_are_checked() {
        assert_eq!(unhex32(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(unhex32("ab"), None);
        assert_eq!(unhex32(&"zz".repeat(32)), None);
        assert_eq!(unhex32(&"é".repeat(32)), None);
    }

    #[test]
    fn database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://reg:s3cret@db.example:5432/registry?sslmode=require&password=x"),
            "postgres://reg@db.example:5432/registry"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("not a url s3cret"), "<a database URL>");
        assert!(!format!("{:?}", Storage::Postgres("postgres://a:pw@h/d".into())).contains("pw"));
    }

    #[test]
    fn init_open_and_refusals() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = DataDir::new(t.path().join("reg"));
        assert_eq!(
            d.config().map(|_| ()).map_err(|e| e.code()),
            Err(ReasonCode::NotInitialized)
        );
        let made = d
            .init(
                "registry.test/log",
                b"pass",
                1_800_000_000,
                &mut OsRng,
                &Storage::Sled,
            )
            .expect("init");
        assert_eq!(made.registry.state().size(), 5);
        assert!(made.admin_token.len() == 64);
        drop(made);
        let again = d.init(
            "registry.test/log",
            b"pass",
            1_800_000_000,
            &mut OsRng,
            &Storage::Sled,
        );
        assert_eq!(
            again.map(|_| ()).map_err(|e| e.code()),
            Err(ReasonCode::AlreadyInitialized)
        );
        assert_eq!(
            d.key(KeyName::Authority, b"wrong")
                .map(|_| ())
                .map_err(|e| e.code()),
            Err(KeyFileError::WrongPassphrase.code())
        );
    }
}
