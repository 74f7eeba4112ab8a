//! Interoperability with an independent OpenID4VCI wallet (`tests/interop/oid4vci_wallet.py`,
//! Python, written from the specifications with no bizcred code): given only the offer URI and
//! the transaction code, it receives a credential of each of the four types from bizcred
//! issuers and verifies it with the key it resolves from the issuer's did:webvh DID.

use std::process::Command;

use bizcred_examples::{example_claims, World};
use bizcred_schemas::CredentialType;
use serde_json::Value;

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography, requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "python3 with `cryptography` and `requests` is not available: the independent-wallet interop test cannot run (pip install cryptography requests)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!!!! {msg}: SKIPPED !!!!!!!!!!\n");
    }
    ok
}

#[test]
fn an_independent_wallet_receives_all_four_types() {
    if !python_ready() {
        return;
    }
    // The independent wallet only receives, so these agencies do not ask for prerequisites.
    let world = World::start_with(&[], false).expect("world");
    let wallet = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/oid4vci_wallet.py");
    for (agency, ty) in [
        ("obr", CredentialType::CertificateOfIncorporation),
        ("cra", CredentialType::BusinessNumber),
        ("city", CredentialType::MunicipalBusinessLicence),
        ("agco", CredentialType::LiquorSalesLicence),
    ] {
        let claims = world
            .claims_file(agency, &example_claims(ty))
            .expect("claims");
        let app = world
            .admin(
                agency,
                &[
                    "apply",
                    "--type",
                    ty.slug(),
                    "--claims",
                    &claims.to_string_lossy(),
                ],
            )
            .expect("apply");
        let offer = world
            .admin(
                agency,
                &["approve", app["application_id"].as_str().expect("id")],
            )
            .expect("approve");
        let out = Command::new("python3")
            .arg(wallet)
            .arg(offer["credential_offer_uri"].as_str().expect("uri"))
            .arg(offer["tx_code"].as_str().expect("tx"))
            .output()
            .expect("python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{agency}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_str(stdout.trim()).expect("json");
        assert_eq!(got["vct"], ty.vct());
        assert_eq!(got["iss"], world.agency(agency).did);
        let expected = example_claims(ty);
        for (k, v) in expected.as_object().expect("object") {
            assert_eq!(&got["claims"][k], v, "{agency}: claim {k}");
        }
    }
}
