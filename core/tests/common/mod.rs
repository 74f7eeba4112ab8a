//! What the vector tests share: where the standard vectors are, and reading them.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

/// The vectors' folder: `$BIZCRED_VECTORS`, else `../shared/vectors`. Where it is absent the
/// tests say so loudly and are skipped; under `CI=true` its absence is a failure.
pub fn vectors() -> Option<PathBuf> {
    let dir = std::env::var_os("BIZCRED_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "STANDARD TEST VECTORS NOT FOUND at {} (set BIZCRED_VECTORS)",
        dir.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!!!! {msg}: vector tests SKIPPED !!!!!!!!!!\n");
    None
}

/// A file's text.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON file.
pub fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
