//! What the repository's tests share: an in-memory registry that knows the Ontario Business
//! Registry (authorized for certificates of incorporation) and the CRA (trusted, for business
//! numbers only), the OBR's status list, and a repository in a temporary directory whose trust
//! is the registry's bundle as it stands.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use bizcred_core::status_list::StatusList;
use bizcred_repository::trust::TrustConfig;
use bizcred_repository::Repository;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{example_claims, Agency, InMemoryRegistry};
use serde_json::{json, Map, Value};

/// 2026-11-22T12:00:00Z.
pub const NOW: i64 = 1_795_348_800;
/// When the fixtures' credentials were issued.
pub const ISSUED: i64 = NOW - 30 * 86_400;
/// The type of public records.
pub const INC: CredentialType = CredentialType::CertificateOfIncorporation;

/// The repository's clock.
pub fn now() -> i64 {
    NOW
}

/// A public certificate's claims (no directors).
pub fn claims(corp: &str, name: &str, status: &str, town: &str, bn: &str) -> Map<String, Value> {
    let mut c = example_claims(INC);
    c.remove("directors");
    c.insert("corporation_number".into(), json!(corp));
    c.insert("legal_name".into(), json!(name));
    c.insert("corporate_status".into(), json!(status));
    c.insert("business_number".into(), json!(bn));
    c["registered_office_address"]["locality"] = json!(town);
    c
}

/// A valid BN9 (Luhn check digit) from an 8-digit stem.
pub fn bn9(stem: u32) -> String {
    let digits: Vec<u32> = format!("{stem:08}")
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                *d
            }
        })
        .sum();
    format!("{stem:08}{}", (10 - sum % 10) % 10)
}

/// The registry, the OBR, the CRA, the OBR's status list and the repository's directory.
pub struct World {
    pub reg: InMemoryRegistry,
    pub obr: Agency,
    pub cra: Agency,
    pub list: StatusList,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let t = ISSUED - 86_400;
        let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t, NOW);
        let obr = Agency::new("obr.bizcred.test", t);
        let cra = Agency::new("cra.bizcred.test", t);
        reg.onboard(
            &obr,
            "Ontario Business Registry",
            "Registre des entreprises de l'Ontario",
            &[INC],
            t,
        );
        reg.onboard(&cra, "CRA", "ARC", &[CredentialType::BusinessNumber], t);
        World {
            reg,
            obr,
            cra,
            list: StatusList::new(1024, 2).expect("list"),
            dir: tempfile::tempdir().expect("dir"),
        }
    }

    /// Writes the registry's bundle (with the OBR's list as it is now) as the repository's
    /// trust, and opens the repository.
    pub fn open(&self) -> Arc<Repository> {
        let trust = self.dir.path().join("trust");
        if !trust.join("trust.json").exists() {
            Repository::init(
                self.dir.path(),
                TrustConfig {
                    anchor: self.reg.anchor(),
                    registry: "http://127.0.0.1:9".into(),
                },
            )
            .expect("init");
        }
        let lists = vec![self
            .obr
            .status_list_copy(&self.list, NOW - 600, NOW + 86_400)];
        let bundle = self.reg.bundle(0, NOW - 3600, lists);
        let bdir = trust.join("bundles");
        let n = std::fs::read_dir(&bdir).expect("bundles").count();
        std::fs::write(bdir.join(format!("{n:06}.json")), bundle).expect("bundle");
        Arc::new(Repository::open(self.dir.path(), Arc::new(now)).expect("open"))
    }

    /// A public record by the OBR.
    pub fn record(&self, c: Map<String, Value>, idx: u64, iat: i64) -> String {
        self.obr.issue_public(INC, c, idx, iat).serialize()
    }
}
