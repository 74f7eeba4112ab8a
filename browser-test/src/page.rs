//! One browser session, with the helpers a test reads as a user's task.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::axe::{self, AxeReport};
use crate::browser::Lang;
use crate::{screenshot, Error, Result};

/// How long `wait_for_*` wait unless [`Page::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);
/// How much of the page's text a timeout error quotes.
const EXCERPT_CHARS: usize = 600;
/// The key of a DOM element in a WebDriver answer (W3C WebDriver, "web element identifier").
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Finds form controls by the text of their `<label>` (whole text first, then a part of it),
/// else by `aria-label`, `name` or `id`. Whitespace is collapsed before comparing.
const FIND_FIELD: &str = r#"
const key = arguments[0];
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const want = norm(key);
const labels = Array.from(document.querySelectorAll('label'));
let found = new Set();
for (const l of labels) if (l.control && norm(l.textContent) === want) found.add(l.control);
if (found.size === 0)
  for (const l of labels) if (l.control && want && norm(l.textContent).includes(want)) found.add(l.control);
if (found.size === 0)
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, [contenteditable]'))
    if (norm(el.getAttribute('aria-label')) === want || el.getAttribute('name') === key || el.id === key)
      found.add(el);
return Array.from(found);
"#;

/// Finds visible buttons or links (`arguments[1]` is the selector) whose visible text (a
/// button input's value) is the given text, else whose `aria-label` is.
const FIND_BY_TEXT: &str = r#"
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const want = norm(arguments[0]);
const all = Array.from(document.querySelectorAll(arguments[1]))
  .filter(el => el.getClientRects().length > 0);
const text = el => el.tagName === 'INPUT' ? el.value : el.innerText;
let found = all.filter(el => norm(text(el)) === want);
if (found.length === 0) found = all.filter(el => norm(el.getAttribute('aria-label')) === want);
return found;
"#;

const BUTTONS: &str =
    "button, input[type=submit], input[type=button], input[type=reset], [role=button]";
const LINKS: &str = "a[href]";

/// One browser session: its own profile, cookies and language. Close it with
/// [`Page::close`]; a page merely dropped is ended when its [`crate::Browser`] is.
#[derive(Debug)]
pub struct Page {
    client: Client,
    lang: Lang,
    timeout: Duration,
    /// Removed after the client above is dropped (fields drop in order).
    profile: tempfile::TempDir,
}

impl Page {
    pub(crate) fn new(client: Client, lang: Lang, profile: tempfile::TempDir) -> Self {
        Page {
            client,
            lang,
            timeout: DEFAULT_TIMEOUT,
            profile,
        }
    }

    /// The same page whose waits give up after `timeout` (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The fantoccini client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The language this session asks pages for.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The session's profile directory (fresh, removed on close).
    pub fn profile_dir(&self) -> &std::path::Path {
        self.profile.path()
    }

    /// Ends the session (Chromium quits) and removes its profile.
    pub async fn close(self) -> Result<()> {
        let Page {
            client, profile, ..
        } = self;
        client.close().await.map_err(|source| Error::Command {
            action: "closing the session".into(),
            url: "-".into(),
            source: Box::new(source),
        })?;
        drop(profile);
        Ok(())
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(|source| Error::Command {
                action: format!("opening {url}"),
                url: url.into(),
                source: Box::new(source),
            })
    }

    /// The address the browser shows now.
    pub async fn current_url(&self) -> Result<String> {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .map_err(|source| Error::Command {
                action: "reading the address".into(),
                url: "-".into(),
                source: Box::new(source),
            })
    }

    /// Types `value` into the field whose label says `field` (or named, or with that id),
    /// after clearing it, as a user would.
    pub async fn fill(&self, field: &str, value: &str) -> Result<()> {
        let el = self.field(field).await?;
        let what = format!("filling field {field:?}");
        self.cmd(&what, el.clear()).await?;
        self.cmd(&what, el.send_keys(value)).await
    }

    /// Sets the field's value directly (input and change events fire), past `maxlength` and
    /// without typing: for oversized or hostile input.
    pub async fn set_value(&self, field: &str, value: &str) -> Result<()> {
        let el = self.field(field).await?;
        let script = "const el = arguments[0]; el.value = arguments[1];\
            el.dispatchEvent(new Event('input', {bubbles: true}));\
            el.dispatchEvent(new Event('change', {bubbles: true}));";
        self.execute(script, vec![element_json(&el)?, json!(value)])
            .await
            .map(|_| ())
    }

