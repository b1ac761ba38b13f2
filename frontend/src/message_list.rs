//! The logged messages, newest first just under the box, live, with older pages on demand.
//!
//! Each row shows when it was stored (relative while recent; the full local date and time on
//! hover and for screen readers), and a long message folded to a few lines until opened. New
//! messages come in at the top: a person reading further down keeps their place (the browser
//! anchors the scroll), and is offered a jump back to the newest.

use std::time::Duration;

use leptos::prelude::*;
use msglog_proto::v1::StoredMessage;
use wasm_bindgen::JsValue;
use web_sys::Element;

use crate::{
    dom::{self, Drawn, Keyed, Slot, h},
    live::{Feed, LiveList},
};

/// How often the relative times are brought up to date.
const CLOCK: Duration = Duration::from_secs(30);
/// A message longer than this (in bytes, or lines) is folded until opened.
const FOLD_BYTES: usize = 400;
const FOLD_LINES: usize = 5;
/// How long a row pointed to stays highlighted.
const HIGHLIGHT: Duration = Duration::from_secs(3);

/// The logged messages, newest first, kept up to date by the live feed (`list`); before them,
/// what the messages service says (`from_service`, from the status check, when it answered),
/// and what `before` draws into the list's card (the messages not yet stored).
pub(crate) fn message_list(
    list: LiveList,
    from_service: Signal<Option<String>>,
    before: impl FnOnce(&Element),
) -> Element {
    let section = h("section")
        .class("card")
        .attr("aria-labelledby", "list-title")
        .el();
    let now = RwSignal::new(js_sys::Date::now());
    if let Err(error) = set_interval_with_handle(move || now.set(js_sys::Date::now()), CLOCK) {
        crate::error::console_error("cannot start the list's clock:", &error);
    }

    // Whether the list's feed is live, and why not, in a person's words.
    let (words, why) = (h("span").class("feed-text").el(), h("p").el());
    let feed = h("div")
        .class("feed")
        .attr("role", "status")
        .attr("aria-live", "polite")
        .child(&h("span").class("dot").attr("aria-hidden", "true").el())
        .child(&words)
        .el();
    let head = h("div")
        .class("card-head")
        .child(&h("h2").attr("id", "list-title").text("Messages").el())
        .child(&feed);
    let _ = section.append_child(&head.el());
    let why_slot = Slot::new(&feed);
    let why_box = h("details")
        .class("why")
        .child(&h("summary").text("Why?").el())
        .child(&why)
        .el();
    const OFFLINE: &str = "The browser says it has no network. The list catches up by itself \
        when the connection is back, and messages you send meanwhile wait here.";
    Effect::new(move |_| {
        list.feed.with(|state| {
            let (state, said, reason) = match state {
                Feed::Connecting => ("connecting", "Connecting…", None),
                Feed::Live => ("live", "Live", None),
                Feed::Reconnecting(why) => {
                    ("interrupted", "Not live: reconnecting", Some(why.as_str()))
                }
                Feed::Interrupted(why) => (
                    "interrupted",
                    "Not live: storage unreachable",
                    Some(why.as_str()),
                ),
                Feed::Offline => (
                    "interrupted",
                    "Not live: this device is offline",
                    Some(OFFLINE),
                ),
            };
            let _ = feed.set_attribute("data-feed", state);
            words.set_text_content(Some(said));
            why.set_text_content(reason);
            why_slot.show(&why_box, reason.is_some());
        });
    });

    // New messages that arrived while the person was reading further down, and a jump to them.
    let unseen = RwSignal::new(0_usize);
    let away = {
        let section = section.clone();
        move || section.get_bounding_client_rect().top() < -40.0
    };
    Effect::new({
        let away = away.clone();
        move |previous: Option<u64>| {
            let arrived = list.arrived.get();
            if let Some(previous) = previous
                && arrived > previous
                && away()
            {
                unseen.update(|count| *count += usize::try_from(arrived - previous).unwrap_or(1));
            }
            arrived
        }
    });
    let _ = window_event_listener(leptos::ev::scroll, move |_| {
        if unseen.get_untracked() > 0 && !away() {
            unseen.set(0);
        }
    });
    let jump = {
        let section = section.clone();
        h("button")
            .attr("type", "button")
            .class("jump")
            .on("click", move |_| {
                section.scroll_into_view();
                unseen.set(0);
            })
            .el()
    };
    let jump_slot = Slot::new(&section);
    Effect::new(move |_| {
        let unseen = unseen.get();
        jump.set_text_content(Some(&match unseen {
            1 => "↑ 1 new message".to_owned(),
            n => format!("↑ {n} new messages"),
        }));
        jump_slot.show(&jump, unseen > 0);
    });

    let quoted = h("q").el();
    let says = h("p")
        .class("from-service")
        .text("Messages service says: ")
        .child(&quoted)
        .el();
    let says_slot = Slot::new(&section);
    Effect::new(move |_| {
        from_service.with(|text| {
            quoted.set_text_content(text.as_deref());
            says_slot.show(&says, text.is_some());
        });
    });

    before(&section);

    // The list itself, or what stands in its place while it is loading or empty. Its rows
    // (see `row`) are added block by block (see `live::Block`): a burst of new messages adds
    // one block at the top and touches no row below. Each row's relative time is kept to be
    // brought up to date with the clock.
    let rows = h("ul").class("list").on("click", fold).el();
    let loading = h("p").class("muted").text("Loading…").el();
    let nothing = h("p").class("muted").text("Nothing logged yet.").el();
    let body = Slot::new(&section);
    let drawn = StoredValue::new_local(Keyed::<(u64, usize), Vec<Clock>>::new(rows.clone()));
    Effect::new(move |_| {
        let (loaded, count) = (list.loaded.get(), list.messages.with(Vec::len));
        let _ = rows.set_attribute("data-count", &count.to_string());
        body.show(&loading, !loaded);
        body.show(&nothing, loaded && count == 0);
        body.show(&rows, loaded && count > 0);
    });
    Effect::new(move |_| {
        list.blocks.with(|blocks| {
            let now = now.get_untracked();
            drawn.update_value(|drawn| {
                drawn.update(
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
            for (_, block) in drawn.shown() {
                for (date, shown) in &block.kept {
                    shown.set_text_content(Some(&relative(date, now)));
                }
            }
        });
    });

    // After the list: that older messages were put away, the button that loads them, and why
    // it could not.
    let trimmed = h("p")
        .class("muted trimmed")
        .text("Older messages were put away to keep this page light. Load older brings them back.")
        .el();
    let trimmed_slot = Slot::new(&section);
    Effect::new(move |_| trimmed_slot.show(&trimmed, list.trimmed.get()));
    let older = h("button")
        .attr("type", "button")
        .class("secondary older")
        .on("click", move |_| list.load_older())
        .el();
    let older_slot = Slot::new(&section);
    Effect::new(move |_| {
        let loading = list.loading_older.get();
        let _ = older.toggle_attribute_with_force("disabled", loading);
        older.set_text_content(Some(if loading { "Loading…" } else { "Load older" }));
        older_slot.show(&older, list.older.with(Option::is_some));
    });
    let failed = dom::text("");
    let older_error = h("p")
        .class("error")
        .attr("role", "alert")
        .text("Could not load older messages: ")
        .child(&failed)
        .el();
    let error_slot = Slot::new(&section);
    Effect::new(move |_| {
        list.older_error.with(|error| {
            failed.set_text_content(error.as_deref());
            error_slot.show(&older_error, error.is_some());
        });
    });
    section
}

/// A row's time shown relative to the clock: when it was stored, and where it is shown.
type Clock = (js_sys::Date, web_sys::Element);

/// One message's row: its text (folded when long) and when it was stored; its relative time is
/// added to `clocks`.
fn row(message: &StoredMessage, now: f64, clocks: &mut Vec<Clock>) -> web_sys::Node {
    let long = message.text.len() > FOLD_BYTES || message.text.lines().count() > FOLD_LINES;
    let text = h("p")
        .class(if long { "text folded" } else { "text" })
        .text(&message.text);
    let mut foot = h("div").class("row-foot");
    let at = message.stored_at_ms;
    if at > 0 {
        let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
        let full = full_date(&date);
        let shown = h("span")
            .attr("aria-hidden", "true")
            .text(&relative(&date, now))
            .el();
        let hidden = h("span")
            .class("visually-hidden")
            .text(&format!("stored {full}"));
        let time = h("time")
            .attr("datetime", &String::from(date.to_iso_string()))
            .attr("title", &full)
            .child(&shown)
            .child(&hidden.el());
        foot = foot.child(&time.el());
        clocks.push((date, shown));
    }
    if long {
        let more = h("button")
            .attr("type", "button")
            .class("link more")
            .attr("aria-expanded", "false")
            .text("Show more");
        foot = foot.child(&more.el());
    }
    h("li")
        .attr("data-seq", &message.seq.to_string())
        .attr("data-id", &message.id)
        .child(&text.el())
        .child(&foot.el())
        .el()
        .into()
}

/// A click in the list: on a row's "Show more", opens its text (and "Show less" folds it).
fn fold(event: web_sys::Event) {
    let Some((button, row)) = dom::row_button(&event, "button.more") else {
        return;
    };
    let Ok(Some(text)) = row.query_selector(".text") else {
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
