//! A `bizcred-wallet receive` killed (SIGKILL) while the credential's answer is in flight,
//! after the issuer committed the credential's record: running the same command again
//! resumes it, and the wallet holds exactly one credential, of that record's status index.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bizcred_wallet::{SledVault, Vault};
use common::ReissuingIssuer;

const PASS: &str = "killed receive passphrase";
const BIN: &str = env!("CARGO_BIN_EXE_bizcred-wallet");

fn wallet(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--json")
        .arg("--wallet-dir")
        .arg(dir)
        .env("BIZCRED_WALLET_PASSPHRASE", PASS)
        .env_remove("BIZCRED_WALLET_DIR");
    c
}

#[test]
fn a_receive_killed_after_the_issuer_committed_is_resumed_by_the_same_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("w");
    assert!(wallet(&dir).arg("init").status().expect("init").success());
    let iss = ReissuingIssuer::start(120);
    let uri = iss.offer("killed-1");
    iss.books.lock().expect("books").hold_next_answer = true;

    let mut child = wallet(&dir)
        .args(["receive", &uri])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The kill lands once the issuer has committed the record and holds the answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    while iss.issued_indices().is_empty() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("the wallet ended ({st}) before the issuer committed");
        }
        assert!(Instant::now() < deadline, "the issuer never committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    assert!(!child.wait().expect("wait").success());
    let idx = iss.issued_indices();
    assert_eq!(idx.len(), 1);
    {
        let v = SledVault::open(&dir, PASS.as_bytes()).expect("open");
        assert!(
            v.credentials().expect("held").is_empty(),
            "not received yet"
        );
    }

    // The same command again: resumed with the stored token and a fresh proof.
    let out = wallet(&dir)
        .args(["receive", &uri])
        .output()
        .expect("receive again");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = SledVault::open(&dir, PASS.as_bytes()).expect("open");
    let held = v.credentials().expect("held");
    assert_eq!(held.len(), 1, "exactly one credential");
    assert_eq!(held[0].status_idx, Some(idx[0]));
    assert_eq!(iss.issued_indices(), idx, "never a second index");
    assert!(
        std::fs::read_dir(dir.join("pending"))
            .expect("pending dir")
            .next()
            .is_none(),
        "the pending record is removed"
    );
}
