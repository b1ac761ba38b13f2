//! The one start-up path: [`Application::build`] checks the settings, builds the clients and
//! binds the port; [`Application::run_until`] serves until a shutdown signal and drains.
//! `main.rs` and every test build the facade this way.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http::{HeaderValue, Request, StatusCode, header};
use msglog_common::server::Bound;
use msglog_proto::api::paths;
use tower_http::{
    catch_panic::CatchPanicLayer, compression::CompressionLayer,
    set_header::SetResponseHeaderLayer, trace::TraceLayer,
};

use crate::{
    error::AppError,
    routes::{self, api, original},
    settings::Settings,
    state::AppState,
    web,
};

/// The facade, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    /// The bound listener, with its connection limits.
    bound: Bound,
    /// Every route with its middleware.
    router: Router,
}

impl Application {
    /// Builds the clients of logging and messages (connecting to nothing yet, so the facade
    /// starts whether or not they are up) and binds the address.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let state = AppState::from_settings(settings)?;
        tracing::info!(
            logging = %settings.logging_url,
            messages = %settings.messages_url,
            dedup = ?settings.dedup,
            "starting facade"
        );
        let router = router(state, Duration::from_millis(settings.request_timeout_ms));
        let bound = Bound::bind(
            settings.addr,
            settings.connections.limits(),
            Duration::from_millis(settings.shutdown_grace_ms),
        )
        .await?;
        Ok(Self { bound, router })
    }

    /// Where the facade listens (the real port when the settings asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.bound.addr()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded by the
    /// grace period).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr(), "facade listening");
        self.bound.serve(self.router, shutdown).await
    }
}

/// The facade's routes with their middleware, outermost first: the request-id rule (the id
/// returned in `x-request-id` and forwarded), refusal of unservable paths, a span per request
/// keyed by its route, a request timeout (a JSON 503), a panic guard (a JSON 500), the security
/// headers, compression, and a body limit.
fn router(state: AppState, request_timeout: Duration) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route(paths::SEND_MESSAGE, post(original::send_message))
        .route(paths::GET_MESSAGES, get(original::get_messages))
        .route(paths::HEALTHZ, get(routes::healthz))
        .nest(paths::API, api::router())
        .route("/", get(web::index))
        .route("/index.html", get(web::index))
        .fallback(web::static_or_not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CompressionLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            web::policy_if_html,
        ))
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
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                msglog_common::telemetry::http_request_span(request)
            }),
        )
        .layer(axum::middleware::from_fn(
            msglog_common::http_edge::refuse_unservable_paths,
        ))
        .layer(msglog_common::request_id::RequestIdLayer)
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(msglog_proto::api::ErrorBody::new("internal error")),
    )
        .into_response()
}
