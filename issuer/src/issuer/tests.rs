//! Unit tests of the issuance core.

use serde_json::json;
use zeroize::Zeroizing;

use bizcred_core::keys::Signer;
use bizcred_core::status_list;

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::store::{
    AccessToken, AppStatus, Application, CredentialRecord, CredentialStatus, Offer, StoreError,
};

fn now() -> i64 {
    1_790_000_000
}

fn config(dir: &std::path::Path) -> Config {
    let cfg = format!(
            "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"http://localhost:18099\"\nlisten = \"127.0.0.1:18099\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.join("data").to_string_lossy(),
            "00".repeat(32)
        );
    Config::parse(&cfg).expect("config")
}

fn issuer(dir: &std::path::Path) -> Issuer {
    Issuer::create(config(dir), Zeroizing::new("pw".into()), now() - 10, now)
        .expect("create")
        .0
}

/// A clock the test moves (only the tests that use it read it).
static CLOCK: AtomicI64 = AtomicI64::new(0);

fn stepped() -> i64 {
    CLOCK.load(Ordering::SeqCst)
}

/// Stores an issued credential with status index `idx` (application, offer, token, record,
/// through the store's own paths); returns its id.
fn issued(store: &Store, n: usize, idx: u64, at: i64) -> String {
    let app = Application {
        id: format!("app-{n}"),
        credential_type: "certificate-of-incorporation".into(),
        status: AppStatus::Offered,
        claims: serde_json::Map::new(),
        verified_claims: Vec::new(),
        nonce: None,
        nonce_used: false,
        holder_thumbprint: None,
        verification: None,
        offer_id: None,
        created: at,
        history: Vec::new(),
        dependencies: Default::default(),
        capability: None,
    };
    let offer = Offer {
        id: format!("offer-{n}"),
        application_id: app.id.clone(),
        configuration_id: app.credential_type.clone(),
        code_hash: format!("code-{n}"),
        tx_hash: "tx".into(),
        expires: at + 600,
        attempts: 0,
        used: false,
        offer: json!({}),
    };
    store.put_application(&app, at, None).expect("app");
    store.put_offer(&offer, &app, at).expect("offer");
    let token = format!("token-{n}");
    let access = AccessToken {
        application_id: app.id.clone(),
        configuration_id: app.credential_type.clone(),
        expires: at + 600,
        used: false,
        credential_id: None,
        reissues: 0,
    };
    store
        .redeem(&offer.id, &token, &access, at)
        .expect("redeem");
    let rec = CredentialRecord {
        id: format!("cred-{n}"),
        application_id: app.id.clone(),
        vct: "urn:test".into(),
        status_list: 1,
        status_idx: idx,
        status: CredentialStatus::Valid,
        issued_at: at,
        kid: "did:test#key-1".into(),
        credential_sha256: "00".repeat(32),
        history: Vec::new(),
    };
    store.record_issuance(&rec, &token, at).expect("issue");
    rec.id
}

