//! The gRPC door: `msglog.v1.MessageLog`, over native gRPC (HTTP/2) and gRPC-web (HTTP/1.1),
//! on the same core as the JSON routes: `Send` is `POST /api/messages`, `List` is
//! `GET /api/messages`, `Status` is `GET /api/status`, and `Watch` is served by the live feed.
//!
//! Tonic serves it all but gRPC-web's binary `Watch` (what the page and browsers use), which
//! [`web_watch`] writes with the Connect door's stream writer (`super::envelopes`): every
//! event ready goes out in one chunk, with no codec buffer held per call.

use std::{pin::Pin, time::Duration};

use axum::response::IntoResponse as _;
use bytes::BytesMut;
use futures_util::{Stream, StreamExt as _};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use msglog_proto::{
    MessageText,
    v1::{
        self, ListRequest, ListResponse, SendRequest, SendResponse, StatusRequest, StatusResponse,
        WatchEvent, WatchRequest, message_log_server::MessageLog,
    },
};
use prost::Message as _;
use tonic::{Request, Response, Status, metadata::MetadataMap};

use super::envelopes::{self, Framing, put_envelope, put_watched, read_body, within};
use crate::{
    error::AppError,
    extract::client_ip,
    feed::{WatchStream, Watched},
    gateway::{Checked, Overview, Page, PageRequest, Sent},
    ids::{IDEMPOTENCY_KEY_RULE, IdempotencyKey},
    logging_client::Logged,
    state::AppState,
};

/// `msglog.v1.MessageLog` over the facade's state and its live feed.
#[derive(Debug, Clone)]
pub(crate) struct MessageLogApi {
    state: AppState,
}

impl MessageLogApi {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }

    /// A `Watch` for `request`, its client's share of live feeds taken: what every door's
    /// `Watch` streams (tonic's as copies of each message, the others as the feed holds them).
    pub(crate) fn open_watch(&self, request: Request<WatchRequest>) -> Result<WatchStream, Status> {
        let client = client_ip(request.extensions());
        let after_seq = request.into_inner().after_seq;
        Ok(crate::gateway::open_watch(&self.state, client, after_seq)?)
    }
}

/// The request id the request-id rule settled (always set by the layer; `-` if not).
fn request_id<T>(request: &Request<T>) -> String {
    msglog_common::request_id::in_headers(request.metadata().as_ref()).to_owned()
}

#[tonic::async_trait]
impl MessageLog for MessageLogApi {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let request_id = request_id(&request);
        self.state
            .write_rate
            .take(client_ip(request.extensions()))
            .map_err(AppError::TooManyRequests)?;
        let SendRequest {
            text,
            idempotency_key,
        } = request.into_inner();
        let key = match idempotency_key.as_str() {
            "" => None,
            key => Some(
                IdempotencyKey::parse(key.as_bytes())
                    .ok_or_else(|| Status::invalid_argument(IDEMPOTENCY_KEY_RULE))?,
            ),
        };
        let text = MessageText::parse(text, self.state.limits.max_message_bytes)
            .map_err(|error| error.to_status("text"))?;
        let sent = crate::gateway::send_message(&self.state, &request_id, key, text).await?;
        Ok(Response::new(sent.into()))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let request_id = request_id(&request);
        let ListRequest {
            cursor,
            limit,
            direction,
        } = request.into_inner();
        let backward = direction == msglog_proto::v1::Direction::Backward as i32;
        let page = PageRequest::new(cursor, limit, backward)?;
        let page = crate::gateway::list_page(&self.state, &request_id, page).await?;
        Ok(Response::new(page.into()))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let request_id = request_id(&request);
        self.state
            .status_rate
            .take(client_ip(request.extensions()))
            .map_err(AppError::TooManyRequests)?;
        let services = crate::gateway::services(&self.state, &request_id).await;
        Ok(Response::new(services.into()))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let watch = self.open_watch(request)?;
        Ok(Response::new(Box::pin(
            watch.map(|watched| watched.map(WatchEvent::from)),
        )))
    }
}

