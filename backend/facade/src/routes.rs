//! Handlers. Each is small: extractors have already checked the input, and errors map to
//! answers in [`crate::error`].

use axum::{Json, extract::State};
use msglog_proto::{
    MessageText,
    api::{GetMessagesResponse, SendMessageResponse, SendStatus, ServiceStatus, StatusResponse},
    logging::{STATUS_DUPLICATE, STATUS_LOGGED},
};
use tonic::Code;

use crate::{
    AppState,
    error::AppError,
    extract::{MaybeIdempotencyKey, RequestId, SendMessageBody},
    ids::{IdempotencyKey, message_id},
    logging_client::Logged,
};

/// `POST /send_message`: the original's route and answer (three fields).
pub async fn send_message(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    SendMessageBody(text): SendMessageBody,
) -> Result<Json<SendMessageResponse>, AppError> {
    let mut answer = store_message(&state, request_id, key, text).await?;
    answer.attempts = None;
    Ok(Json(answer))
}

/// `POST /api/messages`: as `/send_message`, and the answer says how many calls it took.
pub async fn api_send_message(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    SendMessageBody(text): SendMessageBody,
) -> Result<Json<SendMessageResponse>, AppError> {
    store_message(&state, request_id, key, text).await.map(Json)
}

/// Picks the id, stores the message in logging (with retries) and says whether it was new or
/// a duplicate, and after how many calls.
#[tracing::instrument(skip_all, fields(id))]
async fn store_message(
    state: &AppState,
    request_id: Option<String>,
    key: Option<IdempotencyKey>,
    text: MessageText,
) -> Result<SendMessageResponse, AppError> {
    let id = message_id(state.dedup, key.as_ref(), &text);
    tracing::Span::current().record("id", tracing::field::display(id));
    let logged = state
        .logging
        .log_message(id, &text, request_id.as_deref())
        .await
        .map_err(|failure| match failure.status.code() {
            Code::AlreadyExists => AppError::Conflict(match &key {
                Some(key) => format!(
                    "Idempotency-Key {:?} was already used for a different message",
                    key.as_str()
                ),
                None => format!("id {id} is already used by a different message"),
            }),
            // Logging refused the message itself (say, its own size limit is lower).
            Code::InvalidArgument => AppError::BadRequest(format!(
                "logging service refused the message: {}",
                failure.status.message()
            )),
            _ => AppError::LogMessageFailed(failure),
        })?;
    let (status, message) = match logged.value {
        Logged::Stored => (SendStatus::Success, STATUS_LOGGED),
        Logged::Duplicate => (SendStatus::Duplicate, STATUS_DUPLICATE),
    };
    tracing::info!(
        ?status,
        attempts = logged.attempts,
        "message sent to logging"
    );
    Ok(SendMessageResponse {
        id: id.to_string(),
        status,
        message: message.to_owned(),
        attempts: Some(logged.attempts),
    })
}

/// `GET /get_messages`: logging's list and the messages service's text, fetched together.
/// The messages service being down is reported in the text; logging being down is an error.
#[tracing::instrument(skip_all)]
pub async fn get_messages(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
) -> Result<Json<GetMessagesResponse>, AppError> {
    let (logged, from_service) = tokio::join!(
        state.logging.get_messages(request_id.as_deref()),
        state.messages.get_message(request_id.as_deref()),
    );
    let logged = logged.map_err(AppError::GetMessagesFailed)?;
    let message_from_service = from_service.unwrap_or_else(|error| {
        tracing::warn!(%error, "messages service failed");
        format!("Messages service error: {error}")
    });
    Ok(Json(GetMessagesResponse {
        logged_messages: logged.value,
        message_from_service,
    }))
}

/// `GET /api/status`: whether each service is up, checked now and concurrently.
pub async fn status(State(state): State<AppState>) -> Json<StatusResponse> {
    let (logging, messages) = tokio::join!(state.logging.health(), state.messages.health());
    Json(StatusResponse {
        facade: ServiceStatus {
            up: true,
            detail: "serving".to_owned(),
        },
        logging: match logging {
            Ok(()) => ServiceStatus {
                up: true,
                detail: "SERVING".to_owned(),
            },
            Err(detail) => ServiceStatus { up: false, detail },
        },
        messages: match messages {
            Ok(()) => ServiceStatus {
                up: true,
                detail: "ok".to_owned(),
            },
            Err(error) => ServiceStatus {
                up: false,
                detail: error.to_string(),
            },
        },
    })
}

/// `GET /healthz`: the facade itself is up (it says nothing of its dependencies).
pub async fn healthz() -> &'static str {
    "ok"
}

/// A known path with the wrong method: a JSON 405.
pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
