//! The disclosure history: what was disclosed, to whom, when, over which channel.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One disclosure (or a declined request).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// When (seconds since the epoch).
    pub time: i64,
    /// The verifier's client id.
    pub verifier: String,
    /// The response URI, `file <path>`, or `declined`.
    pub channel: String,
    /// What was disclosed: `{"credential", "vct", "claims"}` objects.
    pub credentials: Vec<Disclosed>,
    /// The verifier's verdict, `sent`, `written`, `declined` or `refused (<status>)`.
    pub outcome: String,
}

/// What was disclosed from one credential.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Disclosed {
    /// The wallet's credential id.
    pub credential: String,
    /// The credential type.
    pub vct: String,
    /// The disclosed claim paths (JSON arrays).
    pub claims: Vec<Vec<Value>>,
}
