//! The live feed: one `WatchMessages` stream from logging per facade, fanned out to every
//! `Watch` call.
//!
//! A task follows logging's stream and keeps the newest messages in a bounded buffer (every
//! message with `floor < seq <= last`), then wakes the watchers. When the stream breaks
//! (logging restarted, say) the feed is marked down, the task reconnects with jittered back-off
//! and resumes after the last seq it holds: no gap, no double. Each watcher is a stream that
//! keeps only its cursor and a few events: it copies what is new from the buffer when woken,
//! and only when its client has taken what came before (the connection polls it as flow
//! control allows). A watcher behind the buffer catches up by pages from logging, a few at a
//! time over all watchers and one at a time per client, the rest waiting their turn. So a slow
//! watcher never slows the feed or the others, and memory stays bounded however many there
//! are.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use futures_util::Stream;
use msglog_proto::{
    logging::{ListMessagesRequest, WatchMessagesResponse},
    v1::{FeedStatus, Heartbeat, StoredMessage, WatchEvent, watch_event::Event},
};
use prometheus_client::{
    metrics::{
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::{
    clients::WatchSlot, codes::status_text, logging_client::LoggingClient, retry::Backoff,
};

/// Messages a watcher copies from the buffer at a time.
const BATCH: usize = 64;
/// Messages per page when a watcher catches up from logging: one batch, so a watcher holds
/// no more while it catches up than while it follows the feed.
const CATCH_UP_PAGE: u32 = BATCH as u32;
/// Catch-up reads from logging at once, over every watcher; the rest wait their turn (and each
/// client has one turn at a time, [`WatchSlot::catch_up_turn`]).
const CATCH_UPS_AT_ONCE: usize = 4;
/// Messages per page when the feed fills its buffer at start.
const PRIME_PAGE: u32 = 1000;
/// Wait between attempts of a watcher to catch up from logging while they fail.
const CATCH_UP_RETRY: Duration = Duration::from_secs(1);
/// Back-off between reconnections to logging.
const RECONNECT: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(2),
    multiplier: 2.0,
};

/// How watchers behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedSettings {
    /// Messages kept for watchers (the newest ones).
    pub(crate) buffer: usize,
    /// Idle time after which a watcher is sent a heartbeat.
    pub(crate) heartbeat: Duration,
}

/// A handle to the feed, shared by every `Watch` call.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    shared: Arc<Shared>,
    logging: LoggingClient,
    settings: FeedSettings,
    /// Cancelled when the facade stops: the follower ends, and so does every watcher.
    stop: CancellationToken,
    /// Turns to catch up from logging (see [`CATCH_UPS_AT_ONCE`]).
    catch_ups: Arc<Semaphore>,
}

#[derive(Debug)]
struct Shared {
    buffer: RwLock<Buffer>,
    /// Bumped on every change of the buffer or of the feed's state; watchers wait on it.
    changed: watch::Sender<u64>,
    /// Open `Watch` calls.
    watchers: Gauge,
    /// How many messages behind the newest one each watcher was when it took a batch.
    lag: Histogram,
    /// 1 while messages flow from logging, else 0.
    live: Gauge,
}

#[derive(Debug, Default)]
struct Buffer {
    /// The newest messages, in seq order: every message with `floor < seq <= last`.
    recent: VecDeque<StoredMessage>,
    /// See `recent`.
    floor: u64,
    /// The seq after which the follower resumes: the last message held (or, while the buffer
    /// is empty, the newest seq logging had).
    last: u64,
    /// The newest seq logging reported.
    newest: u64,
    /// Whether `recent`, `floor` and `last` have been read from logging yet.
    primed: bool,
    /// Whether messages are flowing from logging now.
    live: bool,
    /// Why not, when not.
    detail: String,
    /// The feed broke for a reason reconnecting does not mend (logging answers, but not with a
    /// feed this facade can read): the status says so, not just "reconnecting".
    stuck: bool,
    /// Changed when logging's log turned out to be another one (its store was replaced):
    /// watchers of the old one are ended, since their cursors mean nothing in the new one.
    epoch: u64,
}

/// What the feed is doing, for `/api/status`.
#[derive(Debug, Clone)]
pub(crate) struct FeedState {
    /// Whether messages are flowing from logging.
    pub(crate) live: bool,
    /// Why not, when not.
    pub(crate) detail: String,
    /// Open `Watch` calls.
    pub(crate) watchers: usize,
    /// The newest seq logging reported.
    pub(crate) newest_seq: u64,
    /// Whether it cannot come up for a reason reconnecting does not mend.
    pub(crate) stuck: bool,
}

/// The stream a `Watch` call answers with.
pub(crate) type WatchStream =
    Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send + 'static>>;

impl Feed {
    /// Registers `watchers`, `watch_lag_messages` and `feed_live`.
    pub(crate) fn register_metrics(&self, registry: &mut Registry) {
        registry.register("watchers", "Open Watch calls", self.shared.watchers.clone());
        registry.register(
            "watch_lag_messages",
            "How many messages behind logging's newest one a watcher was when it took a batch",
            self.shared.lag.clone(),
        );
        registry.register(
            "feed_live",
            "1 while the facade follows logging's live feed, 0 while it reconnects",
            self.shared.live.clone(),
        );
    }

