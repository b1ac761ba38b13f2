//! Random and broken input at the gRPC doors: logging's `LoggingService` and the facade's
//! `msglog.v1.MessageLog`, each over native gRPC (HTTP/2), gRPC-web and gRPC-web-text
//! (HTTP/1.1), and the facade's also in the Connect protocol (binary and JSON; a unary call's
//! body is the bare message, a stream's request one envelope). Property tests (proptest) make
//! each request: well-formed with random field values, well-formed but cut short, random bytes
//! in a frame, a frame whose header lies, or random bytes that are not a frame at all.
//!
//! For every request, whatever it is:
//! - the service answers it (a status, or for a stream its start), and nothing panics;
//! - the store grows by exactly the messages the answer says were stored, and a message
//!   answered as stored was valid by the services' own rules (non-blank text within the
//!   limit, a UUID id, an `Idempotency-Key` of visible ASCII), so an invalid request stores
//!   nothing and no message is lost or doubled;
//! - after all of them, the service still serves a valid request.

use std::{
    sync::{
        Once,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use msglog_common::testing::{GrpcWebFrame, GrpcWebFrames, grpc_frame};
use msglog_proto::{
    logging::{
        Empty, ListMessagesRequest, LogItem, LogMessagesRequest, LogMessagesResponse, LogRequest,
        LogResponse, STATUS_LOGGED, WatchMessagesRequest,
        logging_service_client::LoggingServiceClient,
    },
    v1,
};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestRunner},
};
use prost::Message as _;
use uuid::Uuid;

use crate::helpers::{
    InProcess, channel, facade_settings, logging_settings, spawn_facade, spawn_logging_with,
    spawn_messages,
};

/// The message limit of both services here: small, so over-limit texts are cheap to make.
const MAX_MESSAGE_BYTES: usize = 100;
/// Cases per service.
const CASES: u32 = 300;
/// How long a stream is read for once it has started; a unary answer has 10 s.
const STREAM_IDLE: Duration = Duration::from_millis(200);

/// Panics anywhere in this process (the services run in it), counted.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// The ways a call reaches a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// HTTP/2, `application/grpc`.
    Grpc,
    /// HTTP/1.1, `application/grpc-web+proto`.
    GrpcWeb,
    /// HTTP/1.1, `application/grpc-web-text` (the body in base64).
    GrpcWebText,
    /// HTTP/1.1, Connect with protobuf: `application/proto` (a stream:
    /// `application/connect+proto`).
    ConnectProto,
    /// HTTP/1.1, Connect with JSON: `application/json` (a stream: `application/connect+json`).
    ConnectJson,
}

/// The gRPC doors (logging's).
fn door() -> impl Strategy<Value = Door> {
    prop_oneof![
        Just(Door::Grpc),
        Just(Door::GrpcWeb),
        Just(Door::GrpcWebText)
    ]
}

/// The gRPC doors and Connect's (the facade's).
fn gateway_door() -> impl Strategy<Value = Door> {
    prop_oneof![
        3 => door(),
        1 => Just(Door::ConnectProto),
        1 => Just(Door::ConnectJson),
    ]
}

impl Door {
    /// The request's body for `body` made of a well-formed request whose encoding (protobuf)
    /// is `message`, for a call of `method`, and whether gRPC-web-text sends it as it is.
    fn body(self, body: &Body, method: &str, message: &[u8], stream: bool) -> (Vec<u8>, bool) {
        let message = match self {
            Self::ConnectJson => json_request(method, message).unwrap_or_else(|| message.to_vec()),
            _ => message.to_vec(),
        };
        match self {
            Self::ConnectProto | Self::ConnectJson if !stream => (body.bare(&message), false),
            _ => body.bytes(&message),
        }
    }

    /// The message a service may decode from `bytes` and act on, as protobuf: one whole
    /// uncompressed frame (the bare body for a Connect unary call; JSON made protobuf).
    fn sent(self, method: &str, bytes: &[u8], stream: bool) -> Option<Vec<u8>> {
        let message = match self {
            Self::ConnectProto | Self::ConnectJson if !stream => bytes,
            _ => only_frame(bytes)?,
        };
        match self {
            Self::ConnectJson => proto_request(method, message),
            _ => Some(message.to_vec()),
        }
    }
}

