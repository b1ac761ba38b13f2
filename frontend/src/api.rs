//! The facade's gRPC API (`msglog.v1.MessageLog`) over gRPC-web, on the page's own origin:
//! the generated client on the browser's fetch. The page speaks nothing else, so it carries no
//! JSON code.

use std::{fmt, future::Future, time::Duration};

use futures_util::future::{Either, select};
use leptos::prelude::*;

use msglog_proto::v1::{
    SendRequest, SendResponse, StatusRequest, StatusResponse, message_log_client::MessageLogClient,
};
use tonic_web_wasm_client::Client;

/// The generated client, on the page's origin.
pub(crate) type Api = MessageLogClient<Client>;

/// A call unanswered for this long is shown as waiting (see [`waiting`]).
const SLOW: Duration = Duration::from_secs(5);

thread_local! {
    // Counted, not owned by a view: it lives as long as the page.
    static WAITING: ArcRwSignal<u32> = ArcRwSignal::new(0);
}

/// Calls to the facade that have waited longer than [`SLOW`] for an answer, now. A browser
/// holds back requests to a site beyond its few connections, and says nothing: the page says
/// it instead.
pub(crate) fn waiting() -> ArcRwSignal<u32> {
    WAITING.with(ArcRwSignal::clone)
}

/// Counts one call in [`waiting`] until it is answered (or given up).
struct Waiting(ArcRwSignal<u32>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.update(|count| *count = count.saturating_sub(1));
    }
}

/// `call`, counted in [`waiting`] from [`SLOW`] after it began until its answer.
pub(crate) async fn noticed<T>(call: impl Future<Output = T>) -> T {
    let mut call = std::pin::pin!(call);
    let slow = std::pin::pin!(gloo_timers::future::sleep(SLOW));
    match select(call.as_mut(), slow).await {
        Either::Left((answer, _)) => answer,
        Either::Right(((), _)) => {
            let waiting = waiting();
            waiting.update(|count| *count += 1);
            let _counted = Waiting(waiting);
            call.await
        }
    }
}

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
    Ok(noticed(client().send(request)).await?.into_inner())
}

/// `Status`: the services at a glance.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    Ok(noticed(client().status(StatusRequest {})).await?.into_inner())
}
