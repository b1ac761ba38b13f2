//! One connection served: its TLS handshake when there is one, then hyper's HTTP/1.1 or
//! HTTP/2 under the timeouts, closed when it is idle, evicted or the server stops.

use std::sync::{Arc, atomic::Ordering};

use super::{
    limits::ConnectionLimits,
    service::HttpService,
    state::ConnectionState,
    tracked::{Peer, Tracked},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{net::TcpStream, sync::watch, time::Instant};

/// The connection's HTTP, as configured: one builder for each version, and one that reads the
/// first bytes to tell which.
#[derive(Debug)]
pub(super) struct Protocols {
    any: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Protocols {
    pub(super) fn new(any: auto::Builder<TokioExecutor>) -> Self {
        Self {
            http1: any.clone().http1_only(),
            http2: any.clone().http2_only(),
            any,
        }
    }

    fn builder(&self, version: Sniffed) -> &auto::Builder<TokioExecutor> {
        match version {
            Sniffed::Http1 => &self.http1,
            Sniffed::Http2 => &self.http2,
            Sniffed::Unsure => &self.any,
        }
    }
}

/// What a connection's first bytes say of its HTTP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sniffed {
    Http1,
    Http2,
    /// Too few bytes to tell: the connection's builder reads on until it can.
    Unsure,
}

/// HTTP/2's connection preface, which a client speaking it with prior knowledge sends first.
pub(super) const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells the version from the first bytes a client sent (as peeked, still unread).
///
/// The version is told before hyper reads, rather than by hyper-util's builder reading the
/// first 24 bytes itself: given those alone, hyper's HTTP/1.1 connection finds a partial head
/// and doubles its 8 KB read buffer to read the rest, and keeps 16 KB for the connection's
/// life (a watcher's, for hours).
pub(super) fn sniff(first: &[u8]) -> Sniffed {
    let compared = first.len().min(HTTP2_PREFACE.len());
    if first[..compared] != HTTP2_PREFACE[..compared] {
        Sniffed::Http1
    } else if compared == HTTP2_PREFACE.len() {
        Sniffed::Http2
    } else {
        Sniffed::Unsure
    }
}

/// Serves one accepted connection: over TLS once its handshake is done, when the listener
/// serves HTTPS. Its HTTP version is told by its first bytes (peeked: waited for within the
/// header-read timeout, as a request would be), or by TLS's ALPN.
#[allow(clippy::too_many_arguments)]
pub(super) async fn accept_connection<S: HttpService>(
    transport: Transport,
    protocols: Arc<Protocols>,
    stream: TcpStream,
    peer: Peer,
    service: S,
    limits: ConnectionLimits,
    state: Arc<ConnectionState>,
    stopping: watch::Receiver<bool>,
) {
    match transport {
        Transport::Plain => {
            let mut first = [0; HTTP2_PREFACE.len()];
            let peeked = before_http(
                stream.peek(&mut first),
                "the first bytes of a request",
                &peer,
                &limits,
                &state,
                stopping.clone(),
            );
            let version = match peeked.await {
                Some(0) | None => return,
                Some(read) => sniff(&first[..read]),
            };
            let builder = protocols.builder(version);
            serve_connection(builder, stream, peer, service, limits, state, stopping).await;
        }
        #[cfg(feature = "tls")]
        Transport::Tls(acceptor) => {
            let handshake = before_http(
                acceptor.accept(stream),
                "the TLS handshake",
                &peer,
                &limits,
                &state,
                stopping.clone(),
            );
            let Some(stream) = handshake.await else {
                return;
            };
            let version = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Sniffed::Http2,
                Some(b"http/1.1") => Sniffed::Http1,
                _ => Sniffed::Unsure,
            };
            let builder = protocols.builder(version);
            // Boxed: a TLS session's state is large, and every plain connection's task would
            // otherwise be sized for it (5,000 bytes a connection rather than 2,632).
            Box::pin(serve_connection(
                builder, stream, peer, service, limits, state, stopping,
            ))
            .await;
        }
    }
}

/// Waits for what comes before HTTP on a new connection (`what`: its TLS handshake, its first
/// bytes) within the header-read timeout, unless the server stops or evicts the connection
/// meanwhile: `None` if it failed or was given up.
async fn before_http<T>(
    step: impl Future<Output = std::io::Result<T>>,
    what: &str,
    peer: &Peer,
    limits: &ConnectionLimits,
    state: &ConnectionState,
    mut stopping: watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        finished = tokio::time::timeout(limits.header_read_timeout, step) => match finished {
            Ok(Ok(done)) => Some(done),
            Ok(Err(error)) => {
                tracing::debug!(%error, peer = %peer.0, "{what} failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %peer.0, "{what} did not come within the header-read timeout");
                None
            }
        },
        Ok(_) = stopping.wait_for(|stop| *stop) => None,
        () = state.evict.notified() => None,
    }
}

/// Serves one connection, closing it when the limits say so or the server stops.
pub(super) async fn serve_connection<S: HttpService, I>(
    builder: &auto::Builder<TokioExecutor>,
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

/// How an accepted connection becomes a stream of HTTP.
#[derive(Clone, Default)]
pub(super) enum Transport {
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