/// A request of `method` (protobuf) in the canonical JSON mapping, when it has one.
fn json_request(method: &str, message: &[u8]) -> Option<Vec<u8>> {
    match method {
        "Send" => serde_json::to_vec(&v1::SendRequest::decode(message).ok()?).ok(),
        "List" => serde_json::to_vec(&v1::ListRequest::decode(message).ok()?).ok(),
        "Watch" => serde_json::to_vec(&v1::WatchRequest::decode(message).ok()?).ok(),
        "Status" => serde_json::to_vec(&v1::StatusRequest::decode(message).ok()?).ok(),
        _ => None,
    }
}

/// A JSON request of `method` as protobuf, when it is one.
fn proto_request(method: &str, json: &[u8]) -> Option<Vec<u8>> {
    match method {
        "Send" => Some(
            serde_json::from_slice::<v1::SendRequest>(json)
                .ok()?
                .encode_to_vec(),
        ),
        "List" => Some(
            serde_json::from_slice::<v1::ListRequest>(json)
                .ok()?
                .encode_to_vec(),
        ),
        "Watch" => Some(
            serde_json::from_slice::<v1::WatchRequest>(json)
                .ok()?
                .encode_to_vec(),
        ),
        "Status" => Some(
            serde_json::from_slice::<v1::StatusRequest>(json)
                .ok()?
                .encode_to_vec(),
        ),
        _ => None,
    }
}

/// A JSON answer of `method` as protobuf; a failure when it is not one.
fn proto_answer(method: &str, json: &[u8]) -> Vec<u8> {
    let decoded = match method {
        "Send" => serde_json::from_slice::<v1::SendResponse>(json).map(|m| m.encode_to_vec()),
        "List" => serde_json::from_slice::<v1::ListResponse>(json).map(|m| m.encode_to_vec()),
        "Watch" => serde_json::from_slice::<v1::WatchEvent>(json).map(|m| m.encode_to_vec()),
        _ => serde_json::from_slice::<v1::StatusResponse>(json).map(|m| m.encode_to_vec()),
    };
    decoded.unwrap_or_else(|error| {
        panic!(
            "an answer of {method} that is not its message in JSON ({error}): {}",
            String::from_utf8_lossy(json)
        )
    })
}

/// What a request's body is made of.
#[derive(Debug, Clone)]
enum Body {
    /// The well-formed request, in one frame.
    Whole,
    /// The request cut short; the frame's header gives the length sent, or the whole length.
    Cut {
        keep: Index,
        header_says_whole: bool,
    },
    /// Random bytes in a well-formed frame.
    RandomMessage(Vec<u8>),
    /// A frame whose flag byte or length may lie.
    LyingHeader {
        flag: u8,
        len: u32,
        payload: Vec<u8>,
    },
    /// Random bytes, not a frame (for gRPC-web-text, not even base64 when `raw`).
    Random { bytes: Vec<u8>, raw: bool },
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => Just(Body::Whole),
        2 => (any::<Index>(), any::<bool>())
            .prop_map(|(keep, header_says_whole)| Body::Cut { keep, header_says_whole }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::RandomMessage),
        1 => (any::<u8>(), prop_oneof![0..64_u32, any::<u32>()], prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(flag, len, payload)| Body::LyingHeader { flag, len, payload }),
        1 => (prop::collection::vec(any::<u8>(), 0..64), any::<bool>())
            .prop_map(|(bytes, raw)| Body::Random { bytes, raw }),
    ]
}

