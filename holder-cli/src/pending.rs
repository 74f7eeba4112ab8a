//! Receives in progress: what a `receive` holds once the issuer granted its access token and
//! until its credential is stored, so an interrupted receive (a killed process, a cut
//! connection after the issuer committed the credential) is resumed with the same access token
//! and a fresh key proof instead of being lost with its single-use offer.
//!
//! Behind the [`PendingReceives`] trait; [`PendingDir`] keeps each record as a file of the
//! core's sealed format (purpose [`PURPOSE`]) in the wallet directory, sealed under a key
//! derived from the holder key (which only the wallet passphrase opens), written atomically
//! (a temporary file, synced, then renamed).

use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use bizcred_core::keys::SecretKey;
use bizcred_core::sealed::{self, KdfParams, SealedError};
use bizcred_schemas::ReasonCode;

use crate::error::WalletError;

/// The sealed-file purpose of a pending receive.
pub const PURPOSE: &str = "bizcred wallet pending receive";

/// Largest pending-receive file read (bytes).
pub const MAX_RECORD_LEN: u64 = 64 * 1024;

const SUFFIX: &str = ".sealed";

/// A receive that holds its access token and has not stored its credential yet.
#[derive(Serialize, Deserialize)]
pub struct PendingReceive {
    /// The offer's id ([`offer_id`] of its URI): the record's name.
    pub id: String,
    /// The credential issuer's URL.
    pub credential_issuer: String,
    /// The credential configuration requested.
    pub configuration_id: String,
    /// The type the configuration offers (the credential must be of it).
    pub vct: Option<String>,
    /// The credential endpoint.
    pub credential_endpoint: String,
    /// The nonce endpoint, when the issuer wants a `c_nonce` in the proof.
    pub nonce_endpoint: Option<String>,
    /// The issuer's display name in the language of the receive.
    pub issuer_name: Option<String>,
    /// The access token (a bearer secret: not printed by `Debug`, zeroized on drop).
    access_token: String,
    /// When the access token expires (milliseconds since the epoch), when the issuer said.
    pub token_expires_ms: Option<i64>,
    /// When the receive started (milliseconds since the epoch).
    pub started_ms: i64,
    /// The access token is DPoP-bound (RFC 9449) to the wallet's holder key: it is presented
    /// with the `DPoP` scheme and a proof by that key.
    #[serde(default)]
    pub dpop: bool,
    /// The issuer's notification endpoint (OpenID4VCI 1.0 §11), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_endpoint: Option<String>,
}

impl PendingReceive {
    /// A pending receive holding `access_token`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        credential_issuer: String,
        configuration_id: String,
        vct: Option<String>,
        credential_endpoint: String,
        nonce_endpoint: Option<String>,
        issuer_name: Option<String>,
        access_token: String,
        token_expires_ms: Option<i64>,
        started_ms: i64,
    ) -> PendingReceive {
        PendingReceive {
            id,
            credential_issuer,
            configuration_id,
            vct,
            credential_endpoint,
            nonce_endpoint,
            issuer_name,
            access_token,
            token_expires_ms,
            started_ms,
            dpop: false,
            notification_endpoint: None,
        }
    }

    /// The access token (for the credential request only).
    pub(crate) fn access_token(&self) -> &str {
        &self.access_token
    }

    /// True when the access token has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.token_expires_ms.is_some_and(|e| now_ms >= e)
    }
}

impl Drop for PendingReceive {
    fn drop(&mut self) {
        self.access_token.zeroize();
    }
}

impl std::fmt::Debug for PendingReceive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReceive")
            .field("id", &self.id)
            .field("credential_issuer", &self.credential_issuer)
            .field("configuration_id", &self.configuration_id)
            .field("access_token", &"..")
            .field("token_expires_ms", &self.token_expires_ms)
            .finish_non_exhaustive()
    }
}