/// The service's path prefix, shared with the Connect door (its routes, and the rule of one
/// request message per call, are set under it).
pub(crate) const PREFIX: &str = "/msglog.v1.MessageLog/";
/// The content type of gRPC-web's binary form, which [`web_watch`] answers.
const GRPC_WEB_PROTO: &str = "application/grpc-web+proto";
/// The envelope flag of gRPC-web's trailers frame.
const TRAILERS: u8 = 0x80;

/// Whether `request` is a gRPC-web `Watch` in binary (`application/grpc-web` or `+proto`),
/// which [`web_watch`] serves; the text form stays with tonic-web.
pub(crate) fn is_web_watch(request: &axum::extract::Request) -> bool {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    request.method() == http::Method::POST
        && request.uri().path().strip_prefix(PREFIX) == Some("Watch")
        && matches!(media_type, "application/grpc-web" | GRPC_WEB_PROTO)
}

/// gRPC-web's binary `Watch`, as tonic-web answers it (a trailers-only answer when it cannot
/// open, trailers as the body's last frame when it ends) but written by the facade's own
/// stream writer. Opening (the request read, the watch started) takes at most `opening`, or
/// the client's `grpc-timeout` when sooner; the stream then lasts until that deadline.
pub(crate) async fn web_watch(
    api: MessageLogApi,
    max_message: usize,
    opening: Duration,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let deadline = parts
        .headers
        .get("grpc-timeout")
        .and_then(msglog_common::grpc_deadline::parse_timeout);
    let opened = async {
        let bytes = read_body(body, max_message + 5, false).await?;
        let request = WatchRequest::decode(one_message(&bytes)?).map_err(|error| {
            Status::invalid_argument(format!("the request is not a valid WatchRequest: {error}"))
        })?;
        let metadata = MetadataMap::from_headers(parts.headers.clone());
        let request = Request::from_parts(metadata, parts.extensions, request);
        api.open_watch(request)
    };
    let opening = deadline.map_or(opening, |deadline| deadline.min(opening));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(GRPC_WEB_PROTO),
    );
    match within(opening, opened).await {
        Ok(events) => {
            let expired = Status::deadline_exceeded(format!(
                "no answer within the call's deadline of {} ms",
                deadline.unwrap_or_default().as_millis()
            ));
            let body = envelopes::body(events, GrpcWebFraming, deadline, expired);
            (StatusCode::OK, headers, body).into_response()
        }
        // Trailers-only: the status in the headers, no body.
        Err(status) => {
            add_status(&mut headers, &status);
            (StatusCode::OK, headers).into_response()
        }
    }
}

/// A request body of one uncompressed message.
fn one_message(bytes: &[u8]) -> Result<&[u8], Status> {
    let malformed = || Status::invalid_argument("the request is not one gRPC-web message");
    let (&flags, rest) = bytes.split_first().ok_or_else(malformed)?;
    let (length, message) = rest.split_at_checked(4).ok_or_else(malformed)?;
    let length = u32::from_be_bytes(length.try_into().map_err(|_| malformed())?) as usize;
    if flags & envelopes::COMPRESSED != 0 {
        return Err(Status::unimplemented(
            "compressed requests are not accepted",
        ));
    }
    match message.len().cmp(&length) {
        std::cmp::Ordering::Equal if flags == 0 => Ok(message),
        std::cmp::Ordering::Greater => Err(Status::invalid_argument(
            "a Watch takes one request message, not more",
        )),
        _ => Err(malformed()),
    }
}

/// `grpc-status` and `grpc-message` (percent-encoded by tonic, as gRPC says) for `status`.
fn add_status(headers: &mut HeaderMap, status: &Status) {
    // Only details that cannot be encoded fail: the plain status they come back as is added.
    if let Err(plain) = status.add_header(headers) {
        let _ = plain.add_header(headers);
    }
}

