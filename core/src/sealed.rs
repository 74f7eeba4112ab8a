//! bizcred's one sealed-file format: bytes encrypted under a passphrase, for key files (purpose
//! `"bizcred key file"`), the wallet's data key (`"bizcred wallet"`) and wallet backups
//! (`"bizcred wallet backup"`).
//!
//! Argon2id stretches the passphrase into a 256-bit key and XChaCha20-Poly1305 seals the
//! plaintext. The header (format, version, purpose label, KDF name and parameters, salt, cipher
//! and the optional public member) is bound as associated data, so any edit to the file fails to
//! open, and a file sealed for one purpose never opens as another (a wallet file is not a key
//! file, and the reverse).
//!
//! Envelope (JSON text, binary members base64url):
//! `{"format":"bizcred-sealed","version":1,"purpose":"bizcred key file","kdf":{"name":"argon2id",
//! "m_cost":19456,"t_cost":2,"p_cost":1,"salt":".."},"cipher":"xchacha20poly1305",
//! "public":{..},"nonce":"..","ciphertext":".."}`; `public` is optional: what a reader may see
//! without the passphrase (a key file's public key), authenticated only when the file opens.
//!
//! Why not the `age` crate's passphrase files: measured for issue #12, `age` 0.11 with its
//! default features off adds 48 crates the workspace does not have (an i18n/fluent stack with
//! i18n-embed, rust-embed and proc macros, futures, nom, scrypt, pbkdf2, salsa20, x25519-dalek,
//! ...) to seal one passphrase-protected blob, on a 2-core build machine. This format uses only
//! the Argon2id and XChaCha20-Poly1305 crates the key files already used.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::b64;
use crate::ReasonCode;

/// The envelope's `format` member.
pub const FORMAT: &str = "bizcred-sealed";
/// The envelope's `version` member.
pub const VERSION: u32 = 1;
/// Largest sealed text [`open`] reads (bytes); every text [`seal`] writes fits.
pub const MAX_SEALED_LEN: usize = 64 * 1024 * 1024;
/// Largest plaintext [`seal`] seals (bytes), so that its envelope stays within
/// [`MAX_SEALED_LEN`] (base64url is 4/3 of the bytes; the header and `public` take the rest).
pub const MAX_PLAINTEXT_LEN: usize = 48 * 1024 * 1024 - 64 * 1024;
/// Largest `public` member (bytes of its JSON).
pub const MAX_PUBLIC_LEN: usize = 8 * 1024;
/// Longest purpose label (bytes).
pub const MAX_PURPOSE_LEN: usize = 64;

const KDF: &str = "argon2id";
const CIPHER: &str = "xchacha20poly1305";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;

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
    /// Most memory a file may ask for (KiB): 1 GiB.
    pub const MAX_M_COST: u32 = 1024 * 1024;
    /// Most passes a file may ask for.
    pub const MAX_T_COST: u32 = 16;
    /// Most lanes a file may ask for.
    pub const MAX_P_COST: u32 = 16;

    fn within_bounds(&self) -> bool {
        self.m_cost <= Self::MAX_M_COST
            && self.t_cost <= Self::MAX_T_COST
            && self.p_cost <= Self::MAX_P_COST
    }
}

