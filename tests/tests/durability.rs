//! A revocation reaches verifiers, always (issue #19), with the real processes: a burst of
//! status changes pushes the status list's `iat` ahead of the clock, the agency is killed
//! (`kill -9`) and restarted, and a revocation made right after is in the registry's copy and
//! in the bank's next sync within one re-sign interval.

use std::time::{Duration, Instant};

use bizcred_examples::{Bank, Business, Wallet, World};
use bizcred_schemas::CredentialType;
use serde_json::Value;

/// The harness's re-sign interval (`status.resign_interval_seconds` in `agency_config`).
const RESIGN_INTERVAL: Duration = Duration::from_secs(5);

fn failures(r: &Value) -> Vec<String> {
    r["report"]["failures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_revocation_after_a_burst_and_a_kill_reaches_the_bank_within_one_resign_interval() {
    let mut world = World::start_with(&[], false).expect("world");
    let bins = world.bins.clone();
    let wallet = Wallet::create(&bins, world.root.path(), "w").expect("wallet");
    let offer = world
        .offer(
            "obr",
            CredentialType::CertificateOfIncorporation,
            "inc",
            &Business::jennifer().incorporation(),
        )
        .expect("offer");
    wallet.receive(&bins, &offer).expect("receive");
    let bank = Bank::start(
        &world,
        "name = \"kyc\"\n[[credential]]\nid = \"inc\"\ntype = \"certificate-of-incorporation\"\nclaims = [\"legal_name\"]\n",
    )
    .expect("bank");
    bank.sync(&world).expect("sync");
    let r = bank.ask(&world, &wallet).expect("ask");
    assert_eq!(r["report"]["verdict"], "ACCEPT", "{r}");
    let id = world.admin("obr", &["list"]).expect("list")[0]["id"]
        .as_str()
        .expect("credential id")
        .to_owned();

    // A burst of status changes: each list is signed after the last, so the list's iat runs
    // ahead of the clock (at most 5 s).
    for i in 0..20u32 {
        let action = if i.is_multiple_of(2) {
            "suspend"
        } else {
            "reinstate"
        };
        world
            .admin("obr", &[action, &id, "--reason", "burst"])
            .expect(action);
    }
    // kill -9 and restart: the last signed iat comes back from the store, not from memory.
    let i = world
        .agencies
        .iter()
        .position(|a| a.spec.key == "obr")
        .expect("obr");
    world.agencies[i].service.take().expect("running").stop();
    world.start_agency(i).expect("restart");

    let revoked_at = Instant::now();
    world
        .admin("obr", &["revoke", &id, "--reason", "test"])
        .expect("revoke");
    let deadline = revoked_at + 2 * RESIGN_INTERVAL;
    loop {
        bank.sync(&world).expect("sync");
        let r = bank.ask(&world, &wallet).expect("ask");
        if failures(&r).contains(&"REVOKED".to_owned()) {
            assert_eq!(r["report"]["verdict"], "REJECT", "{r}");
            eprintln!(
                "the bank saw the revocation {:.1} s after it was made",
                revoked_at.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bank does not see the revocation {:?} after it was made: {r}",
            revoked_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
