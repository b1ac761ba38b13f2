//! HTTPS on the facade: every door (the JSON routes, gRPC, gRPC-web) over TLS with HTTP/2 or
//! HTTP/1.1 as ALPN chooses, from a client that trusts only a CA made for the test; a
//! handshake that never finishes closed after the header-read timeout; shutdown with watchers
//! open over TLS ending within the grace period; the plain port serving as before. And the
//! facade calling logging over TLS, trusting logging's CA and nothing else.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use msglog_common::testing::{
    GrpcWebFrame, GrpcWebFrames, InProcess, TempDir, closing_status, grpc_frame,
};
use msglog_proto::v1::{
    SendRequest, WatchRequest, message_log_client::MessageLogClient, watch_event::Event,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::Instant,
};
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{ClientConfig, RootCertStore, pki_types::ServerName},
};

use crate::helpers::{
    facade_settings, logging_settings, spawn_facade, spawn_logging_with, spawn_messages,
};

/// A CA made for the test, and a certificate it signed for `localhost` and 127.0.0.1, written
/// as PEM files.
struct TestCa {
    dir: TempDir,
    roots: RootCertStore,
}

impl TestCa {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "msglog test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let dir = TempDir::new("msglog-tls");
        std::fs::write(dir.join("cert.pem"), cert.pem() + &ca.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        Self { dir, roots }
    }

    /// A TLS connection to `addr` offering `alpn`, trusting only this CA.
    async fn connect(&self, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        tls_connect(&self.roots, addr, alpn).await
    }
}

