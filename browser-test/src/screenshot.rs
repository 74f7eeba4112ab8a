//! Screenshots for a person to look at; written under `target/`, never committed.

use std::path::{Path, PathBuf};

use fantoccini::Client;

use crate::{Error, Result};

/// Where screenshots go: `BIZCRED_SCREENSHOTS`, else `desk-screenshots/` in the build's target
/// directory (`CARGO_TARGET_DIR` when the tests were built with one, else the workspace's
/// `target/`).
pub fn screenshots_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BIZCRED_SCREENSHOTS").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")));
    let target = match option_env!("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("desk-screenshots")
}

/// Writes a PNG of the client's window to [`screenshots_dir`] as `<name>.png` (characters other
/// than letters, digits, `.`, `_` and `-` become `-`) and answers its path.
pub async fn screenshot(client: &Client, name: &str) -> Result<PathBuf> {
    let png = client.screenshot().await.map_err(|source| Error::Command {
        action: format!("taking screenshot {name:?}"),
        url: "-".into(),
        source: Box::new(source),
    })?;
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    let path = dir.join(format!("{}.png", file_name(name)));
    std::fs::write(&path, png).map_err(|source| Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })?;
    Ok(path)
}

fn file_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        "page".into()
    } else {
        clean.into()
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn names_are_plain_file_names() {
        assert_eq!(file_name("desk/queue fr"), "desk-queue-fr");
        assert_eq!(file_name("../x"), "-x");
        assert_eq!(file_name(""), "page");
        assert_eq!(file_name("login.en"), "login.en");
    }
}
