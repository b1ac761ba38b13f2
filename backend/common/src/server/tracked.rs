//! Each request tracked: in flight until its answer's body ends, and its own body's progress,
//! so a connection's state is known (idle, busy, stalled); and the peer in its extensions.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
};

use super::state::ConnectionState;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use tower::Service;

/// The address a request came from: the connection's peer, in every request's extensions (for
/// limits per client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The service wrapped so the connection knows when a request is in flight, and each request
/// where it came from.
#[derive(Debug, Clone)]
pub(super) struct Tracked<S> {
    pub(super) inner: S,
    pub(super) state: Arc<ConnectionState>,
    pub(super) peer: Peer,
}

/// Counts one request in flight from its start until its answer's body ends.
#[derive(Debug)]
pub(super) struct InFlight(Arc<ConnectionState>);

impl InFlight {
    pub(super) fn start(state: &Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.touch();
        if state.served.fetch_add(1, Ordering::SeqCst) == 0 {
            state.first_request.notify_one();
        }
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(&self.state);
        let mut request = request.map(|body| RequestBody::new(body, &self.state));
        request.extensions_mut().insert(self.peer);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: guard,
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A request's body as the services see it: hyper's, with each byte's arrival noted, so a
    /// connection whose requests wait on bodies that never come can be told from a busy one.
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        body: Incoming,
        // Counted in `receiving` until the body ends or is dropped.
        receiving: Option<Arc<ConnectionState>>,
    }

    impl PinnedDrop for RequestBody {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().receiving.take() {
                state.receiving.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl RequestBody {
    fn new(body: Incoming, state: &Arc<ConnectionState>) -> Self {
        let receiving = (!http_body::Body::is_end_stream(&body)).then(|| {
            state.receiving.fetch_add(1, Ordering::SeqCst);
            state.body_progressed();
            Arc::clone(state)
        });
        Self { body, receiving }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let frame = this.body.as_mut().poll_frame(cx);
        if let Poll::Ready(ref frame) = frame {
            let ended = !matches!(frame, Some(Ok(_))) || this.body.is_end_stream();
            match (ended, this.receiving.as_ref()) {
                (true, Some(_)) => {
                    if let Some(state) = this.receiving.take() {
                        state.receiving.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                (false, Some(state)) => state.body_progressed(),
                (_, None) => {}
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request counted as in flight until it ends.
    #[derive(Debug)]
    pub(super) struct TrackedBody<B> {
        #[pin]
        body: B,
        _in_flight: InFlight,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
