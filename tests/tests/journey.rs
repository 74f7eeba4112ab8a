//! The restaurant journey and its negative paths, with the real binaries on loopback.

use std::path::Path;

use bizcred_examples::{obtain, Bank, Bins, Business, Wallet, World};
use bizcred_schemas::CredentialType;
use serde_json::{json, Value};

const LOAN: &str = include_str!("../../examples/config/policies/loan-application.toml");

fn codes(r: &Value) -> Vec<String> {
    r["failures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn four(world: &World, wallet: &Wallet, biz: &Business) {
    obtain(
        world,
        wallet,
        "obr",
        CredentialType::CertificateOfIncorporation,
        Some(&biz.incorporation()),
        &json!({}),
    )
    .expect("incorporation");
    obtain(
        world,
        wallet,
        "cra",
        CredentialType::BusinessNumber,
        None,
        &biz.business_number_claims(),
    )
    .expect("business number");
    obtain(
        world,
        wallet,
        "city",
        CredentialType::MunicipalBusinessLicence,
        None,
        &biz.municipal_claims(),
    )
    .expect("municipal licence");
    obtain(
        world,
        wallet,
        "agco",
        CredentialType::LiquorSalesLicence,
        None,
        &biz.liquor_claims(-30, 700),
    )
    .expect("liquor licence");
}

/// A presentation through files: the bank writes a request, the wallet answers into a file.
fn file_presentation(
    bins: &Bins,
    bank: &Bank,
    wallet: &Wallet,
    root: &Path,
    name: &str,
    request: Option<&Path>,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let req = match request {
        Some(r) => r.to_path_buf(),
        None => {
            let r = root.join(format!("{name}-request.jwt"));
            bank.request_file(bins, &r).expect("request");
            r
        }
    };
    let out = root.join(format!("{name}-presentation.json"));
    wallet
        .present_file(bins, &req, &out)
        .expect("present to file");
    (req, out)
}

#[test]
fn negative_paths_with_real_processes() {
    // The City is (mis)configured to issue liquor licences too; the registry authorizes it
    // for municipal licences only.
    let world = World::start(&[CredentialType::LiquorSalesLicence]).expect("world");
    let bins = &world.bins;
    let root = world.root.path().to_path_buf();
    let jennifer = Wallet::create(bins, &root, "jennifer").expect("wallet");
    four(&world, &jennifer, &Business::jennifer());
    let bank = Bank::start(&world, LOAN).expect("bank");
    bank.sync(&world).expect("sync");
    let ok = bank.ask(&world, &jennifer).expect("ask");
    assert_eq!(
        ok["report"]["verdict"], "ACCEPT",
        "{}",
        ok["report"]["failures"]
    );

    // The City issues a liquor licence: not authorized in the registry.
    let r = obtain(
        &world,
        &jennifer,
        "city",
        CredentialType::LiquorSalesLicence,
        None,
        &Business::jennifer().liquor_claims(-1, 300),
    )
    .expect("city-issued liquor licence");
    let r2 = bank.ask(&world, &jennifer).expect("ask");
    assert_eq!(r2["report"]["verdict"], "REJECT");
    assert!(
        codes(&r2["report"]).contains(&"ISSUER_NOT_AUTHORIZED".to_owned()),
        "{}",
        r2["report"]["failures"]
    );
    let id = r["received"]["id"].as_str().expect("id");
    jennifer.ok(bins, &["delete", id]).expect("delete");

    // An expired liquor licence from the AGCO.
    let r = obtain(
        &world,
        &jennifer,
        "agco",
        CredentialType::LiquorSalesLicence,
        None,
        &Business::jennifer().liquor_claims(-800, -10),
    )
    .expect("expired licence");
    let r2 = bank.ask(&world, &jennifer).expect("ask");
    assert!(
        codes(&r2["report"]).contains(&"LICENCE_EXPIRED".to_owned()),
        "{}",
        r2["report"]["failures"]
    );
    jennifer
        .ok(bins, &["delete", r["received"]["id"].as_str().expect("id")])
        .expect("delete");

    // A tampered presentation file; and a presentation replayed.
    let (_, pres) = file_presentation(bins, &bank, &jennifer, &root, "tamper", None);
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&pres).expect("read")).expect("json");
    let liquor = doc["vp_token"]["liquor_licence"][0]
        .as_str()
        .expect("liquor")
        .to_owned();
    let mut sd = bizcred_core::sd_jwt::SdJwt::parse(&liquor).expect("parse");
    let forged = json!(["c2FsdA", "licence_number", "LSL-999999"]).to_string();
    sd.disclosures[0] =
        bizcred_core::sd_jwt::Disclosure::parse(&bizcred_core::base64url_encode(forged), 0)
            .expect("d");
    doc["vp_token"]["liquor_licence"] = json!([sd.serialize()]);
    std::fs::write(&pres, doc.to_string()).expect("write");
    let (code, report) = bank.verify_file(bins, &pres).expect("verify");
    assert_eq!(code, 1, "{report}");
    assert!(
        codes(&report).contains(&"DISCLOSURE_NOT_REFERENCED".to_owned()),
        "{}",
        report["failures"]
    );
    let (code, _) = bank.verify_file(bins, &pres).expect("verify");
    assert_eq!(code, 2, "a request is answered once: a replay is an error");

    // Another business's liquor licence in Jennifer's application.
    let bob = Wallet::create(bins, &root, "bob").expect("wallet");
    four(&world, &bob, &Business::other());
    let (req, a) = file_presentation(bins, &bank, &jennifer, &root, "mix-a", None);
    let (_, b) = file_presentation(bins, &bank, &bob, &root, "mix-b", Some(&req));
    let mut da: Value =
        serde_json::from_str(&std::fs::read_to_string(&a).expect("a")).expect("json");
    let db: Value = serde_json::from_str(&std::fs::read_to_string(&b).expect("b")).expect("json");
    da["vp_token"]["liquor_licence"] = db["vp_token"]["liquor_licence"].clone();
    std::fs::write(&a, da.to_string()).expect("write");
    let (code, report) = bank.verify_file(bins, &a).expect("verify");
    assert_eq!(code, 1);
    // Bob's licence answered the same request, so same_holder holds (the presenter controls
    // both keys); the business rules refuse the mix.
    assert!(!codes(&report).contains(&"HOLDER_MISMATCH".to_owned()));
    for c in ["BUSINESS_MISMATCH", "LEGAL_NAME_MISMATCH"] {
        assert!(
            codes(&report).contains(&c.to_owned()),
            "{c}: {}",
            report["failures"]
        );
    }

    // The AGCO revokes Jennifer's licence: after a sync, REVOKED.
    let list = world.admin("agco", &["list"]).expect("list");
    for c in list.as_array().expect("array") {
        world
            .admin(
                "agco",
                &["revoke", c["id"].as_str().expect("id"), "--reason", "test"],
            )
            .expect("revoke");
    }
    bank.sync(&world).expect("sync");
    let r = bank.ask(&world, &jennifer).expect("ask");
    assert!(
        codes(&r["report"]).contains(&"REVOKED".to_owned()),
        "{}",
        r["report"]["failures"]
    );
    // A revoked credential cannot be reinstated.
    let (code, _, _) = bins
        .run(
            "bizcred-issuer",
            &[
                "admin",
                "--url",
                &world.agency("agco").url,
                &format!("--token={}", world.agency("agco").token),
                "reinstate",
                list[0]["id"].as_str().expect("id"),
            ],
        )
        .expect("run");
    assert_eq!(code, 1);
}

