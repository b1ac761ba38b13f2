//! What every service of the system shares, and nothing more:
//!
//! - [`telemetry::init`]: tracing to stderr with an `RUST_LOG`-style filter;
//! - [`shutdown`]: a future that resolves on SIGINT or SIGTERM, and [`shutdown::serve`], which
//!   runs a server until that signal and then gives it a bounded time to finish;
//! - [`bind`]: binds a listener with an error that names the address;
//! - `testing` (feature `testing`): a service binary run as a real process, for tests.

pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Binds `addr`, with an error that says which address could not be bound.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
