//! Every error the facade answers, mapped to an HTTP status and a JSON body in one place,
//! and what gRPC codes mean to a client of the JSON API.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{StatusCode, header};
use msglog_proto::api::ErrorBody;
use tonic::Code;
use uuid::Uuid;

use crate::{
    clients::Limited,
    codes::code_name,
    ids::IdempotencyKey,
    retry::{GiveUp, RetryFailure},
};

/// An error answer. Internals stay out of the body: a 5xx names the dependency that failed and
/// its gRPC code, and the details go to the trace.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
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
    /// No route (404). Holds the path, already cut short.
    #[error("no route for {0}")]
    NotFound(String),
    /// The request took longer than the request timeout (503).
    #[error("the request took too long")]
    Timeout,
    /// The request is for a host the facade does not answer to (421). Holds the host, already
    /// cut short.
    #[error(
        "this server does not answer to the host {0:?}: add the name to --allowed-hosts \
         (FACADE_ALLOWED_HOSTS), or use an IP address or localhost"
    )]
    UnknownHost(String),
    /// The client is over its rate (429, with `Retry-After`).
    #[error(
        "too many {} from this address: at most {} a second; try again in {} s",
        .0.what,
        .0.rate,
        .0.retry_after_secs()
    )]
    TooManyRequests(Limited),
    /// The client holds as many live feeds as one client may (429). The text says so.
    #[error("{0}")]
    TooManyWatches(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `LogMessage` failed; what that means to the client depends on the last gRPC code (see
    /// [`AppError::status`]).
    #[error("{}", describe_log_failure(.failure, .id, .key.as_ref()))]
    LogMessage {
        /// The last attempt's status and how many were made.
        failure: RetryFailure,
        /// The id the message was sent under.
        id: Uuid,
        /// The client's `Idempotency-Key`, when it sent one.
        key: Option<IdempotencyKey>,
    },
    /// Listing messages from logging failed after retries (500 `Service error: ...`).
    #[error("Service error: logging service: {}", describe(.0))]
    GetMessages(RetryFailure),
}

/// `UNAVAILABLE after 3 attempts: <status message>`, saying why retries stopped early.
fn describe(failure: &RetryFailure) -> String {
    let attempts = match failure.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    let attempts = match failure.gave_up {
        GiveUp::BudgetExhausted => format!("{attempts} (retries paused: logging keeps failing)"),
        GiveUp::DeadlineReached => format!("{attempts} (no time left for another)"),
        GiveUp::NotRetryable | GiveUp::AttemptsExhausted => attempts,
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

fn describe_log_failure(failure: &RetryFailure, id: &Uuid, key: Option<&IdempotencyKey>) -> String {
    match (failure.status.code(), key) {
        (Code::AlreadyExists, Some(key)) => format!(
            "Idempotency-Key {:?} was already used for a different message",
            key.as_str()
        ),
        (Code::AlreadyExists, None) => format!("id {id} is already used by a different message"),
        // Logging refused the message itself (say, its own size limit is lower).
        (Code::InvalidArgument, _) => format!(
            "logging service refused the message: {}",
            failure.status.message()
        ),
        _ => format!("Logging service error: {}", describe(failure)),
    }
}

impl AppError {
    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::TooManyRequests(_) | Self::TooManyWatches(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::LogMessage { failure, .. } => match failure.status.code() {
                // The id is held with another text: the request conflicts with what is stored.
                Code::AlreadyExists => StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidArgument => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::GetMessages(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The failed calls to report in the body: only when a dependency failed (5xx).
    fn failure(&self) -> Option<&RetryFailure> {
        match self {
            Self::LogMessage { failure, .. } | Self::GetMessages(failure)
                if self.status().is_server_error() =>
            {
                Some(failure)
            }
            _ => None,
        }
    }
}

/// The same errors, answered at the gRPC door: the code a gRPC client expects, the same text.
impl From<AppError> for tonic::Status {
    fn from(error: AppError) -> Self {
        let code = match &error {
            AppError::BadRequest(_) | AppError::PayloadTooLarge { .. } => Code::InvalidArgument,
            AppError::UnsupportedMediaType => Code::InvalidArgument,
            AppError::NotFound(_) | AppError::MethodNotAllowed => Code::Unimplemented,
            AppError::UnknownHost(_) => Code::PermissionDenied,
            AppError::TooManyRequests(_) | AppError::TooManyWatches(_) => Code::ResourceExhausted,
            AppError::Timeout => Code::DeadlineExceeded,
            AppError::LogMessage { failure, .. } => match failure.status.code() {
                code @ (Code::AlreadyExists | Code::InvalidArgument) => code,
                // Safe to call again: a resend carries the same id.
                code if crate::retry::is_retryable(code) => Code::Unavailable,
                // What asking again cannot mend is never answered with a code that says to.
                _ => Code::Internal,
            },
            AppError::GetMessages(failure) => match failure.status.code() {
                // Logging cannot page (the original's): asking again will not help until a
                // logging that can takes its place.
                Code::Unimplemented => Code::FailedPrecondition,
                code if crate::retry::is_retryable(code) => Code::Unavailable,
                _ => Code::Internal,
            },
        };
        Self::new(code, error.to_string())
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
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::TooManyRequests(limited) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, limited.retry_after_secs().into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: Code) -> RetryFailure {
        RetryFailure {
            status: tonic::Status::new(code, "what logging said"),
            attempts: 1,
            gave_up: GiveUp::NotRetryable,
        }
    }

    #[test]
    fn a_client_is_told_to_ask_again_only_for_what_asking_again_can_mend() {
        for (code, read, write) in [
            (Code::Unavailable, Code::Unavailable, Code::Unavailable),
            (Code::DeadlineExceeded, Code::Unavailable, Code::Unavailable),
            (Code::OutOfRange, Code::Internal, Code::Internal),
            (Code::ResourceExhausted, Code::Internal, Code::Internal),
            (Code::Internal, Code::Internal, Code::Internal),
            (
                Code::Unimplemented,
                Code::FailedPrecondition,
                Code::Internal,
            ),
            (Code::AlreadyExists, Code::Internal, Code::AlreadyExists),
            (Code::InvalidArgument, Code::Internal, Code::InvalidArgument),
        ] {
            let listed = tonic::Status::from(AppError::GetMessages(failure(code)));
            assert_eq!(listed.code(), read, "a read that failed with {code:?}");
            let logged = tonic::Status::from(AppError::LogMessage {
                failure: failure(code),
                id: Uuid::nil(),
                key: None,
            });
            assert_eq!(logged.code(), write, "a write that failed with {code:?}");
        }
    }
}
