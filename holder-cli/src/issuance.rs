//! The OpenID4VCI 1.0 client (pre-authorized code flow): offers, issuer and authorization
//! server metadata, the token, the nonce, the key proof, the credential request, and
//! verification of the credential before anything is stored; then the notification
//! (`credential_accepted`, or `credential_failure` when it did not verify) when the issuer
//! has a notification endpoint.
//!
//! DPoP (RFC 9449): when the authorization server accepts DPoP proofs of the holder key's
//! algorithm, the wallet sends one with the token request, and presents the DPoP-bound token
//! it gets with a proof by the same key (so a resumed receive, which reopens that key, can
//! still use it), using the newest nonce the issuer supplied (`DPoP-Nonce`) and retrying once
//! when told `use_dpop_nonce`. The proofs are typed (`dpop+jwt`), apart from key proofs and
//! key-binding JWTs by the same key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use bizcred_core::dpop;
use bizcred_core::keys::{SecretKey, Signer};
use bizcred_core::oid4vci::{self, OfferRef};
use bizcred_core::sd_jwt::SdJwt;
use bizcred_core::sd_jwt_vc::{self, VerifyOptions};
use bizcred_schemas::{CredentialType, Lang};
use rand_core::{OsRng, RngCore};

use crate::error::{CredentialProblem, MetadataProblem, WalletError};
use crate::net;
use crate::pending::{PendingReceive, PendingReceives};
use crate::store::{credential_id, StoredCredential};
use crate::vault::Vault;

/// The credential format this wallet holds.
pub const SD_JWT_VC_FORMAT: &str = "dc+sd-jwt";

/// Tolerated clock skew when checking a received credential, in seconds.
pub const CLOCK_SKEW: i64 = 300;

/// A credential offer (OpenID4VCI 1.0 §4.1.1).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct CredentialOffer {
    /// The credential issuer's URL.
    pub credential_issuer: String,
    /// The offered configurations (the wallet requests the first).
    pub credential_configuration_ids: Vec<String>,
    /// The grants.
    #[serde(default)]
    pub grants: Grants,
}

/// The grants of an offer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Grants {
    /// The pre-authorized code grant.
    #[serde(
        rename = "urn:ietf:params:oauth:grant-type:pre-authorized_code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pre_authorized_code: Option<PreAuthorizedGrant>,
}

/// The pre-authorized code grant.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
pub struct PreAuthorizedGrant {
    /// The code (a bearer secret until it is exchanged; not printed by `Debug`).
    #[serde(rename = "pre-authorized_code")]
    pub code: String,
    /// Present when a transaction code is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_code: Option<TxCode>,
}

impl std::fmt::Debug for PreAuthorizedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreAuthorizedGrant")
            .field("code", &"..")
            .field("tx_code", &self.tx_code)
            .finish()
    }
}

/// How the transaction code looks.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct TxCode {
    /// `numeric` or `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_mode: Option<String>,
    /// Its length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// A description for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CredentialOffer {
    /// Reads an offer from JSON after the core's checks.
    pub fn from_json(v: Value) -> Result<CredentialOffer, WalletError> {
        oid4vci::check_offer(&v)?;
        serde_json::from_value(v).map_err(|source| WalletError::BadJson {
            what: "the credential offer",
            source,
        })
    }

    /// The issuer URL without a trailing slash.
    pub fn issuer(&self) -> &str {
        self.credential_issuer.trim_end_matches('/')
    }

    /// The configuration the wallet requests (the first offered).
    pub fn configuration_id(&self) -> Result<&str, WalletError> {
        self.credential_configuration_ids
            .first()
            .map(String::as_str)
            .ok_or(WalletError::Offer(oid4vci::OfferError(
                "no credential_configuration_ids",
            )))
    }

    /// The pre-authorized code grant.
    pub fn pre_authorized(&self) -> Result<&PreAuthorizedGrant, WalletError> {
        self.grants
            .pre_authorized_code
            .as_ref()
            .ok_or(WalletError::NoPreAuthorizedCode)
    }

    /// The transaction code description, when the offer needs one.
    pub fn tx_code(&self) -> Option<&TxCode> {
        self.grants
            .pre_authorized_code
            .as_ref()
            .and_then(|g| g.tx_code.as_ref())
    }
}

