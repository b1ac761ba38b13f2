//! Starting the services for a test, each through its own `Application` on port 0, so no
//! test picks a port and none waits for readiness (a bound listener queues connections until
//! served).

use std::{future::Future, net::SocketAddr, sync::Arc};

use clap::Parser as _;
use logging_service::store::Store;
pub use msglog_common::testing::{InProcess, parse_http_answer, refused_addr};
use msglog_common::testing::{LogAfterStart, ServiceProcess};
use msglog_proto::logging::{
    Empty, ListMessagesRequest, ListMessagesResponse, LogMessagesRequest, LogMessagesResponse,
    LogRequest, LogResponse, MessagesResponse, WatchMessagesRequest, WatchMessagesResponse,
    logging_service_client::LoggingServiceClient, logging_service_server::LoggingService,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::Status;

/// A gRPC channel to `url`, connected.
pub async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A stand-in for logging (any implementation of its service) on a free port.
pub async fn spawn_logging_stand_in(
    service: impl msglog_proto::logging::logging_service_server::LoggingService,
) -> InProcess {
    spawn_logging_stand_in_with_health(service).await.0
}

/// What a logging stand-in answers: `LogMessages` (the one way the facade stores messages),
/// `ListMessages` and the opening of `WatchMessages`; each refused `UNIMPLEMENTED` unless the
/// stand-in says otherwise. See [`StandIn`].
pub trait StandInLogging: Send + Sync + 'static {
    /// The answer to one `LogMessages` call.
    fn log_messages(
        &self,
        _request: LogMessagesRequest,
    ) -> impl Future<Output = Result<LogMessagesResponse, Status>> + Send {
        async { Err(Status::unimplemented("not used")) }
    }

    /// The answer to one `ListMessages` call.
    fn list_messages(
        &self,
        _request: ListMessagesRequest,
    ) -> impl Future<Output = Result<ListMessagesResponse, Status>> + Send {
        async { Err(Status::unimplemented("not used")) }
    }

    /// Whether a `WatchMessages` call opens (an empty stream) or fails, and how.
    fn open_watch(&self) -> Result<(), Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// A logging service made of a [`StandInLogging`]; `LogMessage` (which the facade never calls:
/// it batches) and `GetMessages` are refused.
pub struct StandIn<H>(pub H);

#[tonic::async_trait]
impl<H: StandInLogging> LoggingService for StandIn<H> {
    async fn log_message(
        &self,
        _request: tonic::Request<LogRequest>,
    ) -> Result<tonic::Response<LogResponse>, Status> {
        Err(Status::internal(
            "the facade batches: LogMessage is not called",
        ))
    }

    async fn log_messages(
        &self,
        request: tonic::Request<LogMessagesRequest>,
    ) -> Result<tonic::Response<LogMessagesResponse>, Status> {
        self.0
            .log_messages(request.into_inner())
            .await
            .map(tonic::Response::new)
    }

    async fn get_messages(
        &self,
        _request: tonic::Request<Empty>,
    ) -> Result<tonic::Response<MessagesResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn list_messages(
        &self,
        request: tonic::Request<ListMessagesRequest>,
    ) -> Result<tonic::Response<ListMessagesResponse>, Status> {
        self.0
            .list_messages(request.into_inner())
            .await
            .map(tonic::Response::new)
    }

    type WatchMessagesStream = tokio_stream::Empty<Result<WatchMessagesResponse, Status>>;

    async fn watch_messages(
        &self,
        _request: tonic::Request<WatchMessagesRequest>,
    ) -> Result<tonic::Response<Self::WatchMessagesStream>, Status> {
        self.0.open_watch()?;
        Ok(tonic::Response::new(tokio_stream::empty()))
    }
}

/// A stand-in for logging on a free port with the standard gRPC health service (serving), and
/// what sets its health.
pub async fn spawn_logging_stand_in_with_health(
    service: impl msglog_proto::logging::logging_service_server::LoggingService,
) -> (InProcess, tonic_health::server::HealthReporter) {
    let listener = listener().await;
    let (reporter, health) = tonic_health::server::health_reporter();
    let process = InProcess::spawn(listener.local_addr().unwrap(), |stop| async move {
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(
                msglog_proto::logging::logging_service_server::LoggingServiceServer::new(service),
            )
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop,
            )
            .await?;
        Ok(())
    });
    (process, reporter)
}

