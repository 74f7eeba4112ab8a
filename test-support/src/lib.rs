//! The fixtures bizcred's tests and benchmarks share, written once: an [`Agency`] with a
//! did:webvh DID (update key, committed pre-rotation key, assertion key `#key-1`, its log) and
//! its key rotation, credentials and signed status lists issued by it, and an
//! [`InMemoryRegistry`] that signs the governance entries (genesis, the four credential types,
//! issuer registrations, authorizations, mirrored DID log lines) and replays them into a
//! [`TrustState`], with its checkpoints, bundles and anchor.
//!
//! Used as a dev-dependency by `bizcred-registry` and `bizcred-verifier`, and by the in-memory
//! fixture of `bizcred-examples` (benchmarks and interop tests).
//!
//! `bizcred-core`'s own integration tests (`core/tests/`) cannot use it: this crate depends on
//! `bizcred-core`, so a dev-dependency of `bizcred-core` on it would build `bizcred-core` twice
//! and the two copies' types would not match. `core/tests/trust.rs` keeps its own fixture.
//!
//! This is test support: builders that cannot fail on their fixed inputs panic with `expect`
//! and a reason (a failure there is a broken fixture, not a case under test); what a test may
//! want to see fail ([`InMemoryRegistry::push`]) returns a `Result`. Keys come from the OS
//! random number generator, so every fixture is fresh.

use bizcred_core::did;
use bizcred_core::keys::{Algorithm, PublicKey, SecretKey, Signer};
use bizcred_core::sd_jwt::{ClaimPath, PathSegment, SdJwt};
use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference};
use bizcred_core::status_list::{self, StatusList};
use bizcred_core::trust::bundle::{self, StatusListCopy, TrustAnchor};
use bizcred_core::trust::entry::build;
use bizcred_core::trust::note::{Checkpoint, SignedNote};
use bizcred_core::trust::state::{EntryError, TrustState};
use bizcred_core::webvh;
use bizcred_schemas::CredentialType;
use rand_core::OsRng;
use serde_json::{json, Map, Value};

/// The `ttl` (seconds) of the status list tokens the fixtures sign.
pub const STATUS_LIST_TTL: i64 = 3600;

/// A new Ed25519 key from the OS random number generator.
pub fn new_key() -> SecretKey {
    SecretKey::generate(Algorithm::EdDSA, &mut OsRng)
}

/// A DID document whose only key, `#<fragment>`, is the assertion key `key`; the literal
/// `{DID}` stands for the DID where it is not known yet (`webvh::create` fills it in).
fn document(did: &str, fragment: &str, key: &PublicKey) -> Value {
    let id = format!("{did}#{fragment}");
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{"id": id, "type": "Multikey", "controller": did, "publicKeyMultibase": did::multikey(key)}],
        "assertionMethod": [id],
    })
}

/// An agency (an issuer) with a did:webvh DID: created with pre-rotation, so its next update
/// key is committed in the first line, and one assertion key, `#key-1`.
pub struct Agency {
    /// The DID.
    pub did: String,
    /// The DID log (one line, newline-terminated).
    pub log: String,
    /// The key that signed the first line.
    pub update: SecretKey,
    /// The update key the first line commits to (`nextKeyHashes`): it signs the next line.
    pub next_update: SecretKey,
    /// The assertion key, `#key-1`: it signs credentials and status lists.
    pub assertion: SecretKey,
}

impl std::fmt::Debug for Agency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agency")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// What a test asks an agency to issue.
#[derive(Debug, Clone)]
pub struct Credential<'a> {
    /// The credential type.
    pub ty: CredentialType,
    /// The business claims (every top-level claim is disclosable, as bizcred issues them).
    pub claims: Map<String, Value>,
    /// The holder's key (`cnf`).
    pub holder: &'a PublicKey,
    /// The credential's index in the agency's status list ([`Agency::status_uri`]).
    pub status_idx: u64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires (Unix seconds), if ever.
    pub exp: Option<i64>,
    /// Decoy digests at the top level.
    pub decoys: usize,
}

