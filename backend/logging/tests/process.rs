//! The real logging binary against slow, silent and idle connections: each is closed after
//! its timeout while fresh calls are answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use msglog_common::testing::{
    LogAfterStart, SHORT_CONNECTION_LIMITS, ServiceProcess, check_connection_limits,
};

/// A gRPC-web health check over HTTP/1.1: an empty `HealthCheckRequest` frame.
const HEALTH_CHECK: &[u8] = b"POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: localhost\r\n\
content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\ncontent-length: 5\r\n\r\n\0\0\0\0\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_on_time_while_others_are_served() {
    let mut args = vec!["--addr", "127.0.0.1:0", "--store", "memory"];
    args.extend(SHORT_CONNECTION_LIMITS);
    let logging = ServiceProcess::start(
        env!("CARGO_BIN_EXE_logging-service"),
        args,
        LogAfterStart::Drain,
    )
    .await;
    check_connection_limits(logging.addr, HEALTH_CHECK).await;
    assert!(logging.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::time::{Duration, Instant};

    let logging = ServiceProcess::start(
        env!("CARGO_BIN_EXE_logging-service"),
        [
            "--addr",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--idle-timeout-ms",
            "1000",
        ],
        LogAfterStart::Drain,
    )
    .await;
    let stream = tokio::net::TcpStream::connect(logging.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{}/grpc.health.v1.Health/Check",
        logging.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    let idle_since = Instant::now();

    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the server closes the idle connection")
        .unwrap()
        .unwrap();
    let idle_for = idle_since.elapsed();
    assert!(
        idle_for >= Duration::from_millis(800),
        "closed after {idle_for:?}"
    );
    assert!(
        idle_for <= Duration::from_secs(4),
        "closed after {idle_for:?}"
    );
}
