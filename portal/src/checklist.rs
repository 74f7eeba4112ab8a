//! The restaurant's checklist: the four credential types in prerequisite order, and where the
//! founder stands on each, computed from the states the agencies answered for this session's
//! applications. Pure: no I/O, no clock.

use bizcred_schemas::CredentialType;

/// An application's state, as the agency's applicant API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppState {
    /// Waiting for the founder's wallet to present the prerequisite credentials.
    AwaitingPrerequisites,
    /// Waiting for a clerk's decision.
    AwaitingApproval,
    /// The clerk asked for changes (with a note).
    ChangesRequested,
    /// Approved: a credential offer is ready for the wallet.
    Offered,
    /// The credential was issued to the wallet.
    Issued,
    /// Refused (with the reason).
    Refused,
    /// Withdrawn by the founder.
    Withdrawn,
    /// The agency no longer holds it (it answers that the capability is unknown: the
    /// application was swept or removed). The portal's own state: final, not asked again.
    Removed,
    /// A state this portal does not know (a newer agency): shown as received, counted as open
    /// work.
    Other(String),
}

impl AppState {
    /// The state named `s` by the applicant API.
    pub fn parse(s: &str) -> AppState {
        match s {
            "awaiting_prerequisites" => AppState::AwaitingPrerequisites,
            "awaiting_approval" => AppState::AwaitingApproval,
            "changes_requested" => AppState::ChangesRequested,
            "offered" => AppState::Offered,
            "issued" => AppState::Issued,
            "refused" => AppState::Refused,
            "withdrawn" => AppState::Withdrawn,
            other => AppState::Other(other.chars().take(64).collect()),
        }
    }

    /// The API's name (the catalogue key under `state.`; `other` for an unknown one).
    pub fn name(&self) -> &str {
        match self {
            AppState::AwaitingPrerequisites => "awaiting_prerequisites",
            AppState::AwaitingApproval => "awaiting_approval",
            AppState::ChangesRequested => "changes_requested",
            AppState::Offered => "offered",
            AppState::Issued => "issued",
            AppState::Refused => "refused",
            AppState::Withdrawn => "withdrawn",
            AppState::Removed => "removed",
            AppState::Other(_) => "other",
        }
    }

    /// Still under way (neither issued nor ended).
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            AppState::Issued | AppState::Refused | AppState::Withdrawn | AppState::Removed
        )
    }

    /// Nothing the agency says can change it any more: it is not asked again. (An issued
    /// application still is: the agency flags upstream events on it.)
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            AppState::Refused | AppState::Withdrawn | AppState::Removed
        )
    }

    /// The founder may still withdraw it (the applicant API's rule: not once offered or
    /// decided).
    pub fn is_withdrawable(&self) -> bool {
        matches!(
            self,
            AppState::AwaitingPrerequisites
                | AppState::AwaitingApproval
                | AppState::ChangesRequested
        )
    }
}

/// Where the founder stands on one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// An application of this session reached `issued`.
    Held,
    /// An application of this type is under way.
    InProgress,
    /// This prerequisite (the first in order not held) is missing.
    Waiting(CredentialType),
    /// Every prerequisite is held (or none is needed): the founder may apply.
    Open,
}

impl StepState {
    /// The founder may apply for the step's type now: it is open, or it waits for
    /// prerequisites not issued through this session (the founder's wallet may hold them
    /// already: the agency checks them itself, through the wallet's presentation).
    pub fn takes_applications(&self) -> bool {
        matches!(self, StepState::Open | StepState::Waiting(_))
    }
}

/// The types of the restaurant's checklist, in prerequisite order (each type after every
/// type it needs).
pub fn restaurant_types() -> Vec<CredentialType> {
    let mut out: Vec<CredentialType> = Vec::new();
    fn visit(t: CredentialType, out: &mut Vec<CredentialType>) {
        if out.contains(&t) {
            return;
        }
        for p in t.prerequisites() {
            visit(*p, out);
        }
        out.push(t);
    }
    for t in CredentialType::ALL {
        visit(t, &mut out);
    }
    out
}

