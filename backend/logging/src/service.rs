//! The `LoggingService` gRPC API over a [`Store`].

use std::{sync::Arc, time::Instant};

use futures_util::future::join_all;
use msglog_proto::{
    MessageText,
    limits::PageBudget,
    logging::{
        Empty, ListMessagesRequest, ListMessagesResponse, LogMessagesRequest, LogMessagesResponse,
        LogRequest, LogResponse, LogResult, MAX_LOG_ITEMS, MessagesResponse, STATUS_DUPLICATE,
        STATUS_LOGGED, WatchMessagesRequest, logging_service_server::LoggingService,
    },
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    health::StoreHealth,
    metrics::Metrics,
    store::{Cursor, Inserted, NewMessage, Store, StoreError, Stored},
    watch::{WatchStream, logged, watch},
};

/// The gRPC API: checks each request, then asks the store, and tells health how the store
/// did.
#[derive(Debug)]
pub(crate) struct LoggingApi {
    /// Where messages live.
    store: Arc<dyn Store>,
    /// Longest message text accepted, in UTF-8 bytes.
    max_message_bytes: usize,
    /// Follows the store's outcomes.
    health: StoreHealth,
    /// How watch streams behave.
    watching: Watching,
    /// What the store and the watchers do, for `/metrics`.
    metrics: Arc<Metrics>,
}

/// How `WatchMessages` streams behave.
#[derive(Debug, Clone)]
pub(crate) struct Watching {
    /// Idle time after which a heartbeat is sent.
    pub(crate) heartbeat: std::time::Duration,
    /// Cancelled when the service stops: every open stream ends at once.
    pub(crate) stop: CancellationToken,
}

impl LoggingApi {
    /// An API over `store` that accepts texts up to `max_message_bytes` long.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        max_message_bytes: usize,
        health: StoreHealth,
        watching: Watching,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            max_message_bytes,
            health,
            watching,
            metrics,
        }
    }

    /// Checks a `LogRequest` and turns it into a [`NewMessage`], or says what is wrong with it.
    fn parse(&self, request: LogRequest) -> Result<NewMessage, Status> {
        let id = Uuid::try_parse(&request.id).map_err(|_| {
            Status::invalid_argument(format!(
                "id must be a UUID, got {:?}",
                shorten(&request.id, 64)
            ))
        })?;
        let text = MessageText::parse(request.message, self.max_message_bytes)
            .map_err(|error| error.to_status("message"))?;
        Ok(NewMessage { id, text })
    }

    /// Checks and stores one message: what `LogMessage` answers, and each item of
    /// `LogMessages` (the status, and the id the message is held under when it is another).
    async fn store_message(&self, request: LogRequest) -> Result<(&'static str, String), Status> {
        let message = self.parse(request)?;
        let id = message.id;
        let started = Instant::now();
        let outcome = self.store.insert(message).await;
        self.metrics.inserted(started, &outcome);
        self.health.observe(&outcome).await;
        match outcome {
            Ok(Inserted::Stored) => {
                tracing::info!(%id, "message stored");
                Ok((STATUS_LOGGED, String::new()))
            }
            Ok(Inserted::Duplicate) => {
                tracing::info!(%id, "duplicate message ignored");
                Ok((STATUS_DUPLICATE, String::new()))
            }
            Ok(Inserted::DuplicateOf(held)) => {
                tracing::info!(%id, %held, "duplicate message ignored: the text is held");
                Ok((STATUS_DUPLICATE, held.to_string()))
            }
            Err(error @ StoreError::Conflict { .. }) => {
                tracing::warn!(%id, "id already used by another message");
                Err(Status::already_exists(error.to_string()))
            }
            Err(error @ StoreError::Unavailable(_)) => Err(store_failed(&error)),
        }
    }
}

