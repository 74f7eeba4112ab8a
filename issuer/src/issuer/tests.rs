//! Unit tests of the issuance core.

use serde_json::json;
use zeroize::Zeroizing;

use bizcred_core::status_list;

use super::*;
use crate::store::StoreError;

fn now() -> i64 {
    1_790_000_000
}

fn issuer(dir: &std::path::Path) -> Issuer {
    let cfg = format!(
            "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"http://localhost:18099\"\nlisten = \"127.0.0.1:18099\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.join("data").to_string_lossy(),
            "00".repeat(32)
        );
    let config = Config::parse(&cfg).expect("config");
    Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now)
        .expect("create")
        .0
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
    let token = issuer.sign_status_list().expect("sign");
    let (signed_by, _, _) = status_list::peek(&token).expect("peek");
    assert_eq!(signed_by, kid);
}

#[test]
fn a_status_list_is_not_signed_over_an_unknown_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let issuer = issuer(dir.path());
    let rec = json!({"id": "c1", "application_id": "a1", "vct": "x", "status_idx": 5,
            "status": "revokd", "issued_at": now(), "kid": issuer.kid(), "credential_sha256": "00"});
    issuer
        .store
        .put_raw_credential("c1", rec.to_string().as_bytes())
        .expect("raw");
    // Before: the unknown state counted as valid and the list was signed.
    let e = issuer.sign_status_list().expect_err("refused");
    assert!(
        matches!(e, Error::Store(StoreError::Corrupt { .. })),
        "{e:?}"
    );
    assert_eq!(e.code(), "STORE_CORRUPT");
}
