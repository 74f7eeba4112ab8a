//! did:webvh 1.0 (DIF): parse DIDs, create and update logs, and verify a log from local data
//! (resolution at the latest version, a `versionId`, a `versionNumber` or a `versionTime`).
//!
//! The log arrives as text (`did.jsonl`, and `did-witness.json` when witnesses are used);
//! fetching it is the caller's business. Verification follows the spec's Read (Resolve)
//! steps for **every** entry: parameters, the `eddsa-jcs-2022` proof by an authorized update
//! key, the `versionId` number and entry-hash chain, strictly increasing `versionTime` no
//! more than five minutes ahead of `now`, the SCID, `state.id`, pre-rotation and witnesses.
//! Entries before the first invalid one stay resolvable (spec Read steps 10-11).
//!
//! bizcred deviations, stated: the host `localhost` (with a port) is accepted so DIDs work on
//! loopback, and its log URL uses `http://`; every other host needs a dot and uses HTTPS.
//! Internationalised (non-ASCII) domain names are refused rather than IDNA-processed.

use crate::ReasonCode;
use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::data_integrity::{self, ProofError};
use crate::did;
use crate::keys::{PublicKey, Signer};
use crate::time;

/// The only `method` value this resolver accepts.
pub const METHOD: &str = "did:webvh:1.0";
/// Tolerated clock skew for `versionTime` in the future (seconds).
pub const MAX_FUTURE_SKEW: i64 = 300;
/// Largest log we process (bytes) and most entries.
pub const MAX_LOG_LEN: usize = 4 * 1024 * 1024;
/// Most entries in one log.
pub const MAX_ENTRIES: usize = 10_000;

/// Why a DID or a log was refused. [`WebvhError::resolution_error`] maps it to the DID
/// Resolution error codes the did:webvh test suite uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebvhError {
    /// The DID string breaks the did:webvh syntax or host rules.
    #[error("invalid did:webvh DID: {0}")]
    InvalidDid(String),
    /// A log entry is not valid (hash chain, times, SCID, state, structure).
    #[error("invalid log entry {entry}: {reason}")]
    InvalidEntry {
        /// 1-based entry number.
        entry: usize,
        /// What is wrong.
        reason: String,
    },
    /// A log entry's parameters are invalid (including pre-rotation and witness rules).
    #[error("invalid parameters in entry {entry}: {reason}")]
    InvalidParameters {
        /// 1-based entry number.
        entry: usize,
        /// What is wrong.
        reason: String,
    },
    /// A log entry's proof is missing, malformed, unauthorized or does not verify.
    #[error("invalid proof on entry {entry}: {reason}")]
    InvalidProof {
        /// 1-based entry number.
        entry: usize,
        /// What is wrong.
        reason: String,
    },
    /// Entry `entry` needed witness approval and lacks a threshold of valid proofs.
    #[error("entry {entry} is not witnessed by a threshold of its witnesses")]
    NotWitnessed {
        /// 1-based entry number.
        entry: usize,
    },
    /// The requested version does not exist.
    #[error("no such version of the DID")]
    NotFound,
    /// A log or witness file over the size bounds.
    #[error("the DID log is larger than this resolver accepts")]
    TooLarge,
    /// Building an entry failed (signer, or invalid input to create/update).
    #[error("cannot build the log entry: {0}")]
    Build(String),
}

impl WebvhError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            WebvhError::InvalidDid(_) => ReasonCode::WebvhInvalidDid,
            WebvhError::NotFound => ReasonCode::WebvhNotFound,
            WebvhError::TooLarge => ReasonCode::WebvhTooLarge,
            WebvhError::Build(_) => ReasonCode::SigningFailed,
            _ => ReasonCode::WebvhInvalidLog,
        }
    }

    /// The DID Resolution error code: `invalidDid`, `invalidParameters`, `invalidProof` or
    /// `notFound`.
    pub fn resolution_error(&self) -> &'static str {
        match self {
            WebvhError::InvalidParameters { .. } => "invalidParameters",
            WebvhError::InvalidProof { .. } => "invalidProof",
            WebvhError::NotFound => "notFound",
            _ => "invalidDid",
        }
    }

    /// The 1-based entry at fault, where there is one.
    pub fn entry(&self) -> Option<usize> {
        match self {
            WebvhError::InvalidEntry { entry, .. }
            | WebvhError::InvalidParameters { entry, .. }
            | WebvhError::InvalidProof { entry, .. }
            | WebvhError::NotWitnessed { entry } => Some(*entry),
            _ => None,
        }
    }
}

/// A parsed did:webvh DID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebvhDid {
    /// The DID string, canonical (`%3A` port separator).
    pub did: String,
    /// The SCID.
    pub scid: String,
    /// The host (lower case).
    pub host: String,
    /// The port, if any.
    pub port: Option<u16>,
    /// Decoded path segments.
    pub path: Vec<String>,
}

fn is_base58(c: u8) -> bool {
    matches!(c, b'1'..=b'9' | b'A'..=b'H' | b'J'..=b'N' | b'P'..=b'Z' | b'a'..=b'k' | b'm'..=b'z')
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated percent-encoding")?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| "invalid percent-encoding")?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding is not UTF-8".to_owned())
}

