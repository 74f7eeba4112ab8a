//! The wallet library through its own calls, without starting processes: the vault, offer and
//! request parsing, request signatures, DCQL matching, consent, presentations, the verifier's
//! answers, and verification of a received credential before it is stored.

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::oid4vp;
use bizcred_core::sd_jwt_vc::{self, Issuance};
use bizcred_schemas::{CredentialType, Lang};
use bizcred_wallet::consent::Consent;
use bizcred_wallet::history::{Disclosed, HistoryEntry};
use bizcred_wallet::issuance::{self, Expected, OfferSource};
use bizcred_wallet::presentation::{
    self, DcqlQuery, PresentationRequest, RequestSource, VerifierAnswer,
};
use bizcred_wallet::store::{credential_id, StoredCredential};
use bizcred_wallet::{backup, net, SledVault, Vault};
use serde_json::{json, Map, Value};

const NOW: i64 = 1_790_000_000;

fn key() -> SecretKey {
    SecretKey::generate(Algorithm::EdDSA, &mut rand_core::OsRng)
}

fn bn_claims() -> Map<String, Value> {
    serde_json::from_str(include_str!(
        "../../schemas/examples/valid/business-number.json"
    ))
    .expect("claims")
}

/// An SD-JWT VC issued by a did:key issuer (resolvable without a network).
fn issue(
    issuer: &SecretKey,
    holder: &SecretKey,
    ty: CredentialType,
    claims: Map<String, Value>,
    iat: i64,
) -> String {
    let did = bizcred_core::did::did_key(&issuer.public_key());
    let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
    let holder_pk = holder.public_key();
    let sd = sd_jwt_vc::issue(
        Issuance {
            vct: ty.vct(),
            issuer: &did,
            kid: Some(&kid),
            iat,
            nbf: None,
            exp: None,
            holder_key: Some(&holder_pk),
            status: None,
            disclosable: sd_jwt_vc::default_disclosable(ty, &claims),
            claims,
            decoys: 0,
        },
        issuer,
        &mut rand_core::OsRng,
    )
    .expect("issue");
    sd.serialize()
}

fn stored(text: String, vct: &str, iat: i64) -> StoredCredential {
    StoredCredential {
        id: credential_id(&text),
        vct: vct.to_owned(),
        issuer: "did:key:issuer".into(),
        issuer_name: "Canada Revenue Agency".into(),
        credential: text,
        received_at: iat * 1000,
        iat: Some(iat),
        exp: None,
        status_uri: None,
        status_idx: None,
        last_status: None,
        status_checked_at: None,
    }
}

fn bn_query(claims: Value) -> DcqlQuery {
    serde_json::from_value(json!({"credentials": [{"id": "bn", "format": "dc+sd-jwt",
        "meta": {"vct_values": [CredentialType::BusinessNumber.vct()]}, "claims": claims}]}))
    .expect("dcql")
}

#[test]
fn vault_round_trip_wrong_passphrase_and_existing_wallet() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("w");
    let holder = key();
    let v = SledVault::create(&path, b"right").expect("create");
    v.set_holder_key(&holder).expect("key");
    let c = stored(
        issue(
            &key(),
            &holder,
            CredentialType::BusinessNumber,
            bn_claims(),
            NOW,
        ),
        CredentialType::BusinessNumber.vct(),
        NOW,
    );
    v.put_credential(&c).expect("put");
    let h = HistoryEntry {
        time: NOW,
        verifier: "decentralized_identifier:did:key:z".into(),
        channel: "declined".into(),
        credentials: vec![],
        outcome: "declined".into(),
    };
    v.append_history(&h).expect("history");
    drop(v);

    let wrong = SledVault::open(&path, b"wrong").expect_err("wrong passphrase");
    assert_eq!(wrong.code().as_str(), "WRONG_PASSPHRASE");
    assert_eq!(
        SledVault::create(&path, b"right")
            .expect_err("exists")
            .code()
            .as_str(),
        "ALREADY_INITIALIZED"
    );
    assert_eq!(
        SledVault::open(&dir.path().join("none"), b"right")
            .expect_err("missing")
            .code()
            .as_str(),
        "NOT_INITIALIZED"
    );

    let v = SledVault::open(&path, b"right").expect("open");
    assert_eq!(
        v.holder_key().expect("key").public_key(),
        holder.public_key()
    );
    assert_eq!(v.credentials().expect("all"), vec![c.clone()]);
    assert_eq!(v.credential(&c.id).expect("get"), Some(c.clone()));
    assert_eq!(v.history().expect("history"), vec![h]);
    assert!(v.delete_credential(&c.id).expect("delete"));
    assert!(!v.delete_credential(&c.id).expect("delete again"));
    assert!(v.credentials().expect("all").is_empty());
}

#[test]
fn the_holder_secret_is_never_stored_in_clear() {
    let dir = tempfile::tempdir().expect("tmp");
    let holder = key();
    let v = SledVault::create(dir.path(), b"pass").expect("create");
    v.set_holder_key(&holder).expect("key");
    drop(v);
    let secret = holder.to_bytes();
    let encoded = bizcred_core::base64url_encode(secret.as_slice());
    let mut stack = vec![dir.path().to_path_buf()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("dir") {
            let e = e.expect("entry").path();
            if e.is_dir() {
                stack.push(e);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&e).expect("read");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "raw secret in {}",
                e.display()
            );
            assert!(
                !bytes
                    .windows(encoded.len())
                    .any(|w| w == encoded.as_bytes()),
                "encoded secret in {}",
                e.display()
            );
        }
    }
    assert!(files > 0);
}

