//! The real binary: starts on port 0, answers, and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::net::SocketAddr;

use msglog_common::testing::{LogAfterStart, ServiceProcess};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn start(log: LogAfterStart) -> ServiceProcess {
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_messages-service"),
        ["--addr", "127.0.0.1:0"],
        log,
    )
    .await
}

async fn get_message(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /get_message HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    let service = start(LogAfterStart::Drain).await;
    let answer = get_message(service.addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("not implemented yet"), "{answer}");
    let status = service.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_binary_keeps_serving_when_its_log_pipe_closes() {
    let service = start(LogAfterStart::Close).await;
    // Each request is logged to the closed pipe; none may fail for it.
    for _ in 0..3 {
        let answer = get_message(service.addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    assert!(service.terminate().await.success());
}
