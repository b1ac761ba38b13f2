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
            // What the transport reports when the fetch itself failed.
            Code::Unknown | Code::Internal => "NETWORK",
            _ => "ERROR",
        };
        let message = match (code, status.message()) {
            ("NETWORK", _) | (_, "") => "the facade did not answer".to_owned(),
            (_, message) => message.to_owned(),
        };
        Self { code, message }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// `Send`: stores a message; the facade picks its id.
pub(crate) async fn send(text: String) -> Result<SendResponse, ApiError> {
    let request = SendRequest {
        text,
        idempotency_key: String::new(),
    };
    Ok(client().send(request).await?.into_inner())
}

/// `Status`: the services at a glance.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    Ok(client().status(StatusRequest {}).await?.into_inner())
}
