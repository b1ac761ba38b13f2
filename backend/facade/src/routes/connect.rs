//! The Connect door: `msglog.v1.MessageLog` in the Connect protocol (connectrpc.com), on the
//! same paths as gRPC and gRPC-web (`/msglog.v1.MessageLog/<Method>`), told apart by their
//! content type. Each call goes to the very `MessageLog` the gRPC door serves
//! ([`MessageLogApi`]), so validation, ids, retries, rates, paging and the live feed are the
//! same; this module only decodes and encodes.
//!
//! - Unary `Send`, `List` and `Status`: a `POST` whose body is the request message as
//!   `application/json` (the canonical protobuf JSON mapping) or `application/proto`; the
//!   answer is the response message in the same codec, or an error as Connect's JSON error body
//!   (`{"code": "invalid_argument", "message": "..."}`) with the HTTP status of Connect's table.
//! - `List` and `Status` are free of side effects (`idempotency_level = NO_SIDE_EFFECTS`), so
//!   they may also be a `GET` with the message in the query (`?encoding=json&message=...`,
//!   `base64=1` for binary, `compression=gzip`), which a cache may keep: a page is revalidated
//!   by its `ETag`, the status is never stored.
//! - Server-streaming `Watch`: a `POST` of `application/connect+json` or
//!   `application/connect+proto` with one enveloped request; the answer is `200` with each
//!   event enveloped, then an end-of-stream envelope whose JSON carries the error, if any. No
//!   trailers, so it works over HTTP/1.1 and through any proxy.
//! - `gzip` both ways: a request body (`Content-Encoding`, or `Connect-Content-Encoding` and the
//!   envelope's flag for a stream), and an answer of 1 KiB or more when the client accepts it
//!   (`Accept-Encoding`, `Connect-Accept-Encoding`).
//! - `Connect-Timeout-Ms`: a unary call gives up then (or at the request timeout, if sooner)
//!   with `deadline_exceeded`; a `Watch` ends then with `deadline_exceeded`.
//!
//! Not supported: client and bidirectional streams (the service has none), codecs other than
//! JSON and protobuf, compressions other than `gzip`, and error details.

use std::time::Duration;

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use msglog_proto::v1::{WatchEvent, WatchRequest, message_log_server::MessageLog};
use serde::{Serialize, de::DeserializeOwned};
use tonic::{Code, Status, metadata::MetadataMap};

use super::{
    envelopes::{
        self, COMPRESSED, Framing, gunzip, put_envelope, put_watched, read_body, too_large, within,
    },
    grpc::{MessageLogApi, PREFIX},
};
use crate::{
    codes::code_name,
    feed::Watched,
    negotiation::{accepts_coding, content_tag, matches_tag},
};

/// The envelope flag of the end of a stream.
const END_STREAM: u8 = 0x02;
/// Answers this large or larger are compressed when the client accepts it.
const COMPRESS_FROM: usize = 1024;
/// `Connect-Timeout-Ms`: at most 10 digits, as the protocol says.
const TIMEOUT_DIGITS: usize = 10;

const CONNECT_TIMEOUT: HeaderName = HeaderName::from_static("connect-timeout-ms");
const CONNECT_CONTENT_ENCODING: HeaderName = HeaderName::from_static("connect-content-encoding");
const CONNECT_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("connect-accept-encoding");
const CONNECT_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("connect-protocol-version");

/// Whether a request to the service's paths is gRPC or gRPC-web (which tonic serves) rather
/// than Connect.
pub(crate) fn is_grpc(request: &Request) -> bool {
    content_type(request.headers()).starts_with("application/grpc")
}

/// What the Connect door needs: the gRPC door's `MessageLog`, the largest request message,
/// and the unary calls' request timeout.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    pub(crate) api: MessageLogApi,
    pub(crate) max_message: usize,
    pub(crate) request_timeout: Duration,
}

/// How messages are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    Json,
    Proto,
}

