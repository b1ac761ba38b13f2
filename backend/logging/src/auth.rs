//! The token logging may require of its callers (`--token-file`): every call but the health
//! check must present it as `authorization: Bearer TOKEN`, or is answered `UNAUTHENTICATED`
//! before it reaches a service. Health stays open, so a load balancer or orchestrator can probe
//! without the secret.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response, header::AUTHORIZATION};
use msglog_common::secret::Secret;
use tonic::Status;

/// Paths open without the token: the standard gRPC health service.
const OPEN_PREFIX: &str = "/grpc.health.v1.Health/";

/// Requires the token when there is one (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct RequireTokenLayer {
    token: Option<Arc<Secret>>,
}

impl RequireTokenLayer {
    /// Requires `token`, or nothing when `None`.
    pub(crate) fn new(token: Option<Secret>) -> Self {
        Self {
            token: token.map(Arc::new),
        }
    }
}

impl<S> tower::Layer<S> for RequireTokenLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireToken {
            inner,
            token: self.token.clone(),
        }
    }
}

/// See [`RequireTokenLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RequireToken<S> {
    inner: S,
    token: Option<Arc<Secret>>,
}

impl<S, B> tower::Service<Request<B>> for RequireToken<S>
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
        let allowed = match &self.token {
            None => true,
            Some(token) => {
                request.uri().path().starts_with(OPEN_PREFIX)
                    || token.is_presented_by(request.headers().get(AUTHORIZATION))
            }
        };
        if allowed {
            return Box::pin(self.inner.call(request));
        }
        tracing::warn!("call refused: no valid token");
        Box::pin(async {
            Ok(Status::unauthenticated(
                "this logging service requires a bearer token (authorization: Bearer TOKEN)",
            )
            .into_http())
        })
    }
}
