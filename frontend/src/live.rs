//! The live list: the newest page from `List`, older pages on demand, and every new message
//! from `Watch`, over gRPC-web to the page's own origin (the facade).
//!
//! Only the tab that leads (see [`crate::tabs`]) holds a `Watch`; it relays each message to
//! the other tabs, which add it as if they had watched. The watch resumes from the last seq
//! shown whenever it breaks (the facade or logging restarted, the network dropped), with
//! back-off, and a tab that takes over the lead resumes from its own last seq, so every list
//! ends whole: no gap, no double. The facade tells the page when its own feed from logging is
//! interrupted; the page shows it.

use std::{sync::Arc, time::Duration};

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::{
    StreamExt as _,
    future::{Either, select},
};
use leptos::prelude::*;
use msglog_proto::v1::{Direction, ListRequest, StoredMessage, WatchRequest, watch_event::Event};

pub(crate) use crate::tabs::Feed;
use crate::{
    api,
    backoff::Backoff,
    tabs::{Relay, Tabs},
};

/// Messages per page of the list.
const PAGE: u32 = 50;
/// The most new messages kept on screen beyond what the person loaded: older ones go, said
/// so, and can be loaded again. What the person loads with "Load older" stays.
const KEEP: usize = 500;
/// A watch silent this long is taken for dead (the facade sends a heartbeat every 15 s).
const SILENCE: Duration = Duration::from_secs(45);
/// Back-off between reconnections: doubles from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A run of messages drawn together, newest first: the newest page, a page of older ones, or
/// what arrived in one frame. The list is drawn block by block, and a block never changes
/// once drawn (one cut short gets a new key), so a burst of new messages adds one block at
/// the top: the rows below are not touched, whatever the length of the list.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// Its newest seq and its length: what it is drawn under.
    pub(crate) key: (u64, usize),
    /// Its messages, newest first.
    pub(crate) messages: Arc<[StoredMessage]>,
}

impl Block {
    /// A block of `messages` (in seq order).
    fn new(mut messages: Vec<StoredMessage>) -> Self {
        messages.reverse();
        Self {
            key: (messages.first().map_or(0, |m| m.seq), messages.len()),
            messages: messages.into(),
        }
    }

    /// Cuts `blocks` (newest first) to `total` messages, from the oldest end.
    fn keep(blocks: &mut Vec<Self>, total: usize) {
        let mut held: usize = blocks.iter().map(|block| block.messages.len()).sum();
        while held > total {
            let Some(oldest) = blocks.pop() else {
                return;
            };
            let excess = held - total;
            held -= oldest.messages.len();
            if oldest.messages.len() > excess {
                let mut kept = oldest.messages[..oldest.messages.len() - excess].to_vec();
                kept.reverse();
                held += kept.len();
                blocks.push(Self::new(kept));
            }
        }
    }
}

/// The list's state, shared by the view and the tasks that fill it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveList {
    /// The messages shown, in seq order.
    pub(crate) messages: RwSignal<Vec<StoredMessage>>,
    /// The same messages as drawn: blocks, newest first.
    pub(crate) blocks: RwSignal<Vec<Block>>,
    /// New messages waiting to be drawn, as one block.
    pending: StoredValue<Vec<StoredMessage>>,
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
    /// New messages added since the page opened (for the jump to the newest).
    pub(crate) arrived: RwSignal<u64>,
    /// Whether older messages were put away to keep at most [`KEEP`] (they can be loaded
    /// again).
    pub(crate) trimmed: RwSignal<bool>,
    /// The most messages kept: [`KEEP`], raised by each older page the person loads.
    cap: StoredValue<usize>,
    /// Whether new messages wait to be drawn (all that arrive in one go, at once).
    drawing: StoredValue<bool>,
    /// Wakes the task that fills the list: the lead changed, or the log was replaced.
    wake: StoredValue<UnboundedSender<()>>,
    woken: StoredValue<Option<UnboundedReceiver<()>>, LocalStorage>,
}

/// Why a watch ended.
enum Ended {
    /// It broke; why, for a person.
    Broke(String),
    /// This tab no longer leads, or the list must be loaded again.
    Woken,
}

impl LiveList {
    /// An empty list; [`LiveList::start`] fills it.
    pub(crate) fn new() -> Self {
        let (wake, woken) = unbounded();
        Self {
            wake: StoredValue::new(wake),
            woken: StoredValue::new_local(Some(woken)),
            messages: RwSignal::new(Vec::new()),
            blocks: RwSignal::new(Vec::new()),
            pending: StoredValue::new(Vec::new()),
            older: RwSignal::new(None),
            loading_older: RwSignal::new(false),
            older_error: RwSignal::new(None),
            feed: RwSignal::new(Feed::Connecting),
            loaded: RwSignal::new(false),
            arrived: RwSignal::new(0),
            trimmed: RwSignal::new(false),
            cap: StoredValue::new(KEEP),
            drawing: StoredValue::new(false),
        }
    }

