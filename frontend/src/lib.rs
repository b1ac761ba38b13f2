//! The browser page of msglog: post a message, see the logged list and the messages
//! service's text, and see at a glance which services are up.
//!
//! Client-side rendered with Leptos and built by Trunk (`trunk build --release` from the
//! project's top level, or `trunk serve` for a live-reloading page that proxies `/api/` to the
//! facade). The facade serves the built page and the JSON API it calls.

//!
//! # Layout
//!
//! - `api`: calls to the facade's JSON API (paths and shapes from `msglog_proto::api`);
//! - `status_strip`, `send_form`, `message_list`: one component per file;
//! - [`App`] (here): composes them and drives the refresh.

mod api;
mod message_list;
mod send_form;
mod status_strip;

use std::time::Duration;

use leptos::prelude::*;

use crate::{message_list::MessageList, send_form::SendForm, status_strip::StatusStrip};

/// How often the list and the status strip refresh by themselves.
const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    // Everything that shows the services' state refetches when `tick` moves: on a timer,
    // after each send, and on demand.
    let (tick, set_tick) = signal(0_u64);
    let refresh = move || set_tick.update(|tick| *tick += 1);
    if let Err(error) = set_interval_with_handle(refresh, REFRESH_EVERY) {
        leptos::logging::error!("cannot start the refresh timer: {error:?}");
    }
    let status = LocalResource::new(move || {
        tick.track();
        api::status()
    });
    let messages = LocalResource::new(move || {
        tick.track();
        api::list()
    });

    view! {
        <header class="top">
            <h1>"msglog"</h1>
            <StatusStrip status=status />
        </header>
        <main class="content">
            <SendForm on_sent=move |_| refresh() />
            <MessageList messages=messages on_refresh=move |_| refresh() />
        </main>
    }
}
