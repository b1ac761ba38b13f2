//! How large the messages on the wire can get, derived in one place from the largest text a
//! service accepts, so that anything that can be stored can be read back through every door.
//!
//! A page of the list (`ListMessages`, the gateway's `List`, the JSON pages) and a frame of a
//! live feed (`WatchMessages`) are bounded twice: by a count of messages, which the caller
//! chooses, and by [`PAGE_BYTES`], which no caller can raise. A page ends early, before the
//! message that would take it past the budget, and says where to go on (its next cursor); its
//! first message always goes, whatever its size, so a page always makes progress. So the
//! largest encoded page is [`PAGE_BYTES`] plus one message of the largest text, and that is
//! what every decoder between the services accepts ([`page_decoding_limit`]).

/// The most bytes one page or frame of messages carries (each message counted as it is
/// encoded, [`encoded_message_bytes`]), unless its first message alone is larger: 1 MiB, well
/// under gRPC's usual 4 MiB decoding limit, so every client of ours and others can read it.
pub const PAGE_BYTES: usize = 1 << 20;

/// Messages per page when a request asks for 0.
pub const DEFAULT_PAGE: u32 = 100;
/// The most messages one page may hold: a request for more is refused.
pub const MAX_PAGE: u32 = 1000;

/// The count of messages a page request asks for (`limit`), as every door and logging read it:
/// 0 means [`DEFAULT_PAGE`]; more than [`MAX_PAGE`] is refused, with the reason.
pub fn page_limit(limit: u32) -> Result<u32, String> {
    match limit {
        0 => Ok(DEFAULT_PAGE),
        n if n <= MAX_PAGE => Ok(n),
        n => Err(format!(
            "limit is {n}; a page holds at most {MAX_PAGE} messages"
        )),
    }
}

/// Room for a page's fields beside its messages (a cursor, a newest seq, tags).
const PAGE_OVERHEAD: usize = 64;

/// Bytes a message with a text of `text_bytes` takes in a repeated field of a page, at most:
/// its tag and length, a seq and the time it was stored (varints of up to 10 bytes each), an id
/// (a 36-character UUID) and the text, each with a tag (and the id and text with a length).
pub const fn encoded_message_bytes(text_bytes: usize) -> usize {
    const TAG: usize = 1;
    const SEQ: usize = TAG + 10;
    const STORED_AT: usize = TAG + 10;
    const ID: usize = TAG + 1 + 36;
    let text = TAG + varint_len(text_bytes) + text_bytes;
    let body = SEQ + ID + text + STORED_AT;
    TAG + varint_len(body) + body
}

/// The largest encoded page or frame when texts are at most `max_text_bytes` long: the budget,
/// one message of the largest text (the first of a page goes whatever its size), and the
/// page's other fields. Every decoder of pages between the services is set to this.
pub const fn page_decoding_limit(max_text_bytes: usize) -> usize {
    PAGE_BYTES
        .saturating_add(encoded_message_bytes(max_text_bytes))
        .saturating_add(PAGE_OVERHEAD)
}

/// Room an item of a `LogMessages` call takes beside its message: its request id (at most a
/// few hundred bytes) and attempt number, with their tags.
const ITEM_OVERHEAD: usize = 512;

/// The largest `LogMessages` call a caller of ours sends, encoded: it fills calls as pages are
/// filled ([`PageBudget`], at most `max_items` messages), so one message of the largest text
/// goes alone and many short ones go together. Logging decodes calls up to this.
pub const fn log_call_decoding_limit(max_text_bytes: usize, max_items: usize) -> usize {
    page_decoding_limit(max_text_bytes).saturating_add(max_items.saturating_mul(ITEM_OVERHEAD))
}

/// The bytes a protobuf varint of `value` takes.
const fn varint_len(value: usize) -> usize {
    let mut len = 1;
    let mut rest = value >> 7;
    while rest > 0 {
        len += 1;
        rest >>= 7;
    }
    len
}

/// Counts what a page being filled holds, and says when the next message must wait for the
/// next page.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageBudget {
    /// Bytes taken so far.
    used: usize,
    /// Messages taken so far.
    taken: usize,
}

impl PageBudget {
    /// An empty page.
    pub const fn new() -> Self {
        Self { used: 0, taken: 0 }
    }

    /// Takes a message with a text of `text_bytes` if it fits: always the first, then each
    /// while the page stays within [`PAGE_BYTES`].
    pub fn admit(&mut self, text_bytes: usize) -> bool {
        let size = encoded_message_bytes(text_bytes);
        if self.taken > 0 && self.used.saturating_add(size) > PAGE_BYTES {
            return false;
        }
        self.used = self.used.saturating_add(size);
        self.taken += 1;
        true
    }

