//! `staff add|disable|enable|reset|role|list`: the staff accounts of a service's desk, the same
//! command on the issuer and the verifier. It works on the accounts file in the data directory
//! directly, so it runs whether or not the service is up (a running service reads the file at
//! every sign-in and request: a disabled account is signed out at its next click). Passwords
//! come from `--password-file` or a prompt asked twice, never from an argument.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;
use zeroize::Zeroizing;

use bizcred_web::{AccountError, Accounts};

use crate::Output;

/// The staff commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StaffCmd {
    /// Add an account.
    Add {
        /// Account name (lower-case letters, digits, `.`, `-`, `_`).
        name: String,
        /// Its role.
        #[arg(long)]
        role: String,
        /// Read the password from this file (its first line); else it is asked twice.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Disable an account (its sessions end).
    Disable {
        /// Account name.
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Account name.
        name: String,
    },
    /// Set a new password (the account's sessions end).
    Reset {
        /// Account name.
        name: String,
        /// Read the password from this file (its first line); else it is asked twice.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Change an account's role (its sessions end).
    Role {
        /// Account name.
        name: String,
        /// The new role.
        role: String,
    },
    /// List the accounts.
    List,
}

fn password(file: &Option<PathBuf>) -> Result<Zeroizing<String>> {
    let p = match file {
        Some(f) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading the password file {}", f.display()))?,
            );
            Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
        }
        None => {
            let a = Zeroizing::new(
                rpassword::prompt_password("password: ")
                    .context("no password: give --password-file or run on a terminal")?,
            );
            let b = Zeroizing::new(
                rpassword::prompt_password("password again: ")
                    .context("no password: give --password-file or run on a terminal")?,
            );
            if a != b {
                bail!("the two passwords differ; nothing changed");
            }
            a
        }
    };
    Ok(p)
}

/// An account refusal with its reason code in the message.
fn refusal(e: AccountError) -> anyhow::Error {
    anyhow::anyhow!("{} ({})", e, e.code())
}

/// Runs a staff command on `accounts`; `service` names the binary in messages.
pub fn run(accounts: &Accounts, cmd: &StaffCmd, now: i64, out: &Output) -> Result<ExitCode> {
    let done = |what: &str, a: &bizcred_web::Account| {
        out.say(
            &format!("{what}: {} ({})", a.name, a.role),
            &json!({"name": a.name, "role": a.role, "disabled": a.disabled, "done": what}),
        );
        Ok(ExitCode::SUCCESS)
    };
    let unknown = |e: AccountError| -> Result<ExitCode> {
        match e {
            AccountError::Unknown(name) => {
                out.say(
                    &format!("there is no staff account named {name}"),
                    &json!({"error": "ACCOUNT_UNKNOWN", "name": name}),
                );
                Ok(ExitCode::from(1))
            }
            e => Err(refusal(e)),
        }
    };
    match cmd {
        StaffCmd::Add {
            name,
            role,
            password_file,
        } => {
            let p = password(password_file)?;
            let a = accounts.add(name, role, &p, now).map_err(refusal)?;
            done("added", &a)
        }
        StaffCmd::Reset {
            name,
            password_file,
        } => {
            let p = password(password_file)?;
            match accounts.reset(name, &p, now) {
                Ok(a) => done("password reset", &a),
                Err(e) => unknown(e),
            }
        }
        StaffCmd::Disable { name } => match accounts.set_disabled(name, true, now) {
            Ok(a) => done("disabled", &a),
            Err(e) => unknown(e),
        },
        StaffCmd::Enable { name } => match accounts.set_disabled(name, false, now) {
            Ok(a) => done("enabled", &a),
            Err(e) => unknown(e),
        },
        StaffCmd::Role { name, role } => match accounts.set_role(name, role, now) {
            Ok(a) => done("role changed", &a),
            Err(e) => unknown(e),
        },
        StaffCmd::List => {
            let list = accounts.list().map_err(refusal)?;
            let human = if list.is_empty() {
                "no staff accounts".to_owned()
            } else {
                list.iter()
                    .map(|a| {
                        format!(
                            "{}\t{}\t{}",
                            a.name,
                            a.role,
                            if a.disabled { "disabled" } else { "active" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            out.say(
                &human,
                &json!({"accounts": list.iter().map(|a| json!({"name": a.name, "role": a.role, "disabled": a.disabled})).collect::<Vec<_>>()}),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
