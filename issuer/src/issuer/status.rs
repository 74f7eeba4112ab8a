//! Status changes and the Token Status Lists: `/status/1`, `/status/2`, ... A list's bits are
//! kept in the store and changed in the transaction that changes a status; re-signing reads
//! those bits only. Serving answers the newest signed token; stale or changed lists are
//! re-signed by [`Issuer::refresh_status_lists`] (the background loop) and right after a
//! change, and pushed to the registry for trust bundles.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use bizcred_core::status_list::{self, Status, StatusList};

use super::staff::{reason_text, required_reason, Actor, Permission};
use super::{read, refusal, write, Error, Issuer};
use crate::store::{CredentialRecord, CredentialStatus, SignedList, StoreError};

/// How far ahead of the clock a status list's `iat` may be. A burst of changes faster than one
/// a second is coalesced into the next list instead of pushing `iat` further ahead.
pub const MAX_IAT_LEAD: i64 = 5;

/// What a re-sign of one list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resign {
    /// The newest signed token is current (not stale, nothing changed, the same key).
    Current,
    /// A new token was signed and recorded.
    Signed,
    /// The list changed but its `iat` may not go further ahead of the clock: it is signed at
    /// `due` (Unix seconds) or later.
    Coalesced {
        /// The earliest time the clock allows the next `iat`.
        due: i64,
    },
}

/// The Token Status List of packed 2-bit entries.
fn list_of(bits: &crate::store::ListBits) -> Result<StatusList, Error> {
    let mut list = StatusList::new(bits.size, 2)?;
    for (i, b) in bits.bytes.iter().enumerate() {
        if *b == 0 {
            continue;
        }
        for k in 0..4u64 {
            let v = (b >> (2 * k)) & 0b11;
            if v != 0 {
                list.set(i as u64 * 4 + k, Status::from_value(v))?;
            }
        }
    }
    Ok(list)
}

impl Issuer {
    /// The URI of status list `list`.
    pub fn status_uri(&self, list: u32) -> String {
        format!("{}/status/{list}", self.config.public_url)
    }

    /// The newest signed token of list `list`, as held: never re-signed here (the background
    /// loop and status changes do that). Only a list never signed yet (just opened) is signed
    /// first.
    ///
    /// On a store other instances write (PostgreSQL), the token held is first compared with
    /// the store's: a newer one another instance signed is adopted and served, so every
    /// instance serves the newest list recorded.
    pub fn status_list(&self, list: u32) -> Result<String, Error> {
        let held = if self.store.is_shared() {
            self.adopt_stored(list)?
        } else {
            read(&self.status_tokens).get(&list).cloned()
        };
        if let Some(s) = held {
            return Ok(s.token);
        }
        self.store.status_list_info(list)?;
        self.refresh_list(list)?;
        read(&self.status_tokens)
            .get(&list)
            .map(|s| s.token.clone())
            .ok_or_else(|| {
                Error::Store(StoreError::NotFound {
                    what: "status list token",
                    id: list.to_string(),
                })
            })
    }

    /// Holds the store's newest signed token of `list` when it is newer than the one held
    /// (signed by another instance, or recorded before a restart); answers the one held then.
    fn adopt_stored(&self, list: u32) -> Result<Option<SignedList>, Error> {
        let stored = self.store.signed_status_list(list)?;
        let mut held = write(&self.status_tokens);
        if let Some(s) = stored {
            if held.get(&list).is_none_or(|h| h.iat < s.iat) {
                held.insert(list, s);
            }
        }
        Ok(held.get(&list).cloned())
    }

    /// Every list's token held, after [`Issuer::adopt_stored`] on a shared store.
    fn held_tokens(&self) -> Result<std::collections::BTreeMap<u32, SignedList>, Error> {
        if !self.store.is_shared() {
            return Ok(read(&self.status_tokens).clone());
        }
        let stored = self.store.signed_status_lists()?;
        let mut held = write(&self.status_tokens);
        for (list, s) in stored {
            if held.get(&list).is_none_or(|h| h.iat < s.iat) {
                held.insert(list, s);
            }
        }
        Ok(held.clone())
    }

    /// Re-signs every list that is stale (older than the interval), changed since it was
    /// signed or signed by another key, as far as [`MAX_IAT_LEAD`] allows. Returns the earliest
    /// time a coalesced change may be signed, if any.
    pub fn refresh_status_lists(&self) -> Result<Option<i64>, Error> {
        let mut due: Option<i64> = None;
        for info in self.store.status_lists()? {
            if let Resign::Coalesced { due: d } = self.refresh_list(info.list)? {
                due = Some(due.map_or(d, |e| e.min(d)));
            }
        }
        Ok(due)
    }

    /// The earliest time a change not yet signed may be signed, if one waits.
    pub fn status_resign_due(&self) -> Result<Option<i64>, Error> {
        let now = self.now();
        let keys = self.signing_key();
        let held = self.held_tokens()?;
        let mut due: Option<i64> = None;
        for info in self.store.status_lists()? {
            let version = self.store.status_version(info.list)?;
            let d = match held.get(&info.list) {
                None => now,
                Some(s) if s.version < version || s.kid != keys.kid => s
                    .iat
                    .saturating_add(1)
                    .max(keys.valid_from)
                    .saturating_sub(MAX_IAT_LEAD)
                    .max(now),
                Some(_) => continue,
            };
            due = Some(due.map_or(d, |e| e.min(d)));
        }
        Ok(due)
    }

