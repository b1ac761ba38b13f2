//! The outbox: every message the person sends goes here first, kept in the browser's storage
//! (`localStorage`), and leaves only once the facade has stored it. So nothing typed is lost
//! to a facade or a logging that is down, to a reload, or to the next message typed.
//!
//! Each message gets an idempotency key (a random UUID made here) when Send is pressed, and
//! every send of it carries that key, so however often it is sent (after a timeout whose
//! answer was lost, from two tabs at once) it is stored once. The outbox is sent in order,
//! oldest first: a message that cannot be stored now holds back those after it, and is sent
//! again with back-off, and at once when there is news that it may go through (the browser is
//! online again, the live feed is back, another message was sent). A message the facade
//! refuses (invalid, over the size limit) is not sent again: it stays, marked refused with the
//! reason, until the person edits or discards it.
//!
//! Tabs of the page share the storage. Every change re-reads it first and changes only the
//! entry it is about, so one tab never brings back what another removed, and each tab shows
//! the others' changes (the `storage` event). Each message is sent by the tab it was typed in
//! (its owner, written in the entry with each attempt), not by every tab that shows it. A tab
//! that closes hands its messages back; the tab that leads the live feed sends those, and any
//! whose owner has not tried for [`ABANDONED`] (a tab that crashed or was frozen). Should two
//! tabs still send one message, its key makes the second send a duplicate, not a second copy.

use std::time::Duration;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::{
    StreamExt as _,
    future::{Either, select},
};
use leptos::prelude::*;
use msglog_proto::v1::SendResponse;
use prost::Message as _;

use crate::{api, backoff::Backoff, error::ApiError};

/// Where the outbox is kept in `localStorage`.
const STORAGE_KEY: &str = "msglog.outbox.v1";
/// A send not answered within this is taken as failed (and sent again: its key makes that
/// safe).
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Back-off between sends of a message that failed: doubles from the first to the last.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// A message whose owner has not tried it for this long (longer than any send and back-off)
/// is taken over by the tab that leads.
const ABANDONED: Duration = Duration::from_secs(60);
/// While other tabs' messages wait, how often the tab that leads looks for abandoned ones.
const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// One message waiting to be stored, as kept in storage (protobuf, written in hex: the page
/// already speaks protobuf, and carries no JSON code).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Entry {
    /// Its idempotency key: a UUID made when Send was pressed.
    #[prost(string, tag = "1")]
    pub(crate) key: String,
    /// The text, exactly as typed.
    #[prost(string, tag = "2")]
    pub(crate) text: String,
    /// When Send was pressed, in milliseconds since the epoch.
    #[prost(uint64, tag = "3")]
    pub(crate) created_ms: u64,
    /// Sends that failed or were refused.
    #[prost(uint32, tag = "4")]
    pub(crate) attempts: u32,
    /// Why the last send failed (empty before the first failure).
    #[prost(string, tag = "5")]
    pub(crate) last_error: String,
    /// The last failure's code (`UNAVAILABLE`, `NETWORK`, `INVALID_ARGUMENT`...).
    #[prost(string, tag = "6")]
    pub(crate) last_code: String,
    /// The facade refused it: it is not sent again.
    #[prost(bool, tag = "7")]
    pub(crate) refused: bool,
    /// The tab that sends it (its id, see [`crate::tabs`]); 0 when none does.
    #[prost(uint64, tag = "8")]
    pub(crate) owner: u64,
    /// When its owner last began to send it, in milliseconds since the epoch.
    #[prost(uint64, tag = "9")]
    pub(crate) tried_ms: u64,
}

impl Entry {
    /// A send that failed: one more attempt, why, and whether the facade refused it (then it is
    /// not sent again). The key stays: a resend is the same message, stored once.
    fn failed(&mut self, error: &ApiError) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_error.clone_from(&error.message);
        self.last_code = error.code.to_owned();
        self.refused = error.refused;
    }

    /// Whether the tab `tab` sends it now: its own, or (when that tab leads) one nobody sends
    /// or whose owner has not tried it for [`ABANDONED`].
    fn sent_by(&self, tab: u64, leads: bool, now_ms: u64) -> bool {
        let abandoned = now_ms.saturating_sub(self.tried_ms) > ABANDONED.as_millis() as u64;
        !self.refused && (self.owner == tab || leads && (self.owner == 0 || abandoned))
    }
}

