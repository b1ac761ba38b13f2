//! The operations routes, outside the doors: liveness, metrics, and the answer to a known path
//! asked with the wrong method.

use msglog_proto::api::ErrorBody;

use crate::{error::AppError, state::AppState};

/// `GET /healthz`: the facade itself is up (it says nothing of its dependencies).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness",
    description = "`ok` whenever the facade answers, whatever the services behind it do (see \
        `GET /api/status` for them).",
    responses((status = 200, description = "The facade is up.", body = String,
        content_type = "text/plain; charset=utf-8")),
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`: every metric in the Prometheus (OpenMetrics) text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "The metrics, as OpenMetrics text.", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 500, description = "The metrics could not be encoded.", body = ErrorBody),
    ),
)]
pub(crate) async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    msglog_common::metrics::exposition(&state.metrics.registry)
}

/// A known path with the wrong method: a JSON 405.
pub(crate) async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
