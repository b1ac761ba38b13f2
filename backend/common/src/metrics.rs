//! Prometheus metrics, written once for every service: what each HTTP request did, and the
//! exposition at `GET /metrics`.
//!
//! Each application owns its [`Registry`] (no process-wide state), so several services or
//! several instances of one run side by side in a test process without mixing their counts.
//! The text is OpenMetrics 1.0, which Prometheus reads natively.
//!
//! Requests are labelled by their matched route (`/send_message`, `/api/messages`), never by
//! the raw path, so a client cannot make a series per path it invents. Requests no route
//! matched (the page's files, and 404s) count under the route `unmatched`. A wildcard route
//! (a gRPC service's `/{*method}`) is labelled by the path itself only when it is one of the
//! paths the service names as its own (its gRPC methods); any other path under it keeps the
//! wildcard route.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::{
    extract::MatchedPath,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, Request, StatusCode, header};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Labels of one answered request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// Labels of one route's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// A histogram constructor that a [`Family`] can name in its type.
pub type MakeHistogram = fn() -> Histogram;

/// Latency buckets in seconds: 100 µs to about 13 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Requests by route, method and status, and their latency by route and method.
#[derive(Debug)]
pub struct HttpMetrics {
    /// `http_requests_total{method, route, status}`.
    requests: Family<RequestLabels, Counter>,
    /// `http_request_duration_seconds{method, route}`: from the request's arrival to its
    /// answer's head (for a stream, the time it took to open).
    latency: Family<RouteLabels, Histogram, MakeHistogram>,
    /// Paths under a wildcard route that are labelled as themselves.
    own_paths: &'static [&'static str],
}

impl HttpMetrics {
    /// Registers the request metrics in `registry`. `own_paths` are the paths under wildcard
    /// routes that are labelled as themselves (see the module's documentation).
    pub fn register(registry: &mut Registry, own_paths: &'static [&'static str]) -> Arc<Self> {
        let metrics = Arc::new(Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            own_paths,
        });
        registry.register(
            "http_requests",
            "Requests answered, by method, matched route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer's head, by method and matched route",
            metrics.latency.clone(),
        );
        metrics
    }

    /// A layer that counts and times every request with these metrics. Put it on a router with
    /// `Router::layer`, so the matched route is known.
    pub fn layer(self: &Arc<Self>) -> TrackLayer {
        TrackLayer {
            metrics: Arc::clone(self),
        }
    }

    /// The route label of `request`.
    fn route<B>(&self, request: &Request<B>) -> String {
        match request.extensions().get::<MatchedPath>() {
            Some(matched) => {
                let route = matched.as_str();
                let path = request.uri().path();
                if route.ends_with("/{*method}") && self.own_paths.contains(&path) {
                    path.to_owned()
                } else {
                    route.to_owned()
                }
            }
            None => UNMATCHED.to_owned(),
        }
    }

    /// The answers so far to `method` on `route` with `status` (the series is created at 0 if
    /// it did not exist).
    #[cfg(test)]
    fn count(&self, method: &str, route: &str, status: StatusCode) -> u64 {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.as_u16(),
            })
            .get()
    }
}

/// Counts and times every request: see [`HttpMetrics::layer`].
#[derive(Debug, Clone)]
pub struct TrackLayer {
    metrics: Arc<HttpMetrics>,
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Track {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// See [`TrackLayer`].
#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
}

impl<S, B, ResBody> tower::Service<Request<B>> for Track<S>
where
    S: tower::Service<Request<B>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let labels = RouteLabels {
            method: request.method().as_str().to_owned(),
            route: self.metrics.route(&request),
        };
        TrackFuture {
            inner: self.inner.call(request),
            started,
            labels: Some(labels),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer, counted and timed when its head is ready.
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        labels: Option<RouteLabels>,
        metrics: Arc<HttpMetrics>,
    }
}

impl<F, ResBody, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        if let Some(labels) = this.labels.take() {
            let metrics = &this.metrics;
            metrics
                .latency
                .get_or_create(&labels)
                .observe(this.started.elapsed().as_secs_f64());
            let RouteLabels { method, route } = labels;
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    method,
                    route,
                    status: response.status().as_u16(),
                })
                .inc();
        }
        Poll::Ready(Ok(response))
    }
}