#[test]
fn backups_round_trip_and_refuse_another_passphrase() {
    let dir = tempfile::tempdir().expect("tmp");
    let holder = key();
    let a = SledVault::create(&dir.path().join("a"), b"pass").expect("a");
    let c = stored(
        issue(
            &key(),
            &holder,
            CredentialType::BusinessNumber,
            bn_claims(),
            NOW,
        ),
        CredentialType::BusinessNumber.vct(),
        NOW,
    );
    a.put_credential(&c).expect("put");
    // An application, with its follow link (a secret).
    let agency = "http://localhost:8084";
    let app: bizcred_wallet::applications::StoredApplication = serde_json::from_value(json!({
        "id": bizcred_wallet::applications::application_key(agency, "0a1b"),
        "agency": agency, "application_id": "0a1b",
        "credential_configuration_id": "municipal-business-licence",
        "follow_uri": format!("{agency}/applicant/0a1b.capabilitysecret"),
        "state": "changes_requested", "applied_at": NOW, "last_seen": NOW,
        "note": "bring the lease",
    }))
    .expect("application");
    a.put_application(&app).expect("put application");
    let (blob, n) = backup::export(&a, b"pass").expect("export");
    assert_eq!(
        (n.credentials, n.applications),
        (1, 1),
        "credentials and applications"
    );
    for secret in [&b"capabilitysecret"[..], b"bring the lease"] {
        assert!(
            !blob.windows(secret.len()).any(|w| w == secret),
            "the backup is sealed"
        );
    }
    let b = SledVault::create(&dir.path().join("b"), b"other").expect("b");
    assert_eq!(
        backup::import(&b, b"other", &blob)
            .expect_err("wrong")
            .code()
            .as_str(),
        "WRONG_PASSPHRASE"
    );
    assert!(b.credentials().expect("none").is_empty());
    assert_eq!(
        backup::import(&b, b"pass", b"not a backup")
            .expect_err("garbage")
            .code()
            .as_str(),
        "BACKUP_DAMAGED"
    );
    assert!(b.applications().expect("none").is_empty());
    let n = backup::import(&b, b"pass", &blob).expect("import");
    assert_eq!((n.credentials, n.applications), (1, 1));
    assert_eq!(b.credentials().expect("one"), vec![c.clone()]);
    assert_eq!(b.applications().expect("one"), vec![app.clone()]);

    // A backup written before applications were kept (the list of credentials alone) still
    // imports.
    let old = serde_json::to_vec(&json!([[c.id, c]])).expect("old contents");
    let old = bizcred_wallet::vault::seal_backup(b"pass", &old).expect("seal");
    let fresh = SledVault::create(&dir.path().join("c"), b"pass").expect("c");
    let n = backup::import(&fresh, b"pass", &old).expect("old backup");
    assert_eq!((n.credentials, n.applications), (1, 0));
    assert_eq!(fresh.credentials().expect("one"), vec![c.clone()]);

    // An application record the wallet could not have written (a follow link to another
    // host) is refused, and nothing is imported.
    let mut forged = serde_json::to_value(&app).expect("json");
    forged["follow_uri"] = json!("https://evil.example/applicant/0a1b.x");
    let contents = json!({"credentials": [[c.id, c]], "applications": [forged]});
    let blob = bizcred_wallet::vault::seal_backup(
        b"pass",
        &serde_json::to_vec(&contents).expect("contents"),
    )
    .expect("seal");
    let empty = SledVault::create(&dir.path().join("d"), b"pass").expect("d");
    let e = backup::import(&empty, b"pass", &blob).expect_err("forged");
    assert_eq!(e.code().as_str(), "BACKUP_DAMAGED", "{e}");
    assert!(empty.credentials().expect("none").is_empty());
    assert!(empty.applications().expect("none").is_empty());
}

