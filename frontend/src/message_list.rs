//! The logged messages and the messages service's text.

// `#[component]` makes the props struct as visible as the module allows.
#![allow(unreachable_pub)]

use leptos::prelude::*;
use msglog_proto::api::GetMessagesResponse;

use crate::api::ApiError;

/// The logged messages and the messages service's text.
#[component]
pub(crate) fn MessageList(
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
