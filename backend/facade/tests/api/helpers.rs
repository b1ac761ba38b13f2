//! Starting the services for a test: each on a listener bound to port 0, so no test picks a
//! port and none waits for readiness (a bound listener queues connections until served).

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use clap::Parser as _;
use facade_service::{AppState, Settings};
use logging_service::{
    ServerConfig,
    store::{MemoryStore, Store},
};
use serde_json::Value;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running service. Dropping it aborts it; [`Service::stop`] stops it gracefully.
pub struct Service {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Service {
    /// Runs `serve(listener, stop_signal)` in a task.
    pub fn spawn<F, Fut>(listener: TcpListener, serve: F) -> Self
    where
        F: FnOnce(TcpListener, StopSignal) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        msglog_common::telemetry::init_for_tests();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let signal: StopSignal = Box::pin(async {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serve(listener, signal));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the service and waits until it has closed its listener and connections.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("service stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// An address where nothing listens: connections to it are refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = listener().await;
    listener.local_addr().unwrap()
}

/// A logging service over `store` on `listener`.
pub fn spawn_logging<S: Store>(listener: TcpListener, store: S) -> Service {
    Service::spawn(listener, move |listener, stop| {
        logging_service::run(listener, ServerConfig::default(), store, stop)
    })
}

pub async fn spawn_messages() -> Service {
    Service::spawn(listener().await, |listener, stop| {
        messages_service::run(listener, Duration::from_secs(5), stop)
    })
}

/// Facade settings pointing at the given services, with `tweak` applied.
pub fn facade_settings(logging_url: &str, messages_url: &str) -> Settings {
    Settings::try_parse_from([
        "facade-service",
        "--logging-url",
        logging_url,
        "--messages-url",
        messages_url,
    ])
    .unwrap()
}

pub async fn spawn_facade(settings: Settings) -> Service {
    spawn_facade_with_timeout(settings, Duration::from_secs(10)).await
}

pub async fn spawn_facade_with_timeout(settings: Settings, request_timeout: Duration) -> Service {
    let state = AppState::from_settings(&settings).unwrap();
    Service::spawn(listener().await, move |listener, stop| {
        facade_service::run(listener, state, request_timeout, stop)
    })
}

/// The three services running together, as a user runs them.
pub struct TestApp {
    pub facade: Service,
    /// Held so logging runs as long as the app.
    _logging: Service,
    /// Held so messages runs as long as the app.
    _messages: Service,
    pub store: Arc<MemoryStore>,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let store = Arc::new(MemoryStore::new());
        let logging = spawn_logging(listener().await, Arc::clone(&store));
        let messages = spawn_messages().await;
        let mut settings = facade_settings(&logging.url(), &messages.url());
        tweak(&mut settings);
        let facade = spawn_facade(settings).await;
        Self {
            facade,
            _logging: logging,
            _messages: messages,
            store,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.facade.url())
    }
}

/// An HTTP client and a facade URL, for tests that arrange the services themselves.
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(facade: &Service) -> Self {
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

impl TestApp {
    pub fn client(&self) -> Client {
        Client::new(&self.facade)
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

/// The status code and body of a raw HTTP/1.1 answer read off a socket.
pub fn parse_http_answer(raw: &[u8]) -> (u16, String) {
    let answer = String::from_utf8_lossy(raw);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}
