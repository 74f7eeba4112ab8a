//! Signed notes and checkpoints: parsing must never panic.
#![no_main]

use bizcred_core::trust::note::{Checkpoint, SignedNote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(n) = SignedNote::parse(text) {
        let _ = Checkpoint::from_text(&n.text);
    }
});
