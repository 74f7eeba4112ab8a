//! Network steps of the wallet: the HTTP client, fetching JSON and text with bounded bodies,
//! and resolving issuer and verifier keys from their DIDs (did:key, did:jwk, and did:webvh by
//! fetching and verifying its log).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use bizcred_core::keys::PublicKey;
use bizcred_core::webvh;

use crate::error::{ResolveProblem, WalletError};

/// Largest response body the wallet reads.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The wallet's HTTP client: a timeout, and no redirects (OpenID4VP says to treat them as
/// errors). A client that cannot be built is an error, never a default client.
pub fn client() -> Result<reqwest::Client, WalletError> {
    client_from(reqwest::Client::builder())
}

/// Builds the client from `builder`, adding the wallet's timeout and redirect policy.
pub fn client_from(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, WalletError> {
    builder
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(WalletError::HttpClient)
}

/// An OAuth-style error body (`error`, `error_description`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error code.
    pub error: Option<String>,
    /// The human description.
    pub error_description: Option<String>,
}

impl ErrorBody {
    /// Reads an error body; a body that is not an OAuth error object has neither member.
    pub fn parse(text: &str) -> ErrorBody {
        // Not JSON, or JSON of another shape: the caller shows the raw text instead.
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// A response read in full (bounded), with its status and the DPoP headers (RFC 9449): the
/// next nonce (`DPoP-Nonce`) and the `WWW-Authenticate` challenge.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) text: String,
    pub(crate) dpop_nonce: Option<String>,
    pub(crate) challenge: Option<String>,
}

pub(crate) async fn read(
    resp: reqwest::Response,
    what: &'static str,
    url: &str,
) -> Result<Answer, WalletError> {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(1024).collect::<String>())
    };
    let dpop_nonce = header("dpop-nonce");
    let challenge = header("www-authenticate");
    if resp.content_length().is_some_and(|l| l > MAX_BODY as u64) {
        return Err(WalletError::TooLarge {
            what,
            limit: MAX_BODY,
        });
    }
    // Read chunk by chunk so a body without (or lying about) its length stops at the bound.
    let mut resp = resp;
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| WalletError::Unreachable {
            what,
            url: url.to_owned(),
            source,
        })?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(WalletError::TooLarge {
                what,
                limit: MAX_BODY,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes).map_err(|_| WalletError::NotUtf8 { what })?;
    Ok(Answer {
        status,
        text,
        dpop_nonce,
        challenge,
    })
}

/// Turns an error status into [`WalletError::Http`].
pub(crate) fn check(a: Answer, what: &'static str) -> Result<String, WalletError> {
    if (200..300).contains(&a.status) {
        return Ok(a.text);
    }
    let e = ErrorBody::parse(&a.text);
    Err(WalletError::Http {
        what,
        status: a.status,
        error: e.error,
        description: e.error_description,
        body: a.text,
    })
}

pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    what: &'static str,
    url: &str,
) -> Result<Answer, WalletError> {
    let resp = req
        .send()
        .await
        .map_err(|source| WalletError::Unreachable {
            what,
            url: url.to_owned(),
            source,
        })?;
    read(resp, what, url).await
}

/// Parses JSON into a typed model.
pub fn parse_json<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T, WalletError> {
    serde_json::from_str(text).map_err(|source| WalletError::BadJson { what, source })
}

/// GET a URL as text.
pub async fn get_text(
    c: &reqwest::Client,
    url: &str,
    what: &'static str,
) -> Result<String, WalletError> {
    check(send(c.get(url), what, url).await?, what)
}

/// GET a URL as a typed JSON model.
pub async fn get_json<T: DeserializeOwned>(
    c: &reqwest::Client,
    url: &str,
    what: &'static str,
) -> Result<T, WalletError> {
    parse_json(&get_text(c, url, what).await?, what)
}

