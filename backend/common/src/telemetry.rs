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

/// Longest piece of a request path put in a span.
const MAX_LOGGED_PATH: usize = 128;

/// What a span names a request by: the route that matched (`/api/messages`, so traces group
/// by route and not by every URL a client invents), or for a request no route matched, its path
/// cut to a bounded length.
fn route<B>(request: &http::Request<B>) -> String {
    match request.extensions().get::<axum::extract::MatchedPath>() {
        Some(matched) => matched.as_str().to_owned(),
        None => crate::bounded::shorten_bytes(request.uri().path().as_bytes(), MAX_LOGGED_PATH),
    }
}

/// The span of one HTTP request, with its method, route and settled `x-request-id` (see
/// [`crate::request_id`]), so every event of the request can be found by its id in every
/// service's log.
pub fn http_request_span<B>(request: &http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route(request),
        request_id = crate::request_id::of(request)
    )
}

/// The span of one gRPC call, with its method path (cut short), `x-request-id`, and the
/// caller's attempt number (from `grpc-previous-rpc-attempts`, gRFC A6; 1 without it), so the
/// facade's retries of one request line up with logging's calls.
pub fn grpc_request_span<B>(request: &http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "grpc",
        path = %crate::bounded::shorten_bytes(request.uri().path().as_bytes(), MAX_LOGGED_PATH),
        request_id = crate::request_id::of(request),
        attempt = attempt(request)
    )
}

/// This call's attempt number: one more than `grpc-previous-rpc-attempts` (1 when absent or
/// unreadable).
fn attempt<B>(request: &http::Request<B>) -> u32 {
    request
        .headers()
        .get("grpc-previous-rpc-attempts")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u32>().ok())
        .map_or(1, |previous| previous.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_named_by_the_route_it_matched_not_by_its_path() {
        use axum::{Router, body::Body, extract::Request, middleware::Next, routing::get};
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;

        // A middleware where the trace layer sits, answering with the name a span would get.
        let app = Router::new()
            .route("/users/{id}", get(|| async { "unused" }))
            .layer(axum::middleware::from_fn(
                |request: Request, _next: Next| async move { route(&request) },
            ));
        let response = app
            .oneshot(http::Request::get("/users/42").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"/users/{id}");
    }

    #[test]
    fn the_attempt_number_follows_the_previous_attempts_header() {
        let call = |previous: Option<&str>| {
            let mut request = http::Request::post("/LoggingService/LogMessage");
            if let Some(previous) = previous {
                request = request.header("grpc-previous-rpc-attempts", previous);
            }
            attempt(&request.body(()).unwrap())
        };
        assert_eq!(call(None), 1);
        assert_eq!(call(Some("2")), 3);
        assert_eq!(call(Some("lots")), 1);
        assert_eq!(call(Some("4294967295")), u32::MAX);
    }

    #[test]
    fn an_unmatched_path_is_cut_short() {
        let request = http::Request::get(format!("/{}", "x".repeat(5000)))
            .body(())
            .unwrap();
        let name = route(&request);
        assert!(name.len() < 200, "{name}");
        assert!(name.ends_with("(5001 bytes)"), "{name}");
    }
}
