//! One live feed per browser, not per tab.
//!
//! A browser opens at most six HTTP/1.1 connections to a site, shared by all its tabs, and a
//! live feed holds one for as long as it is open: with a feed per tab, the sixth tab's sends
//! would queue and the seventh tab would never load. So the tabs of the page share one feed:
//! one tab (the leader) holds the only `Watch` and relays what it gets to the others over a
//! `BroadcastChannel` (each new message, the feed's state, a log replaced, its status checks).
//! The others load their first page with `List`, then follow the relay. (Over HTTPS with
//! HTTP/2 every tab shares one connection and the limit is gone; the relay still saves the
//! facade a stream per tab.)
//!
//! Who leads:
//! - with the Web Locks API (a secure context: `https://`, or `http://localhost`): the tab
//!   that holds the lock; when it closes, crashes or is discarded, the browser hands the lock
//!   to another tab at once, which resumes the `Watch` from the newest seq it shows;
//! - without it (plain `http://` to another host, such as a LAN address): the tabs elect one
//!   over the channel. The leader says so every [`BEAT`]; a tab that has heard no leader for
//!   [`SILENCE`] claims the next term; of two claims the later term, then the larger id, wins.
//!   A leader that closes says so and another takes over at once; one that crashes is
//!   replaced after [`SILENCE`];
//! - without a `BroadcastChannel` (browsers from before 2022): each tab follows its own feed,
//!   but only while it is shown, so tabs in the background hold no connection; a tab shown
//!   again resumes from its last seq.

use std::{cell::Cell, rc::Rc, time::Duration};

use js_sys::{Function, Promise, Reflect, Uint8Array};
use leptos::prelude::*;
use msglog_proto::v1::{StatusResponse, StoredMessage};
use prost::Message as _;
use wasm_bindgen::{JsCast, JsValue, closure::Closure, prelude::wasm_bindgen};
use web_sys::{BroadcastChannel, MessageEvent};

