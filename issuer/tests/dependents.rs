//! A downstream agency reacts to an upstream agency's events (issue #14), two issuers in
//! process: the City suspends a municipal licence; AGCO takes the City's signed event page and
//! flags the liquor licence application (and the credential issued from it) that depended on
//! it, suspending that credential when its policy says so; the City's reinstatement clears the
//! flag and reinstates what was suspended automatically. A page with a bad signature, out of
//! order, or from another agency is refused and the kept cursor does not move; an unreachable
//! agency is an error with its code.

use std::sync::Arc;

use bizcred_core::trust::state::TrustState;
use bizcred_issuer::config::UpstreamConfig;
use bizcred_issuer::store::{
    AccessToken, AppStatus, Application, CredentialRecord, CredentialStatus, EventKind, Offer,
    PrerequisiteRef,
};
use bizcred_issuer::{Actor, Config, Issuer, StaffRole, StatusAction};
use bizcred_schemas::{CredentialType, ReasonCode};
use bizcred_test_support::InMemoryRegistry;
use serde_json::{json, Map};
use zeroize::Zeroizing;

const CITY: &str = "http://localhost:18091";
const AGCO: &str = "http://localhost:18092";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn issuer(dir: &tempfile::TempDir, url: &str, ty: &str, extra: &str) -> Arc<Issuer> {
    let port = url.rsplit(':').next().expect("port");
    let cfg = format!(
        "[agency]\nname_en = \"Agency\"\nname_fr = \"Agence\"\n[server]\npublic_url = \"{url}\"\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"{ty}\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n{extra}",
        dir.path().join(ty).to_string_lossy(),
        "00".repeat(32)
    );
    let config = Config::parse(&cfg).expect("config");
    let (issuer, _) =
        Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now).expect("create");
    Arc::new(issuer)
}

/// Issues a credential of `ty` for application `app-{n}` through the store's own paths,
/// the application depending on `prereq`; returns the credential's record.
fn issued(
    issuer: &Issuer,
    n: usize,
    ty: CredentialType,
    prereq: Vec<PrerequisiteRef>,
) -> CredentialRecord {
    let at = now();
    let store = &issuer.store;
    let mut app = Application {
        id: format!("app-{n}"),
        credential_type: ty.slug().into(),
        status: AppStatus::Offered,
        claims: Map::from_iter([("business_number".to_owned(), json!("812345676"))]),
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
    app.dependencies.prerequisites = prereq;
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
        vct: ty.vct().into(),
        status_list: 1,
        status_idx: 40 + n as u64,
        status: CredentialStatus::Valid,
        issued_at: at,
        kid: issuer.kid(),
        credential_sha256: "00".repeat(32),
        history: Vec::new(),
    };
    store.record_issuance(&rec, &token, at).expect("issue");
    rec
}

struct World {
    _dir: tempfile::TempDir,
    city: Arc<Issuer>,
    agco: Arc<Issuer>,
    trust: TrustState,
    up: UpstreamConfig,
    licence: CredentialRecord,
    liquor: CredentialRecord,
}

fn world(policy: &str) -> World {
    let dir = tempfile::tempdir().expect("tmp");
    let city = issuer(&dir, CITY, "municipal-business-licence", "");
    let extra = format!("[[subscription]]\nurl = \"{CITY}\"\n{policy}");
    let agco = issuer(&dir, AGCO, "liquor-sales-licence", &extra);
    let t = now();
    let mut registry = InMemoryRegistry::new("registry.test/log", t - 100, t);
    registry.onboard_did(
        &city.did,
        &city.did_log().expect("log"),
        "City",
        "Ville",
        &[CredentialType::MunicipalBusinessLicence],
        t,
    );
    registry.onboard_did(
        &agco.did,
        &agco.did_log().expect("log"),
        "AGCO",
        "CAJO",
        &[CredentialType::LiquorSalesLicence],
        t,
    );
    let trust = registry.verifier_state(t, Vec::new(), t);
    let licence = issued(
        &city,
        1,
        CredentialType::MunicipalBusinessLicence,
        Vec::new(),
    );
    // AGCO's application kept the licence's status list entry from the presentation.
    let prereq = PrerequisiteRef {
        vct: CredentialType::MunicipalBusinessLicence.vct().into(),
        issuer: city.did.clone(),
        status_list: format!("{CITY}/status/1"),
        status_idx: licence.status_idx,
    };
    let liquor = issued(&agco, 7, CredentialType::LiquorSalesLicence, vec![prereq]);
    let up = agco.config.subscriptions[0].clone();
    World {
        _dir: dir,
        city,
        agco,
        trust,
        up,
        licence,
        liquor,
    }
}