    /// Chooses the option whose visible text is `option` in the select labelled `field`.
    pub async fn select(&self, field: &str, option: &str) -> Result<()> {
        let el = self.field(field).await?;
        self.cmd(
            &format!("choosing {option:?} in {field:?}"),
            el.select_by_label(option),
        )
        .await
    }

    /// Ticks (`true`) or clears (`false`) the checkbox or radio button labelled `field`.
    pub async fn check(&self, field: &str, on: bool) -> Result<()> {
        let el = self.field(field).await?;
        let what = format!("ticking {field:?}");
        if self.cmd(&what, el.is_selected()).await? != on {
            self.cmd(&what, el.click()).await?;
        }
        Ok(())
    }

    /// Clicks the visible button whose text is `text` (a button input's value, else its
    /// `aria-label`); exactly one must match.
    pub async fn click_button(&self, text: &str) -> Result<()> {
        let el = self
            .one(
                FIND_BY_TEXT,
                vec![json!(text), json!(BUTTONS)],
                format!("button {text:?}"),
            )
            .await?;
        self.cmd(&format!("clicking button {text:?}"), el.click())
            .await
    }

    /// Clicks the visible link whose text is `text`; exactly one must match.
    pub async fn click_link(&self, text: &str) -> Result<()> {
        let el = self
            .one(
                FIND_BY_TEXT,
                vec![json!(text), json!(LINKS)],
                format!("link {text:?}"),
            )
            .await?;
        self.cmd(&format!("following link {text:?}"), el.click())
            .await
    }

    /// Submits the form of the field `field` (its label, name or id) as pressing Enter in it
    /// would: the form's checks run and the default button's submission happens.
    pub async fn submit(&self, field: &str) -> Result<()> {
        let el = self.field(field).await?;
        let done = self
            .execute(
                "const f = arguments[0].form; if (!f) return false; f.requestSubmit(); return true;",
                vec![element_json(&el)?],
            )
            .await?;
        if done != Value::Bool(true) {
            return Err(Error::NotFound {
                what: format!("form around field {field:?}"),
                url: self.url_or_dash().await,
            });
        }
        Ok(())
    }

    /// The page's visible text (`document.body.innerText`).
    pub async fn text(&self) -> Result<String> {
        let text = self
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await?;
        match text {
            Value::String(s) => Ok(s),
            other => Err(Error::Script {
                context: "reading the page's text".into(),
                detail: other.to_string(),
            }),
        }
    }