fn percent_encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn looks_like_ip(host: &str) -> bool {
    // A WHATWG URL parser turns a host whose last label is numeric (decimal, 0x hex or octal)
    // into an IPv4 address.
    let last = host.rsplit('.').next().unwrap_or("");
    let numeric = |l: &str| {
        !l.is_empty()
            && (l.bytes().all(|c| c.is_ascii_digit())
                || (l.len() > 2
                    && (l.starts_with("0x") || l.starts_with("0X"))
                    && l[2..].bytes().all(|c| c.is_ascii_hexdigit())))
    };
    numeric(last) || host.contains(':') || host.contains('[')
}

impl WebvhDid {
    /// Parses a bare did:webvh DID (no path, query or fragment).
    pub fn parse(did: &str) -> Result<WebvhDid, WebvhError> {
        let bad = |r: &str| WebvhError::InvalidDid(r.to_owned());
        if did.len() > did::MAX_DID_LEN {
            return Err(bad("too long"));
        }
        if did.contains(['/', '?', '#']) {
            return Err(bad("a DID has no path, query or fragment"));
        }
        let rest = did
            .strip_prefix("did:webvh:")
            .ok_or_else(|| bad("not did:webvh"))?;
        let mut parts = rest.split(':');
        let scid = parts.next().unwrap_or("");
        if scid.len() != 46 || !scid.bytes().all(is_base58) {
            return Err(bad("the SCID is not 46 base58btc characters"));
        }
        let domain = parts.next().ok_or_else(|| bad("no domain"))?;
        if !domain.is_ascii() {
            return Err(bad("internationalised domain names are not supported"));
        }
        // The port: a trailing %3A followed by 1-5 digits.
        let upper = domain.to_ascii_uppercase();
        let (host_enc, port) = match upper.rfind("%3A") {
            Some(i) => {
                let digits = &domain[i + 3..];
                if digits.is_empty()
                    || digits.len() > 5
                    || !digits.bytes().all(|c| c.is_ascii_digit())
                {
                    return Err(bad("invalid port"));
                }
                let p: u32 = digits.parse().map_err(|_| bad("invalid port"))?;
                let p = u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("port out of range"))?;
                (&domain[..i], Some(p))
            }
            None => (domain, None),
        };
        let host = percent_decode(host_enc)
            .map_err(|e| bad(&e))?
            .to_ascii_lowercase();
        if host.contains(':') {
            return Err(bad("more than one port separator, or an IPv6 address"));
        }
        let labels: Vec<&str> = host.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.len() > 253 || !labels.iter().all(label_ok) {
            return Err(bad("invalid domain name"));
        }
        if host != "localhost" && labels.len() < 2 {
            return Err(bad("the domain must be fully qualified"));
        }
        if looks_like_ip(&host) {
            return Err(bad("the domain must not be an IP address"));
        }
        let mut path = Vec::new();
        for seg in parts {
            let d = percent_decode(seg).map_err(|e| bad(&e))?;
            if d.is_empty()
                || d == "."
                || d == ".."
                || d.contains(['/', '\\', '\0'])
                || d.trim() != d
            {
                return Err(bad("invalid path segment"));
            }
            path.push(d);
        }
        let mut canonical = format!("did:webvh:{scid}:{}", host_enc);
        if let Some(p) = port {
            canonical.push_str(&format!("%3A{p}"));
        }
        for seg in &path {
            canonical.push(':');
            canonical.push_str(&percent_encode_segment(seg));
        }
        Ok(WebvhDid {
            did: canonical,
            scid: scid.to_owned(),
            host,
            port,
            path,
        })
    }

    fn origin(&self) -> String {
        let scheme = if self.host == "localhost" {
            "http"
        } else {
            "https"
        };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// Where the controller publishes files (`#files` service): origin plus path.
    pub fn base_url(&self) -> String {
        let mut u = self.origin();
        for seg in &self.path {
            u.push('/');
            u.push_str(&percent_encode_segment(seg));
        }
        u
    }

    /// The URL of `did.jsonl` (DID-to-HTTPS transformation).
    pub fn log_url(&self) -> String {
        if self.path.is_empty() {
            format!("{}/.well-known/did.jsonl", self.origin())
        } else {
            format!("{}/did.jsonl", self.base_url())
        }
    }

    /// The URL of `did-witness.json`.
    pub fn witness_url(&self) -> String {
        self.log_url().replace("/did.jsonl", "/did-witness.json")
    }
}

/// The SHA-256 multihash of `data`, base58btc (no multibase prefix): `Qm...`.
pub fn multihash(data: &[u8]) -> String {
    let mut mh = vec![0x12, 0x20];
    mh.extend_from_slice(&Sha256::digest(data));
    bs58::encode(mh).into_string()
}

/// The pre-rotation hash of an update key: `base58btc(multihash(multikey))`.
pub fn next_key_hash(key: &PublicKey) -> String {
    multihash(did::multikey(key).as_bytes())
}

/// The pre-rotation parameters of an entry: `update` may sign it, `next` the one after.
pub fn pre_rotation_parameters(update: &PublicKey, next: &PublicKey) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert(
        "updateKeys".into(),
        Value::Array(vec![did::multikey(update).into()]),
    );
    params.insert(
        "nextKeyHashes".into(),
        Value::Array(vec![next_key_hash(next).into()]),
    );
    params
}

fn jcs(v: &Value) -> Result<Vec<u8>, String> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| e.to_string())
}

