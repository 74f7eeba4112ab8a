//! The real `bizcred-wallet` binary against real services on loopback: receive, list, show in
//! French, present over OpenID4VP and as a file, status, history, backups; and every bad input
//! the wallet promises to handle without storing anything half-way.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bizcred_examples::{obtain, Bank, Bins, Business, Wallet, World};
use bizcred_schemas::CredentialType;
use serde_json::{json, Value};

/// Runs the wallet with `args` until it stops at the fail point `point` (a debug-build hook
/// where a write is applied but not yet flushed; the wallet announces it by writing `marker`),
/// then kills it there with SIGKILL. Fails if the wallet ends without reaching the point.
fn kill_9_at(bins: &Bins, args: &[&str], point: &str, marker: &Path) {
    let _ = std::fs::remove_file(marker);
    let mut child = bins
        .cmd("bizcred-wallet")
        .args(args)
        .env("BIZCRED_WALLET_FAIL_POINT", point)
        .env("BIZCRED_WALLET_FAIL_POINT_FILE", marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!("the wallet ended ({st}) before it reached {point}");
        }
        assert!(
            Instant::now() < deadline,
            "the wallet never reached {point}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL on Unix, while the wallet waits at the point.
    child.kill().expect("SIGKILL");
    let st = child.wait().expect("wait");
    assert!(!st.success(), "killed at {point}, yet it exited {st}");
}

fn list(world: &World, w: &Wallet) -> Vec<Value> {
    w.ok(&world.bins, &["list"])
        .expect("list")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn receive_present_status_history_backup() {
    let world = World::start(&[]).expect("world");
    let bins = &world.bins;
    let root = world.root.path().to_path_buf();
    let w = Wallet::create(bins, &root, "w").expect("wallet");
    // A second init refuses to overwrite the wallet.
    assert_eq!(w.run(bins, &["init"]).expect("run").0, 1);
    let biz = Business::jennifer();
    let r = obtain(
        &world,
        &w,
        "obr",
        CredentialType::CertificateOfIncorporation,
        Some(&biz.incorporation()),
        &json!({}),
    )
    .expect("incorporation");
    let id = r["received"]["id"].as_str().expect("id").to_owned();
    assert_eq!(r["received"]["issuer_name"], "Ontario Business Registry");
    let l = list(&world, &w);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["type"], "Certificate of incorporation");
    // French labels and names.
    let out = bins
        .cmd("bizcred-wallet")
        .args([
            "--wallet-dir",
            &w.dir.to_string_lossy(),
            "--lang",
            "fr",
            "show",
            &id,
        ])
        .output()
        .expect("show");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Certificat de constitution")
            && text.contains("Dénomination sociale")
            && text.contains("Jennifer Ventures Inc."),
        "{text}"
    );
    // Status from the issuer's list.
    let st = w.ok(bins, &["status"]).expect("status");
    assert_eq!(st[0]["status"], "valid");
    // Present to the CRA (our OpenID4VP verifier inside the issuer): accepted; history records it.
    obtain(
        &world,
        &w,
        "cra",
        CredentialType::BusinessNumber,
        None,
        &biz.business_number_claims(),
    )
    .expect("bn");
    let h = w.ok(bins, &["history"]).expect("history");
    let entry = &h.as_array().expect("a")[0];
    assert_eq!(entry["outcome"], "ACCEPT");
    assert!(entry["verifier"]
        .as_str()
        .expect("v")
        .starts_with("decentralized_identifier:did:webvh:"));
    let claims: Vec<String> = entry["credentials"][0]["claims"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c[0].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        claims.contains(&"legal_name".to_owned()) && !claims.contains(&"directors".to_owned()),
        "only what was asked: {claims:?}"
    );
    // Backup and restore into a fresh wallet.
    let backup = root.join("backup.bin");
    w.ok(bins, &["export", "--out", &backup.to_string_lossy()])
        .expect("export");
    let w2 = Wallet::create(bins, &root, "w2").expect("wallet 2");
    let imported = w2
        .ok(bins, &["import", "--in", &backup.to_string_lossy()])
        .expect("import");
    assert_eq!(imported["imported"], 2);
    assert_eq!(list(&world, &w2).len(), 2);
    // A backup opened with another passphrase is refused and imports nothing.
    let w3 = Wallet::create(bins, &root, "w3").expect("wallet 3");
    let pass = root.join("other-pass");
    std::fs::write(&pass, "another passphrase").expect("w");
    let out = bins
        .cmd("bizcred-wallet")
        .args([
            "--json",
            "--wallet-dir",
            &w3.dir.to_string_lossy(),
            "--passphrase-file",
            &pass.to_string_lossy(),
            "import",
            "--in",
            &backup.to_string_lossy(),
        ])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "wrong passphrase for the wallet itself"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    assert!(list(&world, &w3).is_empty());
    // Delete.
    w2.ok(bins, &["delete", &id]).expect("delete");
    assert_eq!(list(&world, &w2).len(), 1);
    assert_eq!(w2.run(bins, &["delete", &id]).expect("run").0, 1);
    // Offline: a request file in, a presentation file out, verified by the bank's CLI.
    let bank = Bank::start(&world, "name = \"kyc\"\n[[credential]]\nid = \"bn\"\ntype = \"business-number\"\nclaims = [\"business_number\", \"legal_name\"]\n").expect("bank");
    bank.sync(&world).expect("sync");
    let req = root.join("req.jwt");
    bank.request_file(bins, &req).expect("request");
    let pres = root.join("pres.json");
    w.present_file(bins, &req, &pres).expect("present file");
    let (code, report) = bank.verify_file(bins, &pres).expect("verify");
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["credentials"][0]["disclosed"],
        json!({"business_number": "812345676", "legal_name": "Jennifer Ventures Inc."})
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_stored() {
    let world = World::start(&[]).expect("world");
    let bins = &world.bins;
    let root = world.root.path().to_path_buf();
    let w = Wallet::create(bins, &root, "w").expect("wallet");
    // No wallet: a hint to init (the command, for this wallet directory).
    let nowallet = Wallet {
        dir: root.join("missing"),
    };
    let (code, v, err) = nowallet.run(bins, &["list"]).expect("run");
    assert_eq!(code, 1, "{v}");
    assert!(
        err.contains(&format!(
            "hint: {}",
            bizcred_cli::command_line(&[
                "bizcred-wallet",
                "--wallet-dir",
                &root.join("missing").to_string_lossy(),
                "init"
            ])
        )),
        "{err}"
    );
    // Wrong passphrase: refused, store intact.
    let pass = root.join("wrong");
    std::fs::write(&pass, "not the passphrase").expect("w");
    let out = bins
        .cmd("bizcred-wallet")
        .args([
            "--wallet-dir",
            &w.dir.to_string_lossy(),
            "--passphrase-file",
            &pass.to_string_lossy(),
            "list",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("wrong passphrase; the wallet was not changed"));
    // Malformed offer URIs.
    for bad in [
        "not-a-uri",
        "openid-credential-offer://?credential_offer=%7B%7D",
        "openid-credential-offer://?credential_offer_uri=http%3A%2F%2Fevil.example%2Fo",
    ] {
        let (code, _, err) = w
            .run(bins, &["receive", bad, "--tx-code", "123456"])
            .expect("run");
        assert_eq!(code, 1, "{bad}: {err}");
        assert!(err.contains("not a credential offer"), "{err}");
    }
    // An unreachable issuer.
    let dead = format!(
        "openid-credential-offer://?credential_offer_uri={}",
        "http%3A%2F%2Flocalhost%3A9%2Foffer%2F1"
    );
    let (code, _, err) = w.run(bins, &["receive", &dead]).expect("run");
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach"), "{err}");
    // A wrong transaction code: refused, with what to check; nothing stored.
    let offer = world
        .offer(
            "obr",
            CredentialType::CertificateOfIncorporation,
            "inc",
            &Business::jennifer().incorporation(),
        )
        .expect("offer");
    let uri = offer["credential_offer_uri"].as_str().expect("uri");
    let (code, _, err) = w
        .run(bins, &["receive", uri, "--tx-code", "000000"])
        .expect("run");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("wrong transaction code") && err.contains("check the transaction code"),
        "{err}"
    );
    assert!(list(&world, &w).is_empty());
    // Without --tx-code and without a terminal: a clear refusal.
    let (code, _, err) = w.run(bins, &["receive", uri]).expect("run");
    assert_eq!(code, 1);
    assert!(err.contains("--tx-code"), "{err}");
    // A request for a credential the wallet does not hold: nothing is sent.
    let bank = Bank::start(
        &world,
        include_str!("../../examples/config/policies/loan-application.toml"),
    )
    .expect("bank");
    let req: Value = bank.new_request().expect("req");
    let (code, _, err) = w
        .run(
            bins,
            &[
                "present",
                req["request_uri"].as_str().expect("uri"),
                "--yes",
            ],
        )
        .expect("run");
    assert_eq!(code, 1);
    assert!(
        err.contains("you hold no") && err.contains("nothing was sent"),
        "{err}"
    );
    let tx = req["transaction_id"].as_str().expect("tx");
    let (got, _) = bank.transaction(tx).expect("get");
    assert_eq!(got, 404, "the bank received nothing");
    // Declining: the wallet holds the credential, but consent is not given (no --yes, no
    // terminal to ask on): nothing is sent.
    let offer = world
        .offer(
            "obr",
            CredentialType::CertificateOfIncorporation,
            "inc2",
            &Business::jennifer().incorporation(),
        )
        .expect("offer");
    w.receive(bins, &offer).expect("receive");
    let kyc = Bank::start_named(&world, "kyc", "name = \"kyc\"\n[[credential]]\nid = \"inc\"\ntype = \"certificate-of-incorporation\"\nclaims = [\"legal_name\"]\n").expect("kyc");
    let req: Value = kyc.new_request().expect("req");
    let out = bins
        .cmd("bizcred-wallet")
        .args([
            "--wallet-dir",
            &w.dir.to_string_lossy(),
            "present",
            req["request_uri"].as_str().expect("uri"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("consent is needed; nothing was sent") && err.contains("--yes"),
        "{err}"
    );
    let tx = req["transaction_id"].as_str().expect("tx");
    assert_eq!(kyc.transaction(tx).expect("get").0, 404);
    // A malformed request URI.
    let (code, _, err) = w
        .run(bins, &["present", "openid4vp://?nothing=here", "--yes"])
        .expect("run");
    assert_eq!(code, 1, "{err}");
}

#[test]
fn kill_9_during_receive_leaves_the_store_readable() {
    let world = World::start(&[]).expect("world");
    let bins = &world.bins;
    let root = world.root.path().to_path_buf();
    let w = Wallet::create(bins, &root, "w").expect("wallet");
    let marker = root.join("fail-point");
    let offer = world
        .offer(
            "obr",
            CredentialType::CertificateOfIncorporation,
            "k",
            &Business::jennifer().incorporation(),
        )
        .expect("offer");
    // Killed after the verified credential is written and before it is flushed.
    kill_9_at(
        bins,
        &[
            "--wallet-dir",
            &w.dir.to_string_lossy(),
            "receive",
            offer["credential_offer_uri"].as_str().expect("uri"),
            "--tx-code",
            offer["tx_code"].as_str().expect("tx"),
        ],
        "credentials:written",
        &marker,
    );
    // Readable, and a credential that survived is whole (it parses and shows).
    let l = list(&world, &w);
    assert!(l.len() <= 1, "{l:?}");
    for c in &l {
        w.ok(bins, &["show", c["id"].as_str().expect("id")])
            .expect("a stored credential is whole");
    }
    // The store still takes new credentials.
    let offer = world
        .offer(
            "obr",
            CredentialType::CertificateOfIncorporation,
            "k2",
            &Business::jennifer().incorporation(),
        )
        .expect("offer");
    w.receive(bins, &offer).expect("receive after the crash");
    assert_eq!(list(&world, &w).len(), l.len() + 1);
}

/// What the minimal issuer hands out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rogue {
    /// A credential signed by a key that is not the issuer's.
    BadSignature,
    /// A credential whose business number breaks the schema.
    BadSchema,
    /// A credential that checks.
    Good,
}

/// A minimal issuer that follows the protocol and hands out the credential `mode` says.
fn rogue_issuer(mode: Rogue) -> (String, std::thread::JoinHandle<()>) {
    use axum::routing::{get, post};
    use bizcred_core::keys::{Algorithm, SecretKey, Signer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("http://localhost:{port}");
    let update = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let key = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let doc = json!({"@context": ["https://www.w3.org/ns/did/v1"], "id": "{DID}",
        "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": bizcred_core::did::multikey(&key.public_key())}],
        "assertionMethod": ["{DID}#key-1"]});
    let mut p = serde_json::Map::new();
    p.insert(
        "updateKeys".into(),
        json!([bizcred_core::did::multikey(&update.public_key())]),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_secs() as i64;
    let (did, line) =
        bizcred_core::webvh::create(&format!("localhost%3A{port}"), doc, p, now - 60, &update)
            .expect("did");
    let mut claims: serde_json::Map<String, Value> = serde_json::from_str(include_str!(
        "../../schemas/examples/valid/business-number.json"
    ))
    .expect("c");
    if mode == Rogue::BadSchema {
        claims.insert("business_number".into(), "812345670".into()); // breaks the Luhn check
    }
    let signer = if mode == Rogue::BadSignature {
        SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng)
    } else {
        key
    };
    let b = base.clone();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let meta = json!({"credential_issuer": b, "credential_endpoint": format!("{b}/credential"), "nonce_endpoint": format!("{b}/nonce"),
                "credential_configurations_supported": {"business-number": {"format": "dc+sd-jwt", "vct": CredentialType::BusinessNumber.vct()}}});
            let asm = json!({"issuer": b, "token_endpoint": format!("{b}/token")});
            let claims = std::sync::Arc::new(claims.clone());
            let signer = std::sync::Arc::new(signer);
            let did2 = did.clone();
            let app = axum::Router::new()
                .route("/.well-known/openid-credential-issuer", get(move || async move { axum::Json(meta) }))
                .route("/.well-known/oauth-authorization-server", get(move || async move { axum::Json(asm) }))
                .route("/.well-known/did.jsonl", get(move || async move { format!("{line}\n") }))
                .route("/token", post(|| async { axum::Json(json!({"access_token": "t", "token_type": "Bearer"})) }))
                .route("/nonce", post(|| async { axum::Json(json!({"c_nonce": "n"})) }))
                .route("/credential", post(move |body: axum::Json<Value>| {
                    let (claims, signer, did2) = (claims.clone(), signer.clone(), did2.clone());
                    async move {
                    let proof = body.0["proofs"]["jwt"][0].as_str().unwrap_or("").to_owned();
                    let jws = bizcred_core::jws::Jws::decode(&proof).expect("proof");
                    let jwk: bizcred_core::jwk::Jwk = serde_json::from_value(jws.header["jwk"].clone()).expect("jwk");
                    let holder = bizcred_core::keys::PublicKey::from_jwk(&jwk).expect("key");
                    let kid = format!("{did2}#key-1");
                    let req = bizcred_core::sd_jwt_vc::Issuance { vct: CredentialType::BusinessNumber.vct(), issuer: &did2, kid: Some(&kid), iat: now, nbf: None, exp: None,
                        holder_key: Some(&holder), status: None, disclosable: bizcred_core::sd_jwt_vc::default_disclosable(CredentialType::BusinessNumber, claims.as_ref()), claims: claims.as_ref().clone(), decoys: 0 };
                    let sd = bizcred_core::sd_jwt_vc::issue(req, signer.as_ref(), &mut rand_core::OsRng).expect("issue");
                    axum::Json(json!({"credentials": [{"credential": sd.serialize()}]}))
                }}));
            listener.set_nonblocking(true).expect("nb");
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = tokio::time::timeout(Duration::from_secs(60), axum::serve(l, app)).await;
        });
    });
    (base, handle)
}

