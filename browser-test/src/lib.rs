//! The browser tests' harness: headless Chromium driven over WebDriver (`chromedriver`, the
//! `fantoccini` client), helpers a test reads like a user's task (fill a field by its label,
//! click a button by its text, wait for a sentence), the axe-core accessibility check and
//! screenshots.
//!
//! ```no_run
//! # async fn task() -> Result<(), bizcred_browser_test::Error> {
//! use bizcred_browser_test::{Browser, Lang};
//! // None: no Chromium on this machine; the harness said so loudly (an error under CI=true).
//! let Some(browser) = Browser::start().await? else { return Ok(()) };
//! let page = browser.session(Lang::Fr).await?;
//! page.goto("http://127.0.0.1:8080/desk").await?;
//! page.fill("Nom d'utilisateur", "clerk").await?;
//! page.click_button("Se connecter").await?;
//! page.wait_for_text("File de travail").await?;
//! page.screenshot("desk-queue").await?;
//! page.assert_accessible("desk-queue").await?;
//! page.close().await?;
//! # Ok(()) }
//! ```
//!
//! What is looked for, and the variables that point elsewhere: `chromedriver` on `PATH` or
//! `BIZCRED_CHROMEDRIVER`; Chromium at `/usr/bin/chromium` or `BIZCRED_CHROMIUM`; axe-core at
//! `browser-test/node_modules/axe-core/axe.min.js` (`npm ci --prefix browser-test`) or
//! `BIZCRED_AXE`; screenshots go to `target/desk-screenshots/` or `BIZCRED_SCREENSHOTS`. A
//! missing browser or axe skips loudly; under `CI=true` it is an error. A variable that names a
//! file that does not exist is always an error.

mod axe;
mod browser;
mod page;
mod screenshot;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub use axe::{assert_accessible, axe_check, AxeReport, Violation, AXE_TAGS};
pub use browser::{Browser, Lang, CHROMIUM_ARGS};
pub use fantoccini::cookies::Cookie;
pub use fantoccini::Client;
pub use page::{Page, DEFAULT_TIMEOUT};
pub use screenshot::{screenshot, screenshots_dir};

/// What can go wrong driving the browser. These are test failures, not refusals of the product,
/// so they carry no reason code: the message says what was looked for and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool the browser tests need is missing, under `CI=true` or where a variable names it.
    #[error("{what} not found: {detail}")]
    Missing {
        /// The tool (chromedriver, Chromium, axe-core).
        what: &'static str,
        /// Where it was looked for and how to install it.
        detail: String,
    },
    /// chromedriver did not start or did not listen, or refused to open a session (for
    /// example for a Chromium of another version); the message quotes its log.
    #[error("chromedriver did not start: {0}")]
    Driver(String),
    /// A WebDriver command failed.
    #[error("{action} on {url}: {source}")]
    Command {
        /// What the test asked for.
        action: String,
        /// The page's address when it failed.
        url: String,
        /// The WebDriver error.
        source: Box<fantoccini::error::CmdError>,
    },
    /// Nothing on the page matched what a helper looked for.
    #[error("no {what} on {url}")]
    NotFound {
        /// What was looked for, with the text or name.
        what: String,
        /// The page's address.
        url: String,
    },
    /// Several things matched where one was meant.
    #[error("{count} elements match {what} on {url}; be more specific")]
    Ambiguous {
        /// What was looked for.
        what: String,
        /// How many matched.
        count: usize,
        /// The page's address.
        url: String,
    },
    /// A wait ended without what was awaited.
    #[error(
        "timed out after {waited:?} waiting for {what} on {url}; the page shows: {excerpt:?}{}",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    Timeout {
        /// What was awaited.
        what: String,
        /// The page's address when the wait ended.
        url: String,
        /// How long it waited.
        waited: Duration,
        /// The start of the page's text, to see what it showed instead.
        excerpt: String,
        /// The last WebDriver error while polling (a page being replaced), if any.
        last_error: Option<String>,
    },
    /// A script answered something the harness did not expect.
    #[error("unexpected answer from the page's script ({context}): {detail}")]
    Script {
        /// Which helper ran the script.
        context: String,
        /// What came back.
        detail: String,
    },
    /// axe-core found WCAG violations (`assert_accessible`); the message lists them.
    #[error("{0}")]
    Accessibility(Box<AxeReport>),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// The file and what was done with it.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether this run is CI (`CI=true`, as `.ci/run` sets), where a missing tool is a failure.
pub fn under_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Says on the terminal, past the test harness's output capture (which only takes `print!`
/// and `eprint!`), that browser checks did not run, so a skip is never silent.
fn shout(message: &str) {
    let bar = "=".repeat(78);
    // Writing to the terminal can only fail when stderr is closed; there is no one to tell then.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n{bar}\nSKIPPED (browser tests): {message}\n{bar}"
    );
}

/// A tool that is absent: an error under CI, else a loud skip (`Ok(None)`).
fn missing<T>(what: &'static str, detail: String) -> Result<Option<T>> {
    if under_ci() {
        return Err(Error::Missing { what, detail });
    }
    shout(&format!("{what} not found: {detail}"));
    Ok(None)
}

/// The file a variable names (which must exist), else `default` when it exists, else `None`.
fn locate(var: &str, what: &'static str, default: Option<PathBuf>) -> Result<Option<PathBuf>> {
    if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Ok(Some(path));
        }
        return Err(Error::Missing {
            what,
            detail: format!("{var}={} is not a file", path.display()),
        });
    }
    Ok(default.filter(|p| p.is_file()))
}
