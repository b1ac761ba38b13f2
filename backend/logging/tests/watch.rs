//! `WatchMessages` on a real server: history then live messages, over gRPC and gRPC-web; a
//! heartbeat at once and while idle; a stalled watcher that holds up no writer; and streams
//! that end at once, with a status, when the service stops or their deadline passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use msglog_common::testing::{
    GrpcWebFrames, LogAfterStart, ServiceProcess, closing_status, grpc_frame, next_grpc_web_message,
};
use msglog_proto::logging::{
    LoggedMessage, WatchMessagesRequest, WatchMessagesResponse,
    logging_service_client::LoggingServiceClient,
};
use prost::Message as _;
use tonic::{Code, Streaming, transport::Channel};

mod support;
use support::{TestLogging, log_request, settings};

/// Stores `texts` in order, ids 1.., one call at a time.
async fn store_all(client: &mut LoggingServiceClient<Channel>, first_id: u128, texts: &[String]) {
    for (n, text) in texts.iter().enumerate() {
        let id = uuid::Uuid::from_u128(first_id + n as u128).to_string();
        client.log_message(log_request(&id, text)).await.unwrap();
    }
}

fn texts(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}{n}")).collect()
}

/// Reads frames until `count` messages have come (heartbeats skipped), within 10 s.
async fn take_messages(
    stream: &mut Streaming<WatchMessagesResponse>,
    count: usize,
) -> Vec<LoggedMessage> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < count {
            let frame = stream.message().await.unwrap().expect("the stream ended");
            got.extend(frame.messages);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {count} messages came", got.len()));
    assert_eq!(got.len(), count, "no more than asked for");
    got
}

fn assert_in_order_from(messages: &[LoggedMessage], after_seq: u64, texts: &[String]) {
    let got: Vec<_> = messages.iter().map(|m| m.message.clone()).collect();
    assert_eq!(got, texts);
    // Memory seqs are positions: contiguous from the cursor, so no gap and no double.
    let seqs: Vec<_> = messages.iter().map(|m| m.seq).collect();
    let expected: Vec<_> = (after_seq + 1..=after_seq + texts.len() as u64).collect();
    assert_eq!(seqs, expected);
}

async fn watch(
    client: &mut LoggingServiceClient<Channel>,
    after_seq: u64,
) -> Streaming<WatchMessagesResponse> {
    client
        .watch_messages(WatchMessagesRequest { after_seq })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_watcher_gets_the_history_then_each_new_message_in_order() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;
    // More than one frame's worth of history.
    let history = texts("old", 600);
    store_all(&mut client, 1, &history).await;

    let mut from_start = watch(&mut client, 0).await;
    let mut from_middle = watch(&mut client, 250).await;
    let got = take_messages(&mut from_start, 600).await;
    assert_in_order_from(&got, 0, &history);
    let got = take_messages(&mut from_middle, 350).await;
    assert_in_order_from(&got, 250, &history[250..]);

    let live = texts("new", 20);
    let writer = {
        let mut client = client.clone();
        let live = live.clone();
        tokio::spawn(async move { store_all(&mut client, 1000, &live).await })
    };
    let first = take_messages(&mut from_start, 20).await;
    let second = take_messages(&mut from_middle, 20).await;
    writer.await.unwrap();
    assert_in_order_from(&first, 600, &live);
    assert_eq!(first, second, "two watchers see one sequence");
}

#[tokio::test]
async fn the_first_frame_comes_at_once_and_heartbeats_while_idle() {
    let server = TestLogging::start_with(settings(&["--watch-heartbeat-ms", "100"])).await;
    let mut client = server.client().await;
    let mut stream = watch(&mut client, 0).await;
    let opened = stream.message().await.unwrap().unwrap();
    assert!(opened.messages.is_empty());
    assert_eq!(opened.newest_seq, 0);
    let started = Instant::now();
    for _ in 0..3 {
        let beat = stream.message().await.unwrap().unwrap();
        assert!(beat.messages.is_empty(), "nothing was stored");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "heartbeats are spaced by the interval, not sent in a loop"
    );
    client
        .log_message(log_request(&uuid::Uuid::from_u128(1).to_string(), "hi"))
        .await
        .unwrap();
    let got = take_messages(&mut stream, 1).await;
    assert_eq!(got[0].message, "hi");
    let beat = stream.message().await.unwrap().unwrap();
    assert_eq!(beat.newest_seq, 1, "a heartbeat carries the newest seq");
}

