//! The message box, and what became of the last message sent.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::{ev::KeyboardEvent, prelude::*};
use msglog_proto::api::{ApiSendMessageResponse, SendStatus};

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
    let send = Action::new_local(|message: &String| api::send(message.clone()));
    let pending = send.pending();
    let outcome = send.value();

    // A stored message leaves the box (unless something new was typed meanwhile); a failed one
    // stays, so nothing typed is lost.
    let (sent_text, set_sent_text) = signal(String::new());
    Effect::new(move |_| {
        if let Some(result) = outcome.get() {
            if result.is_ok() && text.get_untracked() == sent_text.get_untracked() {
                set_text.set(String::new());
            }
            on_sent.run(());
        }
    });

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
        set_sent_text.set(message.clone());
        send.dispatch(message);
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
    result: Result<ApiSendMessageResponse, ApiError>,
) -> impl IntoView {
    let retried = |attempts: u32| match attempts {
        n if n > 1 => format!(" (after {n} attempts)"),
        _ => String::new(),
    };
    match result {
        Ok(answer) if answer.status == SendStatus::Success => view! {
            <p class="result" data-outcome="success">
                <strong>"Stored."</strong>
                " Id " <code>{answer.id}</code> {retried(answer.attempts)}
            </p>
        }
        .into_any(),
        Ok(answer) => view! {
            <p class="result" data-outcome="duplicate">
                <strong>"Duplicate:"</strong>
                " already stored as " <code>{answer.id}</code>
                "; nothing new was saved." {retried(answer.attempts)}
            </p>
        }
        .into_any(),
        Err(error) => {
            let detail = match &error {
                ApiError::Http { body, .. } => match (body.attempts, &body.code) {
                    (Some(attempts), Some(code)) => Some(format!(
                        "{attempts} {} to logging, last answer {code}.",
                        if attempts == 1 { "attempt" } else { "attempts" }
                    )),
                    _ => None,
                },
                ApiError::Network(_) => None,
            };
            view! {
                <div class="result" data-outcome="error" role="alert">
                    <p>
                        <strong>"Not stored: "</strong>
                        {error.to_string()}
                    </p>
                    {detail.map(|detail| view! { <p class="detail">{detail}</p> })}
                    <p class="detail">"Your text is still in the box; send it again when ready."</p>
                </div>
            }
            .into_any()
        }
    }
}
