//! Serving for real: what every service binary's `serve` command shares.
//!
//! * **TLS** ([`ServeArgs`]: `--tls-cert FILE --tls-key FILE`, PEM): HTTPS with rustls on the
//!   `ring` provider; without them plain HTTP. Or TLS terminated at a reverse proxy:
//!   `--trusted-proxy ADDR` (IP or CIDR, repeatable) names the proxies whose `Forwarded` (RFC
//!   7239) or `X-Forwarded-For` header is believed; from any other peer those headers are
//!   ignored. Handlers find the result as the [`ClientAddr`] request extension (see
//!   [`proxy`](crate::serve::TrustedProxies) for the rules).
//! * **Health** ([`Health`]): `/healthz` (alive: 200 `ok`) and `/readyz` (200 when every
//!   readiness check the service registered passes, else 503 naming the failing checks).
//! * **Metrics** ([`Metrics`]): `/metrics` in the Prometheus text format: every request
//!   counted by route template (never the raw path), method and status class, and timed; plus
//!   the service's own counters and gauges.
//! * **Graceful shutdown**: on SIGTERM or Ctrl-C (SIGINT) the listener closes, requests in
//!   flight finish (at most `--shutdown-grace` seconds, 30 by default) and [`Server::run`]
//!   returns `Ok`, so the binary exits 0. The same with and without TLS.
//!
//! A service's `serve` command, in full:
//!
//! ```no_run
//! # async fn serve(app: axum::Router, args: bizcred_cli::serve::ServeArgs) -> anyhow::Result<()> {
//! use bizcred_cli::serve::{Health, Metrics, Server};
//! let metrics = Metrics::new("verifier");
//! let verdicts = metrics.counter_by(
//!     "verifications",
//!     "Verifications by verdict",
//!     "verdict",
//!     &["accept", "reject", "indeterminate"],
//! );
//! // ... a handler calls verdicts.inc("accept")
//! let health = Health::new().check("storage", || Ok::<(), std::io::Error>(()));
//! let server = Server::bind("127.0.0.1:8080".parse()?, &args).await?;
//! println!("listening on {}", server.url()?);
//! server.run(app, &health, &metrics).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

mod health;
mod metrics;
mod proxy;
mod tls;

pub use health::{Health, CHECK_TIMEOUT};
pub use metrics::{Counter, CounterBy, Gauge, Metrics, METRICS_CONTENT_TYPE};
pub use proxy::{ClientAddr, PeerAddr, TrustedProxies, TrustedProxy, MAX_FORWARDED_HOPS};

/// How long requests in flight may take after SIGTERM or Ctrl-C, unless `--shutdown-grace`
/// says otherwise (seconds).
pub const SHUTDOWN_GRACE_SECONDS: u64 = 30;

/// The options of every service's `serve` command (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy (IP or CIDR) whose Forwarded / X-Forwarded-For header names the client;
    /// repeat for several. From other peers those headers are ignored.
    #[arg(long = "trusted-proxy", value_name = "ADDR")]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = SHUTDOWN_GRACE_SECONDS)]
    pub shutdown_grace: u64,
}

impl Default for ServeArgs {
    /// Plain HTTP, no trusted proxy, the default grace.
    fn default() -> ServeArgs {
        ServeArgs {
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            shutdown_grace: SHUTDOWN_GRACE_SECONDS,
        }
    }
}

/// A bound listener, ready to serve an app (see the [module](self) documentation).
pub struct Server {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    proxies: TrustedProxies,
    grace: Duration,
    signals: Signals,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .field("proxies", &self.proxies)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Reads the TLS files (a missing or wrong file fails before the port is taken), binds
    /// `addr` and installs the SIGTERM and Ctrl-C handlers (from here on, those signals stop
    /// the service gracefully instead of killing it).
    pub async fn bind(addr: SocketAddr, args: &ServeArgs) -> Result<Server> {
        let tls = tls::acceptor(args)?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Server::with(listener, tls, args)
    }

    /// [`Server::bind`] on a listener already bound.
    pub fn from_listener(listener: TcpListener, args: &ServeArgs) -> Result<Server> {
        let tls = tls::acceptor(args)?;
        Server::with(listener, tls, args)
    }