impl Agency {
    /// Creates an agency at `host` (the did:webvh part after the SCID), its first DID log line
    /// dated `created` (Unix seconds).
    ///
    /// # Panics
    /// If `host` is not a valid did:webvh host and path.
    pub fn new(host: &str, created: i64) -> Agency {
        let update = new_key();
        let next_update = new_key();
        let assertion = new_key();
        let doc = document("{DID}", "key-1", &assertion.public_key());
        let p = webvh::pre_rotation_parameters(&update.public_key(), &next_update.public_key());
        let (did, line) =
            webvh::create(host, doc, p, created, &update).expect("a did:webvh DID for the host");
        Agency {
            did,
            log: format!("{line}\n"),
            update,
            next_update,
            assertion,
        }
    }

    /// The DID URL of the assertion key, `<did>#key-1`.
    pub fn kid(&self) -> String {
        format!("{}#key-1", self.did)
    }

    /// The URI of the agency's status list, `https://<host>/status/1`.
    pub fn status_uri(&self) -> String {
        let host = self.did.rsplit(':').next().unwrap_or("x");
        format!("https://{host}/status/1")
    }

    /// The next line of the agency's DID log, dated `at`: the assertion key becomes a new key,
    /// `#key-2` (returned with the line), and the line is signed with the committed next update
    /// key, committing in turn to a fresh one. `self.log` is left as it was.
    ///
    /// # Panics
    /// If `self.log` does not verify at `at` (the fixture's own log: it does, for any `at`
    /// from its creation on).
    pub fn rotation(&self, at: i64) -> (String, SecretKey) {
        let log = webvh::verify_log(&self.log, None, at);
        let new_assertion = new_key();
        let after = new_key();
        let state = document(&self.did, "key-2", &new_assertion.public_key());
        let p = webvh::pre_rotation_parameters(&self.next_update.public_key(), &after.public_key());
        let line = webvh::update(&log, state, p, at, &self.next_update)
            .expect("the next line of the agency's own log");
        (line, new_assertion)
    }

    /// Issues `c` as an SD-JWT VC signed with the assertion key (`#key-1`), with its status at
    /// [`Agency::status_uri`].
    ///
    /// # Panics
    /// If the claims cannot be issued (they are the test's own).
    pub fn issue(&self, c: Credential<'_>) -> SdJwt {
        self.issue_signed_by(c, &self.assertion, &self.kid())
    }

    /// As [`Agency::issue`], but signed with `key` under the header `kid` (a rotated key, or an
    /// impostor's).
    ///
    /// # Panics
    /// If the claims cannot be issued (they are the test's own).
    pub fn issue_signed_by(&self, c: Credential<'_>, key: &SecretKey, kid: &str) -> SdJwt {
        let req = Issuance {
            vct: c.ty.vct(),
            issuer: &self.did,
            kid: Some(kid),
            iat: c.iat,
            nbf: None,
            exp: c.exp,
            holder_key: Some(c.holder),
            status: Some(StatusReference {
                idx: c.status_idx,
                uri: self.status_uri(),
            }),
            disclosable: sd_jwt_vc::default_disclosable(c.ty, &c.claims),
            claims: c.claims,
            decoys: c.decoys,
        };
        sd_jwt_vc::issue(req, key, &mut OsRng).expect("the test's credential issues")
    }

    /// A public record of type `ty`: `claims` all in clear, no holder key (`cnf`), no expiry,
    /// signed with the assertion key, with its status at index `idx` of
    /// [`Agency::status_uri`] (as bulk issuance makes them).
    ///
    /// # Panics
    /// If the claims cannot be issued (they are the test's own).
    pub fn issue_public(
        &self,
        ty: CredentialType,
        claims: Map<String, Value>,
        idx: u64,
        iat: i64,
    ) -> SdJwt {
        let kid = self.kid();
        let req = Issuance {
            vct: ty.vct(),
            issuer: &self.did,
            kid: Some(&kid),
            iat,
            nbf: None,
            exp: None,
            holder_key: None,
            status: Some(StatusReference {
                idx,
                uri: self.status_uri(),
            }),
            disclosable: Vec::new(),
            claims,
            decoys: 0,
        };
        sd_jwt_vc::issue(req, &self.assertion, &mut OsRng).expect("the test's record issues")
    }

    /// `list` signed with the assertion key as the agency's status list token, issued at `iat`,
    /// expiring at `exp`, with a `ttl` of [`STATUS_LIST_TTL`]: the copy a bundle carries.
    pub fn status_list_copy(&self, list: &StatusList, iat: i64, exp: i64) -> StatusListCopy {
        self.status_list_copy_signed_by(list, iat, exp, &self.assertion, &self.kid())
    }

