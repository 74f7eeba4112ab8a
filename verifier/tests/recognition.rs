//! The bank's loan-application policy (the examples' file) and an issuer of a second,
//! recognized registry: Ontario's registry recognizes British Columbia's authority for
//! certificates of incorporation, carries BC's bundle in its own, and the verifier, offline,
//! accepts a BC certificate of incorporation beside three Ontario credentials, saying through
//! which recognition; refuses it when the policy does not accept recognized registries
//! (`RECOGNITION_NOT_ACCEPTED`) and once the recognition is revoked
//! (`RECOGNITION_NOT_IN_FORCE`); and leaves it undecided on stale BC data (`REGISTRY_STALE`).

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::status_list::StatusList;
use bizcred_core::trust::bundle::{self, RecognizedBundle, StatusListCopy};
use bizcred_core::trust::entry::build::{self, RecognitionTerms};
use bizcred_core::trust::state::TrustState;
use bizcred_core::ReasonCode;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{example_claims, present, Agency, Credential, InMemoryRegistry};
use bizcred_verifier::{Context, Policy, Presentation, Report, Verdict};
use rand_core::OsRng;
use serde_json::{json, Map, Value};

const NOW: i64 = 1_795_348_800;
const ISSUED: i64 = NOW - 30 * 86_400;
const BC_AUTHORITY: &str = "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFD:trust.bc.test";
const ON_AUTHORITY: &str = "did:webvh:QmPFhMuZH9gjY2JZgyyrgRuFTywQ4mDhoKGVoGE8uy7hFE:trust.on.test";
const LOAN: &str = include_str!("../../examples/config/policies/loan-application.toml");

struct Issuer {
    agency: Agency,
    ty: CredentialType,
    list: StatusList,
}

impl Issuer {
    fn new(host: &str, ty: CredentialType) -> Issuer {
        Issuer {
            agency: Agency::new(host, ISSUED - 86_400),
            ty,
            list: StatusList::new(1024, 2).expect("list"),
        }
    }
    fn list(&self) -> StatusListCopy {
        self.agency
            .status_list_copy(&self.list, NOW - 600, NOW + 86_400)
    }
}

struct Federation {
    on: InMemoryRegistry,
    bc: InMemoryRegistry,
    ontario: Vec<Issuer>,
    bcreg: Issuer,
    holder: SecretKey,
}

impl Federation {
    fn new() -> Federation {
        let t = ISSUED - 86_400;
        let mut on = InMemoryRegistry::new("registry.on.test/log", t, NOW);
        let mut bc = InMemoryRegistry::new("registry.bc.test/log", t, NOW);
        let ontario = vec![
            Issuer::new("cra.on.test", CredentialType::BusinessNumber),
            Issuer::new("toronto.on.test", CredentialType::MunicipalBusinessLicence),
            Issuer::new("agco.on.test", CredentialType::LiquorSalesLicence),
        ];
        for i in &ontario {
            on.onboard(&i.agency, "Agency", "Agence", &[i.ty], t);
        }
        let bcreg = Issuer::new("bcreg.bc.test", CredentialType::CertificateOfIncorporation);
        bc.onboard(
            &bcreg.agency,
            "BC Registries",
            "Registres de la C.-B.",
            &[bcreg.ty],
            t,
        );
        let grant = build::recognition_granted(
            &on.origin,
            ON_AUTHORITY,
            &RecognitionTerms {
                entity_id: BC_AUTHORITY,
                resource: CredentialType::CertificateOfIncorporation.vct(),
                valid_from: t,
                valid_until: None,
                anchor: &bc.anchor(),
            },
            t,
            &on.authority,
            &mut OsRng,
        )
        .expect("sign");
        on.push(grant).expect("the recognition applies");
        Federation {
            on,
            bc,
            ontario,
            bcreg,
            holder: SecretKey::generate(Algorithm::EdDSA, &mut OsRng),
        }
    }

    /// What the verifier holds: Ontario's bundle (signed an hour ago) carrying BC's (signed
    /// at `bc_at`).
    fn verifier_state(&self, bc_at: i64) -> TrustState {
        let bc_bundle = self.bc.bundle(0, bc_at, vec![self.bcreg.list()]);
        let text = bundle::export_with_recognized(
            &self.on.state,
            &self.on.checkpoint(),
            0,
            &self.on.entries,
            self.ontario.iter().map(Issuer::list).collect(),
            vec![RecognizedBundle {
                authority_id: BC_AUTHORITY.into(),
                bundle: bc_bundle,
            }],
            NOW - 3600,
            &self.on.log_key,
        )
        .expect("export");
        bundle::import(None, &self.on.anchor(), &text, NOW)
            .expect("the verifier imports it")
            .state
    }

    fn vp_token(&self, policy: &Policy) -> Value {
        let hk = self.holder.public_key();
        let mut vp = Map::new();
        for (i, req) in policy.credentials.iter().enumerate() {
            let issuer = std::iter::once(&self.bcreg)
                .chain(&self.ontario)
                .find(|x| x.ty == req.credential_type)
                .expect("an issuer");
            let sd = issuer.agency.issue(Credential {
                ty: issuer.ty,
                claims: example_claims(issuer.ty),
                holder: &hk,
                status_idx: 10 + i as u64,
                iat: ISSUED,
                exp: None,
                decoys: 2,
            });
            let p = present(&sd, &req.claims, "bank", "n-1", NOW - 10, &self.holder);
            vp.insert(req.id.clone(), json!([p]));
        }
        Value::Object(vp)
    }

