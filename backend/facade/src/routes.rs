//! Handlers, one door per module, over one shared core written once here: validation has
//! already been done by the extractors, and every error maps to an answer in [`crate::error`].
//!
//! - [`original`]: the original's routes and answers, exactly;
//! - [`api`]: the page's API, nested under `/api` with answers of its own.

pub(crate) mod api;
pub(crate) mod original;

use msglog_proto::{
    MessageText,
    api::{ApiSendMessageResponse, GetMessagesResponse, SendMessageResponse, SendStatus},
    logging::{STATUS_DUPLICATE, STATUS_LOGGED},
};
use uuid::Uuid;

use crate::{
    error::AppError,
    ids::{IdempotencyKey, message_id},
    logging_client::Logged,
    state::AppState,
};

/// What became of a message sent to logging; each door encodes it in its own shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// The id it is stored under.
    id: Uuid,
    /// Stored now, or already held.
    logged: Logged,
    /// Calls made to logging.
    attempts: u32,
}

impl Sent {
    fn status(&self) -> (SendStatus, &'static str) {
        match self.logged {
            Logged::Stored => (SendStatus::Success, STATUS_LOGGED),
            Logged::Duplicate => (SendStatus::Duplicate, STATUS_DUPLICATE),
        }
    }
}

impl From<Sent> for SendMessageResponse {
    fn from(sent: Sent) -> Self {
        let (status, message) = sent.status();
        Self {
            id: sent.id.to_string(),
            status,
            message: message.to_owned(),
        }
    }
}

impl From<Sent> for ApiSendMessageResponse {
    fn from(sent: Sent) -> Self {
        let SendMessageResponse {
            id,
            status,
            message,
        } = sent.into();
        Self {
            id,
            status,
            message,
            attempts: sent.attempts,
        }
    }
}

/// Picks the id and stores the message in logging (with retries).
#[tracing::instrument(skip_all, fields(id))]
async fn send_message(
    state: &AppState,
    request_id: &str,
    key: Option<IdempotencyKey>,
    text: MessageText,
) -> Result<Sent, AppError> {
    let id = message_id(state.dedup, key.as_ref(), &text);
    tracing::Span::current().record("id", tracing::field::display(id));
    let logged = state
        .logging
        .log_message(id, &text, request_id)
        .await
        .map_err(|failure| AppError::LogMessage { failure, id, key })?;
    tracing::info!(
        logged = ?logged.value,
        attempts = logged.attempts,
        "message sent to logging"
    );
    Ok(Sent {
        id,
        logged: logged.value,
        attempts: logged.attempts,
    })
}

/// Logging's list and the messages service's text, fetched together. The messages service
/// being down is reported in the text; logging being down is an error.
#[tracing::instrument(skip_all)]
async fn list_messages(
    state: &AppState,
    request_id: &str,
) -> Result<GetMessagesResponse, AppError> {
    let (logged, from_service) = tokio::join!(
        state.logging.get_messages(request_id),
        state.messages.get_message(request_id),
    );
    let logged = logged.map_err(AppError::GetMessages)?;
    let message_from_service = from_service.unwrap_or_else(|error| {
        tracing::warn!(%error, "messages service failed");
        format!("Messages service error: {error}")
    });
    Ok(GetMessagesResponse {
        logged_messages: logged.value,
        message_from_service,
    })
}

/// `GET /healthz`: the facade itself is up (it says nothing of its dependencies).
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// A known path with the wrong method: a JSON 405.
pub(crate) async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