    fn with(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        args: &ServeArgs,
    ) -> Result<Server> {
        Ok(Server {
            listener,
            tls,
            proxies: TrustedProxies::new(args.trusted_proxies.iter().copied()),
            grace: Duration::from_secs(args.shutdown_grace),
            signals: Signals::install()?,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("reading the listener's address")
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `scheme://address` of the listener (for the start-up line; the public URL is the
    /// service's configuration).
    pub fn url(&self) -> Result<String> {
        Ok(format!("{}://{}", self.scheme(), self.local_addr()?))
    }

    /// Serves `app` with `/healthz`, `/readyz` and `/metrics` merged in (see [`instrument`];
    /// `app` must not route those paths itself) until SIGTERM or Ctrl-C, then shuts down
    /// gracefully. Handlers get the peer as `ConnectInfo<SocketAddr>` and [`PeerAddr`], and the
    /// client as [`ClientAddr`].
    pub async fn run(self, app: Router, health: &Health, metrics: &Metrics) -> Result<()> {
        self.run_until(app, health, metrics, std::future::pending())
            .await
    }

    /// [`Server::run`], stopping also when `shutdown` completes (tests, embedding).
    pub async fn run_until(
        self,
        app: Router,
        health: &Health,
        metrics: &Metrics,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Server {
            listener,
            tls,
            proxies,
            grace,
            signals,
        } = self;
        let app = proxies.layer(instrument(app, health, metrics));
        let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
        let signal = async move {
            tokio::select! {
                name = signals.recv() => tracing::info!(signal = name, "shutting down"),
                () = shutdown => tracing::info!("shutting down"),
            }
            // The receiver lives as long as the serve loop below.
            let _ = stopping_tx.send(true);
        };
        let make = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = async move {
            match tls {
                None => {
                    axum::serve(listener.tap_io(nodelay), make)
                        .with_graceful_shutdown(signal)
                        .await
                }
                Some(acceptor) => {
                    axum::serve(
                        tls::TlsListener::new(listener, acceptor).tap_io(|_| {}),
                        make,
                    )
                    .with_graceful_shutdown(signal)
                    .await
                }
            }
        };
        let deadline = async move {
            if stopping.wait_for(|s| *s).await.is_err() {
                // The signal task is gone without asking to stop: serve until killed.
                std::future::pending::<()>().await;
            }
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "not accepting connections; waiting for requests in flight"
            );
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            r = serve => r.context("serving")?,
            () = deadline => tracing::warn!(
                grace_seconds = grace.as_secs(),
                "requests still in flight after the shutdown grace: stopping anyway"
            ),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `app` as [`Server::run`] serves it, without a socket (router tests): `/healthz` and
/// `/readyz` of `health` and `/metrics` of `metrics` merged in, and every request counted and
/// timed by its route template. Merging panics (at start-up) if `app` routes one of those
/// paths itself.
pub fn instrument(app: Router, health: &Health, metrics: &Metrics) -> Router {
    metrics.layer(app.merge(health.router()).merge(metrics.router()))
}

/// Small responses go out at once (no Nagle delay on keep-alive connections).
fn nodelay(io: &mut tokio::net::TcpStream) {
    if let Err(e) = io.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY not set: {e}");
    }
}

/// The signals that stop a service gracefully, installed before it says it listens.
#[derive(Debug)]
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the first signal; answers its name.
    async fn recv(self) -> &'static str {
        #[cfg(unix)]
        {
            let Signals { mut term, mut int } = self;
            tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                // Both streams ended (the runtime is going away): nothing more will come.
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!("no Ctrl-C handler ({e}): stop the service with a signal");
                std::future::pending::<()>().await;
            }
            "Ctrl-C"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, String> {
        Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|s| s.serve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn serve_options_parse() {
        let a = parse(&[]).expect("no options");
        assert!(a.tls_cert.is_none() && a.trusted_proxies.is_empty());
        assert_eq!(a.shutdown_grace, SHUTDOWN_GRACE_SECONDS);
        let a = parse(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "192.0.2.1",
            "--shutdown-grace",
            "5",
        ])
        .expect("all options");
        assert_eq!(a.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(a.trusted_proxies.len(), 2);
        assert_eq!(a.shutdown_grace, 5);
        let e = parse(&["--tls-cert", "c.pem"]).expect_err("a certificate without its key");
        assert!(e.contains("--tls-key"), "{e}");
        let e = parse(&["--trusted-proxy", "proxy.internal"]).expect_err("a name");
        assert!(e.contains("not an IP address or a CIDR block"), "{e}");
    }

    #[test]
    fn without_tls_the_scheme_is_http() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let s = Server::bind("127.0.0.1:0".parse().expect("addr"), &ServeArgs::default())
                .await
                .expect("bind");
            let url = s.url().expect("url");
            assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        });
    }
}
