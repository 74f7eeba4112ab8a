//! Who acts: a named staff member with a role, or automation (the admin bearer token). Every
//! operation that changes an application, a credential or the keys takes an [`Actor`] and
//! checks its [`Permission`] here, in the library, so a page cannot forget to; every such
//! action is written to the audit log naming the actor.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;

/// A staff member's role at the agency desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    /// Reviews applications, edits the claims staff enter, requests changes, records a
    /// withdrawal.
    Clerk,
    /// Everything a clerk may, and approves, refuses, revokes, suspends and reinstates.
    Approver,
    /// Everything an approver may, and rotates the signing key and manages staff accounts.
    Administrator,
}

impl StaffRole {
    /// Every role, least powerful first.
    pub const ALL: [StaffRole; 3] = [
        StaffRole::Clerk,
        StaffRole::Approver,
        StaffRole::Administrator,
    ];

    /// The stored and answered name (`clerk`, `approver`, `administrator`).
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Clerk => "clerk",
            StaffRole::Approver => "approver",
            StaffRole::Administrator => "administrator",
        }
    }

    /// Whether this role may take `p`.
    pub fn may(self, p: Permission) -> bool {
        self >= p.least_role()
    }
}

impl std::fmt::Display for StaffRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StaffRole {
    type Err = Error;

    /// `clerk`, `approver` or `administrator` (exactly); anything else is
    /// [`Error::UnknownName`] (`NAME_UNKNOWN`).
    fn from_str(s: &str) -> Result<StaffRole, Error> {
        StaffRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::UnknownName {
                what: "staff role",
                name: s.chars().take(64).collect(),
            })
    }
}

/// What an actor may be allowed to do. [`StaffRole::may`] answers for a role; automation may
/// do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// Open an application (for a business, with the claims of the system of record).
    OpenApplication,
    /// Change the claims staff enter (never those verified from prerequisites).
    EditClaims,
    /// Send an application back for changes, with a note.
    RequestChanges,
    /// Record that the applicant withdrew an application not yet offered.
    Withdraw,
    /// Approve an application and make the credential offer.
    Approve,
    /// Refuse an application, with a reason.
    Refuse,
    /// Revoke a credential (final), with a reason.
    Revoke,
    /// Suspend a credential, with a reason.
    Suspend,
    /// Reinstate a suspended credential.
    Reinstate,
    /// Rotate the signing key.
    RotateKey,
    /// Add, disable or reset staff accounts.
    ManageStaff,
}

impl Permission {
    /// The least powerful role that holds it.
    pub fn least_role(self) -> StaffRole {
        match self {
            Permission::OpenApplication
            | Permission::EditClaims
            | Permission::RequestChanges
            | Permission::Withdraw => StaffRole::Clerk,
            Permission::Approve
            | Permission::Refuse
            | Permission::Revoke
            | Permission::Suspend
            | Permission::Reinstate => StaffRole::Approver,
            Permission::RotateKey | Permission::ManageStaff => StaffRole::Administrator,
        }
    }

    /// The action in words (for messages: "may not approve applications").
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OpenApplication => "open applications",
            Permission::EditClaims => "edit claims",
            Permission::RequestChanges => "request changes",
            Permission::Withdraw => "withdraw applications",
            Permission::Approve => "approve applications",
            Permission::Refuse => "refuse applications",
            Permission::Revoke => "revoke credentials",
            Permission::Suspend => "suspend credentials",
            Permission::Reinstate => "reinstate credentials",
            Permission::RotateKey => "rotate the signing key",
            Permission::ManageStaff => "manage staff accounts",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who takes an action: written to the audit log as `{"kind":"staff","name":..,"role":..}`,
/// `{"kind":"automation"}` or `{"kind":"applicant"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Actor {
    /// A signed-in staff member.
    Staff {
        /// The account name.
        name: String,
        /// The account's role.
        role: StaffRole,
    },
    /// The admin bearer token (scripts, the `bizcred-issuer admin` command): every power.
    Automation,
    /// The applicant, through the application's capability link or its wallet: opens its own
    /// application, states the claims only it can, withdraws it. Nothing else.
    Applicant,
}

impl Actor {
    /// A staff member.
    pub fn staff(name: impl Into<String>, role: StaffRole) -> Actor {
        Actor::Staff {
            name: name.into(),
            role,
        }
    }

    /// The name shown in histories (`automation` for the admin token).
    pub fn name(&self) -> &str {
        match self {
            Actor::Staff { name, .. } => name,
            Actor::Automation => "automation",
            Actor::Applicant => "applicant",
        }
    }

    /// The staff role, if a staff member.
    pub fn role(&self) -> Option<StaffRole> {
        match self {
            Actor::Staff { role, .. } => Some(*role),
            Actor::Automation | Actor::Applicant => None,
        }
    }

