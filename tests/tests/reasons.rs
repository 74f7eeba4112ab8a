//! One reason vocabulary, documented and enforced: `REASONS.md` is exactly the table of
//! `ReasonCode`, and every code in it is emitted somewhere (named as `ReasonCode::…` in a
//! crate's source outside the enum's own file).
//!
//! After adding or changing a code, regenerate the table with
//! `BIZCRED_BLESS=1 cargo test -p bizcred-tests --test reasons`.

use std::path::{Path, PathBuf};

use bizcred_schemas::ReasonCode;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn reasons_md_is_the_table_of_every_code() {
    let path = root().join("REASONS.md");
    let want = ReasonCode::markdown_table();
    if std::env::var_os("BIZCRED_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write REASONS.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let have_codes: Vec<&str> = have
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let missing: Vec<&str> = ReasonCode::ALL
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !have_codes.contains(c))
            .collect();
        let unknown: Vec<&&str> = have_codes
            .iter()
            .filter(|c| ReasonCode::parse(c).is_none())
            .collect();
        panic!(
            "REASONS.md differs from ReasonCode (missing from the table: {missing:?}; in the table \
             but no such code: {unknown:?}). Regenerate with \
             `BIZCRED_BLESS=1 cargo test -p bizcred-tests --test reasons`."
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if !matches!(name, "target" | "tests" | "benches" | "fuzz" | ".git") {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn variant(code: ReasonCode) -> String {
    code.as_str()
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

#[test]
fn every_code_in_the_table_is_emitted_somewhere() {
    let mut files = Vec::new();
    for krate in [
        "schemas",
        "core",
        "verifier",
        "issuer",
        "registry",
        "holder-cli",
        "cli",
        "web",
        "repository",
        "portal",
    ] {
        rust_files(&root().join(krate).join("src"), &mut files);
    }
    let enum_file = root().join("schemas/src/reason.rs");
    let source: String = files
        .iter()
        .filter(|p| **p != enum_file)
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect();
    let silent: Vec<&str> = ReasonCode::ALL
        .iter()
        .filter(|c| {
            let v = variant(**c);
            !source.contains(&format!("ReasonCode::{v},"))
                && !source.contains(&format!("ReasonCode::{v}\n"))
                && !source.contains(&format!("ReasonCode::{v})"))
                && !source.contains(&format!("ReasonCode::{v} "))
                && !source.contains(&format!("ReasonCode::{v};"))
                && !source.contains(&format!("ReasonCode::{v}]"))
        })
        .map(|c| c.as_str())
        .collect();
    assert!(
        silent.is_empty(),
        "codes in the table that nothing emits (remove them, or emit them): {silent:?}"
    );
}