/// The answer to `GET /metrics`: every metric in `registry` as OpenMetrics text.
pub fn exposition(registry: &Registry) -> Response {
    let mut text = String::with_capacity(8 * 1024);
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            crate::http_edge::json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics",
            )
        }
    }
}

/// An axum route answering `GET /metrics` from `registry`.
pub fn route<S>(registry: Arc<Registry>) -> axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::routing::get(move || {
        let registry = Arc::clone(&registry);
        async move { exposition(&registry) }
    })
}

/// An admin port: `GET /metrics` on an address of its own, for a service whose metrics are kept
/// off its public port.
#[derive(Debug)]
pub struct AdminPort {
    bound: crate::server::Bound,
    router: axum::Router,
}

/// An admin port being served (see [`AdminPort::serve_until`]).
#[derive(Debug)]
pub struct AdminTask(tokio::task::JoinHandle<anyhow::Result<()>>);

impl AdminPort {
    /// Binds `addr`, when one is given, with the service's connection `limits` and shutdown
    /// `grace`, to serve `registry`.
    pub async fn bind(
        addr: Option<std::net::SocketAddr>,
        limits: crate::server::ConnectionLimits,
        grace: std::time::Duration,
        registry: Arc<Registry>,
    ) -> anyhow::Result<Option<Self>> {
        let Some(addr) = addr else { return Ok(None) };
        let bound = crate::server::Bound::bind(addr, limits, grace)
            .await
            .map_err(|error| error.context("cannot open the admin port"))?;
        Ok(Some(Self {
            bound,
            router: admin_router(registry),
        }))
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.bound.addr()
    }

    /// Serves it on a task of its own until `stop` resolves.
    pub fn serve_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> AdminTask {
        tracing::info!(addr = %self.addr(), "admin port listening (/metrics)");
        AdminTask(tokio::spawn(self.bound.serve(self.router, stop)))
    }
}

impl AdminTask {
    /// Waits for the port to close, and logs how it failed if it did.
    pub async fn finish(self) {
        match self.0.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the admin port failed"),
            Err(error) => tracing::error!(%error, "the admin port's task failed"),
        }
    }
}

/// An admin port's router: `GET /metrics` from `registry`, with request ids, and a JSON 404
/// for anything else.
fn admin_router(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", route(registry))
        .fallback(|| async {
            crate::http_edge::json_error(
                http::StatusCode::NOT_FOUND,
                "the admin port answers GET /metrics only",
            )
        })
        .layer(crate::request_id::RequestIdLayer)
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> (Router, Arc<HttpMetrics>) {
        let mut registry = Registry::default();
        let metrics = HttpMetrics::register(&mut registry, &["/svc.S/Known"]);
        let router = Router::new()
            .route("/items/{id}", get(|| async { "item" }))
            .route("/svc.S/{*method}", get(|| async { "grpc" }))
            .route("/metrics", route(Arc::new(registry)))
            .layer(metrics.layer());
        (router, metrics)
    }

    async fn get_text(router: &Router, path: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_are_counted_by_matched_route_never_by_raw_path() {
        let (router, metrics) = app();
        for path in [
            "/items/1",
            "/items/2",
            "/nowhere",
            "/svc.S/Known",
            "/svc.S/Made-Up",
        ] {
            get_text(&router, path).await;
        }
        assert_eq!(metrics.count("GET", "/items/{id}", StatusCode::OK), 2);
        assert_eq!(metrics.count("GET", UNMATCHED, StatusCode::NOT_FOUND), 1);
        assert_eq!(metrics.count("GET", "/svc.S/Known", StatusCode::OK), 1);
        assert_eq!(metrics.count("GET", "/svc.S/{*method}", StatusCode::OK), 1);

        let (status, text) = get_text(&router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(!text.contains("/items/1"), "{text}");
        assert!(!text.contains("Made-Up"), "{text}");
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{method="GET",route="/items/{id}"} 2"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
