//! The real binary: starts on port 0, answers, exits cleanly on SIGTERM, and closes slow,
//! silent and idle connections after their timeouts while serving others.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::net::SocketAddr;

use msglog_common::testing::{
    LogAfterStart, SHORT_CONNECTION_LIMITS, ServiceProcess, check_connection_limits,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn start(log: LogAfterStart) -> ServiceProcess {
    start_with(&[], log).await
}

async fn start_with(extra: &[&str], log: LogAfterStart) -> ServiceProcess {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    ServiceProcess::start(env!("CARGO_BIN_EXE_messages-service"), args, log).await
}

async fn get_message(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /get_message HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_on_time_while_others_are_served() {
    let service = start_with(&SHORT_CONNECTION_LIMITS, LogAfterStart::Drain).await;
    check_connection_limits(
        service.addr,
        b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await;
    assert!(service.terminate().await.success());
}
