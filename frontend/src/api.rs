//! The facade's gRPC API (`msglog.v1.MessageLog`) over gRPC-web, on the page's own origin
//! ([`crate::grpc_web`]). The page speaks nothing else, so it carries no JSON code.

use std::{cell::Cell, rc::Rc, time::Duration};

use leptos::prelude::*;

use msglog_proto::v1::{
    ListRequest, ListResponse, SendRequest, SendResponse, StatusRequest, StatusResponse,
    WatchEvent, WatchRequest,
};

use crate::{
    error::ApiError,
    grpc_web::{self, Stream},
};

/// A call unanswered for this long is shown as waiting (see [`waiting`]).
const SLOW: Duration = Duration::from_secs(5);

thread_local! {
    // Counted, not owned by a view: it lives as long as the page.
    static WAITING: ArcRwSignal<u32> = ArcRwSignal::new(0);
}

/// Calls to the facade that have waited longer than [`SLOW`] for an answer, now. A browser
/// holds back requests to a site beyond its few connections, and says nothing: the page says
/// it instead.
pub(crate) fn waiting() -> ArcRwSignal<u32> {
    WAITING.with(ArcRwSignal::clone)
}

/// Held while a call waits for its answer: from [`SLOW`] on, the call counts in [`waiting`]
/// until this is dropped. (A guard rather than a wrapper of the call's future: one piece of
/// code for every call, where a generic wrapper would be compiled again for each.)
pub(crate) struct Noticed(Rc<Cell<u8>>);

/// Not yet counted; counted; answered.
const PENDING: u8 = 0;
const COUNTED: u8 = 1;
const ANSWERED: u8 = 2;

/// Starts noticing a call that begins now.
pub(crate) fn notice() -> Noticed {
    let state = Rc::new(Cell::new(PENDING));
    let timer = Rc::clone(&state);
    leptos::task::spawn_local(async move {
        gloo_timers::future::sleep(SLOW).await;
        if timer.get() == PENDING {
            timer.set(COUNTED);
            waiting().update(|count| *count += 1);
        }
    });
    Noticed(state)
}

impl Drop for Noticed {
    fn drop(&mut self) {
        if self.0.replace(ANSWERED) == COUNTED {
            waiting().update(|count| *count = count.saturating_sub(1));
        }
    }
}

/// The path of a method of the facade's service.
macro_rules! method {
    ($name:literal) => {
        concat!("/msglog.v1.MessageLog/", $name)
    };
}

/// `Send`: stores a message under its idempotency key (every send of one message carries the
/// same key, so it is stored once however often it is sent).
pub(crate) async fn send(text: String, idempotency_key: String) -> Result<SendResponse, ApiError> {
    let request = SendRequest {
        text,
        idempotency_key,
    };
    let _noticed = notice();
    grpc_web::unary(method!("Send"), &request).await
}

/// `Status`: the services at a glance.
pub(crate) async fn status() -> Result<StatusResponse, ApiError> {
    let _noticed = notice();
    grpc_web::unary(method!("Status"), &StatusRequest {}).await
}

/// `List`: one page of the log.
pub(crate) async fn list(request: ListRequest) -> Result<ListResponse, ApiError> {
    let _noticed = notice();
    grpc_web::unary(method!("List"), &request).await
}

/// `Watch`: the log from a seq on, live; noticed until the stream opens.
pub(crate) async fn watch(request: WatchRequest) -> Result<Stream<WatchEvent>, ApiError> {
    let _noticed = notice();
    grpc_web::stream(method!("Watch"), &request).await
}
