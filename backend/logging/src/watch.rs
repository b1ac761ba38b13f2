//! `WatchMessages`: every message after a cursor, then each new one once it is committed.
//!
//! A watcher keeps only its cursor. It waits on the store's newest seq ([`Store::subscribe`]),
//! then reads what is new with [`Store::page`], one frame of up to [`FRAME`] messages at a time,
//! and only when its client takes the previous frame (the stream is polled by the connection as
//! the peer's flow control allows). So writers never wait for a watcher, a stalled watcher holds
//! one frame at most, and one that fell far behind catches up from the store at its own pace.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::Stream;
use msglog_proto::logging::{LoggedMessage, WatchMessagesResponse};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::store::{Cursor, Newest, Store, Stored};

/// The most messages one frame carries while catching up.
pub(crate) const FRAME: usize = 256;

/// The stream `WatchMessages` answers with.
pub(crate) type WatchStream =
    Pin<Box<dyn Stream<Item = Result<WatchMessagesResponse, Status>> + Send + 'static>>;

/// One open `WatchMessages` call.
#[derive(Debug)]
struct Watcher {
    store: Arc<dyn Store>,
    newest: Newest,
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
        newest: store.subscribe(),
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
            let newest = *self.newest.borrow_and_update();
            if self.cursor < newest {
                match self.store.page(Cursor::After(self.cursor), FRAME).await {
                    Ok(page) => {
                        if let Some(last) = page.last() {
                            self.cursor = last.seq;
                            self.opened = true;
                            return Some(Ok(frame(page, newest)));
                        }
                        // Nothing readable past the cursor although the store is further on:
                        // the cursor came from another store. Wait for new messages.
                    }
                    Err(error) => {
                        tracing::error!(%error, "store failed under a watcher");
                        return self.end(Status::unavailable(
                            "message store unavailable; resume from the last seq received",
                        ));
                    }
                }
            }
            if !self.opened {
                self.opened = true;
                return Some(Ok(frame(Vec::new(), newest)));
            }
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return self.end(stopping()),
                changed = self.newest.changed() => {
                    if changed.is_err() {
                        return self.end(Status::unavailable("the message store closed"));
                    }
                }
                () = tokio::time::sleep(self.heartbeat) => {
                    return Some(Ok(frame(Vec::new(), *self.newest.borrow())));
                }
            }
        }
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
    }
}