/// A store that failed, as callers are told: `UNAVAILABLE` (they may try again), the store's
/// own words kept for the log.
fn store_failed(error: &StoreError) -> Status {
    tracing::error!(%error, "store failed");
    Status::unavailable("message store unavailable")
}

/// A page and the cursor of the next one in the same direction (`None`: the end was reached).
/// One message more than asked for is read, to know whether another page follows. The page
/// ends early when the next message would take it past its byte budget
/// ([`msglog_proto::limits`]).
async fn page_and_next(
    store: &dyn Store,
    cursor: u64,
    backward: bool,
    limit: usize,
) -> Result<(Vec<Stored>, Option<u64>), StoreError> {
    let start = match (backward, cursor) {
        (false, seq) => Cursor::After(seq),
        (true, 0) => Cursor::Before(u64::MAX),
        (true, seq) => Cursor::Before(seq),
    };
    let mut page = store.page(start, limit.saturating_add(1)).await?;
    // Taken from the cursor outwards: the oldest first forwards, the newest first backwards.
    let lengths = page.iter().map(|message| message.text.len());
    let fitting = if backward {
        PageBudget::fitting(lengths.rev())
    } else {
        PageBudget::fitting(lengths)
    }
    .min(limit);
    if fitting == page.len() {
        return Ok((page, None));
    }
    let next = if backward {
        page.drain(..page.len() - fitting);
        page.first()
    } else {
        page.truncate(fitting);
        page.last()
    }
    .map(|message| message.seq);
    Ok((page, next))
}

#[tonic::async_trait]
impl LoggingService for LoggingApi {
    async fn log_message(
        &self,
        request: Request<LogRequest>,
    ) -> Result<Response<LogResponse>, Status> {
        let (status, held_id) = self.store_message(request.into_inner()).await?;
        Ok(Response::new(LogResponse {
            status: status.to_owned(),
            held_id,
        }))
    }

    async fn log_messages(
        &self,
        request: Request<LogMessagesRequest>,
    ) -> Result<Response<LogMessagesResponse>, Status> {
        let items = request.into_inner().items;
        if items.is_empty() || items.len() > MAX_LOG_ITEMS {
            return Err(Status::invalid_argument(format!(
                "a call carries 1 to {MAX_LOG_ITEMS} items, this one {}",
                items.len()
            )));
        }
        // Together, so that a store which groups concurrent writes (SQLite) commits the whole
        // call at once.
        let results = join_all(items.into_iter().map(|item| {
            let span = tracing::info_span!(
                "item",
                // Bounded and escaped as any request id a client sends.
                request_id = msglog_common::bounded::shorten_bytes(
                    item.request_id.as_bytes(),
                    msglog_common::request_id::MAX_LEN
                )
                .as_str(),
                attempt = item.attempt
            );
            async move {
                let Some(message) = item.message else {
                    return LogResult {
                        code: tonic::Code::InvalidArgument as i32,
                        status: "the item has no message".to_owned(),
                        held_id: String::new(),
                    };
                };
                match self.store_message(message).await {
                    Ok((status, held_id)) => LogResult {
                        code: tonic::Code::Ok as i32,
                        status: status.to_owned(),
                        held_id,
                    },
                    Err(status) => LogResult {
                        code: status.code() as i32,
                        status: status.message().to_owned(),
                        held_id: String::new(),
                    },
                }
            }
            .instrument(span)
        }))
        .await;
        Ok(Response::new(LogMessagesResponse { results }))
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let request = request.into_inner();
        let limit =
            msglog_proto::limits::page_limit(request.limit).map_err(Status::invalid_argument)?;
        let outcome = page_and_next(
            self.store.as_ref(),
            request.cursor,
            request.backward,
            limit as usize,
        )
        .await;
        self.health.observe(&outcome).await;
        let (page, next_cursor) = outcome.map_err(|error| store_failed(&error))?;
        let (messages, texts) = if request.texts_only {
            (
                Vec::new(),
                page.into_iter().map(|stored| stored.text).collect(),
            )
        } else {
            (page.into_iter().map(logged).collect(), Vec::new())
        };
        Ok(Response::new(ListMessagesResponse {
            messages,
            next_cursor,
            texts,
        }))
    }

