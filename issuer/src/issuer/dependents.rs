//! The downstream side of the agencies' event feeds (issue #14): this agency polls the feeds
//! of the upstream agencies named in `[[subscription]]` and reacts to their events about the
//! credentials its applicants presented as prerequisites.
//!
//! An application keeps the status list entry of each prerequisite credential presented for it
//! ([`Dependencies::prerequisites`]). When an upstream agency revokes or suspends one of them,
//! the application (and so the credentials issued from it) is flagged for review
//! ([`ReviewFlag`], audited `prerequisite_flagged` with the cause); when the type's policy
//! says `auto_suspend_dependents`, the credentials issued from it are suspended too, each with
//! an audit entry naming the cause. A reinstatement upstream clears the flag and reinstates
//! what was suspended automatically for it.
//!
//! The cursor of each subscription is kept in the store (meta `subscription:{url}`) and moved
//! only after the page's events were handled; handling an event twice changes nothing, so a
//! crash between the two only replays.

use std::sync::Arc;

use serde_json::{json, Value};

use bizcred_core::sd_jwt::SdJwt;
use bizcred_core::trust::state::TrustState;

use super::subscribe::{PublishedEvent, Subscription, MAX_EVENT_PAGE_LEN};
use super::StatusAction;
use super::{read, Error, Issuer};
use crate::config::UpstreamConfig;
use crate::store::{
    AppStatus, Application, CredentialStatus, EventKind, PrerequisiteRef, ReviewFlag, StoreError,
    MAX_DEPENDENCIES,
};
use crate::Actor;

/// Most pages one poll of one upstream agency takes (the rest wait for the next round).
pub const MAX_PAGES_PER_POLL: usize = 16;

/// What one poll of an upstream agency did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// Events taken.
    pub events: usize,
    /// Applications flagged, or whose flag was updated.
    pub flagged: usize,
    /// Flags cleared by reinstatements.
    pub cleared: usize,
    /// Credentials suspended automatically.
    pub suspended: usize,
    /// Credentials reinstated automatically.
    pub reinstated: usize,
    /// The cursor after the poll.
    pub cursor: u64,
}

impl Polled {
    fn add(&mut self, o: &Polled) {
        self.events += o.events;
        self.flagged += o.flagged;
        self.cleared += o.cleared;
        self.suspended += o.suspended;
        self.reinstated += o.reinstated;
        self.cursor = o.cursor;
    }
}

/// The status list entries of the credentials in an accepted `vp_token` (their issuer, `vct`,
/// `status.status_list`), at most [`MAX_DEPENDENCIES`]. Credentials without one are skipped.
pub fn presented_prerequisites(vp_token: &Value) -> Vec<PrerequisiteRef> {
    let mut out = Vec::new();
    let Some(obj) = vp_token.as_object() else {
        return out;
    };
    for v in obj.values() {
        let texts: Vec<&str> = match v {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            _ => Vec::new(),
        };
        for text in texts {
            let Some(payload) = SdJwt::parse(text)
                .ok()
                .and_then(|sd| sd.unverified_payload().ok())
            else {
                continue;
            };
            let status = payload.get("status").and_then(|s| s.get("status_list"));
            let (Some(uri), Some(idx), Some(iss), Some(vct)) = (
                status.and_then(|s| s.get("uri")).and_then(Value::as_str),
                status.and_then(|s| s.get("idx")).and_then(Value::as_u64),
                payload.get("iss").and_then(Value::as_str),
                payload.get("vct").and_then(Value::as_str),
            ) else {
                continue;
            };
            if out.len() < MAX_DEPENDENCIES && uri.len() <= 2048 && iss.len() <= 2048 {
                out.push(PrerequisiteRef {
                    vct: vct.chars().take(512).collect(),
                    issuer: iss.to_owned(),
                    status_list: uri.to_owned(),
                    status_idx: idx,
                });
            }
        }
    }
    out
}

