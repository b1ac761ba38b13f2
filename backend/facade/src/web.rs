//! The browser page: the files Trunk builds into the static directory, served with the
//! caching and headers a page needs.
//!
//! - A page (`index.html`, or any `.html` file, however its path is spelled: `/`,
//!   `/index.html`, `//index.html`, `/%69ndex.html`) is read on every request (it is small, and
//!   a rebuild must show at once), sent with `Cache-Control: no-cache` and a
//!   Content-Security-Policy that allows exactly its own inline loader scripts (by hash) and
//!   WebAssembly, nothing from other origins, and no framing. As a safety net,
//!   [`policy_if_html`] gives any other HTML answer a policy that allows nothing.
//! - Files whose names carry Trunk's content hash are cached for a year (`immutable`); other
//!   files must be revalidated. Each is served as the best copy the browser accepts of those
//!   the build wrote beside it (`.br`, `.gz`: compressed once, at their best, by
//!   `scripts/precompress.mjs`), with `Vary: Accept-Encoding`, ranges, and an `ETag` per copy
//!   (304 when it matches). The page itself has an `ETag` of its content.
//! - Files never leave the static directory: a path is resolved (symlinks included) and
//!   refused unless it stays inside.
//! - A browser navigating to an unknown path gets the page (single-page app); any other
//!   client gets the API's JSON 404.
//! - When the page is not built, `/` says how to build it.

use std::path::{Path, PathBuf};

use axum::{
    body::Body,
    extract::{Request, State},
    response::{Html, IntoResponse, Response},
};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use sha2::{Digest as _, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::{
    error::AppError,
    negotiation::{accepts_coding, content_tag, matches_tag},
    state::AppState,
};

/// Marks an answer that is a file of the page, sent as stored (compressed at build time, or
/// not at all): the compression layer leaves it alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaticFile;

/// For the compression layer: compress anything but [`StaticFile`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotStaticFile;

impl tower_http::compression::Predicate for NotStaticFile {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &http::Response<B>) -> bool {
        response.extensions().get::<StaticFile>().is_none()
    }
}

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
/// The policy of an HTML answer that is not the page: nothing may run, load or frame it.
const NOTHING_ALLOWED: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
);

/// `GET /`: the page, or how to build it.
pub(crate) async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_page(
        &state.static_dir.join("index.html"),
        &state.static_dir,
        &headers,
    )
    .await
}

/// Everything no route matched: a static file, the page for a browser, or a JSON 404.
pub(crate) async fn static_or_not_found(
    State(state): State<AppState>,
    request: Request,
) -> Response {
    let shown_path = msglog_common::bounded::shorten_bytes(request.uri().path().as_bytes(), 64);
    let not_found = move || AppError::NotFound(shown_path).into_response();
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return not_found();
    }
    let navigating = accepts_html(request.headers());
    let file = match resolve(&state.static_dir, request.uri().path()).await {
        Resolved::File(file) => file,
        Resolved::Missing if navigating => {
            let page = state.static_dir.join("index.html");
            return serve_page(&page, &state.static_dir, request.headers()).await;
        }
        Resolved::Missing => return not_found(),
        Resolved::Outside(target) => {
            tracing::warn!(
                target = %target.display(),
                "refused a path that leads out of the static directory"
            );
            return not_found();
        }
    };
    if file
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("html"))
    {
        return serve_page(&file, &state.static_dir, request.headers()).await;
    }
    let hash = asset_hash(request.uri().path()).map(str::to_owned);
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let mut request = request;
    widen_wildcard(request.headers_mut());
    let Ok(response) = ServeDir::new(&*state.static_dir)
        .append_index_html_on_directories(false)
        .precompressed_br()
        .precompressed_gzip()
        .oneshot(request)
        .await;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        let mut response = response.map(Body::new);
        response.extensions_mut().insert(StaticFile);
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        let Some(hash) = hash else {
            headers.insert(header::CACHE_CONTROL, NO_CACHE);
            return response;
        };
        headers.insert(header::CACHE_CONTROL, IMMUTABLE);
        // One tag per copy: the content's hash (in the name) and how it is encoded.
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("identity");
        let Ok(tag) = HeaderValue::from_str(&format!("\"{hash}-{encoding}\"")) else {
            return response;
        };
        if if_none_match.is_some_and(|wanted| matches_tag(&wanted, &tag)) {
            return not_modified(tag, response.headers());
        }
        response.headers_mut().insert(header::ETAG, tag);
        return response;
    }
    if status.is_client_error() && status != StatusCode::NOT_FOUND {
        // A range that cannot be satisfied, a bad precondition: ServeDir's own answer.
        return response.map(Body::new);
    }
    not_found()
}

/// Where a request path leads inside the static directory.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    /// A regular file inside the directory (its real path).
    File(PathBuf),
    /// Nothing there, or not a file, or a path that cannot name a file.
    Missing,
    /// Something that resolves outside the directory (through a symlink).
    Outside(PathBuf),
}

/// Resolves `path` (percent-encoded, as requested) under `root`, following symlinks, and
/// says whether it is a file that stays inside `root`.
async fn resolve(root: &Path, path: &str) -> Resolved {
    let mut relative = PathBuf::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        let Ok(segment) = percent_decode_str(segment).decode_utf8() else {
            return Resolved::Missing;
        };
        if segment == "." || segment == ".." || segment.contains(['/', '\\', '\0']) {
            return Resolved::Missing;
        }
        relative.push(&*segment);
    }
    let (Ok(root), Ok(target)) = (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(root.join(&relative)).await,
    ) else {
        return Resolved::Missing;
    };
    if !target.starts_with(&root) {
        return Resolved::Outside(target);
    }
    match tokio::fs::metadata(&target).await {
        Ok(metadata) if metadata.is_file() => Resolved::File(target),
        _ => Resolved::Missing,
    }
}

