//! The logging service: stores messages idempotently by id.
//!
//! It speaks the original's gRPC contract (`logging.proto`, service `LoggingService`) over
//! HTTP/2, and gRPC-web over HTTP/1.1 so browsers can reach it (with CORS for the origins named
//! by `--cors-origin`). It also answers the standard gRPC health check and server reflection.
//!
//! Run it with `cargo run -p logging-service` (listens on `0.0.0.0:8081`).
//!
//! # Layout
//!
//! - [`store`]: the [`Store`](store::Store) trait and its back-ends.
//! - [`service`]: the gRPC API, which checks requests and maps store outcomes to statuses.
//! - [`run`] (here): the tonic server with gRPC-web, CORS, health, reflection and tracing.

pub mod service;
pub mod store;

use std::{future::Future, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use http::{HeaderName, HeaderValue, Method};
use msglog_proto::logging::{FILE_DESCRIPTOR_SET, logging_service_server::LoggingServiceServer};
use tokio::net::TcpListener;
use tonic::transport::{Server, server::TcpIncoming};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

use crate::{service::LoggingApi, store::Store};

/// Settings, from flags or environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "logging-service",
    version,
    about = "The logging service (gRPC + gRPC-web)."
)]
pub struct Settings {
    /// Address to listen on (gRPC over HTTP/2, gRPC-web over HTTP/1.1).
    #[arg(long, env = "LOGGING_ADDR", default_value = "0.0.0.0:8081")]
    pub addr: SocketAddr,
    /// Origins allowed to call over gRPC-web from a browser (repeat the flag or separate
    /// with commas), e.g. `http://localhost:8080`. None by default: same-origin only.
    #[arg(
        long = "cors-origin",
        env = "LOGGING_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Longest message text accepted, in UTF-8 bytes.
    #[arg(long, env = "LOGGING_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// After SIGINT/SIGTERM, how long in-flight calls may take to finish, in milliseconds.
    #[arg(long, env = "LOGGING_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
}

/// Default limit on a message text: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What the server needs besides its listener and store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Longest message text accepted, in UTF-8 bytes.
    pub max_message_bytes: usize,
    /// Browser origins allowed to call cross-origin.
    pub cors_origins: Vec<HeaderValue>,
}

impl ServerConfig {
    /// Checks the settings' values (origins must be valid header values).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let cors_origins = settings
            .cors_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                HeaderValue::from_str(origin)
                    .with_context(|| format!("invalid --cors-origin {origin:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            max_message_bytes: settings.max_message_bytes,
            cors_origins,
        })
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            cors_origins: Vec::new(),
        }
    }
}

/// CORS for gRPC-web: only the named origins, only POST, with the headers gRPC-web sends and
/// reads. Outside the gRPC-web layer, so preflights never reach it.
fn cors(origins: Vec<HeaderValue>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Serves the logging API over `store` on `listener` until `shutdown` resolves, then lets
/// in-flight calls finish.
pub async fn run<S: Store>(
    listener: TcpListener,
    config: ServerConfig,
    store: S,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let api = LoggingServiceServer::new(LoggingApi::new(store, config.max_message_bytes))
        // Room for the longest accepted text plus the id and framing; anything larger is
        // refused before it is buffered whole.
        .max_decoding_message_size(
            config
                .max_message_bytes
                .saturating_mul(2)
                .saturating_add(4096),
        );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<LoggingServiceServer<LoggingApi<S>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection service")?;

    let layers = tower::ServiceBuilder::new()
        .layer(
            TraceLayer::new_for_grpc().make_span_with(|request: &http::Request<_>| {
                msglog_common::telemetry::grpc_request_span(request)
            }),
        )
        .layer(cors(config.cors_origins))
        .layer(tonic_web::GrpcWebLayer::new());

    tracing::info!(%addr, "logging service listening (gRPC and gRPC-web)");
    Server::builder()
        .accept_http1(true)
        .layer(layers)
        .add_service(api)
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .context("logging server failed")
}
