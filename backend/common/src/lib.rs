//! What every service of the system shares, and nothing more:
//!
//! - [`server`]: the one way the three services serve HTTP (HTTP/1.1 and h2c on one port), with
//!   connection limits (header-read and idle timeouts, HTTP/2 keep-alive, a connection cap that
//!   keeps room for new clients) and a bounded graceful drain; the flags that set the limits
//!   ([`connection_settings!`]);
//! - `tls` (feature `tls`): HTTPS for [`server`], from PEM files, HTTP/2 by ALPN;
//! - [`request_id`]: the one rule for `x-request-id`;
//! - `grpc_deadline` (feature `grpc`): every gRPC call's deadline, the client's and the
//!   server's; `grpc_one_message`: one request message for the methods that take one;
//! - [`http_edge`]: JSON error answers and refusal of unservable paths, for the HTTP services;
//! - [`telemetry`]: tracing to stderr with an `RUST_LOG`-style filter, and request spans that
//!   never log a client's input unbounded;
//! - [`metrics`]: Prometheus metrics of HTTP requests, and the `/metrics` exposition;
//! - [`random_id`]: random UUIDs without a system call per id;
//! - [`secret`]: a deployment's shared secrets (logging's token, the ids' key), read from files;
//! - [`bounded`]: what a client sent, cut short before it is logged or quoted;
//! - [`runtime`]: the tokio runtime each service runs on (its worker count);
//! - [`shutdown`]: a future that resolves on SIGINT or SIGTERM;
//! - [`bind`]: binds a listener with an error that names the address;
//! - `testing` (feature `testing`): the test harness (services in-process or as real processes).

pub mod bounded;
#[cfg(feature = "grpc")]
pub mod grpc_deadline;
#[cfg(feature = "grpc")]
pub mod grpc_one_message;
pub mod http_edge;
pub mod metrics;
pub mod random_id;
pub mod request_id;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Binds `addr`, with an error that says which address could not be bound.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
