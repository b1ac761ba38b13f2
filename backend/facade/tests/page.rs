//! The page's files through the facade alone (logging and messages absent): the page's
//! security headers on every answer that serves it, however its path is spelled, and no file
//! from outside the static folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::{net::SocketAddr, time::Duration};

use clap::Parser as _;
use facade_service::{Application, Settings};
use msglog_common::testing::{InProcess, TempDir};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

const INDEX: &str =
    "<!doctype html><html><head><script type=\"module\">init();</script></head></html>";

/// A built page in `<tmp>/dist`, a secret file beside it, and a symlink to it inside.
fn static_dir() -> TempDir {
    let dir = TempDir::new("msglog-page");
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), INDEX).unwrap();
    std::fs::write(dist.join("app-0123456789abcdef.js"), "export default 1;").unwrap();
    std::fs::write(dir.join("secret.txt"), "the secret").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), dist.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dist.join("up")).unwrap();
    dir
}

async fn start(static_dir: &TempDir) -> InProcess {
    // Nothing listens on the discard port: logging and messages are down.
    let nowhere = "http://127.0.0.1:9";
    let settings = Settings::try_parse_from([
        "facade-service",
        "--addr",
        "127.0.0.1:0",
        "--logging-url",
        nowhere,
        "--messages-url",
        nowhere,
        "--static-dir",
        static_dir.join("dist").to_str().unwrap(),
    ])
    .unwrap();
    let app = Application::build(&settings).await.unwrap();
    InProcess::spawn(app.addr(), |stop| app.run_until(stop))
}

/// Sends `METHOD path` with `accept` as written (no normalising client in between) and
/// returns the answer's head (lower-cased) and body.
async fn request(addr: SocketAddr, method: &str, path: &str, accept: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: localhost\r\naccept: {accept}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn every_answer_that_serves_the_page_carries_its_security_headers() {
    let dir = static_dir();
    let facade = start(&dir).await;
    const HTML: &str = "text/html,application/xhtml+xml";
    for (method, path, accept) in [
        ("GET", "/", "*/*"),
        ("GET", "/index.html", "*/*"),
        ("GET", "//index.html", "*/*"),
        ("GET", "/%69ndex.html", "*/*"),
        ("GET", "/some/page/in/the/app", HTML),
        ("HEAD", "/", "*/*"),
        ("HEAD", "//index.html", "*/*"),
        ("HEAD", "/%69ndex.html", HTML),
        ("HEAD", "/unknown", HTML),
    ] {
        let (head, body) = request(facade.addr, method, path, accept).await;
        let what = format!("{method} {path}");
        assert!(head.starts_with("http/1.1 200"), "{what}: {head}");
        assert!(head.contains("content-type: text/html"), "{what}: {head}");
        assert!(
            head.contains("content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
            "{what}: {head}"
        );
        assert!(head.contains("frame-ancestors 'none'"), "{what}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{what}: {head}"
        );
        assert!(
            head.contains("referrer-policy: no-referrer"),
            "{what}: {head}"
        );
        if method == "GET" {
            assert_eq!(body, INDEX, "{what}");
        } else {
            assert!(body.is_empty(), "{what}");
        }
    }
}

#[tokio::test]
async fn symlinks_out_of_the_static_folder_are_not_followed() {
    let dir = static_dir();
    let facade = start(&dir).await;
    for path in [
        "/leak.txt",
        "/up/secret.txt",
        "/%2e%2e/secret.txt",
        "/up/dist/../secret.txt",
    ] {
        let (head, body) = request(facade.addr, "GET", path, "*/*").await;
        assert!(head.starts_with("http/1.1 404"), "{path}: {head}");
        assert!(head.contains("application/json"), "{path}: {head}");
        assert!(!body.contains("the secret"), "{path}: {body}");
    }
    // A file that is inside is served.
    let (head, body) = request(facade.addr, "GET", "/app-0123456789abcdef.js", "*/*").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "export default 1;");
}

#[tokio::test]
async fn paths_no_file_can_have_get_json_4xx_even_for_a_browser() {
    let dir = static_dir();
    let facade = start(&dir).await;
    let segment = format!("/{}", "s".repeat(256));
    let long = "/abcd".repeat(1024);
    for (path, status) in [(segment.as_str(), "404"), (long.as_str(), "414")] {
        for accept in ["*/*", "text/html"] {
            let (head, body) = request(facade.addr, "GET", path, accept).await;
            assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
            assert!(head.contains("application/json"), "{head}");
            assert!(
                body.starts_with(r#"{"error":"#) && body.len() < 200,
                "{body}"
            );
        }
    }
}
