//! The repository over real storage and a real index: intake verified against a trust bundle
//! (refusals with their codes), search by misspelt French name, business number and
//! corporation number, filters, ranking, bad queries, business pages with the name history,
//! status refreshes, and the index rebuilt from the store.

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::status_list::Status;
use bizcred_repository::{Repository, SearchQuery};
use bizcred_schemas::ReasonCode;
use bizcred_test_support::{example_claims, Credential};
use rand_core::OsRng;

mod common;

use common::{claims, World, INC, ISSUED, NOW};

fn search(r: &Repository, q: &str) -> Vec<(String, String)> {
    r.search(&SearchQuery {
        q: q.into(),
        ..SearchQuery::default()
    })
    .expect("search")
    .results
    .into_iter()
    .map(|s| (s.subject, s.name))
    .collect()
}

fn population(w: &World) -> Vec<String> {
    let names = [
        (
            "1000001",
            "Boulangerie Éloïse Inc.",
            "active",
            "Sudbury",
            "123456782",
        ),
        (
            "1000002",
            "Maple Leaf Plumbing Ltd.",
            "active",
            "Toronto",
            "812345676",
        ),
        (
            "1000003",
            "Les Entreprises Gagné Ltée",
            "active",
            "Hearst",
            "100000009",
        ),
        (
            "1000004",
            "Boulangerie Éloïse du Nord Inc.",
            "dissolved",
            "Timmins",
            "100000017",
        ),
        (
            "1000005",
            "Boulangerie Éloïse Centre Inc.",
            "active",
            "Ottawa",
            "100000025",
        ),
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, (corp, name, status, town, bn))| {
            w.record(claims(corp, name, status, town, bn), 10 + i as u64, ISSUED)
        })
        .collect()
}

#[test]
fn intake_verifies_each_credential_and_refuses_with_the_reason() {
    let mut w = World::new();
    w.list.set(99, Status::Invalid).expect("revoke");
    let repo = w.open();
    let mut batch = population(&w);
    // Signed by the CRA, trusted but not for incorporations.
    batch.push(
        w.cra
            .issue_public(
                INC,
                claims("2000001", "Impostor Inc.", "active", "Toronto", "123456782"),
                5,
                ISSUED,
            )
            .serialize(),
    );
    // A business's own credential, bound to its key.
    let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
    batch.push(
        w.obr
            .issue(Credential {
                ty: INC,
                claims: example_claims(INC),
                holder: &holder.public_key(),
                status_idx: 6,
                iat: ISSUED,
                exp: None,
                decoys: 0,
            })
            .serialize(),
    );
    batch.push("not a credential".into());
    batch.push("x".repeat(20_000));
    // Revoked by the OBR: held, shown revoked.
    batch.push(w.record(
        claims(
            "1000099",
            "Revoked Holdings Inc.",
            "active",
            "Kingston",
            "100000033",
        ),
        99,
        ISSUED,
    ));
    let report = repo.intake(&batch).expect("intake");
    repo.commit().expect("commit");
    assert_eq!((report.accepted, report.refused), (6, 4), "{report:?}");
    let codes: Vec<(usize, ReasonCode)> =
        report.refusals.iter().map(|r| (r.index, r.code)).collect();
    assert_eq!(
        codes,
        vec![
            (5, ReasonCode::IssuerNotAuthorized),
            (6, ReasonCode::PublicRecordHolderBound),
            (7, ReasonCode::PublicRecordRefused),
            (8, ReasonCode::PublicRecordTooLarge),
        ]
    );
    // Nothing of the refused ones is searchable; the revoked one is, and says so.
    assert!(search(&repo, "Impostor").is_empty());
    let b = repo.business("1000099").expect("business");
    assert_eq!(b.credentials[0].status, "revoked");
    // Taken again: held already, nothing written twice.
    let again = repo.intake(&batch[..5]).expect("intake");
    assert_eq!((again.accepted, again.already_held), (0, 5));
}

