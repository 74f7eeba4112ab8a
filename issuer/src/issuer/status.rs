//! Status changes and the Token Status List: one list at `/status/1`, re-signed on every change
//! and on a schedule, pushed to the registry for trust bundles.

use bizcred_core::status_list::{self, Status, StatusList};

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use super::keys::Keys;
use super::{read, refusal, write, Error, Issuer};
use crate::store::{CredentialRecord, CredentialStatus};

/// How far ahead of the clock a status list's `iat` may be. A burst of changes faster than one
/// a second is coalesced into the next list instead of pushing `iat` further ahead.
pub const MAX_IAT_LEAD: i64 = 5;

impl Issuer {
    pub(super) fn status_uri(&self) -> String {
        format!("{}/status/1", self.config.public_url)
    }

    /// Marks the status list changed and re-signs it now if the clock allows (see
    /// [`MAX_IAT_LEAD`]); otherwise the change is coalesced into the next re-sign. Returns the
    /// newest signed list.
    pub fn sign_status_list(&self) -> Result<String, Error> {
        self.status_dirty.store(true, Ordering::SeqCst);
        self.refresh_status_list()
    }

    /// The current status list token: re-signed when older than the interval or changed since
    /// it was signed, as far as the clock allows; otherwise the newest one signed.
    pub fn status_list(&self) -> Result<String, Error> {
        self.refresh_status_list()
    }

    fn refresh_status_list(&self) -> Result<String, Error> {
        // One signer at a time, so two lists never share an `iat`.
        let _signing = self
            .sign_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = self.now();
        let held = read(&self.status_token).clone();
        let stale = held
            .as_ref()
            .is_none_or(|(at, _)| now - at >= self.config.resign_interval as i64);
        let dirty = self.status_dirty.load(Ordering::SeqCst);
        if let Some((_, token)) = &held {
            if !stale && !dirty {
                return Ok(token.clone());
            }
        }
        let keys = self.signing_key();
        // Strictly after the previous list (kept durably, so also after a restart): a newer
        // list always carries a larger `iat`, and verifiers keep the list with the largest.
        let last = held.as_ref().map_or(i64::MIN, |(at, _)| *at);
        let iat = now.max(keys.valid_from).max(last.saturating_add(1));
        if iat > now.saturating_add(MAX_IAT_LEAD) {
            if let Some((_, token)) = held {
                // A burst of changes: never race ahead of the clock; the change stays marked
                // and goes into the next list, once the clock allows it.
                return Ok(token);
            }
        }
        // Cleared before the records are read: a change that lands meanwhile marks it again.
        self.status_dirty.store(false, Ordering::SeqCst);
        let signed = self.sign_list_at(iat, &keys);
        if signed.is_err() {
            self.status_dirty.store(true, Ordering::SeqCst);
        }
        signed
    }

    fn sign_list_at(&self, iat: i64, keys: &Keys) -> Result<String, Error> {
        let mut list = StatusList::new(self.config.list_size, 2)?;
        // Every record decodes to a known status, or the list is not signed at all.
        for rec in self.store.credentials()? {
            let s = match rec.status {
                CredentialStatus::Valid => continue,
                CredentialStatus::Revoked => Status::Invalid,
                CredentialStatus::Suspended => Status::Suspended,
            };
            list.set(rec.status_idx, s)?;
        }
        let token = status_list::sign_token(
            &list,
            &self.status_uri(),
            &self.did,
            &keys.kid,
            iat,
            iat + self.config.status_validity,
            self.config.resign_interval as i64,
            &keys.assertion,
        )?;
        // Durable before it is served or pushed.
        self.store.put_status_list(iat, &token)?;
        *write(&self.status_token) = Some((iat, token.clone()));
        Ok(token)
    }

    /// Sends the current status list to the registry (for trust bundles).
    pub async fn push_status_list(&self) -> Result<(), Error> {
        let token = self.status_list()?;
        let r = self
            .http
            .post(format!("{}/status-lists", self.config.registry_url))
            .body(token)
            .send()
            .await
            .map_err(Error::RegistryUnreachable)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(refusal(r).await)
        }
    }

    /// Changes a credential's status (durable before it returns) and re-signs the list.
    pub fn set_status(
        &self,
        id: &str,
        status: CredentialStatus,
    ) -> Result<CredentialRecord, Error> {
        let rec = self.store.set_status(id, status, self.now())?;
        self.sign_status_list()?;
        Ok(rec)
    }
}
