//! Tracing set-up shared by the three binaries.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt};

/// Installs a global subscriber that writes to stderr.
///
/// The filter comes from `RUST_LOG` when it is set (`RUST_LOG=debug`,
/// `RUST_LOG=facade_service=debug,tower_http=debug`), else from `default_filter`.
/// A log destination that goes away (a closed pipe) must not take requests down with it:
/// the subscriber's own report of a failed write would itself write to stderr and panic, so
/// that report is off. Colours only on a terminal (and never with `NO_COLOR` set), so log files stay plain text.
/// Calling it twice is harmless (the second call keeps the first subscriber), which lets tests
/// call it freely.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(true)
        .log_internal_errors(false)
        .try_init();
}

/// For tests: tracing only when `TEST_LOG` is set, so a passing run stays quiet and a failing
/// one can be rerun with `TEST_LOG=1` to see every attempt and every request.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("debug,h2=info,hyper=info,tower=info"));
        let _ = fmt().with_env_filter(filter).with_test_writer().try_init();
    }
}

/// The `x-request-id` of a request, or `-`.
fn request_id<B>(request: &http::Request<B>) -> &str {
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
}

/// The span of one HTTP request, with its method, path and `x-request-id`, so every event of
/// the request can be found by its id in every service's log.
pub fn http_request_span<B>(request: &http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = request_id(request)
    )
}

/// The span of one gRPC call, with its method path and `x-request-id` metadata.
pub fn grpc_request_span<B>(request: &http::Request<B>) -> tracing::Span {
    tracing::info_span!("grpc", path = %request.uri().path(), request_id = request_id(request))
}