#[test]
fn credentials_that_do_not_check_are_not_stored() {
    let bins = bizcred_examples::Bins::locate().expect("bins");
    let root = tempfile::tempdir().expect("tmp");
    let w = Wallet::create(&bins, root.path(), "w").expect("wallet");
    for (mode, want) in [
        (Rogue::BadSignature, "does not verify"),
        (Rogue::BadSchema, "breaks the business-number schema"),
    ] {
        let (base, _h) = rogue_issuer(mode);
        let offer = json!({"credential_issuer": base, "credential_configuration_ids": ["business-number"], "grants": {bizcred_core::oid4vci::PRE_AUTHORIZED_GRANT: {"pre-authorized_code": "c"}}});
        let uri = bizcred_core::oid4vci::offer_uri_by_value(&offer);
        let (code, _, err) = w.run(&bins, &["receive", &uri]).expect("run");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(want), "{want}: {err}");
        let l = w.ok(&bins, &["list"]).expect("list");
        assert_eq!(l, json!([]), "nothing stored");
    }
}

/// A verifier (a did:key client) whose response endpoint refuses every presentation with an
/// OAuth error; the request URI to give the wallet.
fn refusing_verifier() -> (String, std::thread::JoinHandle<()>) {
    use axum::routing::{get, post};
    use bizcred_core::keys::{Algorithm, SecretKey, Signer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!(
        "http://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let key = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let did = bizcred_core::did::did_key(&key.public_key());
    let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
    let client_id = format!("{}{did}", bizcred_core::oid4vp::DID_PREFIX);
    let claims = json!({"client_id": client_id, "response_type": "vp_token", "response_mode": "direct_post",
        "response_uri": format!("{base}/response"), "nonce": "n0nce", "state": "s1",
        "dcql_query": {"credentials": [{"id": "bn", "format": "dc+sd-jwt",
            "meta": {"vct_values": [CredentialType::BusinessNumber.vct()]},
            "claims": [{"path": ["business_number"]}]}]}});
    let jwt =
        bizcred_core::oid4vp::sign_request_object(claims.as_object().expect("object"), &kid, &key)
            .expect("sign");
    let uri = bizcred_core::oid4vp::request_uri(&client_id, &format!("{base}/request"));
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let app = axum::Router::new()
                .route("/request", get(move || async move { jwt }))
                .route(
                    "/response",
                    post(|| async {
                        (
                            axum::http::StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_request", "error_description": "the presentation was not accepted"})),
                        )
                    }),
                );
            listener.set_nonblocking(true).expect("nb");
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = tokio::time::timeout(Duration::from_secs(60), axum::serve(l, app)).await;
        });
    });
    (uri, handle)
}