/// Why a sealed file could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedError {
    /// The passphrase is wrong (or the file was altered).
    #[error("wrong passphrase, or the sealed file was altered")]
    WrongPassphrase,
    /// The text is not JSON of the envelope's shape.
    #[error("not a bizcred sealed file")]
    NotJson(#[source] serde_json::Error),
    /// The envelope is damaged or of an unknown kind.
    #[error("not a valid bizcred sealed file: {0}")]
    Malformed(&'static str),
    /// The file was sealed for another purpose (a wallet file given as a key file, ...).
    #[error("the file is a {found:?}, not a {expected:?}")]
    WrongPurpose {
        /// The purpose asked for.
        expected: String,
        /// The purpose the file names.
        found: String,
    },
    /// The text or the plaintext is larger than the bound.
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    /// Argon2id refused the parameters.
    #[error("the passphrase key derivation failed: {0}")]
    Kdf(argon2::Error),
    /// The cipher failed; nothing was sealed.
    #[error("encryption failed; nothing was sealed")]
    Encrypt,
}

impl SealedError {
    /// Stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            SealedError::WrongPassphrase => ReasonCode::WrongPassphrase,
            SealedError::NotJson(_)
            | SealedError::Malformed(_)
            | SealedError::WrongPurpose { .. } => ReasonCode::KeyFileMalformed,
            SealedError::TooLarge(_) => ReasonCode::KeyFileTooLarge,
            SealedError::Kdf(_) => ReasonCode::KdfFailed,
            SealedError::Encrypt => ReasonCode::EncryptionFailed,
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
struct Envelope {
    format: String,
    version: u32,
    purpose: String,
    kdf: Kdf,
    cipher: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public: Option<Map<String, Value>>,
    nonce: String,
    ciphertext: String,
}

fn check_purpose(purpose: &str) -> Result<(), SealedError> {
    let ok = !purpose.is_empty()
        && purpose.len() <= MAX_PURPOSE_LEN
        && purpose
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'|');
    if ok {
        Ok(())
    } else {
        Err(SealedError::Malformed("purpose label"))
    }
}

/// The associated data: every header member, the `public` member in its JCS form.
fn aad(
    purpose: &str,
    p: &KdfParams,
    salt: &str,
    public: Option<&Map<String, Value>>,
) -> Result<Vec<u8>, SealedError> {
    let mut out = format!(
        "{FORMAT}/{VERSION}|{purpose}|{KDF}|{}|{}|{}|{salt}|{CIPHER}|",
        p.m_cost, p.t_cost, p.p_cost
    )
    .into_bytes();
    if let Some(public) = public {
        out.extend(serde_json_canonicalizer::to_vec(public).map_err(SealedError::NotJson)?);
    }
    Ok(out)
}

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    p: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, SealedError> {
    let params =
        argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32)).map_err(SealedError::Kdf)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(SealedError::Kdf)?;
    Ok(out)
}

/// Seals `plaintext` under `passphrase` for `purpose`; the envelope's JSON text.
pub fn seal(
    plaintext: &[u8],
    passphrase: &[u8],
    params: KdfParams,
    purpose: &str,
    rng: &mut impl CryptoRngCore,
) -> Result<String, SealedError> {
    seal_with_public(plaintext, passphrase, params, purpose, None, rng)
}

/// [`seal`], with a `public` member anyone may read ([`public`]) and that [`open`] authenticates.
pub fn seal_with_public(
    plaintext: &[u8],
    passphrase: &[u8],
    params: KdfParams,
    purpose: &str,
    public: Option<&Map<String, Value>>,
    rng: &mut impl CryptoRngCore,
) -> Result<String, SealedError> {
    check_purpose(purpose)?;
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(SealedError::TooLarge(MAX_PLAINTEXT_LEN));
    }
    if let Some(public) = public {
        let len = serde_json::to_vec(public)
            .map_err(SealedError::NotJson)?
            .len();
        if len > MAX_PUBLIC_LEN {
            return Err(SealedError::TooLarge(MAX_PUBLIC_LEN));
        }
    }
    if !params.within_bounds() {
        return Err(SealedError::Malformed("KDF cost beyond bounds"));
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let salt_b64 = b64::encode(salt);
    let kek = derive(passphrase, &salt, &params)?;
    let aad = aad(purpose, &params, &salt_b64, public)?;
    let ciphertext = XChaCha20Poly1305::new(kek.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| SealedError::Encrypt)?;
    let envelope = Envelope {
        format: FORMAT.into(),
        version: VERSION,
        purpose: purpose.into(),
        kdf: Kdf {
            name: KDF.into(),
            params,
            salt: salt_b64,
        },
        cipher: CIPHER.into(),
        public: public.cloned(),
        nonce: b64::encode(nonce),
        ciphertext: b64::encode(ciphertext),
    };
    serde_json::to_string_pretty(&envelope).map_err(SealedError::NotJson)
}