impl World {
    /// AGCO takes every City event after its kept cursor, as the poller does.
    fn poll(&self) -> bizcred_issuer::issuer::dependents::Polled {
        let after = self.agco.upstream_cursor(&self.up).expect("cursor");
        let (token, _) = self.city.event_page(after, 100).expect("page");
        self.agco
            .take_event_page(&self.up, &token, &self.trust)
            .expect("taken")
    }

    fn audit_events(&self) -> Vec<String> {
        self.agco
            .store
            .audit_entries()
            .expect("audit")
            .iter()
            .filter_map(|e| e.get("event").and_then(|v| v.as_str()).map(str::to_owned))
            .collect()
    }
}

#[test]
fn a_suspended_municipal_licence_flags_the_liquor_licence_that_depended_on_it() {
    let w = world("");
    // The subscription names the City by its URL only: its DID is the registered issuer's.
    assert_eq!(w.up.did, None);
    // Issuance upstream is no cause for review.
    let p = w.poll();
    assert_eq!((p.events, p.flagged), (1, 0));
    assert!(w
        .agco
        .store
        .application("app-7")
        .expect("app")
        .dependencies
        .flags
        .is_empty());

    w.city
        .set_status(
            &Actor::Automation,
            &w.licence.id,
            StatusAction::Suspend,
            Some("inspection failed"),
        )
        .expect("suspend");
    let p = w.poll();
    assert_eq!((p.events, p.flagged, p.suspended), (1, 1, 0));
    let app = w.agco.store.application("app-7").expect("app");
    assert_eq!(app.dependencies.flags.len(), 1);
    let flag = &app.dependencies.flags[0];
    assert_eq!(flag.event, EventKind::CredentialSuspended);
    assert_eq!(flag.upstream, w.city.did);
    assert_eq!(flag.seq, 2);
    assert_eq!(flag.status_idx, w.licence.status_idx);
    assert!(flag.auto_suspended.is_empty());
    // Policy off: the liquor licence stays valid, the flag is for review.
    assert_eq!(
        w.agco.store.credential(&w.liquor.id).expect("rec").status,
        CredentialStatus::Valid
    );
    // The audit log names the cause.
    let entries = w.agco.store.audit_entries().expect("audit");
    let flagged = entries
        .iter()
        .find(|e| e.get("event").and_then(|v| v.as_str()) == Some("prerequisite_flagged"))
        .expect("audited");
    let text = flagged.to_string();
    assert!(text.contains(&w.city.did), "{text}");
    assert!(text.contains("credential_suspended"), "{text}");
    assert!(text.contains("app-7"), "{text}");
    assert_eq!(w.agco.upstream_cursor(&w.up).expect("cursor"), 2);

    // The same page again is a replay: refused, nothing changes.
    let (old, _) = w.city.event_page(1, 100).expect("page");
    let e = w
        .agco
        .take_event_page(&w.up, &old, &w.trust)
        .expect_err("replay");
    assert_eq!(e.code(), ReasonCode::EventPageReplayed);
    assert_eq!(w.agco.upstream_cursor(&w.up).expect("cursor"), 2);

    // Reinstated upstream: the flag is cleared, audited.
    w.city
        .set_status(
            &Actor::Automation,
            &w.licence.id,
            StatusAction::Reinstate,
            None,
        )
        .expect("reinstate");
    let p = w.poll();
    assert_eq!((p.events, p.cleared, p.reinstated), (1, 1, 0));
    assert!(w
        .agco
        .store
        .application("app-7")
        .expect("app")
        .dependencies
        .flags
        .is_empty());
    assert!(w
        .audit_events()
        .contains(&"prerequisite_flag_cleared".to_owned()));
}