impl Body {
    /// The body's bytes (before gRPC-web-text's base64) for a request whose encoding is
    /// `message`, and whether gRPC-web-text should send them as they are.
    fn bytes(&self, message: &[u8]) -> (Vec<u8>, bool) {
        match self {
            Self::Whole => (grpc_frame(message), false),
            Self::Cut {
                keep,
                header_says_whole,
            } => {
                let kept = &message[..keep.index(message.len() + 1)];
                let mut frame = grpc_frame(kept);
                if *header_says_whole {
                    let whole = u32::try_from(message.len()).unwrap();
                    frame[1..5].copy_from_slice(&whole.to_be_bytes());
                }
                (frame, false)
            }
            Self::RandomMessage(bytes) => (grpc_frame(bytes), false),
            Self::LyingHeader { flag, len, payload } => {
                let mut frame = vec![*flag];
                frame.extend_from_slice(&len.to_be_bytes());
                frame.extend_from_slice(payload);
                (frame, false)
            }
            Self::Random { bytes, raw } => (bytes.clone(), *raw),
        }
    }

    /// The body without a frame around it (a Connect unary call's).
    fn bare(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Whole => message.to_vec(),
            Self::Cut { keep, .. } => message[..keep.index(message.len() + 1)].to_vec(),
            Self::RandomMessage(bytes) => bytes.clone(),
            Self::LyingHeader { .. } | Self::Random { .. } => self.bytes(message).0,
        }
    }
}

/// The message in a body that is one well-formed, uncompressed frame: what a service may
/// decode and act on.
fn only_frame(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    (flag == 0 && rest.len() == 4 + len).then(|| &rest[4..])
}

/// A service's answer to one call.
#[derive(Debug, Default)]
struct Answer {
    http: u16,
    /// The gRPC status, when the call ended (a stream may still be open).
    grpc_status: Option<i32>,
    messages: Vec<Vec<u8>>,
}

impl Answer {
    fn ok(&self) -> bool {
        self.http == 200 && self.grpc_status == Some(0)
    }
}

/// Calls over the three doors.
struct Caller {
    h2: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    http1: reqwest::Client,
}

impl Caller {
    fn new() -> Self {
        Self {
            h2: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http(),
            http1: reqwest::Client::builder().http1_only().build().unwrap(),
        }
    }

    /// Sends `body` to `url` through `door`; a stream is read until it is idle for
    /// [`STREAM_IDLE`], a unary answer to its end.
    async fn call(&self, door: Door, url: &str, body: Vec<u8>, raw: bool, stream: bool) -> Answer {
        let limit = if stream {
            STREAM_IDLE
        } else {
            Duration::from_secs(10)
        };
        match door {
            Door::Grpc => self.call_h2(url, body, stream, limit).await,
            Door::GrpcWeb | Door::GrpcWebText => {
                self.call_web(door, url, body, raw, stream, limit).await
            }
            Door::ConnectProto | Door::ConnectJson => {
                self.call_connect(door, url, body, stream, limit).await
            }
        }
    }

    /// A Connect call: a unary answer is the message (its status 200) or a Connect error
    /// (JSON with a code, its HTTP status from Connect's table); a stream's answer is 200 with
    /// envelopes, the last one its end (with the error, if any). Messages are kept as
    /// protobuf (JSON ones made protobuf, failing when they are not their method's message).
    async fn call_connect(
        &self,
        door: Door,
        url: &str,
        body: Vec<u8>,
        stream: bool,
        limit: Duration,
    ) -> Answer {
        let json = door == Door::ConnectJson;
        let content_type = match (json, stream) {
            (true, true) => "application/connect+json",
            (true, false) => "application/json",
            (false, true) => "application/connect+proto",
            (false, false) => "application/proto",
        };
        let method = url.rsplit('/').next().unwrap_or_default().to_owned();
        let mut response = self
            .http1
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("an HTTP/1.1 answer");
        let mut answer = Answer {
            http: response.status().as_u16(),
            ..Answer::default()
        };
        let mut bytes = Vec::new();
        loop {
            match tokio::time::timeout(limit, response.chunk()).await {
                Err(_) if stream => break,
                Err(_) => panic!("a unary answer did not end within {limit:?}"),
                Ok(chunk) => match chunk.expect("the answer's body arrives whole") {
                    Some(chunk) => bytes.extend_from_slice(&chunk),
                    None => break,
                },
            }
        }
        if !stream || answer.http != 200 {
            if answer.http == 200 {
                answer.grpc_status = Some(0);
                answer.messages.push(if json {
                    proto_answer(&method, &bytes)
                } else {
                    bytes
                });
            } else {
                answer.grpc_status = Some(connect_error_code(answer.http, &bytes));
            }
            return answer;
        }
        let mut rest = bytes.as_slice();
        while let Some((&flags, after)) = rest.split_first() {
            let length = u32::from_be_bytes(after[..4].try_into().expect("an envelope")) as usize;
            let message = &after[4..4 + length];
            rest = &after[4 + length..];
            if flags & 0x02 != 0 {
                let end: serde_json::Value =
                    serde_json::from_slice(message).expect("the end of a stream is JSON");
                answer.grpc_status = Some(match end.get("error") {
                    None => 0,
                    Some(error) => connect_code(error["code"].as_str().expect("an error's code")),
                });
                assert!(rest.is_empty(), "nothing after the end of a stream");
            } else {
                assert_eq!(flags, 0, "uncompressed, as asked");
                answer.messages.push(if json {
                    proto_answer(&method, message)
                } else {
                    message.to_vec()
                });
            }
        }
        answer
    }

