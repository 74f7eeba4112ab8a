//! `bizcred_cli::serve` on real loopback sockets: HTTPS with a self-signed certificate,
//! `/metrics` by route template, forwarded addresses only from trusted proxies, `/readyz`,
//! graceful shutdown with and without TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Extension};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use bizcred_cli::serve::{ClientAddr, Health, Metrics, PeerAddr, ServeArgs, Server};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files; answers the
/// certificate's PEM.
fn certificate(dir: &Path) -> (ServeArgs, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let args = ServeArgs {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..ServeArgs::default()
    };
    (args, ck.cert.pem())
}

/// A server running `app` on a loopback port; stop it with the sender, join the handle.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(app: Router, health: Health, metrics: Metrics, args: &ServeArgs) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = Server::from_listener(listener, args).expect("server");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            server
                .run_until(app, &health, &metrics, async {
                    let _ = stopped.await;
                })
                .await
        });
        Running {
            addr,
            stop: Some(stop),
            done,
        }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://localhost:{}{path}", self.addr.port())
    }

    fn shut_down(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    async fn join(mut self) -> anyhow::Result<()> {
        self.shut_down();
        tokio::time::timeout(Duration::from_secs(40), self.done)
            .await
            .expect("the server stops")
            .expect("the server task")
    }
}

fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem"))
        .build()
        .expect("client")
}

fn app() -> Router {
    app_noting(Arc::new(tokio::sync::Notify::new()))
}

