//! The verifier's data directory (feature `store`): its configuration and sealed key, the
//! accepted trust bundles (persisted in order and replayed into the trust state), pending
//! OpenID4VP requests (bounded, expiring, answered once) and signed receipts.
//!
//! ```text
//! verifier.json        client id, kid, pinned registry anchor, registry URL, operator token hash
//! verifier.key         the request-signing key, sealed with the operator's passphrase
//! bundles/NNNNNN.json  every accepted bundle, in the order accepted
//! evidence/            fork evidence from refused bundles
//! requests/STATE.json  pending requests, removed when answered or expired
//! requests/STATE.answering  a request taken by its answer, until the receipt is kept
//! receipts/            signed receipts (digests, no personal data), AT-STATE.json
//! synced.json          when a bundle was last accepted (sync or import)
//! staff.json           staff accounts of the bank page (feature `service`)
//! ```
//!
//! The time is always passed in; this module reads no clock and no environment.
//!
//! What the instances of a verifier service share (pending requests, the outcome of each
//! transaction, the receipts' history) is behind the [`shared::SharedStore`] trait: in this
//! directory and the service's memory ([`shared::DirShared`], one instance), or in PostgreSQL
//! (`pg::PgShared`, feature `postgres`: any number of instances on one database).

pub mod shared;

#[cfg(feature = "postgres")]
pub mod pg;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use bizcred_core::keyfile::{self, KdfParams, KeyFileError};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::oid4vp;
use bizcred_core::trust::bundle::{self, BundleError, TrustAnchor};
use bizcred_core::trust::state::TrustState;
use bizcred_core::ReasonCode;

use crate::request::Pending;

/// How long a pending request waits for its answer unless configured (seconds).
pub const DEFAULT_REQUEST_TTL: i64 = 600;
/// How many requests may wait for an answer at once unless configured.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// Why the data directory could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// There is no verifier here yet.
    #[error("{0} holds no verifier")]
    NotInitialized(PathBuf),
    /// `init` on a directory that already holds a verifier.
    #[error("{0} already holds a verifier")]
    AlreadyInitialized(PathBuf),
    /// A stored file does not parse.
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A bundle accepted earlier no longer replays (the directory was altered).
    #[error("stored bundle {path} does not replay: {source}")]
    StoredBundle {
        /// The bundle file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: BundleError,
    },
    /// The sealed key could not be opened or written.
    #[error("the verifier key: {0}")]
    Key(#[from] KeyFileError),
    /// As many requests as allowed already wait for their answer.
    #[error(
        "{0} requests are already waiting for an answer; wait until some are answered or expire"
    )]
    TooManyPending(usize),
    /// The PostgreSQL database failed or could not be reached.
    #[cfg(feature = "postgres")]
    #[error("verifier storage (PostgreSQL): {0}")]
    Postgres(#[from] sqlx::Error),
    /// A PostgreSQL database URL that does not parse (the URL itself is not repeated: it may
    /// hold a password).
    #[error("the database URL is not a PostgreSQL URL: {0}")]
    DatabaseUrl(String),
    /// The database's schema is older than this binary's migrations.
    #[error(
        "the database is not migrated to this version of bizcred-verifier (migrations {missing:?} \
         are not applied); run `bizcred-verifier migrate --database <URL>`"
    )]
    SchemaBehind {
        /// The versions of this binary's migrations the database lacks.
        missing: Vec<i64>,
    },
    /// The database was migrated by a newer binary (or for another service).
    #[error(
        "the database was migrated by a newer bizcred-verifier, or for another service \
         (migrations {unknown:?} are not this binary's); run the newer binary, or give the \
         verifier its own database"
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
    /// A database row does not read back as what was written.
    #[error("the verifier's database is corrupt: {0}")]
    CorruptRow(String),
    /// `migrate --from`: the database already holds a different receipt under an id being
    /// moved, or what was written does not read back the same (the move was rolled back).
    #[error("moving {what} to the database: {problem}; nothing was moved")]
    MoveDiffers {
        /// The request or receipt.
        what: String,
        /// What differs.
        problem: &'static str,
    },
}

