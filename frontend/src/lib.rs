//! The browser page of msglog: post a message, see the logged list live and the messages
//! service's text, and see at a glance which services are up.
//!
//! Client-side rendered (Leptos's signals and effects keep each part of the page up to date,
//! the parts drawn by hand: see `dom`) and built by Trunk (`trunk build --release` from the
//! project's top level, or `trunk serve` for a live-reloading page that proxies the facade's
//! gRPC-web path). The facade serves the built page and the API it calls, over gRPC-web to the
//! same origin (`msglog.v1.MessageLog`): `List` for pages, `Watch` for new messages as they
//! are stored, `Send`, and `Status`. One protocol for everything keeps the page small: it
//! carries no JSON code.
//!
//! # Layout
//!
//! - `api`: the facade's four calls, and the notice of a call left waiting; `grpc_web`: the
//!   transport they go over (on the browser's `fetch`); `error`: why a call failed, for a
//!   person; `backoff`: the waits between tries;
//! - `live`: the live list over gRPC-web (`List` and `Watch`);
//! - `tabs`: one live feed per browser: the tab that leads watches and relays to the others;
//! - `outbox`: every message sent, kept in the browser's storage until it is stored, sent in
//!   order with its idempotency key;
//! - `status_strip`, `send_form`, `message_list`, `pending`: one part of the page per file,
//!   drawn with `dom`;
//! - [`page`] (here): composes them.

mod api;
mod backoff;
mod dom;
mod error;
mod grpc_web;
mod live;
mod message_list;
mod outbox;
mod pending;
mod send_form;
mod status_strip;
mod tabs;

use std::time::Duration;

use leptos::prelude::*;

use crate::{
    dom::{Slot, h},
    live::LiveList,
    message_list::message_list,
    outbox::Outbox,
    pending::pending,
    send_form::send_form,
    status_strip::{status_strip, trouble_banner},
    tabs::{Relay, Tabs},
};

/// How often the status strip checks the services by itself (in the tab that leads, which
/// shares the answer). Any tab also checks after each of its sends and whenever the live feed
/// changes state.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Draws the whole page into `page` (the document's body), its parts kept up to date for as
/// long as the current reactive owner lives (see `main`).
pub fn page(page: &web_sys::Element) {
    let list = LiveList::new();
    // The last status check's answer (`None` until the first one). A signal filled by hand
    // rather than a `LocalResource`: it has two writers, this tab's own checks and the answers
    // the leading tab relays, and a resource has only its fetcher.
    let status = RwSignal::new(None);
    let tabs = Tabs::start(move |tabs, relay| match relay {
        Relay::Message(message) => {
            list.append(message);
            list.mark_live();
        }
        Relay::Feed(feed) => list.feed.set(feed),
        Relay::Reset => list.reset(),
        Relay::Status(answer) => status.set(Some(Ok(answer))),
        Relay::Hello if tabs.leads() => {
            tabs.send(&Relay::Feed(list.feed.get_untracked()));
            if let Some(Ok(answer)) = status.get_untracked() {
                tabs.send(&Relay::Status(answer));
            }
        }
        _ => {}
    });
    list.start(tabs);
    // The leader tells the other tabs of every change of the feed's state.
    Effect::new(move |_| {
        let feed = list.feed.get();
        if tabs.leads() {
            tabs.send(&Relay::Feed(feed));
        }
    });
    let outbox = Outbox::start(tabs.id, tabs.leading.into());
    // The lead changed: the list's task starts or stops its watch, and a new leader looks
    // for messages nobody sends.
    Effect::new(move |_| {
        tabs.leading.track();
        list.wake();
        outbox.wake();
    });
    // The browser going offline: the list stops watching at once (a stream may linger without
    // a network). Back online: the list resumes and the outbox sends, without waiting for
    // their back-off.
    for event in ["online", "offline"] {
        let _ = window_event_listener_untyped(event, move |_| {
            list.wake();
            outbox.wake();
        });
    }
    // A refused message's text, taken out of the outbox to be edited in the box.
    let editing = RwSignal::new(None::<String>);

    let (tick, set_tick) = signal(0_u64);
    let refresh = move || set_tick.update(|tick| *tick += 1);
    let periodic = move || {
        if tabs.leads() {
            refresh();
        }
    };
    if let Err(error) = set_interval_with_handle(periodic, STATUS_EVERY) {
        crate::error::console_error("cannot start the status timer:", &error);
    }
    // A break or a return of the feed is news about the services: check them now. A return
    // means the facade and logging answer again: send the outbox without waiting.
    Effect::new(move |previous: Option<bool>| {
        let live = list.feed.with(|feed| *feed == live::Feed::Live);
        if previous.is_some_and(|was| was != live) {
            if tabs.leads() {
                refresh();
            }
            if live {
                outbox.wake();
            }
        }
        live
    });
    // After each send, stored or not, the counts and the services may have changed.
    Effect::new(move |_| {
        if outbox.last.with(Option::is_some) {
            refresh();
        }
    });
    // Each answer goes to the other tabs too.
    Effect::new(move |_| {
        tick.track();
        leptos::task::spawn_local(async move {
            let answer = api::status().await;
            if let Ok(answer) = &answer {
                tabs.send(&Relay::Status(answer.clone()));
            }
            status.set(Some(answer));
        });
    });
    let limit = Signal::derive(move || match status.get() {
        Some(Ok(status)) if status.max_message_bytes > 0 => Some(status.max_message_bytes),
        _ => None,
    });
    let live = Signal::derive(move || list.feed.with(|feed| *feed == live::Feed::Live));
    let from_service = Signal::derive(move || match status.get() {
        Some(Ok(status)) => status
            .messages
            .filter(|messages| messages.up)
            .map(|messages| messages.detail),
        _ => None,
    });

    let header = h("header")
        .class("top")
        .child(&h("h1").text("msglog").el())
        .child(&status_strip(status));
    // Which tab holds the live feed, for whoever inspects the page.
    let content = h("main")
        .class("content")
        .attr("data-sharing", tabs.sharing.name())
        .el();
    {
        let content = content.clone();
        Effect::new(move |_| {
            let holds = if tabs.leading.get() {
                "leads"
            } else {
                "follows"
            };
            let _ = content.set_attribute("data-tab", holds);
        });
    }
    let waiting = h("p")
        .class("waiting")
        .attr("role", "status")
        .text(
            "Still waiting for the server to answer. If many tabs of this site are open, the \
             browser may be holding this tab's requests back: closing some can help.",
        )
        .el();
    let waiting_slot = Slot::new(&content);
    Effect::new(move |_| waiting_slot.show(&waiting, api::waiting().get() > 0));
    trouble_banner(&content, status);
    let _ = content.append_child(&send_form(outbox, editing, limit, live));
    let messages = message_list(list, from_service, |card| pending(card, outbox, editing));
    let _ = content.append_child(&messages);
    let _ = page.append_child(&header.el());
    let _ = page.append_child(&content);
}