/// A witness configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// Distinct approvals needed.
    pub threshold: usize,
    /// Witness `did:key` DIDs.
    pub witnesses: Vec<String>,
}

/// Parameters in force after an entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parameters {
    /// The SCID.
    pub scid: String,
    /// Multikeys authorized to update.
    pub update_keys: Vec<String>,
    /// Pre-rotation commitments.
    pub next_key_hashes: Vec<String>,
    /// Witness configuration (`None` = no witnesses).
    pub witness: Option<Witness>,
    /// Watcher URLs.
    pub watchers: Vec<String>,
    /// Portability.
    pub portable: bool,
    /// Deactivated.
    pub deactivated: bool,
    /// Cache time-to-live (seconds).
    pub ttl: u64,
}

/// One verified version of a DID.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// `n-entryHash`.
    pub version_id: String,
    /// `n`.
    pub number: u64,
    /// `versionTime`, Unix seconds.
    pub time: i64,
    /// `versionTime` as written.
    pub time_text: String,
    /// The DID document of this version.
    pub state: Value,
    /// Parameters in force after this entry.
    pub params: Parameters,
    /// The raw log line.
    pub line: String,
    /// The verification methods, decoded once (absolute id, key).
    pub methods: Vec<(String, PublicKey)>,
}

/// Decodes the verification methods of a DID document (absolute ids).
fn decode_methods(state: &Value) -> Vec<(String, PublicKey)> {
    let id = state.get("id").and_then(Value::as_str).unwrap_or("");
    let vms = state
        .get("verificationMethod")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    vms.iter()
        .filter_map(|vm| {
            let vid = vm.get("id").and_then(Value::as_str)?;
            let full = if vid.starts_with('#') {
                format!("{id}{vid}")
            } else {
                vid.to_owned()
            };
            let key = if let Some(mb) = vm.get("publicKeyMultibase").and_then(Value::as_str) {
                did::from_multikey(mb).ok()?
            } else {
                let jwk = serde_json::from_value(vm.get("publicKeyJwk")?.clone()).ok()?;
                PublicKey::from_jwk(&jwk).ok()?
            };
            Some((full, key))
        })
        .collect()
}

impl Version {
    /// `state.id`.
    pub fn id(&self) -> &str {
        self.state.get("id").and_then(Value::as_str).unwrap_or("")
    }

    /// The verification method `vm_id` (absolute DID URL or `#fragment`) of this version.
    pub fn verification_method(&self, vm_id: &str) -> Option<PublicKey> {
        let id = self.id();
        let owned;
        let want = if vm_id.starts_with('#') {
            owned = format!("{id}{vm_id}");
            owned.as_str()
        } else {
            vm_id
        };
        self.methods
            .iter()
            .find(|(m, _)| m == want)
            .map(|(_, k)| k.clone())
    }

    /// Whether `vm_id` is listed under `relationship` (e.g. `assertionMethod`).
    pub fn has_relationship(&self, relationship: &str, vm_id: &str) -> bool {
        let id = self.id();
        let full = |s: &str| {
            if s.starts_with('#') {
                format!("{id}{s}")
            } else {
                s.to_owned()
            }
        };
        let want = full(vm_id);
        self.state
            .get(relationship)
            .and_then(Value::as_array)
            .is_some_and(|list| {
                list.iter().any(|r| match r {
                    Value::String(s) => full(s) == want,
                    Value::Object(o) => {
                        o.get("id").and_then(Value::as_str).map(full).as_deref()
                            == Some(want.as_str())
                    }
                    _ => false,
                })
            })
    }
}

/// The outcome of verifying a log: the valid prefix and, if the log goes bad, why.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLog {
    /// Valid versions, in order.
    pub versions: Vec<Version>,
    /// The first failure, after which nothing is valid.
    pub error: Option<WebvhError>,
}

impl VerifiedLog {
    /// The SCID (of the first entry), if any entry verified.
    pub fn scid(&self) -> Option<&str> {
        self.versions.first().map(|v| v.params.scid.as_str())
    }

    /// The version in force at Unix time `t` (the last with `versionTime <= t`).
    pub fn at_time(&self, t: i64) -> Option<&Version> {
        self.versions.iter().take_while(|v| v.time <= t).last()
    }

    /// The whole log text of the valid prefix.
    pub fn text(&self) -> String {
        self.versions
            .iter()
            .map(|v| format!("{}\n", v.line))
            .collect()
    }
}

fn entry_err(entry: usize, reason: impl Into<String>) -> WebvhError {
    WebvhError::InvalidEntry {
        entry,
        reason: reason.into(),
    }
}
fn param_err(entry: usize, reason: impl Into<String>) -> WebvhError {
    WebvhError::InvalidParameters {
        entry,
        reason: reason.into(),
    }
}
fn proof_err(entry: usize, reason: impl Into<String>) -> WebvhError {
    WebvhError::InvalidProof {
        entry,
        reason: reason.into(),
    }
}

fn string_list(v: &Value, entry: usize, name: &str) -> Result<Vec<String>, WebvhError> {
    let arr = v
        .as_array()
        .ok_or_else(|| param_err(entry, format!("{name} is not an array")))?;
    if arr.len() > 100 {
        return Err(param_err(entry, format!("{name} is too long")));
    }
    arr.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| param_err(entry, format!("{name} holds a non-string")))
        })
        .collect()
}