#[test]
fn status_list_iat_is_monotonic_across_a_restart_and_bounded_by_the_clock() {
    let t0 = 1_790_000_000;
    CLOCK.store(t0, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tmp");
    let (issuer, _) = Issuer::create(
        config(dir.path()),
        Zeroizing::new("pw".into()),
        t0 - 10,
        stepped,
    )
    .expect("create");
    let a = issued(&issuer.store, 1, 11, t0);
    let b = issued(&issuer.store, 2, 22, t0);
    let key = issuer.signing_key().assertion.public_key();
    let uri = issuer.status_uri(1);
    // A burst of 40 status changes within one second of the clock.
    let mut iats = Vec::new();
    for i in 0..40 {
        let to = if i % 2 == 0 {
            StatusAction::Suspend
        } else {
            StatusAction::Reinstate
        };
        issuer
            .set_status(&Actor::Automation, &a, to, Some("burst"))
            .expect("status");
        let (_, iat, _) = status_list::peek(&issuer.status_list(1).expect("list")).expect("peek");
        // Before: iat reached t0 + 40.
        assert!(
            iat <= t0 + MAX_IAT_LEAD,
            "iat {iat} runs ahead of the clock {t0}"
        );
        iats.push(iat);
    }
    assert!(iats.windows(2).all(|w| w[0] <= w[1]), "{iats:?}");
    let newest = *iats.iter().max().expect("some");

    // Restart: a new issuer over the same store; whatever it held in memory is gone.
    let (store, config) = (issuer.store.clone(), issuer.config.clone());
    drop(issuer);
    let keys = crate::keyfiles::SealedKeyFiles::new(&config.storage, Zeroizing::new("pw".into()));
    let issuer = Issuer::new(config, store, Box::new(keys), stepped).expect("reopen");
    CLOCK.store(t0 + 1, Ordering::SeqCst);
    issuer
        .set_status(&Actor::Automation, &b, StatusAction::Revoke, Some("test"))
        .expect("revoke");
    let token = issuer.status_list(1).expect("list");
    let v = status_list::verify_token(&token, &uri, &key, t0 + 1).expect("verify");
    // Before: the list after the restart was dated t0 + 1, older than the lists already out.
    assert!(
        v.iat > newest,
        "iat {} after the restart, {newest} before",
        v.iat
    );
    assert!(v.iat <= t0 + 1 + MAX_IAT_LEAD);
    assert_eq!(v.list.get(22), Ok(status_list::Status::Invalid));
    // The burst's last change (back to valid) is in it too.
    assert_eq!(v.list.get(11), Ok(status_list::Status::Valid));
    let newest = v.iat;

    // A change when the list may not go further ahead is coalesced into the next list, signed
    // as soon as the clock allows.
    issuer
        .set_status(&Actor::Automation, &a, StatusAction::Suspend, Some("test"))
        .expect("suspend");
    let held = status_list::peek(&issuer.status_list(1).expect("list")).expect("peek");
    assert_eq!(held.1, newest);
    CLOCK.store(t0 + 2, Ordering::SeqCst);
    assert_eq!(issuer.refresh_status_lists().expect("re-sign"), None);
    let token = issuer.status_list(1).expect("list");
    let v = status_list::verify_token(&token, &uri, &key, t0 + 2).expect("verify");
    assert_eq!(v.iat, newest + 1);
    assert_eq!(v.list.get(11), Ok(status_list::Status::Suspended));
    // The store refuses a list that is not newer than the recorded one.
    let again = crate::store::SignedList {
        iat: v.iat,
        version: u64::MAX,
        kid: issuer.kid(),
        token,
    };
    assert!(matches!(
        issuer.store.put_signed_status_list(1, &again),
        Err(StoreError::StatusListNotNewer { .. })
    ));
}

#[test]
fn a_poisoned_key_lock_still_names_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let issuer = std::sync::Arc::new(issuer(dir.path()));
    let kid = issuer.kid();
    assert!(kid.ends_with("#key-1"), "{kid}");
    let i = issuer.clone();
    let panicked = std::thread::spawn(move || {
        let _held = i.keys.write();
        panic!("a writer panics while holding the key lock");
    })
    .join();
    assert!(panicked.is_err());
    assert!(issuer.keys.is_poisoned());
    // Before: an empty `kid`.
    assert_eq!(issuer.kid(), kid);
    assert_eq!(issuer.refresh_list(1).expect("sign"), Resign::Signed);
    let token = issuer.status_list(1).expect("list");
    let (signed_by, _, _) = status_list::peek(&token).expect("peek");
    assert_eq!(signed_by, kid);
}

/// Reopens `issuer` over its store (what it held in memory is gone), with `clock`.
fn reopen(issuer: Issuer, clock: fn() -> i64) -> Issuer {
    let (store, config) = (issuer.store.clone(), issuer.config.clone());
    drop(issuer);
    let keys = crate::keyfiles::SealedKeyFiles::new(&config.storage, Zeroizing::new("pw".into()));
    Issuer::new(config, store, Box::new(keys), clock).expect("reopen")
}

#[test]
fn a_store_without_kept_bits_is_migrated_once_and_an_unknown_state_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let issuer = issuer(dir.path());
    let a = issued(&issuer.store, 1, 5, now());
    issued(&issuer.store, 2, 6, now());
    issuer
        .set_status(&Actor::Automation, &a, StatusAction::Suspend, Some("test"))
        .expect("suspend");
    let before = status_list::peek(&issuer.status_list(1).expect("list"))
        .expect("peek")
        .1;
    // A store written before the bits were kept: they are built from the records at open.
    issuer.store.make_legacy().expect("legacy");
    assert!(!issuer.store.index_taken(1, 5).expect("taken"));
    let issuer = reopen(issuer, now);
    assert!(issuer.store.index_taken(1, 5).expect("taken"));
    assert!(issuer.store.index_taken(1, 6).expect("taken"));
    assert_eq!(issuer.store.open_status_list().expect("open").allocated, 2);
    issuer.refresh_status_lists().expect("re-sign");
    let token = issuer.status_list(1).expect("list");
    let key = issuer.signing_key().assertion.public_key();
    let v = status_list::verify_token(&token, &issuer.status_uri(1), &key, now()).expect("v");
    // The old list's `iat` is kept: the next one follows it.
    assert!(v.iat > before, "{} after {before}", v.iat);
    assert_eq!(v.list.get(5), Ok(status_list::Status::Suspended));
    assert_eq!(v.list.get(6), Ok(status_list::Status::Valid));

    // A record in a state nothing knows stops the migration: no list is built over it.
    let rec = json!({"id": "c1", "application_id": "a1", "vct": "x", "status_idx": 9,
            "status": "revokd", "issued_at": now(), "kid": issuer.kid(), "credential_sha256": "00"});
    issuer
        .store
        .put_raw_credential("c1", rec.to_string().as_bytes())
        .expect("raw");
    issuer.store.make_legacy().expect("legacy");
    let (store, config) = (issuer.store.clone(), issuer.config.clone());
    drop(issuer);
    let keys = crate::keyfiles::SealedKeyFiles::new(&config.storage, Zeroizing::new("pw".into()));
    let e = Issuer::new(config, store, Box::new(keys), now).expect_err("refused");
    assert!(
        matches!(e, Error::Store(StoreError::Corrupt { .. })),
        "{e:?}"
    );
    assert_eq!(e.code(), "STORE_CORRUPT");
}

