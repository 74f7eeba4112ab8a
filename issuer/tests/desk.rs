//! The library the agency desk calls: roles checked in the library, the application lifecycle
//! as compare-and-swaps (one of two racing decisions wins), claims checked field by field,
//! credential search and status history, the audit report and the keys.

use std::sync::{Arc, Barrier};

use bizcred_core::status_list::{self, Status};
use bizcred_core::webvh;
use bizcred_issuer::store::{
    verify_audit, AccessToken, AppStatus, Application, CredentialRecord, CredentialStatus, Offer,
};
use bizcred_issuer::{
    Actor, ApplicationFilter, AuditChain, Config, Error, Issuer, StaffRole, StatusAction,
};
use bizcred_schemas::{CredentialType, ReasonCode};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

fn now() -> i64 {
    1_790_000_000
}

struct Fx {
    _dir: tempfile::TempDir,
    issuer: Arc<Issuer>,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = format!(
        "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"http://localhost:18097\"\nlisten = \"127.0.0.1:18097\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\", \"business-number\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
        dir.path().join("data").to_string_lossy(),
        "00".repeat(32)
    );
    let config = Config::parse(&cfg).expect("config");
    let (issuer, _) =
        Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    Fx {
        _dir: dir,
        issuer: Arc::new(issuer),
    }
}

fn clerk() -> Actor {
    Actor::staff("clara", StaffRole::Clerk)
}

fn approver() -> Actor {
    Actor::staff("alain", StaffRole::Approver)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("an object"),
    }
}

fn incorporation() -> Map<String, Value> {
    object(
        serde_json::from_str(include_str!(
            "../../schemas/examples/valid/certificate-of-incorporation.json"
        ))
        .expect("json"),
    )
}

fn business_number() -> Map<String, Value> {
    object(
        serde_json::from_str(include_str!(
            "../../schemas/examples/valid/business-number.json"
        ))
        .expect("json"),
    )
}

/// A certificate-of-incorporation application awaiting approval.
fn application(f: &Fx) -> String {
    let (app, uri) = f
        .issuer
        .create_application(&clerk(), "certificate-of-incorporation", incorporation())
        .expect("open");
    assert_eq!((app.status, uri), (AppStatus::AwaitingApproval, None));
    app.id
}

/// A business-number application whose legal name and corporation number were verified
/// from the applicant's certificate of incorporation (as a presentation leaves it).
fn verified_application(f: &Fx) -> String {
    let app = Application {
        id: "app-verified".into(),
        credential_type: "business-number".into(),
        status: AppStatus::AwaitingApproval,
        claims: business_number(),
        verified_claims: vec!["legal_name".into(), "corporation_number".into()],
        nonce: Some("n".into()),
        nonce_used: true,
        holder_thumbprint: None,
        verification: None,
        offer_id: None,
        created: now(),
        history: Vec::new(),
        dependencies: Default::default(),
        capability: None,
    };
    f.issuer
        .store
        .put_application(&app, now(), Some("prerequisites_verified"))
        .expect("store");
    app.id
}

/// Issues a credential for an application with `claims` (through the store's own paths);
/// returns the credential's id.
fn issued(f: &Fx, n: usize, claims: Map<String, Value>, at: i64) -> String {
    let store = &f.issuer.store;
    let app = Application {
        id: format!("app-{n}"),
        credential_type: "certificate-of-incorporation".into(),
        status: AppStatus::Offered,
        claims,
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
        vct: CredentialType::CertificateOfIncorporation.vct().into(),
        status_list: 1,
        status_idx: 10 + n as u64,
        status: CredentialStatus::Valid,
        issued_at: at,
        kid: f.issuer.kid(),
        credential_sha256: "00".repeat(32),
        history: Vec::new(),
    };
    store.record_issuance(&rec, &token, at).expect("issue");
    rec.id
}