/// A reinstatement older than the suspension that holds the flag (a page read again, another
/// instance's cursor) reinstates nothing; a suspension staff made since the automatic one is
/// kept when the prerequisite comes back.
#[test]
fn a_stale_reinstatement_and_a_staff_suspension_are_not_undone() {
    let w = world("[policy.liquor-sales-licence]\nauto_suspend_dependents = true\n");
    w.poll();
    let city = |action, why: Option<&str>| {
        w.city
            .set_status(&Actor::Automation, &w.licence.id, action, why)
            .expect("city");
    };
    city(StatusAction::Suspend, Some("inspection failed"));
    assert_eq!(w.poll().suspended, 1);
    city(StatusAction::Reinstate, None);
    assert_eq!(w.poll().reinstated, 1);
    city(StatusAction::Suspend, Some("second inspection failed"));
    assert_eq!(w.poll().suspended, 1);
    // The reinstatement before the second suspension, handled again: nothing changes.
    let events = w.city.event_page(0, 10).expect("page").1.events;
    let stale = events
        .iter()
        .find(|e| e.kind == EventKind::CredentialReinstated)
        .expect("a reinstatement");
    let again = w.agco.react_to_event(&w.city.did, stale).expect("again");
    assert_eq!((again.cleared, again.reinstated), (0, 0));
    let rec = w.agco.store.credential(&w.liquor.id).expect("rec");
    assert_eq!(rec.status, CredentialStatus::Suspended);
    // Staff suspend it themselves meanwhile; the City reinstates: the staff's stays.
    w.agco
        .set_status(
            &Actor::staff("alain", StaffRole::Approver),
            &w.liquor.id,
            StatusAction::Suspend,
            Some("inspection of our own"),
        )
        .expect("staff");
    city(StatusAction::Reinstate, None);
    let p = w.poll();
    assert_eq!((p.cleared, p.reinstated), (1, 0));
    let rec = w.agco.store.credential(&w.liquor.id).expect("rec");
    assert_eq!(rec.status, CredentialStatus::Suspended);
}

#[test]
fn with_the_policy_on_the_dependent_credential_is_suspended_and_reinstated() {
    let w = world("[policy.liquor-sales-licence]\nauto_suspend_dependents = true\n");
    w.poll();
    w.city
        .set_status(
            &Actor::Automation,
            &w.licence.id,
            StatusAction::Suspend,
            Some("inspection failed"),
        )
        .expect("suspend");
    let p = w.poll();
    assert_eq!((p.flagged, p.suspended), (1, 1));
    let rec = w.agco.store.credential(&w.liquor.id).expect("rec");
    assert_eq!(rec.status, CredentialStatus::Suspended);
    let why = rec.history.last().expect("change");
    assert_eq!(why.actor, Actor::Automation);
    let reason = why.reason.clone().unwrap_or_default();
    assert!(reason.contains(&w.city.did), "{reason}");
    assert!(reason.contains("suspended"), "{reason}");
    let app = w.agco.store.application("app-7").expect("app");
    assert_eq!(
        app.dependencies.flags[0].auto_suspended,
        vec![w.liquor.id.clone()]
    );

    // Handling the same event twice changes nothing (a crash before the cursor was kept).
    let again = w
        .agco
        .react_to_event(
            &w.city.did,
            &w.city.event_page(1, 1).expect("page").1.events[0],
        )
        .expect("again");
    assert_eq!((again.flagged, again.suspended), (0, 0));

    w.city
        .set_status(
            &Actor::Automation,
            &w.licence.id,
            StatusAction::Reinstate,
            None,
        )
        .expect("reinstate");
    let p = w.poll();
    assert_eq!((p.cleared, p.reinstated), (1, 1));
    let rec = w.agco.store.credential(&w.liquor.id).expect("rec");
    assert_eq!(rec.status, CredentialStatus::Valid);
    assert_eq!(rec.history.last().expect("change").actor, Actor::Automation);

    // Revoked upstream: flagged and suspended again; a revocation stays flagged.
    w.city
        .set_status(
            &Actor::Automation,
            &w.licence.id,
            StatusAction::Revoke,
            Some("premises closed"),
        )
        .expect("revoke");
    let p = w.poll();
    assert_eq!((p.flagged, p.suspended), (1, 1));
    let app = w.agco.store.application("app-7").expect("app");
    assert_eq!(
        app.dependencies.flags[0].event,
        EventKind::CredentialRevoked
    );
}

