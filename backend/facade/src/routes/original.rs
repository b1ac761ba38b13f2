//! The original's routes, with its JSON shapes and status strings exactly.

use axum::{Json, extract::State, response::Response};
use msglog_proto::api::{GetMessagesResponse, SendMessageRequest, SendMessageResponse};

use crate::{
    error::AppError,
    extract::{MaybeIdempotencyKey, RequestId, SendMessageBody, WithinRate, Writes},
    gateway::Sent,
    state::AppState,
};

/// `POST /send_message`: the original's answer (three fields).
#[utoipa::path(
    post,
    path = "/send_message",
    tag = "original",
    operation_id = "send_message",
    summary = "Log a message",
    description = "Gives the message an id (from the `Idempotency-Key`, or by the facade's \
        `--dedup` rule) and stores it in logging, retrying failed calls. Fields other than \
        `message` are ignored, as the original ignored them.",
    params(super::described::SendHeaders),
    request_body(content = SendMessageRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored now (`success`), or already held \
            (`duplicate`: the same id, or under logging's default rule the same text; nothing \
            stored again).", body = SendMessageResponse),
        super::described::SendRefusals,
    ),
)]
pub(crate) async fn send_message(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    _rate: WithinRate<Writes>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    SendMessageBody(text): SendMessageBody,
) -> Result<Json<SendMessageResponse>, AppError> {
    let sent = crate::gateway::send_message(&state, &request_id, key, text).await?;
    Ok(Json(sent.into()))
}

/// `GET /get_messages`: logging's list and the messages service's text, streamed (see
/// [`super::listing`]).
#[utoipa::path(
    get,
    path = "/get_messages",
    tag = "original",
    operation_id = "get_messages",
    summary = "Every logged message, and the messages service's text",
    description = "The whole log in insertion order, written as it is read. A logging that \
        fails before the answer starts gives a 500; one that fails for good after it started \
        cuts the answer off before its end, so a partial list is never valid JSON.",
    responses(
        (status = 200, description = "The log, and the messages service's answer or why it \
            could not be had.", body = GetMessagesResponse),
        super::described::ReadFailures,
    ),
)]
pub(crate) async fn get_messages(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
) -> Result<Response, AppError> {
    super::listing::get_messages(state, request_id).await
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
