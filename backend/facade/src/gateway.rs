//! What `Send`, `List`, `Status` and the opening of a `Watch` mean, written once for every
//! door (the original's JSON routes, the page's `/api/` routes and its event stream, and the
//! gRPC API, which the Connect door shares, in [`crate::routes`]): a door parses its request
//! into these types, calls these functions, and encodes what they give back in its own shape.
//! A watch's events are the live feed's ([`crate::feed`]); errors map to answers in
//! [`crate::error`].

use msglog_proto::{
    MessageText,
    api::{CallCounts, SendStatus},
    logging::{ListMessagesRequest, ListMessagesResponse, STATUS_DUPLICATE, STATUS_LOGGED},
};
use uuid::Uuid;

use crate::{
    error::AppError,
    feed::{FeedState, WatchStream},
    ids::{DedupMode, IdempotencyKey},
    logging_client::Logged,
    state::{AppState, StatusChecks},
};

/// What became of a message sent to logging; each door encodes it in its own shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    /// The id it is stored under.
    pub(crate) id: Uuid,
    /// Stored now, or already held.
    pub(crate) logged: Logged,
    /// Calls made to logging.
    pub(crate) attempts: u32,
}

impl Sent {
    /// The answer as the original words it.
    pub(crate) fn status(&self) -> (SendStatus, &'static str) {
        match self.logged {
            Logged::Stored => (SendStatus::Success, STATUS_LOGGED),
            Logged::Duplicate(_) => (SendStatus::Duplicate, STATUS_DUPLICATE),
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

/// Opens a watch from `after_seq` for `client`, within its share of live feeds
/// (`--max-watches-per-client`; a client with no address is not limited).
pub(crate) fn open_watch(
    state: &AppState,
    client: Option<std::net::IpAddr>,
    after_seq: u64,
) -> Result<WatchStream, AppError> {
    let slot = state
        .watch_slots
        .open(client)
        .map_err(|refused| AppError::TooManyWatches(refused.message().to_owned()))?;
    tracing::info!(after_seq, "watcher opened");
    Ok(state.feed.watch(after_seq, slot))
}

/// A page of the list, read from logging (with retries); each door encodes it in its own shape.
#[derive(Debug)]
pub(crate) struct Page(pub(crate) ListMessagesResponse);

/// Reads one page of the list from logging.
#[tracing::instrument(skip_all)]
pub(crate) async fn list_page(
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
pub(crate) async fn send_message(
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

/// How long a check of the services answers status requests.
const STATUS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks logging (its health) and messages (the call the original makes, so its text is the
/// detail) concurrently, and reads the live feed's state. One check runs at a time, and a
/// check at most a second old answers for a new one: however many ask, logging and messages
/// see at most about one check a second from the status route.
pub(crate) async fn services(state: &AppState, request_id: &str) -> Overview {
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
    let checked = |up, detail| Checked { up, detail };
    let feed = state.feed.state();
    let logging = match checks.logging {
        // Serving, yet its live feed cannot be read: not up for what the page needs.
        Ok(()) if feed.stuck => checked(false, format!("SERVING, but {}", feed.detail)),
        Ok(()) => checked(true, "SERVING".to_owned()),
        Err(detail) => checked(false, detail),
    };
    let messages = match checks.messages {
        Ok(text) => checked(true, text),
        Err(detail) => checked(false, detail),
    };
    Overview {
        facade: checked(true, "serving".to_owned()),
        logging,
        messages,
        feed,
        calls: CallCounts {
            retries: state.calls.retries_since_start(),
            errors: state.calls.failures_since_start(),
        },
        max_message_bytes: state.limits.max_message_bytes as u64,
    }
}

/// One service as a status answer shows it.
#[derive(Debug)]
pub(crate) struct Checked {
    /// Whether it answered (and, for logging, whether its live feed can be read).
    pub(crate) up: bool,
    /// What it answered, or why it is down.
    pub(crate) detail: String,
}

/// The services at a glance, checked now, as every door's status answer says it; each door
/// encodes it in its own shape.
#[derive(Debug)]
pub(crate) struct Overview {
    pub(crate) facade: Checked,
    pub(crate) logging: Checked,
    pub(crate) messages: Checked,
    pub(crate) feed: FeedState,
    /// Retries and failed calls to logging since start.
    pub(crate) calls: CallCounts,
    /// The longest text taken, in UTF-8 bytes.
    pub(crate) max_message_bytes: u64,
}
