//! Secret keys encrypted at rest with a passphrase, in the one [`sealed`](crate::sealed) format
//! with the purpose [`PURPOSE`] (`"bizcred key file"`): Argon2id derives a 256-bit key and
//! XChaCha20-Poly1305 seals the secret bytes. The algorithm and public key are the envelope's
//! `public` member (readable without the passphrase by [`public_key`]); they, the purpose and
//! the KDF parameters are bound as associated data, so any edit to the file fails to open, and a
//! wallet file or backup never opens as a key file.
//!
//! Key files written before the sealed format (`{"type":"bizcred-key","version":1,...}`, the
//! same Argon2id + XChaCha20-Poly1305 with the public key, algorithm and KDF parameters as
//! associated data) still open; [`seal`] writes only the sealed format, so an old file is
//! replaced by the next write of its key.

use crate::ReasonCode;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::b64;
use crate::jwk::Jwk;
use crate::keys::{Algorithm, PublicKey, SecretKey, Signer};
use crate::sealed::{self, SealedError};

pub use crate::sealed::KdfParams;

/// The sealed-file purpose of key files.
pub const PURPOSE: &str = "bizcred key file";

/// Largest key file we read (bytes).
pub const MAX_KEY_FILE_LEN: usize = 16 * 1024;

/// Why a key file could not be opened.
#[derive(Debug, thiserror::Error)]
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
    /// The sealed envelope could not be sealed or opened (another purpose, a damaged
    /// envelope, the cipher or the key derivation failed).
    #[error("not a usable bizcred key file")]
    Sealed(#[source] SealedError),
}

impl KeyFileError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            KeyFileError::WrongPassphrase => ReasonCode::WrongPassphrase,
            KeyFileError::Malformed(_) => ReasonCode::KeyFileMalformed,
            KeyFileError::TooLarge => ReasonCode::KeyFileTooLarge,
            KeyFileError::Sealed(e) => e.code(),
        }
    }
}

impl PartialEq for KeyFileError {
    /// Equal variants (sealed errors by their code): for tests and callers that compare.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyFileError::WrongPassphrase, KeyFileError::WrongPassphrase)
            | (KeyFileError::TooLarge, KeyFileError::TooLarge) => true,
            (KeyFileError::Malformed(a), KeyFileError::Malformed(b)) => a == b,
            (KeyFileError::Sealed(a), KeyFileError::Sealed(b)) => a.code() == b.code(),
            _ => false,
        }
    }
}

impl From<SealedError> for KeyFileError {
    fn from(e: SealedError) -> Self {
        match e {
            SealedError::WrongPassphrase => KeyFileError::WrongPassphrase,
            SealedError::TooLarge(_) => KeyFileError::TooLarge,
            other => KeyFileError::Sealed(other),
        }
    }
}

/// The key file's public member: what the key is, readable without the passphrase.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicPart {
    alg: Algorithm,
    public_jwk: Jwk,
}

/// Encrypts `key` under `passphrase`. Returns the file's JSON text (the sealed format).
pub fn seal(
    key: &SecretKey,
    passphrase: &[u8],
    params: KdfParams,
    rng: &mut impl CryptoRngCore,
) -> Result<String, KeyFileError> {
    let public = PublicPart {
        alg: key.algorithm(),
        public_jwk: key.public_key().to_jwk(),
    };
    let Value::Object(members) =
        serde_json::to_value(&public).map_err(|e| KeyFileError::Malformed(e.to_string()))?
    else {
        return Err(KeyFileError::Malformed(
            "public member is not an object".into(),
        ));
    };
    let secret = key.to_bytes();
    Ok(sealed::seal_with_public(
        &secret,
        passphrase,
        params,
        PURPOSE,
        Some(&members),
        rng,
    )?)
}

fn check_len(text: &str) -> Result<(), KeyFileError> {
    if text.len() > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge);
    }
    Ok(())
}

fn public_part(
    members: Option<Map<String, Value>>,
) -> Result<(Algorithm, PublicKey), KeyFileError> {
    let bad = |what: &str| KeyFileError::Malformed(what.to_owned());
    let members = members.ok_or_else(|| bad("no public key"))?;
    let part: PublicPart =
        serde_json::from_value(Value::Object(members)).map_err(|e| bad(&e.to_string()))?;
    let public = PublicKey::from_jwk(&part.public_jwk).map_err(|e| bad(&e.to_string()))?;
    if public.algorithm() != part.alg {
        return Err(bad("algorithm does not match the public key"));
    }
    Ok((part.alg, public))
}

/// The public key recorded in a key file, without the passphrase (unauthenticated until the
/// file opens).
pub fn public_key(text: &str) -> Result<PublicKey, KeyFileError> {
    check_len(text)?;
    if !sealed::is_sealed(text) {
        let file = legacy::parse(text)?;
        return PublicKey::from_jwk(&file.public_jwk)
            .map_err(|e| KeyFileError::Malformed(e.to_string()));
    }
    Ok(public_part(sealed::public(text, PURPOSE)?)?.1)
}

/// Opens a key file with `passphrase` (the sealed format, or the format before it).
pub fn open(text: &str, passphrase: &[u8]) -> Result<SecretKey, KeyFileError> {
    check_len(text)?;
    if !sealed::is_sealed(text) {
        return legacy::open(text, passphrase);
    }
    let opened = sealed::open_with_public(text, passphrase, PURPOSE)?;
    let (alg, public) = public_part(opened.public)?;
    let secret = opened.plaintext;
    let bad = |what: &str| KeyFileError::Malformed(what.to_owned());
    let key = SecretKey::from_bytes(alg, &secret).map_err(|e| bad(&e.to_string()))?;
    if key.public_key() != public {
        return Err(bad("secret key does not match the recorded public key"));
    }
    Ok(key)
}

