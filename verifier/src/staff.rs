//! Who acts on the verifier (feature `service`): a member of the bank's staff with a role, or
//! the operator (the bearer token over HTTP, the shell on the data directory). Every operation
//! the bank page offers takes an [`Actor`] and checks its [`Permission`] here, in the library,
//! so a page cannot forget to; a refusal is [`Forbidden`] (`STAFF_FORBIDDEN`).
//!
//! The staff accounts are the web crate's [`Accounts`] in `staff.json` of the data directory,
//! with the roles `officer` and `administrator`; the functions below are what both
//! `bizcred-verifier staff` and the staff page call.

use std::path::Path;
use std::str::FromStr;

use bizcred_core::ReasonCode;
use bizcred_web::accounts::{Account, AccountError, Accounts};

/// The roles of the bank page, least powerful first, as stored.
pub const ROLES: &[&str] = &["officer", "administrator"];

/// A staff member's role on the bank page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Verifies, uploads presentation files, syncs the trust bundle, reads the history.
    Officer,
    /// Everything an officer may, and manages the staff accounts.
    Administrator,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 2] = [Role::Officer, Role::Administrator];

    /// The stored name (`officer`, `administrator`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Administrator => "administrator",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccountError;

    /// `officer` or `administrator`, exactly; anything else is `ACCOUNT_ROLE`.
    fn from_str(s: &str) -> Result<Role, AccountError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AccountError::Role {
                role: s.chars().take(64).collect(),
                allowed: ROLES.join(", "),
            })
    }
}

/// What an actor may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Start a verification (an OpenID4VP request) and read its result.
    Verify,
    /// Verify an uploaded presentation file (the offline exchange).
    Upload,
    /// Sync the trust bundle from the registry.
    Sync,
    /// Read the history of verifications and their receipts.
    History,
    /// Add, disable, enable staff accounts and reset their passwords.
    ManageStaff,
}

impl Permission {
    /// The least powerful role that holds it.
    pub fn least_role(self) -> Role {
        match self {
            Permission::Verify | Permission::Upload | Permission::Sync | Permission::History => {
                Role::Officer
            }
            Permission::ManageStaff => Role::Administrator,
        }
    }

    /// The action in words (for messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Verify => "start verifications",
            Permission::Upload => "verify presentation files",
            Permission::Sync => "sync the trust bundle",
            Permission::History => "read the history of verifications",
            Permission::ManageStaff => "manage staff accounts",
        }
    }
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator: the bearer token over HTTP, or the shell on the data directory.
    Operator,
    /// A signed-in member of staff.
    Staff {
        /// Account name.
        name: String,
        /// Role.
        role: Role,
    },
}

/// A role may not take an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the role {role} may not {}", permission.as_str())]
pub struct Forbidden {
    /// The actor's role.
    pub role: Role,
    /// What was asked.
    pub permission: Permission,
}

impl Forbidden {
    /// `STAFF_FORBIDDEN`.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::StaffForbidden
    }
}

impl Actor {
    /// A member of staff with a stored role name (an unknown name is `ACCOUNT_ROLE`).
    pub fn staff(name: &str, role: &str) -> Result<Actor, AccountError> {
        Ok(Actor::Staff {
            name: name.to_owned(),
            role: role.parse()?,
        })
    }

    /// Whether the actor may take `p`: the operator may do everything.
    pub fn may(&self, p: Permission) -> bool {
        match self {
            Actor::Operator => true,
            Actor::Staff { role, .. } => *role >= p.least_role(),
        }
    }

    /// `Ok` when the actor may take `p`, else [`Forbidden`].
    pub fn check(&self, p: Permission) -> Result<(), Forbidden> {
        match self {
            Actor::Staff { role, .. } if !self.may(p) => Err(Forbidden {
                role: *role,
                permission: p,
            }),
            _ => Ok(()),
        }
    }

    /// The name for logs (`operator` or the account name).
    pub fn name(&self) -> &str {
        match self {
            Actor::Operator => "operator",
            Actor::Staff { name, .. } => name,
        }
    }
}