/// The test app; `entered` is notified when `/slow` or `/forever` starts.
fn app_noting(entered: Arc<tokio::sync::Notify>) -> Router {
    let (e1, e2) = (entered.clone(), entered);
    Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route(
            "/whoami",
            get(
                |Extension(ClientAddr(client)): Extension<ClientAddr>,
                 Extension(PeerAddr(peer)): Extension<PeerAddr>,
                 ConnectInfo(info): ConnectInfo<SocketAddr>| async move {
                    axum::Json(json!({
                        "client": client.to_string(),
                        "peer": peer.ip().to_string(),
                        "connect_info": info.ip().to_string(),
                    }))
                },
            ),
        )
        .route(
            "/slow",
            get(move || async move {
                e1.notify_one();
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "finished"
            }),
        )
        .route(
            "/forever",
            get(move || async move {
                e2.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
}

#[tokio::test]
async fn healthz_over_https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let (args, pem) = certificate(dir.path());
    let server = Running::start(app(), Health::new(), Metrics::new("test"), &args).await;
    let r = trusting(&pem)
        .get(server.url("https", "/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok");
    // A client that does not trust the certificate is refused at the handshake.
    let e = reqwest::Client::new()
        .get(server.url("https", "/healthz"))
        .send()
        .await
        .expect_err("an unknown certificate");
    assert!(e.is_connect(), "{e:?}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(reqwest::get(server.url("http", "/healthz")).await.is_err());
    server.join().await.expect("clean stop");
}

#[tokio::test]
async fn tls_files_are_checked_before_serving() {
    let dir = tempfile::tempdir().expect("tmp");
    let (args, _) = certificate(dir.path());
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let wrong_key = dir.path().join("other-key.pem");
    std::fs::write(&wrong_key, other.signing_key.serialize_pem()).expect("write");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let cases = [
        (
            ServeArgs {
                tls_key: Some(wrong_key),
                ..args.clone()
            },
            "does not go with the certificate",
        ),
        (
            ServeArgs {
                tls_cert: Some(empty),
                ..args.clone()
            },
            "holds no certificate",
        ),
        (
            ServeArgs {
                tls_cert: Some(dir.path().join("missing.pem")),
                ..args.clone()
            },
            "reading the TLS certificate",
        ),
    ];
    for (args, want) in cases {
        let e = Server::bind(addr, &args).await.expect_err("refused");
        assert!(format!("{e:#}").contains(want), "{e:#}");
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let metrics = Metrics::new("test");
    let served = metrics.counter("things_served", "Things served");
    served.inc();
    let server = Running::start(app(), Health::new(), metrics, &ServeArgs::default()).await;
    let client = reqwest::Client::new();
    for id in ["a-secret-id", "another-id"] {
        let r = client
            .get(server.url("http", &format!("/items/{id}?name=Jane")))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
    }
    let r = client
        .get(server.url("http", "/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.expect("body");
    assert!(
        text.lines().any(|l| {
            l
            == "bizcred_http_requests_total{route=\"/items/{id}\",method=\"GET\",status=\"2xx\"} 2"
        }),
        "{text}"
    );
    assert!(
        text.contains("bizcred_test_things_served_total 1"),
        "{text}"
    );
    for leak in ["a-secret-id", "another-id", "Jane"] {
        assert!(!text.contains(leak), "{leak} in\n{text}");
    }
    // The scrape itself is counted by its route too.
    let text = client
        .get(server.url("http", "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains(
            "bizcred_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"2xx\"} 1"
        ),
        "{text}"
    );
    server.join().await.expect("clean stop");
}

async fn whoami(server: &Running, headers: &[(&str, &str)]) -> Value {
    let mut req = reqwest::Client::new().get(server.url("http", "/whoami"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_a_trusted_proxy() {
    let behind = ServeArgs {
        trusted_proxies: vec!["127.0.0.1".parse().expect("proxy")],
        ..ServeArgs::default()
    };
    let server = Running::start(app(), Health::new(), Metrics::new("test"), &behind).await;
    let v = whoami(&server, &[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]).await;
    assert_eq!(
        v,
        json!({"client": "198.51.100.7", "peer": "127.0.0.1", "connect_info": "198.51.100.7"})
    );
    let v = whoami(&server, &[("forwarded", "for=\"[2001:db8::5]:443\"")]).await;
    assert_eq!(v["client"], "2001:db8::5");
    let v = whoami(&server, &[]).await;
    assert_eq!(v["client"], "127.0.0.1");
    server.join().await.expect("clean stop");

    // The same headers from a peer that is not a trusted proxy change nothing.
    let elsewhere = ServeArgs {
        trusted_proxies: vec!["10.0.0.0/8".parse().expect("proxy")],
        ..ServeArgs::default()
    };
    for args in [elsewhere, ServeArgs::default()] {
        let server = Running::start(app(), Health::new(), Metrics::new("test"), &args).await;
        let v = whoami(
            &server,
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("forwarded", "for=198.51.100.7"),
            ],
        )
        .await;
        assert_eq!(
            v,
            json!({"client": "127.0.0.1", "peer": "127.0.0.1", "connect_info": "127.0.0.1"})
        );
        server.join().await.expect("clean stop");
    }
}

#[tokio::test]
async fn readyz_is_503_naming_the_failing_check() {
    let keys_loaded = Arc::new(AtomicBool::new(false));
    let k = keys_loaded.clone();
    let health = Health::new()
        .check("storage", || Ok::<(), String>(()))
        .check("keys", move || {
            if k.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("no signing key")
            }
        });
    let server = Running::start(app(), health, Metrics::new("test"), &ServeArgs::default()).await;
    let r = reqwest::get(server.url("http", "/readyz"))
        .await
        .expect("readyz");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v,
        json!({"status": "unavailable", "failing": ["keys"], "checks": {"storage": "ok", "keys": "failing"}})
    );
    // Alive all the same.
    assert_eq!(
        reqwest::get(server.url("http", "/healthz"))
            .await
            .expect("healthz")
            .status(),
        200
    );
    keys_loaded.store(true, Ordering::SeqCst);
    let r = reqwest::get(server.url("http", "/readyz"))
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    server.join().await.expect("clean stop");
}

/// Starts `/slow`, asks the server to stop while the request is in its handler, and checks
/// that it finishes, that the server waited for it and then stopped cleanly, and that the port
/// no longer accepts connections.
async fn slow_request_finishes_after_shutdown(
    args: ServeArgs,
    client: reqwest::Client,
    scheme: &str,
) {
    let entered = Arc::new(tokio::sync::Notify::new());
    let app = app_noting(entered.clone());
    let mut server = Running::start(app, Health::new(), Metrics::new("test"), &args).await;
    let url = server.url(scheme, "/slow");
    let c = client.clone();
    let slow = tokio::spawn(async move {
        let r = c.get(url).send().await?;
        Ok::<_, reqwest::Error>((r.status(), r.text().await?))
    });
    // Stop while the request is in its handler.
    entered.notified().await;
    let asked = Instant::now();
    server.shut_down();
    let (status, body) = slow
        .await
        .expect("task")
        .expect("the slow request is answered");
    assert_eq!((status.as_u16(), body.as_str()), (200, "finished"));
    let port = server.addr.port();
    server.join().await.expect("clean stop");
    // The server waited for the request (about 1.5 s more) before it returned, and no longer.
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_a_slow_request_finish() {
    slow_request_finishes_after_shutdown(ServeArgs::default(), reqwest::Client::new(), "http")
        .await;
}

#[tokio::test]
async fn graceful_shutdown_lets_a_slow_request_finish_over_tls() {
    let dir = tempfile::tempdir().expect("tmp");
    let (args, pem) = certificate(dir.path());
    slow_request_finishes_after_shutdown(args, trusting(&pem), "https").await;
}

#[tokio::test]
async fn shutdown_waits_no_longer_than_the_grace() {
    let args = ServeArgs {
        shutdown_grace: 1,
        ..ServeArgs::default()
    };
    let entered = Arc::new(tokio::sync::Notify::new());
    let app = app_noting(entered.clone());
    let mut server = Running::start(app, Health::new(), Metrics::new("test"), &args).await;
    let url = server.url("http", "/forever");
    let stuck = tokio::spawn(async move { reqwest::get(url).await });
    entered.notified().await;
    let asked = Instant::now();
    server.shut_down();
    server
        .join()
        .await
        .expect("stops (Ok) once the grace is over");
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    stuck.abort();
}