#[test]
fn a_bad_out_of_order_or_foreign_page_is_refused_and_the_cursor_stays() {
    let w = world("");
    w.city
        .set_status(
            &Actor::Automation,
            &w.licence.id,
            StatusAction::Suspend,
            Some("inspection failed"),
        )
        .expect("suspend");
    let (token, page) = w.city.event_page(0, 100).expect("page");
    assert_eq!(page.events.len(), 2);

    // Another page's signature under this page's header and claims.
    let (other, _) = w.city.event_page(0, 1).expect("page");
    let forged = format!(
        "{}.{}",
        &token[..token.rfind('.').expect("dot")],
        &other[other.rfind('.').expect("dot") + 1..]
    );
    let refused = |t: &str| {
        w.agco
            .take_event_page(&w.up, t, &w.trust)
            .expect_err("refused")
            .code()
    };
    assert_eq!(refused(&forged), ReasonCode::BadSignature);

    // A page out of sequence: the City's page after event 1 while AGCO holds none (event 1
    // would be missed), and a page whose claims were reordered (its signature breaks).
    let (later, _) = w.city.event_page(1, 100).expect("page");
    assert_eq!(refused(&later), ReasonCode::EventPageGap);
    let mut parts = token.split('.');
    let (h, _, sig) = (
        parts.next().expect("h"),
        parts.next(),
        parts.next().expect("s"),
    );
    let mut swapped = page.clone();
    swapped.events.reverse();
    let claims = bizcred_core::base64url_encode(serde_json::to_vec(&swapped).expect("json"));
    assert_eq!(
        refused(&format!("{h}.{claims}.{sig}")),
        ReasonCode::BadSignature
    );

    // AGCO's own page is not the City's.
    let (own, _) = w.agco.event_page(0, 100).expect("page");
    assert_eq!(refused(&own), ReasonCode::EventPageWrongIssuer);

    // Nothing was taken: no cursor, no flag.
    assert_eq!(w.agco.upstream_cursor(&w.up).expect("cursor"), 0);
    assert!(w
        .agco
        .store
        .application("app-7")
        .expect("app")
        .dependencies
        .flags
        .is_empty());

    // The genuine page is then taken.
    let p = w
        .agco
        .take_event_page(&w.up, &token, &w.trust)
        .expect("taken");
    assert_eq!((p.events, p.flagged, p.cursor), (2, 1, 2));
}

#[tokio::test]
async fn an_unreachable_agency_is_an_error_and_the_cursor_stays() {
    let w = world("");
    let down = UpstreamConfig {
        url: "http://127.0.0.1:9".into(),
        did: Some(w.city.did.clone()),
    };
    let e = w.agco.poll_upstream(&down).await.expect_err("unreachable");
    assert_eq!(e.code(), ReasonCode::Unreachable);
    assert_eq!(w.agco.upstream_cursor(&down).expect("cursor"), 0);
}

mod desk {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::Router;
    use tower::ServiceExt;