/// The host-and-port part of a did:webvh DID served at `url` (as [`crate::Config::did_host`]).
fn did_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    let mut out = host.replace(':', "%3A");
    for seg in rest.split('/').skip(1).filter(|s| !s.is_empty()) {
        out.push(':');
        out.push_str(seg);
    }
    out
}

/// The meta key of a subscription's state.
fn meta_key(url: &str) -> String {
    format!("subscription:{url}")
}

fn matches(p: &PrerequisiteRef, upstream: &str, e: &PublishedEvent) -> bool {
    p.issuer == upstream && p.status_list == e.status_list && p.status_idx == e.status_idx
}

fn flag_matches(f: &ReviewFlag, upstream: &str, e: &PublishedEvent) -> bool {
    f.upstream == upstream && f.status_list == e.status_list && f.status_idx == e.status_idx
}

/// The audit reason of an automatic status change (identifiers only).
fn cause_text(upstream: &str, e: &PublishedEvent) -> String {
    format!(
        "prerequisite {} {} by {} (event {})",
        e.vct,
        match e.kind {
            EventKind::CredentialRevoked => "revoked",
            EventKind::CredentialSuspended => "suspended",
            EventKind::CredentialReinstated => "reinstated",
            EventKind::CredentialIssued => "issued",
        },
        upstream,
        e.seq
    )
}

impl Issuer {
    /// The subscription to `up` as kept in the store, or a new one from the first event (its
    /// DID configured, or the registered issuer whose did:webvh host is the URL's).
    pub fn upstream_subscription(
        &self,
        up: &UpstreamConfig,
        trust: &TrustState,
    ) -> Result<Subscription, Error> {
        if let Some(bytes) = self.store.meta_get(&meta_key(&up.url))? {
            return serde_json::from_slice(&bytes)
                .map_err(|_| Error::Metadata("subscription cursor"));
        }
        let did = match &up.did {
            Some(d) => d.clone(),
            None => {
                let suffix = format!(":{}", did_host(&up.url));
                let mut found = trust
                    .issuers
                    .keys()
                    .filter(|d| d.starts_with("did:webvh:") && d.ends_with(&suffix));
                match (found.next(), found.next()) {
                    (Some(d), None) => d.clone(),
                    _ => return Err(Error::UpstreamUnknown(up.url.clone())),
                }
            }
        };
        Ok(Subscription::new(did))
    }

    /// Takes one event page `token` of `up` (the body of `GET {url}/events?after={cursor}`):
    /// checks it with [`Subscription::check`] against `trust` now, handles its events, then
    /// moves the kept cursor. A refused page ([`Error::EventPage`]) changes nothing.
    pub fn take_event_page(
        &self,
        up: &UpstreamConfig,
        token: &str,
        trust: &TrustState,
    ) -> Result<Polled, Error> {
        let mut sub = self.upstream_subscription(up, trust)?;
        let page = sub
            .check(token, trust, self.now())
            .map_err(Error::EventPage)?;
        let mut done = Polled::default();
        for e in &page.events {
            done.add(&self.react_to_event(&sub.issuer, e)?);
            done.events += 1;
        }
        sub.cursor = page.next_after;
        let kept = serde_json::to_vec(&sub).map_err(|_| Error::Metadata("subscription cursor"))?;
        self.store.meta_put(&meta_key(&up.url), &kept)?;
        done.cursor = sub.cursor;
        Ok(done)
    }

    /// The kept cursor of `up` (0 before its first page).
    pub fn upstream_cursor(&self, up: &UpstreamConfig) -> Result<u64, Error> {
        Ok(match self.store.meta_get(&meta_key(&up.url))? {
            Some(b) => {
                serde_json::from_slice::<Subscription>(&b)
                    .map_err(|_| Error::Metadata("subscription cursor"))?
                    .cursor
            }
            None => 0,
        })
    }

