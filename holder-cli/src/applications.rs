//! Applications to an agency, over its applicant API: which types it issues
//! (`GET /applicant/types`), opening an application (`POST /applicant/applications`), following
//! it by its capability link (`GET <follow_uri>`), answering a request for changes
//! (`POST <follow_uri>/claims`) and withdrawing it (`POST <follow_uri>/withdraw`). An
//! application the agency no longer answers for (`403 CAPABILITY_INVALID`) is kept in the final
//! state [`AppState::NoLongerHeld`] and not asked about again.
//!
//! The wallet keeps each application as a [`StoredApplication`] in its encrypted store (at most
//! [`MAX_APPLICATIONS`]; see [`crate::vault::Vault::put_application`]). The capability link is a
//! secret: anyone holding it sees and may withdraw the application. It is kept in a
//! [`FollowUri`] (no `Debug`, zeroized on drop), and it is never part of an error: a request to it
//! that fails names the agency's `/applicant/…` and carries the transport error without its URL.
//!
//! Every string an agency answers is checked or cleaned (bounded, no control characters) before
//! it is kept or shown.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroize;

use bizcred_schemas::ReasonCode;

use crate::error::WalletError;
use crate::net::{self, Answer};
use crate::vault::Vault;

/// The most applications the wallet keeps. Past it, a new application replaces the one in a
/// final state (issued, refused, withdrawn) seen longest ago; when every kept application is
/// still open, `apply` refuses before it asks the agency (`TOO_MANY_APPLICATIONS`).
pub const MAX_APPLICATIONS: usize = 300;
/// The most `--claim`s one application sends.
pub const MAX_CLAIMS: usize = 64;
/// The longest claim name.
pub const MAX_CLAIM_NAME: usize = 64;
/// The longest application id the wallet accepts from an agency.
pub const MAX_ID_LEN: usize = 128;
/// The longest link (capability, request, offer) the wallet keeps.
pub const MAX_URI_LEN: usize = 4096;
/// The longest note the wallet keeps (longer ones are cut, marked with `…`).
pub const MAX_NOTE_LEN: usize = 2000;
/// The most upstream flags kept per application (the newest).
pub const MAX_FLAGS: usize = 32;
/// The most types read from an agency's list.
pub const MAX_TYPES: usize = 64;

/// An application's state, as the agency names it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// The agency waits for the prerequisite credentials to be presented.
    AwaitingPrerequisites,
    /// The agency's staff is to decide.
    AwaitingApproval,
    /// The agency asks for changes (see the note).
    ChangesRequested,
    /// The credential is offered (see the offer).
    Offered,
    /// The credential was issued.
    Issued,
    /// The agency refused (see the note).
    Refused,
    /// The founder withdrew it.
    Withdrawn,
    /// The wallet's own final state, never an agency's: the agency answered that it holds no
    /// application behind the link (`403 CAPABILITY_INVALID`). It is not asked about again.
    NoLongerHeld,
}

impl AppState {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::AwaitingPrerequisites => "awaiting_prerequisites",
            AppState::AwaitingApproval => "awaiting_approval",
            AppState::ChangesRequested => "changes_requested",
            AppState::Offered => "offered",
            AppState::Issued => "issued",
            AppState::Refused => "refused",
            AppState::Withdrawn => "withdrawn",
            AppState::NoLongerHeld => "no_longer_held",
        }
    }

    /// How the state reads in a sentence.
    pub fn describe(self) -> &'static str {
        match self {
            AppState::NoLongerHeld => "no longer held by the agency",
            other => other.as_str(),
        }
    }

    /// True when nothing more happens to the application.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AppState::Issued | AppState::Refused | AppState::Withdrawn | AppState::NoLongerHeld
        )
    }
}

impl std::fmt::Display for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An application's capability link (`<agency>/applicant/<capability>`): a secret. No `Debug`
/// that shows it; zeroized when dropped.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct FollowUri(String);

impl FollowUri {
    /// A link (checked by the caller).
    pub(crate) fn new(link: String) -> FollowUri {
        FollowUri(link)
    }

    /// The link itself, for the request to it or for showing it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for FollowUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FollowUri(..)")
    }
}

impl Drop for FollowUri {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A credential offer the agency made for an application.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppOffer {
    /// The `openid-credential-offer://` link.
    pub credential_offer_uri: String,
    /// The transaction code to give `receive`.
    #[serde(default)]
    pub tx_code: Option<String>,
    /// When the offer expires (seconds).
    #[serde(default)]
    pub expires: Option<i64>,
    /// True once the offer was used (the credential received).
    #[serde(default)]
    pub used: bool,
}

/// A change of an upstream credential the application's prerequisites came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppFlag {
    /// `credential_suspended`, `credential_revoked`, ...
    pub event: String,
    /// The upstream credential's type.
    pub vct: String,
    /// When (seconds).
    pub time: i64,
}