impl StoreError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            StoreError::Io { .. } => ReasonCode::IoError,
            StoreError::NotInitialized(_) => ReasonCode::NotInitialized,
            StoreError::AlreadyInitialized(_) => ReasonCode::AlreadyInitialized,
            StoreError::Corrupt { .. } => ReasonCode::StoreCorrupt,
            StoreError::StoredBundle { .. } => ReasonCode::StoreCorrupt,
            StoreError::Key(e) => e.code(),
            StoreError::TooManyPending(_) => ReasonCode::TooManyPending,
            #[cfg(feature = "postgres")]
            StoreError::Postgres(_) => ReasonCode::StorageFailed,
            StoreError::DatabaseUrl(_) => ReasonCode::ConfigInvalid,
            StoreError::SchemaBehind { .. } => ReasonCode::DatabaseNotMigrated,
            StoreError::SchemaNewer { .. } => ReasonCode::DatabaseSchemaNewer,
            StoreError::SchemaMismatch { .. } => ReasonCode::DatabaseSchemaMismatch,
            StoreError::CorruptRow(_) => ReasonCode::StoreCorrupt,
            StoreError::MoveDiffers { .. } => ReasonCode::MoveVerifyFailed,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `verifier.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifierConfig {
    /// The Client Identifier (`decentralized_identifier:did:jwk:…`).
    pub client_id: String,
    /// The request-signing key's id.
    pub kid: String,
    /// The pinned registry trust anchor.
    pub anchor: TrustAnchor,
    /// The registry URL `sync` uses.
    pub registry: Option<String>,
    /// SHA-256 (hex) of the operator token that creates requests and reads results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_token_sha256: Option<String>,
}

/// A new operator token, shown once.
pub struct OperatorToken(zeroize::Zeroizing<String>);

impl OperatorToken {
    /// The token text (to hand to the operator once).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(…)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn new_token(rng: &mut (impl RngCore + CryptoRng)) -> (OperatorToken, String) {
    let mut b = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(b.as_mut());
    let t = zeroize::Zeroizing::new(hex(b.as_ref()));
    let h = token_hash(&t);
    (OperatorToken(t), h)
}

/// A verifier's data directory.
#[derive(Debug)]
pub struct VerifierDir {
    dir: PathBuf,
    cfg: VerifierConfig,
    /// The replayed trust state and how many bundle files it came from.
    trust_cache: Mutex<Option<(usize, TrustState)>>,
}

impl VerifierDir {
    /// Creates a verifier in `dir`: a new Ed25519 key (sealed with `passphrase`), its did:jwk
    /// Client Identifier, the pinned `anchor`, and an operator token (returned once).
    pub fn init(
        dir: &Path,
        anchor: TrustAnchor,
        registry: Option<String>,
        passphrase: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(VerifierDir, OperatorToken), StoreError> {
        let cfg_path = dir.join("verifier.json");
        if cfg_path.exists() {
            return Err(StoreError::AlreadyInitialized(dir.to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let k = SecretKey::generate(Algorithm::EdDSA, rng);
        let sealed = keyfile::seal(&k, passphrase, KdfParams::DEFAULT, rng)?;
        write_atomic(&dir.join("verifier.key"), sealed.as_bytes())?;
        let did = bizcred_core::did::did_jwk(&k.public_key());
        let (token, hash) = new_token(rng);
        let cfg = VerifierConfig {
            client_id: format!("{}{did}", oid4vp::DID_PREFIX),
            kid: format!("{did}#0"),
            anchor,
            registry,
            operator_token_sha256: Some(hash),
        };
        write_json(&cfg_path, &cfg)?;
        Ok((VerifierDir::with(dir, cfg), token))
    }

    /// Another handle on this directory (its own trust cache).
    pub fn handle(&self) -> VerifierDir {
        VerifierDir::with(&self.dir, self.cfg.clone())
    }

    fn with(dir: &Path, cfg: VerifierConfig) -> VerifierDir {
        VerifierDir {
            dir: dir.to_owned(),
            cfg,
            trust_cache: Mutex::new(None),
        }
    }

    /// Opens the verifier in `dir`.
    pub fn open(dir: &Path) -> Result<VerifierDir, StoreError> {
        let p = dir.join("verifier.json");
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotInitialized(dir.to_owned()))
            }
            Err(e) => return Err(io(&p)(e)),
        };
        let cfg = serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
            path: p.clone(),
            source,
        })?;
        Ok(VerifierDir::with(dir, cfg))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.cfg
    }

    /// Opens the request-signing key with `passphrase`.
    pub fn key(&self, passphrase: &[u8]) -> Result<SecretKey, StoreError> {
        let p = self.dir.join("verifier.key");
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        Ok(keyfile::open(&text, passphrase)?)
    }

    /// Replaces the operator token; returns the new one (shown once).
    pub fn rotate_token(
        &mut self,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<OperatorToken, StoreError> {
        let (token, hash) = new_token(rng);
        let mut cfg = self.cfg.clone();
        cfg.operator_token_sha256 = Some(hash);
        write_json(&self.dir.join("verifier.json"), &cfg)?;
        self.cfg = cfg;
        Ok(token)
    }

    /// Whether `presented` is the operator token (constant-time on the digests). False when
    /// no token was ever set.
    pub fn is_operator(&self, presented: &str) -> bool {
        let Some(want) = &self.cfg.operator_token_sha256 else {
            return false;
        };
        let got = token_hash(presented);
        got.as_bytes().ct_eq(want.as_bytes()).into()
    }

    fn bundle_files(&self) -> Result<Vec<PathBuf>, StoreError> {
        let bdir = self.dir.join("bundles");
        let rd = match std::fs::read_dir(&bdir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&bdir)(e)),
        };
        let mut files = Vec::new();
        for e in rd {
            let p = e.map_err(io(&bdir))?.path();
            let is_bundle = p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'));
            if is_bundle {
                files.push(p);
            }
        }
        files.sort();
        Ok(files)
    }

    /// The trust state: every accepted bundle replayed in order (`None` before the first).
    /// The replay is cached until another bundle is accepted.
    pub fn trust(&self, now: i64) -> Result<Option<TrustState>, StoreError> {
        let files = self.bundle_files()?;
        if let Ok(cache) = self.trust_cache.lock() {
            if let Some((n, state)) = cache.as_ref() {
                if *n == files.len() {
                    return Ok(Some(state.clone()));
                }
            }
        }
        let mut state: Option<TrustState> = None;
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(io(f))?;
            let stored = |source| StoreError::StoredBundle {
                path: f.clone(),
                source,
            };
            // Replay with the bundle's own time when it is later than `now` (a clock set back
            // must not make an accepted bundle look like it comes from the future).
            let b = bundle::parse(&text).map_err(stored)?;
            let t = bizcred_core::time::parse_utc(&b.issued_at)
                .map_err(|_| stored(BundleError::Malformed("issued_at".into())))?;
            state = Some(
                bundle::import(state.as_ref(), &self.cfg.anchor, &text, t.max(now))
                    .map_err(stored)?
                    .state,
            );
        }
        if let (Some(s), Ok(mut cache)) = (&state, self.trust_cache.lock()) {
            *cache = Some((files.len(), s.clone()));
        }
        Ok(state)
    }

    /// Verifies `text` against the held state and keeps it when accepted. The outer error is
    /// the directory's; the inner one is the bundle's refusal (fork evidence is saved).
    pub fn store_bundle(
        &self,
        text: &str,
        now: i64,
    ) -> Result<Result<(TrustState, u64), BundleError>, StoreError> {
        let held = self.trust(now)?;
        match bundle::import(held.as_ref(), &self.cfg.anchor, text, now) {
            Ok(imported) => {
                let bdir = self.dir.join("bundles");
                std::fs::create_dir_all(&bdir).map_err(io(&bdir))?;
                let n = self.bundle_files()?.len();
                write_atomic(&bdir.join(format!("{n:06}.json")), text.as_bytes())?;
                // The state just imported is the replay of every stored bundle: keep it, so the
                // next verification does not replay them all again.
                if let Ok(mut cache) = self.trust_cache.lock() {
                    *cache = Some((n + 1, imported.state.clone()));
                }
                self.record_sync(now, &imported.state, imported.added)?;
                Ok(Ok((imported.state, imported.added)))
            }
            Err(e) => {
                if let BundleError::Fork(ev) = &e {
                    let edir = self.dir.join("evidence");
                    std::fs::create_dir_all(&edir).map_err(io(&edir))?;
                    write_json(&edir.join(format!("fork-{now}.json")), ev.as_ref())?;
                }
                Ok(Err(e))
            }
        }
    }

    fn requests_dir(&self) -> PathBuf {
        self.dir.join("requests")
    }

    fn pending_path(&self, state: &str) -> Option<PathBuf> {
        let ok = !state.is_empty()
            && state.len() <= 64
            && state
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| self.requests_dir().join(format!("{state}.json")))
    }

    /// Every stored pending request (waiting, or taken by an answer whose receipt is not kept
    /// yet): expired ones are removed, the others returned.
    pub fn sweep(&self, now: i64) -> Result<Vec<Pending>, StoreError> {
        let rdir = self.requests_dir();
        let rd = match std::fs::read_dir(&rdir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&rdir)(e)),
        };
        let mut live = Vec::new();
        for e in rd {
            let p = e.map_err(io(&rdir))?.path();
            if p.extension().is_none_or(|x| x != "json" && x != ANSWERING) {
                continue;
            }
            let Some(pending) = read_request(&p)? else {
                continue;
            };
            if pending.pending.expires_at <= now {
                remove(&p)?;
            } else {
                live.push(pending.pending);
            }
        }
        Ok(live)
    }

    /// A new pending request answering at `response_uri`, valid for `ttl` seconds. Unbounded:
    /// a service bounds the number waiting with [`PendingIndex`].
    pub fn new_pending(
        &self,
        response_uri: &str,
        now: i64,
        ttl: i64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Pending, StoreError> {
        self.new_request(response_uri, None, now, ttl, rng)
    }

    /// A new pending request, as [`VerifierDir::new_pending`], made for the policy named
    /// `policy` (kept with the request, so its answer is verified under that policy; `None`
    /// is the service's default policy).
    pub fn new_request(
        &self,
        response_uri: &str,
        policy: Option<&str>,
        now: i64,
        ttl: i64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Pending, StoreError> {
        let stored =
            OpenRequest::generate(&self.cfg.client_id, response_uri, policy, now, ttl, rng);
        self.put_request(&stored)?;
        Ok(stored.pending)
    }

    /// Keeps `request` as a pending request (replacing one with the same state).
    pub fn put_request(&self, request: &OpenRequest) -> Result<(), StoreError> {
        let Some(p) = self.pending_path(&request.pending.state) else {
            return Err(StoreError::Io {
                path: self.requests_dir(),
                source: std::io::Error::other("a request's state is not a file name"),
            });
        };
        let rdir = self.requests_dir();
        std::fs::create_dir_all(&rdir).map_err(io(&rdir))?;
        write_json(&p, request)
    }

    /// The pending request `state`, if it exists and has not expired (not consumed).
    pub fn pending(&self, state: &str, now: i64) -> Result<Option<Pending>, StoreError> {
        Ok(self.request(state, now)?.map(|r| r.pending))
    }

    /// The pending request `state` with the policy it was made for, if it waits for its answer
    /// and has not expired (not consumed).
    pub fn request(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, StoreError> {
        let Some(p) = self.pending_path(state) else {
            return Ok(None);
        };
        Ok(read_request(&p)?.filter(|open| open.pending.expires_at > now))
    }

    /// The request `state` taken by an answer whose receipt is not kept yet, if it has not
    /// expired.
    pub fn answering(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, StoreError> {
        let Some(p) = self.pending_path(state) else {
            return Ok(None);
        };
        Ok(
            read_request(&p.with_extension(ANSWERING))?
                .filter(|open| open.pending.expires_at > now),
        )
    }

    /// Takes the pending request `state`: it is removed whether or not it has expired, and
    /// returned only when it has not (one answer per nonce).
    pub fn take_pending(&self, state: &str, now: i64) -> Result<Option<Pending>, StoreError> {
        Ok(self.take_request(state, now)?.map(|r| r.pending))
    }

    /// Takes the pending request `state` with the policy it was made for (see
    /// [`VerifierDir::take_pending`]). Taking is one rename of its file, so of two answers at
    /// once only one takes it. A taken request stays as `STATE.answering` (counted as
    /// pending, shown as being answered) until [`VerifierDir::forget_request`] or its expiry.
    pub fn take_request(&self, state: &str, now: i64) -> Result<Option<OpenRequest>, StoreError> {
        let Some(p) = self.pending_path(state) else {
            return Ok(None);
        };
        let taken = p.with_extension(ANSWERING);
        match std::fs::rename(&p, &taken) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&p)(e)),
        }
        let found = read_request(&taken)?;
        if found.as_ref().is_none_or(|r| r.pending.expires_at <= now) {
            remove(&taken)?;
            return Ok(None);
        }
        Ok(found)
    }

    /// Forgets the taken request `state` (its receipt is kept).
    pub fn forget_request(&self, state: &str) -> Result<(), StoreError> {
        match self.pending_path(state) {
            Some(p) => remove(&p.with_extension(ANSWERING)),
            None => Ok(()),
        }
    }

    /// Writes a signed receipt; returns its file.
    pub fn save_receipt(
        &self,
        state: &str,
        receipt: &serde_json::Value,
        now: i64,
    ) -> Result<PathBuf, StoreError> {
        let rdir = self.dir.join("receipts");
        std::fs::create_dir_all(&rdir).map_err(io(&rdir))?;
        let p = rdir.join(format!("{}.json", receipt_name(state, now)));
        write_json(&p, receipt)?;
        Ok(p)
    }

    /// The kept receipts, newest first: at most `limit`, and only those older than the
    /// receipt `before` when it is given (the next page of a history).
    pub fn receipts(
        &self,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<ReceiptEntry>, StoreError> {
        let before = before.and_then(ReceiptId::parse);
        let mut ids: Vec<ReceiptId> = self
            .receipt_ids()?
            .into_iter()
            .filter(|id| before.as_ref().is_none_or(|b| id < b))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(v) = self.receipt(&id.to_string())? {
                let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
                out.push(ReceiptEntry {
                    at: id.at,
                    id: id.to_string(),
                    policy: text("policy"),
                    verdict: text("verdict"),
                });
            }
        }
        Ok(out)
    }

    /// The ids of every kept receipt, in no order.
    pub(crate) fn receipt_ids(&self) -> Result<Vec<ReceiptId>, StoreError> {
        let rdir = self.dir.join("receipts");
        let rd = match std::fs::read_dir(&rdir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&rdir)(e)),
        };
        let mut ids = Vec::new();
        for e in rd {
            let name = e.map_err(io(&rdir))?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(ReceiptId::parse)
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The id of the receipt kept for the request `state`, if any (a scan of the receipts'
    /// names: for a request answered longer ago than a service holds its results).
    pub fn receipt_of(&self, state: &str) -> Result<Option<String>, StoreError> {
        let rdir = self.dir.join("receipts");
        let rd = match std::fs::read_dir(&rdir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&rdir)(e)),
        };
        for e in rd {
            let name = e.map_err(io(&rdir))?.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(ReceiptId::parse);
            if let Some(id) = id.filter(|id| id.state == state) {
                return Ok(Some(id.to_string()));
            }
        }
        Ok(None)
    }

    /// The receipt `id` (a receipt file's name without `.json`), if it is kept.
    pub fn receipt(&self, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(id) = ReceiptId::parse(id) else {
            return Ok(None);
        };
        let p = self.dir.join("receipts").join(format!("{id}.json"));
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&p)(e)),
        };
        if meta.len() > MAX_RECEIPT_LEN {
            return Err(StoreError::Io {
                path: p,
                source: std::io::Error::other("the receipt is larger than any receipt written"),
            });
        }
        let text = std::fs::read(&p).map_err(io(&p))?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path: p, source })
    }

    /// Records that a bundle was accepted at `now` (shown as the last sync).
    fn record_sync(&self, now: i64, state: &TrustState, added: u64) -> Result<(), StoreError> {
        write_json(
            &self.dir.join("synced.json"),
            &LastSync {
                at: now,
                size: state.size(),
                added,
            },
        )
    }

    /// When a bundle was last accepted (by `sync` or `bundle import`), if this directory
    /// recorded it.
    pub fn last_sync(&self) -> Result<Option<LastSync>, StoreError> {
        let p = self.dir.join("synced.json");
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|source| StoreError::Corrupt { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }
}

/// Largest receipt file read back.
pub(crate) const MAX_RECEIPT_LEN: u64 = 1 << 20;

/// The extension of a request taken by its answer.
const ANSWERING: &str = "answering";

/// The request kept in `p`, if there is one.
fn read_request(p: &Path) -> Result<Option<OpenRequest>, StoreError> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(p)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StoreError::Corrupt {
            path: p.to_owned(),
            source,
        })
}

/// The id of the receipt of the request `state` made at `at` (`AT-STATE`, the state cut to
/// the characters and length of a file name).
pub(crate) fn receipt_name(state: &str, at: i64) -> String {
    let safe: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    format!("{at}-{safe}")
}

/// A pending request as kept on disk: the request, and the policy it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The request.
    #[serde(flatten)]
    pub pending: Pending,
    /// The name of the policy it was made for (`None`: the service's default policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl OpenRequest {
    /// A new request of the verifier `client_id` answering at `response_uri`, for `policy`,
    /// valid for `ttl` seconds from `now`: a random `state` and `nonce` (128 bits each).
    pub fn generate(
        client_id: &str,
        response_uri: &str,
        policy: Option<&str>,
        now: i64,
        ttl: i64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> OpenRequest {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        let state = bizcred_core::base64url_encode(b);
        rng.fill_bytes(&mut b);
        OpenRequest {
            pending: Pending {
                state,
                nonce: bizcred_core::base64url_encode(b),
                client_id: client_id.to_owned(),
                response_uri: response_uri.to_owned(),
                expires_at: now.saturating_add(ttl),
            },
            policy: policy.map(str::to_owned),
        }
    }
}

/// A kept receipt, as a history lists it: no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptEntry {
    /// The receipt's id (`AT-STATE`).
    pub id: String,
    /// When it was made (Unix seconds).
    pub at: i64,
    /// The policy's name.
    pub policy: String,
    /// `ACCEPT`, `REJECT` or `INDETERMINATE`.
    pub verdict: String,
}

/// The last accepted bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSync {
    /// When it was accepted (Unix seconds).
    pub at: i64,
    /// The trust state's size (entries) after it.
    pub size: u64,
    /// Entries it added.
    pub added: u64,
}

/// A receipt's id: the time it was made and its request's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ReceiptId {
    pub(crate) at: i64,
    pub(crate) state: String,
}

impl ReceiptId {
    pub(crate) fn parse(s: &str) -> Option<ReceiptId> {
        let (at, state) = s.split_once('-')?;
        let ok = !at.is_empty()
            && at.len() <= 19
            && at.bytes().all(|b| b.is_ascii_digit())
            && state.len() <= 64
            && state
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| ReceiptId {
            at: at.parse().unwrap_or(0),
            state: state.to_owned(),
        })
        .filter(|id| id.at.to_string() == at)
    }
}

impl std::fmt::Display for ReceiptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.at, self.state)
    }
}

/// The id of the receipt kept in `file` (its name without `.json`).
pub fn receipt_id(file: &Path) -> Option<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .and_then(ReceiptId::parse)
        .map(|id| id.to_string())
}

/// The service's count of waiting requests, so that creating one does not read every file:
/// loaded from the directory at start (expired ones removed), kept in step as requests are
/// made, answered and expire.
#[derive(Debug, Default)]
pub struct PendingIndex {
    expiry: std::collections::HashMap<String, i64>,
}

impl PendingIndex {
    /// Loads the index from `dir`, removing expired requests.
    pub fn load(dir: &VerifierDir, now: i64) -> Result<PendingIndex, StoreError> {
        Ok(PendingIndex {
            expiry: dir
                .sweep(now)?
                .into_iter()
                .map(|p| (p.state, p.expires_at))
                .collect(),
        })
    }

    /// Removes the expired requests (files too, waiting or taken); returns how many.
    pub fn expire(&mut self, dir: &VerifierDir, now: i64) -> Result<usize, StoreError> {
        let gone: Vec<String> = self
            .expiry
            .iter()
            .filter(|(_, &e)| e <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for s in &gone {
            if let Some(p) = dir.pending_path(s) {
                remove(&p)?;
                remove(&p.with_extension(ANSWERING))?;
            }
            self.expiry.remove(s);
        }
        Ok(gone.len())
    }

    /// Makes a request for `policy` (see [`VerifierDir::new_request`]) unless `max` already
    /// wait.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        dir: &VerifierDir,
        response_uri: &str,
        policy: Option<&str>,
        now: i64,
        ttl: i64,
        max: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Pending, StoreError> {
        let request =
            OpenRequest::generate(&dir.cfg.client_id, response_uri, policy, now, ttl, rng);
        self.insert(dir, &request, now, max)?;
        Ok(request.pending)
    }

    /// Keeps `request` unless `max` already wait (expired ones removed first).
    pub fn insert(
        &mut self,
        dir: &VerifierDir,
        request: &OpenRequest,
        now: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        self.expire(dir, now)?;
        if self.expiry.len() >= max {
            return Err(StoreError::TooManyPending(self.expiry.len()));
        }
        dir.put_request(request)?;
        self.expiry
            .insert(request.pending.state.clone(), request.pending.expires_at);
        Ok(())
    }

    /// Forgets `state` (answered).
    pub fn forget(&mut self, state: &str) {
        self.expiry.remove(state);
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

fn remove(p: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(p)(e)),
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), StoreError> {
    let text = serde_json::to_vec_pretty(v).map_err(|source| StoreError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn anchor() -> TrustAnchor {
        serde_json::from_value(serde_json::json!({
            "origin": "registry.example/log",
            "log_key_name": "registry.example/log",
            "log_key": "AAAA"
        }))
        .expect("anchor")
    }

    fn dir() -> (tempfile::TempDir, VerifierDir, OperatorToken) {
        let t = tempfile::tempdir().expect("tempdir");
        let (d, tok) =
            VerifierDir::init(t.path(), anchor(), None, b"pass", &mut OsRng).expect("init");
        (t, d, tok)
    }

    #[test]
    fn operator_token_is_checked() {
        let (_t, mut d, tok) = dir();
        assert!(d.is_operator(tok.expose()));
        assert!(!d.is_operator("wrong"));
        assert!(!d.is_operator(""));
        let new = d.rotate_token(&mut OsRng).expect("rotate");
        assert!(!d.is_operator(tok.expose()));
        assert!(d.is_operator(new.expose()));
        let again = VerifierDir::open(d.path()).expect("open");
        assert!(again.is_operator(new.expose()));
        assert_eq!(format!("{new:?}"), "OperatorToken(…)");
    }

    #[test]
    fn pending_requests_are_bounded_expire_and_are_answered_once() {
        let (_t, d, _) = dir();
        let mut idx = PendingIndex::load(&d, 1000).expect("load");
        let a = idx
            .create(&d, "http://x/r", None, 1000, 600, 2, &mut OsRng)
            .expect("a");
        idx.create(&d, "http://x/r", None, 1000, 600, 2, &mut OsRng)
            .expect("b");
        let full = idx.create(&d, "http://x/r", None, 1001, 600, 2, &mut OsRng);
        assert_eq!(
            full.map(|_| ()).map_err(|e| e.code()),
            Err(ReasonCode::TooManyPending)
        );
        // Both expire: they are removed, from the index and from disk, and room is made.
        idx.create(&d, "http://x/r", None, 1600, 600, 2, &mut OsRng)
            .expect("after expiry");
        assert_eq!(idx.len(), 1);
        assert_eq!(d.sweep(1600).expect("sweep").len(), 1);
        assert!(d.pending(&a.state, 1000).expect("read").is_none());
        // Answered once.
        let c = d
            .new_pending("http://x/r", 2000, 600, &mut OsRng)
            .expect("c");
        assert!(d.take_pending(&c.state, 2001).expect("take").is_some());
        assert!(d.take_pending(&c.state, 2001).expect("again").is_none());
        // An expired request is refused and removed.
        let e = d
            .new_pending("http://x/r", 2000, 10, &mut OsRng)
            .expect("e");
        assert!(d.take_pending(&e.state, 2010).expect("late").is_none());
        assert!(d.pending(&e.state, 0).expect("gone").is_none());
        // A state that is not ours is no path.
        assert!(d.pending("../verifier", 0).expect("odd").is_none());
    }

    #[test]
    fn receipts_are_listed_newest_first_in_pages() {
        let (_t, d, _) = dir();
        assert!(d.receipts(10, None).expect("none yet").is_empty());
        for (at, verdict) in [(1000, "ACCEPT"), (3000, "REJECT"), (2000, "INDETERMINATE")] {
            let p = d
                .save_receipt(
                    &format!("state{at}"),
                    &serde_json::json!({"policy": "loan", "verdict": verdict}),
                    at,
                )
                .expect("save");
            assert_eq!(receipt_id(&p), Some(format!("{at}-state{at}")));
        }
        // Not receipts: a temporary file, a name that is no id.
        std::fs::write(d.path().join("receipts/.9-x.json.tmp"), "{}").expect("tmp");
        std::fs::write(d.path().join("receipts/notes.json"), "{}").expect("other");
        let first = d.receipts(2, None).expect("list");
        let ids: Vec<&str> = first.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["3000-state3000", "2000-state2000"]);
        assert_eq!(first[0].verdict, "REJECT");
        assert_eq!(first[0].at, 3000);
        let next = d.receipts(2, Some(&first[1].id)).expect("next page");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, "1000-state1000");
        assert!(d.receipt("1000-state1000").expect("read").is_some());
        assert_eq!(
            d.receipt_of("state2000").expect("scan").as_deref(),
            Some("2000-state2000")
        );
        assert_eq!(d.receipt_of("state9").expect("scan"), None);
        for bad in ["../verifier", "01000-state1000", "1000-../x", "x-y"] {
            assert!(d.receipt(bad).expect("no path").is_none(), "{bad}");
        }
    }

    #[test]
    fn a_request_keeps_its_policy_and_old_files_still_read() {
        let (_t, d, _) = dir();
        let p = d
            .new_request("http://x/r", Some("loan"), 1000, 600, &mut OsRng)
            .expect("request");
        let open = d.request(&p.state, 1000).expect("read").expect("open");
        assert_eq!(open.policy.as_deref(), Some("loan"));
        assert_eq!(d.pending(&p.state, 1000).expect("read"), Some(p.clone()));
        // A request written before policies were kept: the default policy.
        let old = serde_json::to_vec(&p).expect("json");
        std::fs::write(d.path().join(format!("requests/{}.json", p.state)), old).expect("write");
        let taken = d.take_request(&p.state, 1000).expect("take").expect("open");
        assert_eq!(taken.policy, None);
        assert!(
            d.request(&p.state, 1000).expect("read").is_none(),
            "answered once"
        );
    }

    #[test]
    fn a_directory_without_verifier_says_so() {
        let t = tempfile::tempdir().expect("tempdir");
        let e = VerifierDir::open(t.path()).expect_err("empty");
        assert_eq!(e.code(), ReasonCode::NotInitialized);
    }
}
