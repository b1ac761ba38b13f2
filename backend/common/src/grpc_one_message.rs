//! Calls whose request is one message (unary and server-streaming) take one message: a request
//! body with a second one is refused `INVALID_ARGUMENT`, as gRPC servers refuse it, rather than
//! read for its first message and the rest silently dropped.
//!
//! The body is watched as it streams, frame header by frame header (the 5-byte gRPC prefix), so
//! nothing is buffered; the refusal is an error of the body that carries the status, which
//! tonic answers as it is.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf as _, Bytes};
use http::Request;
use http_body::Frame;
use tonic::Status;

/// Refuses a second request message on calls whose path starts with `prefix`.
#[derive(Debug, Clone, Copy)]
pub struct OneMessageLayer {
    /// The paths of the service whose methods all take one message.
    prefix: &'static str,
}

impl OneMessageLayer {
    /// For every method under `prefix` (`/package.Service/`): none may stream requests.
    pub fn for_service(prefix: &'static str) -> Self {
        Self { prefix }
    }
}

impl<S> tower::Layer<S> for OneMessageLayer {
    type Service = OneMessage<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OneMessage {
            inner,
            prefix: self.prefix,
        }
    }
}

/// See [`OneMessageLayer`].
#[derive(Debug, Clone)]
pub struct OneMessage<S> {
    inner: S,
    prefix: &'static str,
}

impl<S, B> tower::Service<Request<B>> for OneMessage<S>
where
    S: tower::Service<Request<tonic::body::Body>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let watched = request.uri().path().starts_with(self.prefix);
        self.inner.call(request.map(|body| {
            if watched {
                tonic::body::Body::new(OneMessageBody {
                    inner: body,
                    frames: FrameCounter::default(),
                })
            } else {
                tonic::body::Body::new(body)
            }
        }))
    }
}

/// Where a body is in its gRPC frames.
#[derive(Debug, Default, Clone, Copy)]
struct FrameCounter {
    /// Frame headers begun.
    frames: u32,
    /// Bytes of the current header read so far (0 to 4; at 5 the header is complete).
    header_read: usize,
    /// The current header's bytes.
    header: [u8; 5],
    /// Bytes of the current frame's message still to come.
    remaining: u64,
}

impl FrameCounter {
    /// Follows `chunk`; `false` once a second frame begins.
    fn follow(&mut self, mut chunk: &[u8]) -> bool {
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let taken = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                self.remaining -= taken as u64;
                chunk.advance(taken);
                continue;
            }
            if self.header_read == 0 {
                self.frames += 1;
                if self.frames > 1 {
                    return false;
                }
            }
            self.header[self.header_read] = chunk[0];
            self.header_read += 1;
            chunk.advance(1);
            if self.header_read == self.header.len() {
                self.header_read = 0;
                let [_, a, b, c, d] = self.header;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        true
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails with `INVALID_ARGUMENT` when a second message begins.
    struct OneMessageBody<B> {
        #[pin]
        inner: B,
        frames: FrameCounter,
    }
}

impl<B> http_body::Body for OneMessageBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && !this.frames.follow(data)
                {
                    return Poll::Ready(Some(Err(Box::new(Status::invalid_argument(
                        "this method takes one request message; the request holds more",
                    )))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, len as usize));
        bytes
    }

    #[test]
    fn one_frame_passes_however_it_is_cut_and_a_second_is_caught() {
        let one = frame(300);
        for cut in [1, 2, 4, 5, 6, 100, 305] {
            let mut counter = FrameCounter::default();
            assert!(one.chunks(cut).all(|chunk| counter.follow(chunk)), "{cut}");
        }
        let mut two = frame(3);
        two.extend(frame(0));
        for cut in [1, 3, 5, 8, 9, 13] {
            let mut counter = FrameCounter::default();
            assert!(!two.chunks(cut).all(|chunk| counter.follow(chunk)), "{cut}");
        }
        // An empty message is a frame too.
        let mut empty_then_one = frame(0);
        empty_then_one.extend(frame(1));
        assert!(!FrameCounter::default().follow(&empty_then_one));
        assert!(FrameCounter::default().follow(&frame(0)));
    }
}
