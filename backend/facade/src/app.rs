//! The one start-up path: [`Application::build`] checks the settings, builds the clients and
//! binds the port; [`Application::run_until`] follows logging's live feed, serves until a
//! shutdown signal, ends the watch streams and drains. `main.rs` and every test build the
//! facade this way.
//!
//! One port serves three doors: the JSON routes and the page (HTTP/1.1 and HTTP/2), and the
//! gRPC API `msglog.v1.MessageLog` as native gRPC (HTTP/2) and gRPC-web (HTTP/1.1, binary and
//! text), with reflection.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use http::{HeaderValue, Request, StatusCode, header};
use msglog_common::{
    grpc_deadline::GrpcDeadlineLayer, grpc_one_message::OneMessageLayer, metrics::AdminPort,
    server::Bound,
};
use msglog_proto::{
    api::paths,
    v1::{self, message_log_server::MessageLogServer},
};
use tower_http::{
    CompressionLevel,
    catch_panic::CatchPanicLayer,
    compression::{CompressionLayer, DefaultPredicate, Predicate as _},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnFailure, TraceLayer},
};

use crate::{
    compression,
    error::AppError,
    feed::Feed,
    hosts::AllowedHosts,
    routes::{self, api, connect::Connect, grpc::MessageLogApi, original},
    settings::Settings,
    state::{AppState, Limits},
    web,
};

/// The facade, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    /// The bound listener, with its connection limits.
    bound: Bound,
    /// The HTTPS listener, when there is a certificate.
    secure: Option<Bound>,
    /// Every route with its middleware.
    router: Router,
    /// The live feed from logging, followed while serving.
    feed: Feed,
    /// The admin port (`/metrics`), when asked for.
    admin: Option<AdminPort>,
}

impl Application {
    /// Builds the clients of logging and messages (connecting to nothing yet, so the facade
    /// starts whether or not they are up) and binds the address.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let document = crate::openapi::document_text(Limits::from(settings));
        let state = AppState::from_settings(settings, document)?;
        tracing::info!(
            logging = ?settings.logging_urls,
            messages = %settings.messages_url,
            dedup = ?settings.dedup,
            "starting facade"
        );
        let feed = state.feed.clone();
        let requests = Arc::clone(&state.metrics.http);
        let request_timeout = Duration::from_millis(settings.request_timeout_ms);
        let grpc = grpc_routes(state.clone(), request_timeout)?;
        let registry = Arc::clone(&state.metrics.registry);
        let public_metrics = settings.admin_addr.is_none();
        let router = router(
            state,
            request_timeout,
            settings.max_compressions as usize,
            public_metrics,
        )
        .merge(grpc)
        // For every door, outermost first: the request-id rule (the id returned in
        // `x-request-id` and forwarded), every request counted and timed by its matched route
        // (refusals included), the refusal of unknown hosts, and of unservable paths.
        .layer(
            tower::ServiceBuilder::new()
                .layer(msglog_common::request_id::RequestIdLayer)
                .layer(requests.layer())
                .layer(AllowedHosts::new(&settings.allowed_hosts).layer())
                .layer(msglog_common::http_edge::refuse_unservable_paths()),
        );
        let bound = Bound::bind(
            settings.addr,
            settings.connections.limits(),
            Duration::from_millis(settings.shutdown_grace_ms),
        )
        .await?;
        let secure = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                let acceptor = msglog_common::tls::acceptor(cert, key)?;
                let secure = Bound::bind(
                    settings.tls_addr,
                    settings.connections.limits(),
                    Duration::from_millis(settings.shutdown_grace_ms),
                )
                .await?;
                // One cap for both ports: it guards the process's file limit.
                Some(secure.with_tls(acceptor).sharing_connections_with(&bound))
            }
            _ => None,
        };
        let admin = AdminPort::bind(
            settings.admin_addr,
            settings.connections.limits(),
            Duration::from_millis(settings.shutdown_grace_ms),
            registry,
        )
        .await?;
        Ok(Self {
            bound,
            secure,
            router,
            feed,
            admin,
        })
    }

    /// Where the admin port listens, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminPort::addr)
    }

    /// Where the facade listens (the real port when the settings asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.bound.addr()
    }

    /// Where the facade listens for HTTPS, when it does.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.secure.as_ref().map(Bound::addr)
    }

    /// Follows logging's live feed and serves until `shutdown` resolves, then ends the watch
    /// streams (so they do not hold up the drain) and lets in-flight requests finish (bounded
    /// by the grace period).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        match self.tls_addr() {
            // One line, so whoever waits for it learns both addresses at once.
            Some(tls_addr) => tracing::info!(
                %tls_addr,
                addr = %self.addr(),
                "facade listening (HTTP, gRPC and gRPC-web; HTTPS with HTTP/2 too)"
            ),
            None => {
                tracing::info!(addr = %self.addr(), "facade listening (HTTP, gRPC and gRPC-web)")
            }
        }
        let follower = tokio::spawn(self.feed.clone().follow());
        let feed = self.feed;
        let stopped = tokio_util::sync::CancellationToken::new();
        let admin = self
            .admin
            .map(|admin| admin.serve_until(stopped.clone().cancelled_owned()));
        let secure = self.secure.map(|secure| {
            tokio::spawn(secure.serve(self.router.clone(), stopped.clone().cancelled_owned()))
        });
        let shutdown = async move {
            shutdown.await;
            feed.stop();
            stopped.cancel();
        };
        let served = self.bound.serve(self.router, shutdown).await;
        let served_secure = match secure {
            Some(task) => task
                .await
                .map_err(|error| anyhow::anyhow!("the HTTPS listener's task failed: {error}"))
                .and_then(|served| served),
            None => Ok(()),
        };
        if let Some(admin) = admin {
            admin.finish().await;
        }
        if let Err(error) = follower.await {
            tracing::error!(%error, "the live feed's task failed");
        }
        served.and(served_secure)
    }
}

