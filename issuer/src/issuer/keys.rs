//! The issuer's keys: the key store it is given, the did:webvh DID created at initialization,
//! and key rotation.

use rand_core::OsRng;
use serde_json::{json, Value};

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
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

fn did_document(assertion: &SecretKey, n: u32, did: &str, cfg: &Config) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{"id": format!("{did}#key-{n}"), "type": "Multikey", "controller": did, "publicKeyMultibase": did::multikey(&assertion.public_key())}],
        "assertionMethod": [format!("{did}#key-{n}")],
        "service": [{"id": "#oid4vci", "type": "OpenID4VCI", "serviceEndpoint": cfg.public_url}],
    })
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
        let doc = did_document(&assertion, 1, "{DID}", cfg);
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
    /// Administrators (and automation) only; the audit event names the actor.
    pub async fn rotate_key(&self, actor: &Actor) -> Result<Value, Error> {
        actor.require(Permission::RotateKey)?;
        let now = self.now();
        let n = key_number(&self.store, "assertion_n")?;
        let u = key_number(&self.store, "update_n")?;
        let next_update = self.key_store.load(&format!("update-{}", u + 1))?;
        let after = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let log_text = self.did_log()?;
        let log = verified_log(&log_text, now)?;
        let params = webvh::pre_rotation_parameters(&next_update.public_key(), &after.public_key());
        let doc = did_document(&assertion, n + 1, &self.did, &self.config);
        // Strictly after every signature of the old key (second precision), so the old key stays
        // valid for everything it signed and the new key for everything it will sign.
        let t = (now + 1).max(log.versions.last().map_or(now, |v| v.time + 1));
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
            json!({"from": format!("{}#key-{n}", self.did), "to": kid, "actor": actor.audit()}),
        )?;
        *write(&self.keys) = Keys {
            assertion,
            kid: kid.clone(),
            valid_from: t,
        };
        // Every list is signed again with the new key (as far as the clock allows; a list
        // that must wait is signed by the next re-sign).
        self.refresh_status_lists()?;
        Ok(json!({"kid": kid, "version_time": bizcred_core::time::format_utc(t)}))
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
