//! `WatchMessages`: every message after a cursor, then each new one once it is committed.
//!
//! A watcher keeps its cursor and a [`Subscription`] to the store's commits. It takes new
//! messages as the store publishes them, one frame of up to [`FRAME`] (and a byte budget) at a time and only when
//! its client has taken the previous frame (the stream is polled by the connection as the peer's
//! flow control allows). What it cannot take from what was published (messages from before it
//! subscribed, or more than the store holds for a subscriber that lags) it reads with
//! [`Store::page`]. So writers never wait for a watcher, memory is bounded however slow one is,
//! and one that fell far behind catches up from the store at its own pace.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::Stream;
use msglog_proto::{
    limits::PageBudget,
    logging::{LoggedMessage, WatchMessagesResponse},
};
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::store::{Cursor, Store, Stored, Subscription};

/// The most messages one frame carries; fewer when they would take it past its byte budget
/// ([`msglog_proto::limits`]).
pub(crate) const FRAME: usize = 256;

/// The stream `WatchMessages` answers with.
pub(crate) type WatchStream =
    Pin<Box<dyn Stream<Item = Result<WatchMessagesResponse, Status>> + Send + 'static>>;

/// One open `WatchMessages` call.
#[derive(Debug)]
struct Watcher {
    store: Arc<dyn Store>,
    subscription: Subscription,
    /// The last seq sent (or the one the caller asked to start after).
    cursor: u64,
    /// Idle time after which a heartbeat is sent.
    heartbeat: Duration,
    /// Cancelled when the service stops.
    stop: CancellationToken,
    /// Whether anything was sent yet: the first frame goes at once, so the client sees the
    /// stream open.
    opened: bool,
    /// Whether the stream has ended (after its closing status).
    done: bool,
}

/// The messages after `after_seq`, then each new one, until the client goes away, the store
/// fails, or `stop` is cancelled; the last two end the stream with `UNAVAILABLE`.
pub(crate) fn watch(
    store: Arc<dyn Store>,
    after_seq: u64,
    heartbeat: Duration,
    stop: CancellationToken,
) -> WatchStream {
    let watcher = Watcher {
        subscription: store.subscribe(),
        store,
        cursor: after_seq,
        heartbeat,
        stop,
        opened: false,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        watcher,
        |mut watcher| async move { watcher.next().await.map(|item| (item, watcher)) },
    ))
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchMessagesResponse, Status>> {
        if self.done {
            return None;
        }
        loop {
            if self.stop.is_cancelled() {
                return self.end(stopping());
            }
            let newest = *self.subscription.newest.borrow_and_update();
            let (page, ended) = self.take_published();
            if ended {
                return self.end(Status::unavailable("the message store closed"));
            }
            if !page.is_empty() {
                return Some(Ok(self.send(page, newest)));
            }
            if self.cursor < newest {
                match self.store.page(Cursor::After(self.cursor), FRAME).await {
                    Ok(mut page) if !page.is_empty() => {
                        page.truncate(PageBudget::fitting(
                            page.iter().map(|message| message.text.len()),
                        ));
                        return Some(Ok(self.send(page, newest)));
                    }
                    // Nothing readable past the cursor although the store is further on: the
                    // cursor came from another store. Wait for new messages.
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, "store failed under a watcher");
                        return self.end(Status::unavailable(
                            "message store unavailable; resume from the last seq received",
                        ));
                    }
                }
            }
            if !self.opened {
                return Some(Ok(self.send(Vec::new(), newest)));
            }
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return self.end(stopping()),
                changed = self.subscription.newest.changed() => {
                    if changed.is_err() {
                        return self.end(Status::unavailable("the message store closed"));
                    }
                }
                () = tokio::time::sleep(self.heartbeat) => {
                    let newest = *self.subscription.newest.borrow();
                    return Some(Ok(self.send(Vec::new(), newest)));
                }
            }
        }
    }

    /// Up to [`FRAME`] published messages that follow the cursor without a gap. Stops at a gap
    /// or a lag (the store is read instead); `true` if the store closed.
    fn take_published(&mut self) -> (Vec<Stored>, bool) {
        let mut page = Vec::new();
        let mut next = self.cursor;
        let mut budget = PageBudget::new();
        while page.len() < FRAME {
            match self.subscription.committed.try_recv() {
                Ok(message) if message.seq <= next => {}
                // Seqs are consecutive; anything else means some are missing here.
                Ok(message) if message.seq == next + 1 => {
                    if !budget.admit(message.text.len()) {
                        // Left for the next frame, which reads it from the store.
                        break;
                    }
                    next = message.seq;
                    page.push(Stored::clone(&message));
                }
                Ok(_) | Err(TryRecvError::Lagged(_)) => break,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return (page, true),
            }
        }
        (page, false)
    }

    /// Moves the cursor past `page` and makes its frame. The newest seq is the store's, or the
    /// page's last when that is further on (a message is published before the newest seq
    /// moves); never the cursor's, so a client resuming on a store that holds less sees it.
    fn send(&mut self, page: Vec<Stored>, newest: u64) -> WatchMessagesResponse {
        self.opened = true;
        let mut newest = newest;
        if let Some(last) = page.last() {
            self.cursor = last.seq;
            newest = newest.max(last.seq);
        }
        frame(page, newest)
    }

    /// Ends the stream with `status`.
    fn end(&mut self, status: Status) -> Option<Result<WatchMessagesResponse, Status>> {
        self.done = true;
        Some(Err(status))
    }
}