    /// As [`Agency::status_list_copy`], signed with `key` under the header `kid`.
    ///
    /// # Panics
    /// If the token cannot be signed (a list the test built itself).
    pub fn status_list_copy_signed_by(
        &self,
        list: &StatusList,
        iat: i64,
        exp: i64,
        key: &SecretKey,
        kid: &str,
    ) -> StatusListCopy {
        let uri = self.status_uri();
        let token =
            status_list::sign_token(list, &uri, &self.did, kid, iat, exp, STATUS_LIST_TTL, key)
                .expect("the test's status list signs");
        StatusListCopy { uri, token }
    }
}

/// `sd` presented as a holder presents it: only the claims at `claims` disclosed (each path a
/// list of object keys, as a verifier's policy names them), bound to `aud` and `nonce` by a
/// key-binding JWT issued at `iat` and signed with `holder`. Returns the serialized SD-JWT+KB.
///
/// # Panics
/// If a path cannot be selected or the key-binding JWT cannot be signed.
pub fn present(
    sd: &SdJwt,
    claims: &[Vec<String>],
    aud: &str,
    nonce: &str,
    iat: i64,
    holder: &SecretKey,
) -> String {
    let paths: Vec<ClaimPath> = claims
        .iter()
        .map(|p| p.iter().map(|k| PathSegment::Key(k.clone())).collect())
        .collect();
    sd.select(&paths)
        .expect("the claims are selectable")
        .bind(aud, nonce, iat, holder)
        .expect("the key-binding JWT signs")
        .serialize()
}

/// The valid example claims of a credential type (`schemas/examples/valid/<slug>.json`).
///
/// # Panics
/// If the example file is not a JSON object (it is compiled in and checked by the schema tests).
pub fn example_claims(ty: CredentialType) -> Map<String, Value> {
    let text = match ty {
        CredentialType::CertificateOfIncorporation => {
            include_str!("../../schemas/examples/valid/certificate-of-incorporation.json")
        }
        CredentialType::BusinessNumber => {
            include_str!("../../schemas/examples/valid/business-number.json")
        }
        CredentialType::MunicipalBusinessLicence => {
            include_str!("../../schemas/examples/valid/municipal-business-licence.json")
        }
        CredentialType::LiquorSalesLicence => {
            include_str!("../../schemas/examples/valid/liquor-sales-licence.json")
        }
    };
    serde_json::from_str(text).expect("the example claims are a JSON object")
}

/// The freshness limits the registry gives a credential type (registry design §4.13), as
/// `(max_status_age, max_registry_age)` in seconds: licences 24 h of status age, the others
/// 7 days; 7 days of registry age for all.
pub fn freshness(ty: CredentialType) -> (i64, i64) {
    let status_age = match ty {
        CredentialType::MunicipalBusinessLicence | CredentialType::LiquorSalesLicence => 86_400,
        CredentialType::CertificateOfIncorporation | CredentialType::BusinessNumber => 7 * 86_400,
    };
    (status_age, 7 * 86_400)
}

/// The first entries of a registry at `origin`, created at `created` and signed by
/// `authority`: the genesis (naming `authority` and the log key `log_key`) and the four
/// credential types with their [`freshness`] limits. For tests that append them to a real
/// sequencer as well as for [`InMemoryRegistry::new`].
///
/// # Panics
/// If an entry cannot be signed.
pub fn founding_entries(
    origin: &str,
    authority: &SecretKey,
    log_key: &PublicKey,
    created: i64,
) -> Vec<Value> {
    let mut entries = vec![build::genesis(
        origin,
        &[authority.public_key()],
        origin,
        log_key,
        created,
        authority,
        &mut OsRng,
    )
    .expect("the genesis entry signs")];
    for ty in CredentialType::ALL {
        let (status_age, registry_age) = freshness(ty);
        entries.push(
            build::credential_type(
                origin,
                ty.vct(),
                status_age,
                registry_age,
                created,
                authority,
                &mut OsRng,
            )
            .expect("the type entry signs"),
        );
    }
    entries
}

