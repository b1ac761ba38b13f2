//! The facade as a gateway: `msglog.v1.MessageLog` over native gRPC and gRPC-web on the
//! facade's one port, on the same core as the JSON routes; the live feed fanned out to every
//! watcher, through logging restarts, stalled watchers and shutdown; paging both doors.

use std::time::{Duration, Instant};

use msglog_common::testing::{
    GrpcWebFrame, GrpcWebFrames, LogAfterStart, ServiceProcess, TempDir, closing_status,
    grpc_frame, next_grpc_web_message,
};
use msglog_proto::v1::{
    Direction, ListRequest, SendRequest, SendStatus, StoredMessage, WatchEvent, WatchRequest,
    message_log_client::MessageLogClient, watch_event::Event,
};
use prost::Message as _;
use tonic::{Code, Streaming, transport::Channel};

use crate::helpers::{
    Client, InProcess, TestApp, channel, facade_on_restartable_logging, facade_settings, fill,
    logging_settings, spawn_facade, spawn_logging_with, start_facade_binary, start_logging,
};
use crate::metrics::{Metrics, until_value};

pub(crate) async fn gateway(facade: &InProcess) -> MessageLogClient<Channel> {
    MessageLogClient::new(channel(&facade.url()).await)
}

pub(crate) async fn watch(
    client: &mut MessageLogClient<Channel>,
    after_seq: u64,
) -> Streaming<WatchEvent> {
    client
        .watch(WatchRequest { after_seq })
        .await
        .unwrap()
        .into_inner()
}