#[test]
fn offers_parse_into_typed_models() {
    let offer = json!({"credential_issuer": "https://obr.example/", "credential_configuration_ids": ["inc"],
        "grants": {bizcred_core::oid4vci::PRE_AUTHORIZED_GRANT: {"pre-authorized_code": "abc",
            "tx_code": {"input_mode": "numeric", "length": 6, "description": "Code from the letter"}}}});
    let uri = bizcred_core::oid4vci::offer_uri_by_value(&offer);
    let OfferSource::ByValue(o) = issuance::parse_offer_uri(&uri).expect("offer") else {
        panic!("by value")
    };
    assert_eq!(o.issuer(), "https://obr.example");
    assert_eq!(o.configuration_id().expect("id"), "inc");
    assert_eq!(o.pre_authorized().expect("grant").code, "abc");
    let tx = o.tx_code().expect("tx code");
    assert_eq!(tx.length, Some(6));
    assert_eq!(tx.description.as_deref(), Some("Code from the letter"));
    assert!(
        !format!("{o:?}").contains("abc"),
        "the code is not in Debug"
    );

    let by_ref = bizcred_core::oid4vci::offer_uri_by_reference("https://obr.example/offers/1");
    assert_eq!(
        issuance::parse_offer_uri(&by_ref).expect("ref"),
        OfferSource::ByReference("https://obr.example/offers/1".into())
    );

    let no_grant = json!({"credential_issuer": "https://obr.example", "credential_configuration_ids": ["inc"]});
    let OfferSource::ByValue(o) =
        issuance::parse_offer_uri(&bizcred_core::oid4vci::offer_uri_by_value(&no_grant))
            .expect("offer")
    else {
        panic!("by value")
    };
    assert_eq!(
        o.pre_authorized().expect_err("no grant").code().as_str(),
        "NO_PRE_AUTHORIZED_CODE"
    );
    assert!(o.tx_code().is_none());

    for bad in [
        "not-a-uri",
        "openid-credential-offer://?credential_offer=%7B%7D",
        "openid-credential-offer://?credential_offer_uri=http%3A%2F%2Fevil.example%2Fo",
    ] {
        let e = issuance::parse_offer_uri(bad).expect_err(bad);
        assert_eq!(e.code().as_str(), "OFFER_MALFORMED", "{bad}");
        assert!(e.is_refusal());
    }
}

#[test]
fn issuer_metadata_is_typed_and_checked() {
    let meta: issuance::IssuerMetadata = serde_json::from_value(json!({
        "credential_issuer": "https://cra.example", "credential_endpoint": "https://cra.example/credential",
        "credential_configurations_supported": {
            "bn": {"format": "dc+sd-jwt", "vct": CredentialType::BusinessNumber.vct()},
            "mdl": {"format": "mso_mdoc"}},
        "display": [{"name": "Canada Revenue Agency", "locale": "en-CA"}, {"name": "Agence du revenu du Canada", "locale": "fr-CA"}]}))
    .expect("metadata");
    assert_eq!(
        meta.configuration("bn").expect("bn").vct.as_deref(),
        Some(CredentialType::BusinessNumber.vct())
    );
    assert_eq!(
        meta.configuration("mdl").expect_err("mdoc").code().as_str(),
        "BAD_ISSUER_METADATA"
    );
    assert_eq!(
        meta.configuration("none")
            .expect_err("unknown")
            .code()
            .as_str(),
        "BAD_ISSUER_METADATA"
    );
    assert_eq!(
        meta.display_name(Lang::Fr),
        Some("Agence du revenu du Canada")
    );
    assert_eq!(meta.display_name(Lang::En), Some("Canada Revenue Agency"));
    assert_eq!(meta.authorization_server(), "https://cra.example");
}

fn request_claims(client_id: &str, dcql: Value) -> Map<String, Value> {
    let Value::Object(m) = json!({"client_id": client_id, "response_type": "vp_token",
        "response_mode": "direct_post", "response_uri": "https://bank.example/response",
        "nonce": "n-0S6_WzA2Mj", "state": "st", "dcql_query": dcql,
        "client_metadata": {"client_name": "Northern Bank"}})
    else {
        unreachable!()
    };
    m
}

fn bn_dcql() -> Value {
    json!({"credentials": [{"id": "bn", "format": "dc+sd-jwt",
        "meta": {"vct_values": [CredentialType::BusinessNumber.vct()]},
        "claims": [{"path": ["business_number"]}, {"path": ["legal_name"]}]}],
        "credential_sets": [{"options": [["bn"]], "purpose": "To open a business account"}]})
}

#[tokio::test]
async fn signed_requests_parse_verify_and_refuse_another_signer() {
    let verifier = key();
    let did = bizcred_core::did::did_key(&verifier.public_key());
    let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
    let client_id = format!("{}{did}", oid4vp::DID_PREFIX);
    let claims = request_claims(&client_id, bn_dcql());
    let jwt = oid4vp::sign_request_object(&claims, &kid, &verifier).expect("sign");
    let c = net::client().expect("client");

    // A bare request object (offline file).
    let src = presentation::parse_request(&jwt).expect("parse");
    assert_eq!(
        src,
        RequestSource::Signed {
            client_id: client_id.clone(),
            jwt: jwt.clone()
        }
    );
    let req = presentation::load_request(&c, src, NOW, &mut |_| {})
        .await
        .expect("verifies");
    assert_eq!(req.client_id, client_id);
    assert_eq!(req.state.as_deref(), Some("st"));
    assert_eq!(
        req.client_metadata.client_name.as_deref(),
        Some("Northern Bank")
    );
    assert_eq!(req.dcql_query.credentials[0].claims.len(), 2);
    assert_eq!(req.purpose().as_deref(), Some("To open a business account"));

    // By value in a URI.
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &client_id)
        .append_pair("request", &jwt)
        .finish();
    let src = presentation::parse_request(&format!("openid4vp://?{q}")).expect("uri");
    assert!(matches!(src, RequestSource::Signed { .. }));

    // Signed by someone else's key under the verifier's kid.
    let forged = oid4vp::sign_request_object(&claims, &kid, &key()).expect("sign");
    let e = presentation::load_request(
        &c,
        presentation::parse_request(&forged).expect("parse"),
        NOW,
        &mut |_| {},
    )
    .await
    .expect_err("forged");
    assert_eq!(e.code().as_str(), "REQUEST_SIGNATURE");
    assert!(e.is_refusal());
}