/// An HTML page from the static directory, with its policy and the `ETag` of its content (a
/// 304 when `request` already holds it); or, when the static directory has no page yet, how to
/// build it.
async fn serve_page(file: &Path, static_dir: &Path, request: &HeaderMap) -> Response {
    match tokio::fs::read_to_string(file).await {
        Ok(html) => {
            let policy =
                HeaderValue::from_str(&content_security_policy(&html)).unwrap_or(NOTHING_ALLOWED);
            let tag = content_tag(html.as_bytes());
            let mut response = if request
                .get(header::IF_NONE_MATCH)
                .is_some_and(|wanted| matches_tag(wanted, &tag))
            {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                Html(html).into_response()
            };
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, NO_CACHE);
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            headers.insert(header::ETAG, tag);
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

/// For the response-header layer: any HTML answer that carries no policy of its own gets one
/// that allows nothing, so no HTML the facade sends can be framed or run scripts by accident.
pub(crate) fn policy_if_html<B>(response: &Response<B>) -> Option<HeaderValue> {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
        .then_some(NOTHING_ALLOWED)
}

/// The policy for the page: only this origin, WebAssembly allowed, and inline scripts only
/// when they are exactly the ones in this `index.html` (Trunk's loader).
pub(crate) fn content_security_policy(html: &str) -> String {
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

/// Trunk names built assets `<name>-<hash>[_bg].<ext>`, the hash a 64-bit number in hex
/// written without leading zeros (16 digits, or fewer for one build in 16), some 20; their
/// content never changes under the same name, so browsers may keep them. The hash (12 hex
/// digits or more, which no ordinary name ends with), for such a path.
fn asset_hash(path: &str) -> Option<&str> {
    let file = path.rsplit('/').next().unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-')
        .map(|(_, hash)| hash)
        .filter(|hash| hash.len() >= 12 && hash.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

/// `Accept-Encoding: *` (any coding) as the copies the build writes: `br, gzip`. (The file
/// server matches named codings only.)
fn widen_wildcard(headers: &mut HeaderMap) {
    if accepts_coding(headers, &header::ACCEPT_ENCODING, "*") {
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
    }
}

/// A 304 for a copy the browser holds: its tag, and the headers that describe it.
fn not_modified(tag: HeaderValue, served: &HeaderMap) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag);
    for name in [
        header::CACHE_CONTROL,
        header::VARY,
        header::CONTENT_ENCODING,
    ] {
        if let Some(value) = served.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    response
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
    use msglog_common::testing::TempDir;

    use super::*;

    #[tokio::test]
    async fn paths_resolve_inside_the_directory_only() {
        let dir = TempDir::new("msglog-static");
        let root = dir.join("dist");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "<p>page</p>").unwrap();
        std::fs::write(root.join("sub/a b.js"), "x").unwrap();
        std::fs::write(dir.join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("index.html"), root.join("alias.html")).unwrap();
        let real = |name: &str| std::fs::canonicalize(root.join(name)).unwrap();

        assert_eq!(
            resolve(&root, "/index.html").await,
            Resolved::File(real("index.html"))
        );
        assert_eq!(
            resolve(&root, "//index.html").await,
            Resolved::File(real("index.html"))
        );
        assert_eq!(
            resolve(&root, "/%69ndex.html").await,
            Resolved::File(real("index.html"))
        );
        assert_eq!(
            resolve(&root, "/sub/a%20b.js").await,
            Resolved::File(real("sub/a b.js"))
        );
        assert_eq!(
            resolve(&root, "/alias.html").await,
            Resolved::File(real("index.html"))
        );
        assert!(matches!(
            resolve(&root, "/leak.txt").await,
            Resolved::Outside(_)
        ));
        for missing in [
            "/",
            "/sub",
            "/nope",
            "/../secret.txt",
            "/sub/%2e%2e/index.html",
            "/%ff",
        ] {
            assert_eq!(
                resolve(&root, missing).await,
                Resolved::Missing,
                "{missing}"
            );
        }
    }

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
    fn hashed_asset_names_are_recognised_by_their_hash() {
        assert_eq!(
            asset_hash("/msglog-frontend-4f8a1c3b2e6d7a9f_bg.wasm"),
            Some("4f8a1c3b2e6d7a9f")
        );
        assert_eq!(
            asset_hash("/msglog-frontend-4f8a1c3b2e6d7a9f.js"),
            Some("4f8a1c3b2e6d7a9f")
        );
        assert_eq!(
            asset_hash("/style-0123456789abcdef0123.css"),
            Some("0123456789abcdef0123")
        );
        // A hash with a leading zero left out (one build in 16).
        assert_eq!(
            asset_hash("/msglog-frontend-2768ee932b27306_bg.wasm"),
            Some("2768ee932b27306")
        );
        assert_eq!(asset_hash("/index.html"), None);
        assert_eq!(
            asset_hash("/logo-cafe.png"),
            None,
            "a short hex word is no hash"
        );
        assert_eq!(asset_hash("/favicon.ico"), None);
        assert_eq!(asset_hash("/my-file.css"), None);
    }

    #[test]
    fn a_tag_matches_when_named_weakly_or_among_others_or_by_star() {
        let tag = HeaderValue::from_static("\"abc-br\"");
        for wanted in ["\"abc-br\"", "W/\"abc-br\"", "\"x\", \"abc-br\"", "*"] {
            assert!(
                matches_tag(&HeaderValue::from_static(wanted), &tag),
                "{wanted}"
            );
        }
        for wanted in ["\"abc-gzip\"", "abc-br", ""] {
            assert!(
                !matches_tag(&HeaderValue::from_static(wanted), &tag),
                "{wanted}"
            );
        }
    }
}
