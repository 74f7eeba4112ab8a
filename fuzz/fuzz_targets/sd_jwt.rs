//! SD-JWT presentations from an untrusted holder: parse, walk and verify must never panic.
#![no_main]

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::sd_jwt::{self, SdJwt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(sd) = SdJwt::parse(text) else { return };
    let _ = sd.disclosure_paths();
    let key = SecretKey::from_bytes(Algorithm::EdDSA, &[7u8; 32]).expect("key").public_key();
    let _ = sd_jwt::verify(&sd, &key);
    let _ = sd_jwt::process(sd.unverified_payload().unwrap_or_default(), &sd.disclosures);
});