#[test]
fn a_verifier_error_is_printed_and_exits_1() {
    let bins = bizcred_examples::Bins::locate().expect("bins");
    let root = tempfile::tempdir().expect("tmp");
    let w = Wallet::create(&bins, root.path(), "w").expect("wallet");
    let (base, _h) = rogue_issuer(Rogue::Good);
    let offer = json!({"credential_issuer": base, "credential_configuration_ids": ["business-number"], "grants": {bizcred_core::oid4vci::PRE_AUTHORIZED_GRANT: {"pre-authorized_code": "c"}}});
    w.ok(
        &bins,
        &[
            "receive",
            &bizcred_core::oid4vci::offer_uri_by_value(&offer),
        ],
    )
    .expect("receive");
    let (uri, _v) = refusing_verifier();
    let (code, v, err) = w.run(&bins, &["present", &uri, "--yes"]).expect("run");
    assert_eq!(code, 1, "{v} {err}");
    assert!(
        err.contains("invalid_request") && err.contains("the presentation was not accepted"),
        "the verifier's error and description: {err}"
    );
    assert_eq!(v["error"], "invalid_request", "{v}");
    assert_eq!(v["error_description"], "the presentation was not accepted");
    let h = w.ok(&bins, &["history"]).expect("history");
    assert_eq!(h[0]["outcome"], "refused (400)");
}

