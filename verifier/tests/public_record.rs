//! Public records verified on their own (`verify_record`, `bizcred-verifier verify-record`):
//! a genuine record of an authorized issuer is accepted; a revoked, tampered or unauthorized
//! one is refused with its code; and a public record never stands in for the business's own
//! credential in a presentation (no holder key: `NO_HOLDER_KEY`).

use bizcred_core::status_list::{Status, StatusList};
use bizcred_core::trust::state::TrustState;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{example_claims, Agency, InMemoryRegistry};
use bizcred_verifier::verify::verify_record;
use bizcred_verifier::{verify, Context, Policy, Presentation, Report, Verdict};
use serde_json::{json, Map, Value};

/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800;
const ISSUED: i64 = NOW - 30 * 86_400;

fn public_claims() -> Map<String, Value> {
    let mut c = example_claims(CredentialType::CertificateOfIncorporation);
    c.remove("directors");
    c
}

struct World {
    reg: InMemoryRegistry,
    obr: Agency,
    /// Onboarded, but for business numbers only.
    cra: Agency,
    list: StatusList,
}

impl World {
    fn new() -> World {
        let t = ISSUED - 86_400;
        let mut reg = InMemoryRegistry::new("registry.bizcred.test/log", t, NOW);
        let obr = Agency::new("obr.bizcred.test", t);
        let cra = Agency::new("cra.bizcred.test", t);
        reg.onboard(
            &obr,
            "OBR",
            "REO",
            &[CredentialType::CertificateOfIncorporation],
            t,
        );
        reg.onboard(&cra, "CRA", "ARC", &[CredentialType::BusinessNumber], t);
        World {
            reg,
            obr,
            cra,
            list: StatusList::new(1024, 2).expect("list"),
        }
    }
    fn trust(&self) -> TrustState {
        let lists = vec![
            self.obr
                .status_list_copy(&self.list, NOW - 600, NOW + 86_400),
            self.cra
                .status_list_copy(&self.list, NOW - 600, NOW + 86_400),
        ];
        self.reg.verifier_state(NOW - 3600, lists, NOW)
    }
    fn check(&self, text: &str) -> Report {
        let trust = self.trust();
        verify_record(
            text,
            &Context {
                trust: Some(&trust),
                stapled_status_lists: &[],
                now: NOW,
            },
        )
    }
}

fn codes(r: &Report) -> Vec<&str> {
    r.failures.iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn a_genuine_public_record_of_an_authorized_issuer_is_accepted() {
    let w = World::new();
    let rec = w
        .obr
        .issue_public(
            CredentialType::CertificateOfIncorporation,
            public_claims(),
            7,
            ISSUED,
        )
        .serialize();
    let r = w.check(&rec);
    assert_eq!(r.verdict, Verdict::Accept, "{:?}", r.failures);
    assert_eq!(r.credentials[0].status, "valid");
    assert_eq!(
        r.credentials[0].disclosed["legal_name"],
        public_claims()["legal_name"]
    );
}

#[test]
fn a_revoked_tampered_or_unauthorized_record_is_refused_with_its_code() {
    let mut w = World::new();
    let ty = CredentialType::CertificateOfIncorporation;
    w.list.set(7, Status::Invalid).expect("set");
    let revoked = w
        .obr
        .issue_public(ty, public_claims(), 7, ISSUED)
        .serialize();
    let r = w.check(&revoked);
    assert_eq!(r.verdict, Verdict::Reject);
    assert!(codes(&r).contains(&"REVOKED"), "{:?}", r.failures);

    let good = w
        .obr
        .issue_public(ty, public_claims(), 8, ISSUED)
        .serialize();
    let (jwt, rest) = good.split_once('.').expect("jwt");
    let (payload, sig) = rest.split_once('.').expect("payload");
    let mut p: Value =
        serde_json::from_slice(&bizcred_core::base64url_decode(payload).expect("b64"))
            .expect("json");
    p["legal_name"] = json!("Someone Else Inc.");
    let forged = format!(
        "{jwt}.{}.{sig}",
        bizcred_core::base64url_encode(serde_json::to_vec(&p).expect("json"))
    );
    let r = w.check(&forged);
    assert_eq!(r.verdict, Verdict::Reject);
    assert!(codes(&r).contains(&"BAD_SIGNATURE"), "{:?}", r.failures);

    // The CRA is trusted, but not for certificates of incorporation.
    let unauthorized = w
        .cra
        .issue_public(ty, public_claims(), 9, ISSUED)
        .serialize();
    let r = w.check(&unauthorized);
    assert_eq!(r.verdict, Verdict::Reject);
    assert!(
        codes(&r).contains(&"ISSUER_NOT_AUTHORIZED"),
        "{:?}",
        r.failures
    );

    let r = w.check("not a credential");
    assert_eq!(r.verdict, Verdict::Reject);

    // A business's own credential, checked on its own: genuine, but it proves nothing about
    // whoever shows it, so it is no public record.
    let holder = bizcred_core::keys::SecretKey::generate(
        bizcred_core::keys::Algorithm::EdDSA,
        &mut rand_core::OsRng,
    );
    let own = w
        .obr
        .issue(bizcred_test_support::Credential {
            ty,
            claims: example_claims(ty),
            holder: &bizcred_core::keys::Signer::public_key(&holder),
            status_idx: 12,
            iat: ISSUED,
            exp: None,
            decoys: 0,
        })
        .serialize();
    let r = w.check(&own);
    assert_eq!(r.verdict, Verdict::Reject);
    assert_eq!(
        codes(&r),
        vec!["PUBLIC_RECORD_HOLDER_BOUND"],
        "{:?}",
        r.failures
    );
}

#[test]
fn a_public_record_never_stands_in_for_the_business_own_credential() {
    let w = World::new();
    let policy = Policy::from_toml(
        "name = \"account opening\"\n[[credential]]\nid = \"incorporation\"\ntype = \"certificate-of-incorporation\"\nclaims = [\"legal_name\"]\n",
    )
    .expect("policy");
    let rec = w
        .obr
        .issue_public(
            CredentialType::CertificateOfIncorporation,
            public_claims(),
            7,
            ISSUED,
        )
        .serialize();
    // Whoever found the record in the repository presents it as it is: there is no key to
    // bind a presentation with.
    let vp = json!({"incorporation": [rec]});
    let trust = w.trust();
    let r = verify(
        &Presentation {
            vp_token: &vp,
            nonce: "n-0S6_WzA2Mj",
            audience: "x509_san_dns:bank.bizcred.test",
        },
        &policy,
        &Context {
            trust: Some(&trust),
            stapled_status_lists: &[],
            now: NOW,
        },
    );
    assert_eq!(r.verdict, Verdict::Reject);
    assert!(codes(&r).contains(&"NO_HOLDER_KEY"), "{:?}", r.failures);
}