impl Codec {
    /// The codec of a unary call's content type (`application/json`, `application/proto`).
    fn of_unary(content_type: &str) -> Option<Self> {
        match media_type(content_type) {
            "application/json" => Some(Self::Json),
            "application/proto" => Some(Self::Proto),
            _ => None,
        }
    }

    /// The codec of a stream's content type (`application/connect+json`, `+proto`).
    fn of_stream(content_type: &str) -> Option<Self> {
        match media_type(content_type) {
            "application/connect+json" => Some(Self::Json),
            "application/connect+proto" => Some(Self::Proto),
            _ => None,
        }
    }

    fn unary_content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Proto => "application/proto",
        }
    }

    fn stream_content_type(self) -> &'static str {
        match self {
            Self::Json => "application/connect+json",
            Self::Proto => "application/connect+proto",
        }
    }

    fn decode<T: prost::Message + DeserializeOwned + Default>(
        self,
        bytes: &[u8],
    ) -> Result<T, Status> {
        match self {
            Self::Json => serde_json::from_slice(bytes).map_err(|error| {
                Status::invalid_argument(format!(
                    "the request is not valid JSON for its message: {error}"
                ))
            }),
            Self::Proto => T::decode(bytes).map_err(|error| {
                Status::invalid_argument(format!(
                    "the request is not a valid protobuf message: {error}"
                ))
            }),
        }
    }

    fn encode<T: prost::Message + Serialize>(self, message: &T) -> Vec<u8> {
        match self {
            // The generated impls serialize plain structs: this cannot fail.
            Self::Json => serde_json::to_vec(message).unwrap_or_default(),
            Self::Proto => message.encode_to_vec(),
        }
    }
}

/// A request's `Content-Type` ("" when it has none or it is not text).
fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// The media type without parameters (`application/json; charset=utf-8` is JSON).
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// A Connect call: `POST` (unary or stream) or `GET` (a side-effect-free unary call).
pub(crate) async fn serve(connect: Connect, request: Request) -> Response {
    let method = request
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .to_owned();
    let answer = match (request.method().clone(), method.as_str()) {
        (Method::POST, "Send" | "List" | "Status") => unary_post(connect, request, &method).await,
        (Method::GET, "List" | "Status") => unary_get(connect, request, &method).await,
        (Method::POST, "Watch") => Ok(watch(connect, request).await),
        (Method::GET, "Send" | "Watch") => {
            let mut refused = error_response(&Status::unimplemented(format!(
                "{method} has side effects or streams: call it with POST"
            )));
            *refused.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            Ok(refused)
        }
        (_, method) => Err(Status::unimplemented(format!(
            "msglog.v1.MessageLog has no method {:?} for {}",
            msglog_common::bounded::shorten_bytes(method.as_bytes(), 64),
            request.method()
        ))),
    };
    answer.unwrap_or_else(|status| error_response(&status))
}

/// A unary `POST`: the request message is the body.
async fn unary_post(connect: Connect, request: Request, method: &str) -> Result<Response, Status> {
    let (parts, body) = request.into_parts();
    let content_type = content_type(&parts.headers);
    let Some(codec) = Codec::of_unary(content_type) else {
        return Ok(unsupported_media_type(content_type));
    };
    protocol_version(&parts.headers)?;
    let compressed = content_encoding(&parts.headers, &header::CONTENT_ENCODING)?;
    let deadline = deadline(&connect, &parts.headers)?;
    let gzip = accepts_coding(&parts.headers, &header::ACCEPT_ENCODING, "gzip");
    // The deadline covers reading the body too: a body that trickles in ends the call.
    let answer = within(deadline, async {
        let bytes = read_body(body, connect.max_message, compressed).await?;
        call(
            &connect,
            method,
            codec,
            &bytes,
            parts.headers,
            parts.extensions,
        )
        .await
    })
    .await?;
    Ok(unary_response(answer, codec, gzip, Caching::None))
}

