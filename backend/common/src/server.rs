//! One way to serve HTTP for all three services, with limits on what a connection may hold.
//!
//! [`serve`] runs an accept loop over a bound listener and serves each connection with hyper's
//! automatic HTTP/1.1 / HTTP/2 (h2c) builder, so the same function serves an axum router (the
//! facade, messages) and tonic's gRPC routes with gRPC-web (logging). Whatever a single client
//! does, it cannot keep resources from the others:
//!
//! - **header-read timeout**: a connection that has not sent a complete request head within
//!   [`ConnectionLimits::header_read_timeout`] of connecting, or of its previous request
//!   finishing, is closed (HTTP/1.1 by hyper's own timer; anything else, HTTP/2 included, by
//!   this module's watch over each connection);
//! - **idle timeout**: a connection with no request in flight for
//!   [`ConnectionLimits::idle_timeout`] is closed gracefully;
//! - **HTTP/2 keep-alive pings**, so a peer that vanished without a FIN is found;
//! - **a cap on open connections**: when [`ConnectionLimits::max_connections`] are open, a new
//!   connection makes room by closing the connection idle the longest (one with no request in
//!   flight) or, when none is idle, the one whose request bodies have stalled the longest (no
//!   byte for at least [`STALLED`]: a client that declared a body and does not send it), so a
//!   crowd of idle, slow or stalling clients can never lock a new client out; only when every
//!   open connection is busy and moving is the new one refused. The cap is kept below the process's
//!   file-descriptor limit, leaving descriptors for outgoing calls and for the store.
//!
//! With the `tls` feature a listener can serve HTTPS ([`Bound::with_tls`]): HTTP/2 or HTTP/1.1
//! as the client's ALPN asks, under the same limits. A handshake counts as the request head: one
//! not finished within the header-read timeout is closed, and a connection still shaking hands
//! is idle (the first to make room for a new one).
//!
//! On shutdown the listener closes at once, every connection is asked to finish gracefully
//! (HTTP/1.1 after its current answer, HTTP/2 with GOAWAY), and whatever is still open after
//! the grace period is dropped.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
    task::JoinSet,
    time::Instant,
};
use tower::Service;

/// Limits on every connection a service accepts. Set from flags by [`connection_settings!`].
///
/// [`connection_settings!`]: crate::connection_settings
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The longest a client may take to send a complete request head, counted from the
    /// connection's start or from the end of its previous request.
    pub header_read_timeout: Duration,
    /// The longest a connection may stay open with no request in flight (after its first).
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged to check the peer is still there.
    pub http2_keepalive_interval: Duration,
    /// How long an HTTP/2 ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// Connections open at once, at most (kept below the file-descriptor limit).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// File descriptors kept free for what is not a client connection: the listener, outgoing
/// connections to the other services, the store, logs.
const RESERVED_DESCRIPTORS: usize = 64;

impl ConnectionLimits {
    /// The connection cap actually used: the configured one, lowered to fit under the
    /// process's open-file limit with [`RESERVED_DESCRIPTORS`] to spare.
    pub fn effective_max_connections(&self) -> usize {
        match open_file_limit() {
            Some(limit) => {
                let fits = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
                if fits < self.max_connections {
                    tracing::info!(
                        configured = self.max_connections,
                        used = fits,
                        open_file_limit = limit,
                        "the connection cap is lowered to fit the open-file limit"
                    );
                }
                self.max_connections.min(fits)
            }
            None => self.max_connections,
        }
    }
}

