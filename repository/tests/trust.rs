//! The repository's trust directory: a compaction interrupted after its whole-log bundle was
//! kept is finished at the next start-up (the old bundles removed, the whole one first), so a
//! crash never leaves the directory without the state it held.

mod common;

use bizcred_core::trust::bundle;
use bizcred_repository::trust::{TrustConfig, TrustDir};
use bizcred_schemas::CredentialType;
use bizcred_test_support::Agency;
use common::{World, ISSUED, NOW};

#[test]
fn an_interrupted_compaction_is_finished_at_start_up() {
    let mut w = World::new();
    let dir = w.dir.path().join("trust");
    let trust = TrustDir::init(
        &dir,
        TrustConfig {
            anchor: w.reg.anchor(),
            registry: "http://127.0.0.1:9".into(),
        },
    )
    .expect("init");
    let bundles = dir.join("bundles");
    std::fs::write(
        bundles.join("000000.json"),
        w.reg.bundle(0, NOW, Vec::new()),
    )
    .expect("write");
    let held = trust.load(NOW).expect("load").expect("a state");
    let city = Agency::new("city.bizcred.test", ISSUED - 86_400);
    w.reg.onboard(
        &city,
        "City of Toronto",
        "Ville de Toronto",
        &[CredentialType::MunicipalBusinessLicence],
        NOW - 10,
    );
    std::fs::write(
        bundles.join("000001.json"),
        w.reg.bundle(held.size(), NOW, Vec::new()),
    )
    .expect("write");
    // The crash: the whole log was kept, the old bundles not yet removed.
    let whole = w.reg.bundle(0, NOW, Vec::new());
    std::fs::write(bundles.join("compacted.json.kept"), &whole).expect("write");

    let state = trust.load(NOW).expect("load").expect("a state");
    let want = bundle::import(None, &w.reg.anchor(), &whole, NOW)
        .expect("whole")
        .state;
    assert!(state.size() > held.size());
    assert_eq!((state.size(), state.root()), (want.size(), want.root()));
    let mut names: Vec<String> = std::fs::read_dir(&bundles)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["000000.json"]);
    assert_eq!(
        std::fs::read_to_string(bundles.join("000000.json")).expect("read"),
        whole
    );
    // And it loads the same again.
    let again = trust.load(NOW).expect("load").expect("a state");
    assert_eq!(again.root(), want.root());
}