/// True when `text` looks like a sealed envelope (a JSON object whose `format` is
/// [`FORMAT`]); says nothing about whether it opens. Lets a reader tell this format from an
/// older one before it parses either.
pub fn is_sealed(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<String>,
    }
    text.len() <= MAX_SEALED_LEN
        && serde_json::from_str::<Probe>(text).is_ok_and(|p| p.format.as_deref() == Some(FORMAT))
}

fn parse(text: &str, purpose: &str) -> Result<Envelope, SealedError> {
    check_purpose(purpose)?;
    if text.len() > MAX_SEALED_LEN {
        return Err(SealedError::TooLarge(MAX_SEALED_LEN));
    }
    let env: Envelope = serde_json::from_str(text).map_err(SealedError::NotJson)?;
    if env.format != FORMAT || env.version != VERSION {
        return Err(SealedError::Malformed("unknown format or version"));
    }
    if env.kdf.name != KDF || env.cipher != CIPHER {
        return Err(SealedError::Malformed("unknown KDF or cipher"));
    }
    if check_purpose(&env.purpose).is_err() {
        return Err(SealedError::Malformed("purpose label"));
    }
    if env.purpose != purpose {
        return Err(SealedError::WrongPurpose {
            expected: purpose.into(),
            found: env.purpose,
        });
    }
    if !env.kdf.params.within_bounds() {
        return Err(SealedError::Malformed("KDF cost beyond bounds"));
    }
    Ok(env)
}

/// The `public` member of a sealed text for `purpose`, read without the passphrase: it is
/// authenticated only by [`open_with_public`].
pub fn public(text: &str, purpose: &str) -> Result<Option<Map<String, Value>>, SealedError> {
    Ok(parse(text, purpose)?.public)
}

/// Opens a sealed text for `purpose` with `passphrase`: its plaintext.
pub fn open(
    text: &str,
    passphrase: &[u8],
    purpose: &str,
) -> Result<Zeroizing<Vec<u8>>, SealedError> {
    open_with_public(text, passphrase, purpose).map(|o| o.plaintext)
}

/// An opened sealed text: its plaintext and its (now authenticated) `public` member.
pub struct Opened {
    /// The plaintext (zeroized on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The `public` member, if the file has one.
    pub public: Option<Map<String, Value>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field(
                "plaintext",
                &format_args!("<{} bytes>", self.plaintext.len()),
            )
            .field("public", &self.public)
            .finish()
    }
}