#[tokio::test]
async fn a_watch_over_grpc_web_streams_each_frame_as_it_comes() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;
    store_all(&mut client, 1, &texts("old", 3)).await;
    for text in [false, true] {
        let (content_type, mut frames) = if text {
            ("application/grpc-web-text", GrpcWebFrames::text())
        } else {
            ("application/grpc-web+proto", GrpcWebFrames::binary())
        };
        let mut body = grpc_frame(&WatchMessagesRequest { after_seq: 1 }.encode_to_vec());
        if text {
            use base64::Engine as _;
            body = base64::engine::general_purpose::STANDARD
                .encode(&body)
                .into_bytes();
        }
        let mut response = reqwest::Client::new()
            .post(format!("{}/LoggingService/WatchMessages", server.url()))
            .header("content-type", content_type)
            .header("accept", content_type)
            .header("x-grpc-web", "1")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), http::Version::HTTP_11);
        assert_eq!(response.status(), 200);
        let first = next_message(&mut response, &mut frames).await;
        let seqs: Vec<_> = first.messages.iter().map(|m| m.seq).collect();
        // History after the cursor (with the previous round's live message).
        let expected: Vec<u64> = (2..=3 + u64::from(text)).collect();
        assert_eq!(seqs, expected, "history after the cursor");
        // A live message arrives while the call is still open.
        let id = uuid::Uuid::from_u128(100 + u128::from(text)).to_string();
        let posted = format!("live (text: {text})");
        client.log_message(log_request(&id, &posted)).await.unwrap();
        let live = next_message(&mut response, &mut frames).await;
        assert_eq!(live.messages[0].message, posted);
    }
}

/// The next message frame of a gRPC-web watch (heartbeats skipped), within 10 s.
async fn next_message(
    response: &mut reqwest::Response,
    frames: &mut GrpcWebFrames,
) -> WatchMessagesResponse {
    loop {
        let bytes = next_grpc_web_message(response, frames).await;
        let frame = WatchMessagesResponse::decode(bytes.as_slice()).unwrap();
        if !frame.messages.is_empty() {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_holds_up_no_writer_and_catches_up_from_the_store() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;
    // Opened, then never read while the writers run: its flow-control window fills.
    let mut stalled = watch(&mut client, 0).await;
    let all = texts("m", 3000);
    let writers: Vec<_> = all
        .chunks(100)
        .enumerate()
        .map(|(n, chunk)| {
            let mut client = client.clone();
            let chunk = chunk.to_vec();
            tokio::spawn(async move { store_all(&mut client, 1 + 100 * n as u128, &chunk).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(30), async {
        for writer in writers {
            writer.await.unwrap();
        }
    })
    .await
    .expect("the writers finish while the watcher is stalled");
    // It then reads everything, in seq order, from the store.
    let got = take_messages(&mut stalled, 3000).await;
    let seqs: Vec<_> = got.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=3000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_watch_ends_with_deadline_exceeded_when_its_grpc_timeout_passes() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;
    let mut request = tonic::Request::new(WatchMessagesRequest { after_seq: 0 });
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let mut stream = client.watch_messages(request).await.unwrap().into_inner();
    let status = closing_status(&mut stream).await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_watch_on_a_stopping_service_ends_with_unavailable() {
    let server = TestLogging::start().await;
    let mut client = server.client().await;
    let mut stream = watch(&mut client, 0).await;
    stream.message().await.unwrap().unwrap();
    let stopped = tokio::spawn(server.stop());
    let status = closing_status(&mut stream).await;
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("resume"), "{}", status.message());
    stopped.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_watchers_open_stops_the_binary_within_a_second() {
    let logging = ServiceProcess::start(
        env!("CARGO_BIN_EXE_logging-service"),
        [
            "--addr",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--shutdown-grace-ms",
            "10000",
        ],
        LogAfterStart::Drain,
    )
    .await;
    let channel = Channel::from_shared(format!("http://{}", logging.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = LoggingServiceClient::new(channel);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = watch(&mut client, 0).await;
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    // And one over gRPC-web (HTTP/1.1), opened and read to its first frame.
    let mut web = reqwest::Client::new()
        .post(format!(
            "http://{}/LoggingService/WatchMessages",
            logging.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(grpc_frame(
            &WatchMessagesRequest { after_seq: 0 }.encode_to_vec(),
        ))
        .send()
        .await
        .unwrap();
    web.chunk().await.unwrap().unwrap();

    let started = Instant::now();
    assert!(logging.terminate().await.success());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "stopped in {took:?} with watchers open; the grace period is 10 s"
    );
    for mut stream in streams {
        let status = closing_status(&mut stream).await;
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
}
