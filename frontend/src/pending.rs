//! The outbox at a glance: how many messages wait to be stored and since when, and each of
//! them with its state in plain words (the last error one click away), to discard (or, when
//! refused, to edit); each button says which message it acts on.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast as _;

use crate::{
    error::{self, ApiError},
    outbox::{Entry, Outbox, age},
    send_form::{Details, failed_words},
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
    move || {
        summary().map(|(waiting, refused, text, oldest)| {
            view! {
                <div class="outbox" data-waiting=waiting data-refused=refused>
                    <p class="outbox-summary" role="status">
                        <strong>{text}</strong>
                        " · oldest " {move || age(oldest, now.get())} " ago"
                    </p>
                    <ol class="pending-list">
                        <For
                            each=move || outbox.entries.get()
                            key=|entry| (entry.key.clone(), entry.attempts, entry.refused)
                            children=move |entry| {
                                view! { <PendingItem entry=entry outbox=outbox editing=editing /> }
                            }
                        />
                    </ol>
                </div>
            }
        })
    }
}

/// One message of the outbox.
#[component]
fn PendingItem(entry: Entry, outbox: Outbox, editing: RwSignal<Option<String>>) -> impl IntoView {
    let key = entry.key.clone();
    let sending = {
        let key = key.clone();
        move || {
            outbox
                .sending
                .with(|sending| sending.as_deref() == Some(key.as_str()))
        }
    };
    let state = {
        let sending = sending.clone();
        let refused = entry.refused;
        move || match (refused, sending()) {
            (true, _) => "refused",
            (false, true) => "sending",
            (false, false) => "pending",
        }
    };
    let error = ApiError {
        code: error::known_code(&entry.last_code),
        message: entry.last_error.clone(),
        refused: entry.refused,
    };
    let note = match (entry.refused, entry.attempts) {
        (true, _) => format!("Can't be stored: {}", entry.last_error),
        (false, 0) => "Waiting to be sent".to_owned(),
        (false, 1) => format!("Not stored yet, tried once. {}", failed_words(&error)),
        (false, n) => format!("Not stored yet, tried {n} times. {}", failed_words(&error)),
    };
    let details = (entry.attempts > 0).then(|| view! { <Details error=error /> });
    let quoted: String = entry.text.chars().take(QUOTED).collect();
    let quoted = if entry.text.chars().count() > QUOTED {
        format!("“{quoted}…”")
    } else {
        format!("“{quoted}”")
    };
    let discard = {
        let key = key.clone();
        move |_| {
            outbox.discard(&key);
            focus_box();
        }
    };
    let edit = {
        let key = key.clone();
        move |_| {
            if let Some(text) = outbox.take(&key) {
                editing.set(Some(text));
            }
        }
    };
    view! {
        <li
            class="pending"
            data-state=state
            data-key=key
            data-attempts=entry.attempts
            data-code=entry.last_code
        >
            <span class="pending-text">{entry.text}</span>
            <span class="pending-note">
                {move || if sending() { "Sending…".to_owned() } else { note.clone() }}
                {details}
            </span>
            <span class="pending-actions">
                {entry
                    .refused
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="secondary"
                                aria-label=format!("Edit {quoted}")
                                on:click=edit.clone()
                            >
                                "Edit"
                            </button>
                        }
                    })}
                <button
                    type="button"
                    class="secondary"
                    aria-label=format!("Discard {quoted}")
                    on:click=discard
                >
                    "Discard"
                </button>
            </span>
        </li>
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