/// Where an offer URI points.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferSource {
    /// The offer is in the URI.
    ByValue(CredentialOffer),
    /// The offer is fetched from this URL.
    ByReference(String),
}

/// Parses an offer URI (no network).
pub fn parse_offer_uri(uri: &str) -> Result<OfferSource, WalletError> {
    Ok(match oid4vci::parse_offer_uri(uri)? {
        OfferRef::ByValue(v) => OfferSource::ByValue(CredentialOffer::from_json(v)?),
        OfferRef::ByReference(u) => OfferSource::ByReference(u),
    })
}

/// The offer of an offer URI, fetched when it is by reference.
pub async fn resolve_offer(
    c: &reqwest::Client,
    source: OfferSource,
) -> Result<CredentialOffer, WalletError> {
    match source {
        OfferSource::ByValue(o) => Ok(o),
        OfferSource::ByReference(url) => {
            let v: Value = net::get_json(c, &url, "the credential offer").await?;
            CredentialOffer::from_json(v)
        }
    }
}

/// Credential issuer metadata (OpenID4VCI 1.0 §12.2), the members this wallet uses.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct IssuerMetadata {
    /// The issuer's URL.
    pub credential_issuer: String,
    /// The credential endpoint.
    pub credential_endpoint: String,
    /// The nonce endpoint, when the issuer wants a `c_nonce` in the proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_endpoint: Option<String>,
    /// The notification endpoint, when the issuer takes notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_endpoint: Option<String>,
    /// Authorization servers (else the issuer is its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// What the issuer issues.
    pub credential_configurations_supported: BTreeMap<String, CredentialConfiguration>,
    /// Display names by locale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub display: Vec<IssuerDisplay>,
}

/// One credential configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct CredentialConfiguration {
    /// The format (`dc+sd-jwt`).
    pub format: String,
    /// The SD-JWT VC type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vct: Option<String>,
}

