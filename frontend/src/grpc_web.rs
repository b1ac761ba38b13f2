//! gRPC-web on the browser's `fetch`, and nothing more: a call is a `POST` of one 5-byte-framed
//! protobuf message to `/{package.Service}/{Method}`, and its answer a stream of such frames,
//! messages (flag `0x00`) then one of trailers (flag `0x80`: `grpc-status`, `grpc-message`), or
//! the status alone in the answer's headers ("trailers-only"). A unary call's answer is that
//! stream with one message; a server stream's is read frame by frame as it arrives.
//!
//! The page needs no more of gRPC than this (no compression, no client streaming, no
//! interceptors, one origin), so it carries no general HTTP or gRPC stack: the size of the
//! page is a promise to its readers.
//!
//! A call ends its fetch when it is dropped (an `AbortController`), so a stream given up (this
//! tab no longer leads, a silence, a timeout) frees its connection at once.

use std::marker::PhantomData;

use js_sys::Uint8Array;
use prost::Message;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Headers, ReadableStreamDefaultReader, ReadableStreamReadResult, RequestInit,
    Response,
};

use crate::error::ApiError;

/// The gRPC-web frame header: a flag byte and a big-endian length.
const HEADER: usize = 5;
/// A frame of trailers rather than a message.
const TRAILERS: u8 = 0x80;
/// A compressed message (never asked for, so never expected).
const COMPRESSED: u8 = 0x01;

/// Makes the unary call `path` (`/msglog.v1.MessageLog/Send`) with `request`, and reads its
/// one answer.
pub(crate) async fn unary<A: Message + Default>(
    path: &str,
    request: &impl Message,
) -> Result<A, ApiError> {
    let mut frames = Frames::open(path, request.encode_to_vec()).await?;
    let answer = frames.next().await?.ok_or_else(|| garbled("no answer"))?;
    if frames.next().await?.is_some() {
        return Err(garbled("more than one answer"));
    }
    A::decode(answer.as_slice()).map_err(|_| garbled("an answer that does not decode"))
}

/// Opens the server stream `path` with `request`.
pub(crate) async fn stream<M: Message + Default>(
    path: &str,
    request: &impl Message,
) -> Result<Stream<M>, ApiError> {
    let frames = Frames::open(path, request.encode_to_vec()).await?;
    Ok(Stream {
        frames,
        kind: PhantomData,
    })
}

/// A server stream's messages, as they arrive.
pub(crate) struct Stream<M> {
    frames: Frames,
    kind: PhantomData<M>,
}

impl<M: Message + Default> Stream<M> {
    /// The next message; `None` when the stream ended well (status `OK`), an error when it
    /// ended otherwise or broke. Cancel-safe: a caller may stop waiting (a `select` with a
    /// timer) and call again, and no message is lost.
    pub(crate) async fn message(&mut self) -> Result<Option<M>, ApiError> {
        match self.frames.next().await? {
            Some(bytes) => M::decode(bytes.as_slice())
                .map(Some)
                .map_err(|_| garbled("a message that does not decode")),
            None => Ok(None),
        }
    }
}

/// The frames of one call's answer, read as they arrive. Not generic, so compiled once.
struct Frames {
    /// The answer's body; `None` once it is read to the end, or when the status came in the
    /// headers.
    reader: Option<ReadableStreamDefaultReader>,
    /// The read under way: kept here, not in the caller's future, so a caller that stops
    /// waiting (a timer won a `select`) loses nothing; the next call waits for the same read.
    reading: Option<JsFuture>,
    /// Bytes received; those before `taken` were taken as frames already.
    buffer: Vec<u8>,
    /// Where the next frame starts in `buffer` (frames are taken by moving it on, so a chunk of
    /// many frames costs its length, not its length times its frames; the taken bytes are let
    /// go when the next chunk comes).
    taken: usize,
    /// The status was read (`OK`): the answer is over.
    finished: bool,
    /// Ends the fetch when the call is dropped.
    abort: AbortController,
}