fn parse_witness(v: &Value, entry: usize) -> Result<Option<Witness>, WebvhError> {
    let obj = match v {
        Value::Null => return Ok(None),
        Value::Object(o) if o.is_empty() => return Ok(None),
        Value::Object(o) => o,
        _ => return Err(param_err(entry, "witness is not an object")),
    };
    let threshold = obj
        .get("threshold")
        .and_then(Value::as_u64)
        .ok_or_else(|| param_err(entry, "witness threshold is not a positive integer"))?;
    let list = obj
        .get("witnesses")
        .and_then(Value::as_array)
        .ok_or_else(|| param_err(entry, "witness list missing"))?;
    let mut ids = Vec::new();
    for w in list {
        let id = w
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| param_err(entry, "witness without id"))?;
        let body = id
            .strip_prefix("did:key:")
            .ok_or_else(|| param_err(entry, "witness id is not a did:key"))?;
        match did::from_multikey(body) {
            Ok(PublicKey::Ed25519(_)) => {}
            _ => return Err(param_err(entry, "witness key is not an Ed25519 did:key")),
        }
        if ids.iter().any(|x| x == id) {
            return Err(param_err(entry, "duplicate witness id"));
        }
        ids.push(id.to_owned());
    }
    if ids.is_empty() || threshold < 1 || threshold as usize > ids.len() {
        return Err(param_err(
            entry,
            "witness threshold must be between 1 and the number of witnesses",
        ));
    }
    Ok(Some(Witness {
        threshold: threshold as usize,
        witnesses: ids,
    }))
}

/// Applies an entry's `parameters` to the active ones.
fn apply_parameters(
    prev: Option<&Parameters>,
    p: &Map<String, Value>,
    entry: usize,
) -> Result<Parameters, WebvhError> {
    const KNOWN: [&str; 9] = [
        "method",
        "scid",
        "updateKeys",
        "nextKeyHashes",
        "witness",
        "watchers",
        "portable",
        "deactivated",
        "ttl",
    ];
    if let Some(k) = p.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(param_err(entry, format!("unknown parameter {k}")));
    }
    let first = prev.is_none();
    let mut out = prev.cloned().unwrap_or(Parameters {
        ttl: 3600,
        ..Parameters::default()
    });
    match p.get("method") {
        Some(Value::String(m)) if m == METHOD => {}
        Some(_) => {
            return Err(entry_err(
                entry,
                "unknown method version (only did:webvh:1.0)",
            ))
        }
        None if first => return Err(param_err(entry, "the first entry must set method")),
        None => {}
    }
    match (p.get("scid"), first) {
        (Some(Value::String(s)), true) => out.scid = s.clone(),
        (None, true) => return Err(param_err(entry, "the first entry must set scid")),
        (Some(_), true) => return Err(param_err(entry, "scid is not a string")),
        (Some(_), false) => {
            return Err(param_err(entry, "scid may only appear in the first entry"))
        }
        (None, false) => {}
    }
    let pre_rotation = prev.is_some_and(|p| !p.next_key_hashes.is_empty());
    match p.get("updateKeys") {
        Some(Value::Null) => out.update_keys = Vec::new(),
        Some(v) => {
            let keys = string_list(v, entry, "updateKeys")?;
            for k in &keys {
                if !matches!(did::from_multikey(k), Ok(PublicKey::Ed25519(_))) {
                    return Err(param_err(entry, "an update key is not an Ed25519 multikey"));
                }
            }
            out.update_keys = keys;
        }
        None if first => return Err(param_err(entry, "the first entry must set updateKeys")),
        None if pre_rotation => {
            return Err(param_err(
                entry,
                "pre-rotation is active: updateKeys must be given",
            ))
        }
        None => {}
    }
    match p.get("nextKeyHashes") {
        Some(Value::Null) => out.next_key_hashes = Vec::new(),
        Some(v) => out.next_key_hashes = string_list(v, entry, "nextKeyHashes")?,
        None if pre_rotation => {
            return Err(param_err(
                entry,
                "pre-rotation is active: nextKeyHashes must be given",
            ))
        }
        None => {}
    }
    if pre_rotation {
        let committed = &prev.map(|p| p.next_key_hashes.clone()).unwrap_or_default();
        for k in &out.update_keys {
            if !committed.contains(&multihash(k.as_bytes())) {
                return Err(param_err(
                    entry,
                    "an update key was not committed in the previous nextKeyHashes",
                ));
            }
        }
    }
    if let Some(w) = p.get("witness") {
        out.witness = parse_witness(w, entry)?;
    }
    if let Some(w) = p.get("watchers") {
        out.watchers = if w.is_null() {
            Vec::new()
        } else {
            string_list(w, entry, "watchers")?
        };
    }
    match p.get("portable") {
        Some(Value::Bool(true)) if !first => {
            return Err(param_err(
                entry,
                "portable may only be enabled in the first entry",
            ))
        }
        Some(Value::Bool(b)) => out.portable = *b,
        Some(_) => return Err(param_err(entry, "portable is not a boolean")),
        None => {}
    }
    match p.get("deactivated") {
        Some(Value::Bool(b)) => out.deactivated = *b,
        Some(Value::Null) | None => {}
        Some(_) => return Err(param_err(entry, "deactivated is not a boolean")),
    }
    match p.get("ttl") {
        Some(Value::Null) => out.ttl = 3600,
        Some(v) => {
            out.ttl = v
                .as_u64()
                .filter(|t| *t <= 1 << 31)
                .ok_or_else(|| param_err(entry, "ttl is not an integer in 0..2^31"))?
        }
        None => {}
    }
    Ok(out)
}

