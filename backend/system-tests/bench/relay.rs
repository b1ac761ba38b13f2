//! The limit of the facade's design on this machine: two hops, an HTTP/1.1 request answered
//! after one call to another process, each side doing nothing else. Measured by
//! `scripts/bench/latency.sh` beside the bare hello server and the facade's POST, so a POST's
//! time can be split into what the two hops cost and what the services add to them.
//!
//!     bench-relay grpc 127.0.0.1:19386                           # answers LogMessages at once
//!     bench-relay http 127.0.0.1:19385 http://127.0.0.1:19386    # GET / makes one such call
//!     bench-relay http1 127.0.0.1:19387 127.0.0.1:19383          # GET / asks bench-hello
//!
//! The gRPC pair runs as the services do: one runtime worker per two cores, no delay on
//! either socket (the settings of the facade's channel to logging that bear on one call's
//! time), and the call a one-item `LogMessages` with the message a POST carries. The `http1` relay asks the bare hello
//! server over one HTTP/1.1 connection (requests take turns on it: a bench at concurrency 1):
//! the least any second hop costs.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context as _;
use axum::{Router, extract::State, http::StatusCode, routing::get};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use msglog_common::runtime::{self, Share};
use msglog_proto::logging::{
    Empty, ListMessagesRequest, ListMessagesResponse, LogItem, LogMessagesRequest,
    LogMessagesResponse, LogRequest, LogResponse, LogResult, MessagesResponse,
    WatchMessagesRequest, WatchMessagesResponse,
    logging_service_client::LoggingServiceClient,
    logging_service_server::{LoggingService, LoggingServiceServer},
};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status, transport::Channel};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, addr] if mode == "grpc" => {
            let addr: SocketAddr = addr.parse().context("HOST:PORT")?;
            runtime::run("RELAY", Share::Half, move || serve_grpc(addr))
        }
        [mode, addr, upstream] if mode == "http" => {
            let (addr, upstream) = (addr.clone(), upstream.clone());
            runtime::run("RELAY", Share::Half, move || serve_http(addr, upstream))
        }
        [mode, addr, upstream] if mode == "http1" => {
            let (addr, upstream) = (addr.clone(), upstream.clone());
            runtime::run("RELAY", Share::Half, move || serve_http1(addr, upstream))
        }
        _ => anyhow::bail!(
            "usage: bench-relay grpc HOST:PORT | bench-relay http HOST:PORT http://GRPC_HOST:PORT \
             | bench-relay http1 HOST:PORT HELLO_HOST:PORT"
        ),
    }
}

/// The gRPC side: `LogMessages` answered at once, one OK result per item; nothing stored.
async fn serve_grpc(addr: SocketAddr) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(LoggingServiceServer::new(Answers))
        .serve(addr)
        .await?;
    Ok(())
}

struct Answers;

#[tonic::async_trait]
impl LoggingService for Answers {
    async fn log_messages(
        &self,
        request: Request<LogMessagesRequest>,
    ) -> Result<Response<LogMessagesResponse>, Status> {
        let results = request
            .into_inner()
            .items
            .iter()
            .map(|_| LogResult {
                code: 0,
                status: "Message logged successfully".to_owned(),
                held_id: String::new(),
            })
            .collect();
        Ok(Response::new(LogMessagesResponse { results }))
    }

    async fn log_message(&self, _: Request<LogRequest>) -> Result<Response<LogResponse>, Status> {
        Err(Status::unimplemented("not in the relay bench"))
    }

    async fn get_messages(&self, _: Request<Empty>) -> Result<Response<MessagesResponse>, Status> {
        Err(Status::unimplemented("not in the relay bench"))
    }

    async fn list_messages(
        &self,
        _: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        Err(Status::unimplemented("not in the relay bench"))
    }

    type WatchMessagesStream = futures_util::stream::Empty<Result<WatchMessagesResponse, Status>>;

    async fn watch_messages(
        &self,
        _: Request<WatchMessagesRequest>,
    ) -> Result<Response<Self::WatchMessagesStream>, Status> {
        Err(Status::unimplemented("not in the relay bench"))
    }
}

/// The HTTP side: `GET /` makes one `LogMessages` call upstream and answers `hello` (or 503).
async fn serve_http(addr: String, upstream: String) -> anyhow::Result<()> {
    let channel = Channel::from_shared(upstream)
        .context("the gRPC server's URL")?
        .tcp_nodelay(true)
        .connect_lazy();
    let client = LoggingServiceClient::new(channel);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let app = Router::new().route("/", get(relay)).with_state(client);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn relay(
    State(mut client): State<LoggingServiceClient<Channel>>,
) -> Result<&'static str, StatusCode> {
    // Ids as long as the facade's (36 characters), unique in this process.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let item = LogItem {
        message: Some(LogRequest {
            id: format!("{n:036}"),
            message: "a benchmark message of a realistic length, sixty-odd bytes".to_owned(),
        }),
        request_id: format!("{n:036}"),
        attempt: 1,
    };
    let answer = client
        .log_messages(LogMessagesRequest { items: vec![item] })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    if answer.into_inner().results.len() == 1 {
        Ok("hello")
    } else {
        Err(StatusCode::BAD_GATEWAY)
    }
}

/// The plain relay: `GET /` asks `GET /` of the hello server at `upstream` over one HTTP/1.1
/// connection (opened again if it breaks) and answers what it said.
async fn serve_http1(addr: String, upstream: String) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let state = Arc::new(Upstream {
        addr: upstream,
        sender: Mutex::new(None),
    });
    let app = Router::new().route("/", get(relay_http1)).with_state(state);
    axum::serve(listener, app).await?;
    Ok(())
}

struct Upstream {
    addr: String,
    sender: Mutex<Option<http1::SendRequest<http_body_util::Empty<Bytes>>>>,
}

async fn relay_http1(State(upstream): State<Arc<Upstream>>) -> Result<Bytes, StatusCode> {
    let mut sender = upstream.sender.lock().await;
    if sender.as_ref().is_none_or(http1::SendRequest::is_closed) {
        let stream = tokio::net::TcpStream::connect(&upstream.addr)
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        let _ = stream.set_nodelay(true);
        let (new, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        tokio::spawn(connection);
        *sender = Some(new);
    }
    let sender = sender.as_mut().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    let request = http::Request::get("/")
        .header(http::header::HOST, upstream.addr.as_str())
        .body(http_body_util::Empty::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok(body.to_bytes())
}
