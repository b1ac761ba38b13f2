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
    use crate::store::{Inserted, NewMessage, StoreError, Subscription, memory::MemoryStore};

    /// A memory store that counts its page reads, and (`forgets`) may answer them with
    /// nothing, as a store does for a cursor that came from another store.
    #[derive(Debug)]
    struct CountingStore {
        inner: MemoryStore,
        pages: AtomicUsize,
        forgets: bool,
    }

    impl CountingStore {
        fn new(forgets: bool) -> Arc<Self> {
            Arc::new(Self {
                inner: MemoryStore::new(crate::store::DedupBy::Id),
                pages: AtomicUsize::new(0),
                forgets,
            })
        }

        fn reads(&self) -> usize {
            self.pages.load(Ordering::SeqCst)
        }
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
            if self.forgets {
                return Ok(Vec::new());
            }
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
        let store = holding(3, false).await;
        let mut stream = watching(&store, 0);
        let history = next_frame(&mut stream).await;
        assert_eq!(history.messages.len(), 3);
        assert_eq!(store.reads(), 1, "history is one page read");
        for n in 4..=20 {
            insert(store.as_ref(), n).await;
            assert_eq!(seqs(&next_frame(&mut stream).await), [n as u64]);
        }
        assert_eq!(store.reads(), 1, "live messages cost the store no read");
    }

    /// A counting store holding messages 1 to `stored`.
    async fn holding(stored: u128, forgets: bool) -> Arc<CountingStore> {
        let store = CountingStore::new(forgets);
        for n in 1..=stored {
            insert(store.as_ref(), n).await;
        }
        store
    }

    /// The heartbeat of the watches the tests open.
    const HEARTBEAT: Duration = Duration::from_secs(60);

    /// A watch of `store` after `after_seq`.
    fn watching(store: &Arc<CountingStore>, after_seq: u64) -> WatchStream {
        let shared: Arc<dyn Store> = store.clone();
        watch(shared, after_seq, HEARTBEAT, CancellationToken::new())
    }

    fn seqs(frame: &WatchMessagesResponse) -> Vec<u64> {
        frame.messages.iter().map(|m| m.seq).collect()
    }

    async fn next_frame(stream: &mut WatchStream) -> WatchMessagesResponse {
        stream.next().await.expect("a frame").expect("not an error")
    }

    #[tokio::test]
    async fn a_published_message_past_a_gap_waits_for_the_gap_to_be_read() {
        // 1-3 were stored before the watcher subscribed; 4 is published after: the first
        // frame is 1-4 from the store, never 4 alone.
        let store = holding(3, false).await;
        let mut stream = watching(&store, 0);
        insert(store.as_ref(), 4).await;
        assert_eq!(seqs(&next_frame(&mut stream).await), [1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn what_was_published_and_already_read_is_skipped_without_reading_again() {
        let store = holding(3, false).await;
        let mut stream = watching(&store, 0);
        // 4 and 5 are published before the first frame, which reads 1-5 from the store.
        insert(store.as_ref(), 4).await;
        insert(store.as_ref(), 5).await;
        assert_eq!(seqs(&next_frame(&mut stream).await), [1, 2, 3, 4, 5]);
        assert_eq!(store.reads(), 1);
        // 5, still in what was published, is passed over; 6 comes from there too.
        insert(store.as_ref(), 6).await;
        assert_eq!(seqs(&next_frame(&mut stream).await), [6]);
        assert_eq!(store.reads(), 1, "a new message costs no read");
    }

    #[tokio::test]
    async fn a_watcher_at_the_newest_seq_reads_nothing() {
        let store = holding(3, false).await;
        let mut stream = watching(&store, 3);
        let opened = next_frame(&mut stream).await;
        assert!(opened.messages.is_empty());
        insert(store.as_ref(), 4).await;
        assert_eq!(seqs(&next_frame(&mut stream).await), [4]);
        assert_eq!(store.reads(), 0);
    }

    #[tokio::test]
    async fn a_frame_carries_at_most_its_count() {
        let store = holding(0, false).await;
        let mut stream = watching(&store, 0);
        assert!(next_frame(&mut stream).await.messages.is_empty());
        let total = FRAME as u128 + 44;
        for n in 1..=total {
            insert(store.as_ref(), n).await;
        }
        assert_eq!(next_frame(&mut stream).await.messages.len(), FRAME);
        assert_eq!(next_frame(&mut stream).await.messages.len(), 44);
        assert_eq!(store.reads(), 0, "all of it taken as published");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cursor_the_store_cannot_read_past_waits_rather_than_sending_empty_frames() {
        // The store says it is at 3 and reads nothing past 1 (the cursor came from another
        // store): the stream opens, then waits for news or its heartbeat, not a stream of
        // empty frames.
        let store = holding(3, true).await;
        let mut stream = watching(&store, 1);
        assert!(next_frame(&mut stream).await.messages.is_empty());
        let waited = tokio::time::timeout(HEARTBEAT / 2, stream.next()).await;
        assert!(
            waited.is_err(),
            "nothing sent before the heartbeat: {waited:?}"
        );
    }
}
