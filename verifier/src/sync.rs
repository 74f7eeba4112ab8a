//! Syncing the trust bundle from the registry (feature `service`): what `bizcred-verifier
//! sync` and the bank page's "Sync now" both call. The bundle is fetched from the registry's
//! `/bundle?from=N` (N: the entries already held), bounded by the core's `MAX_BUNDLE_LEN`, and
//! handed to [`VerifierDir::store_bundle`], which verifies it against the pinned anchor and
//! keeps it only when it applies.

use bizcred_core::trust::bundle::{BundleError, MAX_BUNDLE_LEN};
use bizcred_core::trust::state::TrustState;
use bizcred_core::ReasonCode;

use crate::store::{StoreError, VerifierDir};

/// How long (seconds) a sync waits for the registry.
pub const SYNC_TIMEOUT: u64 = 60;

/// Why the bundle could not be fetched or kept (the verifier's side; a bundle the registry
/// sent and the verifier refused is a [`BundleError`]).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No registry URL was given and none was configured at `init`.
    #[error("no registry URL is configured; give one (bizcred-verifier sync <registry-url>)")]
    NoRegistry,
    /// The registry could not be reached.
    #[error("cannot reach the registry at {url}: {cause}")]
    Unreachable {
        /// The registry.
        url: String,
        /// Why.
        cause: String,
    },
    /// The registry answered with an HTTP error.
    #[error("the registry at {url} refused the bundle request: HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Http {
        /// The registry.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's `error_description` or `error`, if it gave one.
        detail: Option<String>,
    },
    /// The answer is larger than any bundle, or not UTF-8 text.
    #[error("the registry at {url} sent no usable bundle: {problem}")]
    Malformed {
        /// The registry.
        url: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The data directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        match self {
            SyncError::NoRegistry => ReasonCode::ConfigInvalid,
            SyncError::Unreachable { .. } => ReasonCode::Unreachable,
            SyncError::Http { .. } => ReasonCode::HttpError,
            SyncError::Malformed { .. } => ReasonCode::BundleMalformed,
            SyncError::Store(e) => e.code(),
        }
    }
}

/// What a sync that reached the registry came to: the bundle accepted (the trust state and
/// how many entries it added), or refused with the reason (the state held is unchanged).
pub type Synced = Result<(TrustState, u64), BundleError>;

/// Fetches the registry's bundle for a verifier holding `from` entries.
pub async fn fetch(url: &str, from: u64) -> Result<String, SyncError> {
    let url = url.trim_end_matches('/');
    let unreachable = |e: reqwest::Error| SyncError::Unreachable {
        url: url.to_owned(),
        cause: e.to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(SYNC_TIMEOUT))
        .build()
        .map_err(unreachable)?;
    let mut resp = client
        .get(format!("{url}/bundle?from={from}"))
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    let too_large = || SyncError::Malformed {
        url: url.to_owned(),
        problem: "the answer is larger than any trust bundle",
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BUNDLE_LEN as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_BUNDLE_LEN {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error_description")
                    .or_else(|| v.get("detail"))
                    .or_else(|| v.get("error"))
                    .and_then(|d| d.as_str())
                    .map(|d| d.chars().take(500).collect())
            });
        return Err(SyncError::Http {
            url: url.to_owned(),
            status: status.as_u16(),
            detail,
        });
    }
    String::from_utf8(body).map_err(|_| SyncError::Malformed {
        url: url.to_owned(),
        problem: "the answer is not UTF-8 text",
    })
}

/// Syncs `dir` from `registry` (else the registry configured at `init`): fetches the bundle
/// continuing from the state held and keeps it when it verifies.
pub async fn sync(
    dir: &VerifierDir,
    registry: Option<&str>,
    now: i64,
) -> Result<Synced, SyncError> {
    let url = registry
        .map(str::to_owned)
        .or_else(|| dir.config().registry.clone())
        .ok_or(SyncError::NoRegistry)?;
    let from = dir.trust(now)?.map_or(0, |s| s.size());
    let text = fetch(&url, from).await?;
    Ok(dir.store_bundle(&text, now)?)
}
