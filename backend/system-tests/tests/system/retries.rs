//! Retries against a logging service that is absent, late, restarted, hung or flaky.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use facade_service::DedupMode;
use logging_service::store::faulty::{Fault, FaultyStore};
use msglog_common::testing::TempDir;
use serde_json::json;
use tokio::sync::oneshot;

use crate::helpers::{
    Client, facade_settings, listener, logging_settings, refused_addr, spawn_facade,
    spawn_logging_over, spawn_logging_with, spawn_messages, status_and_json,
};

/// Slack for the scheduler on a loaded machine: the bound proven is "the deadline plus this",
/// which no retry loop without a deadline would meet.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn logging_absent_answers_json_500_after_exactly_max_attempts_within_the_deadline() {
    let messages = spawn_messages().await;
    let logging_url = format!("http://{}", refused_addr().await);
    let settings = facade_settings(&logging_url, &messages.url());
    let deadline = settings.retry_policy().deadline;
    let facade = spawn_facade(settings).await;
    let client = Client::new(&facade);

    let started = Instant::now();
    let (status, body) = client.post_message("msg2").await;
    let elapsed = started.elapsed();

    assert_eq!(status, 500);
    assert_eq!(body["attempts"], 3);
    assert_eq!(body["code"], "UNAVAILABLE");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Logging service error: UNAVAILABLE after 3 attempts"),
        "{error}"
    );
    assert!(elapsed < deadline + SLACK, "took {elapsed:?}");
}

#[tokio::test]
async fn a_dead_logging_drains_the_retry_budget_so_later_posts_make_one_attempt() {
    let messages = spawn_messages().await;
    let logging_url = format!("http://{}", refused_addr().await);
    let facade = spawn_facade(facade_settings(&logging_url, &messages.url())).await;
    let client = Client::new(&facade);
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let (status, body) = client.post_message("x").await;
        assert_eq!(status, 500);
        attempts.push(body["attempts"].as_u64().unwrap());
    }
    // 10 tokens, one per failed attempt, retries only above 5.
    assert_eq!(attempts, vec![3, 2, 1, 1]);
}

#[tokio::test]
async fn conflicts_leave_the_retry_budget_to_the_failures_it_is_for() {
    let store = Arc::new(FaultyStore::new(Fault::None));
    let logging = spawn_logging_over(store.clone()).await;
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let client = Client::new(&facade);
    let post = |text: &'static str| {
        let request = client
            .http
            .post(format!("{}/send_message", client.base))
            .header("idempotency-key", "order-42")
            .json(&json!({ "message": text }));
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    assert_eq!(post("pay").await.0, 200);
    // As many conflicts as the budget holds tokens: each a failed call, none a sign that
    // logging is in trouble.
    for _ in 0..10 {
        let (status, body) = post("pay twice").await;
        assert_eq!(status, 422, "{body}");
    }

    store.set(Fault::Unavailable);
    let (status, body) = client.post_message("lost").await;
    assert_eq!(
        (status, body["attempts"].as_u64()),
        (500, Some(3)),
        "{body}"
    );
}

#[tokio::test]
async fn a_hung_logging_is_cut_off_by_the_deadline() {
    let messages = spawn_messages().await;
    // Bound but never served: connections wait in the backlog and no answer ever comes.
    let hung = listener().await;
    let settings = facade_settings(
        &format!("http://{}", hung.local_addr().unwrap()),
        &messages.url(),
    );
    let deadline = settings.retry_policy().deadline;
    let facade = spawn_facade(settings).await;

    let started = Instant::now();
    let (status, body) = Client::new(&facade).post_message("msg").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 500);
    // Whether the connection or the call is deemed stuck, both are retried until the deadline.
    let code = body["code"].as_str().unwrap();
    assert!(
        ["DEADLINE_EXCEEDED", "UNAVAILABLE"].contains(&code),
        "{body}"
    );
    assert!(body["attempts"].as_u64().unwrap() >= 2, "{body}");
    assert!(elapsed < deadline + SLACK, "took {elapsed:?}");
    drop(hung);
}

