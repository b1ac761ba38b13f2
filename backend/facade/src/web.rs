//! The browser page: the files Trunk builds into the static directory, served with the
//! caching and headers a page needs.
//!
//! - `index.html` is read on every request (it is small, and a rebuild must show at once),
//!   sent with `Cache-Control: no-cache` and a Content-Security-Policy that allows exactly its
//!   own inline loader scripts (by hash) and WebAssembly, nothing from other origins.
//! - Files whose names carry Trunk's content hash are cached for a year (`immutable`); other
//!   files must be revalidated.
//! - A browser navigating to an unknown path gets the page (single-page app); any other
//!   client, and every `/api/` path, gets the API's JSON 404.
//! - When the page is not built, `/` says how to build it.

use std::path::Path;

use axum::{
    body::Body,
    extract::{Request, State},
    response::{Html, IntoResponse, Response},
};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::{AppState, error::AppError};

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");

/// `GET /`: the page, or how to build it.
pub async fn index(State(state): State<AppState>) -> Response {
    serve_index(&state.static_dir).await
}

/// Everything no route matched: a static file, the page for a browser, or a JSON 404.
pub async fn static_or_not_found(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    if !is_read || path.starts_with("/api/") {
        return AppError::NotFound(path).into_response();
    }
    let navigating = accepts_html(request.headers());
    let Ok(response) = ServeDir::new(&*state.static_dir)
        .append_index_html_on_directories(false)
        .oneshot(request)
        .await;
    if response.status() == StatusCode::NOT_FOUND {
        return if navigating {
            serve_index(&state.static_dir).await
        } else {
            AppError::NotFound(path).into_response()
        };
    }
    let mut response = response.map(Body::new);
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let cache = if is_hashed_asset(&path) {
            IMMUTABLE
        } else {
            NO_CACHE
        };
        response.headers_mut().insert(header::CACHE_CONTROL, cache);
    }
    response
}

async fn serve_index(static_dir: &Path) -> Response {
    let file = static_dir.join("index.html");
    match tokio::fs::read_to_string(&file).await {
        Ok(html) => {
            let mut response = Html(html.clone()).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, NO_CACHE);
            if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&html)) {
                headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            }
            response
        }
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "the page is not built");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(not_built_page(static_dir)),
            )
                .into_response()
        }
    }
}

/// The policy for the page: only this origin, WebAssembly allowed, and inline scripts only
/// when they are exactly the ones in this `index.html` (Trunk's loader).
pub fn content_security_policy(html: &str) -> String {
    let hashes: String = inline_scripts(html)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'; object-src 'none'"
    )
}

/// The bodies of `<script>` elements that have no `src`.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find("<script")?;
            let after_tag = &rest[start..];
            let open_end = after_tag.find('>')?;
            let open_tag = &after_tag[..open_end];
            let body_and_more = &after_tag[open_end + 1..];
            let close = body_and_more.find("</script>")?;
            let body = &body_and_more[..close];
            rest = &body_and_more[close + "</script>".len()..];
            if !open_tag.contains(" src=") {
                return Some(body);
            }
        }
    })
}

/// Whether a browser is navigating (it asks for HTML first).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Trunk names built assets `<name>-<16+ hex digits>[_bg].<ext>`; their content never changes
/// under the same name, so browsers may keep them.
fn is_hashed_asset(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        hash.len() >= 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit())
    })
}

fn not_built_page(static_dir: &Path) -> String {
    let dir = static_dir.display().to_string();
    let dir = dir
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>msglog: page not built</title></head>\
         <body><h1>The page is not built yet</h1>\
         <p>Build it from the project's top level with <code>scripts/run.sh</code> (installs the tools, \
         builds the page and starts the services) or <code>trunk build --release</code>, then reload.</p>\
         <p>Looked for <code>index.html</code> in <code>{dir}</code> (set with <code>--static-dir</code> or \
         <code>FACADE_STATIC_DIR</code>).</p>\
         <p>The JSON API works meanwhile: <code>POST /send_message</code>, <code>GET /get_messages</code>.</p>\
         </body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inline_scripts_are_hashed() {
        let html = r#"<html><head><script src="/a.js"></script><script type="module">init();</script>
            <script>x()</script></head></html>"#;
        let scripts: Vec<_> = inline_scripts(html).collect();
        assert_eq!(scripts, vec!["init();", "x()"]);
        let policy = content_security_policy(html);
        // sha256("init();") and sha256("x()"), base64.
        let digest = |s: &str| base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s));
        assert!(
            policy.contains(&format!("'sha256-{}'", digest("init();"))),
            "{policy}"
        );
        assert!(
            policy.contains(&format!("'sha256-{}'", digest("x()"))),
            "{policy}"
        );
        assert!(policy.contains("'wasm-unsafe-eval'"));
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn hashed_asset_names_are_recognised() {
        assert!(is_hashed_asset("/msglog-frontend-4f8a1c3b2e6d7a9f_bg.wasm"));
        assert!(is_hashed_asset("/msglog-frontend-4f8a1c3b2e6d7a9f.js"));
        assert!(is_hashed_asset("/style-0123456789abcdef0123.css"));
        assert!(!is_hashed_asset("/index.html"));
        assert!(!is_hashed_asset("/favicon.ico"));
        assert!(!is_hashed_asset("/my-file.css"));
    }
}