    type WatchMessagesStream = WatchStream;

    async fn watch_messages(
        &self,
        request: Request<WatchMessagesRequest>,
    ) -> Result<Response<Self::WatchMessagesStream>, Status> {
        let after_seq = request.into_inner().after_seq;
        tracing::info!(after_seq, "watcher opened");
        Ok(Response::new(self.metrics.counted(watch(
            Arc::clone(&self.store),
            after_seq,
            self.watching.heartbeat,
            self.watching.stop.clone(),
        ))))
    }

    async fn get_messages(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<MessagesResponse>, Status> {
        let outcome = self.store.list().await;
        self.health.observe(&outcome).await;
        match outcome {
            Ok(messages) => {
                tracing::info!(count = messages.len(), "listing messages");
                Ok(Response::new(MessagesResponse { messages }))
            }
            Err(error) => Err(store_failed(&error)),
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut, so an error never echoes a huge input.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    const ID: &str = "6f1c2a3e-8a8b-4c0e-9e55-0b1f9f7c2d11";

    async fn api() -> LoggingApi {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(crate::store::DedupBy::Id));
        let (reporter, _) = tonic_health::server::health_reporter();
        let (health, _stop) = StoreHealth::new(
            reporter,
            Arc::clone(&store),
            std::time::Duration::from_secs(1),
        )
        .await;
        LoggingApi::new(
            store,
            16,
            health,
            Watching {
                heartbeat: std::time::Duration::from_secs(10),
                stop: CancellationToken::new(),
            },
            Metrics::register(&mut prometheus_client::registry::Registry::default()),
        )
    }

    async fn log(api: &LoggingApi, id: &str, message: &str) -> Result<String, Status> {
        api.log_message(Request::new(LogRequest {
            id: id.to_owned(),
            message: message.to_owned(),
        }))
        .await
        .map(|response| response.into_inner().status)
    }

    #[tokio::test]
    async fn a_new_id_is_logged_and_a_repeat_is_a_duplicate() {
        let api = api().await;
        assert_eq!(
            log(&api, ID, "hello").await.unwrap(),
            "Message logged successfully"
        );
        assert_eq!(
            log(&api, ID, "hello").await.unwrap(),
            "Duplicate message ignored"
        );
    }

    #[tokio::test]
    async fn the_same_id_with_another_text_is_already_exists() {
        let api = api().await;
        log(&api, ID, "hello").await.unwrap();
        let status = log(&api, ID, "bye").await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::AlreadyExists);
        assert!(status.message().contains(ID), "{}", status.message());
    }

    #[tokio::test]
    async fn bad_requests_are_invalid_argument_with_a_clear_message() {
        let api = api().await;
        for (id, message, expected) in [
            ("not-a-uuid", "hello", "id must be a UUID"),
            ("", "hello", "id must be a UUID"),
            (ID, "", "message must not be empty"),
            (ID, " \n ", "message must not be empty"),
            (
                ID,
                "seventeen bytes!!",
                "message is 17 bytes long; the limit is 16 bytes",
            ),
        ] {
            let status = log(&api, id, message).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{id:?} {message:?}"
            );
            assert!(status.message().contains(expected), "{}", status.message());
        }
        let listed = api.get_messages(Request::new(Empty {})).await.unwrap();
        assert!(listed.into_inner().messages.is_empty());
    }

    fn item(id: &str, message: Option<&str>) -> msglog_proto::logging::LogItem {
        msglog_proto::logging::LogItem {
            message: message.map(|message| LogRequest {
                id: id.to_owned(),
                message: message.to_owned(),
            }),
            request_id: "req-1".to_owned(),
            attempt: 1,
        }
    }

