//! The wallet's encrypted store on sled. A random 256-bit master key, wrapped under a key that
//! Argon2id derives from the passphrase, encrypts every record (XChaCha20-Poly1305, with the
//! tree and record id as associated data). A wrong passphrase fails to unwrap the master key
//! and touches nothing.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{de::DeserializeOwned, Serialize};
use zeroize::Zeroizing;

/// Why the vault could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultError {
    /// No wallet at that place.
    #[error("no wallet in {0}")]
    Missing(String),
    /// A wallet is already there.
    #[error("a wallet already exists in {0}")]
    Exists(String),
    /// The passphrase does not open the wallet.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Storage failed, or a record is damaged.
    #[error("wallet storage: {0}")]
    Storage(String),
}

impl From<sled::Error> for VaultError {
    fn from(e: sled::Error) -> VaultError {
        VaultError::Storage(e.to_string())
    }
}

const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;

fn kek(passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let params = argon2::Params::new(M_COST, T_COST, 1, Some(32))
        .map_err(|e| VaultError::Storage(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| VaultError::Storage(e.to_string()))?;
    Ok(out)
}

fn seal_with(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut nonce);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend(ct);
    out
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 24 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(24);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// Encrypts bytes under a passphrase (a self-contained blob: salt, nonce, ciphertext), for
/// backups.
pub(crate) fn seal_passphrase(passphrase: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let k = kek(passphrase, &salt)?;
    let mut out = b"bizcred-wallet-backup/1".to_vec();
    out.extend(salt);
    out.extend(seal_with(&k, b"backup", plain));
    Ok(out)
}

/// Opens a passphrase-encrypted blob.
pub(crate) fn open_passphrase(
    passphrase: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let rest = blob
        .strip_prefix(b"bizcred-wallet-backup/1".as_slice())
        .ok_or_else(|| VaultError::Storage("not a bizcred wallet backup".into()))?;
    if rest.len() < 16 {
        return Err(VaultError::Storage("truncated backup".into()));
    }
    let (salt, sealed) = rest.split_at(16);
    let k = kek(passphrase, salt)?;
    open_with(&k, b"backup", sealed).ok_or(VaultError::WrongPassphrase)
}

/// An open wallet store.
pub(crate) struct Vault {
    db: sled::Db,
    master: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// Creates a wallet at `dir`.
    pub(crate) fn create(dir: &Path, passphrase: &[u8]) -> Result<Vault, VaultError> {
        if dir.join("db").exists() {
            return Err(VaultError::Exists(dir.display().to_string()));
        }
        std::fs::create_dir_all(dir).map_err(|e| VaultError::Storage(e.to_string()))?;
        let db = sled::open(dir.join("db"))?;
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut master = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(master.as_mut());
        let k = kek(passphrase, &salt)?;
        let wrapped = seal_with(&k, b"master", master.as_ref());
        let meta = db.open_tree("meta")?;
        meta.insert("salt", &salt)?;
        meta.insert("master", wrapped)?;
        db.flush()?;
        Ok(Vault { db, master })
    }

    /// Opens the wallet at `dir` with `passphrase`.
    pub(crate) fn open(dir: &Path, passphrase: &[u8]) -> Result<Vault, VaultError> {
        if !dir.join("db").exists() {
            return Err(VaultError::Missing(dir.display().to_string()));
        }
        let db = sled::open(dir.join("db")).map_err(|e| {
            VaultError::Storage(format!("{e} (is another bizcred-wallet running?)"))
        })?;
        let meta = db.open_tree("meta")?;
        let salt = meta
            .get("salt")?
            .ok_or_else(|| VaultError::Missing(dir.display().to_string()))?;
        let wrapped = meta
            .get("master")?
            .ok_or_else(|| VaultError::Missing(dir.display().to_string()))?;
        let k = kek(passphrase, &salt)?;
        let plain = open_with(&k, b"master", &wrapped).ok_or(VaultError::WrongPassphrase)?;
        let master: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Storage("damaged master key".into()))?;
        Ok(Vault {
            db,
            master: Zeroizing::new(master),
        })
    }

    fn aad(tree: &str, id: &str) -> Vec<u8> {
        format!("{tree}/{id}").into_bytes()
    }

    /// Stores a record (encrypted, durable).
    pub(crate) fn put<T: Serialize>(
        &self,
        tree: &str,
        id: &str,
        value: &T,
    ) -> Result<(), VaultError> {
        let plain = Zeroizing::new(
            serde_json::to_vec(value).map_err(|e| VaultError::Storage(e.to_string()))?,
        );
        let sealed = seal_with(&self.master, &Self::aad(tree, id), &plain);
        self.db.open_tree(tree)?.insert(id.as_bytes(), sealed)?;
        self.db.flush()?;
        Ok(())
    }

    /// Stores several records in one atomic batch.
    pub(crate) fn put_all<T: Serialize>(
        &self,
        tree: &str,
        items: &[(String, T)],
    ) -> Result<(), VaultError> {
        let mut batch = sled::Batch::default();
        for (id, v) in items {
            let plain = Zeroizing::new(
                serde_json::to_vec(v).map_err(|e| VaultError::Storage(e.to_string()))?,
            );
            batch.insert(
                id.as_bytes(),
                seal_with(&self.master, &Self::aad(tree, id), &plain),
            );
        }
        self.db.open_tree(tree)?.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// A record.
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        tree: &str,
        id: &str,
    ) -> Result<Option<T>, VaultError> {
        let Some(sealed) = self.db.open_tree(tree)?.get(id.as_bytes())? else {
            return Ok(None);
        };
        let plain = open_with(&self.master, &Self::aad(tree, id), &sealed)
            .ok_or_else(|| VaultError::Storage(format!("record {tree}/{id} is damaged")))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| VaultError::Storage(e.to_string()))
    }

    /// Every record of a tree, in key order.
    pub(crate) fn all<T: DeserializeOwned>(
        &self,
        tree: &str,
    ) -> Result<Vec<(String, T)>, VaultError> {
        let mut out = Vec::new();
        for kv in self.db.open_tree(tree)?.iter() {
            let (k, _) = kv?;
            let id = String::from_utf8_lossy(&k).into_owned();
            if let Some(v) = self.get(tree, &id)? {
                out.push((id, v));
            }
        }
        Ok(out)
    }

    /// Deletes a record; true when it existed.
    pub(crate) fn delete(&self, tree: &str, id: &str) -> Result<bool, VaultError> {
        let old = self.db.open_tree(tree)?.remove(id.as_bytes())?;
        self.db.flush()?;
        Ok(old.is_some())
    }

    /// A monotonic key for append-only trees (history).
    pub(crate) fn next_id(&self) -> Result<String, VaultError> {
        Ok(format!("{:020}", self.db.generate_id()?))
    }
}