/// The outbox as kept in storage.
#[derive(Clone, PartialEq, prost::Message)]
struct Stored {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<Entry>,
}

/// What became of the last send, for the form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sent {
    /// Stored, or found already stored.
    Stored(SendResponse),
    /// Not stored yet: it waits in the outbox.
    Failed(ApiError),
    /// Refused: it waits in the outbox for the person to edit or discard it.
    Refused(ApiError),
}

/// The outbox's state, shared by the views and the task that sends it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outbox {
    /// Every message not yet stored, oldest first.
    pub(crate) entries: RwSignal<Vec<Entry>>,
    /// The key of the message being sent now.
    pub(crate) sending: RwSignal<Option<String>>,
    /// What became of the last send.
    pub(crate) last: RwSignal<Option<Sent>>,
    /// Wakes the sending task.
    wake: StoredValue<UnboundedSender<()>>,
    /// This tab's id.
    tab: u64,
    /// Whether this tab leads (and so sends the messages nobody else does).
    leading: Signal<bool>,
    /// The page is going away (it handed its messages back): it takes none again.
    closing: StoredValue<bool>,
}

impl Outbox {
    /// The outbox as storage holds it, and the task that sends this tab's part of it (tab
    /// `tab`, leading when `leading` says).
    pub(crate) fn start(tab: u64, leading: Signal<bool>) -> Self {
        let (wake, woken) = unbounded();
        let outbox = Self {
            entries: RwSignal::new(load()),
            sending: RwSignal::new(None),
            last: RwSignal::new(None),
            wake: StoredValue::new(wake),
            tab,
            leading,
            closing: StoredValue::new(false),
        };
        leptos::task::spawn_local(outbox.run(woken));
        // Another tab changed the outbox: show it, and send what it added.
        let _ = window_event_listener(leptos::ev::storage, move |event| {
            if event.key().as_deref() == Some(STORAGE_KEY) {
                outbox.entries.set(load());
                outbox.wake();
            }
        });
        // Back online: try at once rather than at the end of the back-off.
        let _ = window_event_listener(leptos::ev::online, move |_| outbox.wake());
        // Closing: this tab's messages go back to whoever leads, and it takes none again (a
        // send it had begun may still finish: its key makes that safe).
        let _ = window_event_listener(leptos::ev::pagehide, move |_| {
            outbox.closing.set_value(true);
            outbox.change(|entries| {
                for entry in entries.iter_mut().filter(|entry| entry.owner == tab) {
                    entry.owner = 0;
                }
            });
        });
        // Back from the browser's page cache: this tab sends again.
        let _ = window_event_listener(leptos::ev::pageshow, move |event| {
            if event.persisted() {
                outbox.closing.set_value(false);
                outbox.wake();
            }
        });
        outbox
    }

    /// Puts a message in the outbox under a new key, and sends it as soon as those before it
    /// have gone.
    pub(crate) fn push(self, text: String) {
        let now = js_sys::Date::now() as u64;
        let entry = Entry {
            key: new_key(),
            text,
            created_ms: now,
            owner: self.tab,
            tried_ms: now,
            ..Entry::default()
        };
        self.change(|entries| entries.push(entry));
        self.wake();
    }

    /// Drops a message: it is never sent (again).
    pub(crate) fn discard(self, key: &str) {
        self.change(|entries| entries.retain(|entry| entry.key != key));
    }

    /// Takes a refused message out to be edited: its text, and it leaves the outbox.
    pub(crate) fn take(self, key: &str) -> Option<String> {
        let mut text = None;
        self.change(|entries| {
            if let Some(at) = entries.iter().position(|entry| entry.key == key) {
                text = Some(entries.remove(at).text);
            }
        });
        text
    }

    /// There may be news that a send would go through now: try without waiting.
    pub(crate) fn wake(self) {
        self.wake.with_value(|wake| {
            let _ = wake.unbounded_send(());
        });
    }

    /// Applies `change` to the outbox as storage holds it now (another tab may have changed
    /// it), keeps the result, and shows it.
    fn change(self, change: impl FnOnce(&mut Vec<Entry>)) {
        let kept = storage().is_some().then(load);
        let entries = changed(kept, self.entries.get_untracked(), change);
        save(&entries);
        self.entries.set(entries);
    }