#[tokio::test]
async fn a_clerk_may_not_approve_revoke_or_rotate_and_nothing_changes() {
    let f = fixture();
    let id = application(&f);
    let e = f
        .issuer
        .approve(&clerk(), &id, Map::new())
        .expect_err("clerk");
    assert_eq!(e.code(), ReasonCode::StaffForbidden);
    assert!(e.to_string().contains("clara"), "{e}");
    for e in [
        f.issuer.refuse(&clerk(), &id, "no").expect_err("clerk"),
        f.issuer
            .rotate_key(&approver())
            .await
            .expect_err("approver"),
    ] {
        assert_eq!(e.code(), ReasonCode::StaffForbidden, "{e}");
    }
    assert_eq!(
        f.issuer.application(&id).expect("app").status,
        AppStatus::AwaitingApproval
    );
    let cred = issued(&f, 1, incorporation(), now());
    for action in StatusAction::ALL {
        let e = f
            .issuer
            .set_status(&clerk(), &cred, action, Some("why"))
            .expect_err("clerk");
        assert_eq!(e.code(), ReasonCode::StaffForbidden, "{action}");
    }
    let rec = f.issuer.credential_view(&cred).expect("view").record;
    assert_eq!(
        (rec.status, rec.history.len()),
        (CredentialStatus::Valid, 0)
    );
    // What a clerk may do, a clerk does.
    let app = f
        .issuer
        .request_changes(&clerk(), &id, "the office address is out of date")
        .expect("request changes");
    assert_eq!(app.status, AppStatus::ChangesRequested);
    // Automation (the admin token) keeps every power.
    let app = f
        .issuer
        .update_claims(&Actor::Automation, &id, Map::new())
        .expect("resubmit");
    assert_eq!(app.status, AppStatus::AwaitingApproval);
    f.issuer
        .approve(&Actor::Automation, &id, Map::new())
        .expect("approve");
}

#[test]
fn refusing_needs_a_reason_and_is_final() {
    let f = fixture();
    let id = application(&f);
    for blank in ["", "   \n\t"] {
        let e = f.issuer.refuse(&approver(), &id, blank).expect_err("blank");
        assert_eq!(e.code(), ReasonCode::ReasonRequired);
        let e = f
            .issuer
            .request_changes(&clerk(), &id, blank)
            .expect_err("blank");
        assert_eq!(e.code(), ReasonCode::ReasonRequired);
    }
    let long = "x".repeat(bizcred_issuer::issuer::MAX_REASON_CHARS + 1);
    assert_eq!(
        f.issuer
            .refuse(&approver(), &id, &long)
            .expect_err("long")
            .code(),
        ReasonCode::ReasonTooLong
    );
    assert_eq!(
        f.issuer.application(&id).expect("app").status,
        AppStatus::AwaitingApproval
    );
    let app = f
        .issuer
        .refuse(&approver(), &id, "  not a corporation of Ontario ")
        .expect("refuse");
    assert_eq!(app.status, AppStatus::Refused);
    let last = app.history.last().expect("event");
    assert_eq!(
        (&last.actor, last.note.as_deref()),
        (&approver(), Some("not a corporation of Ontario"))
    );
    let e = f
        .issuer
        .approve(&approver(), &id, Map::new())
        .expect_err("refused");
    assert!(
        matches!(
            &e,
            Error::NotAwaitingApproval {
                status: AppStatus::Refused,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), ReasonCode::ApplicationNotAwaitingApproval);
    let e = f
        .issuer
        .withdraw(&clerk(), &id, "the applicant called")
        .expect_err("decided");
    assert_eq!(e.code(), ReasonCode::ApplicationNotWithdrawable);
}

#[test]
fn a_claim_verified_from_a_prerequisite_cannot_be_edited() {
    let f = fixture();
    let id = verified_application(&f);
    let e = f
        .issuer
        .update_claims(
            &clerk(),
            &id,
            object(json!({"legal_name": "Someone Else Inc."})),
        )
        .expect_err("verified");
    assert!(
        matches!(&e, Error::VerifiedClaimChanged { claim } if claim == "legal_name"),
        "{e:?}"
    );
    assert_eq!(e.code(), ReasonCode::VerifiedClaimChanged);
    // Nor removed, nor changed at approval.
    let e = f
        .issuer
        .update_claims(&clerk(), &id, object(json!({"corporation_number": null})))
        .expect_err("verified");
    assert_eq!(e.code(), ReasonCode::VerifiedClaimChanged);
    let e = f
        .issuer
        .approve(&approver(), &id, object(json!({"legal_name": "X Inc."})))
        .expect_err("verified");
    assert_eq!(e.code(), ReasonCode::VerifiedClaimChanged);
    // The same value (a form posts every field) and staff-entered claims are fine.
    let app = f
        .issuer
        .update_claims(
            &clerk(),
            &id,
            object(json!({"legal_name": "Jennifer Ventures Inc.", "operating_name": "Jen's"})),
        )
        .expect("staff claims");
    assert_eq!(app.claims["operating_name"], "Jen's");
    assert_eq!(app.history.last().expect("event").actor, clerk());
}

#[test]
fn schema_errors_name_each_field_and_nothing_is_saved() {
    let f = fixture();
    let id = application(&f);
    let bad = object(json!({
        "corporation_number": "12",
        "registered_office_address": {"street_address": "1 Main St", "locality": "Toronto",
            "region": "ON", "postal_code": "D6J 2Y7", "country": "CA"},
        "entity_type": null,
        "favourite_colour": "blue",
    }));
    let e = f
        .issuer
        .update_claims(&clerk(), &id, bad.clone())
        .expect_err("invalid");
    assert_eq!(e.code(), ReasonCode::ClaimsInvalid);
    let Error::ClaimsInvalid { violations, .. } = &e else {
        panic!("{e:?}")
    };
    let fields: Vec<(&str, ReasonCode)> = violations
        .iter()
        .map(|v| (v.field.as_str(), v.code))
        .collect();
    for want in [
        ("/corporation_number", ReasonCode::SchemaPattern),
        (
            "/registered_office_address/postal_code",
            ReasonCode::SchemaPattern,
        ),
        ("/entity_type", ReasonCode::SchemaRequired),
        ("/favourite_colour", ReasonCode::SchemaAdditionalProperties),
    ] {
        assert!(
            fields.iter().any(|(f, _)| *f == want.0),
            "{want:?} not in {fields:?}"
        );
    }
    assert!(violations.iter().all(|v| !v.message.is_empty()));
    assert_eq!(
        f.issuer.application(&id).expect("app").claims,
        incorporation()
    );
    // Approval checks the same way.
    let e = f
        .issuer
        .approve(&approver(), &id, bad)
        .expect_err("invalid");
    assert_eq!(e.code(), ReasonCode::ClaimsInvalid);
}

#[test]
fn of_two_racing_decisions_exactly_one_wins() {
    let f = fixture();
    for round in 0..6 {
        let id = application(&f);
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (issuer, id, barrier) = (f.issuer.clone(), id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Odd rounds race an approval against a refusal.
                    if t == 1 && round % 2 == 1 {
                        issuer.refuse(&approver(), &id, "duplicate").map(|_| ())
                    } else {
                        issuer.approve(&approver(), &id, Map::new()).map(|_| ())
                    }
                })
            })
            .collect();
        let outcomes: Vec<Result<(), Error>> = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        let lost = outcomes
            .into_iter()
            .find_map(Result::err)
            .expect("one lost");
        let now = f.issuer.application(&id).expect("app").status;
        assert!(
            matches!(&lost, Error::NotAwaitingApproval { status, .. } if *status == now),
            "round {round}: {lost:?}"
        );
        assert_eq!(lost.code(), ReasonCode::ApplicationNotAwaitingApproval);
        assert!(matches!(now, AppStatus::Offered | AppStatus::Refused));
    }
    // One offer per approved application, one decision event each.
    let entries = f.issuer.store.audit_entries().expect("audit");
    let decided = entries
        .iter()
        .filter(|e| e["event"] == "offer_created" || e["event"] == "application_refused")
        .count();
    assert_eq!(decided, 6);
}