    /// Polls `up` once: fetches pages after the kept cursor (at most [`MAX_PAGES_PER_POLL`])
    /// and takes each with the synced trust state, until a page brings nothing new. An
    /// unreachable agency or a refused page stops the poll with its error; the cursor stays at
    /// the last page taken, so the next round asks again.
    pub async fn poll_upstream(self: &Arc<Self>, up: &UpstreamConfig) -> Result<Polled, Error> {
        let mut total = Polled {
            cursor: self.upstream_cursor(up)?,
            ..Polled::default()
        };
        for _ in 0..MAX_PAGES_PER_POLL {
            let url = format!("{}/events?after={}", up.url, total.cursor);
            let mut r = self
                .http
                .get(url)
                .send()
                .await
                .map_err(Error::UpstreamUnreachable)?;
            if !r.status().is_success() {
                return Err(Error::UpstreamRefused(r.status().as_u16()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = r.chunk().await.map_err(Error::UpstreamUnreachable)? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_EVENT_PAGE_LEN {
                    return Err(Error::EventPage(
                        super::subscribe::SubscribeError::Malformed(
                            "the page is larger than accepted",
                        ),
                    ));
                }
            }
            let token = String::from_utf8_lossy(&body).into_owned();
            let trust = read(&self.trust).clone().ok_or(Error::NoTrustBundle)?;
            let (me, up2) = (self.clone(), up.clone());
            let polled =
                tokio::task::spawn_blocking(move || me.take_event_page(&up2, &token, &trust))
                    .await
                    .map_err(|_| Error::Metadata("event page task"))??;
            let events = polled.events;
            total.add(&polled);
            if events == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Polls every `[[subscription]]` once, logging each outcome (a failure with its reason
    /// code; the next round retries it).
    pub async fn poll_subscriptions(self: &Arc<Self>) {
        for up in self.config.subscriptions.clone() {
            match self.poll_upstream(&up).await {
                Ok(p) if p.events > 0 => tracing::info!(
                    upstream = %up.url,
                    events = p.events,
                    flagged = p.flagged,
                    cleared = p.cleared,
                    suspended = p.suspended,
                    reinstated = p.reinstated,
                    cursor = p.cursor,
                    "upstream events taken"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    upstream = %up.url,
                    code = %e.code(),
                    "upstream events not taken: {e}"
                ),
            }
        }
    }

    /// Reacts to one upstream event: flags (or clears) the applications whose prerequisites
    /// include its credential, suspending (or reinstating) their credentials when the policy
    /// says so. Idempotent: an event handled twice changes nothing the second time.
    pub fn react_to_event(&self, upstream: &str, e: &PublishedEvent) -> Result<Polled, Error> {
        let mut done = Polled::default();
        if e.kind == EventKind::CredentialIssued {
            return Ok(done);
        }
        let mut ids = Vec::new();
        self.store.visit_applications(|a| {
            let depends = a
                .dependencies
                .prerequisites
                .iter()
                .any(|p| matches(p, upstream, e))
                || a.dependencies
                    .flags
                    .iter()
                    .any(|f| flag_matches(f, upstream, e));
            if depends && !matches!(a.status, AppStatus::Refused | AppStatus::Withdrawn) {
                ids.push(a.id);
            }
            Ok(())
        })?;
        for id in ids {
            match e.kind {
                EventKind::CredentialRevoked | EventKind::CredentialSuspended => {
                    self.flag_application(&id, upstream, e, &mut done)?
                }
                EventKind::CredentialReinstated => self.clear_flag(&id, upstream, e, &mut done)?,
                EventKind::CredentialIssued => {}
            }
        }
        Ok(done)
    }

    /// The credentials issued from application `id` that are valid now.
    fn valid_credentials_of(&self, id: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        self.store.visit_credentials(|c| {
            if c.application_id == id && c.status == CredentialStatus::Valid {
                out.push(c.id);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Replaces application `id` by `change` of it (retried when it changed meanwhile),
    /// audited as `event` with `details`. Answers the record written, or `None` when `change`
    /// had nothing to change.
    fn change_for_upstream(
        &self,
        id: &str,
        event: &str,
        details: &Value,
        mut change: impl FnMut(&mut Application) -> bool,
    ) -> Result<Option<Application>, Error> {
        for _ in 0..5 {
            let before = self.store.application(id)?;
            let mut after = before.clone();
            if !change(&mut after) {
                return Ok(None);
            }
            match self.store.swap_application(
                &before,
                &after,
                None,
                self.now(),
                event,
                details.clone(),
            ) {
                Ok(()) => return Ok(Some(after)),
                Err(StoreError::ApplicationChanged { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let status = self.store.application(id)?.status;
        Err(StoreError::ApplicationChanged {
            id: id.to_owned(),
            status,
        }
        .into())
    }

    fn flag_application(
        &self,
        id: &str,
        upstream: &str,
        e: &PublishedEvent,
        done: &mut Polled,
    ) -> Result<(), Error> {
        let app = self.store.application(id)?;
        let auto = crate::store::AppStatus::Issued == app.status
            && self
                .config
                .auto_suspend
                .iter()
                .any(|t| t.slug() == app.credential_type);
        // The credentials to suspend are written with the flag first, then suspended: a crash
        // between the two leaves the flag, and the next time the event comes they are.
        let planned = if auto {
            self.valid_credentials_of(id)?
        } else {
            Vec::new()
        };
        let now = self.now();
        let details = json!({"cause": {
            "event": e.kind.as_str(),
            "seq": e.seq,
            "upstream": upstream,
            "credential_id": e.credential_id,
            "vct": e.vct,
            "status_list": e.status_list,
            "status_idx": e.status_idx,
            "time": e.time,
        }});
        let written = self.change_for_upstream(id, "prerequisite_flagged", &details, |a| {
            let flags = &mut a.dependencies.flags;
            if let Some(f) = flags.iter_mut().find(|f| flag_matches(f, upstream, e)) {
                let mut changed = false;
                if f.event != e.kind && f.seq < e.seq {
                    f.event = e.kind;
                    f.seq = e.seq;
                    f.time = e.time;
                    changed = true;
                }
                for c in &planned {
                    if !f.auto_suspended.contains(c) {
                        f.auto_suspended.push(c.clone());
                        changed = true;
                    }
                }
                return changed;
            }
            if flags.len() >= MAX_DEPENDENCIES {
                flags.remove(0);
            }
            flags.push(ReviewFlag {
                event: e.kind,
                seq: e.seq,
                upstream: upstream.to_owned(),
                vct: e.vct.clone(),
                status_list: e.status_list.clone(),
                status_idx: e.status_idx,
                time: e.time,
                flagged_at: now,
                auto_suspended: planned.clone(),
            });
            true
        })?;
        if written.is_some() {
            done.flagged += 1;
        }
        // Suspend what the flag says, when still valid (also on a replay after a crash).
        let app = self.store.application(id)?;
        let to_suspend: Vec<String> = app
            .dependencies
            .flags
            .iter()
            .filter(|f| flag_matches(f, upstream, e))
            .flat_map(|f| f.auto_suspended.clone())
            .collect();
        let reason = cause_text(upstream, e);
        for c in to_suspend {
            if self.store.credential(&c)?.status == CredentialStatus::Valid {
                self.set_status(&Actor::Automation, &c, StatusAction::Suspend, Some(&reason))?;
                done.suspended += 1;
            }
        }
        Ok(())
    }

    fn clear_flag(
        &self,
        id: &str,
        upstream: &str,
        e: &PublishedEvent,
        done: &mut Polled,
    ) -> Result<(), Error> {
        let app = self.store.application(id)?;
        let Some(flag) = app
            .dependencies
            .flags
            .iter()
            .find(|f| flag_matches(f, upstream, e))
            .cloned()
        else {
            return Ok(());
        };
        if flag.event == EventKind::CredentialRevoked {
            // A revocation is final upstream: a later reinstatement of the entry is not this
            // credential's.
            return Ok(());
        }
        // Only a reinstatement newer than the suspension that raised the flag clears it: a
        // stale or replayed one (another instance's cursor, a page read again) changes nothing.
        if e.seq <= flag.seq {
            return Ok(());
        }
        // Reinstate first (a crash then leaves the flag, and the replay finishes the job),
        // only what no other open flag holds suspended, and only a suspension the automation
        // made last (a member of staff who suspended it since keeps it suspended).
        let reason = cause_text(upstream, e);
        for c in &flag.auto_suspended {
            let held_elsewhere = app
                .dependencies
                .flags
                .iter()
                .any(|f| !flag_matches(f, upstream, e) && f.auto_suspended.contains(c));
            let rec = self.store.credential(c)?;
            let ours = rec
                .history
                .last()
                .is_some_and(|h| h.actor == Actor::Automation);
            if !held_elsewhere && ours && rec.status == CredentialStatus::Suspended {
                self.set_status(
                    &Actor::Automation,
                    c,
                    StatusAction::Reinstate,
                    Some(&reason),
                )?;
                done.reinstated += 1;
            }
        }
        let details = json!({"cause": {
            "event": e.kind.as_str(),
            "seq": e.seq,
            "upstream": upstream,
            "credential_id": e.credential_id,
            "vct": e.vct,
            "status_list": e.status_list,
            "status_idx": e.status_idx,
            "time": e.time,
        }});
        let written = self.change_for_upstream(id, "prerequisite_flag_cleared", &details, |a| {
            let before = a.dependencies.flags.len();
            a.dependencies
                .flags
                .retain(|f| !(flag_matches(f, upstream, e) && f.seq < e.seq));
            a.dependencies.flags.len() != before
        })?;
        if written.is_some() {
            done.cleared += 1;
        }
        Ok(())
    }
}

impl Issuer {
    /// The applications flagged for review by an upstream agency's event (of `filter`'s
    /// states and type when given), oldest first or newest first, at most `filter.limit`
    /// (bounded by [`super::MAX_APPLICATION_LIST`]); `matched` counts every flagged one.
    pub fn flagged_applications(
        &self,
        filter: &super::ApplicationFilter,
    ) -> Result<super::ApplicationList, Error> {
        let limit = filter.limit.min(super::MAX_APPLICATION_LIST);
        let mut items: Vec<Application> = Vec::new();
        let mut matched = 0usize;
        let order = |a: &Application, b: &Application| {
            let (ka, kb) = ((a.created, &a.id), (b.created, &b.id));
            if filter.oldest_first {
                ka.cmp(&kb)
            } else {
                kb.cmp(&ka)
            }
        };
        self.store.visit_applications(|app| {
            let wanted = !app.dependencies.flags.is_empty()
                && (filter.states.is_empty() || filter.states.contains(&app.status))
                && filter
                    .credential_type
                    .is_none_or(|t| t.slug() == app.credential_type);
            if wanted {
                matched += 1;
                items.push(app);
                if items.len() >= limit.saturating_mul(2).max(64) {
                    items.sort_by(order);
                    items.truncate(limit);
                }
            }
            Ok(())
        })?;
        items.sort_by(order);
        items.truncate(limit);
        Ok(super::ApplicationList { items, matched })
    }
}

impl Issuer {
    /// The registered name of the issuer `did` in English or French, from the synced trust
    /// state (the desk names the upstream agency of a flag by it).
    pub fn registered_name(&self, did: &str, french: bool) -> Option<String> {
        let trust = read(&self.trust);
        let i = trust.as_ref()?.issuers.get(did)?;
        Some(if french {
            i.name_fr.clone()
        } else {
            i.name_en.clone()
        })
    }
}