    /// The visible text of the one element matching the CSS selector `css`.
    pub async fn text_of(&self, css: &str) -> Result<String> {
        let el = match self.client.find(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) if e.is_no_such_element() => {
                return Err(Error::NotFound {
                    what: format!("element {css:?}"),
                    url: self.url_or_dash().await,
                })
            }
            Err(source) => return Err(self.fail(format!("finding {css:?}"), source).await),
        };
        self.cmd(&format!("reading {css:?}"), el.text()).await
    }

    /// Waits until the page's visible text contains `text` (across page loads), at most the
    /// page's timeout; the error names the text, the address and what the page showed.
    pub async fn wait_for_text(&self, text: &str) -> Result<()> {
        let start = Instant::now();
        let mut last_error = None;
        loop {
            match self.text().await {
                Ok(now) if now.contains(text) => return Ok(()),
                Ok(_) => {}
                // A page being replaced answers errors for a moment.
                Err(e) => last_error = Some(e.to_string()),
            }
            if start.elapsed() >= self.timeout {
                return Err(self
                    .timeout_error(format!("the text {text:?}"), start, last_error)
                    .await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the address contains `part` (a path, a query), at most the page's timeout.
    pub async fn wait_for_url(&self, part: &str) -> Result<()> {
        let start = Instant::now();
        let mut last_error = None;
        loop {
            match self.current_url().await {
                Ok(url) if url.contains(part) => return Ok(()),
                Ok(_) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
            if start.elapsed() >= self.timeout {
                return Err(self
                    .timeout_error(format!("an address containing {part:?}"), start, last_error)
                    .await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The cookie `name` the browser holds for the current page, `None` when it has none.
    /// `HttpOnly` cookies are included: WebDriver sees what scripts cannot.
    pub async fn cookie(&self, name: &str) -> Result<Option<Cookie<'static>>> {
        match self.client.get_named_cookie(name).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_no_such_cookie() => Ok(None),
            Err(source) => Err(self.fail(format!("reading cookie {name:?}"), source).await),
        }
    }

    /// Every cookie the browser holds for the current page.
    pub async fn cookies(&self) -> Result<Vec<Cookie<'static>>> {
        self.cmd("reading the cookies", self.client.get_all_cookies())
            .await
    }

    /// Adds or replaces a cookie for the current page's site (to alter one: read it with
    /// [`Page::cookie`], change its value, set it back).
    pub async fn set_cookie(&self, cookie: Cookie<'static>) -> Result<()> {
        let what = format!("setting cookie {:?}", cookie.name());
        self.cmd(&what, self.client.add_cookie(cookie)).await
    }

    /// Deletes the cookie `name` (an expired or stolen session, as the server will see it).
    pub async fn delete_cookie(&self, name: &str) -> Result<()> {
        self.cmd(
            &format!("deleting cookie {name:?}"),
            self.client.delete_cookie(name),
        )
        .await
    }

    /// Runs `script` as the body of a function in the page (`arguments` holds `args`); what it
    /// returns comes back as JSON. Not subject to the page's Content-Security-Policy.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd("running a script", self.client.execute(script, args))
            .await
    }

    /// Like [`Page::execute`], for a script that calls its last argument with its result.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "running an async script",
            self.client.execute_async(script, args),
        )
        .await
    }

    /// Writes a PNG of the window to the screenshots folder as `<name>.<lang>.png`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        screenshot::screenshot(&self.client, &format!("{name}.{}", self.lang)).await
    }

    /// Runs axe-core's WCAG 2.1 A and AA rules on the page (`page_name` and the language name
    /// it in the report). `None` when axe-core is missing (said loudly; an error under CI).
    pub async fn axe_check(&self, page_name: &str) -> Result<Option<AxeReport>> {
        axe::axe_check(&self.client, &format!("{page_name} ({})", self.lang)).await
    }

    /// [`Page::axe_check`], failing with every violation listed when there is any.
    pub async fn assert_accessible(&self, page_name: &str) -> Result<()> {
        axe::assert_accessible(&self.client, &format!("{page_name} ({})", self.lang)).await
    }

    async fn field(&self, field: &str) -> Result<Element> {
        self.one(
            FIND_FIELD,
            vec![json!(field)],
            format!("field labelled or named {field:?}"),
        )
        .await
    }

    /// Runs a finder script and wants exactly one element back.
    async fn one(&self, script: &str, args: Vec<Value>, what: String) -> Result<Element> {
        let found = self.execute(script, args).await?;
        let Value::Array(items) = found else {
            return Err(Error::Script {
                context: format!("finding {what}"),
                detail: found.to_string(),
            });
        };
        match items.as_slice() {
            [] => Err(Error::NotFound {
                what,
                url: self.url_or_dash().await,
            }),
            [item] => {
                let Some(id) = item.get(ELEMENT_KEY).and_then(Value::as_str) else {
                    return Err(Error::Script {
                        context: format!("finding {what}"),
                        detail: item.to_string(),
                    });
                };
                Ok(Element::from_element_id(
                    self.client.clone(),
                    id.to_string().into(),
                ))
            }
            many => Err(Error::Ambiguous {
                what,
                count: many.len(),
                url: self.url_or_dash().await,
            }),
        }
    }

    /// Awaits a WebDriver command, naming the action and the page when it fails.
    async fn cmd<T>(
        &self,
        action: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, CmdError>>,
    ) -> Result<T> {
        match fut.await {
            Ok(v) => Ok(v),
            Err(source) => Err(self.fail(action.to_string(), source).await),
        }
    }

    async fn fail(&self, action: String, source: CmdError) -> Error {
        Error::Command {
            action,
            url: self.url_or_dash().await,
            source: Box::new(source),
        }
    }

    async fn url_or_dash(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(_) => "(address unknown)".into(),
        }
    }

    async fn timeout_error(&self, what: String, start: Instant, last: Option<String>) -> Error {
        let excerpt = match self.text().await {
            Ok(t) => t.chars().take(EXCERPT_CHARS).collect(),
            Err(e) => format!("(unreadable: {e})"),
        };
        Error::Timeout {
            what,
            url: self.url_or_dash().await,
            waited: start.elapsed(),
            excerpt,
            last_error: last,
        }
    }
}

/// An element as a script argument.
fn element_json(el: &Element) -> Result<Value> {
    serde_json::to_value(el).map_err(|e| Error::Script {
        context: "passing an element to a script".into(),
        detail: e.to_string(),
    })
}
