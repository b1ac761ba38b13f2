//! Every error the facade answers, mapped to an HTTP status and a JSON body in one place.

use crate::retry::{RetryFailure, code_name};
use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::StatusCode;
use msglog_proto::api::ErrorBody;

/// An error answer. Internals stay out of the body: a 5xx names the dependency that failed and
/// its gRPC code, and the details go to the trace.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or a field is invalid (400). The text says what.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not JSON by its `Content-Type` (415).
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than the limit (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The id the request maps to is held with another text (422): an `Idempotency-Key`
    /// reused for a different message.
    #[error("{0}")]
    Conflict(String),
    /// No route (404).
    #[error("no route for {0}")]
    NotFound(String),
    /// The request took longer than the request timeout (503).
    #[error("the request took too long")]
    Timeout,
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Storing a message in logging failed after retries (500 `Logging service error: ...`).
    #[error("Logging service error: {}", describe(.0))]
    LogMessageFailed(RetryFailure),
    /// Listing messages from logging failed after retries (500 `Service error: ...`).
    #[error("Service error: logging service: {}", describe(.0))]
    GetMessagesFailed(RetryFailure),
}

/// `UNAVAILABLE after 3 attempts: <status message>`.
fn describe(failure: &RetryFailure) -> String {
    let attempts = match failure.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    let message = failure.status.message();
    if message.is_empty() {
        format!("{} after {attempts}", code_name(failure.status.code()))
    } else {
        format!(
            "{} after {attempts}: {message}",
            code_name(failure.status.code())
        )
    }
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::LogMessageFailed(_) | Self::GetMessagesFailed(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn failure(&self) -> Option<&RetryFailure> {
        match self {
            Self::LogMessageFailed(failure) | Self::GetMessagesFailed(failure) => Some(failure),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let failure = self.failure();
        let body = ErrorBody {
            error: self.to_string(),
            code: failure.map(|f| code_name(f.status.code()).to_owned()),
            attempts: failure.map(|f| f.attempts),
        };
        (self.status(), Json(body)).into_response()
    }
}
