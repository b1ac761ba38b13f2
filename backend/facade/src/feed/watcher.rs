//! One `Watch` call: a cursor that copies what is new from the buffer when its client has
//! taken what came before, and catches up from logging when it fell behind the buffer.

use std::{collections::VecDeque, sync::Arc};

use msglog_proto::{
    logging::ListMessagesRequest,
    v1::{FeedStatus, Heartbeat, StoredMessage, WatchEvent, watch_event::Event},
};
use tokio::sync::watch;
use tonic::Status;

use super::{BATCH, CATCH_UP_PAGE, CATCH_UP_RETRY, Feed, WatchStream, Watched};
use crate::{clients::WatchSlot, codes::status_text};

impl Feed {
    /// Records how far behind `newest` a watcher at `cursor` is.
    fn observe_lag(&self, newest: u64, cursor: u64) {
        self.shared
            .lag
            .observe(newest.saturating_sub(cursor) as f64);
    }

    /// Every message after `after_seq`, then each new one, with heartbeats and feed status,
    /// until the client goes away or the facade stops. The stream holds `slot`, its client's
    /// place, until it ends.
    pub(crate) fn watch(&self, after_seq: u64, slot: WatchSlot) -> WatchStream {
        self.shared.watchers.inc();
        let watcher = Watcher {
            slot,
            changed: self.shared.changed.subscribe(),
            feed: self.clone(),
            cursor: after_seq,
            epoch: None,
            pending: VecDeque::new(),
            told_live: true,
            catch_up_failure: None,
            opened: false,
            done: false,
        };
        // Boxed: the stream hands its state to each step and takes it back, and a pointer is
        // 8 bytes to move where the watcher is 400, for every event to every watcher.
        Box::pin(futures_util::stream::unfold(
            Box::new(watcher),
            |mut watcher| async move { watcher.next().await.map(|event| (event, watcher)) },
        ))
    }
}

/// How a watch ends when the facade stops.
fn stopping() -> Status {
    Status::unavailable("the facade is stopping; resume from the last seq received")
}

/// One open `Watch` call.
#[derive(Debug)]
struct Watcher {
    /// Its client's place: given back when the watcher ends.
    slot: WatchSlot,
    feed: Feed,
    changed: watch::Receiver<u64>,
    /// The last seq sent (or the one the client asked to start after).
    cursor: u64,
    /// The log the cursor belongs to, once seen.
    epoch: Option<u64>,
    /// Events taken but not yet sent: at most one batch.
    pending: VecDeque<Watched>,
    /// The feed state this client was last told (it assumes live until told otherwise).
    told_live: bool,
    /// Why the last attempt to catch up from logging failed, until one works: the client is
    /// told the feed is down meanwhile.
    catch_up_failure: Option<String>,
    /// Whether the first frame (a heartbeat, at once) was sent.
    opened: bool,
    /// Whether the stream has ended.
    done: bool,
}