/// An issuer display entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct IssuerDisplay {
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The locale (`en-CA`, `fr-CA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl IssuerMetadata {
    /// The configuration the offer names, checked to be an SD-JWT VC.
    pub fn configuration(&self, id: &str) -> Result<&CredentialConfiguration, WalletError> {
        let conf = self
            .credential_configurations_supported
            .get(id)
            .ok_or_else(|| {
                WalletError::Metadata(MetadataProblem::UnknownConfiguration(id.to_owned()))
            })?;
        if conf.format != SD_JWT_VC_FORMAT {
            return Err(WalletError::Metadata(MetadataProblem::NotSdJwtVc {
                id: id.to_owned(),
                format: conf.format.clone(),
            }));
        }
        Ok(conf)
    }

    /// The issuer's name in `lang` (else the first name given).
    pub fn display_name(&self, lang: Lang) -> Option<&str> {
        let prefix = if lang == Lang::Fr { "fr" } else { "en" };
        self.display
            .iter()
            .find(|d| d.locale.as_deref().is_some_and(|l| l.starts_with(prefix)))
            .or(self.display.first())
            .and_then(|d| d.name.as_deref())
    }

    /// The authorization server's URL (the first listed, else the issuer).
    pub fn authorization_server(&self) -> &str {
        // OpenID4VCI §12.2.4: without `authorization_servers` the issuer is its own.
        self.authorization_servers
            .first()
            .map(String::as_str)
            .unwrap_or(self.credential_issuer.as_str())
            .trim_end_matches('/')
    }
}

/// OAuth 2.0 authorization server metadata, the members this wallet uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AuthorizationServerMetadata {
    /// The token endpoint.
    pub token_endpoint: String,
    /// The DPoP proof algorithms the server accepts (RFC 9449 §5.1); none: no DPoP.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Vec<String>,
}

impl AuthorizationServerMetadata {
    /// True when the server accepts DPoP proofs by `key`.
    pub fn accepts_dpop(&self, key: &SecretKey) -> bool {
        let alg = key.algorithm().as_str();
        self.dpop_signing_alg_values_supported
            .iter()
            .any(|a| a == alg)
    }
}

/// A token response.
#[derive(Deserialize)]
pub struct TokenResponse {
    /// The access token (a bearer secret; not printed by `Debug`).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a token bound to the DPoP proof's key.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Its lifetime in seconds, when the issuer says.
    #[serde(default)]
    pub expires_in: Option<i64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse(..)")
    }
}

/// A nonce response.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NonceResponse {
    /// The nonce to put in the key proof.
    pub c_nonce: String,
}

/// A credential response (immediate issuance).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CredentialResponse {
    /// The issued credentials.
    #[serde(default)]
    pub credentials: Vec<IssuedCredential>,
    /// What the notification endpoint knows this issuance by.
    #[serde(default)]
    pub notification_id: Option<String>,
}

/// One issued credential.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IssuedCredential {
    /// The SD-JWT VC.
    pub credential: String,
}

/// What `receive` needs besides the offer.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveOptions<'a> {
    /// The transaction code, when the offer needs one.
    pub tx_code: Option<&'a str>,
    /// The language of the issuer's display name.
    pub lang: Lang,
    /// The time, in milliseconds since the epoch.
    pub now_ms: i64,
}

/// Runs the pre-authorized code flow for `offer` (whose URI has the id `offer_id`, see
/// [`crate::pending::offer_id`]): [`start`], then [`complete`]. The receive's progress is kept in
/// `pending` from the token step until the credential is stored, so an interrupted receive is
/// resumed ([`resume`]) instead of lost. `progress` hears each step.
pub async fn receive(
    c: &reqwest::Client,
    vault: &dyn Vault,
    pending: &dyn PendingReceives,
    offer_id: &str,
    offer: &CredentialOffer,
    opts: ReceiveOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<StoredCredential, WalletError> {
    let p = start(c, vault, pending, offer_id, offer, opts, progress).await?;
    complete(c, vault, pending, &p, opts, progress).await
}

/// The first half of a receive: the issuer's metadata, then the token step; the receive's
/// progress (issuer, configuration, endpoints, access token and its expiry) is stored, sealed,
/// in `pending` before it is returned, that is before any credential request is sent.
pub async fn start(
    c: &reqwest::Client,
    vault: &dyn Vault,
    pending: &dyn PendingReceives,
    offer_id: &str,
    offer: &CredentialOffer,
    opts: ReceiveOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<PendingReceive, WalletError> {
    // The wallet must hold a key before an offer is spent.
    let holder = vault.holder_key()?;
    let issuer_url = offer.issuer().to_owned();
    let config_id = offer.configuration_id()?;
    let grant = offer.pre_authorized()?;
    if grant.tx_code.is_some() && opts.tx_code.is_none() {
        return Err(WalletError::TxCodeRequired);
    }
    progress(&format!("reading {issuer_url}'s metadata"));
    let meta: IssuerMetadata = net::get_json(
        c,
        &format!("{issuer_url}/.well-known/openid-credential-issuer"),
        "the issuer metadata",
    )
    .await?;
    if meta.credential_issuer.trim_end_matches('/') != issuer_url {
        return Err(WalletError::Metadata(MetadataProblem::OtherIssuer));
    }
    let conf = meta.configuration(config_id)?;
    let as_meta: AuthorizationServerMetadata = net::get_json(
        c,
        &format!(
            "{}/.well-known/oauth-authorization-server",
            meta.authorization_server()
        ),
        "the authorization server metadata",
    )
    .await?;
    progress("exchanging the pre-authorized code");
    let mut dpop = as_meta.accepts_dpop(&holder).then(|| Dpop::new(&holder));
    let now = opts.now_ms.div_euclid(1000);
    let access = token(
        c,
        &as_meta.token_endpoint,
        grant,
        opts.tx_code,
        dpop.as_mut(),
        now,
    )
    .await?;
    // A server that answers a proof with a bearer token did not bind it.
    let bound = dpop.is_some()
        && access
            .token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("DPoP"));
    let expires = access
        .expires_in
        .map(|s| opts.now_ms.saturating_add(s.saturating_mul(1000)));
    let mut p = PendingReceive::new(
        offer_id.to_owned(),
        issuer_url,
        config_id.to_owned(),
        conf.vct.clone(),
        meta.credential_endpoint.clone(),
        meta.nonce_endpoint.clone(),
        meta.display_name(opts.lang).map(str::to_owned),
        access.access_token,
        expires,
        opts.now_ms,
    );
    p.dpop = bound;
    p.notification_endpoint = meta.notification_endpoint.clone();
    pending.put_pending(&p)?;
    Ok(p)
}

/// DPoP proofs by the holder key (RFC 9449), and the newest nonce the issuer supplied.
struct Dpop<'a> {
    key: &'a SecretKey,
    nonce: Option<String>,
}

impl<'a> Dpop<'a> {
    fn new(key: &'a SecretKey) -> Dpop<'a> {
        Dpop { key, nonce: None }
    }

    /// A proof for `POST url` (with the access token's hash when one is presented).
    fn proof(
        &self,
        url: &str,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<String, WalletError> {
        let mut jti = [0u8; 16];
        OsRng.fill_bytes(&mut jti);
        dpop::proof(
            self.key,
            "POST",
            url,
            access_token,
            self.nonce.as_deref(),
            &bizcred_core::base64url_encode(jti),
            now,
        )
        .map_err(WalletError::Sign)
    }

    /// Keeps the nonce an answer supplied.
    fn heard(&mut self, a: &net::Answer) {
        if let Some(n) = &a.dpop_nonce {
            self.nonce = Some(n.clone());
        }
    }
}

/// True when the server asks for (another) DPoP nonce: `use_dpop_nonce` in the error body or
/// the `WWW-Authenticate: DPoP` challenge, with the nonce to use (RFC 9449 §8, §9).
fn asks_for_nonce(a: &net::Answer) -> bool {
    a.dpop_nonce.is_some()
        && matches!(a.status, 400 | 401)
        && (net::ErrorBody::parse(&a.text).error.as_deref() == Some("use_dpop_nonce")
            || a.challenge
                .as_deref()
                .is_some_and(|c| c.contains("use_dpop_nonce")))
}

/// Sends the request `build` makes (given the DPoP state, when DPoP is used); when the
/// server asks for a DPoP nonce, once more with it. Keeps every nonce the server supplies.
async fn send_dpop(
    url: &str,
    what: &'static str,
    dpop: Option<&mut Dpop<'_>>,
    build: impl Fn(Option<&Dpop<'_>>) -> Result<reqwest::RequestBuilder, WalletError>,
) -> Result<net::Answer, WalletError> {
    let a = net::send(build(dpop.as_deref())?, what, url).await?;
    let Some(d) = dpop else {
        return Ok(a);
    };
    d.heard(&a);
    if !asks_for_nonce(&a) {
        return Ok(a);
    }
    let a = net::send(build(Some(d))?, what, url).await?;
    d.heard(&a);
    Ok(a)
}

/// The access token presented to the issuer: `DPoP` with a proof for `url`, or `Bearer`.
fn authorize(
    req: reqwest::RequestBuilder,
    p: &PendingReceive,
    dpop: Option<&Dpop<'_>>,
    url: &str,
    now: i64,
) -> Result<reqwest::RequestBuilder, WalletError> {
    Ok(match dpop {
        Some(d) if p.dpop => req
            .header(
                reqwest::header::AUTHORIZATION,
                format!("DPoP {}", p.access_token()),
            )
            .header("DPoP", d.proof(url, Some(p.access_token()), now)?),
        _ => req.bearer_auth(p.access_token()),
    })
}

/// What the credential endpoint answered.
struct Issued {
    credential: String,
    notification_id: Option<String>,
}

/// The credential request of a started receive: a fresh nonce, a fresh key proof, and the
/// request with the stored access token; the credential as the issuer sent it (not yet
/// verified, not stored). Repeating it after a lost answer gets the same credential again
/// (re-issued by the issuer for the same record and status index).
pub async fn request_credential(
    c: &reqwest::Client,
    holder: &SecretKey,
    p: &PendingReceive,
    now: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<String, WalletError> {
    let mut dpop = p.dpop.then(|| Dpop::new(holder));
    Ok(
        credential_request(c, holder, p, dpop.as_mut(), now, progress)
            .await?
            .credential,
    )
}

async fn credential_request(
    c: &reqwest::Client,
    holder: &SecretKey,
    p: &PendingReceive,
    mut dpop: Option<&mut Dpop<'_>>,
    now: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<Issued, WalletError> {
    let nonce = match &p.nonce_endpoint {
        Some(n) => {
            let what = "the nonce request";
            let a = net::send(c.post(n), what, n).await?;
            if let Some(d) = dpop.as_deref_mut() {
                d.heard(&a);
            }
            Some(net::parse_json::<NonceResponse>(&net::check(a, what)?, what)?.c_nonce)
        }
        None => None,
    };
    let proof = oid4vci::proof_jwt(holder, &p.credential_issuer, nonce.as_deref(), now)
        .map_err(WalletError::Sign)?;
    progress("requesting the credential");
    let body =
        json!({"credential_configuration_id": p.configuration_id, "proofs": {"jwt": [proof]}});
    let url = &p.credential_endpoint;
    let what = "the credential request";
    let a = send_dpop(url, what, dpop, |d| {
        authorize(c.post(url).json(&body), p, d, url, now)
    })
    .await?;
    let resp: CredentialResponse = net::parse_json(&net::check(a, what)?, what)?;
    Ok(Issued {
        notification_id: resp.notification_id,
        credential: resp
            .credentials
            .into_iter()
            .next()
            .ok_or(WalletError::NoCredential)?
            .credential,
    })
}

/// Tells the issuer's notification endpoint what became of the credential (OpenID4VCI 1.0
/// §11): `event` is `credential_accepted` or `credential_failure`.
async fn notify(
    c: &reqwest::Client,
    p: &PendingReceive,
    dpop: Option<&mut Dpop<'_>>,
    notification_id: &str,
    event: &str,
    now: i64,
) -> Result<(), WalletError> {
    let Some(url) = &p.notification_endpoint else {
        return Ok(());
    };
    let what = "the notification";
    let body = json!({"notification_id": notification_id, "event": event});
    let a = send_dpop(url, what, dpop, |d| {
        authorize(c.post(url).json(&body), p, d, url, now)
    })
    .await?;
    net::check(a, what).map(|_| ())
}

/// True when an error leaves the receive resumable (the network, a server failure, the
/// wallet's own storage): its pending record is kept. Any other error ends the receive.
fn resumable(e: &WalletError) -> bool {
    match e {
        WalletError::Unreachable { .. } | WalletError::Vault(_) => true,
        WalletError::Http { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The second half of a receive: the credential request ([`request_credential`]), the
/// credential verified ([`verify_received`]) and stored once, then the pending record removed.
/// A network or server failure keeps the record (resume later); a refusal removes it.
pub async fn complete(
    c: &reqwest::Client,
    vault: &dyn Vault,
    pending: &dyn PendingReceives,
    p: &PendingReceive,
    opts: ReceiveOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<StoredCredential, WalletError> {
    let result = async {
        let key = vault.holder_key()?;
        let now = opts.now_ms.div_euclid(1000);
        let mut dpop = p.dpop.then(|| Dpop::new(&key));
        let issued = credential_request(c, &key, p, dpop.as_mut(), now, progress).await?;
        let stored =
            store_received(c, vault, p, &key, issued.credential, opts.now_ms, progress).await;
        // The issuer hears what became of it; a notification that fails changes nothing.
        let event = match &stored {
            Ok(_) => Some("credential_accepted"),
            Err(WalletError::Credential(_)) => Some("credential_failure"),
            Err(_) => None,
        };
        if let (Some(event), Some(id)) = (event, issued.notification_id.as_deref()) {
            if p.notification_endpoint.is_some() {
                match notify(c, p, dpop.as_mut(), id, event, now).await {
                    Ok(()) => progress(&format!("notified the issuer: {event}")),
                    Err(e) => progress(&format!("the issuer could not be notified: {e}")),
                }
            }
        }
        stored
    }
    .await;
    match result {
        Ok(rec) => {
            pending.remove_pending(&p.id)?;
            Ok(rec)
        }
        Err(e) if resumable(&e) => Err(e),
        Err(e) => {
            pending.remove_pending(&p.id)?;
            Err(e)
        }
    }
}

/// Resumes an interrupted receive: the credential request again with the stored access
/// token and a fresh proof, then as [`complete`]. An expired access token ends it with
/// [`WalletError::ReceiveExpired`]: nothing stored, the record removed.
pub async fn resume(
    c: &reqwest::Client,
    vault: &dyn Vault,
    pending: &dyn PendingReceives,
    p: &PendingReceive,
    opts: ReceiveOptions<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<StoredCredential, WalletError> {
    if p.expired(opts.now_ms) {
        pending.remove_pending(&p.id)?;
        return Err(WalletError::ReceiveExpired {
            issuer: p.credential_issuer.clone(),
        });
    }
    progress(&format!(
        "resuming the interrupted receive from {}",
        p.credential_issuer
    ));
    complete(c, vault, pending, p, opts, progress).await
}

/// Verifies a received credential and stores it, once: when the wallet already holds the
/// credential of the same issuer, status list and index (a response that was stored before
/// its pending record could be removed, then re-issued), that one is kept and returned.
async fn store_received(
    c: &reqwest::Client,
    vault: &dyn Vault,
    p: &PendingReceive,
    key: &SecretKey,
    text: String,
    now_ms: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<StoredCredential, WalletError> {
    progress("verifying the credential with the issuer's DID");
    let expected = Expected {
        holder: key,
        vct: p.vct.as_deref(),
        now: now_ms.div_euclid(1000),
    };
    let vc = verify_received(c, &text, &expected).await?;
    let id = credential_id(&text);
    let status_uri = vc.status.as_ref().map(|s| s.uri.clone());
    let status_idx = vc.status.as_ref().map(|s| s.idx);
    for held in vault.credentials()? {
        let same_status = status_uri.is_some()
            && held.issuer == vc.issuer
            && held.status_uri == status_uri
            && held.status_idx == status_idx;
        if held.id == id || same_status {
            return Ok(held);
        }
    }
    let issuer_name = p.issuer_name.clone().unwrap_or_else(|| vc.issuer.clone());
    let rec = StoredCredential {
        id,
        vct: vc.vct.clone(),
        issuer: vc.issuer.clone(),
        issuer_name,
        credential: text,
        received_at: now_ms,
        iat: vc.iat,
        exp: vc.exp,
        status_uri,
        status_idx,
        last_status: None,
        status_checked_at: None,
    };
    vault.put_credential(&rec)?;
    Ok(rec)
}

async fn token(
    c: &reqwest::Client,
    endpoint: &str,
    grant: &PreAuthorizedGrant,
    tx_code: Option<&str>,
    dpop: Option<&mut Dpop<'_>>,
    now: i64,
) -> Result<TokenResponse, WalletError> {
    let mut form = vec![
        ("grant_type", oid4vci::PRE_AUTHORIZED_GRANT),
        ("pre-authorized_code", grant.code.as_str()),
    ];
    if let Some(t) = tx_code {
        form.push(("tx_code", t));
    }
    let a = send_dpop(endpoint, "the token request", dpop, |d| {
        let req = c.post(endpoint).form(&form);
        Ok(match d {
            Some(d) => req.header("DPoP", d.proof(endpoint, None, now)?),
            None => req,
        })
    })
    .await?;
    if !(200..300).contains(&a.status) {
        let e = net::ErrorBody::parse(&a.text);
        return Err(WalletError::TokenRefused {
            status: a.status,
            error: e.error,
            description: e.error_description,
        });
    }
    net::parse_json(&a.text, "the token response")
}

/// What a received credential must be.
#[derive(Clone, Copy)]
pub struct Expected<'a> {
    /// The wallet's holder key, which the credential must be bound to.
    pub holder: &'a SecretKey,
    /// The offered type.
    pub vct: Option<&'a str>,
    /// The time (seconds).
    pub now: i64,
}

impl std::fmt::Debug for Expected<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expected")
            .field("vct", &self.vct)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Verifies a received credential: the signature with the issuer's DID (resolved as it stood
/// at `iat`), the key belonging to the issuer, the holder binding, the type, and the schema.
pub async fn verify_received(
    c: &reqwest::Client,
    text: &str,
    expected: &Expected<'_>,
) -> Result<sd_jwt_vc::VerifiedCredential, WalletError> {
    let bad = WalletError::Credential;
    let sd = SdJwt::parse(text).map_err(|e| bad(CredentialProblem::Parse(e.to_string())))?;
    let payload = sd
        .unverified_payload()
        .map_err(|e| bad(CredentialProblem::Parse(e.to_string())))?;
    let header = bizcred_core::jws::Jws::decode(&sd.jwt)
        .map_err(|e| bad(CredentialProblem::Parse(e.to_string())))?;
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(bad(CredentialProblem::NoIssuer))?
        .to_owned();
    // Without `iat` the key is resolved as it stands now (the signature still has to verify).
    let iat = payload
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or(expected.now);
    // Without a `kid`, the issuer's first key; the signature must verify with it either way,
    // and the key must belong to `iss` (checked next).
    let kid = header
        .header_str("kid")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{iss}#key-1"));
    if !kid.starts_with(&format!("{iss}#")) {
        return Err(bad(CredentialProblem::ForeignKey { kid, iss }));
    }
    let issuer_key = net::resolve_key(c, &kid, iat, expected.now, true).await?;
    let vc = sd_jwt_vc::verify(
        &sd,
        &issuer_key,
        &VerifyOptions {
            now: expected.now,
            clock_skew: CLOCK_SKEW,
            key_binding: None,
        },
    )
    .map_err(|e| {
        bad(CredentialProblem::DoesNotVerify {
            code: e.code(),
            message: e.to_string(),
        })
    })?;
    if vc.holder_key.as_ref() != Some(&expected.holder.public_key()) {
        return Err(bad(CredentialProblem::NotBound));
    }
    if expected.vct != Some(vc.vct.as_str()) {
        return Err(bad(CredentialProblem::OtherVct {
            got: vc.vct.clone(),
            offered: expected.vct.unwrap_or("nothing").to_owned(),
        }));
    }
    if let Some(ty) = CredentialType::from_vct(&vc.vct) {
        if let Err(errs) = bizcred_schemas::parse_claims(ty, &Value::Object(vc.business_claims())) {
            return Err(bad(CredentialProblem::Schema {
                slug: ty.slug(),
                errors: errs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }));
        }
    }
    Ok(vc)
}
