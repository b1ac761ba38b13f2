//! The outbox at a glance: how many messages wait to be stored and since when, and each of
//! them with its state in plain words (the last error one click away), to discard (or, when
//! refused, to edit); each button says which message it acts on.

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast as _;
use web_sys::Element;

use crate::{
    dom::{self, Drawn, Keyed, Slot, h},
    error::{self, ApiError},
    outbox::{Entry, Outbox, age},
    send_form::{details, failed_words},
};

/// How much of a message a button's name quotes.
const QUOTED: usize = 40;

/// How often the ages shown are brought up to date.
const CLOCK: Duration = Duration::from_secs(1);

/// The messages not yet stored, oldest first, in their place at the end of `parent`'s children
/// so far; nothing when there are none. `editing` is where a refused message's text goes to be
/// edited.
pub(crate) fn pending(parent: &Element, outbox: Outbox, editing: RwSignal<Option<String>>) {
    let now = RwSignal::new(js_sys::Date::now() as u64);
    if let Err(error) = set_interval_with_handle(move || now.set(js_sys::Date::now() as u64), CLOCK)
    {
        crate::error::console_error("cannot start the outbox clock:", &error);
    }
    let (counts, oldest) = (h("strong").el(), dom::text(""));
    let summary = h("p")
        .class("outbox-summary")
        .attr("role", "status")
        .child(&counts)
        .text(" · oldest ")
        .child(&oldest)
        .text(" ago");
    // A click on an item's Edit or Discard.
    let items = h("ol").class("pending-list").on("click", move |event| {
        let Some((button, item)) = dom::row_button(&event, "button[data-action]") else {
            return;
        };
        let Some(key) = item.get_attribute("data-key") else {
            return;
        };
        if button.get_attribute("data-action").as_deref() == Some("edit") {
            if let Some(text) = outbox.take(&key) {
                editing.set(Some(text));
            }
        } else {
            outbox.discard(&key);
            focus_box();
        }
    });
    let items = items.el();
    let shown = h("div")
        .class("outbox")
        .child(&summary.el())
        .child(&items)
        .el();
    let slot = Slot::new(parent);
    // The items (see `dom::Keyed`), each made again when its attempts or refusal change;
    // whether it is being sent is changed in place.
    let drawn = StoredValue::new_local(Keyed::new(items));
    Effect::new(move |_| {
        outbox.entries.with(|entries| {
            let waiting = entries.iter().filter(|entry| !entry.refused).count();
            let refused = entries.len() - waiting;
            let mut text = match waiting {
                0 => String::new(),
                1 => "1 message waiting to be stored".to_owned(),
                n => format!("{n} messages waiting to be stored"),
            };
            if refused > 0 {
                if !text.is_empty() {
                    text.push_str(", ");
                }
                text.push_str(&format!("{refused} refused"));
            }
            let _ = shown.set_attribute("data-waiting", &waiting.to_string());
            let _ = shown.set_attribute("data-refused", &refused.to_string());
            counts.set_text_content(Some(&text));
            let sending = outbox.sending.get_untracked();
            drawn.update_value(|drawn| {
                drawn.update(
                    entries,
                    |entry| (entry.key.clone(), entry.attempts, entry.refused),
                    |entry| item(entry, sending.as_deref()),
                );
            });
            slot.show(&shown, !entries.is_empty());
        });
    });
    Effect::new(move |_| {
        let now = now.get();
        let since = outbox
            .entries
            .with(|entries| entries.iter().map(|entry| entry.created_ms).min());
        if let Some(since) = since {
            oldest.set_text_content(Some(&age(since, now)));
        }
    });
    Effect::new(move |_| {
        outbox.sending.with(|sending| {
            drawn.with_value(|drawn| {
                for ((key, ..), item) in drawn.shown() {
                    item.kept.show(sending.as_deref() == Some(key.as_str()));
                }
            });
        });
    });
}

/// What an item keeps to be shown as being sent or not: its element, its note, and the note's
/// words while it is not being sent.
#[derive(Debug)]
struct Item {
    element: web_sys::Element,
    note: web_sys::Node,
    words: String,
    refused: bool,
}

impl Item {
    /// Shows it as being sent, or not.
    fn show(&self, sending: bool) {
        let state = match (self.refused, sending) {
            (true, _) => "refused",
            (false, true) => "sending",
            (false, false) => "pending",
        };
        let _ = self.element.set_attribute("data-state", state);
        let words = if sending { "Sending…" } else { &self.words };
        self.note.set_text_content(Some(words));
    }
}

/// One message of the outbox (`sending` the key of the one being sent): its text, its state
/// in words with the last error one click away, and its buttons, which say which message they
/// act on.
fn item(entry: &Entry, sending: Option<&str>) -> Drawn<Item> {
    let error = ApiError {
        code: error::known_code(&entry.last_code),
        message: entry.last_error.clone(),
        refused: entry.refused,
    };
    let words = match (entry.refused, entry.attempts) {
        (true, _) => format!("Can't be stored: {}", entry.last_error),
        (false, 0) => "Waiting to be sent".to_owned(),
        (false, 1) => format!("Not stored yet, tried once. {}", failed_words(&error)),
        (false, n) => format!("Not stored yet, tried {n} times. {}", failed_words(&error)),
    };
    let quoted: String = entry.text.chars().take(QUOTED).collect();
    let quoted = if entry.text.chars().count() > QUOTED {
        format!("“{quoted}…”")
    } else {
        format!("“{quoted}”")
    };
    let note = dom::text("");
    let mut notes = h("span").class("pending-note").child(&note);
    if entry.attempts > 0 {
        notes = notes.child(&details(&error));
    }
    let button = |action: &str, label: &str| {
        h("button")
            .attr("type", "button")
            .class("secondary")
            .attr("data-action", action)
            .attr("aria-label", &format!("{label} {quoted}"))
            .text(label)
            .el()
    };
    let mut actions = h("span").class("pending-actions");
    if entry.refused {
        actions = actions.child(&button("edit", "Edit"));
    }
    let li = h("li")
        .class("pending")
        .attr("data-key", &entry.key)
        .attr("data-attempts", &entry.attempts.to_string())
        .attr("data-code", &entry.last_code)
        .child(&h("span").class("pending-text").text(&entry.text).el())
        .child(&notes.el())
        .child(&actions.child(&button("discard", "Discard")).el())
        .el();
    let item = Item {
        element: li.clone(),
        note,
        words,
        refused: entry.refused,
    };
    item.show(sending == Some(entry.key.as_str()));
    Drawn {
        nodes: vec![li.into()],
        kept: item,
    }
}

/// Puts the focus back in the message box (after the message it was on is gone).
fn focus_box() {
    if let Some(element) = document().get_element_by_id("message")
        && let Ok(element) = element.dyn_into::<web_sys::HtmlElement>()
    {
        let _ = element.focus();
    }
}
