//! The real facade binary against what one client can throw at it: oversized bodies (refused
//! early with a JSON 413, memory flat), slow, silent and idle connections (closed after their
//! timeouts while others are served, even under a low file limit), and huge paths and request
//! ids (a JSON 4xx, and a bounded log), gRPC calls whose bodies stall (answered
//! `DEADLINE_EXCEEDED` in time, and their connections closed to make room for new clients).
//! Logging and messages are absent: none of this reaches them.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, time::Duration};

use msglog_common::testing::{
    LogAfterStart, SHORT_CONNECTION_LIMITS, ServiceProcess, check_connection_limits,
    parse_http_answer, refused_addr,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// The facade binary with `extra` flags, logging and messages absent, run by `sh` with
/// `ulimit -n` at `file_limit` when given.
async fn start_facade(
    extra: &[&str],
    file_limit: Option<u32>,
    log: LogAfterStart,
) -> ServiceProcess {
    let nowhere = format!("http://{}", refused_addr().await);
    let mut args = vec![
        "--addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--logging-url".to_owned(),
        nowhere.clone(),
        "--messages-url".to_owned(),
        nowhere,
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let binary = env!("CARGO_BIN_EXE_facade-service");
    match file_limit {
        None => ServiceProcess::start(binary, args, log).await,
        Some(limit) => {
            let mut shell = vec![
                "-c".to_owned(),
                format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                binary.to_owned(),
            ];
            shell.extend(args);
            ServiceProcess::start("sh", shell, log).await
        }
    }
}

/// POSTs `size` bytes (declared with Content-Length, or chunked) while reading the answer, and
/// returns the status line and body. The server may answer and close before the body is sent;
/// the writer then stops on the broken connection.
async fn post_huge(addr: SocketAddr, size: usize, chunked: bool) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = if chunked {
        "POST /send_message HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            .to_owned()
    } else {
        format!(
            "POST /send_message HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
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
    let facade = start_facade(&[], None, LogAfterStart::Drain).await;

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
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_on_time_while_others_are_served() {
    let facade = start_facade(&SHORT_CONNECTION_LIMITS, None, LogAfterStart::Drain).await;
    check_connection_limits(facade.addr, HEALTHZ).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_file_limit_idle_connections_make_room_for_new_clients() {
    // 128 descriptors; 200 idle clients would take them all.
    let facade = start_facade(&[], Some(128), LogAfterStart::Drain).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(facade.addr).await.unwrap();
        stream.write_all(HEALTHZ).await.unwrap();
        let mut answer = [0_u8; 512];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(stream);
    }
    for _ in 0..20 {
        let answer = tokio::time::timeout(Duration::from_secs(2), async {
            let mut stream = TcpStream::connect(facade.addr).await.unwrap();
            stream.write_all(HEALTHZ).await.unwrap();
            let mut answer = [0_u8; 512];
            let n = stream.read(&mut answer).await.unwrap();
            String::from_utf8_lossy(&answer[..n]).into_owned()
        })
        .await
        .expect("a new client is answered at once");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    drop(idle);
}

/// Sends `head` (a request head, ended here) and returns the status and body.
async fn raw_request(addr: SocketAddr, head: &str) -> (u16, String) {
    raw_request_to(addr, "localhost", head).await
}

/// Sends `head` for `host` and returns the status and body.
async fn raw_request_to(addr: SocketAddr, host: &str, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}host: {host}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    parse_http_answer(&answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_paths_and_request_ids_get_json_4xx_and_bounded_log_lines() {
    let facade = start_facade(&[], None, LogAfterStart::Capture).await;
    let segment = format!("/{}", "s".repeat(256));
    let five_kb = "/abcd".repeat(1024);
    for (path, status) in [(segment.as_str(), 404), (five_kb.as_str(), 414)] {
        for accept in ["*/*", "text/html"] {
            let (got, body) = raw_request(
                facade.addr,
                &format!("GET {path} HTTP/1.1\r\naccept: {accept}\r\n"),
            )
            .await;
            assert_eq!(got, status, "{} bytes, {accept}: {body}", path.len());
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(json["error"].as_str().unwrap().len() < 200, "{body}");
        }
    }
    // Past 64 KiB the HTTP parser itself refuses the request line, before any route.
    let (status, _) = raw_request(
        facade.addr,
        &format!("GET /{} HTTP/1.1\r\n", "x".repeat(100_000)),
    )
    .await;
    assert_eq!(status, 414);
    // A 60 KB request id is replaced, and never written out whole.
    let (status, _) = raw_request(
        facade.addr,
        &format!(
            "GET /healthz HTTP/1.1\r\nx-request-id: {}\r\n",
            "r".repeat(60_000)
        ),
    )
    .await;
    assert_eq!(status, 200);

    // The log (at debug level) has seen all of it; no line carries a client's input unbounded.
    let (status, _) = raw_request(facade.addr, "GET /healthz HTTP/1.1\r\n").await;
    assert_eq!(status, 200);
    facade
        .wait_for_log_line(|line| line.contains("unusable x-request-id replaced"))
        .await;
    let lines = facade.log_lines();
    let longest = lines.iter().map(String::len).max().unwrap_or_default();
    assert!(longest < 1024, "a log line of {longest} bytes");
}

/// The head of a gRPC-web `Send` that declares a 100-byte body.
const STALLING_GRPC_WEB_SEND: &[u8] =
    b"POST /msglog.v1.MessageLog/Send HTTP/1.1\r\nhost: localhost\r\n\
    content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: 100\r\n\r\n";

/// Opens a connection and starts a gRPC-web `Send` whose body stops after its first byte.
async fn stalled_grpc_web_send(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(STALLING_GRPC_WEB_SEND).await.unwrap();
    stream.write_all(&[0]).await.unwrap();
    stream
}

/// A request body that sends one byte, then nothing, for ever.
struct OneByteThenSilence(bool);

impl http_body::Body for OneByteThenSilence {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.0, true) {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                &[0],
            )))))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_whose_body_stalls_end_with_deadline_exceeded_within_the_request_timeout() {
    let facade = start_facade(
        &["--request-timeout-ms", "1000"],
        None,
        LogAfterStart::Drain,
    )
    .await;

    // gRPC-web over HTTP/1.1.
    let started = std::time::Instant::now();
    let mut stream = stalled_grpc_web_send(facade.addr).await;
    let mut answer = [0_u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("grpc-status: 4"), "{answer}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // Native gRPC over HTTP/2.
    let started = std::time::Instant::now();
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(facade.addr).await.unwrap());
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{}/msglog.v1.MessageLog/Send", facade.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(OneByteThenSilence(false))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("answered within 5 s")
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"4"[..]),
        "{response:?}"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_is_served_while_stalled_grpc_calls_hold_every_connection() {
    // A request timeout far off: room is made by closing a stalled connection, not by the
    // timeout.
    let facade = start_facade(
        &["--max-connections", "8", "--request-timeout-ms", "60000"],
        None,
        LogAfterStart::Capture,
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(stalled_grpc_web_send(facade.addr).await);
    }
    // All eight are being handled (each waits for the rest of its body).
    facade
        .wait_for_log_lines(8, |line| {
            line.contains("MessageLog/Send") && line.contains("started processing request")
        })
        .await;
    // A new client keeps trying (each refused connection closes at once) until it is served:
    // once the stalled calls have sent nothing for a second, one makes room.
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut stream = TcpStream::connect(facade.addr).await.unwrap();
            if stream.write_all(HEALTHZ).await.is_err() {
                continue;
            }
            let mut answer = [0_u8; 512];
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await {
                Ok(Ok(n)) if n > 0 => break String::from_utf8_lossy(&answer[..n]).into_owned(),
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("a new client is served within 10 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The room came from a stalled call's connection, now closed.
    let mut closed = 0;
    for stream in &mut stalled {
        let mut byte = [0_u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no stalled connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_on_every_route_and_door_and_known_ones_are_served() {
    let facade = start_facade(
        &["--allowed-hosts", "msglog.example.com,.corp.example"],
        None,
        LogAfterStart::Drain,
    )
    .await;
    let send =
        "POST /send_message HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 15\r\n";
    for head in [
        "GET / HTTP/1.1\r\n",
        "GET /healthz HTTP/1.1\r\n",
        "GET /get_messages HTTP/1.1\r\n",
        "GET /api/status HTTP/1.1\r\n",
        "GET /metrics HTTP/1.1\r\n",
        "GET /no/such/route HTTP/1.1\r\n",
        "POST /msglog.v1.MessageLog/Send HTTP/1.1\r\ncontent-type: application/grpc-web+proto\r\ncontent-length: 0\r\n",
    ] {
        for host in [
            "evil.example",
            "rebound.evil.example:8080",
            "msglog.example.com.evil.example",
        ] {
            let (status, body) = raw_request_to(facade.addr, host, head).await;
            assert_eq!(status, 421, "{head:?} for {host}: {body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                json["error"].as_str().unwrap().contains("--allowed-hosts"),
                "{body}"
            );
        }
        for host in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:8080",
            "msglog.example.com",
            "app.corp.example:443",
        ] {
            let (status, body) = raw_request_to(facade.addr, host, head).await;
            assert_ne!(status, 421, "{head:?} for {host}: {body}");
        }
    }
    // A POST for a foreign host never reaches the route (logging is absent here: a POST that
    // did would be a 500).
    let mut stream = TcpStream::connect(facade.addr).await.unwrap();
    stream
        .write_all(
            format!("{send}host: evil.example\r\nconnection: close\r\n\r\n{{\"message\":\"x\"}}")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(parse_http_answer(&answer).0, 421);

    // Native gRPC over HTTP/2 names its host in `:authority`.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", facade.addr))
        .unwrap()
        .origin("http://evil.example".parse().unwrap())
        .connect()
        .await
        .unwrap();
    let mut client = msglog_proto::v1::message_log_client::MessageLogClient::new(channel);
    let status = client
        .status(msglog_proto::v1::StatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("--allowed-hosts"), "{status:?}");
}