/// gRPC-web's frames: each event in protobuf; the end is a trailers frame, each line as
/// tonic-web writes them (`grpc-status:0\r\n`, and `grpc-message` when there is one).
#[derive(Debug, Clone, Copy)]
struct GrpcWebFraming;

impl Framing for GrpcWebFraming {
    fn event(self, out: &mut BytesMut, watched: &Watched) {
        put_watched(out, watched);
    }

    fn end(self, out: &mut BytesMut, status: Option<&Status>) {
        let mut headers = HeaderMap::new();
        add_status(&mut headers, status.unwrap_or(&Status::ok("")));
        let mut trailers = Vec::new();
        for (name, value) in &headers {
            trailers.extend_from_slice(name.as_str().as_bytes());
            trailers.push(b':');
            trailers.extend_from_slice(value.as_bytes());
            trailers.extend_from_slice(b"\r\n");
        }
        put_envelope(out, TRAILERS, &trailers);
    }
}

impl From<Sent> for v1::SendResponse {
    fn from(sent: Sent) -> Self {
        Self {
            id: sent.id.to_string(),
            status: match sent.logged {
                Logged::Stored => v1::SendStatus::Stored,
                Logged::Duplicate(_) => v1::SendStatus::Duplicate,
            }
            .into(),
            attempts: sent.attempts,
        }
    }
}

impl From<Page> for v1::ListResponse {
    fn from(Page(page): Page) -> Self {
        Self {
            messages: page.messages.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

impl From<Overview> for v1::StatusResponse {
    fn from(overview: Overview) -> Self {
        let state = |Checked { up, detail }| Some(v1::ServiceState { up, detail });
        Self {
            facade: state(overview.facade),
            logging: state(overview.logging),
            messages: state(overview.messages),
            feed: Some(v1::LiveFeed {
                live: overview.feed.live,
                detail: overview.feed.detail,
                watchers: overview.feed.watchers as u64,
                newest_seq: overview.feed.newest_seq,
            }),
            calls: Some(v1::CallCounts {
                retries: overview.calls.retries,
                errors: overview.calls.errors,
            }),
            max_message_bytes: overview.max_message_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailers(status: Option<&Status>) -> Vec<u8> {
        let mut out = BytesMut::new();
        GrpcWebFraming.end(&mut out, status);
        assert_eq!(out[0], TRAILERS);
        assert_eq!(
            u32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize,
            out.len() - 5
        );
        out[5..].to_vec()
    }

    #[test]
    fn a_web_watch_ends_with_its_status_in_a_trailers_frame() {
        assert_eq!(trailers(None), b"grpc-status:0\r\n");
        assert_eq!(
            String::from_utf8_lossy(&trailers(Some(&Status::unavailable("stopping: 100%\r\n")))),
            "grpc-status:14\r\ngrpc-message:stopping:%20100%25%0D%0A\r\n"
        );
    }

    #[test]
    fn a_web_watch_takes_one_plain_message() {
        let framed = |flags: u8, message: &[u8], declared: u32| {
            let mut bytes = vec![flags];
            bytes.extend_from_slice(&declared.to_be_bytes());
            bytes.extend_from_slice(message);
            bytes
        };
        assert_eq!(one_message(&framed(0, b"ab", 2)).ok(), Some(&b"ab"[..]));
        assert_eq!(one_message(&framed(0, b"", 0)).ok(), Some(&b""[..]));
        for (bytes, code) in [
            (vec![], tonic::Code::InvalidArgument),
            (vec![0, 0, 0], tonic::Code::InvalidArgument),
            (framed(0, b"ab", 3), tonic::Code::InvalidArgument),
            (framed(0, b"abc", 2), tonic::Code::InvalidArgument),
            (framed(TRAILERS, b"ab", 2), tonic::Code::InvalidArgument),
            (
                framed(envelopes::COMPRESSED, b"ab", 2),
                tonic::Code::Unimplemented,
            ),
        ] {
            assert_eq!(
                one_message(&bytes).map_err(|status| status.code()).err(),
                Some(code),
                "{bytes:?}"
            );
        }
    }
}