/// A unary `GET`: the request message is in the query.
async fn unary_get(connect: Connect, request: Request, method: &str) -> Result<Response, Status> {
    let (parts, _) = request.into_parts();
    let get = GetQuery::parse(parts.uri.query().unwrap_or(""))?;
    let bytes = if get.compressed {
        gunzip(&get.message, connect.max_message)?
    } else if get.message.len() > connect.max_message {
        return Err(too_large(connect.max_message));
    } else {
        get.message
    };
    let gzip = accepts_coding(&parts.headers, &header::ACCEPT_ENCODING, "gzip");
    let deadline = deadline(&connect, &parts.headers)?;
    let caching = if method == "List" {
        Caching::Revalidated(parts.headers.get(header::IF_NONE_MATCH).cloned())
    } else {
        Caching::NoStore
    };
    let call = call(
        &connect,
        method,
        get.codec,
        &bytes,
        parts.headers,
        parts.extensions,
    );
    let answer = within(deadline, call).await?;
    Ok(unary_response(answer, get.codec, gzip, caching))
}

/// A unary call's deadline: the client's `Connect-Timeout-Ms`, or the request timeout when
/// that is sooner.
fn deadline(connect: &Connect, headers: &HeaderMap) -> Result<Duration, Status> {
    Ok(match timeout(headers)? {
        Some(client) => client.min(connect.request_timeout),
        None => connect.request_timeout,
    })
}

/// What a Connect `GET`'s query says.
struct GetQuery {
    codec: Codec,
    message: Vec<u8>,
    compressed: bool,
}

impl GetQuery {
    fn parse(query: &str) -> Result<Self, Status> {
        let (mut codec, mut message, mut base64, mut compressed) = (None, None, false, false);
        for (key, value) in form_pairs(query) {
            match key.as_str() {
                "encoding" => {
                    codec = Some(match value.as_str() {
                        "json" => Codec::Json,
                        "proto" => Codec::Proto,
                        other => {
                            return Err(Status::unimplemented(format!(
                                "encoding {other:?} is not served: json or proto"
                            )));
                        }
                    });
                }
                "message" => message = Some(value),
                "base64" => base64 = value == "1",
                "compression" => match value.as_str() {
                    "gzip" => compressed = true,
                    "identity" | "" => {}
                    other => {
                        return Err(Status::unimplemented(format!(
                            "compression {other:?} is not served: gzip or identity"
                        )));
                    }
                },
                "connect" if value != "v1" => {
                    return Err(Status::invalid_argument(format!(
                        "connect={value:?}: only v1 is served"
                    )));
                }
                _ => {}
            }
        }
        let codec = codec.ok_or_else(|| {
            Status::invalid_argument("a GET needs encoding=json or encoding=proto")
        })?;
        let message = message.unwrap_or_default();
        let message = if base64 {
            let unpadded = message.trim_end_matches('=');
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(unpadded)
                .map_err(|error| {
                    Status::invalid_argument(format!("message is not base64url: {error}"))
                })?
        } else {
            message.into_bytes()
        };
        Ok(Self {
            codec,
            message,
            compressed,
        })
    }
}

/// The `key=value` pairs of a query, percent-decoded (`+` is a space).
fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(&text.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(key), decode(value))
        })
}

/// Calls `method` of the gRPC door's `MessageLog` with the decoded request, and encodes its
/// answer.
async fn call(
    connect: &Connect,
    method: &str,
    codec: Codec,
    bytes: &[u8],
    headers: HeaderMap,
    extensions: http::Extensions,
) -> Result<Vec<u8>, Status> {
    let api = &connect.api;
    let parts = (MetadataMap::from_headers(headers), extensions);
    match method {
        "Send" => unary(codec, bytes, parts, |request| api.send(request)).await,
        "List" => unary(codec, bytes, parts, |request| api.list(request)).await,
        _ => unary(codec, bytes, parts, |request| api.status(request)).await,
    }
}

/// Decodes a request in `codec`, has `answer` answer it (with the call's metadata and
/// extensions), and encodes the response in the same codec.
async fn unary<Req, Resp, Answer>(
    codec: Codec,
    bytes: &[u8],
    (metadata, extensions): (MetadataMap, http::Extensions),
    answer: impl FnOnce(tonic::Request<Req>) -> Answer,
) -> Result<Vec<u8>, Status>
where
    Req: prost::Message + DeserializeOwned + Default,
    Resp: prost::Message + Serialize,
    Answer: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = codec.decode(bytes)?;
    let response = answer(tonic::Request::from_parts(metadata, extensions, request)).await?;
    Ok(codec.encode(response.get_ref()))
}

