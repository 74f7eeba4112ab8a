//! IETF Token Status List (draft-ietf-oauth-status-list): the compressed bit array, and the
//! signed Status List Token (`typ: statuslist+jwt`).
//!
//! Index `i` with `bits` bits per entry occupies bits `(i*bits) % 8 ..` of byte
//! `(i*bits) / 8`, least significant bit first. `lst` is base64url(ZLIB(bytes)). Values:
//! `0` valid, `1` invalid (revoked), `2` suspended.

use crate::ReasonCode;
use std::io::{Read, Write};

use serde_json::{json, Map, Value};

use crate::jws::{self, Jws, JwsError};
use crate::keys::{PublicKey, SignError, Signer};

/// The Status List Token `typ`.
pub const TYP: &str = "statuslist+jwt";
/// Largest decompressed list we accept (bytes): 2^27 one-bit entries.
pub const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;
/// Largest token we read.
pub const MAX_TOKEN_LEN: usize = 4 * 1024 * 1024;

/// A status value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `0x00`.
    Valid,
    /// `0x01`: revoked.
    Invalid,
    /// `0x02`: suspended.
    Suspended,
    /// Another (application-specific) value.
    Other(u8),
}

impl Status {
    /// The numeric value.
    pub fn value(self) -> u8 {
        match self {
            Status::Valid => 0,
            Status::Invalid => 1,
            Status::Suspended => 2,
            Status::Other(v) => v,
        }
    }
    /// From a numeric value.
    pub fn from_value(v: u8) -> Status {
        match v {
            0 => Status::Valid,
            1 => Status::Invalid,
            2 => Status::Suspended,
            o => Status::Other(o),
        }
    }
}

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusListError {
    /// Not a valid list or token.
    #[error("malformed status list: {0}")]
    Malformed(&'static str),
    /// The token's signature or algorithm.
    #[error("status list token: {0}")]
    Jws(#[from] JwsError),
    /// `sub` is not the URI the credential points to.
    #[error("the status list token is for another URI")]
    WrongUri,
    /// Past `exp`.
    #[error("the status list token expired at {exp} (now {now})")]
    Expired {
        /// `exp`.
        exp: i64,
        /// Now.
        now: i64,
    },
    /// The index is beyond the list.
    #[error("index {0} is beyond the status list")]
    IndexOutOfRange(u64),
    /// The list could not be compressed (never signed as an empty list).
    #[error("the status list could not be compressed ({0:?})")]
    Compression(std::io::ErrorKind),
    /// The token could not be signed.
    #[error("status list token: {0}")]
    Sign(#[from] SignError),
}

impl StatusListError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            StatusListError::Malformed(_) => ReasonCode::StatusListMalformed,
            StatusListError::Jws(_) => ReasonCode::StatusListSignatureInvalid,
            StatusListError::WrongUri => ReasonCode::StatusListWrongUri,
            StatusListError::Expired { .. } => ReasonCode::StatusExpired,
            StatusListError::IndexOutOfRange(_) => ReasonCode::StatusIndexOutOfRange,
            StatusListError::Compression(_) => ReasonCode::StatusListCompressionFailed,
            StatusListError::Sign(_) => ReasonCode::SigningFailed,
        }
    }
}

/// A status list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    bytes: Vec<u8>,
}

impl StatusList {
    /// A list of `len` entries, all valid, with `bits` (1, 2, 4 or 8) bits each.
    pub fn new(len: u64, bits: u8) -> Result<StatusList, StatusListError> {
        if ![1, 2, 4, 8].contains(&bits) {
            return Err(StatusListError::Malformed("bits must be 1, 2, 4 or 8"));
        }
        let nbytes = (len * u64::from(bits)).div_ceil(8);
        if nbytes as usize > MAX_LIST_BYTES {
            return Err(StatusListError::Malformed("list too large"));
        }
        Ok(StatusList {
            bits,
            bytes: vec![0; nbytes as usize],
        })
    }

    /// Bits per entry.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * 8 / u64::from(self.bits)
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn locate(&self, idx: u64) -> Result<(usize, u32), StatusListError> {
        if idx >= self.len() {
            return Err(StatusListError::IndexOutOfRange(idx));
        }
        let bit = idx * u64::from(self.bits);
        Ok(((bit / 8) as usize, (bit % 8) as u32))
    }

