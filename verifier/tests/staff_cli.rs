//! `bizcred-verifier staff`: accounts of the bank page made from the shell, on the data
//! directory, with the password from a file (never an argument); refusals and errors keep the
//! exit codes of every bizcred command.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bizcred-verifier"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--json")
        .args(args)
        .env_remove("BIZCRED_VERIFIER_PASSPHRASE")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn staff_accounts_from_the_shell() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bank");
    let pass = tmp.path().join("passphrase");
    std::fs::write(&pass, "verifier key passphrase\n").expect("pass");
    let pw = tmp.path().join("password");
    std::fs::write(&pw, "a long desk password\n").expect("pw");
    let pw = pw.to_string_lossy().into_owned();
    // Before init: an error that hints at init.
    let (code, v, _) = run(&dir, &["staff", "list"]);
    assert_eq!(code, 2, "{v}");
    let anchor = r#"{"origin":"registry.example/log","log_key_name":"registry.example/log","log_key":"AAAA"}"#;
    let (code, v, err) = run(
        &dir,
        &[
            "--passphrase-file",
            &pass.to_string_lossy(),
            "init",
            "--anchor",
            anchor,
        ],
    );
    assert_eq!(code, 0, "{v} {err}");
    let (code, v, err) = run(
        &dir,
        &[
            "staff",
            "add",
            "olu",
            "--role",
            "officer",
            "--password-file",
            &pw,
        ],
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["role"], "officer");
    let (code, _, _) = run(
        &dir,
        &[
            "staff",
            "add",
            "ada",
            "--role",
            "administrator",
            "--password-file",
            &pw,
        ],
    );
    assert_eq!(code, 0);
    // A role the bank page does not have.
    let (code, v, err) = run(
        &dir,
        &[
            "staff",
            "add",
            "cleo",
            "--role",
            "clerk",
            "--password-file",
            &pw,
        ],
    );
    assert_ne!(code, 0, "{v}");
    assert!(format!("{v}{err}").contains("ACCOUNT_ROLE"), "{v} {err}");
    let (code, v, _) = run(&dir, &["staff", "disable", "olu"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["disabled"], true);
    let (code, v, _) = run(&dir, &["staff", "disable", "nobody"]);
    assert_eq!(code, 1, "an unknown account is a refusal: {v}");
    let (code, v, _) = run(&dir, &["staff", "enable", "olu"]);
    assert_eq!(code, 0, "{v}");
    let (code, v, _) = run(&dir, &["staff", "reset", "olu", "--password-file", &pw]);
    assert_eq!(code, 0, "{v}");
    let (code, v, _) = run(&dir, &["staff", "list"]);
    assert_eq!(code, 0);
    let names: Vec<&str> = v["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["ada", "olu"]);
    let file = std::fs::read_to_string(dir.join("staff.json")).expect("file");
    assert!(file.contains("$argon2id$") && !file.contains("a long desk password"));
    // The accounts sign in: the library the page uses agrees.
    let acc = bizcred_verifier::staff::accounts(&dir);
    acc.authenticate("olu", "a long desk password")
        .expect("signs in");
}