/// A TLS connection to `addr` (as `localhost`) offering `alpn`, trusting only `roots`.
async fn tls_connect(
    roots: &RootCertStore,
    addr: SocketAddr,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        #[expect(deprecated, reason = "the provider the facade uses")]
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The three services, the facade also on HTTPS with the test CA's certificate.
struct SecureApp {
    facade: InProcess,
    tls_addr: SocketAddr,
    ca: TestCa,
    _logging: InProcess,
    _messages: InProcess,
}

impl SecureApp {
    async fn spawn(extra: &[&str]) -> Self {
        let ca = TestCa::new();
        let logging =
            spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
        let messages = spawn_messages().await;
        let mut settings = facade_settings(&logging.url(), &messages.url());
        let cert = ca.dir.join("cert.pem").display().to_string();
        let key = ca.dir.join("key.pem").display().to_string();
        let mut args = vec![
            "facade-service",
            "--addr",
            "127.0.0.1:0",
            "--tls-addr",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        args.extend_from_slice(extra);
        settings = clap::Parser::try_parse_from(args)
            .map(
                |parsed: facade_service::Settings| facade_service::Settings {
                    logging_urls: settings.logging_urls.clone(),
                    messages_url: settings.messages_url.clone(),
                    ..parsed
                },
            )
            .unwrap();
        let app = facade_service::Application::build(&settings).await.unwrap();
        let tls_addr = app.tls_addr().expect("an HTTPS listener");
        let facade = InProcess::spawn(app.addr(), |stop| app.run_until(stop));
        Self {
            facade,
            tls_addr,
            ca,
            _logging: logging,
            _messages: messages,
        }
    }

    /// A gRPC client of the facade over TLS (HTTP/2 by ALPN).
    async fn grpc(&self) -> MessageLogClient<tonic::transport::Channel> {
        let (addr, roots) = (self.tls_addr, Arc::new(self.ca.roots.clone()));
        let connector = tower::service_fn(move |_: http::Uri| {
            let roots = Arc::clone(&roots);
            async move {
                let stream = tls_connect(&roots, addr, &[b"h2"]).await;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        });
        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(connector)
            .await
            .unwrap();
        MessageLogClient::new(channel)
    }
}

/// Sends `request` over an HTTP/2 or HTTP/1.1 connection already made on `stream`.
async fn send_over<B: AsRef<[u8]>>(
    stream: TlsStream<TcpStream>,
    http2: bool,
    request: http::Request<B>,
) -> (u16, http::HeaderMap, Bytes) {
    let request = request.map(|body| Full::new(Bytes::copy_from_slice(body.as_ref())));
    let response = if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap();
    let trailers = body.trailers().cloned().unwrap_or_default();
    let mut headers = parts.headers;
    headers.extend(trailers);
    (parts.status.as_u16(), headers, body.to_bytes())
}

fn post_message(text: &str) -> http::Request<String> {
    http::Request::post("https://localhost/send_message")
        .header("content-type", "application/json")
        .body(format!(r#"{{"message":"{text}"}}"#))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_answers_over_https_by_http2_or_http1_as_alpn_chooses() {
    let app = SecureApp::spawn(&[]).await;

    // ALPN offering both: HTTP/2 is chosen; the JSON routes answer over it.
    let stream = app.ca.connect(app.tls_addr, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, _, body) = send_over(stream, true, post_message("over h2")).await;
    assert_eq!(status, 200, "{body:?}");

    // A client that speaks only HTTP/1.1 gets it.
    let stream = app.ca.connect(app.tls_addr, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (status, _, body) = send_over(stream, false, post_message("over http/1.1")).await;
    assert_eq!(status, 200, "{body:?}");

    // gRPC-web over HTTP/1.1 and TLS, as a browser without HTTP/2 sends it: `Status`.
    let stream = app.ca.connect(app.tls_addr, &[b"http/1.1"]).await;
    let request = http::Request::post("https://localhost/msglog.v1.MessageLog/Status")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_frame(&[]))
        .unwrap();
    let (status, headers, body) = send_over(stream, false, request).await;
    assert_eq!(status, 200);
    let mut frames = GrpcWebFrames::binary();
    frames.push(&body);
    let mut trailers = String::new();
    while let Some(frame) = frames.next_frame() {
        if let GrpcWebFrame::Trailers(text) = frame {
            trailers = text;
        }
    }
    assert!(
        trailers.contains("grpc-status:0") || headers.get("grpc-status").is_some_and(|s| s == "0"),
        "Status over gRPC-web and TLS: {trailers:?} {headers:?}"
    );

    // Native gRPC over TLS: a watch sees a message sent by another call.
    let mut client = app.grpc().await;
    let mut watch = client
        .watch(WatchRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    client
        .send(SendRequest {
            text: "over grpc".to_owned(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("the watch delivers within 10 s")
            .unwrap()
            .expect("the watch stays open");
        if let Some(Event::Message(message)) = event.event {
            seen.push(message.text);
        }
    }
    assert_eq!(seen, ["over h2", "over http/1.1", "over grpc"]);

    // The plain port serves as before, the same log.
    let plain = reqwest::get(format!("{}/get_messages", app.facade.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(plain.contains("over grpc"), "{plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_finishes_is_closed_after_the_header_read_timeout() {
    let app = SecureApp::spawn(&["--header-read-timeout-ms", "500"]).await;
    // One client says nothing; another starts a ClientHello and stops.
    let silent = TcpStream::connect(app.tls_addr).await.unwrap();
    let mut partial = TcpStream::connect(app.tls_addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    for mut stream in [silent, partial] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the facade closes the connection");
        // Closed (an end of stream, or a reset), with nothing of a TLS answer.
        if let Ok(read) = closed {
            assert_eq!(read, 0, "nothing is sent before a complete ClientHello");
        }
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    // Meanwhile, and after, a real client is served.
    let stream = app.ca.connect(app.tls_addr, &[b"h2"]).await;
    let (status, _, _) = send_over(stream, true, post_message("after the silent ones")).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_watchers_open_over_tls_ends_within_the_grace_period() {
    let app = SecureApp::spawn(&["--shutdown-grace-ms", "2000"]).await;
    let mut watches = Vec::new();
    for _ in 0..3 {
        let mut client = app.grpc().await;
        let watch = client
            .watch(WatchRequest { after_seq: 0 })
            .await
            .unwrap()
            .into_inner();
        watches.push(watch);
    }
    // Each watch is open and live: a message sent now reaches it.
    app.grpc()
        .await
        .send(SendRequest {
            text: "before the stop".to_owned(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap();
    for watch in &mut watches {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
                .await
                .expect("the watch delivers within 10 s")
                .unwrap()
                .expect("the watch stays open");
            if matches!(event.event, Some(Event::Message(_))) {
                break;
            }
        }
    }
    let started = Instant::now();
    let SecureApp { facade, .. } = app;
    facade.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    for mut watch in watches {
        let status = closing_status(&mut watch).await;
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_facade_calls_logging_over_tls_trusting_its_ca_only() {
    let ca = TestCa::new();
    let cert = ca.dir.join("cert.pem").display().to_string();
    let key = ca.dir.join("key.pem").display().to_string();
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--tls-cert", &cert, "--tls-key", &key],
    ))
    .await;
    let logging_url = format!("https://localhost:{}", logging.addr.port());
    let messages = spawn_messages().await;

    // With logging's CA: messages are stored and listed, and the live feed follows over TLS.
    let mut settings = facade_settings(&logging_url, &messages.url());
    settings.logging_ca_file = Some(ca.dir.join("ca.pem"));
    let facade = spawn_facade(settings).await;
    let client = crate::helpers::Client::new(&facade);
    let (status, body) = client.post_message("over TLS to logging").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(client.stored().await, ["over TLS to logging"]);
    let (status, body) = client.get_json("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["logging"]["up"], true, "{body}");
    assert_eq!(body["feed"]["live"], true, "{body}");

    // Without it (the system's roots, which never signed the test's CA): refused at the
    // handshake, so nothing is stored and the answer says logging is unavailable.
    let untrusting = spawn_facade(facade_settings(&logging_url, &messages.url())).await;
    let (status, body) = crate::helpers::Client::new(&untrusting)
        .post_message("to an untrusted logging")
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.to_string().contains("UNAVAILABLE"), "{body}");
    assert_eq!(client.stored().await, ["over TLS to logging"]);

    // A plain-text client of a TLS logging gets nothing either.
    let plain = facade_settings(&format!("http://{}", logging.addr), &messages.url());
    let plain = spawn_facade(plain).await;
    let (status, _) = crate::helpers::Client::new(&plain)
        .post_message("in clear")
        .await;
    assert_eq!(status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_cap_counts_both_ports() {
    let app = SecureApp::spawn(&["--max-connections", "4"]).await;
    // Four idle connections fill the cap on the plain port: each is answered once, so the
    // facade has taken it in (a connect alone returns before the facade accepts it), and is
    // then left idle...
    let mut plain = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(app.facade.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        plain.push(stream);
    }
    // ...so four on the HTTPS port make room by closing them, as four more on the plain port
    // would: the cap is the process's, not each port's.
    let mut secure = Vec::new();
    for _ in 0..4 {
        secure.push(TcpStream::connect(app.tls_addr).await.unwrap());
    }
    for mut stream in plain {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "an idle plain connection was closed to make room"
        );
    }
    // And a real client is served over HTTPS meanwhile.
    let stream = app.ca.connect(app.tls_addr, &[b"h2"]).await;
    let (status, _, _) = send_over(stream, true, post_message("within the cap")).await;
    assert_eq!(status, 200);
    drop(secure);
}
