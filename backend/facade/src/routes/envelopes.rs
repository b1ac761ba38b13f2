//! Enveloped messages over plain HTTP (a flag byte, a 4-byte length, the message), as the
//! Connect door and gRPC-web's binary form write them: a call's request read within its limits,
//! and a `Watch` written as frames. This is the writer of the gateway's streams to browsers
//! (tonic writes native gRPC's, and gRPC-web's text form); each door says how it frames an
//! event and the end ([`Framing`]).
//!
//! The events ready when the connection can take more go out as one chunk: a watcher that fell
//! behind (a burst of messages, or thousands of watchers woken by each one) catches up in one
//! write rather than one per event, and each event is encoded straight into that chunk.

use std::{io::Read as _, time::Duration};

use axum::body::Body;
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::{FutureExt as _, Stream, StreamExt as _, stream};
use http_body_util::BodyExt as _;
use msglog_proto::v1::StoredMessage;
use tonic::Status;

use crate::feed::Watched;

/// Most events written in one chunk.
const EVENTS_PER_CHUNK: usize = 64;

/// Envelope flags: the message is compressed.
pub(super) const COMPRESSED: u8 = 0x01;

/// How a door frames a stream.
pub(super) trait Framing: Copy + Send + 'static {
    /// One event, appended to `out`.
    fn event(self, out: &mut BytesMut, watched: &Watched);
    /// The last frame, appended to `out`: how the stream ended (`None`: well).
    fn end(self, out: &mut BytesMut, status: Option<&Status>);
}

/// One envelope, appended to `out`.
pub(super) fn put_envelope(out: &mut BytesMut, flags: u8, message: &[u8]) {
    out.reserve(5 + message.len());
    out.put_u8(flags);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
}

/// One protobuf message in its envelope, encoded straight into `out`.
fn put_proto(out: &mut BytesMut, message: &impl prost::Message) {
    let length = message.encoded_len();
    out.reserve(5 + length);
    out.put_u8(0);
    out.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
    // `out` has room for it: encoding cannot fail.
    let _ = message.encode(out);
}

/// The field of `WatchEvent` that carries a message (`StoredMessage message = 1`).
const MESSAGE_FIELD: u32 = 1;

/// One event in protobuf in its envelope, appended to `out`: a message encoded as the
/// `WatchEvent` that carries it, straight from the one the feed holds.
pub(super) fn put_watched(out: &mut BytesMut, watched: &Watched) {
    match watched {
        Watched::Message(message) => {
            let message: &StoredMessage = message;
            let length = prost::encoding::message::encoded_len(MESSAGE_FIELD, message);
            out.reserve(5 + length);
            out.put_u8(0);
            out.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
            prost::encoding::message::encode(MESSAGE_FIELD, message, out);
        }
        Watched::Event(event) => put_proto(out, &**event),
    }
}

/// The body of a watch: its events as frames, then the end. `deadline` is the client's, and
/// `expired` the status its stream ends with when it passes.
pub(super) fn body(
    events: impl Stream<Item = Result<Watched, Status>> + Send + 'static,
    framing: impl Framing,
    deadline: Option<Duration>,
    expired: Status,
) -> Body {
    let timer = async move {
        match deadline {
            Some(deadline) => tokio::time::sleep(deadline).await,
            None => std::future::pending().await,
        }
    };
    let events = events.take_until(timer);
    let frames = stream::unfold(
        (Box::pin(events), Some(expired)),
        move |(mut events, expired)| async move {
            // `None` once the end is written.
            let expired = expired?;
            let mut out = BytesMut::new();
            let mut next = events.next().await;
            let mut written = 0;
            loop {
                match next {
                    Some(Ok(event)) => framing.event(&mut out, &event),
                    Some(Err(status)) => {
                        framing.end(&mut out, Some(&status));
                        return Some((out.freeze(), (events, None)));
                    }
                    // The events end with an error of their own (the facade stopping is one),
                    // so this is the client's deadline passing, or, without one, a plain end.
                    None => {
                        framing.end(&mut out, deadline.is_some().then_some(&expired));
                        return Some((out.freeze(), (events, None)));
                    }
                }
                written += 1;
                // Whatever else is ready joins this chunk, up to its size; the rest waits for
                // the next.
                let more = if written < EVENTS_PER_CHUNK {
                    events.next().now_or_never()
                } else {
                    None
                };
                match more {
                    Some(more) => next = more,
                    None => return Some((out.freeze(), (events, Some(expired)))),
                }
            }
        },
    );
    Body::from_stream(frames.map(Ok::<Bytes, std::convert::Infallible>))
}

/// A body of the end alone: a call that failed as it opened, in a stream's own way.
pub(super) fn ended(framing: impl Framing, status: &Status) -> Body {
    let mut out = BytesMut::new();
    framing.end(&mut out, Some(status));
    Body::from(out.freeze())
}

/// `answer`, or `deadline_exceeded` once `deadline` has passed.
pub(super) async fn within<T>(
    deadline: Duration,
    answer: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(deadline, answer)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "no answer within {} ms",
                deadline.as_millis()
            )))
        })
}

/// Reads a request body of at most `max` bytes (after decompression when `gzip`).
pub(super) async fn read_body(body: Body, max: usize, gzip: bool) -> Result<Vec<u8>, Status> {
    let limited = http_body_util::Limited::new(body, max.saturating_add(1));
    let bytes = limited
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                too_large(max)
            } else {
                Status::invalid_argument(format!("the request body could not be read: {error}"))
            }
        })?
        .to_bytes();
    if gzip {
        gunzip(&bytes, max)
    } else if bytes.len() > max {
        Err(too_large(max))
    } else {
        Ok(bytes.to_vec())
    }
}

pub(super) fn too_large(max: usize) -> Status {
    Status::resource_exhausted(format!("the request message is larger than {max} bytes"))
}

/// Decompresses gzip into at most `max` bytes (a small body that inflates past it is refused
/// as soon as it does).
pub(super) fn gunzip(bytes: &[u8], max: usize) -> Result<Vec<u8>, Status> {
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(max as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| {
            Status::invalid_argument(format!("the body is not valid gzip: {error}"))
        })?;
    if inflated.len() > max {
        return Err(too_large(max));
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use msglog_proto::v1::{Heartbeat, WatchEvent, watch_event::Event};
    use prost::Message as _;

    use super::*;

    #[test]
    fn a_shared_message_is_framed_as_the_watch_event_that_carries_it() {
        let message = StoredMessage {
            id: "0193a4c2-7b1e-7000-8000-000000000001".to_owned(),
            text: "héllo, a message long enough to need a two-byte length ".repeat(4),
            seq: 300,
            stored_at_ms: 1_733_400_000_000,
        };
        let heartbeat = WatchEvent {
            event: Some(Event::Heartbeat(Heartbeat { newest_seq: 7 })),
        };
        for (watched, event) in [
            (
                Watched::Message(Arc::new(message.clone())),
                WatchEvent {
                    event: Some(Event::Message(message)),
                },
            ),
            (Watched::Event(Box::new(heartbeat.clone())), heartbeat),
        ] {
            let (mut shared, mut copied) = (BytesMut::new(), BytesMut::new());
            put_watched(&mut shared, &watched);
            put_proto(&mut copied, &event);
            assert_eq!(shared, copied);
            assert_eq!(WatchEvent::decode(&shared[5..]).unwrap(), event);
        }
    }
}