/// The soft open-file limit (`ulimit -n`), read from `/proc/self/limits`; `None` when unknown
/// or unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Declares a `ConnectionSettings` struct of clap flags for [`ConnectionLimits`] in the calling
/// crate, with environment variables under the given prefix (`FACADE` gives
/// `FACADE_HEADER_READ_TIMEOUT_MS`, ...). Flatten it into a service's settings with
/// `#[command(flatten)]`. The calling crate needs `clap` with `derive` and `env`.
#[macro_export]
macro_rules! connection_settings {
    ($prefix:literal) => {
        /// Limits on client connections (see `msglog_common::server`).
        #[derive(Debug, Clone, clap::Args)]
        pub struct ConnectionSettings {
            /// The longest a client may take to send a request's head, in milliseconds, from
            /// connecting or from its previous request.
            #[arg(long, env = concat!($prefix, "_HEADER_READ_TIMEOUT_MS"), default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
            pub header_read_timeout_ms: u64,
            /// Close a connection with no request in flight after this many milliseconds.
            #[arg(long, env = concat!($prefix, "_IDLE_TIMEOUT_MS"), default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
            pub idle_timeout_ms: u64,
            /// Ping HTTP/2 clients this often, in milliseconds, to find vanished peers.
            #[arg(long, env = concat!($prefix, "_HTTP2_KEEPALIVE_INTERVAL_MS"), default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
            pub http2_keepalive_interval_ms: u64,
            /// Close an HTTP/2 connection whose ping is not answered within this many milliseconds.
            #[arg(long, env = concat!($prefix, "_HTTP2_KEEPALIVE_TIMEOUT_MS"), default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
            pub http2_keepalive_timeout_ms: u64,
            /// Open connections at most; when full, the longest-idle one makes room for a new
            /// client. Lowered to fit the open-file limit.
            #[arg(long, env = concat!($prefix, "_MAX_CONNECTIONS"), default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
            pub max_connections: u64,
        }

        impl ConnectionSettings {
            /// The limits these flags describe.
            pub fn limits(&self) -> $crate::server::ConnectionLimits {
                use std::time::Duration;
                $crate::server::ConnectionLimits {
                    header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
                    idle_timeout: Duration::from_millis(self.idle_timeout_ms),
                    http2_keepalive_interval: Duration::from_millis(
                        self.http2_keepalive_interval_ms,
                    ),
                    http2_keepalive_timeout: Duration::from_millis(
                        self.http2_keepalive_timeout_ms,
                    ),
                    max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
                }
            }
        }
    };
}

/// What [`serve`] can serve: a tower HTTP service that never fails, such as an axum `Router`
/// or tonic's `Routes` (with their layers).
pub trait HttpService:
    Service<
        Request<RequestBody>,
        Response = Response<Self::ResponseBody>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The body of its answers.
    type ResponseBody: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<
            Request<RequestBody>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    type ResponseBody = B;
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A bound listener and the limits it will serve with: each service's `Application` holds one,
/// so binding, the address and serving are written once for the three.
#[derive(Debug)]
pub struct Bound {
    /// The listener: connections queue on it from the moment it is bound.
    listener: TcpListener,
    /// Where it listens (the real port when port 0 was asked for).
    addr: SocketAddr,
    /// Limits on each connection.
    limits: ConnectionLimits,
    /// How long open connections may take to finish after the shutdown signal.
    grace: Duration,
    /// What each connection goes through before HTTP.
    transport: Transport,
    /// The open connections, counted against the cap: shared by listeners of one service
    /// ([`Bound::sharing_connections_with`]), so two ports hold no more than one cap.
    registry: Registry,
}

/// How an accepted connection becomes a stream of HTTP.
#[derive(Clone, Default)]
enum Transport {
    /// As it is: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
    #[default]
    Plain,
    /// After a TLS handshake; the protocol by ALPN.
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain => f.write_str("Plain"),
            #[cfg(feature = "tls")]
            Self::Tls(_) => f.write_str("Tls"),
        }
    }
}

impl Bound {
    /// Binds `addr` (with an error that names it).
    pub async fn bind(
        addr: SocketAddr,
        limits: ConnectionLimits,
        grace: Duration,
    ) -> anyhow::Result<Self> {
        let listener = crate::bind(addr).await?;
        Ok(Self {
            addr: listener.local_addr()?,
            listener,
            limits,
            grace,
            transport: Transport::Plain,
            registry: Registry::default(),
        })
    }

    /// Counts this listener's connections with `other`'s against the one cap (the cap is the
    /// process's, derived from its file limit: two listeners with a cap each could exhaust it).
    #[must_use]
    pub fn sharing_connections_with(mut self, other: &Self) -> Self {
        self.registry = other.registry.clone();
        self
    }

