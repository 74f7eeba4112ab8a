//! Where a binary gets the passphrase of its sealed key files: `--passphrase-file`, else the
//! binary's environment variable (`BIZCRED_REGISTRY_PASSPHRASE`, `BIZCRED_ISSUER_PASSPHRASE`,
//! `BIZCRED_VERIFIER_PASSPHRASE`, `BIZCRED_WALLET_PASSPHRASE`), else a prompt on the terminal.
//! The passphrase is zeroized when dropped and never logged.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

/// The `--passphrase-file` option every binary takes (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PassphraseArgs {
    /// Read the passphrase of the key files from this file (its first line).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    /// The passphrase: from `--passphrase-file`, else `env_var`, else a prompt saying `what`.
    /// An empty passphrase is refused.
    pub fn get(&self, env_var: &str, what: &str) -> Result<Zeroizing<String>> {
        let p = if let Some(f) = &self.passphrase_file {
            let text = Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading the passphrase file {}", f.display()))?,
            );
            Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
        } else {
            match std::env::var(env_var) {
                Ok(p) => Zeroizing::new(p),
                Err(std::env::VarError::NotPresent) => Zeroizing::new(
                    rpassword::prompt_password(format!("{what}: ")).with_context(|| {
                        format!("no passphrase: give --passphrase-file or set {env_var}")
                    })?,
                ),
                Err(e) => bail!("{env_var}: {e}"),
            }
        };
        if p.is_empty() {
            bail!("the passphrase is empty (give --passphrase-file or set {env_var})");
        }
        Ok(p)
    }
}
