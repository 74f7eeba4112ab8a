//! The issuer's state and operations, used by the HTTP service and the CLI.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::http::StatusCode;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use bizcred_core::did;
use bizcred_core::keyfile::{self, KdfParams};
use bizcred_core::keys::{Algorithm, SecretKey, Signer};
use bizcred_core::oid4vci;
use bizcred_core::oid4vp;
use bizcred_core::sd_jwt_vc::{self, Issuance, StatusReference};
use bizcred_core::status_list::{self, Status, StatusList};
use bizcred_core::trust::bundle;
use bizcred_core::trust::state::TrustState;
use bizcred_core::webvh;
use bizcred_schemas::{CredentialType, Lang};
use bizcred_verifier::policy::{CredentialRequirement, Policy, Rules};
use bizcred_verifier::request::Pending;
use bizcred_verifier::{Context, Presentation, Verdict};

use crate::config::Config;
use crate::store::{
    sha256_hex, AccessToken, AppStatus, Application, CredentialRecord, CredentialStatus, Offer,
    Store, StoreError,
};

/// An error answered over HTTP: status, OAuth/OpenID error code, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Error code (`invalid_grant`, `invalid_proof`, ...).
    pub error: &'static str,
    /// Human description (ASCII).
    pub description: String,
}

impl ApiError {
    /// A new error.
    pub fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error,
            description: description.into(),
        }
    }
    fn bad(error: &'static str, d: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, d)
    }
    /// A `500 server_error` with `cause` as its description.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            cause.to_string(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{m} not found"))
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            e => ApiError::internal(e),
        }
    }
}

/// The passphrase environment variable.
pub const PASSPHRASE_ENV: &str = "BIZCRED_ISSUER_PASSPHRASE";
/// Wrong transaction codes before an offer is voided.
pub const MAX_TX_ATTEMPTS: u32 = 5;
/// Access token lifetime.
pub const TOKEN_TTL: i64 = 600;
/// `c_nonce` lifetime.
pub const NONCE_TTL: i64 = 300;
/// Accepted key proof age.
pub const PROOF_MAX_AGE: i64 = 300;

struct Keys {
    assertion: SecretKey,
    kid: String,
    /// The `versionTime` of the DID version that introduced the key: nothing it signs may be
    /// dated earlier, or verifiers resolving the DID at that date would not find it.
    valid_from: i64,
}

/// The running issuer.
pub struct Issuer {
    /// Configuration.
    pub config: Config,
    /// Storage.
    pub store: Store,
    /// The issuer's did:webvh DID.
    pub did: String,
    keys: RwLock<Keys>,
    trust: RwLock<Option<TrustState>>,
    status_token: RwLock<Option<(i64, String)>>,
    passphrase: Zeroizing<String>,
    /// The clock.
    pub clock: fn() -> i64,
    http: reqwest::Client,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("did", &self.did)
            .finish_non_exhaustive()
    }
}

/// Reads one of the issuer's locks. Each holds a value that is only ever replaced whole (never
/// left half-written by a panicking writer), so a poisoned lock still holds a consistent value:
/// it is recovered on purpose rather than read as empty.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes one of the issuer's locks (see [`read`] for why poisoning is recovered).
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// A key number kept in the store's metadata (`assertion_n`, `update_n`); missing or
/// unreadable is an error, never key 1.
fn key_number(store: &Store, name: &str) -> Result<u32, String> {
    let v = store
        .meta_get(name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the issuer store has no {name}"))?;
    std::str::from_utf8(&v)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("the issuer store's {name} is not a number"))
}

/// The body of a refusal from the registry, or why it could not be read.
async fn refusal_text(r: reqwest::Response) -> String {
    let status = r.status();
    match r.text().await {
        Ok(t) => format!("{status}: {t}"),
        Err(e) => format!("{status} (body unreadable: {e})"),
    }
}

fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    bizcred_core::base64url_encode(b)
}

/// A random identifier: hex, so it never starts with `-` on a command line.
fn random_id() -> String {
    let mut b = [0u8; 12];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tx_code() -> String {
    (0..6)
        .map(|_| char::from(b'0' + (OsRng.next_u32() % 10) as u8))
        .collect()
}

fn key_path(cfg: &Config, name: &str) -> std::path::PathBuf {
    cfg.storage.join("keys").join(format!("{name}.key"))
}

fn write_key(cfg: &Config, name: &str, key: &SecretKey, pass: &str) -> Result<(), String> {
    let dir = cfg.storage.join("keys");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let text = keyfile::seal(key, pass.as_bytes(), KdfParams::DEFAULT, &mut OsRng)
        .map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, key_path(cfg, name)).map_err(|e| e.to_string())
}

fn read_key(cfg: &Config, name: &str, pass: &str) -> Result<SecretKey, String> {
    let path = key_path(cfg, name);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (hint: run `bizcred-issuer init` first)",
            path.display()
        )
    })?;
    keyfile::open(&text, pass.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn did_document(assertion: &SecretKey, n: u32, did: &str, cfg: &Config) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{"id": format!("{did}#key-{n}"), "type": "Multikey", "controller": did, "publicKeyMultibase": did::multikey(&assertion.public_key())}],
        "assertionMethod": [format!("{did}#key-{n}")],
        "service": [{"id": "#oid4vci", "type": "OpenID4VCI", "serviceEndpoint": cfg.public_url}],
    })
}