    /// The status at `idx`.
    pub fn get(&self, idx: u64) -> Result<Status, StatusListError> {
        let (byte, shift) = self.locate(idx)?;
        let mask = ((1u16 << self.bits) - 1) as u8;
        Ok(Status::from_value((self.bytes[byte] >> shift) & mask))
    }

    /// Sets the status at `idx`.
    pub fn set(&mut self, idx: u64, status: Status) -> Result<(), StatusListError> {
        let (byte, shift) = self.locate(idx)?;
        let mask = ((1u16 << self.bits) - 1) as u8;
        if status.value() > mask {
            return Err(StatusListError::Malformed(
                "value does not fit the bit size",
            ));
        }
        self.bytes[byte] = (self.bytes[byte] & !(mask << shift)) | (status.value() << shift);
        Ok(())
    }

    /// The `status_list` JSON object: `{"bits": n, "lst": base64url(zlib(bytes))}`.
    pub fn to_json(&self) -> Result<Value, StatusListError> {
        let compressed = self.compress_into(Vec::new())?;
        Ok(json!({"bits": self.bits, "lst": crate::base64url_encode(compressed)}))
    }

    /// Writes ZLIB(bytes) to `out` and returns it; a failed write is an error, never an
    /// empty or truncated list.
    pub fn compress_into<W: Write>(&self, out: W) -> Result<W, StatusListError> {
        let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::best());
        z.write_all(&self.bytes)
            .map_err(|e| StatusListError::Compression(e.kind()))?;
        z.finish()
            .map_err(|e| StatusListError::Compression(e.kind()))
    }

    /// Reads a `status_list` JSON object (bounded decompression).
    pub fn from_json(v: &Value) -> Result<StatusList, StatusListError> {
        let bits = v
            .get("bits")
            .and_then(Value::as_u64)
            .ok_or(StatusListError::Malformed("no bits"))?;
        let bits = u8::try_from(bits)
            .ok()
            .filter(|b| [1, 2, 4, 8].contains(b))
            .ok_or(StatusListError::Malformed("bits must be 1, 2, 4 or 8"))?;
        let lst = v
            .get("lst")
            .and_then(Value::as_str)
            .ok_or(StatusListError::Malformed("no lst"))?;
        let compressed = crate::base64url_decode(lst)
            .map_err(|_| StatusListError::Malformed("lst is not base64url"))?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(MAX_LIST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| StatusListError::Malformed("lst is not ZLIB"))?;
        if bytes.len() > MAX_LIST_BYTES {
            return Err(StatusListError::Malformed("list too large"));
        }
        Ok(StatusList { bits, bytes })
    }
}

/// Signs a Status List Token for `uri`.
#[allow(clippy::too_many_arguments)]
pub fn sign_token(
    list: &StatusList,
    uri: &str,
    issuer: &str,
    kid: &str,
    iat: i64,
    exp: i64,
    ttl: i64,
    signer: &impl Signer,
) -> Result<String, StatusListError> {
    let mut header = Map::new();
    header.insert("typ".into(), TYP.into());
    header.insert("kid".into(), kid.into());
    let payload = json!({"sub": uri, "iss": issuer, "iat": iat, "exp": exp, "ttl": ttl, "status_list": list.to_json()?});
    Ok(jws::sign(header, payload.to_string().as_bytes(), signer)?)
}

/// A verified Status List Token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatusList {
    /// The list.
    pub list: StatusList,
    /// `iat`: the status is as of this time.
    pub iat: i64,
    /// `exp`.
    pub exp: Option<i64>,
    /// `kid` of the signing key.
    pub kid: String,
}

/// Decodes a token without verifying it: `(kid, iat, sub)`, to find the key.
pub fn peek(token: &str) -> Result<(String, i64, String), StatusListError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(StatusListError::Malformed("token too large"));
    }
    let jws = Jws::decode(token)?;
    let claims = jws.claims()?;
    let kid = jws
        .header_str("kid")
        .ok_or(StatusListError::Malformed("no kid"))?
        .to_owned();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(StatusListError::Malformed("no iat"))?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(StatusListError::Malformed("no sub"))?
        .to_owned();
    Ok((kid, iat, sub))
}

/// Verifies a Status List Token for `uri` with `key` at time `now`.
pub fn verify_token(
    token: &str,
    uri: &str,
    key: &PublicKey,
    now: i64,
) -> Result<VerifiedStatusList, StatusListError> {
    verify_token_at(token, uri, key, Some(now))
}