/// What a watcher found in the buffer.
enum Found {
    /// New messages after its cursor.
    Messages(Vec<Arc<StoredMessage>>),
    /// Its cursor is older than the buffer: read from logging.
    Behind,
    /// Nothing new.
    Nothing,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Watched, Status>> {
        if self.done {
            return None;
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.feed.stop.is_cancelled() {
                return self.end(stopping());
            }
            let (found, live, detail, newest) = {
                let buffer = self.feed.shared.read();
                if *self.epoch.get_or_insert(buffer.epoch) != buffer.epoch {
                    drop(buffer);
                    return self.end(Status::aborted(
                        "the message log was replaced; list it again and watch from its newest seq",
                    ));
                }
                let found = if !buffer.primed {
                    Found::Nothing
                } else if self.cursor < buffer.floor {
                    self.feed.observe_lag(buffer.newest, self.cursor);
                    Found::Behind
                } else {
                    // Seqs ascend, so the first new message is found by binary search.
                    let start = buffer.recent.partition_point(|m| m.seq <= self.cursor);
                    let new: Vec<_> = buffer.recent.range(start..).take(BATCH).cloned().collect();
                    if new.is_empty() {
                        Found::Nothing
                    } else {
                        self.feed.observe_lag(buffer.newest, self.cursor);
                        Found::Messages(new)
                    }
                };
                let (live, detail) = match &self.catch_up_failure {
                    Some(reason) => (false, reason.clone()),
                    None => (buffer.live, buffer.detail.clone()),
                };
                (found, live, detail, buffer.newest)
            };
            if !self.opened {
                // The first frame goes at once, whatever there is to send, so the client's
                // call resolves.
                self.opened = true;
                self.queue_status(live, detail);
                return Some(Ok(heartbeat(newest)));
            }
            if self.queue_status(live, detail) {
                continue;
            }
            match found {
                Found::Messages(messages) => self.queue(messages),
                Found::Behind => {
                    if self.catch_up_failure.is_some() {
                        // Space the attempts while logging fails.
                        tokio::select! {
                            () = self.feed.stop.cancelled() => {}
                            () = tokio::time::sleep(CATCH_UP_RETRY) => {}
                        }
                    }
                    // Boxed: a call to logging is a large future, and only a watcher that
                    // fell behind makes one; every other watcher's stream stays small.
                    self.catch_up_failure = Box::pin(self.catch_up()).await.err();
                }
                // Nothing to send: wait for the feed to change, or send a heartbeat when idle.
                Found::Nothing => tokio::select! {
                    biased;
                    () = self.feed.stop.cancelled() => return self.end(stopping()),
                    changed = self.changed.changed() => {
                        if changed.is_err() {
                            return self.end(Status::unavailable("the live feed stopped"));
                        }
                    }
                    () = tokio::time::sleep(self.feed.settings.heartbeat) => {
                        return Some(Ok(heartbeat(self.feed.shared.read().newest)));
                    }
                },
            }
        }
    }

    /// Reads the next page after the cursor from logging, for a watcher behind the buffer,
    /// when it is its client's turn and one of the feed's turns is free.
    async fn catch_up(&mut self) -> Result<(), String> {
        let client_turn = Arc::clone(self.slot.catch_up_turn());
        let turns = Arc::clone(&self.feed.catch_ups);
        let turn = tokio::select! {
            () = self.feed.stop.cancelled() => return Ok(()),
            turn = async {
                let client = client_turn.acquire_owned().await?;
                let feed = turns.acquire_owned().await?;
                Ok::<_, tokio::sync::AcquireError>((client, feed))
            } => turn,
        };
        let Ok(_turn) = turn else {
            return Err("the live feed stopped".to_owned());
        };
        let page = self
            .feed
            .logging
            .list_messages(
                ListMessagesRequest {
                    cursor: self.cursor,
                    limit: CATCH_UP_PAGE,
                    backward: false,
                    texts_only: false,
                },
                "watch",
            )
            .await
            .map_err(|failure| format!("catching up failed ({})", status_text(&failure.status)))?
            .value;
        if page.messages.is_empty() {
            // Nothing is stored between the cursor and the buffer: carry on from the buffer.
            self.cursor = self.cursor.max(self.feed.shared.read().floor);
            return Ok(());
        }
        self.queue(
            page.messages
                .into_iter()
                .map(|message| Arc::new(message.into()))
                .collect(),
        );
        Ok(())
    }

    fn queue(&mut self, messages: Vec<Arc<StoredMessage>>) {
        if let Some(last) = messages.last() {
            self.cursor = last.seq;
        }
        self.pending
            .extend(messages.into_iter().map(Watched::Message));
    }

    /// Queues a feed-status event if the client's picture is out of date; `true` if it did.
    fn queue_status(&mut self, live: bool, detail: String) -> bool {
        if live == self.told_live {
            return false;
        }
        self.told_live = live;
        self.pending.push_back(Watched::Event(Box::new(WatchEvent {
            event: Some(Event::Feed(FeedStatus { live, detail })),
        })));
        true
    }

    fn end(&mut self, status: Status) -> Option<Result<Watched, Status>> {
        self.done = true;
        Some(Err(status))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.feed.shared.watchers.dec();
    }
}

fn heartbeat(newest_seq: u64) -> Watched {
    Watched::Event(Box::new(WatchEvent {
        event: Some(Event::Heartbeat(Heartbeat { newest_seq })),
    }))
}