/// An application as the wallet keeps it (encrypted, like every record of the store).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StoredApplication {
    /// The wallet's id (`a` + 10 characters of the SHA-256 of the agency and the agency's id),
    /// so no agency can name, and overwrite, another agency's application.
    pub id: String,
    /// The agency (its `credential_issuer` URL).
    pub agency: String,
    /// The agency's id of the application.
    pub application_id: String,
    /// The credential configuration applied for (the type's slug at bizcred agencies).
    pub credential_configuration_id: String,
    /// Its vct, when the agency's list named it.
    #[serde(default)]
    pub vct: Option<String>,
    /// The capability link (a secret).
    pub follow_uri: FollowUri,
    /// The last state seen.
    pub state: AppState,
    /// When the wallet applied (seconds).
    pub applied_at: i64,
    /// When the state was last read from the agency (seconds).
    pub last_seen: i64,
    /// When the agency last changed it (seconds), as the agency says.
    #[serde(default)]
    pub updated: Option<i64>,
    /// The agency's note (why it refused or what to change).
    #[serde(default)]
    pub note: Option<String>,
    /// The open presentation request for the prerequisites (while awaiting them).
    #[serde(default)]
    pub request_uri: Option<String>,
    /// The offer, once offered.
    #[serde(default)]
    pub offer: Option<AppOffer>,
    /// Changes of upstream credentials the agency flagged.
    #[serde(default)]
    pub flags: Vec<AppFlag>,
}

/// The wallet's id of an agency's application.
pub fn application_key(agency: &str, application_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{agency}\n{application_id}").as_bytes());
    let b64 = bizcred_core::base64url_encode(digest);
    format!("a{}", b64.get(..10).unwrap_or(&b64))
}

/// One type an agency issues, from `/applicant/types`.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgencyType {
    /// The credential configuration id (the slug).
    pub credential_configuration_id: String,
    /// Its vct.
    #[serde(default)]
    pub vct: Option<String>,
    /// The vcts of its prerequisites, in order.
    #[serde(default)]
    pub prerequisites: Vec<String>,
    /// The claims only the founder can state.
    #[serde(default)]
    pub applicant_claims: Vec<String>,
}

/// What an agency issues, from `/applicant/types`.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AgencyTypes {
    /// The agency's public URL.
    pub credential_issuer: String,
    /// The types it issues.
    pub types: Vec<AgencyType>,
}

impl AgencyTypes {
    /// The type with this credential configuration id.
    pub fn find(&self, id: &str) -> Option<&AgencyType> {
        self.types
            .iter()
            .find(|t| t.credential_configuration_id == id)
    }

    /// The credential configuration ids, in the agency's order.
    pub fn ids(&self) -> Vec<String> {
        self.types
            .iter()
            .map(|t| t.credential_configuration_id.clone())
            .collect()
    }
}

/// What the agency answers to an application, or shows of it by its link.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct ApplicationView {
    /// The agency's id.
    pub application_id: String,
    /// The state.
    pub state: AppState,
    /// The last change (seconds).
    #[serde(default)]
    pub updated: Option<i64>,
    /// The note.
    #[serde(default)]
    pub note: Option<String>,
    /// The open presentation request (while awaiting prerequisites).
    #[serde(default)]
    pub request_uri: Option<String>,
    /// The offer (when offered): an [`AppOffer`], or the agency's `{"error": CODE}` when it
    /// could not read its offer; read leniently by [`StoredApplication::update`].
    #[serde(default)]
    pub offer: Option<Value>,
    /// Upstream flags (each read leniently: one the wallet cannot read is left out).
    #[serde(default)]
    pub flags: Vec<Value>,
    /// The claims as the agency holds them.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// The verification of the presented prerequisites.
    #[serde(default)]
    pub verification: Option<Value>,
}

/// The answer to `POST /applicant/applications`.
#[derive(Deserialize)]
struct Opened {
    application_id: String,
    follow_uri: String,
    state: AppState,
    #[serde(default)]
    request_uri: Option<String>,
}

/// An agency's error body (`error`, `error_description`, `code`).
#[derive(Deserialize, Default)]
struct AgencyErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// The agency's reason code, when it is one of the shared ones.
pub fn known_code(code: &str) -> Option<ReasonCode> {
    ReasonCode::ALL.iter().copied().find(|c| c.as_str() == code)
}

/// `s` without control characters, cut to `max` characters (marked with `…`).
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().filter(|c| !c.is_control()).nth(max).is_some() {
        out.push('…');
    }
    out
}

/// A link as the agency gave it: bounded, printable, with the expected scheme.
fn checked_link(s: &str, schemes: &[&str], what: &'static str) -> Result<String, WalletError> {
    if s.len() > MAX_URI_LEN
        || s.chars().any(|c| c.is_control() || c.is_whitespace())
        || !schemes.iter().any(|p| s.starts_with(p))
    {
        return Err(bad(what, "a link is not one the wallet follows"));
    }
    Ok(s.to_owned())
}