#[test]
fn unsigned_and_malformed_requests() {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", "redirect_uri:https://bank.example/response")
        .append_pair("response_type", "vp_token")
        .append_pair("response_mode", "direct_post")
        .append_pair("response_uri", "https://bank.example/response")
        .append_pair("nonce", "abc")
        .append_pair("dcql_query", &bn_dcql().to_string())
        .finish();
    let RequestSource::Plain(req) =
        presentation::parse_request(&format!("openid4vp://?{q}")).expect("plain")
    else {
        panic!("plain")
    };
    assert_eq!(req.dcql_query.credentials[0].id, "bn");
    assert_eq!(req.state, None);

    for bad in ["openid4vp://?nothing=here", "hello", "a.b.c"] {
        let e = presentation::parse_request(bad).expect_err(bad);
        assert_eq!(e.code().as_str(), "REQUEST_MALFORMED", "{bad}");
    }
    // The claims must be typed: a DCQL path that is not an array is refused.
    let claims = request_claims(
        "x",
        json!({"credentials": [{"id": "bn", "format": "dc+sd-jwt", "claims": [{"path": "legal_name"}]}]}),
    );
    assert_eq!(
        PresentationRequest::from_claims(claims)
            .expect_err("path")
            .code()
            .as_str(),
        "BAD_RESPONSE"
    );
}

#[test]
fn dcql_picks_the_newest_usable_matching_credential() {
    let (issuer, holder) = (key(), key());
    let bn = CredentialType::BusinessNumber;
    let old = stored(
        issue(&issuer, &holder, bn, bn_claims(), NOW - 100),
        bn.vct(),
        NOW - 100,
    );
    let new = stored(
        issue(&issuer, &holder, bn, bn_claims(), NOW - 10),
        bn.vct(),
        NOW - 10,
    );
    let mut expired = stored(issue(&issuer, &holder, bn, bn_claims(), NOW), bn.vct(), NOW);
    expired.exp = Some(NOW - 1);
    let mut revoked = stored(issue(&issuer, &holder, bn, bn_claims(), NOW), bn.vct(), NOW);
    revoked.last_status = Some("revoked".into());
    let held = vec![old.clone(), expired, new.clone(), revoked];

    let q = bn_query(json!([{"path": ["business_number"]}, {"path": ["legal_name"]}]));
    let chosen = presentation::match_dcql(&held, &q, NOW).expect("match");
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0].query_id, "bn");
    assert_eq!(chosen[0].credential.id, new.id, "the newest usable one");
    assert_eq!(chosen[0].paths.len(), 2);

    // Only the old one is left when the newest is gone.
    let chosen = presentation::match_dcql(std::slice::from_ref(&old), &q, NOW).expect("match");
    assert_eq!(chosen[0].credential.id, old.id);

    // A value constraint that nothing satisfies: no match, nothing chosen.
    let q = bn_query(json!([{"path": ["business_number"], "values": ["000000000"]}]));
    let e = presentation::match_dcql(&held, &q, NOW).expect_err("no match");
    assert_eq!(e.code().as_str(), "NO_MATCHING_CREDENTIAL");
    assert!(e.to_string().contains("you hold no Business number"), "{e}");
    // A satisfied value constraint.
    let q = bn_query(json!([{"path": ["business_number"], "values": ["812345676"]}]));
    assert!(presentation::match_dcql(&held, &q, NOW).is_ok());
    // A nested path.
    let q = bn_query(json!([{"path": ["business_address", "postal_code"]}]));
    let chosen = presentation::match_dcql(&held, &q, NOW).expect("nested");
    assert_eq!(chosen[0].paths.len(), 1);
    // No claims asked: every claim.
    let q = bn_query(json!([]));
    let chosen = presentation::match_dcql(&held, &q, NOW).expect("all");
    assert_eq!(chosen[0].paths.len(), bn_claims().len());
    // Another format.
    let q: DcqlQuery =
        serde_json::from_value(json!({"credentials": [{"id": "m", "format": "mso_mdoc"}]}))
            .expect("q");
    assert_eq!(
        presentation::match_dcql(&held, &q, NOW)
            .expect_err("format")
            .code()
            .as_str(),
        "UNSUPPORTED_FORMAT"
    );
    // Another type.
    let q: DcqlQuery =
        serde_json::from_value(json!({"credentials": [{"id": "inc", "format": "dc+sd-jwt",
        "meta": {"vct_values": [CredentialType::CertificateOfIncorporation.vct()]}}]}))
        .expect("q");
    assert_eq!(
        presentation::match_dcql(&held, &q, NOW)
            .expect_err("type")
            .code()
            .as_str(),
        "NO_MATCHING_CREDENTIAL"
    );
}