/// The key-file format before [`sealed`]: read only.
mod legacy {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Kdf {
        pub(super) name: String,
        #[serde(flatten)]
        pub(super) params: KdfParams,
        pub(super) salt: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct KeyFile {
        #[serde(rename = "type")]
        pub(super) kind: String,
        pub(super) version: u32,
        pub(super) alg: Algorithm,
        pub(super) public_jwk: Jwk,
        pub(super) kdf: Kdf,
        pub(super) cipher: String,
        pub(super) nonce: String,
        pub(super) ciphertext: String,
    }

    pub(super) fn aad(alg: Algorithm, public: &PublicKey, p: &KdfParams) -> String {
        format!(
            "bizcred-key/1|{}|{}|argon2id|{}|{}|{}",
            alg.as_str(),
            public.thumbprint(),
            p.m_cost,
            p.t_cost,
            p.p_cost
        )
    }

    pub(super) fn derive(
        passphrase: &[u8],
        salt: &[u8],
        p: &KdfParams,
    ) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
        let params = argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32))
            .map_err(|e| KeyFileError::Malformed(format!("argon2 parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|e| KeyFileError::Malformed(format!("argon2: {e}")))?;
        Ok(out)
    }

    pub(super) fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        check_len(text)?;
        let file: KeyFile =
            serde_json::from_str(text).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
        if file.kind != "bizcred-key" || file.version != 1 {
            return Err(KeyFileError::Malformed("unknown type or version".into()));
        }
        if file.kdf.name != "argon2id" || file.cipher != "xchacha20poly1305" {
            return Err(KeyFileError::Malformed("unknown KDF or cipher".into()));
        }
        let p = &file.kdf.params;
        if p.m_cost > KdfParams::MAX_M_COST
            || p.t_cost > KdfParams::MAX_T_COST
            || p.p_cost > KdfParams::MAX_P_COST
        {
            return Err(KeyFileError::Malformed("KDF cost beyond bounds".into()));
        }
        Ok(file)
    }

    pub(super) fn open(text: &str, passphrase: &[u8]) -> Result<SecretKey, KeyFileError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{OsRng, RngCore};

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
        v["public"]["public_jwk"] = serde_json::to_value(other).expect("jwk");
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

    /// Writes a key file in the format before the sealed one, as the code of that time did.
    fn seal_legacy(key: &SecretKey, passphrase: &[u8], params: KdfParams) -> String {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        let public = key.public_key();
        let kek = legacy::derive(passphrase, &salt, &params).expect("kdf");
        let aad = legacy::aad(key.algorithm(), &public, &params);
        let ciphertext = XChaCha20Poly1305::new(kek.as_ref().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key.to_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("encrypt");
        serde_json::to_string_pretty(&legacy::KeyFile {
            kind: "bizcred-key".into(),
            version: 1,
            alg: key.algorithm(),
            public_jwk: public.to_jwk(),
            kdf: legacy::Kdf {
                name: "argon2id".into(),
                params,
                salt: b64::encode(salt),
            },
            cipher: "xchacha20poly1305".into(),
            nonce: b64::encode(nonce),
            ciphertext: b64::encode(ciphertext),
        })
        .expect("json")
    }

    #[test]
    fn key_files_are_in_the_sealed_format_with_the_key_file_purpose() {
        let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let text = seal(&key, b"pw", KdfParams::INSECURE_FOR_TESTS, &mut OsRng).expect("seal");
        assert!(sealed::is_sealed(&text));
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["format"], "bizcred-sealed");
        assert_eq!(v["purpose"], PURPOSE);
        assert_eq!(v["public"]["alg"], "EdDSA");
        // The same bytes sealed for the wallet are not a key file.
        let wallet = sealed::seal(
            &key.to_bytes(),
            b"pw",
            KdfParams::INSECURE_FOR_TESTS,
            "bizcred wallet",
            &mut OsRng,
        )
        .expect("seal");
        let e = open(&wallet, b"pw").err().expect("wallet file");
        assert_eq!(e.code(), ReasonCode::KeyFileMalformed, "{e}");
        assert!(matches!(
            e,
            KeyFileError::Sealed(SealedError::WrongPurpose { .. })
        ));
        // And a key file is not a wallet file.
        assert!(matches!(
            sealed::open(&text, b"pw", "bizcred wallet"),
            Err(SealedError::WrongPurpose { .. })
        ));
    }

    #[test]
    fn key_files_in_the_format_before_still_open() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SecretKey::generate(alg, &mut OsRng);
            let old = seal_legacy(&key, b"old pass", KdfParams::INSECURE_FOR_TESTS);
            assert!(!sealed::is_sealed(&old));
            assert_eq!(public_key(&old).expect("public"), key.public_key());
            let back = open(&old, b"old pass").expect("open old");
            assert_eq!(back.public_key(), key.public_key());
            assert_eq!(
                open(&old, b"wrong").err(),
                Some(KeyFileError::WrongPassphrase)
            );
            // An edited old file fails too.
            let mut v: serde_json::Value = serde_json::from_str(&old).expect("json");
            v["kdf"]["t_cost"] = 2.into();
            assert_eq!(
                open(&v.to_string(), b"old pass").err(),
                Some(KeyFileError::WrongPassphrase)
            );
            // The next write is in the sealed format and opens with the same passphrase.
            let new = seal(
                &back,
                b"old pass",
                KdfParams::INSECURE_FOR_TESTS,
                &mut OsRng,
            )
            .expect("reseal");
            assert!(sealed::is_sealed(&new));
            assert_eq!(
                open(&new, b"old pass").expect("open new").public_key(),
                key.public_key()
            );
        }
    }
}
