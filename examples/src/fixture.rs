//! An in-memory ecosystem (no processes): four agencies with did:webvh DIDs, a registry state
//! with their authorizations, signed status lists, a trust bundle, the four credentials of
//! Jennifer Ventures Inc., and presentations of them. For benchmarks.

use rand_core::OsRng;
use serde_json::{json, Map, Value};

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::sd_jwt::{ClaimPath, PathSegment, SdJwt};
use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference};
use bizcred_core::status_list::{self, StatusList};
use bizcred_core::trust::bundle::{self, StatusListCopy, TrustAnchor};
use bizcred_core::trust::entry::build;
use bizcred_core::trust::note::{Checkpoint, SignedNote};
use bizcred_core::trust::state::TrustState;
use bizcred_core::webvh;
use bizcred_schemas::CredentialType;
use bizcred_verifier::Policy;

/// The registry origin of the fixture.
pub const ORIGIN: &str = "registry.bizcred.bench/log";

/// One agency of the fixture.
pub struct FixtureAgency {
    /// Its DID.
    pub did: String,
    /// Its assertion key (`#key-1`).
    pub key: SecretKey,
    /// Its DID log.
    pub log: String,
    /// What it issues.
    pub ty: CredentialType,
}

impl std::fmt::Debug for FixtureAgency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureAgency")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// The whole in-memory ecosystem.
pub struct Fixture {
    /// The agencies.
    pub agencies: Vec<FixtureAgency>,
    /// The registry's authority key.
    pub authority: SecretKey,
    /// The registry's log key.
    pub log_key: SecretKey,
    /// The registry's state and entries.
    pub state: TrustState,
    /// The entries.
    pub entries: Vec<Value>,
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
            .field("size", &self.state.size())
            .finish_non_exhaustive()
    }
}