    /// Loads the newest page, then follows the watch while this tab leads (and the relay
    /// while another does) for as long as the page is open.
    pub(crate) fn start(self, tabs: Tabs) {
        let Some(woken) = self.woken.try_update_value(Option::take).flatten() else {
            return;
        };
        leptos::task::spawn_local(async move { self.run(tabs, woken).await });
    }

    /// Wakes the task: the lead changed.
    pub(crate) fn wake(self) {
        self.wake.with_value(|wake| {
            let _ = wake.unbounded_send(());
        });
    }

    /// The log was replaced (a store started afresh): what is shown belongs to the old one.
    /// Loads the new one's newest page.
    pub(crate) fn reset(self) {
        self.loaded.set(false);
        self.wake();
    }

    async fn run(self, tabs: Tabs, mut woken: UnboundedReceiver<()>) {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            if !online() {
                // Nothing to open until the browser is back online (its `online` event wakes
                // this task).
                self.feed.set(Feed::Offline);
                let _ = woken.next().await;
                continue;
            }
            let broke = if !self.loaded.get_untracked() {
                match self.load_newest().await {
                    Ok(()) => {
                        // The leader answers with the feed's state as it sees it.
                        if !tabs.leads() {
                            tabs.send(&Relay::Hello);
                        }
                        continue;
                    }
                    Err(reason) => reason,
                }
            } else if tabs.leads() {
                match self.follow(&mut backoff, tabs, &mut woken).await {
                    Ended::Woken => continue,
                    Ended::Broke(reason) => reason,
                }
            } else {
                // Another tab leads: its relay fills the list, until this tab leads or the
                // list must be loaded again.
                let _ = woken.next().await;
                continue;
            };
            self.feed.set(Feed::Reconnecting(broke));
            // Woken (back online, the lead changed), the wait ends at once.
            let pause = std::pin::pin!(gloo_timers::future::sleep(backoff.failed()));
            select(pause, woken.next()).await;
        }
    }

    /// The newest page, shown in place of anything shown before.
    async fn load_newest(&self) -> Result<(), String> {
        let page = api::list(ListRequest {
            cursor: 0,
            limit: PAGE,
            direction: Direction::Backward.into(),
        })
        .await
        .map_err(|error| error.message)?;
        self.older.set(page.next_cursor);
        self.messages
            .update(|messages| *messages = with_newest(std::mem::take(messages), page.messages));
        self.pending.set_value(Vec::new());
        self.blocks
            .set(vec![Block::new(self.messages.get_untracked())]);
        self.loaded.set(true);
        Ok(())
    }

    /// Watches from the last seq shown, relaying to the other tabs, until the stream breaks
    /// or the task is woken (this tab no longer leads, or the list must be loaded again).
    async fn follow(
        &self,
        backoff: &mut Backoff,
        tabs: Tabs,
        woken: &mut UnboundedReceiver<()>,
    ) -> Ended {
        let after_seq = self
            .messages
            .with_untracked(|messages| resume_after(messages));
        let mut stream = match api::watch(WatchRequest { after_seq }).await {
            Ok(stream) => stream,
            Err(error) => return Ended::Broke(error.message),
        };
        loop {
            let next = std::pin::pin!(stream.message());
            let silence = std::pin::pin!(gloo_timers::future::sleep(SILENCE));
            let event = match select(select(next, silence), woken.next()).await {
                Either::Left((Either::Left((Ok(Some(event)), _)), _)) => event,
                Either::Left((Either::Left((Ok(None), _)), _)) => {
                    return Ended::Broke("the live feed ended".to_owned());
                }
                Either::Left((Either::Left((Err(error), _)), _)) => {
                    if error.code == "ABORTED" {
                        // The log was replaced: every tab loads the new one's newest page.
                        self.loaded.set(false);
                        tabs.send(&Relay::Reset);
                    }
                    return Ended::Broke(error.message);
                }
                Either::Left((Either::Right(_), _)) => {
                    return Ended::Broke("the live feed went silent".to_owned());
                }
                Either::Right(_) => {
                    if tabs.leads() && self.loaded.get_untracked() && online() {
                        continue;
                    }
                    return Ended::Woken;
                }
            };
            backoff.succeeded();
            match event.event {
                Some(Event::Message(message)) => {
                    tabs.send(&Relay::Message(message.clone()));
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
    pub(crate) fn mark_live(&self) {
        if self.feed.with_untracked(|feed| {
            matches!(
                feed,
                Feed::Connecting | Feed::Reconnecting(_) | Feed::Offline
            )
        }) {
            self.feed.set(Feed::Live);
        }
    }

    /// Adds a new message at the end, once, keeping at most [`KEEP`] on screen.
    /// What arrives in one go (before the page's next task) is drawn as one block.
    pub(crate) fn append(&self, message: StoredMessage) {
        let cap = self.cap.get_value();
        let Appended { added, trimmed_to } = self
            .messages
            .try_update_untracked(|messages| append_to(messages, message.clone(), cap))
            .unwrap_or(Appended {
                added: false,
                trimmed_to: None,
            });
        if added {
            self.pending.update_value(|pending| pending.push(message));
            self.arrived.update(|count| *count += 1);
            if !self.drawing.get_value() {
                self.drawing.set_value(true);
                let list = *self;
                leptos::task::spawn_local(async move { list.draw() });
            }
        }
        if let Some(first_kept) = trimmed_to {
            self.older.set(Some(first_kept));
            self.trimmed.set(true);
        }
    }

    /// Draws what arrived since the last drawing, as one block at the top.
    fn draw(self) {
        self.drawing.set_value(false);
        let arrived = self
            .pending
            .try_update_value(std::mem::take)
            .unwrap_or_default();
        if arrived.is_empty() {
            return;
        }
        let total = self.messages.with_untracked(Vec::len);
        self.blocks.update(|blocks| {
            blocks.insert(0, Block::new(arrived));
            Block::keep(blocks, total);
        });
        self.messages.notify();
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
            let page = api::list(ListRequest {
                cursor,
                limit: PAGE,
                direction: Direction::Backward.into(),
            })
            .await;
            match page {
                Ok(page) => {
                    let mut drawn = Vec::new();
                    self.messages.update(|messages| {
                        drawn = prepend_older(messages, page.messages);
                        // What the person loaded stays, with room for as many new ones.
                        self.cap
                            .set_value(self.cap.get_value().max(messages.len() + KEEP));
                    });
                    if !drawn.is_empty() {
                        self.blocks.update(|blocks| blocks.push(Block::new(drawn)));
                    }
                    self.older.set(page.next_cursor);
                    self.older_error.set(None);
                    if page.next_cursor.is_none() {
                        self.trimmed.set(false);
                    }
                }
                Err(error) => self.older_error.set(Some(error.message)),
            }
            self.loading_older.set(false);
        });
    }
}

/// What adding a message to the list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Appended {
    /// It was added (it was newer than every message shown).
    added: bool,
    /// The oldest seq kept, when older messages were put away to keep the cap.
    trimmed_to: Option<u64>,
}

