//! The logging service as a real server on port 0, called over gRPC (HTTP/2), raw HTTP/2
//! frames, gRPC-web (HTTP/1.1), CORS preflights, health and bad inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use msglog_common::testing::{GrpcWebFrame, GrpcWebFrames, grpc_frame};
use msglog_proto::logging::{Empty, LogResponse};
use prost::Message as _;
use tonic::Code;

const ID: &str = "0e4b6c1a-5d7f-4e3a-9b2c-8f1d0a6e7c35";

mod support;
use support::{ALLOWED_ORIGIN, TestLogging, log_request, settings};

/// Takes a whole gRPC-web body (binary or text) apart: its message payloads and its trailer
/// block; every byte must belong to a frame.
fn split_grpc_web(mut frames: GrpcWebFrames, body: &[u8]) -> (Vec<Vec<u8>>, String) {
    frames.push(body);
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while let Some(frame) = frames.next_frame() {
        match frame {
            GrpcWebFrame::Message(payload) => messages.push(payload),
            GrpcWebFrame::Trailers(block) => trailers.push_str(&block),
        }
    }
    assert!(frames.is_empty(), "trailing bytes in a gRPC-web body");
    (messages, trailers)
}

#[tokio::test]
async fn the_originals_calls_work_with_a_generated_client() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;

    let first = client.log_message(log_request(ID, "msg2")).await.unwrap();
    assert_eq!(first.into_inner().status, "Message logged successfully");
    let again = client.log_message(log_request(ID, "msg2")).await.unwrap();
    assert_eq!(again.into_inner().status, "Duplicate message ignored");
    let other = "3b8f0c2e-1111-4a2b-8c3d-4e5f60718293";
    client
        .log_message(log_request(other, "different message"))
        .await
        .unwrap();

    let listed = client.get_messages(Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.messages, vec!["msg2", "different message"]);
}

#[tokio::test]
async fn a_raw_http2_call_to_the_originals_method_path_works() {
    let server = TestLogging::start().await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("{}/LoggingService/LogMessage", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(grpc_frame(
            &log_request(ID, "raw").encode_to_vec(),
        ))))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("gRPC answers with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    let body = collected.to_bytes();
    assert_eq!(body[0], 0, "uncompressed frame");
    let answer = LogResponse::decode(&body[5..]).unwrap();
    assert_eq!(answer.status, "Message logged successfully");
}

#[tokio::test]
async fn a_grpc_web_call_over_http1_works() {
    let server = TestLogging::start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/LoggingService/LogMessage", server.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_frame(
            &log_request(ID, "from a browser").encode_to_vec(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web")
    );
    let body = response.bytes().await.unwrap();
    let (messages, trailers) = split_grpc_web(GrpcWebFrames::binary(), &body);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        LogResponse::decode(messages[0].as_slice()).unwrap().status,
        "Message logged successfully"
    );
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");

    // And the message is there for a native gRPC client.
    let listed = server.client().await.get_messages(Empty {}).await.unwrap();
    assert_eq!(listed.into_inner().messages, vec!["from a browser"]);
}

#[tokio::test]
async fn a_grpc_web_text_call_works_too() {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let server = TestLogging::start().await;
    let frame = grpc_frame(&log_request(ID, "as text").encode_to_vec());
    let response = reqwest::Client::new()
        .post(format!("{}/LoggingService/LogMessage", server.url()))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .body(base64.encode(&frame))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web-text")
    );
    // The answer is base64, each frame encoded on its own.
    let text = response.text().await.unwrap();
    let (messages, trailers) = split_grpc_web(GrpcWebFrames::text(), text.as_bytes());
    assert_eq!(
        LogResponse::decode(messages[0].as_slice()).unwrap().status,
        "Message logged successfully"
    );
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
}

#[tokio::test]
async fn cors_preflight_is_answered_for_an_allowed_origin_only() {
    let server = TestLogging::start().await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/LoggingService/GetMessages", server.url()),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent",
            )
            .send()
    };

    let allowed = preflight(ALLOWED_ORIGIN).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed_headers.contains("x-grpc-web"), "{allowed_headers}");

    let denied = preflight("http://elsewhere.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // The real call from the allowed origin carries the header and exposes grpc-status.
    let call = reqwest::Client::new()
        .post(format!("{}/LoggingService/GetMessages", server.url()))
        .header("origin", ALLOWED_ORIGIN)
        .header("content-type", "application/grpc-web+proto")
        .body(grpc_frame(&Empty {}.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        call.headers()["access-control-allow-origin"],
        ALLOWED_ORIGIN
    );
    let exposed = call.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("grpc-status"), "{exposed}");
}

#[tokio::test]
async fn no_origin_is_allowed_cross_origin_by_default() {
    let server = TestLogging::start_with(settings(&[])).await;
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/LoggingService/GetMessages", server.url()),
        )
        .header("origin", ALLOWED_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_logging_service() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let server = TestLogging::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "LoggingService"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
}

