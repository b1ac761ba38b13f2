//! One connection served: its TLS handshake when there is one, then hyper's HTTP/1.1 or
//! HTTP/2 under the timeouts, closed when it is idle, evicted or the server stops.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use super::{
    limits::ConnectionLimits,
    listener::{HttpService, Transport},
    tracked::{Peer, STALLED, Tracked},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::TcpStream,
    sync::{Notify, watch},
    time::Instant,
};

/// Serves one accepted connection: over TLS once its handshake is done, when the listener
/// serves HTTPS.
#[allow(clippy::too_many_arguments)]
pub(super) async fn accept_connection<S: HttpService>(
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
pub(super) async fn serve_connection<S: HttpService, I>(
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
pub(super) struct ConnectionState {
    /// When the connection was accepted: the origin of `last_activity_ms`.
    pub(super) started: Instant,
    /// Requests being answered now (until their answer's body is finished or dropped).
    pub(super) in_flight: AtomicUsize,
    /// Requests begun on this connection.
    pub(super) served: AtomicU64,
    /// Milliseconds from `started` to the last start or end of a request.
    pub(super) last_activity_ms: AtomicU64,
    /// Woken to ask the connection to close and free its slot.
    pub(super) evict: Notify,
    /// Requests in flight whose body has not all come yet.
    pub(super) receiving: AtomicUsize,
    /// Milliseconds from `started` to the last byte of a request body (or the start of a
    /// request that has one).
    pub(super) body_progress_ms: AtomicU64,
    /// Woken when the first request starts: the connection's deadline changes from the
    /// header-read timeout to the idle timeout, which may be shorter. (Later requests only
    /// move the deadline later, which the watch finds when it wakes.)
    pub(super) first_request: Notify,
}

impl ConnectionState {
    pub(super) fn new() -> Self {
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

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn touch(&self) {
        self.last_activity_ms
            .store(self.elapsed_ms(), Ordering::SeqCst);
    }

    pub(super) fn body_progressed(&self) {
        self.body_progress_ms
            .store(self.elapsed_ms(), Ordering::SeqCst);
    }

    /// Since when every request in flight has waited for its body, if they all have and it
    /// has been at least [`STALLED`].
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        let in_flight = self.in_flight();
        if in_flight == 0 || self.receiving.load(Ordering::SeqCst) < in_flight {
            return None;
        }
        let since =
            self.started + Duration::from_millis(self.body_progress_ms.load(Ordering::SeqCst));
        (since + STALLED <= Instant::now()).then_some(since)
    }

    pub(super) fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.last_activity_ms.load(Ordering::SeqCst))
    }

    /// When the connection will have been quiet too long if nothing happens: a header-read
    /// timeout after it opened (before its first request), an idle timeout after its last
    /// request otherwise. While a request is in flight, the question is asked again later.
    pub(super) fn quiet_deadline(&self, limits: &ConnectionLimits) -> Instant {
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
