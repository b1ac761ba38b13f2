//! Logging is not public: it listens on loopback by default, and with `--token-file` every call
//! but the health check must present the token, over gRPC and gRPC-web alike; reflection is a
//! setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use msglog_common::testing::TempDir;
use msglog_proto::logging::{Empty, logging_service_client::LoggingServiceClient};
use tonic::{Code, metadata::MetadataValue};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

mod support;
use support::{TestLogging, log_request, settings};

const TOKEN: &str = "a-token-of-the-deployment-0123456789";

/// A logging that requires `TOKEN`, and the directory holding its file.
async fn logging_with_token(extra: &[&str]) -> (TestLogging, TempDir) {
    let dir = TempDir::new("msglog-token");
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let mut args = vec!["--token-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    (TestLogging::start_with(settings(&args)).await, dir)
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    request
}

#[tokio::test]
async fn with_a_token_file_every_call_but_health_needs_the_token() {
    let (server, _dir) = logging_with_token(&[]).await;
    let mut client = server.client().await;
    let id = uuid::Uuid::from_u128(1).to_string();

    for request in [
        tonic::Request::new(log_request(&id, "hello")),
        with_token(
            log_request(&id, "hello"),
            "a-token-of-the-deployment-0123456788",
        ),
    ] {
        let status = client.log_message(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    let status = client.get_messages(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let stored = client
        .log_message(with_token(log_request(&id, "hello"), TOKEN))
        .await
        .unwrap();
    assert_eq!(stored.into_inner().status, "Message logged successfully");
    let listed = client
        .get_messages(with_token(Empty {}, TOKEN))
        .await
        .unwrap();
    assert_eq!(listed.into_inner().messages, ["hello"]);

    // Health stays open, for whatever probes the service.
    let mut health = HealthClient::new(server.channel().await);
    let answer = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);

    // gRPC-web is the same door.
    let response = reqwest::Client::new()
        .post(format!("{}/LoggingService/GetMessages", server.url()))
        .header("content-type", "application/grpc-web+proto")
        .body(msglog_common::testing::grpc_frame(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap()),
        Some("16"),
        "{response:?}"
    );
}

#[tokio::test]
async fn reflection_can_be_turned_off() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let server = TestLogging::start_with(settings(&["--reflection", "false"])).await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let status = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    // The service itself still answers.
    let mut client = LoggingServiceClient::new(server.channel().await);
    client.get_messages(Empty {}).await.unwrap();
}

#[tokio::test]
async fn a_token_file_that_is_missing_or_too_short_stops_the_start() {
    let dir = TempDir::new("msglog-token");
    let short = dir.join("short");
    std::fs::write(&short, "tiny\n").unwrap();
    let missing = dir.join("missing");
    for file in [short, missing] {
        let settings = settings(&["--token-file", file.to_str().unwrap()]);
        let error = logging_service::Application::build(&settings)
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("--token-file"), "{text}");
        assert!(!text.contains("tiny"), "the secret is never shown: {text}");
    }
}
