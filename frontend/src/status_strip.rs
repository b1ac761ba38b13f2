//! Whether everything works, out of the way: one quiet indicator when all is well, a banner
//! that says what does not work for the person when something is down, and the services'
//! details (each up or down, the facade's retries and failed calls since it started) behind a
//! disclosure that keyboard and touch open as well as a mouse.

use leptos::prelude::*;
use msglog_proto::v1::{ServiceState, StatusResponse};

use web_sys::Element;

use crate::{
    dom::{Slot, h},
    error::ApiError,
};

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

/// The banner, in its place at the end of `parent`'s children so far, shown while something
/// the person relies on is down.
pub(crate) fn trouble_banner(parent: &Element, status: Status) {
    let slot = Slot::new(parent);
    let banner = h("p").class("trouble").attr("role", "alert").el();
    Effect::new(move |_| {
        let trouble = status.with(trouble);
        if let Some((what, text)) = trouble {
            let _ = banner.set_attribute("data-down", what);
            banner.set_text_content(Some(text));
        }
        slot.show(&banner, trouble.is_some());
    });
}

/// The indicator, with the services' details behind it.
pub(crate) fn status_strip(status: Status) -> Element {
    let health = h("details")
        .class("health")
        .attr("data-state", "unknown")
        .el();
    draw(health.clone(), status);
    health
}

/// The indicator's parts, drawn into `health` and kept up to date with
/// `status` in place: the summary a person opens, and a row for each service.
fn draw(health: Element, status: Status) {
    let words = h("span").class("health-text").el();
    let summary = h("summary")
        .child(&h("span").class("dot").attr("aria-hidden", "true").el())
        .child(&words);
    let pills = SERVICES.map(|name| {
        let (state, detail) = (
            h("span").class("state").el(),
            h("span").class("pill-detail").el(),
        );
        let pill = h("li")
            .class("pill")
            .attr("data-service", name)
            .child(&h("span").class("dot").attr("aria-hidden", "true").el())
            .child(&h("span").class("name").text(name).el())
            .child(&state)
            .child(&detail)
            .el();
        (pill, state, detail)
    });
    let mut list = h("ul").class("status").attr("aria-label", "Services");
    for (pill, ..) in &pills {
        list = list.child(pill);
    }
    let calls = h("p").class("calls").el();
    let panel = h("div").class("health-panel").child(&list.el()).el();
    let _ = health.append_child(&summary.el());
    let _ = health.append_child(&panel);
    Effect::new(move |_| {
        status.with(|answer| {
            let (state, said) = summary_of(answer);
            let _ = health.set_attribute("data-state", state);
            words.set_text_content(Some(said));
            for ((pill, state, detail), (up, said)) in pills.iter().zip(services(answer)) {
                let up = match up {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "unknown",
                };
                let _ = pill.set_attribute("data-state", up);
                state.set_text_content(Some(up));
                detail.set_text_content(Some(&said));
            }
            // Retries and failed calls to logging since the facade started.
            match answer {
                Some(Ok(StatusResponse {
                    calls: Some(counts),
                    ..
                })) => {
                    let (retries, errors) = (counts.retries, counts.errors);
                    let _ = calls.set_attribute("data-retries", &retries.to_string());
                    let _ = calls.set_attribute("data-errors", &errors.to_string());
                    calls.set_text_content(Some(&format!(
                        "Since the facade last started: {retries} retries · {errors} errors"
                    )));
                    let _ = panel.append_child(&calls);
                }
                _ => calls.remove(),
            }
        });
    });
}

/// The services, in the order the indicator shows them.
const SERVICES: [&str; 3] = ["facade", "logging", "messages"];

/// The indicator's state and words.
fn summary_of(answer: &Option<Result<StatusResponse, ApiError>>) -> (&'static str, &'static str) {
    match answer {
        None => ("unknown", "Checking…"),
        Some(_) if trouble(answer).is_some() => ("down", "Not working"),
        Some(Ok(status)) if !status.messages.as_ref().is_some_and(|m| m.up) => {
            ("partly", "Mostly working")
        }
        Some(_) => ("up", "All working"),
    }
}

/// Each service (of [`SERVICES`]): up, down or unknown (`None`), and what it says.
fn services(answer: &Option<Result<StatusResponse, ApiError>>) -> [(Option<bool>, String); 3] {
    let said = |state: &Option<ServiceState>| match state {
        Some(state) => (Some(state.up), state.detail.clone()),
        None => (Some(false), "?".to_owned()),
    };
    let unknown = |why: &str| (None, why.to_owned());
    match answer {
        None => [(); 3].map(|()| unknown("checking…")),
        Some(Ok(status)) => [
            said(&status.facade),
            said(&status.logging),
            said(&status.messages),
        ],
        // No answer from the facade: it is down, and what lies behind it is unknown.
        Some(Err(error)) => [
            (Some(false), error.to_string()),
            unknown("unknown while the facade is down"),
            unknown("unknown while the facade is down"),
        ],
    }
}