    const PW: &str = "correct horse battery staple";
    const COOKIE: &str = "bizcred_issuer_desk_18092";

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<String>, String) {
        let r = app.clone().oneshot(req).await.expect("answer");
        let status = r.status();
        let cookies = r
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .collect();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 22)
            .await
            .expect("body");
        (
            status,
            cookies,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn get(path: &str, cookie: &str) -> Request<Body> {
        Request::get(path)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .expect("request")
    }

    async fn signed_in(app: &Router) -> String {
        let (_, cookies, page) = send(app, get("/desk/login", "")).await;
        let pre = cookies
            .iter()
            .find(|c| c.starts_with(&format!("{COOKIE}_login=")))
            .expect("login cookie")
            .clone();
        let at = page.find("name=\"csrf\" value=\"").expect("csrf") + 19;
        let csrf = page[at..].split('"').next().expect("value");
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("csrf", csrf), ("name", "alain"), ("password", PW)])
            .finish();
        let req = Request::post("/desk/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, pre)
            .body(Body::from(body))
            .expect("request");
        let (status, cookies, _) = send(app, req).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        cookies
            .into_iter()
            .find(|c| c.starts_with(&format!("{COOKIE}=")))
            .expect("session")
    }

    #[tokio::test]
    async fn the_desk_shows_the_flag_in_the_queue_and_on_the_application_and_credential() {
        let w = world("[policy.liquor-sales-licence]\nauto_suspend_dependents = true\n");
        let data = w._dir.path().join("liquor-sales-licence");
        let desk = bizcred_issuer::desk::new_desk(
            AGCO,
            &data,
            w.agco.clock.clone(),
            false,
            bizcred_web::SessionLimits::default(),
        )
        .expect("catalogues");
        desk.accounts
            .add("alain", "approver", PW, now())
            .expect("account");
        let app = bizcred_issuer::desk::routes(w.agco.clone(), Arc::new(desk));
        let cookie = signed_in(&app).await;

        // Nothing flagged yet.
        let (status, _, page) = send(&app, get("/desk?flagged=1", &cookie)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(!page.contains("/desk/applications/app-7"), "{page}");

        w.poll();
        w.city
            .set_status(
                &Actor::Automation,
                &w.licence.id,
                StatusAction::Suspend,
                Some("inspection failed"),
            )
            .expect("suspend");
        w.poll();

        let (_, _, page) = send(&app, get("/desk?flagged=1", &cookie)).await;
        assert!(page.contains("/desk/applications/app-7"), "{page}");
        assert!(page.contains("Flagged for review"), "{page}");
        assert!(
            page.contains("name=\"flagged\" value=\"1\" checked"),
            "{page}"
        );
        let (_, _, page) = send(&app, get("/desk/applications/app-7", &cookie)).await;
        assert!(page.contains("id=\"review-flags\""), "{page}");
        assert!(page.contains("suspended by"), "{page}");
        assert!(page.contains(&w.liquor.id), "{page}");
        let (_, _, page) = send(
            &app,
            get(&format!("/desk/credentials/{}", w.liquor.id), &cookie),
        )
        .await;
        assert!(page.contains("id=\"review-flags\""), "{page}");

        // Reinstated upstream: the flag is gone from the queue and the pages.
        w.city
            .set_status(
                &Actor::Automation,
                &w.licence.id,
                StatusAction::Reinstate,
                None,
            )
            .expect("reinstate");
        w.poll();
        let (_, _, page) = send(&app, get("/desk?flagged=1", &cookie)).await;
        assert!(!page.contains("/desk/applications/app-7"), "{page}");
        let (_, _, page) = send(&app, get("/desk/applications/app-7", &cookie)).await;
        assert!(!page.contains("id=\"review-flags\""), "{page}");
    }
}

