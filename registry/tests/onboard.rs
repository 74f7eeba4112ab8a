//! Onboarding is one step: the registration of an agency and its authorizations are appended
//! as one batch, all or none, so a crash or a refusal can never leave an agency registered but
//! not authorized.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::trust::entry::build;
use bizcred_registry::admin;
use bizcred_registry::store::{AppendPlan, Blob, BlobPlan, Head, MemoryStore, Store, StoreError};
use bizcred_registry::Registry;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{founding_entries, Agency};
use rand_core::OsRng;

const ORIGIN: &str = "registry.bizcred.test/log";
/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800;

/// A store with a fail point: the `fail_at`-th write (counting from 1) fails before it
/// changes anything, as a crash between two writes would stop them.
#[derive(Debug)]
struct FailPoint {
    inner: Arc<MemoryStore>,
    writes: AtomicUsize,
    fail_at: usize,
}

impl Store for FailPoint {
    fn head(&self) -> Result<Head, StoreError> {
        self.inner.head()
    }
    fn entries_from(&self, from: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.entries_from(from)
    }
    fn append_with(&self, from: u64, plan: AppendPlan<'_>) -> Result<Option<u64>, StoreError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(StoreError::Injected("killed before this write"));
        }
        self.inner.append_with(from, plan)
    }
    fn blobs_since(&self, after: u64) -> Result<Vec<Blob>, StoreError> {
        self.inner.blobs_since(after)
    }
    fn put_blob_with(&self, name: &str, plan: BlobPlan<'_>) -> Result<Option<u64>, StoreError> {
        self.inner.put_blob_with(name, plan)
    }
}

struct Setup {
    store: Arc<MemoryStore>,
    authority: SecretKey,
    log_key: SecretKey,
}

/// A registry with its genesis and the four types, in a memory store.
fn setup() -> Setup {
    let authority = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let log_key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    let store = Arc::new(MemoryStore::default());
    let mut reg = Registry::open(store.clone(), ORIGIN, copy(&log_key), NOW).expect("open");
    let entries = founding_entries(ORIGIN, &authority, &log_key.public_key(), NOW);
    reg.append_all(entries, NOW).expect("append");
    Setup {
        store,
        authority,
        log_key,
    }
}

fn copy(k: &SecretKey) -> SecretKey {
    SecretKey::from_bytes(Algorithm::EdDSA, &k.to_bytes()).expect("copy")
}

#[test]
fn onboarding_is_one_write_and_a_crash_before_it_leaves_nothing() {
    let s = setup();
    let agco = Agency::new("agco.bizcred.test", NOW - 60);
    let types = [CredentialType::LiquorSalesLicence];
    // The registry crashes at the first write of the onboarding: before the fix, the
    // registration was written alone and this point lay between it and the authorization.
    let failing = FailPoint {
        inner: s.store.clone(),
        writes: AtomicUsize::new(0),
        fail_at: 1,
    };
    let mut reg = Registry::open(failing, ORIGIN, copy(&s.log_key), NOW).expect("open");
    let plan_onboarding = || {
        admin::onboard(
            ORIGIN,
            &s.authority,
            &agco.log,
            "AGCO",
            "CAJO",
            &types,
            NOW,
            &mut OsRng,
        )
        .expect("plan")
    };
    let (issuer, plan) = plan_onboarding();
    assert_eq!(plan.len(), 2, "registration and one authorization");
    let err = reg
        .append_all(plan.into_iter().map(|p| p.entry).collect(), NOW)
        .expect_err("the fail point fires");
    assert_eq!(err.code(), "STORAGE_FAILED");
    assert_eq!(reg.state().size(), 5, "the sequencer's state did not move");
    // After the "restart": nothing of the agency is there, and onboarding again completes.
    let mut reg = Registry::open(s.store.clone(), ORIGIN, copy(&s.log_key), NOW).expect("reopen");
    assert_eq!(reg.state().size(), 5);
    assert!(reg.state().issuers.is_empty(), "not registered half-way");
    let (_, plan) = plan_onboarding();
    let r = reg
        .append_all(plan.into_iter().map(|p| p.entry).collect(), NOW)
        .expect("onboard");
    assert_eq!(r, 5..7);
    let reg = Registry::open(s.store.clone(), ORIGIN, copy(&s.log_key), NOW).expect("reopen");
    assert!(reg.state().issuers.contains_key(&issuer));
    assert!(reg
        .state()
        .authorizations
        .iter()
        .any(|a| a.entity_id == issuer && a.resource == CredentialType::LiquorSalesLicence.vct()));
}

#[test]
fn a_refused_entry_in_a_batch_appends_none_of_it() {
    let s = setup();
    let mut reg = Registry::open(s.store.clone(), ORIGIN, copy(&s.log_key), NOW).expect("open");
    let agco = Agency::new("agco.bizcred.test", NOW - 60);
    let (_, mut plan) = admin::onboard(
        ORIGIN,
        &s.authority,
        &agco.log,
        "AGCO",
        "CAJO",
        &[CredentialType::LiquorSalesLicence],
        NOW,
        &mut OsRng,
    )
    .expect("plan");
    // The second entry is signed by a key that is not an authority key.
    let stranger = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    plan[1].entry = build::authorization_granted(
        ORIGIN,
        &agco.did,
        CredentialType::LiquorSalesLicence.vct(),
        NOW,
        None,
        NOW,
        &stranger,
        &mut OsRng,
    )
    .expect("entry");
    let err = reg
        .append_all(plan.into_iter().map(|p| p.entry).collect(), NOW)
        .expect_err("refused");
    assert!(
        matches!(err, bizcred_registry::RegistryError::Entry(_)),
        "{err}"
    );
    assert_eq!(reg.state().size(), 5);
    assert_eq!(
        s.store.load().expect("load").len(),
        5,
        "nothing was written"
    );
}
