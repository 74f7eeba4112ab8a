//! SD-JWT (RFC 9901): selective disclosure for JWTs.
//!
//! * [`issue`] conceals chosen claims (object members and single array elements, nested
//!   to any depth) behind salted SHA-256 digests and signs the result.
//! * [`SdJwt::parse`] reads the `<JWT>~<disclosure>~...~[<KB-JWT>]` form.
//! * [`SdJwt::select`] keeps only the disclosures a presentation needs, and
//!   [`SdJwt::bind`] adds a key-binding JWT over nonce, audience, `iat` and `sd_hash`.
//! * [`verify`] checks the issuer signature and every disclosure and returns the claims;
//!   [`verify_key_binding`] checks the KB-JWT.
//!
//! Every refusal is a [`SdJwtError`] with a stable [`SdJwtError::code`].

use std::collections::{HashMap, HashSet};

use rand_core::CryptoRngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::json_text::ObjectWriter;
use crate::jws::{self, Jws, JwsError};
use crate::keys::{PublicKey, SignError, Signer};
use crate::ReasonCode;

/// Largest SD-JWT (with disclosures and KB-JWT) we read, in bytes.
pub const MAX_SD_JWT_LEN: usize = 256 * 1024;
/// Most disclosures one SD-JWT may carry.
pub const MAX_DISCLOSURES: usize = 512;
/// The only digest algorithm we use and accept.
pub const SD_ALG: &str = "sha-256";
/// The KB-JWT `typ`.
pub const KB_JWT_TYP: &str = "kb+jwt";

