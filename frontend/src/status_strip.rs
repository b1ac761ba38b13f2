//! Whether everything works, out of the way: one quiet indicator when all is well, a banner
//! that says what does not work for the person when something is down, and the services'
//! details (each up or down, the facade's retries and failed calls since it started) behind a
//! disclosure that keyboard and touch open as well as a mouse.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::prelude::*;
use msglog_proto::v1::{ServiceState, StatusResponse};

use crate::error::ApiError;

/// The last `Status` answer (`None` until the first).
type Status = RwSignal<Option<Result<StatusResponse, ApiError>>>;

/// What is wrong, for the person: what they cannot do, and what happens to what they send.
fn trouble(
    status: &Option<Result<StatusResponse, ApiError>>,
) -> Option<(&'static str, &'static str)> {
    match status {
        Some(Err(_)) => Some((
            "server",
            "The server can't be reached. What you send is kept here and sent when it is back.",
        )),
        Some(Ok(status)) if !status.logging.as_ref().is_some_and(|logging| logging.up) => Some((
            "storage",
            "Messages can't be stored right now: storage is unreachable. What you send is kept here and sent when it is back.",
        )),
        _ => None,
    }
}

/// The banner, when something the person relies on is down.
#[component]
pub(crate) fn Trouble(status: Status) -> impl IntoView {
    move || {
        status.with(trouble).map(|(what, text)| {
            view! {
                <p class="trouble" data-down=what role="alert">
                    {text}
                </p>
            }
        })
    }
}

/// The indicator, with the services' details behind it.
#[component]
pub(crate) fn StatusStrip(status: Status) -> impl IntoView {
    let summary = move || {
        status.with(|answer| match answer {
            None => ("unknown", "Checking…"),
            Some(_) if trouble(answer).is_some() => ("down", "Not working"),
            Some(Ok(status)) if !status.messages.as_ref().is_some_and(|m| m.up) => {
                ("partly", "Mostly working")
            }
            Some(_) => ("up", "All working"),
        })
    };
    let pills = move || {
        let unknown = |detail: &str| ServiceState {
            up: false,
            detail: detail.to_owned(),
        };
        let or_unknown = |state: Option<ServiceState>| state.unwrap_or_else(|| unknown("?"));
        match status.get() {
            None => vec![
                ("facade", None, unknown("checking…")),
                ("logging", None, unknown("checking…")),
                ("messages", None, unknown("checking…")),
            ],
            Some(Ok(status)) => [
                ("facade", status.facade),
                ("logging", status.logging),
                ("messages", status.messages),
            ]
            .map(|(name, state)| {
                let state = or_unknown(state);
                (name, Some(state.up), state)
            })
            .into(),
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
    // Retries and failed calls to logging since the facade started.
    let calls = move || match status.get() {
        Some(Ok(StatusResponse {
            calls: Some(calls), ..
        })) => Some((calls.retries, calls.errors)),
        _ => None,
    };
    view! {
        <details class="health" data-state=move || summary().0>
            <summary>
                <span class="dot" aria-hidden="true"></span>
                <span class="health-text">{move || summary().1}</span>
            </summary>
            <div class="health-panel">
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
                                    <li class="pill" data-service=name data-state=state>
                                        <span class="dot" aria-hidden="true"></span>
                                        <span class="name">{name}</span>
                                        <span class="state">{state}</span>
                                        <span class="pill-detail">{status.detail}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
                {move || {
                    calls()
                        .map(|(retries, errors)| {
                            view! {
                                <p class="calls" data-retries=retries data-errors=errors>
                                    {format!(
                                        "Since the facade last started: {retries} retries · {errors} errors",
                                    )}
                                </p>
                            }
                        })
                }}
            </div>
        </details>
    }
}
