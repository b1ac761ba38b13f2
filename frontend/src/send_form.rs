//! The message box with its size counter, and what became of the last message sent, said in
//! plain words (the engineering detail one click away) and shown only while it is true.

use std::time::Duration;

use leptos::prelude::*;
use msglog_proto::v1::SendStatus;

use wasm_bindgen::JsCast as _;
use web_sys::{Element, HtmlTextAreaElement, KeyboardEvent};

use crate::{
    dom::{self, h},
    error::ApiError,
    message_list::point_to,
    outbox::{Outbox, Sent},
};

/// How long "Stored" or "Already stored" stays after a send.
const SAID_FOR: Duration = Duration::from_secs(10);

/// The message box and what became of the last message sent: `outbox` is where a message
/// goes when Send is pressed; `editing` the text put back in the box to be edited (a refused
/// message); `limit` the longest text the facade takes, in UTF-8 bytes, once its status says;
/// `live` whether the live feed is up ("Stored" is not left standing while it is not).
pub(crate) fn send_form(
    outbox: Outbox,
    editing: RwSignal<Option<String>>,
    limit: Signal<Option<u64>>,
    live: Signal<bool>,
) -> Element {
    let (text, set_text) = signal(String::new());
    let (hint, set_hint) = signal(None::<&'static str>);
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

    let textarea = h("textarea")
        .attr("id", "message")
        .attr("name", "message")
        .attr("rows", "3")
        .attr(
            "placeholder",
            "Type a message; Enter sends, Shift+Enter adds a line",
        )
        .attr("aria-describedby", "counter")
        .el()
        .unchecked_into::<HtmlTextAreaElement>();
    {
        let typed = textarea.clone();
        dom::on(&textarea, "input", move |_| {
            set_text.set(typed.value());
            set_hint.set(None);
            outbox.last.set(None);
        });
    }
    dom::on(&textarea, "keydown", move |event| {
        // Enter sends; Shift+Enter starts a new line; an input method's Enter is its own.
        let event = event.unchecked_into::<KeyboardEvent>();
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
            event.prevent_default();
            submit();
        }
    });
    let button = h("button").attr("type", "submit").text("Send").el();
    let counter = h("p").attr("id", "counter").class("counter").el();
    let form = h("form")
        .class("send")
        .child(
            &h("label")
                .attr("for", "message")
                .class("visually-hidden")
                .text("Message")
                .el(),
        )
        .child(&textarea)
        .child(&button)
        .child(&counter)
        .on("submit", move |event| {
            event.prevent_default();
            submit();
        });
    let said_box = h("div")
        .class("outcome")
        .attr("role", "status")
        .attr("aria-live", "polite")
        .on("click", show_it)
        .el();

    // The box shows the text (emptied when sent, or a refused message put back to be edited),
    // and the counter and Send what its length allows.
    {
        let textarea = textarea.clone();
        Effect::new(move |_| {
            text.with(|text| {
                if textarea.value() != *text {
                    textarea.set_value(text);
                }
            });
        });
    }
    Effect::new(move |_| {
        if let Some(taken) = editing.get() {
            set_text.set(taken);
            editing.set(None);
            let _ = textarea.focus();
        }
    });
    Effect::new(move |_| {
        let over = over();
        let _ = button.toggle_attribute_with_force("disabled", over.is_some());
        counter.set_class_name(if over.is_some() {
            "counter over"
        } else {
            "counter"
        });
        let words = limit.get().map(|limit| match over {
            Some(over) => format!("Too long by about {over} characters: shorten it to send it."),
            None => format!(
                "{} / {} characters",
                thousands(text.with(|text| text.chars().count()) as u64),
                thousands(limit)
            ),
        });
        counter.set_text_content(words.as_deref());
    });
    // The hint and the last outcome, drawn each time either changes.
    {
        let said_box = said_box.clone();
        Effect::new(move |_| {
            said_box.set_text_content(None);
            if let Some(hint) = hint.get() {
                let _ = said_box.append_child(&h("p").class("hint").text(hint).el());
            }
            outbox.last.with(|sent| {
                if let Some(sent) = sent {
                    let _ = said_box.append_child(&outcome(sent));
                }
            });
        });
    }

    h("section")
        .class("card")
        .attr("aria-labelledby", "send-title")
        .child(&h("h2").attr("id", "send-title").text("Send a message").el())
        .child(&form.el())
        .child(&said_box)
        .el()
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
pub(crate) fn details(error: &ApiError) -> Element {
    let detail = h("p")
        .child(&h("code").text(error.code).el())
        .text(" ")
        .text(&error.message);
    h("details")
        .class("details")
        .child(&h("summary").text("Details").el())
        .child(&detail.el())
        .el()
}

/// What became of the last send: one shape for every outcome (what happened, in words; a
/// pointer to the message when it is stored; the detail when it failed).
fn outcome(sent: &Sent) -> Element {
    let (outcome, lead, words, show, error) = match sent {
        // A duplicate is answered with the id of the message held: the one to point to.
        Sent::Stored(answer) if answer.status() == SendStatus::Duplicate => (
            "duplicate",
            "Already stored: ",
            "this text was sent before, so nothing new was saved. ".to_owned(),
            Some(&answer.id),
            None,
        ),
        Sent::Stored(answer) => (
            "success",
            "Stored. ",
            "It is at the top of the list. ".to_owned(),
            Some(&answer.id),
            None,
        ),
        Sent::Failed(error) => (
            "error",
            "Not stored yet. ",
            format!(
                "{} Your message is kept here and sent by itself when it can be.",
                failed_words(error)
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
    let mut said = h("p").child(&h("strong").text(lead).el()).text(&words);
    if let Some(id) = show {
        // A button that shows the message in the list (see `show_it`), and room after it to
        // say when it is not there.
        let button = h("button")
            .attr("type", "button")
            .class("link")
            .attr("data-show", id)
            .text("Show it");
        said = said.child(&button.el()).text("");
    }
    let mut result = h("div").class("result").attr("data-outcome", outcome);
    if let Some(error) = error {
        result = result.attr("data-code", error.code).attr("role", "alert");
    }
    result = result.child(&said.el());
    if let Some(error) = error {
        result = result.child(&details(error));
    }
    result.el()
}

/// A click on an outcome's "Show it": shows the message in the list, or says it is not there.
fn show_it(event: web_sys::Event) {
    let Some(button) = dom::closest(&event, "button[data-show]") else {
        return;
    };
    let shown = button
        .get_attribute("data-show")
        .is_some_and(|id| point_to(&id));
    if let Some(after) = button.next_sibling() {
        after.set_text_content(Some(if shown {
            ""
        } else {
            " (stored before the messages shown here)"
        }));
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
