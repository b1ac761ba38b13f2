//! The messages service: the original's stub, kept as a stand-in.
//!
//! `GET /get_message` answers `200 text/plain` `not implemented yet`; `GET /healthz` answers
//! `ok` so the facade and people can see it is up; `GET /metrics` answers its request counts
//! and latencies as Prometheus (OpenMetrics) text.
//!
//! Run it with `cargo run -p messages-service` (listens on `0.0.0.0:8082`; `--addr` or
//! `MESSAGES_ADDR` to change; see `--help`). [`Application`] is its one start-up path.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, StatusCode, header};
use msglog_common::metrics::HttpMetrics;
use msglog_common::server::Bound;
use prometheus_client::registry::Registry;
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer, trace::TraceLayer};

/// The stub's only answer, the original's text.
pub const NOT_IMPLEMENTED: &str = "not implemented yet";

msglog_common::connection_settings!("MESSAGES");

/// Settings, from flags or environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "messages-service",
    version,
    about = "The messages service (a stub)."
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "MESSAGES_ADDR", default_value = "0.0.0.0:8082")]
    pub addr: SocketAddr,
    /// How long a request may take, in milliseconds.
    #[arg(long, env = "MESSAGES_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// After SIGINT/SIGTERM, how long in-flight requests may take to finish, in milliseconds.
    #[arg(long, env = "MESSAGES_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Limits on client connections.
    #[command(flatten)]
    pub connections: ConnectionSettings,
}

/// The messages service, bound and ready to serve. `main.rs` and the tests build it this way.
#[derive(Debug)]
pub struct Application {
    /// The bound listener, with its connection limits.
    bound: Bound,
    /// The routes with their middleware.
    router: Router,
}

impl Application {
    /// Binds the address.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let bound = Bound::bind(
            settings.addr,
            settings.connections.limits(),
            Duration::from_millis(settings.shutdown_grace_ms),
        )
        .await?;
        let router = router(Duration::from_millis(settings.request_timeout_ms));
        Ok(Self { bound, router })
    }

    /// Where the service listens (the real port when the settings asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.bound.addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded by the
    /// grace period).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr(), "messages service listening");
        self.bound.serve(self.router, shutdown).await
    }
}

/// The service's routes, with the request-id rule, refusal of unservable paths, tracing, a
/// request timeout, `nosniff`, request metrics, and a JSON 404 for anything else.
fn router(request_timeout: Duration) -> Router {
    let mut registry = Registry::default();
    let requests = HttpMetrics::register(&mut registry, &[]);
    Router::new()
        .route("/get_message", get(get_message))
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            msglog_common::metrics::route(Arc::new(registry)),
        )
        .fallback(not_found)
        // One `layer` call for the whole stack (each call boxes every route once more),
        // outermost first.
        .layer(
            tower::ServiceBuilder::new()
                .layer(msglog_common::request_id::RequestIdLayer)
                // Counts every answer, refusals and the timeout's 408 included.
                .layer(requests.layer())
                .layer(msglog_common::http_edge::refuse_unservable_paths())
                .map_response(IntoResponse::into_response)
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &http::Request<_>| {
                        msglog_common::telemetry::http_request_span(request)
                    }),
                )
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    request_timeout,
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                )),
        )
}

#[tracing::instrument]
async fn get_message() -> &'static str {
    tracing::info!("answering the stub's text");
    NOT_IMPLEMENTED
}

async fn healthz() -> &'static str {
    "ok"
}

/// Any other path or method: a JSON 404 that quotes the path cut short.
async fn not_found(request: Request) -> Response {
    msglog_common::http_edge::json_error(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {} {}",
            request.method(),
            msglog_common::bounded::shorten_bytes(request.uri().path().as_bytes(), 64)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get(path: &str) -> (http::StatusCode, String, String) {
        let response = router(Duration::from_secs(5))
            .oneshot(http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn get_message_answers_the_originals_text_as_plain_text() {
        let (status, content_type, body) = get("/get_message").await;
        assert_eq!(status, http::StatusCode::OK);
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert_eq!(body, "not implemented yet");
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let (status, _, body) = get("/healthz").await;
        assert_eq!((status, body.as_str()), (http::StatusCode::OK, "ok"));
    }

    #[tokio::test]
    async fn unknown_path_is_a_json_404_and_every_answer_is_nosniff() {
        let response = router(Duration::from_secs(5))
            .oneshot(http::Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"error":"no route for GET /nope"}"#);
    }

    #[tokio::test]
    async fn refused_paths_are_counted_like_any_other_answer() {
        let app = router(Duration::from_secs(5));
        let long = format!("/{}", "x".repeat(3000));
        let response = app
            .clone()
            .oneshot(http::Request::get(long).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::URI_TOO_LONG);
        let metrics = app
            .oneshot(http::Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = metrics.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="unmatched",status="414"} 1"#),
            "{text}"
        );
    }
}