/// The gRPC API and reflection, each answering native gRPC and gRPC-web, with a span per call,
/// a panic guard (`INTERNAL`), one request message for the API's methods, and a deadline: the
/// client's `grpc-timeout`, and for unary calls the JSON routes' request timeout when that
/// comes first (`DEADLINE_EXCEEDED`, also when the request's body stalls). Outside the JSON routes' compression and body limit: a `Watch`
/// stays open for as long as its client wants, and each of its frames goes out as soon as it
/// is made.
fn grpc_routes(state: AppState, request_timeout: Duration) -> anyhow::Result<Router> {
    let max_message = state.limits.max_body_bytes;
    let connect = Connect {
        api: MessageLogApi::new(state.clone()),
        max_message,
        request_timeout,
    };
    let api =
        MessageLogServer::new(MessageLogApi::new(state)).max_decoding_message_size(max_message);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| anyhow::anyhow!("cannot build the reflection service: {error}"))?;
    let routes = tonic::service::Routes::new(api)
        .add_service(reflection)
        .prepare();
    let guarded = |deadline: GrpcDeadlineLayer| {
        tower::ServiceBuilder::new()
            .layer(
                TraceLayer::new_for_grpc()
                    .make_span_with(|request: &Request<_>| {
                        msglog_common::telemetry::grpc_request_span(request)
                    })
                    // A call answered with an error status is the caller's news, not a fault
                    // here (a watch ended by shutdown is one): what fails in the service logs
                    // its own error.
                    .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
            )
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(deadline)
            .map_response(|response: Response<_>| response.map(tonic::body::Body::new))
            .layer(CatchPanicLayer::custom(grpc_panic_response))
            .layer(OneMessageLayer::for_service(routes::grpc::PREFIX))
            .service(routes.clone())
    };
    let unary = guarded(GrpcDeadlineLayer::at_most(request_timeout));
    let streams = guarded(GrpcDeadlineLayer::client_only());
    // The service's paths answer gRPC and gRPC-web (by their content type) and Connect
    // (everything else), each call on the same `MessageLog`.
    let door = |grpc| gateway_door(grpc, connect.clone());
    let prefix = routes::grpc::PREFIX;
    Ok(Router::new()
        .route(&format!("{prefix}{{*method}}"), door(unary))
        .route(&format!("{prefix}Watch"), door(streams.clone()))
        .route_service("/grpc.reflection.v1.ServerReflection/{*method}", streams))
}