fn example(ty: CredentialType) -> Map<String, Value> {
    match crate::example_claims(ty) {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Fixture {
    /// Builds the ecosystem at `now`.
    pub fn new(now: i64) -> Fixture {
        let authority = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let log_key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let t = now - 86_400;
        let mut state = TrustState::empty(ORIGIN);
        let mut entries = Vec::new();
        let mut push = |e: Value, state: &mut TrustState| {
            state.apply(&e, now).expect("fixture entry");
            entries.push(e);
        };
        push(
            build::genesis(
                ORIGIN,
                &[authority.public_key()],
                ORIGIN,
                &log_key.public_key(),
                t,
                &authority,
                &mut OsRng,
            )
            .expect("g"),
            &mut state,
        );
        for ty in CredentialType::ALL {
            push(
                build::credential_type(
                    ORIGIN,
                    ty.vct(),
                    86_400,
                    7 * 86_400,
                    t,
                    &authority,
                    &mut OsRng,
                )
                .expect("t"),
                &mut state,
            );
        }
        let mut agencies = Vec::new();
        for (i, ty) in CredentialType::ALL.into_iter().enumerate() {
            let update = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
            let key = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
            let doc = json!({"@context": ["https://www.w3.org/ns/did/v1"], "id": "{DID}",
                "verificationMethod": [{"id": "{DID}#key-1", "type": "Multikey", "controller": "{DID}", "publicKeyMultibase": did::multikey(&key.public_key())}],
                "assertionMethod": ["{DID}#key-1"]});
            let mut p = Map::new();
            p.insert(
                "updateKeys".into(),
                json!([did::multikey(&update.public_key())]),
            );
            let (did, line) =
                webvh::create(&format!("agency{i}.bizcred.bench"), doc, p, t, &update)
                    .expect("did");
            let log = format!("{line}\n");
            push(
                build::issuer_registered(
                    ORIGIN, &did, "Agency", "Agence", &log, t, &authority, &mut OsRng,
                )
                .expect("e"),
                &mut state,
            );
            push(
                build::authorization_granted(
                    ORIGIN,
                    &did,
                    ty.vct(),
                    t,
                    None,
                    t,
                    &authority,
                    &mut OsRng,
                )
                .expect("e"),
                &mut state,
            );
            agencies.push(FixtureAgency { did, key, log, ty });
        }
        let holder = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let hk = holder.public_key();
        let credentials = agencies
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let claims = example(a.ty);
                let kid = format!("{}#key-1", a.did);
                let req = Issuance {
                    vct: a.ty.vct(),
                    issuer: &a.did,
                    kid: Some(&kid),
                    iat: now - 3600,
                    nbf: None,
                    exp: Some(now + 365 * 86_400),
                    holder_key: Some(&hk),
                    status: Some(StatusReference {
                        idx: 1000 + i as u64,
                        uri: Self::uri(a),
                    }),
                    disclosable: sd_jwt_vc::default_disclosable(a.ty, &claims),
                    claims,
                    decoys: 3,
                };
                sd_jwt_vc::issue(req, &a.key, &mut OsRng).expect("issue")
            })
            .collect();
        let policy = Policy::from_toml(include_str!(
            "../../examples/config/policies/loan-application.toml"
        ))
        .expect("policy");
        Fixture {
            agencies,
            authority,
            log_key,
            state,
            entries,
            holder,
            credentials,
            policy,
            now,
        }
    }

    fn uri(a: &FixtureAgency) -> String {
        format!(
            "https://{}/status/1",
            a.did.rsplit(':').next().unwrap_or("x")
        )
    }

    /// Signed 131,072-entry status lists, one per agency.
    pub fn status_lists(&self) -> Vec<StatusListCopy> {
        self.agencies
            .iter()
            .map(|a| {
                let list = StatusList::new(131_072, 2).expect("list");
                let token = status_list::sign_token(
                    &list,
                    &Self::uri(a),
                    &a.did,
                    &format!("{}#key-1", a.did),
                    self.now - 600,
                    self.now + 86_400,
                    3600,
                    &a.key,
                )
                .expect("sign");
                StatusListCopy {
                    uri: Self::uri(a),
                    token,
                }
            })
            .collect()
    }

    /// The signed trust bundle for a verifier holding `from` entries.
    pub fn bundle(&self, from: u64) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: self.state.size(),
            root: self.state.root(),
        };
        let note = SignedNote::sign(&cp.body(), ORIGIN, &self.log_key).expect("note");
        bundle::export(
            &self.state,
            &note,
            from,
            &self.entries,
            self.status_lists(),
            self.now - 60,
            &self.log_key,
        )
        .expect("bundle")
    }

    /// The anchor verifiers pin.
    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor::of(&self.state).expect("anchor")
    }

    /// Appends `n` governance entries (type definitions), for bundle benchmarks.
    pub fn grow(&mut self, n: usize) {
        for i in 0..n {
            let e = build::credential_type(
                ORIGIN,
                &format!("urn:bizcred:bench:{}:{i}", self.state.size()),
                86_400,
                86_400,
                self.now - 100,
                &self.authority,
                &mut OsRng,
            )
            .expect("e");
            self.state.apply(&e, self.now).expect("apply");
            self.entries.push(e);
        }
    }

    /// The bank's `vp_token`: each credential with the policy's claims, bound to `nonce`/`aud`.
    pub fn presentation(&self, aud: &str, nonce: &str) -> Value {
        let mut vp = Map::new();
        for (req, sd) in self.policy.credentials.iter().zip(&self.credentials) {
            let paths: Vec<ClaimPath> = req
                .claims
                .iter()
                .map(|p| p.iter().map(|s| PathSegment::Key(s.clone())).collect())
                .collect();
            let p = sd
                .select(&paths)
                .expect("select")
                .bind(aud, nonce, self.now - 5, &self.holder)
                .expect("bind");
            vp.insert(req.id.clone(), json!([p.serialize()]));
        }
        Value::Object(vp)
    }
}
