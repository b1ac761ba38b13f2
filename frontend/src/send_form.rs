//! The message box, and what became of the last message sent.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::{ev::KeyboardEvent, prelude::*};
use msglog_proto::v1::SendStatus;

use crate::outbox::{Outbox, Sent};

/// The message box and what became of the last message sent.
#[component]
pub(crate) fn SendForm(
    /// Where a message goes when Send is pressed.
    outbox: Outbox,
    /// The text put back in the box to be edited (a refused message), when there is one.
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let (text, set_text) = signal(String::new());
    let (hint, set_hint) = signal(None::<&'static str>);
    // A refused message taken out of the outbox comes back into the box.
    Effect::new(move |_| {
        if let Some(taken) = editing.get() {
            set_text.set(taken);
            editing.set(None);
        }
    });

    let submit = move || {
        let message = text.get_untracked();
        if message.chars().all(msglog_proto::is_invisible) {
            set_hint.set(Some("Write a message first."));
            return;
        }
        set_hint.set(None);
        // Into the outbox, which keeps it until it is stored: the box is free at once.
        outbox.push(message);
        set_text.set(String::new());
    };
    let on_keydown = move |event: KeyboardEvent| {
        // Enter sends; Shift+Enter starts a new line; an input method's Enter is its own.
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
            event.prevent_default();
            submit();
        }
    };

    view! {
        <section class="card" aria-labelledby="send-title">
            <h2 id="send-title">"Send a message"</h2>
            <form
                class="send"
                on:submit=move |event| {
                    event.prevent_default();
                    submit();
                }
            >
                <label for="message" class="visually-hidden">"Message"</label>
                <textarea
                    id="message"
                    name="message"
                    rows="3"
                    placeholder="Type a message; Enter sends, Shift+Enter adds a line"
                    prop:value=move || text.get()
                    on:input=move |event| set_text.set(event_target_value(&event))
                    on:keydown=on_keydown
                ></textarea>
                <button type="submit">"Send"</button>
            </form>
            <div class="outcome" role="status" aria-live="polite">
                {move || hint.get().map(|hint| view! { <p class="hint">{hint}</p> })}
                {move || outbox.last.get().map(|sent| view! { <Outcome sent=sent /> })}
            </div>
        </section>
    }
}

/// What became of the last send.
#[component]
fn Outcome(
    /// The facade's answer.
    sent: Sent,
) -> impl IntoView {
    let retried = |attempts: u32| match attempts {
        n if n > 1 => format!(" (after {n} attempts)"),
        _ => String::new(),
    };
    match sent {
        // Each message goes under a key of its own, so a duplicate is found by its text
        // (logging's rule): the id it is stored under is not this send's.
        Sent::Stored(answer) if answer.status() == SendStatus::Duplicate => view! {
            <p class="result" data-outcome="duplicate">
                <strong>"Duplicate:"</strong>
                " this text is already stored; nothing new was saved."
                {retried(answer.attempts)}
            </p>
        }
        .into_any(),
        Sent::Stored(answer) => view! {
            <p class="result" data-outcome="success">
                <strong>"Stored."</strong>
                " Id " <code>{answer.id}</code> {retried(answer.attempts)}
            </p>
        }
        .into_any(),
        Sent::Failed(error) => view! {
            <div class="result" data-outcome="error" data-code=error.code role="alert">
                <p>
                    <strong>"Not stored yet: "</strong>
                    {error.to_string()}
                </p>
                <p class="detail">
                    "It waits in the outbox below and is sent again by itself."
                </p>
            </div>
        }
        .into_any(),
        Sent::Refused(error) => view! {
            <div class="result" data-outcome="refused" data-code=error.code role="alert">
                <p>
                    <strong>"Refused: "</strong>
                    {error.to_string()}
                </p>
                <p class="detail">"It is not sent again: edit it or discard it below."</p>
            </div>
        }
        .into_any(),
    }
}