/// Verifies a whole log. `witness_file` is the text of `did-witness.json`, if published.
/// `now` is the resolver's time (Unix seconds).
pub fn verify_log(log: &str, witness_file: Option<&str>, now: i64) -> VerifiedLog {
    let mut versions: Vec<Version> = Vec::new();
    if log.len() > MAX_LOG_LEN || witness_file.is_some_and(|w| w.len() > MAX_LOG_LEN) {
        return VerifiedLog {
            versions,
            error: Some(WebvhError::TooLarge),
        };
    }
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > MAX_ENTRIES {
        return VerifiedLog {
            versions,
            error: Some(WebvhError::TooLarge),
        };
    }
    if lines.is_empty() {
        return VerifiedLog {
            versions,
            error: Some(WebvhError::NotFound),
        };
    }
    let mut error = None;
    for (i, line) in lines.iter().enumerate() {
        match verify_entry(line, i + 1, versions.last(), now) {
            Ok(v) => versions.push(v),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    // Witnesses, after every other check (spec: witness proofs never stand in for them).
    if let Some((keep, e)) = check_witnesses(&versions, witness_file) {
        versions.truncate(keep);
        error = Some(e);
    }
    VerifiedLog { versions, error }
}

fn verify_entry(
    line: &str,
    n: usize,
    prev: Option<&Version>,
    now: i64,
) -> Result<Version, WebvhError> {
    let raw: Value = serde_json::from_str(line).map_err(|_| entry_err(n, "not a JSON object"))?;
    let Value::Object(entry) = raw else {
        return Err(entry_err(n, "not a JSON object"));
    };
    const FIELDS: [&str; 5] = ["versionId", "versionTime", "parameters", "state", "proof"];
    if entry.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        return Err(entry_err(n, "unknown member in log entry"));
    }
    let version_id = entry
        .get("versionId")
        .and_then(Value::as_str)
        .ok_or_else(|| entry_err(n, "no versionId"))?
        .to_owned();
    let time_text = entry
        .get("versionTime")
        .and_then(Value::as_str)
        .ok_or_else(|| entry_err(n, "no versionTime"))?
        .to_owned();
    let params = entry
        .get("parameters")
        .and_then(Value::as_object)
        .ok_or_else(|| entry_err(n, "parameters is not an object"))?;
    let state = entry
        .get("state")
        .filter(|s| s.is_object())
        .ok_or_else(|| entry_err(n, "state is not an object"))?
        .clone();
    let proofs = match entry.get("proof") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(p @ Value::Object(_)) => vec![p.clone()],
        _ => return Err(entry_err(n, "the entry has no proof")),
    };
    if prev.is_some_and(|p| p.params.deactivated) {
        return Err(entry_err(
            n,
            "the DID was deactivated; no further entries are allowed",
        ));
    }

    // 1. Parameters.
    let active = apply_parameters(prev.map(|p| &p.params), params, n)?;

    // 2. Proof by an authorized update key.
    let pre_rotation = prev.is_some_and(|p| !p.params.next_key_hashes.is_empty());
    let authorized: &[String] = match prev {
        None => &active.update_keys,
        Some(_) if pre_rotation => &active.update_keys,
        Some(p) => &p.params.update_keys,
    };
    let mut unsigned = entry.clone();
    unsigned.remove("proof");
    let unsigned = Value::Object(unsigned);
    let mut authorized_proof = false;
    for proof in &proofs {
        let vm = data_integrity::verification_method(proof, "assertionMethod")
            .map_err(|e| proof_err(n, e.to_string()))?;
        let (mk, key) = data_integrity::did_key_method(vm)
            .ok_or_else(|| proof_err(n, "verificationMethod is not did:key:<key>#<same key>"))?;
        data_integrity::verify(&unsigned, proof, &key, "assertionMethod")
            .map_err(|e: ProofError| proof_err(n, e.to_string()))?;
        authorized_proof |= authorized.contains(&mk);
    }
    if !authorized_proof {
        return Err(proof_err(n, "no proof by an authorized update key"));
    }

    // 3. versionId: number and entry hash chain.
    let (num, hash) = version_id
        .split_once('-')
        .ok_or_else(|| entry_err(n, "versionId has no dash"))?;
    if hash.contains('-')
        || num.is_empty()
        || !num.bytes().all(|c| c.is_ascii_digit())
        || num.starts_with('0')
    {
        return Err(entry_err(n, "versionId is not <number>-<hash>"));
    }
    let number: u64 = num.parse().map_err(|_| entry_err(n, "version number"))?;
    if number != n as u64 {
        return Err(entry_err(
            n,
            format!("version number {number} where {n} was expected"),
        ));
    }
    let hash_ok = bs58::decode(hash)
        .into_vec()
        .is_ok_and(|b| b.len() == 34 && b[0] == 0x12 && b[1] == 0x20);
    if !hash_ok {
        return Err(entry_err(n, "entryHash is not a SHA-256 multihash"));
    }
    let predecessor = match prev {
        Some(p) => p.version_id.clone(),
        None => active.scid.clone(),
    };
    let mut chained = unsigned.clone();
    chained["versionId"] = Value::String(predecessor);
    if multihash(&jcs(&chained).map_err(|e| entry_err(n, e))?) != hash {
        return Err(entry_err(
            n,
            "entryHash does not match the entry (hash chain broken)",
        ));
    }

    // 4. versionTime.
    let time = time::parse_utc(&time_text)
        .map_err(|_| entry_err(n, "versionTime is not a UTC timestamp"))?;
    if prev.is_some_and(|p| time <= p.time) {
        return Err(entry_err(
            n,
            "versionTime is not after the previous entry's",
        ));
    }
    if time > now.saturating_add(MAX_FUTURE_SKEW) {
        return Err(entry_err(n, "versionTime is in the future"));
    }

    // 5. SCID (first entry).
    if prev.is_none() {
        let scid = &active.scid;
        if scid.len() != 46
            || !bs58::decode(scid)
                .into_vec()
                .is_ok_and(|b| b.len() == 34 && b[0] == 0x12 && b[1] == 0x20)
        {
            return Err(entry_err(n, "scid is not a SHA-256 multihash"));
        }
        let mut pre = unsigned.clone();
        pre["versionId"] = Value::String("{SCID}".into());
        let text = serde_json::to_string(&pre)
            .map_err(|e| entry_err(n, e.to_string()))?
            .replace(scid.as_str(), "{SCID}");
        let pre: Value = serde_json::from_str(&text).map_err(|e| entry_err(n, e.to_string()))?;
        if multihash(&jcs(&pre).map_err(|e| entry_err(n, e))?) != *scid {
            return Err(entry_err(n, "the SCID does not match the first entry"));
        }
    }

    // 6. state.id.
    let id = state
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| entry_err(n, "state has no id"))?;
    let parsed = WebvhDid::parse(id).map_err(|e| entry_err(n, format!("state.id: {e}")))?;
    if parsed.scid != active.scid {
        return Err(entry_err(n, "state.id carries another SCID"));
    }
    if let Some(p) = prev {
        if p.id() != id {
            if !active.portable {
                return Err(entry_err(n, "the DID moved but is not portable"));
            }
            let aka = state.get("alsoKnownAs").and_then(Value::as_array);
            if !aka.is_some_and(|a| a.iter().any(|x| x.as_str() == Some(p.id()))) {
                return Err(entry_err(
                    n,
                    "a moved DID must list its previous DID in alsoKnownAs",
                ));
            }
        }
    }
    let methods = decode_methods(&state);
    Ok(Version {
        version_id,
        number,
        time,
        time_text,
        state,
        params: active,
        line: (*line).to_owned(),
        methods,
    })
}