/// Why a staff operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// The actor may not manage staff.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// A member of staff tried to disable their own account.
    #[error("a member of staff may not disable their own account")]
    OwnAccount,
    /// The accounts refused or failed.
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl StaffError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            StaffError::Forbidden(e) => e.code(),
            StaffError::OwnAccount => ReasonCode::StaffForbidden,
            StaffError::Account(e) => e.code(),
        }
    }
}

/// The staff accounts of the verifier in `dir` (`dir/staff.json`).
pub fn accounts(dir: &Path) -> Accounts {
    Accounts::new(dir, ROLES)
}

/// Adds an account (administrators and the operator).
pub fn add(
    accounts: &Accounts,
    actor: &Actor,
    name: &str,
    role: Role,
    password: &str,
    now: i64,
) -> Result<Account, StaffError> {
    actor.check(Permission::ManageStaff)?;
    let a = accounts.add(name, role.as_str(), password, now)?;
    tracing::info!(by = actor.name(), account = name, role = %role, "staff account added");
    Ok(a)
}

/// Disables (`disabled`) or enables an account; a disabled account's sessions end at their
/// next request. Administrators may not disable their own account (the desk would lose its
/// last administrator by a slip); the operator may.
pub fn set_disabled(
    accounts: &Accounts,
    actor: &Actor,
    name: &str,
    disabled: bool,
    now: i64,
) -> Result<Account, StaffError> {
    actor.check(Permission::ManageStaff)?;
    if disabled && actor.name() == name && *actor != Actor::Operator {
        return Err(StaffError::OwnAccount);
    }
    let a = accounts.set_disabled(name, disabled, now)?;
    tracing::info!(
        by = actor.name(),
        account = name,
        disabled,
        "staff account changed"
    );
    Ok(a)
}

/// Sets a new password (the account's sessions end).
pub fn reset(
    accounts: &Accounts,
    actor: &Actor,
    name: &str,
    password: &str,
    now: i64,
) -> Result<Account, StaffError> {
    actor.check(Permission::ManageStaff)?;
    let a = accounts.reset(name, password, now)?;
    tracing::info!(by = actor.name(), account = name, "staff password reset");
    Ok(a)
}

/// Every account, by name.
pub fn list(accounts: &Accounts, actor: &Actor) -> Result<Vec<Account>, StaffError> {
    actor.check(Permission::ManageStaff)?;
    Ok(accounts.list()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_checked_in_the_library() {
        let dir = tempfile::tempdir().expect("dir");
        let acc = accounts(dir.path());
        let op = Actor::Operator;
        add(
            &acc,
            &op,
            "ada",
            Role::Administrator,
            "a long password 1",
            1,
        )
        .expect("add");
        add(&acc, &op, "olu", Role::Officer, "a long password 2", 1).expect("add");
        let officer = Actor::staff("olu", "officer").expect("role");
        let admin = Actor::staff("ada", "administrator").expect("role");
        for p in [
            Permission::Verify,
            Permission::Upload,
            Permission::Sync,
            Permission::History,
        ] {
            assert!(officer.may(p) && admin.may(p));
        }
        let e = add(&acc, &officer, "eve", Role::Officer, "a long password 3", 2)
            .expect_err("an officer manages no staff");
        assert_eq!(e.code(), ReasonCode::StaffForbidden);
        assert_eq!(
            list(&acc, &officer).expect_err("nor lists it").code(),
            ReasonCode::StaffForbidden
        );
        assert_eq!(list(&acc, &admin).expect("list").len(), 2);
        assert_eq!(
            set_disabled(&acc, &admin, "ada", true, 3)
                .expect_err("not oneself")
                .code(),
            ReasonCode::StaffForbidden
        );
        set_disabled(&acc, &admin, "olu", true, 3).expect("disable");
        assert!(acc.authenticate("olu", "a long password 2").is_err());
        set_disabled(&acc, &admin, "olu", false, 4).expect("enable");
        reset(&acc, &admin, "olu", "another long password", 5).expect("reset");
        acc.authenticate("olu", "another long password")
            .expect("new password");
        assert_eq!(
            "clerk".parse::<Role>().expect_err("no clerks here").code(),
            ReasonCode::AccountRole
        );
    }
}