impl Frames {
    /// Sends `message`, framed, and waits for the answer's headers.
    async fn open(path: &str, message: Vec<u8>) -> Result<Self, ApiError> {
        let abort = AbortController::new().map_err(network)?;
        let mut body = Vec::with_capacity(HEADER + message.len());
        body.push(0);
        let length = u32::try_from(message.len()).map_err(|_| garbled("a request too large"))?;
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(&message);

        let headers = Headers::new().map_err(network)?;
        for (name, value) in [
            ("content-type", "application/grpc-web+proto"),
            ("accept", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ] {
            headers.set(name, value).map_err(network)?;
        }
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body(&Uint8Array::from(body.as_slice()));
        init.set_signal(Some(&abort.signal()));
        let fetched = leptos::prelude::window().fetch_with_str_and_init(path, &init);
        let response: Response = JsFuture::from(fetched)
            .await
            .map_err(network)?
            .dyn_into()
            .map_err(network)?;

        let mut frames = Self {
            reader: None,
            reading: None,
            buffer: Vec::new(),
            taken: 0,
            finished: false,
            abort,
        };
        let answered = response.headers();
        if let Some(status) = answered.get("grpc-status").map_err(network)? {
            // Trailers-only: the status is the whole answer.
            let message = answered.get("grpc-message").map_err(network)?;
            ended(&status, message.as_deref().unwrap_or_default())?;
            frames.finished = true;
            return Ok(frames);
        }
        if response.status() != 200 {
            return Err(http_status(response.status()));
        }
        let body = response.body().ok_or_else(|| garbled("no body"))?;
        frames.reader = Some(body.get_reader().unchecked_into());
        Ok(frames)
    }

    /// The next message's bytes; `None` after trailers saying `OK`. Cancel-safe: dropped before
    /// it is ready, it loses no bytes.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some((flag, payload)) = self.take() {
                if flag & TRAILERS != 0 {
                    trailers(&payload)?;
                    self.finished = true;
                    return Ok(None);
                }
                if flag & COMPRESSED != 0 {
                    return Err(garbled("a compressed message"));
                }
                return Ok(Some(payload));
            }
            let Some(reader) = &self.reader else {
                return Err(garbled("an answer that ended without a status"));
            };
            let reading = self
                .reading
                .get_or_insert_with(|| JsFuture::from(reader.read()));
            let read = reading.await;
            self.reading = None;
            let read: ReadableStreamReadResult = read.map_err(network)?.unchecked_into();
            if read.get_done().unwrap_or(true) {
                self.reader = None;
            } else {
                let chunk: Uint8Array = read.get_value().unchecked_into();
                self.buffer.drain(..self.taken);
                self.taken = 0;
                let start = self.buffer.len();
                let len = chunk.length() as usize;
                self.buffer.resize(start + len, 0);
                chunk.copy_to(&mut self.buffer[start..]);
            }
        }
    }

    /// Takes the next whole frame from the buffer, if one is there.
    fn take(&mut self) -> Option<(u8, Vec<u8>)> {
        let (flag, payload, used) = next_frame(&self.buffer[self.taken..])?;
        self.taken += used;
        Some((flag, payload))
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        // A no-op once the answer was read to the end.
        self.abort.abort();
    }
}

/// The first whole frame of `bytes`: its flag, its payload, and the bytes it used.
fn next_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (flag, length) = frame_header(bytes)?;
    let end = HEADER.checked_add(length)?;
    let payload = bytes.get(HEADER..end)?.to_vec();
    Some((flag, payload, end))
}

/// A frame's flag and payload length, when its header has arrived.
fn frame_header(buffer: &[u8]) -> Option<(u8, usize)> {
    let header: [u8; HEADER] = buffer.get(..HEADER)?.try_into().ok()?;
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    Some((header[0], usize::try_from(length).ok()?))
}

