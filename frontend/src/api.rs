//! The facade's gRPC API (`msglog.v1.MessageLog`) over gRPC-web, on the page's own origin:
//! the generated client on the browser's fetch. The page speaks nothing else, so it carries no
//! JSON code.

use std::{cell::Cell, fmt, rc::Rc, time::Duration};

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

/// Held while a call waits for its answer: from [`SLOW`] on, the call counts in [`waiting`]
/// until this is dropped. (A guard rather than a wrapper of the call's future: one piece of
/// code for every call, where a generic wrapper would be compiled again for each.)
pub(crate) struct Noticed(Rc<Cell<u8>>);

/// Not yet counted; counted; answered.
const PENDING: u8 = 0;
const COUNTED: u8 = 1;
const ANSWERED: u8 = 2;

/// Starts noticing a call that begins now.
pub(crate) fn notice() -> Noticed {
    let state = Rc::new(Cell::new(PENDING));
    let timer = Rc::clone(&state);
    leptos::task::spawn_local(async move {
        gloo_timers::future::sleep(SLOW).await;
        if timer.get() == PENDING {
            timer.set(COUNTED);
            waiting().update(|count| *count += 1);
        }
    });
    Noticed(state)
}

impl Drop for Noticed {
    fn drop(&mut self) {
        if self.0.replace(ANSWERED) == COUNTED {
            waiting().update(|count| *count = count.saturating_sub(1));
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
    let _noticed = notice();
    Ok(client().send(request).await?.into_inner())
}

/// `Status`: the services at a glance.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    let _noticed = notice();
    Ok(client().status(StatusRequest {}).await?.into_inner())
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    #[test]
    fn what_the_facade_refused_is_not_sent_again_and_anything_else_may_be() {
        for code in [Code::InvalidArgument, Code::AlreadyExists, Code::OutOfRange] {
            assert!(ApiError::from(Status::new(code, "no")).refused, "{code:?}");
        }
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Aborted,
        ] {
            assert!(
                !ApiError::from(Status::new(code, "later")).refused,
                "{code:?}"
            );
        }
        // A failed fetch reads as no answer, whatever the transport said.
        let network = ApiError::from(Status::new(Code::Unknown, "TypeError: Failed to fetch"));
        assert_eq!(
            (network.code, network.message.as_str()),
            ("NETWORK", "the facade did not answer")
        );
        let said = ApiError::from(Status::new(Code::Unavailable, "logging is down"));
        assert_eq!(
            (said.code, said.message.as_str()),
            ("UNAVAILABLE", "logging is down")
        );
    }
}
