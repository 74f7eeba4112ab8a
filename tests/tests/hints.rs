//! Every hint a binary prints is a command that runs: each hint is provoked, then run as
//! printed by a POSIX shell (the binaries on its PATH), and must succeed.

use std::path::Path;
use std::process::Command;

use bizcred_examples::{agency_config, Bins, DEMO_PASSPHRASE, PASSPHRASE_VARS};
use bizcred_schemas::CredentialType;
use serde_json::Value;

/// Runs `line` with `sh -c` in `cwd`, the binaries first on the PATH and the demo passphrases
/// (and `env`) in the environment; returns the exit code, stdout and stderr.
fn shell(bins: &Bins, cwd: &Path, line: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let path = format!(
        "{}:{}",
        bins.dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg("-c").arg(line).current_dir(cwd).env("PATH", path);
    for v in PASSPHRASE_VARS {
        c.env(v, DEMO_PASSPHRASE);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn hint(v: &Value) -> String {
    v["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no hint in {v}"))
        .to_owned()
}

#[test]
fn every_hint_is_a_command_that_runs() {
    let bins = Bins::locate().expect("bins");
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let reg = root.join("registry");
    let reg_s = reg.to_string_lossy().into_owned();

    // The registry: a command on a directory without a registry hints at `init`.
    let (code, v, _) = bins
        .run("bizcred-registry", &["status", "--data-dir", &reg_s])
        .expect("run");
    assert_eq!(code, 2, "{v}");
    let (code, out, err) = shell(&bins, root, &hint(&v), &[]);
    assert_eq!(code, 0, "{out} {err}");
    let (code, status, _) = bins
        .run("bizcred-registry", &["status", "--data-dir", &reg_s])
        .expect("run");
    assert_eq!(code, 0, "{status}");
    let anchor = status["anchor"].clone();

    // An agency: `init` prints the registry operator's next step, with the agency's French
    // name (an apostrophe) quoted for the shell; it onboards the agency.
    let agency = root.join("obr");
    std::fs::create_dir_all(&agency).expect("dir");
    let cfg = agency.join("agency.toml");
    std::fs::write(
        &cfg,
        agency_config(
            "obr",
            18081,
            &agency.join("data"),
            "http://localhost:18080",
            &anchor,
            &[CredentialType::CertificateOfIncorporation],
            true,
            &"0".repeat(64),
            &[],
        )
        .expect("config"),
    )
    .expect("write");
    let init = bins
        .ok(
            "bizcred-issuer",
            &["init", "--config", &cfg.to_string_lossy()],
        )
        .expect("issuer init");
    let next = init["next"].as_str().expect("next").to_owned();
    assert!(next.contains("l'\\''Ontario"), "{next}");
    let (code, out, err) = shell(&bins, root, &next, &[("BIZCRED_REGISTRY_DIR", &reg_s)]);
    assert_eq!(code, 0, "{next}\n{out} {err}");
    let (_, status, _) = bins
        .run("bizcred-registry", &["status", "--data-dir", &reg_s])
        .expect("run");
    let did = init["did"].as_str().expect("did");
    assert!(
        status["issuers"]
            .as_array()
            .expect("issuers")
            .iter()
            .any(|i| i["did"] == did),
        "{status}"
    );

    // The verifier: a command before `init` hints at `init --anchor anchor.json`.
    let bank = root.join("bank");
    let bank_s = bank.to_string_lossy().into_owned();
    std::fs::write(root.join("anchor.json"), anchor.to_string()).expect("anchor");
    let (code, v, _) = bins
        .run("bizcred-verifier", &["--data-dir", &bank_s, "sync"])
        .expect("run");
    assert_eq!(code, 2, "{v}");
    let (code, out, err) = shell(&bins, root, &hint(&v), &[]);
    assert_eq!(code, 0, "{out} {err}");
    // A presentation that answers no open request hints at making one.
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/config/policies/loan-application.toml");
    let pres = root.join("presentation.json");
    std::fs::write(&pres, r#"{"state": "no-such-request", "vp_token": {}}"#).expect("pres");
    let (code, v, _) = bins
        .run(
            "bizcred-verifier",
            &[
                "--data-dir",
                &bank_s,
                "verify",
                &pres.to_string_lossy(),
                "--policy",
                &policy.to_string_lossy(),
            ],
        )
        .expect("run");
    assert_eq!(code, 2, "{v}");
    let (code, out, err) = shell(&bins, root, &hint(&v), &[]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(root.join("request.jwt").is_file());
}