#[test]
fn consent_names_who_asks_why_and_exactly_what() {
    let (issuer, holder) = (key(), key());
    let bn = CredentialType::BusinessNumber;
    let c = stored(issue(&issuer, &holder, bn, bn_claims(), NOW), bn.vct(), NOW);
    let req = PresentationRequest::from_claims(request_claims(
        "decentralized_identifier:did:key:zBank",
        bn_dcql(),
    ))
    .expect("request");
    let chosen =
        presentation::match_dcql(std::slice::from_ref(&c), &req.dcql_query, NOW).expect("match");
    let consent = Consent::new(&req, &chosen, Lang::Fr).expect("consent");
    assert_eq!(consent.client_id, "decentralized_identifier:did:key:zBank");
    assert_eq!(consent.verifier_name.as_deref(), Some("Northern Bank"));
    assert_eq!(
        consent.purpose.as_deref(),
        Some("To open a business account")
    );
    assert_eq!(consent.credentials.len(), 1);
    let cc = &consent.credentials[0];
    assert_eq!(cc.credential_id, c.id);
    assert_eq!(cc.issuer_name, "Canada Revenue Agency");
    assert_eq!(cc.type_name, bn.metadata().display_name(Lang::Fr));
    let got: Vec<(Vec<Value>, Option<Value>)> = cc
        .claims
        .iter()
        .map(|x| (x.path.clone(), x.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (vec![json!("business_number")], Some(json!("812345676"))),
            (
                vec![json!("legal_name")],
                Some(json!("Jennifer Ventures Inc."))
            ),
        ]
    );
    assert!(cc.claims.iter().all(|x| !x.label.is_empty()));
}

#[test]
fn the_presentation_discloses_only_what_was_chosen_and_is_key_bound() {
    let (issuer, holder) = (key(), key());
    let bn = CredentialType::BusinessNumber;
    let c = stored(issue(&issuer, &holder, bn, bn_claims(), NOW), bn.vct(), NOW);
    let req = PresentationRequest::from_claims(request_claims(
        "decentralized_identifier:did:key:zBank",
        bn_dcql(),
    ))
    .expect("request");
    let chosen =
        presentation::match_dcql(std::slice::from_ref(&c), &req.dcql_query, NOW).expect("match");
    let p = presentation::build_presentation(&holder, &req, &chosen, NOW).expect("present");
    assert_eq!(
        p.disclosed,
        vec![Disclosed {
            credential: c.id.clone(),
            vct: bn.vct().into(),
            claims: vec![vec![json!("business_number")], vec![json!("legal_name")]],
        }]
    );
    let text = p.vp_token["bn"][0].as_str().expect("presentation");
    let sd = bizcred_core::sd_jwt::SdJwt::parse(text).expect("sd-jwt");
    let vc = sd_jwt_vc::verify(
        &sd,
        &issuer.public_key(),
        &sd_jwt_vc::VerifyOptions {
            now: NOW,
            clock_skew: 60,
            key_binding: Some(bizcred_core::sd_jwt::KbExpectations {
                audience: &req.client_id,
                nonce: &req.nonce,
                now: NOW,
                max_age: 60,
                max_future_skew: 60,
            }),
        },
    )
    .expect("verifies with key binding");
    let disclosed = vc.business_claims();
    let mut keys: Vec<&str> = disclosed.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["business_number", "legal_name"]);
    let file = presentation::presentation_file(&req, &p);
    assert_eq!(file["state"], "st");
    assert_eq!(file["nonce"], req.nonce);
}