/// Adds `message` after `messages` (in seq order) unless it is not newer than the last one (a
/// message shown already, or an old one: never twice, never out of order), keeping at most
/// `cap`, the oldest put away.
fn append_to(messages: &mut Vec<StoredMessage>, message: StoredMessage, cap: usize) -> Appended {
    if messages.last().is_some_and(|last| last.seq >= message.seq) {
        return Appended {
            added: false,
            trimmed_to: None,
        };
    }
    messages.push(message);
    let mut trimmed_to = None;
    if messages.len() > cap {
        messages.drain(..messages.len() - cap);
        trimmed_to = messages.first().map(|first| first.seq);
    }
    Appended {
        added: true,
        trimmed_to,
    }
}

/// Where a watch (re)starts: after the newest message shown, so nothing is missed or doubled.
fn resume_after(messages: &[StoredMessage]) -> u64 {
    messages.last().map_or(0, |m| m.seq)
}

/// The newest page in place of what was shown, followed by what arrived while it loaded (the
/// relay's messages) when newer than the page.
fn with_newest(shown: Vec<StoredMessage>, page: Vec<StoredMessage>) -> Vec<StoredMessage> {
    let last = page.last().map_or(0, |m| m.seq);
    let mut messages = page;
    messages.extend(shown.into_iter().filter(|m| m.seq > last));
    messages
}

/// An older page put before the messages shown: only what is older than the first of them
/// (never twice). Returns what was put.
fn prepend_older(
    messages: &mut Vec<StoredMessage>,
    page: Vec<StoredMessage>,
) -> Vec<StoredMessage> {
    let first = messages.first().map_or(u64::MAX, |m| m.seq);
    let older: Vec<_> = page.into_iter().filter(|m| m.seq < first).collect();
    messages.splice(0..0, older.iter().cloned());
    older
}

