//! Every hint the wallet prints is a command that runs: each hint is provoked with the real
//! binary, then run as printed by a POSIX shell (the binary on its PATH), and must succeed.
//! The wallet directory's name has a space and an apostrophe, so an unquoted hint breaks.

mod common;

use std::path::Path;
use std::process::Command;

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_schemas::CredentialType;
use bizcred_wallet::{SledVault, Vault};
use common::ReissuingIssuer;
use serde_json::{json, Value};

const PASS: &str = "hint test passphrase";
const BIN: &str = env!("CARGO_BIN_EXE_bizcred-wallet");

/// Runs the wallet with `--json` on the wallet at `dir`: exit code, JSON on stdout, stderr.
fn wallet(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(BIN)
        .arg("--json")
        .arg("--wallet-dir")
        .arg(dir)
        .args(args)
        .env("BIZCRED_WALLET_PASSPHRASE", PASS)
        .env_remove("BIZCRED_WALLET_DIR")
        .output()
        .expect("run the wallet");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The hint of a refusal, run by `sh -c` with the wallet's directory first on the PATH.
fn run_hint(cwd: &Path, v: &Value) -> String {
    let line = v["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no hint in {v}"))
        .to_owned();
    assert!(
        !line.contains('<') && !line.contains('`'),
        "a placeholder or prose: {line}"
    );
    let bin_dir = Path::new(BIN).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(cwd)
        .env("PATH", path)
        .env("BIZCRED_WALLET_PASSPHRASE", PASS)
        .env_remove("BIZCRED_WALLET_DIR")
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "the hint `{line}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    line
}

/// A request object signed by a did:key verifier for one credential of type `vct`.
fn request_file(path: &Path, vct: &str) {
    let key = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let did = bizcred_core::did::did_key(&key.public_key());
    let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
    let client_id = format!("{}{did}", bizcred_core::oid4vp::DID_PREFIX);
    let claims = json!({"client_id": client_id, "response_type": "vp_token",
        "response_mode": "direct_post", "response_uri": "https://bank.example/response",
        "nonce": "n0nce", "state": "s1",
        "dcql_query": {"credentials": [{"id": "q", "format": "dc+sd-jwt",
            "meta": {"vct_values": [vct]}, "claims": [{"path": ["business_number"]}]}]}});
    let jwt =
        bizcred_core::oid4vp::sign_request_object(claims.as_object().expect("object"), &kid, &key)
            .expect("sign");
    std::fs::write(path, jwt).expect("request file");
}

#[test]
fn every_wallet_hint_is_a_command_that_runs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let dir = root.join("l'agence w");

    // No wallet: the hint creates it.
    let (code, v, err) = wallet(&dir, &["list"]);
    assert_eq!(code, 1, "{err}");
    let line = run_hint(root, &v);
    assert!(line.ends_with(" init"), "{line}");
    assert_eq!(wallet(&dir, &["list"]).0, 0);

    // A second init: the hint lists the wallet that is there.
    let (code, v, err) = wallet(&dir, &["init"]);
    assert_eq!(code, 1, "{err}");
    assert!(run_hint(root, &v).ends_with(" list"));

    // An unknown credential id (show, delete): the hint lists the held ones.
    for cmd in ["show", "delete"] {
        let (code, v, err) = wallet(&dir, &[cmd, "c0123456789"]);
        assert_eq!(code, 1, "{cmd}: {err}");
        run_hint(root, &v);
    }

    // A receive whose answer is lost after the issuer committed: the hint resumes it, and the
    // wallet then holds the credential of the issuer's record.
    let iss = ReissuingIssuer::start(120);
    iss.books.lock().expect("books").lose_next_answer = true;
    let uri = iss.offer("hint-1");
    let (code, v, err) = wallet(&dir, &["receive", &uri]);
    assert_eq!(code, 2, "{v} {err}");
    assert_eq!(v["code"], "HTTP_ERROR", "{v}");
    let line = run_hint(root, &v);
    assert!(line.ends_with(" receive --resume"), "{line}");
    // Nothing is left to resume.
    let (code, v, _) = wallet(&dir, &["receive", "--resume"]);
    assert_eq!((code, v["code"].as_str()), (1, Some("NO_PENDING_RECEIVE")));
    // The same receive command again also resumes.
    iss.books.lock().expect("books").lose_next_answer = true;
    let uri2 = iss.offer("hint-2");
    assert_eq!(wallet(&dir, &["receive", &uri2]).0, 2);
    let (code, v, err) = wallet(&dir, &["receive", &uri2]);
    assert_eq!(code, 0, "{v} {err}");
    let v = SledVault::open(&dir, PASS.as_bytes()).expect("open");
    let mut held: Vec<u64> = v
        .credentials()
        .expect("held")
        .iter()
        .filter_map(|c| c.status_idx)
        .collect();
    drop(v);
    held.sort_unstable();
    assert_eq!(held, iss.issued_indices(), "one credential per record");

    // A request for a type the wallet does not hold: the hint lists what it holds.
    let req = root.join("request for l'agence.jwt");
    let out = root.join("presentation.json");
    request_file(&req, CredentialType::LiquorSalesLicence.vct());
    let (req_s, out_s) = (req.to_string_lossy(), out.to_string_lossy());
    let (code, v, err) = wallet(
        &dir,
        &["present", "--request", &req_s, "--out", &out_s, "--yes"],
    );
    assert_eq!(code, 1, "{v} {err}");
    assert_eq!(v["code"], "NO_MATCHING_CREDENTIAL", "{v}");
    run_hint(root, &v);

    // No consent in a script: the hint is the same command with --yes, and it writes the
    // presentation.
    request_file(&req, CredentialType::BusinessNumber.vct());
    let (code, v, err) = wallet(&dir, &["present", "--request", &req_s, "--out", &out_s]);
    assert_eq!(code, 1, "{v} {err}");
    assert!(!out.exists());
    let line = run_hint(root, &v);
    assert!(line.contains("--yes"), "{line}");
    assert!(out.is_file(), "the hint wrote the presentation");
}
