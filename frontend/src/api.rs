//! The facade's gRPC API (`msglog.v1.MessageLog`) over gRPC-web, on the page's own origin
//! ([`crate::grpc_web`]). The page speaks nothing else, so it carries no JSON code.

use std::{cell::Cell, fmt, rc::Rc, time::Duration};

use leptos::prelude::*;

use msglog_proto::v1::{
    ListRequest, ListResponse, SendRequest, SendResponse, StatusRequest, StatusResponse,
    WatchEvent, WatchRequest,
};

use crate::grpc_web::{self, Stream};

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
    /// The server's error `code` (its name, `UNAVAILABLE`) saying `message`.
    pub(crate) fn new(code: &'static str, message: String) -> Self {
        // What the server refused itself; anything else may go another time.
        let refused = matches!(
            code,
            "INVALID_ARGUMENT"
                | "ALREADY_EXISTS"
                | "OUT_OF_RANGE"
                | "FAILED_PRECONDITION"
                | "PERMISSION_DENIED"
                | "UNAUTHENTICATED"
        );
        let message = if message.is_empty() {
            "the facade did not say why".to_owned()
        } else {
            message
        };
        Self {
            code,
            message,
            refused,
        }
    }

    /// No answer: the facade could not be reached.
    pub(crate) fn network() -> Self {
        Self {
            code: NETWORK,
            message: "the facade did not answer".to_owned(),
            refused: false,
        }
    }

    /// No answer within `limit`.
    pub(crate) fn timed_out(limit: std::time::Duration) -> Self {
        Self {
            code: "DEADLINE_EXCEEDED",
            message: format!("the facade did not answer within {} s", limit.as_secs()),
            refused: false,
        }
    }
}

/// The code of a call that got no answer.
pub(crate) const NETWORK: &str = "NETWORK";

/// A code kept as text (in the outbox) as the code it names: a gRPC code, [`NETWORK`], or
/// `ERROR` for anything else.
pub(crate) fn known_code(code: &str) -> &'static str {
    match msglog_proto::code_of(code) {
        Some(number) => msglog_proto::code_name(number),
        None if code == NETWORK => NETWORK,
        None => "ERROR",
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The path of a method of the facade's service.
macro_rules! method {
    ($name:literal) => {
        concat!("/msglog.v1.MessageLog/", $name)
    };
}

/// `Send`: stores a message under its idempotency key (every send of one message carries the
/// same key, so it is stored once however often it is sent).
pub(crate) async fn send(text: String, idempotency_key: String) -> Result<SendResponse, ApiError> {
    let request = SendRequest {
        text,
        idempotency_key,
    };
    let _noticed = notice();
    grpc_web::unary(method!("Send"), &request).await
}

/// `Status`: the services at a glance.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    let _noticed = notice();
    grpc_web::unary(method!("Status"), &StatusRequest {}).await
}

/// `List`: one page of the log.
pub(crate) async fn list(request: ListRequest) -> Result<ListResponse, ApiError> {
    let _noticed = notice();
    grpc_web::unary(method!("List"), &request).await
}

/// `Watch`: the log from a seq on, live; noticed until the stream opens.
pub(crate) async fn watch(request: WatchRequest) -> Result<Stream<WatchEvent>, ApiError> {
    let _noticed = notice();
    grpc_web::stream(method!("Watch"), &request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_facade_refused_is_not_sent_again_and_anything_else_may_be() {
        for code in ["INVALID_ARGUMENT", "ALREADY_EXISTS", "OUT_OF_RANGE"] {
            assert!(ApiError::new(code, "no".to_owned()).refused, "{code}");
        }
        for code in ["UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN", "ABORTED"] {
            assert!(!ApiError::new(code, "later".to_owned()).refused, "{code}");
        }
        assert!(!ApiError::network().refused);
        let said = ApiError::new("UNAVAILABLE", "logging is down".to_owned());
        assert_eq!(
            (said.code, said.message.as_str()),
            ("UNAVAILABLE", "logging is down")
        );
    }

    #[test]
    fn codes_kept_as_text_come_back_as_themselves() {
        for code in ["UNAVAILABLE", "INVALID_ARGUMENT", NETWORK] {
            assert_eq!(known_code(code), code);
        }
        assert_eq!(known_code("SOMETHING"), "ERROR");
    }
}