fn bad(what: &'static str, problem: &'static str) -> WalletError {
    WalletError::AgencyAnswer { what, problem }
}

/// The agency's base URL from what the founder typed: `https://host[:port][/path]`, or plain
/// HTTP on `localhost` or `127.0.0.1`; no query, fragment or credentials; no trailing slash.
pub fn agency_base(url: &str) -> Result<String, WalletError> {
    let url = url.trim().trim_end_matches('/');
    let invalid = || WalletError::AgencyUrl(clean(url, 200));
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', ':']).next().unwrap_or("");
        if host != "localhost" && host != "127.0.0.1" {
            return Err(invalid());
        }
        r
    } else {
        return Err(invalid());
    };
    let host = rest.split('/').next().unwrap_or("");
    if url.len() > 512
        || host.is_empty()
        || url
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '@' | '\\'))
    {
        return Err(invalid());
    }
    Ok(url.to_owned())
}

/// Parses a `--claim name=value`: a value that parses as JSON is taken as JSON, else as the
/// string it is.
pub fn parse_claim_arg(s: &str) -> Result<(String, Value), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got {:?}", clean(s, 80)))?;
    let name = name.trim();
    if name.is_empty()
        || name.len() > MAX_CLAIM_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "a claim name is 1 to {MAX_CLAIM_NAME} letters, digits, '_' or '-', got {:?}",
            clean(name, 80)
        ));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

/// The claims object from parsed `--claim`s; a name given twice is refused.
pub fn claims_object(claims: &[(String, Value)]) -> Result<Map<String, Value>, String> {
    if claims.len() > MAX_CLAIMS {
        return Err(format!("at most {MAX_CLAIMS} claims"));
    }
    let mut out = Map::new();
    for (k, v) in claims {
        if out.insert(k.clone(), v.clone()).is_some() {
            return Err(format!("the claim {k} is given twice"));
        }
    }
    Ok(out)
}

/// Sends a request whose URL is the capability link: a failure names `shown` (the agency's
/// `/applicant/…`) and carries the transport error without the URL.
async fn send_secret(
    req: reqwest::RequestBuilder,
    what: &'static str,
    shown: &str,
) -> Result<Answer, WalletError> {
    let scrub = |source: reqwest::Error| WalletError::Unreachable {
        what,
        url: shown.to_owned(),
        source: source.without_url(),
    };
    let resp = req.send().await.map_err(scrub)?;
    net::read(resp, what, shown).await.map_err(|e| match e {
        WalletError::Unreachable { source, .. } => scrub(source),
        other => other,
    })
}

/// The body of a success, or the agency's refusal (its sentence and code).
fn agency_check(a: Answer, what: &'static str) -> Result<String, WalletError> {
    if (200..300).contains(&a.status) {
        return Ok(a.text);
    }
    // A refusal whose body is not the documented JSON (a proxy's page) is still the agency's
    // refusal: it is reported with its HTTP status and no sentence or code, never as success.
    let e: AgencyErrorBody = serde_json::from_str(&a.text).unwrap_or_default();
    Err(WalletError::Agency {
        what,
        status: a.status,
        error: e.error.map(|s| clean(&s, 100)),
        description: e.error_description.map(|s| clean(&s, 500)),
        code: e.code.map(|s| clean(&s, 100)),
    })
}

/// Reads what the agency at `agency` (from [`agency_base`]) issues. The agency must answer
/// `agency` as its `credential_issuer` ([`WalletError::AgencyMismatch`] otherwise).
pub async fn agency_types(c: &reqwest::Client, agency: &str) -> Result<AgencyTypes, WalletError> {
    const WHAT: &str = "the agency's list of types";
    let url = format!("{agency}/applicant/types");
    let text = agency_check(net::send(c.get(&url), WHAT, &url).await?, WHAT)?;
    let mut t: AgencyTypes = net::parse_json(&text, WHAT)?;
    if t.types.len() > MAX_TYPES {
        return Err(bad(WHAT, "it lists more types than the wallet reads"));
    }
    // The agency must be the one the founder named (normalised alike): an application opened
    // from another agency's answer would go, with the founder's claims, where the founder did
    // not say.
    let mismatch = |answered: String| WalletError::AgencyMismatch {
        asked: agency.to_owned(),
        answered,
    };
    let issuer = match agency_base(&t.credential_issuer) {
        Ok(issuer) if issuer == agency => issuer,
        Ok(other) => return Err(mismatch(other)),
        Err(_) => return Err(mismatch(clean(&t.credential_issuer, 200))),
    };
    t.credential_issuer = issuer;
    for ty in &mut t.types {
        ty.credential_configuration_id = clean(&ty.credential_configuration_id, 100);
        ty.vct = ty.vct.as_deref().map(|v| clean(v, 500));
        ty.applicant_claims.truncate(MAX_CLAIMS);
        ty.prerequisites.truncate(MAX_TYPES);
    }
    Ok(t)
}

