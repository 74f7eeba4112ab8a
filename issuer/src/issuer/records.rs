//! What the desk reads: issued credentials found by the business's identifiers or name (their
//! claims live in the application, joined through `application_id`), and the audit log with
//! the verdict on its hash chain.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use bizcred_schemas::CredentialType;

use super::staff::Actor;
use super::{Error, Issuer};
use crate::store::{verify_audit, Application, CredentialRecord};

/// Most credentials one search answers.
pub const MAX_SEARCH_RESULTS: usize = 200;

/// Most audit entries one report lists.
pub const MAX_AUDIT_LISTED: usize = 1000;

/// The claims that name the business a credential is about (what a search shows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyClaims {
    /// `legal_name`, or `licensee_legal_name` on a licence.
    pub legal_name: Option<String>,
    /// `operating_name`.
    pub operating_name: Option<String>,
    /// `business_number`.
    pub business_number: Option<String>,
    /// `corporation_number`.
    pub corporation_number: Option<String>,
    /// `licence_number`.
    pub licence_number: Option<String>,
}

impl KeyClaims {
    /// The key claims of a claim set.
    pub fn of(claims: &Map<String, Value>) -> KeyClaims {
        let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        KeyClaims {
            legal_name: get("legal_name").or_else(|| get("licensee_legal_name")),
            operating_name: get("operating_name"),
            business_number: get("business_number"),
            corporation_number: get("corporation_number"),
            licence_number: get("licence_number"),
        }
    }

    /// Whether `q` (already [`normalized`]) is one of the identifiers, or `lower` (the query in
    /// lower case) is part of a name.
    fn matches(&self, q: &str, lower: &str) -> bool {
        let ids = [
            &self.business_number,
            &self.corporation_number,
            &self.licence_number,
        ];
        let names = [&self.legal_name, &self.operating_name];
        ids.iter()
            .filter_map(|v| v.as_deref())
            .any(|v| normalized(v) == q)
            || names
                .iter()
                .filter_map(|v| v.as_deref())
                .any(|v| v.to_lowercase().contains(lower))
    }
}

/// An identifier as compared: without spaces or dashes, upper case (`lsl-826104` finds
/// `LSL-826104`, `812 345 676` finds `812345676`).
fn normalized(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// An issued credential as the desk shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialView {
    /// The record: its current `status`, its status `history` (time, status, actor, reason),
    /// list and index, key, digest.
    pub record: CredentialRecord,
    /// Its type (`None` for a `vct` this version does not know); serialized as its slug.
    #[serde(serialize_with = "slug")]
    pub credential_type: Option<CredentialType>,
    /// The claims naming the business (empty when the application is gone).
    pub claims: KeyClaims,
}

fn slug<S: serde::Serializer>(t: &Option<CredentialType>, s: S) -> Result<S::Ok, S::Error> {
    t.map(CredentialType::slug).serialize(s)
}

/// The audit log's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum AuditChain {
    /// Every entry links to the one before and its hash covers it.
    Intact {
        /// Entries verified.
        entries: usize,
    },
    /// The chain breaks at entry `at`.
    Broken {
        /// The sequence number of the first broken entry.
        at: u64,
        /// Why (sequence gap, wrong link, altered entry, no hash).
        reason: String,
    },
}

/// One audit entry as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Its sequence number (from 0).
    pub seq: u64,
    /// When (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub time: String,
    /// What (`application_created`, `offer_created`, `status_changed`, `key_rotated`, ...).
    pub event: String,
    /// Who, when the entry names someone (staff or automation).
    pub actor: Option<Actor>,
    /// Every detail as recorded (ids, states, the reason given; never claim values).
    pub details: Value,
    /// Its hash (hex), which the next entry links to.
    pub hash: String,
}

impl AuditEntry {
    fn of(v: &Value) -> AuditEntry {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let details = v.get("details").cloned().unwrap_or(Value::Null);
        AuditEntry {
            seq: v.get("seq").and_then(Value::as_u64).unwrap_or(u64::MAX),
            time: text("time"),
            event: text("event"),
            actor: details
                .get("actor")
                .and_then(|a| serde_json::from_value(a.clone()).ok()),
            details,
            hash: text("hash"),
        }
    }
}