/// Whether the browser says it has a network (`navigator.onLine`).
fn online() -> bool {
    window().navigator().on_line()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(seqs: std::ops::RangeInclusive<u64>) -> Vec<StoredMessage> {
        seqs.map(|seq| StoredMessage {
            seq,
            text: format!("m{seq}"),
            ..StoredMessage::default()
        })
        .collect()
    }

    fn seqs(blocks: &[Block]) -> Vec<u64> {
        blocks
            .iter()
            .flat_map(|block| block.messages.iter().map(|m| m.seq))
            .collect()
    }

    fn seqs_of(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn a_message_is_appended_once_in_order_and_the_oldest_put_away_past_the_cap() {
        let mut shown = messages(1..=3);
        let added = append_to(&mut shown, messages(4..=4).remove(0), 10);
        assert_eq!(
            added,
            Appended {
                added: true,
                trimmed_to: None
            }
        );
        // The same message again (the relay and the watch both bring it), or an older one: not
        // added, nothing moves.
        for seq in [4, 2] {
            let again = append_to(&mut shown, messages(seq..=seq).remove(0), 10);
            assert_eq!(
                again,
                Appended {
                    added: false,
                    trimmed_to: None
                }
            );
        }
        assert_eq!(seqs_of(&shown), [1, 2, 3, 4]);
        // A gap is kept as a gap (the watch resumes from the last seq; a seq never comes twice).
        append_to(&mut shown, messages(7..=7).remove(0), 10);
        assert_eq!(seqs_of(&shown), [1, 2, 3, 4, 7]);
        // Past the cap, the oldest go, and the list says where it now starts.
        let added = append_to(&mut shown, messages(8..=8).remove(0), 3);
        assert_eq!(
            added,
            Appended {
                added: true,
                trimmed_to: Some(4)
            }
        );
        assert_eq!(seqs_of(&shown), [4, 7, 8]);
    }

    #[test]
    fn a_watch_resumes_after_the_newest_message_shown() {
        assert_eq!(resume_after(&[]), 0, "an empty list: from the first");
        assert_eq!(resume_after(&messages(3..=9)), 9);
    }

    #[test]
    fn the_newest_page_keeps_what_arrived_meanwhile_once() {
        // While the page loaded, the relay brought 9 and 10; the page ends at 9.
        let merged = with_newest(messages(9..=10), messages(5..=9));
        assert_eq!(seqs_of(&merged), [5, 6, 7, 8, 9, 10]);
        // Nothing newer arrived: the page alone.
        assert_eq!(
            seqs_of(&with_newest(messages(1..=3), messages(4..=6))),
            [4, 5, 6]
        );
        // An empty log: what arrived stays.
        assert_eq!(seqs_of(&with_newest(messages(1..=2), vec![])), [1, 2]);
    }

    #[test]
    fn an_older_page_adds_only_what_is_older_than_what_is_shown() {
        let mut shown = messages(6..=8);
        // The page overlaps what is shown (a message arrived between the two reads).
        let put = prepend_older(&mut shown, messages(3..=6));
        assert_eq!(seqs_of(&put), [3, 4, 5]);
        assert_eq!(seqs_of(&shown), [3, 4, 5, 6, 7, 8]);
        assert!(
            prepend_older(&mut shown, messages(4..=5)).is_empty(),
            "never twice"
        );
    }

    #[test]
    fn blocks_hold_the_newest_first_and_are_cut_from_the_oldest_end() {
        // The first page, then two arrivals, newest first.
        let mut blocks = vec![Block::new(messages(1..=5))];
        blocks.insert(0, Block::new(messages(6..=7)));
        blocks.insert(0, Block::new(messages(8..=8)));
        assert_eq!(seqs(&blocks), [8, 7, 6, 5, 4, 3, 2, 1]);
        let keys: Vec<_> = blocks.iter().map(|block| block.key).collect();
        assert_eq!(keys, [(8, 1), (7, 2), (5, 5)]);
        // Cut to 6: the oldest block is cut short (a new key: it is drawn anew), the rest kept.
        Block::keep(&mut blocks, 6);
        assert_eq!(seqs(&blocks), [8, 7, 6, 5, 4, 3]);
        assert_eq!(blocks[2].key, (5, 3));
        // Cut to 2: whole blocks go.
        Block::keep(&mut blocks, 2);
        assert_eq!(seqs(&blocks), [8, 7]);
        assert_eq!(blocks.len(), 2);
        Block::keep(&mut blocks, 0);
        assert!(blocks.is_empty());
    }
}
