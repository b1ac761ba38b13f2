//! `GET /get_messages`, streamed: the original's answer, byte for byte, written page by page as
//! the client reads it.
//!
//! The list is read from logging with `ListMessages`, a page of [`PAGE`] messages at a time
//! (each page retried as any read, and only its texts asked for), and each page is
//! written out before the next is asked for. So the facade and logging hold one page per
//! request, not the whole log several times over (the gRPC answer, the texts, the JSON, its
//! compression), and the first bytes leave at once. Every message committed before the request came is in the answer, once, in order;
//! one committed while it is being read may be too.
//!
//! The first page and the messages service's text are fetched before the answer starts, so a
//! logging that fails at once is still the original's JSON 500. A failure after that (logging
//! gone for good between two pages) can no longer change the status: the answer is cut off
//! without its end, so no client takes a partial list for a whole one.
//!
//! A logging service without `ListMessages` (the original's) is read with `GetMessages`, whole.

use axum::{
    Json,
    body::{Body, Bytes},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt as _;
use http::{HeaderValue, header};
use msglog_proto::{api::GetMessagesResponse, logging::ListMessagesRequest};
use tonic::Code;

use crate::{
    error::AppError,
    retry::{Attempted, RetryFailure},
    state::AppState,
};

/// Messages per page read from logging.
pub(crate) const PAGE: u32 = 1000;

/// The answer to `GET /get_messages`.
#[tracing::instrument(skip_all)]
pub(crate) async fn get_messages(
    state: AppState,
    request_id: String,
) -> Result<Response, AppError> {
    if state.logging.lacks_pages() {
        return whole(&state, &request_id).await;
    }
    let (first, from_service) = tokio::join!(
        state.logging.list_messages(page_after(0), &request_id),
        state.messages.get_message(&request_id),
    );
    let from_service = message_from_service(from_service);
    let first = match first {
        Ok(first) => first.value,
        Err(failure) if failure.status.code() == Code::Unimplemented => {
            state.calls.answered_another_way();
            // The messages service has answered already: only the list is read again.
            let logged = state.logging.get_messages(&request_id).await;
            return whole_answer(logged, from_service);
        }
        Err(failure) => return Err(AppError::GetMessages(failure)),
    };
    let listing = Listing {
        state,
        request_id,
        first: Some(first.texts),
        next: first.next_cursor,
        written: 0,
        tail: Some(from_service),
    };
    // Fused: the compression layer may ask again after the end.
    let body = futures_util::stream::unfold(listing, |mut listing| async move {
        listing.next_chunk().await.map(|chunk| (chunk, listing))
    })
    .fuse();
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from_stream(body),
    )
        .into_response())
}

/// The original's way: the whole list in one `GetMessages` call.
async fn whole(state: &AppState, request_id: &str) -> Result<Response, AppError> {
    let (logged, from_service) = tokio::join!(
        state.logging.get_messages(request_id),
        state.messages.get_message(request_id),
    );
    whole_answer(logged, message_from_service(from_service))
}

/// The whole list's answer, or the original's 500 when logging failed.
fn whole_answer(
    logged: Result<Attempted<Vec<String>>, RetryFailure>,
    message_from_service: String,
) -> Result<Response, AppError> {
    let logged = logged.map_err(AppError::GetMessages)?;
    Ok(Json(GetMessagesResponse {
        logged_messages: logged.value,
        message_from_service,
    })
    .into_response())
}

/// The messages service's text, or the original's error text when it failed.
fn message_from_service<E: std::fmt::Display>(answer: Result<String, E>) -> String {
    answer.unwrap_or_else(|error| {
        tracing::warn!(%error, "messages service failed");
        format!("Messages service error: {error}")
    })
}

fn page_after(cursor: u64) -> ListMessagesRequest {
    ListMessagesRequest {
        cursor,
        limit: PAGE,
        backward: false,
        texts_only: true,
    }
}

/// One answer being written.
struct Listing {
    state: AppState,
    request_id: String,
    /// The first page, until written.
    first: Option<Vec<String>>,
    /// The cursor of the next page to read; `None` once the last was read.
    next: Option<u64>,
    /// Messages written so far.
    written: u64,
    /// The messages service's text, until the end is written; `None` once the answer ended.
    tail: Option<String>,
}

impl Listing {
    /// The next piece of the answer; `None` after its end, or after a failure.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if let Some(first) = self.first.take() {
            let mut chunk = br#"{"logged_messages":["#.to_vec();
            self.write(&mut chunk, &first);
            return Some(Ok(chunk.into()));
        }
        if let Some(cursor) = self.next.take() {
            return match self
                .state
                .logging
                .list_messages(page_after(cursor), &self.request_id)
                .await
            {
                Ok(page) => {
                    let page = page.value;
                    self.next = page.next_cursor;
                    let mut chunk = Vec::new();
                    self.write(&mut chunk, &page.texts);
                    Some(Ok(chunk.into()))
                }
                Err(failure) => {
                    tracing::error!(
                        written = self.written,
                        code = ?failure.status.code(),
                        message = failure.status.message(),
                        "logging failed in the middle of a list; the answer is cut off"
                    );
                    self.tail = None;
                    Some(Err(std::io::Error::other(format!(
                        "logging failed after {} messages",
                        self.written
                    ))))
                }
            };
        }
        let tail = self.tail.take()?;
        let mut chunk = br#"],"message_from_service":"#.to_vec();
        push_json_string(&mut chunk, &tail);
        chunk.push(b'}');
        Some(Ok(chunk.into()))
    }

    /// Appends `texts` as JSON strings of the array, each after a comma but the first.
    fn write(&mut self, chunk: &mut Vec<u8>, texts: &[String]) {
        chunk.reserve(texts.iter().map(|text| text.len() + 3).sum());
        for text in texts {
            if self.written > 0 {
                chunk.push(b',');
            }
            push_json_string(chunk, text);
            self.written += 1;
        }
    }
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a `str` to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_the_json_answer_escapes_them() {
        let text = "quote \" backslash \\ newline \n tab \t control \u{1} unicode é 🦀";
        let mut out = Vec::new();
        push_json_string(&mut out, text);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(text).unwrap()
        );
    }
}
