//! Credential status from the issuers' Token Status Lists.

use bizcred_core::status_list;

use crate::error::{StatusProblem, WalletError};
use crate::net;
use crate::store::StoredCredential;
use crate::vault::Vault;

/// A credential's status as the wallet shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    /// Valid.
    Valid,
    /// Revoked.
    Revoked,
    /// Suspended.
    Suspended,
    /// A status value this wallet does not know.
    Unknown,
}

impl CredentialStatus {
    /// The word stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Valid => "valid",
            CredentialStatus::Revoked => "revoked",
            CredentialStatus::Suspended => "suspended",
            CredentialStatus::Unknown => "unknown",
        }
    }
}

/// Fetches and verifies the status list of `cred` (signed by its issuer, resolved at the
/// list's `iat`) and reads its entry; `None` when the credential has no status reference.
pub async fn check(
    c: &reqwest::Client,
    cred: &StoredCredential,
    now: i64,
) -> Result<Option<CredentialStatus>, WalletError> {
    let (Some(uri), Some(idx)) = (cred.status_uri.as_deref(), cred.status_idx) else {
        return Ok(None);
    };
    let invalid =
        |e: &dyn std::fmt::Display| WalletError::StatusList(StatusProblem::Invalid(e.to_string()));
    let token = net::get_text(c, uri, "the status list").await?;
    let (kid, iat, _) = status_list::peek(&token).map_err(|e| invalid(&e))?;
    if !kid.starts_with(&format!("{}#", cred.issuer)) {
        return Err(WalletError::StatusList(StatusProblem::ForeignSigner));
    }
    let key = net::resolve_key(c, &kid, iat, now, true).await?;
    let list = status_list::verify_token(&token, uri, &key, now).map_err(|e| invalid(&e))?;
    Ok(Some(match list.list.get(idx).map_err(|e| invalid(&e))? {
        status_list::Status::Valid => CredentialStatus::Valid,
        status_list::Status::Invalid => CredentialStatus::Revoked,
        status_list::Status::Suspended => CredentialStatus::Suspended,
        status_list::Status::Other(_) => CredentialStatus::Unknown,
    }))
}

/// Checks every held credential that carries a status reference and stores what was seen
/// (`now` in seconds). Each credential's outcome is returned; one that cannot be checked keeps
/// its last stored status.
pub async fn refresh(
    c: &reqwest::Client,
    vault: &dyn Vault,
    now: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<(StoredCredential, Result<CredentialStatus, WalletError>)>, WalletError> {
    let mut out = Vec::new();
    for mut cred in vault.credentials()? {
        let Some(uri) = cred.status_uri.clone() else {
            continue;
        };
        progress(&format!("checking {uri}"));
        match check(c, &cred, now).await {
            Ok(None) => continue,
            Ok(Some(s)) => {
                cred.last_status = Some(s.as_str().to_owned());
                cred.status_checked_at = Some(now);
                vault.put_credential(&cred)?;
                out.push((cred, Ok(s)));
            }
            Err(e) => out.push((cred, Err(e))),
        }
    }
    Ok(out)
}
