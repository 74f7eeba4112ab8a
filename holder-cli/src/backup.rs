//! Encrypted backups of the held credentials: the core's sealed format under the wallet
//! passphrase, with the purpose [`vault::BACKUP_PURPOSE`] (backups of the format before it are
//! still read).

use zeroize::Zeroizing;

use bizcred_core::sd_jwt::SdJwt;

use crate::error::WalletError;
use crate::store::StoredCredential;
use crate::vault::{self, Vault, VaultError};

/// Largest backup the wallet reads (the largest sealed file).
pub const MAX_BACKUP: usize = bizcred_core::sealed::MAX_SEALED_LEN;

/// Seals every held credential under `passphrase`; the blob and how many it holds.
pub fn export(vault: &dyn Vault, passphrase: &[u8]) -> Result<(Vec<u8>, usize), WalletError> {
    let creds = vault.credentials()?;
    // The file format pairs each id with its record.
    let pairs: Vec<(&str, &StoredCredential)> = creds.iter().map(|c| (c.id.as_str(), c)).collect();
    let plain =
        Zeroizing::new(
            serde_json::to_vec(&pairs).map_err(|source| VaultError::Encoding {
                record: "backup".into(),
                source,
            })?,
        );
    Ok((vault::seal_backup(passphrase, &plain)?, creds.len()))
}

/// Opens a backup and stores all its credentials at once (all or none); how many.
pub fn import(vault: &dyn Vault, passphrase: &[u8], blob: &[u8]) -> Result<usize, WalletError> {
    if blob.len() > MAX_BACKUP {
        return Err(WalletError::BackupTooLarge(MAX_BACKUP));
    }
    let plain = vault::open_backup(passphrase, blob)?;
    let pairs: Vec<(String, StoredCredential)> =
        serde_json::from_slice(&plain).map_err(|source| WalletError::BadJson {
            what: "the backup",
            source,
        })?;
    let creds: Vec<StoredCredential> = pairs.into_iter().map(|(_, c)| c).collect();
    for c in &creds {
        SdJwt::parse(&c.credential).map_err(|source| WalletError::DamagedBackup {
            id: c.id.clone(),
            source,
        })?;
    }
    vault.put_credentials(&creds)?;
    Ok(creds.len())
}
