//! The outbox at a glance: how many messages wait to be stored and since when, and each of
//! them with its state in plain words (the last error one click away), to discard (or, when
//! refused, to edit); each button says which message it acts on.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast as _;

use crate::{
    dom::{self, Drawn, Keyed, element},
    error::{self, ApiError},
    outbox::{Entry, Outbox, age},
    send_form::failed_words,
};

/// How much of a message a button's name quotes.
const QUOTED: usize = 40;

/// How often the ages shown are brought up to date.
const CLOCK: Duration = Duration::from_secs(1);

/// The messages not yet stored, oldest first; nothing when there are none.
#[component]
pub(crate) fn Pending(
    /// The outbox.
    outbox: Outbox,
    /// Where a refused message's text goes to be edited.
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let now = RwSignal::new(js_sys::Date::now() as u64);
    if let Err(error) = set_interval_with_handle(move || now.set(js_sys::Date::now() as u64), CLOCK)
    {
        crate::error::console_error("cannot start the outbox clock:", &error);
    }
    let summary = move || {
        outbox.entries.with(|entries| {
            let waiting = entries.iter().filter(|entry| !entry.refused).count();
            let refused = entries.len() - waiting;
            let oldest = entries.iter().map(|entry| entry.created_ms).min()?;
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
            Some((waiting, refused, text, oldest))
        })
    };
    // The items, drawn by hand (see `dom`), each made again when its attempts or refusal
    // change; whether it is being sent is changed in place.
    let items = NodeRef::<leptos::html::Ol>::new();
    let drawn = StoredValue::new_local(None::<Keyed<(String, u32, bool), Item>>);
    Effect::new(move |_| {
        let Some(ol) = items.get() else {
            return;
        };
        let ol: web_sys::Element = ol.into();
        outbox.entries.with(|entries| {
            drawn.update_value(|drawn| {
                let keyed = match drawn {
                    Some(keyed) if keyed.is_in(&ol) => keyed,
                    _ => drawn.insert(Keyed::new(ol)),
                };
                let sending = outbox.sending.get_untracked();
                keyed.update(
                    entries,
                    |entry| (entry.key.clone(), entry.attempts, entry.refused),
                    |entry| item(entry, sending.as_deref()),
                );
            });
        });
    });
    Effect::new(move |_| {
        outbox.sending.with(|sending| {
            drawn.with_value(|drawn| {
                for ((key, ..), item) in drawn.iter().flat_map(Keyed::shown) {
                    item.kept.show(sending.as_deref() == Some(key.as_str()));
                }
            });
        });
    });
    // A click on an item's Edit or Discard.
    let act = move |event: leptos::ev::MouseEvent| {
        let Some(button) = dom::closest(&event, "button[data-action]") else {
            return;
        };
        let key = button
            .closest("li")
            .ok()
            .flatten()
            .and_then(|item| item.get_attribute("data-key"));
        let Some(key) = key else {
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
    };
    move || {
        summary().map(|(waiting, refused, text, oldest)| {
            view! {
                <div class="outbox" data-waiting=waiting data-refused=refused>
                    <p class="outbox-summary" role="status">
                        <strong>{text}</strong>
                        " · oldest " {move || age(oldest, now.get())} " ago"
                    </p>
                    <ol class="pending-list" node_ref=items on:click=act></ol>
                </div>
            }
        })
    }
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
    let notes = element("span", &[("class", "pending-note")], &[&note]);
    if entry.attempts > 0 {
        let _ = notes.append_child(&details(&error));
    }
    let button = |action: &str, label: &str| {
        element(
            "button",
            &[
                ("type", "button"),
                ("class", "secondary"),
                ("data-action", action),
                ("aria-label", &format!("{label} {quoted}")),
            ],
            &[&dom::text(label)],
        )
    };
    let actions = element("span", &[("class", "pending-actions")], &[]);
    if entry.refused {
        let _ = actions.append_child(&button("edit", "Edit"));
    }
    let _ = actions.append_child(&button("discard", "Discard"));
    let attempts = entry.attempts.to_string();
    let text = element(
        "span",
        &[("class", "pending-text")],
        &[&dom::text(&entry.text)],
    );
    let li = element(
        "li",
        &[
            ("class", "pending"),
            ("data-key", &entry.key),
            ("data-attempts", &attempts),
            ("data-code", &entry.last_code),
        ],
        &[&text, &notes, &actions],
    );
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

/// The engineering detail of a failure, one click away (as `send_form::Details` draws it).
fn details(error: &ApiError) -> web_sys::Element {
    let code = element("code", &[], &[&dom::text(error.code)]);
    let text = dom::text(&format!(" {}", error.message));
    let summary = element("summary", &[], &[&dom::text("Details")]);
    let detail = element("p", &[], &[&code, &text]);
    element("details", &[("class", "details")], &[&summary, &detail])
}

/// Puts the focus back in the message box (after the message it was on is gone).
fn focus_box() {
    if let Some(element) = document().get_element_by_id("message")
        && let Ok(element) = element.dyn_into::<web_sys::HtmlElement>()
    {
        let _ = element.focus();
    }
}
