//! The issuer's event feed end to end, without a socket: public credentials issued in bulk, one
//! replaced (its predecessor revoked), one suspended and reinstated by staff; `GET /events`
//! answers signed pages that a subscriber with the registry's trust state verifies offline,
//! page by page from its cursor, refusing a replayed page; events carry the business's
//! identifiers and no name or address.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bizcred_issuer::issuer::subscribe::{PublishedEvent, Subscription, EVENTS_TYP};
use bizcred_issuer::issuer::StatusAction;
use bizcred_issuer::store::EventKind;
use bizcred_issuer::{Actor, Config, Issuer};
use bizcred_schemas::{CredentialType, ReasonCode};
use bizcred_test_support::InMemoryRegistry;
use tower::ServiceExt;
use zeroize::Zeroizing;

const URL: &str = "http://localhost:18087";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn issuer(dir: &tempfile::TempDir) -> Arc<Issuer> {
    let cfg = format!(
        "[agency]\nname_en = \"Ontario Business Registry\"\nname_fr = \"Registre des entreprises de l'Ontario\"\n[server]\npublic_url = \"{URL}\"\nlisten = \"127.0.0.1:18087\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.path().join("data").to_string_lossy(),
        "00".repeat(32)
    );
    let config = Config::parse(&cfg).expect("config");
    let (issuer, _) =
        Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    Arc::new(issuer)
}

fn line(number: &str, name: &str, status: &str) -> String {
    format!(
        r#"{{"corporation_number":"{number}","legal_name":"{name}","entity_type":"business_corporation","corporate_status":"{status}","incorporation_date":"2019-03-14","business_number":"123456782","registered_office_address":{{"street_address":"120 rue Principale","locality":"Sudbury","region":"ON","postal_code":"P3E 1Z6","country":"CA"}}}}"#
    )
}

fn bulk(issuer: &Issuer, lines: &[String]) {
    let mut run = issuer.bulk().expect("bulk");
    for (i, l) in lines.iter().enumerate() {
        run.line(i as u64 + 1, l).expect("line");
    }
    let report = run.finish().expect("finish");
    assert_eq!(report.counts.skipped, 0, "{:?}", report.skipped_lines);
}

/// `GET uri`: the status, the content type and the body.
async fn get(issuer: &Arc<Issuer>, uri: &str) -> (StatusCode, String, String) {
    let resp = bizcred_issuer::events::routes(issuer.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("req"))
        .await
        .expect("response");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 4 * 1024 * 1024)
        .await
        .expect("body");
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn another_agency_follows_the_signed_feed_page_by_page() {
    let dir = tempfile::tempdir().expect("tmp");
    let obr = issuer(&dir);
    // Two businesses, then one renamed (a new credential, the old one revoked).
    bulk(
        &obr,
        &[
            line("1234567", "Boulangerie Éloïse Inc.", "active"),
            line("7654321", "Quincaillerie Tremblay Ltée", "active"),
        ],
    );
    bulk(
        &obr,
        &[
            line("1234567", "Boulangerie Éloïse et Fils Inc.", "active"),
            line("7654321", "Quincaillerie Tremblay Ltée", "active"),
        ],
    );
    let current = obr
        .store
        .public_records(&["7654321".into()])
        .expect("records")["7654321"]
        .credential_id
        .clone();
    let clerk = Actor::Automation;
    obr.set_status(
        &clerk,
        &current,
        StatusAction::Suspend,
        Some("annual return overdue"),
    )
    .expect("suspend");
    obr.set_status(&clerk, &current, StatusAction::Reinstate, None)
        .expect("reinstate");

    // The registry knows the OBR by its DID and log.
    let t = now();
    let mut registry = InMemoryRegistry::new("registry.test/log", t - 100, t);
    registry.onboard_did(
        &obr.did,
        &obr.did_log().expect("log"),
        "OBR",
        "REO",
        &[CredentialType::CertificateOfIncorporation],
        t,
    );
    let trust = registry.verifier_state(t, Vec::new(), t);

    // Pages of two events, from the cursor.
    let mut sub = Subscription::new(&obr.did);
    let mut taken: Vec<PublishedEvent> = Vec::new();
    let mut first_page = None;
    for _ in 0..10 {
        let (status, ctype, token) =
            get(&obr, &format!("/events?after={}&limit=2", sub.cursor)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, "application/bizcred-events+jwt");
        let header = bizcred_core::jws::Jws::decode(&token).expect("jws");
        assert_eq!(header.header_str("typ"), Some(EVENTS_TYP));
        assert_eq!(header.header_str("kid"), Some(obr.kid().as_str()));
        let events = sub.accept(&token, &trust, now()).expect("accepted");
        first_page.get_or_insert(token);
        if events.is_empty() {
            break;
        }
        assert!(events.len() <= 2);
        taken.extend(events);
    }
    let kinds: Vec<(EventKind, Option<&str>)> = taken
        .iter()
        .map(|e| (e.kind, e.business.corporation_number.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::CredentialIssued, Some("1234567")),
            (EventKind::CredentialIssued, Some("7654321")),
            (EventKind::CredentialIssued, Some("1234567")),
            (EventKind::CredentialRevoked, Some("1234567")),
            (EventKind::CredentialSuspended, Some("7654321")),
            (EventKind::CredentialReinstated, Some("7654321")),
        ]
    );
    assert_eq!(
        taken.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    assert_eq!(sub.cursor, 6);
    // The status list entry is the credential's own, so a downstream agency matches it.
    let rec = obr.store.credential(&current).expect("record");
    let suspended = &taken[4];
    assert_eq!(suspended.credential_id, current);
    assert_eq!(
        suspended.status_list,
        format!("{URL}/status/{}", rec.status_list)
    );
    assert_eq!(suspended.status_idx, rec.status_idx);
    assert_eq!(
        suspended.vct,
        CredentialType::CertificateOfIncorporation.vct()
    );
    // No name, no address: identifiers only.
    let all = serde_json::to_string(&taken).expect("json");
    for personal in ["Boulangerie", "Tremblay", "Principale", "Sudbury", "P3E"] {
        assert!(!all.contains(personal), "{personal} in {all}");
    }
    // The first page again: a replay, refused; the cursor stays.
    let replay = sub.accept(&first_page.expect("a page"), &trust, now());
    assert_eq!(
        replay.map(|_| ()).map_err(|e| e.code()),
        Err(ReasonCode::EventPageReplayed)
    );
    assert_eq!(sub.cursor, 6);
    // A query that is not positions is refused.
    let (status, _, _) = get(&obr, "/events?after=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