#[tokio::test]
async fn reflection_lists_the_logging_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestLogging::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer {answer:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"LoggingService".to_owned()), "{names:?}");
    // Only what this service serves: the gateway's API lives in the facade.
    assert!(
        !names.iter().any(|name| name.starts_with("msglog.v1")),
        "{names:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_the_service_stays_up() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;

    let cases = [
        (
            log_request("not-a-uuid", "hi"),
            Code::InvalidArgument,
            "id must be a UUID",
        ),
        (
            log_request("", "hi"),
            Code::InvalidArgument,
            "id must be a UUID",
        ),
        (
            log_request(ID, ""),
            Code::InvalidArgument,
            "must not be empty",
        ),
        (
            log_request(ID, "   "),
            Code::InvalidArgument,
            "must not be empty",
        ),
        (
            log_request(ID, &"x".repeat(1025)),
            Code::InvalidArgument,
            "the limit is 1024 bytes",
        ),
    ];
    for (request, code, text) in cases {
        let status = client.log_message(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), code, "{request:?}");
        assert!(status.message().contains(text), "{}", status.message());
    }

    // Same id, other text: refused, and the first text stays.
    client.log_message(log_request(ID, "first")).await.unwrap();
    let status = client
        .log_message(log_request(ID, "second"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    // A frame far over the limit is refused before it is decoded.
    let status = client
        .log_message(log_request(ID, &"x".repeat(8 * 1024 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    let listed = client.get_messages(Empty {}).await.unwrap().into_inner();
    assert_eq!(listed.messages, vec!["first"]);
}

#[tokio::test]
async fn malformed_protobuf_is_refused_and_the_service_stays_up() {
    let server = TestLogging::start().await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    // Field 1 declared as a 100-byte string, but only 3 bytes follow.
    let garbage = [0x0a, 100, b'a', b'b', b'c'];
    let request = http::Request::post(format!("{}/LoggingService/LogMessage", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(grpc_frame(&garbage))))
        .unwrap();
    let response = client.request(request).await.unwrap();
    // A trailers-only answer carries the status in the headers, a full one in the trailers.
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let collected = response.into_body().collect().await.unwrap();
    let status = status.or_else(|| {
        collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .map(|v| v.to_str().unwrap().to_owned())
    });
    assert_eq!(
        status.as_deref(),
        Some("13"),
        "INTERNAL: the message cannot be decoded"
    );

    let mut client = server.client().await;
    client
        .log_message(log_request(ID, "still up"))
        .await
        .unwrap();
}

#[tokio::test]
async fn list_messages_walks_every_page_both_ways_with_no_gap_or_double() {
    use msglog_proto::logging::ListMessagesRequest;

    let server = TestLogging::start().await;
    let mut client = server.client().await;
    let texts: Vec<_> = (0..250).map(|n| format!("m{n}")).collect();
    for (n, text) in texts.iter().enumerate() {
        let id = uuid::Uuid::from_u128(n as u128 + 1).to_string();
        client.log_message(log_request(&id, text)).await.unwrap();
    }
    for backward in [false, true] {
        let mut walked = Vec::new();
        let mut cursor = 0;
        let mut pages = 0;
        loop {
            let page = client
                .list_messages(ListMessagesRequest {
                    cursor,
                    limit: 100,
                    backward,
                    texts_only: false,
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.messages.windows(2).all(|p| p[0].seq < p[1].seq));
            if backward {
                walked.splice(0..0, page.messages);
            } else {
                walked.extend(page.messages);
            }
            match page.next_cursor {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(
            pages, 3,
            "250 messages in pages of 100 (backward: {backward})"
        );
        let got: Vec<_> = walked.iter().map(|m| m.message.clone()).collect();
        assert_eq!(got, texts, "backward: {backward}");
        assert!(walked.windows(2).all(|p| p[0].seq < p[1].seq));
        assert_eq!(walked[0].id, uuid::Uuid::from_u128(1).to_string());
    }

    // The default page, and a limit over the maximum.
    let default = client
        .list_messages(ListMessagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default.messages.len(), 100);
    // Texts only: the same page's texts alone.
    let texts_only = client
        .list_messages(ListMessagesRequest {
            texts_only: true,
            ..ListMessagesRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(texts_only.next_cursor, default.next_cursor);
    assert!(texts_only.messages.is_empty());
    let texts: Vec<_> = default.messages.iter().map(|m| m.message.clone()).collect();
    assert_eq!(texts_only.texts, texts);
    let status = client
        .list_messages(ListMessagesRequest {
            cursor: 0,
            limit: 1001,
            backward: false,
            texts_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at most 1000"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn log_messages_answers_each_item_over_grpc_and_grpc_web() {
    use msglog_proto::logging::{LogItem, LogMessagesRequest, LogMessagesResponse};
    const OTHER: &str = "7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let item = |id: &str, text: &str| LogItem {
        message: Some(log_request(id, text)),
        request_id: "batch-test".to_owned(),
        attempt: 1,
    };
    let server = TestLogging::start().await;

    // Native gRPC: a new message, the same again, and a conflict, each answered for itself.
    let results = server
        .client()
        .await
        .log_messages(LogMessagesRequest {
            items: vec![item(ID, "one"), item(ID, "one"), item(ID, "another")],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let answers: Vec<_> = results
        .iter()
        .map(|result| (Code::from(result.code), result.status.as_str()))
        .collect();
    assert_eq!(answers[0], (Code::Ok, "Message logged successfully"));
    assert_eq!(answers[1], (Code::Ok, "Duplicate message ignored"));
    assert_eq!(answers[2].0, Code::AlreadyExists);

    // gRPC-web over HTTP/1.1: a new message and a bad id.
    let body = LogMessagesRequest {
        items: vec![item(OTHER, "two"), item("not-a-uuid", "three")],
    }
    .encode_to_vec();
    let response = reqwest::Client::new()
        .post(format!("{}/LoggingService/LogMessages", server.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_frame(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let (messages, trailers) = split_grpc_web(GrpcWebFrames::binary(), &body);
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    let results = LogMessagesResponse::decode(messages[0].as_slice())
        .unwrap()
        .results;
    assert_eq!(Code::from(results[0].code), Code::Ok);
    assert_eq!(Code::from(results[1].code), Code::InvalidArgument);

    // Only the valid new messages are stored, once each.
    let listed = server.client().await.get_messages(Empty {}).await.unwrap();
    assert_eq!(listed.into_inner().messages, vec!["one", "two"]);
}