/// An application opened: the record to keep, and the presentation request for its
/// prerequisites (present it with the wallet's OpenID4VP client).
#[derive(Debug)]
pub struct OpenedApplication {
    /// The record.
    pub record: StoredApplication,
    /// The request for the prerequisites (`openid4vp://…`), when the type has some.
    pub request_uri: Option<String>,
}

/// Opens an application for `ty` at the agency that answered `types`, with the founder's
/// `claims`; `now` in seconds. Nothing is stored here: keep the record
/// ([`Vault::put_application`]) before anything else can fail.
pub async fn open(
    c: &reqwest::Client,
    types: &AgencyTypes,
    ty: &AgencyType,
    claims: Map<String, Value>,
    now: i64,
) -> Result<OpenedApplication, WalletError> {
    const WHAT: &str = "the application";
    let agency = &types.credential_issuer;
    let url = format!("{agency}/applicant/applications");
    let body =
        json!({"credential_configuration_id": ty.credential_configuration_id, "claims": claims});
    let text = agency_check(net::send(c.post(&url).json(&body), WHAT, &url).await?, WHAT)?;
    let o: Opened = net::parse_json(&text, WHAT)?;
    if o.state == AppState::NoLongerHeld {
        return Err(bad(WHAT, "it names a state the agency does not give"));
    }
    let application_id = checked_id(&o.application_id, WHAT)?;
    let follow = checked_follow(agency, &o.follow_uri, WHAT)?;
    let request_uri = o
        .request_uri
        .as_deref()
        .map(|u| checked_link(u, &["openid4vp:"], WHAT))
        .transpose()?;
    let record = StoredApplication {
        id: application_key(agency, &application_id),
        agency: agency.clone(),
        application_id,
        credential_configuration_id: ty.credential_configuration_id.clone(),
        vct: ty.vct.clone(),
        follow_uri: follow,
        state: o.state,
        applied_at: now,
        last_seen: now,
        updated: Some(now),
        note: None,
        request_uri: request_uri.clone(),
        offer: None,
        flags: Vec::new(),
    };
    Ok(OpenedApplication {
        record,
        request_uri,
    })
}

fn checked_id(id: &str, what: &'static str) -> Result<String, WalletError> {
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(what, "its application id is not one the wallet keeps"));
    }
    Ok(id.to_owned())
}

/// The capability link must be the agency's own `/applicant/…` link.
fn checked_follow(
    agency: &str,
    follow: &str,
    what: &'static str,
) -> Result<FollowUri, WalletError> {
    let prefix = format!("{agency}/applicant/");
    let rest = follow.strip_prefix(&prefix);
    if follow.len() > MAX_URI_LEN
        || rest.is_none_or(|r| {
            r.is_empty()
                || !r
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        })
    {
        return Err(bad(what, "its follow link is not a link of that agency"));
    }
    Ok(FollowUri::new(follow.to_owned()))
}

/// How a failed request to the capability link is named.
fn shown(a: &StoredApplication) -> String {
    format!("{}/applicant/…", a.agency)
}

/// Reads the application's state from its agency (`GET <follow_uri>`).
pub async fn fetch(
    c: &reqwest::Client,
    a: &StoredApplication,
) -> Result<ApplicationView, WalletError> {
    const WHAT: &str = "the application's state";
    let answer = send_secret(c.get(a.follow_uri.expose()), WHAT, &shown(a)).await?;
    view(a, &agency_check(answer, WHAT)?, WHAT)
}

/// Withdraws the application (`POST <follow_uri>/withdraw`), with the founder's reason.
pub async fn withdraw(
    c: &reqwest::Client,
    a: &StoredApplication,
    reason: Option<&str>,
) -> Result<ApplicationView, WalletError> {
    const WHAT: &str = "the withdrawal";
    let body = match reason {
        Some(r) => json!({"reason": r}),
        None => json!({}),
    };
    let url = format!("{}/withdraw", a.follow_uri.expose());
    let answer = send_secret(c.post(&url).json(&body), WHAT, &shown(a)).await?;
    view(a, &agency_check(answer, WHAT)?, WHAT)
}

/// Answers a request for changes (`POST <follow_uri>/claims` with `{"claims": …}`): the claims
/// only the founder states, as `apply` sends them. The agency decides whether the application
/// takes them in its state (its refusal comes back with its sentence and code).
pub async fn answer(
    c: &reqwest::Client,
    a: &StoredApplication,
    claims: Map<String, Value>,
) -> Result<ApplicationView, WalletError> {
    const WHAT: &str = "the answer to the agency";
    let url = format!("{}/claims", a.follow_uri.expose());
    let body = json!({ "claims": claims });
    let answer = send_secret(c.post(&url).json(&body), WHAT, &shown(a)).await?;
    view(a, &agency_check(answer, WHAT)?, WHAT)
}

