//! The wallet's encrypted store, behind the [`Vault`] trait, and its implementation on sled
//! ([`SledVault`]). A random 256-bit data key encrypts every record (XChaCha20-Poly1305, with
//! the tree and record id as associated data); the data key itself is kept in the core's one
//! sealed-file format ([`bizcred_core::sealed`], Argon2id + XChaCha20-Poly1305) under the
//! passphrase, with the purpose [`VAULT_PURPOSE`]. Backups are sealed the same way with the
//! purpose [`BACKUP_PURPOSE`], so a backup never opens as a wallet or a key file. A wrong
//! passphrase fails to open the data key and touches nothing. A record that cannot be encrypted
//! is an error, and nothing is stored.
//!
//! Wallets and backups written before the sealed format (the data key wrapped by a hand-made
//! Argon2id + XChaCha20-Poly1305 scheme: `meta/salt` and `meta/master`; backups starting with
//! `bizcred-wallet-backup/1`) still open: a wallet is migrated when it is opened with the right
//! passphrase (its data key re-sealed in one atomic write, every record kept as it is), an old
//! backup is read as it is.

use std::path::{Path, PathBuf};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::sealed::{self, KdfParams, SealedError};
use bizcred_schemas::ReasonCode;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::applications::{StoredApplication, MAX_APPLICATIONS};
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
    /// A backup's sealed envelope is damaged, too large, or sealed for another purpose.
    #[error("not a usable bizcred wallet backup")]
    Backup(#[source] SealedError),
    /// The sealed data key (or a backup being written) could not be sealed or opened.
    #[error("the sealed {record} cannot be written or opened")]
    Sealed {
        /// The record (`meta/data-key`, `backup`).
        record: String,
        /// Why.
        #[source]
        source: SealedError,
    },
    /// The wallet keeps as many applications as it may, every one of them still open.
    #[error("the wallet keeps {limit} applications, all still open; withdraw one (bizcred-wallet withdraw <id>) before applying again")]
    TooManyApplications {
        /// The bound.
        limit: usize,
    },
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
            VaultError::NotABackup | VaultError::Backup(_) => ReasonCode::BackupDamaged,
            VaultError::TooManyApplications { .. } => ReasonCode::TooManyApplications,
            VaultError::Sealed { source, .. } => match source {
                SealedError::Kdf(_) => ReasonCode::KdfFailed,
                SealedError::Encrypt => ReasonCode::EncryptionFailed,
                SealedError::WrongPassphrase => ReasonCode::WrongPassphrase,
                _ => ReasonCode::RecordDamaged,
            },
        }
    }

    /// True for refusals the user can act on (exit 1).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            VaultError::Missing(_)
                | VaultError::Exists(_)
                | VaultError::WrongPassphrase
                | VaultError::TooManyApplications { .. }
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
    /// Every kept application, in id order.
    fn applications(&self) -> Result<Vec<StoredApplication>, VaultError>;
    /// One application, by the wallet's id.
    fn application(&self, id: &str) -> Result<Option<StoredApplication>, VaultError>;
    /// Keeps an application (durable when this returns). At most [`MAX_APPLICATIONS`] are
    /// kept: a new one past the bound replaces the application in a final state seen longest
    /// ago (in one write); when none is final it is refused
    /// ([`VaultError::TooManyApplications`]) and nothing changes.
    fn put_application(&self, a: &StoredApplication) -> Result<(), VaultError>;
    /// True when [`Vault::put_application`] would keep a new application.
    fn has_room_for_application(&self) -> Result<bool, VaultError>;
    /// Keeps several applications at once (a backup's), all or none: a record the wallet
    /// already keeps is replaced unless the wallet's was seen later. Past [`MAX_APPLICATIONS`],
    /// applications in a final state seen longest ago make room; when that is not enough it is
    /// refused ([`VaultError::TooManyApplications`]) and nothing changes. How many were written.
    fn put_applications(&self, apps: &[StoredApplication]) -> Result<usize, VaultError>;
}