/// How a cache may keep a unary call's answer.
enum Caching {
    /// A `POST`'s: caches leave it alone.
    None,
    /// A page read by `GET`: kept, and revalidated by its `ETag` (the client's `If-None-Match`,
    /// if it sent one: a 304 when it names the page as it is).
    Revalidated(Option<HeaderValue>),
    /// The status read by `GET`: never stored (it is checked now).
    NoStore,
}

/// A unary call's answer: the message (compressed when the client accepts it and it is worth
/// it), with what a cache may do with it.
fn unary_response(body: Vec<u8>, codec: Codec, gzip: bool, caching: Caching) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.unary_content_type()),
    );
    let vary = HeaderValue::from_static("Accept-Encoding");
    match caching {
        Caching::None => {}
        Caching::Revalidated(if_none_match) => {
            headers.insert(header::VARY, vary);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            let tag = content_tag(&body);
            let current = if_none_match.is_some_and(|wanted| matches_tag(&wanted, &tag));
            headers.insert(header::ETAG, tag);
            if current {
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
        }
        Caching::NoStore => {
            headers.insert(header::VARY, vary);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    let body = if gzip && body.len() >= COMPRESS_FROM {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        compress(&body)
    } else {
        body
    };
    (StatusCode::OK, headers, body).into_response()
}

/// `Watch`: one enveloped request in, enveloped events out, then the end-of-stream message.
async fn watch(connect: Connect, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let content_type = content_type(&parts.headers);
    let Some(codec) = Codec::of_stream(content_type) else {
        return unsupported_media_type(content_type);
    };
    let gzip = accepts_coding(&parts.headers, &CONNECT_ACCEPT_ENCODING, "gzip");
    // From here on every failure is an end-of-stream message in a 200, as the protocol says.
    let opened = async {
        protocol_version(&parts.headers)?;
        let compressed = content_encoding(&parts.headers, &CONNECT_CONTENT_ENCODING)?;
        let deadline = timeout(&parts.headers)?;
        let bytes = read_body(body, connect.max_message + 5, false).await?;
        let message = one_envelope(&bytes, compressed, connect.max_message)?;
        let request: WatchRequest = codec.decode(&message)?;
        let metadata = MetadataMap::from_headers(parts.headers.clone());
        let events = connect.api.open_watch(tonic::Request::from_parts(
            metadata,
            parts.extensions,
            request,
        ))?;
        Ok::<_, Status>((events, deadline))
    };
    // Opening (the request read whole, the watch started) is bounded like a unary call.
    let framing = ConnectFraming { codec, gzip };
    let body = match within(connect.request_timeout, opened).await {
        Ok((events, deadline)) => {
            let expired = Status::deadline_exceeded("the stream's Connect-Timeout-Ms ran out");
            envelopes::body(events, framing, deadline, expired)
        }
        Err(status) => envelopes::ended(framing, &status),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.stream_content_type()),
    );
    if gzip {
        headers.insert(CONNECT_CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (StatusCode::OK, headers, body).into_response()
}

/// Connect's frames: each event in the stream's codec, compressed when the client accepts it
/// and it is worth it; the end is an end-of-stream envelope whose JSON carries the error, if
/// any.
#[derive(Debug, Clone, Copy)]
struct ConnectFraming {
    codec: Codec,
    gzip: bool,
}

impl Framing for ConnectFraming {
    fn event(self, out: &mut BytesMut, watched: &Watched) {
        if self.codec == Codec::Proto && !self.gzip {
            return put_watched(out, watched);
        }
        let message = self.codec.encode(&WatchEvent::from(watched.clone()));
        if self.gzip && message.len() >= COMPRESS_FROM {
            put_envelope(out, COMPRESSED, &compress(&message));
        } else {
            put_envelope(out, 0, &message);
        }
    }

    fn end(self, out: &mut BytesMut, status: Option<&Status>) {
        let body = match status {
            Some(status) => serde_json::json!({ "error": error_body(status) }),
            None => serde_json::json!({}),
        };
        put_envelope(out, END_STREAM, body.to_string().as_bytes());
    }
}

/// The one message of a stream's request body: one envelope, decompressed when flagged.
fn one_envelope(bytes: &[u8], compressed: bool, max: usize) -> Result<Vec<u8>, Status> {
    let malformed = || Status::invalid_argument("the request is not one enveloped message");
    let (&flags, rest) = bytes.split_first().ok_or_else(malformed)?;
    let (length, message) = rest.split_at_checked(4).ok_or_else(malformed)?;
    let length = u32::from_be_bytes(length.try_into().map_err(|_| malformed())?) as usize;
    if message.len() != length {
        return Err(if message.len() > length {
            Status::invalid_argument("a Watch takes one request message, not more")
        } else {
            malformed()
        });
    }
    if flags & END_STREAM != 0 {
        return Err(malformed());
    }
    if flags & COMPRESSED != 0 {
        if !compressed {
            return Err(Status::internal(
                "a compressed message without Connect-Content-Encoding",
            ));
        }
        return gunzip(message, max);
    }
    Ok(message.to_vec())
}

fn compress(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether a request body is gzip (`true`) or not compressed, by `header`; another encoding is
/// `unimplemented`, as the protocol says.
fn content_encoding(headers: &HeaderMap, name: &HeaderName) -> Result<bool, Status> {
    match headers.get(name).map(HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(false),
        Some(b"gzip") => Ok(true),
        Some(other) => Err(Status::unimplemented(format!(
            "{name} {:?} is not served: gzip or identity",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// `Connect-Protocol-Version`, when sent, must be 1.
fn protocol_version(headers: &HeaderMap) -> Result<(), Status> {
    match headers.get(CONNECT_PROTOCOL_VERSION) {
        None => Ok(()),
        Some(version) if version.as_bytes() == b"1" => Ok(()),
        Some(version) => Err(Status::invalid_argument(format!(
            "Connect-Protocol-Version {:?}: only 1 is served",
            String::from_utf8_lossy(version.as_bytes())
        ))),
    }
}

/// The client's `Connect-Timeout-Ms`, if it sent one.
fn timeout(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    let Some(value) = headers.get(CONNECT_TIMEOUT) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    if text.is_empty() || text.len() > TIMEOUT_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Status::invalid_argument(format!(
            "Connect-Timeout-Ms must be 1 to {TIMEOUT_DIGITS} digits, not {:?}",
            msglog_common::bounded::shorten_bytes(value.as_bytes(), 32)
        )));
    }
    Ok(text.parse().ok().map(Duration::from_millis))
}

/// `415`: a content type this door does not serve, saying which it does.
fn unsupported_media_type(content_type: &str) -> Response {
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        [(
            HeaderName::from_static("accept-post"),
            HeaderValue::from_static(
                "application/json, application/proto, application/connect+json, \
                 application/connect+proto, application/grpc, application/grpc-web",
            ),
        )],
        format!(
            "content type {:?} is not served here",
            msglog_common::bounded::shorten_bytes(content_type.as_bytes(), 64)
        ),
    )
        .into_response()
}

/// An error as Connect's JSON error body, with the HTTP status of Connect's table.
fn error_response(status: &Status) -> Response {
    (
        http_status(status.code()),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        error_body(status).to_string(),
    )
        .into_response()
}

fn error_body(status: &Status) -> serde_json::Value {
    // Connect names codes in lower case, and spells one of them its own way.
    let code = match status.code() {
        Code::Cancelled => "canceled".to_owned(),
        code => code_name(code).to_ascii_lowercase(),
    };
    if status.message().is_empty() {
        serde_json::json!({ "code": code })
    } else {
        serde_json::json!({ "code": code, "message": status.message() })
    }
}

/// Connect's table from codes to HTTP statuses.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