#[test]
fn re_signing_reads_the_stored_bits_never_the_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let issuer = issuer(dir.path());
    let a = issued(&issuer.store, 1, 5, now());
    issuer
        .set_status(&Actor::Automation, &a, StatusAction::Revoke, Some("test"))
        .expect("revoke");
    // A damaged record elsewhere: before, every re-sign read every record and was refused
    // (and took time in proportion to them).
    let rec = json!({"id": "c1", "application_id": "a1", "vct": "x", "status_idx": 9,
            "status": "revokd", "issued_at": now(), "kid": issuer.kid(), "credential_sha256": "00"});
    issuer
        .store
        .put_raw_credential("c1", rec.to_string().as_bytes())
        .expect("raw");
    let b = issued(&issuer.store, 2, 6, now());
    fn later() -> i64 {
        now() + 10
    }
    let issuer = reopen(issuer, later);
    issuer
        .set_status(&Actor::Automation, &b, StatusAction::Suspend, Some("test"))
        .expect("suspend");
    let token = issuer.status_list(1).expect("list");
    let key = issuer.signing_key().assertion.public_key();
    let v = status_list::verify_token(&token, &issuer.status_uri(1), &key, now() + 10).expect("v");
    assert_eq!(v.iat, now() + 10);
    assert_eq!(v.list.get(5), Ok(status_list::Status::Invalid));
    assert_eq!(v.list.get(6), Ok(status_list::Status::Suspended));
}

#[test]
fn serving_answers_the_newest_signed_list_and_the_refresh_re_signs_stale_ones() {
    let t0 = now();
    STALE_CLOCK.store(t0, Ordering::SeqCst);
    fn clock() -> i64 {
        STALE_CLOCK.load(Ordering::SeqCst)
    }
    let dir = tempfile::tempdir().expect("tmp");
    let (issuer, _) = Issuer::create(
        config(dir.path()),
        Zeroizing::new("pw".into()),
        t0 - 10,
        clock,
    )
    .expect("create");
    let first = issuer.status_list(1).expect("list");
    assert_eq!(status_list::peek(&first).expect("peek").1, t0);
    // Stale: serving still answers at once with the newest signed list (before, the request
    // re-signed it, reading every record, while the client waited).
    STALE_CLOCK.store(t0 + issuer.config.resign_interval as i64, Ordering::SeqCst);
    assert_eq!(issuer.status_list(1).expect("list"), first);
    assert_eq!(issuer.status_resign_due().expect("due"), None);
    assert_eq!(issuer.refresh_list(1).expect("refresh"), Resign::Signed);
    let second = issuer.status_list(1).expect("list");
    assert_eq!(
        status_list::peek(&second).expect("peek").1,
        t0 + issuer.config.resign_interval as i64
    );
    assert_eq!(issuer.refresh_list(1).expect("refresh"), Resign::Current);
}

/// The clock of the serving test.
static STALE_CLOCK: AtomicI64 = AtomicI64::new(0);

#[test]
fn a_wallets_error_answer_is_not_a_malformed_presentation() {
    let dir = tempfile::tempdir().expect("tmp");
    let issuer = issuer(dir.path());
    let e = issuer
        .handle_presentation(b"error=access_denied&state=s1")
        .expect_err("declined");
    assert!(
        matches!(
            &e,
            Error::BadPresentation(oid4vp::RequestError::WalletAnswered { error })
                if error == "access_denied"
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), bizcred_schemas::ReasonCode::WalletErrorResponse);
    let e = issuer
        .handle_presentation(b"state=s1")
        .expect_err("no vp_token");
    assert_eq!(e.code(), bizcred_schemas::ReasonCode::PresentationMalformed);
}
