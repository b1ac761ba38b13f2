//! A bound listener (plain or HTTPS) and its accept loop: each accepted connection is
//! registered (making room under the cap when it is full) and served until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioTimer},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use super::{
    connection::{Protocols, Transport, accept_connection},
    limits::ConnectionLimits,
    registry::Registry,
    service::HttpService,
    tracked::Peer,
};

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

pub(super) async fn serve_over<S: HttpService>(
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
    let protocols = Arc::new(Protocols::new(builder));

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
        let (key, state) = registry.insert();
        let (transport, protocols, service) =
            (transport.clone(), Arc::clone(&protocols), service.clone());
        let (registry, stopping) = (registry.clone(), stopping.clone());
        // The connection's future is made inside the task, not moved into it: a future moved
        // into an async block and awaited there is stored twice, and this task lives as long
        // as its connection (a watcher's, for hours).
        connections.spawn(async move {
            accept_connection(
                transport,
                protocols,
                stream,
                Peer(peer),
                service,
                limits,
                state,
                stopping,
            )
            .await;
            registry.remove(key);
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
pub(super) fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
