//! chromedriver on a loopback port, and Chromium sessions opened through it.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::ClientBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::page::Page;
use crate::{locate, missing, Error, Result};

/// The arguments every Chromium session gets, besides its profile directory and language. The
/// machine has no internet: background networking and component updates would only produce
/// refused connections; `--no-sandbox` because CI runs as root in a container.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,1024",
];

/// How long chromedriver may take to listen, and to exit when asked.
const DRIVER_START: Duration = Duration::from_secs(20);
const DRIVER_STOP: Duration = Duration::from_secs(5);
/// How many times a free port is picked again when chromedriver could not take it.
const DRIVER_ATTEMPTS: usize = 3;
/// The most of an answer from chromedriver's `/status` that is read.
const MAX_STATUS_LEN: u64 = 64 * 1024;

/// The language a session's browser asks pages for (`Accept-Language`, `navigator.language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Canadian English: `en-CA,en`.
    En,
    /// Canadian French: `fr-CA,fr`.
    Fr,
}

impl Lang {
    /// Both languages, for tests that visit every page in each.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    /// The two-letter code (`en`, `fr`), used in screenshot names.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// The browser's locale (`--lang`): `en-CA`, `fr-CA`.
    pub fn locale(self) -> &'static str {
        match self {
            Lang::En => "en-CA",
            Lang::Fr => "fr-CA",
        }
    }

    /// The `Accept-Language` the browser sends: `en-CA,en`, `fr-CA,fr`.
    pub fn accept_language(self) -> &'static str {
        match self {
            Lang::En => "en-CA,en",
            Lang::Fr => "fr-CA,fr",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A chromedriver listening on a loopback port. Sessions ([`Browser::session`]) are independent
/// browsers (own profile, cookies, language); several can be open at once. Dropping it ends
/// every session still open and stops chromedriver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    chromium: PathBuf,
    /// chromedriver's output, shown when it fails.
    logs: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver for the Chromium on this machine. `Ok(None)` when chromedriver or
    /// Chromium is missing, after saying so loudly on the terminal; under `CI=true` that is an
    /// error instead.
    pub async fn start() -> Result<Option<Browser>> {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromedriver"))
                .find(|p| p.is_file())
        });
        let Some(driver) = locate("BIZCRED_CHROMEDRIVER", "chromedriver", on_path)? else {
            return missing(
                "chromedriver",
                "not on PATH and BIZCRED_CHROMEDRIVER is not set; install the distribution's \
                 chromium-driver (.ci/run does)"
                    .into(),
            );
        };
        let default_chromium = PathBuf::from("/usr/bin/chromium");
        let Some(chromium) = locate("BIZCRED_CHROMIUM", "Chromium", Some(default_chromium))? else {
            return missing(
                "Chromium",
                "/usr/bin/chromium is missing and BIZCRED_CHROMIUM is not set; install the \
                 distribution's chromium (.ci/run does)"
                    .into(),
            );
        };
        let logs = tempfile::Builder::new()
            .prefix("bizcred-chromedriver-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating chromedriver's log directory".into(),
                source,
            })?;
        let log_path = logs.path().join("chromedriver.log");
        let mut last = String::new();
        for _ in 0..DRIVER_ATTEMPTS {
            let port = free_port()?;
            let mut child = spawn_driver(&driver, port, &log_path)?;
            match wait_ready(&mut child, port, &log_path).await {
                Ok(()) => {
                    return Ok(Some(Browser {
                        driver: child,
                        port,
                        chromium,
                        logs,
                    }))
                }
                Err(e) => {
                    stop_child(&mut child);
                    last = e;
                }
            }
        }
        Err(Error::Driver(format!(
            "{} (tried {DRIVER_ATTEMPTS} ports)",
            last
        )))
    }

    /// chromedriver's address, `http://127.0.0.1:PORT`, for a raw `fantoccini::ClientBuilder`.
    pub fn webdriver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Chromium binary the sessions run.
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    /// Opens a new browser: a fresh profile directory (no cookies, no cache), the window
    /// 1280×1024, asking pages for `lang`.
    pub async fn session(&self, lang: Lang) -> Result<Page> {
        let profile = tempfile::Builder::new()
            .prefix("bizcred-chromium-profile-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating a Chromium profile directory".into(),
                source,
            })?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--lang={}", lang.locale()));
        args.push(format!("--accept-lang={}", lang.accept_language()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
                // The header follows this preference; the flags above set the UI locale.
                "prefs": { "intl.accept_languages": lang.accept_language() },
            },
            "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 30_000 },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            return Err(Error::Driver("capabilities are not an object".into()));
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.webdriver_url())
            .await
            .map_err(|e| {
                let log = read_log(&self.logs.path().join("chromedriver.log"));
                Error::Driver(format!(
                    "new session for {}: {e}; chromedriver said: {log}",
                    self.chromium.display()
                ))
            })?;
        Ok(Page::new(client, lang, profile))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's /shutdown ends its sessions (quitting their Chromium) and exits; killing
        // it outright would leave the browsers it started running.
        request(self.port, "/shutdown");
        let deadline = Instant::now() + DRIVER_STOP;
        while Instant::now() < deadline {
            match self.driver.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        stop_child(&mut self.driver);
    }
}

