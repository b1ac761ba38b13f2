//! The facade's gRPC API (`msglog.v1.MessageLog`) over gRPC-web, on the page's own origin:
//! the generated client on the browser's fetch. The page speaks nothing else, so it carries no
//! JSON code.

use std::fmt;

use msglog_proto::v1::{
    SendRequest, SendResponse, StatusRequest, StatusResponse, message_log_client::MessageLogClient,
};
use tonic_web_wasm_client::Client;

/// The generated client, on the page's origin.
pub(crate) type Api = MessageLogClient<Client>;

/// A client of the facade that served the page.
pub(crate) fn client() -> Api {
    let origin = leptos::prelude::window()
        .location()
        .origin()
        .unwrap_or_default();
    MessageLogClient::new(Client::new(origin))
}

/// Why a call to the facade failed, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The gRPC code's name (`UNAVAILABLE`), or `NETWORK` when there was no answer.
    pub(crate) code: &'static str,
    /// What the facade said, or what went wrong on the way.
    pub(crate) message: String,
    /// The facade refused the request itself (invalid, too large, a key reused for another
    /// text): sending it again cannot succeed. Anything else (no answer, a dependency down, a
    /// timeout) may succeed later.
    pub(crate) refused: bool,
}

impl ApiError {
    /// No answer within `limit`.
    pub(crate) fn timed_out(limit: std::time::Duration) -> Self {
        Self {
            code: "DEADLINE_EXCEEDED",
            message: format!("the facade did not answer within {} s", limit.as_secs()),
            refused: false,
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let code = match status.code() {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::Unavailable => "UNAVAILABLE",
            Code::Aborted => "ABORTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            // What the transport reports when the fetch itself failed.
            Code::Unknown | Code::Internal => "NETWORK",
            _ => "ERROR",
        };
        let refused = matches!(
            status.code(),
            Code::InvalidArgument
                | Code::AlreadyExists
                | Code::OutOfRange
                | Code::FailedPrecondition
                | Code::PermissionDenied
                | Code::Unauthenticated
        );
        let message = match (code, status.message()) {
            ("NETWORK", _) | (_, "") => "the facade did not answer".to_owned(),
            (_, message) => message.to_owned(),
        };
        Self {
            code,
            message,
            refused,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Send`: stores a message under its idempotency key (every send of one message carries the
/// same key, so it is stored once however often it is sent).
pub(crate) async fn send(text: String, idempotency_key: String) -> Result<SendResponse, ApiError> {
    let request = SendRequest {
        text,
        idempotency_key,
    };
    Ok(client().send(request).await?.into_inner())
}

/// `Status`: the services at a glance.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    Ok(client().status(StatusRequest {}).await?.into_inner())
}
