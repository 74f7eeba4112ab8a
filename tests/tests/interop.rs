//! Interoperability with an independent OpenID4VCI wallet (`tests/interop/oid4vci_wallet.py`,
//! Python, written from the specifications with no bizcred code): given only the offer URI and
//! the transaction code, it receives a credential of each of the four types from bizcred
//! issuers and verifies it with the key it resolves from the issuer's did:webvh DID; with
//! `--dpop` it also binds its access tokens to a key of its own with DPoP (RFC 9449), is refused
//! when it presents a bound token as a bearer token or replays a proof, and notifies each issuer
//! once it verified the credential. Its OpenID4VP half (`tests/interop/oid4vp_wallet.py`) then
//! answers the bank's loan-application request with presentations it builds itself, and the
//! bank decides on them offline. Finally an independent SD-JWT issuer and holder
//! (`tests/interop/sd_jwt_issue_present.py`) signs the four credentials with registered issuer
//! keys and presents them: the verifier library decides on them as on its own (same verdicts,
//! same disclosed claims, same reason codes). And the other way round: the bizcred wallet
//! receives from an independent OpenID4VCI issuer and presents to an independent OpenID4VP
//! verifier (`tests/interop/oid4_services.py`).

use std::path::Path;
use std::process::Command;

use bizcred_core::trust::bundle;
use bizcred_examples::fixture::Fixture;
use bizcred_examples::{date, example_claims, free_port, Bank, Bins, Wallet, World};
use bizcred_schemas::CredentialType;
use bizcred_verifier::{Context, Presentation, Verdict};
use serde_json::{json, Value};

const FOUR: [(&str, CredentialType); 4] = [
    ("obr", CredentialType::CertificateOfIncorporation),
    ("cra", CredentialType::BusinessNumber),
    ("city", CredentialType::MunicipalBusinessLicence),
    ("agco", CredentialType::LiquorSalesLicence),
];

