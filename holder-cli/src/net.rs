//! Network steps of the wallet: fetching offers, metadata and requests, and resolving issuer
//! and verifier DIDs (did:key, did:jwk, and did:webvh by fetching and verifying its log).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use bizcred_core::keys::PublicKey;
use bizcred_core::webvh;

/// Largest response body the wallet reads.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// The HTTP client (no redirects: OpenID4VP says to treat them as errors).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn body(resp: reqwest::Response, what: &str) -> Result<String> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() > MAX_BODY {
        bail!("{what} is larger than {MAX_BODY} bytes");
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| anyhow!("{what} is not UTF-8"))?;
    if !status.is_success() {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let desc = v["error_description"]
            .as_str()
            .or(v["error"].as_str())
            .unwrap_or(text.as_str());
        bail!("{what}: {status}: {desc}");
    }
    Ok(text)
}

/// GET a URL as text.
pub(crate) async fn get_text(c: &reqwest::Client, url: &str, what: &str) -> Result<String> {
    let resp = c
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url} for {what}"))?;
    body(resp, what).await
}

/// GET a URL as JSON.
pub(crate) async fn get_json(c: &reqwest::Client, url: &str, what: &str) -> Result<Value> {
    let text = get_text(c, url, what).await?;
    serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))
}

/// POST a form, expecting JSON back.
pub(crate) async fn post_form(
    c: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    what: &str,
) -> Result<Value> {
    let resp = c
        .post(url)
        .form(form)
        .send()
        .await
        .with_context(|| format!("cannot reach {url} for {what}"))?;
    let text = body(resp, what).await?;
    serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))
}

/// POST JSON with a bearer token, expecting JSON back.
pub(crate) async fn post_json(
    c: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    json: &Value,
    what: &str,
) -> Result<Value> {
    let mut req = c.post(url).json(json);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url} for {what}"))?;
    let text = body(resp, what).await?;
    serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))
}

/// Resolves the key named by `kid` (a DID URL) as the DID stood at `at`. For did:webvh the
/// log is fetched from where the DID says and verified entry by entry; with `assertion`, the
/// key must be an assertion method (a credential or status list signer).
pub(crate) async fn resolve_key(
    c: &reqwest::Client,
    kid: &str,
    at: i64,
    now: i64,
    assertion: bool,
) -> Result<PublicKey> {
    if kid.starts_with("did:key:") || kid.starts_with("did:jwk:") {
        return bizcred_core::did::resolve_key(kid).map_err(|e| anyhow!("{kid}: {e}"));
    }
    if !kid.starts_with("did:webvh:") {
        bail!("cannot resolve {kid}: only did:key, did:jwk and did:webvh are supported");
    }
    let did = kid.split('#').next().unwrap_or(kid);
    let parsed = webvh::WebvhDid::parse(did)?;
    let log = get_text(c, &parsed.log_url(), "the issuer's DID log").await?;
    let witness = match c.get(parsed.witness_url()).send().await {
        Ok(r) if r.status().is_success() => r.text().await.ok(),
        _ => None,
    };
    let verified = webvh::verify_log(&log, witness.as_deref(), now);
    let version = verified.at_time(at).ok_or_else(|| match &verified.error {
        Some(e) => anyhow!("the DID log of {did} does not verify: {e}"),
        None => anyhow!("{did} did not exist at that time"),
    })?;
    if version.id() != did && !verified.versions.iter().any(|v| v.id() == did) {
        bail!("the log at {} is not the log of {did}", parsed.log_url());
    }
    if assertion && !version.has_relationship("assertionMethod", kid) {
        bail!("{kid} was not an assertion key of {did} at that time");
    }
    version
        .verification_method(kid)
        .ok_or_else(|| anyhow!("{kid} is not a key of {did} at that time"))
}
