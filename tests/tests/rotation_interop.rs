//! A routine key rotation seen by a verifier that resolves only the issuer's current DID
//! document (`tests/interop/current_did_document.py`, written from the did:webvh 1.0 spec with
//! no bizcred code): the retired assertion key stays listed, so a credential signed before the
//! rotation is still accepted; the trust registry accepted every rotation (its mirrored DID log
//! verifies and lists the same keys); a key declared compromised at a rotation is no longer
//! listed, so that verifier refuses what it signed.

use std::path::Path;
use std::process::Command;

use bizcred_core::webvh;
use bizcred_examples::{example_claims, World};
use bizcred_schemas::CredentialType;
use serde_json::Value;

fn script(name: &str) -> String {
    format!("{}/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography, requests"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "python3 with `cryptography` and `requests` is not available: the current-DID-document interop test cannot run (pip install cryptography requests)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!!!! {msg}: SKIPPED !!!!!!!!!!\n");
    }
    ok
}

/// The independent wallet (`oid4vci_wallet.py`) receives a certificate of incorporation from the
/// OBR into `store`.
fn receive(world: &World, name: &str, store: &Path) {
    let ty = CredentialType::CertificateOfIncorporation;
    let offer = world
        .offer("obr", ty, name, &example_claims(ty))
        .expect("offer");
    let out = Command::new("python3")
        .arg(script("oid4vci_wallet.py"))
        .arg(offer["credential_offer_uri"].as_str().expect("uri"))
        .arg(offer["tx_code"].as_str().expect("tx"))
        .arg("--store")
        .arg(store)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the current-document verifier says of each stored credential: (kid, accepted, reason).
fn current_document_verdicts(store: &Path) -> Vec<(String, bool, String)> {
    let out = Command::new("python3")
        .arg(script("current_did_document.py"))
        .arg(store)
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).expect("json");
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["kid"].as_str().unwrap_or_default().to_owned(),
                r["accepted"] == true,
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The registry's mirror of the DID log, verified; the assertion keys its newest version lists.
fn mirrored_assertion_keys(world: &World, did: &str) -> Vec<String> {
    let url = format!(
        "{}/dids/{}/did.jsonl",
        world.registry_url,
        did.replace('%', "%25")
    );
    let text = reqwest::blocking::get(&url)
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .expect("mirrored log");
    let log = webvh::verify_log(&text, None, i64::MAX / 2);
    assert!(log.error.is_none(), "{:?}", log.error);
    let newest = log.versions.last().expect("a version");
    newest.state["assertionMethod"]
        .as_array()
        .expect("assertionMethod")
        .iter()
        .map(|k| {
            let k = k.as_str().expect("id");
            assert!(newest.verification_method(k).is_some(), "{k}");
            k.to_owned()
        })
        .collect()
}

#[test]
fn a_verifier_of_the_current_did_document_follows_rotations() {
    if !python_ready() {
        return;
    }
    let world = World::start_with(&[], false).expect("world");
    let did = world.agency("obr").did.clone();
    let key = |n: u32| format!("{did}#key-{n}");
    let store = world.root.path().join("independent-wallet.json");

    receive(&world, "before", &store);
    let rotated = world.admin("obr", &["rotate-key"]).expect("rotate");
    assert_eq!(rotated["kid"], key(2).as_str(), "{rotated}");
    assert_eq!(
        rotated["retired_keys_listed"],
        serde_json::json!([key(1)]),
        "{rotated}"
    );
    receive(&world, "after", &store);

    // Both credentials verify against the current DID document alone.
    let verdicts = current_document_verdicts(&store);
    assert_eq!(
        verdicts,
        vec![(key(1), true, String::new()), (key(2), true, String::new())]
    );
    // The registry accepted the rotation: its mirror verifies and lists both keys.
    assert_eq!(mirrored_assertion_keys(&world, &did), vec![key(2), key(1)]);

    // key-2 declared compromised at the next rotation: no longer listed, so what it signed is
    // refused; key-1's credential still verifies.
    let rotated = world
        .admin("obr", &["rotate-key", "--compromised", &key(2)])
        .expect("rotate");
    assert_eq!(rotated["kid"], key(3).as_str(), "{rotated}");
    let verdicts = current_document_verdicts(&store);
    assert_eq!(verdicts[0], (key(1), true, String::new()));
    assert_eq!(
        verdicts[1],
        (
            key(2),
            false,
            "kid is not listed in assertionMethod of the current DID document".to_owned()
        )
    );
    assert_eq!(mirrored_assertion_keys(&world, &did), vec![key(3), key(1)]);

    // A key id that is not this issuer's is refused by name, and nothing rotates.
    let (code, v, _) = world
        .bins
        .run(
            "bizcred-issuer",
            &[
                "admin",
                "--url",
                &world.agency("obr").url,
                &format!("--token={}", world.agency("obr").token),
                "rotate-key",
                "--compromised",
                "did:example:other#key-1",
            ],
        )
        .expect("run");
    assert_ne!(code, 0, "{v}");
    assert!(v.to_string().contains("NAME_UNKNOWN"), "{v}");
    assert_eq!(mirrored_assertion_keys(&world, &did), vec![key(3), key(1)]);
}
