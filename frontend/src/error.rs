//! Why a call to the facade failed, in the words the page shows and the codes it keeps:
//! what the transport ([`crate::grpc_web`]) reports and the calls ([`crate::api`]) return.

use std::fmt;

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

/// Tells the browser's console that `what` failed, with the browser's own error object as it
/// is (the console shows it whole; no formatting machinery in the page).
pub(crate) fn console_error(what: &str, error: &wasm_bindgen::JsValue) {
    web_sys::console::error_2(&what.into(), error);
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
