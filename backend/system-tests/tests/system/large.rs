//! Anything that can be stored can be read: a log of the largest messages the settings allow is
//! read whole through every door (the original's list, the JSON pages, gRPC `List` both ways,
//! a gRPC `Watch` from the first message), and a facade started afterwards brings its live
//! feed up over it. Pages end early by bytes and say where to go on.

use msglog_common::testing::TempDir;
use tokio::task::JoinSet;

use crate::{
    gateway::{Seen, assert_ascending, gateway, read_until, send, walk_grpc, walk_json, watch},
    helpers::{
        Client, facade_settings, logging_settings, spawn_facade, spawn_logging_with, spawn_messages,
    },
};

/// The largest text the default settings allow.
const LARGEST: usize = facade_service::DEFAULT_MAX_MESSAGE_BYTES;
/// Enough of them to pass every decoding limit that once broke the list (4 MiB) three times.
const COUNT: usize = 200;

/// Text `n` of the largest size: its number, then filler.
fn largest_text(n: usize) -> String {
    let mut text = format!("{n:04} ");
    text.extend(std::iter::repeat_n('x', LARGEST - text.len()));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_the_largest_messages_is_read_through_every_door_and_by_a_new_facades_feed() {
    let dir = TempDir::new("msglog-large");
    let store = format!("sqlite:{}", dir.join("messages.sqlite3").display());
    let logging = spawn_logging_with(&logging_settings(
        "127.0.0.1:0".parse().unwrap(),
        &["--store", &store],
    ))
    .await;
    let messages = spawn_messages().await;
    let first = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;

    // Posted as users post them, eight at a time.
    let mut posts = JoinSet::new();
    for n in 0..COUNT {
        let client = Client::new(&first);
        posts.spawn(async move { (n, client.post_message(&largest_text(n)).await) });
        if posts.len() == 8 {
            let (n, (status, body)) = posts.join_next().await.unwrap().unwrap();
            assert_eq!(
                (status, body["status"].as_str()),
                (200, Some("success")),
                "{n}"
            );
        }
    }
    while let Some(done) = posts.join_next().await {
        let (n, (status, body)) = done.unwrap();
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("success")),
            "{n}"
        );
    }
    let mut expected: Vec<String> = (0..COUNT).map(largest_text).collect();
    expected.sort();
    let sorted = |mut texts: Vec<String>| {
        texts.sort();
        texts
    };

    // The original's route: the whole list in one answer, read page by page behind it.
    let json = Client::new(&first);
    assert!(sorted(json.stored().await) == expected, "GET /get_messages");

    // The JSON pages and gRPC `List`, both ways, asking for 1000 a page: each page stops at
    // its byte budget and gives the cursor of the next.
    let paged = walk_json(&json, false).await;
    assert_eq!(paged.len(), COUNT);
    assert_ascending(&paged);
    assert!(
        sorted(paged.iter().map(|m| m.text.clone()).collect()) == expected,
        "JSON forward"
    );
    let (status, page) = json.get_json("/api/messages?limit=1000").await;
    assert_eq!(status, 200, "{page}");
    let on_one_page = page["messages"].as_array().unwrap().len();
    assert!(
        on_one_page > 1 && on_one_page < COUNT && page["next_cursor"].is_u64(),
        "a page ends at its byte budget and says where to go on: {on_one_page} messages"
    );
    assert!(walk_json(&json, true).await == paged, "JSON backward");
    let grpc = gateway(&first).await;
    assert!(walk_grpc(&grpc, false).await == paged, "gRPC forward");
    assert!(walk_grpc(&grpc, true).await == paged, "gRPC backward");

    // A facade started now (as after a restart) follows logging's feed over the whole log:
    // a watcher from the first message gets every one, then a new one live.
    first.stop().await;
    let second = spawn_facade(facade_settings(&logging.url(), &messages.url())).await;
    let mut client = gateway(&second).await;
    let mut stream = watch(&mut client, 0).await;
    let mut seen = Seen::default();
    read_until(&mut stream, &mut seen, |seen| seen.messages.len() == COUNT).await;
    assert!(seen.messages == paged, "the watcher's history");
    send(&mut client, &largest_text(COUNT)).await;
    read_until(&mut stream, &mut seen, |seen| {
        seen.messages.len() == COUNT + 1
    })
    .await;
    assert_eq!(seen.messages[COUNT].text, largest_text(COUNT));
    let (status, state) = Client::new(&second).get_json("/api/status").await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["feed"]["live"], true, "{state}");
}
