//! The limits every connection is served under, the open-file limit they fit, and the flags
//! that set them.

use std::time::Duration;

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
pub(super) const RESERVED_DESCRIPTORS: usize = 64;

impl ConnectionLimits {
    /// The connection cap actually used: the configured one, lowered to fit under the
    /// process's open-file limit with `RESERVED_DESCRIPTORS` to spare.
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
pub(super) fn open_file_limit() -> Option<usize> {
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