/// Like [`verify_token`]; with `now: None` the expiry is left for the caller to check at the
/// time of use (a cache of verified lists).
pub fn verify_token_at(
    token: &str,
    uri: &str,
    key: &PublicKey,
    now: Option<i64>,
) -> Result<VerifiedStatusList, StatusListError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(StatusListError::Malformed("token too large"));
    }
    let jws = Jws::decode(token)?;
    if jws.header_str("typ") != Some(TYP) {
        return Err(StatusListError::Malformed("typ is not statuslist+jwt"));
    }
    jws.verify(key)?;
    let claims = jws.claims()?;
    if claims.get("sub").and_then(Value::as_str) != Some(uri) {
        return Err(StatusListError::WrongUri);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(StatusListError::Malformed("no iat"))?;
    let exp = claims.get("exp").and_then(Value::as_i64);
    if let (Some(exp), Some(now)) = (exp, now) {
        if now >= exp {
            return Err(StatusListError::Expired { exp, now });
        }
    }
    let list = StatusList::from_json(
        claims
            .get("status_list")
            .ok_or(StatusListError::Malformed("no status_list"))?,
    )?;
    Ok(VerifiedStatusList {
        list,
        iat,
        exp,
        kid: jws.header_str("kid").unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SecretKey};
    use rand_core::OsRng;

    #[test]
    fn bits_round_trip_and_token() {
        for bits in [1u8, 2, 4, 8] {
            let mut l = StatusList::new(1000, bits).expect("list");
            l.set(0, Status::Invalid).expect("set");
            l.set(999, Status::Invalid).expect("set");
            if bits >= 2 {
                l.set(500, Status::Suspended).expect("set");
            }
            let back = StatusList::from_json(&l.to_json().expect("compress")).expect("json");
            assert_eq!(back.get(0), Ok(Status::Invalid));
            assert_eq!(back.get(1), Ok(Status::Valid));
            assert_eq!(back.get(999), Ok(Status::Invalid));
            if bits >= 2 {
                assert_eq!(back.get(500), Ok(Status::Suspended));
            }
            assert_eq!(
                back.get(back.len()),
                Err(StatusListError::IndexOutOfRange(back.len()))
            );
        }
        // The draft's example: bits 1, statuses [1,0,0,1,1,1,0,1, 1,1,0,0,0,1,0,1] → bytes b9 a3.
        let mut l = StatusList::new(16, 1).expect("l");
        for (i, v) in [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
            .iter()
            .enumerate()
        {
            l.set(i as u64, Status::from_value(*v)).expect("set");
        }
        assert_eq!(l.bytes, vec![0xb9, 0xa3]);
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let t = sign_token(
            &l,
            "https://x.test/status/1",
            "did:x",
            "did:x#k",
            100,
            200,
            60,
            &key,
        )
        .expect("sign");
        let v =
            verify_token(&t, "https://x.test/status/1", &key.public_key(), 150).expect("verify");
        assert_eq!(v.list, l);
        assert_eq!(
            verify_token(&t, "https://x.test/status/2", &key.public_key(), 150).err(),
            Some(StatusListError::WrongUri)
        );
        assert!(matches!(
            verify_token(&t, "https://x.test/status/1", &key.public_key(), 200),
            Err(StatusListError::Expired { .. })
        ));
        // A ZLIB bomb stops at the bound.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; MAX_LIST_BYTES + 10]).expect("w");
        let bomb = json!({"bits": 1, "lst": crate::base64url_encode(z.finish().expect("z"))});
        assert_eq!(
            StatusList::from_json(&bomb),
            Err(StatusListError::Malformed("list too large"))
        );
    }

    /// A writer that takes `room` bytes, then fails.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "full"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_compression_is_an_error_not_an_empty_list() {
        let mut l = StatusList::new(131_072, 2).expect("list");
        for i in (0..131_072).step_by(7) {
            l.set(i, Status::Invalid).expect("set");
        }
        assert_eq!(
            l.compress_into(Full { room: 16 }).err(),
            Some(StatusListError::Compression(
                std::io::ErrorKind::StorageFull
            ))
        );
        assert_eq!(
            StatusListError::Compression(std::io::ErrorKind::StorageFull).code(),
            "STATUS_LIST_COMPRESSION_FAILED"
        );
        // The list that is signed is the list that was set.
        let json = l.to_json().expect("compress");
        assert_eq!(StatusList::from_json(&json).expect("back"), l);
    }
}