/// Returns `(number of versions to keep, error)` when some entry lacks witness approval.
fn check_witnesses(
    versions: &[Version],
    witness_file: Option<&str>,
) -> Option<(usize, WebvhError)> {
    let needs = |i: usize| -> Option<&Witness> {
        // The configuration in force before this entry, or the one this entry turns on.
        let before = if i == 0 {
            None
        } else {
            versions[i - 1].params.witness.as_ref()
        };
        before.or(versions[i].params.witness.as_ref())
    };
    if !(0..versions.len()).any(|i| needs(i).is_some()) {
        return None;
    }
    let file: Vec<Value> = witness_file
        .and_then(|w| serde_json::from_str(w).ok())
        .unwrap_or_default();
    let index: HashMap<&str, usize> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| (v.version_id.as_str(), i))
        .collect();
    // For each version index, the witness ids with a valid proof on that version.
    let mut approvals: Vec<BTreeSet<String>> = vec![BTreeSet::new(); versions.len()];
    for item in &file {
        let Some(vid) = item.get("versionId").and_then(Value::as_str) else {
            continue;
        };
        let Some(&i) = index.get(vid) else { continue }; // proofs for unknown versions are discarded
        let doc = serde_json::json!({ "versionId": vid });
        for proof in item
            .get("proof")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(64)
        {
            let Ok(vm) = data_integrity::verification_method(proof, "assertionMethod") else {
                continue;
            };
            let Some((mk, key)) = data_integrity::did_key_method(vm) else {
                continue;
            };
            if data_integrity::verify(&doc, proof, &key, "assertionMethod").is_ok() {
                approvals[i].insert(format!("did:key:{mk}"));
            }
        }
    }
    for i in 0..versions.len() {
        let Some(w) = needs(i) else { continue };
        // A proof on this or any later published version approves this one.
        let approved: BTreeSet<&String> = approvals[i..]
            .iter()
            .flatten()
            .filter(|id| w.witnesses.contains(id))
            .collect();
        if approved.len() < w.threshold {
            return Some((i, WebvhError::NotWitnessed { entry: i + 1 }));
        }
    }
    None
}

/// A DID URL query understood by the resolver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// `versionId`.
    pub version_id: Option<String>,
    /// `versionNumber`.
    pub version_number: Option<u64>,
    /// `versionTime` (Unix seconds).
    pub version_time: Option<i64>,
}

/// A resolution result.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The DID document, with the implicit `#files` and `#whois` services.
    pub document: Value,
    /// DID document metadata (`versionId`, `versionTime`, `created`, `updated`, ...).
    pub metadata: Value,
    /// The version resolved.
    pub version: Version,
}

