//! The logged messages, newest first just under the box, live, with older pages on demand.
//!
//! Each row shows when it was stored (relative while recent; the full local date and time on
//! hover and for screen readers), and a long message folded to a few lines until opened. New
//! messages come in at the top: a person reading further down keeps their place (the browser
//! anchors the scroll), and is offered a jump back to the newest.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use std::time::Duration;

use leptos::prelude::*;
use msglog_proto::v1::StoredMessage;
use wasm_bindgen::JsValue;

use crate::{
    dom::{self, Drawn, Keyed, element},
    live::{Feed, LiveList},
};

/// How often the relative times are brought up to date.
const CLOCK: Duration = Duration::from_secs(30);
/// A message longer than this (in bytes, or lines) is folded until opened.
const FOLD_BYTES: usize = 400;
const FOLD_LINES: usize = 5;
/// How long a row pointed to stays highlighted.
const HIGHLIGHT: Duration = Duration::from_secs(3);

/// The logged messages, newest first, kept up to date by the live feed.
#[component]
pub(crate) fn MessageList(
    /// The list and its feed.
    list: LiveList,
    /// What the messages service says (from the status check), when it answered.
    #[prop(into)]
    from_service: Signal<Option<String>>,
    /// Shown before the list: the messages not yet stored.
    children: Children,
) -> impl IntoView {
    let now = RwSignal::new(js_sys::Date::now());
    if let Err(error) = set_interval_with_handle(move || now.set(js_sys::Date::now()), CLOCK) {
        crate::error::console_error("cannot start the list's clock:", &error);
    }
    // New messages that arrived while the person was reading further down.
    let unseen = RwSignal::new(0_usize);
    let list_top = NodeRef::<leptos::html::Section>::new();
    let away = move || {
        list_top
            .get_untracked()
            .is_some_and(|section| section.get_bounding_client_rect().top() < -40.0)
    };
    Effect::new(move |previous: Option<u64>| {
        let arrived = list.arrived.get();
        if let Some(previous) = previous
            && arrived > previous
            && away()
        {
            unseen.update(|count| *count += usize::try_from(arrived - previous).unwrap_or(1));
        }
        arrived
    });
    let _ = window_event_listener(leptos::ev::scroll, move |_| {
        if unseen.get_untracked() > 0 && !away() {
            unseen.set(0);
        }
    });
    let jump = move |_| {
        if let Some(section) = list_top.get_untracked() {
            section.scroll_into_view();
        }
        unseen.set(0);
    };

    const OFFLINE: &str = "The browser says it has no network. The list catches up by itself \
        when the connection is back, and messages you send meanwhile wait here.";
    let feed_note = move || {
        let (state, text, why) = match list.feed.get() {
            Feed::Connecting => ("connecting", "Connecting…", None),
            Feed::Live => ("live", "Live", None),
            Feed::Reconnecting(why) => ("interrupted", "Not live: reconnecting", Some(why)),
            Feed::Interrupted(why) => ("interrupted", "Not live: storage unreachable", Some(why)),
            Feed::Offline => (
                "interrupted",
                "Not live: this device is offline",
                Some(OFFLINE.to_owned()),
            ),
        };
        view! {
            <div class="feed" data-feed=state role="status" aria-live="polite">
                <span class="dot" aria-hidden="true"></span>
                <span class="feed-text">{text}</span>
                {why
                    .map(|why| {
                        view! {
                            <details class="why">
                                <summary>"Why?"</summary>
                                <p>{why}</p>
                            </details>
                        }
                    })}
            </div>
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
    let empty = Memo::new(move |_| list.messages.with(Vec::is_empty));
    // The rows, drawn by hand (see `dom`): the list element is made once (and again only when
    // it empties or fills), and new messages add rows to it, block by block (see
    // `live::Block`): a burst of new messages adds one block at the top and touches no row
    // below. Each row's relative time is kept to be brought up to date with the clock.
    let rows = NodeRef::<leptos::html::Ul>::new();
    let drawn = StoredValue::new_local(None::<Keyed<(u64, usize), Vec<Clock>>>);
    Effect::new(move |_| {
        let Some(ul) = rows.get() else {
            return;
        };
        let ul: web_sys::Element = ul.into();
        list.blocks.with(|blocks| {
            drawn.update_value(|drawn| {
                let keyed = match drawn {
                    Some(keyed) if keyed.is_in(&ul) => keyed,
                    _ => drawn.insert(Keyed::new(ul)),
                };
                let now = now.get_untracked();
                keyed.update(
                    blocks,
                    |block| block.key,
                    |block| {
                        let mut clocks = Vec::new();
                        let nodes = block
                            .messages
                            .iter()
                            .map(|message| row(message, now, &mut clocks))
                            .collect();
                        Drawn {
                            nodes,
                            kept: clocks,
                        }
                    },
                );
            });
        });
    });
    Effect::new(move |_| {
        let now = now.get();
        drawn.with_value(|drawn| {
            for (_, block) in drawn.iter().flat_map(Keyed::shown) {
                for (date, shown) in &block.kept {
                    shown.set_text_content(Some(&relative(date, now)));
                }
            }
        });
    });
    let body = move || {
        if !list.loaded.get() {
            return view! { <p class="muted">"Loading…"</p> }.into_any();
        }
        if empty.get() {
            return view! { <p class="muted">"Nothing logged yet."</p> }.into_any();
        }
        view! {
            <ul
                class="list"
                data-count=move || list.messages.with(Vec::len)
                node_ref=rows
                on:click=fold
            ></ul>
        }
        .into_any()
    };
    view! {
        <section class="card" aria-labelledby="list-title" node_ref=list_top>
            <div class="card-head">
                <h2 id="list-title">"Messages"</h2>
                {feed_note}
            </div>
            {move || {
                (unseen.get() > 0)
                    .then(|| {
                        view! {
                            <button type="button" class="jump" on:click=jump>
                                {move || match unseen.get() {
                                    1 => "↑ 1 new message".to_owned(),
                                    n => format!("↑ {n} new messages"),
                                }}
                            </button>
                        }
                    })
            }}
            {move || {
                from_service
                    .get()
                    .map(|text| {
                        view! {
                            <p class="from-service">"Messages service says: " <q>{text}</q></p>
                        }
                    })
            }}
            {children()}
            {body}
            {move || {
                list.trimmed
                    .get()
                    .then(|| {
                        view! {
                            <p class="muted trimmed">
                                "Older messages were put away to keep this page light. Load older brings them back."
                            </p>
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
        </section>
    }
}

/// A row's time shown relative to the clock: when it was stored, and where it is shown.
type Clock = (js_sys::Date, web_sys::Element);

/// One message's row: its text (folded when long) and when it was stored; its relative time is
/// added to `clocks`.
fn row(message: &StoredMessage, now: f64, clocks: &mut Vec<Clock>) -> web_sys::Node {
    let long = message.text.len() > FOLD_BYTES || message.text.lines().count() > FOLD_LINES;
    let class = if long { "text folded" } else { "text" };
    let text = element("p", &[("class", class)], &[&dom::text(&message.text)]);
    let foot = element("div", &[("class", "row-foot")], &[]);
    let at = message.stored_at_ms;
    if at > 0 {
        let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
        let iso = String::from(date.to_iso_string());
        let full = full_date(&date);
        let shown = element(
            "span",
            &[("aria-hidden", "true")],
            &[&dom::text(&relative(&date, now))],
        );
        let hidden = element(
            "span",
            &[("class", "visually-hidden")],
            &[&dom::text(&format!("stored {full}"))],
        );
        let time = element(
            "time",
            &[("datetime", &iso), ("title", &full)],
            &[&shown, &hidden],
        );
        let _ = foot.append_child(&time);
        clocks.push((date, shown));
    }
    if long {
        let more = element(
            "button",
            &[
                ("type", "button"),
                ("class", "link more"),
                ("aria-expanded", "false"),
            ],
            &[&dom::text("Show more")],
        );
        let _ = foot.append_child(&more);
    }
    let seq = message.seq.to_string();
    element(
        "li",
        &[("data-seq", &seq), ("data-id", &message.id)],
        &[&text, &foot],
    )
    .into()
}

/// A click in the list: on a row's "Show more", opens its text (and "Show less" folds it).
fn fold(event: leptos::ev::MouseEvent) {
    let Some(button) = dom::closest(&event, "button.more") else {
        return;
    };
    let text = button
        .closest("li")
        .ok()
        .flatten()
        .and_then(|row| row.query_selector(".text").ok().flatten());
    let Some(text) = text else {
        return;
    };
    let folded = text.class_list().toggle("folded").unwrap_or(false);
    let _ = button.set_attribute("aria-expanded", if folded { "false" } else { "true" });
    button.set_text_content(Some(if folded { "Show more" } else { "Show less" }));
}

/// When, for a person, relative to `now` (both in the browser's clock): `just now`, `5 min
/// ago`, `14:05` today, `yesterday 14:05`, else the date and time.
fn relative(date: &js_sys::Date, now: f64) -> String {
    let seconds = ((now - date.get_time()) / 1000.0).max(0.0);
    if seconds < 45.0 {
        return "just now".to_owned();
    }
    if seconds < 3600.0 {
        return format!("{} min ago", ((seconds / 60.0).round() as u32).max(1));
    }
    let clock = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    let today = js_sys::Date::new(&JsValue::from_f64(now));
    let day = |d: &js_sys::Date| (d.get_full_year(), d.get_month(), d.get_date());
    if day(date) == day(&today) {
        return clock;
    }
    let yesterday = js_sys::Date::new(&JsValue::from_f64(now - 86_400_000.0));
    if day(date) == day(&yesterday) {
        return format!("yesterday {clock}");
    }
    full_date(date)
}

thread_local! {
    /// The person's locale's medium date and short time (`5 Dec 2026, 14:05`): one formatter
    /// for every row, as making one per row (what `toLocaleString` does) costs far more than
    /// using it.
    static FULL_DATE: js_sys::Function = {
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into());
        let _ = js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into());
        js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &options).format()
    };
}

/// `date` in the person's locale, in full.
fn full_date(date: &js_sys::Date) -> String {
    FULL_DATE
        .with(|format| format.call1(&JsValue::UNDEFINED, date))
        .ok()
        .and_then(|text| text.as_string())
        .unwrap_or_default()
}

/// Scrolls to the row of the message with this id and highlights it for a moment; `false` when
/// it is not shown.
pub(crate) fn point_to(id: &str) -> bool {
    let row = document()
        .query_selector(&format!("li[data-id=\"{id}\"]"))
        .ok()
        .flatten();
    let Some(row) = row else {
        return false;
    };
    row.scroll_into_view();
    let _ = row.set_attribute("data-highlight", "");
    set_timeout(
        move || {
            let _ = row.remove_attribute("data-highlight");
        },
        HIGHLIGHT,
    );
    true
}