/// Reads a trailers frame (`name: value` lines, names in any case): `Ok` for status 0.
fn trailers(payload: &[u8]) -> Result<(), ApiError> {
    let text = String::from_utf8_lossy(payload);
    let (mut status, mut message) = (None, "");
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("grpc-status") {
            status = Some(value);
        } else if name.trim().eq_ignore_ascii_case("grpc-message") {
            message = value;
        }
    }
    ended(
        status.ok_or_else(|| garbled("trailers without a status"))?,
        message,
    )
}

/// A call's final status, as sent: `Ok` for `0`, else the error it names.
fn ended(status: &str, message: &str) -> Result<(), ApiError> {
    match status.trim().parse::<i32>() {
        Ok(0) => Ok(()),
        Ok(code) => Err(ApiError::new(
            msglog_proto::code_name(code),
            percent_decoded(message),
        )),
        Err(_) => Err(garbled("a status that is not a number")),
    }
}

/// `grpc-message` is percent-encoded UTF-8.
fn percent_decoded(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = bytes
            .get(at + 1..at + 3)
            .filter(|_| bytes[at] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An answer that is not gRPC (a proxy's error page, say), read as gRPC reads HTTP statuses.
fn http_status(status: u16) -> ApiError {
    let code = match status {
        400 => "INTERNAL",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "UNIMPLEMENTED",
        429 | 502..=504 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    ApiError::new(code, format!("the server answered HTTP {status}"))
}

/// No answer: the fetch failed (no connection, aborted) or the browser refused it.
fn network(_: JsValue) -> ApiError {
    ApiError::network()
}

/// An answer the page cannot read.
fn garbled(what: &str) -> ApiError {
    ApiError::new("INTERNAL", format!("the server sent {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_whole_from_the_front() {
        assert_eq!(frame_header(&[0, 0, 0, 1]), None);
        assert_eq!(frame_header(&[0x80, 0, 0, 1, 2, 9]), Some((0x80, 258)));
    }

    #[test]
    fn a_chunk_of_many_frames_is_walked_frame_by_frame_and_a_cut_one_waits() {
        let mut chunk = Vec::new();
        for n in 0..1000_u16 {
            chunk.extend_from_slice(&[0, 0, 0, 0, 2]);
            chunk.extend_from_slice(&n.to_be_bytes());
        }
        // The start of one more, cut short.
        chunk.extend_from_slice(&[0, 0, 0, 0, 2, 9]);
        let mut at = 0;
        let mut payloads = Vec::new();
        while let Some((flag, payload, used)) = next_frame(&chunk[at..]) {
            assert_eq!(flag, 0);
            payloads.push(u16::from_be_bytes([payload[0], payload[1]]));
            at += used;
        }
        assert_eq!(payloads, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            &chunk[at..],
            [0, 0, 0, 0, 2, 9],
            "the cut frame waits for its rest"
        );
    }

    #[test]
    fn trailers_say_how_the_call_ended() {
        assert_eq!(trailers(b"grpc-status:0\r\ngrpc-message:\r\n"), Ok(()));
        let error = trailers(b"Grpc-Status: 14\r\ngrpc-message: logging%20is%20down%E2%80%A6\r\n")
            .expect_err("an error");
        assert_eq!(
            (error.code, error.message.as_str()),
            ("UNAVAILABLE", "logging is down…")
        );
        assert_eq!(trailers(b"").expect_err("no status").code, "INTERNAL");
    }

    #[test]
    fn a_percent_sign_that_escapes_nothing_is_kept() {
        assert_eq!(percent_decoded("100% sure %4"), "100% sure %4");
        assert_eq!(percent_decoded("a%2Cb"), "a,b");
    }

    #[test]
    fn other_http_answers_read_as_grpc_reads_them() {
        assert_eq!(http_status(503).code, "UNAVAILABLE");
        assert_eq!(http_status(404).code, "UNIMPLEMENTED");
        assert_eq!(http_status(500).code, "UNKNOWN");
    }
}
