//! The issuer's keys: the key store it is given, the did:webvh DID created at initialization,
//! and key rotation.

use rand_core::OsRng;
use serde_json::{json, Value};

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, PublicKey, SecretKey, Signer};
use bizcred_core::webvh;

use super::staff::{Actor, Permission};
use super::{read, refusal, verified_log, write, Error, Issuer};
use crate::config::Config;
use crate::store::Store;

/// Where the issuer's secret keys live (sealed files for the binary; an HSM could be another).
/// Keys are named `update-N` (did:webvh update keys, pre-committed) and `assertion-N`
/// (credential signing keys).
pub trait KeyStore: Send + Sync {
    /// The key stored under `name`.
    fn load(&self, name: &str) -> Result<SecretKey, KeyStoreError>;
    /// Stores `key` under `name`, durably.
    fn save(&self, name: &str, key: &SecretKey) -> Result<(), KeyStoreError>;
}

/// A key could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[error("key {name}: {source}")]
pub struct KeyStoreError {
    /// The key's name.
    pub name: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The current signing key, for the desk's keys page (no secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    /// The issuer's DID.
    pub did: String,
    /// The key's id (`{did}#key-{n}`).
    pub kid: String,
    /// `n`: keys are numbered from 1, one more at each rotation.
    pub key_number: u32,
    /// The public key (multibase, as the DID document lists it).
    pub public_key: String,
    /// The number of the DID version that introduced the key (`None` if the verified log does
    /// not list it, which only a damaged store shows).
    pub did_version: Option<u64>,
    /// When that version was made (Unix seconds): the key signs nothing dated earlier.
    pub created: Option<i64>,
    /// The number of the DID's newest version.
    pub newest_version: u64,
    /// Its `versionId` (`n-entryHash`).
    pub newest_version_id: String,
}

/// The signing key in use.
pub(super) struct Keys {
    pub(super) assertion: SecretKey,
    pub(super) kid: String,
    /// The `versionTime` of the DID version that introduced the key: nothing it signs may be
    /// dated earlier, or verifiers resolving the DID at that date would not find it.
    pub(super) valid_from: i64,
}

/// A key number kept in the store's metadata (`assertion_n`, `update_n`); missing or
/// unreadable is an error, never key 1.
fn key_number(store: &Store, name: &'static str) -> Result<u32, Error> {
    let v = store.meta_get(name)?.ok_or(Error::Metadata(name))?;
    std::str::from_utf8(&v)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(Error::Metadata(name))
}

/// A DID document listing `current` (`(n, key)`, the key that signs from this version on) and the
/// retired assertion keys still `kept` (absolute id, key), each in `verificationMethod` and
/// `assertionMethod`, current first.
fn did_document(
    current: (u32, &PublicKey),
    kept: &[(String, PublicKey)],
    did: &str,
    service: &str,
) -> Value {
    let (n, key) = current;
    let mut methods = vec![
        json!({"id": format!("{did}#key-{n}"), "type": "Multikey", "controller": did, "publicKeyMultibase": did::multikey(key)}),
    ];
    let mut assertion = vec![json!(format!("{did}#key-{n}"))];
    for (id, key) in kept {
        methods.push(json!({"id": id, "type": "Multikey", "controller": did, "publicKeyMultibase": did::multikey(key)}));
        assertion.push(json!(id));
    }
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": assertion,
        "service": [{"id": "#oid4vci", "type": "OpenID4VCI", "serviceEndpoint": service}],
    })
}

/// Leeway for verifiers' clocks after a retired key's last credential expired.
const RETIRED_KEY_LEEWAY: i64 = 300;