/// Why an SD-JWT was refused. [`SdJwtError::code`] gives a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdJwtError {
    /// Larger than [`MAX_SD_JWT_LEN`] or more than [`MAX_DISCLOSURES`] disclosures.
    #[error("the SD-JWT is larger than this verifier accepts")]
    TooLarge,
    /// Not an SD-JWT.
    #[error("malformed SD-JWT: {0}")]
    Malformed(&'static str),
    /// The issuer-signed JWT was refused.
    #[error("issuer-signed JWT: {0}")]
    Jws(#[from] JwsError),
    /// `_sd_alg` names a hash other than `sha-256`.
    #[error("unsupported _sd_alg \"{0}\" (only sha-256)")]
    UnsupportedSdAlg(String),
    /// A disclosure is not base64url JSON of `[salt, name, value]` or `[salt, value]`.
    #[error("disclosure {0} is malformed")]
    DisclosureMalformed(usize),
    /// A two-element disclosure where a claim was expected, or the reverse.
    #[error("a disclosure does not fit where its digest appears (object member vs array element)")]
    DisclosureWrongShape,
    /// A disclosure whose digest the issuer never signed: tampered, or from elsewhere.
    #[error("a disclosure's digest is not in the signed payload (tampered or foreign disclosure)")]
    DisclosureNotReferenced,
    /// The same disclosure twice.
    #[error("the same disclosure appears twice")]
    DuplicateDisclosure,
    /// The same digest twice in the payload.
    #[error("the same digest appears twice in the signed payload")]
    DuplicateDigest,
    /// A disclosure names `_sd`, `...` or `_sd_alg`, or an issuer tried to conceal them.
    #[error("claim name \"{0}\" is reserved by SD-JWT")]
    ReservedClaimName(String),
    /// A disclosure would overwrite a claim that is already there.
    #[error("claim \"{0}\" is disclosed but already present")]
    ClaimNameCollision(String),
    /// An issuer asked to conceal a claim that is not there.
    #[error("no claim at the path to make disclosable: {0}")]
    SdPathNotFound(String),
    /// A key-binding JWT was required but is absent.
    #[error("the presentation has no key-binding JWT")]
    KbMissing,
    /// The KB-JWT is not a well-formed JWT.
    #[error("the key-binding JWT is malformed: {0}")]
    KbMalformed(&'static str),
    /// The KB-JWT `typ` is not `kb+jwt`.
    #[error("the key-binding JWT's typ is not kb+jwt")]
    KbWrongType,
    /// The KB-JWT is not signed by the key in `cnf`.
    #[error("the key-binding JWT is not signed by the holder key bound to the credential")]
    KbBadSignature,
    /// The KB-JWT `nonce` differs.
    #[error("the key-binding JWT's nonce is not the one requested")]
    KbNonceMismatch,
    /// The KB-JWT `aud` differs.
    #[error("the key-binding JWT is addressed to another audience")]
    KbAudienceMismatch,
    /// The KB-JWT was issued too long ago.
    #[error("the key-binding JWT is too old (iat {iat}, now {now})")]
    KbIatStale {
        /// KB-JWT `iat`.
        iat: i64,
        /// The verifier's time.
        now: i64,
    },
    /// The KB-JWT claims to be issued in the future.
    #[error("the key-binding JWT is dated in the future (iat {iat}, now {now})")]
    KbIatInFuture {
        /// KB-JWT `iat`.
        iat: i64,
        /// The verifier's time.
        now: i64,
    },
    /// `sd_hash` does not cover this presentation.
    #[error("the key-binding JWT's sd_hash does not match the presented SD-JWT")]
    KbSdHashMismatch,
    /// No usable holder key in `cnf`.
    #[error("the credential has no usable holder key (cnf.jwk)")]
    NoHolderKey,
    /// SD-JWT VC: the `typ` header is not `dc+sd-jwt`.
    #[error("the credential's typ is \"{0}\", not dc+sd-jwt")]
    WrongType(String),
    /// SD-JWT VC: a required registered claim is missing from the signed payload.
    #[error("the credential lacks the {0} claim")]
    MissingClaim(&'static str),
    /// SD-JWT VC: a registered claim that must stay in the clear was selectively disclosed.
    #[error("registered claim \"{0}\" must not be selectively disclosable")]
    RegisteredClaimDisclosable(String),
    /// SD-JWT VC: past `exp`.
    #[error("the credential expired at {exp} (now {now})")]
    Expired {
        /// `exp`.
        exp: i64,
        /// The verifier's time.
        now: i64,
    },
    /// SD-JWT VC: before `nbf`.
    #[error("the credential is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// `nbf`.
        nbf: i64,
        /// The verifier's time.
        now: i64,
    },
    /// SD-JWT VC: `iat` is in the future.
    #[error("the credential is dated in the future (iat {iat}, now {now})")]
    IssuedInFuture {
        /// `iat`.
        iat: i64,
        /// The verifier's time.
        now: i64,
    },
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl SdJwtError {
    /// A stable reason code, for reports, exit paths and tests.
    pub fn code(&self) -> ReasonCode {
        use SdJwtError::*;
        match self {
            TooLarge => ReasonCode::SdJwtTooLarge,
            Malformed(_) => ReasonCode::SdJwtMalformed,
            Jws(e) => e.code(),
            UnsupportedSdAlg(_) => ReasonCode::UnsupportedSdAlg,
            DisclosureMalformed(_) => ReasonCode::DisclosureMalformed,
            DisclosureWrongShape => ReasonCode::DisclosureWrongShape,
            DisclosureNotReferenced => ReasonCode::DisclosureNotReferenced,
            DuplicateDisclosure => ReasonCode::DuplicateDisclosure,
            DuplicateDigest => ReasonCode::DuplicateDigest,
            ReservedClaimName(_) => ReasonCode::ReservedClaimName,
            ClaimNameCollision(_) => ReasonCode::ClaimNameCollision,
            SdPathNotFound(_) => ReasonCode::SdPathNotFound,
            KbMissing => ReasonCode::KbMissing,
            KbMalformed(_) => ReasonCode::KbMalformed,
            KbWrongType => ReasonCode::KbWrongTyp,
            KbBadSignature => ReasonCode::KbBadSignature,
            KbNonceMismatch => ReasonCode::KbNonceMismatch,
            KbAudienceMismatch => ReasonCode::KbAudienceMismatch,
            KbIatStale { .. } => ReasonCode::KbIatStale,
            KbIatInFuture { .. } => ReasonCode::KbIatInFuture,
            KbSdHashMismatch => ReasonCode::KbSdHashMismatch,
            NoHolderKey => ReasonCode::NoHolderKey,
            WrongType(_) => ReasonCode::WrongTyp,
            MissingClaim(_) => ReasonCode::MissingClaim,
            RegisteredClaimDisclosable(_) => ReasonCode::RegisteredClaimDisclosable,
            Expired { .. } => ReasonCode::Expired,
            NotYetValid { .. } => ReasonCode::NotYetValid,
            IssuedInFuture { .. } => ReasonCode::IssuedInFuture,
            Sign(e) => e.code(),
        }
    }
}

/// One step of a claim path, as in SD-JWT VC and DCQL: a member name, an array index, or
/// every element of an array (`null`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// An object member.
    Key(String),
    /// One array element.
    Index(usize),
    /// Every array element.
    All,
}

/// A claim path.
pub type ClaimPath = Vec<PathSegment>;

/// Builds a path from JSON (`["directors", 0]`, `["directors", null]`).
pub fn claim_path(json: &Value) -> Option<ClaimPath> {
    let arr = json.as_array()?;
    if arr.is_empty() || arr.len() > 32 {
        return None;
    }
    arr.iter()
        .map(|s| match s {
            Value::String(k) => Some(PathSegment::Key(k.clone())),
            Value::Null => Some(PathSegment::All),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .map(PathSegment::Index),
            _ => None,
        })
        .collect()
}

/// The JSON form of a path.
pub fn claim_path_json(path: &[PathSegment]) -> Value {
    Value::Array(
        path.iter()
            .map(|s| match s {
                PathSegment::Key(k) => Value::String(k.clone()),
                PathSegment::Index(i) => Value::from(*i),
                PathSegment::All => Value::Null,
            })
            .collect(),
    )
}

/// A path of keys only, e.g. `key_path(&["premises_address", "locality"])`.
pub fn key_path(keys: &[&str]) -> ClaimPath {
    keys.iter()
        .map(|k| PathSegment::Key((*k).to_owned()))
        .collect()
}

fn segment_matches(pattern: &PathSegment, concrete: &PathSegment) -> bool {
    match (pattern, concrete) {
        (PathSegment::All, PathSegment::Index(_)) => true,
        (a, b) => a == b,
    }
}

/// Whether `pattern` (which may hold `All`) matches the concrete `path` exactly.
pub fn path_matches(pattern: &[PathSegment], path: &[PathSegment]) -> bool {
    pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, c)| segment_matches(p, c))
}

