//! One rule for request ids, shared by the three services.
//!
//! Every request carries an `x-request-id` that joins its traces across the services. A
//! client's id is kept only when it is short ([`MAX_LEN`] bytes at most) and visible ASCII, so it
//! can be forwarded in gRPC metadata and HTTP headers without hurting anyone; otherwise, or
//! when the client sent none, the service makes a fresh UUID (and logs the client's value cut
//! short). The settled id is put back into the request, so handlers forward exactly it, and
//! returned in the answer's `x-request-id`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderName, HeaderValue, Request, Response};

/// The header.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept, in bytes.
pub const MAX_LEN: usize = 128;

/// Whether a client's id may be kept: 1 to [`MAX_LEN`] visible ASCII characters.
pub fn is_acceptable(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

/// The id a request will go by: the client's when acceptable, else a fresh UUID.
fn settle(headers: &http::HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(&HEADER).iter();
    match (sent.next(), sent.next()) {
        (Some(value), None) if is_acceptable(value.as_bytes()) => value.clone(),
        (None, _) => fresh(),
        (Some(value), _) => {
            let id = fresh();
            tracing::warn!(
                client_value = %crate::bounded::shorten_bytes(value.as_bytes(), 64),
                client_len = value.len(),
                replaced_by = ?id,
                "unusable x-request-id replaced (one id of 1-128 visible ASCII characters is kept)"
            );
            id
        }
    }
}

fn fresh() -> HeaderValue {
    // A hyphenated UUID is 36 visible ASCII characters: always a valid header value.
    HeaderValue::from_str(&crate::random_id::random_uuid().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Applies the rule to every request and returns the settled id in every answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// See [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<Request<B>> for RequestIdService<S>
where
    S: tower::Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = settle(request.headers());
        request.headers_mut().insert(HEADER, id.clone());
        RequestIdFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer, to which the settled id is added.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(HEADER, id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The settled id of a request that went through [`RequestIdLayer`] (`-` if it did not).
pub fn of<B>(request: &Request<B>) -> &str {
    in_headers(request.headers())
}

/// The settled id in a request's headers (`-` if the request did not go through
/// [`RequestIdLayer`]): for handlers that see the headers alone (an extractor's parts, a gRPC
/// call's metadata).
pub fn in_headers(headers: &http::HeaderMap) -> &str {
    headers
        .get(&HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_acceptable() {
        assert!(is_acceptable(b"req-abc-123"));
        assert!(is_acceptable(&[b'a'; MAX_LEN]));
        assert!(!is_acceptable(&[b'a'; MAX_LEN + 1]));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"has space"));
        assert!(!is_acceptable("ключ".as_bytes()));
        assert!(!is_acceptable(b"tab\there"));
    }

    async fn settled(sent: &[&[u8]]) -> (String, String) {
        let service = RequestIdLayer.layer(tower::service_fn(|request: Request<()>| async move {
            let seen = of(&request).to_owned();
            Ok::<_, Infallible>(Response::new(seen))
        }));
        let mut request = Request::new(());
        for value in sent {
            request
                .headers_mut()
                .append(HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        let response = service.oneshot(request).await.unwrap();
        let returned = response.headers()[&HEADER].to_str().unwrap().to_owned();
        (response.into_body(), returned)
    }

    #[tokio::test]
    async fn a_good_id_is_kept_and_returned() {
        assert_eq!(
            settled(&[b"req-1"]).await,
            ("req-1".to_owned(), "req-1".to_owned())
        );
    }

    #[tokio::test]
    async fn a_missing_long_non_ascii_or_repeated_id_is_replaced_by_a_fresh_uuid_seen_by_both() {
        let long = vec![b'x'; 100_000];
        for sent in [
            &[][..],
            &[long.as_slice()],
            &["ключ".as_bytes()],
            &[b"a".as_slice(), b"b".as_slice()],
        ] {
            let (seen, returned) = settled(sent).await;
            assert_eq!(seen, returned, "the handler and the client see one id");
            assert!(uuid::Uuid::parse_str(&seen).is_ok(), "{seen}");
        }
    }
}
