//! The original's routes, with its JSON shapes and status strings exactly.

use axum::{Json, extract::State, response::Response};
use msglog_proto::api::SendMessageResponse;

use crate::{
    error::AppError,
    extract::{MaybeIdempotencyKey, RequestId, SendMessageBody},
    state::AppState,
};

/// `POST /send_message`: the original's answer (three fields).
pub(crate) async fn send_message(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    SendMessageBody(text): SendMessageBody,
) -> Result<Json<SendMessageResponse>, AppError> {
    let sent = super::send_message(&state, &request_id, key, text).await?;
    Ok(Json(sent.into()))
}

/// `GET /get_messages`: logging's list and the messages service's text, streamed (see
/// [`super::listing`]).
pub(crate) async fn get_messages(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
) -> Result<Response, AppError> {
    super::listing::get_messages(state, request_id).await
}