    /// Changes the entry with this key, if it is still there.
    fn update(self, key: &str, change: impl FnOnce(&mut Entry)) {
        self.change(|entries| {
            if let Some(entry) = entries.iter_mut().find(|entry| entry.key == key) {
                change(entry);
            }
        });
    }

    /// Sends the outbox, oldest first, for as long as the page is open.
    async fn run(self, mut woken: UnboundedReceiver<()>) {
        let mut backoff = Backoff::new(RETRY_FIRST, RETRY_MAX);
        loop {
            let (now, leads) = (js_sys::Date::now() as u64, self.leading.get_untracked());
            let closing = self.closing.get_value();
            let (next, others) = self.entries.with_untracked(|entries| {
                let next = next_to_send(entries, self.tab, leads, now, closing);
                (next.cloned(), entries.iter().any(|entry| !entry.refused))
            });
            let Some(entry) = next else {
                // Nothing of this tab's to send: wait for something to be put in, or (leading,
                // while other tabs' messages wait) look again for abandoned ones.
                let news = if leads && others {
                    let timer = std::pin::pin!(gloo_timers::future::sleep(LOOK_AGAIN));
                    match select(timer, woken.next()).await {
                        Either::Left(_) => Some(()),
                        Either::Right((news, _)) => news,
                    }
                } else {
                    woken.next().await
                };
                if news.is_none() {
                    return;
                }
                continue;
            };
            // This tab sends it now: the others leave it alone.
            self.update(&entry.key, |entry| {
                entry.owner = self.tab;
                entry.tried_ms = js_sys::Date::now() as u64;
            });
            self.sending.set(Some(entry.key.clone()));
            let result = send(&entry).await;
            self.sending.set(None);
            match result {
                Ok(answer) => {
                    self.discard(&entry.key);
                    self.last.set(Some(Sent::Stored(answer)));
                    backoff.succeeded();
                }
                Err(error) => {
                    self.update(&entry.key, |entry| entry.failed(&error));
                    if error.refused {
                        self.last.set(Some(Sent::Refused(error)));
                        continue;
                    }
                    self.last.set(Some(Sent::Failed(error)));
                    // Wait, unless there is news first.
                    let timer = std::pin::pin!(gloo_timers::future::sleep(backoff.failed()));
                    match select(timer, woken.next()).await {
                        Either::Left(_) => {}
                        // News: one try now for however many came meanwhile.
                        Either::Right((Some(()), _)) => while woken.try_recv().is_ok() {},
                        Either::Right((None, _)) => return,
                    }
                }
            }
        }
    }
}

/// The entry tab `tab` sends next: the oldest it may send ([`Entry::sent_by`]), so messages go
/// in the order they were written; none while the tab is closing.
fn next_to_send(
    entries: &[Entry],
    tab: u64,
    leads: bool,
    now_ms: u64,
    closing: bool,
) -> Option<&Entry> {
    entries
        .iter()
        .find(|entry| !closing && entry.sent_by(tab, leads, now_ms))
}

/// The outbox after `change`, applied to what storage keeps now (`kept`: another tab may have
/// changed it since this one last read it) rather than to this tab's copy (`shown`), which is
/// used only without storage. So no tab's change undoes another's.
fn changed(
    kept: Option<Vec<Entry>>,
    shown: Vec<Entry>,
    change: impl FnOnce(&mut Vec<Entry>),
) -> Vec<Entry> {
    let mut entries = kept.unwrap_or(shown);
    change(&mut entries);
    entries
}