/// A trust registry in memory: its authority and log keys, the signed governance entries in
/// order, and the [`TrustState`] they replay to. No sequencer, storage or HTTP: the entries
/// are built with `bizcred_core::trust::entry::build` and applied directly.
pub struct InMemoryRegistry {
    /// The log's origin (also the registry's identifier in its entries).
    pub origin: String,
    /// The authority key: it signs governance entries.
    pub authority: SecretKey,
    /// The log key: it signs checkpoints, bundles and mirrored DID log lines.
    pub log_key: SecretKey,
    /// The state the entries replay to.
    pub state: TrustState,
    /// The entries, in log order.
    pub entries: Vec<Value>,
    /// The time (Unix seconds) at which entries are applied.
    pub now: i64,
}

impl std::fmt::Debug for InMemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryRegistry")
            .field("origin", &self.origin)
            .field("size", &self.state.size())
            .finish_non_exhaustive()
    }
}

impl InMemoryRegistry {
    /// A registry at `origin` with fresh keys: its genesis and the four credential types (with
    /// their [`freshness`] limits), all created at `created` and applied at `now`.
    ///
    /// # Panics
    /// If an entry does not apply (`created` after `now`, or an origin the entries refuse).
    pub fn new(origin: &str, created: i64, now: i64) -> InMemoryRegistry {
        let authority = new_key();
        let log_key = new_key();
        let founding = founding_entries(origin, &authority, &log_key.public_key(), created);
        let mut r = InMemoryRegistry {
            origin: origin.to_owned(),
            authority,
            log_key,
            state: TrustState::empty(origin),
            entries: Vec::new(),
            now,
        };
        for e in founding {
            r.push(e).expect("the founding entries apply");
        }
        r
    }

    /// Applies `entry` at [`InMemoryRegistry::now`] and, if it applies, appends it.
    ///
    /// # Errors
    /// The state's refusal; the registry is then unchanged.
    pub fn push(&mut self, entry: Value) -> Result<(), EntryError> {
        self.state.apply(&entry, self.now)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Defines a credential type `vct` with its freshness limits, created at `at`.
    ///
    /// # Panics
    /// If the entry does not apply.
    pub fn define_type(&mut self, vct: &str, max_status_age: i64, max_registry_age: i64, at: i64) {
        let e = build::credential_type(
            &self.origin,
            vct,
            max_status_age,
            max_registry_age,
            at,
            &self.authority,
            &mut OsRng,
        )
        .expect("the type entry signs");
        self.push(e).expect("the type entry applies");
    }

    /// Registers `agency` (its DID log as it stands) under the names `name_en`/`name_fr`, and
    /// authorizes it to issue each of `types` from `at` on, with no end; all created at `at`.
    ///
    /// # Panics
    /// If an entry does not apply (an agency registered twice, an undefined type).
    pub fn onboard(
        &mut self,
        agency: &Agency,
        name_en: &str,
        name_fr: &str,
        types: &[CredentialType],
        at: i64,
    ) {
        self.onboard_did(&agency.did, &agency.log, name_en, name_fr, types, at);
    }

    /// As [`InMemoryRegistry::onboard`], for an issuer known by its DID and DID log (a real
    /// issuer's, in benchmarks).
    ///
    /// # Panics
    /// If an entry does not apply (an agency registered twice, an undefined type).
    pub fn onboard_did(
        &mut self,
        did: &str,
        log: &str,
        name_en: &str,
        name_fr: &str,
        types: &[CredentialType],
        at: i64,
    ) {
        let e = build::issuer_registered(
            &self.origin,
            did,
            name_en,
            name_fr,
            log,
            at,
            &self.authority,
            &mut OsRng,
        )
        .expect("the registration signs");
        self.push(e).expect("the registration applies");
        for ty in types {
            let e = build::authorization_granted(
                &self.origin,
                did,
                ty.vct(),
                at,
                None,
                at,
                &self.authority,
                &mut OsRng,
            )
            .expect("the authorization signs");
            self.push(e).expect("the authorization applies");
        }
    }

    /// Mirrors new DID log `lines` of a registered `did` (signed by the log key), created at
    /// `at`.
    ///
    /// # Errors
    /// The state's refusal (lines that do not extend the held log); the registry is then
    /// unchanged.
    ///
    /// # Panics
    /// If the entry cannot be signed.
    pub fn mirror(&mut self, did: &str, lines: &str, at: i64) -> Result<(), EntryError> {
        let e = build::did_log_entries(&self.origin, did, lines, at, &self.log_key, &mut OsRng)
            .expect("the mirror entry signs");
        self.push(e)
    }

    /// The signed checkpoint (a C2SP signed note) of the current state.
    ///
    /// # Panics
    /// If the note cannot be signed.
    pub fn checkpoint(&self) -> String {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: self.state.size(),
            root: self.state.root(),
        };
        SignedNote::sign(&cp.body(), &self.origin, &self.log_key).expect("the checkpoint signs")
    }