/// Each type's step, from the session's applications (type and last known state).
pub fn steps(apps: &[(CredentialType, AppState)]) -> Vec<(CredentialType, StepState)> {
    let held = |t: CredentialType| {
        apps.iter()
            .any(|(ty, s)| *ty == t && *s == AppState::Issued)
    };
    restaurant_types()
        .into_iter()
        .map(|t| {
            let state = if held(t) {
                StepState::Held
            } else if apps.iter().any(|(ty, s)| *ty == t && s.is_active()) {
                StepState::InProgress
            } else if let Some(p) = t.prerequisites().iter().find(|p| !held(**p)) {
                StepState::Waiting(*p)
            } else {
                StepState::Open
            };
            (t, state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialType::*;

    fn state_of(s: &[(CredentialType, StepState)], t: CredentialType) -> StepState {
        s.iter()
            .find(|(ty, _)| *ty == t)
            .map(|(_, s)| *s)
            .expect("type")
    }

    #[test]
    fn types_come_in_prerequisite_order() {
        assert_eq!(
            restaurant_types(),
            vec![
                CertificateOfIncorporation,
                BusinessNumber,
                MunicipalBusinessLicence,
                LiquorSalesLicence
            ]
        );
    }

    #[test]
    fn a_new_founder_may_incorporate_and_waits_for_the_rest() {
        let s = steps(&[]);
        assert_eq!(state_of(&s, CertificateOfIncorporation), StepState::Open);
        assert_eq!(
            state_of(&s, BusinessNumber),
            StepState::Waiting(CertificateOfIncorporation)
        );
        assert_eq!(
            state_of(&s, LiquorSalesLicence),
            StepState::Waiting(CertificateOfIncorporation)
        );
    }

    #[test]
    fn issued_types_are_held_and_open_the_next() {
        let s = steps(&[
            (CertificateOfIncorporation, AppState::Issued),
            (BusinessNumber, AppState::Issued),
            (MunicipalBusinessLicence, AppState::AwaitingApproval),
        ]);
        assert_eq!(state_of(&s, CertificateOfIncorporation), StepState::Held);
        assert_eq!(state_of(&s, BusinessNumber), StepState::Held);
        assert_eq!(
            state_of(&s, MunicipalBusinessLicence),
            StepState::InProgress
        );
        assert_eq!(
            state_of(&s, LiquorSalesLicence),
            StepState::Waiting(MunicipalBusinessLicence)
        );
    }

    #[test]
    fn an_offer_is_not_held_and_a_refusal_opens_the_step_again() {
        let s = steps(&[
            (CertificateOfIncorporation, AppState::Offered),
            (BusinessNumber, AppState::Refused),
        ]);
        assert_eq!(
            state_of(&s, CertificateOfIncorporation),
            StepState::InProgress
        );
        assert_eq!(
            state_of(&s, BusinessNumber),
            StepState::Waiting(CertificateOfIncorporation)
        );
        let s = steps(&[
            (CertificateOfIncorporation, AppState::Issued),
            (BusinessNumber, AppState::Refused),
            (BusinessNumber, AppState::Withdrawn),
        ]);
        assert_eq!(state_of(&s, BusinessNumber), StepState::Open);
    }

    #[test]
    fn one_issued_application_among_others_holds_the_type() {
        let s = steps(&[
            (CertificateOfIncorporation, AppState::Refused),
            (CertificateOfIncorporation, AppState::Issued),
            (
                CertificateOfIncorporation,
                AppState::Other("archived".into()),
            ),
        ]);
        assert_eq!(state_of(&s, CertificateOfIncorporation), StepState::Held);
        assert_eq!(state_of(&s, BusinessNumber), StepState::Open);
    }

    #[test]
    fn states_parse_and_unknown_ones_count_as_under_way() {
        for name in [
            "awaiting_prerequisites",
            "awaiting_approval",
            "changes_requested",
            "offered",
            "issued",
            "refused",
            "withdrawn",
        ] {
            assert_eq!(AppState::parse(name).name(), name);
        }
        let other = AppState::parse("archived");
        assert_eq!(other.name(), "other");
        assert!(other.is_active() && !other.is_withdrawable());
        assert!(AppState::ChangesRequested.is_withdrawable());
        assert!(!AppState::Offered.is_withdrawable());
        assert!(!AppState::Removed.is_active() && !AppState::Removed.is_withdrawable());
        assert!(AppState::Removed.is_settled() && !AppState::Issued.is_settled());
    }

    #[test]
    fn a_step_takes_applications_unless_held_or_under_way() {
        assert!(StepState::Open.takes_applications());
        assert!(StepState::Waiting(CertificateOfIncorporation).takes_applications());
        assert!(!StepState::InProgress.takes_applications());
        assert!(!StepState::Held.takes_applications());
    }

    #[test]
    fn an_application_the_agency_no_longer_holds_opens_the_step_again() {
        let s = steps(&[(CertificateOfIncorporation, AppState::Removed)]);
        assert_eq!(state_of(&s, CertificateOfIncorporation), StepState::Open);
    }
}