/// The channel's and the lock's name.
const NAME: &str = "msglog.feed";
/// How often an elected leader says it leads.
const BEAT: Duration = Duration::from_secs(1);
/// How long without a word from a leader before a tab claims the lead (when electing).
const SILENCE: f64 = 4_000.0;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks` (web-sys has it only behind its unstable APIs).
    type LockManager;
    #[wasm_bindgen(method)]
    fn request(this: &LockManager, name: &str, callback: &Function) -> Promise;
}

/// Whether the list is up to date, as the tab that holds the feed sees it.
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
    /// The browser says it is offline: no stream is opened until it is back online.
    Offline,
}

/// What one tab tells the others.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Relay {
    /// A new message, from the leader's `Watch`.
    Message(StoredMessage),
    /// The feed's state changed.
    Feed(Feed),
    /// The log was replaced: load its newest page again.
    Reset,
    /// The answer to a status check.
    Status(StatusResponse),
    /// A tab has opened: the leader answers with the feed's state and the last status.
    Hello,
    /// An elected leader says it leads (`term`, its `id`).
    Lead { term: u64, id: u64 },
    /// An elected leader is closing.
    Quit { id: u64 },
}

impl Relay {
    /// One tag byte, then the payload (protobuf, as the page already speaks it).
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        match self {
            Self::Message(message) => {
                bytes.push(b'M');
                message.encode(&mut bytes).ok();
            }
            Self::Feed(feed) => {
                let (kind, detail) = match feed {
                    Feed::Connecting => (0, ""),
                    Feed::Live => (1, ""),
                    Feed::Reconnecting(why) => (2, why.as_str()),
                    Feed::Interrupted(why) => (3, why.as_str()),
                    Feed::Offline => (4, ""),
                };
                bytes.extend([b'F', kind]);
                bytes.extend_from_slice(detail.as_bytes());
            }
            Self::Reset => bytes.push(b'R'),
            Self::Status(status) => {
                bytes.push(b'S');
                status.encode(&mut bytes).ok();
            }
            Self::Hello => bytes.push(b'H'),
            Self::Lead { term, id } => {
                bytes.push(b'L');
                bytes.extend(term.to_le_bytes());
                bytes.extend(id.to_le_bytes());
            }
            Self::Quit { id } => {
                bytes.push(b'Q');
                bytes.extend(id.to_le_bytes());
            }
        }
        bytes
    }

    /// What [`Relay::encode`] made; `None` for anything else.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, body) = bytes.split_first()?;
        let number = |at: usize| Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?));
        Some(match tag {
            b'M' => Self::Message(StoredMessage::decode(body).ok()?),
            b'F' => {
                let (&kind, detail) = body.split_first()?;
                let detail = String::from_utf8(detail.to_vec()).ok()?;
                Self::Feed(match kind {
                    0 => Feed::Connecting,
                    1 => Feed::Live,
                    2 => Feed::Reconnecting(detail),
                    3 => Feed::Interrupted(detail),
                    4 => Feed::Offline,
                    _ => return None,
                })
            }
            b'R' => Self::Reset,
            b'S' => Self::Status(StatusResponse::decode(body).ok()?),
            b'H' => Self::Hello,
            b'L' => Self::Lead {
                term: number(0)?,
                id: number(8)?,
            },
            b'Q' => Self::Quit { id: number(0)? },
            _ => return None,
        })
    }
}

/// How the tabs share the feed (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// Web Locks: the tab holding the lock leads.
    Lock,
    /// No Web Locks: the tabs elect a leader over the channel.
    Election,
    /// No channel: each tab follows its own feed while it is shown.
    Alone,
}

impl Sharing {
    /// Its name, as the page shows it to whoever inspects it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Election => "election",
            Self::Alone => "alone",
        }
    }
}

/// This tab's part in sharing the feed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tabs {
    channel: StoredValue<Option<BroadcastChannel>, LocalStorage>,
    /// Whether this tab holds the feed (and makes the periodic status checks).
    pub(crate) leading: RwSignal<bool>,
    /// How the feed is shared here.
    pub(crate) sharing: Sharing,
    /// This tab's id: random, so no two tabs share one.
    pub(crate) id: u64,
}

/// An elected leader's term and id, as this tab knows them.
struct Election {
    /// This tab's id.
    id: u64,
    /// The newest term heard of.
    term: Cell<u64>,
    /// The leader of that term.
    leader: Cell<u64>,
    /// When the leader was last heard, in milliseconds of the browser's clock.
    heard: Cell<f64>,
}

impl Tabs {
    /// Joins the other tabs of the page: `on_relay` gets what they say (the election's own
    /// words excepted), and this tab takes the lead when it is its turn.
    pub(crate) fn start(on_relay: impl Fn(Self, Relay) + 'static) -> Self {
        let channel = BroadcastChannel::new(NAME).ok();
        let locks = Reflect::get(&window(), &JsValue::from_str("navigator"))
            .and_then(|navigator| Reflect::get(&navigator, &JsValue::from_str("locks")))
            .ok()
            .filter(|locks| locks.is_object())
            .map(JsCast::unchecked_into::<LockManager>);
        let sharing = match (&channel, &locks) {
            (Some(_), Some(_)) => Sharing::Lock,
            (Some(_), None) => Sharing::Election,
            (None, _) => Sharing::Alone,
        };
        let tabs = Self {
            channel: StoredValue::new_local(channel.clone()),
            leading: RwSignal::new(false),
            sharing,
            // Never 0, which means no tab.
            id: (u64::from(random_u32()) << 32 | u64::from(random_u32())).max(1),
        };
        let election = Rc::new(Election {
            id: tabs.id,
            term: Cell::new(0),
            leader: Cell::new(0),
            // Nobody heard yet (see `elect`).
            heard: Cell::new(f64::NEG_INFINITY),
        });
        if let Some(channel) = channel {
            let election = Rc::clone(&election);
            let listener = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
                let bytes = Uint8Array::new(&event.data()).to_vec();
                match Relay::decode(&bytes) {
                    Some(Relay::Lead { term, id }) => tabs.heard_lead(&election, term, id),
                    Some(Relay::Quit { id }) => tabs.heard_quit(&election, id),
                    Some(relay) => {
                        if matches!(relay, Relay::Hello)
                            && sharing == Sharing::Election
                            && tabs.leads()
                        {
                            tabs.send(&Relay::Lead {
                                term: election.term.get(),
                                id: election.id,
                            });
                        }
                        on_relay(tabs, relay);
                    }
                    None => {}
                }
            });
            channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
            // Listens for as long as the page is open.
            listener.forget();
        }
        match (sharing, locks) {
            (Sharing::Lock, Some(locks)) => {
                let granted = Closure::once_into_js(move |_lock: JsValue| -> JsValue {
                    tabs.leading.set(true);
                    // The lock is held until this promise settles: never, while the tab lives.
                    Promise::new(&mut |_, _| {}).into()
                });
                let _ = locks.request(NAME, granted.unchecked_ref());
            }
            (Sharing::Election, _) => tabs.elect(election),
            _ => tabs.follow_visibility(),
        }
        tabs.send(&Relay::Hello);
        tabs
    }

    /// Whether this tab leads now.
    pub(crate) fn leads(self) -> bool {
        self.leading.get_untracked()
    }

    /// Tells the other tabs (none when there is no channel).
    pub(crate) fn send(self, relay: &Relay) {
        self.channel.with_value(|channel| {
            if let Some(channel) = channel {
                let bytes = Uint8Array::from(relay.encode().as_slice());
                let _ = channel.post_message(&bytes);
            }
        });
    }

    /// Electing: says it leads every beat, or claims the lead after a silence; says it quits
    /// when the page goes away.
    fn elect(self, election: Rc<Election>) {
        // A leader answers this tab's hello at once: claim unless one has in half a second.
        self.claim_unless_heard(Rc::clone(&election), Duration::from_millis(500));
        let beat = Rc::clone(&election);
        let ticking = set_interval_with_handle(
            move || {
                if self.leads() {
                    self.send(&Relay::Lead {
                        term: beat.term.get(),
                        id: beat.id,
                    });
                } else if js_sys::Date::now() - beat.heard.get() > SILENCE {
                    self.claim(&beat);
                }
            },
            BEAT,
        );
        if let Err(error) = ticking {
            crate::error::console_error("cannot start the election's timer:", &error);
        }
        let _ = window_event_listener(leptos::ev::pagehide, move |_| {
            if self.leads() {
                self.send(&Relay::Quit { id: election.id });
            }
        });
    }

    fn claim(self, election: &Election) {
        election.term.set(election.term.get() + 1);
        election.leader.set(election.id);
        election.heard.set(js_sys::Date::now());
        self.leading.set(true);
        self.send(&Relay::Lead {
            term: election.term.get(),
            id: election.id,
        });
    }

    /// Another tab says it leads: the later term (then the larger id) wins; a tab that lost
    /// yields, and one that hears a stale claim answers with its own.
    fn heard_lead(self, election: &Election, term: u64, id: u64) {
        let known = (election.term.get(), election.leader.get());
        if (term, id) >= known {
            election.term.set(term);
            election.leader.set(id);
            election.heard.set(js_sys::Date::now());
            if id != election.id && self.leads() {
                self.leading.set(false);
            }
        } else if self.leads() {
            self.send(&Relay::Lead {
                term: known.0,
                id: election.id,
            });
        }
    }

    /// The leader is closing: claim soon, each tab after a random wait below half a second,
    /// so the first claim is usually the only one.
    fn heard_quit(self, election: &Rc<Election>, id: u64) {
        if id != election.leader.get() {
            return;
        }
        election.heard.set(f64::NEG_INFINITY);
        let wait = Duration::from_millis(u64::from(random_u32() % 500));
        self.claim_unless_heard(Rc::clone(election), wait);
    }

    /// Claims the lead `after` this, unless a leader has been heard meanwhile.
    fn claim_unless_heard(self, election: Rc<Election>, after: Duration) {
        set_timeout(
            move || {
                if !self.leads() && js_sys::Date::now() - election.heard.get() > SILENCE {
                    self.claim(&election);
                }
            },
            after,
        );
    }

    /// Alone: lead while shown.
    fn follow_visibility(self) {
        let shown = || !document().hidden();
        self.leading.set(shown());
        let changed = Closure::<dyn Fn()>::new(move || self.leading.set(shown()));
        let _ = document()
            .add_event_listener_with_callback("visibilitychange", changed.as_ref().unchecked_ref());
        changed.forget();
    }
}

/// A random number from the browser's generator.
fn random_u32() -> u32 {
    (js_sys::Math::random() * f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relay_reads_back_as_sent_and_nothing_else_reads() {
        let relays = [
            Relay::Message(StoredMessage {
                seq: 7,
                id: "id".into(),
                text: "text ✓".into(),
                ..StoredMessage::default()
            }),
            Relay::Feed(Feed::Connecting),
            Relay::Feed(Feed::Live),
            Relay::Feed(Feed::Reconnecting("why".into())),
            Relay::Feed(Feed::Interrupted("logging is down".into())),
            Relay::Feed(Feed::Offline),
            Relay::Reset,
            Relay::Status(StatusResponse::default()),
            Relay::Hello,
            Relay::Lead {
                term: 3,
                id: u64::MAX,
            },
            Relay::Quit { id: 1 << 40 },
        ];
        for relay in relays {
            assert_eq!(Relay::decode(&relay.encode()), Some(relay));
        }
        for noise in [&b""[..], b"X", b"F\x09", b"L\x01\x02", b"Q", b"M\xff"] {
            assert_eq!(Relay::decode(noise), None, "{noise:?}");
        }
    }
}

/// Two tabs of one browser (two `Tabs` in one page, which a `BroadcastChannel` and Web Locks
/// treat as two), in headless Chromium (`wasm-bindgen-test`).
#[cfg(all(test, target_arch = "wasm32"))]
// Tests: a failed expectation is the failure (clippy knows `#[test]`s, not these).
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod browser {
    use std::{cell::RefCell, rc::Rc, time::Duration};

    use msglog_proto::v1::StoredMessage;
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    /// Waits until `done` holds (checked every 10 ms), failing after 5 s.
    async fn until(what: &str, done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            gloo_timers::future::sleep(Duration::from_millis(10)).await;
        }
        panic!("not within 5 s: {what}");
    }

    #[wasm_bindgen_test]
    async fn one_tab_leads_and_each_hears_what_the_other_relays() {
        let owner = Owner::new();
        owner.set();
        let heard_by_a = Rc::new(RefCell::new(Vec::new()));
        let heard_by_b = Rc::new(RefCell::new(Vec::new()));
        let a = {
            let heard = Rc::clone(&heard_by_a);
            Tabs::start(move |_, relay| heard.borrow_mut().push(relay))
        };
        let b = {
            let heard = Rc::clone(&heard_by_b);
            Tabs::start(move |_, relay| heard.borrow_mut().push(relay))
        };
        until("a tab leads", || a.leads() || b.leads()).await;
        assert!(a.leads() != b.leads(), "one leads, not both");
        let message = StoredMessage {
            seq: 7,
            id: "id-7".into(),
            text: "from the leader".into(),
            stored_at_ms: 1,
        };
        let (leader, heard_by_other) = if a.leads() {
            (a, &heard_by_b)
        } else {
            (b, &heard_by_a)
        };
        leader.send(&Relay::Message(message.clone()));
        until("the other tab hears the message", || {
            heard_by_other
                .borrow()
                .contains(&Relay::Message(message.clone()))
        })
        .await;
        // A tab does not hear itself.
        let heard_by_leader = if a.leads() { &heard_by_a } else { &heard_by_b };
        assert!(
            !heard_by_leader
                .borrow()
                .contains(&Relay::Message(message.clone()))
        );
    }
}
