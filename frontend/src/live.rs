//! The live list: the newest page from `List`, older pages on demand, and every new message
//! from `Watch`, over gRPC-web to the page's own origin (the facade).
//!
//! The watch resumes from the last seq shown whenever it breaks (the facade or logging
//! restarted, the network dropped), with back-off, so the list ends whole: no gap, no double.
//! The facade tells the page when its own feed from logging is interrupted; the page shows it.

use std::time::Duration;

use futures_util::future::{Either, select};
use leptos::prelude::*;
use msglog_proto::v1::{Direction, ListRequest, StoredMessage, WatchRequest, watch_event::Event};

use crate::api::{Api, ApiError, client};

/// Messages per page of the list.
const PAGE: u32 = 50;
/// The most messages kept on screen; older ones go (and can be loaded again).
const KEEP: usize = 500;
/// A watch silent this long is taken for dead (the facade sends a heartbeat every 15 s).
const SILENCE: Duration = Duration::from_secs(45);
/// Back-off between reconnections: doubles from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether the list is up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feed {
    /// Opening the first time.
    Connecting,
    /// New messages arrive as they are stored.
    Live,
    /// The page lost its stream from the facade; why, for a person. The list shown is what
    /// arrived before.
    Reconnecting(String),
    /// The facade lost its feed from logging (it says why), and resumes it by itself.
    Interrupted(String),
}

/// The list's state, shared by the view and the tasks that fill it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveList {
    /// The messages shown, in seq order.
    pub(crate) messages: RwSignal<Vec<StoredMessage>>,
    /// The cursor of the next older page; `None` when the first message is shown.
    pub(crate) older: RwSignal<Option<u64>>,
    /// Whether an older page is being loaded.
    pub(crate) loading_older: RwSignal<bool>,
    /// Why the last older page failed to load, if it did.
    pub(crate) older_error: RwSignal<Option<String>>,
    /// Whether the list is up to date.
    pub(crate) feed: RwSignal<Feed>,
    /// Whether the first page has loaded.
    pub(crate) loaded: RwSignal<bool>,
}

impl LiveList {
    /// An empty list; [`LiveList::start`] fills it.
    pub(crate) fn new() -> Self {
        Self {
            messages: RwSignal::new(Vec::new()),
            older: RwSignal::new(None),
            loading_older: RwSignal::new(false),
            older_error: RwSignal::new(None),
            feed: RwSignal::new(Feed::Connecting),
            loaded: RwSignal::new(false),
        }
    }

    /// Loads the newest page, then follows the watch for as long as the page is open.
    pub(crate) fn start(self) {
        leptos::task::spawn_local(async move { self.run().await });
    }

    async fn run(self) {
        let mut client = client();
        let mut failures = 0_u32;
        loop {
            let broke = if self.loaded.get_untracked() {
                self.follow(&mut client, &mut failures).await
            } else {
                match self.load_newest(&mut client).await {
                    Ok(()) => continue,
                    Err(reason) => reason,
                }
            };
            failures = failures.saturating_add(1);
            self.feed.set(Feed::Reconnecting(broke));
            gloo_timers::future::sleep(backoff(failures)).await;
        }
    }

    /// The newest page, shown in place of anything shown before.
    async fn load_newest(&self, client: &mut Api) -> Result<(), String> {
        let page = client
            .list(ListRequest {
                cursor: 0,
                limit: PAGE,
                direction: Direction::Backward.into(),
            })
            .await
            .map_err(|status| describe(&status))?
            .into_inner();
        self.older.set(page.next_cursor);
        self.messages.set(page.messages);
        self.loaded.set(true);
        Ok(())
    }

    /// Watches from the last seq shown until the stream breaks; returns why.
    async fn follow(&self, client: &mut Api, failures: &mut u32) -> String {
        let after_seq = self
            .messages
            .with_untracked(|messages| messages.last().map_or(0, |m| m.seq));
        let mut stream = match client.watch(WatchRequest { after_seq }).await {
            Ok(response) => response.into_inner(),
            Err(status) => return describe(&status),
        };
        loop {
            let next = std::pin::pin!(stream.message());
            let silence = std::pin::pin!(gloo_timers::future::sleep(SILENCE));
            let event = match select(next, silence).await {
                Either::Left((Ok(Some(event)), _)) => event,
                Either::Left((Ok(None), _)) => return "the live feed ended".to_owned(),
                Either::Left((Err(status), _)) => {
                    if status.code() == tonic::Code::Aborted {
                        // The log was replaced (a store started afresh): what is shown belongs
                        // to the old one. Load the new one's newest page.
                        self.loaded.set(false);
                    }
                    return describe(&status);
                }
                Either::Right(_) => return "the live feed went silent".to_owned(),
            };
            *failures = 0;
            match event.event {
                Some(Event::Message(message)) => {
                    self.append(message);
                    self.mark_live();
                }
                Some(Event::Heartbeat(_)) => self.mark_live(),
                Some(Event::Feed(status)) if status.live => self.feed.set(Feed::Live),
                Some(Event::Feed(status)) => self.feed.set(Feed::Interrupted(status.detail)),
                None => {}
            }
        }
    }

    /// A heartbeat or a message: the stream is alive, and unless the facade said its own feed
    /// is interrupted, the list is live.
    fn mark_live(&self) {
        if self
            .feed
            .with_untracked(|feed| matches!(feed, Feed::Connecting | Feed::Reconnecting(_)))
        {
            self.feed.set(Feed::Live);
        }
    }

    /// Adds a new message at the end, once, keeping at most [`KEEP`] on screen.
    fn append(&self, message: StoredMessage) {
        let mut dropped = None;
        self.messages.update(|messages| {
            if messages.last().is_some_and(|last| last.seq >= message.seq) {
                return;
            }
            messages.push(message);
            if messages.len() > KEEP {
                let excess = messages.len() - KEEP;
                messages.drain(..excess);
                dropped = messages.first().map(|first| first.seq);
            }
        });
        if let Some(first_kept) = dropped {
            self.older.set(Some(first_kept));
        }
    }

    /// Loads the page before the oldest message shown.
    pub(crate) fn load_older(self) {
        let Some(cursor) = self.older.get_untracked() else {
            return;
        };
        if self.loading_older.get_untracked() {
            return;
        }
        self.loading_older.set(true);
        leptos::task::spawn_local(async move {
            let page = client()
                .list(ListRequest {
                    cursor,
                    limit: PAGE,
                    direction: Direction::Backward.into(),
                })
                .await;
            match page {
                Ok(page) => {
                    let page = page.into_inner();
                    self.messages.update(|messages| {
                        // Only what is older than what is shown: never twice.
                        let first = messages.first().map_or(u64::MAX, |m| m.seq);
                        let older: Vec<_> = page
                            .messages
                            .into_iter()
                            .filter(|m| m.seq < first)
                            .collect();
                        messages.splice(0..0, older);
                    });
                    self.older.set(page.next_cursor);
                    self.older_error.set(None);
                }
                Err(status) => self.older_error.set(Some(describe(&status))),
            }
            self.loading_older.set(false);
        });
    }
}

/// The wait before reconnection `failures` (1 for the first).
fn backoff(failures: u32) -> Duration {
    let doubled = RETRY_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(8));
    doubled.min(RETRY_MAX)
}

/// A failed call, for a person.
fn describe(status: &tonic::Status) -> String {
    ApiError::from(status.clone()).message
}
