//! Named staff accounts: a role each, passwords hashed with Argon2id (PHC strings), kept in one
//! JSON file in the service's data directory. Every change is made under an exclusive file lock
//! and written whole to a temporary file renamed over the old one, so the CLI (`staff add`) and
//! a running service see one consistent file and a crash leaves the old or the new, never half.
//! The file holds hashes, never passwords; it is read again on every sign-in and session check,
//! so an account disabled from the CLI is signed out of a running service at its next request.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use bizcred_schemas::ReasonCode;

/// Most accounts one service holds.
pub const MAX_ACCOUNTS: usize = 10_000;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD: usize = 1024;
/// Largest accounts file read.
const MAX_FILE: u64 = 16 << 20;

/// A staff account (its password hash is not printed by `Debug`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// Sign-in name.
    pub name: String,
    /// Role, one of the service's.
    pub role: String,
    /// Argon2id PHC string.
    phc: String,
    /// Disabled accounts cannot sign in.
    pub disabled: bool,
    /// Created (Unix seconds).
    pub created: i64,
    /// Password, role or state last changed.
    pub changed: i64,
    /// Counts the changes of password, role or state: a session keeps the generation it signed
    /// in with and ends when it differs (a counter, so a change in the same second as a
    /// sign-in still ends that session).
    #[serde(default)]
    pub generation: u64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("created", &self.created)
            .field("changed", &self.changed)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountsFile {
    version: u32,
    accounts: Vec<Account>,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Wrong name or password, or a disabled account (one answer for all three).
    #[error("the account name or password is wrong, or the account is disabled")]
    LoginFailed,
    /// The name is taken.
    #[error("a staff account named {0} exists already")]
    Exists(String),
    /// No such account.
    #[error("there is no staff account named {0}")]
    Unknown(String),
    /// A malformed name.
    #[error("an account name is 1 to 64 lower-case letters, digits, dots, dashes or underscores")]
    Name,
    /// A role the service does not have.
    #[error("role {role} is not one of {allowed}")]
    Role {
        /// The role asked for.
        role: String,
        /// The service's roles.
        allowed: String,
    },
    /// A password too short or too long.
    #[error("a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")]
    Weak,
    /// The file could not be read or written.
    #[error("the staff accounts file {path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// The table is full.
    #[error("the service holds {MAX_ACCOUNTS} staff accounts, the most it allows")]
    TooMany,
}

impl AccountError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            AccountError::LoginFailed => ReasonCode::LoginFailed,
            AccountError::Exists(_) => ReasonCode::AccountExists,
            AccountError::Unknown(_) => ReasonCode::AccountUnknown,
            AccountError::Name => ReasonCode::AccountName,
            AccountError::Role { .. } => ReasonCode::AccountRole,
            AccountError::Weak => ReasonCode::PasswordWeak,
            AccountError::File { .. } => ReasonCode::AccountsFile,
            AccountError::TooMany => ReasonCode::TooManyAccounts,
        }
    }
}

/// The staff accounts of one service.
#[derive(Debug, Clone)]
pub struct Accounts {
    path: PathBuf,
    lock: PathBuf,
    roles: &'static [&'static str],
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) && password.len() <= 4 * MAX_PASSWORD {
        Ok(())
    } else {
        Err(AccountError::Weak)
    }
}

fn hash(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::File {
            path: PathBuf::new(),
            cause: format!("hashing failed: {e}"),
        })
}