/// Splits a DID URL into the DID and its query.
pub fn parse_did_url(url: &str) -> Result<(WebvhDid, Query), WebvhError> {
    let end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let did = WebvhDid::parse(&url[..end])?;
    let mut q = Query::default();
    if let Some(query) = url[end..].strip_prefix('?') {
        let query = query.split('#').next().unwrap_or("");
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).map_err(WebvhError::InvalidDid)?;
            match k {
                "versionId" => q.version_id = Some(v),
                "versionNumber" => {
                    q.version_number = Some(v.parse().map_err(|_| WebvhError::NotFound)?)
                }
                "versionTime" => {
                    q.version_time = Some(
                        time::parse_utc(&v)
                            .map_err(|_| WebvhError::InvalidDid("versionTime".into()))?,
                    )
                }
                _ => {}
            }
        }
    }
    Ok((did, q))
}

/// Resolves `did_url` from a verified log.
pub fn resolve(did_url: &str, log: &VerifiedLog) -> Result<Resolution, WebvhError> {
    let (did, q) = parse_did_url(did_url)?;
    let first = log
        .versions
        .first()
        .ok_or_else(|| log.error.clone().unwrap_or(WebvhError::NotFound))?;
    if first.params.scid != did.scid {
        return Err(WebvhError::InvalidDid(
            "the log belongs to another SCID".into(),
        ));
    }
    if !log.versions.iter().any(|v| v.id() == did.did) {
        return Err(WebvhError::InvalidDid(
            "no entry of the log is this DID".into(),
        ));
    }
    let missing = || log.error.clone().unwrap_or(WebvhError::NotFound);
    let by_id = q
        .version_id
        .as_ref()
        .map(|id| log.versions.iter().find(|v| &v.version_id == id));
    let by_number = q
        .version_number
        .map(|n| log.versions.iter().find(|v| v.number == n));
    let version = match (by_id, by_number, q.version_time) {
        (Some(a), Some(b), _) => match (a, b) {
            (Some(a), Some(b)) if a.number == b.number => a,
            _ => return Err(WebvhError::NotFound),
        },
        (Some(v), None, _) | (None, Some(v), _) => match v {
            Some(v) => v,
            None if q.version_number.is_some_and(|n| n == 0) => return Err(WebvhError::NotFound),
            None if q
                .version_id
                .as_deref()
                .is_some_and(|id| !id.contains('-') || id.ends_with("-invalid")) =>
            {
                return Err(WebvhError::NotFound)
            }
            None => return Err(missing()),
        },
        (None, None, Some(t)) => log.at_time(t).ok_or(WebvhError::NotFound)?,
        (None, None, None) => match &log.error {
            Some(e) => return Err(e.clone()),
            None => log.versions.last().ok_or(WebvhError::NotFound)?,
        },
    };
    let last = log.versions.last().unwrap_or(version);
    let mut document = version.state.clone();
    add_implicit_services(&mut document);
    let mut metadata = serde_json::json!({
        "versionId": version.version_id,
        "versionTime": version.time_text,
        "versionNumber": version.number,
        "created": first.time_text,
        "updated": last.time_text,
        "scid": first.params.scid,
        "portable": version.params.portable,
        "ttl": version.params.ttl.to_string(),
        "watchers": version.params.watchers,
    });
    if let Some(w) = &version.params.witness {
        metadata["witness"] = serde_json::json!({
            "threshold": w.threshold.to_string(),
            "witnesses": w.witnesses.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>(),
        });
    }
    if last.params.deactivated {
        metadata["deactivated"] = true.into();
    }
    Ok(Resolution {
        document,
        metadata,
        version: version.clone(),
    })
}

/// Adds the implicit `#files` (relativeRef) and `#whois` (LinkedVerifiablePresentation)
/// services unless the document defines them.
pub fn add_implicit_services(doc: &mut Value) {
    let Some(id) = doc.get("id").and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    let Ok(did) = WebvhDid::parse(&id) else {
        return;
    };
    let base = did.base_url();
    let has = |doc: &Value, frag: &str| {
        doc.get("service")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter().any(|x| {
                    let sid = x.get("id").and_then(Value::as_str).unwrap_or("");
                    sid == frag || sid == format!("{id}{frag}")
                })
            })
    };
    let mut add = Vec::new();
    if !has(doc, "#files") {
        add.push(
            serde_json::json!({"id": "#files", "type": "relativeRef", "serviceEndpoint": base}),
        );
    }
    if !has(doc, "#whois") {
        add.push(serde_json::json!({"@context": "https://identity.foundation/linked-vp/contexts/v1", "id": "#whois", "type": "LinkedVerifiablePresentation", "serviceEndpoint": format!("{base}/whois.vp")}));
    }
    if add.is_empty() {
        return;
    }
    if let Some(obj) = doc.as_object_mut() {
        match obj.get_mut("service").and_then(Value::as_array_mut) {
            Some(list) => list.extend(add),
            None => {
                obj.insert("service".into(), Value::Array(add));
            }
        }
    }
}

fn proof_for(entry: &Value, signer: &impl Signer, time: &str) -> Result<Value, WebvhError> {
    let mk = did::multikey(&signer.public_key());
    data_integrity::sign(
        entry,
        signer,
        &format!("did:key:{mk}#{mk}"),
        time,
        "assertionMethod",
    )
    .map_err(|e| WebvhError::Build(e.to_string()))
}

