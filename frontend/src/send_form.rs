//! The message box with its size counter, and what became of the last message sent, said in
//! plain words (the engineering detail one click away) and shown only while it is true.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use std::time::Duration;

use leptos::{ev::KeyboardEvent, prelude::*};
use msglog_proto::v1::SendStatus;

use crate::{
    error::ApiError,
    message_list::point_to,
    outbox::{Outbox, Sent},
};

/// How long "Stored" or "Already stored" stays after a send.
const SAID_FOR: Duration = Duration::from_secs(10);

/// The message box and what became of the last message sent.
#[component]
pub(crate) fn SendForm(
    /// Where a message goes when Send is pressed.
    outbox: Outbox,
    /// The text put back in the box to be edited (a refused message), when there is one.
    editing: RwSignal<Option<String>>,
    /// The longest text the facade takes, in UTF-8 bytes, once its status says.
    #[prop(into)]
    limit: Signal<Option<u64>>,
    /// Whether the live feed is up: "Stored" is not left standing while it is not.
    #[prop(into)]
    live: Signal<bool>,
) -> impl IntoView {
    let (text, set_text) = signal(String::new());
    let (hint, set_hint) = signal(None::<&'static str>);
    let boxed = NodeRef::<leptos::html::Textarea>::new();
    // A refused message taken out of the outbox comes back into the box, focused.
    Effect::new(move |_| {
        if let Some(taken) = editing.get() {
            set_text.set(taken);
            editing.set(None);
            if let Some(boxed) = boxed.get_untracked() {
                let _ = boxed.focus();
            }
        }
    });
    // The last outcome lasts while it is true: "Stored" for a while, and not once the feed
    // breaks; "Refused" until no message is refused; "Not stored yet" until none waits.
    let said = RwSignal::new(0_u64);
    Effect::new(move |_| {
        let Some(last) = outbox.last.get() else {
            return;
        };
        said.update(|n| *n += 1);
        if matches!(last, Sent::Stored(_)) {
            let when = said.get_untracked();
            set_timeout(
                move || {
                    if said.get_untracked() == when {
                        outbox.last.set(None);
                    }
                },
                SAID_FOR,
            );
        }
    });
    Effect::new(move |_| {
        let (live, waiting, refused) = (
            live.get(),
            outbox
                .entries
                .with(|entries| entries.iter().any(|entry| !entry.refused)),
            outbox
                .entries
                .with(|entries| entries.iter().any(|entry| entry.refused)),
        );
        let stale = outbox.last.with_untracked(|last| match last {
            Some(Sent::Stored(_)) => !live,
            Some(Sent::Failed(_)) => !waiting,
            Some(Sent::Refused(_)) => !refused,
            None => false,
        });
        if stale {
            outbox.last.set(None);
        }
    });

    // Bytes over the limit, when over it.
    let over = move || {
        let limit = limit.get()?;
        let bytes = text.with(|text| text.len() as u64);
        (bytes > limit).then(|| bytes - limit)
    };
    let counter = move || {
        let limit = limit.get()?;
        Some(match over() {
            Some(over) => format!("Too long by about {over} characters: shorten it to send it."),
            None => format!(
                "{} / {} characters",
                thousands(text.with(|text| text.chars().count()) as u64),
                thousands(limit)
            ),
        })
    };

    let submit = move || {
        let message = text.get_untracked();
        outbox.last.set(None);
        if message.chars().all(msglog_proto::is_invisible) {
            set_hint.set(Some("Write a message first."));
            return;
        }
        if over().is_some() {
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
                    aria-describedby="counter"
                    node_ref=boxed
                    prop:value=move || text.get()
                    on:input=move |event| {
                        set_text.set(event_target_value(&event));
                        set_hint.set(None);
                        outbox.last.set(None);
                    }
                    on:keydown=on_keydown
                ></textarea>
                <button type="submit" disabled=move || over().is_some()>
                    "Send"
                </button>
                <p id="counter" class="counter" class:over=move || over().is_some()>
                    {counter}
                </p>
            </form>
            <div class="outcome" role="status" aria-live="polite">
                {move || hint.get().map(|hint| view! { <p class="hint">{hint}</p> })}
                {move || outbox.last.get().map(|sent| view! { <Outcome sent=sent /> })}
            </div>
        </section>
    }
}

/// What a send that failed means for the person.
pub(crate) fn failed_words(error: &ApiError) -> &'static str {
    match error.code {
        "UNAVAILABLE" | "ABORTED" => "Storage is unreachable right now.",
        "NETWORK" => "The server can't be reached.",
        "DEADLINE_EXCEEDED" => "The server did not answer in time.",
        _ => "It could not be stored yet.",
    }
}

/// The engineering detail of a failure, one click away.
#[component]
pub(crate) fn Details(error: ApiError) -> impl IntoView {
    view! {
        <details class="details">
            <summary>"Details"</summary>
            <p>
                <code>{error.code}</code>
                " "
                {error.message}
            </p>
        </details>
    }
}

/// A button that shows the message with this id in the list.
#[component]
fn ShowIt(id: String) -> impl IntoView {
    let missing = RwSignal::new(false);
    view! {
        <button
            type="button"
            class="link"
            on:click=move |_| missing.set(!point_to(&id))
        >
            "Show it"
        </button>
        {move || missing.get().then_some(" (stored before the messages shown here)")}
    }
}

/// What became of the last send: one shape for every outcome (what happened, in words; a
/// pointer to the message when it is stored; the detail when it failed).
#[component]
fn Outcome(
    /// The facade's answer.
    sent: Sent,
) -> impl IntoView {
    let (outcome, lead, words, show, error): (_, _, String, _, _) = match sent {
        // A duplicate is answered with the id of the message held: the one to point to.
        Sent::Stored(answer) if answer.status() == SendStatus::Duplicate => (
            "duplicate",
            "Already stored: ",
            "this text was sent before, so nothing new was saved. ".to_owned(),
            Some(answer.id),
            None,
        ),
        Sent::Stored(answer) => (
            "success",
            "Stored. ",
            "It is at the top of the list. ".to_owned(),
            Some(answer.id),
            None,
        ),
        Sent::Failed(error) => (
            "error",
            "Not stored yet. ",
            format!(
                "{} Your message is kept here and sent by itself when it can be.",
                failed_words(&error)
            ),
            None,
            Some(error),
        ),
        Sent::Refused(error) => (
            "refused",
            "Can't be stored: ",
            format!("{}. Edit it or discard it below.", error.message),
            None,
            Some(error),
        ),
    };
    let code = error.as_ref().map(|error| error.code);
    let role = error.is_some().then_some("alert");
    view! {
        <div class="result" data-outcome=outcome data-code=code role=role>
            <p>
                <strong>{lead}</strong>
                {words}
                {show.map(|id| view! { <ShowIt id=id /> })}
            </p>
            {error.map(|error| view! { <Details error=error /> })}
        </div>
    }
}

/// A count as a person reads it: `65,536`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (65_536, "65,536"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn a_failure_is_said_in_a_persons_words_by_its_code() {
        let error = |code| ApiError {
            code,
            message: String::new(),
            refused: false,
        };
        assert_eq!(
            failed_words(&error("UNAVAILABLE")),
            "Storage is unreachable right now."
        );
        assert_eq!(
            failed_words(&error("NETWORK")),
            "The server can't be reached."
        );
        assert_eq!(
            failed_words(&error("DEADLINE_EXCEEDED")),
            "The server did not answer in time."
        );
        assert_eq!(failed_words(&error("ERROR")), "It could not be stored yet.");
    }
}