    async fn call_h2(&self, url: &str, body: Vec<u8>, stream: bool, limit: Duration) -> Answer {
        let request = http::Request::post(url)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.h2.request(request))
            .await
            .expect("an answer within 10 s")
            .expect("an HTTP/2 answer");
        let mut answer = Answer {
            http: response.status().as_u16(),
            grpc_status: grpc_status(response.headers()),
            ..Answer::default()
        };
        let mut frames = GrpcWebFrames::binary();
        let mut body = response.into_body();
        loop {
            match tokio::time::timeout(limit, body.frame()).await {
                Err(_) if stream => break,
                Err(_) => panic!("a unary answer did not end within {limit:?}"),
                Ok(None) => break,
                Ok(Some(frame)) => {
                    let frame = frame.expect("the answer's body arrives whole");
                    if let Some(trailers) = frame.trailers_ref() {
                        answer.grpc_status = grpc_status(trailers);
                    } else if let Ok(data) = frame.into_data() {
                        frames.push(&data);
                    }
                }
            }
        }
        while let Some(GrpcWebFrame::Message(message)) = frames.next_frame() {
            answer.messages.push(message);
        }
        answer
    }

    async fn call_web(
        &self,
        door: Door,
        url: &str,
        body: Vec<u8>,
        raw: bool,
        stream: bool,
        limit: Duration,
    ) -> Answer {
        use base64::Engine as _;
        let (content_type, body) = match door {
            Door::GrpcWebText if raw => ("application/grpc-web-text", body),
            Door::GrpcWebText => (
                "application/grpc-web-text",
                base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into_bytes(),
            ),
            _ => ("application/grpc-web+proto", body),
        };
        let mut response = self
            .http1
            .post(url)
            .header("content-type", content_type)
            .header("x-grpc-web", "1")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("an HTTP/1.1 answer");
        // Frames as the answer says it is encoded; an answer that is not gRPC-web has none.
        let answered = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut frames = if answered.starts_with("application/grpc-web-text") {
            Some(GrpcWebFrames::text())
        } else if answered.starts_with("application/grpc-web") {
            Some(GrpcWebFrames::binary())
        } else {
            None
        };
        let mut answer = Answer {
            http: response.status().as_u16(),
            grpc_status: grpc_status(response.headers()),
            ..Answer::default()
        };
        loop {
            match tokio::time::timeout(limit, response.chunk()).await {
                Err(_) if stream => break,
                Err(_) => panic!("a unary answer did not end within {limit:?}"),
                Ok(chunk) => match chunk.expect("the answer's body arrives whole") {
                    Some(chunk) => {
                        if let Some(frames) = &mut frames {
                            frames.push(&chunk);
                        }
                    }
                    None => break,
                },
            }
        }
        let mut frames = frames.unwrap_or_default();
        while let Some(frame) = frames.next_frame() {
            match frame {
                GrpcWebFrame::Message(message) => answer.messages.push(message),
                GrpcWebFrame::Trailers(trailers) => {
                    answer.grpc_status = trailers.lines().find_map(|line| {
                        line.strip_prefix("grpc-status:")
                            .and_then(|code| code.trim().parse().ok())
                    });
                }
            }
        }
        answer
    }
}