#[test]
fn verifier_answers_are_read_as_data() {
    let a = VerifierAnswer::from_response(
        400,
        r#"{"error":"invalid_request","error_description":"the presentation does not verify"}"#,
    );
    match &a {
        VerifierAnswer::Refused {
            status,
            error,
            description,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(error.as_deref(), Some("invalid_request"));
            assert_eq!(
                description.as_deref(),
                Some("the presentation does not verify")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.outcome(), "refused (400)");
    assert!(!a.accepted());
    let a = VerifierAnswer::from_response(502, "<html>bad gateway</html>");
    assert!(matches!(a, VerifierAnswer::Refused { error: None, .. }));
    let a = VerifierAnswer::from_response(
        200,
        r#"{"verdict":"REJECT","failures":[{"credential":"bn","code":"REVOKED"}]}"#,
    );
    assert_eq!(a.outcome(), "REJECT");
    assert!(!a.accepted());
    assert!(matches!(&a, VerifierAnswer::Answered { failures, .. } if failures == &["REVOKED"]));
    assert!(VerifierAnswer::from_response(200, r#"{"verdict":"ACCEPT"}"#).accepted());
    assert!(VerifierAnswer::from_response(200, "").accepted());
}

#[tokio::test]
async fn a_refused_direct_post_comes_back_with_the_verifiers_error() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/response",
        post(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_request", "error_description": "the presentation was not accepted"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut claims = request_claims("decentralized_identifier:did:key:zBank", bn_dcql());
    claims.insert(
        "response_uri".into(),
        format!("http://{addr}/response").into(),
    );
    let req = PresentationRequest::from_claims(claims).expect("request");
    let p = presentation::Presentation {
        vp_token: json!({"bn": ["x"]}),
        disclosed: vec![],
    };
    let c = net::client().expect("client");
    let a = presentation::send_presentation(&c, &req, &p)
        .await
        .expect("answer");
    server.abort();
    assert_eq!(
        a,
        VerifierAnswer::Refused {
            status: 400,
            error: Some("invalid_request".into()),
            description: Some("the presentation was not accepted".into()),
            body: json!({"error": "invalid_request", "error_description": "the presentation was not accepted"}),
        }
    );
}

#[tokio::test]
async fn a_received_credential_is_verified_before_it_is_stored() {
    let (issuer, holder) = (key(), key());
    let bn = CredentialType::BusinessNumber;
    let c = net::client().expect("client");
    let expected = Expected {
        holder: &holder,
        vct: Some(bn.vct()),
        now: NOW,
    };
    let good = issue(&issuer, &holder, bn, bn_claims(), NOW);
    let vc = issuance::verify_received(&c, &good, &expected)
        .await
        .expect("good");
    assert_eq!(vc.vct, bn.vct());

    // Signed by another key than the issuer DID's.
    let did = bizcred_core::did::did_key(&issuer.public_key());
    let forged = {
        let other = key();
        let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
        let hk = holder.public_key();
        sd_jwt_vc::issue(
            Issuance {
                vct: bn.vct(),
                issuer: &did,
                kid: Some(&kid),
                iat: NOW,
                nbf: None,
                exp: None,
                holder_key: Some(&hk),
                status: None,
                disclosable: sd_jwt_vc::default_disclosable(bn, &bn_claims()),
                claims: bn_claims(),
                decoys: 0,
            },
            &other,
            &mut rand_core::OsRng,
        )
        .expect("issue")
        .serialize()
    };
    let cases = [
        (forged, expected, "CREDENTIAL_DOES_NOT_VERIFY"),
        (
            issue(&issuer, &key(), bn, bn_claims(), NOW),
            expected,
            "CREDENTIAL_NOT_BOUND",
        ),
        (
            good.clone(),
            Expected {
                vct: Some(CredentialType::CertificateOfIncorporation.vct()),
                ..expected
            },
            "BAD_CREDENTIAL",
        ),
        (
            {
                let mut claims = bn_claims();
                claims.insert("business_number".into(), "812345670".into());
                issue(&issuer, &holder, bn, claims, NOW)
            },
            expected,
            "CREDENTIAL_SCHEMA",
        ),
        ("not an sd-jwt".to_owned(), expected, "BAD_CREDENTIAL"),
    ];
    for (text, exp, code) in cases {
        let e = issuance::verify_received(&c, &text, &exp)
            .await
            .expect_err(code);
        assert_eq!(e.code().as_str(), code, "{e}");
    }
}

#[test]
fn wallet_codes_are_in_the_shared_reason_table_as_wallet_codes() {
    use bizcred_wallet::error::{CredentialProblem, MetadataProblem, ResolveProblem};
    use bizcred_wallet::{VaultError, WalletError};
    let samples: Vec<WalletError> = vec![
        WalletError::TxCodeRequired,
        WalletError::NoPreAuthorizedCode,
        WalletError::NoCredential,
        WalletError::NoResponseUri,
        WalletError::UnknownCredential("c".into()),
        WalletError::BackupTooLarge(1),
        WalletError::TooLarge {
            what: "x",
            limit: 1,
        },
        WalletError::NotUtf8 { what: "x" },
        WalletError::TokenRefused {
            status: 400,
            error: None,
            description: None,
        },
        WalletError::Http {
            what: "x",
            status: 500,
            error: None,
            description: None,
            body: String::new(),
        },
        WalletError::Metadata(MetadataProblem::OtherIssuer),
        WalletError::Credential(CredentialProblem::NotBound),
        WalletError::Credential(CredentialProblem::NoIssuer),
        WalletError::Resolve {
            kid: "k".into(),
            problem: ResolveProblem::NoSuchKey,
        },
        WalletError::UnsupportedFormat { format: "m".into() },
        WalletError::NoMatch {
            query_id: "q".into(),
            wanted: "w".into(),
        },
        WalletError::Offer(bizcred_core::oid4vci::OfferError("x")),
        WalletError::Request(oid4vp::RequestError::NotARequest),
        WalletError::ReceiveExpired {
            issuer: "https://cra.example".into(),
        },
        WalletError::NoPendingReceive,
        WalletError::Request(oid4vp::RequestError::ClientIdMismatch),
        WalletError::AgencyUrl("ftp://x".into()),
        WalletError::TypeNotIssued {
            agency: "https://city.example".into(),
            slug: "x".into(),
            offered: vec![],
        },
        WalletError::Agency {
            what: "x",
            status: 409,
            error: None,
            description: None,
            code: Some("NOT_A_SHARED_CODE".into()),
        },
        WalletError::AgencyAnswer {
            what: "x",
            problem: "y",
        },
        WalletError::AgencyDown {
            agency: "https://city.example".into(),
        },
        WalletError::AgencyMismatch {
            asked: "https://city.example".into(),
            answered: "https://other.example".into(),
        },
        WalletError::DamagedBackupApplication { id: "a".into() },
        WalletError::UnknownApplication("a".into()),
        WalletError::AmbiguousApplication {
            id: "a".into(),
            ids: vec![],
        },
        VaultError::TooManyApplications { limit: 1 }.into(),
        VaultError::WrongPassphrase.into(),
        VaultError::Missing("d".into()).into(),
        VaultError::Exists("d".into()).into(),
        VaultError::NoHolderKey.into(),
        VaultError::NotABackup.into(),
        VaultError::Damaged { record: "r".into() }.into(),
        VaultError::Encrypt { record: "r".into() }.into(),
    ];
    for e in samples {
        let code = e.code();
        assert!(
            code.components().contains("wallet"),
            "{} ({e}) is not listed as a wallet code: {}",
            code.as_str(),
            code.components()
        );
    }
}

/// An OpenID4VCI issuer in this process (a did:key issuer, so nothing else is fetched). The
/// token endpoint wants the transaction code `493536`; the credential endpoint checks the
/// bearer token and the key proof (audience, nonce) before it issues to the proof's key.
async fn local_issuer() -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::{get, post};
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let issuer = Arc::new(key());
    let b = base.clone();
    let meta = json!({"credential_issuer": b, "credential_endpoint": format!("{b}/credential"),
        "nonce_endpoint": format!("{b}/nonce"),
        "credential_configurations_supported": {"bn": {"format": "dc+sd-jwt", "vct": CredentialType::BusinessNumber.vct()}},
        "display": [{"name": "Canada Revenue Agency", "locale": "en-CA"}, {"name": "Agence du revenu du Canada", "locale": "fr-CA"}]});
    let asm = json!({"issuer": b, "token_endpoint": format!("{b}/token")});
    let aud = base.clone();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-credential-issuer",
            get(move || async move { axum::Json(meta) }),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { axum::Json(asm) }),
        )
        .route(
            "/token",
            post(|body: String| async move {
                let form: std::collections::HashMap<String, String> =
                    form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let ok = form.get("grant_type").map(String::as_str)
                    == Some(bizcred_core::oid4vci::PRE_AUTHORIZED_GRANT)
                    && form.get("pre-authorized_code").map(String::as_str) == Some("code-1")
                    && form.get("tx_code").map(String::as_str) == Some("493536");
                if ok {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": "at-1", "token_type": "Bearer"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "invalid_grant", "error_description": "wrong transaction code"})),
                    )
                }
            }),
        )
        .route(
            "/nonce",
            post(|| async { axum::Json(json!({"c_nonce": "cn-1"})) }),
        )
        .route(
            "/credential",
            post(move |headers: axum::http::HeaderMap, body: axum::Json<Value>| {
                let (issuer, aud) = (issuer.clone(), aud.clone());
                async move {
                    let bad = |m: &str| {
                        (
                            axum::http::StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_proof", "error_description": m})),
                        )
                    };
                    if headers.get("authorization").and_then(|h| h.to_str().ok())
                        != Some("Bearer at-1")
                    {
                        return bad("no access token");
                    }
                    let Some(proof) = body.0["proofs"]["jwt"][0].as_str() else {
                        return bad("no proof");
                    };
                    let Ok(p) = bizcred_core::oid4vci::verify_proof_jwt(proof, &aud, NOW, 300)
                    else {
                        return bad("the proof does not verify");
                    };
                    if p.nonce.as_deref() != Some("cn-1") {
                        return bad("wrong nonce");
                    }
                    let did = bizcred_core::did::did_key(&issuer.public_key());
                    let kid = format!("{did}#{}", did.trim_start_matches("did:key:"));
                    let claims = bn_claims();
                    let sd = sd_jwt_vc::issue(
                        Issuance {
                            vct: CredentialType::BusinessNumber.vct(),
                            issuer: &did,
                            kid: Some(&kid),
                            iat: NOW,
                            nbf: None,
                            exp: None,
                            holder_key: Some(&p.key),
                            status: None,
                            disclosable: sd_jwt_vc::default_disclosable(
                                CredentialType::BusinessNumber,
                                &claims,
                            ),
                            claims,
                            decoys: 0,
                        },
                        issuer.as_ref(),
                        &mut rand_core::OsRng,
                    )
                    .expect("issue");
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"credentials": [{"credential": sd.serialize()}]})),
                    )
                }
            }),
        );
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, handle)
}

