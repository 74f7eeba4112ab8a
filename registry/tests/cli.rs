//! The real `bizcred-registry` binary on loopback: init, onboard the four agencies, export a
//! bundle and import it with the verifier library, serve, mirror a key rotation, suspend over
//! HTTP, and survive a `kill -9` under load.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use bizcred_core::trust::bundle::{self, TrustAnchor};
use bizcred_schemas::CredentialType;
use bizcred_test_support::Agency;
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bizcred-registry"));
    c.env("BIZCRED_REGISTRY_PASSPHRASE", PASS)
        .env_remove("BIZCRED_REGISTRY_TOKEN")
        .env_remove("BIZCRED_REGISTRY_DIR");
    c
}

fn run(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = bin()
        .arg("--json")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("null");
    let v = serde_json::from_str(last).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let mut child = bin()
        .args(["--json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let v: Value = serde_json::from_str(&line).expect("json");
    Server(
        child,
        format!("http://{}", v["listening"].as_str().expect("addr")),
    )
}

#[test]
fn onboard_four_agencies_bundle_and_rotation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("reg");
    let (code, init) = run(&dir, &["init", "--origin", "registry.bizcred.test/log"]);
    assert_eq!(code, 0, "{init}");
    let token = init["admin_token"].as_str().expect("token").to_owned();
    let anchor: TrustAnchor = serde_json::from_value(init["anchor"].clone()).expect("anchor");
    // A second init refuses to overwrite.
    assert_eq!(run(&dir, &["init", "--origin", "x.test/log"]).0, 2);

    let t = now() - 120;
    let agencies = [
        (
            "obr.bizcred.test",
            "Ontario Business Registry",
            "certificate-of-incorporation",
        ),
        (
            "cra.bizcred.test",
            "Canada Revenue Agency",
            "business-number",
        ),
        (
            "toronto.bizcred.test",
            "City of Toronto",
            "municipal-business-licence",
        ),
        ("agco.bizcred.test", "AGCO", "liquor-sales-licence"),
    ];
    let mut made = Vec::new();
    for (host, name, ty) in agencies {
        let a = Agency::new(host, t);
        let f = tmp.path().join(format!("{host}.jsonl"));
        std::fs::write(&f, &a.log).expect("write");
        let (code, out) = run(
            &dir,
            &[
                "onboard",
                "--did-log",
                f.to_str().expect("p"),
                "--name-en",
                name,
                "--name-fr",
                name,
                "--type",
                ty,
            ],
        );
        assert_eq!(code, 0, "{out}");
        made.push(a);
    }
    // An unknown type and an unregistered DID are refused (exit 2: bad input; exit 1: refused).
    assert_eq!(
        run(
            &dir,
            &[
                "authorize",
                "--did",
                &made[0].did,
                "--type",
                "fishing-licence"
            ]
        )
        .0,
        2
    );
    let (code, out) = run(
        &dir,
        &[
            "authorize",
            "--did",
            "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFD:x.test",
            "--type",
            "business-number",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["result"], "refused");
    let (code, status) = run(&dir, &["status"]);
    assert_eq!(code, 0);
    assert_eq!(status["issuers"].as_array().map(Vec::len), Some(4));

    let bundle_file = tmp.path().join("bundle.json");
    let (code, _) = run(
        &dir,
        &[
            "bundle",
            "export",
            "--out",
            bundle_file.to_str().expect("p"),
        ],
    );
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&bundle_file).expect("bundle");
    let state = bundle::import(None, &anchor, &text, now())
        .expect("import into empty state")
        .state;
    let (city, agco) = (&made[2], &made[3]);
    let liquor = CredentialType::LiquorSalesLicence.vct();
    assert!(
        state.authorized(&agco.did, liquor, now()).is_ok(),
        "the AGCO may issue liquor licences"
    );
    assert_eq!(
        state
            .authorized(&city.did, liquor, now())
            .expect_err("the City may not")
            .code(),
        "ISSUER_NOT_AUTHORIZED"
    );

    // Serve; the AGCO's rotation is mirrored over HTTP; the City is suspended over HTTP.
    let server = serve(&dir);
    let rotated_at = now() - 60;
    let (line, new_key) = agco.rotation(rotated_at);
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(format!("{}/dids/{}/log", server.1, agco.did))
        .body(line)
        .send()
        .expect("post");
    assert!(r.status().is_success(), "{:?}", r.text());
    let (code, out) = {
        let o = bin()
            .args([
                "--json",
                "suspend",
                "--did",
                &city.did,
                "--type",
                "municipal-business-licence",
                "--url",
                &server.1,
                "--token",
                &token,
                "--data-dir",
            ])
            .arg(&dir)
            .output()
            .expect("suspend");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert_eq!(code, 0, "{out}");
    let (code, _) = {
        let o = bin()
            .args([
                "--json",
                "suspend",
                "--did",
                &city.did,
                "--type",
                "municipal-business-licence",
                "--url",
                &server.1,
                "--token",
                "wrong",
                "--data-dir",
            ])
            .arg(&dir)
            .output()
            .expect("s");
        (o.status.code().unwrap_or(-1), ())
    };
    assert_eq!(code, 2, "a wrong token is an error, not a refusal");
    let text2 = client
        .get(format!("{}/bundle?from={}", server.1, state.size()))
        .send()
        .expect("get")
        .text()
        .expect("text");
    let later = now();
    let s2 = bundle::import(Some(&state), &anchor, &text2, later)
        .expect("incremental import")
        .state;
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-1", rotated_at - 1)
            .expect("old key before the rotation"),
        agco.assertion_public()
    );
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-1", rotated_at + 1)
            .expect_err("old key after")
            .code(),
        "KEY_NOT_VALID_AT_PROOF_TIME"
    );
    assert_eq!(
        s2.issuer_key(&agco.did, "#key-2", rotated_at + 1)
            .expect("new key"),
        bizcred_core::keys::Signer::public_key(&new_key)
    );
    assert_eq!(
        s2.authorized(
            &city.did,
            CredentialType::MunicipalBusinessLicence.vct(),
            later + 1
        )
        .expect_err("suspended")
        .code(),
        "ISSUER_NOT_AUTHORIZED"
    );
}