/// The code of a Connect error answer, checking it is one: JSON with a known code, with the
/// HTTP status Connect's table gives that code.
fn connect_error_code(http: u16, body: &[u8]) -> i32 {
    if http == 415 {
        // A content type not served: the protocol leaves the body free.
        return tonic::Code::Internal as i32;
    }
    let error: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "a Connect error that is not JSON: {}",
            String::from_utf8_lossy(body)
        )
    });
    let code = connect_code(error["code"].as_str().expect("an error's code"));
    let expected = match tonic::Code::from(code) {
        tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::OutOfRange => 400,
        tonic::Code::ResourceExhausted => 429,
        tonic::Code::Unavailable => 503,
        tonic::Code::DeadlineExceeded => 504,
        tonic::Code::Unimplemented => 501,
        tonic::Code::AlreadyExists | tonic::Code::Aborted => 409,
        _ => 500,
    };
    assert_eq!(http, expected, "{error}");
    code
}

/// A Connect code name as a gRPC code.
fn connect_code(name: &str) -> i32 {
    let name = if name == "canceled" {
        "CANCELLED".to_owned()
    } else {
        name.to_ascii_uppercase()
    };
    msglog_proto::code_of(&name).unwrap_or_else(|| panic!("an unknown Connect code {name:?}"))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// Texts: mostly valid, some blank, some around the limit, any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z ]{1,20}",
        2 => "\\PC{0,30}",
        1 => "[ \t\n\u{3000}\u{85}]{0,4}",
        1 => "x{95,110}",
        1 => ".{0,40}",
    ]
}

/// Ids: valid UUIDs in either form, near-UUIDs, anything.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string()),
        1 => "[0-9a-f-]{0,40}",
        1 => ".{0,20}",
    ]
}

fn log_request() -> impl Strategy<Value = LogRequest> {
    (id(), text()).prop_map(|(id, message)| LogRequest { id, message })
}

/// Whether logging may store this request (its own rule: a UUID id, a valid text).
fn loggable(request: &LogRequest) -> bool {
    Uuid::try_parse(&request.id).is_ok() && valid_text(&request.message)
}

fn valid_text(text: &str) -> bool {
    !text.trim().is_empty() && text.len() <= MAX_MESSAGE_BYTES
}

/// A call to `LoggingService`: its method, its well-formed request's encoding, whether it
/// streams.
fn logging_call() -> impl Strategy<Value = (&'static str, Vec<u8>, bool)> {
    prop_oneof![
        3 => log_request().prop_map(|r| ("LogMessage", r.encode_to_vec(), false)),
        3 => prop::collection::vec(
                (prop::option::weighted(0.9, log_request()), ".{0,10}", any::<u32>()),
                0..6,
            )
            .prop_map(|items| {
                let items = items
                    .into_iter()
                    .map(|(message, request_id, attempt)| LogItem { message, request_id, attempt })
                    .collect();
                ("LogMessages", LogMessagesRequest { items }.encode_to_vec(), false)
            }),
        1 => Just(("GetMessages", Empty {}.encode_to_vec(), false)),
        1 => (any::<u64>(), any::<u32>(), any::<bool>(), any::<bool>()).prop_map(
                |(cursor, limit, backward, texts_only)| {
                    let request = ListMessagesRequest { cursor, limit, backward, texts_only };
                    ("ListMessages", request.encode_to_vec(), false)
                },
            ),
        1 => prop_oneof![any::<u64>(), 0..5_u64].prop_map(|after_seq| {
                ("WatchMessages", WatchMessagesRequest { after_seq }.encode_to_vec(), true)
            }),
    ]
}

/// Given a call's method, the one message its body framed (if it did) and the answer: how many
/// messages the answer says were stored, or a failure when it stored an invalid one.
type StoredBy = fn(&str, Option<&[u8]>, &Answer) -> Result<usize, TestCaseError>;