/// One send of an entry, with its key, given up after [`SEND_TIMEOUT`].
async fn send(entry: &Entry) -> Result<SendResponse, ApiError> {
    let sent = std::pin::pin!(api::send(entry.text.clone(), entry.key.clone()));
    let timer = std::pin::pin!(gloo_timers::future::sleep(SEND_TIMEOUT));
    match select(sent, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(ApiError::timed_out(SEND_TIMEOUT)),
    }
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The outbox in storage (empty when there is none, or it cannot be read).
fn load() -> Vec<Entry> {
    let Some(text) = storage().and_then(|storage| storage.get_item(STORAGE_KEY).ok().flatten())
    else {
        return Vec::new();
    };
    match from_hex(&text).map(|bytes| Stored::decode(bytes.as_slice())) {
        Some(Ok(stored)) => stored.entries,
        _ => {
            leptos::logging::error!("the outbox in storage cannot be read");
            Vec::new()
        }
    }
}

/// Keeps the outbox in storage; without storage (or room in it), it lives as long as the page.
fn save(entries: &[Entry]) {
    let Some(storage) = storage() else {
        return;
    };
    let result = if entries.is_empty() {
        storage.remove_item(STORAGE_KEY)
    } else {
        let stored = Stored {
            entries: entries.to_vec(),
        };
        storage.set_item(STORAGE_KEY, &to_hex(&stored.encode_to_vec()))
    };
    if let Err(error) = result {
        crate::error::console_error("cannot keep the outbox in storage:", &error);
    }
}

/// A random (version 4) UUID, from the browser's cryptographic random source, which unlike
/// `crypto.randomUUID` is there on plain-HTTP pages too.
fn new_key() -> String {
    let mut bytes = [0_u8; 16];
    let filled = window()
        .crypto()
        .and_then(|crypto| crypto.get_random_values_with_u8_array(&mut bytes));
    if filled.is_err() {
        // No crypto (very old browsers): the time and Math.random, still unique enough for
        // one person's messages.
        let now = js_sys::Date::now().to_bits().to_le_bytes();
        let random = js_sys::Math::random().to_bits().to_le_bytes();
        bytes[..8].copy_from_slice(&now);
        bytes[8..].copy_from_slice(&random);
    }
    format_uuid_v4(bytes)
}

/// Sets the version (4) and variant bits and writes the 8-4-4-4-12 form.
fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = to_hex(&bytes);
    [
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..],
    ]
    .join("-")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes as lowercase hex (a few lines where a base64 or hex crate would weigh more).
fn to_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}

/// Hex back to bytes; `None` when it is not hex.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| {
        HEX.iter()
            .position(|&h| h == c)
            .and_then(|d| u8::try_from(d).ok())
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
            _ => None,
        })
        .collect()
}