/// The assertion keys of the DID's newest version that a new version made at `t` keeps listed
/// beside its new key: every key of the newest version's `assertionMethod` (the current key, now
/// retired, and keys retired before it) while a credential it signed may still be unexpired, so
/// a verifier that resolves only the current DID document still finds it. A credential signed by
/// `#key-m` is dated before the version that introduced `#key-{m+1}` (the current key: before
/// `t`) and expires at most `validity` seconds after its `iat`; the key is dropped at the first
/// rotation after that. A key in `compromised` is never listed again (the next versions are built
/// from this one's list, so it stays out).
fn retained_keys(
    log: &webvh::VerifiedLog,
    t: i64,
    validity: i64,
    compromised: &[String],
) -> Vec<(String, PublicKey)> {
    let Some(newest) = log.versions.last() else {
        return Vec::new();
    };
    let did = newest.id();
    newest
        .methods
        .iter()
        .filter(|(id, _)| newest.has_relationship("assertionMethod", id))
        .filter(|(id, _)| !compromised.iter().any(|c| c == id))
        .filter(|(id, _)| {
            let successor = id
                .strip_prefix(&format!("{did}#key-"))
                .and_then(|m| m.parse::<u32>().ok())
                .map(|m| format!("{did}#key-{}", m.saturating_add(1)));
            // When its successor was introduced; the current key retires now.
            let retired = successor
                .and_then(|s| {
                    log.versions
                        .iter()
                        .find(|v| v.methods.iter().any(|(i, _)| *i == s))
                })
                .map_or(t, |v| v.time);
            t < retired
                .saturating_add(validity)
                .saturating_add(RETIRED_KEY_LEEWAY)
        })
        .cloned()
        .collect()
}

impl Keys {
    /// The current signing key, valid from the DID version that introduced it.
    pub(super) fn load(
        store: &Store,
        key_store: &dyn KeyStore,
        did: &str,
        now: i64,
    ) -> Result<Keys, Error> {
        let n = key_number(store, "assertion_n")?;
        let assertion = key_store.load(&format!("assertion-{n}"))?;
        let log = store
            .meta_get("did_log")?
            .ok_or(Error::Metadata("DID log"))?;
        let log = String::from_utf8(log).map_err(|_| Error::Metadata("DID log"))?;
        // The key's first second comes from the verified log: an unverifiable log is an error,
        // never a key valid from 1970.
        let valid_from = verified_log(&log, now + 300)?
            .versions
            .last()
            .map(|v| v.time)
            .ok_or(Error::Metadata("DID log"))?;
        Ok(Keys {
            assertion,
            kid: format!("{did}#key-{n}"),
            valid_from,
        })
    }
}

impl Issuer {
    /// Creates the agency's keys in `key_store` and its did:webvh DID in `store`. Returns the
    /// DID and its log.
    pub fn initialize(
        cfg: &Config,
        store: &Store,
        key_store: &dyn KeyStore,
        now: i64,
    ) -> Result<(String, String), Error> {
        if store.meta_get("did")?.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        let update = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let next = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        key_store.save("update-1", &update)?;
        key_store.save("update-2", &next)?;
        key_store.save("assertion-1", &assertion)?;
        let mut params = webvh::pre_rotation_parameters(&update.public_key(), &next.public_key());
        params.insert("portable".into(), false.into());
        let doc = did_document((1, &assertion.public_key()), &[], "{DID}", &cfg.public_url);
        let (did, line) =
            webvh::create(&cfg.did_host(), doc, params, now, &update).map_err(Error::DidLog)?;
        let log = format!("{line}\n");
        store.meta_put("did_log", log.as_bytes())?;
        store.meta_put("assertion_n", b"1")?;
        store.meta_put("update_n", b"1")?;
        store.meta_put("did", did.as_bytes())?;
        store.audit(now, "key_created", json!({"kid": format!("{did}#key-1")}))?;
        Ok((did, log))
    }

    /// Rotates the signing key: a new did:webvh version (signed with the pre-committed update
    /// key) replaces the assertion key; the registry must accept it before the new key signs.
    /// The retired key stays listed (see [`Issuer::rotate_key_with`]). Administrators (and
    /// automation) only; the audit event names the actor.
    pub async fn rotate_key(&self, actor: &Actor) -> Result<Value, Error> {
        self.rotate_key_with(actor, &[]).await
    }