fn is_prefix(pattern: &[PathSegment], path: &[PathSegment]) -> bool {
    pattern.len() <= path.len() && pattern.iter().zip(path).all(|(p, c)| segment_matches(p, c))
}

/// A disclosure: `[salt, name, value]` for an object member, `[salt, value]` for an array
/// element, base64url-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// The encoded form, exactly as presented (digests are computed over it).
    pub encoded: String,
    /// The member name, or `None` for an array element.
    pub name: Option<String>,
    /// The disclosed value.
    pub value: Value,
    /// base64url(SHA-256(encoded)).
    pub digest: String,
}

fn digest_of(s: &str) -> String {
    b64::encode(Sha256::digest(s.as_bytes()))
}

impl Disclosure {
    /// A fresh disclosure with a 128-bit salt from `rng`, written straight to JSON text.
    fn new(
        rng: &mut impl CryptoRngCore,
        name: Option<String>,
        value: Value,
    ) -> Result<Disclosure, SdJwtError> {
        let mut text = Vec::with_capacity(128);
        text.extend_from_slice(b"[\"");
        let mut salt = [0u8; SALT_BYTES];
        rng.fill_bytes(&mut salt);
        b64::encode_into_vec(salt, &mut text);
        text.push(b'"');
        if let Some(n) = &name {
            text.push(b',');
            serde_json::to_writer(&mut text, n).map_err(unserializable)?;
        }
        text.push(b',');
        serde_json::to_writer(&mut text, &value).map_err(unserializable)?;
        text.push(b']');
        let encoded = b64::encode(text);
        let digest = digest_of(&encoded);
        Ok(Disclosure {
            encoded,
            name,
            value,
            digest,
        })
    }

    /// Decodes one disclosure (`index` is only for the error).
    pub fn parse(encoded: &str, index: usize) -> Result<Disclosure, SdJwtError> {
        let bad = SdJwtError::DisclosureMalformed(index);
        let bytes = b64::decode(encoded).map_err(|_| bad.clone())?;
        let mut arr: Vec<Value> = serde_json::from_slice(&bytes).map_err(|_| bad.clone())?;
        let shape_ok = matches!(
            arr.as_slice(),
            [Value::String(_), Value::String(_), _] | [Value::String(_), _]
        );
        if !shape_ok {
            return Err(bad);
        }
        // Move the parts out instead of copying them.
        let value = arr.pop().unwrap_or(Value::Null);
        let name = match arr.pop() {
            Some(Value::String(n)) if arr.len() == 1 => Some(n),
            _ => None,
        };
        Ok(Disclosure {
            encoded: encoded.to_owned(),
            name,
            value,
            digest: digest_of(encoded),
        })
    }
}