trait AssertionKey {
    fn assertion_public(&self) -> bizcred_core::keys::PublicKey;
}
impl AssertionKey for Agency {
    fn assertion_public(&self) -> bizcred_core::keys::PublicKey {
        bizcred_core::keys::Signer::public_key(&self.assertion)
    }
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_entry() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("reg");
    assert_eq!(
        run(&dir, &["init", "--origin", "registry.bizcred.test/log"]).0,
        0
    );
    let server = serve(&dir);
    let client = reqwest::blocking::Client::new();
    // Mirror many did:webvh updates; kill -9 while requests are in flight.
    let a = Agency::new("load.bizcred.test", now() - 3600);
    let f = tmp.path().join("a.jsonl");
    std::fs::write(&f, &a.log).expect("w");
    drop(server);
    assert_eq!(
        run(
            &dir,
            &[
                "onboard",
                "--did-log",
                f.to_str().expect("p"),
                "--name-en",
                "L",
                "--name-fr",
                "L",
                "--type",
                "business-number"
            ]
        )
        .0,
        0
    );
    let mut server = serve(&dir);
    let url = server.1.clone();
    let (_, before) = {
        let o = client
            .get(format!("{url}/checkpoint"))
            .send()
            .expect("cp")
            .text()
            .expect("t");
        (0, o)
    };
    let size_before: u64 = before
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("size");
    let mut log = bizcred_core::webvh::verify_log(&a.log, None, now());
    let mut update_key = bizcred_core::keys::SecretKey::from_bytes(
        bizcred_core::keys::Algorithm::EdDSA,
        &a.next_update.to_bytes(),
    )
    .expect("k");
    let mut acknowledged = 0u64;
    let pid = server.0.id();
    // The kill lands under load, not at a guessed delay: once 50 appends are acknowledged, the
    // next one is already on its way (the loop sends without pause).
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = acked.clone();
    let killer = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen.load(std::sync::atomic::Ordering::SeqCst) < 50 {
            assert!(
                std::time::Instant::now() < deadline,
                "the load never reached 50 appends"
            );
            std::thread::yield_now();
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let mut ended_by_kill = false;
    for i in 0..10_000 {
        let next = bizcred_core::keys::SecretKey::generate(
            bizcred_core::keys::Algorithm::EdDSA,
            &mut rand_core::OsRng,
        );
        let mut p = serde_json::Map::new();
        p.insert(
            "updateKeys".into(),
            serde_json::json!([bizcred_core::did::multikey(
                &bizcred_core::keys::Signer::public_key(&update_key)
            )]),
        );
        p.insert(
            "nextKeyHashes".into(),
            serde_json::json!([bizcred_core::webvh::next_key_hash(
                &bizcred_core::keys::Signer::public_key(&next)
            )]),
        );
        let state = log.versions.last().expect("v").state.clone();
        let line = bizcred_core::webvh::update(&log, state, p, now() - 3000 + i, &update_key)
            .expect("update");
        match client
            .post(format!("{url}/dids/{}/log", a.did))
            .body(line.clone())
            .send()
        {
            Ok(r) if r.status().is_success() => {
                acknowledged += 1;
                acked.store(acknowledged, std::sync::atomic::Ordering::SeqCst);
                log = bizcred_core::webvh::verify_log(
                    &format!("{}{line}\n", log.text()),
                    None,
                    now(),
                );
                update_key = next;
            }
            Ok(r) => panic!("the registry refused an update under load: {}", r.status()),
            Err(_) => {
                ended_by_kill = true;
                break;
            }
        }
    }
    killer.join().expect("killer");
    let _ = server.0.wait();
    assert!(
        ended_by_kill,
        "the load ended before the kill: it did not land under load"
    );
    assert!(
        acknowledged >= 50,
        "only {acknowledged} appends before the kill"
    );
    // The store reopens, replays and verifies; every acknowledged entry is there.
    let (code, status) = run(&dir, &["status"]);
    assert_eq!(code, 0, "{status}");
    let size = status["size"].as_u64().expect("size");
    assert!(
        size >= size_before + acknowledged,
        "size {size} < {size_before} + {acknowledged}"
    );
    assert!(size <= size_before + acknowledged + 1);
}
