//! Oversized bodies against the real facade binary: refused early with a JSON 413, without
//! the process's memory growing with what the client sends. Logging and messages are absent:
//! a refused body never reaches them.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use msglog_common::testing::{LogAfterStart, ServiceProcess};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// An address where nothing listens.
async fn refused_addr() -> SocketAddr {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The status code and body of a raw HTTP/1.1 answer.
fn parse_http_answer(raw: &[u8]) -> (u16, String) {
    let answer = String::from_utf8_lossy(raw);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

async fn start_facade(logging_url: &str, messages_url: &str) -> ServiceProcess {
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_facade-service"),
        [
            "--addr",
            "127.0.0.1:0",
            "--logging-url",
            logging_url,
            "--messages-url",
            messages_url,
        ],
        LogAfterStart::Drain,
    )
    .await
}

/// POSTs `size` bytes (declared with Content-Length, or chunked) while reading the answer, and
/// returns the status line and body. The server may answer and close before the body is sent;
/// the writer then stops on the broken connection.
async fn post_huge(addr: SocketAddr, size: usize, chunked: bool) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = if chunked {
        "POST /send_message HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_owned()
    } else {
        format!(
            "POST /send_message HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {size}\r\nconnection: close\r\n\r\n"
        )
    };
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let block = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            let n = block.len().min(size - sent);
            if chunked {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                writer.write_all(&block[..n]).await?;
                writer.write_all(b"\r\n").await?;
            } else {
                writer.write_all(&block[..n]).await?;
            }
            sent += n;
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(sent)
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the facade answered within 30 s");
    sender.abort();
    parse_http_answer(&answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_get_413_early_and_memory_stays_flat() {
    let nowhere = format!("http://{}", refused_addr().await);
    let facade = start_facade(&nowhere, &nowhere).await;

    // Warm up the allocator and the connection machinery with one refused body.
    let (status, _) = post_huge(facade.addr, 1 << 20, false).await;
    assert_eq!(status, 413);
    let before = facade.rss_kib();

    for (size, chunked) in [
        (1_000_000, false),
        (1_000_000, true),
        (100_000_000, false),
        (100_000_000, true),
        (100_000_000, false),
        (100_000_000, true),
    ] {
        let (status, body) = post_huge(facade.addr, size, chunked).await;
        assert!(status == 413, "{size} chunked={chunked}: {status}");
        assert!(
            body.contains("request body is larger than the limit of 262144 bytes"),
            "{size} chunked={chunked}: {body:?}"
        );
    }
    let after = facade.rss_kib();
    // 400 MB went at it; the process may not grow by more than a few buffers.
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );

    // And it still answers.
    let mut stream = TcpStream::connect(facade.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
