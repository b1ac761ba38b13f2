//! `/metrics` on the facade and messages, and on logging's admin port: Prometheus text that a
//! parser reads line for line, with counters that move with the requests that were made, and
//! answers while logging or its store fails.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use logging_service::store::{
    Store,
    faulty::{Fault, FaultyStore},
};
use msglog_proto::logging::{
    Empty, ListMessagesRequest, ListMessagesResponse, LogMessagesRequest, LogMessagesResponse,
    LogRequest, LogResponse, MessagesResponse, WatchMessagesRequest, WatchMessagesResponse,
    logging_service_server::LoggingService,
};
use msglog_proto::v1::{
    ListRequest, SendRequest, StatusRequest, WatchRequest, message_log_client::MessageLogClient,
};
use prometheus_parse::{Sample, Scrape, Value};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use msglog_common::testing::LogAfterStart;

use crate::helpers::{
    Client, InProcess, facade_settings, logging_settings, refused_addr, spawn_facade,
    spawn_logging_stand_in, spawn_messages, start_facade_binary,
};

/// One reading of a `/metrics` page.
pub(crate) struct Metrics {
    samples: Vec<Sample>,
    text: String,
}

impl Metrics {
    /// Reads `url` and checks it is OpenMetrics text whose every line the parser understood.
    pub(crate) async fn scrape(url: &str) -> Self {
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap();
        // Each sample line is one sample, except a histogram's buckets, which are one together.
        let sample_lines = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .count();
        let understood: usize = scrape
            .samples
            .iter()
            .map(|sample| match &sample.value {
                Value::Histogram(buckets) => buckets.len(),
                _ => 1,
            })
            .sum();
        assert_eq!(
            understood, sample_lines,
            "lines the parser skipped in:\n{text}"
        );
        for line in text.lines().filter(|line| line.starts_with('#')) {
            assert!(
                ["# HELP ", "# TYPE ", "# UNIT ", "# EOF"]
                    .iter()
                    .any(|start| line.starts_with(start)),
                "{line}"
            );
        }
        Self {
            samples: scrape.samples,
            text,
        }
    }

    /// The value of the sample `name` whose labels include `labels` (0 when there is none).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|sample| {
                sample.metric == name
                    && labels
                        .iter()
                        .all(|(key, value)| sample.labels.get(key) == Some(value))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        match found.first().map(|sample| &sample.value) {
            None => 0.0,
            Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
            Some(other) => panic!("{name} is {other:?}"),
        }
    }
}

/// Logging over `store` (memory when `None`) with its admin port on any free port.
async fn spawn_logging_with_admin(store: Option<Arc<dyn Store>>) -> (InProcess, SocketAddr) {
    let settings = logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--admin-addr", "127.0.0.1:0"],
    );
    let app = match store {
        Some(store) => logging_service::Application::build_with_store(&settings, store).await,
        None => logging_service::Application::build(&settings).await,
    }
    .unwrap();
    let admin = app.admin_addr().expect("the admin port was asked for");
    (
        InProcess::spawn(app.addr(), |stop| app.run_until(stop)),
        admin,
    )
}

