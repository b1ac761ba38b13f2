//! The message box, and what became of the last message sent.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::{ev::KeyboardEvent, prelude::*};
use msglog_proto::v1::{SendResponse, SendStatus};

use crate::api::{self, ApiError};

/// The message box and what became of the last message sent.
#[component]
pub(crate) fn SendForm(
    /// Called when a send has finished, stored or not.
    #[prop(into)]
    on_sent: Callback<()>,
) -> impl IntoView {
    let (text, set_text) = signal(String::new());
    let (hint, set_hint) = signal(None::<&'static str>);
    let pending = RwSignal::new(false);
    let outcome = RwSignal::new(None::<Result<SendResponse, ApiError>>);

    let submit = move || {
        let message = text.get_untracked();
        if message.trim().is_empty() {
            set_hint.set(Some("Write a message first."));
            return;
        }
        if pending.get_untracked() {
            return;
        }
        set_hint.set(None);
        pending.set(true);
        leptos::task::spawn_local(async move {
            let result = api::send(message.clone()).await;
            // A stored message leaves the box (unless something new was typed meanwhile); a
            // failed one stays, so nothing typed is lost.
            if result.is_ok() && text.get_untracked() == message {
                set_text.set(String::new());
            }
            outcome.set(Some(result));
            pending.set(false);
            on_sent.run(());
        });
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
                <button type="submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Sending…" } else { "Send" }}
                </button>
            </form>
            <div class="outcome" role="status" aria-live="polite">
                {move || hint.get().map(|hint| view! { <p class="hint">{hint}</p> })}
                {move || outcome.get().map(|result| view! { <Outcome result=result /> })}
            </div>
        </section>
    }
}

/// What became of one send.
#[component]
fn Outcome(
    /// The facade's answer.
    result: Result<SendResponse, ApiError>,
) -> impl IntoView {
    let retried = |attempts: u32| match attempts {
        n if n > 1 => format!(" (after {n} attempts)"),
        _ => String::new(),
    };
    match result {
        Ok(answer) if answer.status() == SendStatus::Duplicate => view! {
            <p class="result" data-outcome="duplicate">
                <strong>"Duplicate:"</strong>
                " already stored as " <code>{answer.id}</code>
                "; nothing new was saved." {retried(answer.attempts)}
            </p>
        }
        .into_any(),
        Ok(answer) => view! {
            <p class="result" data-outcome="success">
                <strong>"Stored."</strong>
                " Id " <code>{answer.id}</code> {retried(answer.attempts)}
            </p>
        }
        .into_any(),
        Err(error) => view! {
            <div class="result" data-outcome="error" data-code=error.code role="alert">
                <p>
                    <strong>"Not stored: "</strong>
                    {error.to_string()}
                </p>
                <p class="detail">"Your text is still in the box; send it again when ready."</p>
            </div>
        }
        .into_any(),
    }
}