/// Messages logging answered as stored for this call; fails when one of them was invalid.
fn stored_by_logging(
    method: &str,
    sent: Option<&[u8]>,
    answer: &Answer,
) -> Result<usize, TestCaseError> {
    if !answer.ok() || !matches!(method, "LogMessage" | "LogMessages") {
        return Ok(0);
    }
    let sent =
        sent.ok_or_else(|| TestCaseError::fail("a write without one whole frame was answered OK"))?;
    let reply = answer
        .messages
        .first()
        .ok_or_else(|| TestCaseError::fail("OK without an answer"))?;
    if method == "LogMessage" {
        let request = LogRequest::decode(sent)
            .map_err(|_| TestCaseError::fail("an undecodable LogMessage was answered OK"))?;
        let reply = LogResponse::decode(reply.as_slice())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(loggable(&request), "stored an invalid message: {request:?}");
        return Ok(usize::from(reply.status == STATUS_LOGGED));
    }
    let request = LogMessagesRequest::decode(sent)
        .map_err(|_| TestCaseError::fail("an undecodable LogMessages was answered OK"))?;
    let reply = LogMessagesResponse::decode(reply.as_slice())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(reply.results.len(), request.items.len());
    let mut stored = 0;
    for (item, result) in request.items.iter().zip(&reply.results) {
        if result.code == 0 {
            let valid = item.message.as_ref().is_some_and(loggable);
            prop_assert!(valid, "stored an invalid item: {item:?}");
            stored += usize::from(result.status == STATUS_LOGGED);
        }
    }
    Ok(stored)
}

/// A call to `msglog.v1.MessageLog`.
fn gateway_call() -> impl Strategy<Value = (&'static str, Vec<u8>, bool)> {
    let key = prop_oneof![Just(String::new()), "[!-~]{1,8}", ".{0,10}", "k{250,260}"];
    prop_oneof![
        5 => (text(), key).prop_map(|(text, idempotency_key)| {
                ("Send", v1::SendRequest { text, idempotency_key }.encode_to_vec(), false)
            }),
        1 => (any::<u64>(), any::<u32>(), any::<i32>()).prop_map(|(cursor, limit, direction)| {
                ("List", v1::ListRequest { cursor, limit, direction }.encode_to_vec(), false)
            }),
        1 => prop_oneof![any::<u64>(), 0..5_u64].prop_map(|after_seq| {
                ("Watch", v1::WatchRequest { after_seq }.encode_to_vec(), true)
            }),
        1 => Just(("Status", v1::StatusRequest {}.encode_to_vec(), false)),
    ]
}

/// Messages the facade answered as stored for this call; fails when one was invalid.
fn stored_by_gateway(
    method: &str,
    sent: Option<&[u8]>,
    answer: &Answer,
) -> Result<usize, TestCaseError> {
    if !answer.ok() || method != "Send" {
        return Ok(0);
    }
    let sent =
        sent.ok_or_else(|| TestCaseError::fail("a Send without one whole frame was answered OK"))?;
    let request = v1::SendRequest::decode(sent)
        .map_err(|_| TestCaseError::fail("an undecodable Send was answered OK"))?;
    let key = &request.idempotency_key;
    let key_ok = key.is_empty() || (key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()));
    prop_assert!(
        valid_text(&request.text) && key_ok,
        "stored an invalid message: {request:?}"
    );
    let reply = answer
        .messages
        .first()
        .ok_or_else(|| TestCaseError::fail("OK without an answer"))?;
    let reply = v1::SendResponse::decode(reply.as_slice())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(usize::from(reply.status == v1::SendStatus::Stored as i32))
}

/// Logging, messages and the facade, with a small message limit in both.
struct Services {
    logging: InProcess,
    facade: InProcess,
    _messages: InProcess,
    /// A client of logging, connected once, for reading what it holds.
    reader: LoggingServiceClient<tonic::transport::Channel>,
}

impl Services {
    async fn start() -> Self {
        let limit = MAX_MESSAGE_BYTES.to_string();
        let logging = spawn_logging_with(&logging_settings(
            "127.0.0.1:0".parse().unwrap(),
            &["--max-message-bytes", &limit],
        ))
        .await;
        let messages = spawn_messages().await;
        let mut settings = facade_settings(&logging.url(), &messages.url());
        settings.max_message_bytes = MAX_MESSAGE_BYTES;
        let facade = spawn_facade(settings).await;
        let reader = LoggingServiceClient::new(channel(&logging.url()).await);
        Self {
            logging,
            facade,
            _messages: messages,
            reader,
        }
    }