/// The sealed-file purpose of the wallet's data key.
pub const VAULT_PURPOSE: &str = "bizcred wallet";
/// The sealed-file purpose of wallet backups.
pub const BACKUP_PURPOSE: &str = "bizcred wallet backup";
/// The Argon2id cost of the wallet's sealed files.
const KDF: KdfParams = KdfParams::DEFAULT;
const NONCE_LEN: usize = 24;
/// Where the sealed data key is kept (in the `meta` tree).
const DATA_KEY: &str = "data-key";

/// A sealed-file error about `record`: a wrong passphrase is [`VaultError::WrongPassphrase`].
fn sealed_error(record: &str, e: SealedError) -> VaultError {
    match e {
        SealedError::WrongPassphrase => VaultError::WrongPassphrase,
        source => VaultError::Sealed {
            record: record.to_owned(),
            source,
        },
    }
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

/// Seals a backup's bytes under a passphrase: the sealed file's text, purpose
/// [`BACKUP_PURPOSE`].
pub fn seal_backup(passphrase: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
    match sealed::seal(plain, passphrase, KDF, BACKUP_PURPOSE, &mut OsRng) {
        Ok(text) => Ok(text.into_bytes()),
        Err(e @ SealedError::TooLarge(_)) => Err(VaultError::Backup(e)),
        Err(e) => Err(sealed_error("backup", e)),
    }
}

/// Opens a backup: the sealed format, or the format before it.
pub fn open_backup(passphrase: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if blob.starts_with(legacy::BACKUP_MAGIC) {
        return legacy::open_backup(passphrase, blob);
    }
    let text = std::str::from_utf8(blob).map_err(|_| VaultError::NotABackup)?;
    sealed::open(text, passphrase, BACKUP_PURPOSE).map_err(|e| match e {
        SealedError::WrongPassphrase => VaultError::WrongPassphrase,
        SealedError::Kdf(_) | SealedError::Encrypt => sealed_error("backup", e),
        other => VaultError::Backup(other),
    })
}

/// The layouts before the sealed format: read only (and written by the tests that prove a
/// migration).
mod legacy {
    use super::*;

    pub(super) const M_COST: u32 = 19 * 1024;
    pub(super) const T_COST: u32 = 2;
    pub(super) const BACKUP_MAGIC: &[u8] = b"bizcred-wallet-backup/1";
    /// The `meta` keys of the old layout: the Argon2id salt and the wrapped data key.
    pub(super) const SALT: &str = "salt";
    pub(super) const MASTER: &str = "master";
    /// The associated data the old layout wrapped the data key with.
    pub(super) const MASTER_AAD: &[u8] = b"master";

    pub(super) fn kek(passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let params = argon2::Params::new(M_COST, T_COST, 1, Some(32)).map_err(VaultError::Kdf)?;
        let mut out = Zeroizing::new([0u8; 32]);
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(VaultError::Kdf)?;
        Ok(out)
    }

    /// Unwraps the data key of an old-layout wallet.
    pub(super) fn unwrap_master(
        passphrase: &[u8],
        salt: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let k = kek(passphrase, salt)?;
        let plain = open_with(&k, MASTER_AAD, wrapped).ok_or(VaultError::WrongPassphrase)?;
        data_key(&plain)
    }

    pub(super) fn open_backup(
        passphrase: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
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
}

/// The 32-byte data key from an opened sealed file.
fn data_key(plain: &[u8]) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let key: [u8; 32] = plain.try_into().map_err(|_| VaultError::Damaged {
        record: format!("meta/{DATA_KEY}"),
    })?;
    Ok(Zeroizing::new(key))
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
const APPLICATIONS: &str = "applications";

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
        let mut master = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(master.as_mut());
        // Sealed before the store is created: a failure leaves no wallet behind.
        let text = sealed::seal(master.as_ref(), passphrase, KDF, VAULT_PURPOSE, &mut OsRng)
            .map_err(|e| sealed_error(&format!("meta/{DATA_KEY}"), e))?;
        let db = sled::open(dir.join("db")).map_err(VaultError::Open)?;
        db.open_tree("meta")?.insert(DATA_KEY, text.as_bytes())?;
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
        let record = format!("meta/{DATA_KEY}");
        let master = match meta.get(DATA_KEY)? {
            Some(text) => {
                // Both layouts at once cannot come from a migration (it is one atomic batch).
                if meta.contains_key(legacy::SALT)? || meta.contains_key(legacy::MASTER)? {
                    return Err(VaultError::Damaged { record });
                }
                let text = std::str::from_utf8(&text).map_err(|_| VaultError::Damaged {
                    record: record.clone(),
                })?;
                let plain = sealed::open(text, passphrase, VAULT_PURPOSE)
                    .map_err(|e| sealed_error(&record, e))?;
                data_key(&plain)?
            }
            None => Self::migrate(&db, &meta, dir, passphrase)?,
        };
        Ok(SledVault {
            db,
            master,
            fail_point: None,
        })
    }

    /// Opens a wallet of the layout before the sealed format and re-seals its data key: the
    /// sealed key replaces the old salt and wrapped key in one atomic batch, flushed before the
    /// wallet is used; the records (encrypted under the same data key) are kept as they are. A
    /// wrong passphrase returns before anything is written.
    fn migrate(
        db: &sled::Db,
        meta: &sled::Tree,
        dir: &Path,
        passphrase: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let missing = || VaultError::Missing(dir.to_path_buf());
        let salt = meta.get(legacy::SALT)?.ok_or_else(missing)?;
        let wrapped = meta.get(legacy::MASTER)?.ok_or_else(missing)?;
        let master = legacy::unwrap_master(passphrase, &salt, &wrapped)?;
        let text = sealed::seal(master.as_ref(), passphrase, KDF, VAULT_PURPOSE, &mut OsRng)
            .map_err(|e| sealed_error(&format!("meta/{DATA_KEY}"), e))?;
        let mut batch = sled::Batch::default();
        batch.insert(DATA_KEY, text.as_bytes());
        batch.remove(legacy::SALT);
        batch.remove(legacy::MASTER);
        meta.apply_batch(batch)?;
        db.flush()?;
        Ok(master)
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

    /// [`Vault::put_application`] under the bound `limit`.
    fn put_application_within(
        &self,
        a: &StoredApplication,
        limit: usize,
    ) -> Result<(), VaultError> {
        let tree = self.db.open_tree(APPLICATIONS)?;
        if tree.contains_key(a.id.as_bytes())? || tree.len() < limit {
            return self.put(APPLICATIONS, &a.id, a);
        }
        let victim = Self::oldest_final(self.all(APPLICATIONS)?)
            .ok_or(VaultError::TooManyApplications { limit })?;
        let mut batch = sled::Batch::default();
        batch.remove(victim.as_bytes());
        batch.insert(a.id.as_bytes(), self.seal_record(APPLICATIONS, &a.id, a)?);
        tree.apply_batch(batch)?;
        self.fail_point(APPLICATIONS, "batch-written");
        self.db.flush()?;
        Ok(())
    }

    /// [`Vault::put_applications`] under the bound `limit`.
    fn put_applications_within(
        &self,
        apps: &[StoredApplication],
        limit: usize,
    ) -> Result<usize, VaultError> {
        let held = self.all::<StoredApplication>(APPLICATIONS)?;
        let mut incoming: Vec<&StoredApplication> = Vec::new();
        for a in apps {
            let newer_held = held
                .iter()
                .any(|h| h.id == a.id && h.last_seen > a.last_seen);
            // A backup naming one application twice: the record seen last counts.
            if let Some(i) = incoming.iter().position(|x| x.id == a.id) {
                if incoming[i].last_seen <= a.last_seen && !newer_held {
                    incoming[i] = a;
                }
            } else if !newer_held {
                incoming.push(a);
            }
        }
        let new_ids = incoming
            .iter()
            .filter(|a| !held.iter().any(|h| h.id == a.id))
            .count();
        let total = held.len() + new_ids;
        let mut victims: Vec<&StoredApplication> = held
            .iter()
            .filter(|h| h.state.is_final() && !incoming.iter().any(|a| a.id == h.id))
            .collect();
        victims.sort_by(|x, y| (x.last_seen, &x.id).cmp(&(y.last_seen, &y.id)));
        let over = total.saturating_sub(limit);
        if over > victims.len() {
            return Err(VaultError::TooManyApplications { limit });
        }
        let mut batch = sled::Batch::default();
        for v in &victims[..over] {
            batch.remove(v.id.as_bytes());
        }
        for a in &incoming {
            batch.insert(a.id.as_bytes(), self.seal_record(APPLICATIONS, &a.id, *a)?);
        }
        self.db.open_tree(APPLICATIONS)?.apply_batch(batch)?;
        self.fail_point(APPLICATIONS, "batch-written");
        self.db.flush()?;
        Ok(incoming.len())
    }

    /// The id of the application in a final state seen longest ago.
    fn oldest_final(apps: Vec<StoredApplication>) -> Option<String> {
        apps.into_iter()
            .filter(|a| a.state.is_final())
            .min_by(|x, y| (x.last_seen, &x.id).cmp(&(y.last_seen, &y.id)))
            .map(|a| a.id.clone())
    }

    fn has_room_within(&self, limit: usize) -> Result<bool, VaultError> {
        if self.db.open_tree(APPLICATIONS)?.len() < limit {
            return Ok(true);
        }
        Ok(Self::oldest_final(self.all(APPLICATIONS)?).is_some())
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

    fn applications(&self) -> Result<Vec<StoredApplication>, VaultError> {
        self.all(APPLICATIONS)
    }

    fn application(&self, id: &str) -> Result<Option<StoredApplication>, VaultError> {
        self.get(APPLICATIONS, id)
    }

    fn put_application(&self, a: &StoredApplication) -> Result<(), VaultError> {
        self.put_application_within(a, MAX_APPLICATIONS)
    }

    fn has_room_for_application(&self) -> Result<bool, VaultError> {
        self.has_room_within(MAX_APPLICATIONS)
    }

    fn put_applications(&self, apps: &[StoredApplication]) -> Result<usize, VaultError> {
        self.put_applications_within(apps, MAX_APPLICATIONS)
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

    /// Writes a wallet in the layout before the sealed format, as the code of that time did:
    /// the data key wrapped under an Argon2id key, in `meta/salt` and `meta/master`.
    fn create_old_layout(dir: &Path, passphrase: &[u8]) -> SledVault {
        std::fs::create_dir_all(dir).expect("dir");
        let db = sled::open(dir.join("db")).expect("db");
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut master = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(master.as_mut());
        let k = legacy::kek(passphrase, &salt).expect("kek");
        let wrapped = seal_with(
            &cipher(&k),
            "meta/master",
            legacy::MASTER_AAD,
            master.as_ref(),
        )
        .expect("wrap");
        let meta = db.open_tree("meta").expect("meta");
        meta.insert(legacy::SALT, &salt).expect("salt");
        meta.insert(legacy::MASTER, wrapped).expect("master");
        db.flush().expect("flush");
        SledVault {
            db,
            master,
            fail_point: None,
        }
    }

    /// Writes a backup in the format before the sealed one, as the code of that time did.
    fn legacy_backup(passphrase: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let k = legacy::kek(passphrase, &salt).expect("kek");
        let mut out = legacy::BACKUP_MAGIC.to_vec();
        out.extend(salt);
        out.extend(seal_with(&cipher(&k), "backup", b"backup", plain).expect("seal"));
        out
    }

    /// The `meta` tree of the wallet at `dir` (closed), key by key.
    fn meta_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
        // sled's background flusher holds the closed store's file lock a moment after the
        // last handle is dropped: wait for it (bounded) rather than fail on the race.
        let mut tries = 0;
        let db = loop {
            match sled::open(dir.join("db")) {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("lock") && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("db: {e:?}"),
            }
        };
        let meta = db.open_tree("meta").expect("meta");
        meta.iter()
            .map(|kv| {
                let (k, v) = kv.expect("kv");
                (String::from_utf8(k.to_vec()).expect("utf-8"), v.to_vec())
            })
            .collect()
    }

    fn credential(id: &str) -> StoredCredential {
        StoredCredential {
            id: id.into(),
            vct: "https://bizcred.example/vct/bn".into(),
            issuer: "did:key:z6Mk".into(),
            issuer_name: "CRA".into(),
            credential: format!("eyJ.{id}.sig~"),
            received_at: 1_790_000_000_000,
            iat: Some(1_790_000_000),
            exp: None,
            status_uri: None,
            status_idx: None,
            last_status: None,
            status_checked_at: None,
        }
    }

    fn application(n: u32, state: crate::applications::AppState) -> StoredApplication {
        use crate::applications::{application_key, FollowUri};
        let agency = "http://localhost:8084";
        let app_id = format!("0a{n:04}");
        StoredApplication {
            id: application_key(agency, &app_id),
            agency: agency.into(),
            follow_uri: FollowUri::new(format!("{agency}/applicant/{app_id}.capabilitysecret")),
            application_id: app_id,
            credential_configuration_id: "municipal-business-licence".into(),
            vct: Some("https://bizcred.example/vct/municipal-business-licence".into()),
            state,
            applied_at: 1_790_000_000,
            last_seen: 1_790_000_000 + i64::from(n),
            updated: None,
            note: Some("bring the lease".into()),
            request_uri: None,
            offer: None,
            flags: vec![],
        }
    }

    #[test]
    fn applications_round_trip_encrypted() {
        use crate::applications::AppState;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("w");
        let a = application(1, AppState::AwaitingApproval);
        let mut b = application(2, AppState::Offered);
        b.offer = Some(crate::applications::AppOffer {
            credential_offer_uri: "openid-credential-offer://?credential_offer_uri=x".into(),
            tx_code: Some("123456".into()),
            expires: Some(1_790_000_900),
            used: false,
        });
        {
            let v = SledVault::create(&path, b"pass").expect("create");
            assert!(v.applications().expect("none").is_empty());
            v.put_application(&a).expect("a");
            v.put_application(&b).expect("b");
            // Sealed: neither the capability nor the note is in the store's bytes.
            for kv in v.db.open_tree(APPLICATIONS).expect("tree").iter() {
                let (_, sealed) = kv.expect("kv");
                for secret in [&b"capabilitysecret"[..], b"bring the lease", b"123456"] {
                    assert!(!sealed.windows(secret.len()).any(|w| w == secret));
                }
            }
        }
        let v = SledVault::open(&path, b"pass").expect("reopen");
        let mut want = vec![a.clone(), b.clone()];
        want.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(v.applications().expect("all"), want);
        assert_eq!(v.application(&b.id).expect("get"), Some(b.clone()));
        assert_eq!(v.application("a-none").expect("get"), None);
        // An update replaces the record.
        let mut b2 = b.clone();
        b2.state = AppState::Issued;
        v.put_application(&b2).expect("update");
        assert_eq!(v.application(&b.id).expect("get"), Some(b2));
        assert_eq!(v.applications().expect("all").len(), 2);
    }

    #[test]
    fn applications_are_bounded_and_only_final_ones_make_room() {
        use crate::applications::AppState;
        let dir = tempfile::tempdir().expect("tmp");
        let v = SledVault::create(dir.path(), b"pass").expect("create");
        const LIMIT: usize = 3;
        for n in 0..3 {
            v.put_application_within(&application(n, AppState::AwaitingApproval), LIMIT)
                .expect("within the bound");
        }
        assert!(!v.has_room_within(LIMIT).expect("room"));
        let e = v
            .put_application_within(&application(10, AppState::AwaitingApproval), LIMIT)
            .expect_err("full of open applications");
        assert_eq!(e.code(), ReasonCode::TooManyApplications);
        assert!(e.is_refusal());
        assert_eq!(v.applications().expect("all").len(), 3, "nothing changed");
        // A kept one is still updated at the bound.
        v.put_application_within(&application(1, AppState::Withdrawn), LIMIT)
            .expect("update at the bound");
        v.put_application_within(&application(2, AppState::Refused), LIMIT)
            .expect("update at the bound");
        assert!(v.has_room_within(LIMIT).expect("room"));
        // A new one replaces the final one seen longest ago (1), never an open one (0).
        let new = application(11, AppState::AwaitingApproval);
        v.put_application_within(&new, LIMIT).expect("replaces");
        let ids: Vec<String> = v
            .applications()
            .expect("all")
            .into_iter()
            .map(|a| a.application_id)
            .collect();
        assert_eq!(ids.len(), LIMIT);
        assert!(ids.contains(&"0a0000".to_owned()) && ids.contains(&"0a0002".to_owned()));
        assert!(ids.contains(&"0a0011".to_owned()) && !ids.contains(&"0a0001".to_owned()));
    }

    #[test]
    fn a_backups_applications_are_kept_at_once_within_the_bound() {
        use crate::applications::AppState;
        let dir = tempfile::tempdir().expect("tmp");
        let v = SledVault::create(dir.path(), b"pass").expect("create");
        const LIMIT: usize = 3;
        let mut seen_later = application(0, AppState::Offered);
        seen_later.last_seen += 100;
        v.put_application_within(&seen_later, LIMIT).expect("0");
        v.put_application_within(&application(1, AppState::Withdrawn), LIMIT)
            .expect("1");
        // The wallet's record seen later is kept; a new one takes the room left.
        let written = v
            .put_applications_within(
                &[
                    application(0, AppState::AwaitingApproval),
                    application(2, AppState::AwaitingApproval),
                ],
                LIMIT,
            )
            .expect("import");
        assert_eq!(written, 1);
        assert_eq!(
            v.application(&seen_later.id).expect("get"),
            Some(seen_later)
        );
        assert_eq!(v.applications().expect("all").len(), 3);
        // Past the bound, the final one makes room; when that is not enough, nothing changes.
        let e = v
            .put_applications_within(
                &[
                    application(3, AppState::AwaitingApproval),
                    application(4, AppState::AwaitingApproval),
                ],
                LIMIT,
            )
            .expect_err("too many open ones");
        assert_eq!(e.code(), ReasonCode::TooManyApplications);
        assert_eq!(v.applications().expect("all").len(), 3, "nothing changed");
        v.put_applications_within(&[application(3, AppState::AwaitingApproval)], LIMIT)
            .expect("replaces the withdrawn one");
        let ids: Vec<String> = v
            .applications()
            .expect("all")
            .into_iter()
            .map(|a| a.application_id)
            .collect();
        assert_eq!(ids.len(), LIMIT);
        assert!(!ids.contains(&"0a0001".to_owned()) && ids.contains(&"0a0003".to_owned()));
    }

    #[test]
    fn an_old_wallet_is_migrated_on_open_and_keeps_every_record() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("w");
        let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let creds = vec![credential("c1"), credential("c2")];
        let entry = HistoryEntry {
            time: 1_790_000_100,
            verifier: "x509_san_dns:bank.example".into(),
            channel: "direct_post".into(),
            credentials: vec![],
            outcome: "accepted".into(),
        };
        {
            let old = create_old_layout(&path, b"right");
            old.set_holder_key(&holder).expect("key");
            old.put_credentials(&creds).expect("credentials");
            old.append_history(&entry).expect("history");
        }
        let before = meta_of(&path);
        assert_eq!(
            before.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["master", "salt"]
        );

        // A wrong passphrase changes nothing.
        let wrong = SledVault::open(&path, b"wrong").expect_err("wrong passphrase");
        assert_eq!(wrong.code(), ReasonCode::WrongPassphrase);
        assert_eq!(meta_of(&path), before);

        // The right one opens it, with every record, and re-seals the data key.
        {
            let v = SledVault::open(&path, b"right").expect("open old wallet");
            assert_eq!(
                v.holder_key().expect("holder").public_key(),
                holder.public_key()
            );
            assert_eq!(v.credentials().expect("credentials"), creds);
            assert_eq!(v.history().expect("history"), vec![entry.clone()]);
        }
        let after = meta_of(&path);
        assert_eq!(
            after.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [DATA_KEY]
        );
        let text = std::str::from_utf8(&after[0].1).expect("text");
        assert!(sealed::is_sealed(text));
        assert_eq!(
            sealed::open(text, b"right", VAULT_PURPOSE)
                .expect("sealed data key")
                .len(),
            32
        );

        // Migrated: it opens again in the new layout, and still refuses a wrong passphrase.
        assert_eq!(
            SledVault::open(&path, b"wrong").expect_err("wrong").code(),
            ReasonCode::WrongPassphrase
        );
        assert_eq!(meta_of(&path), after);
        let v = SledVault::open(&path, b"right").expect("open migrated wallet");
        assert_eq!(v.credentials().expect("credentials"), creds);
        assert_eq!(v.history().expect("history"), vec![entry]);
    }

    #[test]
    fn the_data_key_is_sealed_for_the_wallet_only() {
        let dir = tempfile::tempdir().expect("tmp");
        drop(SledVault::create(dir.path(), b"pass").expect("create"));
        let meta = meta_of(dir.path());
        assert_eq!(
            meta.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [DATA_KEY]
        );
        let text = std::str::from_utf8(&meta[0].1).expect("text");
        // Not a key file, not a backup, even with the right passphrase.
        let as_key = bizcred_core::keyfile::open(text, b"pass")
            .err()
            .expect("key file");
        assert_eq!(as_key.code(), ReasonCode::KeyFileMalformed);
        let as_backup = open_backup(b"pass", text.as_bytes()).expect_err("backup");
        assert!(matches!(
            as_backup,
            VaultError::Backup(SealedError::WrongPurpose { .. })
        ));
        assert_eq!(as_backup.code(), ReasonCode::BackupDamaged);
        // And a backup is not a wallet's data key.
        let backup = seal_backup(b"pass", &[0u8; 32]).expect("backup");
        assert!(matches!(
            sealed::open(
                std::str::from_utf8(&backup).expect("text"),
                b"pass",
                VAULT_PURPOSE
            ),
            Err(SealedError::WrongPurpose { .. })
        ));
    }

    #[test]
    fn backups_are_sealed_files_and_old_backups_still_open() {
        let blob = seal_backup(b"pass", b"[]").expect("seal");
        let text = std::str::from_utf8(&blob).expect("text");
        assert!(sealed::is_sealed(text));
        assert!(text.contains(BACKUP_PURPOSE));
        assert_eq!(open_backup(b"pass", &blob).expect("open").as_slice(), b"[]");
        assert!(matches!(
            open_backup(b"other", &blob),
            Err(VaultError::WrongPassphrase)
        ));
        // A changed byte of the sealed text is refused, never opened.
        let mut edited = blob.clone();
        let at = text.find("\"t_cost\": 2").expect("t_cost") + "\"t_cost\": ".len();
        edited[at] = b'3';
        assert!(matches!(
            open_backup(b"pass", &edited),
            Err(VaultError::WrongPassphrase)
        ));

        let old = legacy_backup(b"pass", b"[]");
        assert_eq!(
            open_backup(b"pass", &old).expect("old backup").as_slice(),
            b"[]"
        );
        assert!(matches!(
            open_backup(b"other", &old),
            Err(VaultError::WrongPassphrase)
        ));
        assert_eq!(
            open_backup(b"pass", b"\xff\xfe")
                .expect_err("binary junk")
                .code(),
            ReasonCode::BackupDamaged
        );
    }
}
