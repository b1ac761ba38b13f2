//! Every gRPC call's deadline, kept on the server as a gRPC server keeps it: the client's
//! `grpc-timeout`, and where the server sets a limit of its own (its request timeout, for
//! unary calls) the earlier of the two. A call not answered by then is answered
//! `DEADLINE_EXCEEDED` and its work dropped (a call that cannot be answered in time is not
//! worth finishing; a request whose body stalls is one); a stream still open then ends with
//! `DEADLINE_EXCEEDED` in its trailers.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Frame;
use tokio::time::{Instant, Sleep};
use tonic::Status;

/// Enforces each call's deadline (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcDeadlineLayer {
    /// The server's own limit, if any: the longest a call may take whatever its client asks.
    limit: Option<Duration>,
}

impl GrpcDeadlineLayer {
    /// The client's deadline alone: for streams, which stay open for as long as their client
    /// wants.
    pub fn client_only() -> Self {
        Self { limit: None }
    }

    /// The client's deadline or `limit`, whichever comes first: for unary calls.
    pub fn at_most(limit: Duration) -> Self {
        Self { limit: Some(limit) }
    }
}

impl<S> tower::Layer<S> for GrpcDeadlineLayer {
    type Service = GrpcDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcDeadline {
            inner,
            limit: self.limit,
        }
    }
}

/// See [`GrpcDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct GrpcDeadline<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S, B> tower::Service<Request<B>> for GrpcDeadline<S>
where
    S: tower::Service<Request<B>, Response = Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let asked = request
            .headers()
            .get("grpc-timeout")
            .and_then(parse_timeout);
        let timeout = match (asked, self.limit) {
            (Some(asked), Some(limit)) => Some(asked.min(limit)),
            (one, other) => one.or(other),
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Some(timeout) = timeout else {
                return answer.await;
            };
            let deadline = Instant::now() + timeout;
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(response)) => Ok(response.map(|body| {
                    tonic::body::Body::new(DeadlineBody {
                        inner: body,
                        deadline: tokio::time::sleep_until(deadline),
                        timeout,
                        ended: false,
                    })
                })),
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::info!(
                        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                        "call dropped: its deadline passed"
                    );
                    Ok(exceeded(timeout).into_http())
                }
            }
        })
    }
}

fn exceeded(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "no answer within the call's deadline of {} ms",
        timeout.as_millis()
    ))
}

pin_project_lite::pin_project! {
    /// An answer's body that ends with `DEADLINE_EXCEEDED` trailers when the deadline passes
    /// before it has ended.
    struct DeadlineBody {
        #[pin]
        inner: tonic::body::Body,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
        ended: bool,
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            if frame.is_none() {
                *this.ended = true;
            }
            return Poll::Ready(frame);
        }
        ready!(this.deadline.poll(cx));
        *this.ended = true;
        tracing::info!(
            timeout_ms = u64::try_from(this.timeout.as_millis()).unwrap_or(u64::MAX),
            "stream ended: its deadline passed"
        );
        // The status's own headers, as trailers.
        let mut trailers = exceeded(*this.timeout)
            .into_http::<()>()
            .into_parts()
            .0
            .headers;
        trailers.remove(http::header::CONTENT_TYPE);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A `grpc-timeout` value: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`). Anything
/// else is ignored, as if no deadline were set.
pub fn parse_timeout(value: &HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    fn parse(value: &str) -> Option<Duration> {
        parse_timeout(&HeaderValue::from_str(value).unwrap())
    }

    #[test]
    fn grpc_timeouts_are_read_in_every_unit_and_bad_ones_ignored() {
        assert_eq!(parse("500m"), Some(Duration::from_millis(500)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("250u"), Some(Duration::from_micros(250)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123456789m", "10x", "-5m", "1.5S", "10"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    /// A stream's body: one frame, then nothing, for ever.
    struct OneFrameThenSilence(Option<Bytes>);

    impl http_body::Body for OneFrameThenSilence {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            match self.0.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => Poll::Pending,
            }
        }
    }

    fn endless_stream() -> Response<tonic::body::Body> {
        Response::new(tonic::body::Body::new(OneFrameThenSilence(Some(
            Bytes::from_static(b"frame"),
        ))))
    }

    async fn call(
        layer: GrpcDeadlineLayer,
        grpc_timeout: Option<&str>,
        answer_after: Duration,
    ) -> Response<tonic::body::Body> {
        let service = layer.layer(tower::service_fn(move |_: Request<()>| async move {
            tokio::time::sleep(answer_after).await;
            Ok::<_, Infallible>(endless_stream())
        }));
        let mut request = Request::new(());
        if let Some(value) = grpc_timeout {
            request
                .headers_mut()
                .insert("grpc-timeout", HeaderValue::from_str(value).unwrap());
        }
        service.oneshot(request).await.unwrap()
    }

    fn grpc_status(headers: &http::HeaderMap) -> Option<&str> {
        headers.get("grpc-status").map(|v| v.to_str().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_unanswered_by_the_earlier_deadline_is_deadline_exceeded() {
        // The server's limit, the client's, and the earlier of the two.
        for (layer, asked) in [
            (GrpcDeadlineLayer::at_most(Duration::from_secs(1)), None),
            (GrpcDeadlineLayer::client_only(), Some("1S")),
            (
                GrpcDeadlineLayer::at_most(Duration::from_secs(60)),
                Some("1000m"),
            ),
            (
                GrpcDeadlineLayer::at_most(Duration::from_secs(1)),
                Some("1H"),
            ),
        ] {
            let started = Instant::now();
            let response = call(layer, asked, Duration::from_secs(3600)).await;
            assert_eq!(
                started.elapsed(),
                Duration::from_secs(1),
                "{layer:?} {asked:?}"
            );
            assert_eq!(
                grpc_status(response.headers()),
                Some("4"),
                "{layer:?} {asked:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_open_at_its_deadline_ends_with_deadline_exceeded_trailers() {
        let response = call(
            GrpcDeadlineLayer::client_only(),
            Some("5S"),
            Duration::from_secs(1),
        )
        .await;
        let started = Instant::now();
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "frame");
        let last = body.frame().await.unwrap().unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        assert_eq!(grpc_status(last.trailers_ref().unwrap()), Some("4"));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_deadline_a_stream_stays_open() {
        let response = call(GrpcDeadlineLayer::client_only(), None, Duration::ZERO).await;
        let mut body = response.into_body();
        body.frame().await.unwrap().unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(24 * 3600), body.frame()).await;
        assert!(waited.is_err(), "still open after a day");
    }
}
