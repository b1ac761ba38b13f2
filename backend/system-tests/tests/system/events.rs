//! `GET /api/messages/watch`: the live feed as server-sent events, read as `curl -N` reads it
//! (the raw stream, parsed here by the rules of the `text/event-stream` format): the history
//! after a cursor, then live messages; a resumption with `Last-Event-ID` with no gap and no
//! double; heartbeats while idle; the feed's breaks as `feed` events; a stream that ends after
//! its catch-up; the per-client share of live feeds; and the end when the facade stops.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use msglog_common::testing::TempDir;
use msglog_proto::{
    api::{ErrorBody, FeedEvent, MAX_SEQ, PagedMessage},
    v1::{WatchRequest, message_log_client::MessageLogClient},
};

use crate::helpers::{
    Client, TestApp, facade_on_restartable_logging, facade_settings, logging_settings,
    spawn_facade, spawn_logging_with, start_logging,
};

/// One block of a `text/event-stream`: an event, or a comment alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    comment: Option<String>,
}

impl Sse {
    /// The data as `T`.
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(self.data.as_deref().expect("an event with data")).unwrap()
    }
}

/// A `text/event-stream` being read, block by block.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// `GET` `url` (with `Last-Event-ID: last` when given); it must answer 200 with an event
    /// stream that proxies must not buffer.
    async fn open(http: &reqwest::Client, url: &str, last: Option<&str>) -> Self {
        let mut request = http.get(url);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        assert_eq!(response.headers()["x-accel-buffering"], "no");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "an event stream is never compressed (it would be held back)"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next block, or `None` when the stream ended (within 10 s).
    async fn next(&mut self) -> Option<Sse> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    return Some(parse(&block));
                }
                let chunk = self.response.chunk().await.unwrap()?;
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("a block or the stream's end within 10 s")
    }

    /// The next event that is not a comment alone.
    async fn next_event(&mut self) -> Sse {
        loop {
            let block = self.next().await.expect("the stream ended");
            if block.comment.is_none() || block.data.is_some() {
                return block;
            }
        }
    }

    /// The next `count` messages.
    async fn messages(&mut self, count: usize) -> Vec<(String, PagedMessage)> {
        let mut messages = Vec::new();
        while messages.len() < count {
            let event = self.next_event().await;
            if event.event.is_none() {
                messages.push((event.id.clone().expect("a message has an id"), event.json()));
            }
        }
        messages
    }
}

/// One block by the format's rules (`field: value` lines; a line starting with `:` is a
/// comment; `data` lines join with newlines).
fn parse(block: &str) -> Sse {
    let mut sse = Sse::default();
    for line in block.lines().filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix(':') {
            sse.comment = Some(comment.trim_start().to_owned());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => sse.id = Some(value),
            "event" => sse.event = Some(value),
            "data" => {
                sse.data = Some(match sse.data.take() {
                    Some(data) => format!("{data}\n{value}"),
                    None => value,
                });
            }
            other => panic!("an unknown field {other:?} in {block:?}"),
        }
    }
    sse
}

