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
//!
//! Here the feed's shared state (the buffer, its metrics, the handle every `Watch` holds); in
//! `follower.rs` the task that follows logging; in `watcher.rs` each `Watch` call.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use futures_util::Stream;
use msglog_proto::v1::{StoredMessage, WatchEvent, watch_event::Event};
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

use crate::settings::Settings;
use crate::{logging_client::LoggingClient, retry::Backoff};

mod follower;
mod watcher;

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
    /// The newest messages, in seq order: every message with `floor < seq <= last`. Each is
    /// held once, whatever the number of watchers that take it.
    recent: VecDeque<Arc<StoredMessage>>,
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

/// What a watch yields: a message as the feed holds it, shared by every watcher rather than
/// copied for each, or one of the feed's other events (its state, a heartbeat), boxed, as they
/// are rare, so that a watcher's queue costs a pointer an entry.
#[derive(Debug, Clone)]
pub(crate) enum Watched {
    Message(Arc<StoredMessage>),
    Event(Box<WatchEvent>),
}

impl From<Watched> for WatchEvent {
    fn from(watched: Watched) -> Self {
        match watched {
            Watched::Message(message) => Self {
                event: Some(Event::Message(Arc::unwrap_or_clone(message))),
            },
            Watched::Event(event) => *event,
        }
    }
}

/// The stream a `Watch` call answers with.
pub(crate) type WatchStream = Pin<Box<dyn Stream<Item = Result<Watched, Status>> + Send + 'static>>;
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

/// How the facade's settings set the feed (here, so the settings need not know this module).
impl Settings {
    /// How the live feed and its watchers behave.
    pub(crate) fn feed_settings(&self) -> FeedSettings {
        FeedSettings {
            buffer: usize::try_from(self.watch_buffer).unwrap_or(usize::MAX),
            heartbeat: Duration::from_millis(self.watch_heartbeat_ms),
        }
    }
}
