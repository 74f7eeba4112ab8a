//! Trust bundles from an untrusted source: parse and import must never panic.
#![no_main]

use bizcred_core::trust::bundle::{self, TrustAnchor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = bundle::parse(text);
    let anchor = TrustAnchor {
        origin: "registry.bizcred.test/log".into(),
        log_key_name: "registry.bizcred.test/log".into(),
        log_key: "z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG".into(),
    };
    let _ = bundle::import(None, &anchor, text, 1_790_000_000);
});