    /// A feed that is not following yet (see [`Feed::follow`]).
    pub(crate) fn new(logging: LoggingClient, settings: FeedSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                buffer: RwLock::new(Buffer {
                    detail: "connecting to logging".to_owned(),
                    ..Buffer::default()
                }),
                changed: watch::Sender::new(0),
                watchers: Gauge::default(),
                // 0, then 1, 4, 16 ... about 4 million messages behind.
                lag: Histogram::new(std::iter::once(0.0).chain(exponential_buckets(1.0, 4.0, 12))),
                live: Gauge::default(),
            }),
            logging,
            settings: FeedSettings {
                buffer: settings.buffer.max(1),
                ..settings
            },
            stop: CancellationToken::new(),
            catch_ups: Arc::new(Semaphore::new(CATCH_UPS_AT_ONCE)),
        }
    }

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

    /// Ends the follower and every open watcher (with `UNAVAILABLE`, so clients resume).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// What the feed is doing now.
    pub(crate) fn state(&self) -> FeedState {
        let buffer = self.shared.read();
        FeedState {
            live: buffer.live,
            detail: buffer.detail.clone(),
            watchers: usize::try_from(self.shared.watchers.get()).unwrap_or(0),
            newest_seq: buffer.newest,
            stuck: buffer.stuck,
        }
    }

    /// One connection's worth of following: primes the buffer if needed, opens the watch
    /// after the last seq held, and applies its frames until it breaks. Returns why it broke.
    async fn follow_once(&self, failures: &mut u32) -> Broke {
        let primed = self.shared.read().primed;
        if !primed && let Err(status) = self.prime().await {
            return Broke::from(&status);
        }
        let after = self.shared.read().last;
        let mut stream = match self.logging.watch_messages(after).await {
            Ok(stream) => stream,
            Err(status) => return Broke::from(&status),
        };
        loop {
            match stream.message().await {
                Ok(Some(frame)) => {
                    *failures = 0;
                    if let Err(reason) = self.apply(frame) {
                        return reason.into();
                    }
                }
                Ok(None) => return "logging ended the watch".to_owned().into(),
                Err(status) => return Broke::from(&status),
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
        let messages: VecDeque<StoredMessage> = page.messages.into_iter().map(Into::into).collect();
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
            buffer.recent.push_back(message.into());
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

    /// Records how far behind `newest` a watcher at `cursor` is.
    fn observe_lag(&self, newest: u64, cursor: u64) {
        self.shared
            .lag
            .observe(newest.saturating_sub(cursor) as f64);
    }

    /// Marks the feed down; `true` if it was live.
    fn set_down(&self, broke: &Broke) -> bool {
        let mut buffer = self.shared.write();
        let was_live = buffer.live;
        buffer.live = false;
        self.shared.live.set(0);
        let reason = &broke.reason;
        buffer.stuck = broke.stuck;
        buffer.detail = if broke.no_feed {
            format!("logging has no live feed ({reason}); lists are read when asked for")
        } else if broke.stuck {
            format!("logging's live feed cannot be read ({reason}); trying again")
        } else {
            format!("logging unavailable, reconnecting ({reason})")
        };
        drop(buffer);
        self.shared.notify();
        was_live
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
        Box::pin(futures_util::stream::unfold(
            watcher,
            |mut watcher| async move { watcher.next().await.map(|event| (event, watcher)) },
        ))
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Buffer> {
        // Every update leaves the buffer whole before it can panic, so a poisoned lock is usable.
        self.buffer.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Buffer> {
        self.buffer.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }
}

/// Why one connection's worth of following ended.
struct Broke {
    /// What happened, for the feed's detail and the log.
    reason: String,
    /// Logging answered `UNIMPLEMENTED`: it has no live feed (the original's logging). The
    /// feed keeps asking, so a logging that gains one is followed.
    no_feed: bool,
    /// Logging answered, with a failure that reconnecting does not mend (a feed too large to
    /// read, say): health and status say so.
    stuck: bool,
}

impl From<&Status> for Broke {
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

impl From<String> for Broke {
    fn from(reason: String) -> Self {
        Self {
            reason,
            no_feed: false,
            stuck: false,
        }
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
    pending: VecDeque<WatchEvent>,
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
    Messages(Vec<StoredMessage>),
    /// Its cursor is older than the buffer: read from logging.
    Behind,
    /// Nothing new.
    Nothing,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchEvent, Status>> {
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
                    self.catch_up_failure = self.catch_up().await.err();
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
        self.queue(page.messages.into_iter().map(Into::into).collect());
        Ok(())
    }

    fn queue(&mut self, messages: Vec<StoredMessage>) {
        if let Some(last) = messages.last() {
            self.cursor = last.seq;
        }
        self.pending
            .extend(messages.into_iter().map(|message| WatchEvent {
                event: Some(Event::Message(message)),
            }));
    }

    /// Queues a feed-status event if the client's picture is out of date; `true` if it did.
    fn queue_status(&mut self, live: bool, detail: String) -> bool {
        if live == self.told_live {
            return false;
        }
        self.told_live = live;
        self.pending.push_back(WatchEvent {
            event: Some(Event::Feed(FeedStatus { live, detail })),
        });
        true
    }

    fn end(&mut self, status: Status) -> Option<Result<WatchEvent, Status>> {
        self.done = true;
        Some(Err(status))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.feed.shared.watchers.dec();
    }
}

fn heartbeat(newest_seq: u64) -> WatchEvent {
    WatchEvent {
        event: Some(Event::Heartbeat(Heartbeat { newest_seq })),
    }
}
