//! SD-JWT VC type metadata (display names and claim labels in `en-CA` and `fr-CA`).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::CredentialType;

/// A display language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Canadian English (`en-CA`).
    #[default]
    En,
    /// Canadian French (`fr-CA`).
    Fr,
}

impl Lang {
    /// The BCP 47 tag used in the metadata.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en-CA",
            Lang::Fr => "fr-CA",
        }
    }

    /// Parses `en`, `en-CA`, `fr`, `fr-CA` (case-insensitive).
    pub fn parse(s: &str) -> Option<Lang> {
        match s.to_ascii_lowercase().as_str() {
            "en" | "en-ca" => Some(Lang::En),
            "fr" | "fr-ca" => Some(Lang::Fr),
            _ => None,
        }
    }
}

/// Display of the type in one locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDisplay {
    /// BCP 47 language tag.
    pub locale: String,
    /// Name of the type.
    pub name: String,
    /// Description of the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Display of a claim in one locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimDisplay {
    /// BCP 47 language tag.
    pub locale: String,
    /// Label of the claim.
    pub label: String,
    /// Description of the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Metadata of one claim: its path (strings for keys, `null` for every array element) and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimMetadata {
    /// Claim path as in SD-JWT VC.
    pub path: Vec<serde_json::Value>,
    /// Labels per locale.
    pub display: Vec<ClaimDisplay>,
    /// `always`, `allowed` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sd: Option<String>,
}

/// An SD-JWT VC type metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMetadata {
    /// The `vct`.
    pub vct: String,
    /// Name (English).
    pub name: String,
    /// Description (English).
    pub description: String,
    /// Display per locale.
    pub display: Vec<TypeDisplay>,
    /// Claim metadata.
    pub claims: Vec<ClaimMetadata>,
    /// Where the JSON Schema is published, relative to this document.
    pub schema_uri: String,
}

impl TypeMetadata {
    /// The type's display name in `lang`.
    pub fn display_name(&self, lang: Lang) -> &str {
        self.display
            .iter()
            .find(|d| d.locale == lang.tag())
            .map_or(self.name.as_str(), |d| d.name.as_str())
    }

    /// The label of the claim at `path` (keys and array indices; indices match `null`) in
    /// `lang`, if the metadata has one.
    pub fn label(&self, path: &[serde_json::Value], lang: Lang) -> Option<&str> {
        let matches = |meta: &[serde_json::Value]| {
            meta.len() == path.len()
                && meta
                    .iter()
                    .zip(path)
                    .all(|(m, p)| m.is_null() && p.is_u64() || m == p)
        };
        self.claims.iter().find(|c| matches(&c.path)).and_then(|c| {
            c.display
                .iter()
                .find(|d| d.locale == lang.tag())
                .map(|d| d.label.as_str())
        })
    }
}

pub(crate) fn for_type(t: CredentialType) -> &'static TypeMetadata {
    static CELLS: [OnceLock<TypeMetadata>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    CELLS[t as usize].get_or_init(|| {
        // The embedded documents are checked by this crate's tests.
        serde_json::from_str(t.metadata_json()).expect("embedded type metadata parses")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_in_both_languages() {
        let m = CredentialType::LiquorSalesLicence.metadata();
        assert_eq!(m.display_name(Lang::Fr), "Permis de vente d'alcool");
        assert_eq!(
            m.label(&[json!("capacity"), json!("indoor")], Lang::En),
            Some("Indoor capacity")
        );
        let m = CredentialType::CertificateOfIncorporation.metadata();
        assert_eq!(
            m.label(&[json!("directors"), json!(1)], Lang::Fr),
            Some("Administrateur")
        );
        for t in CredentialType::ALL {
            let m = t.metadata();
            for c in &m.claims {
                for lang in [Lang::En, Lang::Fr] {
                    assert!(
                        c.display.iter().any(|d| d.locale == lang.tag()),
                        "{:?} {lang:?}",
                        c.path
                    );
                }
            }
        }
    }
}