#[test]
fn a_presentation_leaves_each_prerequisites_status_list_entry() {
    use bizcred_core::keys::Signer;
    use bizcred_issuer::issuer::dependents::presented_prerequisites;
    use bizcred_test_support::{example_claims, new_key, present, Agency, Credential};
    let t = now();
    let city = Agency::new("city.bizcred.test", t - 86_400);
    let holder = new_key();
    let sd = city.issue(Credential {
        ty: CredentialType::MunicipalBusinessLicence,
        claims: example_claims(CredentialType::MunicipalBusinessLicence),
        holder: &holder.public_key(),
        status_idx: 4242,
        iat: t - 60,
        exp: None,
        decoys: 0,
    });
    let vp = present(
        &sd,
        &[vec!["licence_number".to_owned()]],
        "aud",
        "nonce",
        t,
        &holder,
    );
    let got = presented_prerequisites(&json!({ "municipal_licence": [vp] }));
    assert_eq!(
        got,
        vec![PrerequisiteRef {
            vct: CredentialType::MunicipalBusinessLicence.vct().into(),
            issuer: city.did.clone(),
            status_list: city.status_uri(),
            status_idx: 4242,
        }]
    );
    // Garbage leaves nothing, and never panics.
    assert!(presented_prerequisites(&json!({"x": ["not an sd-jwt", 7], "y": {}})).is_empty());
    assert!(presented_prerequisites(&json!("nothing")).is_empty());
}

#[test]
fn subscriptions_and_policies_are_checked_at_startup() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = |extra: &str| {
        format!(
            "[agency]\nname_en = \"A\"\nname_fr = \"A\"\n[server]\npublic_url = \"{AGCO}\"\nlisten = \"127.0.0.1:18092\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"liquor-sales-licence\"]\n[admin]\ntoken_sha256 = [\"{}\"]\n{extra}",
            dir.path().to_string_lossy(),
            "00".repeat(32)
        )
    };
    let c = Config::parse(&base("")).expect("none");
    assert!(c.subscriptions.is_empty() && c.auto_suspend.is_empty());
    let c = Config::parse(&base(
        "[[subscription]]\nurl = \"http://localhost:8083/\"\n[[subscription]]\nurl = \"https://obr.example\"\ndid = \"did:webvh:x:obr.example\"\n[policy.liquor-sales-licence]\nauto_suspend_dependents = true\n",
    ))
    .expect("two");
    assert_eq!(c.subscriptions[0].url, "http://localhost:8083");
    assert_eq!(
        c.subscriptions[1].did.as_deref(),
        Some("did:webvh:x:obr.example")
    );
    assert_eq!(c.auto_suspend, vec![CredentialType::LiquorSalesLicence]);
    for bad in [
        "[[subscription]]\nurl = \"ftp://x\"\n",
        "[[subscription]]\nurl = \"http://a\"\n[[subscription]]\nurl = \"http://a/\"\n",
        "[[subscription]]\nurl = \"http://a\"\ndid = \"nope\"\n",
        "[[subscription]]\nurl = \"http://a\"\nsecret = 1\n",
        "[policy.municipal-business-licence]\nauto_suspend_dependents = true\n",
        "[policy.liquor-sales-licence]\nauto_suspend = true\n",
    ] {
        assert!(Config::parse(&base(bad)).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_poller_reads_the_feed_over_http_and_waits_for_a_trust_bundle() {
    let w = world("");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let routes = bizcred_issuer::events::routes(w.city.clone());
    let server = tokio::spawn(async move { axum::serve(listener, routes).await });
    let up = UpstreamConfig {
        url: format!("http://{addr}"),
        did: Some(w.city.did.clone()),
    };
    // The page is read, but without a synced trust bundle nothing is taken.
    let e = w.agco.poll_upstream(&up).await.expect_err("no bundle");
    assert_eq!(e.code(), ReasonCode::TrustBundleMissing);
    assert_eq!(w.agco.upstream_cursor(&up).expect("cursor"), 0);
    // A feed that answers an error is refused with its code.
    let missing = UpstreamConfig {
        url: format!("http://{addr}/nothing-here"),
        did: Some(w.city.did.clone()),
    };
    let e = w.agco.poll_upstream(&missing).await.expect_err("404");
    assert_eq!(e.code(), ReasonCode::FeedUnreachable);
    server.abort();
}