/// Logging settings: `addr`, then `extra` flags (a memory store unless they name one).
pub fn logging_settings(addr: SocketAddr, extra: &[&str]) -> logging_service::Settings {
    let addr = addr.to_string();
    let mut args = vec!["logging-service", "--addr", &addr];
    if !extra.contains(&"--store") {
        args.extend(["--store", "memory"]);
    }
    args.extend_from_slice(extra);
    logging_service::Settings::try_parse_from(args).unwrap()
}

/// A logging service with these settings.
pub async fn spawn_logging_with(settings: &logging_service::Settings) -> InProcess {
    let app = logging_service::Application::build(settings).await.unwrap();
    InProcess::spawn(app.addr(), |stop| app.run_until(stop))
}

/// A logging service on any port, over a memory store.
pub async fn spawn_logging() -> InProcess {
    spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await
}

/// A logging service on any port, over `store`.
pub async fn spawn_logging_over(store: Arc<dyn Store>) -> InProcess {
    let settings = logging_settings("127.0.0.1:0".parse().unwrap(), &[]);
    let app = logging_service::Application::build_with_store(&settings, store)
        .await
        .unwrap();
    InProcess::spawn(app.addr(), |stop| app.run_until(stop))
}

/// Starts the logging binary on `addr` (port 0 for any) with its messages in the SQLite file
/// `db`.
pub async fn start_logging(db: &std::path::Path, addr: SocketAddr) -> ServiceProcess {
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_logging"),
        [
            "--addr".to_owned(),
            addr.to_string(),
            format!("--store=sqlite:{}", db.display()),
        ],
        LogAfterStart::Drain,
    )
    .await
}

/// Starts the facade binary on any port in front of the logging service at `logging_url` (no
/// messages service), with `extra` flags.
/// Logging as a real process on SQLite in a directory of its own (so a test can kill it and
/// start it again on its address, `start_logging(&db, addr)`), and a facade in this process
/// on it: logging, its database and the facade.
pub async fn facade_on_restartable_logging(
    dir: &msglog_common::testing::TempDir,
) -> (ServiceProcess, std::path::PathBuf, InProcess) {
    let db = dir.join("messages.sqlite3");
    let logging = start_logging(&db, "127.0.0.1:0".parse().unwrap()).await;
    let facade = spawn_facade(facade_settings(
        &format!("http://{}", logging.addr),
        "http://127.0.0.1:9",
    ))
    .await;
    (logging, db, facade)
}

pub async fn start_facade_binary(
    logging_url: &str,
    extra: &[&str],
    log: LogAfterStart,
) -> ServiceProcess {
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--logging-url",
        logging_url,
        "--messages-url",
        "http://127.0.0.1:9",
    ];
    args.extend_from_slice(extra);
    ServiceProcess::start(env!("CARGO_BIN_EXE_facade"), args, log).await
}

pub async fn spawn_messages() -> InProcess {
    let settings =
        messages_service::Settings::try_parse_from(["messages-service", "--addr", "127.0.0.1:0"])
            .unwrap();
    let app = messages_service::Application::build(&settings)
        .await
        .unwrap();
    InProcess::spawn(app.addr(), |stop| app.run_until(stop))
}

/// Facade settings on port 0 pointing at the given services.
pub fn facade_settings(logging_url: &str, messages_url: &str) -> facade_service::Settings {
    facade_service::Settings::try_parse_from([
        "facade-service",
        "--addr",
        "127.0.0.1:0",
        "--logging-url",
        logging_url,
        "--messages-url",
        messages_url,
    ])
    .unwrap()
}

