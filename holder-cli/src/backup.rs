//! Encrypted backups of the held credentials and the kept applications: the core's sealed
//! format under the wallet passphrase, with the purpose [`vault::BACKUP_PURPOSE`] (backups of the
//! format before it are still read).
//!
//! The sealed contents are `{"credentials": [[id, record], …], "applications": [record, …]}`.
//! An application's follow link is a secret: it is only ever in the sealed contents. Backups
//! written before applications were kept hold the list of credentials alone; they still import.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use bizcred_core::sd_jwt::SdJwt;

use crate::applications::{clean, StoredApplication, MAX_APPLICATIONS, MAX_ID_LEN};
use crate::error::WalletError;
use crate::store::StoredCredential;
use crate::vault::{self, Vault, VaultError};

/// Largest backup the wallet reads (the largest sealed file).
pub const MAX_BACKUP: usize = bizcred_core::sealed::MAX_SEALED_LEN;

/// How many records a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupCounts {
    /// Credentials.
    pub credentials: usize,
    /// Applications.
    pub applications: usize,
}

/// What the sealed backup holds, as written.
#[derive(Serialize)]
struct Contents<'a> {
    /// Each credential's id paired with its record.
    credentials: Vec<(&'a str, &'a StoredCredential)>,
    applications: &'a [StoredApplication],
}

/// What a sealed backup holds, as read: the current layout, or the list of credentials of
/// the backups written before applications were kept.
#[derive(Deserialize)]
#[serde(untagged)]
enum Read {
    Current {
        credentials: Vec<(String, StoredCredential)>,
        #[serde(default)]
        applications: Vec<StoredApplication>,
    },
    CredentialsOnly(Vec<(String, StoredCredential)>),
}

/// Seals every held credential and kept application under `passphrase`; the blob and how
/// many of each it holds.
pub fn export(
    vault: &dyn Vault,
    passphrase: &[u8],
) -> Result<(Vec<u8>, BackupCounts), WalletError> {
    let creds = vault.credentials()?;
    let apps = vault.applications()?;
    let contents = Contents {
        credentials: creds.iter().map(|c| (c.id.as_str(), c)).collect(),
        applications: &apps,
    };
    let plain =
        Zeroizing::new(
            serde_json::to_vec(&contents).map_err(|source| VaultError::Encoding {
                record: "backup".into(),
                source,
            })?,
        );
    let counts = BackupCounts {
        credentials: creds.len(),
        applications: apps.len(),
    };
    Ok((vault::seal_backup(passphrase, &plain)?, counts))
}

/// Opens a backup and stores its credentials at once (all or none), after its applications
/// (at once, all or none; see [`Vault::put_applications`]). Every record is checked before
/// anything is stored. How many of each were stored.
pub fn import(
    vault: &dyn Vault,
    passphrase: &[u8],
    blob: &[u8],
) -> Result<BackupCounts, WalletError> {
    if blob.len() > MAX_BACKUP {
        return Err(WalletError::BackupTooLarge(MAX_BACKUP));
    }
    let plain = vault::open_backup(passphrase, blob)?;
    let read: Read = serde_json::from_slice(&plain).map_err(|source| WalletError::BadJson {
        what: "the backup",
        source,
    })?;
    let (pairs, apps) = match read {
        Read::Current {
            credentials,
            applications,
        } => (credentials, applications),
        Read::CredentialsOnly(credentials) => (credentials, Vec::new()),
    };
    let creds: Vec<StoredCredential> = pairs.into_iter().map(|(_, c)| c).collect();
    for c in &creds {
        SdJwt::parse(&c.credential).map_err(|source| WalletError::DamagedBackup {
            id: c.id.clone(),
            source,
        })?;
    }
    if apps.len() > MAX_APPLICATIONS {
        return Err(WalletError::DamagedBackupApplication {
            id: format!("(more than {MAX_APPLICATIONS})"),
        });
    }
    if let Some(a) = apps.iter().find(|a| !a.is_well_formed()) {
        return Err(WalletError::DamagedBackupApplication {
            id: clean(&a.id, MAX_ID_LEN),
        });
    }
    let applications = vault.put_applications(&apps)?;
    vault.put_credentials(&creds)?;
    Ok(BackupCounts {
        credentials: creds.len(),
        applications,
    })
}