fn finish(
    mut entry: Value,
    predecessor: &str,
    number: u64,
    signer: &impl Signer,
    time: &str,
) -> Result<String, WebvhError> {
    entry["versionId"] = Value::String(predecessor.to_owned());
    let hash = multihash(&jcs(&entry).map_err(WebvhError::Build)?);
    entry["versionId"] = Value::String(format!("{number}-{hash}"));
    let proof = proof_for(&entry, signer, time)?;
    entry["proof"] = Value::Array(vec![proof]);
    serde_json::to_string(&entry).map_err(|e| WebvhError::Build(e.to_string()))
}

/// Creates a DID. `host_and_path` is the part after the SCID (e.g. `localhost%3A8081` or
/// `example.com:dids:issuer`); `document` is the initial DID document, where the literal
/// `{DID}` is replaced by the DID (with its `{SCID}` placeholder). `parameters` are the
/// first entry's parameters besides `method` and `scid`. Returns the DID and the first line.
pub fn create(
    host_and_path: &str,
    document: Value,
    mut parameters: Map<String, Value>,
    version_time: i64,
    signer: &impl Signer,
) -> Result<(String, String), WebvhError> {
    let did_template = format!("did:webvh:{{SCID}}:{host_and_path}");
    let doc_text = serde_json::to_string(&document)
        .map_err(|e| WebvhError::Build(e.to_string()))?
        .replace("{DID}", &did_template);
    let state: Value =
        serde_json::from_str(&doc_text).map_err(|e| WebvhError::Build(e.to_string()))?;
    parameters.insert("method".into(), METHOD.into());
    parameters.insert("scid".into(), "{SCID}".into());
    let time_text = time::format_utc(version_time);
    let pre = serde_json::json!({
        "versionId": "{SCID}",
        "versionTime": time_text,
        "parameters": parameters,
        "state": state,
    });
    let scid = multihash(&jcs(&pre).map_err(WebvhError::Build)?);
    let text = serde_json::to_string(&pre)
        .map_err(|e| WebvhError::Build(e.to_string()))?
        .replace("{SCID}", &scid);
    let entry: Value = serde_json::from_str(&text).map_err(|e| WebvhError::Build(e.to_string()))?;
    let line = finish(entry, &scid, 1, signer, &time_text)?;
    let did = did_template.replace("{SCID}", &scid);
    WebvhDid::parse(&did)?;
    Ok((did, line))
}

/// Builds the next entry of `log` with a new document and parameter changes, signed by
/// `signer` (a key authorized for that entry: with pre-rotation, one of the new
/// `updateKeys`). Returns the new line; the caller verifies it by re-reading the log.
pub fn update(
    log: &VerifiedLog,
    state: Value,
    parameters: Map<String, Value>,
    version_time: i64,
    signer: &impl Signer,
) -> Result<String, WebvhError> {
    let last = log
        .versions
        .last()
        .ok_or_else(|| WebvhError::Build("empty log".into()))?;
    let time_text = time::format_utc(version_time);
    let entry = serde_json::json!({
        "versionId": "",
        "versionTime": time_text,
        "parameters": parameters,
        "state": state,
    });
    finish(entry, &last.version_id, last.number + 1, signer, &time_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCID: &str = "QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFD";

    #[test]
    fn did_syntax() {
        let ok = WebvhDid::parse(&format!("did:webvh:{SCID}:example.com%3a3000:dids:issuer"))
            .expect("ok");
        assert_eq!(
            ok.log_url(),
            "https://example.com:3000/dids/issuer/did.jsonl"
        );
        assert_eq!(
            ok.did,
            format!("did:webvh:{SCID}:example.com%3A3000:dids:issuer")
        );
        let bare = WebvhDid::parse(&format!("did:webvh:{SCID}:example.com")).expect("ok");
        assert_eq!(bare.log_url(), "https://example.com/.well-known/did.jsonl");
        assert_eq!(
            bare.witness_url(),
            "https://example.com/.well-known/did-witness.json"
        );
        let local = WebvhDid::parse(&format!("did:webvh:{SCID}:localhost%3A8081")).expect("ok");
        assert_eq!(
            local.log_url(),
            "http://localhost:8081/.well-known/did.jsonl"
        );
        for bad in [
            "127.0.0.1",
            "127%2E0%2E0%2E1",
            "169%2e254%2e169%2e254",
            "127.0.0.1%3a8080",
            "example.com:..:admin",
            "example.com:%2E%2E:admin",
            "example.com:a%2Fb",
            "example.com%3A0",
            "example.com%3A70000",
            "example.com%3A80%3A81",
            "0x7f.1",
            "intranet",
            "exa_mple.com",
            "example.com::x",
            "example.com:%20x",
        ] {
            let r = WebvhDid::parse(&format!("did:webvh:{SCID}:{bad}"));
            assert!(
                matches!(r, Err(WebvhError::InvalidDid(_))),
                "{bad} must be refused"
            );
        }
        assert!(WebvhDid::parse(
            "did:webvh:Qm0000000000000000000000000000000000000000000000:example.com"
        )
        .is_err());
        assert!(WebvhDid::parse(&format!("did:webvh:{SCID}:example.com#x")).is_err());
    }
}
