//! Extractors that turn a raw request into checked values, or into an [`AppError`] that says
//! what was wrong. Handlers only ever see the checked values.

use std::convert::Infallible;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
};
use http::{HeaderMap, header, request::Parts};
use msglog_proto::{MessageText, MessageTextError};
use serde_json::Value;

use crate::{
    error::AppError,
    ids::{IDEMPOTENCY_KEY_RULE, IdempotencyKey},
    state::AppState,
};

/// The original's answer to a missing or empty message.
pub(crate) const NO_MESSAGE: &str = "No message provided";

/// The request id settled by the request-id rule (`msglog_common::request_id`): the client's
/// when it was short visible ASCII, else a fresh UUID. This one id is forwarded to the other
/// services.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            msglog_common::request_id::in_headers(&parts.headers).to_owned(),
        ))
    }
}

/// The client a request came from: its peer's IP address (`None` with no socket, as when a
/// test calls the router directly).
pub(crate) fn client_ip(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<msglog_common::server::Peer>()
        .map(|peer| peer.0.ip())
}

/// A request the client may make now: within its rate of `K` (`--write-rate`, `--status-rate`),
/// or answered 429 before its body is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WithinRate<K>(std::marker::PhantomData<K>);

/// Which rate a [`WithinRate`] takes from.
pub(crate) trait RateOf {
    /// The limit in `state`.
    fn limit(state: &AppState) -> &crate::clients::RateLimit;
}

/// Messages sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writes;

impl RateOf for Writes {
    fn limit(state: &AppState) -> &crate::clients::RateLimit {
        &state.write_rate
    }
}

/// Status checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusRequests;

impl RateOf for StatusRequests {
    fn limit(state: &AppState) -> &crate::clients::RateLimit {
        &state.status_rate
    }
}

impl<K: RateOf> FromRequestParts<AppState> for WithinRate<K> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        K::limit(state)
            .take(client_ip(&parts.extensions))
            .map(|()| Self(std::marker::PhantomData))
            .map_err(AppError::TooManyRequests)
    }
}

/// A query string decoded into `T`, or a JSON 400 that says which parameter is wrong.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| AppError::BadRequest(rejection.body_text()))
    }
}

/// The optional `Idempotency-Key` header, checked.
#[derive(Debug, Clone)]
pub(crate) struct MaybeIdempotencyKey(pub(crate) Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeIdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(AppError::BadRequest(
                "send at most one Idempotency-Key header".to_owned(),
            ));
        }
        IdempotencyKey::parse(value.as_bytes())
            .map(|key| Self(Some(key)))
            .ok_or_else(|| AppError::BadRequest(IDEMPOTENCY_KEY_RULE.to_owned()))
    }
}

/// The body of `POST /send_message`: a JSON object whose `message` is a non-blank string
/// within the limit. Other fields are ignored, as the original did.
#[derive(Debug, Clone)]
pub(crate) struct SendMessageBody(pub(crate) MessageText);

impl FromRequest<AppState> for SendMessageBody {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limits = state.limits;
        if !is_json(request.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        // Refuse a declared oversize body before reading any of it.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
            return Err(AppError::PayloadTooLarge {
                limit: limits.max_body_bytes,
            });
        }
        // The router's `DefaultBodyLimit` stops reading an undeclared (chunked) body at the
        // limit, so memory stays bounded whatever the client sends.
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge {
                        limit: limits.max_body_bytes,
                    }
                } else {
                    AppError::BadRequest(format!(
                        "cannot read the request body: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        parse_send_message(&bytes, limits.max_message_bytes).map(Self)
    }
}

/// Parses and checks a `send_message` body; separate from the extractor so it is tested alone.
pub(crate) fn parse_send_message(
    body: &[u8],
    max_message_bytes: usize,
) -> Result<MessageText, AppError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| AppError::BadRequest("request body is not valid UTF-8".to_owned()))?;
    if text.trim().is_empty() {
        return Err(AppError::BadRequest(
            r#"request body is empty; send {"message": "<text>"}"#.to_owned(),
        ));
    }
    let StrictJson(value) = serde_json::from_str(text)
        .map_err(|error| AppError::BadRequest(format!("malformed JSON: {error}")))?;
    let Value::Object(mut object) = value else {
        return Err(AppError::BadRequest(
            r#"request body must be a JSON object like {"message": "<text>"}"#.to_owned(),
        ));
    };
    let message = match object.remove("message") {
        None | Some(Value::Null) => return Err(AppError::BadRequest(NO_MESSAGE.to_owned())),
        Some(Value::String(message)) => message,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "message must be a JSON string, not {}",
                json_type(&other)
            )));
        }
    };
    MessageText::parse(message, max_message_bytes).map_err(|error| match error {
        MessageTextError::Empty => AppError::BadRequest(NO_MESSAGE.to_owned()),
        too_long @ MessageTextError::TooLong { .. } => AppError::BadRequest(too_long.to_string()),
    })
}