    #[tokio::test]
    async fn each_item_of_a_batch_gets_the_answer_log_message_would_give() {
        const OTHER: &str = "0b7e4c1a-2f3d-4e5f-8a9b-1c2d3e4f5a6b";
        let api = api().await;
        log(&api, ID, "held").await.unwrap();
        let results = api
            .log_messages(Request::new(LogMessagesRequest {
                items: vec![
                    item(OTHER, Some("new")),
                    item(ID, Some("held")),
                    item(ID, Some("another")),
                    item("not-a-uuid", Some("text")),
                    item(ID, None),
                    item(OTHER, Some("  ")),
                ],
            }))
            .await
            .unwrap()
            .into_inner()
            .results;
        let codes: Vec<_> = results
            .iter()
            .map(|result| tonic::Code::from(result.code))
            .collect();
        assert_eq!(
            codes,
            [
                tonic::Code::Ok,
                tonic::Code::Ok,
                tonic::Code::AlreadyExists,
                tonic::Code::InvalidArgument,
                tonic::Code::InvalidArgument,
                tonic::Code::InvalidArgument,
            ]
        );
        assert_eq!(results[0].status, STATUS_LOGGED);
        assert_eq!(results[1].status, STATUS_DUPLICATE);
        assert!(results[2].status.contains(ID), "{}", results[2].status);
        assert!(results[3].status.contains("id must be a UUID"));
        assert!(results[4].status.contains("no message"));
        assert!(results[5].status.contains("must not be empty"));
        let listed = api.get_messages(Request::new(Empty {})).await.unwrap();
        assert_eq!(listed.into_inner().messages, ["held", "new"]);
    }

    #[tokio::test]
    async fn a_batch_of_no_items_or_too_many_is_refused_whole() {
        let api = api().await;
        for count in [0, MAX_LOG_ITEMS + 1] {
            let items = (0..count)
                .map(|n| item(&Uuid::from_u128(n as u128 + 1).to_string(), Some("text")))
                .collect();
            let status = api
                .log_messages(Request::new(LogMessagesRequest { items }))
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{count}");
            assert!(status.message().contains("1 to 1000 items"), "{status:?}");
        }
        let listed = api.get_messages(Request::new(Empty {})).await.unwrap();
        assert!(listed.into_inner().messages.is_empty());
    }

    #[tokio::test]
    async fn a_batch_of_exactly_the_most_items_is_taken() {
        let api = api().await;
        let items = (0..MAX_LOG_ITEMS)
            .map(|n| {
                let id = Uuid::from_u128(n as u128 + 1).to_string();
                item(&id, Some(&format!("m{n}")))
            })
            .collect();
        let results = api
            .log_messages(Request::new(LogMessagesRequest { items }))
            .await
            .unwrap()
            .into_inner()
            .results;
        assert_eq!(results.len(), MAX_LOG_ITEMS);
        assert!(results.iter().all(|result| result.status == STATUS_LOGGED));
    }

    #[tokio::test]
    async fn a_backward_page_cut_by_its_byte_budget_keeps_the_newest_that_fit() {
        // Six messages of 400 KiB: a page's 1 MiB holds two.
        let store = MemoryStore::new(crate::store::DedupBy::Id);
        let big = 400 << 10;
        for n in 1..=6_u128 {
            let text = MessageText::parse(format!("{n}").repeat(big), big).unwrap();
            store
                .insert(NewMessage {
                    id: Uuid::from_u128(n),
                    text,
                })
                .await
                .unwrap();
        }
        let (page, next) = page_and_next(&store, 0, true, 5).await.unwrap();
        let seqs: Vec<_> = page.iter().map(|message| message.seq).collect();
        assert_eq!(seqs, [5, 6]);
        assert_eq!(next, Some(5));
    }

    #[test]
    fn shorten_cuts_on_character_boundaries() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("😀😀😀😀", 2), "😀😀…");
    }
}