#[test]
fn choice_options_are_clap_errors_not_defaults() {
    for args in [
        &["--lang", "de", "list"][..],
        &["init", "--alg", "RS256"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bizcred-wallet"))
            .args(args)
            .env("BIZCRED_WALLET_DIR", "/nonexistent/bizcred-wallet-test")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("invalid value"), "{args:?}: {err}");
    }
}

#[test]
fn the_shared_clock_and_passphrase_sources_refuse_bad_settings() {
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("w");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bizcred-wallet"));
        cmd.arg("--wallet-dir").arg(&dir).args(args);
        cmd.env_remove("BIZCRED_WALLET_PASSPHRASE")
            .env_remove("BIZCRED_CLOCK_OFFSET_SECONDS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A clock offset that is not a number is an error, never silently zero.
    let (code, err) = run(
        &[
            ("BIZCRED_CLOCK_OFFSET_SECONDS", "soon"),
            ("BIZCRED_WALLET_PASSPHRASE", "p"),
        ],
        &["init"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("BIZCRED_CLOCK_OFFSET_SECONDS"), "{err}");
    // An empty passphrase is refused and no wallet is created.
    let (code, err) = run(&[("BIZCRED_WALLET_PASSPHRASE", "")], &["init"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the passphrase is empty"), "{err}");
    assert!(!dir.join("db").exists());
}

#[test]
fn kill_9_during_import_imports_all_or_nothing() {
    let world = World::start(&[]).expect("world");
    let bins = &world.bins;
    let root = world.root.path().to_path_buf();
    let w = Wallet::create(bins, &root, "source").expect("wallet");
    for i in 0..4 {
        let offer = world
            .offer(
                "obr",
                CredentialType::CertificateOfIncorporation,
                &format!("i{i}"),
                &Business::jennifer().incorporation(),
            )
            .expect("offer");
        w.receive(bins, &offer).expect("receive");
    }
    let backup = root.join("backup.bin");
    w.ok(bins, &["export", "--out", &backup.to_string_lossy()])
        .expect("export");
    let marker = root.join("fail-point");
    // Killed after the batch of four is applied and before it is flushed.
    for n in 0..2 {
        let target = Wallet::create(bins, &root, &format!("t{n}")).expect("wallet");
        kill_9_at(
            bins,
            &[
                "--wallet-dir",
                &target.dir.to_string_lossy(),
                "import",
                "--in",
                &backup.to_string_lossy(),
            ],
            "credentials:batch-written",
            &marker,
        );
        let got = list(&world, &target).len();
        assert!(
            got == 0 || got == 4,
            "a killed import left {got} of 4 credentials"
        );
    }
}