/// A JSON value, read as `serde_json` reads one except that an object that names a key twice is
/// malformed: which of the two a reader takes differs between readers, so a body that says two
/// things is refused rather than read one way here and another elsewhere.
struct StrictJson(Value);

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Self)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {:?} appears twice",
                    msglog_common::bounded::shorten_bytes(key.as_bytes(), 64)
                )));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `application/json`, or any `application/*+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(body: &[u8]) -> String {
        parse_send_message(body, 10).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_body_yields_the_exact_text() {
        let text = parse_send_message(br#"{"message": " hi\u0000 ", "extra": 1}"#, 10).unwrap();
        assert_eq!(text.as_str(), " hi\u{0} ");
    }

    #[test]
    fn each_bad_body_says_what_is_wrong() {
        assert_eq!(error_of(br#"{}"#), NO_MESSAGE);
        assert_eq!(error_of(br#"{"message": null}"#), NO_MESSAGE);
        assert_eq!(error_of(br#"{"message": ""}"#), NO_MESSAGE);
        assert_eq!(error_of(br#"{"message": " \t "}"#), NO_MESSAGE);
        assert_eq!(
            error_of(br#"{"message": 5}"#),
            "message must be a JSON string, not a number"
        );
        assert_eq!(
            error_of(br#"{"message": ["a"]}"#),
            "message must be a JSON string, not an array"
        );
        assert!(error_of(br#"["message"]"#).contains("must be a JSON object"));
        assert!(error_of(br#"{"message": "x""#).starts_with("malformed JSON"));
        assert!(error_of(b"").contains("body is empty"));
        // Two things said at once: refused, at any depth.
        for twice in [
            &br#"{"message": "a", "message": "b"}"#[..],
            br#"{"message": "a", "x": {"k": 1, "k": 2}}"#,
            br#"{"message": "a", "x": [{"k": 1, "k": 1}]}"#,
        ] {
            let error = error_of(twice);
            assert!(
                error.starts_with("malformed JSON: the key \"") && error.contains("appears twice"),
                "{error}"
            );
        }
        assert_eq!(
            error_of("{\"message\": \"\u{200B}\u{2060}\"}".as_bytes()),
            NO_MESSAGE,
            "nothing visible is no message"
        );
        // The same key in two objects is no repeat.
        let text = parse_send_message(br#"{"a": {"k": 1}, "b": {"k": 2}, "message": "ok"}"#, 10);
        assert_eq!(text.unwrap().as_str(), "ok");
        assert_eq!(
            error_of(b"{\"message\": \"\xff\"}"),
            "request body is not valid UTF-8"
        );
        assert_eq!(
            error_of(br#"{"message": "eleven byte"}"#),
            "message is 11 bytes long; the limit is 10 bytes"
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let body = format!(
            r#"{{"message": "a", "x": {}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(error_of(body.as_bytes()).contains("recursion limit"));
    }

    #[test]
    fn json_content_types_are_recognised() {
        let check = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            is_json(&headers)
        };
        assert!(check("application/json"));
        assert!(check("Application/JSON; charset=utf-8"));
        assert!(check("application/merge-patch+json"));
        assert!(!check("text/plain"));
        assert!(!check("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }

    proptest::proptest! {
        /// Any bytes as a body: a text, or a 400 that says what was wrong; never a panic.
        #[test]
        fn any_body_gives_a_text_or_a_clear_400(body in proptest::collection::vec(
            proptest::prelude::any::<u8>(),
            0..512,
        )) {
            match parse_send_message(&body, 64) {
                Ok(text) => proptest::prop_assert!(!text.as_str().trim().is_empty()),
                Err(AppError::BadRequest(reason)) => proptest::prop_assert!(!reason.is_empty()),
                Err(other) => proptest::prop_assert!(false, "not a 400: {other:?}"),
            }
        }

        /// Any text sent as `{"message": ...}`, whatever it holds (quotes, escapes, any
        /// Unicode): taken exactly as sent when it is not blank and fits, a 400 otherwise.
        #[test]
        fn any_message_in_json_is_taken_exactly_or_refused(text in proptest::prelude::any::<String>()) {
            let body = serde_json::json!({ "message": text }).to_string();
            let fits = !text.chars().all(msglog_proto::is_invisible) && text.len() <= 64;
            match parse_send_message(body.as_bytes(), 64) {
                Ok(parsed) => {
                    proptest::prop_assert!(fits);
                    proptest::prop_assert_eq!(parsed.as_str(), text.as_str());
                }
                Err(AppError::BadRequest(_)) => proptest::prop_assert!(!fits),
                Err(other) => proptest::prop_assert!(false, "not a 400: {other:?}"),
            }
        }
    }
}
