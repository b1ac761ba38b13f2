//! Load on the live feed: many gRPC-web watchers (each on its own HTTP/1.1 connection, as
//! browsers are over plain HTTP, or several to an HTTP/2 connection, as tabs share one over
//! HTTPS) on one facade while messages are posted at a steady rate; prints how long each
//! message took from its POST to each watcher, and whether every watcher got every message once,
//! in order. Run by `scripts/bench/watch.sh`, which starts the services and reads the facade's
//! memory.

// Its figures are its output, for a person or a script to read: stdout is the place.
#![allow(clippy::print_stdout)]

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use msglog_common::testing::{GrpcWebFrame, GrpcWebFrames, grpc_frame};
use msglog_proto::v1::{WatchEvent, WatchRequest, watch_event::Event};
use prost::Message as _;

#[derive(Debug, Parser)]
#[command(about = "Watchers on the facade's live feed while messages are posted.")]
struct Args {
    /// The facade's address (host:port).
    #[arg(long)]
    facade: String,
    /// gRPC-web watchers, one connection each.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Messages posted per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long messages are posted, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Watchers per HTTP/2 connection (h2c); 0: one HTTP/1.1 connection each.
    #[arg(long, default_value_t = 0)]
    http2_streams: usize,
    /// The protocol the watchers speak: `grpc-web` (binary) or `connect` (`connect+proto`);
    /// both frame each event the same way.
    #[arg(long, default_value = "grpc-web")]
    protocol: Protocol,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Protocol {
    GrpcWeb,
    Connect,
}

/// When each message's POST was sent, by its number (its text is `watch bench <n> <RUN>`).
type Sent = Arc<Vec<OnceLock<Instant>>>;

/// This run's mark in its messages' texts: the same text is the same message (stored once), so
/// a second run against the same services posts new ones.
static RUN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("run-{}-{}", now.as_nanos(), std::process::id())
});

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut watchers = Vec::with_capacity(args.watchers);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(args.watchers.max(1));
    let total = args.rate as usize * args.seconds as usize;
    let sent: Sent = Arc::new((0..total).map(|_| OnceLock::new()).collect());
    // Every watcher starts after the newest message stored now.
    let newest: serde_json::Value = reqwest::get(format!(
        "http://{}/api/messages?direction=backward&limit=1",
        args.facade
    ))
    .await?
    .json()
    .await?;
    let after_seq = newest["messages"][0]["seq"].as_u64().unwrap_or(0);
    let mut shared = None;
    for n in 0..args.watchers {
        let connection = if args.http2_streams == 0 {
            Connection::http1(&args.facade).await?
        } else {
            if n % args.http2_streams == 0 {
                shared = Some(Connection::http2(&args.facade).await?);
            }
            let sender = shared.as_ref().context("an HTTP/2 connection")?;
            Connection::Http2(sender.clone())
        };
        let (facade, opened, sent) = (args.facade.clone(), opened_tx.clone(), Arc::clone(&sent));
        let protocol = args.protocol;
        watchers.push(tokio::spawn(async move {
            watch(
                connection, &facade, protocol, after_seq, opened, sent, total,
            )
            .await
        }));
    }
    drop(opened_tx);
    for _ in 0..args.watchers {
        opened_rx.recv().await.context("a watcher failed to open")?;
    }
    println!(
        "watchers open: {} in {:.1} s",
        args.watchers,
        started.elapsed().as_secs_f64()
    );
    // A marker the script waits for to read the facade's memory with every watcher open.
    println!("READY");

    post_at_rate(&args, &sent).await?;
    let mut delays = Vec::with_capacity(total * args.watchers);
    let mut complete = 0;
    for watcher in watchers {
        let (got, in_order) = watcher.await??;
        if got.len() == total && in_order {
            complete += 1;
        }
        delays.extend(got);
    }
    delays.sort_unstable();
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "posted: {total} messages at {} /s; deliveries: {} of {}",
        args.rate,
        delays.len(),
        total * args.watchers
    );
    println!(
        "watchers that got every message once, in order: {complete} of {}",
        args.watchers
    );
    println!(
        "delay from POST to watcher: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// Posts `rate` messages a second for `seconds`, each without waiting for the one before.
async fn post_at_rate(args: &Args, sent: &Sent) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("http://{}/send_message", args.facade);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    let mut posts = Vec::new();
    for n in 0..args.rate as usize * args.seconds as usize {
        ticks.tick().await;
        let text = format!("watch bench {n} {}", *RUN);
        let _ = sent[n].set(Instant::now());
        let request = client
            .post(&url)
            .json(&serde_json::json!({ "message": text }));
        posts.push(tokio::spawn(async move { request.send().await }));
    }
    for post in posts {
        let response = post.await??;
        anyhow::ensure!(
            response.status() == 200,
            "a POST answered {}",
            response.status()
        );
    }
    Ok(())
}

/// Where a watcher sends its request: a connection of its own, or one it shares.
enum Connection {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Connection {
    async fn http1(facade: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(facade).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self::Http1(sender))
    }

    async fn http2(
        facade: &str,
    ) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(facade).await?;
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn send(
        self,
        request: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        Ok(match self {
            Self::Http1(mut sender) => sender.send_request(request).await?,
            Self::Http2(mut sender) => sender.send_request(request).await?,
        })
    }
}

/// One watcher from the newest message on: its delay for each message, and whether they came
/// once each in seq order.
async fn watch(
    connection: Connection,
    facade: &str,
    protocol: Protocol,
    after_seq: u64,
    opened: tokio::sync::mpsc::Sender<()>,
    sent: Sent,
    expected: usize,
) -> anyhow::Result<(Vec<Duration>, bool)> {
    let request = http::Request::post(format!("http://{facade}/msglog.v1.MessageLog/Watch"));
    let request = match protocol {
        Protocol::GrpcWeb => request
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1"),
        Protocol::Connect => request
            .header("content-type", "application/connect+proto")
            .header("connect-protocol-version", "1"),
    };
    let request = request.body(Full::new(Bytes::from(grpc_frame(
        &WatchRequest { after_seq }.encode_to_vec(),
    ))))?;
    let mut body = connection.send(request).await?.into_body();
    let mut frames = GrpcWebFrames::binary();
    let mut delays = Vec::with_capacity(expected);
    let mut last_seq = 0;
    let mut in_order = true;
    let mut first = true;
    while delays.len() < expected {
        let Some(frame) = body.frame().await else {
            anyhow::bail!("the watch ended");
        };
        if let Ok(data) = frame?.into_data() {
            frames.push(&data);
        }
        while let Some(frame) = frames.next_frame() {
            let GrpcWebFrame::Message(bytes) = frame else {
                anyhow::bail!("the watch ended: {frame:?}");
            };
            let event = WatchEvent::decode(bytes.as_slice())?;
            if first {
                first = false;
                opened.send(()).await?;
            }
            if let Some(Event::Message(message)) = event.event {
                let arrived = Instant::now();
                let sent_at = message
                    .text
                    .strip_prefix("watch bench ")
                    .and_then(|rest| rest.split_once(' '))
                    .filter(|(_, run)| *run == RUN.as_str())
                    .and_then(|(n, _)| n.parse::<usize>().ok())
                    .and_then(|n| sent.get(n))
                    .and_then(OnceLock::get);
                if let Some(sent_at) = sent_at {
                    delays.push(arrived.duration_since(*sent_at));
                }
                in_order &= message.seq > last_seq;
                last_seq = message.seq;
            }
        }
    }
    Ok((delays, in_order))
}
