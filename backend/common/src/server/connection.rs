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
            // Boxed: a TLS session's state is large, and every plain connection's task would
            // otherwise be sized for it (5,000 bytes a connection rather than 2,632).
            Box::pin(serve_connection(
                builder, stream, peer, service, limits, state, stopping,
            ))
            .await;
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
