//! The request id: one rule for all three services. A client's short visible-ASCII id is
//! returned and passed on; anything else is replaced once, by the facade, and the one id it
//! settled on reaches logging (gRPC metadata) and messages (a header). A huge id hurts no one.

use std::sync::{Arc, Mutex};

use msglog_common::testing::InProcess;
use msglog_proto::logging::{
    Empty, ListMessagesRequest, ListMessagesResponse, LogRequest, LogResponse, MessagesResponse,
    logging_service_server::LoggingService,
};
use tonic::{Request, Response, Status};

use crate::helpers::{
    Client, TestApp, facade_settings, listener, spawn_facade, spawn_logging_stand_in,
    spawn_messages,
};

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
            held_id: String::new(),
        }))
    }

    // As the original: no `LogMessages`, so the facade sends each message alone.
    async fn log_messages(
        &self,
        _request: Request<msglog_proto::logging::LogMessagesRequest>,
    ) -> Result<Response<msglog_proto::logging::LogMessagesResponse>, Status> {
        Err(Status::unimplemented("not in the original"))
    }

    async fn get_messages(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<MessagesResponse>, Status> {
        self.record(&request);
        Ok(Response::new(MessagesResponse { messages: vec![] }))
    }

    // The facade's live feed calls these on its own, with no request behind them: not
    // recorded.
    async fn list_messages(
        &self,
        _request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        Err(Status::unimplemented("not recorded"))
    }

    type WatchMessagesStream =
        tokio_stream::Empty<Result<msglog_proto::logging::WatchMessagesResponse, Status>>;

    async fn watch_messages(
        &self,
        _request: Request<msglog_proto::logging::WatchMessagesRequest>,
    ) -> Result<Response<Self::WatchMessagesStream>, Status> {
        Err(Status::unimplemented("not recorded"))
    }
}

/// A logging stand-in on any port, recording the `x-request-id` of every call.
async fn spawn_recording_logging() -> (InProcess, RecordingLogging) {
    let recorder = RecordingLogging::default();
    (spawn_logging_stand_in(recorder.clone()).await, recorder)
}

/// A messages stand-in on any port, recording the `x-request-id` of every request.
async fn spawn_recording_messages() -> (InProcess, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let router = axum::Router::new().route(
        "/get_message",
        axum::routing::get({
            let seen = Arc::clone(&seen);
            move |headers: http::HeaderMap| async move {
                let id = headers
                    .get("x-request-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                seen.lock().unwrap().push(id);
                "not implemented yet"
            }
        }),
    );
    let listener = listener().await;
    let messages = InProcess::spawn(listener.local_addr().unwrap(), |stop| async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await?;
        Ok(())
    });
    (messages, seen)
}

#[tokio::test]
async fn the_clients_request_id_is_returned_and_passed_to_logging() {
    let (logging, recorder) = spawn_recording_logging().await;
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

#[tokio::test]
async fn an_unusable_id_is_replaced_once_and_the_same_id_reaches_logging_and_messages() {
    let (logging, recorder) = spawn_recording_logging().await;
    let (messages, messages_seen) = spawn_recording_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let client = Client::new(&facade);
    let too_long = "r".repeat(129);
    for unusable in ["ключ".as_bytes(), too_long.as_bytes(), b"with space"] {
        let response = client
            .http
            .get(format!("{}/get_messages", client.base))
            .header(
                "x-request-id",
                http::HeaderValue::from_bytes(unusable).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let settled = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&settled).is_ok(), "{settled}");
        assert_eq!(
            recorder.seen.lock().unwrap().pop(),
            Some(Some(settled.clone())),
            "logging got the settled id"
        );
        assert_eq!(
            messages_seen.lock().unwrap().pop(),
            Some(Some(settled)),
            "messages got the settled id"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kb_request_id_breaks_no_one_elses_request() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(100 * 1024);
    // Eight clients post while the huge id is sent again and again.
    let posters: Vec<_> = (0..8)
        .map(|client| {
            let (http, url) = (app.http.clone(), app.url("/send_message"));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for n in 0..40 {
                    let response = http
                        .post(&url)
                        .json(&serde_json::json!({ "message": format!("c{client}-{n}") }))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(response.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    for n in 0..20 {
        let request = if n % 2 == 0 {
            app.http.get(app.url("/get_messages"))
        } else {
            app.http
                .post(app.url("/send_message"))
                .json(&serde_json::json!({ "message": format!("huge-id-{n}") }))
        };
        let response = request.header("x-request-id", &huge).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "the offending request itself is served"
        );
        let settled = response.headers()["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(settled).is_ok(),
            "a fresh id, not the huge one"
        );
    }
    for poster in posters {
        let statuses = poster.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    assert_eq!(app.stored().await.len(), 8 * 40 + 10);
}
