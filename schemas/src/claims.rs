//! Typed claims of the four credential types. Field names are the claim names of the JSON
//! contract; obtain these types through [`crate::parse_claims`], which validates first.

use serde::{Deserialize, Serialize};

use crate::ids::{BusinessNumber, CorporationNumber, Date, PostalCode, ProgramAccountNumber};

/// An address in the OpenID Connect `address` claim shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street number and name.
    pub street_address: String,
    /// City.
    pub locality: String,
    /// Province or territory code, e.g. `ON`.
    pub region: String,
    /// Postal code, `A1A 1A1`.
    pub postal_code: PostalCode,
    /// Always `CA`.
    pub country: String,
}

/// A director of a corporation (personal information: disclosed one by one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Director {
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
}

/// Certificate of incorporation (Ontario Business Registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOfIncorporation {
    /// Legal name of the corporation.
    pub legal_name: String,
    /// Ontario corporation number.
    pub corporation_number: CorporationNumber,
    /// Date of incorporation.
    pub incorporation_date: Date,
    /// `business_corporation`, `not_for_profit_corporation`, ...
    pub entity_type: String,
    /// Always `CA-ON`.
    pub jurisdiction: String,
    /// Registered office.
    pub registered_office_address: Address,
    /// `active`, `inactive`, `dissolved` or `amalgamated`. Named `corporate_status` because
    /// `status` is the registered SD-JWT VC claim for the Token Status List reference.
    pub corporate_status: String,
    /// Directors, each selectively disclosable on its own. Absent from the public record
    /// (bulk issuance from the registry extract), which carries no personal data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directors: Vec<Director>,
    /// BN9, once the CRA has assigned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<BusinessNumber>,
    /// With `corporate_status` `amalgamated`: the corporation it amalgamated into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amalgamated_into: Option<CorporationNumber>,
}

/// One CRA program account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramAccount {
    /// `RT`, `RP`, `RC`, ...
    pub program: String,
    /// Four-digit reference, e.g. `0001`.
    pub reference: String,
    /// The full account number, e.g. `123456782RT0001`.
    pub account_number: ProgramAccountNumber,
    /// When the account took effect.
    pub effective_date: Date,
}

/// Business number registration (Canada Revenue Agency).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessNumberRegistration {
    /// BN9.
    pub business_number: BusinessNumber,
    /// Legal name.
    pub legal_name: String,
    /// Operating (trade) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_name: Option<String>,
    /// Program accounts.
    pub program_accounts: Vec<ProgramAccount>,
    /// Registration date.
    pub registration_date: Date,
    /// Business address.
    pub business_address: Address,
    /// Ontario corporation number, for corporations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corporation_number: Option<CorporationNumber>,
}

/// Municipal business licence (City of Toronto, Municipal Licensing and Standards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MunicipalBusinessLicence {
    /// Licence number.
    pub licence_number: String,
    /// Licence category, e.g. `eating_establishment`.
    pub licence_category: String,
    /// Licensee's legal name.
    pub licensee_legal_name: String,
    /// Operating name.
    pub operating_name: String,
    /// BN9.
    pub business_number: BusinessNumber,
    /// Ontario corporation number, for corporations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corporation_number: Option<CorporationNumber>,
    /// Premises.
    pub premises_address: Address,
    /// Issue date.
    pub issue_date: Date,
    /// Expiry date (after the issue date).
    pub expiry_date: Date,
    /// Licence conditions.
    pub conditions: Vec<String>,
}

/// Licensed capacity of premises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Indoor capacity (persons).
    pub indoor: u32,
    /// Outdoor capacity (persons).
    pub outdoor: u32,
}

/// Liquor sales licence (AGCO).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquorSalesLicence {
    /// Licence number.
    pub licence_number: String,
    /// Always `liquor_sales_licence`.
    pub licence_class: String,
    /// Endorsements, e.g. `bring_your_own_wine`.
    pub endorsements: Vec<String>,
    /// Licensee's legal name.
    pub licensee_legal_name: String,
    /// Operating name.
    pub operating_name: String,
    /// BN9.
    pub business_number: BusinessNumber,
    /// Premises.
    pub premises_address: Address,
    /// Capacity.
    pub capacity: Capacity,
    /// Issue date.
    pub issue_date: Date,
    /// Expiry date (after the issue date).
    pub expiry_date: Date,
    /// The municipal business licence of the same premises.
    pub municipal_licence_number: String,
}

/// Validated claims of any of the four types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Claims {
    /// Certificate of incorporation.
    CertificateOfIncorporation(CertificateOfIncorporation),
    /// Business number registration.
    BusinessNumber(BusinessNumberRegistration),
    /// Municipal business licence.
    MunicipalBusinessLicence(MunicipalBusinessLicence),
    /// Liquor sales licence.
    LiquorSalesLicence(LiquorSalesLicence),
}

impl Claims {
    /// The business number the credential is about, where it carries one.
    pub fn business_number(&self) -> Option<&BusinessNumber> {
        match self {
            Claims::CertificateOfIncorporation(c) => c.business_number.as_ref(),
            Claims::BusinessNumber(c) => Some(&c.business_number),
            Claims::MunicipalBusinessLicence(c) => Some(&c.business_number),
            Claims::LiquorSalesLicence(c) => Some(&c.business_number),
        }
    }

    /// The validity window in calendar dates (`issue_date`, `expiry_date`) for licences.
    pub fn licence_dates(&self) -> Option<(Date, Date)> {
        match self {
            Claims::MunicipalBusinessLicence(c) => Some((c.issue_date, c.expiry_date)),
            Claims::LiquorSalesLicence(c) => Some((c.issue_date, c.expiry_date)),
            _ => None,
        }
    }
}