/// An SD-JWT: the issuer-signed JWT, its disclosures, and an optional key-binding JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdJwt {
    /// The issuer-signed JWT (compact JWS).
    pub jwt: String,
    /// Disclosures, in presentation order.
    pub disclosures: Vec<Disclosure>,
    /// The KB-JWT, if any.
    pub kb_jwt: Option<String>,
}

impl SdJwt {
    /// Parses `<JWT>~<D1>~...~<Dn>~[<KB-JWT>]`. Whitespace is not allowed.
    pub fn parse(s: &str) -> Result<SdJwt, SdJwtError> {
        if s.len() > MAX_SD_JWT_LEN {
            return Err(SdJwtError::TooLarge);
        }
        if !s.contains('~') {
            return Err(SdJwtError::Malformed(
                "an SD-JWT has at least one ~ separator",
            ));
        }
        let parts: Vec<&str> = s.split('~').collect();
        if parts.len() > MAX_DISCLOSURES + 2 {
            return Err(SdJwtError::TooLarge);
        }
        let (jwt, rest) = parts.split_first().ok_or(SdJwtError::Malformed("empty"))?;
        let (last, middle) = rest.split_last().ok_or(SdJwtError::Malformed("empty"))?;
        if jwt.is_empty() {
            return Err(SdJwtError::Malformed("no issuer-signed JWT"));
        }
        let disclosures = middle
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if d.is_empty() {
                    Err(SdJwtError::Malformed("empty disclosure (~~)"))
                } else {
                    Disclosure::parse(d, i)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kb_jwt = if last.is_empty() {
            None
        } else {
            Some((*last).to_owned())
        };
        Ok(SdJwt {
            jwt: (*jwt).to_owned(),
            disclosures,
            kb_jwt,
        })
    }

    /// The SD-JWT without its KB-JWT: `<JWT>~<D1>~...~<Dn>~`, the input of `sd_hash`.
    pub fn without_key_binding(&self) -> String {
        let mut s = String::with_capacity(self.jwt.len() + 64 * self.disclosures.len());
        s.push_str(&self.jwt);
        s.push('~');
        for d in &self.disclosures {
            s.push_str(&d.encoded);
            s.push('~');
        }
        s
    }

    /// The compact serialization.
    pub fn serialize(&self) -> String {
        let mut s = self.without_key_binding();
        if let Some(kb) = &self.kb_jwt {
            s.push_str(kb);
        }
        s
    }

    /// The issuer-signed payload, *not verified*. For a holder inspecting what it received,
    /// or a verifier finding which key to verify with.
    pub fn unverified_payload(&self) -> Result<Map<String, Value>, SdJwtError> {
        Ok(Jws::decode(&self.jwt)?.claims()?)
    }

    /// The claim path each disclosure opens, found by walking the payload (not verified).
    pub fn disclosure_paths(&self) -> Result<Vec<(ClaimPath, usize)>, SdJwtError> {
        let payload = self.unverified_payload()?;
        let index: HashMap<&str, usize> = self
            .disclosures
            .iter()
            .enumerate()
            .map(|(i, d)| (d.digest.as_str(), i))
            .collect();
        let mut out = Vec::new();
        walk_paths(
            &Value::Object(payload),
            &mut Vec::new(),
            &index,
            &self.disclosures,
            &mut out,
            0,
        );
        Ok(out)
    }

    /// A copy holding only the disclosures needed to reveal `paths` (and everything under
    /// them), and no KB-JWT. Paths may use [`PathSegment::All`].
    pub fn select(&self, paths: &[ClaimPath]) -> Result<SdJwt, SdJwtError> {
        let located = self.disclosure_paths()?;
        let keep: HashSet<usize> = located
            .into_iter()
            .filter(|(dpath, _)| {
                paths
                    .iter()
                    .any(|want| is_prefix(dpath, want) || is_prefix(want, dpath))
            })
            .map(|(_, i)| i)
            .collect();
        Ok(SdJwt {
            jwt: self.jwt.clone(),
            disclosures: self
                .disclosures
                .iter()
                .enumerate()
                .filter(|(i, _)| keep.contains(i))
                .map(|(_, d)| d.clone())
                .collect(),
            kb_jwt: None,
        })
    }

    /// Adds a key-binding JWT signed by the holder over `aud`, `nonce`, `iat` and `sd_hash`.
    pub fn bind(
        mut self,
        aud: &str,
        nonce: &str,
        iat: i64,
        holder: &impl Signer,
    ) -> Result<SdJwt, SdJwtError> {
        let sd_hash = digest_of(&self.without_key_binding());
        let mut header = Map::new();
        header.insert("typ".into(), KB_JWT_TYP.into());
        let payload =
            serde_json::json!({"iat": iat, "aud": aud, "nonce": nonce, "sd_hash": sd_hash});
        self.kb_jwt = Some(jws::sign(header, payload.to_string().as_bytes(), holder)?);
        Ok(self)
    }
}

fn walk_paths(
    v: &Value,
    path: &mut ClaimPath,
    index: &HashMap<&str, usize>,
    ds: &[Disclosure],
    out: &mut Vec<(ClaimPath, usize)>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(digests)) = map.get("_sd") {
                for d in digests.iter().filter_map(Value::as_str) {
                    if let Some(&i) = index.get(d) {
                        if let Some(name) = &ds[i].name {
                            path.push(PathSegment::Key(name.clone()));
                            out.push((path.clone(), i));
                            walk_paths(&ds[i].value, path, index, ds, out, depth + 1);
                            path.pop();
                        }
                    }
                }
            }
            for (k, child) in map.iter().filter(|(k, _)| k.as_str() != "_sd") {
                path.push(PathSegment::Key(k.clone()));
                walk_paths(child, path, index, ds, out, depth + 1);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                path.push(PathSegment::Index(n));
                match array_digest(item) {
                    Some(d) => {
                        if let Some(&i) = index.get(d) {
                            out.push((path.clone(), i));
                            walk_paths(&ds[i].value, path, index, ds, out, depth + 1);
                        }
                    }
                    None => walk_paths(item, path, index, ds, out, depth + 1),
                }
                path.pop();
            }
        }
        _ => {}
    }
}