/// True when the agency answered that it holds no application behind the link
/// (`403 CAPABILITY_INVALID`).
pub fn is_no_longer_held(e: &WalletError) -> bool {
    matches!(e, WalletError::Agency { status: 403, code: Some(c), .. } if c == ReasonCode::CapabilityInvalid.as_str())
}

fn view(
    a: &StoredApplication,
    text: &str,
    what: &'static str,
) -> Result<ApplicationView, WalletError> {
    let v: ApplicationView = net::parse_json(text, what)?;
    if v.application_id != a.application_id {
        return Err(bad(what, "it answers for another application"));
    }
    if v.state == AppState::NoLongerHeld {
        return Err(bad(what, "it names a state the agency does not give"));
    }
    Ok(v)
}

impl StoredApplication {
    /// The agency holds no application behind the link any more: the final state
    /// [`AppState::NoLongerHeld`] at `now`; the open request and the offer are dropped (they
    /// were the agency's, for an application it no longer holds).
    pub fn mark_no_longer_held(&mut self, now: i64) {
        self.state = AppState::NoLongerHeld;
        self.last_seen = now;
        self.request_uri = None;
        self.offer = None;
    }

    /// True when the record is one the wallet could have written: the agency's URL, the
    /// wallet's id of its application, the agency's own follow link, and every string bounded
    /// and checked as [`StoredApplication::update`] keeps them. A backup's records are read
    /// with it.
    pub fn is_well_formed(&self) -> bool {
        let short =
            |s: &str, max: usize| s.chars().count() <= max && !s.chars().any(char::is_control);
        agency_base(&self.agency).is_ok_and(|b| b == self.agency)
            && checked_id(&self.application_id, "").is_ok()
            && self.id == application_key(&self.agency, &self.application_id)
            && checked_follow(&self.agency, self.follow_uri.expose(), "").is_ok()
            && short(&self.credential_configuration_id, 101)
            && self.vct.as_deref().is_none_or(|v| short(v, 501))
            && self
                .note
                .as_deref()
                .is_none_or(|n| short(n, MAX_NOTE_LEN + 1))
            && self
                .request_uri
                .as_deref()
                .is_none_or(|u| checked_link(u, &["openid4vp:"], "").is_ok())
            && self.offer.as_ref().is_none_or(|o| {
                checked_link(&o.credential_offer_uri, &["openid-credential-offer:"], "").is_ok()
                    && o.tx_code.as_deref().is_none_or(|t| short(t, 65))
            })
            && self.flags.len() <= MAX_FLAGS
            && self
                .flags
                .iter()
                .all(|f| short(&f.event, 65) && short(&f.vct, 501))
    }

    /// Takes what the agency showed, at `now` (seconds): the state, note, request, offer and
    /// flags, checked and bounded.
    pub fn update(&mut self, v: &ApplicationView, now: i64) {
        self.state = v.state;
        self.last_seen = now;
        self.updated = v.updated.or(self.updated);
        self.note = v
            .note
            .as_deref()
            .map(|n| clean(n, MAX_NOTE_LEN))
            .filter(|n| !n.is_empty());
        self.request_uri = match v.state {
            AppState::AwaitingPrerequisites => v
                .request_uri
                .as_deref()
                .and_then(|u| checked_link(u, &["openid4vp:"], "").ok()),
            _ => None,
        };
        self.offer = v.offer.as_ref().and_then(|o| {
            let o: AppOffer = serde_json::from_value(o.clone()).ok()?;
            Some(AppOffer {
                credential_offer_uri: checked_link(
                    &o.credential_offer_uri,
                    &["openid-credential-offer:"],
                    "",
                )
                .ok()?,
                tx_code: o.tx_code.as_deref().map(|t| clean(t, 64)),
                expires: o.expires,
                used: o.used,
            })
        });
        let flags: Vec<AppFlag> = v
            .flags
            .iter()
            .filter_map(|f| serde_json::from_value(f.clone()).ok())
            .collect();
        let start = flags.len().saturating_sub(MAX_FLAGS);
        self.flags = flags[start..]
            .iter()
            .map(|f| AppFlag {
                event: clean(&f.event, 64),
                vct: clean(&f.vct, 500),
                time: f.time,
            })
            .collect();
    }
}

/// The outcome of reading one application's state.
#[derive(Debug)]
pub enum Refreshed {
    /// Read now; the record was updated.
    Fresh,
    /// The agency could not be reached (the record keeps the last known state).
    Unreachable(WalletError),
    /// The agency answered, but not with the state (its refusal, or an answer the wallet does
    /// not read); the record keeps the last known state.
    Failed(WalletError),
    /// The agency holds no application behind the link (it answered `CAPABILITY_INVALID`
    /// now, or before: then it was not asked again).
    NoLongerHeld,
}