#[tokio::test]
async fn receive_runs_the_pre_authorized_flow_and_stores_only_a_verified_credential() {
    let (base, server) = local_issuer().await;
    let dir = tempfile::tempdir().expect("tmp");
    let v = SledVault::create(dir.path(), b"pass").expect("vault");
    let holder = key();
    v.set_holder_key(&holder).expect("key");
    let c = net::client().expect("client");
    let offer =
        issuance::CredentialOffer::from_json(json!({"credential_issuer": format!("{base}/"),
        "credential_configuration_ids": ["bn"],
        "grants": {bizcred_core::oid4vci::PRE_AUTHORIZED_GRANT: {"pre-authorized_code": "code-1",
            "tx_code": {"input_mode": "numeric", "length": 6}}}}))
        .expect("offer");
    let pending = bizcred_wallet::pending::PendingDir::new(dir.path(), &holder);
    let opts = |tx_code| issuance::ReceiveOptions {
        tx_code,
        lang: Lang::Fr,
        now_ms: NOW * 1000 + 5,
    };

    // No transaction code: refused before anything is sent.
    let e = issuance::receive(&c, &v, &pending, "0f", &offer, opts(None), &mut |_| {})
        .await
        .expect_err("no tx code");
    assert_eq!(e.code().as_str(), "TX_CODE_REQUIRED");
    // A wrong one: the issuer's refusal, and nothing stored.
    let e = issuance::receive(
        &c,
        &v,
        &pending,
        "0f",
        &offer,
        opts(Some("000000")),
        &mut |_| {},
    )
    .await
    .expect_err("wrong tx code");
    assert_eq!(e.code().as_str(), "TOKEN_REFUSED");
    assert!(e.is_refusal());
    assert!(e.to_string().contains("wrong transaction code"), "{e}");
    assert!(v.credentials().expect("none").is_empty());

    let mut steps = Vec::new();
    let rec = issuance::receive(
        &c,
        &v,
        &pending,
        "0f",
        &offer,
        opts(Some("493536")),
        &mut |s| steps.push(s.to_owned()),
    )
    .await
    .expect("received");
    server.abort();
    assert_eq!(rec.vct, CredentialType::BusinessNumber.vct());
    assert_eq!(rec.issuer_name, "Agence du revenu du Canada");
    assert_eq!(rec.received_at, NOW * 1000 + 5);
    assert_eq!(rec.iat, Some(NOW));
    assert_eq!(rec.id, credential_id(&rec.credential));
    assert_eq!(v.credentials().expect("stored"), vec![rec.clone()]);
    use bizcred_wallet::pending::PendingReceives;
    assert!(pending.pending().expect("pending").is_empty());
    assert_eq!(
        rec.claims().expect("claims")["legal_name"],
        "Jennifer Ventures Inc."
    );
    assert!(steps.iter().any(|s| s.contains("verifying")), "{steps:?}");
}

