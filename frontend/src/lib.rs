//! The browser page of msglog: post a message, see the logged list and the messages
//! service's text, and see at a glance which services are up.
//!
//! Client-side rendered with Leptos and built by Trunk (`trunk build --release` from the
//! project's top level, or `trunk serve` for a live-reloading page that proxies `/api/` to the
//! facade). The facade serves the built page and the JSON API it calls.

mod api;

use std::time::Duration;

use leptos::{ev::KeyboardEvent, prelude::*};
use msglog_proto::api::{
    GetMessagesResponse, SendMessageResponse, SendStatus, ServiceStatus, StatusResponse,
};

use crate::api::ApiError;

/// How often the list and the status strip refresh by themselves.
const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    // Everything that shows the services' state refetches when `tick` moves: on a timer,
    // after each send, and on demand.
    let (tick, set_tick) = signal(0_u64);
    let refresh = move || set_tick.update(|tick| *tick += 1);
    if let Err(error) = set_interval_with_handle(refresh, REFRESH_EVERY) {
        leptos::logging::error!("cannot start the refresh timer: {error:?}");
    }
    let status = LocalResource::new(move || {
        tick.track();
        api::status()
    });
    let messages = LocalResource::new(move || {
        tick.track();
        api::list()
    });

    view! {
        <header class="top">
            <h1>"msglog"</h1>
            <StatusStrip status=status />
        </header>
        <main class="content">
            <SendForm on_sent=move |_| refresh() />
            <MessageList messages=messages on_refresh=move |_| refresh() />
        </main>
    }
}

/// The three services, each up or down, as the facade last saw them.
#[component]
fn StatusStrip(
    /// The facade's `/api/status`, refetched on the page's tick.
    status: LocalResource<Result<StatusResponse, ApiError>>,
) -> impl IntoView {
    let pills = move || {
        let unknown = |detail: &str| ServiceStatus {
            up: false,
            detail: detail.to_owned(),
        };
        match status.get() {
            None => vec![
                ("facade", None, unknown("checking…")),
                ("logging", None, unknown("checking…")),
                ("messages", None, unknown("checking…")),
            ],
            Some(Ok(status)) => vec![
                ("facade", Some(status.facade.up), status.facade),
                ("logging", Some(status.logging.up), status.logging),
                ("messages", Some(status.messages.up), status.messages),
            ],
            // No answer from the facade: it is down, and what lies behind it is unknown.
            Some(Err(error)) => vec![
                ("facade", Some(false), unknown(&error.to_string())),
                ("logging", None, unknown("unknown while the facade is down")),
                (
                    "messages",
                    None,
                    unknown("unknown while the facade is down"),
                ),
            ],
        }
    };
    view! {
        <ul class="status" aria-label="Services">
            {move || {
                pills()
                    .into_iter()
                    .map(|(name, up, status)| {
                        let state = match up {
                            Some(true) => "up",
                            Some(false) => "down",
                            None => "unknown",
                        };
                        view! {
                            <li class="pill" data-service=name data-state=state title=status.detail.clone()>
                                <span class="dot" aria-hidden="true"></span>
                                <span class="name">{name}</span>
                                <span class="state">{state}</span>
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

/// The message box and what became of the last message sent.
#[component]
fn SendForm(
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
    result: Result<SendMessageResponse, ApiError>,
) -> impl IntoView {
    let retried = |attempts: Option<u32>| match attempts {
        Some(n) if n > 1 => format!(" (after {n} attempts)"),
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

/// The logged messages and the messages service's text.
#[component]
fn MessageList(
    /// The facade's `/api/messages`, refetched on the page's tick.
    messages: LocalResource<Result<GetMessagesResponse, ApiError>>,
    /// Asks for a refresh now.
    #[prop(into)]
    on_refresh: Callback<()>,
) -> impl IntoView {
    // The last list that loaded, kept on screen (marked stale) while a refresh fails, so a
    // logging outage does not blank out what was already seen.
    let last_good = RwSignal::new(None::<GetMessagesResponse>);
    Effect::new(move |_| {
        if let Some(Ok(list)) = messages.get() {
            last_good.set(Some(list));
        }
    });
    let problem = move || match messages.get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    let body = move || match last_good.get() {
        None if problem().is_none() => view! { <p class="muted">"Loading…"</p> }.into_any(),
        None => ().into_any(),
        Some(list) => {
            let count = list.logged_messages.len();
            let items = if count == 0 {
                view! { <p class="muted">"Nothing logged yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="list" data-count=count>
                        {list
                            .logged_messages
                            .into_iter()
                            .map(|message| view! { <li>{message}</li> })
                            .collect_view()}
                    </ol>
                }
                .into_any()
            };
            view! {
                <p class="from-service">
                    "Messages service says: " <q>{list.message_from_service}</q>
                </p>
                {items}
            }
            .into_any()
        }
    };
    view! {
        <section class="card" aria-labelledby="list-title">
            <div class="card-head">
                <h2 id="list-title">"Logged messages"</h2>
                <button type="button" class="secondary" on:click=move |_| on_refresh.run(())>
                    "Refresh"
                </button>
            </div>
            {move || {
                problem()
                    .map(|problem| {
                        let stale = last_good.with(Option::is_some);
                        view! {
                            <p class="error" role="alert">
                                "Could not load the messages: " {problem}
                                {stale.then_some(" (showing the last list that loaded)")}
                            </p>
                        }
                    })
            }}
            {body}
        </section>
    }
}