/// `{"...": digest}`, the placeholder of a concealed array element.
fn array_digest(item: &Value) -> Option<&str> {
    match item {
        Value::Object(m) if m.len() == 1 => m.get("...").and_then(Value::as_str),
        _ => None,
    }
}

/// 128-bit salts, as RFC 9901 recommends.
const SALT_BYTES: usize = 16;

fn salt(rng: &mut impl CryptoRngCore) -> String {
    let mut b = [0u8; SALT_BYTES];
    rng.fill_bytes(&mut b);
    b64::encode(b)
}

fn unserializable(_: serde_json::Error) -> SdJwtError {
    SdJwtError::Malformed("a claim cannot be serialized as JSON")
}

fn check_claim_name(k: &str) -> Result<(), SdJwtError> {
    if k == "_sd" || k == "..." || k == "_sd_alg" {
        return Err(SdJwtError::ReservedClaimName(k.to_owned()));
    }
    Ok(())
}

struct Concealer<'a, R> {
    sd: &'a [ClaimPath],
    matched: Vec<bool>,
    out: Vec<Disclosure>,
    rng: &'a mut R,
}

impl<R: CryptoRngCore> Concealer<'_, R> {
    /// Whether the member or element `last` of the container at `parent` is disclosable.
    fn wanted(&mut self, parent: &[PathSegment], last: &PathSegment) -> bool {
        let mut hit = false;
        for (i, p) in self.sd.iter().enumerate() {
            if let Some((l, init)) = p.split_last() {
                if segment_matches(l, last) && path_matches(init, parent) {
                    self.matched[i] = true;
                    hit = true;
                }
            }
        }
        hit
    }

    /// Conceals inside `value` (a container) at `parent` + `last`; scalars pass through
    /// without building the path.
    fn conceal_child(
        &mut self,
        value: Value,
        parent: &mut ClaimPath,
        last: PathSegment,
    ) -> Result<(Value, PathSegment), SdJwtError> {
        if !matches!(value, Value::Object(_) | Value::Array(_)) {
            return Ok((value, last));
        }
        parent.push(last);
        let v = self.conceal(value, parent)?;
        let last = parent.pop().unwrap_or(PathSegment::All);
        Ok((v, last))
    }

    /// Conceals below the top level, returning the concealed value (it may itself become
    /// a disclosure's value).
    fn conceal(&mut self, value: Value, path: &mut ClaimPath) -> Result<Value, SdJwtError> {
        Ok(match value {
            Value::Object(map) => {
                let mut kept = Map::new();
                let mut digests = Vec::new();
                for (k, v) in map {
                    check_claim_name(&k)?;
                    let (v, k) = self.conceal_child(v, path, PathSegment::Key(k))?;
                    let wanted = self.wanted(path, &k);
                    let PathSegment::Key(k) = k else {
                        return Err(SdJwtError::Malformed("claim path"));
                    };
                    if wanted {
                        let d = Disclosure::new(self.rng, Some(k), v)?;
                        digests.push(Value::String(d.digest.clone()));
                        self.out.push(d);
                    } else {
                        kept.insert(k, v);
                    }
                }
                if !digests.is_empty() {
                    // Sorted, so the order reveals nothing about the original claims.
                    digests.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                    kept.insert("_sd".into(), Value::Array(digests));
                }
                Value::Object(kept)
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (n, v) in items.into_iter().enumerate() {
                    let (v, i) = self.conceal_child(v, path, PathSegment::Index(n))?;
                    if self.wanted(path, &i) {
                        let d = Disclosure::new(self.rng, None, v)?;
                        out.push(serde_json::json!({"...": d.digest}));
                        self.out.push(d);
                    } else {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            other => other,
        })
    }

    /// Conceals the top level, writing the payload's members straight to `payload` (after
    /// whatever clear members it already holds), then `_sd` with `decoys` decoy digests, then
    /// `_sd_alg`.
    fn conceal_top(
        &mut self,
        claims: Map<String, Value>,
        decoys: usize,
        payload: &mut ObjectWriter,
    ) -> Result<(), SdJwtError> {
        let mut path = Vec::with_capacity(4);
        let mut top = Vec::new();
        for (k, v) in claims {
            check_claim_name(&k)?;
            let (v, k) = self.conceal_child(v, &mut path, PathSegment::Key(k))?;
            let wanted = self.wanted(&path, &k);
            let PathSegment::Key(k) = k else {
                return Err(SdJwtError::Malformed("claim path"));
            };
            if wanted {
                top.push(self.out.len());
                self.out.push(Disclosure::new(self.rng, Some(k), v)?);
            } else {
                payload.member(&k, &v).map_err(unserializable)?;
            }
        }
        let decoys: Vec<String> = (0..decoys).map(|_| digest_of(&salt(self.rng))).collect();
        let mut digests: Vec<&str> = top
            .iter()
            .map(|&i| self.out[i].digest.as_str())
            .chain(decoys.iter().map(String::as_str))
            .collect();
        if !digests.is_empty() {
            // Sorted, so the order reveals nothing about the original claims.
            digests.sort_unstable();
            payload
                .b64_array_member("_sd", digests)
                .map_err(unserializable)?;
        }
        payload.member("_sd_alg", SD_ALG).map_err(unserializable)
    }
}

/// Issues an SD-JWT: conceals the claims at `disclosable` (paths may use
/// [`PathSegment::All`] for every element of an array), adds `decoys` decoy digests to the
/// top level, sets `_sd_alg`, and signs with `signer`. `header` supplies `typ`, `kid`, ...
pub fn issue(
    mut header: Map<String, Value>,
    claims: Map<String, Value>,
    disclosable: &[ClaimPath],
    decoys: usize,
    signer: &impl Signer,
    rng: &mut impl CryptoRngCore,
) -> Result<SdJwt, SdJwtError> {
    header.insert("alg".into(), signer.algorithm().as_str().into());
    let header = Value::Object(header).to_string();
    let payload = ObjectWriter::with_capacity(1024);
    issue_serialized(
        header.as_bytes(),
        payload,
        claims,
        disclosable,
        decoys,
        signer,
        rng,
    )
}

/// [`issue`] for callers that wrote the JOSE header (with `alg`) and the payload's clear
/// members themselves: `claims` are concealed and appended to `payload`.
pub(crate) fn issue_serialized(
    header: &[u8],
    mut payload: ObjectWriter,
    claims: Map<String, Value>,
    disclosable: &[ClaimPath],
    decoys: usize,
    signer: &impl Signer,
    rng: &mut impl CryptoRngCore,
) -> Result<SdJwt, SdJwtError> {
    let mut c = Concealer {
        sd: disclosable,
        matched: vec![false; disclosable.len()],
        out: Vec::with_capacity(disclosable.len()),
        rng,
    };
    c.conceal_top(claims, decoys, &mut payload)?;
    if let Some(i) = c.matched.iter().position(|m| !m) {
        let unmatched = &disclosable[i];
        // A path with a wildcard may match nothing (an empty array); an exact path must match.
        if !unmatched.contains(&PathSegment::All) {
            return Err(SdJwtError::SdPathNotFound(
                claim_path_json(unmatched).to_string(),
            ));
        }
    }
    let jwt = jws::sign_serialized(header, &payload.finish(), signer)?;
    Ok(SdJwt {
        jwt,
        disclosures: c.out,
        kb_jwt: None,
    })
}

/// What [`verify`] returns: the verified header and the claims with every presented
/// disclosure applied (and `_sd`, `_sd_alg` and undisclosed placeholders removed).
#[derive(Debug, Clone)]
pub struct Verified {
    /// The issuer-signed JWT's header.
    pub header: Map<String, Value>,
    /// The payload exactly as signed (with digests).
    pub signed_payload: Map<String, Value>,
    /// The processed claims.
    pub claims: Map<String, Value>,
}

/// Verifies the issuer signature with `issuer_key` and processes every disclosure
/// (RFC 9901 §7.1). The KB-JWT is not looked at; see [`verify_key_binding`].
pub fn verify(sd: &SdJwt, issuer_key: &PublicKey) -> Result<Verified, SdJwtError> {
    let jws = Jws::decode(&sd.jwt)?;
    jws.verify(issuer_key)?;
    let signed_payload = jws.claims()?;
    let claims = process(signed_payload.clone(), &sd.disclosures)?;
    Ok(Verified {
        header: jws.header,
        signed_payload,
        claims,
    })
}

/// Applies disclosures to a payload (signature already checked).
pub fn process(
    mut payload: Map<String, Value>,
    disclosures: &[Disclosure],
) -> Result<Map<String, Value>, SdJwtError> {
    match payload.remove("_sd_alg") {
        None => {}
        Some(Value::String(a)) if a == SD_ALG => {}
        Some(Value::String(a)) => {
            return Err(SdJwtError::UnsupportedSdAlg(a.chars().take(32).collect()))
        }
        Some(_) => return Err(SdJwtError::Malformed("_sd_alg is not a string")),
    }
    if disclosures.len() > MAX_DISCLOSURES {
        return Err(SdJwtError::TooLarge);
    }
    let mut by_digest = HashMap::with_capacity(disclosures.len());
    for (i, d) in disclosures.iter().enumerate() {
        if by_digest.insert(d.digest.as_str(), i).is_some() {
            return Err(SdJwtError::DuplicateDisclosure);
        }
    }
    let mut st = Processor {
        by_digest,
        disclosures,
        used: vec![false; disclosures.len()],
        seen: HashSet::new(),
    };
    let Value::Object(claims) = st.expand(Value::Object(payload), 0)? else {
        return Err(SdJwtError::Malformed("payload is not an object"));
    };
    if st.used.iter().any(|u| !u) {
        return Err(SdJwtError::DisclosureNotReferenced);
    }
    Ok(claims)
}

struct Processor<'a> {
    by_digest: HashMap<&'a str, usize>,
    disclosures: &'a [Disclosure],
    used: Vec<bool>,
    seen: HashSet<String>,
}

impl<'a> Processor<'a> {
    fn take(&mut self, digest: &str) -> Result<Option<&'a Disclosure>, SdJwtError> {
        if !self.seen.insert(digest.to_owned()) {
            return Err(SdJwtError::DuplicateDigest);
        }
        let ds: &'a [Disclosure] = self.disclosures;
        Ok(self.by_digest.get(digest).map(|&i| {
            self.used[i] = true;
            &ds[i]
        }))
    }

    fn expand(&mut self, v: Value, depth: usize) -> Result<Value, SdJwtError> {
        if depth > 64 {
            return Err(SdJwtError::Malformed("claims nested too deeply"));
        }
        Ok(match v {
            Value::Object(mut map) => {
                let sd = map.remove("_sd");
                let mut out = Map::with_capacity(map.len());
                for (k, child) in map {
                    out.insert(k, self.expand(child, depth + 1)?);
                }
                match sd {
                    None => {}
                    Some(Value::Array(digests)) => {
                        for d in digests {
                            let Value::String(d) = d else {
                                return Err(SdJwtError::Malformed("_sd holds a non-string"));
                            };
                            let Some(disc) = self.take(&d)? else { continue };
                            let Some(name) = disc.name.clone() else {
                                return Err(SdJwtError::DisclosureWrongShape);
                            };
                            if name == "_sd" || name == "..." || name == "_sd_alg" {
                                return Err(SdJwtError::ReservedClaimName(name));
                            }
                            if out.contains_key(&name) {
                                return Err(SdJwtError::ClaimNameCollision(name));
                            }
                            let value = self.expand(disc.value.clone(), depth + 1)?;
                            out.insert(name, value);
                        }
                    }
                    Some(_) => return Err(SdJwtError::Malformed("_sd is not an array")),
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(d) = array_digest(&item) {
                        let d = d.to_owned();
                        if let Some(disc) = self.take(&d)? {
                            if disc.name.is_some() {
                                return Err(SdJwtError::DisclosureWrongShape);
                            }
                            let value = disc.value.clone();
                            out.push(self.expand(value, depth + 1)?);
                        }
                    } else {
                        out.push(self.expand(item, depth + 1)?);
                    }
                }
                Value::Array(out)
            }
            other => other,
        })
    }
}

