//! The page's API, nested under `/api`: the same core as the original's routes and the gRPC
//! API, with answers that say more (the attempts a send took), the list by pages, and the
//! services' status.

use axum::{
    Json, Router,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderValue, header};
use msglog_proto::{
    api::{
        ApiSendMessageResponse, Direction, ErrorBody, ListQuery, LiveFeedStatus, MessagesPage,
        SendMessageRequest, SendMessageResponse, ServiceStatus, StatusResponse, paths,
    },
    v1,
};

use crate::{
    error::AppError,
    extract::{
        MaybeIdempotencyKey, Query, RequestId, SendMessageBody, StatusRequests, WithinRate, Writes,
    },
    gateway::{Checked, Overview, Page, PageRequest, Sent},
    state::AppState,
};

/// The routes under [`paths::API`], with a JSON 404 for any other path there.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::API_MESSAGES, get(list).post(send))
        .route(paths::API_WATCH, get(super::events::watch))
        .route(paths::API_STATUS, get(status))
        .route(paths::API_OPENAPI, get(openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(super::ops::method_not_allowed)
}

/// `POST /api/messages`: as `/send_message`, and the answer says how many calls it took.
#[utoipa::path(
    post,
    path = "/api/messages",
    tag = "api",
    operation_id = "send",
    summary = "Log a message, saying how many calls it took",
    description = "As `POST /send_message`; the answer adds `attempts`.",
    params(super::described::SendHeaders),
    request_body(content = SendMessageRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored now (`success`), or already held \
            (`duplicate`: the same id, or under logging's default rule the same text; nothing \
            stored again).", body = ApiSendMessageResponse,
            links(("newest" = (operation_id = "list", description = "The newest page of the \
                list, which holds this message until others follow it.",
                parameters(("direction" = "backward")))))),
        super::described::SendRefusals,
    ),
)]
pub(crate) async fn send(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    _rate: WithinRate<Writes>,
    MaybeIdempotencyKey(key): MaybeIdempotencyKey,
    SendMessageBody(text): SendMessageBody,
) -> Result<Json<ApiSendMessageResponse>, AppError> {
    let sent = crate::gateway::send_message(&state, &request_id, key, text).await?;
    Ok(Json(sent.into()))
}

/// `GET /api/messages?cursor=&limit=&direction=`: one page of the list, as the gRPC `List`.
#[utoipa::path(
    get,
    path = "/api/messages",
    tag = "api",
    operation_id = "list",
    summary = "One page of the list",
    params(ListQuery),
    responses(
        (status = 200, description = "The page, in insertion order.", body = MessagesPage,
            links(("next" = (operation_id = "list", description = "The next page: with the \
                same `direction`, the page after this one (none when `next_cursor` is null).",
                parameters(("cursor" = "$response.body#/next_cursor")))))),
        (status = 400, description = "A parameter is invalid: not a number, `limit` over \
            1000, an unknown `direction`.", body = ErrorBody),
        super::described::ReadFailures,
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Query(query): Query<ListQuery>,
) -> Result<Json<MessagesPage>, AppError> {
    let request = PageRequest::new(
        query.cursor,
        query.limit,
        query.direction == Direction::Backward,
    )?;
    let page = crate::gateway::list_page(&state, &request_id, request).await?;
    Ok(Json(page.into()))
}

/// `GET /api/status`: the services at a glance, as the gRPC `Status`.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "api",
    operation_id = "status",
    summary = "The services at a glance",
    description = "Each service's health as the facade sees it, the live feed, and the \
        facade's retries and errors since it started. Always 200: a service that is down is \
        reported, not an error.",
    responses(
        (status = 200, description = "The status.", body = StatusResponse),
        (status = 429, description = "This address asked more often than its rate allows \
            (`--status-rate`); `Retry-After` says when to ask again.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ),
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    _rate: WithinRate<StatusRequests>,
) -> Json<StatusResponse> {
    Json(crate::gateway::services(&state, &request_id).await.into())
}

/// Any other path under `/api`: a JSON 404, never the page.
async fn not_found(request: Request) -> AppError {
    AppError::NotFound(msglog_common::bounded::shorten_bytes(
        request.uri().path().as_bytes(),
        64,
    ))
}

/// `GET /api/openapi.json`: this document, with the limits in force.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of the JSON API.",
        content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
        .into_response()
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

impl From<Page> for MessagesPage {
    fn from(Page(page): Page) -> Self {
        Self {
            messages: page
                .messages
                .into_iter()
                .map(|message| v1::StoredMessage::from(message).into())
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

impl From<Overview> for StatusResponse {
    fn from(overview: Overview) -> Self {
        let state = |Checked { up, detail }| ServiceStatus { up, detail };
        Self {
            facade: state(overview.facade),
            logging: state(overview.logging),
            messages: state(overview.messages),
            feed: LiveFeedStatus {
                live: overview.feed.live,
                detail: overview.feed.detail,
                watchers: overview.feed.watchers as u64,
                newest_seq: overview.feed.newest_seq,
            },
            calls: overview.calls,
            max_message_bytes: overview.max_message_bytes,
        }
    }
}