#[test]
fn search_finds_misspelt_french_names_numbers_and_filters_with_active_first() {
    let w = World::new();
    let repo = w.open();
    repo.intake(&population(&w)).expect("intake");
    repo.commit().expect("commit");
    // One typo and no accents: "Boulangrie Eloise".
    let hits = search(&repo, "boulangrie eloise");
    assert_eq!(hits.len(), 3, "{hits:?}");
    // The dissolved one comes last, whatever its text score.
    assert_eq!(hits[2].0, "1000004");
    assert!(search(&repo, "GAGNE").iter().any(|(s, _)| s == "1000003"));
    assert_eq!(search(&repo, "Maple Leaf Plum")[0].0, "1000002");
    // Exact numbers, with spaces or dashes.
    assert_eq!(
        search(&repo, "812 345 676"),
        vec![("1000002".into(), "Maple Leaf Plumbing Ltd.".into())]
    );
    assert_eq!(search(&repo, "1000003")[0].0, "1000003");
    assert!(search(&repo, "81234567").is_empty());
    // Filters.
    let only_dissolved = repo
        .search(&SearchQuery {
            q: "eloise".into(),
            status: Some("dissolved".into()),
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!(only_dissolved.total, 1);
    let in_ottawa = repo
        .search(&SearchQuery {
            q: "boulangerie".into(),
            municipality: Some("OTTAWA".into()),
            ..SearchQuery::default()
        })
        .expect("search");
    assert_eq!(in_ottawa.results[0].subject, "1000005");
    // Operators are words, not a query language.
    assert!(search(&repo, "name:\"x\" OR * AND -( ~2 ^9").is_empty());
    // Refused with the code: too long, nothing to search, an unknown filter value.
    for q in [
        SearchQuery {
            q: "a".repeat(201),
            ..SearchQuery::default()
        },
        SearchQuery {
            q: " - ' ".into(),
            ..SearchQuery::default()
        },
        SearchQuery {
            q: "eloise".into(),
            status: Some("bankrupt".into()),
            ..SearchQuery::default()
        },
        SearchQuery {
            q: "eloise".into(),
            page: Some(10_000),
            ..SearchQuery::default()
        },
    ] {
        let e = repo.search(&q).expect_err("refused");
        assert_eq!(e.code(), ReasonCode::SearchQueryInvalid, "{q:?}");
    }
}

#[test]
fn a_business_page_has_every_credential_its_name_history_and_statuses_refreshed() {
    let mut w = World::new();
    let repo = w.open();
    let old = w.record(
        claims(
            "1000001",
            "Boulangerie Éloïse Inc.",
            "active",
            "Sudbury",
            "123456782",
        ),
        10,
        ISSUED,
    );
    let new = w.record(
        claims(
            "1000001",
            "Pâtisserie Éloïse Inc.",
            "active",
            "Sudbury",
            "123456782",
        ),
        11,
        ISSUED + 86_400,
    );
    repo.intake(&[old, new]).expect("intake");
    repo.commit().expect("commit");
    // The issuer revokes the old one (replaced): the next bundle's list says so.
    w.list.set(10, Status::Invalid).expect("revoke");
    drop(repo);
    let repo = w.open();
    let (lists, changed) = repo.refresh_statuses().expect("refresh");
    assert_eq!((lists, changed), (1, 1));
    let b = repo.business("1000001").expect("business");
    assert_eq!(b.summary.name, "Pâtisserie Éloïse Inc.");
    assert_eq!(
        b.summary.former_names,
        vec!["Boulangerie Éloïse Inc.".to_owned()]
    );
    assert_eq!(
        b.name_history
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        vec!["Boulangerie Éloïse Inc.", "Pâtisserie Éloïse Inc."]
    );
    assert_eq!(b.credentials.len(), 2);
    assert_eq!(b.credentials[0].status, "valid");
    assert_eq!(b.credentials[1].status, "revoked");
    assert_eq!(
        b.credentials[0].issuer_fr.as_deref(),
        Some("Registre des entreprises de l'Ontario")
    );
    assert_eq!(b.credentials[0].status_as_of, NOW - 600);
    // Found by its former name too.
    assert_eq!(search(&repo, "boulangerie eloise")[0].0, "1000001");
    // The raw credential, byte for byte.
    let text = repo
        .credential_text(&b.credentials[0].id)
        .expect("read")
        .expect("held");
    assert!(text.starts_with("ey"));
    assert_eq!(
        repo.business("9999999").expect_err("none").code(),
        ReasonCode::BusinessNotFound
    );
    assert_eq!(
        repo.business("../../etc").expect_err("none").code(),
        ReasonCode::BusinessNotFound
    );
}

#[test]
fn the_index_is_rebuilt_from_the_stored_credentials() {
    let w = World::new();
    let repo = w.open();
    repo.intake(&population(&w)).expect("intake");
    repo.commit().expect("commit");
    // Equal scores may come in another order from a rebuilt index: compared as sets, with
    // the dissolved one last in both.
    let sorted = |mut v: Vec<(String, String)>| {
        let last = v.last().cloned();
        v.sort();
        (v, last)
    };
    let before = sorted(search(&repo, "eloise"));
    assert_eq!(before.0.len(), 3);
    repo.index.clear().expect("clear");
    repo.commit().expect("commit");
    assert!(search(&repo, "eloise").is_empty());
    assert_eq!(repo.reindex().expect("reindex"), 5);
    assert_eq!(sorted(search(&repo, "eloise")), before);
}

#[test]
fn batches_taken_in_a_pipeline_number_their_refusals_across_batches() {
    let w = World::new();
    let repo = w.open();
    let good = population(&w);
    let second = vec![good[3].clone(), "garbage".to_owned(), good[4].clone()];
    let report = repo
        .intake_all(vec![good[..3].to_vec(), second, good[..1].to_vec()].into_iter())
        .expect("intake");
    repo.commit().expect("commit");
    assert_eq!(
        (report.accepted, report.already_held, report.refused),
        (5, 1, 1)
    );
    assert_eq!(report.refusals[0].index, 4);
    assert_eq!(report.refusals[0].code, ReasonCode::PublicRecordRefused);
    assert_eq!(search(&repo, "gagne")[0].0, "1000003");
}