pub async fn spawn_facade(settings: facade_service::Settings) -> InProcess {
    let app = facade_service::Application::build(&settings).await.unwrap();
    InProcess::spawn(app.addr(), |stop| app.run_until(stop))
}

/// Stores `count` messages `{prefix}{n}` straight into logging, 16 calls in flight.
pub async fn fill(logging: &str, prefix: &str, count: usize) {
    let channel = tonic::transport::Channel::from_shared(logging.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = LoggingServiceClient::new(channel);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (mut client, next, prefix) = (client.clone(), next.clone(), prefix.to_owned());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n >= count {
                        break;
                    }
                    client
                        .log_message(LogRequest {
                            id: uuid::Uuid::new_v4().to_string(),
                            message: format!("{prefix}{n}"),
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// The three services running together, as a user runs them.
pub struct TestApp {
    pub facade: InProcess,
    /// Held so logging runs as long as the app.
    _logging: InProcess,
    /// Held so messages runs as long as the app.
    _messages: InProcess,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The three, the facade's settings adjusted by `tweak`. Logging keeps its default
    /// duplicate rule (by text) unless the facade keeps equal texts apart (`--dedup unique`),
    /// which needs logging's `--dedup-by id`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut facade_service::Settings)) -> Self {
        let mut settings = facade_settings("http://unset", "http://unset");
        tweak(&mut settings);
        let logging_flags: &[&str] = match settings.dedup {
            facade_service::DedupMode::Unique => &["--dedup-by", "id"],
            facade_service::DedupMode::Content => &[],
        };
        let logging = spawn_logging_with(&logging_settings(
            "127.0.0.1:0".parse().unwrap(),
            logging_flags,
        ))
        .await;
        let messages = spawn_messages().await;
        settings.logging_urls = vec![logging.url()];
        settings.messages_url = messages.url();
        let facade = spawn_facade(settings).await;
        Self {
            facade,
            _logging: logging,
            _messages: messages,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.facade.url())
    }

    pub fn client(&self) -> Client {
        Client::new(&self.facade)
    }

    /// What logging holds, read through the facade.
    pub async fn stored(&self) -> Vec<String> {
        self.client().stored().await
    }
}

/// An HTTP client and a facade URL, for tests that arrange the services themselves.
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(facade: &InProcess) -> Self {
        Self {
            base: facade.url(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn post_message(&self, text: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/send_message", self.base))
            .json(&serde_json::json!({ "message": text }))
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    pub async fn get_messages(&self) -> (u16, Value) {
        self.get_json("/get_messages").await
    }

    /// The logged texts, from a `GET /get_messages` that must succeed.
    pub async fn stored(&self) -> Vec<String> {
        let (status, body) = self.get_messages().await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body["logged_messages"].clone()).unwrap()
    }

    /// GETs `path` and returns the status and the JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }
}

/// The status and the JSON body; fails the test if the body is not JSON.
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "status {status}, content-type {content_type:?}, body {body:?}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

/// Calls `call(n)` for `n` in `0..calls`, `concurrency` at a time, in the background: the
/// workers, each ending with its outcomes, and a tally of the outcomes so far (`tally` adds
/// each to it as it comes), for a test that acts part of the way through.
pub fn concurrently<T, P, F, Fut>(
    calls: usize,
    concurrency: usize,
    call: F,
    tally: fn(&mut P, &T),
) -> (
    Vec<tokio::task::JoinHandle<Vec<T>>>,
    tokio::sync::watch::Receiver<P>,
)
where
    T: Send + 'static,
    P: Default + Send + Sync + 'static,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (progress, tallied) = tokio::sync::watch::channel(P::default());
    let progress = Arc::new(progress);
    let workers = (0..concurrency)
        .map(|_| {
            let (call, next, progress) = (call.clone(), Arc::clone(&next), Arc::clone(&progress));
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= calls {
                        return outcomes;
                    }
                    let outcome = call(n).await;
                    progress.send_modify(|so_far| tally(so_far, &outcome));
                    outcomes.push(outcome);
                }
            })
        })
        .collect();
    (workers, tallied)
}