/// POST JSON with a bearer token, expecting a typed JSON model back.
pub async fn post_json<T: DeserializeOwned>(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    json: &serde_json::Value,
    what: &'static str,
) -> Result<T, WalletError> {
    let mut req = c.post(url).json(json);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    parse_json(&check(send(req, what, url).await?, what)?, what)
}

/// POST with an empty body, expecting a typed JSON model back.
pub async fn post_empty<T: DeserializeOwned>(
    c: &reqwest::Client,
    url: &str,
    what: &'static str,
) -> Result<T, WalletError> {
    parse_json(&check(send(c.post(url), what, url).await?, what)?, what)
}

/// Resolves the key named by `kid` (a DID URL) as the DID stood at `at`. For did:webvh the
/// log is fetched from where the DID says and verified entry by entry; with `assertion`, the
/// key must be an assertion method (a credential or status list signer).
pub async fn resolve_key(
    c: &reqwest::Client,
    kid: &str,
    at: i64,
    now: i64,
    assertion: bool,
) -> Result<PublicKey, WalletError> {
    let fail = |problem| WalletError::Resolve {
        kid: kid.to_owned(),
        problem,
    };
    if kid.starts_with("did:key:") || kid.starts_with("did:jwk:") {
        return bizcred_core::did::resolve_key(kid)
            .map_err(|e| fail(ResolveProblem::Malformed(e.to_string())));
    }
    if !kid.starts_with("did:webvh:") {
        return Err(fail(ResolveProblem::UnsupportedMethod));
    }
    let did = kid.split('#').next().unwrap_or(kid);
    let parsed =
        webvh::WebvhDid::parse(did).map_err(|e| fail(ResolveProblem::Malformed(e.to_string())))?;
    let log = get_text(c, &parsed.log_url(), "the issuer's DID log").await?;
    // The witness file exists only for DIDs with witnesses: 404 means none. Any other failure
    // is an error (a DID that needs witnesses would otherwise fail with a misleading reason).
    let witness_url = parsed.witness_url();
    let w = send(c.get(&witness_url), "the DID's witness file", &witness_url).await?;
    let witness = match w.status {
        404 => None,
        _ => Some(check(w, "the DID's witness file")?),
    };
    let verified = webvh::verify_log(&log, witness.as_deref(), now);
    let version = verified.at_time(at).ok_or_else(|| match &verified.error {
        Some(e) => fail(ResolveProblem::LogDoesNotVerify(e.to_string())),
        None => fail(ResolveProblem::NotYetCreated),
    })?;
    if version.id() != did && !verified.versions.iter().any(|v| v.id() == did) {
        return Err(fail(ResolveProblem::OtherLog));
    }
    if assertion && !version.has_relationship("assertionMethod", kid) {
        return Err(fail(ResolveProblem::NotAssertionKey));
    }
    version
        .verification_method(kid)
        .ok_or_else(|| fail(ResolveProblem::NoSuchKey))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_a_default_client() {
        // rustls cannot speak TLS 1.0: the builder fails, and so must the wallet.
        let builder = reqwest::Client::builder()
            .min_tls_version(reqwest::tls::Version::TLS_1_0)
            .max_tls_version(reqwest::tls::Version::TLS_1_0);
        match client_from(builder) {
            Err(e) => assert_eq!(e.code().as_str(), "HTTP_CLIENT_FAILED"),
            Ok(_) => panic!("a failed client build fell back to a client"),
        }
    }

    #[test]
    fn the_wallet_client_builds() {
        assert!(client().is_ok());
    }

    #[test]
    fn error_bodies_are_read_or_left_empty() {
        let e = ErrorBody::parse(r#"{"error":"invalid_request","error_description":"bad"}"#);
        assert_eq!(e.error.as_deref(), Some("invalid_request"));
        assert_eq!(e.error_description.as_deref(), Some("bad"));
        assert_eq!(ErrorBody::parse("<html>"), ErrorBody::default());
    }
}
