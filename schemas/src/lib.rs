//! The four bizcred credential types: their `vct` values, JSON Schemas (2020-12), SD-JWT VC
//! type metadata in English and French, typed claims and identifier checks.
//!
//! This crate does no I/O: the schemas and metadata are embedded at build time from
//! `schemas/json/` and `schemas/metadata/`, which are also the files published for other
//! implementations.
//!
//! Parse, don't validate: [`parse_claims`] turns raw JSON into [`Claims`] only after the schema
//! and the identifier checks pass, and otherwise returns *every* violation with its JSON path.
//!
//! ```
//! use bizcred_schemas::{parse_claims, CredentialType};
//! let raw = serde_json::json!({"business_number": "812345677"});
//! let errs = parse_claims(CredentialType::BusinessNumber, &raw).unwrap_err();
//! assert!(errs.iter().any(|v| v.path == "/business_number" && v.code == "BN_CHECK_DIGIT"));
//! assert!(errs.iter().any(|v| v.code == "SCHEMA_REQUIRED"));
//! ```
#![deny(missing_docs)]

mod claims;
pub mod ids;
mod metadata;
pub mod reason;
mod validate;

pub use claims::{
    Address, BusinessNumberRegistration, Capacity, CertificateOfIncorporation, Claims, Director,
    LiquorSalesLicence, MunicipalBusinessLicence, ProgramAccount,
};
pub use ids::{BusinessNumber, CorporationNumber, Date, IdError, PostalCode, ProgramAccountNumber};
pub use metadata::{ClaimDisplay, ClaimMetadata, Lang, TypeDisplay, TypeMetadata};
pub use reason::ReasonCode;
pub use validate::{check_claims, parse_claims, Completeness, Violation};

/// One of the four credential types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialType {
    /// Certificate of incorporation, Ontario Business Registry.
    CertificateOfIncorporation,
    /// Business number registration, Canada Revenue Agency.
    BusinessNumber,
    /// Municipal business licence, City of Toronto.
    MunicipalBusinessLicence,
    /// Liquor sales licence, AGCO.
    LiquorSalesLicence,
}

impl CredentialType {
    /// All four, in the order a business obtains them.
    pub const ALL: [CredentialType; 4] = [
        CredentialType::CertificateOfIncorporation,
        CredentialType::BusinessNumber,
        CredentialType::MunicipalBusinessLicence,
        CredentialType::LiquorSalesLicence,
    ];

    /// The SD-JWT VC `vct` value.
    pub fn vct(self) -> &'static str {
        match self {
            CredentialType::CertificateOfIncorporation => {
                "urn:bizcred:ca-on:obr:certificate-of-incorporation:1"
            }
            CredentialType::BusinessNumber => "urn:bizcred:ca:cra:business-number:1",
            CredentialType::MunicipalBusinessLicence => {
                "urn:bizcred:ca-on-toronto:mls:business-licence:1"
            }
            CredentialType::LiquorSalesLicence => "urn:bizcred:ca-on:agco:liquor-sales-licence:1",
        }
    }

    /// The type with this `vct`, if it is one of ours.
    pub fn from_vct(vct: &str) -> Option<CredentialType> {
        CredentialType::ALL.into_iter().find(|t| t.vct() == vct)
    }

    /// A short file-name-safe name, e.g. `liquor-sales-licence`.
    pub fn slug(self) -> &'static str {
        match self {
            CredentialType::CertificateOfIncorporation => "certificate-of-incorporation",
            CredentialType::BusinessNumber => "business-number",
            CredentialType::MunicipalBusinessLicence => "municipal-business-licence",
            CredentialType::LiquorSalesLicence => "liquor-sales-licence",
        }
    }

    /// The type with this slug.
    pub fn from_slug(slug: &str) -> Option<CredentialType> {
        CredentialType::ALL.into_iter().find(|t| t.slug() == slug)
    }

    /// The JSON Schema (2020-12) of the claims, as published in `schemas/json/`.
    pub fn schema_json(self) -> &'static str {
        match self {
            CredentialType::CertificateOfIncorporation => {
                include_str!("../json/certificate-of-incorporation.schema.json")
            }
            CredentialType::BusinessNumber => include_str!("../json/business-number.schema.json"),
            CredentialType::MunicipalBusinessLicence => {
                include_str!("../json/municipal-business-licence.schema.json")
            }
            CredentialType::LiquorSalesLicence => {
                include_str!("../json/liquor-sales-licence.schema.json")
            }
        }
    }

    /// The SD-JWT VC type metadata document, as published in `schemas/metadata/`.
    pub fn metadata_json(self) -> &'static str {
        match self {
            CredentialType::CertificateOfIncorporation => {
                include_str!("../metadata/certificate-of-incorporation.metadata.json")
            }
            CredentialType::BusinessNumber => {
                include_str!("../metadata/business-number.metadata.json")
            }
            CredentialType::MunicipalBusinessLicence => {
                include_str!("../metadata/municipal-business-licence.metadata.json")
            }
            CredentialType::LiquorSalesLicence => {
                include_str!("../metadata/liquor-sales-licence.metadata.json")
            }
        }
    }

    /// The parsed type metadata.
    pub fn metadata(self) -> &'static TypeMetadata {
        metadata::for_type(self)
    }

    /// The types an issuer must see proven before it issues this one (`MISSION.md`).
    pub fn prerequisites(self) -> &'static [CredentialType] {
        use CredentialType::*;
        match self {
            CertificateOfIncorporation => &[],
            BusinessNumber => &[CertificateOfIncorporation],
            MunicipalBusinessLicence => &[CertificateOfIncorporation, BusinessNumber],
            LiquorSalesLicence => &[
                CertificateOfIncorporation,
                BusinessNumber,
                MunicipalBusinessLicence,
            ],
        }
    }
}

impl std::fmt::Display for CredentialType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vct_round_trip() {
        for t in CredentialType::ALL {
            assert_eq!(CredentialType::from_vct(t.vct()), Some(t));
            assert_eq!(CredentialType::from_slug(t.slug()), Some(t));
            let meta: serde_json::Value =
                serde_json::from_str(t.metadata_json()).expect("metadata is JSON");
            assert_eq!(meta["vct"], t.vct());
            let schema: serde_json::Value =
                serde_json::from_str(t.schema_json()).expect("schema is JSON");
            assert_eq!(schema["properties"]["vct"]["const"], t.vct());
        }
        assert_eq!(CredentialType::from_vct("urn:bizcred:other:1"), None);
    }
}
