//! What a listener can serve: any tower HTTP service that never fails.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::tracked::RequestBody;

/// What [`serve`](super::serve) can serve: a tower HTTP service that never fails, such as an axum `Router`
/// or tonic's `Routes` (with their layers).
pub trait HttpService:
    Service<
        Request<RequestBody>,
        Response = Response<Self::ResponseBody>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The body of its answers.
    type ResponseBody: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<
            Request<RequestBody>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type ResponseBody = B;
}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
