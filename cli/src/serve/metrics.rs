//! `/metrics`: Prometheus text format (version 0.0.4) from an owned `prometheus-client`
//! registry.
//!
//! Every service exports:
//! * `bizcred_http_requests_total{route, method, status}`: requests by route template (the
//!   router's `/status/{n}`, never the path a client sent, which may hold identifiers;
//!   `unmatched` for paths no route knows), method (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`,
//!   `PATCH`, `OPTIONS`, else `OTHER`) and status class (`2xx`, ... `5xx`);
//! * `bizcred_http_request_duration_seconds{route, method}`: a latency histogram (until the
//!   response head);
//! * `bizcred_build_info{service, version}`: 1.
//!
//! and its own metrics, named `bizcred_<service>_<name>`: [`Metrics::counter`],
//! [`Metrics::counter_by`] (one label with declared values), [`Metrics::gauge`], and
//! [`Metrics::counter_fn`] / [`Metrics::gauge_fn`] whose value is read at each scrape (an age
//! computed from a stored time, a total kept by the store). Label values are route templates
//! or declared in the code, so the number of series is bounded by the code, never by clients.
//!
//! Each request is also logged at `info` (target `bizcred::http`) with the same fields and its
//! duration: no path, no query string, no body, no address.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter as PCounter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge as PGauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics` (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route label of requests no route matched.
const UNMATCHED: &str = "unmatched";
/// The value a [`CounterBy`] counts undeclared values under.
const OTHER: &str = "other";
/// Latency buckets (seconds): fine below 50 ms, where the services answer.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    service: &'static str,
    version: &'static str,
}

type Histograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Debug)]
struct Http {
    requests: Family<RequestLabels, PCounter>,
    duration: Histograms,
}

#[derive(Debug)]
struct Inner {
    service: &'static str,
    registry: RwLock<Registry>,
    names: Mutex<HashSet<String>>,
    http: Http,
}

/// A service's metrics registry and its `/metrics` route. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// A counter (only goes up).
#[derive(Debug, Clone, Default)]
pub struct Counter(PCounter);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(PGauge);

impl Gauge {
    /// Sets it.
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.0.dec();
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// A counter with one label whose values are declared (verifications by verdict).
#[derive(Debug, Clone)]
pub struct CounterBy {
    family: Family<[(&'static str, &'static str); 1], PCounter>,
    label: &'static str,
    values: &'static [&'static str],
}

impl CounterBy {
    fn value(&self, value: &str) -> &'static str {
        self.values
            .iter()
            .find(|v| **v == value)
            .copied()
            .unwrap_or(OTHER)
    }

    /// Adds one to `value`'s count. A value that was not declared is counted as `other`, so
    /// the series stay the declared ones.
    pub fn inc(&self, value: &str) {
        let v = self.value(value);
        if v == OTHER && !self.values.contains(&OTHER) {
            tracing::debug!(
                label = self.label,
                "an undeclared label value counted as other"
            );
        }
        self.family.get_or_create(&[(self.label, v)]).inc();
    }

    /// `value`'s count (`other`'s for an undeclared value).
    pub fn get(&self, value: &str) -> u64 {
        self.family
            .get_or_create(&[(self.label, self.value(value))])
            .get()
    }
}

/// A metric whose value is read at each scrape.
struct FnMetric {
    name: String,
    help: String,
    read: FnRead,
}

enum FnRead {
    Counter(Box<dyn Fn() -> Option<u64> + Send + Sync>),
    Gauge(Box<dyn Fn() -> Option<f64> + Send + Sync>),
}

impl std::fmt::Debug for FnMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnMetric")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Collector for FnMetric {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match &self.read {
            FnRead::Counter(read) => {
                let Some(v) = read() else { return Ok(()) };
                let c = ConstCounter::new(v);
                let m = encoder.encode_descriptor(&self.name, &self.help, None, c.metric_type())?;
                c.encode(m)
            }
            FnRead::Gauge(read) => {
                let Some(v) = read() else { return Ok(()) };
                let g = ConstGauge::new(v);
                let m = encoder.encode_descriptor(&self.name, &self.help, None, g.metric_type())?;
                g.encode(m)
            }
        }
    }
}

/// Panics unless `name` is a metric or label name of lower-case letters, digits and `_`, not
/// starting with a digit (names are literals in the code: a bad one is a bug found at start).
fn check_name(what: &str, name: &str) {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    assert!(
        ok,
        "the {what} name {name:?} is not lower-case letters, digits and _"
    );
}