    fn verify(&self, policy: &Policy, trust: &TrustState) -> Report {
        let vp = self.vp_token(policy);
        bizcred_verifier::verify(
            &Presentation {
                vp_token: &vp,
                nonce: "n-1",
                audience: "bank",
            },
            policy,
            &Context {
                trust: Some(trust),
                stapled_status_lists: &[],
                now: NOW,
            },
        )
    }
}

fn codes(r: &Report) -> Vec<ReasonCode> {
    r.failures.iter().map(|f| f.code).collect()
}

#[test]
fn the_bank_accepts_an_issuer_of_a_recognized_registry_until_the_recognition_is_revoked() {
    let mut fed = Federation::new();
    let policy = Policy::from_toml(LOAN).expect("the examples' loan policy");
    assert!(policy.accept_recognized);
    let trust = fed.verifier_state(NOW - 3600);

    let report = fed.verify(&policy, &trust);
    assert_eq!(report.verdict, Verdict::Accept, "{:?}", report.failures);
    let inc = report
        .credentials
        .iter()
        .find(|c| c.vct == CredentialType::CertificateOfIncorporation.vct())
        .expect("the certificate of incorporation");
    assert_eq!(inc.issuer, fed.bcreg.agency.did);
    assert_eq!(inc.issuer_name.as_deref(), Some("BC Registries"));
    let through = inc.recognition.as_ref().expect("through a recognition");
    assert_eq!(through.authority_id, BC_AUTHORITY);
    assert_eq!(through.log_origin, "registry.bc.test/log");
    let grant_index = fed.on.state.size() - 1;
    assert_eq!(through.entry, Some(grant_index));
    // The Ontario credentials went through no recognition; the report reads back.
    assert!(report
        .credentials
        .iter()
        .filter(|c| c.vct != CredentialType::CertificateOfIncorporation.vct())
        .all(|c| c.recognition.is_none()));
    let json = serde_json::to_string(&report).expect("json");
    let back: Report = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, report);

    // A policy that does not accept recognized registries refuses it.
    let strict =
        Policy::from_toml(&format!("{LOAN}\n[recognition]\naccept = false\n")).expect("policy");
    let report = fed.verify(&strict, &trust);
    assert_eq!(report.verdict, Verdict::Reject);
    assert_eq!(codes(&report), vec![ReasonCode::RecognitionNotAccepted]);

    // BC's data older than the policy's registry age: undecided, last known ACCEPT.
    let stale = fed.verifier_state(NOW - 3 * 86_400);
    let report = fed.verify(&policy, &stale);
    assert_eq!(
        report.verdict,
        Verdict::Indeterminate,
        "{:?}",
        report.failures
    );
    assert_eq!(report.last_known, Some(Verdict::Accept));
    assert_eq!(codes(&report), vec![ReasonCode::RegistryStale]);

    // Ontario revokes the recognition: the same credential is refused from then on, whatever
    // its proof time.
    let revoke = build::recognition_revoked(
        &fed.on.origin,
        BC_AUTHORITY,
        CredentialType::CertificateOfIncorporation.vct(),
        NOW - 60,
        NOW - 60,
        &fed.on.authority,
        &mut OsRng,
    )
    .expect("sign");
    fed.on.push(revoke).expect("the revocation applies");
    let trust = fed.verifier_state(NOW - 3600);
    let report = fed.verify(&policy, &trust);
    assert_eq!(report.verdict, Verdict::Reject);
    assert_eq!(codes(&report), vec![ReasonCode::RecognitionNotInForce]);
    let inc = report
        .credentials
        .iter()
        .find(|c| c.vct == CredentialType::CertificateOfIncorporation.vct())
        .expect("summarized");
    let through = inc.recognition.as_ref().expect("named");
    assert_eq!(
        (through.authority_id.as_str(), through.entry),
        (BC_AUTHORITY, None)
    );
}

#[test]
fn a_recognition_covers_only_its_type() {
    let fed = Federation::new();
    let trust = fed.verifier_state(NOW - 3600);
    // BC's issuer, recognized for incorporations, signs a business number: BC does not
    // authorize it for that type, and Ontario does not recognize BC for it.
    let policy = Policy::from_toml(
        "name = \"bn\"\n[[credential]]\nid = \"bn\"\ntype = \"business-number\"\nclaims = [\"business_number\"]\n",
    )
    .expect("policy");
    let hk = fed.holder.public_key();
    let sd = fed.bcreg.agency.issue(Credential {
        ty: CredentialType::BusinessNumber,
        claims: example_claims(CredentialType::BusinessNumber),
        holder: &hk,
        status_idx: 3,
        iat: ISSUED,
        exp: None,
        decoys: 0,
    });
    let p = present(
        &sd,
        &policy.credentials[0].claims,
        "bank",
        "n-1",
        NOW - 10,
        &fed.holder,
    );
    let vp = json!({"bn": [p]});
    let report = bizcred_verifier::verify(
        &Presentation {
            vp_token: &vp,
            nonce: "n-1",
            audience: "bank",
        },
        &policy,
        &Context {
            trust: Some(&trust),
            stapled_status_lists: &[],
            now: NOW,
        },
    );
    assert_eq!(report.verdict, Verdict::Reject);
    assert!(
        codes(&report).contains(&ReasonCode::RecognitionNotInForce),
        "{:?}",
        report.failures
    );
}