#[tokio::test]
async fn a_suspension_keeps_its_history_and_the_served_list_shows_it_on_return() {
    let f = fixture();
    let cred = issued(&f, 1, incorporation(), now());
    let idx = f
        .issuer
        .credential_view(&cred)
        .expect("view")
        .record
        .status_idx;
    let e = f
        .issuer
        .set_status_published(&approver(), &cred, StatusAction::Suspend, None)
        .await
        .expect_err("no reason");
    assert_eq!(e.code(), ReasonCode::ReasonRequired);
    let rec = f
        .issuer
        .set_status_published(
            &approver(),
            &cred,
            StatusAction::Suspend,
            Some(" licence under review "),
        )
        .await
        .expect("suspend");
    assert_eq!(rec.status, CredentialStatus::Suspended);
    let change = rec.history.last().expect("history");
    assert_eq!(
        (
            change.status,
            &change.actor,
            change.reason.as_deref(),
            change.time
        ),
        (
            CredentialStatus::Suspended,
            &approver(),
            Some("licence under review"),
            now()
        )
    );
    // What `/status/1` serves already holds the change.
    let key = webvh::verify_log(&f.issuer.did_log().expect("log"), None, now())
        .versions
        .last()
        .expect("version")
        .verification_method(&f.issuer.kid())
        .expect("key");
    let served = |want: Status| {
        let token = f.issuer.status_list(1).expect("list");
        let v = status_list::verify_token(&token, &f.issuer.status_uri(1), &key, now() + 5)
            .expect("verifies");
        assert_eq!(v.list.get(idx), Ok(want));
    };
    served(Status::Suspended);
    // Reinstating may carry no reason; revoking is final.
    f.issuer
        .set_status_published(&approver(), &cred, StatusAction::Reinstate, None)
        .await
        .expect("reinstate");
    served(Status::Valid);
    f.issuer
        .set_status_published(&approver(), &cred, StatusAction::Revoke, Some("fraud"))
        .await
        .expect("revoke");
    served(Status::Invalid);
    let e = f
        .issuer
        .set_status_published(&approver(), &cred, StatusAction::Reinstate, Some("oops"))
        .await
        .expect_err("final");
    assert_eq!(e.code(), ReasonCode::RevokedIsFinal);
    let view = f.issuer.credential_view(&cred).expect("view");
    let history: Vec<(CredentialStatus, Option<&str>)> = view
        .record
        .history
        .iter()
        .map(|c| (c.status, c.reason.as_deref()))
        .collect();
    assert_eq!(
        history,
        vec![
            (CredentialStatus::Suspended, Some("licence under review")),
            (CredentialStatus::Valid, None),
            (CredentialStatus::Revoked, Some("fraud")),
        ]
    );
    assert!("unsuspend".parse::<StatusAction>().is_err());
}