#[tokio::test]
async fn logging_that_starts_during_the_back_off_gets_the_message() {
    let messages = spawn_messages().await;
    let logging_listener = listener().await;
    let addr = logging_listener.local_addr().unwrap();

    // The first connection is accepted and closed at once (logging "not up yet"); right
    // after, the real logging service starts on the same address.
    let (first_refused, refused) = oneshot::channel();
    let logging = tokio::spawn(async move {
        let (connection, _) = logging_listener.accept().await.unwrap();
        drop(connection);
        drop(logging_listener);
        first_refused.send(()).unwrap();
        spawn_logging_with(&logging_settings(addr, &[])).await
    });

    let mut settings = facade_settings(&format!("http://{addr}"), &messages.url());
    // Room for a refused connection or two while logging binds.
    settings.retry_max_attempts = 10;
    settings.retry_deadline_ms = 5_000;
    let facade = spawn_facade(settings).await;
    let client = Client::new(&facade);
    let (status, body) = client.post_message("late but kept").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert!(
        body["attempts"].is_null(),
        "the original's three fields only"
    );
    refused
        .await
        .expect("the first attempt met the closed connection");
    let _logging = logging.await.unwrap();
    assert_eq!(client.stored().await, vec!["late but kept"]);
}

#[tokio::test]
async fn logging_restarted_on_the_same_port_gets_the_very_next_post() {
    let messages = spawn_messages().await;
    let dir = TempDir::new("msglog-restart");
    let db = format!("sqlite:{}", dir.join("messages.sqlite3").display());
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--store", &db],
    ))
    .await;
    let addr = logging.addr;
    let facade = spawn_facade(facade_settings(&format!("http://{addr}"), &messages.url())).await;
    let client = Client::new(&facade);

    let (status, _) = client.post_message("before").await;
    assert_eq!(status, 200);

    logging.stop().await;
    let (status, body) = client.post_message("while down").await;
    assert_eq!(status, 500, "{body}");

    let logging = spawn_logging_with(&logging_settings(addr, &["--store", &db])).await;
    let (status, body) = client.post_message("after").await;
    assert_eq!(
        status, 200,
        "the first POST after the restart succeeds: {body}"
    );
    assert_eq!(body["status"], "success");

    let (_, body) = client.get_messages().await;
    assert_eq!(body["logged_messages"], json!(["before", "after"]));
    logging.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_leaves_exactly_one_copy() {
    for dedup in [DedupMode::Content, DedupMode::Unique] {
        let messages = spawn_messages().await;
        // The store keeps the message and then fails the answer, once: the facade cannot know
        // whether the message was kept, and must retry without doubling it.
        let logging = spawn_logging_over(Arc::new(FaultyStore::new(Fault::LoseNextAnswer))).await;
        let mut settings = facade_settings(&logging.url(), &messages.url());
        settings.dedup = dedup;
        let facade = spawn_facade(settings).await;
        let client = Client::new(&facade);

        let (status, body) = client.post_message("exactly once").await;
        assert_eq!(status, 200, "{dedup:?}: {body}");
        // The second attempt found the copy the first one stored.
        assert_eq!(body["status"], "duplicate", "{dedup:?}");
        assert_eq!(client.stored().await, vec!["exactly once"], "{dedup:?}");
    }
}

/// A logging whose reads always fail and whose writes fail on each message's first attempt.
struct FailingReadsFlakyWrites;

impl crate::helpers::StandInLogging for FailingReadsFlakyWrites {
    async fn log_messages(
        &self,
        request: msglog_proto::logging::LogMessagesRequest,
    ) -> Result<msglog_proto::logging::LogMessagesResponse, tonic::Status> {
        let results = request
            .items
            .iter()
            .map(|item| {
                let (code, status) = if item.attempt == 1 {
                    (tonic::Code::Unavailable, "message store unavailable")
                } else {
                    (tonic::Code::Ok, msglog_proto::logging::STATUS_LOGGED)
                };
                msglog_proto::logging::LogResult {
                    code: code as i32,
                    status: status.to_owned(),
                    held_id: String::new(),
                }
            })
            .collect();
        Ok(msglog_proto::logging::LogMessagesResponse { results })
    }

    async fn list_messages(
        &self,
        _request: msglog_proto::logging::ListMessagesRequest,
    ) -> Result<msglog_proto::logging::ListMessagesResponse, tonic::Status> {
        Err(tonic::Status::unavailable("message store unavailable"))
    }

    fn open_watch(&self) -> Result<(), tonic::Status> {
        Err(tonic::Status::unavailable("message store unavailable"))
    }
}

