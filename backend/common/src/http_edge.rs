//! What the services do at their edge, written once: JSON error answers, refusing paths no
//! route or file can have before anything else looks at them, and [`RefuseLayer`], which answers
//! any request a rule refuses (a path, an unknown host, a missing token) before it goes in.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{Request, StatusCode};

/// Longest request path served, in bytes. Longer ones get a JSON 414.
pub const MAX_PATH_BYTES: usize = 2048;
/// Longest path segment served, in bytes: no route has a longer one, and no file system allows
/// a longer file name. Longer ones get a JSON 404.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// An error answer in the API's shape: `{"error": "..."}`.
pub fn json_error(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": error.into() }))).into_response()
}

/// The answer to a path no route or file can have: a JSON 414 for a path over
/// [`MAX_PATH_BYTES`], a JSON 404 for a segment over [`MAX_SEGMENT_BYTES`] (quoting the path
/// cut short); `None` for any other path.
pub fn refusal(path: &str) -> Option<Response> {
    if path.len() > MAX_PATH_BYTES {
        return Some(json_error(
            StatusCode::URI_TOO_LONG,
            format!(
                "the path is {} bytes long; the limit is {MAX_PATH_BYTES} bytes",
                path.len()
            ),
        ));
    }
    if path
        .split('/')
        .any(|segment| segment.len() > MAX_SEGMENT_BYTES)
    {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            format!(
                "no route for {} (a path segment is over {MAX_SEGMENT_BYTES} bytes)",
                crate::bounded::shorten_bytes(path.as_bytes(), 64)
            ),
        ));
    }
    None
}

/// What a [`RefuseLayer`] asks of each request: its answer when it is refused, `None` to pass it.
pub type Check = fn(&http::Uri, &http::HeaderMap) -> Option<Response>;

/// Answers every request whose path is unservable with its [`refusal`] before anything else
/// looks at it, and passes the rest on.
pub fn refuse_unservable_paths() -> RefuseLayer<Check> {
    RefuseLayer::new(|uri, _| refusal(uri.path()))
}

/// Answers each request its check refuses (with the check's answer) before anything else looks
/// at it, and passes the rest on: one edge for every rule of that kind.
#[derive(Clone)]
pub struct RefuseLayer<C> {
    check: C,
}

impl<C> std::fmt::Debug for RefuseLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefuseLayer").finish_non_exhaustive()
    }
}

impl<C> RefuseLayer<C> {
    /// A layer that refuses what `check` answers (`Fn(&Uri, &HeaderMap) -> Option<Response>`,
    /// in the response type of the service it wraps).
    pub fn new(check: C) -> Self {
        Self { check }
    }
}

impl<S, C: Clone> tower::Layer<S> for RefuseLayer<C> {
    type Service = Refuse<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Refuse {
            inner,
            check: self.check.clone(),
        }
    }
}

/// See [`RefuseLayer`].
#[derive(Clone)]
pub struct Refuse<S, C> {
    inner: S,
    check: C,
}

impl<S: std::fmt::Debug, C> std::fmt::Debug for Refuse<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refuse")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, C, B> tower::Service<Request<B>> for Refuse<S, C>
where
    S: tower::Service<Request<B>>,
    C: Fn(&http::Uri, &http::HeaderMap) -> Option<S::Response>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RefuseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match (self.check)(request.uri(), request.headers()) {
            Some(response) => RefuseFuture::Refused {
                response: Some(response),
            },
            None => RefuseFuture::Passed {
                inner: self.inner.call(request),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// A refusal, or the answer of the service inside.
    #[project = RefuseProjection]
    pub enum RefuseFuture<F, R> {
        /// Refused (taken when polled).
        Refused { response: Option<R> },
        /// Passed on.
        Passed { #[pin] inner: F },
    }
}

impl<F, R, E> Future for RefuseFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RefuseProjection::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            RefuseProjection::Passed { inner } => inner.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    async fn get_path(path: &str) -> (StatusCode, String) {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .layer(refuse_unservable_paths());
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn long_paths_and_segments_get_json_errors_that_quote_them_cut_short() {
        let (status, body) = get_path(&format!("/{}", "s".repeat(256))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.starts_with(r#"{"error":"no route for /sss"#), "{body}");
        assert!(body.len() < 200, "{body}");

        let (status, body) = get_path(&"/abc".repeat(1300)).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert_eq!(
            body,
            r#"{"error":"the path is 5200 bytes long; the limit is 2048 bytes"}"#
        );

        assert_eq!(get_path("/ok").await, (StatusCode::OK, "ok".to_owned()));
    }
}
