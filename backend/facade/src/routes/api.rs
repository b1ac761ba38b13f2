//! The page's API, nested under `/api`: the same core as the original's routes and the gRPC
//! API, with answers that say more (the attempts a send took), the list by pages, and the
//! services' status.

use axum::{
    Json, Router,
    extract::{Request, State},
    routing::get,
};
use msglog_proto::api::{
    ApiSendMessageResponse, Direction, ListQuery, MessagesPage, StatusResponse, paths,
};

use super::PageRequest;
use crate::{
    error::AppError,
    extract::{MaybeIdempotencyKey, Query, RequestId, SendMessageBody},
    state::AppState,
};

/// The routes under [`paths::API`], with a JSON 404 for any other path there.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::API_MESSAGES, get(list).post(send))
        .route(paths::API_STATUS, get(status))
        .fallback(not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
}

/// `POST /api/messages`: as `/send_message`, and the answer says how many calls it took.
async fn send(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    SendMessageBody(text): SendMessageBody,
) -> Result<Json<ApiSendMessageResponse>, AppError> {
    let sent = super::send_message(&state, &request_id, key, text).await?;
    Ok(Json(sent.into()))
}

/// `GET /api/messages?cursor=&limit=&direction=`: one page of the list, as the gRPC `List`.
async fn list(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Query(query): Query<ListQuery>,
) -> Result<Json<MessagesPage>, AppError> {
    let request = PageRequest::new(
        query.cursor,
        query.limit,
        query.direction == Direction::Backward,
    )?;
    let page = super::list_page(&state, &request_id, request).await?;
    Ok(Json(page.into()))
}

/// `GET /api/status`: the services at a glance, as the gRPC `Status`.
async fn status(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
) -> Json<StatusResponse> {
    Json(super::services(&state, &request_id).await.into())
}

/// Any other path under `/api`: a JSON 404, never the page.
async fn not_found(request: Request) -> AppError {
    AppError::NotFound(msglog_common::bounded::shorten_bytes(
        request.uri().path().as_bytes(),
        64,
    ))
}