/// Reads every kept application's state from its agency and keeps what was read, at `now`
/// (seconds). An agency that cannot be reached is asked once per run: its other applications
/// are marked unreachable without waiting again. No failure of one agency stops the list. An
/// application the agency no longer holds is kept as [`AppState::NoLongerHeld`] and not asked
/// about again.
pub async fn refresh_all(
    c: &reqwest::Client,
    v: &dyn Vault,
    now: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<(StoredApplication, Refreshed)>, WalletError> {
    let mut out = Vec::new();
    let mut down: Vec<String> = Vec::new();
    for mut a in v.applications()? {
        if a.state == AppState::NoLongerHeld {
            out.push((a, Refreshed::NoLongerHeld));
            continue;
        }
        if down.contains(&a.agency) {
            let e = WalletError::AgencyDown {
                agency: a.agency.clone(),
            };
            out.push((a, Refreshed::Unreachable(e)));
            continue;
        }
        progress(&format!("reading {} at {}", a.application_id, a.agency));
        match fetch(c, &a).await {
            Ok(view) => {
                a.update(&view, now);
                v.put_application(&a)?;
                out.push((a, Refreshed::Fresh));
            }
            Err(e @ WalletError::Unreachable { .. }) => {
                down.push(a.agency.clone());
                out.push((a, Refreshed::Unreachable(e)));
            }
            Err(e) if is_no_longer_held(&e) => {
                a.mark_no_longer_held(now);
                v.put_application(&a)?;
                out.push((a, Refreshed::NoLongerHeld));
            }
            Err(e) => out.push((a, Refreshed::Failed(e))),
        }
    }
    Ok(out)
}

/// Finds a kept application by the wallet's id or by the agency's application id (refused
/// when the agency's id names applications at two agencies).
pub fn find(v: &dyn Vault, id: &str) -> Result<StoredApplication, WalletError> {
    if let Some(a) = v.application(id)? {
        return Ok(a);
    }
    let mut found: Vec<StoredApplication> = v
        .applications()?
        .into_iter()
        .filter(|a| a.application_id == id)
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(WalletError::UnknownApplication(clean(id, MAX_ID_LEN))),
        _ => Err(WalletError::AmbiguousApplication {
            id: clean(id, MAX_ID_LEN),
            ids: found.into_iter().map(|a| a.id.clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(agency: &str, application_id: &str) -> StoredApplication {
        StoredApplication {
            id: application_key(agency, application_id),
            agency: agency.into(),
            application_id: application_id.into(),
            credential_configuration_id: "municipal-business-licence".into(),
            vct: None,
            follow_uri: FollowUri(format!("{agency}/applicant/{application_id}.s3cr3t")),
            state: AppState::AwaitingApproval,
            applied_at: 1_790_000_000,
            last_seen: 1_790_000_000,
            updated: None,
            note: None,
            request_uri: None,
            offer: None,
            flags: Vec::new(),
        }
    }

    #[test]
    fn claim_arguments_take_json_else_a_string() {
        assert_eq!(
            parse_claim_arg("licence_category=restaurant"),
            Ok(("licence_category".into(), json!("restaurant")))
        );
        assert_eq!(parse_claim_arg("seats=40"), Ok(("seats".into(), json!(40))));
        assert_eq!(
            parse_claim_arg(r#"premises_address={"street":"1 Main St"}"#),
            Ok(("premises_address".into(), json!({"street": "1 Main St"})))
        );
        // Only the first '=' splits; an empty value is the empty string.
        assert_eq!(
            parse_claim_arg("note=a=b"),
            Ok(("note".into(), json!("a=b")))
        );
        assert_eq!(parse_claim_arg("note="), Ok(("note".into(), json!(""))));
        for bad in [
            "novalue",
            "=x",
            "na me=x",
            "é=x",
            &format!("{}=x", "n".repeat(65)),
        ] {
            assert!(parse_claim_arg(bad).is_err(), "{bad}");
        }
        let twice = [("a".to_owned(), json!(1)), ("a".to_owned(), json!(2))];
        assert!(claims_object(&twice).is_err());
        let many: Vec<(String, Value)> = (0..=MAX_CLAIMS)
            .map(|i| (format!("c{i}"), json!(i)))
            .collect();
        assert!(claims_object(&many).is_err());
        assert_eq!(
            claims_object(&many[..2]).expect("two"),
            json!({"c0": 0, "c1": 1}).as_object().cloned().expect("map")
        );
    }

    #[test]
    fn agency_urls_are_https_or_loopback_http() {
        assert_eq!(
            agency_base("https://city.example/").expect("https"),
            "https://city.example"
        );
        assert_eq!(
            agency_base("http://localhost:8084").expect("loopback"),
            "http://localhost:8084"
        );
        assert_eq!(
            agency_base("http://127.0.0.1:8084/").expect("loopback"),
            "http://127.0.0.1:8084"
        );
        for bad in [
            "http://city.example",
            "http://localhost.evil.example",
            "ftp://city.example",
            "city.example",
            "https://",
            "https://city.example/?x=1",
            "https://user@city.example",
            "https://city .example",
        ] {
            let e = agency_base(bad).expect_err(bad);
            assert_eq!(e.code(), ReasonCode::AgencyUrlInvalid, "{bad}");
        }
    }

    #[test]
    fn follow_links_must_be_the_agencys_own() {
        let a = "http://localhost:8084";
        assert!(checked_follow(a, "http://localhost:8084/applicant/ab12.XYZ_-", "x").is_ok());
        for bad in [
            "http://localhost:8085/applicant/ab12.x",
            "http://localhost:8084/applicant/",
            "http://localhost:8084/applicant/a/../../admin",
            "http://localhost:8084/applicant/a?x=1",
            "https://evil.example/applicant/a.b",
        ] {
            assert!(checked_follow(a, bad, "x").is_err(), "{bad}");
        }
        assert!(checked_id("0a1b2c", "x").is_ok());
        assert!(checked_id("", "x").is_err());
        assert!(checked_id("a/b", "x").is_err());
        assert!(checked_id(&"a".repeat(MAX_ID_LEN + 1), "x").is_err());
    }

    #[test]
    fn the_capability_is_in_no_debug_output() {
        let a = app("http://localhost:8084", "0a1b");
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("FollowUri(..)"));
        // It is kept in the record, though (the vault encrypts the record).
        let stored = serde_json::to_value(&a).expect("json");
        assert_eq!(
            stored["follow_uri"],
            "http://localhost:8084/applicant/0a1b.s3cr3t"
        );
        let back: StoredApplication = serde_json::from_value(stored).expect("back");
        assert_eq!(back, a);
    }

    #[test]
    fn keys_depend_on_the_agency() {
        assert_ne!(
            application_key("https://a.example", "1"),
            application_key("https://b.example", "1")
        );
        assert_eq!(application_key("https://a.example", "1").len(), 11);
    }

    #[test]
    fn an_agency_view_is_cleaned_and_bounded_when_kept() {
        let mut a = app("http://localhost:8084", "0a1b");
        let flags: Vec<Value> = (0..100)
            .map(|i| json!({"event": "credential_revoked", "vct": "https://x/\u{1b}[31mvct", "time": i}))
            .collect();
        let v: ApplicationView = serde_json::from_value(json!({
            "application_id": "0a1b", "state": "offered", "updated": 1_790_000_500,
            "note": format!("fix\u{1b}[2J{}", "x".repeat(5000)),
            "request_uri": "openid4vp://?client_id=x",
            "offer": {"credential_offer_uri": "openid-credential-offer://?credential_offer_uri=http%3A%2F%2Flocalhost", "tx_code": "123456", "expires": 1_790_001_000},
            "flags": flags, "claims": {}, "verification": null, "history": []
        }))
        .expect("view");
        a.update(&v, 1_790_000_600);
        assert_eq!(a.state, AppState::Offered);
        assert_eq!(a.last_seen, 1_790_000_600);
        assert_eq!(a.updated, Some(1_790_000_500));
        let note = a.note.as_deref().expect("note");
        assert!(!note.contains('\u{1b}') && note.chars().count() == MAX_NOTE_LEN + 1);
        assert_eq!(
            a.request_uri, None,
            "a request only while awaiting prerequisites"
        );
        assert_eq!(
            a.offer.as_ref().and_then(|o| o.tx_code.as_deref()),
            Some("123456")
        );
        assert_eq!(a.flags.len(), MAX_FLAGS);
        assert_eq!(
            a.flags.last().map(|f| f.time),
            Some(99),
            "the newest are kept"
        );
        assert!(!a.flags[0].vct.contains('\u{1b}'));
        // An offer link of another scheme is not kept.
        let v2: ApplicationView = serde_json::from_value(json!({
            "application_id": "0a1b", "state": "offered",
            "offer": {"credential_offer_uri": "javascript:alert(1)", "tx_code": "1"}
        }))
        .expect("view");
        a.update(&v2, 1_790_000_700);
        assert_eq!(a.offer, None);
        // The agency's "could not read the offer" and an unreadable flag are left out, not
        // an error of the whole view.
        let v3: ApplicationView = serde_json::from_value(json!({
            "application_id": "0a1b", "state": "offered", "offer": {"error": "STORAGE_FAILED"},
            "flags": [{"event": 3}, {"event": "credential_suspended", "vct": "v", "time": 5, "flagged_at": 6}]
        }))
        .expect("view");
        a.update(&v3, 1_790_000_800);
        assert_eq!(a.offer, None);
        assert_eq!(a.flags.len(), 1);
        // An unknown state is not read as any known one.
        assert!(serde_json::from_value::<ApplicationView>(
            json!({"application_id": "0a1b", "state": "approved"})
        )
        .is_err());
    }

    #[test]
    fn agency_refusals_carry_the_agencys_sentence_and_code() {
        let answer = |status: u16, text: &str| Answer {
            status,
            text: text.to_owned(),
            dpop_nonce: None,
            challenge: None,
        };
        let e = agency_check(
            answer(409, r#"{"error":"invalid_request","error_description":"The application can no longer be withdrawn.","code":"APPLICATION_NOT_WITHDRAWABLE"}"#),
            "the withdrawal",
        )
        .expect_err("409");
        assert_eq!(e.code(), ReasonCode::ApplicationNotWithdrawable);
        assert!(e.is_refusal());
        assert_eq!(
            e.to_string(),
            "the withdrawal: the agency answered 409: The application can no longer be withdrawn. (APPLICATION_NOT_WITHDRAWABLE)"
        );
        // A code the wallet does not know is shown, and read as an HTTP error; a 5xx is the
        // agency's failure, not a refusal; a body that is not JSON gives no reason.
        let e = agency_check(
            answer(503, r#"{"error":"x","code":"SOMETHING_NEW\u001b[2J"}"#),
            "x",
        )
        .expect_err("503");
        assert_eq!(e.code(), ReasonCode::HttpError);
        assert!(!e.is_refusal());
        assert_eq!(
            e.to_string(),
            "x: the agency answered 503: x (SOMETHING_NEW[2J)"
        );
        let e = agency_check(answer(502, "<html>"), "x").expect_err("502");
        assert_eq!(e.to_string(), "x: the agency answered 502: no reason given");
        assert_eq!(agency_check(answer(200, "{}"), "x").expect("ok"), "{}");
    }

    #[test]
    fn an_application_the_agency_no_longer_holds_is_kept_as_such() {
        let answer = |status: u16, code: &str| Answer {
            status,
            text: json!({"error": "access_denied", "error_description": "no", "code": code})
                .to_string(),
            dpop_nonce: None,
            challenge: None,
        };
        let e = agency_check(answer(403, "CAPABILITY_INVALID"), "x").expect_err("403");
        assert!(is_no_longer_held(&e));
        for (status, code) in [(403, "OTHER"), (400, "CAPABILITY_INVALID"), (500, "")] {
            let e = agency_check(answer(status, code), "x").expect_err("refused");
            assert!(!is_no_longer_held(&e), "{status} {code}");
        }
        let mut a = app("http://localhost:8084", "0a1b");
        a.state = AppState::Offered;
        a.offer = Some(AppOffer {
            credential_offer_uri: "openid-credential-offer://?x".into(),
            tx_code: Some("1".into()),
            expires: Some(1),
            used: false,
        });
        a.mark_no_longer_held(1_790_000_900);
        assert_eq!(a.state, AppState::NoLongerHeld);
        assert!(a.state.is_final());
        assert_eq!((a.offer.as_ref(), a.last_seen), (None, 1_790_000_900));
        assert_eq!(a.state.describe(), "no longer held by the agency");
        // No agency can name the wallet's own state.
        let text = json!({"application_id": "0a1b", "state": "no_longer_held"}).to_string();
        assert!(view(&a, &text, "x").is_err());
    }

    #[test]
    fn only_records_the_wallet_could_have_written_are_well_formed() {
        let a = app("http://localhost:8084", "0a1b");
        assert!(a.is_well_formed());
        let mut other_key = a.clone();
        other_key.id = application_key("http://localhost:8085", "0a1b");
        let mut other_host = a.clone();
        other_host.follow_uri = FollowUri::new("https://evil.example/applicant/0a1b.x".into());
        let mut bad_agency = a.clone();
        bad_agency.agency = "http://city.example".into();
        let mut long_note = a.clone();
        long_note.note = Some("x".repeat(MAX_NOTE_LEN + 2));
        let mut bad_offer = a.clone();
        bad_offer.offer = Some(AppOffer {
            credential_offer_uri: "javascript:alert(1)".into(),
            tx_code: None,
            expires: None,
            used: false,
        });
        for bad in [other_key, other_host, bad_agency, long_note, bad_offer] {
            assert!(!bad.is_well_formed(), "{bad:?}");
        }
    }

    #[test]
    fn final_states() {
        assert!(AppState::Issued.is_final() && AppState::Refused.is_final());
        assert!(AppState::Withdrawn.is_final());
        assert!(!AppState::Offered.is_final() && !AppState::AwaitingPrerequisites.is_final());
        assert_eq!(
            serde_json::to_value(AppState::ChangesRequested).expect("json"),
            json!("changes_requested")
        );
    }
}