    /// Whether the actor may take `p` (automation may take every action; the applicant opens,
    /// completes and withdraws its own application).
    pub fn may(&self, p: Permission) -> bool {
        match self {
            Actor::Staff { role, .. } => role.may(p),
            Actor::Automation => true,
            Actor::Applicant => matches!(
                p,
                Permission::OpenApplication | Permission::EditClaims | Permission::Withdraw
            ),
        }
    }

    /// `Ok` when the actor may take `p`, else [`Error::Forbidden`] (`STAFF_FORBIDDEN`).
    pub fn require(&self, p: Permission) -> Result<(), Error> {
        if self.may(p) {
            return Ok(());
        }
        Err(Error::Forbidden {
            name: self.name().to_owned(),
            role: self.role(),
            action: p,
        })
    }

    /// The actor as the audit log records it.
    pub fn audit(&self) -> Value {
        match self {
            Actor::Staff { name, role } => {
                serde_json::json!({"kind": "staff", "name": name, "role": role.as_str()})
            }
            Actor::Automation => serde_json::json!({"kind": "automation"}),
            Actor::Applicant => serde_json::json!({"kind": "applicant"}),
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Staff { name, role } => write!(f, "{name} ({role})"),
            Actor::Automation => f.write_str("automation"),
            Actor::Applicant => f.write_str("the applicant"),
        }
    }
}

/// Longest reason or note kept (characters).
pub const MAX_REASON_CHARS: usize = 2000;

/// A reason or note as kept: trimmed; `None` when absent or blank; refused when longer than
/// [`MAX_REASON_CHARS`].
pub(super) fn reason_text(reason: Option<&str>) -> Result<Option<String>, Error> {
    let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(Error::ReasonTooLong {
            max: MAX_REASON_CHARS,
        });
    }
    Ok(Some(r.to_owned()))
}

/// A reason the action requires ([`Error::ReasonRequired`] when absent or blank).
pub(super) fn required_reason(reason: Option<&str>, action: Permission) -> Result<String, Error> {
    reason_text(reason)?.ok_or(Error::ReasonRequired { action })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_automation_may_everything() {
        let clerk = Actor::staff("ada", StaffRole::Clerk);
        assert!(clerk.may(Permission::EditClaims) && clerk.may(Permission::RequestChanges));
        for p in [
            Permission::Approve,
            Permission::Refuse,
            Permission::Revoke,
            Permission::Suspend,
            Permission::Reinstate,
            Permission::RotateKey,
        ] {
            assert!(!clerk.may(p), "{p}");
            assert_eq!(
                clerk.require(p).expect_err("forbidden").code(),
                bizcred_schemas::ReasonCode::StaffForbidden
            );
        }
        let approver = Actor::staff("bo", StaffRole::Approver);
        assert!(approver.may(Permission::Approve) && approver.may(Permission::EditClaims));
        assert!(!approver.may(Permission::RotateKey));
        assert!(Actor::staff("cy", StaffRole::Administrator).may(Permission::RotateKey));
        assert!(Actor::Automation.may(Permission::ManageStaff));
    }

    #[test]
    fn names_and_the_audit_form() {
        for r in StaffRole::ALL {
            assert_eq!(r.as_str().parse::<StaffRole>().expect("parse"), r);
            assert_eq!(
                serde_json::to_value(r).expect("json"),
                Value::from(r.as_str())
            );
        }
        let e = "Clerk".parse::<StaffRole>().expect_err("exact names");
        assert_eq!(e.code(), bizcred_schemas::ReasonCode::NameUnknown);
        let a = Actor::staff("ada", StaffRole::Clerk);
        assert_eq!(
            serde_json::to_value(&a).expect("json"),
            serde_json::json!({"kind": "staff", "name": "ada", "role": "clerk"})
        );
        assert_eq!(a.audit(), serde_json::to_value(&a).expect("json"));
        assert_eq!(
            serde_json::to_value(Actor::Automation).expect("json"),
            serde_json::json!({"kind": "automation"})
        );
    }

    #[test]
    fn reasons_are_trimmed_required_and_bounded() {
        assert_eq!(reason_text(Some("  ")).expect("blank"), None);
        assert_eq!(
            required_reason(Some(" \t"), Permission::Refuse)
                .expect_err("blank")
                .code(),
            bizcred_schemas::ReasonCode::ReasonRequired
        );
        assert_eq!(
            required_reason(Some(" fraud "), Permission::Revoke).expect("ok"),
            "fraud"
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(
            reason_text(Some(&long)).expect_err("long").code(),
            bizcred_schemas::ReasonCode::ReasonTooLong
        );
    }
}
