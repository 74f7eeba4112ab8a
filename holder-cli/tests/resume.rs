//! An interrupted `receive` is resumed through the library against an issuer in the test
//! process: the receive's progress is sealed in the wallet after the token step; when the
//! credential's answer is lost after the issuer committed it, the wallet repeats the request
//! with the stored access token and a fresh proof, and ends with exactly one credential, of the
//! issuer's record's status index.

mod common;

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_schemas::Lang;
use bizcred_wallet::issuance::{self, OfferSource, ReceiveOptions};
use bizcred_wallet::pending::{offer_id, PendingDir, PendingReceives};
use bizcred_wallet::{net, SledVault, Vault};
use common::{now, ReissuingIssuer};

fn opts(now_ms: i64) -> ReceiveOptions<'static> {
    ReceiveOptions {
        tx_code: None,
        lang: Lang::En,
        now_ms,
    }
}

fn offer(uri: &str) -> issuance::CredentialOffer {
    match issuance::parse_offer_uri(uri).expect("offer") {
        OfferSource::ByValue(o) => o,
        OfferSource::ByReference(u) => panic!("by value, not {u}"),
    }
}

#[tokio::test]
async fn a_receive_whose_answer_was_lost_is_resumed_and_stored_once() {
    let iss = ReissuingIssuer::start(120);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("w");
    let v = SledVault::create(&dir, b"pass").expect("vault");
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    v.set_holder_key(&holder).expect("key");
    let pending = PendingDir::new(&dir, &holder);
    let c = net::client().expect("client");
    let uri = iss.offer("code-1");
    let id = offer_id(&uri);
    let o = offer(&uri);

    // The token step: the receive's progress is sealed in the wallet before any credential
    // request is sent; the access token is not in clear on disk.
    let p = issuance::start(&c, &v, &pending, &id, &o, opts(now() * 1000), &mut |_| {})
        .await
        .expect("token");
    assert_eq!(pending.pending().expect("pending").len(), 1);
    let token = iss
        .books
        .lock()
        .expect("books")
        .records
        .keys()
        .next()
        .expect("token")
        .clone();
    for f in std::fs::read_dir(pending.dir()).expect("dir") {
        let text = std::fs::read_to_string(f.expect("file").path()).expect("read");
        assert!(!text.contains(&token), "the access token is sealed");
        assert!(!text.contains(&iss.base), "the issuer is sealed");
    }
    // The credential request: the issuer commits its record, and the answer is lost (the
    // connection cut, the process killed).
    let lost = issuance::request_credential(&c, &holder, &p, now(), &mut |_| {})
        .await
        .expect("issued");
    assert!(!lost.is_empty());
    drop((lost, p, pending));
    assert!(v.credentials().expect("held").is_empty());
    assert_eq!(iss.issued_indices().len(), 1);

    // The wallet starts again: `receive` of the same offer finds the pending receive.
    drop(v);
    let v = SledVault::open(&dir, b"pass").expect("reopen");
    let pending = PendingDir::new(&dir, &v.holder_key().expect("key"));
    let p = pending
        .pending_for(&offer_id(&uri))
        .expect("read")
        .expect("the receive is pending");
    let again = pending.pending_for(&id).expect("read").expect("pending");
    let mut steps = Vec::new();
    let rec = issuance::resume(&c, &v, &pending, &p, opts(now() * 1000), &mut |s| {
        steps.push(s.to_owned())
    })
    .await
    .expect("resumed");
    assert!(steps.iter().any(|s| s.contains("resuming")), "{steps:?}");
    let held = v.credentials().expect("held");
    assert_eq!(held, vec![rec.clone()], "exactly one credential");
    assert_eq!(iss.issued_indices(), vec![rec.status_idx.expect("status")]);
    assert_eq!(rec.issuer_name, "Canada Revenue Agency");
    assert!(pending.pending().expect("pending").is_empty(), "removed");
    assert_eq!(iss.books.lock().expect("books").signed, 2);

    // Killed after the credential was stored but before its record was removed: resuming
    // again gets a re-issue of the same record, which is not stored a second time.
    pending.put_pending(&again).expect("put back");
    let rec2 = issuance::resume(&c, &v, &pending, &again, opts(now() * 1000), &mut |_| {})
        .await
        .expect("resumed again");
    assert_eq!(rec2, rec);
    assert_eq!(v.credentials().expect("held").len(), 1, "never twice");
    assert!(pending.pending().expect("pending").is_empty());
    assert_eq!(iss.books.lock().expect("books").signed, 3);

    // The offer is spent: receiving it again is refused and changes nothing.
    let e = issuance::receive(&c, &v, &pending, &id, &o, opts(now() * 1000), &mut |_| {})
        .await
        .expect_err("used offer");
    assert_eq!(e.code().as_str(), "TOKEN_REFUSED", "{e}");
    assert_eq!(v.credentials().expect("held").len(), 1);
    assert!(pending.pending().expect("pending").is_empty());
    assert_eq!(iss.issued_indices().len(), 1, "never a second index");
}

