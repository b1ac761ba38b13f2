//! The follower: one `WatchMessages` stream from logging at a time, its frames taken into the
//! buffer, and a reconnection with back-off whenever it breaks.

use std::{collections::VecDeque, sync::Arc};

use msglog_proto::{
    logging::{ListMessagesRequest, WatchMessagesResponse},
    v1::StoredMessage,
};
use tonic::Status;

use super::{Buffer, Feed, PRIME_PAGE, RECONNECT};
use crate::codes::status_text;

impl Feed {
    /// Follows logging until [`Feed::stop`]: connects, reconnects with back-off, and keeps
    /// the buffer. Run it as a task.
    pub(crate) async fn follow(self) {
        let mut failures = 0;
        loop {
            let broke = tokio::select! {
                () = self.stop.cancelled() => return,
                broke = self.follow_once(&mut failures) => broke,
            };
            failures += 1;
            let delay = RECONNECT.delay(failures);
            if self.set_down(&broke) {
                tracing::warn!(reason = %broke.reason, "live feed from logging interrupted; reconnecting");
            }
            tracing::debug!(reason = %broke.reason, ?delay, "reconnecting the live feed");
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection's worth of following: primes the buffer if needed, opens the watch
    /// after the last seq held, and applies its frames until it breaks. Returns why it broke.
    async fn follow_once(&self, failures: &mut u32) -> Break {
        let primed = self.shared.read().primed;
        if !primed && let Err(status) = self.prime().await {
            return Break::from(&status);
        }
        let after = self.shared.read().last;
        let mut stream = match self.logging.watch_messages(after).await {
            Ok(stream) => stream,
            Err(status) => return Break::from(&status),
        };
        loop {
            match stream.message().await {
                Ok(Some(frame)) => {
                    *failures = 0;
                    if let Err(reason) = self.apply(frame) {
                        return Break::passing(reason);
                    }
                }
                Ok(None) => return Break::passing("logging ended the watch"),
                Err(status) => return Break::from(&status),
            }
        }
    }

    /// Fills the buffer with the newest messages.
    async fn prime(&self) -> Result<(), Status> {
        let limit = u32::try_from(self.settings.buffer).unwrap_or(PRIME_PAGE);
        let page = self
            .logging
            .list_messages_once(ListMessagesRequest {
                cursor: 0,
                limit: limit.min(PRIME_PAGE),
                backward: true,
                texts_only: false,
            })
            .await?;
        let messages: VecDeque<Arc<StoredMessage>> = page
            .messages
            .into_iter()
            .map(|message| Arc::new(message.into()))
            .collect();
        let mut buffer = self.shared.write();
        buffer.floor = match (page.next_cursor, messages.front()) {
            (Some(_), Some(first)) => first.seq - 1,
            _ => 0,
        };
        buffer.last = messages.back().map_or(0, |last| last.seq);
        buffer.newest = buffer.newest.max(buffer.last);
        buffer.recent = messages;
        buffer.primed = true;
        drop(buffer);
        self.shared.notify();
        Ok(())
    }

    /// Takes one frame from logging into the buffer, marks the feed live, and wakes the
    /// watchers. `Err` when logging's log is not the one the buffer came from.
    fn apply(&self, frame: WatchMessagesResponse) -> Result<(), String> {
        let mut buffer = self.shared.write();
        if frame.newest_seq < buffer.last {
            // Logging holds fewer messages than were seen: its store was replaced. Start over.
            tracing::warn!(
                newest = frame.newest_seq,
                held = buffer.last,
                "logging's message log is not the one followed before (was its store replaced?); reloading"
            );
            let epoch = buffer.epoch + 1;
            *buffer = Buffer {
                epoch,
                ..Buffer::default()
            };
            drop(buffer);
            self.shared.notify();
            return Err("logging's message log was replaced".to_owned());
        }
        if !buffer.live {
            tracing::info!(after = buffer.last, "live feed from logging connected");
        }
        buffer.live = true;
        self.shared.live.set(1);
        buffer.detail.clear();
        buffer.stuck = false;
        for message in frame.messages {
            // Logging sends each seq once, after the cursor; anything else is ignored rather
            // than shown twice.
            if message.seq <= buffer.last {
                continue;
            }
            buffer.last = message.seq;
            buffer.recent.push_back(Arc::new(message.into()));
        }
        while buffer.recent.len() > self.settings.buffer {
            if let Some(dropped) = buffer.recent.pop_front() {
                buffer.floor = dropped.seq;
            }
        }
        buffer.newest = buffer.newest.max(frame.newest_seq).max(buffer.last);
        drop(buffer);
        self.shared.notify();
        Ok(())
    }

    /// Marks the feed down; `true` if it was live.
    fn set_down(&self, broken: &Break) -> bool {
        let mut buffer = self.shared.write();
        let was_live = buffer.live;
        buffer.live = false;
        self.shared.live.set(0);
        let reason = &broken.reason;
        buffer.stuck = broken.stuck;
        buffer.detail = if broken.no_feed {
            format!("logging has no live feed ({reason}); lists are read when asked for")
        } else if broken.stuck {
            format!("logging's live feed cannot be read ({reason}); trying again")
        } else {
            format!("logging unavailable, reconnecting ({reason})")
        };
        drop(buffer);
        self.shared.notify();
        was_live
    }
}

/// Why one connection's worth of following ended.
struct Break {
    /// What happened, for the feed's detail and the log.
    reason: String,
    /// Logging answered `UNIMPLEMENTED`: it has no live feed (the original's logging). The
    /// feed keeps asking, so a logging that gains one is followed.
    no_feed: bool,
    /// Logging answered, with a failure that reconnecting does not mend (a feed too large to
    /// read, say): health and status say so.
    stuck: bool,
}

impl From<&Status> for Break {
    fn from(status: &Status) -> Self {
        let code = status.code();
        Self {
            reason: status_text(status),
            no_feed: code == tonic::Code::Unimplemented,
            stuck: !matches!(
                code,
                tonic::Code::Unimplemented | tonic::Code::Cancelled | tonic::Code::Aborted
            ) && !crate::retry::is_retryable(code),
        }
    }
}

impl Break {
    /// A break that reconnecting may mend, for `reason`.
    fn passing(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            no_feed: false,
            stuck: false,
        }
    }
}
