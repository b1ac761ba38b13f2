//! Handlers, one door per module, over one shared core written once here: validation has
//! already been done by the extractors, and every error maps to an answer in [`crate::error`].
//!
//! - [`original`]: the original's routes and answers, exactly;
//! - [`api`]: the page's API, nested under `/api` with answers of its own;
//! - [`grpc`]: the gRPC API, `msglog.v1.MessageLog`.

pub(crate) mod api;
mod described;
pub(crate) mod grpc;
pub(crate) mod listing;
pub(crate) mod original;

use msglog_proto::{
    MessageText,
    api::{
        ApiSendMessageResponse, CallCounts, ErrorBody, LiveFeedStatus, MessagesPage, PagedMessage,
        SendMessageResponse, SendStatus, ServiceStatus, StatusResponse,
    },
    logging::{ListMessagesRequest, ListMessagesResponse, STATUS_DUPLICATE, STATUS_LOGGED},
    v1,
};
use uuid::Uuid;

use crate::{
    error::AppError,
    feed::FeedState,
    ids::{DedupMode, IdempotencyKey},
    logging_client::Logged,
    state::{AppState, StatusChecks},
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
            Logged::Duplicate(_) => (SendStatus::Duplicate, STATUS_DUPLICATE),
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

impl From<Sent> for v1::SendResponse {
    fn from(sent: Sent) -> Self {
        Self {
            id: sent.id.to_string(),
            status: match sent.logged {
                Logged::Stored => v1::SendStatus::Stored,
                Logged::Duplicate(_) => v1::SendStatus::Duplicate,
            }
            .into(),
            attempts: sent.attempts,
        }
    }
}

/// The largest cursor: the largest seq a store can hold (SQLite's signed 64-bit integer).
pub(crate) const MAX_CURSOR: u64 = msglog_proto::api::MAX_SEQ;

/// A page of the list, asked for through either door and checked by one rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest(ListMessagesRequest);

impl PageRequest {
    /// Checks a page request: its `limit` by [`msglog_proto::limits::page_limit`], and a
    /// cursor above [`MAX_CURSOR`] is an error that says so.
    pub(crate) fn new(cursor: u64, limit: u32, backward: bool) -> Result<Self, AppError> {
        if cursor > MAX_CURSOR {
            return Err(AppError::BadRequest(format!(
                "cursor is {cursor}; a seq is at most {MAX_CURSOR}"
            )));
        }
        let limit = msglog_proto::limits::page_limit(limit).map_err(AppError::BadRequest)?;
        Ok(Self(ListMessagesRequest {
            cursor,
            limit,
            backward,
            texts_only: false,
        }))
    }
}

/// A page of the list, read from logging (with retries); each door encodes it in its own shape.
#[derive(Debug)]
pub(crate) struct Page(ListMessagesResponse);

impl From<Page> for MessagesPage {
    fn from(Page(page): Page) -> Self {
        Self {
            messages: page
                .messages
                .into_iter()
                .map(|message| PagedMessage {
                    seq: message.seq,
                    id: message.id,
                    text: message.message,
                    stored_at_ms: (message.stored_at_ms != 0).then_some(message.stored_at_ms),
                })
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

impl From<Page> for v1::ListResponse {
    fn from(Page(page): Page) -> Self {
        Self {
            messages: page.messages.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// Reads one page of the list from logging.
#[tracing::instrument(skip_all)]
async fn list_page(
    state: &AppState,
    request_id: &str,
    PageRequest(request): PageRequest,
) -> Result<Page, AppError> {
    let page = state
        .logging
        .list_messages(request, request_id)
        .await
        .map_err(AppError::GetMessages)?;
    Ok(Page(page.value))
}

/// Picks the id and stores the message in logging (with retries).
#[tracing::instrument(skip_all, fields(id))]
async fn send_message(
    state: &AppState,
    request_id: &str,
    key: Option<IdempotencyKey>,
    text: MessageText,
) -> Result<Sent, AppError> {
    let id = state.ids.id(key.as_ref(), &text);
    let fresh_random_id = state.ids.mode() == DedupMode::Unique && key.is_none();
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
    // A random id is fresh: on its first attempt only a text rule can call it a duplicate.
    if fresh_random_id
        && let Logged::Duplicate(held) = logged.value
        && logged.attempts == 1
    {
        tracing::warn!(
            %id,
            held = %held.map(|held| held.to_string()).unwrap_or_default(),
            "logging answered `Duplicate message ignored` for a fresh random id: it keys \
             duplicates on the text (`--dedup-by text`, its default), so equal texts are not kept \
             apart as this facade's `--dedup unique` asks; run logging with `--dedup-by id`"
        );
    }
    Ok(Sent {
        // A duplicate is answered with the id of the message held, which is another when the
        // same text is held under another id.
        id: match logged.value {
            Logged::Duplicate(Some(held)) => held,
            _ => id,
        },
        logged: logged.value,
        attempts: logged.attempts,
    })
}

/// The services at a glance, checked now; each door encodes it in its own shape.
#[derive(Debug)]
pub(crate) struct Services {
    /// Logging's gRPC health check, or why it failed.
    logging: Result<(), String>,
    /// The messages service's text, or why there is none.
    messages: Result<String, String>,
    /// The live feed.
    feed: FeedState,
    /// Retries and failed calls to logging since start.
    calls: CallCounts,
    /// The longest text taken, in UTF-8 bytes.
    max_message_bytes: u64,
}

/// How long a check of the services answers status requests.
const STATUS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks logging (its health) and messages (the call the original makes, so its text is the
/// detail) concurrently, and reads the live feed's state. One check runs at a time, and a
/// check at most a second old answers for a new one: however many ask, logging and messages
/// see at most about one check a second from the status route.
pub(crate) async fn services(state: &AppState, request_id: &str) -> Services {
    let mut last = state.status_checks.lock().await;
    let checks = match last.as_ref() {
        Some(checks) if checks.at.elapsed() < STATUS_FRESH_FOR => checks.clone(),
        _ => {
            let (logging, messages) = tokio::join!(
                state.logging.health(),
                state.messages.get_message(request_id)
            );
            let checks = StatusChecks {
                at: tokio::time::Instant::now(),
                logging,
                messages: messages.map_err(|error| error.to_string()),
            };
            *last = Some(checks.clone());
            checks
        }
    };
    drop(last);
    Services {
        logging: checks.logging,
        messages: checks.messages,
        feed: state.feed.state(),
        calls: CallCounts {
            retries: state.calls.retries_since_start(),
            errors: state.calls.failures_since_start(),
        },
        max_message_bytes: state.limits.max_message_bytes as u64,
    }
}

impl Services {
    /// (up, detail) of the facade, logging and messages.
    fn states(self) -> ([(bool, String); 3], FeedState) {
        let logging = match self.logging {
            // Serving, yet its live feed cannot be read: not up for what the page needs.
            Ok(()) if self.feed.stuck => (false, format!("SERVING, but {}", self.feed.detail)),
            Ok(()) => (true, "SERVING".to_owned()),
            Err(detail) => (false, detail),
        };
        let messages = match self.messages {
            Ok(text) => (true, text),
            Err(detail) => (false, detail),
        };
        ([(true, "serving".to_owned()), logging, messages], self.feed)
    }
}

impl From<Services> for StatusResponse {
    fn from(services: Services) -> Self {
        let (calls, max_message_bytes) = (services.calls, services.max_message_bytes);
        let ([facade, logging, messages], feed) = services.states();
        let state = |(up, detail)| ServiceStatus { up, detail };
        Self {
            facade: state(facade),
            logging: state(logging),
            messages: state(messages),
            feed: LiveFeedStatus {
                live: feed.live,
                detail: feed.detail,
                watchers: feed.watchers as u64,
                newest_seq: feed.newest_seq,
            },
            calls,
            max_message_bytes,
        }
    }
}

impl From<Services> for v1::StatusResponse {
    fn from(services: Services) -> Self {
        let (calls, max_message_bytes) = (services.calls, services.max_message_bytes);
        let ([facade, logging, messages], feed) = services.states();
        let state = |(up, detail)| Some(v1::ServiceState { up, detail });
        Self {
            facade: state(facade),
            logging: state(logging),
            messages: state(messages),
            feed: Some(v1::LiveFeed {
                live: feed.live,
                detail: feed.detail,
                watchers: feed.watchers as u64,
                newest_seq: feed.newest_seq,
            }),
            calls: Some(v1::CallCounts {
                retries: calls.retries,
                errors: calls.errors,
            }),
            max_message_bytes,
        }
    }
}

/// `GET /healthz`: the facade itself is up (it says nothing of its dependencies).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness",
    description = "`ok` whenever the facade answers, whatever the services behind it do (see \
        `GET /api/status` for them).",
    responses((status = 200, description = "The facade is up.", body = String,
        content_type = "text/plain; charset=utf-8")),
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`: every metric in the Prometheus (OpenMetrics) text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "The metrics, as OpenMetrics text.", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 500, description = "The metrics could not be encoded.", body = ErrorBody),
    ),
)]
pub(crate) async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    msglog_common::metrics::exposition(&state.metrics.registry)
}

/// A known path with the wrong method: a JSON 405.
pub(crate) async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
