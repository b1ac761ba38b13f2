//! The JSON API described as an OpenAPI 3.1 document, generated from the handlers and the wire
//! types themselves (`utoipa`), so it cannot drift from them. Served at
//! `GET /api/openapi.json` with the limits in force, and checked into the repository as
//! `backend/facade/openapi.json` with the default limits (a test keeps the two equal).
//!
//! What is the same for every operation is written once, in [`document`]: the `X-Request-Id`
//! header a request may carry and every answer does, and the 503 of the request timeout.

use msglog_proto::{
    NOT_BLANK_PATTERN,
    api::{
        ApiSendMessageResponse, CallCounts, Direction, ErrorBody, FeedEvent, GetMessagesResponse,
        LiveFeedStatus, MAX_SEQ, MessagesPage, PagedMessage, SendMessageRequest,
        SendMessageResponse, SendStatus, ServiceStatus, StatusResponse,
    },
};
use serde_json::{Value, json};
use utoipa::OpenApi as _;

use crate::{
    ids::IdempotencyKey,
    routes::{self, api, original},
    state::Limits,
};

/// The operations and the schemas they name; the rest is added by [`document`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "msglog facade",
        description = "The message-logging system's public JSON API: the original's two routes \
            (`POST /send_message`, `GET /get_messages`), the page's API under `/api`, and the \
            operational routes. The same service answers gRPC and gRPC-web \
            (`msglog.v1.MessageLog`) on the same port; that API is described by its `.proto` \
            and by gRPC reflection, not here.\n\nEvery error answer is a JSON object with an \
            `error` text (`ErrorBody`). A message is stored at most once under its id; a \
            request that fails with a 5xx may be sent again unchanged (with the same \
            `Idempotency-Key`, when it had one).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        original::send_message,
        original::get_messages,
        api::send,
        api::list,
        api::status,
        routes::events::watch,
        routes::ops::healthz,
        routes::ops::metrics,
        api::openapi_json,
    ),
    components(schemas(
        SendMessageRequest,
        SendMessageResponse,
        ApiSendMessageResponse,
        SendStatus,
        GetMessagesResponse,
        MessagesPage,
        PagedMessage,
        Direction,
        StatusResponse,
        ServiceStatus,
        LiveFeedStatus,
        FeedEvent,
        CallCounts,
        ErrorBody,
    )),
    tags(
        (name = "original", description = "The original system's routes: same paths, JSON \
            shapes and status texts."),
        (name = "api", description = "The page's API: the same core, answers that say more, \
            and the list by pages."),
        (name = "operations", description = "Liveness, metrics and this document."),
    )
)]
struct ApiDoc;

/// The document with these limits, as pretty JSON ending in a newline.
pub(crate) fn document_text(limits: Limits) -> String {
    let mut text = serde_json::to_string_pretty(&document(limits))
        .unwrap_or_else(|error| unreachable!("a JSON value always serializes: {error}"));
    text.push('\n');
    text
}

/// The document with these limits.
pub(crate) fn document(limits: Limits) -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi())
        .unwrap_or_else(|error| unreachable!("the document always serializes: {error}"));
    if let Some(message) =
        document.pointer_mut("/components/schemas/SendMessageRequest/properties/message")
    {
        message["maxLength"] = json!(limits.max_message_bytes);
        message["pattern"] = json!(NOT_BLANK_PATTERN);
    }
    if let Some(stream) = document
        .pointer_mut("/paths/~1api~1messages~1watch/get/responses/200/content/text~1event-stream")
    {
        stream["schema"] = event_schema();
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            add_common(operation, limits);
        }
    }
    document
}

/// One event of `GET /api/messages/watch` (comments are not events): a message, whose `id`
/// is its seq, a `feed` event, or the `end` event, each with its data's JSON schema.
fn event_schema() -> Value {
    let event = |name: &str, data: &str, id: bool| {
        let mut properties = json!({
            "event": { "const": name },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": { "$ref": format!("#/components/schemas/{data}") },
            },
        });
        let mut required = vec!["event", "data"];
        if id {
            properties["id"] = json!({ "type": "string", "pattern": "^[0-9]+$" });
            required.push("id");
        }
        json!({ "type": "object", "properties": properties, "required": required })
    };
    json!({
        "oneOf": [
            event("message", "PagedMessage", true),
            event("feed", "FeedEvent", false),
            event("end", "ErrorBody", false),
        ]
    })
}