/// A port free on loopback now. chromedriver binds it just after; if another process took it
/// in between, chromedriver exits and `start` tries another.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| Error::Io {
        context: "finding a free loopback port".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            context: "finding a free loopback port".into(),
            source,
        })
}

fn spawn_driver(driver: &Path, port: u16, log_path: &Path) -> Result<Child> {
    let io = |source| Error::Io {
        context: format!("writing {}", log_path.display()),
        source,
    };
    let log = File::create(log_path).map_err(io)?;
    let err = log.try_clone().map_err(io)?;
    Command::new(driver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|source| Error::Io {
            context: format!("starting {}", driver.display()),
            source,
        })
}

/// Waits until chromedriver answers `/status` with `"ready": true`: a connection alone could be
/// another process that took the port.
async fn wait_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "chromedriver exited ({status}): {}",
                read_log(log_path)
            ));
        }
        if let Some(body) = get_async(port, "/status").await {
            if body.contains("\"ready\":true") || body.contains("\"ready\": true") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "chromedriver did not answer on port {port} within {DRIVER_START:?}: {}",
                read_log(log_path)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 GET on loopback, the answer's text (bounded), or `None` when nothing answered.
/// chromedriver answers `Connection: close` but keeps the connection open, so the answer ends
/// where its `Content-Length` says.
async fn get_async(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    stream.write_all(get_request(path).as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while !is_complete(&answer) && (answer.len() as u64) < MAX_STATUS_LEN {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// The same GET, blocking, for `Drop`, where nothing can be awaited. Best effort: the caller
/// kills the process when this did not stop it.
fn request(port: u16, path: &str) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return;
    };
    if stream.set_read_timeout(Some(DRIVER_STOP)).is_err()
        || stream.write_all(get_request(path).as_bytes()).is_err()
    {
        return;
    }
    // The answer only tells that chromedriver is exiting; its exit is awaited next.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !is_complete(&answer) && (answer.len() as u64) < MAX_STATUS_LEN {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

/// Whether an HTTP answer has its headers and as many body bytes as `Content-Length` says.
fn is_complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    match length {
        Some(length) => answer.len() >= end + 4 + length,
        // Without a length the answer ends when the connection does.
        None => false,
    }
}

/// Kills a child and reaps it. Errors mean it already exited, which is what was wanted.
fn stop_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The end of chromedriver's log, for error messages.
fn read_log(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim();
            let start = text
                .char_indices()
                .rev()
                .nth(2000)
                .map(|(i, _)| i)
                .unwrap_or(0);
            if text.is_empty() {
                "(nothing)".into()
            } else {
                text[start..].to_string()
            }
        }
        Err(e) => format!("(its log {} could not be read: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn an_answer_ends_where_its_length_says() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length:4\r\nConnection:close\r\n\r\n";
        assert!(!is_complete(&head[..20]));
        assert!(!is_complete(head));
        assert!(!is_complete(&[&head[..], b"{}"].concat()));
        assert!(is_complete(&[&head[..], b"{\"\"}"].concat()));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\nbody"));
    }
}