fn script(name: &str) -> String {
    format!("{}/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Has `agency` approve `claims` and the independent wallet receive them; returns its output.
fn independent_receive(
    world: &World,
    agency: &str,
    ty: CredentialType,
    claims: &Value,
    store: Option<&Path>,
) -> Value {
    independent_receive_with(world, agency, ty, claims, store, &[])
}

/// As [`independent_receive`], with the wallet's `flags` (`--dpop`).
fn independent_receive_with(
    world: &World,
    agency: &str,
    ty: CredentialType,
    claims: &Value,
    store: Option<&Path>,
    flags: &[&str],
) -> Value {
    let offer = world.offer(agency, ty, agency, claims).expect("offer");
    let mut cmd = Command::new("python3");
    cmd.arg(script("oid4vci_wallet.py"))
        .arg(offer["credential_offer_uri"].as_str().expect("uri"))
        .arg(offer["tx_code"].as_str().expect("tx"));
    if let Some(s) = store {
        cmd.arg("--store").arg(s);
    }
    cmd.args(flags);
    let out = cmd.output().expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{agency}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("json")
}

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
    for (agency, ty) in FOUR {
        let got = independent_receive(&world, agency, ty, &example_claims(ty), None);
        assert_eq!(got["vct"], ty.vct());
        assert_eq!(got["iss"], world.agency(agency).did);
        let expected = example_claims(ty);
        for (k, v) in expected.as_object().expect("object") {
            assert_eq!(&got["claims"][k], v, "{agency}: claim {k}");
        }
    }
}

/// The same independent wallet with DPoP (RFC 9449), written from the RFC: it binds its
/// access token to a P-256 key of its own at every agency, is refused when it presents the
/// bound token as a bearer token or replays a proof (each with a `WWW-Authenticate: DPoP`
/// challenge and its reason code), receives all four types, and notifies each issuer.
#[test]
fn an_independent_dpop_wallet_receives_all_four_types() {
    if !python_ready() {
        return;
    }
    let world = World::start_with(&[], false).expect("world");
    for (agency, ty) in FOUR {
        let claims = example_claims(ty);
        let got = independent_receive_with(&world, agency, ty, &claims, None, &["--dpop"]);
        assert_eq!(got["vct"], ty.vct());
        assert_eq!(got["iss"], world.agency(agency).did);
        for (k, v) in claims.as_object().expect("object") {
            assert_eq!(&got["claims"][k], v, "{agency}: claim {k}");
        }
        assert_eq!(
            got["dpop"],
            json!({
                "nonce_required": true,
                "token_type": "DPoP",
                "bearer_refused": {"status": 401, "error": "invalid_token", "code": "DPOP_TOKEN_AS_BEARER"},
                "replay_refused": {"status": 401, "error": "invalid_dpop_proof", "code": "DPOP_PROOF_REPLAYED"},
                "notification": 204,
            }),
            "{agency}"
        );
    }
}

#[test]
fn the_bank_accepts_presentations_from_an_independent_wallet() {
    if !python_ready() {
        return;
    }
    let world = World::start_with(&[], false).expect("world");
    let store = world.root.path().join("independent-wallet.json");
    for (agency, ty) in FOUR {
        let mut claims = example_claims(ty);
        if ty.slug().contains("licence") {
            claims["issue_date"] = json!(date(-30));
            claims["expiry_date"] = json!(date(300));
        }
        independent_receive(&world, agency, ty, &claims, Some(&store));
    }
    let bank = Bank::start(
        &world,
        include_str!("../../examples/config/policies/loan-application.toml"),
    )
    .expect("bank");
    bank.sync(&world).expect("sync");
    let req: Value = bank.new_request().expect("request");
    let uri = req["request_uri"].as_str().expect("request_uri");
    let present = || {
        let out = Command::new("python3")
            .arg(script("oid4vp_wallet.py"))
            .arg(uri)
            .arg(&store)
            .output()
            .expect("python");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|_| panic!("{stdout} {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), v)
    };
    let (ok, got) = present();
    assert!(ok, "{got}");
    // OpenID4VP 1.0 §8.2: an accepted response is answered 200 with a JSON object; the verdict
    // itself goes to the relying party only.
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["answer"], json!({}), "{got}");
    // Only what was asked is disclosed: the business-number query names three claims.
    assert_eq!(got["disclosed"]["business_number"], 3, "{got}");
    let tx = req["transaction_id"].as_str().expect("tx");
    let (_, result) = bank.transaction(tx).expect("result");
    assert_eq!(result["report"]["verdict"], "ACCEPT", "{result}");
    assert!(!result["receipt"].is_null(), "{result}");

    // A request is answered once: afterwards the verifier no longer serves it.
    let (ok, again) = present();
    assert!(!ok, "{again}");
    let msg = again["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("404") && msg.contains("invalid_request_uri"),
        "{again}"
    );
}

/// The `vp_token` the independent SD-JWT implementation (`tests/interop/sd_jwt_issue_present.py`)
/// issues with the fixture agencies' registered keys and presents with the fixture holder's key.
fn independent_vp_token(f: &Fixture, aud: &str, nonce: &str, tamper: bool) -> Value {
    let credentials: Vec<Value> = f
        .policy
        .credentials
        .iter()
        .zip(&f.agencies)
        .enumerate()
        .map(|(i, (q, a))| {
            assert_eq!(q.credential_type, a.ty);
            json!({
                "id": q.id,
                "issuer": a.agency.did,
                "kid": a.agency.kid(),
                "key": hex(&a.agency.assertion.to_bytes()),
                "vct": a.ty.vct(),
                "claims": example_claims(a.ty),
                "status": {"idx": 2000 + i, "uri": f.status_lists()[i].uri},
                "iat": f.now - 3600,
                "exp": f.now + 365 * 86_400,
                "disclose": q.claims.iter().map(|p| p[0].clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let input = json!({
        "aud": aud,
        "nonce": nonce,
        "iat": f.now - 5,
        "holder_key": hex(&f.holder.to_bytes()),
        "credentials": credentials,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("input.json");
    std::fs::write(&file, input.to_string()).expect("write");
    let mut cmd = Command::new("python3");
    cmd.arg(script("sd_jwt_issue_present.py")).arg(&file);
    if tamper {
        cmd.arg("--tamper");
    }
    let out = cmd.output().expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("vp_token")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sd_jwts_from_an_independent_implementation_verify_the_same_way() {
    if !python_ready() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock");
    let f = Fixture::new(now);
    let trust = bundle::import(None, &f.anchor(), &f.bundle(0), f.now)
        .expect("import")
        .state;
    let ctx = Context {
        trust: Some(&trust),
        stapled_status_lists: &[],
        now: f.now,
    };
    let aud = "decentralized_identifier:did:jwk:interop";
    let check = |vp: &Value| {
        bizcred_verifier::verify(
            &Presentation {
                vp_token: vp,
                nonce: "interop-nonce",
                audience: aud,
            },
            &f.policy,
            &ctx,
        )
    };
    let codes = |r: &bizcred_verifier::Report| -> Vec<String> {
        r.failures
            .iter()
            .map(|x| x.code.as_str().to_owned())
            .collect()
    };

    // bizcred's own presentation and the independent one get the same verdict and disclose
    // the same claims.
    let ours = check(&f.presentation(aud, "interop-nonce"));
    let theirs = check(&independent_vp_token(&f, aud, "interop-nonce", false));
    assert_eq!(ours.verdict, Verdict::Accept, "{:?}", codes(&ours));
    assert_eq!(theirs.verdict, Verdict::Accept, "{:?}", codes(&theirs));
    for (a, b) in ours.credentials.iter().zip(&theirs.credentials) {
        assert_eq!(a.disclosed, b.disclosed);
    }

    // A changed disclosure from the independent implementation: the same reason as for ours.
    let tampered = check(&independent_vp_token(&f, aud, "interop-nonce", true));
    assert_eq!(tampered.verdict, Verdict::Reject);
    assert!(
        codes(&tampered).contains(&"DISCLOSURE_NOT_REFERENCED".to_owned()),
        "{:?}",
        codes(&tampered)
    );

    // Bound to another verifier's nonce: refused on key binding.
    let replayed = check(&independent_vp_token(&f, aud, "another-nonce", false));
    assert_eq!(replayed.verdict, Verdict::Reject);
    assert!(
        codes(&replayed).iter().any(|c| c.contains("NONCE")),
        "{:?}",
        codes(&replayed)
    );
}

/// Kills the independent services when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_wallet_receives_from_and_presents_to_independent_services() {
    use std::io::BufRead;
    if !python_ready() {
        return;
    }
    let bins = Bins::locate().expect("binaries");
    let root = tempfile::tempdir().expect("tempdir");
    let wallet = Wallet::create(&bins, root.path(), "wallet").expect("wallet");
    let ty = CredentialType::BusinessNumber;
    let cred = root.path().join("credential.json");
    std::fs::write(
        &cred,
        json!({"vct": ty.vct(), "claims": example_claims(ty)}).to_string(),
    )
    .expect("write");
    let port = free_port().expect("port");
    let mut child = Child(
        Command::new("python3")
            .arg(script("oid4_services.py"))
            .arg(port.to_string())
            .arg(&cred)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python"),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let svc: Value = serde_json::from_str(&line).expect("json");
    let s = |k: &str| svc[k].as_str().expect(k).to_owned();

    // A wrong transaction code is refused by the independent issuer; nothing is stored.
    let (code, _, _) = wallet
        .run(&bins, &["receive", &s("offer_uri"), "--tx-code", "000000x"])
        .expect("run");
    assert_eq!(code, 1);
    let received = wallet
        .ok(
            &bins,
            &["receive", &s("offer_uri"), "--tx-code", &s("tx_code")],
        )
        .expect("receive from the independent issuer");
    assert_eq!(received["vct"], ty.vct());
    assert!(received["issuer"]
        .as_str()
        .is_some_and(|i| i.starts_with("did:jwk:")));
    let listed = wallet.ok(&bins, &["list"]).expect("list");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let presented = wallet
        .ok(&bins, &["present", &s("request_uri"), "--yes"])
        .expect("present to the independent verifier");
    assert_eq!(presented["result"], "sent", "{presented}");
    let result: Value = reqwest::blocking::get(format!("http://localhost:{port}/result"))
        .and_then(|r| r.json())
        .expect("result");
    assert_eq!(result["verdict"], "valid", "{result}");
    // Exactly the two claims asked for, nothing else.
    assert_eq!(
        result["disclosed"],
        json!({"business_number": "812345676", "legal_name": "Jennifer Ventures Inc."}),
        "{result}"
    );
    // Answered once: the verifier no longer serves the request, and the wallet says so.
    let (code, _, _) = wallet
        .run(&bins, &["present", &s("request_uri"), "--yes"])
        .expect("run");
    assert_ne!(code, 0);
}