#[tokio::test]
async fn failing_reads_leave_the_writes_their_retries() {
    let logging =
        crate::helpers::spawn_logging_stand_in(crate::helpers::StandIn(FailingReadsFlakyWrites))
            .await;
    let mut settings = facade_settings(&logging.url(), "http://127.0.0.1:9");
    // Short reads, so the failing ones are over quickly.
    settings.read_attempt_timeout_ms = 200;
    settings.read_deadline_ms = 600;
    let facade = spawn_facade(settings).await;
    let client = Client::new(&facade);
    // Enough failed reads to empty any one budget.
    for _ in 0..10 {
        let (status, body) = client.get_json("/api/messages").await;
        assert_eq!(status, 500, "{body}");
    }
    let (status, body) = client.get_json("/api/messages").await;
    assert_eq!(
        (status, body["attempts"].as_u64()),
        (500, Some(1)),
        "reads spent their own budget: {body}"
    );
    // A write still gets its retry: the first attempt fails, the second stores it.
    let response = client
        .http
        .post(format!("{}/api/messages", client.base))
        .json(&json!({ "message": "after the failed reads" }))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(
        (status, body["attempts"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
}

/// The original's logging (no `LogMessages`, so each message goes alone by `LogMessage`) that
/// answers its `LogMessage` calls from a script, in order (then stores), and records each
/// call's `grpc-previous-rpc-attempts`.
#[derive(Clone)]
struct ScriptedLogging {
    script: Arc<std::sync::Mutex<std::collections::VecDeque<tonic::Status>>>,
    previous_attempts: Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl ScriptedLogging {
    fn new(script: impl IntoIterator<Item = tonic::Status>) -> Self {
        Self {
            script: Arc::new(std::sync::Mutex::new(script.into_iter().collect())),
            previous_attempts: Arc::default(),
        }
    }

    fn previous_attempts(&self) -> Vec<Option<String>> {
        self.previous_attempts.lock().unwrap().clone()
    }
}

#[tonic::async_trait]
impl msglog_proto::logging::logging_service_server::LoggingService for ScriptedLogging {
    async fn log_message(
        &self,
        request: tonic::Request<msglog_proto::logging::LogRequest>,
    ) -> Result<tonic::Response<msglog_proto::logging::LogResponse>, tonic::Status> {
        let previous = request
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .map(|value| value.to_str().unwrap().to_owned());
        self.previous_attempts.lock().unwrap().push(previous);
        if let Some(status) = self.script.lock().unwrap().pop_front() {
            return Err(status);
        }
        Ok(tonic::Response::new(msglog_proto::logging::LogResponse {
            status: msglog_proto::logging::STATUS_LOGGED.to_owned(),
            held_id: String::new(),
        }))
    }

    async fn log_messages(
        &self,
        _request: tonic::Request<msglog_proto::logging::LogMessagesRequest>,
    ) -> Result<tonic::Response<msglog_proto::logging::LogMessagesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in the original"))
    }

    async fn get_messages(
        &self,
        _request: tonic::Request<msglog_proto::logging::Empty>,
    ) -> Result<tonic::Response<msglog_proto::logging::MessagesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used"))
    }

    async fn list_messages(
        &self,
        _request: tonic::Request<msglog_proto::logging::ListMessagesRequest>,
    ) -> Result<tonic::Response<msglog_proto::logging::ListMessagesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in the original"))
    }

    type WatchMessagesStream =
        tokio_stream::Empty<Result<msglog_proto::logging::WatchMessagesResponse, tonic::Status>>;

    async fn watch_messages(
        &self,
        _request: tonic::Request<msglog_proto::logging::WatchMessagesRequest>,
    ) -> Result<tonic::Response<Self::WatchMessagesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in the original"))
    }
}

/// gRFC A6: each retry tells the server how many attempts came before it
/// (`grpc-previous-rpc-attempts`); the first attempt carries none.
#[tokio::test]
async fn each_retry_says_how_many_attempts_came_before_it() {
    let logging = ScriptedLogging::new([
        tonic::Status::unavailable("not yet"),
        tonic::Status::unavailable("not yet"),
    ]);
    let stand_in = crate::helpers::spawn_logging_stand_in(logging.clone()).await;
    let facade = spawn_facade(facade_settings(&stand_in.url(), "http://127.0.0.1:9")).await;
    let (status, body) = Client::new(&facade).post_message("third time").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        logging.previous_attempts(),
        [None, Some("1".to_owned()), Some("2".to_owned())]
    );
}

/// A status the server sent is the server's answer: `INTERNAL` from logging is not taken for a
/// broken connection (which would be retried as `UNAVAILABLE`), and the client is told
/// `INTERNAL`, after one attempt.
#[tokio::test]
async fn an_internal_error_sent_by_logging_is_not_retried_as_a_broken_connection() {
    let logging = ScriptedLogging::new([tonic::Status::internal("the disk is on fire")]);
    let stand_in = crate::helpers::spawn_logging_stand_in(logging.clone()).await;
    let facade = spawn_facade(facade_settings(&stand_in.url(), "http://127.0.0.1:9")).await;
    let (status, body) = Client::new(&facade).post_message("once").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "INTERNAL", "{body}");
    assert_eq!(body["attempts"], 1, "{body}");
    assert_eq!(logging.previous_attempts(), [None]);
}
