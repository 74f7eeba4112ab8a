//! The portal started in-process as the demo starts it ([`bizcred_portal::start`]): a real
//! listener, `/healthz`, `/readyz` (ready once a trust bundle is held), `/metrics`, the pages,
//! and a clean stop.

use std::sync::Arc;

use bizcred_portal::{start, Portal, StartOptions};
use bizcred_repository::trust::TrustConfig;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{Agency, InMemoryRegistry};

/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800;

fn now() -> i64 {
    NOW
}

#[tokio::test]
async fn the_portal_runs_in_process_and_stops() {
    let t = NOW - 86_400;
    let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t, NOW);
    let obr = Agency::new("localhost%3A9", t);
    reg.onboard(
        &obr,
        "Ontario Business Registry",
        "Registre des entreprises de l'Ontario",
        &[CredentialType::CertificateOfIncorporation],
        t,
    );
    let dir = tempfile::tempdir().expect("dir");
    Portal::init(
        dir.path(),
        TrustConfig {
            anchor: reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )
    .expect("init");
    let again = Portal::init(
        dir.path(),
        TrustConfig {
            anchor: reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )
    .expect_err("initialized already");
    assert_eq!(again.code().as_str(), "ALREADY_INITIALIZED");

    // Before any bundle: serving, not ready (the registry is on no port).
    let running = start(
        StartOptions::new(dir.path(), "127.0.0.1:0".parse().expect("addr")),
        Arc::new(now),
    )
    .await
    .expect("started");
    let http = reqwest::Client::new();
    let status = |path: &str| {
        let url = format!("{}{path}", running.url);
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 503);
    let page = http
        .get(format!("{}/", running.url))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("has not been received from the trust registry"),
        "{page}"
    );
    running.stop().await.expect("stopped");

    // With the bundle held: ready, and the agencies are named.
    let bundle = reg.bundle(0, NOW - 3600, Vec::new());
    std::fs::write(dir.path().join("trust/bundles/000000.json"), bundle).expect("bundle");
    let running = start(
        StartOptions::new(dir.path(), "127.0.0.1:0".parse().expect("addr")),
        Arc::new(now),
    )
    .await
    .expect("started");
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/readyz", running.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(ready.status().as_u16(), 200);
    let page = http
        .get(format!("{}/", running.url))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(page.contains("Ontario Business Registry"), "{page}");
    let metrics = http
        .get(format!("{}/metrics", running.url))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("portal_sessions"), "{metrics}");
    running.stop().await.expect("stopped");
}