impl Issuer {
    /// Creates the agency's keys (encrypted at rest) and its did:webvh DID. Returns the DID and
    /// its log, so the caller need not reopen the store (sled releases its lock asynchronously).
    pub fn init(cfg: &Config, passphrase: &str, now: i64) -> Result<(String, String), String> {
        Self::init_store(cfg, passphrase, now).map(|(_, did, log)| (did, log))
    }

    /// Initializes and opens the issuer in one step, on one open store (sled releases a
    /// store's lock asynchronously, so closing and reopening it in one process can fail).
    /// Returns the issuer and its did:webvh log.
    pub fn create(
        config: Config,
        passphrase: Zeroizing<String>,
        now: i64,
        clock: fn() -> i64,
    ) -> Result<(Issuer, String), String> {
        let (store, _, log) = Self::init_store(&config, &passphrase, now)?;
        Ok((Self::with_store(config, store, passphrase, clock)?, log))
    }

    fn init_store(
        cfg: &Config,
        passphrase: &str,
        now: i64,
    ) -> Result<(Store, String, String), String> {
        let store = Store::open(&cfg.storage.join("db")).map_err(|e| e.to_string())?;
        if store.meta_get("did").map_err(|e| e.to_string())?.is_some() {
            return Err(format!("{} already holds an issuer", cfg.storage.display()));
        }
        let update = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let next = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        write_key(cfg, "update-1", &update, passphrase)?;
        write_key(cfg, "update-2", &next, passphrase)?;
        write_key(cfg, "assertion-1", &assertion, passphrase)?;
        let mut params = webvh::pre_rotation_parameters(&update.public_key(), &next.public_key());
        params.insert("portable".into(), false.into());
        let doc = did_document(&assertion, 1, "{DID}", cfg);
        let (did, line) =
            webvh::create(&cfg.did_host(), doc, params, now, &update).map_err(|e| e.to_string())?;
        let log = format!("{line}\n");
        store
            .meta_put("did_log", log.as_bytes())
            .map_err(|e| e.to_string())?;
        store
            .meta_put("assertion_n", b"1")
            .map_err(|e| e.to_string())?;
        store
            .meta_put("update_n", b"1")
            .map_err(|e| e.to_string())?;
        store
            .meta_put("did", did.as_bytes())
            .map_err(|e| e.to_string())?;
        store
            .audit(now, "key_created", json!({"kid": format!("{did}#key-1")}))
            .map_err(|e| e.to_string())?;
        Ok((store, did, log))
    }

    /// Opens an initialized issuer.
    pub fn open(
        config: Config,
        passphrase: Zeroizing<String>,
        clock: fn() -> i64,
    ) -> Result<Issuer, String> {
        let store = Store::open(&config.storage.join("db")).map_err(|e| e.to_string())?;
        Self::with_store(config, store, passphrase, clock)
    }