    /// Serves HTTPS with `acceptor` (see [`crate::tls::acceptor`]) rather than plain HTTP.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.transport = Transport::Tls(acceptor);
        self
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `service` until `shutdown` resolves, then drains (see [`serve`]).
    pub async fn serve(
        self,
        service: impl HttpService,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        serve_over(
            self.listener,
            self.transport,
            self.registry,
            service,
            self.limits,
            shutdown,
            self.grace,
        )
        .await
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains for at most `grace`.
///
/// See the module documentation for the limits applied. Returns once every connection has
/// closed or the grace period has run out (the rest are dropped).
pub async fn serve<S: HttpService>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let registry = Registry::default();
    serve_over(
        listener,
        Transport::Plain,
        registry,
        service,
        limits,
        shutdown,
        grace,
    )
    .await
}

async fn serve_over<S: HttpService>(
    listener: TcpListener,
    transport: Transport,
    registry: Registry,
    service: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let max_connections = limits.effective_max_connections();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout);
    let builder = Arc::new(builder);

    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => {
                // That one client's connection went away before it was accepted.
                tracing::debug!(%error, "a connection ended before it was accepted");
                continue;
            }
            Err(error) => {
                // Out of descriptors, say: wait a little rather than spin, and go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if registry.len() >= max_connections && !registry.evict_longest_idle() {
            tracing::warn!(%peer, max_connections, "connection refused: every connection is busy");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let entry = registry.insert();
        let connection = accept_connection(
            transport.clone(),
            Arc::clone(&builder),
            stream,
            Peer(peer),
            service.clone(),
            limits,
            Arc::clone(&entry.1),
            stopping.clone(),
        );
        let registry = registry.clone();
        connections.spawn(async move {
            connection.await;
            registry.remove(entry.0);
        });
    }

    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "connections still open after the grace period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Whether an accept error concerns one connection only (it was reset or aborted before it
/// was accepted), rather than the listener.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves one accepted connection: over TLS once its handshake is done, when the listener
/// serves HTTPS.
#[allow(clippy::too_many_arguments)]
async fn accept_connection<S: HttpService>(
    transport: Transport,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: Peer,
    service: S,
    limits: ConnectionLimits,
    state: Arc<ConnectionState>,
    stopping: watch::Receiver<bool>,
) {
    match transport {
        Transport::Plain => {
            serve_connection(builder, stream, peer, service, limits, state, stopping).await;
        }
        #[cfg(feature = "tls")]
        Transport::Tls(acceptor) => {
            let mut stopped = stopping.clone();
            let handshake =
                tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
            let stream = tokio::select! {
                finished = handshake => match finished {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, peer = %peer.0, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer.0, "TLS handshake not finished within the header-read timeout");
                        return;
                    }
                },
                Ok(_) = stopped.wait_for(|stop| *stop) => return,
                () = state.evict.notified() => return,
            };
            serve_connection(builder, stream, peer, service, limits, state, stopping).await;
        }
    }
}

