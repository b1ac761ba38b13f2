//! The one start-up path: [`Application::build`] opens the store, binds the port and wires
//! the gRPC services; [`Application::run_until`] serves until a shutdown signal, drains, and
//! closes the store. `main.rs` and every test build the service this way.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use http::{HeaderName, HeaderValue, Method};
use msglog_common::{metrics::AdminPort, server::Bound};
use msglog_proto::logging::{FILE_DESCRIPTOR_SET, logging_service_server::LoggingServiceServer};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::{DefaultOnFailure, TraceLayer},
};

use msglog_common::secret::Secret;

use crate::{
    auth::require_token,
    health::{StopProbe, StoreHealth},
    metrics::Metrics,
    service::{LoggingApi, Watching},
    settings::Settings,
    store::Store,
};

/// The logging service, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    /// The bound listener, with its connection limits.
    bound: Bound,
    /// Whether it serves TLS.
    secure: bool,
    /// gRPC (LoggingService, health, reflection when asked for); served behind the client's
    /// deadline, the token when one is required, gRPC-web, CORS, tracing and request ids.
    routes: tonic::service::Routes,
    /// Browser origins allowed cross-origin.
    cors_origins: Vec<HeaderValue>,
    /// The token callers must present, if one is required.
    token: Option<Secret>,
    /// The store, closed when serving ends.
    store: Arc<dyn Store>,
    /// Ends the health probe when serving ends.
    stop_probe: StopProbe,
    /// Ends every open watch stream when the shutdown signal comes, so the drain does not
    /// wait out its grace period for them.
    stop_streams: CancellationToken,
    /// The admin port (`/metrics`), when asked for.
    admin: Option<AdminPort>,
}

impl Application {
    /// Opens the store the settings name, then binds the address. The store opens first: a
    /// database that cannot be used stops the start-up with its reason.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = settings.store_choice()?.open(settings).await?;
        tracing::info!(dedup_by = ?settings.dedup_by, "duplicate rule");
        Self::build_with_store(settings, store).await
    }

    /// As [`Application::build`], over a store the caller opened (any [`Store`]).
    pub async fn build_with_store(
        settings: &Settings,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let cors_origins = settings.cors_origins()?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let (health, stop_probe) = StoreHealth::new(
            reporter,
            Arc::clone(&store),
            Duration::from_millis(settings.store_probe_ms),
        )
        .await;
        let stop_streams = CancellationToken::new();
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        store.register_metrics(&mut registry);
        let api = LoggingServiceServer::new(LoggingApi::new(
            Arc::clone(&store),
            settings.max_message_bytes,
            health,
            Watching {
                heartbeat: Duration::from_millis(settings.watch_heartbeat_ms),
                stop: stop_streams.clone(),
            },
            metrics,
        ))
        // Room for a `LogMessages` call as the facade fills them (a page's worth of text, or
        // one longest text alone), never less than tonic's default; anything larger is refused
        // before it is buffered whole.
        .max_decoding_message_size(
            msglog_proto::limits::log_call_decoding_limit(
                settings.max_message_bytes,
                msglog_proto::logging::MAX_LOG_ITEMS,
            )
            .max(4 << 20),
        );
        let mut routes = tonic::service::Routes::new(api).add_service(health_service);
        if settings.reflection {
            routes = routes.add_service(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                    .build_v1()
                    .context("cannot build the reflection service")?,
            );
        }
        let routes = routes.prepare();
        let token = settings
            .token_file
            .as_deref()
            .map(Secret::read)
            .transpose()
            .context("--token-file")?;
        if token.is_none() && !settings.addr.ip().is_loopback() {
            tracing::warn!(
                addr = %settings.addr,
                "listening beyond this machine with no token: anyone who reaches the port can \
                 store and read every message (set --token-file)"
            );
        }

        let mut bound = Bound::bind(
            settings.addr,
            settings.connections.limits(),
            Duration::from_millis(settings.shutdown_grace_ms),
        )
        .await?;
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(msglog_common::tls::acceptor(cert, key)?),
            _ => None,
        };
        let secure = tls.is_some();
        if let Some(acceptor) = tls {
            bound = bound.with_tls(acceptor);
        }
        let admin = AdminPort::bind(
            settings.admin_addr,
            settings.connections.limits(),
            Duration::from_millis(settings.shutdown_grace_ms),
            Arc::new(registry),
        )
        .await?;
        Ok(Self {
            bound,
            secure,
            routes,
            cors_origins,
            token,
            store,
            stop_probe,
            stop_streams,
            admin,
        })
    }

    /// Where the admin port listens, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminPort::addr)
    }

    /// Where the service listens (the real port when the settings asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.bound.addr()
    }

    /// Serves until `shutdown` resolves, ends the watch streams, lets in-flight calls finish
    /// (bounded by the grace period), then commits what the store has queued and closes it.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.addr(),
            tls = self.secure,
            "logging service listening (gRPC and gRPC-web)"
        );
        let service = tower::ServiceBuilder::new()
            .layer(msglog_common::request_id::RequestIdLayer)
            .layer(
                TraceLayer::new_for_grpc()
                    .make_span_with(|request: &http::Request<_>| {
                        msglog_common::telemetry::grpc_request_span(request)
                    })
                    // A call answered with an error status is the caller's news, not a fault here (a
                    // watch ended by shutdown is one): what fails in the service logs its own error.
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
            )
            .layer(cors(self.cors_origins))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(require_token(self.token))
            .layer(msglog_common::grpc_deadline::GrpcDeadlineLayer::client_only())
            .layer(
                msglog_common::grpc_one_message::OneMessageLayer::for_service("/LoggingService/"),
            )
            .service(self.routes);
        let stop_streams = self.stop_streams;
        let admin = self
            .admin
            .map(|admin| admin.serve_until(stop_streams.clone().cancelled_owned()));
        let shutdown = async move {
            shutdown.await;
            stop_streams.cancel();
        };
        let served = self.bound.serve(service, shutdown).await;
        if let Some(admin) = admin {
            admin.finish().await;
        }
        self.stop_probe.stop();
        self.store.close().await;
        served
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
