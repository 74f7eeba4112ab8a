//! An in-memory ecosystem (no processes): four agencies with did:webvh DIDs, a registry state
//! with their authorizations, signed status lists, a trust bundle, the four credentials of
//! Jennifer Ventures Inc., and presentations of them. For benchmarks and the interop tests.
//!
//! The agencies and the registry are `bizcred-test-support`'s; this adds the holder, the
//! credentials and the bank's policy.

use rand_core::OsRng;
use serde_json::{json, Map, Value};

use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::sd_jwt::SdJwt;
use bizcred_core::status_list::StatusList;
use bizcred_core::trust::bundle::{StatusListCopy, TrustAnchor};
use bizcred_schemas::CredentialType;
use bizcred_test_support::{example_claims, present, Agency, Credential, InMemoryRegistry};
use bizcred_verifier::Policy;

/// The registry origin of the fixture.
pub const ORIGIN: &str = "registry.bizcred.bench/log";

/// One agency of the fixture: its DID, keys and log, and the type it issues.
#[derive(Debug)]
pub struct FixtureAgency {
    /// The agency (its assertion key, `#key-1`, signs credentials and status lists).
    pub agency: Agency,
    /// What it issues.
    pub ty: CredentialType,
}

/// The whole in-memory ecosystem.
pub struct Fixture {
    /// The agencies.
    pub agencies: Vec<FixtureAgency>,
    /// The registry: its keys, entries and state.
    pub registry: InMemoryRegistry,
    /// The holder key.
    pub holder: SecretKey,
    /// The four credentials, as issued.
    pub credentials: Vec<SdJwt>,
    /// The bank's policy.
    pub policy: Policy,
    /// When it all happens (Unix seconds).
    pub now: i64,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// Builds the ecosystem at `now`.
    pub fn new(now: i64) -> Fixture {
        let t = now - 86_400;
        let mut registry = InMemoryRegistry::new(ORIGIN, t, now);
        let agencies: Vec<FixtureAgency> = CredentialType::ALL
            .into_iter()
            .enumerate()
            .map(|(i, ty)| FixtureAgency {
                agency: Agency::new(&format!("agency{i}.bizcred.bench"), t),
                ty,
            })
            .collect();
        for a in &agencies {
            registry.onboard(&a.agency, "Agency", "Agence", &[a.ty], t);
        }
        let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let hk = holder.public_key();
        let credentials = agencies
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.agency.issue(Credential {
                    ty: a.ty,
                    claims: example_claims(a.ty),
                    holder: &hk,
                    status_idx: 1000 + i as u64,
                    iat: now - 3600,
                    exp: Some(now + 365 * 86_400),
                    decoys: 3,
                })
            })
            .collect();
        let policy = Policy::from_toml(include_str!(
            "../../examples/config/policies/loan-application.toml"
        ))
        .expect("policy");
        Fixture {
            agencies,
            registry,
            holder,
            credentials,
            policy,
            now,
        }
    }

    /// Signed 131,072-entry status lists, one per agency.
    pub fn status_lists(&self) -> Vec<StatusListCopy> {
        let list = StatusList::new(131_072, 2).expect("list");
        self.agencies
            .iter()
            .map(|a| {
                a.agency
                    .status_list_copy(&list, self.now - 600, self.now + 86_400)
            })
            .collect()
    }

    /// The signed trust bundle for a verifier holding `from` entries.
    pub fn bundle(&self, from: u64) -> String {
        self.registry
            .bundle(from, self.now - 60, self.status_lists())
    }

    /// The anchor verifiers pin.
    pub fn anchor(&self) -> TrustAnchor {
        self.registry.anchor()
    }

    /// Appends `n` governance entries (type definitions), for bundle benchmarks.
    pub fn grow(&mut self, n: usize) {
        for i in 0..n {
            let vct = format!("urn:bizcred:bench:{}:{i}", self.registry.state.size());
            self.registry
                .define_type(&vct, 86_400, 86_400, self.now - 100);
        }
    }

    /// The bank's `vp_token`: each credential with the policy's claims, bound to `nonce`/`aud`.
    pub fn presentation(&self, aud: &str, nonce: &str) -> Value {
        let mut vp = Map::new();
        for (req, sd) in self.policy.credentials.iter().zip(&self.credentials) {
            let p = present(sd, &req.claims, aud, nonce, self.now - 5, &self.holder);
            vp.insert(req.id.clone(), json!([p]));
        }
        Value::Object(vp)
    }
}
