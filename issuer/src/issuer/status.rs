//! Status changes and the Token Status List: one list at `/status/1`, re-signed on every change
//! and on a schedule, pushed to the registry for trust bundles.

use bizcred_core::status_list::{self, Status, StatusList};

use super::{read, refusal, write, Error, Issuer};
use crate::store::{CredentialRecord, CredentialStatus};

impl Issuer {
    pub(super) fn status_uri(&self) -> String {
        format!("{}/status/1", self.config.public_url)
    }

    /// Builds and signs the status list now.
    pub fn sign_status_list(&self) -> Result<String, Error> {
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
        let keys = self.signing_key();
        // Strictly after the previous list, so a newer list always carries a larger `iat`
        // (verifiers keep the list with the largest one).
        let last = read(&self.status_token)
            .as_ref()
            .map_or(i64::MIN, |(at, _)| *at);
        let now = self.now().max(keys.valid_from).max(last.saturating_add(1));
        let token = status_list::sign_token(
            &list,
            &self.status_uri(),
            &self.did,
            &keys.kid,
            now,
            now + self.config.status_validity,
            self.config.resign_interval as i64,
            &keys.assertion,
        )?;
        *write(&self.status_token) = Some((now, token.clone()));
        Ok(token)
    }

    /// The current status list token, re-signed when older than the interval.
    pub fn status_list(&self) -> Result<String, Error> {
        let cached = read(&self.status_token).clone();
        match cached {
            Some((at, token)) if self.now() - at < self.config.resign_interval as i64 => Ok(token),
            _ => self.sign_status_list(),
        }
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
