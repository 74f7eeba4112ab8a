//! Statuses followed between bundles: a real issuer bulk-issues public records, the repository
//! takes them in from its feed, the issuer suspends one and revokes another, and the repository
//! follows the issuer's signed event feed over HTTP: the statuses change at once, as of the
//! events' time, and the next page starts where it stopped; a feed whose pages the trust
//! bundle cannot vouch for (an issuer the registry does not know) changes nothing.

use std::sync::Arc;

use bizcred_core::trust::bundle::StatusListCopy;
use bizcred_issuer::issuer::StatusAction;
use bizcred_issuer::{Actor, Config, Issuer};
use bizcred_repository::trust::TrustConfig;
use bizcred_repository::Repository;
use bizcred_schemas::CredentialType;
use bizcred_test_support::InMemoryRegistry;
use serde_json::json;
use zeroize::Zeroizing;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn issuer(dir: &std::path::Path, host: &str) -> Arc<Issuer> {
    let cfg = Config::parse(&format!(
        "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"https://{host}\"\nlisten = \"127.0.0.1:9\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.bizcred.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.to_string_lossy(),
        "00".repeat(32)
    ))
    .expect("config");
    Arc::new(
        Issuer::create(cfg, Zeroizing::new("pw".into()), now() - 60, now)
            .expect("issuer")
            .0,
    )
}

fn line(corp: &str, name: &str) -> String {
    json!({
        "corporation_number": corp,
        "legal_name": name,
        "entity_type": "business_corporation",
        "corporate_status": "active",
        "incorporation_date": "2019-03-14",
        "registered_office_address": {"street_address": "1 rue Principale", "locality": "Hearst", "region": "ON", "postal_code": "P0L 1N0", "country": "CA"}
    })
    .to_string()
}

/// Serves the issuer's event feed on a loopback port; answers its URL.
async fn serve(issuer: Arc<Issuer>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, bizcred_issuer::events::routes(issuer)).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspensions_and_revocations_are_followed_from_the_signed_event_feed() {
    let dir = tempfile::tempdir().expect("dir");
    let obr = issuer(&dir.path().join("obr"), "obr.bizcred.test");
    let stranger = issuer(&dir.path().join("other"), "other.bizcred.test");
    let mut run = obr.bulk().expect("bulk");
    for (i, (corp, name)) in [
        ("1000001", "Boulangerie Éloïse Inc."),
        ("1000002", "Maple Leaf Plumbing Ltd."),
        ("1000003", "Les Entreprises Gagné Ltée"),
    ]
    .iter()
    .enumerate()
    {
        run.line(i as u64 + 1, &line(corp, name)).expect("line");
    }
    run.finish().expect("issued");

    // The registry knows the OBR, not the stranger.
    let t0 = now();
    let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t0 - 120, t0);
    reg.onboard_did(
        &obr.did,
        &obr.did_log().expect("log"),
        "Ontario Business Registry",
        "Registre des entreprises de l'Ontario",
        &[CredentialType::CertificateOfIncorporation],
        t0 - 30,
    );
    let lists = vec![StatusListCopy {
        uri: obr.status_uri(1),
        token: obr.status_list(1).expect("list"),
    }];
    let repo_dir = dir.path().join("repository");
    Repository::init(
        &repo_dir,
        TrustConfig {
            anchor: reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )
    .expect("init");
    std::fs::write(
        repo_dir.join("trust/bundles/000000.json"),
        reg.bundle(0, now(), lists),
    )
    .expect("bundle");
    let repo = Arc::new(Repository::open(&repo_dir, Arc::new(now)).expect("open"));
    let feed: Vec<String> = obr
        .store
        .public_feed(0, 10)
        .expect("feed")
        .into_iter()
        .map(|i| i.credential)
        .collect();
    assert_eq!(repo.intake(&feed).expect("intake").accepted, 3);
    repo.commit().expect("commit");

    let url = serve(obr.clone()).await;
    // The feed holds the three issuances: nothing to change yet, the cursor moves past them.
    assert_eq!(repo.follow_events(&url).await.expect("follow"), 0);
    let ids: Vec<String> = obr
        .store
        .public_records(&["1000001".into(), "1000002".into()])
        .expect("records")
        .into_values()
        .map(|r| r.credential_id)
        .collect();
    for (id, action) in ids
        .iter()
        .zip([StatusAction::Suspend, StatusAction::Revoke])
    {
        obr.set_status(&Actor::Automation, id, action, Some("registry order"))
            .expect("status");
    }
    assert_eq!(repo.follow_events(&url).await.expect("follow"), 2);
    let statuses: Vec<String> = ["1000001", "1000002", "1000003"]
        .iter()
        .map(|c| {
            let b = repo.business(c).expect("business");
            // The page verifies again now, against the bundle's older list: it says so, and the
            // stored status is the event's.
            repo.store
                .get(&b.credentials[0].id)
                .expect("read")
                .expect("held")
                .status
        })
        .collect();
    let mut want = vec!["valid".to_owned(); 3];
    for (id, s) in ids.iter().zip(["suspended", "revoked"]) {
        let corp = obr.store.credential(id).expect("record").application_id;
        let i = ["public:1000001", "public:1000002", "public:1000003"]
            .iter()
            .position(|c| *c == corp)
            .expect("one of them");
        want[i] = s.to_owned();
    }
    assert_eq!(statuses, want);
    // Nothing new: nothing changes, and a second look starts after the last event.
    assert_eq!(repo.follow_events(&url).await.expect("follow"), 0);

    // A feed signed by an issuer the trust bundle does not know: refused, nothing changes.
    let mut other = stranger.bulk().expect("bulk");
    other
        .line(1, &line("2000001", "Stranger Inc."))
        .expect("line");
    other.finish().expect("issued");
    let strange = serve(stranger.clone()).await;
    let e = repo.follow_events(&strange).await.expect_err("refused");
    assert_eq!(e.code(), bizcred_schemas::ReasonCode::IssuerUnknown, "{e}");
}