fn stopping() -> Status {
    Status::unavailable("the logging service is stopping; resume from the last seq received")
}

fn frame(page: Vec<Stored>, newest_seq: u64) -> WatchMessagesResponse {
    WatchMessagesResponse {
        messages: page.into_iter().map(logged).collect(),
        newest_seq,
    }
}

/// A stored message on the wire.
pub(crate) fn logged(stored: Stored) -> LoggedMessage {
    LoggedMessage {
        seq: stored.seq,
        id: stored.id.to_string(),
        message: stored.text,
        stored_at_ms: stored.stored_at_ms.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt as _;
    use msglog_proto::MessageText;
    use uuid::Uuid;

    use super::*;
    use crate::store::{Inserted, MemoryStore, NewMessage, StoreError, Subscription};

    /// A memory store that counts its page reads.
    #[derive(Debug)]
    struct CountingStore {
        inner: MemoryStore,
        pages: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Store for CountingStore {
        async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
            self.inner.insert(message).await
        }
        async fn list(&self) -> Result<Vec<String>, StoreError> {
            self.inner.list().await
        }
        async fn page(&self, cursor: Cursor, limit: usize) -> Result<Vec<Stored>, StoreError> {
            self.pages.fetch_add(1, Ordering::SeqCst);
            self.inner.page(cursor, limit).await
        }
        fn subscribe(&self) -> Subscription {
            self.inner.subscribe()
        }
        async fn check(&self) -> Result<(), StoreError> {
            self.inner.check().await
        }
        async fn close(&self) {
            self.inner.close().await;
        }
    }

    async fn insert(store: &dyn Store, n: u128) {
        let text = MessageText::parse(format!("m{n}"), 100).unwrap();
        let id = Uuid::from_u128(n);
        store.insert(NewMessage { id, text }).await.unwrap();
    }

    #[tokio::test]
    async fn live_messages_come_from_what_the_store_publishes_and_history_from_pages() {
        let store = Arc::new(CountingStore {
            inner: MemoryStore::new(crate::store::DedupBy::Id),
            pages: AtomicUsize::new(0),
        });
        for n in 1..=3 {
            insert(store.as_ref(), n).await;
        }
        let shared: Arc<dyn Store> = store.clone();
        let mut stream = watch(shared, 0, Duration::from_secs(60), CancellationToken::new());
        let history = stream.next().await.unwrap().unwrap();
        assert_eq!(history.messages.len(), 3);
        let reads = store.pages.load(Ordering::SeqCst);
        assert_eq!(reads, 1, "history is one page read");
        for n in 4..=20 {
            insert(store.as_ref(), n).await;
            let frame = stream.next().await.unwrap().unwrap();
            let seqs: Vec<_> = frame.messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, [n as u64]);
        }
        assert_eq!(
            store.pages.load(Ordering::SeqCst),
            reads,
            "live messages cost the store no read"
        );
    }
}