    /// Re-signs list `list` if it is stale, changed or signed by another key, as far as the
    /// clock allows.
    ///
    /// The decision starts from the newest list recorded in the store (another instance may
    /// have signed one), and a signed list is stored only if it is newer than the one recorded
    /// then: when another instance stored one first, that one is adopted and the decision is
    /// made again from it. Two instances never record two lists with one `iat`.
    pub fn refresh_list(&self, list: u32) -> Result<Resign, Error> {
        // One signer at a time in this process, so two lists never share an `iat`.
        let _signing = self
            .sign_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for _ in 0..3 {
            let now = self.now();
            let keys = self.signing_key();
            let held = self.adopt_stored(list)?;
            let version = self.store.status_version(list)?;
            if let Some(s) = &held {
                let stale = now - s.iat >= self.config.resign_interval as i64;
                let changed = s.version < version || s.kid != keys.kid;
                if !stale && !changed {
                    return Ok(Resign::Current);
                }
            }
            // Strictly after the previous list (kept durably, so also after a restart): a newer
            // list always carries a larger `iat`, and verifiers keep the list with the largest.
            let last = held.as_ref().map_or(i64::MIN, |s| s.iat);
            let iat = now.max(keys.valid_from).max(last.saturating_add(1));
            if held.is_some() && iat > now.saturating_add(MAX_IAT_LEAD) {
                // A burst of changes: never race ahead of the clock; the change goes into the
                // next list, once the clock allows it.
                return Ok(Resign::Coalesced {
                    due: iat - MAX_IAT_LEAD,
                });
            }
            let bits = self.store.status_bits(list)?;
            let token = status_list::sign_token(
                &list_of(&bits)?,
                &self.status_uri(list),
                &self.did,
                &keys.kid,
                iat,
                iat + self.config.status_validity,
                self.config.resign_interval as i64,
                &keys.assertion,
            )?;
            let signed = SignedList {
                iat,
                version: bits.version,
                kid: keys.kid.clone(),
                token,
            };
            // Durable before it is served or pushed.
            match self.store.put_signed_status_list(list, &signed) {
                Ok(()) => {
                    write(&self.status_tokens).insert(list, signed);
                    return Ok(Resign::Signed);
                }
                // Another instance recorded a list at least as new meanwhile: decide again
                // from that one.
                Err(StoreError::StatusListNotNewer { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // Lost three races in a row: the winners' list is held; the next re-sign (the
        // background loop, a waiting publication) looks again.
        self.adopt_stored(list)?;
        Ok(Resign::Current)
    }

    /// Re-signs what needs it ([`Issuer::refresh_status_lists`]) and sends every list to the
    /// registry (for trust bundles). Every list is tried; the first failure is answered.
    pub async fn push_status_list(&self) -> Result<(), Error> {
        self.refresh_status_lists()?;
        let tokens: Vec<String> = read(&self.status_tokens)
            .values()
            .map(|s| s.token.clone())
            .collect();
        let mut failed = None;
        for token in tokens {
            let pushed = async {
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
            };
            if let Err(e) = pushed.await {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// When a change waits for the clock (see [`MAX_IAT_LEAD`]), re-signs and pushes the lists
    /// at the earliest time allowed, on the tokio runtime, so the registry's copy shows it
    /// within a second or two of that time rather than at the next background round. At most
    /// one such task waits at a time.
    pub fn schedule_status_push(self: &Arc<Self>) {
        if self.resign_scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let issuer = self.clone();
        tokio::spawn(async move {
            // After the first attempt, at least a second between attempts: never a busy loop.
            let mut least = 0;
            // A failure that persists is left to the background loop after a minute of tries.
            for _ in 0..60 {
                let due = match issuer.status_resign_due() {
                    Ok(Some(due)) => due,
                    Ok(None) => {
                        issuer.resign_scheduled.store(false, Ordering::SeqCst);
                        // A change that landed before the flag was cleared is not left behind.
                        if matches!(issuer.status_resign_due(), Ok(Some(_)))
                            && !issuer.resign_scheduled.swap(true, Ordering::SeqCst)
                        {
                            continue;
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::warn!("status list re-sign not scheduled: {e}");
                        issuer.resign_scheduled.store(false, Ordering::SeqCst);
                        return;
                    }
                };
                let wait = (due - issuer.now()).max(least).unsigned_abs();
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                least = 1;
                if let Err(e) = issuer.push_status_list().await {
                    tracing::warn!("status list not pushed to the registry: {e}");
                }
            }
            issuer.resign_scheduled.store(false, Ordering::SeqCst);
        });
    }

    /// Changes a credential's status (the record with its history, and its list's bits, in
    /// one durable transaction, audited with the actor and reason) and re-signs that list if
    /// the clock allows; otherwise the change is coalesced into the next list (see
    /// [`Issuer::schedule_status_push`]). Revoking and suspending need a reason
    /// (`REASON_REQUIRED`); reinstating may carry one. A revoked credential stays revoked
    /// (`REVOKED_IS_FINAL`). Approvers and above.
    pub fn set_status(
        &self,
        actor: &Actor,
        id: &str,
        action: StatusAction,
        reason: Option<&str>,
    ) -> Result<CredentialRecord, Error> {
        Ok(self.record_status(actor, id, action, reason)?.0)
    }

    /// [`Issuer::set_status`], answering also the version of the list's bits that holds the
    /// change.
    fn record_status(
        &self,
        actor: &Actor,
        id: &str,
        action: StatusAction,
        reason: Option<&str>,
    ) -> Result<(CredentialRecord, u64), Error> {
        actor.require(action.permission())?;
        let reason = if action.reason_required() {
            Some(required_reason(reason, action.permission())?)
        } else {
            reason_text(reason)?
        };
        let (rec, version) =
            self.store
                .set_status(id, action.status(), actor, reason.as_deref(), self.now())?;
        self.refresh_list(rec.status_list)?;
        Ok((rec, version))
    }

    /// Whether the newest signed token of `list` carries the bits of `version` or later.
    fn published(&self, list: u32, version: u64) -> bool {
        read(&self.status_tokens)
            .get(&list)
            .is_some_and(|s| s.version >= version)
    }

    /// [`Issuer::set_status`], returning only once the status list holding the credential has
    /// been re-signed with the change and stored, so `/status/{n}` already serves it when a
    /// page says done. When the clock does not yet allow the next list (a burst of changes,
    /// see [`MAX_IAT_LEAD`]) it waits for it, at most [`PUBLISH_WAIT`]; past that the change
    /// stays recorded and [`Error::StatusNotPublished`] says the next re-sign publishes it.
    /// The push to the registry (for trust bundles) runs in the background.
    pub async fn set_status_published(
        self: &Arc<Self>,
        actor: &Actor,
        id: &str,
        action: StatusAction,
        reason: Option<&str>,
    ) -> Result<CredentialRecord, Error> {
        let (rec, version) = self.record_status(actor, id, action, reason)?;
        let deadline = tokio::time::Instant::now() + PUBLISH_WAIT;
        while !self.published(rec.status_list, version) {
            let wait = match self.refresh_list(rec.status_list)? {
                Resign::Coalesced { due } => {
                    let secs = (due - self.now()).clamp(0, PUBLISH_WAIT.as_secs() as i64);
                    std::time::Duration::from_secs(secs.unsigned_abs())
                }
                // Signed or current: the check above sees it (or another signer holds a newer
                // token being recorded; look again shortly).
                Resign::Signed | Resign::Current => std::time::Duration::ZERO,
            };
            if self.published(rec.status_list, version) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::StatusNotPublished {
                    list: rec.status_list,
                });
            }
            let wait = wait.max(std::time::Duration::from_millis(100));
            tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(deadline)).await;
        }
        let issuer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = issuer.push_status_list().await {
                tracing::warn!("status list not pushed to the registry: {e}");
            }
            // A change of another credential that waits for the clock is pushed when it may be.
            issuer.schedule_status_push();
        });
        Ok(rec)
    }
}

/// Longest [`Issuer::set_status_published`] waits for the list to be signed.
pub const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A change of a credential's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusAction {
    /// To revoked (final); needs a reason.
    Revoke,
    /// To suspended; needs a reason.
    Suspend,
    /// Back to valid (not from revoked); a reason is optional.
    Reinstate,
}

impl StatusAction {
    /// Every action.
    pub const ALL: [StatusAction; 3] = [
        StatusAction::Revoke,
        StatusAction::Suspend,
        StatusAction::Reinstate,
    ];

    /// Its name (`revoke`, `suspend`, `reinstate`), as in the admin API's paths.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusAction::Revoke => "revoke",
            StatusAction::Suspend => "suspend",
            StatusAction::Reinstate => "reinstate",
        }
    }

    /// The status it sets.
    pub fn status(self) -> CredentialStatus {
        match self {
            StatusAction::Revoke => CredentialStatus::Revoked,
            StatusAction::Suspend => CredentialStatus::Suspended,
            StatusAction::Reinstate => CredentialStatus::Valid,
        }
    }

    /// What the actor must be allowed.
    pub fn permission(self) -> Permission {
        match self {
            StatusAction::Revoke => Permission::Revoke,
            StatusAction::Suspend => Permission::Suspend,
            StatusAction::Reinstate => Permission::Reinstate,
        }
    }

    /// Whether a reason is required.
    pub fn reason_required(self) -> bool {
        matches!(self, StatusAction::Revoke | StatusAction::Suspend)
    }
}

impl std::fmt::Display for StatusAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StatusAction {
    type Err = Error;

    /// `revoke`, `suspend` or `reinstate`; anything else is [`Error::UnknownName`]
    /// (`NAME_UNKNOWN`).
    fn from_str(s: &str) -> Result<StatusAction, Error> {
        StatusAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnknownName {
                what: "status action",
                name: s.chars().take(64).collect(),
            })
    }
}
