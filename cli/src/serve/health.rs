//! `/healthz` and `/readyz`.
//!
//! `/healthz` answers 200 `ok` while the process serves (liveness). `/readyz` runs the
//! readiness checks the service registered (storage reachable, migrations current, keys
//! loaded, ...), all at once, each at most [`CHECK_TIMEOUT`]: 200
//! `{"status":"ready","checks":{"storage":"ok",...}}` when all pass, else 503
//! `{"status":"unavailable","failing":["storage"],"checks":{"storage":"failing",...}}`. Why a
//! check failed is logged (once, when it starts failing), not answered: the probe is often
//! public and an error may name files or hosts.
//!
//! A check never runs twice at once: while one run is still going (a storage call that
//! hangs), the next probe reports it failing instead of starting another.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// The longest a readiness check may take before it counts as failing.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

#[derive(Clone)]
struct Check {
    name: &'static str,
    run: CheckFn,
    /// A run is under way.
    running: Arc<AtomicBool>,
    /// The last run failed (to log only the changes).
    failed: Arc<AtomicBool>,
}

/// The readiness checks of a service, and its `/healthz` and `/readyz` routes.
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<Check>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field(
                "checks",
                &self.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Health {
    /// No checks yet: ready.
    pub fn new() -> Health {
        Health::default()
    }

    /// Adds a check that may block (a storage read): it runs on tokio's blocking pool. `Err`
    /// (any `Display`) means not ready.
    pub fn check<E: Display>(
        self,
        name: &'static str,
        f: impl Fn() -> Result<(), E> + Send + Sync + 'static,
    ) -> Health {
        let f = Arc::new(f);
        self.with(
            name,
            Arc::new(move || {
                let f = f.clone();
                Box::pin(async move {
                    tokio::task::spawn_blocking(move || f().map_err(|e| e.to_string()))
                        .await
                        .unwrap_or_else(|_| Err("the check panicked".to_owned()))
                })
            }),
        )
    }

    /// Adds an asynchronous check (a database ping).
    pub fn check_async<E, Fut>(
        self,
        name: &'static str,
        f: impl Fn() -> Fut + Send + Sync + 'static,
    ) -> Health
    where
        E: Display,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.with(
            name,
            Arc::new(move || {
                let fut = f();
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
            }),
        )
    }

    fn with(mut self, name: &'static str, run: CheckFn) -> Health {
        self.checks.push(Check {
            name,
            run,
            running: Arc::new(AtomicBool::new(false)),
            failed: Arc::new(AtomicBool::new(false)),
        });
        self
    }

    /// Runs every check at once; answers each check's name and its failure, if any, in the
    /// order they were added.
    pub async fn run(&self) -> Vec<(&'static str, Result<(), String>)> {
        let deadline = tokio::time::Instant::now() + CHECK_TIMEOUT;
        let started: Vec<_> = self
            .checks
            .iter()
            .map(|c| {
                if c.running.swap(true, Ordering::AcqRel) {
                    return (c, None);
                }
                let (fut, running) = ((c.run)(), c.running.clone());
                let task = tokio::spawn(async move {
                    let r = fut.await;
                    running.store(false, Ordering::Release);
                    r
                });
                (c, Some(task))
            })
            .collect();
        let mut results = Vec::with_capacity(started.len());
        for (c, task) in started {
            let r = match task {
                None => Err("its previous run has not finished".to_owned()),
                Some(task) => match tokio::time::timeout_at(deadline, task).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => {
                        c.running.store(false, Ordering::Release);
                        Err("the check panicked".to_owned())
                    }
                    Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
                },
            };
            match &r {
                Err(why) if !c.failed.swap(true, Ordering::AcqRel) => {
                    tracing::warn!(check = c.name, error = %why, "not ready");
                }
                Ok(()) if c.failed.swap(false, Ordering::AcqRel) => {
                    tracing::info!(check = c.name, "ready again");
                }
                _ => {}
            }
            results.push((c.name, r));
        }
        results
    }

    /// `/healthz` and `/readyz`.
    pub fn router(&self) -> Router {
        let health = Arc::new(self.clone());
        Router::new()
            .route("/healthz", get(|| async { no_store("ok".into_response()) }))
            .route(
                "/readyz",
                get(move || {
                    let health = health.clone();
                    async move { health.readyz().await }
                }),
            )
    }

    async fn readyz(&self) -> Response {
        let results = self.run().await;
        let mut checks = Map::new();
        let mut failing = Vec::new();
        for (name, r) in &results {
            let state = if r.is_ok() { "ok" } else { "failing" };
            checks.insert((*name).to_owned(), Value::from(state));
            if r.is_err() {
                failing.push(*name);
            }
        }
        let (status, body) = if failing.is_empty() {
            (StatusCode::OK, json!({"status": "ready", "checks": checks}))
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "failing": failing, "checks": checks}),
            )
        };
        no_store((status, Json(body)).into_response())
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: &Router, uri: &str) -> (StatusCode, String) {
        let r = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn healthz_is_ok_and_readyz_names_the_failing_check() {
        let storage_up = Arc::new(AtomicBool::new(true));
        let up = storage_up.clone();
        let h = Health::new()
            .check("storage", move || {
                if up.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("/var/lib/secret-path: unreachable")
                }
            })
            .check_async("keys", || async { Ok::<(), String>(()) });
        let r = h.router();
        assert_eq!(get(&r, "/healthz").await, (StatusCode::OK, "ok".to_owned()));
        let (status, body) = get(&r, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            v,
            json!({"status": "ready", "checks": {"storage": "ok", "keys": "ok"}})
        );

        storage_up.store(false, Ordering::SeqCst);
        let (status, body) = get(&r, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["status"], "unavailable");
        assert_eq!(v["failing"], json!(["storage"]));
        assert_eq!(v["checks"]["keys"], "ok");
        // The cause is logged, not answered.
        assert!(!body.contains("secret-path"), "{body}");

        storage_up.store(true, Ordering::SeqCst);
        assert_eq!(get(&r, "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_fails_in_time_and_is_not_started_twice() {
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s = started.clone();
        let h = Health::new().check_async("database", move || {
            s.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<(), String>(())
            }
        });
        let r = h.run().await;
        assert_eq!(r[0].0, "database");
        assert!(
            r[0].1.as_ref().is_err_and(|e| e.contains("no answer")),
            "{r:?}"
        );
        let r = h.run().await;
        assert!(
            r[0].1.as_ref().is_err_and(|e| e.contains("not finished")),
            "{r:?}"
        );
        assert_eq!(started.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_checks_is_ready() {
        assert_eq!(
            get(&Health::new().router(), "/readyz").await.0,
            StatusCode::OK
        );
    }
}
