//! The token logging may require of its callers (`--token-file`): every call but the health
//! check must present it as `authorization: Bearer TOKEN`, or is answered `UNAUTHENTICATED`
//! before it reaches a service. Health stays open, so a load balancer or orchestrator can probe
//! without the secret.

use std::sync::Arc;

use http::{HeaderMap, Response, Uri, header::AUTHORIZATION};
use msglog_common::{http_edge::RefuseLayer, secret::Secret};
use tonic::Status;

/// Paths open without the token: the standard gRPC health service.
const OPEN_PREFIX: &str = "/grpc.health.v1.Health/";

/// Refuses every call without `token`, when there is one; passes every call when `None`.
pub(crate) fn require_token(
    token: Option<Secret>,
) -> RefuseLayer<
    impl Fn(&Uri, &HeaderMap) -> Option<Response<tonic::body::Body>> + Clone + Send + Sync,
> {
    let token = token.map(Arc::new);
    RefuseLayer::new(move |uri: &Uri, headers: &HeaderMap| {
        let token = token.as_ref()?;
        if uri.path().starts_with(OPEN_PREFIX) || token.is_presented_by(headers.get(AUTHORIZATION))
        {
            return None;
        }
        tracing::warn!("call refused: no valid token");
        Some(
            Status::unauthenticated(
                "this logging service requires a bearer token (authorization: Bearer TOKEN)",
            )
            .into_http(),
        )
    })
}