    /// How many messages logging holds.
    async fn stored(&self) -> usize {
        self.reader
            .clone()
            .get_messages(Empty {})
            .await
            .unwrap()
            .into_inner()
            .messages
            .len()
    }
}

/// Runs [`CASES`] random calls made by `calls` at `base` + `prefix` + method, checking each
/// with `stored_by`.
fn fuzz(
    services: &Services,
    runtime: &tokio::runtime::Runtime,
    base: &str,
    prefix: &str,
    calls: impl Strategy<Value = (&'static str, Vec<u8>, bool)>,
    doors: impl Strategy<Value = Door>,
    stored_by: StoredBy,
) {
    count_panics();
    let caller = Caller::new();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    // What the cases reached: answers that stored, and refusals (a fuzz that reached only one
    // of the two would check little).
    let stored_answers = AtomicUsize::new(0);
    let refusals = AtomicUsize::new(0);
    let result = runner.run(
        &(calls, body(), doors),
        |((method, message, stream), body, door)| {
            runtime.block_on(async {
                let before = services.stored().await;
                let (bytes, raw) = door.body(&body, method, &message, stream);
                let sent = door.sent(method, &bytes, stream);
                let url = format!("{base}{prefix}{method}");
                let answer = caller.call(door, &url, bytes, raw, stream).await;
                prop_assert!(
                    answer.grpc_status.is_some() || (stream && answer.http == 200),
                    "no gRPC status: {answer:?}"
                );
                prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a panic");
                let expected = stored_by(method, sent.as_deref(), &answer)?;
                if expected > 0 {
                    stored_answers.fetch_add(1, Ordering::Relaxed);
                }
                if !answer.ok() {
                    refusals.fetch_add(1, Ordering::Relaxed);
                }
                let after = services.stored().await;
                prop_assert_eq!(after - before, expected, "stored {:?}", answer);
                Ok(())
            })
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let (stored, refused) = (stored_answers.into_inner(), refusals.into_inner());
    // The counts, for the record (shown with --no-capture).
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{prefix}: {CASES} cases, {stored} answered stored, {refused} refused");
    }
    assert!(
        stored >= 20 && refused >= 20,
        "of {CASES} cases, {stored} stored and {refused} were refused"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn logging_service_takes_random_and_broken_frames_on_every_door() {
    let runtime = runtime();
    let services = runtime.block_on(Services::start());
    let base = services.logging.url();
    fuzz(
        &services,
        &runtime,
        &base,
        "/LoggingService/",
        logging_call(),
        door(),
        stored_by_logging,
    );
    // Still serving: a valid message is stored.
    runtime.block_on(async {
        let before = services.stored().await;
        let mut client = services.reader.clone();
        let request = LogRequest {
            id: Uuid::new_v4().to_string(),
            message: format!("after the fuzz {}", Uuid::new_v4()),
        };
        let reply = client.log_message(request).await.unwrap().into_inner();
        assert_eq!(reply.status, STATUS_LOGGED);
        assert_eq!(services.stored().await, before + 1);
    });
}

#[test]
fn the_gateway_takes_random_and_broken_frames_on_every_door() {
    let runtime = runtime();
    let services = runtime.block_on(Services::start());
    let base = services.facade.url();
    fuzz(
        &services,
        &runtime,
        &base,
        "/msglog.v1.MessageLog/",
        gateway_call(),
        gateway_door(),
        stored_by_gateway,
    );
    runtime.block_on(async {
        let before = services.stored().await;
        let mut client = v1::message_log_client::MessageLogClient::new(channel(&base).await);
        let reply = client
            .send(v1::SendRequest {
                text: format!("after the fuzz {}", Uuid::new_v4()),
                idempotency_key: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status, v1::SendStatus::Stored as i32);
        assert_eq!(services.stored().await, before + 1);
    });
}