/// A hash no password matches in practice, verified against when the name is unknown so that
/// an unknown name takes as long as a wrong password.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let mut secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut secret);
        Argon2::default()
            .hash_password(&secret, &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

impl Accounts {
    /// The accounts kept in `dir/staff.json`, with the roles the service has.
    pub fn new(dir: &Path, roles: &'static [&'static str]) -> Accounts {
        Accounts {
            path: dir.join("staff.json"),
            lock: dir.join("staff.lock"),
            roles,
        }
    }

    /// The roles this service has.
    pub fn roles(&self) -> &'static [&'static str] {
        self.roles
    }

    fn err(&self, cause: impl std::fmt::Display) -> AccountError {
        AccountError::File {
            path: self.path.clone(),
            cause: cause.to_string(),
        }
    }

    fn locked(&self, exclusive: bool) -> Result<File, AccountError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&self.lock)
            .map_err(|e| self.err(e))?;
        if exclusive {
            f.lock().map_err(|e| self.err(e))?;
        } else {
            f.lock_shared().map_err(|e| self.err(e))?;
        }
        Ok(f)
    }

    fn read(&self) -> Result<AccountsFile, AccountError> {
        match fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AccountsFile::default())
            }
            Err(e) => return Err(self.err(e)),
            Ok(m) if m.len() > MAX_FILE => return Err(self.err("the file is too large")),
            Ok(_) => {}
        }
        let text = fs::read(&self.path).map_err(|e| self.err(e))?;
        serde_json::from_slice(&text).map_err(|e| self.err(e))
    }

    fn write(&self, file: &AccountsFile) -> Result<(), AccountError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| self.err(e))?;
        let mut f = File::create(&tmp).map_err(|e| self.err(e))?;
        f.write_all(&bytes).map_err(|e| self.err(e))?;
        f.sync_all().map_err(|e| self.err(e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.err(e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Applies `change` to the file under the exclusive lock and writes it back.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut AccountsFile) -> Result<T, AccountError>,
    ) -> Result<T, AccountError> {
        let _lock = self.locked(true)?;
        let mut file = self.read()?;
        let out = change(&mut file)?;
        file.version = 1;
        self.write(&file)?;
        Ok(out)
    }

    fn check_role(&self, role: &str) -> Result<(), AccountError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(AccountError::Role {
                role: role.to_owned(),
                allowed: self.roles.join(", "),
            })
        }
    }

    /// Creates an account.
    pub fn add(
        &self,
        name: &str,
        role: &str,
        password: &str,
        now: i64,
    ) -> Result<Account, AccountError> {
        if !valid_name(name) {
            return Err(AccountError::Name);
        }
        self.check_role(role)?;
        check_password(password)?;
        let phc = hash(password)?;
        self.change(|f| {
            if f.accounts.iter().any(|a| a.name == name) {
                return Err(AccountError::Exists(name.to_owned()));
            }
            if f.accounts.len() >= MAX_ACCOUNTS {
                return Err(AccountError::TooMany);
            }
            let a = Account {
                name: name.to_owned(),
                role: role.to_owned(),
                phc,
                disabled: false,
                created: now,
                changed: now,
                generation: 0,
            };
            f.accounts.push(a.clone());
            Ok(a)
        })
    }

    fn update(
        &self,
        name: &str,
        now: i64,
        edit: impl FnOnce(&mut Account),
    ) -> Result<Account, AccountError> {
        self.change(|f| {
            let a = f
                .accounts
                .iter_mut()
                .find(|a| a.name == name)
                .ok_or_else(|| AccountError::Unknown(name.to_owned()))?;
            edit(a);
            a.changed = now;
            a.generation = a.generation.wrapping_add(1);
            Ok(a.clone())
        })
    }

    /// Sets a new password (sessions signed in before it end).
    pub fn reset(&self, name: &str, password: &str, now: i64) -> Result<Account, AccountError> {
        check_password(password)?;
        let phc = hash(password)?;
        self.update(name, now, |a| a.phc = phc)
    }

    /// Disables (or enables again) an account; a disabled account's sessions end.
    pub fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: i64,
    ) -> Result<Account, AccountError> {
        self.update(name, now, |a| a.disabled = disabled)
    }

    /// Changes an account's role (its sessions end).
    pub fn set_role(&self, name: &str, role: &str, now: i64) -> Result<Account, AccountError> {
        self.check_role(role)?;
        self.update(name, now, |a| a.role = role.to_owned())
    }

    /// Every account, by name.
    pub fn list(&self) -> Result<Vec<Account>, AccountError> {
        let _lock = self.locked(false)?;
        let mut v = self.read()?.accounts;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// One account.
    pub fn get(&self, name: &str) -> Result<Option<Account>, AccountError> {
        let _lock = self.locked(false)?;
        Ok(self.read()?.accounts.into_iter().find(|a| a.name == name))
    }

    /// Checks a name and password: the account, or [`AccountError::LoginFailed`] for a wrong
    /// password, an unknown name or a disabled account alike (each takes one Argon2id check).
    pub fn authenticate(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        let password = Zeroizing::new(password.to_owned());
        if password.len() > 4 * MAX_PASSWORD {
            return Err(AccountError::LoginFailed);
        }
        let found = self.get(name)?;
        let ok = verify(found.as_ref().map_or(decoy(), |a| &a.phc), &password);
        match found {
            Some(a) if ok && !a.disabled => Ok(a),
            _ => Err(AccountError::LoginFailed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &[&str] = &["clerk", "approver", "administrator"];

    #[test]
    fn add_authenticate_reset_disable() {
        let dir = tempfile::tempdir().expect("dir");
        let acc = Accounts::new(dir.path(), ROLES);
        acc.add("ana", "clerk", "correct horse battery", 10)
            .expect("add");
        assert_eq!(
            acc.add("ana", "clerk", "correct horse battery", 11)
                .expect_err("twice")
                .code(),
            ReasonCode::AccountExists
        );
        assert_eq!(
            acc.add("Bob", "clerk", "correct horse battery", 11)
                .expect_err("name")
                .code(),
            ReasonCode::AccountName
        );
        assert_eq!(
            acc.add("bob", "officer", "correct horse battery", 11)
                .expect_err("role")
                .code(),
            ReasonCode::AccountRole
        );
        assert_eq!(
            acc.add("bob", "clerk", "short", 11)
                .expect_err("weak")
                .code(),
            ReasonCode::PasswordWeak
        );
        let a = acc
            .authenticate("ana", "correct horse battery")
            .expect("signs in");
        assert_eq!(a.role, "clerk");
        for (name, pw) in [
            ("ana", "wrong password!"),
            ("nobody", "correct horse battery"),
        ] {
            assert_eq!(
                acc.authenticate(name, pw).expect_err("refused").code(),
                ReasonCode::LoginFailed
            );
        }
        let before = acc.get("ana").expect("read").expect("ana").generation;
        acc.reset("ana", "a new long password", 10).expect("reset");
        // A change in the same second as the sign-in still counts (sessions compare this).
        assert_eq!(
            acc.get("ana").expect("read").expect("ana").generation,
            before + 1
        );
        assert!(acc.authenticate("ana", "correct horse battery").is_err());
        acc.authenticate("ana", "a new long password")
            .expect("new password");
        acc.set_disabled("ana", true, 30).expect("disable");
        assert_eq!(
            acc.authenticate("ana", "a new long password")
                .expect_err("disabled")
                .code(),
            ReasonCode::LoginFailed
        );
        let text = std::fs::read_to_string(dir.path().join("staff.json")).expect("file");
        assert!(!text.contains("a new long password"));
        assert!(text.contains("$argon2id$"));
        assert!(!format!("{:?}", acc.list().expect("list")).contains("argon2"));
    }
}
