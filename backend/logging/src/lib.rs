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
//! - [`store`]: the [`Store`](store::Store) trait and its back-ends: in memory, or a SQLite
//!   file (the default) with every acknowledged message on disk.
//! - [`service`]: the gRPC API, which checks requests and maps store outcomes to statuses.
//! - [`run`] (here): the tonic server with gRPC-web, CORS, health, reflection and tracing.

pub mod service;
pub mod store;

use std::{future::Future, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

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
    /// Where messages are kept: `memory` (lost on exit, as the original) or `sqlite:PATH`.
    /// Default: a SQLite file, `logging.sqlite3` in the data directory.
    #[arg(long, env = "LOGGING_STORE")]
    pub store: Option<StoreChoice>,
    /// Directory of the default SQLite file; created if missing.
    #[arg(long, env = "LOGGING_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Longest message text accepted, in UTF-8 bytes.
    #[arg(long, env = "LOGGING_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// After SIGINT/SIGTERM, how long in-flight calls may take to finish, in milliseconds.
    #[arg(long, env = "LOGGING_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
}

/// Which store keeps the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// In memory: fast, lost on exit.
    Memory,
    /// A SQLite file at this path.
    Sqlite(PathBuf),
}

impl FromStr for StoreChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once(':') {
            _ if value == "memory" => Ok(Self::Memory),
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(format!("expected `memory` or `sqlite:PATH`, got {value:?}")),
        }
    }
}

impl Settings {
    /// The store to use: the one named, or the default file in the data directory (which is
    /// created if missing).
    pub fn store_choice(&self) -> anyhow::Result<StoreChoice> {
        match &self.store {
            Some(choice) => Ok(choice.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!(
                        "cannot create the data directory {}",
                        self.data_dir.display()
                    )
                })?;
                Ok(StoreChoice::Sqlite(self.data_dir.join("logging.sqlite3")))
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn store_choices_parse_and_bad_ones_are_refused() {
        assert_eq!("memory".parse(), Ok(StoreChoice::Memory));
        assert_eq!(
            "sqlite:/var/lib/msglog/db".parse(),
            Ok(StoreChoice::Sqlite(PathBuf::from("/var/lib/msglog/db")))
        );
        for bad in ["", "sqlite:", "sqlite", "redis://x", "Memory"] {
            assert!(bad.parse::<StoreChoice>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_store_is_a_sqlite_file_in_a_created_data_directory() {
        let temp = msglog_common::testing::TempDir::new("msglog-data");
        // A directory that does not exist yet, inside one removed afterwards.
        let dir = temp.join("data");
        let settings =
            Settings::try_parse_from(["logging-service", "--data-dir", dir.to_str().unwrap()])
                .unwrap();
        assert_eq!(settings.addr.port(), 8081);
        assert_eq!(
            settings.store_choice().unwrap(),
            StoreChoice::Sqlite(dir.join("logging.sqlite3"))
        );
        assert!(dir.is_dir());
    }
}