#[tokio::test]
async fn a_lost_answer_keeps_the_receive_pending_and_an_expired_token_ends_it() {
    let iss = ReissuingIssuer::start(120);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("w");
    let v = SledVault::create(&dir, b"pass").expect("vault");
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    v.set_holder_key(&holder).expect("key");
    let pending = PendingDir::new(&dir, &holder);
    let c = net::client().expect("client");

    // The issuer commits, then its answer is lost (a gateway's 504): the receive fails and
    // stays pending; resuming it stores the credential of that record.
    let uri = iss.offer("code-2");
    let id = offer_id(&uri);
    iss.books.lock().expect("books").lose_next_answer = true;
    let e = issuance::receive(
        &c,
        &v,
        &pending,
        &id,
        &offer(&uri),
        opts(now() * 1000),
        &mut |_| {},
    )
    .await
    .expect_err("lost");
    assert_eq!(e.code().as_str(), "HTTP_ERROR", "{e}");
    assert!(v.credentials().expect("held").is_empty());
    let p = pending.pending_for(&id).expect("read").expect("kept");
    let rec = issuance::resume(&c, &v, &pending, &p, opts(now() * 1000), &mut |_| {})
        .await
        .expect("resumed");
    assert_eq!(iss.issued_indices(), vec![rec.status_idx.expect("idx")]);
    assert!(pending.pending_for(&id).expect("read").is_none());

    // A receive whose access token expired: a clear error, nothing stored, the record removed,
    // nothing sent to the issuer.
    let uri = iss.offer("code-3");
    let id = offer_id(&uri);
    let t0 = now() * 1000;
    let p = issuance::start(&c, &v, &pending, &id, &offer(&uri), opts(t0), &mut |_| {})
        .await
        .expect("token");
    assert_eq!(p.token_expires_ms, Some(t0 + 600_000));
    let signed = iss.books.lock().expect("books").signed;
    let e = issuance::resume(&c, &v, &pending, &p, opts(t0 + 600_000), &mut |_| {})
        .await
        .expect_err("expired");
    assert_eq!(e.code().as_str(), "RECEIVE_EXPIRED", "{e}");
    assert!(e.is_refusal());
    assert!(e.to_string().contains("nothing was stored"), "{e}");
    assert_eq!(v.credentials().expect("held").len(), 1);
    assert!(pending.pending_for(&id).expect("read").is_none(), "removed");
    assert_eq!(iss.books.lock().expect("books").signed, signed);
}

#[test]
fn a_pending_receive_opens_only_with_its_wallets_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    let other = SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng);
    assert_ne!(holder.public_key(), other.public_key());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let iss = ReissuingIssuer::start(60);
    let dir = tmp.path().join("w");
    let v = SledVault::create(&dir, b"pass").expect("vault");
    v.set_holder_key(&holder).expect("key");
    let pending = PendingDir::new(&dir, &holder);
    let c = net::client().expect("client");
    let uri = iss.offer("code-4");
    let id = offer_id(&uri);
    rt.block_on(issuance::start(
        &c,
        &v,
        &pending,
        &id,
        &offer(&uri),
        opts(now() * 1000),
        &mut |_| {},
    ))
    .expect("token");
    let e = PendingDir::new(&dir, &other)
        .pending_for(&id)
        .expect_err("another key");
    assert_eq!(e.code().as_str(), "RECORD_DAMAGED", "{e}");
    assert!(format!("{:?}", pending.pending_for(&id).expect("ok")).contains("access_token: \"..\""));
}
