//! A credential's claims as labelled rows, in the order and with the labels of the SD-JWT VC
//! type metadata (`en-CA`, `fr-CA`), for every page that shows claims (the bank page's verdict,
//! the repository's business pages).

use serde_json::{Map, Value};

use bizcred_schemas::{CredentialType, TypeMetadata};

use crate::i18n::{Lang, Tr};

/// Most rows one credential gives (a hostile credential cannot make a page without end).
pub const MAX_CLAIM_ROWS: usize = 500;

/// One labelled item of information a credential states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    /// Its label from the type metadata (the member's name where the metadata has none).
    pub label: String,
    /// Its value, as the page's formatter wrote it.
    pub value: String,
}

/// The metadata language of a page language.
pub fn schema_lang(l: Lang) -> bizcred_schemas::Lang {
    match l {
        Lang::En => bizcred_schemas::Lang::En,
        Lang::Fr => bizcred_schemas::Lang::Fr,
    }
}

/// The rows of `claims` of a credential of type `vct`, top-level claims in the order the type
/// metadata lists them; nested members and list items get their own row. `scalar` writes a
/// value (given the name of the claim or member that holds it) in the page's words.
pub fn claim_rows(
    t: &Tr,
    vct: &str,
    claims: &Map<String, Value>,
    scalar: &dyn Fn(&str, &Value) -> String,
) -> Vec<ClaimRow> {
    let meta = CredentialType::from_vct(vct).map(|c| c.metadata());
    let rank = |k: &str| {
        meta.and_then(|m| {
            m.claims
                .iter()
                .position(|c| c.path.first().and_then(Value::as_str) == Some(k))
        })
        .unwrap_or(usize::MAX)
    };
    let mut keys: Vec<(&String, &Value)> = claims.iter().collect();
    keys.sort_by_key(|(k, _)| rank(k));
    let mut out = Vec::new();
    for (k, v) in keys {
        let mut path = vec![Value::from(k.as_str())];
        let label = meta
            .and_then(|m| m.label(&path, schema_lang(t.lang)))
            .unwrap_or(k.as_str())
            .to_owned();
        rows(t, meta, &mut path, label, v, scalar, &mut out);
    }
    out
}

fn rows(
    t: &Tr,
    meta: Option<&TypeMetadata>,
    path: &mut Vec<Value>,
    label: String,
    v: &Value,
    scalar: &dyn Fn(&str, &Value) -> String,
    out: &mut Vec<ClaimRow>,
) {
    if out.len() >= MAX_CLAIM_ROWS {
        return;
    }
    let key = path.last().and_then(Value::as_str).unwrap_or("").to_owned();
    match v {
        Value::Object(m) => {
            for (k, item) in m {
                path.push(Value::from(k.as_str()));
                let own = meta
                    .and_then(|m| m.label(path, schema_lang(t.lang)))
                    .unwrap_or(k.as_str())
                    .to_owned();
                rows(t, meta, path, format!("{label} – {own}"), item, scalar, out);
                path.pop();
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            let joined: Vec<String> = items.iter().map(|i| scalar(&key, i)).collect();
            out.push(ClaimRow {
                label,
                value: joined.join(", "),
            });
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Value::from(i));
                rows(
                    t,
                    meta,
                    path,
                    format!("{label} {}", i + 1),
                    item,
                    scalar,
                    out,
                );
                path.pop();
            }
        }
        other => out.push(ClaimRow {
            label,
            value: scalar(&key, other),
        }),
    }
}