/// How long ago, for a person: `12 s`, `3 min`, `2 h`.
pub(crate) fn age(since_ms: u64, now_ms: u64) -> String {
    let seconds = now_ms.saturating_sub(since_ms) / 1000;
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: u64, tried_ms: u64, refused: bool) -> Entry {
        Entry {
            key: "k".into(),
            text: "t".into(),
            owner,
            tried_ms,
            refused,
            ..Entry::default()
        }
    }

    #[test]
    fn a_message_is_sent_by_its_own_tab_or_by_the_leader_once_nobody_else_does() {
        let now = 1_000_000;
        let fresh = now - 1_000;
        let stale = now - ABANDONED.as_millis() as u64 - 1;
        // Its own tab sends it, leading or not.
        assert!(entry(7, fresh, false).sent_by(7, false, now));
        // Another tab's, tried lately: only that tab sends it, even when this one leads.
        assert!(!entry(8, fresh, false).sent_by(7, true, now));
        // Handed back (owner 0), or abandoned: the leader takes it, no one else.
        assert!(entry(0, fresh, false).sent_by(7, true, now));
        assert!(!entry(0, fresh, false).sent_by(7, false, now));
        assert!(entry(8, stale, false).sent_by(7, true, now));
        assert!(!entry(8, stale, false).sent_by(7, false, now));
        // A refused message is sent by nobody.
        assert!(!entry(7, fresh, true).sent_by(7, true, now));
    }

    fn keyed(key: &str, owner: u64) -> Entry {
        Entry {
            key: key.into(),
            text: format!("text of {key}"),
            owner,
            tried_ms: 1_000_000,
            ..Entry::default()
        }
    }

    #[test]
    fn messages_go_in_the_order_they_were_written_and_a_refused_one_is_passed_over() {
        let now = 1_000_500;
        let mut entries = vec![keyed("a", 7), keyed("b", 7), keyed("c", 7)];
        let next =
            |entries: &[Entry]| next_to_send(entries, 7, false, now, false).map(|e| e.key.clone());
        assert_eq!(next(&entries).as_deref(), Some("a"));
        // "a" failed: it is still first (it is tried again before those after it).
        entries[0].failed(&ApiError::network());
        assert_eq!(next(&entries).as_deref(), Some("a"));
        // "a" refused: the next goes.
        entries[0].failed(&ApiError::new("INVALID_ARGUMENT", "too long".into()));
        assert_eq!(next(&entries).as_deref(), Some("b"));
        // A closing tab sends nothing.
        assert_eq!(next_to_send(&entries, 7, false, now, true), None);
    }

    #[test]
    fn a_failed_send_keeps_its_key_and_counts_and_a_refusal_is_kept_as_one() {
        let mut entry = keyed("k-1", 7);
        entry.failed(&ApiError::new("UNAVAILABLE", "logging is down".into()));
        entry.failed(&ApiError::timed_out(std::time::Duration::from_secs(15)));
        assert_eq!(
            entry.key, "k-1",
            "a resend carries the same key: the same message"
        );
        assert_eq!(entry.attempts, 2);
        assert_eq!(entry.last_code, "DEADLINE_EXCEEDED");
        assert!(!entry.refused, "it may go another time");
        entry.failed(&ApiError::new(
            "ALREADY_EXISTS",
            "key used for another text".into(),
        ));
        assert!(entry.refused);
        assert_eq!(entry.last_error, "key used for another text");
        assert_eq!((entry.key.as_str(), entry.attempts), ("k-1", 3));
    }

    #[test]
    fn a_change_applies_to_what_storage_keeps_so_no_tab_undoes_another() {
        // Tab 8 wrote "b" after tab 7 last read the outbox (its copy has only "a").
        let kept = vec![keyed("a", 7), keyed("b", 8)];
        let shown = vec![keyed("a", 7)];
        let after = changed(Some(kept), shown.clone(), |entries| {
            entries.push(keyed("c", 7))
        });
        let keys: Vec<_> = after.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["a", "b", "c"],
            "tab 8's message survives tab 7's change"
        );
        // Without storage, the tab's own copy is all there is.
        let alone = changed(None, shown, |entries| entries.retain(|e| e.key != "a"));
        assert!(alone.is_empty());
    }

    #[test]
    fn the_outbox_reads_back_as_kept() {
        let kept = Stored {
            entries: vec![entry(3, 9, false), entry(0, 0, true)],
        };
        let text = to_hex(&kept.encode_to_vec());
        let bytes = from_hex(&text).expect("hex");
        assert_eq!(Stored::decode(bytes.as_slice()).expect("decodes"), kept);
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None, "an odd length is not hex");
    }

    #[test]
    fn keys_are_version_4_uuids() {
        let key = format_uuid_v4([0xff; 16]);
        assert_eq!(key, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let key = format_uuid_v4([0; 16]);
        assert_eq!(key, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn ages_read_as_a_person_says_them() {
        assert_eq!(age(0, 12_000), "12 s");
        assert_eq!(age(0, 59_999), "59 s");
        assert_eq!(age(0, 60_000), "1 min");
        assert_eq!(age(0, 3_600_000), "1 h");
        assert_eq!(age(5_000, 1_000), "0 s", "a clock that went back");
    }
}

/// The outbox in a real browser's storage (headless Chromium, `wasm-bindgen-test`).
#[cfg(all(test, target_arch = "wasm32"))]
// Tests: a failed expectation is the failure (clippy knows `#[test]`s, not these).
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod browser {
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn the_outbox_lives_in_local_storage_and_a_damaged_copy_reads_as_empty() {
        let storage = storage().expect("a browser has localStorage");
        let entries = vec![
            Entry {
                key: new_key(),
                text: "first, with ünïcode and a newline\n".into(),
                created_ms: 1,
                ..Entry::default()
            },
            Entry {
                key: new_key(),
                text: "second".into(),
                attempts: 2,
                refused: true,
                ..Entry::default()
            },
        ];
        save(&entries);
        assert_eq!(load(), entries, "read back as kept, in order");
        assert_ne!(entries[0].key, entries[1].key, "each message its own key");
        // Emptied: nothing is left behind in storage.
        save(&[]);
        assert_eq!(storage.get_item(STORAGE_KEY).ok().flatten(), None);
        // Damaged by hand or by another version: read as empty, never a panic.
        storage.set_item(STORAGE_KEY, "not hex").expect("set");
        assert!(load().is_empty());
        storage.remove_item(STORAGE_KEY).expect("remove");
    }
}