/// What every operation has: the request id both ways, and the request timeout's 503.
fn add_common(operation: &mut Value, limits: Limits) {
    let request_id = json!({
        "name": "X-Request-Id",
        "in": "header",
        "required": false,
        "description": format!(
            "An id for this request, returned in `x-request-id` and carried to the services \
             behind. Kept when it is 1 to {} visible ASCII characters; otherwise a new one is \
             made.",
            msglog_common::request_id::MAX_LEN
        ),
        "schema": { "type": "string" },
    });
    match operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        Some(parameters) => {
            // The bounds the code checks, from the constants it checks them with.
            for parameter in parameters.iter_mut() {
                match parameter["name"].as_str() {
                    Some("Idempotency-Key") => {
                        parameter["schema"]["maxLength"] = json!(IdempotencyKey::MAX_LEN);
                    }
                    Some("cursor" | "after") => parameter["schema"]["maximum"] = json!(MAX_SEQ),
                    // A header a client may leave out: a seq, never `null`.
                    Some("Last-Event-ID") => {
                        parameter["required"] = json!(false);
                        parameter["schema"] =
                            json!({ "type": "integer", "minimum": 0, "maximum": MAX_SEQ });
                    }
                    _ => {}
                }
            }
            parameters.push(request_id);
        }
        None => operation["parameters"] = json!([request_id]),
    }
    if let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    {
        responses.insert(
            "503".to_owned(),
            json!({
                "description": "The request took longer than the request timeout \
                    (`--request-timeout-ms`).",
                "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/ErrorBody" }
                } },
            }),
        );
        for response in responses.values_mut() {
            response["headers"]["x-request-id"] = json!({
                "description": "The request's id: the client's `X-Request-Id` when valid, \
                    else a new one.",
                "required": true,
                "schema": { "type": "string" },
            });
        }
    }
    if let Some(body) = operation.pointer_mut("/requestBody") {
        body["description"] = json!(format!(
            "At most {} bytes (`--max-body-bytes`); larger is answered 413.",
            limits.max_body_bytes
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

    /// The file in the repository is what the code generates. `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = document_text(Limits::default());
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).expect("write openapi.json");
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "backend/facade/openapi.json differs from the generated document: run \
             `UPDATE_OPENAPI=1 cargo test -p facade-service openapi` and commit it"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_json_route() {
        let document = document(Limits::default());
        assert_eq!(document["openapi"], "3.1.0");
        let mut operations: Vec<String> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
            .collect();
        operations.sort();
        assert_eq!(
            operations,
            [
                "GET /api/messages",
                "GET /api/messages/watch",
                "GET /api/openapi.json",
                "GET /api/status",
                "GET /get_messages",
                "GET /healthz",
                "GET /metrics",
                "POST /api/messages",
                "POST /send_message",
            ]
        );
    }

    #[test]
    fn the_served_limits_are_the_ones_in_force() {
        let limits = Limits {
            max_body_bytes: 1000,
            max_message_bytes: 10,
        };
        let document = document(limits);
        let message =
            &document["components"]["schemas"]["SendMessageRequest"]["properties"]["message"];
        assert_eq!(message["maxLength"], 10);
        assert_eq!(message["pattern"], NOT_BLANK_PATTERN);
        let body = &document["paths"]["/send_message"]["post"]["requestBody"]["description"];
        assert!(
            body.as_str()
                .is_some_and(|text| text.contains("1000 bytes"))
        );
    }

    #[test]
    fn every_answer_declares_its_request_id_and_the_timeout() {
        let document = document(Limits::default());
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let responses = operation["responses"].as_object().expect("responses");
                assert!(responses.contains_key("503"), "{method} {path}");
                for (status, response) in responses {
                    assert!(
                        response["headers"]["x-request-id"].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