/// Opens a sealed text for `purpose`: its plaintext and its (now authenticated) `public` member.
pub fn open_with_public(
    text: &str,
    passphrase: &[u8],
    purpose: &str,
) -> Result<Opened, SealedError> {
    let env = parse(text, purpose)?;
    let salt = b64::decode(&env.kdf.salt).map_err(|_| SealedError::Malformed("salt"))?;
    let nonce = b64::decode(&env.nonce).map_err(|_| SealedError::Malformed("nonce"))?;
    let ciphertext =
        b64::decode(&env.ciphertext).map_err(|_| SealedError::Malformed("ciphertext"))?;
    if nonce.len() != NONCE_LEN || !(8..=64).contains(&salt.len()) {
        return Err(SealedError::Malformed("nonce or salt length"));
    }
    let aad = aad(
        &env.purpose,
        &env.kdf.params,
        &env.kdf.salt,
        env.public.as_ref(),
    )?;
    // The file's own parameters: argon2 refusing them means the file is damaged.
    let kek = derive(passphrase, &salt, &env.kdf.params)
        .map_err(|_| SealedError::Malformed("KDF parameters"))?;
    let plain = XChaCha20Poly1305::new(kek.as_ref().into())
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| SealedError::WrongPassphrase)?;
    Ok(Opened {
        plaintext: Zeroizing::new(plain),
        public: env.public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const P: KdfParams = KdfParams::INSECURE_FOR_TESTS;

    fn sealed(plain: &[u8]) -> String {
        seal(plain, b"correct horse", P, "bizcred test", &mut OsRng).expect("seal")
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let text = sealed(b"the secret bytes");
        assert!(is_sealed(&text));
        assert!(!text.contains("the secret bytes"));
        let plain = open(&text, b"correct horse", "bizcred test").expect("open");
        assert_eq!(plain.as_slice(), b"the secret bytes");
        let wrong = open(&text, b"wrong horse", "bizcred test").expect_err("wrong");
        assert!(matches!(wrong, SealedError::WrongPassphrase));
        assert_eq!(wrong.code(), ReasonCode::WrongPassphrase);
        // Two seals of the same bytes differ (fresh salt and nonce).
        assert_ne!(sealed(b"x"), sealed(b"x"));
        // Empty plaintexts are sealed too.
        assert!(open(&sealed(b""), b"correct horse", "bizcred test")
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn default_parameters_open() {
        let text = seal(b"k", b"pw", KdfParams::DEFAULT, "bizcred test", &mut OsRng).expect("seal");
        assert_eq!(
            open(&text, b"pw", "bizcred test").expect("open").as_slice(),
            b"k"
        );
    }

    #[test]
    fn another_purpose_is_refused_before_any_key_derivation() {
        let text = seal(b"k", b"pw", P, "bizcred wallet", &mut OsRng).expect("seal");
        let e = open(&text, b"pw", "bizcred key file").expect_err("purpose");
        assert!(
            matches!(&e, SealedError::WrongPurpose { expected, found }
                if expected == "bizcred key file" && found == "bizcred wallet"),
            "{e:?}"
        );
        assert_eq!(e.code(), ReasonCode::KeyFileMalformed);
        // Relabelling the file does not help: the label is in the associated data.
        let mut v: Value = serde_json::from_str(&text).expect("json");
        v["purpose"] = "bizcred key file".into();
        assert!(matches!(
            open(&v.to_string(), b"pw", "bizcred key file"),
            Err(SealedError::WrongPassphrase)
        ));
    }

    #[test]
    fn every_header_member_is_bound() {
        let members: Map<String, Value> =
            serde_json::from_str(r#"{"alg":"EdDSA","kid":"k1"}"#).expect("map");
        let text = seal_with_public(b"k", b"pw", P, "bizcred test", Some(&members), &mut OsRng)
            .expect("seal");
        assert_eq!(
            public(&text, "bizcred test").expect("public"),
            Some(members.clone())
        );
        let opened = open_with_public(&text, b"pw", "bizcred test").expect("open");
        assert_eq!(opened.plaintext.as_slice(), b"k");
        assert_eq!(opened.public, Some(members));
        assert!(
            !format!("{opened:?}").contains("107"),
            "the plaintext is not in Debug"
        );
        let edits: [(&str, Value); 6] = [
            ("/kdf/t_cost", 2.into()),
            ("/kdf/m_cost", 128.into()),
            ("/kdf/salt", b64::encode([1u8; 16]).into()),
            ("/nonce", b64::encode([2u8; 24]).into()),
            ("/public/kid", "k2".into()),
            ("/public", Value::Object(Map::new())),
        ];
        for (pointer, value) in edits {
            let mut v: Value = serde_json::from_str(&text).expect("json");
            *v.pointer_mut(pointer).expect(pointer) = value;
            assert!(
                matches!(
                    open(&v.to_string(), b"pw", "bizcred test"),
                    Err(SealedError::WrongPassphrase)
                ),
                "{pointer} edited and still opened"
            );
        }
        // Removing the public member is an edit too.
        let mut v: Value = serde_json::from_str(&text).expect("json");
        v.as_object_mut().expect("object").remove("public");
        assert!(matches!(
            open(&v.to_string(), b"pw", "bizcred test"),
            Err(SealedError::WrongPassphrase)
        ));
        // A flipped ciphertext byte.
        let mut v: Value = serde_json::from_str(&text).expect("json");
        let mut ct = b64::decode(v["ciphertext"].as_str().expect("ct")).expect("b64");
        ct[0] ^= 1;
        v["ciphertext"] = b64::encode(ct).into();
        assert!(matches!(
            open(&v.to_string(), b"pw", "bizcred test"),
            Err(SealedError::WrongPassphrase)
        ));
    }

    #[test]
    fn damaged_and_unknown_envelopes_are_malformed() {
        let text = sealed(b"k");
        let cases: [(&str, Value); 7] = [
            ("/format", "bizcred-key".into()),
            ("/version", 2.into()),
            ("/cipher", "aes-gcm".into()),
            ("/kdf/name", "scrypt".into()),
            ("/kdf/m_cost", (KdfParams::MAX_M_COST + 1).into()),
            ("/nonce", "not base64!".into()),
            ("/purpose", "a|b".into()),
        ];
        for (pointer, value) in cases {
            let mut v: Value = serde_json::from_str(&text).expect("json");
            *v.pointer_mut(pointer).expect(pointer) = value;
            let e = open(&v.to_string(), b"correct horse", "bizcred test").expect_err(pointer);
            assert!(matches!(e, SealedError::Malformed(_)), "{pointer}: {e:?}");
            assert_eq!(e.code(), ReasonCode::KeyFileMalformed);
        }
        let mut v: Value = serde_json::from_str(&text).expect("json");
        v["extra"] = 1.into();
        assert!(matches!(
            open(&v.to_string(), b"correct horse", "bizcred test"),
            Err(SealedError::NotJson(_))
        ));
        for junk in [
            "",
            "{}",
            "[]",
            "null",
            "\u{0}",
            "{\"format\":\"bizcred-sealed\"}",
        ] {
            let e = open(junk, b"pw", "bizcred test").expect_err(junk);
            assert_eq!(e.code(), ReasonCode::KeyFileMalformed, "{junk:?}");
        }
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = "x".repeat(MAX_SEALED_LEN + 1);
        let e = open(&big, b"pw", "bizcred test").expect_err("big");
        assert!(matches!(e, SealedError::TooLarge(MAX_SEALED_LEN)));
        assert_eq!(e.code(), ReasonCode::KeyFileTooLarge);
        let e = seal(
            &vec![0u8; MAX_PLAINTEXT_LEN + 1],
            b"pw",
            P,
            "bizcred test",
            &mut OsRng,
        )
        .expect_err("big plaintext");
        assert!(matches!(e, SealedError::TooLarge(MAX_PLAINTEXT_LEN)));
        let mut public = Map::new();
        public.insert("x".into(), "y".repeat(MAX_PUBLIC_LEN).into());
        assert!(matches!(
            seal_with_public(b"k", b"pw", P, "bizcred test", Some(&public), &mut OsRng),
            Err(SealedError::TooLarge(MAX_PUBLIC_LEN))
        ));
    }

    #[test]
    fn the_largest_plaintext_seals_within_the_bound_and_opens() {
        let plain = vec![7u8; MAX_PLAINTEXT_LEN];
        let mut public = Map::new();
        public.insert("x".into(), "y".repeat(MAX_PUBLIC_LEN - 16).into());
        let purpose = "p".repeat(MAX_PURPOSE_LEN);
        let text =
            seal_with_public(&plain, b"pw", P, &purpose, Some(&public), &mut OsRng).expect("seal");
        assert!(
            text.len() <= MAX_SEALED_LEN,
            "{} > {MAX_SEALED_LEN}",
            text.len()
        );
        assert_eq!(
            open(&text, b"pw", &purpose).expect("open").len(),
            MAX_PLAINTEXT_LEN
        );
    }

    #[test]
    fn bad_purpose_labels_are_refused_when_sealing() {
        for purpose in ["", "a|b", "é", &"p".repeat(MAX_PURPOSE_LEN + 1)] {
            assert!(matches!(
                seal(b"k", b"pw", P, purpose, &mut OsRng),
                Err(SealedError::Malformed("purpose label"))
            ));
        }
    }
}
