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
//!
//! The files, each importing only from those after it: `listener.rs` ([`Bound`] and the accept
//! loop), `connection.rs` (one connection served and watched), `registry.rs` (the open
//! connections, for making room), `service.rs` (what can be served), `tracked.rs` (each request
//! and its body tracked, and the [`Peer`] in its extensions), `state.rs` (what the server knows
//! of one connection), `limits.rs` (the limits, the flags that set them, the open-file limit
//! they fit).

mod connection;
mod limits;
mod listener;
mod registry;
mod service;
mod state;
mod tracked;

pub use limits::ConnectionLimits;
pub use listener::{Bound, serve};
pub use service::HttpService;
pub use state::STALLED;
pub use tracked::{Peer, RequestBody};

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, time::Duration};

    use axum::{Router, routing::get};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::time::Instant;

    use super::{
        limits::{RESERVED_DESCRIPTORS, open_file_limit},
        registry::Registry,
        tracked::InFlight,
        *,
    };

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
    fn a_connections_first_bytes_tell_its_http_version_or_that_more_are_needed() {
        use connection::{HTTP2_PREFACE, Sniffed, sniff};
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Http1);
        assert_eq!(sniff(b"POST /send_message HTTP/1.1"), Sniffed::Http1);
        // A method that starts as the preface does, until it does not.
        assert_eq!(sniff(b"PRI * HTTP/1.1\r\n"), Sniffed::Http1);
        assert_eq!(sniff(HTTP2_PREFACE), Sniffed::Http2);
        assert_eq!(
            sniff(&[&HTTP2_PREFACE[..], b"\0\0\0\x04"].concat()),
            Sniffed::Http2
        );
        for cut in 1..HTTP2_PREFACE.len() {
            assert_eq!(sniff(&HTTP2_PREFACE[..cut]), Sniffed::Unsure, "{cut} bytes");
        }
    }

    /// Sends `pieces` to `addr` on a new connection, a pause between them, and reads the
    /// answer to the end.
    async fn in_pieces(addr: SocketAddr, pieces: &[&[u8]]) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        for (index, piece) in pieces.iter().enumerate() {
            if index > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stream.write_all(piece).await.unwrap();
        }
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn a_request_whose_first_byte_comes_alone_is_answered() {
        let (addr, _stop, _task) = spawn_server(Duration::ZERO, Duration::from_secs(1)).await;
        let rest = b"/slow HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
        // A `P` alone could begin HTTP/2's preface: the version is read, not peeked.
        let answer = in_pieces(addr, &[b"P", b"UT ", rest]).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        // And one sent whole, its version peeked.
        let answer = in_pieces(addr, &[&[&b"GET "[..], rest].concat()]).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
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