/// The id of an offer, from its URI as given (a by-reference offer cannot be fetched again
/// once used, so the id does not depend on its content): 32 hex digits of its SHA-256.
pub fn offer_id(uri: &str) -> String {
    let d = Sha256::digest(uri.trim().as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Why a pending-receive record could not be written, read or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PendingError {
    /// A file operation failed.
    #[error("the file system")]
    Io(#[source] std::io::Error),
    /// The record could not be sealed (nothing was written).
    #[error("cannot seal the record")]
    Seal(#[source] SealedError),
    /// The record does not open with this wallet's key, or is not a sealed record.
    #[error("the record does not open")]
    Open(#[source] SealedError),
    /// The record is larger than any record.
    #[error("the record is larger than {MAX_RECORD_LEN} bytes")]
    TooLarge,
    /// The record does not encode or decode.
    #[error("the record does not encode or decode")]
    Json(#[source] serde_json::Error),
}

impl PendingError {
    /// The stable code of this error.
    pub fn code(&self) -> ReasonCode {
        match self {
            PendingError::Io(_) => ReasonCode::StorageFailed,
            PendingError::Seal(e) => e.code(),
            PendingError::Open(_) | PendingError::TooLarge | PendingError::Json(_) => {
                ReasonCode::RecordDamaged
            }
        }
    }
}

/// Where pending receives are kept.
pub trait PendingReceives {
    /// Every pending receive, in id order.
    fn pending(&self) -> Result<Vec<PendingReceive>, WalletError>;
    /// The pending receive of an offer.
    fn pending_for(&self, id: &str) -> Result<Option<PendingReceive>, WalletError>;
    /// Stores a pending receive (durable when this returns), replacing one of the same id.
    fn put_pending(&self, p: &PendingReceive) -> Result<(), WalletError>;
    /// Removes a pending receive (durable when this returns); true when it existed.
    fn remove_pending(&self, id: &str) -> Result<bool, WalletError>;
}

/// Pending receives as sealed files in a directory (`<wallet dir>/pending`).
pub struct PendingDir {
    dir: PathBuf,
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PendingDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingDir")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PendingDir {
    /// The pending receives of the wallet whose directory is `wallet_dir` and holder key is
    /// `holder`: records are sealed under a key derived from the holder key.
    pub fn new(wallet_dir: &Path, holder: &SecretKey) -> PendingDir {
        let mut h = Sha256::new();
        h.update(b"bizcred-wallet pending receive key/1\0");
        h.update(holder.to_bytes().as_slice());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&h.finalize());
        PendingDir {
            dir: wallet_dir.join("pending"),
            secret,
        }
    }

    /// The directory the records are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> Result<PathBuf, WalletError> {
        // Ids are hex digests; anything else would name a file elsewhere.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(record_error(
                id,
                PendingError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a pending receive id is hex digits",
                )),
            ));
        }
        Ok(self.dir.join(format!("{id}{SUFFIX}")))
    }

    fn read(&self, id: &str, path: &Path) -> Result<Option<PendingReceive>, WalletError> {
        let err = |e| record_error(id, e);
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(PendingError::Io(e))),
        };
        let mut text = String::new();
        let n = std::io::Read::read_to_string(
            &mut std::io::Read::take(f, MAX_RECORD_LEN + 1),
            &mut text,
        )
        .map_err(|e| err(PendingError::Io(e)))?;
        if n as u64 > MAX_RECORD_LEN {
            return Err(err(PendingError::TooLarge));
        }
        let plain = sealed::open(&text, self.secret.as_slice(), PURPOSE)
            .map_err(|e| err(PendingError::Open(e)))?;
        let p: PendingReceive =
            serde_json::from_slice(&plain).map_err(|e| err(PendingError::Json(e)))?;
        if p.id != id {
            // A record renamed onto another offer's name is not that offer's.
            return Err(err(PendingError::Open(SealedError::Malformed("id"))));
        }
        Ok(Some(p))
    }
}

fn record_error(id: &str, source: PendingError) -> WalletError {
    WalletError::PendingRecord {
        id: id.to_owned(),
        source,
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl PendingReceives for PendingDir {
    fn pending(&self) -> Result<Vec<PendingReceive>, WalletError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(record_error("*", PendingError::Io(e))),
        };
        let mut ids = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| record_error("*", PendingError::Io(e)))?;
            let name = entry.file_name();
            // Temporary files of an interrupted write are not records.
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = self.read(&id, &self.path(&id)?)? {
                out.push(p);
            }
        }
        Ok(out)
    }

    fn pending_for(&self, id: &str) -> Result<Option<PendingReceive>, WalletError> {
        let path = self.path(id)?;
        self.read(id, &path)
    }

    fn put_pending(&self, p: &PendingReceive) -> Result<(), WalletError> {
        let err = |e| record_error(&p.id, e);
        let path = self.path(&p.id)?;
        let plain = Zeroizing::new(serde_json::to_vec(p).map_err(|e| err(PendingError::Json(e)))?);
        let text = sealed::seal(
            &plain,
            self.secret.as_slice(),
            KdfParams::DEFAULT,
            PURPOSE,
            &mut OsRng,
        )
        .map_err(|e| err(PendingError::Seal(e)))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| err(PendingError::Io(e)))?;
        let tmp = self.dir.join(format!("{}.tmp", p.id));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)
        };
        write().map_err(|e| err(PendingError::Io(e)))
    }

    fn remove_pending(&self, id: &str) -> Result<bool, WalletError> {
        let path = self.path(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir).map_err(|e| record_error(id, PendingError::Io(e)))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(record_error(id, PendingError::Io(e))),
        }
    }
}