/// Serves one connection, closing it when the limits say so or the server stops.
async fn serve_connection<S: HttpService, I>(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: I,
    peer: Peer,
    service: S,
    limits: ConnectionLimits,
    state: Arc<ConnectionState>,
    mut stopping: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tracked = Tracked {
        inner: service,
        state: Arc::clone(&state),
        peer,
    };
    let connection = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(tracked))
        .into_owned();
    tokio::pin!(connection);
    // When a graceful close was asked for; a connection with nothing in flight that has not
    // closed a header-read timeout later is dropped.
    let mut closing: Option<Instant> = None;
    loop {
        let wake = match closing {
            Some(since) if state.in_flight() == 0 => since + limits.header_read_timeout,
            // Still answering: look again later.
            Some(_) => Instant::now() + limits.header_read_timeout,
            None => state.quiet_deadline(&limits),
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(error = %error, "connection ended with an error");
                }
                return;
            }
            Ok(_) = stopping.wait_for(|stop| *stop), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            () = state.evict.notified() => {
                if state.in_flight() == 0 {
                    tracing::debug!("closing an idle connection to make room for a new one");
                    return;
                }
                if state.stalled_since().is_some() {
                    tracing::info!("closing a connection whose request stalled, to make room for a new one");
                    return;
                }
                if closing.is_none() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            // The first request started: the deadline is worked out again.
            () = state.first_request.notified() => {}
            () = tokio::time::sleep_until(wake) => {
                let quiet = state.in_flight() == 0 && Instant::now() >= state.quiet_deadline(&limits);
                match closing {
                    Some(_) if state.in_flight() == 0 => {
                        tracing::debug!("connection did not close gracefully in time; dropping it");
                        return;
                    }
                    None if quiet => {
                        tracing::debug!(
                            served = state.served.load(Ordering::Relaxed),
                            "closing a connection with no request in time"
                        );
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// What the server knows of one open connection.
#[derive(Debug)]
struct ConnectionState {
    /// When the connection was accepted: the origin of `last_activity_ms`.
    started: Instant,
    /// Requests being answered now (until their answer's body is finished or dropped).
    in_flight: AtomicUsize,
    /// Requests begun on this connection.
    served: AtomicU64,
    /// Milliseconds from `started` to the last start or end of a request.
    last_activity_ms: AtomicU64,
    /// Woken to ask the connection to close and free its slot.
    evict: Notify,
    /// Requests in flight whose body has not all come yet.
    receiving: AtomicUsize,
    /// Milliseconds from `started` to the last byte of a request body (or the start of a
    /// request that has one).
    body_progress_ms: AtomicU64,
    /// Woken when the first request starts: the connection's deadline changes from the
    /// header-read timeout to the idle timeout, which may be shorter. (Later requests only
    /// move the deadline later, which the watch finds when it wakes.)
    first_request: Notify,
}

impl ConnectionState {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            receiving: AtomicUsize::new(0),
            body_progress_ms: AtomicU64::new(0),
            evict: Notify::new(),
            first_request: Notify::new(),
        }
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_activity_ms
            .store(self.elapsed_ms(), Ordering::SeqCst);
    }

    fn body_progressed(&self) {
        self.body_progress_ms
            .store(self.elapsed_ms(), Ordering::SeqCst);
    }

    /// Since when every request in flight has waited for its body, if they all have and it
    /// has been at least [`STALLED`].
    fn stalled_since(&self) -> Option<Instant> {
        let in_flight = self.in_flight();
        if in_flight == 0 || self.receiving.load(Ordering::SeqCst) < in_flight {
            return None;
        }
        let since =
            self.started + Duration::from_millis(self.body_progress_ms.load(Ordering::SeqCst));
        (since + STALLED <= Instant::now()).then_some(since)
    }

    fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.last_activity_ms.load(Ordering::SeqCst))
    }

    /// When the connection will have been quiet too long if nothing happens: a header-read
    /// timeout after it opened (before its first request), an idle timeout after its last
    /// request otherwise. While a request is in flight, the question is asked again later.
    fn quiet_deadline(&self, limits: &ConnectionLimits) -> Instant {
        if self.in_flight() > 0 {
            return Instant::now() + limits.idle_timeout;
        }
        let quiet_for = if self.served.load(Ordering::SeqCst) == 0 {
            limits.header_read_timeout
        } else {
            limits.idle_timeout
        };
        self.last_activity() + quiet_for
    }
}

/// Open connections, so a new one can make room by closing the longest-idle.
#[derive(Debug, Clone, Default)]
struct Registry {
    inner: Arc<Mutex<RegistryInner>>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    next: u64,
    open: HashMap<u64, Arc<ConnectionState>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().open.len()
    }

    fn insert(&self) -> (u64, Arc<ConnectionState>) {
        let mut inner = self.lock();
        let key = inner.next;
        inner.next += 1;
        let state = Arc::new(ConnectionState::new());
        inner.open.insert(key, Arc::clone(&state));
        (key, state)
    }

    fn remove(&self, key: u64) {
        self.lock().open.remove(&key);
    }

    /// Asks the connection idle the longest to close now, or when none is idle the one stalled
    /// the longest; `false` when every connection is busy and moving. The evicted one leaves
    /// the registry when its task ends.
    fn evict_longest_idle(&self) -> bool {
        let mut inner = self.lock();
        let idle = inner
            .open
            .iter()
            .filter(|(_, state)| state.in_flight() == 0)
            .min_by_key(|(_, state)| state.last_activity())
            .map(|(key, _)| *key);
        let victim = idle.or_else(|| {
            inner
                .open
                .iter()
                .filter_map(|(key, state)| Some((*key, state.stalled_since()?)))
                .min_by_key(|(_, since)| *since)
                .map(|(key, _)| key)
        });
        match victim.and_then(|key| inner.open.remove(&key)) {
            Some(state) => {
                state.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The address a request came from: the connection's peer, in every request's extensions (for
/// limits per client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The service wrapped so the connection knows when a request is in flight, and each request
/// where it came from.
#[derive(Debug, Clone)]
struct Tracked<S> {
    inner: S,
    state: Arc<ConnectionState>,
    peer: Peer,
}

/// Counts one request in flight from its start until its answer's body ends.
#[derive(Debug)]
struct InFlight(Arc<ConnectionState>);

impl InFlight {
    fn start(state: &Arc<ConnectionState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.touch();
        if state.served.fetch_add(1, Ordering::SeqCst) == 0 {
            state.first_request.notify_one();
        }
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let guard = InFlight::start(&self.state);
        let mut request = request.map(|body| RequestBody::new(body, &self.state));
        request.extensions_mut().insert(self.peer);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: guard,
            }))
        })
    }
}

