//! axe-core, from the npm registry (pinned by `browser-test/package-lock.json`), run in the page.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fantoccini::Client;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{locate, missing, Error, Result};

/// The rules run: WCAG 2.0 and 2.1, levels A and AA (what AODA requires of public bodies).
pub const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// The page may have defined `axe` itself only if it is axe; this tells whether to inject.
const HAS_AXE: &str =
    "return typeof window.axe === 'object' && typeof window.axe.run === 'function';";

/// Runs axe on the whole document and answers only the violations, each node as its CSS
/// selector (frames and shadow roots joined with ` >>> `).
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
const selector = t => Array.isArray(t) ? t.join(' >>> ') : String(t);
window.axe.run(document, {
  runOnly: { type: 'tag', values: arguments[0] },
  resultTypes: ['violations'],
}).then(r => done({
  ok: true,
  version: window.axe.version,
  violations: r.violations.map(v => ({
    id: v.id, impact: v.impact || null, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => n.target.map(selector).join(' ')),
  })),
})).catch(e => done({ ok: false, error: String((e && e.stack) || e) }));
"#;

/// One rule axe-core found broken, with where.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Violation {
    /// The rule's id (`label`, `color-contrast`, `html-has-lang`, ...).
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    /// What the rule asks, in a sentence.
    pub help: String,
    /// The rule's documentation.
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    /// CSS selectors of the failing elements.
    pub nodes: Vec<String>,
}

/// What axe-core found on one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxeReport {
    /// The name the test gave the page.
    pub page: String,
    /// The page's address.
    pub url: String,
    /// The axe-core version that ran.
    pub axe_version: String,
    /// Every violation (empty: the page passes).
    pub violations: Vec<Violation>,
}

impl AxeReport {
    /// No violation.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violated rules' ids, in axe's order.
    pub fn ids(&self) -> Vec<&str> {
        self.violations.iter().map(|v| v.id.as_str()).collect()
    }

    /// The violation of rule `id`, if found.
    pub fn violation(&self, id: &str) -> Option<&Violation> {
        self.violations.iter().find(|v| v.id == id)
    }

    /// Panics, listing every violation, unless the page is clean.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "{self}");
    }
}

impl fmt::Display for AxeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "axe-core {}: {} WCAG 2.1 A/AA violation(s) on {} ({})",
            self.axe_version,
            self.violations.len(),
            self.page,
            self.url
        )?;
        for v in &self.violations {
            write!(
                f,
                "\n  - {} [{}]: {} ({})",
                v.id,
                v.impact.as_deref().unwrap_or("no impact given"),
                v.help,
                v.help_url
            )?;
            for node in &v.nodes {
                write!(f, "\n      at {node}")?;
            }
        }
        Ok(())
    }
}

/// Runs axe-core's WCAG 2.1 A and AA rules ([`AXE_TAGS`]) in the page the client shows, after
/// injecting it (through WebDriver, so the page's Content-Security-Policy does not stop it).
/// `Ok(None)` when axe-core is not installed, said loudly; under `CI=true` an error.
pub async fn axe_check(client: &Client, page_name: &str) -> Result<Option<AxeReport>> {
    let Some(source) = axe_source()? else {
        return Ok(None);
    };
    let url = client
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "(address unknown)".into());
    let cmd = |action: &str| {
        let url = url.clone();
        let action = format!("{action} on page {page_name:?}");
        move |source| Error::Command {
            action,
            url,
            source: Box::new(source),
        }
    };
    let present = client
        .execute(HAS_AXE, vec![])
        .await
        .map_err(cmd("looking for axe-core"))?;
    if present != Value::Bool(true) {
        let script = format!("{source}\n;{HAS_AXE}");
        let injected = client
            .execute(&script, vec![])
            .await
            .map_err(cmd("injecting axe-core"))?;
        if injected != Value::Bool(true) {
            return Err(Error::Script {
                context: format!("injecting axe-core into {page_name:?} ({url})"),
                detail: format!("window.axe is not defined afterwards ({injected})"),
            });
        }
    }
    let answer = client
        .execute_async(RUN_AXE, vec![json!(AXE_TAGS)])
        .await
        .map_err(cmd("running axe-core"))?;
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
        version: Option<String>,
        violations: Option<Vec<Violation>>,
        error: Option<String>,
    }
    let parsed: Answer = serde_json::from_value(answer.clone()).map_err(|e| Error::Script {
        context: format!("axe-core on {page_name:?} ({url})"),
        detail: format!("{e}: {answer}"),
    })?;
    match parsed {
        Answer {
            ok: true,
            version: Some(axe_version),
            violations: Some(violations),
            ..
        } => Ok(Some(AxeReport {
            page: page_name.to_string(),
            url,
            axe_version,
            violations,
        })),
        other => Err(Error::Script {
            context: format!("axe-core on {page_name:?} ({url})"),
            detail: other.error.unwrap_or_else(|| answer.to_string()),
        }),
    }
}

/// [`axe_check`], failing with [`Error::Accessibility`] (which lists every violation) when the
/// page has any. A skip (axe-core missing) passes, loudly; under `CI=true` it is an error.
pub async fn assert_accessible(client: &Client, page_name: &str) -> Result<()> {
    match axe_check(client, page_name).await? {
        Some(report) if !report.is_clean() => Err(Error::Accessibility(Box::new(report))),
        _ => Ok(()),
    }
}

/// axe.min.js, read once: `BIZCRED_AXE`, else `browser-test/node_modules/axe-core/axe.min.js`.
fn axe_source() -> Result<Option<&'static str>> {
    static SOURCE: OnceLock<String> = OnceLock::new();
    if let Some(source) = SOURCE.get() {
        return Ok(Some(source.as_str()));
    }
    let default = default_axe_path();
    let Some(path) = locate("BIZCRED_AXE", "axe-core", Some(default.clone()))? else {
        return missing(
            "axe-core",
            format!(
                "{} is missing and BIZCRED_AXE is not set; run `npm ci --prefix browser-test` \
                 (.ci/run does); the accessibility checks did not run",
                default.display()
            ),
        );
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    Ok(Some(SOURCE.get_or_init(|| text).as_str()))
}

fn default_axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in this binary that reads `BIZCRED_AXE` (it sets it).
    #[test]
    fn axe_is_found_where_the_variable_says_or_it_is_an_error() {
        std::env::set_var("BIZCRED_AXE", "/nonexistent/axe.min.js");
        match axe_source() {
            Err(Error::Missing { what, detail }) => {
                assert_eq!(what, "axe-core");
                assert!(detail.contains("BIZCRED_AXE"), "{detail}");
            }
            other => panic!("a wrong BIZCRED_AXE: {other:?}"),
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("axe.min.js");
        std::fs::write(&file, "window.axe = {};").expect("write");
        std::env::set_var("BIZCRED_AXE", &file);
        assert_eq!(axe_source().ok().flatten(), Some("window.axe = {};"));
    }

    #[test]
    fn the_default_is_the_pinned_npm_package() {
        assert!(default_axe_path().ends_with("browser-test/node_modules/axe-core/axe.min.js"));
    }
}
