//! A cap on the answers compressed at once.
//!
//! Each compressed answer holds a deflate state (about 300 KB) and its buffers until its last
//! byte is sent, and compression is work for the CPU alone: with more answers compressed at
//! once than there are cores, none goes faster, and the memory grows with the number of
//! clients. So at most `--max-compressions` answers are compressed at once; a request that
//! comes while all are taken is answered uncompressed, as if it had not asked for gzip (which
//! a client must accept: `identity` is always acceptable unless refused outright).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::{
    BoxError,
    body::{Body, HttpBody},
    extract::Request,
    response::Response,
};
use bytes::Bytes;
use http::header;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The cap, as a layer around the compression layer (it must sit outside it): takes a permit
/// for a request that asks for compression, or strips its `Accept-Encoding` when none is
/// left, and keeps the permit until the compressed body is dropped (sent, or its client gone).
///
/// A plain layer rather than a `from_fn` middleware: this runs on every request, and a
/// `from_fn` middleware clones and boxes the whole stack inside it each time.
#[derive(Debug, Clone)]
pub(crate) struct CapCompressionsLayer {
    permits: Arc<Semaphore>,
}

impl CapCompressionsLayer {
    /// At most `max` answers compressed at once.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
        }
    }
}

impl<S> tower::Layer<S> for CapCompressionsLayer {
    type Service = CapCompressions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CapCompressions {
            inner,
            permits: Arc::clone(&self.permits),
        }
    }
}

/// See [`CapCompressionsLayer`].
#[derive(Debug, Clone)]
pub(crate) struct CapCompressions<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, B> tower::Service<Request> for CapCompressions<S>
where
    S: tower::Service<Request, Response = Response<B>>,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = CapFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let permit = if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let permit = Arc::clone(&self.permits).try_acquire_owned().ok();
            if permit.is_none() {
                request.headers_mut().remove(header::ACCEPT_ENCODING);
            }
            permit
        } else {
            None
        };
        CapFuture {
            inner: self.inner.call(request),
            permit,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer, holding the permit taken for it.
    pub(crate) struct CapFuture<F> {
        #[pin]
        inner: F,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F, B, E> Future for CapFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let Some(permit) = this.permit.take() else {
            return Poll::Ready(Ok(response.map(Body::new)));
        };
        if !response.headers().contains_key(header::CONTENT_ENCODING) {
            // Not compressed after all (too small, or not a kind that is): the permit goes back.
            return Poll::Ready(Ok(response.map(Body::new)));
        }
        Poll::Ready(Ok(response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                // The body owns the permit, so it is held until the body is dropped.
                let _held = &permit;
                frame
            }))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, routing::get};
    use futures_util::StreamExt as _;
    use tokio::sync::mpsc;
    use tower::ServiceExt as _;
    use tower_http::compression::CompressionLayer;

    type Chunks = mpsc::Receiver<Result<String, std::io::Error>>;

    /// An app whose first `/slow` answer is a stream the test feeds (the later ones 4 KiB at
    /// once), behind compression capped at one answer.
    fn app(chunks: Arc<std::sync::Mutex<Option<Chunks>>>) -> Router {
        Router::new()
            .route(
                "/slow",
                get(move || {
                    let chunks = chunks.lock().unwrap().take();
                    async move {
                        match chunks {
                            Some(chunks) => Body::from_stream(
                                futures_util::stream::unfold(chunks, |mut chunks| async move {
                                    chunks.recv().await.map(|chunk| (chunk, chunks))
                                })
                                // The compression layer polls again after the end.
                                .fuse(),
                            ),
                            None => Body::from("x".repeat(4096)),
                        }
                    }
                }),
            )
            .layer(CompressionLayer::new())
            .layer(CapCompressionsLayer::new(1))
    }

    fn gzip_request() -> http::Request<Body> {
        http::Request::get("/slow")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn answers_beyond_the_cap_go_uncompressed_until_a_compressed_one_ends() {
        let (feed, chunks) = mpsc::channel(4);
        let app = app(Arc::new(std::sync::Mutex::new(Some(chunks))));

        // The first answer is compressed, and stays open while the test feeds it.
        let first = app.clone().oneshot(gzip_request()).await.unwrap();
        assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
        feed.send(Ok("x".repeat(4096))).await.unwrap();

        // Meanwhile the cap is reached: the next answer is plain, and whole.
        let second = app.clone().oneshot(gzip_request()).await.unwrap();
        assert!(second.headers().get(header::CONTENT_ENCODING).is_none());
        let body = second.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "x".repeat(4096));

        // Once the first has ended, compression is back.
        drop(feed);
        let compressed = first.into_body().collect().await.unwrap().to_bytes();
        assert!(compressed.len() < 4096, "{} bytes", compressed.len());
        let third = app.clone().oneshot(gzip_request()).await.unwrap();
        assert_eq!(third.headers()[header::CONTENT_ENCODING], "gzip");

        // A client that asks for no compression is not counted at all.
        let plain = app
            .oneshot(http::Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[tokio::test]
    async fn an_answer_left_unread_gives_its_permit_back_when_dropped() {
        let (_feed, chunks) = mpsc::channel(4);
        let app = app(Arc::new(std::sync::Mutex::new(Some(chunks))));
        let first = app.clone().oneshot(gzip_request()).await.unwrap();
        assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
        // Its client went away mid-answer.
        drop(first);
        let next = app.oneshot(gzip_request()).await.unwrap();
        assert_eq!(next.headers()[header::CONTENT_ENCODING], "gzip");
    }
}
