//! Secret keys encrypted at rest with a passphrase: Argon2id derives a 256-bit key, and
//! XChaCha20-Poly1305 seals the 32 secret bytes. The public key, algorithm and KDF parameters
//! are bound as associated data, so any edit to the file fails to open.
//!
//! File format (JSON):
//! `{"type":"bizcred-key","version":1,"alg":"EdDSA","public_jwk":{..},"kdf":{"name":"argon2id",
//! "m_cost":19456,"t_cost":2,"p_cost":1,"salt":".."},"cipher":"xchacha20poly1305","nonce":"..",
//! "ciphertext":".."}` (binary members base64url).

use crate::ReasonCode;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::b64;
use crate::jwk::Jwk;
use crate::keys::{Algorithm, PublicKey, SecretKey, Signer};

/// Largest key file we read (bytes).
pub const MAX_KEY_FILE_LEN: usize = 16 * 1024;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 passes, 1 lane).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// The cheapest setting we still open; only for tests.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    const MAX_M_COST: u32 = 1024 * 1024;
    const MAX_T_COST: u32 = 16;
}

/// Why a key file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The passphrase is wrong (or the file was altered).
    #[error("wrong passphrase, or the key file was altered")]
    WrongPassphrase,
    /// Not a bizcred key file, or a damaged one.
    #[error("not a valid bizcred key file: {0}")]
    Malformed(String),
    /// Larger than [`MAX_KEY_FILE_LEN`].
    #[error("key file is larger than {MAX_KEY_FILE_LEN} bytes")]
    TooLarge,
}

impl KeyFileError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            KeyFileError::WrongPassphrase => ReasonCode::WrongPassphrase,
            KeyFileError::Malformed(_) => ReasonCode::KeyFileMalformed,
            KeyFileError::TooLarge => ReasonCode::KeyFileTooLarge,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    alg: Algorithm,
    public_jwk: Jwk,
    kdf: Kdf,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

fn aad(alg: Algorithm, public: &PublicKey, p: &KdfParams) -> String {
    format!(
        "bizcred-key/1|{}|{}|argon2id|{}|{}|{}",
        alg.as_str(),
        public.thumbprint(),
        p.m_cost,
        p.t_cost,
        p.p_cost
    )
}

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    p: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let params = argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| KeyFileError::Malformed(format!("argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| KeyFileError::Malformed(format!("argon2: {e}")))?;
    Ok(out)
}

/// Encrypts `key` under `passphrase`. Returns the file's JSON text.
pub fn seal(
    key: &SecretKey,
    passphrase: &[u8],
    params: KdfParams,
    rng: &mut impl CryptoRngCore,
) -> Result<String, KeyFileError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let public = key.public_key();
    let kek = derive(passphrase, &salt, &params)?;
    let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
    let secret = key.to_bytes();
    let aad = aad(key.algorithm(), &public, &params);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &secret,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| KeyFileError::Malformed("encryption failed".into()))?;
    let file = KeyFile {
        kind: "bizcred-key".into(),
        version: 1,
        alg: key.algorithm(),
        public_jwk: public.to_jwk(),
        kdf: Kdf {
            name: "argon2id".into(),
            params,
            salt: b64::encode(salt),
        },
        cipher: "xchacha20poly1305".into(),
        nonce: b64::encode(nonce),
        ciphertext: b64::encode(ciphertext),
    };
    serde_json::to_string_pretty(&file).map_err(|e| KeyFileError::Malformed(e.to_string()))
}

/// The public key recorded in a key file, without the passphrase.
pub fn public_key(text: &str) -> Result<PublicKey, KeyFileError> {
    let file = parse(text)?;
    PublicKey::from_jwk(&file.public_jwk).map_err(|e| KeyFileError::Malformed(e.to_string()))
}

fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
    if text.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge);
    }
    let file: KeyFile =
        serde_json::from_str(text).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
    if file.kind != "bizcred-key" || file.version != 1 {
        return Err(KeyFileError::Malformed("unknown type or version".into()));
    }
    if file.kdf.name != "argon2id" || file.cipher != "xchacha20poly1305" {
        return Err(KeyFileError::Malformed("unknown KDF or cipher".into()));
    }
    let p = &file.kdf.params;
    if p.m_cost > KdfParams::MAX_M_COST || p.t_cost > KdfParams::MAX_T_COST || p.p_cost > 16 {
        return Err(KeyFileError::Malformed("KDF cost beyond bounds".into()));
    }
    Ok(file)
}

/// Opens a key file with `passphrase`.
pub fn open(text: &str, passphrase: &[u8]) -> Result<SecretKey, KeyFileError> {
    let file = parse(text)?;
    let bad = |what: &str| KeyFileError::Malformed(what.to_owned());
    let public = PublicKey::from_jwk(&file.public_jwk).map_err(|e| bad(&e.to_string()))?;
    if public.algorithm() != file.alg {
        return Err(bad("algorithm does not match the public key"));
    }
    let salt = b64::decode(&file.kdf.salt).map_err(|_| bad("salt"))?;
    let nonce = b64::decode(&file.nonce).map_err(|_| bad("nonce"))?;
    let ciphertext = b64::decode(&file.ciphertext).map_err(|_| bad("ciphertext"))?;
    if nonce.len() != 24 || salt.len() < 8 {
        return Err(bad("nonce or salt length"));
    }
    let kek = derive(passphrase, &salt, &file.kdf.params)?;
    let cipher = XChaCha20Poly1305::new(kek.as_ref().into());
    let aad = aad(file.alg, &public, &file.kdf.params);
    let secret = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyFileError::WrongPassphrase)?,
    );
    let key = SecretKey::from_bytes(file.alg, &secret).map_err(|e| bad(&e.to_string()))?;
    if key.public_key() != public {
        return Err(bad("secret key does not match the recorded public key"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SecretKey::generate(alg, &mut OsRng);
            let text = seal(
                &key,
                b"correct horse",
                KdfParams::INSECURE_FOR_TESTS,
                &mut OsRng,
            )
            .expect("seal");
            assert!(!text.contains(&b64::encode(key.to_bytes().as_slice())));
            let back = open(&text, b"correct horse").expect("open");
            assert_eq!(back.public_key(), key.public_key());
            assert_eq!(public_key(&text).expect("public"), key.public_key());
            assert_eq!(
                open(&text, b"wrong horse").err(),
                Some(KeyFileError::WrongPassphrase)
            );
        }
    }

    #[test]
    fn default_parameters_open() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let text = seal(&key, b"pw", KdfParams::DEFAULT, &mut OsRng).expect("seal");
        assert!(open(&text, b"pw").is_ok());
    }

    #[test]
    fn tampered_parameters_fail_to_open() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let text = seal(&key, b"pw", KdfParams::INSECURE_FOR_TESTS, &mut OsRng).expect("seal");
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["kdf"]["t_cost"] = 2.into();
        assert_eq!(
            open(&v.to_string(), b"pw").err(),
            Some(KeyFileError::WrongPassphrase)
        );
        let other = SecretKey::generate(Algorithm::EdDSA, &mut OsRng)
            .public_key()
            .to_jwk();
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["public_jwk"] = serde_json::to_value(other).expect("jwk");
        assert_eq!(
            open(&v.to_string(), b"pw").err(),
            Some(KeyFileError::WrongPassphrase)
        );
        assert!(matches!(open("{}", b"pw"), Err(KeyFileError::Malformed(_))));
        assert_eq!(
            open(&"x".repeat(MAX_KEY_FILE_LEN + 1), b"pw").err(),
            Some(KeyFileError::TooLarge)
        );
    }
}
