//! The issuer store's group commit: concurrent issuances are written together, each gets its
//! own outcome, and a refused one refuses only itself.

use std::sync::{Arc, Barrier};

use bizcred_issuer::store::{
    verify_audit, AccessToken, AppStatus, Application, CredentialRecord, Offer, Store, StoreError,
};
use serde_json::{json, Map};

fn application(id: &str) -> Application {
    Application {
        id: id.into(),
        credential_type: "business-number".into(),
        status: AppStatus::Offered,
        claims: Map::new(),
        verified_claims: Vec::new(),
        nonce: None,
        nonce_used: false,
        holder_thumbprint: None,
        verification: None,
        offer_id: None,
        created: 1_000,
        history: Vec::new(),
        dependencies: Default::default(),
        capability: None,
    }
}

/// An application with an offer redeemed for an access token; returns the token's hash.
fn token(store: &Store, n: usize) -> String {
    let app = application(&format!("app-{n}"));
    let offer = Offer {
        id: format!("offer-{n}"),
        application_id: app.id.clone(),
        configuration_id: "business-number".into(),
        code_hash: format!("code-{n}"),
        tx_hash: "tx".into(),
        expires: 10_000,
        attempts: 0,
        used: false,
        offer: json!({}),
    };
    store
        .put_application(&app, 1_000, None)
        .expect("application");
    store.put_offer(&offer, &app, 1_000).expect("offer");
    let hash = format!("token-{n}");
    let t = AccessToken {
        application_id: app.id.clone(),
        configuration_id: "business-number".into(),
        expires: 10_000,
        used: false,
        credential_id: None,
        reissues: 0,
    };
    store.redeem(&offer.id, &hash, &t, 1_001).expect("redeem");
    hash
}

fn record(n: usize, idx: u64) -> CredentialRecord {
    CredentialRecord {
        id: format!("cred-{n}"),
        application_id: format!("app-{n}"),
        vct: "https://bizcred.example/vct/business-number".into(),
        status_list: 1,
        status_idx: idx,
        status: bizcred_issuer::store::CredentialStatus::Valid,
        issued_at: 1_002,
        kid: "did:example:cra#key-1".into(),
        credential_sha256: "00".repeat(32),
        history: Vec::new(),
    }
}

#[test]
fn concurrent_issuances_commit_together_with_their_own_outcomes() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(Store::open(&dir.path().join("db")).expect("open"));
    store.prepare_status_lists(1024).expect("lists");
    let n = 24;
    let tokens: Vec<String> = (0..n).map(|i| token(&store, i)).collect();
    // Issuances 0..20 are distinct; 20 and 21 want the same status index; 22 and 23 use the
    // same access token (22's).
    let jobs: Vec<(CredentialRecord, String)> = (0..n)
        .map(|i| {
            let idx = if i == 21 { 20 } else { i as u64 };
            let tok = if i == 23 {
                tokens[22].clone()
            } else {
                tokens[i].clone()
            };
            (record(i, idx), tok)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(rec, tok)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.record_issuance(&rec, &tok, 1_002)
            })
        })
        .collect();
    let outcomes: Vec<Result<(), StoreError>> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    for (i, o) in outcomes.iter().enumerate().take(20) {
        assert!(o.is_ok(), "issuance {i}: {o:?}");
    }
    let taken = |o: &Result<(), StoreError>| matches!(o, Err(StoreError::IndexTaken(20)));
    let used = |o: &Result<(), StoreError>| matches!(o, Err(StoreError::TokenUsed));
    // Exactly one of each contended pair wins; the loser's error names the cause.
    assert_eq!(
        [&outcomes[20], &outcomes[21]]
            .iter()
            .filter(|o| o.is_ok())
            .count(),
        1
    );
    assert!(taken(&outcomes[20]) || taken(&outcomes[21]));
    assert_eq!(
        [&outcomes[22], &outcomes[23]]
            .iter()
            .filter(|o| o.is_ok())
            .count(),
        1
    );
    assert!(used(&outcomes[22]) || used(&outcomes[23]));

    // What was acknowledged is stored, and nothing else: 22 credentials, 22 audit events of
    // issuance, the chain intact, every winning application marked issued.
    let creds = store.credentials().expect("credentials");
    assert_eq!(creds.len(), 22);
    // The list's allocation count moved with each acknowledged issuance only.
    assert_eq!(store.open_status_list().expect("list").allocated, 22);
    let entries = store.audit_entries().expect("audit");
    verify_audit(&entries).expect("audit chain intact");
    let issued = entries
        .iter()
        .filter(|e| e["event"] == "credential_issued")
        .count();
    assert_eq!(issued, 22);
    for (i, o) in outcomes.iter().enumerate() {
        let app = store.application(&format!("app-{i}")).expect("app");
        assert_eq!(
            app.status == AppStatus::Issued,
            o.is_ok(),
            "application {i}"
        );
    }
    drop(store);
}