    /// The trust bundle for a verifier holding the first `from` entries, issued at `at`, with
    /// `status_lists`.
    ///
    /// # Panics
    /// If `from` is past the log's size.
    pub fn bundle(&self, from: u64, at: i64, status_lists: Vec<StatusListCopy>) -> String {
        bundle::export(
            &self.state,
            &self.checkpoint(),
            from,
            &self.entries,
            status_lists,
            at,
            &self.log_key,
        )
        .expect("the bundle exports")
    }

    /// The anchor verifiers pin (the genesis).
    ///
    /// # Panics
    /// If the registry has no genesis (it always has).
    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor::of(&self.state).expect("the registry has a genesis")
    }

    /// What a verifier with no state holds after importing, at `now`, the whole log as a
    /// bundle issued at `at` with `status_lists`.
    ///
    /// # Panics
    /// If the import is refused (a bundle from the future, or expired at `now`).
    pub fn verifier_state(
        &self,
        at: i64,
        status_lists: Vec<StatusListCopy>,
        now: i64,
    ) -> TrustState {
        bundle::import(None, &self.anchor(), &self.bundle(0, at, status_lists), now)
            .expect("a fresh verifier imports the bundle")
            .state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizcred_core::status_list::Status;

    const NOW: i64 = 1_795_348_800;

    #[test]
    fn a_registered_agency_is_authorized_and_its_rotation_is_mirrored() {
        let agency = Agency::new("agco.bizcred.test", NOW - 86_400);
        let mut r = InMemoryRegistry::new("registry.bizcred.test/log", NOW - 86_400, NOW);
        assert_eq!(r.state.size(), 5, "genesis and four types");
        let liquor = CredentialType::LiquorSalesLicence;
        r.onboard(&agency, "AGCO", "CAJO", &[liquor], NOW - 86_400);
        assert_eq!(r.entries.len() as u64, r.state.size());
        let held = r.verifier_state(NOW - 60, Vec::new(), NOW);
        assert!(held.authorized(&agency.did, liquor.vct(), NOW).is_ok());
        assert_eq!(
            held.authorized(&agency.did, CredentialType::BusinessNumber.vct(), NOW)
                .expect_err("not authorized")
                .code(),
            "ISSUER_NOT_AUTHORIZED"
        );
        let (line, key2) = agency.rotation(NOW - 100);
        r.mirror(&agency.did, &line, NOW - 100).expect("mirrored");
        assert_eq!(
            r.state
                .issuer_key(&agency.did, "#key-2", NOW)
                .expect("the new key"),
            key2.public_key()
        );
        // The same line again does not extend the log.
        assert!(r.mirror(&agency.did, &line, NOW - 50).is_err());
    }

    #[test]
    fn credentials_and_status_lists_carry_the_agency_s_uri_and_key() {
        let agency = Agency::new("cra.bizcred.test", NOW - 86_400);
        let holder = new_key();
        let ty = CredentialType::BusinessNumber;
        let sd = agency.issue(Credential {
            ty,
            claims: example_claims(ty),
            holder: &holder.public_key(),
            status_idx: 7,
            iat: NOW - 60,
            exp: None,
            decoys: 1,
        });
        assert!(sd.disclosures.len() >= example_claims(ty).len());
        let shown = present(
            &sd,
            &[vec!["business_number".to_owned()]],
            "aud",
            "nonce",
            NOW,
            &holder,
        );
        let shown = SdJwt::parse(&shown).expect("parses");
        assert_eq!(shown.disclosures.len(), 1, "only the asked claim");
        assert!(shown.kb_jwt.is_some(), "bound to the holder");
        let mut list = StatusList::new(16, 2).expect("list");
        list.set(7, Status::Invalid).expect("set");
        let copy = agency.status_list_copy(&list, NOW - 60, NOW + 3600);
        assert_eq!(copy.uri, "https://cra.bizcred.test/status/1");
        assert!(sd.jwt.split('.').count() == 3 && copy.token.split('.').count() == 3);
    }
}
