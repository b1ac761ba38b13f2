//! The request id: returned to the client and passed to logging in gRPC metadata.

use std::sync::{Arc, Mutex};

use msglog_common::testing::InProcess;
use msglog_proto::logging::{
    Empty, LogRequest, LogResponse, MessagesResponse,
    logging_service_server::{LoggingService, LoggingServiceServer},
};
use tonic::{Request, Response, Status};

use crate::helpers::{Client, TestApp, facade_settings, listener, spawn_facade, spawn_messages};

/// A logging stand-in that records the `x-request-id` of every call.
#[derive(Clone, Default)]
struct RecordingLogging {
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl RecordingLogging {
    fn record<T>(&self, request: &Request<T>) {
        let id = request
            .metadata()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        self.seen.lock().unwrap().push(id);
    }
}

#[tonic::async_trait]
impl LoggingService for RecordingLogging {
    async fn log_message(
        &self,
        request: Request<LogRequest>,
    ) -> Result<Response<LogResponse>, Status> {
        self.record(&request);
        Ok(Response::new(LogResponse {
            status: "Message logged successfully".to_owned(),
        }))
    }

    async fn get_messages(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<MessagesResponse>, Status> {
        self.record(&request);
        Ok(Response::new(MessagesResponse { messages: vec![] }))
    }
}

#[tokio::test]
async fn the_clients_request_id_is_returned_and_passed_to_logging() {
    let recorder = RecordingLogging::default();
    let listener = listener().await;
    let logging = InProcess::spawn(listener.local_addr().unwrap(), {
        let recorder = recorder.clone();
        |stop| async move {
            tonic::transport::Server::builder()
                .add_service(LoggingServiceServer::new(recorder))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    stop,
                )
                .await?;
            Ok(())
        }
    });
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let client = Client::new(&facade);

    let response = client
        .http
        .post(format!("{}/send_message", client.base))
        .header("x-request-id", "req-abc-123")
        .json(&serde_json::json!({"message": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");

    let response = client
        .http
        .get(format!("{}/get_messages", client.base))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![Some("req-abc-123".to_owned()), Some(generated)]);
}

#[tokio::test]
async fn errors_carry_the_request_id_header_too() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/send_message"))
        .header("x-request-id", "bad-input-1")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-request-id"], "bad-input-1");
}