impl Metrics {
    /// A registry for `service` (`issuer`, `registry`, `verifier`: lower-case letters, digits
    /// and `_`), with the HTTP metrics and `bizcred_build_info`.
    ///
    /// # Panics
    /// If `service` is not such a name.
    pub fn new(service: &'static str) -> Metrics {
        check_name("service", service);
        let mut registry = Registry::with_prefix("bizcred");
        let http = Http {
            requests: Family::default(),
            duration: Family::new_with_constructor(new_histogram as fn() -> Histogram),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status class",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency until the response head, by route template and method",
            http.duration.clone(),
        );
        registry.register(
            "build",
            "The service and its version",
            Info::new(BuildLabels {
                service,
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            inner: Arc::new(Inner {
                service,
                registry: RwLock::new(registry),
                names: Mutex::new(HashSet::new()),
                http,
            }),
        }
    }

    /// `name` checked and claimed once; `help` without its final period (one is added).
    fn claim(&self, name: &str, help: &str) -> (String, String) {
        check_name("metric", name);
        assert!(
            self.inner
                .names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned()),
            "the metric {name} is registered twice"
        );
        (
            format!("{}_{name}", self.inner.service),
            help.trim_end_matches('.').to_owned(),
        )
    }

    fn registry(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        // Registering and encoding leave the registry whole even if a panic interrupts them.
        self.inner
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the counter `bizcred_<service>_<name>_total` (give `name` without `_total`).
    ///
    /// # Panics
    /// If `name` is not lower-case letters, digits and `_`, or is already registered.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        assert!(!name.ends_with("_total"), "{name}: _total is added");
        let (name, help) = self.claim(name, help);
        let c = Counter::default();
        self.registry().register(name, help, c.0.clone());
        c
    }

    /// Registers the counter `bizcred_<service>_<name>_total{<label>=...}` with one series per
    /// declared value (all exported from the start, at 0) and `other` for any other value.
    ///
    /// # Panics
    /// As [`Metrics::counter`], and if `label` is not such a name.
    pub fn counter_by(
        &self,
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: &'static [&'static str],
    ) -> CounterBy {
        assert!(!name.ends_with("_total"), "{name}: _total is added");
        check_name("label", label);
        let (name, help) = self.claim(name, help);
        let c = CounterBy {
            family: Family::default(),
            label,
            values,
        };
        for v in values {
            drop(c.family.get_or_create(&[(label, *v)]));
        }
        self.registry().register(name, help, c.family.clone());
        c
    }

    /// Registers the gauge `bizcred_<service>_<name>`.
    ///
    /// # Panics
    /// As [`Metrics::counter`].
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        let (name, help) = self.claim(name, help);
        let g = Gauge::default();
        self.registry().register(name, help, g.0.clone());
        g
    }

    /// Registers the counter `bizcred_<service>_<name>_total` whose value `read` answers at
    /// each scrape (a total the store keeps). `None`: no sample this time (nothing to count
    /// yet, or reading failed: log why in `read`). `read` runs on the blocking pool.
    ///
    /// # Panics
    /// As [`Metrics::counter`].
    pub fn counter_fn(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) {
        assert!(!name.ends_with("_total"), "{name}: _total is added");
        let (name, help) = self.claim(name, help);
        self.registry().register_collector(Box::new(FnMetric {
            name,
            help: help + ".",
            read: FnRead::Counter(Box::new(read)),
        }));
    }

    /// Registers the gauge `bizcred_<service>_<name>` whose value `read` answers at each
    /// scrape (an age from a stored time). `None`: no sample this time (as
    /// [`Metrics::counter_fn`]).
    ///
    /// # Panics
    /// As [`Metrics::counter`].
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> Option<f64> + Send + Sync + 'static,
    ) {
        let (name, help) = self.claim(name, help);
        self.registry().register_collector(Box::new(FnMetric {
            name,
            help: help + ".",
            read: FnRead::Gauge(Box::new(read)),
        }));
    }

    /// The exposition, as `/metrics` answers it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .inner
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            // Writing to a String does not fail; a collector could.
            tracing::error!("encoding the metrics: {e}");
        }
        out
    }

    /// `GET /metrics`. The exposition is built on the blocking pool (the `_fn` metrics may
    /// read storage).
    pub fn router(&self) -> Router {
        let m = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    match tokio::task::spawn_blocking(move || m.encode()).await {
                        Ok(text) => {
                            let mut r = text.into_response();
                            let h = r.headers_mut();
                            h.insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static(METRICS_CONTENT_TYPE),
                            );
                            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                            r
                        }
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
    }

    /// `router` with every request counted and timed (applied after the routes are merged,
    /// so the route template is known).
    pub(crate) fn layer(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.inner.clone(),
            track,
        ))
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

