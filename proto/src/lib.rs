//! Wire contracts shared by every part of the system.
//!
//! - [`logging`]: the protobuf messages of `logging.proto` (always built, so they compile to
//!   `wasm32-unknown-unknown`), with the tonic client and server stubs behind the `client`
//!   and `server` features.
//! - [`v1`]: the gateway's contract, `msglog/v1/message_log.proto` (service
//!   `msglog.v1.MessageLog`: `Send`, `List`, `Watch`, `Status`), built the same way, and with
//!   the `json` feature each message's canonical protobuf JSON mapping (`pbjson`), which the
//!   Connect door speaks.
//! - [`api`]: the JSON shapes and the paths of the facade's HTTP API, one definition for the
//!   server and the browser page.
//! - [`code_name`]: gRPC status codes by name, one table for the services and the page.
//! - [`limits`]: the byte budget of a page and the decoding limits derived from the largest
//!   text, computed in one place.
//! - [`MessageText`]: a message text known to be non-blank and within a size limit, so neither
//!   service ever handles an unchecked string.

pub mod api;
mod codes;
pub mod limits;
mod text;

pub use codes::{code_name, code_of};
pub use text::{INVISIBLE, MessageText, MessageTextError, NOT_BLANK_PATTERN, is_invisible};

/// Types generated from `logging.proto`. The file has no `package`, which keeps the original's
/// method paths (`/LoggingService/LogMessage`).
pub mod logging {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));

    /// `LogResponse.status` for a message stored by this call.
    pub const STATUS_LOGGED: &str = "Message logged successfully";
    /// `LogResponse.status` for a message whose id was already held.
    pub const STATUS_DUPLICATE: &str = "Duplicate message ignored";
    /// The most items one `LogMessages` call may carry.
    pub const MAX_LOG_ITEMS: usize = 1000;

    /// Encoded `FileDescriptorSet` of `logging.proto`, for gRPC server reflection.
    #[cfg(feature = "server")]
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/logging_descriptor.bin"));
}

/// Types generated from `msglog/v1/message_log.proto`: the gateway's API (package
/// `msglog.v1`, so method paths are `/msglog.v1.MessageLog/Send` and so on). Field meanings
/// are documented in the proto file.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/msglog.v1.rs"));
    // The canonical protobuf JSON mapping of each message (`serde`).
    #[cfg(feature = "json")]
    include!(concat!(env!("OUT_DIR"), "/msglog.v1.serde.rs"));

    /// Encoded `FileDescriptorSet` of `msglog/v1/message_log.proto`, for gRPC server reflection.
    #[cfg(feature = "server")]
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/msglog_v1_descriptor.bin"));
}

/// A stored message as the JSON API shows it (in a page, and in the live feed's events).
impl From<v1::StoredMessage> for api::PagedMessage {
    fn from(message: v1::StoredMessage) -> Self {
        Self {
            seq: message.seq,
            id: message.id,
            text: message.text,
            stored_at_ms: (message.stored_at_ms != 0).then_some(message.stored_at_ms),
        }
    }
}

/// A message as logging stores it, as the gateway's contract names it.
impl From<logging::LoggedMessage> for v1::StoredMessage {
    fn from(message: logging::LoggedMessage) -> Self {
        Self {
            seq: message.seq,
            id: message.id,
            text: message.message,
            stored_at_ms: message.stored_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::v1::{ListResponse, StoredMessage, WatchEvent, watch_event::Event};

    #[test]
    fn a_page_tells_the_end_apart_from_a_cursor_of_zero() {
        let end = ListResponse {
            messages: vec![],
            next_cursor: None,
        };
        let zero = ListResponse {
            messages: vec![],
            next_cursor: Some(0),
        };
        let decode = |page: &ListResponse| {
            ListResponse::decode(page.encode_to_vec().as_slice()).expect("decodes")
        };
        assert_eq!(decode(&end).next_cursor, None);
        assert_eq!(decode(&zero).next_cursor, Some(0));
    }

    #[test]
    fn a_watch_event_carries_exactly_one_of_its_kinds() {
        let event = WatchEvent {
            event: Some(Event::Message(StoredMessage {
                seq: 7,
                id: "5f0e9d1c-2b3a-4c5d-8e7f-a1b2c3d4e5f6".to_owned(),
                text: "hello".to_owned(),
                stored_at_ms: 1_796_428_800_000,
            })),
        };
        let decoded = WatchEvent::decode(event.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, event);
    }
}