    /// How many of `texts` (their lengths, in the order they are taken) fit in a fresh page.
    pub fn fitting(text_lengths: impl IntoIterator<Item = usize>) -> usize {
        let mut budget = Self::new();
        text_lengths
            .into_iter()
            .take_while(|&len| budget.admit(len))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn a_page_limit_of_zero_is_the_default_and_more_than_the_most_is_refused() {
        assert_eq!(page_limit(0), Ok(DEFAULT_PAGE));
        assert_eq!(page_limit(1), Ok(1));
        assert_eq!(page_limit(MAX_PAGE), Ok(MAX_PAGE));
        assert_eq!(
            page_limit(MAX_PAGE + 1),
            Err("limit is 1001; a page holds at most 1000 messages".to_owned())
        );
    }
    use crate::logging::{ListMessagesResponse, LoggedMessage, WatchMessagesResponse};

    fn message(text_bytes: usize) -> LoggedMessage {
        LoggedMessage {
            seq: u64::MAX,
            id: "6f1c2a3e-8a8b-4c0e-9e55-0b1f9f7c2d11".to_owned(),
            message: "x".repeat(text_bytes),
            stored_at_ms: u64::MAX,
        }
    }

    #[test]
    fn a_message_is_counted_as_large_as_it_can_be_on_the_wire_and_no_larger() {
        // The largest seq makes the count exact (any smaller one encodes shorter), for any
        // text a message can have: never an empty one, which would encode shorter too.
        for text_bytes in [1, 100, 127, 128, 16_383, 16_384, 65_536, 1 << 21] {
            let page = ListMessagesResponse {
                messages: vec![message(text_bytes)],
                next_cursor: None,
                texts: vec![],
            };
            assert_eq!(
                page.encoded_len(),
                encoded_message_bytes(text_bytes),
                "{text_bytes}"
            );
        }
    }

    #[test]
    fn varints_take_a_byte_per_seven_bits() {
        for (value, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (usize::MAX, 10),
        ] {
            assert_eq!(varint_len(value), len, "{value}");
        }
    }

    #[test]
    fn a_page_takes_a_message_that_fills_it_exactly() {
        let first = 1000;
        let second = (0..PAGE_BYTES)
            .find(|&len| encoded_message_bytes(first) + encoded_message_bytes(len) == PAGE_BYTES)
            .expect("a text that fills the page exactly");
        assert_eq!(PageBudget::fitting([first, second, 0]), 2);
    }

    #[test]
    fn a_call_filled_as_a_page_fits_what_logging_decodes() {
        use crate::logging::{LogItem, LogMessagesRequest, LogRequest};
        let item = |text_bytes: usize| LogItem {
            message: Some(LogRequest {
                id: "6f1c2a3e-8a8b-4c0e-9e55-0b1f9f7c2d11".to_owned(),
                message: "x".repeat(text_bytes),
            }),
            request_id: "r".repeat(128),
            attempt: u32::MAX,
        };
        for (max_text, count) in [(64 * 1024, 1000), (16, 1000), (1 << 20, 3)] {
            let mut budget = PageBudget::new();
            let items: Vec<_> = (0..count)
                .map(|_| max_text)
                .take_while(|&len| budget.admit(len))
                .map(item)
                .collect();
            let encoded = LogMessagesRequest { items }.encoded_len();
            assert!(
                encoded <= log_call_decoding_limit(max_text, count),
                "{max_text} x {count}: {encoded}"
            );
        }
        assert!(log_call_decoding_limit(64 * 1024, 1000) >= page_decoding_limit(64 * 1024));
    }

    #[test]
    fn a_full_page_of_the_largest_texts_fits_the_decoding_limit() {
        for max_text in [16, 1000, 64 * 1024, 1 << 20, 3 << 20] {
            let mut budget = PageBudget::new();
            let mut messages = Vec::new();
            while messages.len() < 10_000 && budget.admit(max_text) {
                messages.push(message(max_text));
            }
            assert!(!messages.is_empty());
            let encoded = ListMessagesResponse {
                messages: messages.clone(),
                next_cursor: Some(u64::MAX),
                texts: vec![],
            }
            .encoded_len();
            assert!(encoded <= page_decoding_limit(max_text), "{max_text}");
            let frame = WatchMessagesResponse {
                messages,
                newest_seq: u64::MAX,
            }
            .encoded_len();
            assert!(frame <= page_decoding_limit(max_text), "{max_text}");
        }
    }

    #[test]
    fn the_first_message_always_goes_and_the_rest_while_they_fit() {
        assert_eq!(PageBudget::fitting([PAGE_BYTES * 3, 1]), 1);
        assert_eq!(PageBudget::fitting([10; 5]), 5);
        let per_page = PAGE_BYTES / encoded_message_bytes(64 * 1024);
        assert_eq!(PageBudget::fitting([64 * 1024; 1000]), per_page);
        assert!(per_page >= 15, "{per_page}");
    }
}