    /// Rotates the signing key as [`Issuer::rotate_key`] does. The new DID version lists the new
    /// key and keeps the retired assertion keys in `verificationMethod` and `assertionMethod`
    /// until every credential they signed has expired (`validity_days` after their retirement),
    /// so verifiers that resolve only the current DID document accept credentials signed before
    /// the rotation; keys named in `compromised` (ids `{did}#key-N` of this DID, the current key
    /// included) are not listed. A compromise must also be declared to the trust registry
    /// (`bizcred-registry declare-compromise`): only verifiers that read the registry learn
    /// from when a key stopped being trustworthy.
    pub async fn rotate_key_with(
        &self,
        actor: &Actor,
        compromised: &[String],
    ) -> Result<Value, Error> {
        actor.require(Permission::RotateKey)?;
        let now = self.now();
        let n = key_number(&self.store, "assertion_n")?;
        let u = key_number(&self.store, "update_n")?;
        let log_text = self.did_log()?;
        let log = verified_log(&log_text, now)?;
        for c in compromised {
            if !log
                .versions
                .iter()
                .any(|v| v.methods.iter().any(|(id, _)| id == c))
            {
                return Err(Error::UnknownName {
                    what: "signing key of this issuer",
                    name: c.chars().take(64).collect(),
                });
            }
        }
        let next_update = self.key_store.load(&format!("update-{}", u + 1))?;
        let after = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let params = webvh::pre_rotation_parameters(&next_update.public_key(), &after.public_key());
        // Strictly after every signature of the old key (second precision), so the old key stays
        // valid for everything it signed and the new key for everything it will sign.
        let t = (now + 1).max(log.versions.last().map_or(now, |v| v.time + 1));
        let kept = retained_keys(
            &log,
            t,
            self.config.validity_days.saturating_mul(86_400),
            compromised,
        );
        let doc = did_document(
            (n + 1, &assertion.public_key()),
            &kept,
            &self.did,
            &self.config.public_url,
        );
        let line = webvh::update(&log, doc, params, t, &next_update).map_err(Error::DidLog)?;
        let r = self
            .http
            // The DID is one path segment: its `%` must itself be percent-encoded.
            .post(format!(
                "{}/dids/{}/log",
                self.config.registry_url,
                self.did.replace('%', "%25")
            ))
            .body(line.clone())
            .send()
            .await
            .map_err(Error::RegistryUnreachable)?;
        if !r.status().is_success() {
            return Err(refusal(r).await);
        }
        self.key_store.save(&format!("update-{}", u + 2), &after)?;
        self.key_store
            .save(&format!("assertion-{}", n + 1), &assertion)?;
        self.store
            .meta_put("did_log", format!("{log_text}{line}\n").as_bytes())?;
        self.store
            .meta_put("update_n", (u + 1).to_string().as_bytes())?;
        self.store
            .meta_put("assertion_n", (n + 1).to_string().as_bytes())?;
        let kid = format!("{}#key-{}", self.did, n + 1);
        self.store.audit(
            now,
            "key_rotated",
            json!({
                "from": format!("{}#key-{n}", self.did),
                "to": kid,
                "kept": kept.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                "compromised": compromised,
                "actor": actor.audit(),
            }),
        )?;
        *write(&self.keys) = Keys {
            assertion,
            kid: kid.clone(),
            valid_from: t,
        };
        // Every list is signed again with the new key (as far as the clock allows; a list
        // that must wait is signed by the next re-sign).
        self.refresh_status_lists()?;
        Ok(json!({
            "kid": kid,
            "version_time": bizcred_core::time::format_utc(t),
            "retired_keys_listed": kept.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        }))
    }

    /// The current signing key as the desk shows it: its id, the DID version that introduced
    /// it and when, and the DID's newest version.
    pub fn key_info(&self) -> Result<KeyInfo, Error> {
        let (kid, public) = {
            let keys = self.signing_key();
            (keys.kid.clone(), keys.assertion.public_key())
        };
        let log = verified_log(&self.did_log()?, self.now() + 300)?;
        let newest = log.versions.last().ok_or(Error::Metadata("DID log"))?;
        let introduced = log
            .versions
            .iter()
            .find(|v| v.methods.iter().any(|(id, _)| *id == kid));
        Ok(KeyInfo {
            did: self.did.clone(),
            key_number: key_number(&self.store, "assertion_n")?,
            public_key: did::multikey(&public),
            did_version: introduced.map(|v| v.number),
            created: introduced.map(|v| v.time),
            newest_version: newest.number,
            newest_version_id: newest.version_id.clone(),
            kid,
        })
    }