/// How long every request of a busy connection must have waited for its body, with no byte
/// coming, before the connection may be closed to make room for a new one (see the module
/// documentation).
pub const STALLED: Duration = Duration::from_secs(1);

pin_project_lite::pin_project! {
    /// A request's body as the services see it: hyper's, with each byte's arrival noted, so a
    /// connection whose requests wait on bodies that never come can be told from a busy one.
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        body: Incoming,
        // Counted in `receiving` until the body ends or is dropped.
        receiving: Option<Arc<ConnectionState>>,
    }

    impl PinnedDrop for RequestBody {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().receiving.take() {
                state.receiving.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

impl RequestBody {
    fn new(body: Incoming, state: &Arc<ConnectionState>) -> Self {
        let receiving = (!http_body::Body::is_end_stream(&body)).then(|| {
            state.receiving.fetch_add(1, Ordering::SeqCst);
            state.body_progressed();
            Arc::clone(state)
        });
        Self { body, receiving }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let frame = this.body.as_mut().poll_frame(cx);
        if let Poll::Ready(ref frame) = frame {
            let ended = !matches!(frame, Some(Ok(_))) || this.body.is_end_stream();
            match (ended, this.receiving.as_ref()) {
                (true, Some(_)) => {
                    if let Some(state) = this.receiving.take() {
                        state.receiving.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                (false, Some(state)) => state.body_progressed(),
                (_, None) => {}
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that keeps its request counted as in flight until it ends.
    #[derive(Debug)]
    struct TrackedBody<B> {
        #[pin]
        body: B,
        _in_flight: InFlight,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Serves `/slow` (answers after `delay`) and `/never` (never answers) until the returned
    /// sender fires; the task ends when `serve` returns.
    async fn spawn_server(
        delay: Duration,
        grace: Duration,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let router = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    tokio::time::sleep(delay).await;
                    "done"
                }),
            )
            .route("/never", get(std::future::pending::<&'static str>));
        let bound = Bound::bind(
            "127.0.0.1:0".parse().unwrap(),
            ConnectionLimits::default(),
            grace,
        )
        .await
        .unwrap();
        let addr = bound.addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(router, async {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    }

    async fn send(addr: SocketAddr, path: &str) -> tokio::net::TcpStream {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stream
    }

    #[tokio::test]
    async fn a_request_in_flight_at_shutdown_is_answered_and_the_server_then_returns() {
        let (addr, stop, task) =
            spawn_server(Duration::from_millis(200), Duration::from_secs(10)).await;
        let mut stream = send(addr, "/slow").await;
        // The request is being handled when the stop comes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        stop.send(()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        // The listener is closed.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_request_that_never_ends_is_dropped_after_the_grace_period() {
        let grace = Duration::from_millis(300);
        let (addr, stop, task) = spawn_server(Duration::ZERO, grace).await;
        let mut stream = send(addr, "/never").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("serve returns after the grace period")
            .unwrap()
            .unwrap();
        let waited = started.elapsed();
        assert!(waited >= grace, "returned after {waited:?}");
        // The hung connection was closed, not left behind.
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was closed");
    }

    #[test]
    fn the_open_file_limit_is_read_and_the_cap_fits_under_it() {
        let limit = open_file_limit();
        let limits = ConnectionLimits {
            max_connections: usize::MAX,
            ..ConnectionLimits::default()
        };
        let cap = limits.effective_max_connections();
        if let Some(limit) = limit {
            assert!(cap <= limit.saturating_sub(RESERVED_DESCRIPTORS).max(1));
        }
        assert!(cap >= 1);
    }

    #[test]
    fn eviction_picks_the_longest_idle_connection_and_never_a_busy_one() {
        let registry = Registry::default();
        let (_, busy) = registry.insert();
        let _guard = InFlight::start(&busy);
        assert!(
            !registry.evict_longest_idle(),
            "a busy connection is not evicted"
        );
        let (idle_key, _) = registry.insert();
        assert!(registry.evict_longest_idle());
        assert!(!registry.lock().open.contains_key(&idle_key));
        assert_eq!(registry.len(), 1);
    }
}
