//! did:webvh logs and DID URLs from an untrusted host: verification must never panic.
#![no_main]

use bizcred_core::webvh;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (log, witness) = text.split_once('\u{0}').unwrap_or((text, ""));
    let verified = webvh::verify_log(log, Some(witness), 1_790_000_000);
    let _ = webvh::resolve(log.lines().next().unwrap_or(""), &verified);
    let _ = webvh::parse_did_url(text);
});