#[test]
fn credentials_are_found_by_each_key() {
    let f = fixture();
    let jennifer = issued(&f, 1, incorporation(), now() - 100);
    let other = issued(
        &f,
        2,
        object(
            json!({"licensee_legal_name": "Harbour Bistro Ltd.", "licence_number": "LSL-555001",
            "business_number": "123456782", "corporation_number": "7654321"}),
        ),
        now() - 50,
    );
    let mut with_bn = incorporation();
    with_bn.insert("business_number".into(), "812345676".into());
    let jennifer_bn = issued(&f, 3, with_bn, now());
    let ids = |q: &str| -> Vec<String> {
        f.issuer
            .search_credentials(q, 10)
            .expect("search")
            .into_iter()
            .map(|v| v.record.id)
            .collect()
    };
    // Newest first.
    assert_eq!(ids("812 345 676"), vec![jennifer_bn.clone()]);
    assert_eq!(ids("5012345"), vec![jennifer_bn.clone(), jennifer.clone()]);
    assert_eq!(ids("lsl-555001"), vec![other.clone()]);
    assert_eq!(
        ids("jennifer VENTURES"),
        vec![jennifer_bn.clone(), jennifer.clone()]
    );
    assert_eq!(ids("harbour"), vec![other.clone()]);
    assert_eq!(ids("123456782"), vec![other.clone()]);
    assert!(ids("501234").is_empty(), "identifiers match whole");
    assert_eq!(ids(&other), vec![other.clone()]);
    assert_eq!(ids("").len(), 3);
    let found = f.issuer.search_credentials("harbour", 10).expect("search");
    let v = &found[0];
    assert_eq!(
        (
            v.claims.legal_name.as_deref(),
            v.claims.licence_number.as_deref(),
            v.record.status,
            v.credential_type
        ),
        (
            Some("Harbour Bistro Ltd."),
            Some("LSL-555001"),
            CredentialStatus::Valid,
            Some(CredentialType::CertificateOfIncorporation)
        )
    );
    assert_eq!(
        f.issuer.search_credentials("", 2).expect("bounded").len(),
        2
    );
}

