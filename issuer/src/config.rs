//! The agency's configuration file (`agency.toml`). Every missing or wrong setting is a clear
//! startup error naming the setting.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use bizcred_core::trust::bundle::TrustAnchor;
use bizcred_schemas::CredentialType;

/// A configuration error: which setting, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, an unknown setting, or a setting of the wrong kind.
    #[error("configuration: {0}")]
    Toml(#[source] toml::de::Error),
    /// A setting with a value it may not have.
    #[error("configuration: {setting}: {problem}")]
    Setting {
        /// The setting, as the file names it (`server.listen`).
        setting: &'static str,
        /// What is wrong, and what it may be.
        problem: String,
    },
}

fn bad(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Setting {
        setting,
        problem: problem.into(),
    }
}

impl ConfigError {
    /// Stable reason code.
    pub fn code(&self) -> bizcred_schemas::ReasonCode {
        bizcred_schemas::ReasonCode::ConfigInvalid
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    agency: RawAgency,
    server: RawServer,
    storage: RawStorage,
    registry: RawRegistry,
    issuance: RawIssuance,
    #[serde(default)]
    status: RawStatus,
    admin: RawAdmin,
    #[serde(default)]
    desk: RawDesk,
    #[serde(default)]
    subscription: Vec<RawSubscription>,
    #[serde(default)]
    policy: std::collections::BTreeMap<String, RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscription {
    url: String,
    did: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    auto_suspend_dependents: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDesk {
    secure_cookies: Option<bool>,
    idle_minutes: Option<i64>,
    absolute_hours: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgency {
    name_en: String,
    name_fr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    public_url: String,
    listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: PathBuf,
    cache_mb: Option<u64>,
    database: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    url: String,
    origin: String,
    log_key_name: Option<String>,
    log_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuance {
    types: Vec<String>,
    #[serde(default)]
    prerequisites: toml::Table,
    #[serde(default)]
    validity_days: Option<i64>,
    #[serde(default)]
    offer_ttl_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    list_size: Option<u64>,
    resign_interval_seconds: Option<u64>,
    validity_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token_sha256: Vec<String>,
}

/// The embedded store's page cache when `storage.cache_mb` is not set (MiB). sled's own
/// default (1 GiB) let the issuer's memory grow to 1.7 GiB under sustained load.
pub const DEFAULT_CACHE_MB: u64 = 64;

/// Connections an instance keeps to its PostgreSQL database when `storage.max_connections` is
/// not set.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// A PostgreSQL database URL (`postgres://` or `postgresql://`). It may hold a password: its
/// `Debug` and [`DatabaseUrl::redacted`] show neither the password nor the parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Checks that `url` is a PostgreSQL URL (the setting named in the error).
    pub fn parse(url: &str, setting: &'static str) -> Result<DatabaseUrl, ConfigError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl(url.to_owned()))
        } else {
            Err(bad(
                setting,
                "a PostgreSQL URL, postgres://user@host:port/database",
            ))
        }
    }

    /// The URL itself, to connect with (never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password and parameters, for messages and logs.
    pub fn redacted(&self) -> String {
        bizcred_pg::redact_url(&self.0)
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// `--database URL` (or `BIZCRED_ISSUER_DATABASE_URL`): the PostgreSQL database of the
/// issuer's records, over `storage.database`.
#[derive(Clone, Default, clap::Args)]
pub struct DatabaseArg {
    /// The PostgreSQL database holding the issuer's records (over `[storage] database`).
    #[arg(
        long = "database",
        env = "BIZCRED_ISSUER_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

impl std::fmt::Debug for DatabaseArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArg")
            .field("database", &self.database.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl DatabaseArg {
    /// Sets `cfg.database` when a URL was given.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), ConfigError> {
        if let Some(url) = &self.database {
            cfg.database = Some(DatabaseUrl::parse(url, "--database")?);
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// English name.
    pub name_en: String,
    /// French name.
    pub name_fr: String,
    /// The Credential Issuer Identifier (the public base URL, no trailing slash).
    pub public_url: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Storage directory (sled database and key files).
    pub storage: PathBuf,
    /// The embedded store's page cache (MiB).
    pub cache_mb: u64,
    /// The PostgreSQL database holding the issuer's records (`storage.database`, or `serve
    /// --database`); `None`: the sled store in `storage`. Key files, staff accounts and the
    /// DID log file stay in `storage` either way.
    pub database: Option<DatabaseUrl>,
    /// Connections to that database (`storage.max_connections`).
    pub max_connections: u32,
    /// Registry base URL.
    pub registry_url: String,
    /// The registry trust anchor.
    pub anchor: TrustAnchor,
    /// Types issued, with their prerequisites.
    pub types: Vec<(CredentialType, Vec<CredentialType>)>,
    /// Credential validity (days), for `exp`.
    pub validity_days: i64,
    /// Credential offer lifetime (seconds).
    pub offer_ttl: i64,
    /// Status list size (entries).
    pub list_size: u64,
    /// Re-signing interval (seconds).
    pub resign_interval: u64,
    /// Status list token validity (seconds).
    pub status_validity: i64,
    /// SHA-256 hashes of the admin tokens.
    pub admin_token_hashes: Vec<[u8; 32]>,
    /// The staff desk's sessions and cookies.
    pub desk: DeskSettings,
    /// Upstream agencies whose event feeds this agency polls (`[[subscription]]`).
    pub subscriptions: Vec<UpstreamConfig>,
    /// Types whose credentials are suspended automatically when a prerequisite is revoked or
    /// suspended upstream (`[policy.<type>] auto_suspend_dependents = true`; off by default).
    pub auto_suspend: Vec<CredentialType>,
}

/// Most upstream agencies one issuer subscribes to.
pub const MAX_SUBSCRIPTIONS: usize = 32;

/// An upstream agency's event feed (`[[subscription]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Its issuer URL (the feed is `{url}/events`), no trailing slash.
    pub url: String,
    /// Its DID, when given; else the trust state's issuer whose did:webvh host is the URL's.
    pub did: Option<String>,
}

/// The staff desk's settings (`[desk]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeskSettings {
    /// Mark session cookies `Secure`: on by default when `public_url` is https.
    pub secure_cookies: bool,
    /// A session ends after this many seconds without a request (default 15 minutes).
    pub idle_seconds: i64,
    /// A session ends this many seconds after sign-in (default 8 hours).
    pub absolute_seconds: i64,
}

fn parse_type(s: &str, what: &'static str) -> Result<CredentialType, ConfigError> {
    CredentialType::from_slug(s)
        .or_else(|| CredentialType::from_vct(s))
        .ok_or_else(|| {
            bad(
                what,
                format!(
                    "unknown credential type {s:?} (one of {})",
                    CredentialType::ALL.map(|t| t.slug()).join(", ")
                ),
            )
        })
}

impl Config {
    /// The host-and-port part of the issuer's did:webvh DID, from `public_url`.
    pub fn did_host(&self) -> String {
        let rest = self
            .public_url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.public_url);
        let host = rest.split('/').next().unwrap_or(rest);
        let mut out = host.replace(':', "%3A");
        for seg in rest.split('/').skip(1).filter(|s| !s.is_empty()) {
            out.push(':');
            out.push_str(seg);
        }
        out
    }

    /// Parses and validates `text`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(ConfigError::Toml)?;
        let public_url = raw.server.public_url.trim_end_matches('/').to_owned();
        let local = public_url.starts_with("http://localhost:")
            || public_url.starts_with("http://localhost/");
        if !(public_url.starts_with("https://") || local) {
            return Err(bad(
                "server.public_url",
                "must be https:// (http:// only for localhost)",
            ));
        }
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            bad(
                "server.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:8081",
                    raw.server.listen
                ),
            )
        })?;
        if raw.agency.name_en.trim().is_empty() || raw.agency.name_fr.trim().is_empty() {
            return Err(bad(
                "agency.name_en",
                "the names in English and French (agency.name_fr) are required",
            ));
        }
        if raw.issuance.types.is_empty() {
            return Err(bad("issuance.types", "at least one credential type"));
        }
        let mut types = Vec::new();
        for t in &raw.issuance.types {
            let ty = parse_type(t, "issuance.types")?;
            let prereq = match raw
                .issuance
                .prerequisites
                .get(ty.slug())
                .or_else(|| raw.issuance.prerequisites.get(t))
            {
                None => ty.prerequisites().to_vec(),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .ok_or_else(|| bad("issuance.prerequisites", "lists of type names"))
                            .and_then(|s| parse_type(s, "issuance.prerequisites"))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad("issuance.prerequisites", "lists of type names")),
            };
            types.push((ty, prereq));
        }
        let hashes = raw
            .admin
            .token_sha256
            .iter()
            .map(|h| {
                (h.len() == 64)
                    .then(|| {
                        (0..32)
                            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
                            .collect::<Option<Vec<u8>>>()
                    })
                    .flatten()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| {
                        bad(
                            "admin.token_sha256",
                            "hex SHA-256 hashes of the admin tokens",
                        )
                    })
            })
            .collect::<Result<Vec<[u8; 32]>, _>>()?;
        if hashes.is_empty() {
            return Err(bad("admin.token_sha256", "at least one admin token hash"));
        }
        let cache_mb = raw.storage.cache_mb.unwrap_or(DEFAULT_CACHE_MB);
        if !(1..=65_536).contains(&cache_mb) {
            return Err(bad("storage.cache_mb", "between 1 and 65536 (MiB)"));
        }
        let database = raw
            .storage
            .database
            .as_deref()
            .map(|u| DatabaseUrl::parse(u, "storage.database"))
            .transpose()?;
        let max_connections = raw
            .storage
            .max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=1000).contains(&max_connections) {
            return Err(bad("storage.max_connections", "between 1 and 1000"));
        }
        let list_size = raw.status.list_size.unwrap_or(131_072);
        if !(16..=(1 << 24)).contains(&list_size) {
            return Err(bad("status.list_size", "between 16 and 16777216"));
        }
        // Out of range is an error, never silently cut to the bound.
        let validity_days = raw.issuance.validity_days.unwrap_or(365);
        if !(1..=3650).contains(&validity_days) {
            return Err(bad("issuance.validity_days", "between 1 and 3650 (days)"));
        }
        let offer_ttl = raw.issuance.offer_ttl_seconds.unwrap_or(900);
        if !(60..=7 * 86_400).contains(&offer_ttl) {
            return Err(bad(
                "issuance.offer_ttl_seconds",
                "between 60 and 604800 (seconds)",
            ));
        }
        let resign_interval = raw.status.resign_interval_seconds.unwrap_or(3600);
        let status_validity = raw.status.validity_seconds.unwrap_or(48 * 3600);
        if resign_interval == 0 || status_validity <= resign_interval as i64 {
            return Err(bad(
                "status.validity_seconds",
                "must exceed status.resign_interval_seconds, which must be positive",
            ));
        }
        let idle = raw.desk.idle_minutes.unwrap_or(15);
        if !(1..=24 * 60).contains(&idle) {
            return Err(bad("desk.idle_minutes", "between 1 and 1440 (minutes)"));
        }
        let absolute = raw.desk.absolute_hours.unwrap_or(8);
        if !(1..=72).contains(&absolute) {
            return Err(bad("desk.absolute_hours", "between 1 and 72 (hours)"));
        }
        let desk = DeskSettings {
            secure_cookies: raw
                .desk
                .secure_cookies
                .unwrap_or(public_url.starts_with("https://")),
            idle_seconds: idle * 60,
            absolute_seconds: absolute * 3600,
        };
        if raw.subscription.len() > MAX_SUBSCRIPTIONS {
            return Err(bad("subscription", "at most 32 subscriptions"));
        }
        let mut subscriptions: Vec<UpstreamConfig> = Vec::new();
        for sub in raw.subscription {
            let url = sub.url.trim_end_matches('/').to_owned();
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
                return Err(bad("subscription.url", "an http(s) issuer URL"));
            }
            if subscriptions.iter().any(|s| s.url == url) {
                return Err(bad("subscription.url", format!("{url} is listed twice")));
            }
            if sub.did.as_deref().is_some_and(|d| !d.starts_with("did:")) {
                return Err(bad("subscription.did", "a DID"));
            }
            subscriptions.push(UpstreamConfig { url, did: sub.did });
        }
        let mut auto_suspend = Vec::new();
        for (t, p) in &raw.policy {
            let ty = parse_type(t, "policy")?;
            if !types.iter().any(|(issued, _)| *issued == ty) {
                return Err(bad("policy", format!("{t} is not issued by this agency")));
            }
            if p.auto_suspend_dependents {
                auto_suspend.push(ty);
            }
        }
        Ok(Config {
            name_en: raw.agency.name_en,
            name_fr: raw.agency.name_fr,
            public_url,
            listen,
            storage: raw.storage.path,
            cache_mb,
            database,
            max_connections,
            registry_url: raw.registry.url.trim_end_matches('/').to_owned(),
            anchor: TrustAnchor {
                log_key_name: raw
                    .registry
                    .log_key_name
                    .unwrap_or_else(|| raw.registry.origin.clone()),
                origin: raw.registry.origin,
                log_key: raw.registry.log_key,
            },
            types,
            validity_days,
            offer_ttl,
            list_size,
            resign_interval,
            status_validity,
            admin_token_hashes: hashes,
            desk,
            subscriptions,
            auto_suspend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agency]
name_en = "AGCO"
name_fr = "CAJO"
[server]
public_url = "http://localhost:8084"
listen = "127.0.0.1:8084"
[storage]
path = "agco-data"
[registry]
url = "http://localhost:8080"
origin = "registry.test/log"
log_key = "z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"
[issuance]
types = ["liquor-sales-licence"]
[admin]
token_sha256 = ["0000000000000000000000000000000000000000000000000000000000000000"]
"#;

    #[test]
    fn good_and_bad() {
        let c = Config::parse(GOOD).expect("good");
        assert_eq!(c.did_host(), "localhost%3A8084");
        assert_eq!(
            c.types[0].1.len(),
            3,
            "the liquor licence needs three prerequisites"
        );
        for (from, to, want) in [
            (
                "http://localhost:8084",
                "http://agco.example:8084",
                "public_url",
            ),
            ("127.0.0.1:8084", "nowhere", "server.listen"),
            (
                "\"liquor-sales-licence\"]",
                "\"fishing-licence\"]",
                "unknown credential type",
            ),
            (
                "token_sha256 = [\"0000",
                "token_sha256 = [\"zz00",
                "admin.token_sha256",
            ),
        ] {
            let err = Config::parse(&GOOD.replacen(from, to, 1)).expect_err(want);
            assert!(err.to_string().contains(want), "{err}");
        }
        assert!(Config::parse(&GOOD.replace("[admin]", "[admin]\nextra = 1")).is_err());
        assert_eq!(c.cache_mb, DEFAULT_CACHE_MB);
        let sized = GOOD.replacen("[storage]", "[storage]\ncache_mb = 16", 1);
        assert_eq!(Config::parse(&sized).expect("sized").cache_mb, 16);
        let zero = GOOD.replacen("[storage]", "[storage]\ncache_mb = 0", 1);
        let err = Config::parse(&zero).expect_err("zero cache");
        assert!(err.to_string().contains("storage.cache_mb"), "{err}");
        // Out of range is refused, not cut to the bound.
        for (setting, line) in [
            ("issuance.validity_days", "validity_days = 0"),
            ("issuance.offer_ttl_seconds", "offer_ttl_seconds = 10"),
        ] {
            let text = GOOD.replacen("[issuance]", &format!("[issuance]\n{line}"), 1);
            match Config::parse(&text) {
                Err(ConfigError::Setting { setting: s, .. }) => assert_eq!(s, setting),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