#[test]
fn a_bundle_older_than_the_policy_allows_is_indeterminate() {
    let world = World::start(&[]).expect("world");
    let bins = &world.bins;
    let root = world.root.path().to_path_buf();
    let wallet = Wallet::create(bins, &root, "jennifer").expect("wallet");
    four(&world, &wallet, &Business::jennifer());
    let strict = LOAN.replace(
        "max_registry_age_seconds = 172800",
        "max_registry_age_seconds = 2",
    );
    assert_ne!(strict, LOAN);
    let bank = Bank::start(&world, &strict).expect("bank");
    let old = root.join("old-bundle.json");
    bins.ok(
        "bizcred-registry",
        &[
            "bundle",
            "export",
            "--url",
            &world.registry_url,
            "--out",
            &old.to_string_lossy(),
            "--data-dir",
            &world.registry_dir.to_string_lossy(),
        ],
    )
    .expect("export");
    world.admin("city", &["rotate-key"]).expect("rotate");
    bank.sync(&world).expect("sync");
    let (_, pres) = file_presentation(bins, &bank, &wallet, &root, "stale", None);
    // Ten seconds later by the verifier's clock (no sleep): the registry data is older than the
    // policy's two seconds.
    let (code, report) = bank.verify_file_at(bins, &pres, 10).expect("verify");
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["verdict"], "INDETERMINATE");
    assert_eq!(codes(&report), vec!["REGISTRY_STALE"]);
    assert_eq!(report["last_known"], "ACCEPT");
    // An older bundle after a newer one is refused and changes nothing.
    let (code, v, _) = bins
        .run(
            "bizcred-verifier",
            &[
                "--data-dir",
                &bank.dir.to_string_lossy(),
                "bundle",
                "import",
                &old.to_string_lossy(),
            ],
        )
        .expect("import");
    assert_eq!(
        (code, v["refused"].as_str()),
        (1, Some("BUNDLE_OLDER")),
        "{v}"
    );
}

#[test]
fn the_restaurant_journey() {
    let mut steps = Vec::new();
    bizcred_examples::restaurant_journey(&mut |line, record| steps.push((line.to_owned(), record)))
        .expect("the journey completes");
    assert_eq!(
        steps.len(),
        8,
        "{:?}",
        steps.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    assert_eq!(steps[5].1["report"]["verdict"], "ACCEPT");
    assert!(codes(&steps[6].1["report"]).contains(&"SUSPENDED".to_owned()));
    assert_eq!(steps[7].1["result"]["report"]["verdict"], "ACCEPT");
}
