//! The facade's client of the messages service: one plain HTTP GET with a timeout.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// The longest answer read from the messages service.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why the messages service's text could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MessagesError {
    /// No answer within the timeout.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// Connection refused, reset, or similar.
    #[error("unreachable ({0})")]
    Unreachable(String),
    /// Answered with an error status.
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    /// Answered with something that is not a short UTF-8 text.
    #[error("answered an unreadable body")]
    BadBody,
}

/// A cheap-to-clone handle to the messages service.
#[derive(Debug, Clone)]
pub(crate) struct MessagesClient {
    /// Pooled HTTP/1.1 client.
    client: Client<HttpConnector, Empty<Bytes>>,
    /// `<messages-url>/get_message`: the stub's text.
    message_uri: Uri,
    /// The longest the whole call may take.
    timeout: Duration,
}

impl MessagesClient {
    /// A client of the messages service at `base_url` (`http://host:port`).
    pub(crate) fn new(base_url: &str, timeout: Duration) -> Result<Self, http::uri::InvalidUri> {
        let base = base_url.trim_end_matches('/');
        let message_uri = format!("{base}/get_message").parse()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            message_uri,
            timeout,
        })
    }

    /// The messages service's text (`not implemented yet`).
    pub(crate) async fn get_message(&self, request_id: &str) -> Result<String, MessagesError> {
        self.get_text(&self.message_uri, request_id).await
    }

    async fn get_text(&self, uri: &Uri, request_id: &str) -> Result<String, MessagesError> {
        match tokio::time::timeout(self.timeout, self.fetch(uri, request_id)).await {
            Ok(result) => result,
            Err(_) => Err(MessagesError::Timeout(self.timeout.as_millis())),
        }
    }

    async fn fetch(&self, uri: &Uri, request_id: &str) -> Result<String, MessagesError> {
        let request = Request::get(uri.clone())
            .header("x-request-id", request_id)
            .body(Empty::new())
            .map_err(|error| MessagesError::Unreachable(error.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| MessagesError::Unreachable(describe(&error)))?;
        if !response.status().is_success() {
            return Err(MessagesError::Status(response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|_| MessagesError::BadBody)?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| MessagesError::BadBody)
    }
}

/// The innermost cause of a client error ("Connection refused (os error 111)"), which says
/// more than the outer "client error (Connect)".
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