#[tokio::test]
async fn the_audit_names_every_actor_and_its_chain_verifies() {
    let f = fixture();
    // Issued through the store's own paths first (its offer names no actor).
    let cred = issued(&f, 1, incorporation(), now());
    let id = application(&f);
    f.issuer
        .request_changes(&clerk(), &id, "a director is missing")
        .expect("changes");
    f.issuer
        .update_claims(&clerk(), &id, Map::new())
        .expect("resubmit");
    f.issuer
        .approve(&approver(), &id, Map::new())
        .expect("approve");
    f.issuer
        .set_status(&approver(), &cred, StatusAction::Suspend, Some("audit"))
        .expect("suspend");
    let report = f.issuer.audit_report(100).expect("report");
    assert_eq!(
        report.chain,
        AuditChain::Intact {
            entries: report.total
        }
    );
    assert!(verify_audit(&f.issuer.store.audit_entries().expect("entries")).is_ok());
    let by = |event: &str| {
        report
            .entries
            .iter()
            .find(|e| e.event == event)
            .unwrap_or_else(|| panic!("no {event}"))
    };
    assert_eq!(by("application_created").actor, Some(clerk()));
    let asked = by("changes_requested");
    assert_eq!(asked.actor, Some(clerk()));
    assert_eq!(asked.details["reason"], "a director is missing");
    assert_eq!(
        asked.details["actor"],
        json!({"kind": "staff", "name": "clara", "role": "clerk"})
    );
    assert_eq!(by("claims_updated").actor, Some(clerk()));
    assert_eq!(by("offer_created").actor, Some(approver()));
    let suspended = by("status_changed");
    assert_eq!(suspended.actor, Some(approver()));
    assert_eq!(suspended.details["reason"], "audit");
    // Newest first, bounded.
    assert!(report.entries.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(f.issuer.audit_report(2).expect("report").entries.len(), 2);
}

#[test]
fn the_queue_filters_by_state_and_type_oldest_first_and_bounded() {
    let f = fixture();
    let a = application(&f);
    let b = application(&f);
    let c = verified_application(&f);
    f.issuer
        .withdraw(&clerk(), &b, "the applicant withdrew")
        .expect("withdraw");
    let all = f
        .issuer
        .applications_by(&ApplicationFilter::default())
        .expect("all");
    assert_eq!(all.matched, 3);
    let waiting = f
        .issuer
        .applications_by(&ApplicationFilter {
            states: vec![AppStatus::AwaitingApproval],
            ..ApplicationFilter::default()
        })
        .expect("waiting");
    let mut ids: Vec<&str> = waiting.items.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![a.as_str(), c.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    let bn = f
        .issuer
        .applications_by(&ApplicationFilter {
            credential_type: Some(CredentialType::BusinessNumber),
            ..ApplicationFilter::default()
        })
        .expect("type");
    assert_eq!(
        bn.items.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [c.as_str()]
    );
    let one = f
        .issuer
        .applications_by(&ApplicationFilter {
            limit: 1,
            ..ApplicationFilter::default()
        })
        .expect("one");
    assert_eq!((one.items.len(), one.matched), (1, 3));
    assert_eq!(
        f.issuer
            .applications_by(&ApplicationFilter {
                states: vec![AppStatus::Withdrawn],
                ..ApplicationFilter::default()
            })
            .expect("withdrawn")
            .items[0]
            .id,
        b
    );
    assert_eq!(
        "changes_requested".parse::<AppStatus>().expect("state"),
        AppStatus::ChangesRequested
    );
    assert_eq!(
        "pending".parse::<AppStatus>().expect_err("unknown").code(),
        ReasonCode::NameUnknown
    );
}

#[test]
fn an_offered_application_cannot_be_withdrawn_and_the_key_is_shown() {
    let f = fixture();
    let id = application(&f);
    let offered = f
        .issuer
        .approve(&approver(), &id, Map::new())
        .expect("approve");
    let tx = offered.tx_code.clone().expect("staff hand over the code");
    assert_eq!(tx.len(), 6);
    assert!(!format!("{offered:?}").contains(&tx));
    let e = f
        .issuer
        .withdraw(&clerk(), &id, "too late")
        .expect_err("offered");
    assert!(
        matches!(
            &e,
            Error::NotWithdrawable {
                status: AppStatus::Offered,
                ..
            }
        ),
        "{e:?}"
    );
    let key = f.issuer.key_info().expect("key");
    assert_eq!(key.kid, f.issuer.kid());
    assert_eq!(
        (key.key_number, key.did_version, key.newest_version),
        (1, Some(1), 1)
    );
    assert_eq!(key.created, Some(now() - 10));
    assert!(key.public_key.starts_with('z'));
}

#[test]
fn records_written_before_histories_still_decode() {
    let app: Application = serde_json::from_value(json!({
        "id": "a1", "credential_type": "business-number", "status": "offered",
        "claims": {}, "created": 1
    }))
    .expect("old application");
    assert!(app.history.is_empty());
    let rec: CredentialRecord = serde_json::from_value(json!({
        "id": "c1", "application_id": "a1", "vct": "x", "status_idx": 9, "status": "suspended",
        "issued_at": 1, "kid": "k", "credential_sha256": "00"
    }))
    .expect("old record");
    assert!(rec.history.is_empty());
    assert_eq!(rec.status_list, 1);
}
