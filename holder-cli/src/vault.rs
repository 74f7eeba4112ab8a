//! The wallet's encrypted store, behind the [`Vault`] trait, and its implementation on sled
//! ([`SledVault`]). A random 256-bit master key, wrapped under a key that Argon2id derives from
//! the passphrase, encrypts every record (XChaCha20-Poly1305, with the tree and record id as
//! associated data). A wrong passphrase fails to unwrap the master key and touches nothing. A
//! record that cannot be encrypted is an error, and nothing is stored.

use std::path::{Path, PathBuf};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_schemas::ReasonCode;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::history::HistoryEntry;
use crate::store::StoredCredential;

/// Why the vault could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// No wallet at that place.
    #[error("no wallet in {}", .0.display())]
    Missing(PathBuf),
    /// A wallet is already there.
    #[error("a wallet already exists in {}", .0.display())]
    Exists(PathBuf),
    /// The passphrase does not open the wallet or the backup.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The store cannot be opened (another wallet process may hold it).
    #[error("cannot open the wallet store (is another bizcred-wallet running?)")]
    Open(#[source] sled::Error),
    /// The wallet directory cannot be created.
    #[error("cannot create {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A storage operation failed.
    #[error("wallet storage")]
    Storage(#[from] sled::Error),
    /// The key derivation failed.
    #[error("the passphrase key derivation failed: {0}")]
    Kdf(argon2::Error),
    /// A record could not be encrypted; nothing was stored.
    #[error("cannot encrypt {record}; nothing was stored")]
    Encrypt {
        /// The record (`tree/id`).
        record: String,
    },
    /// A record does not decrypt or does not decode: the store is damaged.
    #[error("record {record} is damaged")]
    Damaged {
        /// The record (`tree/id`).
        record: String,
    },
    /// A record does not encode or decode as JSON.
    #[error("record {record} does not encode")]
    Encoding {
        /// The record (`tree/id`).
        record: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The wallet has no holder key.
    #[error("the wallet has no holder key")]
    NoHolderKey,
    /// A blob is not a bizcred wallet backup.
    #[error("not a bizcred wallet backup")]
    NotABackup,
}

impl VaultError {
    /// The stable code of this error (one of the shared [`ReasonCode`]s).
    pub fn code(&self) -> ReasonCode {
        match self {
            VaultError::Missing(_) => ReasonCode::NotInitialized,
            VaultError::Exists(_) => ReasonCode::AlreadyInitialized,
            VaultError::WrongPassphrase => ReasonCode::WrongPassphrase,
            VaultError::Open(_) => ReasonCode::WalletLocked,
            VaultError::CreateDir { .. } | VaultError::Storage(_) => ReasonCode::StorageFailed,
            VaultError::Kdf(_) => ReasonCode::KdfFailed,
            VaultError::Encrypt { .. } => ReasonCode::EncryptionFailed,
            VaultError::Damaged { .. } | VaultError::Encoding { .. } => ReasonCode::RecordDamaged,
            VaultError::NoHolderKey => ReasonCode::NoHolderKey,
            VaultError::NotABackup => ReasonCode::BackupDamaged,
        }
    }

    /// True for refusals the user can act on (exit 1).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            VaultError::Missing(_) | VaultError::Exists(_) | VaultError::WrongPassphrase
        )
    }
}

/// What the wallet keeps: its holder key, its credentials and its disclosure history. Every
/// record is encrypted at rest by the implementation.
pub trait Vault {
    /// The holder key.
    fn holder_key(&self) -> Result<SecretKey, VaultError>;
    /// Stores the holder key (replacing any).
    fn set_holder_key(&self, key: &SecretKey) -> Result<(), VaultError>;
    /// Every held credential, in id order.
    fn credentials(&self) -> Result<Vec<StoredCredential>, VaultError>;
    /// One credential.
    fn credential(&self, id: &str) -> Result<Option<StoredCredential>, VaultError>;
    /// Stores a credential (durable when this returns).
    fn put_credential(&self, c: &StoredCredential) -> Result<(), VaultError>;
    /// Stores several credentials at once: all or none.
    fn put_credentials(&self, cs: &[StoredCredential]) -> Result<(), VaultError>;
    /// Deletes a credential; true when it existed.
    fn delete_credential(&self, id: &str) -> Result<bool, VaultError>;
    /// The disclosure history, oldest first.
    fn history(&self) -> Result<Vec<HistoryEntry>, VaultError>;
    /// Appends to the disclosure history.
    fn append_history(&self, e: &HistoryEntry) -> Result<(), VaultError>;
}

