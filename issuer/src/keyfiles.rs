//! The binary's key store: passphrase-sealed key files in `<storage>/keys/`, and the ways to
//! initialize and open an issuer from its configuration. File paths and passphrases stay here,
//! out of the issuance core.

use std::path::{Path, PathBuf};

use rand_core::OsRng;
use zeroize::Zeroizing;

use bizcred_core::keyfile::{self, KdfParams, KeyFileError};
use bizcred_core::keys::SecretKey;

use crate::config::Config;
use crate::issuer::{Error, Issuer, KeyStore, KeyStoreError};
use crate::store::Store;

/// The passphrase environment variable.
pub const PASSPHRASE_ENV: &str = "BIZCRED_ISSUER_PASSPHRASE";

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileStoreError {
    /// Reading the file failed.
    #[error("{}: {source} (hint: run `bizcred-issuer init` first)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the file failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Sealing or opening failed (a wrong passphrase, a damaged file).
    #[error("{}: {source}", path.display())]
    Sealed {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyFileError,
    },
}

/// Key files sealed with a passphrase (Argon2id + XChaCha20-Poly1305), one per key.
pub struct SealedKeyFiles {
    dir: PathBuf,
    passphrase: Zeroizing<String>,
}

impl std::fmt::Debug for SealedKeyFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKeyFiles")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SealedKeyFiles {
    /// The key files of the issuer whose storage directory is `storage`.
    pub fn new(storage: &Path, passphrase: Zeroizing<String>) -> SealedKeyFiles {
        SealedKeyFiles {
            dir: storage.join("keys"),
            passphrase,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

fn boxed(name: &str, e: KeyFileStoreError) -> KeyStoreError {
    KeyStoreError {
        name: name.to_owned(),
        source: Box::new(e),
    }
}

impl KeyStore for SealedKeyFiles {
    fn load(&self, name: &str) -> Result<SecretKey, KeyStoreError> {
        let path = self.path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(source) => return Err(boxed(name, KeyFileStoreError::Read { path, source })),
        };
        keyfile::open(&text, self.passphrase.as_bytes())
            .map_err(|source| boxed(name, KeyFileStoreError::Sealed { path, source }))
    }

    fn save(&self, name: &str, key: &SecretKey) -> Result<(), KeyStoreError> {
        let path = self.path(name);
        let write = |p: &Path, e| {
            boxed(
                name,
                KeyFileStoreError::Write {
                    path: p.to_owned(),
                    source: e,
                },
            )
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| write(&self.dir, e))?;
        let text = keyfile::seal(
            key,
            self.passphrase.as_bytes(),
            KdfParams::DEFAULT,
            &mut OsRng,
        )
        .map_err(|source| {
            boxed(
                name,
                KeyFileStoreError::Sealed {
                    path: path.clone(),
                    source,
                },
            )
        })?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).map_err(|e| write(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| write(&path, e))
    }
}

/// The sled database of the issuer whose storage directory is `cfg.storage`.
pub fn store_path(cfg: &Config) -> PathBuf {
    cfg.storage.join("db")
}

impl Issuer {
    /// Creates the agency's keys (sealed with `passphrase`) and its did:webvh DID. Returns the
    /// DID and its log, so the caller need not reopen the store (sled releases its lock
    /// asynchronously).
    pub fn init(cfg: &Config, passphrase: &str, now: i64) -> Result<(String, String), Error> {
        let store = Store::open_config(cfg)?;
        let keys = SealedKeyFiles::new(&cfg.storage, Zeroizing::new(passphrase.to_owned()));
        Issuer::initialize(cfg, &store, &keys, now)
    }

    /// Initializes and opens the issuer in one step, on one open store (sled releases a
    /// store's lock asynchronously, so closing and reopening it in one process can fail).
    /// Returns the issuer and its did:webvh log.
    pub fn create(
        config: Config,
        passphrase: Zeroizing<String>,
        now: i64,
        clock: impl bizcred_core::time::Clock + 'static,
    ) -> Result<(Issuer, String), Error> {
        let store = Store::open_config(&config)?;
        let keys = SealedKeyFiles::new(&config.storage, passphrase);
        let (_, log) = Issuer::initialize(&config, &store, &keys, now)?;
        Ok((Issuer::new(config, store, Box::new(keys), clock)?, log))
    }

    /// Opens an initialized issuer from its configuration and key passphrase.
    pub fn open(
        config: Config,
        passphrase: Zeroizing<String>,
        clock: impl bizcred_core::time::Clock + 'static,
    ) -> Result<Issuer, Error> {
        let store = Store::open_config(&config)?;
        let keys = SealedKeyFiles::new(&config.storage, passphrase);
        Issuer::new(config, store, Box::new(keys), clock)
    }
}
