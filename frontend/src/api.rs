//! Calls to the facade's JSON API, with the shapes from `msglog_proto::api`.

use std::fmt;

use gloo_net::http::{Request, Response};
use msglog_proto::api::{
    ApiSendMessageResponse, ErrorBody, GetMessagesResponse, SendMessageRequest, StatusResponse,
    paths,
};
use serde::de::DeserializeOwned;

/// Why a call to the facade failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// The facade answered with an error status and its JSON error body.
    Http {
        /// HTTP status code.
        status: u16,
        /// What the facade said.
        body: ErrorBody,
    },
    /// No answer at all (the facade is down, or the network is).
    Network(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { body, .. } => f.write_str(&body.error),
            Self::Network(error) => write!(f, "the facade did not answer ({error})"),
        }
    }
}

/// `/api/messages`.
fn messages_path() -> String {
    format!("{}{}", paths::API, paths::API_MESSAGES)
}

/// `POST /api/messages`.
pub(crate) async fn send(message: String) -> Result<ApiSendMessageResponse, ApiError> {
    let request = Request::post(&messages_path())
        .json(&SendMessageRequest { message })
        .map_err(|error| ApiError::Network(error.to_string()))?;
    read(request.send().await).await
}

/// `GET /api/messages`.
pub(crate) async fn list() -> Result<GetMessagesResponse, ApiError> {
    read(Request::get(&messages_path()).send().await).await
}

/// `GET /api/status`.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    read(
        Request::get(&format!("{}{}", paths::API, paths::API_STATUS))
            .send()
            .await,
    )
    .await
}

async fn read<T: DeserializeOwned>(
    response: Result<Response, gloo_net::Error>,
) -> Result<T, ApiError> {
    let response = response.map_err(|error| ApiError::Network(error.to_string()))?;
    let status = response.status();
    if response.ok() {
        return response
            .json::<T>()
            .await
            .map_err(|error| ApiError::Network(format!("unreadable answer: {error}")));
    }
    let body = response
        .json::<ErrorBody>()
        .await
        .unwrap_or_else(|_| ErrorBody::new(format!("HTTP {status}")));
    Err(ApiError::Http { status, body })
}
