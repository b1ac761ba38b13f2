//! JSON shapes and paths of the facade's HTTP API (the original's routes and `/api/`).
//!
//! Field names and status strings are the original's, so a client of the Python facade works
//! unchanged.

use serde::{Deserialize, Serialize};

/// The facade's paths, written once for the facade's router and the page.
pub mod paths {
    /// The original's `POST` route.
    pub const SEND_MESSAGE: &str = "/send_message";
    /// The original's `GET` route.
    pub const GET_MESSAGES: &str = "/get_messages";
    /// The facade's own liveness check.
    pub const HEALTHZ: &str = "/healthz";
    /// Prometheus metrics (OpenMetrics text).
    pub const METRICS: &str = "/metrics";
    /// Where the page's API is nested.
    pub const API: &str = "/api";
    /// Under [`API`]: `POST` a message, `GET` a page of the list.
    pub const API_MESSAGES: &str = "/messages";
    /// Under [`API`]: the services' health at a glance.
    pub const API_STATUS: &str = "/status";
    /// Under [`API`]: the OpenAPI document of the JSON API.
    pub const API_OPENAPI: &str = "/openapi.json";
    /// Under [`API`]: the live feed as server-sent events.
    pub const API_WATCH: &str = "/messages/watch";
}

/// The largest seq a message can have (a store's signed 64-bit integer), so the largest
/// cursor.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Body of `POST /send_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendMessageRequest {
    /// The text to log: at least one character that is not white space, and at most the
    /// facade's limit in UTF-8 bytes (`--max-message-bytes`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, example = "hello"))]
    pub message: String,
}

/// Outcome of storing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SendStatus {
    /// Stored by this request.
    Success,
    /// Already held under the same id; nothing stored.
    Duplicate,
}

/// Answer of `POST /send_message` with HTTP 200: the original's three fields, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendMessageResponse {
    /// The message's id (a UUID).
    pub id: String,
    /// `success` or `duplicate`.
    pub status: SendStatus,
    /// `Message logged successfully` or `Duplicate message ignored`.
    pub message: String,
}

/// Answer of `POST /api/messages` with HTTP 200: the original's fields, and how many calls it
/// took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiSendMessageResponse {
    /// The message's id (a UUID).
    pub id: String,
    /// `success` or `duplicate`.
    pub status: SendStatus,
    /// `Message logged successfully` or `Duplicate message ignored`.
    pub message: String,
    /// Calls made to logging, retries included.
    pub attempts: u32,
}

/// Answer of `GET /get_messages` with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GetMessagesResponse {
    /// Every logged text, in insertion order.
    pub logged_messages: Vec<String>,
    /// The messages service's answer, or a text saying why it could not be had.
    pub message_from_service: String,
}

/// Query of `GET /api/messages`: one page of the list, from a cursor, in either direction
/// (as the gRPC `List`). Every field may be left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListQuery {
    /// Where the page starts, not included: at most 9223372036854775807, the largest seq.
    /// Forward: messages with seq > cursor (0: from the first). Backward: messages with
    /// seq < cursor (0: from the newest).
    #[serde(default)]
    // Its `maximum` ([`MAX_SEQ`]) is set by the facade when it makes the document.
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    pub cursor: u64,
    /// Messages per page: 1 to 1000; 0 or left out means 100.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 1000))]
    pub limit: u32,
    /// `forward` (the default) or `backward`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub direction: Direction,
}

/// Query of `GET /api/messages/watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct WatchQuery {
    /// Where the feed starts, not included: every stored message with a larger seq is sent,
    /// then each new one (0 or left out: from the first). A `Last-Event-ID` header, which a
    /// browser's `EventSource` sends when it reconnects, takes its place.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    pub after: u64,
    /// `true` (the default): the stream goes on with each new message. `false`: it ends once
    /// it has sent every message the facade knew of when it opened (a catch-up for scripts).
    #[serde(default = "following")]
    #[cfg_attr(feature = "openapi", param(default = true))]
    pub follow: bool,
}

impl Default for WatchQuery {
    fn default() -> Self {
        Self {
            after: 0,
            follow: true,
        }
    }
}

fn following() -> bool {
    true
}

/// The data of a `feed` event of `GET /api/messages/watch`: the live feed from logging broke
/// (no message comes until it is back) or came back (delivery resumes after the last message
/// sent, with no gap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedEvent {
    /// Whether messages are flowing.
    pub live: bool,
    /// Why not, for a person (empty when live).
    pub detail: String,
}

/// Which way a page is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From older to newer.
    #[default]
    Forward,
    /// From newer to older.
    Backward,
}

/// A stored message with its place in insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PagedMessage {
    /// Its place in insertion order: the first message is 1, each later one larger.
    pub seq: u64,
    /// Its id (a UUID).
    pub id: String,
    /// Its text, exactly as sent.
    pub text: String,
    /// When it was stored: milliseconds since the Unix epoch, by logging's clock at the commit
    /// (a duplicate keeps the first time). Absent when not known (stored before logging kept
    /// times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_at_ms: Option<u64>,
}

/// Answer of `GET /api/messages` with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagesPage {
    /// The page, in insertion order (ascending seq) whichever the direction.
    pub messages: Vec<PagedMessage>,
    /// The cursor of the next page in the same direction; `null` when this page reached the
    /// end.
    pub next_cursor: Option<u64>,
}

/// Body of every error answer (4xx and 5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The gRPC code of the last failed call to logging, when one failed (`UNAVAILABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// How many calls to logging were made, when the error came from logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

impl ErrorBody {
    /// An error with only a text.
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            code: None,
            attempts: None,
        }
    }
}

/// Whether one service is up, as the facade sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStatus {
    /// `true` when the service answered its health check.
    pub up: bool,
    /// What the check found (`SERVING`, `unreachable (...)`, `no answer within 500 ms`).
    pub detail: String,
}

/// Answer of `GET /api/status`: the three services at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusResponse {
    /// The facade itself (up whenever it answers).
    pub facade: ServiceStatus,
    /// The logging service's gRPC health check.
    pub logging: ServiceStatus,
    /// The messages service's `/healthz`.
    pub messages: ServiceStatus,
    /// The live feed from logging that `Watch` calls are served from.
    #[serde(default)]
    pub feed: LiveFeedStatus,
    /// The facade's calls to logging since it started.
    #[serde(default)]
    pub calls: CallCounts,
    /// The longest message text the facade takes, in UTF-8 bytes (`--max-message-bytes`).
    #[serde(default)]
    pub max_message_bytes: u64,
}

/// The facade's calls to logging since it started, as `/api/status` reports them (the same
/// counts are at `GET /metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallCounts {
    /// Attempts that retried a failed one.
    pub retries: u64,
    /// Calls that failed after every attempt they were allowed.
    pub errors: u64,
}

/// The facade's live feed from logging, as `/api/status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiveFeedStatus {
    /// Whether messages are flowing from logging.
    pub live: bool,
    /// Why not, when not (empty when live).
    pub detail: String,
    /// Open `Watch` calls.
    pub watchers: u64,
    /// The newest seq logging reported (0: none yet).
    pub newest_seq: u64,
}
