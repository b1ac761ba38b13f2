//! The real binary: starts on port 0, answers, and exits cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::Duration,
};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Reads the binary's log until it says where it listens and returns the address; then
/// keeps reading the log, or closes it when `close_log` is set.
fn listening_addr(stderr: impl std::io::Read + Send + 'static, close_log: bool) -> SocketAddr {
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("listening addr=").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            if !close_log {
                std::thread::spawn(move || lines.for_each(drop));
            }
            return addr;
        }
    }
    panic!("the binary exited without saying where it listens");
}

/// The running binary; killed if a test fails before it stops it.
struct Binary(std::process::Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_binary() -> Binary {
    Binary(
        Command::new(env!("CARGO_BIN_EXE_messages-service"))
            .args(["--addr", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
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

fn terminate(child: &Binary) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    let mut child = spawn_binary();
    let stderr = child.0.stderr.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || listening_addr(stderr, false))
        .await
        .unwrap();

    let answer = get_message(addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("not implemented yet"), "{answer}");

    terminate(&child);
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || child.0.wait().unwrap()),
    )
    .await
    .expect("exits within 10 s of SIGTERM")
    .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_binary_keeps_serving_when_its_log_pipe_closes() {
    let mut child = spawn_binary();
    let stderr = child.0.stderr.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || listening_addr(stderr, true))
        .await
        .unwrap();

    // Each request is logged to the closed pipe; none may fail for it.
    for _ in 0..3 {
        let answer = get_message(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    terminate(&child);
    assert!(child.0.wait().unwrap().success());
}
