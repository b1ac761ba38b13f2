//! The facade's settings: every flag has an environment variable, and the defaults are the
//! original's addresses.

use std::{net::SocketAddr, path::PathBuf};

use clap::value_parser;

/// How ids are picked when the client sends no `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DedupMode {
    /// The same text is the same message (a v5 UUID of the text).
    #[default]
    Content,
    /// Every request is a new message (a time-ordered v7 UUID).
    Unique,
}

msglog_common::connection_settings!("FACADE");

/// The default of `--max-body-bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// The default of `--max-message-bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Settings, from flags or environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "facade-service",
    version,
    about = "The facade: HTTP/JSON entry of the message-logging system."
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "FACADE_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,
    /// Where to listen for HTTPS (every door: the page, the JSON routes, gRPC and gRPC-web;
    /// HTTP/2 or HTTP/1.1 by ALPN), when `--tls-cert` and `--tls-key` are given. The plain
    /// `--addr` keeps serving HTTP.
    #[arg(long, env = "FACADE_TLS_ADDR", default_value = "0.0.0.0:8443")]
    pub tls_addr: SocketAddr,
    /// The HTTPS certificate chain (PEM, the server's certificate first); with `--tls-key`.
    #[arg(long, env = "FACADE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key (PEM); with `--tls-cert`.
    #[arg(long, env = "FACADE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Address of an admin port that answers `GET /metrics` (Prometheus text), e.g.
    /// `127.0.0.1:9080`; the public port then has no `/metrics`. Off by default: the metrics
    /// are on the public port, as they were.
    #[arg(long, env = "FACADE_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// The logging service's gRPC address; several (the flag again, or a comma list in the
    /// environment variable) for replicas on a shared store, which take calls in turn.
    #[arg(
        long = "logging-url",
        env = "LOGGING_URL",
        default_value = "http://127.0.0.1:8081",
        value_delimiter = ','
    )]
    pub logging_urls: Vec<String>,
    /// With several logging replicas, how often each one's health is checked, in
    /// milliseconds: a failing replica leaves the turn, and comes back once it serves.
    #[arg(long, env = "FACADE_LOGGING_HEALTH_MS", default_value_t = 1_000, value_parser = value_parser!(u64).range(1..))]
    pub logging_health_ms: u64,
    /// The messages service's base URL.
    #[arg(long, env = "MESSAGES_URL", default_value = "http://127.0.0.1:8082")]
    pub messages_url: String,
    /// How ids are picked without an `Idempotency-Key` header: `content` (the same text is one
    /// message, as the original) or `unique` (every request is a new message; needs logging run
    /// with `--dedup-by id`, or logging still answers equal texts as duplicates).
    #[arg(long, env = "FACADE_DEDUP", value_enum, default_value_t = DedupMode::Content)]
    pub dedup: DedupMode,
    /// A file holding the token logging requires (its `--token-file`; the same environment
    /// variable serves both), presented on every call.
    #[arg(long, env = "LOGGING_TOKEN_FILE")]
    pub logging_token_file: Option<PathBuf>,
    /// The CA (PEM) that signed logging's certificate, for `https://` logging URLs (logging run
    /// with `--tls-cert`); without it, such URLs are checked against the system's roots.
    #[arg(long, env = "LOGGING_CA_FILE")]
    pub logging_ca_file: Option<PathBuf>,
    /// A file holding the deployment's secret (at least 16 visible ASCII characters), which
    /// keys the ids made from texts and `Idempotency-Key`s, so nobody without it can store a
    /// guessed id first. Give every facade of a deployment the same file, and keep it: ids made
    /// under another secret (or none) are other ids.
    #[arg(long, env = "FACADE_ID_SECRET_FILE")]
    pub id_secret_file: Option<PathBuf>,

    /// Calls to logging in all, the first included.
    #[arg(long, env = "FACADE_RETRY_MAX_ATTEMPTS", default_value_t = 3, value_parser = value_parser!(u32).range(1..=20))]
    pub retry_max_attempts: u32,
    /// Ceiling of the first back-off, in milliseconds (full jitter: the wait is random below it).
    #[arg(long, env = "FACADE_RETRY_INITIAL_BACKOFF_MS", default_value_t = 50)]
    pub retry_initial_backoff_ms: u64,
    /// Ceiling of any back-off, in milliseconds.
    #[arg(long, env = "FACADE_RETRY_MAX_BACKOFF_MS", default_value_t = 400)]
    pub retry_max_backoff_ms: u64,
    /// Growth of the back-off ceiling per retry.
    #[arg(long, env = "FACADE_RETRY_BACKOFF_MULTIPLIER", default_value_t = 2.0, value_parser = at_least_one)]
    pub retry_backoff_multiplier: f64,
    /// The longest one call to logging may take, in milliseconds.
    #[arg(long, env = "FACADE_RETRY_ATTEMPT_TIMEOUT_MS", default_value_t = 500, value_parser = value_parser!(u64).range(1..))]
    pub retry_attempt_timeout_ms: u64,
    /// The longest all calls and back-offs for one request may take, in milliseconds.
    #[arg(long, env = "FACADE_RETRY_DEADLINE_MS", default_value_t = 1500, value_parser = value_parser!(u64).range(1..))]
    pub retry_deadline_ms: u64,
    /// Retry budget: tokens in the bucket. Each failed call takes one; retries stop while half
    /// or fewer are left.
    #[arg(long, env = "FACADE_RETRY_BUDGET_TOKENS", default_value_t = 10, value_parser = value_parser!(u32).range(1..=1000))]
    pub retry_budget_tokens: u32,
    /// Retry budget: tokens given back by each successful call.
    #[arg(long, env = "FACADE_RETRY_BUDGET_RATIO", default_value_t = 0.1)]
    pub retry_budget_ratio: f64,

    /// The longest one attempt of a read from logging (the list, a page) may take, in
    /// milliseconds: longer than a write's, since a large list takes time to read and send on
    /// a busy machine, and a slow read is no sign of a dead logging.
    #[arg(long, env = "FACADE_READ_ATTEMPT_TIMEOUT_MS", default_value_t = 5000, value_parser = value_parser!(u64).range(1..))]
    pub read_attempt_timeout_ms: u64,
    /// The longest all attempts of a read may take together, in milliseconds.
    #[arg(long, env = "FACADE_READ_DEADLINE_MS", default_value_t = 9000, value_parser = value_parser!(u64).range(1..))]
    pub read_deadline_ms: u64,

    /// Host names the facade answers to besides IP addresses and `localhost` (repeat the flag
    /// or separate with commas): `msglog.example.com`, `.example.com` for every name under it,
    /// or `*` for any (behind a proxy that checks the host itself). A request for any other
    /// host is refused with a JSON 421, which keeps pages of other sites out (DNS rebinding).
    #[arg(
        long = "allowed-hosts",
        env = "FACADE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Where the built browser page is (Trunk's output: `index.html` and its assets).
    #[arg(long, env = "FACADE_STATIC_DIR", default_value = "frontend/dist")]
    pub static_dir: PathBuf,

    /// Longest request body, in bytes.
    #[arg(long, env = "FACADE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Longest message text, in UTF-8 bytes.
    #[arg(long, env = "FACADE_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Answers compressed at once (gzip, when asked for); an answer beyond that goes
    /// uncompressed. Each holds a deflate state and buffers (about 300 KB) while it is sent.
    #[arg(long, env = "FACADE_MAX_COMPRESSIONS", default_value_t = 4, value_parser = value_parser!(u32).range(1..=10_000))]
    pub max_compressions: u32,
    /// The longest a call to the messages service may take, in milliseconds.
    #[arg(long, env = "FACADE_MESSAGES_TIMEOUT_MS", default_value_t = 1000)]
    pub messages_timeout_ms: u64,
    /// The longest any request may take, in milliseconds (answered 503 after).
    #[arg(long, env = "FACADE_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Messages the live feed keeps for watchers (the newest ones); a watcher further behind
    /// catches up by pages from logging.
    #[arg(long, env = "FACADE_WATCH_BUFFER", default_value_t = 1000, value_parser = value_parser!(u64).range(1..=100_000))]
    pub watch_buffer: u64,
    /// How long a `Watch` stream may stay silent before a heartbeat is sent, in milliseconds.
    #[arg(long, env = "FACADE_WATCH_HEARTBEAT_MS", default_value_t = 15_000, value_parser = value_parser!(u64).range(1..))]
    pub watch_heartbeat_ms: u64,
    /// `Watch` streams one client (an IP address) may hold open at once; more are refused
    /// `RESOURCE_EXHAUSTED`.
    #[arg(long, env = "FACADE_MAX_WATCHES_PER_CLIENT", default_value_t = 64, value_parser = value_parser!(u64).range(1..=1_000_000))]
    pub max_watches_per_client: u64,
    /// Messages one client (an IP address) may send a second, on average (`POST
    /// /send_message`, `POST /api/messages`, gRPC `Send`); over it, 429 with `Retry-After`
    /// (`RESOURCE_EXHAUSTED` over gRPC). 0: no limit.
    #[arg(long, env = "FACADE_WRITE_RATE", default_value_t = 100.0, value_parser = not_negative)]
    pub write_rate: f64,
    /// Messages one client may send at once before its rate applies.
    #[arg(long, env = "FACADE_WRITE_BURST", default_value_t = 200, value_parser = value_parser!(u32).range(1..))]
    pub write_burst: u32,
    /// Status checks one client may ask for a second (`GET /api/status`, gRPC `Status`); 0: no
    /// limit.
    #[arg(long, env = "FACADE_STATUS_RATE", default_value_t = 20.0, value_parser = not_negative)]
    pub status_rate: f64,
    /// Status checks one client may ask for at once before its rate applies.
    #[arg(long, env = "FACADE_STATUS_BURST", default_value_t = 60, value_parser = value_parser!(u32).range(1..))]
    pub status_burst: u32,
    /// Apply the per-client limits (open watches, rates) to clients on this machine's loopback
    /// addresses too: `true` or `false`. Off by default, as this machine's own tools, benches
    /// and any reverse proxy on it are one address for everyone behind them (limit at the
    /// proxy).
    #[arg(long, env = "FACADE_LIMIT_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set)]
    pub limit_loopback: bool,
    /// After SIGINT/SIGTERM, how long in-flight requests may take to finish, in milliseconds.
    #[arg(long, env = "FACADE_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Limits on client connections.
    #[command(flatten)]
    pub connections: ConnectionSettings,
}

fn not_negative(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() && number >= 0.0 => Ok(number),
        _ => Err(format!("expected a number of at least 0, got {value:?}")),
    }
}

fn at_least_one(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() && number >= 1.0 => Ok(number),
        _ => Err(format!("expected a number of at least 1, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::retry::RetryPolicy;

    #[test]
    fn defaults_are_the_originals_addresses_and_a_short_retry_policy() {
        let settings = Settings::try_parse_from(["facade-service"]).unwrap();
        assert_eq!(settings.addr.port(), 8080);
        assert_eq!(settings.logging_urls, ["http://127.0.0.1:8081"]);
        assert_eq!(settings.messages_url, "http://127.0.0.1:8082");
        assert_eq!(settings.retry_policy(), RetryPolicy::default());
        assert_eq!(settings.dedup, DedupMode::Content);
    }

    #[test]
    fn bad_values_are_refused_at_start() {
        for args in [
            &["f", "--retry-max-attempts", "0"][..],
            &["f", "--retry-backoff-multiplier", "0.5"],
            &["f", "--dedup", "sometimes"],
            &["f", "--addr", "nowhere"],
            &["f", "--tls-cert", "cert.pem"],
            &["f", "--tls-key", "key.pem"],
        ] {
            assert!(Settings::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