/// `Send`s `text` with no key; it must succeed.
pub(crate) async fn send(
    client: &mut MessageLogClient<Channel>,
    text: &str,
) -> msglog_proto::v1::SendResponse {
    client
        .send(SendRequest {
            text: text.to_owned(),
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The first ten messages, through `List`.
async fn first_page(client: &mut MessageLogClient<Channel>) -> msglog_proto::v1::ListResponse {
    client
        .list(ListRequest {
            cursor: 0,
            limit: 10,
            direction: Direction::Forward.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// What a watcher has been told, in order.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) messages: Vec<StoredMessage>,
    /// Each feed status received: `true` live, `false` down.
    pub(crate) feed: Vec<bool>,
    pub(crate) heartbeats: usize,
}

/// Reads events until `until` holds for what was seen (10 s at most).
pub(crate) async fn read_until(
    stream: &mut Streaming<WatchEvent>,
    seen: &mut Seen,
    until: impl Fn(&Seen) -> bool,
) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !until(seen) {
            let event = stream.message().await.unwrap().expect("the stream ended");
            record(seen, event);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not seen within 20 s; seen so far: {seen:?}"));
}

fn record(seen: &mut Seen, event: WatchEvent) {
    match event.event {
        Some(Event::Message(message)) => seen.messages.push(message),
        Some(Event::Feed(status)) => seen.feed.push(status.live),
        Some(Event::Heartbeat(_)) => seen.heartbeats += 1,
        None => panic!("an event with nothing in it"),
    }
}

fn texts_of(messages: &[StoredMessage]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

/// Seqs strictly ascending: no double, and in order.
pub(crate) fn assert_ascending(messages: &[StoredMessage]) {
    assert!(
        messages.windows(2).all(|pair| pair[0].seq < pair[1].seq),
        "seqs ascend: {:?}",
        messages.iter().map(|m| m.seq).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn send_list_and_watch_over_native_grpc_share_the_json_routes_core() {
    let app = TestApp::spawn().await;
    let mut client = gateway(&app.facade).await;

    let mut first = watch(&mut client, 0).await;
    let mut second = watch(&mut client, 0).await;
    // The first frame comes at once, before anything is stored.
    let opened = first.message().await.unwrap().unwrap();
    assert!(
        matches!(opened.event, Some(Event::Heartbeat(_))),
        "{opened:?}"
    );

    let sent = send(&mut client, "over gRPC").await;
    assert_eq!(sent.status(), SendStatus::Stored);
    assert_eq!(sent.attempts, 1);
    // The same text through the JSON door is the same message: one id rule for both.
    let (status, body) = app.client().post_message("over gRPC").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "duplicate");
    assert_eq!(body["id"], sent.id.as_str());
    let again = send(&mut client, "over gRPC").await;
    assert_eq!(again.status(), SendStatus::Duplicate);
    let (status, _) = app.client().post_message("over JSON").await;
    assert_eq!(status, 200);

    let mut seen_first = Seen::default();
    let mut seen_second = Seen::default();
    read_until(&mut first, &mut seen_first, |s| s.messages.len() == 2).await;
    read_until(&mut second, &mut seen_second, |s| s.messages.len() == 2).await;
    assert_eq!(texts_of(&seen_first.messages), ["over gRPC", "over JSON"]);
    assert_eq!(
        seen_first.messages, seen_second.messages,
        "one sequence for all"
    );
    assert_eq!(seen_first.messages[0].id, sent.id);

    let page = first_page(&mut client).await;
    assert_eq!(page.messages, seen_first.messages);
    assert_eq!(page.next_cursor, None);

    // A watcher opened after the fact gets the history from its cursor.
    let mut late = watch(&mut client, seen_first.messages[0].seq).await;
    let mut seen_late = Seen::default();
    read_until(&mut late, &mut seen_late, |s| !s.messages.is_empty()).await;
    assert_eq!(texts_of(&seen_late.messages), ["over JSON"]);
}

#[tokio::test]
async fn every_door_tells_when_each_message_was_stored_and_the_originals_route_stays_as_it_was() {
    let app = TestApp::spawn().await;
    let mut client = gateway(&app.facade).await;
    let mut watcher = watch(&mut client, 0).await;
    let before = logging_service::store::now_ms();
    send(&mut client, "first").await;
    app.client().post_message("second").await;
    // A duplicate keeps the first one's time.
    app.client().post_message("first").await;
    let after = logging_service::store::now_ms();

    let listed = first_page(&mut client).await.messages;
    assert_eq!(texts_of(&listed), ["first", "second"]);
    for message in &listed {
        assert!(
            (before..=after).contains(&message.stored_at_ms),
            "{before} <= {} <= {after}",
            message.stored_at_ms
        );
    }
    assert!(listed[0].stored_at_ms <= listed[1].stored_at_ms);
    // The same times through the JSON page and the live feed.
    assert_eq!(walk_json(&app.client(), false).await, listed);
    let mut seen = Seen::default();
    read_until(&mut watcher, &mut seen, |seen| seen.messages.len() == 2).await;
    assert_eq!(seen.messages, listed);
    // The original's list is texts only, as it was.
    let (status, body) = app.client().get_messages().await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({
            "logged_messages": ["first", "second"],
            "message_from_service": "not implemented yet"
        })
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_grpc_status() {
    let app = TestApp::spawn_with(|settings| settings.max_message_bytes = 16).await;
    let mut client = gateway(&app.facade).await;
    for (text, key, code, says) in [
        ("", "", Code::InvalidArgument, "empty"),
        ("  \n", "", Code::InvalidArgument, "empty"),
        (
            "seventeen bytes!!",
            "",
            Code::InvalidArgument,
            "limit is 16",
        ),
        ("hi", "has space", Code::InvalidArgument, "Idempotency-Key"),
    ] {
        let status = client
            .send(SendRequest {
                text: text.to_owned(),
                idempotency_key: key.to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{text:?} {key:?}: {status:?}");
        assert!(status.message().contains(says), "{status:?}");
    }
    // A key used for another text is ALREADY_EXISTS, as the JSON door's 422.
    let key = "client-key-1".to_owned();
    for (text, expected) in [("one", Ok(())), ("two", Err(Code::AlreadyExists))] {
        let result = client
            .send(SendRequest {
                text: text.to_owned(),
                idempotency_key: key.clone(),
            })
            .await;
        assert_eq!(result.map(drop).map_err(|s| s.code()), expected);
    }
    let status = client
        .list(ListRequest {
            cursor: 0,
            limit: 1001,
            direction: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("at most 1000"), "{status:?}");
    let status = client
        .list(ListRequest {
            cursor: u64::MAX,
            limit: 0,
            direction: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("a seq is at most"), "{status:?}");
    assert_eq!(app.stored().await, ["one"], "nothing invalid was stored");
}

/// Opens a gRPC-web `Watch` on the facade (binary or text), asking for gzip as a browser does.
async fn web_watch(base: &str, after_seq: u64, text: bool) -> (reqwest::Response, GrpcWebFrames) {
    let (content_type, frames) = if text {
        ("application/grpc-web-text", GrpcWebFrames::text())
    } else {
        ("application/grpc-web+proto", GrpcWebFrames::binary())
    };
    let mut body = grpc_frame(&WatchRequest { after_seq }.encode_to_vec());
    if text {
        use base64::Engine as _;
        body = base64::engine::general_purpose::STANDARD
            .encode(&body)
            .into_bytes();
    }
    let response = reqwest::Client::new()
        .post(format!("{base}/msglog.v1.MessageLog/Watch"))
        .header("content-type", content_type)
        .header("accept", content_type)
        .header("accept-encoding", "gzip, deflate, br")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert!(
        response.headers().get("content-encoding").is_none(),
        "a stream is never compressed (frames would be held back)"
    );
    (response, frames)
}

/// The next event of a gRPC-web watch, within 10 s.
async fn next_web_event(
    response: &mut reqwest::Response,
    frames: &mut GrpcWebFrames,
) -> WatchEvent {
    let bytes = next_grpc_web_message(response, frames).await;
    WatchEvent::decode(bytes.as_slice()).unwrap()
}

#[tokio::test]
async fn a_grpc_web_watch_gets_a_frame_at_once_then_history_then_each_message_live() {
    let app = TestApp::spawn().await;
    let base = app.facade.url();
    let mut posted = vec!["history".to_owned()];
    assert_eq!(app.client().post_message("history").await.0, 200);
    for text in [false, true] {
        let (mut response, mut frames) = web_watch(&base, 0, text).await;
        // The first frame is there at once: a browser's fetch resolves.
        let opened = next_web_event(&mut response, &mut frames).await;
        assert!(
            matches!(opened.event, Some(Event::Heartbeat(_))),
            "{opened:?}"
        );
        let live = format!("live over gRPC-web (text: {text})");
        assert_eq!(app.client().post_message(&live).await.0, 200);
        posted.push(live.clone());
        let mut seen = Seen::default();
        while seen.messages.last().map(|m| m.text.as_str()) != Some(live.as_str()) {
            record(&mut seen, next_web_event(&mut response, &mut frames).await);
        }
        // Everything stored so far, from the first: the history, then the live one.
        assert_eq!(texts_of(&seen.messages), posted);
        assert_ascending(&seen.messages);
    }
}

/// A binary gRPC-web `Watch` with `body` and `grpc-timeout` if given.
async fn raw_web_watch(base: &str, body: Vec<u8>, timeout: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/msglog.v1.MessageLog/Watch"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", timeout);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web+proto"
    );
    response
}

#[tokio::test]
async fn a_grpc_web_watch_catches_up_in_few_writes_and_ends_with_its_status_in_trailers() {
    let app = TestApp::spawn().await;
    let base = app.facade.url();
    let client = app.client();
    let posted: Vec<String> = (0..50).map(|n| format!("message {n}")).collect();
    for text in &posted {
        assert_eq!(client.post_message(text).await.0, 200);
    }
    // A watcher 50 messages behind gets them in a few chunks, not one write per message.
    let request = grpc_frame(&WatchRequest { after_seq: 0 }.encode_to_vec());
    let mut response = raw_web_watch(&base, request.clone(), Some("2S")).await;
    let mut frames = GrpcWebFrames::binary();
    let (mut seen, mut chunks) = (Seen::default(), 0);
    while seen.messages.len() < posted.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the history within 10 s")
            .unwrap()
            .expect("the watch ended early");
        chunks += 1;
        frames.push(&chunk);
        while let Some(frame) = frames.next_frame() {
            let GrpcWebFrame::Message(bytes) = frame else {
                panic!("the watch ended early: {frame:?}")
            };
            record(&mut seen, WatchEvent::decode(bytes.as_slice()).unwrap());
        }
    }
    assert_eq!(texts_of(&seen.messages), posted);
    assert_ascending(&seen.messages);
    assert!(chunks <= 5, "{chunks} chunks for 50 messages");
    // Its deadline (`grpc-timeout: 2S`) ends it with DEADLINE_EXCEEDED in a trailers frame.
    let started = Instant::now();
    assert_eq!(grpc_web_status(response).await, "4");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // What cannot be opened is answered trailers-only, as tonic-web answers it.
    let mut two = request.clone();
    two.extend_from_slice(&request);
    let mut compressed = request.clone();
    compressed[0] = 1;
    for (body, status) in [
        (two, "3"),
        (request[..3].to_vec(), "3"),
        (compressed, "12"),
        (grpc_frame(b"\xff\xff"), "3"),
    ] {
        let response = raw_web_watch(&base, body.clone(), None).await;
        assert_eq!(
            response
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap()),
            Some(status),
            "{body:?}: {response:?}"
        );
        assert!(response.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn heartbeats_flow_while_idle_past_the_request_timeout_and_a_closed_watcher_is_dropped() {
    // The JSON routes' request timeout is shorter than the heartbeats the test waits for: a
    // stream must not be cut by it.
    let app = TestApp::spawn_with(|settings| {
        settings.watch_heartbeat_ms = 100;
        settings.request_timeout_ms = 150;
    })
    .await;
    let client = app.client();
    let opened = Instant::now();
    let (mut response, mut frames) = web_watch(&app.facade.url(), 0, false).await;
    // Heartbeats (and, at first, the feed connecting) while nothing is stored.
    let mut seen = Seen::default();
    while seen.heartbeats < 4 {
        record(&mut seen, next_web_event(&mut response, &mut frames).await);
    }
    assert!(seen.messages.is_empty());
    assert!(
        opened.elapsed() > Duration::from_millis(250),
        "open past the request timeout"
    );
    assert_eq!(watchers(&client).await, 1);
    drop(response);
    wait_for_watchers(&client, 0).await;
}

async fn watchers(client: &Client) -> u64 {
    let (status, body) = client.get_json("/api/status").await;
    assert_eq!(status, 200);
    body["feed"]["watchers"].as_u64().unwrap()
}

/// Waits until the facade counts `expected` watchers, asking it after each answer.
async fn wait_for_watchers(client: &Client, expected: u64) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while watchers(client).await != expected {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the facade never counted {expected} watchers"));
}

/// Walks the whole list from one end to the other, one page at a time from `page(cursor)`
/// (which returns the page and the next cursor), checking each page is in seq order.
async fn walk<F, Fut>(backward: bool, mut page: F) -> Vec<StoredMessage>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = (Vec<StoredMessage>, Option<u64>)>,
{
    let mut walked = Vec::new();
    let mut cursor = 0;
    loop {
        let (messages, next) = page(cursor).await;
        assert_ascending(&messages);
        if backward {
            walked.splice(0..0, messages);
        } else {
            walked.extend(messages);
        }
        match next {
            Some(next) => cursor = next,
            None => return walked,
        }
    }
}

/// Walks the whole list through the JSON door, `GET /api/messages`.
pub(crate) async fn walk_json(client: &Client, backward: bool) -> Vec<StoredMessage> {
    let direction = if backward { "backward" } else { "forward" };
    walk(backward, |cursor| async move {
        let (status, page) = client
            .get_json(&format!(
                "/api/messages?cursor={cursor}&limit=1000&direction={direction}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| StoredMessage {
                seq: m["seq"].as_u64().unwrap(),
                id: m["id"].as_str().unwrap().to_owned(),
                text: m["text"].as_str().unwrap().to_owned(),
                // Absent when unknown, as the gRPC doors' 0.
                stored_at_ms: m["stored_at_ms"].as_u64().unwrap_or(0),
            })
            .collect();
        (messages, page["next_cursor"].as_u64())
    })
    .await
}

/// Walks the whole list through the gRPC door, `List`.
pub(crate) async fn walk_grpc(
    client: &MessageLogClient<Channel>,
    backward: bool,
) -> Vec<StoredMessage> {
    let direction = if backward {
        Direction::Backward
    } else {
        Direction::Forward
    };
    walk(backward, |cursor| {
        let mut client = client.clone();
        async move {
            let page = client
                .list(ListRequest {
                    cursor,
                    limit: 1000,
                    direction: direction.into(),
                })
                .await
                .unwrap()
                .into_inner();
            (page.messages, page.next_cursor)
        }
    })
    .await
}

async fn walk_10_000_both_ways_through_both_doors(store: &[&str]) {
    let logging =
        spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), store)).await;
    let facade = spawn_facade(facade_settings(&logging.url(), "http://127.0.0.1:9")).await;
    fill(&logging.url(), "m", 10_000).await;
    let json = Client::new(&facade);
    let grpc = gateway(&facade).await;
    let forward = walk_json(&json, false).await;
    assert_eq!(forward.len(), 10_000);
    assert_ascending(&forward);
    let mut texts = texts_of(&forward);
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 10_000, "every message once");
    assert_eq!(walk_json(&json, true).await, forward, "JSON backward");
    assert_eq!(walk_grpc(&grpc, false).await, forward, "gRPC forward");
    assert_eq!(walk_grpc(&grpc, true).await, forward, "gRPC backward");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_page_both_ways_through_both_doors_on_memory() {
    walk_10_000_both_ways_through_both_doors(&["--store", "memory"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_page_both_ways_through_both_doors_on_sqlite() {
    let dir = TempDir::new("msglog-paging");
    let store = format!("sqlite:{}", dir.join("messages.sqlite3").display());
    walk_10_000_both_ways_through_both_doors(&["--store", &store]).await;
}

#[tokio::test]
async fn a_bad_page_query_is_a_json_400_that_says_what_is_wrong() {
    let app = TestApp::spawn().await;
    for (query, says) in [
        ("limit=1001", "at most 1000"),
        ("limit=-1", "limit"),
        ("cursor=abc", "cursor"),
        // Found by schemathesis: a cursor past the largest seq was answered 200.
        ("cursor=9223372036854775808", "at most 9223372036854775807"),
        ("direction=sideways", "direction"),
    ] {
        let (status, body) = app
            .client()
            .get_json(&format!("/api/messages?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_holds_up_no_one_and_catches_up_from_logging_when_it_reads() {
    // A small buffer, so the stalled watcher falls behind it and must page from logging.
    let app = TestApp::spawn_with(|settings| settings.watch_buffer = 50).await;
    let mut client = gateway(&app.facade).await;
    let mut stalled = watch(&mut client, 0).await;
    let mut reader = watch(&mut client, 0).await;
    let mut seen = Seen::default();
    let mut posted = Vec::new();
    for n in 0..500 {
        let text = format!("m{n}");
        let (status, _) = app.client().post_message(&text).await;
        assert_eq!(status, 200);
        posted.push(text);
    }
    read_until(&mut reader, &mut seen, |s| s.messages.len() == 500).await;
    assert_eq!(texts_of(&seen.messages), posted);
    // The stalled one now reads: all of it, in order, though most left the buffer long ago.
    let mut late = Seen::default();
    read_until(&mut stalled, &mut late, |s| s.messages.len() == 500).await;
    assert_eq!(late.messages, seen.messages);
}

/// A log longer than the buffer: the facade primes the buffer with the newest messages and
/// knows where they begin, so a watcher from just before the oldest of them is served from the
/// buffer alone, with no read of logging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_from_just_before_the_buffer_is_served_from_it_without_reading_logging() {
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--store", "memory"],
    ))
    .await;
    fill(&logging.url(), "m", 30).await;
    let mut settings = facade_settings(&logging.url(), "http://127.0.0.1:9");
    settings.watch_buffer = 10;
    let facade = spawn_facade(settings).await;
    let metrics_url = format!("{}/metrics", facade.url());
    let before = until_value(&metrics_url, "feed_live", &[], 1.0).await;
    let reads = [("method", "ListMessages"), ("code", "OK")];
    let mut client = gateway(&facade).await;
    let mut stream = watch(&mut client, 20).await;
    let mut seen = Seen::default();
    read_until(&mut stream, &mut seen, |s| s.messages.len() == 10).await;
    let seqs: Vec<u64> = seen.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
    let after = Metrics::scrape(&metrics_url).await;
    assert_eq!(
        after.value("logging_calls_total", &reads),
        before.value("logging_calls_total", &reads),
        "the watcher read from logging what the buffer holds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_is_told_of_a_logging_restart_and_resumes_with_no_gap_and_no_double() {
    let dir = TempDir::new("msglog-gateway");
    let (logging, db, facade) = facade_on_restartable_logging(&dir).await;
    let addr = logging.addr;
    let json = Client::new(&facade);
    let mut client = gateway(&facade).await;
    let mut watcher = watch(&mut client, 0).await;
    let mut seen = Seen::default();
    for n in 0..20 {
        assert_eq!(json.post_message(&format!("before {n}")).await.0, 200);
    }
    read_until(&mut watcher, &mut seen, |s| s.messages.len() == 20).await;
    // (The feed may have been connecting when the watcher opened.)
    seen.feed.clear();

    logging.kill9().await;
    read_until(&mut watcher, &mut seen, |s| s.feed.last() == Some(&false)).await;
    let logging = start_logging(&db, addr).await;
    read_until(&mut watcher, &mut seen, |s| s.feed.last() == Some(&true)).await;
    for n in 0..20 {
        assert_eq!(json.post_message(&format!("after {n}")).await.0, 200);
    }
    read_until(&mut watcher, &mut seen, |s| s.messages.len() >= 40).await;
    assert_eq!(seen.messages.len(), 40, "nothing doubled");
    assert_ascending(&seen.messages);
    let expected: Vec<_> = (0..20)
        .map(|n| format!("before {n}"))
        .chain((0..20).map(|n| format!("after {n}")))
        .collect();
    assert_eq!(texts_of(&seen.messages), expected);
    assert_eq!(
        seen.feed,
        [false, true],
        "told once of the break, once of the return"
    );
    drop(logging);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_watchers_open_stops_the_facade_within_a_second() {
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let facade = start_facade_binary(
        &logging.url(),
        &["--shutdown-grace-ms", "10000"],
        LogAfterStart::Drain,
    )
    .await;
    let base = format!("http://{}", facade.addr);
    let mut client = MessageLogClient::new(channel(&base).await);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = watch(&mut client, 0).await;
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    let (mut web, mut frames) = web_watch(&base, 0, false).await;
    next_web_event(&mut web, &mut frames).await;

    let started = Instant::now();
    assert!(facade.terminate().await.success());
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

#[tokio::test]
async fn the_clients_grpc_timeout_ends_a_watch_and_bounds_a_send() {
    let app = TestApp::spawn().await;
    let mut client = gateway(&app.facade).await;
    let mut request = tonic::Request::new(WatchRequest { after_seq: 0 });
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let mut stream = client.watch(request).await.unwrap().into_inner();
    let status = closing_status(&mut stream).await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A `Send` to a logging that never answers ends at the client's deadline, well before
    // the facade's own retries would give up.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let facade = spawn_facade(facade_settings(
        &format!("http://{}", silent.local_addr().unwrap()),
        "http://127.0.0.1:9",
    ))
    .await;
    // Over gRPC-web: a gRPC client library would end the call itself at its deadline.
    let body = grpc_frame(
        &SendRequest {
            text: "in a hurry".to_owned(),
            idempotency_key: String::new(),
        }
        .encode_to_vec(),
    );
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/msglog.v1.MessageLog/Send", facade.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("grpc-timeout", "200m")
        .body(body)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(
        response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap()),
        Some("4"),
        "{response:?}"
    );
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
}

/// The `grpc-status` of a gRPC-web answer: in its headers (trailers only) or its trailer frame.
async fn grpc_web_status(response: reqwest::Response) -> String {
    if let Some(status) = response.headers().get("grpc-status") {
        return status.to_str().unwrap().to_owned();
    }
    let mut frames = GrpcWebFrames::binary();
    frames.push(&response.bytes().await.unwrap());
    while let Some(frame) = frames.next_frame() {
        if let msglog_common::testing::GrpcWebFrame::Trailers(trailers) = frame {
            return trailers
                .lines()
                .find_map(|line| line.strip_prefix("grpc-status:"))
                .unwrap()
                .trim()
                .to_owned();
        }
    }
    panic!("no grpc-status")
}

#[tokio::test]
async fn a_call_that_takes_one_message_refuses_a_second_and_stores_neither() {
    let app = TestApp::spawn().await;
    let message = |text: &str| {
        grpc_frame(
            &SendRequest {
                text: text.to_owned(),
                idempotency_key: String::new(),
            }
            .encode_to_vec(),
        )
    };
    let mut body = message("first of two");
    body.extend(message("second of two"));
    let response = app
        .http
        .post(app.url("/msglog.v1.MessageLog/Send"))
        .header("content-type", "application/grpc-web+proto")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(grpc_web_status(response).await, "3", "INVALID_ARGUMENT");
    // The same message alone is taken.
    let response = app
        .http
        .post(app.url("/msglog.v1.MessageLog/Send"))
        .header("content-type", "application/grpc-web+proto")
        .body(message("alone"))
        .send()
        .await
        .unwrap();
    assert_eq!(grpc_web_status(response).await, "0");
    assert_eq!(app.stored().await, ["alone"]);
}

#[tokio::test]
async fn status_over_grpc_says_what_the_json_status_says() {
    let app = TestApp::spawn().await;
    let mut client = gateway(&app.facade).await;
    let _watcher = watch(&mut client, 0).await;
    let status = client
        .status(msglog_proto::v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let (_, json) = app.client().get_json("/api/status").await;
    for (service, state) in [
        ("facade", &status.facade),
        ("logging", &status.logging),
        ("messages", &status.messages),
    ] {
        let state = state.as_ref().unwrap();
        assert_eq!(json[service]["up"], state.up, "{service}");
        assert_eq!(json[service]["detail"], state.detail.as_str(), "{service}");
    }
    assert_eq!(status.messages.unwrap().detail, "not implemented yet");
    assert_eq!(status.feed.unwrap().watchers, 1);
    assert_eq!(json["feed"]["watchers"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watchers_keep_the_facades_memory_bounded_and_read_everything_later() {
    const STALLED: usize = 10;
    const MESSAGES: usize = 2000;
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let facade = start_facade_binary(
        &logging.url(),
        &["--watch-buffer", "100"],
        LogAfterStart::Drain,
    )
    .await;
    let base = format!("http://{}", facade.addr);
    // Each watcher on its own connection with the smallest flow-control windows: once 64 KiB
    // are in flight the facade may send it nothing more until it reads.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let channel = Channel::from_shared(base.clone())
            .unwrap()
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .unwrap();
        let mut stream = watch(&mut MessageLogClient::new(channel), 0).await;
        stream.message().await.unwrap().unwrap();
        stalled.push(stream);
    }
    let before = facade.rss_kib();
    // 2,000 messages of 4 KiB: 8 MB that each stalled watcher would hold if it buffered all.
    let client = Client {
        base: base.clone(),
        http: reqwest::Client::new(),
    };
    let posts: Vec<_> = (0..16)
        .map(|worker| {
            let client = Client {
                base: client.base.clone(),
                http: client.http.clone(),
            };
            tokio::spawn(async move {
                for n in (worker..MESSAGES).step_by(16) {
                    let text = format!("{n:05} {}", "x".repeat(4090));
                    assert_eq!(client.post_message(&text).await.0, 200);
                }
            })
        })
        .collect();
    for post in posts {
        post.await.unwrap();
    }
    let grown_mib = facade.rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 24,
        "the facade grew by {grown_mib} MiB with {STALLED} stalled watchers; unbounded, they \
         would hold {} MiB",
        STALLED * MESSAGES * 4 / 1024
    );
    // Each now reads everything: once, in order, most of it caught up from logging.
    for mut stream in stalled {
        let mut seen = Seen::default();
        read_until(&mut stream, &mut seen, |s| s.messages.len() >= MESSAGES).await;
        assert_eq!(seen.messages.len(), MESSAGES);
        assert_ascending(&seen.messages);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_on_the_facade_are_one_watch_on_logging() {
    let dir = TempDir::new("msglog-fanout");
    let logging = ServiceProcess::start(
        env!("CARGO_BIN_EXE_logging"),
        [
            "--addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            format!("--store=sqlite:{}", dir.join("messages.sqlite3").display()),
        ],
        LogAfterStart::Capture,
    )
    .await;
    let facade = spawn_facade(facade_settings(
        &format!("http://{}", logging.addr),
        "http://127.0.0.1:9",
    ))
    .await;
    let mut client = gateway(&facade).await;
    let mut watchers = Vec::new();
    for _ in 0..20 {
        watchers.push(watch(&mut client, 0).await);
    }
    let (mut web, mut frames) = web_watch(&facade.url(), 0, true).await;
    assert_eq!(Client::new(&facade).post_message("to all").await.0, 200);
    for watcher in &mut watchers {
        let mut seen = Seen::default();
        read_until(watcher, &mut seen, |s| !s.messages.is_empty()).await;
        assert_eq!(texts_of(&seen.messages), ["to all"]);
    }
    let mut seen = Seen::default();
    while seen.messages.is_empty() {
        record(&mut seen, next_web_event(&mut web, &mut frames).await);
    }
    logging
        .wait_for_log_line(|line| line.contains("watcher opened"))
        .await;
    let opened = logging
        .log_lines()
        .iter()
        .filter(|line| line.contains("watcher opened"))
        .count();
    assert_eq!(opened, 1, "21 watchers on the facade, one watch on logging");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logging_that_comes_back_empty_ends_the_watchers_of_the_old_log() {
    // Memory stores: a restarted logging holds a new, empty log whose seqs start again at 1.
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let addr = logging.addr;
    let facade = spawn_facade(facade_settings(&logging.url(), "http://127.0.0.1:9")).await;
    let json = Client::new(&facade);
    for n in 0..5 {
        assert_eq!(json.post_message(&format!("old {n}")).await.0, 200);
    }
    let mut client = gateway(&facade).await;
    let mut watcher = watch(&mut client, 0).await;
    let mut seen = Seen::default();
    read_until(&mut watcher, &mut seen, |s| s.messages.len() == 5).await;

    logging.stop().await;
    let _logging = spawn_logging_with(&logging_settings(addr, &[])).await;
    // The old log's cursors mean nothing in the new one: the watcher is ended, and says why.
    let status = closing_status(&mut watcher).await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("replaced"), "{status:?}");
    // A new watcher follows the new log.
    let mut fresh = watch(&mut client, 0).await;
    assert_eq!(json.post_message("new 0").await.0, 200);
    let mut seen = Seen::default();
    read_until(&mut fresh, &mut seen, |s| !s.messages.is_empty()).await;
    assert_eq!(texts_of(&seen.messages), ["new 0"]);
    assert_eq!(seen.messages[0].seq, 1);
}