const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const NONCE_LEN: usize = 24;
const BACKUP_MAGIC: &[u8] = b"bizcred-wallet-backup/1";

fn kek(passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let params = argon2::Params::new(M_COST, T_COST, 1, Some(32)).map_err(VaultError::Kdf)?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(VaultError::Kdf)?;
    Ok(out)
}

/// Seals `plain` with `cipher` under a fresh random nonce: `nonce || ciphertext`. A cipher
/// failure is an error (never an empty ciphertext).
fn seal_with<A: Aead>(
    cipher: &A,
    record: &str,
    aad: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            chacha20poly1305::aead::Nonce::<A>::from_slice(&nonce),
            Payload { msg: plain, aad },
        )
        .map_err(|_| VaultError::Encrypt {
            record: record.to_owned(),
        })?;
    let mut out = nonce.to_vec();
    out.extend(ct);
    Ok(out)
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    // A decryption failure is the answer (wrong key or damaged record), mapped by the caller.
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.into())
}

/// Encrypts bytes under a passphrase (a self-contained blob: magic, salt, nonce, ciphertext),
/// for backups.
pub fn seal_passphrase(passphrase: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let k = kek(passphrase, &salt)?;
    let mut out = BACKUP_MAGIC.to_vec();
    out.extend(salt);
    out.extend(seal_with(&cipher(&k), "backup", b"backup", plain)?);
    Ok(out)
}

/// Opens a passphrase-encrypted blob.
pub fn open_passphrase(passphrase: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let rest = blob
        .strip_prefix(BACKUP_MAGIC)
        .ok_or(VaultError::NotABackup)?;
    if rest.len() < 16 {
        return Err(VaultError::NotABackup);
    }
    let (salt, sealed) = rest.split_at(16);
    let k = kek(passphrase, salt)?;
    open_with(&k, b"backup", sealed).ok_or(VaultError::WrongPassphrase)
}

/// The holder key record as read back (inside the encrypted record only). Neither `Debug` nor
/// `Clone`; the secret is zeroized when the record is dropped.
#[derive(Deserialize)]
struct HolderRecord {
    alg: Algorithm,
    secret: String,
}

impl Drop for HolderRecord {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// The holder key record as written: it borrows the encoded secret, which the writer keeps
/// in a zeroizing buffer.
#[derive(Serialize)]
struct HolderRecordRef<'a> {
    alg: Algorithm,
    secret: &'a str,
}

const KEYS: &str = "keys";
const HOLDER: &str = "holder";
const CREDENTIALS: &str = "credentials";
const HISTORY: &str = "history";

/// The wallet store on sled.
pub struct SledVault {
    db: sled::Db,
    master: Zeroizing<[u8; 32]>,
    fail_point: Option<fn(&str)>,
}

impl std::fmt::Debug for SledVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SledVault(..)")
    }
}