/// A pull never judges a credential against a trust bundle made before it was issued: it stops
/// before it (the cursor stays), says how many wait, and the pull after a newer bundle takes
/// them. (Otherwise an issuer onboarded, or a key rotated, after the bundle would see its
/// credentials refused and skipped for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_leaves_credentials_newer_than_the_bundle_for_the_next_one() {
    let dir = tempfile::tempdir().expect("dir");
    let obr = issuer(&dir.path().join("obr"), "obr.bizcred.test");
    let t0 = now();
    let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t0 - 300, t0 - 290);
    reg.onboard_did(
        &obr.did,
        &obr.did_log().expect("log"),
        "Ontario Business Registry",
        "Registre des entreprises de l'Ontario",
        &[CredentialType::CertificateOfIncorporation],
        t0 - 200,
    );
    let repo_dir = dir.path().join("repository");
    Repository::init(
        &repo_dir,
        TrustConfig {
            anchor: reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )
    .expect("init");
    // The bundle held was made before the credentials were issued.
    let bundle = repo_dir.join("trust/bundles/000000.json");
    std::fs::write(&bundle, reg.bundle(0, t0 - 100, Vec::new())).expect("bundle");
    let mut run = obr.bulk().expect("bulk");
    for (i, (corp, name)) in [
        ("1000001", "Boulangerie Éloïse Inc."),
        ("1000002", "Maple Leaf Plumbing Ltd."),
    ]
    .iter()
    .enumerate()
    {
        run.line(i as u64 + 1, &line(corp, name)).expect("line");
    }
    run.finish().expect("issued");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let feed = obr.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, bizcred_issuer::public::routes(feed)).await;
    });

    let repo = Arc::new(Repository::open(&repo_dir, Arc::new(now)).expect("open"));
    let r = repo.pull(&url).await.expect("pull");
    assert_eq!(
        (r.accepted, r.refused, r.waiting_for_bundle),
        (0, 0, 2),
        "{r:?}"
    );
    assert!(repo.business("1000001").is_err(), "nothing taken yet");
    drop(repo);

    // A bundle made after them: the next pull takes both.
    std::fs::write(&bundle, reg.bundle(0, now(), Vec::new())).expect("bundle");
    let repo = Arc::new(Repository::open(&repo_dir, Arc::new(now)).expect("open"));
    let r = repo.pull(&url).await.expect("pull");
    assert_eq!(
        (r.accepted, r.refused, r.waiting_for_bundle),
        (2, 0, 0),
        "{r:?}"
    );
    assert_eq!(
        repo.pull(&url).await.expect("pull").accepted,
        0,
        "the cursor moved past them"
    );
}
