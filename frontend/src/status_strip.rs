//! The strip at the top: the three services, each up or down, and the facade's retries and
//! failed calls to logging since it started.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::prelude::*;
use msglog_proto::v1::{ServiceState, StatusResponse};

use crate::api::ApiError;

/// The three services, each up or down, as the facade last saw them.
#[component]
pub(crate) fn StatusStrip(
    /// The last `Status` answer (`None` until the first).
    status: RwSignal<Option<Result<StatusResponse, ApiError>>>,
) -> impl IntoView {
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
            {move || {
                calls()
                    .map(|(retries, errors)| {
                        view! {
                            <li
                                class="calls"
                                data-retries=retries
                                data-errors=errors
                                title="The facade's calls to logging since it started: attempts that retried a failed one, and calls that failed after every attempt"
                            >
                                {format!("{retries} retries · {errors} errors")}
                            </li>
                        }
                    })
            }}
        </ul>
    }
}
