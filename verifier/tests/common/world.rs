//! The registry, the four agencies and a business's wallet key of the verifier tests: a trust
//! bundle the verifier imports, and the wallet's `vp_token` answering a request.

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::status_list::StatusList;
use bizcred_core::trust::bundle::StatusListCopy;
use bizcred_schemas::CredentialType;
use bizcred_test_support::{example_claims, present, Agency, Credential, InMemoryRegistry};
use bizcred_verifier::Policy;
use rand_core::OsRng;
use serde_json::{json, Map, Value};

/// 2026-11-22T12:00:00Z: the time the fixtures are made for.
pub const NOW: i64 = 1_795_348_800;
const ISSUED: i64 = NOW - 30 * 86_400;
const ORIGIN: &str = "registry.bizcred.test/log";

/// The registry, the four agencies and a business's wallet key.
pub struct World {
    /// The registry.
    pub reg: InMemoryRegistry,
    agencies: Vec<(Agency, CredentialType, StatusList)>,
    holder: SecretKey,
}

impl World {
    /// A registry with the four agencies onboarded.
    pub fn new() -> World {
        let t = ISSUED - 86_400;
        let mut reg = InMemoryRegistry::new(ORIGIN, t, NOW);
        let agencies: Vec<(Agency, CredentialType, StatusList)> = [
            (
                "obr.bizcred.test",
                CredentialType::CertificateOfIncorporation,
            ),
            ("cra.bizcred.test", CredentialType::BusinessNumber),
            (
                "toronto.bizcred.test",
                CredentialType::MunicipalBusinessLicence,
            ),
            ("agco.bizcred.test", CredentialType::LiquorSalesLicence),
        ]
        .into_iter()
        .map(|(host, ty)| {
            (
                Agency::new(host, ISSUED - 86_400),
                ty,
                StatusList::new(1024, 2).expect("list"),
            )
        })
        .collect();
        for (a, ty, _) in &agencies {
            reg.onboard(a, "Agency", "Agence", &[*ty], t);
        }
        World {
            reg,
            agencies,
            holder: SecretKey::generate(Algorithm::EdDSA, &mut OsRng),
        }
    }

    /// The trust bundle, signed an hour before [`NOW`], with every agency's status list.
    pub fn bundle(&self) -> String {
        let lists: Vec<StatusListCopy> = self
            .agencies
            .iter()
            .map(|(a, _, l)| a.status_list_copy(l, NOW - 600, NOW + 86_400))
            .collect();
        self.reg.bundle(0, NOW - 3600, lists)
    }

    /// The wallet's `vp_token` for `policy`, bound to `aud` and `nonce`.
    pub fn vp_token(&self, policy: &Policy, aud: &str, nonce: &str) -> Value {
        let hk = self.holder.public_key();
        let mut vp = Map::new();
        for (i, req) in policy.credentials.iter().enumerate() {
            let (a, ty, _) = self
                .agencies
                .iter()
                .find(|(_, ty, _)| *ty == req.credential_type)
                .expect("an agency issues it");
            let sd = a.issue(Credential {
                ty: *ty,
                claims: example_claims(*ty),
                holder: &hk,
                status_idx: 10 + i as u64,
                iat: ISSUED,
                exp: None,
                decoys: 2,
            });
            let p = present(&sd, &req.claims, aud, nonce, NOW - 10, &self.holder);
            vp.insert(req.id.clone(), json!([p]));
        }
        Value::Object(vp)
    }
}

/// The loan-application policy of the examples.
pub fn loan_policy() -> Policy {
    Policy::from_toml(include_str!(
        "../../../examples/config/policies/loan-application.toml"
    ))
    .expect("policy")
}

/// A REJECT report (the presentation is no SD-JWT) for the request `nonce`.
pub fn rejected_report(nonce: &str) -> bizcred_verifier::Report {
    let vp = json!({"x": ["not-an-sd-jwt"]});
    let report = bizcred_verifier::verify(
        &bizcred_verifier::Presentation {
            vp_token: &vp,
            nonce,
            audience: "aud",
        },
        &loan_policy(),
        &bizcred_verifier::Context {
            trust: None,
            stapled_status_lists: &[],
            now: NOW,
        },
    );
    assert_eq!(report.verdict, bizcred_verifier::Verdict::Reject);
    report
}

/// The `direct_post` form answering the request `state` with `vp_token`.
pub fn response_form(vp_token: &Value, state: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("vp_token", &vp_token.to_string())
        .append_pair("state", state)
        .finish()
}

/// The nonce and client id of a signed request object.
pub fn nonce_of(jwt: &str) -> (String, String) {
    let payload = jwt.split('.').nth(1).expect("payload");
    let v: Value = serde_json::from_slice(&bizcred_core::base64url_decode(payload).expect("b64"))
        .expect("json");
    (
        v["nonce"].as_str().expect("nonce").to_owned(),
        v["client_id"].as_str().expect("client_id").to_owned(),
    )
}
