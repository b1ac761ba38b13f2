//! The messages service: the original's stub, kept as a stand-in.
//!
//! `GET /get_message` answers `200 text/plain` `not implemented yet`; `GET /healthz` answers
//! `ok` so the facade and people can see it is up.
//!
//! Run it with `cargo run -p messages-service` (listens on `0.0.0.0:8082`; `--addr` or
//! `MESSAGES_ADDR` to change).

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use tokio::net::TcpListener;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

/// The stub's only answer, the original's text.
pub const NOT_IMPLEMENTED: &str = "not implemented yet";

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
}

/// The service's routes, with request ids, tracing and a request timeout.
pub fn app(request_timeout: Duration) -> Router {
    Router::new()
        .route("/get_message", get(get_message))
        .route("/healthz", get(healthz))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &http::Request<_>| {
                msglog_common::telemetry::http_request_span(request)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    request_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "messages service listening");
    axum::serve(listener, app(request_timeout))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[tracing::instrument]
async fn get_message() -> &'static str {
    tracing::info!("answering the stub's text");
    NOT_IMPLEMENTED
}

async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get(path: &str) -> (http::StatusCode, String, String) {
        let response = app(Duration::from_secs(5))
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
    async fn unknown_path_is_404() {
        let (status, _, _) = get("/nope").await;
        assert_eq!(status, http::StatusCode::NOT_FOUND);
    }
}