/// The audit log and the verdict on its hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries in the log.
    pub total: usize,
    /// The verdict on the whole chain.
    pub chain: AuditChain,
    /// The newest entries, newest first (as many as asked, at most [`MAX_AUDIT_LISTED`]).
    pub entries: Vec<AuditEntry>,
}

impl Issuer {
    /// The issued credentials whose business number, corporation number or licence number is
    /// `query` (spaces, dashes and case aside), whose legal or operating name contains it
    /// (case-insensitive), or whose credential or application id it is; newest first, at most
    /// `limit` (bounded by [`MAX_SEARCH_RESULTS`]). An empty query answers the newest
    /// credentials.
    pub fn search_credentials(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<CredentialView>, Error> {
        let limit = limit.min(MAX_SEARCH_RESULTS);
        let query = query.trim();
        let (q, lower) = (normalized(query), query.to_lowercase());
        // The applications whose claims match, with their key claims.
        let mut apps: HashMap<String, KeyClaims> = HashMap::new();
        if !query.is_empty() {
            self.store.visit_applications(|app| {
                let key = KeyClaims::of(&app.claims);
                if key.matches(&q, &lower) {
                    apps.insert(app.id, key);
                }
                Ok(())
            })?;
        }
        let newest = |a: &CredentialRecord, b: &CredentialRecord| {
            (b.issued_at, &b.id).cmp(&(a.issued_at, &a.id))
        };
        let mut found: Vec<CredentialRecord> = Vec::new();
        self.store.visit_credentials(|rec| {
            if query.is_empty()
                || apps.contains_key(&rec.application_id)
                || rec.id == query
                || rec.application_id == query
            {
                found.push(rec);
                if found.len() >= limit.saturating_mul(2).max(64) {
                    found.sort_by(newest);
                    found.truncate(limit);
                }
            }
            Ok(())
        })?;
        found.sort_by(newest);
        found.truncate(limit);
        found
            .into_iter()
            .map(|record| {
                let claims = match apps.remove(&record.application_id) {
                    Some(k) => k,
                    None => self.key_claims_of(&record.application_id)?,
                };
                Ok(CredentialView {
                    credential_type: CredentialType::from_vct(&record.vct),
                    record,
                    claims,
                })
            })
            .collect()
    }

    /// The key claims of an application; none when it is gone.
    fn key_claims_of(&self, app_id: &str) -> Result<KeyClaims, Error> {
        match self.store.application(app_id) {
            Ok(app) => Ok(KeyClaims::of(&app.claims)),
            Err(crate::store::StoreError::NotFound { .. }) => Ok(KeyClaims::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// One issued credential with its status history and key claims.
    pub fn credential_view(&self, id: &str) -> Result<CredentialView, Error> {
        let record = self.store.credential(id)?;
        let claims = self.key_claims_of(&record.application_id)?;
        Ok(CredentialView {
            credential_type: CredentialType::from_vct(&record.vct),
            record,
            claims,
        })
    }

    /// The application a credential was issued for (all its claims), if it is still held.
    pub fn credential_application(&self, id: &str) -> Result<Option<Application>, Error> {
        let record = self.store.credential(id)?;
        match self.store.application(&record.application_id) {
            Ok(app) => Ok(Some(app)),
            Err(crate::store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The audit log: the verdict on its whole hash chain and the newest `limit` entries
    /// (newest first, at most [`MAX_AUDIT_LISTED`]).
    pub fn audit_report(&self, limit: usize) -> Result<AuditReport, Error> {
        let entries = self.store.audit_entries()?;
        let chain = match verify_audit(&entries) {
            Ok(n) => AuditChain::Intact { entries: n },
            Err((at, reason)) => AuditChain::Broken { at, reason },
        };
        let listed = entries
            .iter()
            .rev()
            .take(limit.min(MAX_AUDIT_LISTED))
            .map(AuditEntry::of)
            .collect();
        Ok(AuditReport {
            total: entries.len(),
            chain,
            entries: listed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_ignore_spacing_dashes_and_case_and_names_match_in_part() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "licence_number": "LSL-826104",
            "licensee_legal_name": "Jennifer Ventures Inc.",
            "business_number": "812345676",
        }))
        .expect("claims");
        let k = KeyClaims::of(&claims);
        let m = |q: &str| k.matches(&normalized(q), &q.to_lowercase());
        assert!(m("lsl 826104") && m("812-345-676") && m("ventures"));
        assert!(!m("81234567") && !m("5012345") && !m("kitchen"));
    }
}