fn texts(messages: &[(String, PagedMessage)]) -> Vec<String> {
    messages.iter().map(|(_, m)| m.text.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_the_cursor_then_live_messages_and_a_resumption_with_no_gap_or_double() {
    let app = TestApp::spawn().await;
    let json = app.client();
    for n in 0..5 {
        assert_eq!(json.post_message(&format!("m{n}")).await.0, 200);
    }
    let url = format!("{}/api/messages/watch", app.facade.url());
    let mut stream = Stream::open(&app.http, &format!("{url}?after=2"), None).await;
    // A heartbeat at once, so a client knows the stream is open before any message.
    assert_eq!(
        stream
            .next()
            .await
            .and_then(|block| block.comment)
            .as_deref(),
        Some("heartbeat")
    );
    let history = stream.messages(3).await;
    assert_eq!(texts(&history), ["m2", "m3", "m4"]);
    for (id, message) in &history {
        assert_eq!(id, &message.seq.to_string(), "the event id is the seq");
        assert!(message.stored_at_ms.is_some_and(|at| at > 0));
        assert_eq!(message.id.len(), 36, "a UUID");
    }
    for n in 5..7 {
        assert_eq!(json.post_message(&format!("m{n}")).await.0, 200);
    }
    let live = stream.messages(2).await;
    assert_eq!(texts(&live), ["m5", "m6"]);
    let last = live[1].0.clone();

    // The client goes away; two messages are stored while it is gone.
    drop(stream);
    for n in 7..9 {
        assert_eq!(json.post_message(&format!("m{n}")).await.0, 200);
    }
    // It comes back as EventSource does: with the last id it got, which wins over `after`.
    let mut stream = Stream::open(&app.http, &format!("{url}?after=0"), Some(&last)).await;
    assert_eq!(texts(&stream.messages(2).await), ["m7", "m8"]);
    assert_eq!(json.post_message("m9").await.0, 200);
    assert_eq!(texts(&stream.messages(1).await), ["m9"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_follow_the_stream_ends_after_what_was_stored_when_it_opened() {
    let app = TestApp::spawn().await;
    let json = app.client();
    for n in 0..3 {
        assert_eq!(json.post_message(&format!("m{n}")).await.0, 200);
    }
    let url = format!("{}/api/messages/watch", app.facade.url());
    // The facade's feed has the three (its status says so) before the catch-up is asked for.
    wait_for_newest(&json, 3).await;
    let mut stream = Stream::open(&app.http, &format!("{url}?follow=false"), None).await;
    assert_eq!(texts(&stream.messages(3).await), ["m0", "m1", "m2"]);
    assert_eq!(stream.next().await, None, "the stream ends after the third");
    // From the newest: nothing to send, and it ends at once.
    let mut stream = Stream::open(&app.http, &format!("{url}?after=3&follow=false"), None).await;
    let mut blocks = Vec::new();
    while let Some(block) = stream.next().await {
        blocks.push(block);
    }
    assert!(
        blocks.iter().all(|block| block.data.is_none()),
        "{blocks:?}"
    );
}

/// Waits until the facade's live feed knows of seq `newest`.
async fn wait_for_newest(json: &Client, newest: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (_, status) = json.get_json("/api/status").await;
            if status["feed"]["newest_seq"] == newest {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the feed caught up within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_is_not_a_seq_is_a_json_400_that_says_so() {
    let app = TestApp::spawn().await;
    let url = format!("{}/api/messages/watch", app.facade.url());
    for (query, last, says) in [
        ("", Some("abc"), "Last-Event-ID"),
        ("", Some("-1"), "Last-Event-ID"),
        ("?after=abc", None, "after"),
        ("?after=-1", None, "after"),
        ("?follow=maybe", None, "follow"),
        (&format!("?after={}", MAX_SEQ + 1)[..], None, "largest seq"),
    ] {
        let mut request = app.http.get(format!("{url}{query}"));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{query} {last:?}");
        let body: ErrorBody = response.json().await.unwrap();
        assert!(
            body.error.contains(says),
            "{query} {last:?}: {}",
            body.error
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_gets_a_heartbeat_comment_at_each_interval() {
    let app = TestApp::spawn_with(|settings| settings.watch_heartbeat_ms = 100).await;
    let url = format!("{}/api/messages/watch", app.facade.url());
    let mut stream = Stream::open(&app.http, &url, None).await;
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let block = stream.next().await.expect("a block");
        // (The feed may be connecting when the stream opens: `feed` events may come between.)
        if block.event.as_deref() == Some("feed") {
            continue;
        }
        assert_eq!(block.comment.as_deref(), Some("heartbeat"), "{block:?}");
        assert_eq!(block.data, None);
        heartbeats += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feeds_break_and_return_are_feed_events_and_nothing_is_missed() {
    let dir = TempDir::new("msglog-events");
    let (logging, db, facade) = facade_on_restartable_logging(&dir).await;
    let addr = logging.addr;
    let json = Client::new(&facade);
    let http = reqwest::Client::new();
    let mut stream =
        Stream::open(&http, &format!("{}/api/messages/watch", facade.url()), None).await;
    assert_eq!(json.post_message("before").await.0, 200);
    assert_eq!(texts(&stream.messages(1).await), ["before"]);

    logging.kill9().await;
    let broke = stream.next_event().await;
    assert_eq!(broke.event.as_deref(), Some("feed"), "{broke:?}");
    let feed: FeedEvent = broke.json();
    assert!(!feed.live);
    assert!(!feed.detail.is_empty(), "it says why");

    let _logging = start_logging(&db, addr).await;
    let back = stream.next_event().await;
    assert_eq!(back.event.as_deref(), Some("feed"), "{back:?}");
    assert_eq!(
        back.json::<FeedEvent>(),
        FeedEvent {
            live: true,
            detail: String::new()
        }
    );
    assert_eq!(json.post_message("after").await.0, 200);
    assert_eq!(texts(&stream.messages(1).await), ["after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_and_grpc_watches_share_one_clients_share_of_live_feeds() {
    let app = TestApp::spawn_with(|settings| {
        settings.limit_loopback = true;
        settings.max_watches_per_client = 2;
    })
    .await;
    let url = format!("{}/api/messages/watch", app.facade.url());
    let _first = Stream::open(&app.http, &url, None).await;
    let mut grpc = MessageLogClient::new(crate::helpers::channel(&app.facade.url()).await);
    let _second = grpc.watch(WatchRequest { after_seq: 0 }).await.unwrap();
    let refused = app.http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: ErrorBody = refused.json().await.unwrap();
    assert!(
        body.error.contains("--max-watches-per-client"),
        "{}",
        body.error
    );
    // Another address has its own share.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let _third = Stream::open(&other, &url, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_facade_ends_its_event_streams_at_once_with_an_end_event() {
    let logging = spawn_logging_with(&logging_settings("127.0.0.1:0".parse().unwrap(), &[])).await;
    let facade = spawn_facade(facade_settings(&logging.url(), "http://127.0.0.1:9")).await;
    let http = reqwest::Client::new();
    let mut stream =
        Stream::open(&http, &format!("{}/api/messages/watch", facade.url()), None).await;
    assert!(stream.next().await.is_some(), "the opening heartbeat");
    let stopping = tokio::spawn(facade.stop());
    let started = std::time::Instant::now();
    // (The feed may have been connecting when the stream opened: `feed` events come first.)
    let end = loop {
        let event = stream.next_event().await;
        if event.event.as_deref() != Some("feed") {
            break event;
        }
    };
    assert_eq!(end.event.as_deref(), Some("end"), "{end:?}");
    assert_eq!(end.json::<ErrorBody>().code.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(
        stream.next().await,
        None,
        "the stream closes after its end event"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    stopping.await.unwrap();
}