/// What the verifier expects of a key-binding JWT.
#[derive(Debug, Clone, Copy)]
pub struct KbExpectations<'a> {
    /// The verifier's identifier (`aud`): in OpenID4VP, its client id.
    pub audience: &'a str,
    /// The nonce the verifier sent.
    pub nonce: &'a str,
    /// The verifier's time, Unix seconds.
    pub now: i64,
    /// Oldest acceptable `iat`, in seconds before `now`.
    pub max_age: i64,
    /// Tolerated clock skew for an `iat` ahead of `now`, in seconds.
    pub max_future_skew: i64,
}

/// Verifies the KB-JWT of `sd` against the holder key and the expectations.
pub fn verify_key_binding(
    sd: &SdJwt,
    holder: &PublicKey,
    exp: &KbExpectations<'_>,
) -> Result<(), SdJwtError> {
    let kb = sd.kb_jwt.as_deref().ok_or(SdJwtError::KbMissing)?;
    let jws = Jws::decode(kb).map_err(|_| SdJwtError::KbMalformed("not a compact JWS"))?;
    if jws.header_str("typ") != Some(KB_JWT_TYP) {
        return Err(SdJwtError::KbWrongType);
    }
    match jws.verify(holder) {
        Ok(()) => {}
        Err(JwsError::Algorithm(a)) => return Err(SdJwtError::Jws(JwsError::Algorithm(a))),
        Err(_) => return Err(SdJwtError::KbBadSignature),
    }
    let claims = jws
        .claims()
        .map_err(|_| SdJwtError::KbMalformed("payload is not JSON"))?;
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("nonce") != Some(exp.nonce) {
        return Err(SdJwtError::KbNonceMismatch);
    }
    if s("aud") != Some(exp.audience) {
        return Err(SdJwtError::KbAudienceMismatch);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(SdJwtError::KbMalformed("no iat"))?;
    if iat > exp.now.saturating_add(exp.max_future_skew) {
        return Err(SdJwtError::KbIatInFuture { iat, now: exp.now });
    }
    if exp.now.saturating_sub(iat) > exp.max_age {
        return Err(SdJwtError::KbIatStale { iat, now: exp.now });
    }
    if s("sd_hash") != Some(digest_of(&sd.without_key_binding()).as_str()) {
        return Err(SdJwtError::KbSdHashMismatch);
    }
    Ok(())
}