    /// The signing key's id and first second, read together.
    pub(super) fn signing_key(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        read(&self.keys)
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn key() -> SecretKey {
        SecretKey::generate(Algorithm::EdDSA, &mut OsRng)
    }

    /// A DID rotated at each of `times` (after creation at `T0`) as `rotate_key_with` does,
    /// with `validity` seconds of credential validity and the compromised keys of each rotation.
    fn rotated(times: &[(i64, &[&str])], validity: i64) -> (String, webvh::VerifiedLog) {
        let mut updates = vec![key(), key()];
        let first = key();
        let params =
            webvh::pre_rotation_parameters(&updates[0].public_key(), &updates[1].public_key());
        let doc = did_document(
            (1, &first.public_key()),
            &[],
            "{DID}",
            "https://agency.example",
        );
        let (did, line) =
            webvh::create("agency.example", doc, params, T0, &updates[0]).expect("create");
        let mut text = format!("{line}\n");
        for (i, (t, compromised)) in times.iter().enumerate() {
            let log = webvh::verify_log(&text, None, *t);
            assert!(log.error.is_none(), "{:?}", log.error);
            let compromised: Vec<String> =
                compromised.iter().map(|k| format!("{did}{k}")).collect();
            let kept = retained_keys(&log, *t, validity, &compromised);
            updates.push(key());
            let next = &updates[i + 1];
            let params =
                webvh::pre_rotation_parameters(&next.public_key(), &updates[i + 2].public_key());
            let doc = did_document(
                (i as u32 + 2, &key().public_key()),
                &kept,
                &did,
                "https://agency.example",
            );
            let line = webvh::update(&log, doc, params, *t, next).expect("update");
            text.push_str(&line);
            text.push('\n');
        }
        let log = webvh::verify_log(&text, None, T0 + 10_000 * DAY);
        assert!(log.error.is_none(), "{:?}", log.error);
        (did, log)
    }

    /// The assertion keys the current DID document lists, as fragments.
    fn listed(did: &str, log: &webvh::VerifiedLog) -> Vec<String> {
        let newest = log.versions.last().expect("a version");
        newest.state["assertionMethod"]
            .as_array()
            .expect("assertionMethod")
            .iter()
            .map(|k| {
                let k = k.as_str().expect("id");
                assert!(newest.verification_method(k).is_some(), "{k} has no method");
                k.strip_prefix(did).expect("own key").to_owned()
            })
            .collect()
    }

    #[test]
    fn a_retired_key_stays_listed_until_its_credentials_expired() {
        let validity = 30 * DAY;
        let (did, log) = rotated(&[(T0 + DAY, &[]), (T0 + 2 * DAY, &[])], validity);
        assert_eq!(listed(&did, &log), ["#key-3", "#key-2", "#key-1"]);
        // key-1 retired at T0 + 1 day: its last credential expires 30 days later. A rotation
        // before that keeps it, the first one after drops it, and key-2 (retired at T0 + 2
        // days) only when its own credentials expired; the key retiring now is always kept.
        let (did, log) = rotated(
            &[
                (T0 + DAY, &[]),
                (T0 + 2 * DAY, &[]),
                (T0 + 31 * DAY + RETIRED_KEY_LEEWAY, &[]),
            ],
            validity,
        );
        assert_eq!(listed(&did, &log), ["#key-4", "#key-3", "#key-2"]);
        let (did, log) = rotated(
            &[(T0 + DAY, &[]), (T0 + 2 * DAY, &[]), (T0 + 40 * DAY, &[])],
            validity,
        );
        assert_eq!(listed(&did, &log), ["#key-4", "#key-3"]);
    }

    #[test]
    fn a_compromised_key_is_never_listed_again() {
        let validity = 365 * DAY;
        let (did, log) = rotated(&[(T0 + DAY, &["#key-1"]), (T0 + 2 * DAY, &[])], validity);
        assert_eq!(listed(&did, &log), ["#key-3", "#key-2"]);
        // The current key declared compromised at its own rotation is not kept either.
        let (did, log) = rotated(&[(T0 + DAY, &[]), (T0 + 2 * DAY, &["#key-2"])], validity);
        assert_eq!(listed(&did, &log), ["#key-3", "#key-1"]);
    }
}
