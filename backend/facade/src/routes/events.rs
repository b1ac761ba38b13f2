//! `GET /api/messages/watch`: the live feed as server-sent events, for a shell (`curl -N`) and
//! a browser's `EventSource`. It is the gRPC `Watch` in another encoding: the same watcher of
//! the same fan-out ([`crate::feed`]), the same share of live feeds per client
//! (`--max-watches-per-client`), and the same end when the facade stops.
//!
//! - Each stored message after the cursor, then each new one, once and in order: an event
//!   whose `id` is its seq and whose `data` is its JSON ([`PagedMessage`]). A client that
//!   reconnects with `Last-Event-ID` (as `EventSource` does by itself) resumes after the last
//!   message it got, with no gap and no double.
//! - The feed from logging breaking or coming back: a `feed` event ([`FeedEvent`]).
//! - Nothing to send: a comment (`: heartbeat`) at once when the stream opens, then at the
//!   watch's heartbeat interval (`--watch-heartbeat-ms`), so both ends notice a dead connection
//!   and proxies keep it open.
//! - The stream's end (the facade stopping, say): an `end` event ([`ErrorBody`], with the gRPC
//!   code a `Watch` ends with), and the stream closes; reconnecting resumes.

use std::convert::Infallible;

use axum::{
    Extension,
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use futures_util::{Stream, StreamExt as _, stream};
use http::{HeaderMap, HeaderName, HeaderValue};
use msglog_common::server::Peer;
use msglog_proto::{
    api::{ErrorBody, FeedEvent, MAX_SEQ, PagedMessage, WatchQuery},
    v1::{WatchEvent, watch_event},
};
use tonic::Status;

use crate::{
    codes::code_name, error::AppError, extract::Query, feed::WatchStream, state::AppState,
};

/// The header a browser's `EventSource` sends when it reconnects: the last event id it got.
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// `GET /api/messages/watch?after=`: the live feed as server-sent events.
#[utoipa::path(
    get,
    path = "/api/messages/watch",
    tag = "api",
    operation_id = "watch",
    summary = "The live feed, as server-sent events",
    description = "Every stored message after the cursor, then each new one as it is stored, \
        once and in order, as `text/event-stream` (`curl -N`, or a browser's `EventSource`). \
        Each message is an event whose `id` is its seq and whose `data` is a `PagedMessage`; \
        a reconnection with `Last-Event-ID` resumes after it. A `feed` event (`FeedEvent`) \
        says the feed from logging broke or came back; a comment (`: heartbeat`) is sent at \
        once and while idle; an `end` event (`ErrorBody`, with the gRPC code) closes the \
        stream, after which a client reconnects. The stream does not end by itself.",
    params(
        WatchQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The seq of the last message \
            received: the feed resumes after it (in place of `after`)."),
    ),
    responses(
        (status = 200, description = "The stream of events.", content_type = "text/event-stream",
            body = String),
        (status = 400, description = "`after` or `Last-Event-ID` is not a seq (a number).",
            body = ErrorBody),
        (status = 429, description = "This address holds as many live feeds as one client \
            may (`--max-watches-per-client`).", body = ErrorBody),
    ),
)]
pub(crate) async fn watch(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Query(query): Query<WatchQuery>,
) -> Result<Response, AppError> {
    let after = match headers.get(LAST_EVENT_ID) {
        Some(last) => last_event_id(last)?,
        None => query.after,
    };
    if after > MAX_SEQ {
        return Err(AppError::BadRequest(format!(
            "the cursor ({after}) is past the largest seq a message can have ({MAX_SEQ})"
        )));
    }
    let client = peer.map(|Extension(peer)| peer.0.ip());
    let watch = crate::gateway::open_watch(&state, client, after)?;
    let events = Sse::new(encode(watch, after, query.follow));
    // Proxies that buffer answers (nginx) pass this one on as it comes.
    let unbuffered = [(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    )];
    Ok((unbuffered, events).into_response())
}

/// The seq in a `Last-Event-ID` header.
fn last_event_id(value: &HeaderValue) -> Result<u64, AppError> {
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "Last-Event-ID must be the seq of a message (a number), not {:?}",
                msglog_common::bounded::shorten_bytes(value.as_bytes(), 32)
            ))
        })
}

/// The watch's events as server-sent events, ending with an `end` event when the watch ends
/// with a status. Unless it follows, it ends once it has sent every message up to the newest
/// seq its first heartbeat (sent at once) carries.
fn encode(
    watch: WatchStream,
    after: u64,
    follow: bool,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    struct Reading {
        watch: WatchStream,
        /// Where it ends, once known (never while following).
        until: Option<u64>,
        /// The seq of the last message sent.
        sent: u64,
    }
    let reading = Reading {
        watch,
        until: None,
        sent: after,
    };
    stream::unfold(Some(reading), move |reading| async move {
        let mut reading = reading?;
        if reading.until.is_some_and(|until| reading.sent >= until) {
            return None;
        }
        let event = match reading.watch.next().await? {
            Ok(watched) => WatchEvent::from(watched),
            Err(status) => return Some((Ok(end(&status)), None)),
        };
        match &event.event {
            Some(watch_event::Event::Message(message)) => reading.sent = message.seq,
            Some(watch_event::Event::Heartbeat(heartbeat)) if !follow => {
                let until = *reading.until.get_or_insert(heartbeat.newest_seq);
                if reading.sent >= until {
                    return None;
                }
            }
            _ => {}
        }
        Some((Ok(server_sent(event)), Some(reading)))
    })
}

/// One event of the watch as a server-sent event.
fn server_sent(event: WatchEvent) -> Event {
    match event.event {
        Some(watch_event::Event::Message(message)) => {
            let seq = message.seq;
            json_event(&PagedMessage::from(message)).id(seq.to_string())
        }
        Some(watch_event::Event::Feed(feed)) => json_event(&FeedEvent {
            live: feed.live,
            detail: feed.detail,
        })
        .event("feed"),
        Some(watch_event::Event::Heartbeat(_)) | None => Event::default().comment("heartbeat"),
    }
}

/// The `end` event: why the stream ends.
fn end(status: &Status) -> Event {
    json_event(&ErrorBody {
        error: status.message().to_owned(),
        code: Some(code_name(status.code()).to_owned()),
        attempts: None,
    })
    .event("end")
}

/// An event whose data is `data` as JSON.
fn json_event(data: &impl serde::Serialize) -> Event {
    Event::default().json_data(data).unwrap_or_else(|error| {
        // The three shapes are plain structs of strings and numbers: they always serialize.
        tracing::error!(%error, "an event could not be encoded");
        Event::default().comment("an event could not be encoded")
    })
}
