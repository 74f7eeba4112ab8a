//! Interoperability of the registry's TRQP v2.0 endpoint with an independent client
//! (`tests/interop/trqp_client.py`, Python, written from the TRQP v2.0 text, RFC 9457 and
//! did:webvh v1.0 with no bizcred code): the real `bizcred-registry` binary on loopback, made
//! by the operator's commands (init with its public URL, which gives the authority its
//! did:webvh DID; onboard an issuer; recognize a second registry's authority). The client is
//! given only identifiers: it resolves the authority's DID over HTTP, finds the TRQP endpoint
//! in its DID document, asks authorization and recognition queries, positive and negative,
//! and validates every answer against the specification's JSON schemas (problem details on
//! every error). Then the recognition is revoked over HTTP and the client sees it.

use std::process::Command;

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::webvh;
use bizcred_examples::{free_port, Bins, Service};
use bizcred_schemas::CredentialType;
use serde_json::{json, Value};

fn script() -> String {
    format!("{}/interop/trqp_client.py", env!("CARGO_MANIFEST_DIR"))
}

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography, requests, jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "python3 with `cryptography`, `requests` and `jsonschema` is not available: the independent TRQP client cannot run (pip install cryptography requests jsonschema)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n!!!!!!!!!! {msg}: SKIPPED !!!!!!!!!!\n");
    }
    ok
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An issuer's did:webvh log (one entry, an assertion key), as an agency would publish it.
fn issuer_log(host: &str) -> (String, String) {
    let update = fresh_key();
    let assertion = fresh_key();
    let doc = json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": "{DID}",
        "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": did::multikey(&assertion.public_key())}],
        "assertionMethod": ["{DID}#key-1"],
    });
    let mut p = serde_json::Map::new();
    p.insert(
        "updateKeys".into(),
        json!([did::multikey(&update.public_key())]),
    );
    let (did, line) = webvh::create(host, doc, p, now() - 60, &update).expect("a DID");
    (did, format!("{line}\n"))
}

/// A fresh Ed25519 key from the system's randomness.
fn fresh_key() -> SecretKey {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .expect("randomness");
    SecretKey::from_bytes(Algorithm::EdDSA, &seed).expect("a key")
}

fn client(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the independent client: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("json")
}

#[test]
fn an_independent_trqp_client_finds_and_queries_the_registry() {
    if !python_ready() {
        return;
    }
    let bins = Bins::locate().expect("binaries");
    let root = tempfile::tempdir().expect("tempdir");
    let on_dir = root.path().join("on");
    let bc_dir = root.path().join("bc");
    let port = free_port().expect("port");
    let url = format!("http://localhost:{port}");
    let on = bins
        .ok(
            "bizcred-registry",
            &[
                "init",
                "--origin",
                "registry.on.localhost/log",
                "--public-url",
                &url,
                "--data-dir",
                &on_dir.to_string_lossy(),
            ],
        )
        .expect("init");
    let authority = on["authority_did"]
        .as_str()
        .expect("authority DID")
        .to_owned();
    assert_eq!(on["trqp"], format!("{url}/trqp/v2"));
    // A second registry (British Columbia's, in the story): its authority and anchor.
    let bc = bins
        .ok(
            "bizcred-registry",
            &[
                "init",
                "--origin",
                "registry.bc.localhost/log",
                "--public-url",
                "https://trust.bc.example",
                "--data-dir",
                &bc_dir.to_string_lossy(),
            ],
        )
        .expect("init");
    let bc_authority = bc["authority_did"].as_str().expect("DID").to_owned();
    let incorporation = CredentialType::CertificateOfIncorporation;
    let (issuer, log) = issuer_log("obr.bizcred.localhost");
    let log_file = root.path().join("obr.jsonl");
    std::fs::write(&log_file, log).expect("write");
    let on_s = on_dir.to_string_lossy().into_owned();
    bins.ok(
        "bizcred-registry",
        &[
            "onboard",
            "--did-log",
            &log_file.to_string_lossy(),
            "--name-en",
            "Ontario Business Registry",
            "--name-fr",
            "Registre des entreprises de l'Ontario",
            "--type",
            incorporation.slug(),
            "--data-dir",
            &on_s,
        ],
    )
    .expect("onboard");
    let recognized = bins
        .ok(
            "bizcred-registry",
            &[
                "recognize",
                "--authority",
                &bc_authority,
                "--anchor",
                &bc["anchor"].to_string(),
                "--type",
                incorporation.slug(),
                "--data-dir",
                &on_s,
            ],
        )
        .expect("recognize");
    assert_eq!(recognized["result"], "appended", "{recognized}");
    let _registry = Service::start(
        &bins,
        "bizcred-registry",
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &on_s,
        ],
        &url,
    )
    .expect("serve");

    let other = CredentialType::BusinessNumber.vct();
    let got = client(&[
        &authority,
        &issuer,
        incorporation.vct(),
        other,
        &bc_authority,
        incorporation.vct(),
    ]);
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["endpoint"], format!("{url}/trqp/v2"), "{got}");
    assert_eq!(got["recognized"], true, "{got}");
    assert!(got["checks"].as_u64().unwrap_or(0) >= 60, "{got}");

    // Revoked over HTTP with the admin token: the client sees recognized: false.
    let token = on["admin_token"].as_str().expect("token");
    let revoked = bins
        .ok(
            "bizcred-registry",
            &[
                "recognize",
                "--revoke",
                "--authority",
                &bc_authority,
                "--type",
                incorporation.slug(),
                "--url",
                &url,
                &format!("--token={token}"),
                "--data-dir",
                &on_s,
            ],
        )
        .expect("revoke");
    assert_eq!(revoked["result"], "appended", "{revoked}");
    let got = client(&[
        &authority,
        &issuer,
        incorporation.vct(),
        other,
        &bc_authority,
        incorporation.vct(),
        "--revoked",
    ]);
    assert_eq!(
        (&got["ok"], &got["recognized"]),
        (&json!(true), &json!(false)),
        "{got}"
    );

    // A refused governance command over HTTP reads the problem document's code.
    let (code, again, _) = bins
        .run(
            "bizcred-registry",
            &[
                "recognize",
                "--revoke",
                "--authority",
                &bc_authority,
                "--type",
                incorporation.slug(),
                "--url",
                &url,
                &format!("--token={token}"),
                "--data-dir",
                &on_s,
            ],
        )
        .expect("run");
    assert_eq!(code, 1, "{again}");
    assert_eq!(again["code"], "ENTRY_REFERENCE", "{again}");
}