async fn gateway(facade: &InProcess) -> MessageLogClient<Channel> {
    let channel = Channel::from_shared(facade.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    MessageLogClient::new(channel)
}

/// Reads `url` until `value` of the metrics is `wanted` (a gauge that follows a connection
/// being opened or closed elsewhere); fails after 10 s.
pub(crate) async fn until_value(
    url: &str,
    name: &str,
    labels: &[(&str, &str)],
    wanted: f64,
) -> Metrics {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = Metrics::scrape(url).await;
        if metrics.value(name, labels) == wanted {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} {labels:?} never became {wanted}:\n{}",
            metrics.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn counters_move_with_requests_on_every_service() {
    let (logging, admin) = spawn_logging_with_admin(None).await;
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let client = Client::new(&facade);

    assert_eq!(client.post_message("first").await.0, 200);
    // The same text again: the facade's id is the text's, so logging calls it a duplicate.
    let (status, body) = client.post_message("first").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(client.get_messages().await.0, 200);
    assert_eq!(client.get_json("/no/such/page-123").await.0, 404);
    // Refused before routing (a path over 2 KiB), and counted all the same.
    let long = format!("/{}", "x".repeat(3000));
    assert_eq!(client.get_json(&long).await.0, 414);
    let mut grpc = gateway(&facade).await;
    grpc.send(SendRequest {
        text: "by gRPC".to_owned(),
        idempotency_key: String::new(),
    })
    .await
    .unwrap();

    let facade_metrics = Metrics::scrape(&format!("{}/metrics", facade.url())).await;
    // Built into this test, the facade allocates with the system allocator: no figures of
    // jemalloc's (the binary's are in `the_facade_binary_shows_its_allocator`).
    assert!(!facade_metrics.text.contains("allocator_"));
    let post = [
        ("method", "POST"),
        ("route", "/send_message"),
        ("status", "200"),
    ];
    assert_eq!(facade_metrics.value("http_requests_total", &post), 2.0);
    assert_eq!(
        facade_metrics.value(
            "http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/send_message")]
        ),
        2.0
    );
    let send = [("route", "/msglog.v1.MessageLog/Send"), ("status", "200")];
    assert_eq!(facade_metrics.value("http_requests_total", &send), 1.0);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(facade_metrics.value("http_requests_total", &unmatched), 1.0);
    let refused = [("route", "unmatched"), ("status", "414")];
    assert_eq!(facade_metrics.value("http_requests_total", &refused), 1.0);
    assert!(
        !facade_metrics.text.contains("page-123"),
        "a raw path became a label"
    );
    assert_eq!(
        facade_metrics.value("messages_total", &[("outcome", "stored")]),
        2.0
    );
    assert_eq!(
        facade_metrics.value("messages_total", &[("outcome", "duplicate")]),
        1.0
    );
    let log_ok = [("method", "LogMessage"), ("code", "OK")];
    assert_eq!(facade_metrics.value("logging_calls_total", &log_ok), 3.0);
    let attempts = [("method", "LogMessage")];
    assert_eq!(
        facade_metrics.value("logging_call_attempts_count", &attempts),
        3.0
    );
    assert_eq!(
        facade_metrics.value("logging_call_attempts_sum", &attempts),
        3.0
    );
    assert_eq!(
        facade_metrics.value("logging_retries_total", &attempts),
        0.0
    );
    // The GET read the list a page at a time: one page here.
    let get = [("method", "ListMessages"), ("code", "OK")];
    assert_eq!(facade_metrics.value("logging_calls_total", &get), 1.0);

    let logging_metrics = Metrics::scrape(&format!("http://{admin}/metrics")).await;
    assert_eq!(
        logging_metrics.value("store_inserts_total", &[("outcome", "stored")]),
        2.0
    );
    assert_eq!(
        logging_metrics.value("store_inserts_total", &[("outcome", "duplicate")]),
        1.0
    );
    assert_eq!(
        logging_metrics.value("store_inserts_total", &[("outcome", "conflict")]),
        0.0
    );
    assert_eq!(
        logging_metrics.value("store_insert_duration_seconds_count", &[]),
        3.0
    );
    // The admin port answers nothing else.
    let other = reqwest::get(format!("http://{admin}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // The facade asked messages for its text once, for the GET.
    let messages_metrics = Metrics::scrape(&format!("{}/metrics", messages.url())).await;
    let asked = [("route", "/get_message"), ("status", "200")];
    assert_eq!(messages_metrics.value("http_requests_total", &asked), 1.0);
}

#[tokio::test]
async fn watchers_are_counted_on_the_facade_and_on_logging() {
    let (logging, admin) = spawn_logging_with_admin(None).await;
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let facade_url = format!("{}/metrics", facade.url());
    let admin_url = format!("http://{admin}/metrics");
    // The facade follows logging's feed with one watch of its own.
    until_value(&admin_url, "watchers", &[], 1.0).await;
    until_value(&facade_url, "feed_live", &[], 1.0).await;
    assert_eq!(
        Metrics::scrape(&facade_url).await.value("watchers", &[]),
        0.0
    );

    let mut grpc = gateway(&facade).await;
    let mut first = grpc
        .watch(WatchRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut second = grpc
        .watch(WatchRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    first.message().await.unwrap();
    second.message().await.unwrap();
    until_value(&facade_url, "watchers", &[], 2.0).await;
    // Still one watch on logging, however many watch the facade.
    assert_eq!(
        Metrics::scrape(&admin_url).await.value("watchers", &[]),
        1.0
    );

    Client::new(&facade).post_message("seen live").await;
    let metrics = until_value(&facade_url, "watch_lag_messages_count", &[], 2.0).await;
    assert!(metrics.value("watch_lag_messages_sum", &[]) >= 0.0);
    drop(first);
    until_value(&facade_url, "watchers", &[], 1.0).await;
    drop(second);
    until_value(&facade_url, "watchers", &[], 0.0).await;
}

#[tokio::test]
async fn a_post_with_logging_down_shows_as_attempts_retries_and_give_ups() {
    let messages = spawn_messages().await;
    let down = format!("http://{}", refused_addr().await);
    let facade = spawn_facade(facade_settings(&down, &messages.url())).await;
    let client = Client::new(&facade);
    let metrics_url = format!("{}/metrics", facade.url());

    let (status, body) = client.post_message("lost").await;
    assert_eq!(
        (status, body["attempts"].as_u64()),
        (500, Some(3)),
        "{body}"
    );
    let metrics = Metrics::scrape(&metrics_url).await;
    let log = [("method", "LogMessage")];
    let unavailable = [("method", "LogMessage"), ("code", "UNAVAILABLE")];
    assert_eq!(metrics.value("logging_calls_total", &unavailable), 1.0);
    assert_eq!(metrics.value("logging_call_attempts_sum", &log), 3.0);
    assert_eq!(metrics.value("logging_retries_total", &log), 2.0);
    let attempts_spent = [("method", "LogMessage"), ("reason", "attempts")];
    assert_eq!(
        metrics.value("logging_give_ups_total", &attempts_spent),
        1.0
    );
    assert_eq!(
        metrics.value("logging_retry_budget_refusals_total", &[]),
        0.0
    );
    let failed = [("route", "/send_message"), ("status", "500")];
    assert_eq!(metrics.value("http_requests_total", &failed), 1.0);

    // Three failures took 3 of the budget's 10 tokens; the next call's first failure leaves 6,
    // so it may retry once (5 left) and is then refused another.
    let (status, body) = client.post_message("lost again").await;
    assert_eq!(
        (status, body["attempts"].as_u64()),
        (500, Some(2)),
        "{body}"
    );
    let metrics = Metrics::scrape(&metrics_url).await;
    assert_eq!(metrics.value("logging_retries_total", &log), 3.0);
    let budget = [("method", "LogMessage"), ("reason", "budget")];
    assert_eq!(metrics.value("logging_give_ups_total", &budget), 1.0);
    assert_eq!(
        metrics.value("logging_retry_budget_refusals_total", &[]),
        1.0
    );

    // The status answers carry the same counts, through both doors.
    let (status, body) = client.get_json("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["calls"],
        serde_json::json!({ "retries": 3, "errors": 2 }),
        "{body}"
    );
    let answer = gateway(&facade)
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    // (The status call's own health check of logging is not a retried call.)
    let calls = answer.calls.unwrap();
    assert_eq!((calls.retries, calls.errors), (3, 2));
    // The facade's own health is not its dependency's.
    assert_eq!(
        client
            .http
            .get(format!("{}/healthz", facade.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn health_and_metrics_answer_while_the_store_fails() {
    let store = Arc::new(FaultyStore::new(Fault::None));
    let (logging, admin) = spawn_logging_with_admin(Some(store.clone())).await;
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let client = Client::new(&facade);
    assert_eq!(client.post_message("before").await.0, 200);

    store.set(Fault::Unavailable);
    let (status, body) = client.post_message("during").await;
    assert_eq!(status, 500, "{body}");

    let admin_url = format!("http://{admin}/metrics");
    let logging_metrics = Metrics::scrape(&admin_url).await;
    assert_eq!(
        logging_metrics.value("store_inserts_total", &[("outcome", "stored")]),
        1.0
    );
    assert!(logging_metrics.value("store_inserts_total", &[("outcome", "error")]) >= 1.0);
    let channel = Channel::from_shared(logging.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status(), ServingStatus::NotServing);

    let facade_metrics = Metrics::scrape(&format!("{}/metrics", facade.url())).await;
    let unavailable = [("method", "LogMessage"), ("code", "UNAVAILABLE")];
    assert_eq!(
        facade_metrics.value("logging_calls_total", &unavailable),
        1.0
    );
    let healthz = client
        .http
        .get(format!("{}/healthz", facade.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    let (status, body) = client.get_json("/api/status").await;
    assert_eq!(
        (status, body["logging"]["up"].as_bool()),
        (200, Some(false)),
        "{body}"
    );

    store.set(Fault::None);
}

/// The original's logging: `LogMessage` and `GetMessages`, and nothing else.
#[derive(Clone)]
struct OriginalLogging {
    texts: Arc<Mutex<Vec<String>>>,
    /// `ListMessages` calls with no request behind them: the facade's live feed asking.
    feed_asked: Arc<tokio::sync::watch::Sender<u32>>,
}

impl Default for OriginalLogging {
    fn default() -> Self {
        Self {
            texts: Arc::default(),
            feed_asked: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

#[tonic::async_trait]
impl LoggingService for OriginalLogging {
    async fn log_message(
        &self,
        request: tonic::Request<LogRequest>,
    ) -> Result<tonic::Response<LogResponse>, tonic::Status> {
        self.texts
            .lock()
            .unwrap()
            .push(request.into_inner().message);
        Ok(tonic::Response::new(LogResponse {
            status: "Message logged successfully".to_owned(),
            held_id: String::new(),
        }))
    }

    async fn log_messages(
        &self,
        _request: tonic::Request<LogMessagesRequest>,
    ) -> Result<tonic::Response<LogMessagesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in the original"))
    }

    async fn get_messages(
        &self,
        _request: tonic::Request<Empty>,
    ) -> Result<tonic::Response<MessagesResponse>, tonic::Status> {
        Ok(tonic::Response::new(MessagesResponse {
            messages: self.texts.lock().unwrap().clone(),
        }))
    }

    async fn list_messages(
        &self,
        request: tonic::Request<ListMessagesRequest>,
    ) -> Result<tonic::Response<ListMessagesResponse>, tonic::Status> {
        if request.metadata().get("x-request-id").is_none() {
            self.feed_asked.send_modify(|asked| *asked += 1);
        }
        Err(tonic::Status::unimplemented("not in the original"))
    }

    type WatchMessagesStream = tokio_stream::Empty<Result<WatchMessagesResponse, tonic::Status>>;

    async fn watch_messages(
        &self,
        _request: tonic::Request<WatchMessagesRequest>,
    ) -> Result<tonic::Response<Self::WatchMessagesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in the original"))
    }
}

#[tokio::test]
async fn the_originals_missing_list_is_an_error_only_where_nothing_answers_instead() {
    let original = OriginalLogging::default();
    let logging = spawn_logging_stand_in(original.clone()).await;
    let messages = spawn_messages().await;
    let facade = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let client = Client::new(&facade);
    // The live feed asks for its first page, is told UNIMPLEMENTED, says so, and asks again
    // after a back-off: its second question means the first answer was taken in.
    tokio::time::timeout(
        Duration::from_secs(10),
        original
            .feed_asked
            .subscribe()
            .wait_for(|asked| *asked >= 2),
    )
    .await
    .expect("the live feed asked twice within 10 s")
    .unwrap();

    assert_eq!(client.post_message("one").await.0, 200);
    // The first read asks for a page, is told UNIMPLEMENTED, and reads the list whole.
    assert_eq!(client.stored().await, vec!["one"]);
    assert_eq!(client.stored().await, vec!["one"]);

    let metrics = Metrics::scrape(&format!("{}/metrics", facade.url())).await;
    let probe = [("method", "ListMessages"), ("code", "UNIMPLEMENTED")];
    assert_eq!(metrics.value("logging_calls_total", &probe), 1.0);
    let whole = [("method", "GetMessages"), ("code", "OK")];
    assert_eq!(metrics.value("logging_calls_total", &whole), 2.0);
    // Every request was served: the page's status strip shows no error, and says why the
    // list is not live rather than calling logging unavailable.
    let (status, body) = client.get_json("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["calls"],
        serde_json::json!({ "retries": 0, "errors": 0 }),
        "{body}"
    );
    assert_eq!(body["logging"]["up"], true, "{body}");
    assert_eq!(body["feed"]["live"], false, "{body}");
    let detail = body["feed"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("logging has no live feed (UNIMPLEMENTED"),
        "{detail}"
    );

    // A page of the list has no other way: the original's logging cannot page, and that is
    // an error the status counts.
    let (status, body) = client.get_json("/api/messages").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("UNIMPLEMENTED")),
        "{body}"
    );
    // Through the gRPC door, a code that tells a client not to ask again as it is.
    let refused = gateway(&facade)
        .await
        .list(ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    let (_, body) = client.get_json("/api/status").await;
    assert_eq!(
        body["calls"],
        serde_json::json!({ "retries": 0, "errors": 2 }),
        "{body}"
    );
}

#[tokio::test]
async fn the_facades_metrics_can_move_to_an_admin_port_off_the_public_one() {
    let logging = crate::helpers::spawn_logging().await;
    let mut settings = facade_settings(&logging.url(), "http://127.0.0.1:9");
    settings.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    let app = facade_service::Application::build(&settings).await.unwrap();
    let admin = app.admin_addr().expect("the admin port was asked for");
    let facade = InProcess::spawn(app.addr(), |stop| app.run_until(stop));
    let client = Client::new(&facade);
    let (status, _) = client.post_message("counted").await;
    assert_eq!(status, 200);
    let public = reqwest::get(format!("{}/metrics", facade.url()))
        .await
        .unwrap();
    assert_eq!(public.status(), 404, "no metrics on the public port");
    let metrics = Metrics::scrape(&format!("http://{admin}/metrics")).await;
    assert!(
        metrics.value(
            "http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/send_message"),
                ("status", "200")
            ]
        ) >= 1.0
    );
    facade.stop().await;
}

/// The facade's binary allocates with jemalloc and says so on `/metrics`: what its live
/// allocations take, the pages that hold them, the allocator's bookkeeping and resident pages,
/// each read at the scrape. (The facade built into a test, on the system allocator, shows none:
/// `counters_move_with_requests_on_every_service`.)
#[tokio::test]
async fn the_facade_binary_shows_its_allocator() {
    let (logging, _admin) = spawn_logging_with_admin(None).await;
    let facade = start_facade_binary(&logging.url(), &[], LogAfterStart::Drain).await;
    let base = format!("http://{}", facade.addr);
    let before = Metrics::scrape(&format!("{base}/metrics")).await;
    let allocated = before.value("allocator_allocated_bytes", &[]);
    let active = before.value("allocator_active_bytes", &[]);
    let metadata = before.value("allocator_metadata_bytes", &[]);
    let resident = before.value("allocator_resident_bytes", &[]);
    assert!(allocated > 0.0, "{}", before.text);
    assert!(active >= allocated, "{}", before.text);
    assert!(metadata > 0.0, "{}", before.text);
    assert!(resident >= active, "{}", before.text);
    // Read at each scrape, not once: the facade allocates as it serves (a 4 KiB message posted
    // is kept in the live feed's buffer), so the figure moves between two scrapes.
    let mut moved = false;
    for _ in 0..20 {
        let after = Metrics::scrape(&format!("{base}/metrics")).await;
        if after.value("allocator_allocated_bytes", &[]) != allocated {
            moved = true;
            break;
        }
        let _ = reqwest::Client::new()
            .post(format!("{base}/send_message"))
            .header("content-type", "application/json")
            .body(format!("{{\"message\": \"{}\"}}", "x".repeat(4096)))
            .send()
            .await
            .unwrap();
    }
    assert!(
        moved,
        "allocator_allocated_bytes never changed: read once, not at each scrape"
    );
}
