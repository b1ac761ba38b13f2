//! The logged messages, live, with older pages on demand.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::prelude::*;

use crate::live::{Feed, LiveList};

/// The logged messages, newest last, kept up to date by the live feed.
#[component]
pub(crate) fn MessageList(
    /// The list and its feed.
    list: LiveList,
    /// What the messages service says (from the status check), when it answered.
    #[prop(into)]
    from_service: Signal<Option<String>>,
    /// Shown after the list: the messages not yet stored.
    children: Children,
) -> impl IntoView {
    let feed_note = move || {
        let (state, text) = match list.feed.get() {
            Feed::Connecting => ("connecting", "Connecting…".to_owned()),
            Feed::Live => ("live", "Live".to_owned()),
            Feed::Reconnecting(why) => ("interrupted", format!("Reconnecting: {why}")),
            Feed::Interrupted(why) => ("interrupted", format!("Interrupted: {why}")),
        };
        view! {
            <p class="feed" data-feed=state role="status" aria-live="polite">
                <span class="dot" aria-hidden="true"></span>
                {text}
            </p>
        }
    };
    let older = move || {
        list.older.get().map(|_| {
            view! {
                <button
                    type="button"
                    class="secondary older"
                    disabled=move || list.loading_older.get()
                    on:click=move |_| list.load_older()
                >
                    {move || if list.loading_older.get() { "Loading…" } else { "Load older" }}
                </button>
            }
        })
    };
    // The list element is made once (and again only when it empties or fills): new messages
    // change its items, not the element.
    let empty = Memo::new(move |_| list.messages.with(Vec::is_empty));
    let body = move || {
        if !list.loaded.get() {
            return view! { <p class="muted">"Loading…"</p> }.into_any();
        }
        if empty.get() {
            return view! { <p class="muted">"Nothing logged yet."</p> }.into_any();
        }
        view! {
            <ol class="list" data-count=move || list.messages.with(Vec::len)>
                // Keyed by seq: a new message adds one item, not a new list.
                <For
                    each=move || list.messages.get()
                    key=|message| message.seq
                    children=|message| {
                        view! { <li data-seq=message.seq title=message.id>{message.text}</li> }
                    }
                />
            </ol>
        }
        .into_any()
    };
    view! {
        <section class="card" aria-labelledby="list-title">
            <div class="card-head">
                <h2 id="list-title">"Logged messages"</h2>
                {feed_note}
            </div>
            {move || {
                from_service
                    .get()
                    .map(|text| {
                        view! {
                            <p class="from-service">"Messages service says: " <q>{text}</q></p>
                        }
                    })
            }}
            {older}
            {move || {
                list.older_error
                    .get()
                    .map(|error| {
                        view! {
                            <p class="error" role="alert">
                                "Could not load older messages: " {error}
                            </p>
                        }
                    })
            }}
            {body}
            {children()}
        </section>
    }
}
