//! What the API document says of the answers and headers that several routes share: types
//! that describe (`utoipa`), named in the routes' `#[utoipa::path]` attributes.

use msglog_proto::api::ErrorBody;

/// The answers of a send other than its 200, the same for both send routes.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "describes answers; never built")]
pub(crate) enum SendRefusals {
    /// The request is malformed: the body is not UTF-8, not JSON, or not an object; `message`
    /// is missing, not a string, blank or over the limit; the `Idempotency-Key` is invalid or
    /// repeated; or logging refused the message as invalid.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body is over the limit (`--max-body-bytes`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The `Content-Type` is not `application/json` (or `application/*+json`).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// The id is already held by a different message: the `Idempotency-Key` was used for
    /// another text (or, with `--dedup content`, an id collision). Nothing was stored.
    #[response(status = 422)]
    Conflict(ErrorBody),
    /// This address sent more messages than its rate allows (`--write-rate`); `Retry-After`
    /// says when to send again.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait.")))]
    TooManyRequests(ErrorBody),
    /// Logging could not store the message within the retries (`code` is the last gRPC code,
    /// `attempts` the calls made). Sending it again cannot store it twice.
    #[response(status = 500)]
    LoggingFailed(ErrorBody),
}

/// The answers of a read of the list other than its 200.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "describes answers; never built")]
pub(crate) enum ReadFailures {
    /// Logging could not be read within the retries (`code` is the last gRPC code,
    /// `attempts` the calls made).
    #[response(status = 500)]
    LoggingFailed(ErrorBody),
}

/// The `Idempotency-Key` header of both send routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "describes a header; read by the extractor")]
pub(crate) struct SendHeaders {
    /// The client's key for this message: every send of the same message with the same key
    /// stores it once, and the same key with another text is refused (422). Without it, the
    /// id is made by the facade's `--dedup` rule. 1 to 255 visible ASCII characters.
    // Its `maxLength` is set from the rule's constant when the document is made.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        pattern = "^[!-~]+$"
    )]
    idempotency_key: Option<String>,
}