#[tokio::test]
async fn a_declined_or_answered_request_is_in_the_history() {
    let dir = tempfile::tempdir().expect("tmp");
    let v = SledVault::create(dir.path(), b"pass").expect("vault");
    let holder = key();
    let bn = CredentialType::BusinessNumber;
    let cred = stored(issue(&key(), &holder, bn, bn_claims(), NOW), bn.vct(), NOW);
    v.put_credential(&cred).expect("put");

    use axum::routing::post;
    let app = axum::Router::new().route(
        "/response",
        post(|| async { axum::Json(json!({"verdict": "ACCEPT"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut claims = request_claims("decentralized_identifier:did:key:zBank", bn_dcql());
    claims.insert(
        "response_uri".into(),
        format!("http://{addr}/response").into(),
    );
    let req = PresentationRequest::from_claims(claims).expect("request");

    presentation::record_declined(&v, &req, NOW).expect("declined");
    let chosen = presentation::match_dcql(&v.credentials().expect("held"), &req.dcql_query, NOW)
        .expect("match");
    let p = presentation::build_presentation(&holder, &req, &chosen, NOW + 1).expect("present");
    let c = net::client().expect("client");
    let a = presentation::send_and_record(&c, &v, &req, &p, NOW + 1)
        .await
        .expect("sent");
    server.abort();
    assert!(a.accepted());
    let h = v.history().expect("history");
    assert_eq!(h.len(), 2);
    assert_eq!(
        (
            h[0].outcome.as_str(),
            h[0].channel.as_str(),
            h[0].credentials.len()
        ),
        ("declined", "declined", 0)
    );
    assert_eq!(h[1].outcome, "ACCEPT");
    assert_eq!(h[1].time, NOW + 1);
    assert_eq!(h[1].channel, format!("http://{addr}/response"));
    assert_eq!(h[1].credentials, p.disclosed);
}

#[tokio::test]
async fn an_answer_over_the_bound_is_refused() {
    use axum::routing::get;
    let app = axum::Router::new().route("/big", get(|| async { "x".repeat(net::MAX_BODY + 1) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let c = net::client().expect("client");
    let e = net::get_text(&c, &format!("http://{addr}/big"), "a large answer")
        .await
        .expect_err("too large");
    server.abort();
    assert_eq!(e.code().as_str(), "RESPONSE_TOO_LARGE");
}

#[tokio::test]
async fn a_chunked_answer_is_cut_at_the_bound() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that streams chunks without announcing a length, far past the bound.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(2 * net::MAX_BODY / chunk.len()) {
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            if sock.write_all(&frame).await.is_err() {
                return; // the client stopped reading: what the test wants
            }
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
    });
    let c = net::client().expect("client");
    let e = net::get_text(&c, &format!("http://{addr}/stream"), "a streamed answer")
        .await
        .expect_err("too large");
    server.abort();
    assert_eq!(e.code().as_str(), "RESPONSE_TOO_LARGE", "{e}");
}

#[test]
fn causes_are_kept_as_sources_not_repeated_in_the_message() {
    use std::error::Error;
    let e = net::parse_json::<Value>("{", "the issuer metadata").expect_err("not JSON");
    let source = e.source().expect("the parse error is kept").to_string();
    assert!(!e.to_string().contains(&source), "{e} repeats {source}");
    let e = bizcred_wallet::WalletError::RequestSignature(oid4vp::RequestError::ForeignKid {
        kid: "did:key:z#0".into(),
    });
    let source = e.source().expect("kept").to_string();
    assert!(!e.to_string().contains(&source), "{e} repeats {source}");
}
