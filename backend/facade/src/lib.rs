//! The facade: the system's public HTTP/JSON entry.
//!
//! `POST /send_message` gives a message an id and stores it in the logging service over gRPC,
//! retrying failed calls; `GET /get_messages` returns logging's list and the messages
//! service's text. Routes, JSON shapes and status strings are the original's.
//!
//! Run it with `cargo run -p facade-service` (listens on `0.0.0.0:8080`; see `--help`).
//!
//! # Layout
//!
//! - [`settings`]: flags and environment variables.
//! - [`extract`]: request checking; [`error`]: every error answer.
//! - [`routes`]: the handlers.
//! - [`web`]: the browser page's static files.
//! - [`ids`]: how a message's id is picked (the key to safe retries).
//! - [`retry`]: back-off, retry budget and the retry loop; [`logging_client`] and
//!   [`messages_client`]: the two dependencies.

pub mod error;
pub mod extract;
pub mod ids;
pub mod logging_client;
pub mod messages_client;
pub mod retry;
pub mod routes;
pub mod settings;
pub mod web;

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http::{HeaderValue, Request, StatusCode, header};
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

pub use crate::settings::Settings;
use crate::{
    error::AppError, ids::DedupMode, logging_client::LoggingClient,
    messages_client::MessagesClient, retry::RetryBudget,
};

/// Size limits on what clients send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest message text, in UTF-8 bytes.
    pub max_message_bytes: usize,
}

/// Everything a handler needs; cheap to clone (handles and copies).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The logging service, with retries.
    pub logging: LoggingClient,
    /// The messages service.
    pub messages: MessagesClient,
    /// How ids are picked without an `Idempotency-Key`.
    pub dedup: DedupMode,
    /// What clients may send.
    pub limits: Limits,
    /// Where the built page is (`index.html` and its assets).
    pub static_dir: Arc<Path>,
}

impl AppState {
    /// Builds the clients from the settings. Connects to nothing yet.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let policy = settings.retry_policy();
        let budget = RetryBudget::new(settings.retry_budget_tokens, settings.retry_budget_ratio);
        Ok(Self {
            logging: LoggingClient::new(&settings.logging_url, policy, budget)
                .with_context(|| format!("invalid --logging-url {:?}", settings.logging_url))?,
            messages: MessagesClient::new(
                &settings.messages_url,
                Duration::from_millis(settings.messages_timeout_ms),
            )
            .with_context(|| format!("invalid --messages-url {:?}", settings.messages_url))?,
            dedup: settings.dedup,
            limits: Limits {
                max_body_bytes: settings.max_body_bytes,
                max_message_bytes: settings.max_message_bytes,
            },
            static_dir: Arc::from(settings.static_dir.as_path()),
        })
    }
}

/// The facade's routes with their middleware: request ids (kept from the client or made
/// here, returned in `x-request-id`), tracing, a request timeout, a body limit, and a panic
/// guard that answers JSON 500 instead of dropping the connection.
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/send_message", post(routes::send_message))
        .route("/get_messages", get(routes::get_messages))
        .route("/healthz", get(routes::healthz))
        .route(
            "/api/messages",
            get(routes::get_messages).post(routes::api_send_message),
        )
        .route("/api/status", get(routes::status))
        .route("/", get(web::index))
        .route("/index.html", get(web::index))
        .fallback(web::static_or_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        // A request that takes too long (a body trickling in, say) ends with a JSON 503.
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    AppError::Timeout
                }))
                .timeout(request_timeout),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                msglog_common::telemetry::http_request_span(request)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(msglog_proto::api::ErrorBody::new("internal error")),
    )
        .into_response()
}

/// Serves [`app`] on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    request_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "facade listening");
    axum::serve(listener, app(state, request_timeout))
        .with_graceful_shutdown(shutdown)
        .await
        .context("facade server failed")
}