impl SledVault {
    /// Creates a wallet at `dir`.
    pub fn create(dir: &Path, passphrase: &[u8]) -> Result<SledVault, VaultError> {
        if dir.join("db").exists() {
            return Err(VaultError::Exists(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(|source| VaultError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let db = sled::open(dir.join("db")).map_err(VaultError::Open)?;
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut master = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(master.as_mut());
        let k = kek(passphrase, &salt)?;
        let wrapped = seal_with(&cipher(&k), "meta/master", b"master", master.as_ref())?;
        let meta = db.open_tree("meta")?;
        meta.insert("salt", &salt)?;
        meta.insert("master", wrapped)?;
        db.flush()?;
        Ok(SledVault {
            db,
            master,
            fail_point: None,
        })
    }

    /// Opens the wallet at `dir` with `passphrase`.
    pub fn open(dir: &Path, passphrase: &[u8]) -> Result<SledVault, VaultError> {
        if !dir.join("db").exists() {
            return Err(VaultError::Missing(dir.to_path_buf()));
        }
        let db = sled::open(dir.join("db")).map_err(VaultError::Open)?;
        let meta = db.open_tree("meta")?;
        let salt = meta
            .get("salt")?
            .ok_or_else(|| VaultError::Missing(dir.to_path_buf()))?;
        let wrapped = meta
            .get("master")?
            .ok_or_else(|| VaultError::Missing(dir.to_path_buf()))?;
        let k = kek(passphrase, &salt)?;
        let plain = open_with(&k, b"master", &wrapped).ok_or(VaultError::WrongPassphrase)?;
        let master: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Damaged {
                record: "meta/master".into(),
            })?;
        Ok(SledVault {
            db,
            master: Zeroizing::new(master),
            fail_point: None,
        })
    }

    /// Calls `hook` at each named point where a write is in flight (applied, not yet flushed):
    /// `<tree>:written` after a record is inserted, `<tree>:batch-written` after a batch is
    /// applied. Crash tests use it to kill the process exactly there.
    pub fn with_fail_point(mut self, hook: fn(&str)) -> SledVault {
        self.fail_point = Some(hook);
        self
    }

    fn fail_point(&self, tree: &str, what: &str) {
        if let Some(hook) = self.fail_point {
            hook(&format!("{tree}:{what}"));
        }
    }

    fn record(tree: &str, id: &str) -> String {
        format!("{tree}/{id}")
    }

    fn seal_record<T: Serialize>(
        &self,
        tree: &str,
        id: &str,
        value: &T,
    ) -> Result<Vec<u8>, VaultError> {
        let record = Self::record(tree, id);
        let plain =
            Zeroizing::new(
                serde_json::to_vec(value).map_err(|source| VaultError::Encoding {
                    record: record.clone(),
                    source,
                })?,
            );
        seal_with(&cipher(&self.master), &record, record.as_bytes(), &plain)
    }

    fn put<T: Serialize>(&self, tree: &str, id: &str, value: &T) -> Result<(), VaultError> {
        let sealed = self.seal_record(tree, id, value)?;
        self.db.open_tree(tree)?.insert(id.as_bytes(), sealed)?;
        self.fail_point(tree, "written");
        self.db.flush()?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, tree: &str, id: &str) -> Result<Option<T>, VaultError> {
        let Some(sealed) = self.db.open_tree(tree)?.get(id.as_bytes())? else {
            return Ok(None);
        };
        let record = Self::record(tree, id);
        let plain = open_with(&self.master, record.as_bytes(), &sealed).ok_or_else(|| {
            VaultError::Damaged {
                record: record.clone(),
            }
        })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|source| VaultError::Encoding { record, source })
    }

    fn all<T: DeserializeOwned>(&self, tree: &str) -> Result<Vec<T>, VaultError> {
        let mut out = Vec::new();
        for kv in self.db.open_tree(tree)?.iter() {
            let (k, _) = kv?;
            let id = std::str::from_utf8(&k).map_err(|_| VaultError::Damaged {
                record: format!("{tree}/{}", String::from_utf8_lossy(&k)),
            })?;
            if let Some(v) = self.get(tree, id)? {
                out.push(v);
            }
        }
        Ok(out)
    }
}

impl Vault for SledVault {
    fn holder_key(&self) -> Result<SecretKey, VaultError> {
        let h: HolderRecord = self.get(KEYS, HOLDER)?.ok_or(VaultError::NoHolderKey)?;
        let damaged = || VaultError::Damaged {
            record: Self::record(KEYS, HOLDER),
        };
        let bytes = Zeroizing::new(
            bizcred_core::base64url_decode(h.secret.as_str()).map_err(|_| damaged())?,
        );
        SecretKey::from_bytes(h.alg, &bytes).map_err(|_| damaged())
    }

    fn set_holder_key(&self, key: &SecretKey) -> Result<(), VaultError> {
        let secret = Zeroizing::new(bizcred_core::base64url_encode(key.to_bytes().as_slice()));
        let record = HolderRecordRef {
            alg: key.algorithm(),
            secret: secret.as_str(),
        };
        self.put(KEYS, HOLDER, &record)
    }

    fn credentials(&self) -> Result<Vec<StoredCredential>, VaultError> {
        self.all(CREDENTIALS)
    }

    fn credential(&self, id: &str) -> Result<Option<StoredCredential>, VaultError> {
        self.get(CREDENTIALS, id)
    }

    fn put_credential(&self, c: &StoredCredential) -> Result<(), VaultError> {
        self.put(CREDENTIALS, &c.id, c)
    }

    fn put_credentials(&self, cs: &[StoredCredential]) -> Result<(), VaultError> {
        let mut batch = sled::Batch::default();
        for c in cs {
            batch.insert(c.id.as_bytes(), self.seal_record(CREDENTIALS, &c.id, c)?);
        }
        self.db.open_tree(CREDENTIALS)?.apply_batch(batch)?;
        self.fail_point(CREDENTIALS, "batch-written");
        self.db.flush()?;
        Ok(())
    }

    fn delete_credential(&self, id: &str) -> Result<bool, VaultError> {
        let old = self.db.open_tree(CREDENTIALS)?.remove(id.as_bytes())?;
        self.db.flush()?;
        Ok(old.is_some())
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, VaultError> {
        self.all(HISTORY)
    }

    fn append_history(&self, e: &HistoryEntry) -> Result<(), VaultError> {
        // A monotonic key keeps the history in order.
        let id = format!("{:020}", self.db.generate_id()?);
        self.put(HISTORY, &id, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::consts::{U0, U16, U24};
    use chacha20poly1305::aead::{AeadCore, AeadInPlace, Nonce, Tag};

    /// An AEAD whose encryption always fails, as a cipher can (e.g. a message over its limit).
    struct FailingAead;
    impl AeadCore for FailingAead {
        type NonceSize = U24;
        type TagSize = U16;
        type CiphertextOverhead = U0;
    }
    impl AeadInPlace for FailingAead {
        fn encrypt_in_place_detached(
            &self,
            _: &Nonce<Self>,
            _: &[u8],
            _: &mut [u8],
        ) -> Result<Tag<Self>, chacha20poly1305::aead::Error> {
            Err(chacha20poly1305::aead::Error)
        }
        fn decrypt_in_place_detached(
            &self,
            _: &Nonce<Self>,
            _: &[u8],
            _: &mut [u8],
            _: &Tag<Self>,
        ) -> Result<(), chacha20poly1305::aead::Error> {
            Err(chacha20poly1305::aead::Error)
        }
    }

    #[test]
    fn a_failed_encryption_is_an_error_not_an_empty_ciphertext() {
        let got = seal_with(&FailingAead, "credentials/c1", b"credentials/c1", b"secret");
        match got {
            Err(e) => assert_eq!(e.code().as_str(), "ENCRYPTION_FAILED"),
            Ok(sealed) => panic!("sealed {} bytes without a ciphertext", sealed.len()),
        }
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_the_record() {
        let key = [7u8; 32];
        let sealed = seal_with(&cipher(&key), "t/a", b"t/a", b"hello").expect("seal");
        assert_eq!(
            open_with(&key, b"t/a", &sealed).expect("open").as_slice(),
            b"hello"
        );
        assert!(open_with(&key, b"t/b", &sealed).is_none(), "moved record");
        assert!(
            open_with(&[8u8; 32], b"t/a", &sealed).is_none(),
            "other key"
        );
    }

    /// Resolves only when `T` lacks the trait `M` marks: with the trait, the two impls make
    /// `check` ambiguous and the test does not compile.
    trait Lacks<M> {
        fn check() {}
    }
    struct Has<const N: u8>;
    impl<T: ?Sized> Lacks<()> for T {}
    impl<T: ?Sized + std::fmt::Debug> Lacks<Has<0>> for T {}
    impl<T: Clone> Lacks<Has<1>> for T {}
    impl<T: ?Sized + Serialize> Lacks<Has<2>> for T {}

    #[test]
    fn the_holder_secret_is_in_no_debug_clone_or_serialize_type() {
        // What the vault reads the holder key into, and what it hands out.
        <HolderRecord as Lacks<_>>::check();
        <SecretKey as Lacks<_>>::check();
    }

    #[test]
    fn the_holder_key_round_trips_through_the_encrypted_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let v = SledVault::create(dir.path(), b"pass").expect("create");
        assert_eq!(
            v.holder_key().err().map(|e| e.code().as_str()),
            Some("NO_HOLDER_KEY")
        );
        let key = SecretKey::generate(Algorithm::ES256, &mut OsRng);
        v.set_holder_key(&key).expect("set");
        assert_eq!(v.holder_key().expect("get").public_key(), key.public_key());
        // The record is sealed: its bytes are not the JSON of the key.
        let sealed =
            v.db.open_tree(KEYS)
                .expect("tree")
                .get(HOLDER)
                .expect("get")
                .expect("some");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }
}