    fn with_store(
        config: Config,
        store: Store,
        passphrase: Zeroizing<String>,
        clock: fn() -> i64,
    ) -> Result<Issuer, String> {
        let did = store
            .meta_get("did")
            .map_err(|e| e.to_string())?
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .ok_or_else(|| {
                format!(
                    "{} holds no issuer (hint: run `bizcred-issuer init` first)",
                    config.storage.display()
                )
            })?;
        let n = key_number(&store, "assertion_n")?;
        let assertion = read_key(&config, &format!("assertion-{n}"), &passphrase)?;
        let kid = format!("{did}#key-{n}");
        let log = store
            .meta_get("did_log")
            .map_err(|e| e.to_string())?
            .ok_or("the issuer store has no DID log")?;
        // The key's first second comes from the verified log: an unverifiable log is an error,
        // never a key valid from 1970.
        let verified = webvh::verify_log(&String::from_utf8_lossy(&log), None, clock() + 300);
        if let Some(e) = verified.error {
            return Err(format!("the local DID log does not verify: {e}"));
        }
        let valid_from = verified
            .versions
            .last()
            .map(|v| v.time)
            .ok_or("the local DID log is empty")?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(Issuer {
            config,
            store,
            did,
            keys: RwLock::new(Keys {
                assertion,
                kid,
                valid_from,
            }),
            trust: RwLock::new(None),
            status_token: RwLock::new(None),
            passphrase,
            clock,
            http,
        })
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The current signing key id.
    pub fn kid(&self) -> String {
        read(&self.keys).kid.clone()
    }

    /// The did:webvh log (did.jsonl).
    pub fn did_log(&self) -> Result<String, ApiError> {
        let log = self
            .store
            .meta_get("did_log")?
            .ok_or_else(|| ApiError::internal("the issuer store has no DID log"))?;
        String::from_utf8(log).map_err(ApiError::internal)
    }

    fn status_uri(&self) -> String {
        format!("{}/status/1", self.config.public_url)
    }

    fn issues(&self, slug: &str) -> Option<(CredentialType, Vec<CredentialType>)> {
        self.config
            .types
            .iter()
            .find(|(t, _)| t.slug() == slug)
            .cloned()
    }

    /// Credential issuer metadata (OpenID4VCI 1.0 §12.2).
    pub fn metadata(&self) -> Value {
        let base = &self.config.public_url;
        let mut configs = Map::new();
        for (ty, _) in &self.config.types {
            let meta = ty.metadata();
            let claims: Vec<Value> = meta
                .claims
                .iter()
                .map(|c| json!({"path": c.path, "display": c.display.iter().map(|d| json!({"name": d.label, "locale": d.locale})).collect::<Vec<_>>()}))
                .collect();
            let display: Vec<Value> = [Lang::En, Lang::Fr]
                .iter()
                .map(|l| {
                    let d = meta.display.iter().find(|d| d.locale == l.tag());
                    json!({"name": meta.display_name(*l), "locale": l.tag(), "description": d.and_then(|d| d.description.clone())})
                })
                .collect();
            configs.insert(
                ty.slug().to_owned(),
                json!({
                    "format": "dc+sd-jwt",
                    "scope": ty.slug(),
                    "vct": ty.vct(),
                    "cryptographic_binding_methods_supported": ["jwk"],
                    "credential_signing_alg_values_supported": ["EdDSA"],
                    "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["EdDSA", "ES256"]}},
                    "credential_metadata": {"display": display, "claims": claims},
                }),
            );
        }
        json!({
            "credential_issuer": base,
            "credential_endpoint": format!("{base}/credential"),
            "nonce_endpoint": format!("{base}/nonce"),
            "display": [{"name": self.config.name_en, "locale": "en-CA"}, {"name": self.config.name_fr, "locale": "fr-CA"}],
            "credential_configurations_supported": configs,
        })
    }

    /// OAuth 2.0 authorization server metadata (RFC 8414).
    pub fn as_metadata(&self) -> Value {
        let base = &self.config.public_url;
        json!({
            "issuer": base,
            "token_endpoint": format!("{base}/token"),
            "grant_types_supported": [oid4vci::PRE_AUTHORIZED_GRANT],
            "pre-authorized_grant_anonymous_access_supported": true,
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
        })
    }

    /// Opens an application. For a type with prerequisites, returns the OpenID4VP request URI
    /// the applicant's wallet answers; otherwise the application waits for approval.
    pub fn create_application(
        &self,
        slug: &str,
        claims: Map<String, Value>,
    ) -> Result<(Application, Option<String>), ApiError> {
        let (ty, prereq) = self.issues(slug).ok_or_else(|| {
            ApiError::bad(
                "unknown_credential_configuration",
                format!("this agency does not issue {slug}"),
            )
        })?;
        let now = self.now();
        let mut app = Application {
            id: random_id(),
            credential_type: ty.slug().to_owned(),
            status: if prereq.is_empty() {
                AppStatus::AwaitingApproval
            } else {
                AppStatus::AwaitingPrerequisites
            },
            claims,
            verified_claims: Vec::new(),
            nonce: None,
            nonce_used: false,
            holder_thumbprint: None,
            verification: None,
            offer_id: None,
            created: now,
        };
        let uri = if prereq.is_empty() {
            None
        } else {
            app.nonce = Some(random_token(16));
            Some(oid4vp::request_uri(
                &self.client_id(),
                &format!("{}/oid4vp/request/{}", self.config.public_url, app.id),
            ))
        };
        self.store
            .put_application(&app, now, Some("application_created"))?;
        Ok((app, uri))
    }

    /// The OpenID4VP Client Identifier of this issuer (as a verifier of prerequisites).
    pub fn client_id(&self) -> String {
        format!("{}{}", oid4vp::DID_PREFIX, self.did)
    }

    fn prerequisite_policy(&self, target: CredentialType, prereq: &[CredentialType]) -> Policy {
        let req = |id: &str, t: CredentialType, claims: &[&str], optional: &[&str]| {
            CredentialRequirement {
                id: id.to_owned(),
                credential_type: t,
                claims: claims.iter().map(|c| vec![(*c).to_owned()]).collect(),
                optional: optional.iter().map(|c| vec![(*c).to_owned()]).collect(),
                values: if t == CredentialType::CertificateOfIncorporation {
                    vec![("corporate_status".into(), vec![json!("active")])]
                } else {
                    Vec::new()
                },
            }
        };
        let credentials = prereq
            .iter()
            .map(|t| match t {
                CredentialType::CertificateOfIncorporation => req(
                    "incorporation",
                    *t,
                    &[
                        "legal_name",
                        "corporation_number",
                        "registered_office_address",
                        "corporate_status",
                    ],
                    &[],
                ),
                CredentialType::BusinessNumber => req(
                    "business_number",
                    *t,
                    &["business_number", "legal_name"],
                    &["operating_name", "corporation_number"],
                ),
                CredentialType::MunicipalBusinessLicence => req(
                    "municipal_licence",
                    *t,
                    &[
                        "licence_number",
                        "business_number",
                        "licensee_legal_name",
                        "premises_address",
                        "expiry_date",
                    ],
                    &["operating_name"],
                ),
                CredentialType::LiquorSalesLicence => req(
                    "liquor_licence",
                    *t,
                    &["licence_number", "business_number"],
                    &[],
                ),
            })
            .collect();
        Policy {
            name: format!("prerequisites-for-{}", target.slug()),
            credentials,
            rules: Rules {
                same_business_number: true,
                same_corporation_number: true,
                same_premises_address: true,
                same_legal_name: true,
                same_holder: true,
            },
            algorithms: vec![Algorithm::EdDSA, Algorithm::ES256],
            kb_max_age: 300,
            clock_skew: 60,
            max_registry_age: None,
            max_status_age: None,
            digest: String::new(),
        }
    }

    fn pending(&self, app: &Application) -> Result<Pending, ApiError> {
        Ok(Pending {
            state: app.id.clone(),
            nonce: awaited_nonce(app)?,
            client_id: self.client_id(),
            response_uri: format!("{}/oid4vp/response", self.config.public_url),
            expires_at: app.created + self.config.offer_ttl.max(3600),
        })
    }

    /// The signed request object for an application's prerequisite presentation.
    pub fn request_object(&self, app_id: &str) -> Result<String, ApiError> {
        let app = self.store.application(app_id)?;
        let (ty, prereq) = self
            .issues(&app.credential_type)
            .ok_or_else(|| ApiError::bad("invalid_request", "unknown type"))?;
        if app.status != AppStatus::AwaitingPrerequisites || app.nonce_used {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_uri",
                "this request was already answered",
            ));
        }
        let policy = self.prerequisite_policy(ty, &prereq);
        let claims =
            bizcred_verifier::request::request_object(&policy, &self.pending(&app)?, self.now());
        let keys = read(&self.keys);
        oid4vp::sign_request_object(&claims, &keys.kid, &keys.assertion).map_err(ApiError::internal)
    }

    /// Handles the wallet's `direct_post` response for a prerequisite presentation.
    pub fn handle_presentation(&self, body: &[u8]) -> Result<Value, ApiError> {
        let (vp_token, state) = oid4vp::parse_response_body(body)
            .map_err(|e| ApiError::bad("invalid_request", e.to_string()))?;
        let state = state.ok_or_else(|| ApiError::bad("invalid_request", "no state"))?;
        let mut app = self
            .store
            .application(&state)
            .map_err(|_| ApiError::bad("invalid_request", "unknown state"))?;
        if app.status != AppStatus::AwaitingPrerequisites || app.nonce_used {
            return Err(ApiError::bad(
                "invalid_request",
                "this presentation request was already answered (replay)",
            ));
        }
        let (ty, prereq) = self
            .issues(&app.credential_type)
            .ok_or_else(|| ApiError::bad("invalid_request", "unknown type"))?;
        let policy = self.prerequisite_policy(ty, &prereq);
        let now = self.now();
        let trust = read(&self.trust).clone();
        let nonce = awaited_nonce(&app)?;
        let report = bizcred_verifier::verify(
            &Presentation {
                vp_token: &vp_token,
                nonce: &nonce,
                audience: &self.client_id(),
            },
            &policy,
            &Context {
                trust: trust.as_ref(),
                stapled_status_lists: &[],
                now,
            },
        );
        app.nonce_used = true;
        let codes: Vec<Value> = report
            .failures
            .iter()
            .map(|f| json!({"credential": f.credential, "code": f.code}))
            .collect();
        app.verification = Some(json!({"verdict": report.verdict, "failures": codes}));
        if report.verdict == Verdict::Accept {
            let verified: Vec<(CredentialType, Map<String, Value>)> = report
                .credentials
                .iter()
                .filter_map(|c| CredentialType::from_vct(&c.vct).map(|t| (t, c.disclosed.clone())))
                .collect();
            let prefill = prefill(ty, &verified);
            app.verified_claims = prefill.keys().cloned().collect();
            for (k, v) in prefill {
                app.claims.insert(k, v);
            }
            // An accepted presentation is key-bound: without its holder key the issuance could
            // not be tied to the holder, so that is an error, not an unbound application.
            app.holder_thumbprint = Some(report_holder(&vp_token).ok_or_else(|| {
                ApiError::internal("the accepted presentation names no holder key")
            })?);
            app.status = AppStatus::AwaitingApproval;
            self.store
                .put_application(&app, now, Some("prerequisites_verified"))?;
        } else {
            // A refused presentation does not consume the application: the applicant may try
            // again with a new request.
            app.nonce = Some(random_token(16));
            app.nonce_used = false;
            self.store
                .put_application(&app, now, Some("prerequisites_refused"))?;
        }
        Ok(json!({
            "application_id": app.id,
            "verdict": report.verdict,
            "failures": report.failures.iter().map(|f| json!({"credential": f.credential, "code": f.code, "message": f.message})).collect::<Vec<_>>(),
        }))
    }

    /// Approves an application with the remaining claims and makes the credential offer.
    /// Returns `(offer URI by reference, offer URI by value, transaction code)`.
    pub fn approve(&self, app_id: &str, claims: Map<String, Value>) -> Result<Value, ApiError> {
        let mut app = self.store.application(app_id)?;
        if app.status != AppStatus::AwaitingApproval {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request",
                format!(
                    "application {app_id} is {:?}, not awaiting approval",
                    app.status
                ),
            ));
        }
        for (k, v) in claims {
            if app.verified_claims.contains(&k) && app.claims.get(&k) != Some(&v) {
                return Err(ApiError::bad(
                    "invalid_request",
                    format!(
                        "{k} was verified from a prerequisite credential and cannot be changed"
                    ),
                ));
            }
            app.claims.insert(k, v);
        }
        let ty = CredentialType::from_slug(&app.credential_type)
            .ok_or_else(|| ApiError::bad("invalid_request", "unknown type"))?;
        if let Err(v) = bizcred_schemas::parse_claims(ty, &Value::Object(app.claims.clone())) {
            let list: Vec<String> = v.iter().map(ToString::to_string).collect();
            return Err(ApiError::bad(
                "invalid_request",
                format!(
                    "the claims do not satisfy the {} schema: {}",
                    ty.slug(),
                    list.join("; ")
                ),
            ));
        }
        let now = self.now();
        let code = random_token(32);
        let tx = tx_code();
        let id = random_id();
        let offer_obj = json!({
            "credential_issuer": self.config.public_url,
            "credential_configuration_ids": [ty.slug()],
            "grants": {oid4vci::PRE_AUTHORIZED_GRANT: {
                "pre-authorized_code": code,
                "tx_code": {"input_mode": "numeric", "length": 6, "description": "The 6-digit code the agency gave you"},
            }},
        });
        let offer = Offer {
            id: id.clone(),
            application_id: app.id.clone(),
            configuration_id: ty.slug().to_owned(),
            code_hash: sha256_hex(code.as_bytes()),
            tx_hash: sha256_hex(tx.as_bytes()),
            expires: now + self.config.offer_ttl,
            attempts: 0,
            used: false,
            offer: offer_obj.clone(),
        };
        app.status = AppStatus::Offered;
        app.offer_id = Some(id.clone());
        self.store.put_offer(&offer, &app, now)?;
        let by_ref = oid4vci::offer_uri_by_reference(&format!(
            "{}/credential-offer/{id}",
            self.config.public_url
        ));
        Ok(json!({
            "application_id": app.id,
            "credential_offer_uri": by_ref,
            "credential_offer_by_value": oid4vci::offer_uri_by_value(&offer_obj),
            "tx_code": tx,
            "expires_at": bizcred_core::time::format_utc(offer.expires),
        }))
    }

    /// The offer object for the by-reference URL.
    pub fn offer(&self, id: &str) -> Result<Value, ApiError> {
        let o = self
            .store
            .offer(id)
            .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such offer"))?;
        if o.used || self.now() >= o.expires {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the offer was used or has expired",
            ));
        }
        Ok(o.offer)
    }

    /// The token endpoint (pre-authorized code grant).
    pub fn token(&self, form: &[(String, String)]) -> Result<Value, ApiError> {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some(oid4vci::PRE_AUTHORIZED_GRANT) => {}
            Some(_) => {
                return Err(ApiError::bad(
                    "unsupported_grant_type",
                    "only the pre-authorized code grant",
                ))
            }
            None => return Err(ApiError::bad("invalid_request", "no grant_type")),
        }
        let code = get("pre-authorized_code")
            .ok_or_else(|| ApiError::bad("invalid_request", "no pre-authorized_code"))?;
        let offer = self
            .store
            .offer_by_code(code)?
            .ok_or_else(|| ApiError::bad("invalid_grant", "unknown pre-authorized code"))?;
        let now = self.now();
        if offer.used || now >= offer.expires {
            return Err(ApiError::bad(
                "invalid_grant",
                "the pre-authorized code was used or has expired",
            ));
        }
        let tx = get("tx_code")
            .ok_or_else(|| ApiError::bad("invalid_request", "this offer requires a tx_code"))?;
        let ok: bool = subtle::ConstantTimeEq::ct_eq(
            sha256_hex(tx.as_bytes()).as_bytes(),
            offer.tx_hash.as_bytes(),
        )
        .into();
        if !ok {
            let n = self
                .store
                .offer_failed_attempt(&offer.id, MAX_TX_ATTEMPTS)?;
            let left = MAX_TX_ATTEMPTS.saturating_sub(n);
            return Err(ApiError::bad(
                "invalid_grant",
                format!("wrong transaction code ({left} attempts left)"),
            ));
        }
        let access = random_token(32);
        let token = AccessToken {
            application_id: offer.application_id.clone(),
            configuration_id: offer.configuration_id.clone(),
            expires: now + TOKEN_TTL,
            used: false,
        };
        self.store
            .redeem(&offer.id, &sha256_hex(access.as_bytes()), &token, now)
            .map_err(|_| {
                ApiError::bad(
                    "invalid_grant",
                    "the pre-authorized code was used or has expired",
                )
            })?;
        Ok(json!({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_TTL}))
    }

    /// The nonce endpoint.
    pub fn nonce(&self) -> Result<Value, ApiError> {
        let n = random_token(18);
        self.store.put_nonce(&n, self.now() + NONCE_TTL)?;
        Ok(json!({"c_nonce": n}))
    }

    /// The credential endpoint.
    pub fn credential(&self, access_token: &str, body: &Value) -> Result<Value, ApiError> {
        let now = self.now();
        let token_hash = sha256_hex(access_token.as_bytes());
        let token = self
            .store
            .token(&token_hash)?
            .filter(|t| !t.used && now < t.expires)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the access token is unknown, used or expired",
                )
            })?;
        let Value::Object(req) = body else {
            return Err(ApiError::bad(
                "invalid_credential_request",
                "the request is not a JSON object",
            ));
        };
        if req.contains_key("credential_identifier") {
            return Err(ApiError::bad(
                "invalid_credential_request",
                "credential_identifier is not used by this issuer",
            ));
        }
        let config_id = req
            .get("credential_configuration_id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ApiError::bad(
                    "invalid_credential_request",
                    "no credential_configuration_id",
                )
            })?;
        if self.issues(config_id).is_none() {
            return Err(ApiError::bad(
                "unknown_credential_configuration",
                format!("{config_id} is not offered by this issuer"),
            ));
        }
        if config_id != token.configuration_id {
            return Err(ApiError::bad(
                "invalid_credential_request",
                "the access token was not granted for this configuration",
            ));
        }
        let proofs = req
            .get("proofs")
            .and_then(|p| p.get("jwt"))
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("invalid_proof", "no proofs.jwt"))?;
        let [proof] = proofs.as_slice() else {
            return Err(ApiError::bad(
                "invalid_credential_request",
                "exactly one key proof (batch issuance is not offered)",
            ));
        };
        let proof = proof
            .as_str()
            .ok_or_else(|| ApiError::bad("invalid_proof", "the key proof is not a string"))?;
        let verified =
            oid4vci::verify_proof_jwt(proof, &self.config.public_url, now, PROOF_MAX_AGE)
                .map_err(|e| ApiError::bad("invalid_proof", e.to_string()))?;
        let nonce = verified
            .nonce
            .as_deref()
            .ok_or_else(|| ApiError::bad("invalid_proof", "the key proof carries no c_nonce"))?;
        if !self.store.take_nonce(nonce, now)? {
            return Err(ApiError::bad(
                "invalid_nonce",
                "the c_nonce is unknown, used or expired; fetch a new one",
            ));
        }
        let app = self.store.application(&token.application_id)?;
        if let Some(tp) = &app.holder_thumbprint {
            if *tp != verified.key.thumbprint() {
                return Err(ApiError::bad(
                    "credential_request_denied",
                    "the key differs from the holder key proven with the prerequisite credentials",
                ));
            }
        }
        let ty = CredentialType::from_slug(config_id)
            .ok_or_else(|| ApiError::bad("unknown_credential_configuration", "unknown"))?;
        for _ in 0..3 {
            let idx = self.allocate_index()?;
            let keys = read(&self.keys);
            let iat = now.max(keys.valid_from);
            let req = Issuance {
                vct: ty.vct(),
                issuer: &self.did,
                kid: Some(&keys.kid),
                iat,
                nbf: None,
                exp: Some(iat + self.config.validity_days * 86_400),
                holder_key: Some(&verified.key),
                status: Some(StatusReference {
                    idx,
                    uri: self.status_uri(),
                }),
                disclosable: sd_jwt_vc::default_disclosable(ty, &app.claims),
                claims: app.claims.clone(),
                decoys: 3,
            };
            // Salts from a ChaCha20 CSPRNG seeded by the OS: one system call, not one per salt.
            let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_rng(OsRng)
                .map_err(ApiError::internal)?;
            let sd =
                sd_jwt_vc::issue(req, &keys.assertion, &mut rng).map_err(ApiError::internal)?;
            let text = sd.serialize();
            let rec = CredentialRecord {
                id: random_id(),
                application_id: app.id.clone(),
                vct: ty.vct().to_owned(),
                status_idx: idx,
                status: CredentialStatus::Valid,
                issued_at: now,
                kid: keys.kid.clone(),
                credential_sha256: sha256_hex(text.as_bytes()),
            };
            match self.store.record_issuance(&rec, &token_hash, now) {
                Ok(()) => {
                    return Ok(
                        json!({"credentials": [{"credential": text}], "notification_id": rec.id}),
                    )
                }
                Err(StoreError::Conflict(m)) if m.contains("status index") => continue,
                Err(StoreError::Conflict(m)) => {
                    return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", m))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "could not allocate a status index",
        ))
    }

    fn allocate_index(&self) -> Result<u64, ApiError> {
        for _ in 0..1000 {
            let idx = OsRng.next_u64() % self.config.list_size;
            if !self.store.index_taken(idx)? {
                return Ok(idx);
            }
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the status list is full",
        ))
    }

    /// Builds and signs the status list now.
    pub fn sign_status_list(&self) -> Result<String, ApiError> {
        let mut list = StatusList::new(self.config.list_size, 2).map_err(ApiError::internal)?;
        // Every record decodes to a known status, or the list is not signed at all.
        for rec in self.store.credentials()? {
            let s = match rec.status {
                CredentialStatus::Valid => continue,
                CredentialStatus::Revoked => Status::Invalid,
                CredentialStatus::Suspended => Status::Suspended,
            };
            list.set(rec.status_idx, s).map_err(ApiError::internal)?;
        }
        let keys = read(&self.keys);
        // Strictly after the previous list, so a newer list always carries a larger `iat`
        // (verifiers keep the list with the largest one).
        let last = read(&self.status_token)
            .as_ref()
            .map_or(i64::MIN, |(at, _)| *at);
        let now = self.now().max(keys.valid_from).max(last.saturating_add(1));
        let token = status_list::sign_token(
            &list,
            &self.status_uri(),
            &self.did,
            &keys.kid,
            now,
            now + self.config.status_validity,
            self.config.resign_interval as i64,
            &keys.assertion,
        )
        .map_err(ApiError::internal)?;
        *write(&self.status_token) = Some((now, token.clone()));
        Ok(token)
    }

    /// The current status list token, re-signed when older than the interval.
    pub fn status_list(&self) -> Result<String, ApiError> {
        let cached = read(&self.status_token).clone();
        match cached {
            Some((at, token)) if self.now() - at < self.config.resign_interval as i64 => Ok(token),
            _ => self.sign_status_list(),
        }
    }

    /// Sends the current status list to the registry (for trust bundles).
    pub async fn push_status_list(&self) -> Result<(), String> {
        let token = self.status_list().map_err(|e| e.description)?;
        let r = self
            .http
            .post(format!("{}/status-lists", self.config.registry_url))
            .body(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "the registry refused the status list: {}",
                refusal_text(r).await
            ))
        }
    }

    /// Changes a credential's status (durable before it returns) and re-signs the list.
    pub fn set_status(
        &self,
        id: &str,
        status: CredentialStatus,
    ) -> Result<CredentialRecord, ApiError> {
        let rec = self.store.set_status(id, status, self.now())?;
        self.sign_status_list()?;
        Ok(rec)
    }

    /// Syncs the trust bundle from the registry (incrementally).
    pub async fn sync_trust(&self) -> Result<u64, String> {
        let held = read(&self.trust).clone();
        let from = held.as_ref().map_or(0, TrustState::size);
        let text = self
            .http
            .get(format!("{}/bundle?from={from}", self.config.registry_url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let imported = bundle::import(held.as_ref(), &self.config.anchor, &text, self.now())
            .map_err(|e| format!("{} ({})", e, e.code()))?;
        let size = imported.state.size();
        *write(&self.trust) = Some(imported.state);
        Ok(size)
    }

    /// Rotates the signing key: a new did:webvh version (signed with the pre-committed update
    /// key) replaces the assertion key; the registry must accept it before the new key signs.
    pub async fn rotate_key(&self) -> Result<Value, ApiError> {
        let err = |m: String| ApiError::internal(m);
        let now = self.now();
        let n = key_number(&self.store, "assertion_n").map_err(err)?;
        let u = key_number(&self.store, "update_n").map_err(err)?;
        let next_update =
            read_key(&self.config, &format!("update-{}", u + 1), &self.passphrase).map_err(err)?;
        let after = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let assertion = SecretKey::generate(Algorithm::EdDSA, &mut OsRng);
        let log_text = self.did_log()?;
        let log = webvh::verify_log(&log_text, None, now);
        if let Some(e) = log.error {
            return Err(err(format!("the local DID log does not verify: {e}")));
        }
        let params = webvh::pre_rotation_parameters(&next_update.public_key(), &after.public_key());
        let doc = did_document(&assertion, n + 1, &self.did, &self.config);
        // Strictly after every signature of the old key (second precision), so the old key stays
        // valid for everything it signed and the new key for everything it will sign.
        let t = (now + 1).max(log.versions.last().map_or(now, |v| v.time + 1));
        let line =
            webvh::update(&log, doc, params, t, &next_update).map_err(|e| err(e.to_string()))?;
        let r = self
            .http
            // The DID is one path segment: its `%` must itself be percent-encoded.
            .post(format!(
                "{}/dids/{}/log",
                self.config.registry_url,
                self.did.replace('%', "%25")
            ))
            .body(line.clone())
            .send()
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "registry_unreachable",
                    e.to_string(),
                )
            })?;
        if !r.status().is_success() {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "registry_refused",
                refusal_text(r).await,
            ));
        }
        write_key(
            &self.config,
            &format!("update-{}", u + 2),
            &after,
            &self.passphrase,
        )
        .map_err(err)?;
        write_key(
            &self.config,
            &format!("assertion-{}", n + 1),
            &assertion,
            &self.passphrase,
        )
        .map_err(err)?;
        self.store
            .meta_put("did_log", format!("{log_text}{line}\n").as_bytes())?;
        self.store
            .meta_put("update_n", (u + 1).to_string().as_bytes())?;
        self.store
            .meta_put("assertion_n", (n + 1).to_string().as_bytes())?;
        let kid = format!("{}#key-{}", self.did, n + 1);
        self.store.audit(
            now,
            "key_rotated",
            json!({"from": format!("{}#key-{n}", self.did), "to": kid}),
        )?;
        *write(&self.keys) = Keys {
            assertion,
            kid: kid.clone(),
            valid_from: t,
        };
        self.sign_status_list()?;
        Ok(json!({"kid": kid, "version_time": bizcred_core::time::format_utc(t)}))
    }
}

