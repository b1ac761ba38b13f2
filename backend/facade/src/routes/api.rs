//! The page's API, nested under `/api`: the same core as the original's routes, with answers
//! that say more (the attempts a send took), and the services' status.

use axum::{
    Json, Router,
    extract::{Request, State},
    routing::get,
};
use msglog_proto::api::{
    ApiSendMessageResponse, GetMessagesResponse, ServiceStatus, StatusResponse, paths,
};

use crate::{
    error::AppError,
    extract::{MaybeIdempotencyKey, RequestId, SendMessageBody},
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

/// `GET /api/messages`: as `/get_messages`.
async fn list(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
) -> Result<Json<GetMessagesResponse>, AppError> {
    super::list_messages(&state, &request_id).await.map(Json)
}

/// `GET /api/status`: whether each service is up, checked now and concurrently.
async fn status(State(state): State<AppState>) -> Json<StatusResponse> {
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

/// Any other path under `/api`: a JSON 404, never the page.
async fn not_found(request: Request) -> AppError {
    AppError::NotFound(msglog_common::bounded::shorten_bytes(
        request.uri().path().as_bytes(),
        64,
    ))
}