/// A path of the gateway's service: gRPC and gRPC-web (told by their content type) to `grpc`,
/// but for gRPC-web's binary `Watch`, which the facade writes itself; everything else to the
/// Connect door; each in a span of its own.
fn gateway_door<S>(grpc: S, connect: Connect) -> axum::routing::MethodRouter
where
    S: tower::Service<Request<axum::body::Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
    axum::routing::any(move |request: Request<axum::body::Body>| {
        let (grpc, connect) = (grpc.clone(), connect.clone());
        async move {
            if routes::grpc::is_web_watch(&request) {
                let span = msglog_common::telemetry::grpc_request_span(&request);
                let watch = routes::grpc::web_watch(
                    connect.api,
                    connect.max_message,
                    connect.request_timeout,
                    request,
                );
                tracing::Instrument::instrument(watch, span).await
            } else if routes::connect::is_grpc(&request) {
                match tower::ServiceExt::oneshot(grpc, request).await {
                    Ok(response) => response.into_response(),
                    Err(never) => match never {},
                }
            } else {
                let span = msglog_common::telemetry::http_request_span(&request);
                tracing::Instrument::instrument(routes::connect::serve(connect, request), span)
                    .await
            }
        }
    })
}

/// The JSON routes and the page (and `/metrics` when it has no admin port of its own) with
/// their middleware, outermost first: a span per request
/// keyed by its route, a request timeout (a JSON 503), a panic guard (a JSON 500), the security
/// headers, compression (at most `max_compressions` answers at once), and a body limit.
fn router(
    state: AppState,
    request_timeout: Duration,
    max_compressions: usize,
    public_metrics: bool,
) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let mut routes = Router::new()
        .route(paths::SEND_MESSAGE, post(original::send_message))
        .route(paths::GET_MESSAGES, get(original::get_messages))
        .route(paths::HEALTHZ, get(routes::ops::healthz));
    if public_metrics {
        routes = routes.route(paths::METRICS, get(routes::ops::metrics));
    }
    routes
        .nest(paths::API, api::router())
        .route("/", get(web::index))
        .route("/index.html", get(web::index))
        .fallback(web::static_or_not_found)
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .with_state(state)
        // One `layer` call for the whole stack: each call wraps every route in a box of its
        // own (a clone of the boxed service, a boxed future and a boxed body per request).
        .layer(
            tower::ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        msglog_common::telemetry::http_request_span(request)
                    }),
                )
                // A request that takes too long (a body trickling in, say) ends with a JSON 503.
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    AppError::Timeout
                }))
                .timeout(request_timeout)
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    web::policy_if_html,
                ))
                .layer(compression::CapCompressionsLayer::new(max_compressions))
                // The fastest level: on a busy machine a large list's best compression costs
                // more CPU than the bytes it saves are worth, and would slow every other
                // request.
                .layer(
                    CompressionLayer::new()
                        .quality(CompressionLevel::Fastest)
                        .compress_when(DefaultPredicate::new().and(web::NotStaticFile)),
                )
                .layer(DefaultBodyLimit::max(body_limit)),
        )
}

/// A gRPC call whose handler panicked: `INTERNAL`, and nothing of the panic.
fn grpc_panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a gRPC handler panicked");
    tonic::Status::internal("internal error")
        .into_http::<axum::body::Body>()
        .map(axum::body::Body::new)
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(msglog_proto::api::ErrorBody::new("internal error")),
    )
        .into_response()
}