/// The nonce an application awaiting its prerequisites was given; without one no presentation
/// can be bound to it (never the empty nonce).
fn awaited_nonce(app: &Application) -> Result<String, ApiError> {
    app.nonce.clone().ok_or_else(|| {
        ApiError::internal(format!(
            "application {} awaits a presentation but holds no nonce",
            app.id
        ))
    })
}

/// The holder key thumbprint of the first presented credential (all are checked equal by
/// the `same_holder` rule).
fn report_holder(vp_token: &Value) -> Option<String> {
    let first = vp_token.as_object()?.values().next()?;
    let text = first
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .or_else(|| first.as_str())?;
    let sd = bizcred_core::sd_jwt::SdJwt::parse(text).ok()?;
    let payload = sd.unverified_payload().ok()?;
    sd_jwt_vc::holder_key(&payload)
        .ok()
        .flatten()
        .map(|k| k.thumbprint())
}

/// Claims of the new credential taken from verified prerequisite credentials: the business
/// tells government once.
pub fn prefill(
    target: CredentialType,
    verified: &[(CredentialType, Map<String, Value>)],
) -> Map<String, Value> {
    use CredentialType::*;
    let from = |t: CredentialType, k: &str| {
        verified
            .iter()
            .find(|(ty, _)| *ty == t)
            .and_then(|(_, c)| c.get(k))
            .cloned()
    };
    let rules: &[(&str, CredentialType, &str)] = match target {
        CertificateOfIncorporation => &[],
        BusinessNumber => &[
            ("legal_name", CertificateOfIncorporation, "legal_name"),
            (
                "corporation_number",
                CertificateOfIncorporation,
                "corporation_number",
            ),
            (
                "business_address",
                CertificateOfIncorporation,
                "registered_office_address",
            ),
        ],
        MunicipalBusinessLicence => &[
            (
                "licensee_legal_name",
                CertificateOfIncorporation,
                "legal_name",
            ),
            (
                "corporation_number",
                CertificateOfIncorporation,
                "corporation_number",
            ),
            ("business_number", BusinessNumber, "business_number"),
            ("operating_name", BusinessNumber, "operating_name"),
        ],
        LiquorSalesLicence => &[
            (
                "licensee_legal_name",
                CertificateOfIncorporation,
                "legal_name",
            ),
            ("business_number", BusinessNumber, "business_number"),
            ("operating_name", BusinessNumber, "operating_name"),
            (
                "premises_address",
                MunicipalBusinessLicence,
                "premises_address",
            ),
            (
                "municipal_licence_number",
                MunicipalBusinessLicence,
                "licence_number",
            ),
        ],
    };
    rules
        .iter()
        .filter_map(|(to, t, k)| from(*t, k).map(|v| ((*to).to_owned(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        1_790_000_000
    }

    fn issuer(dir: &std::path::Path) -> Issuer {
        let cfg = format!(
            "[agency]\nname_en = \"OBR\"\nname_fr = \"REO\"\n[server]\npublic_url = \"http://localhost:18099\"\nlisten = \"127.0.0.1:18099\"\n[storage]\npath = {:?}\n[registry]\nurl = \"http://127.0.0.1:9\"\norigin = \"registry.test/log\"\nlog_key = \"z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG\"\n[issuance]\ntypes = [\"certificate-of-incorporation\"]\n[status]\nlist_size = 1024\n[admin]\ntoken_sha256 = [\"{}\"]\n",
            dir.join("data").to_string_lossy(),
            "00".repeat(32)
        );
        let config = Config::parse(&cfg).expect("config");
        Issuer::create(config, Zeroizing::new("pw".into()), now() - 10, now)
            .expect("create")
            .0
    }

    #[test]
    fn a_poisoned_key_lock_still_names_the_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let issuer = std::sync::Arc::new(issuer(dir.path()));
        let kid = issuer.kid();
        assert!(kid.ends_with("#key-1"), "{kid}");
        let i = issuer.clone();
        let panicked = std::thread::spawn(move || {
            let _held = i.keys.write();
            panic!("a writer panics while holding the key lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(issuer.keys.is_poisoned());
        // Before: an empty `kid`.
        assert_eq!(issuer.kid(), kid);
        let token = issuer.sign_status_list().expect("sign");
        let (signed_by, _, _) = status_list::peek(&token).expect("peek");
        assert_eq!(signed_by, kid);
    }

    #[test]
    fn a_status_list_is_not_signed_over_an_unknown_state() {
        let dir = tempfile::tempdir().expect("tmp");
        let issuer = issuer(dir.path());
        let rec = json!({"id": "c1", "application_id": "a1", "vct": "x", "status_idx": 5,
            "status": "revokd", "issued_at": now(), "kid": issuer.kid(), "credential_sha256": "00"});
        issuer
            .store
            .put_raw_credential("c1", rec.to_string().as_bytes())
            .expect("raw");
        // Before: the unknown state counted as valid and the list was signed.
        let e = issuer.sign_status_list().expect_err("refused");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.description.contains("corrupt"), "{}", e.description);
    }
}