async fn track(State(m): State<Arc<Inner>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status();
    m.http
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status: status_class(status),
        })
        .inc();
    m.http
        .duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method,
        })
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "bizcred::http",
        route = %route,
        method,
        status = status.as_u16(),
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn call(router: &Router, method: &str, uri: &str) -> StatusCode {
        router
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible")
            .status()
    }

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_method_and_status_class() {
        let m = Metrics::new("test");
        let app = Router::new()
            .route("/things/{id}", get(|| async { "thing" }))
            .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let app = m.layer(app.merge(m.router()));
        for id in ["a1", "b2", "secret-id-3"] {
            assert_eq!(
                call(&app, "GET", &format!("/things/{id}?q=x")).await,
                StatusCode::OK
            );
        }
        assert_eq!(
            call(&app, "GET", "/fail").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            call(&app, "GET", "/nowhere/at/all").await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&app, "BREW", "/things/x").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let text = m.encode();
        assert!(
            line(
                &text,
                "bizcred_http_requests_total{route=\"/things/{id}\",method=\"GET\",status=\"2xx\"} 3"
            )
            .is_some(),
            "{text}"
        );
        assert!(text.contains(
            "bizcred_http_requests_total{route=\"/fail\",method=\"GET\",status=\"5xx\"} 1"
        ));
        assert!(text.contains(
            "bizcred_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"4xx\"} 1"
        ));
        assert!(text.contains(
            "bizcred_http_requests_total{route=\"/things/{id}\",method=\"OTHER\",status=\"4xx\"} 1"
        ));
        assert!(text.contains(
            "bizcred_http_request_duration_seconds_count{route=\"/things/{id}\",method=\"GET\"} 3"
        ));
        assert!(text.contains(
            "bizcred_http_request_duration_seconds_bucket{route=\"/fail\",method=\"GET\",le=\"0.001\"}"
        ));
        assert!(text.contains("bizcred_build_info{service=\"test\",version=\""));
        // Neither identifiers nor query strings become labels.
        for leak in ["a1", "secret-id-3", "q=x", "/nowhere"] {
            assert!(!text.contains(leak), "{leak} in\n{text}");
        }
    }

    #[tokio::test]
    async fn service_metrics_have_the_service_prefix_and_bounded_labels() {
        let m = Metrics::new("verifier");
        let issued = m.counter("credentials_issued", "Credentials issued.");
        let verdicts = m.counter_by(
            "verifications",
            "Verifications by verdict",
            "verdict",
            &["accept", "reject", "indeterminate"],
        );
        let pending = m.gauge("pending_requests", "Requests awaiting a response");
        m.gauge_fn("bundle_age_seconds", "Age of the trust bundle", || {
            Some(12.5)
        });
        m.gauge_fn("nothing_yet_seconds", "Not known yet", || None);
        m.counter_fn("status_changes", "Status changes in the store", || Some(7));
        issued.inc();
        issued.inc_by(2);
        verdicts.inc("accept");
        verdicts.inc("reject");
        verdicts.inc("no-such-verdict <script>");
        pending.set(4);
        pending.dec();
        let text = m.encode();
        for want in [
            "# HELP bizcred_verifier_credentials_issued_total Credentials issued.",
            "# TYPE bizcred_verifier_credentials_issued_total counter",
            "bizcred_verifier_credentials_issued_total 3",
            "bizcred_verifier_verifications_total{verdict=\"accept\"} 1",
            "bizcred_verifier_verifications_total{verdict=\"reject\"} 1",
            "bizcred_verifier_verifications_total{verdict=\"indeterminate\"} 0",
            "bizcred_verifier_verifications_total{verdict=\"other\"} 1",
            "bizcred_verifier_pending_requests 3",
            "# TYPE bizcred_verifier_bundle_age_seconds gauge",
            "bizcred_verifier_bundle_age_seconds 12.5",
            "# TYPE bizcred_verifier_status_changes_total counter",
            "bizcred_verifier_status_changes_total 7",
        ] {
            assert!(line(&text, want).is_some(), "{want} missing from\n{text}");
        }
        assert!(!text.contains("nothing_yet"), "{text}");
        assert!(!text.contains("script"), "{text}");
        assert_eq!(verdicts.get("accept"), 1);
        assert_eq!(verdicts.get("anything"), 1);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_is_registered_once() {
        let m = Metrics::new("x");
        m.counter("a", "A");
        m.gauge("a", "A");
    }

    #[test]
    #[should_panic(expected = "not lower-case letters")]
    fn names_are_checked() {
        Metrics::new("x").gauge("Bad-Name", "B");
    }
}
