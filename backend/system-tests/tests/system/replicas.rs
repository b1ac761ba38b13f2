//! The facade in front of several logging replicas on one Redis: a replica killed while POSTs
//! run loses and doubles nothing, and a watcher's feed moves to another replica with no gap and
//! no double. Each test runs its own `redis-server` and real logging processes (skipped, saying
//! why, where Redis is not installed, except under `scripts/test.sh`).

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use msglog_common::testing::{LogAfterStart, RedisServer, ServiceProcess};
use msglog_proto::v1::{
    SendRequest, WatchRequest, message_log_client::MessageLogClient, watch_event::Event,
};
use tonic::transport::Channel;

use crate::helpers::{
    Client, InProcess, concurrently, facade_settings, spawn_facade, spawn_messages,
};

/// A logging replica (the real binary) on `redis`, at `addr` (port 0 for any).
async fn start_replica(redis: &RedisServer, addr: SocketAddr) -> ServiceProcess {
    ServiceProcess::start(
        env!("CARGO_BIN_EXE_logging"),
        [
            "--addr".to_owned(),
            addr.to_string(),
            format!("--store={}", redis.url()),
        ],
        LogAfterStart::Drain,
    )
    .await
}

/// A facade (in this process) in front of `replicas`, checking their health every 50 ms, and
/// the messages service it asks.
async fn facade_over(replicas: &[&ServiceProcess]) -> (InProcess, InProcess) {
    let messages = spawn_messages().await;
    let urls: Vec<String> = replicas
        .iter()
        .map(|replica| format!("http://{}", replica.addr))
        .collect();
    let mut settings = facade_settings(&urls[0], &messages.url());
    settings.logging_urls = urls;
    settings.logging_health_ms = 50;
    (spawn_facade(settings).await, messages)
}

/// A worker's answers: which POST, its status and its body.
type Answers = tokio::task::JoinHandle<Vec<(usize, u16, serde_json::Value)>>;

/// POSTs `message 0` .. `message {posts - 1}` through `client`, `concurrency` at a time, in
/// the background: the workers, and a count of the answers so far, `(200s, others)`.
fn post_concurrently(
    client: &Arc<Client>,
    posts: usize,
    concurrency: usize,
) -> (Vec<Answers>, tokio::sync::watch::Receiver<(usize, usize)>) {
    let client = Arc::clone(client);
    concurrently(
        posts,
        concurrency,
        move |n| {
            let client = Arc::clone(&client);
            async move {
                let (status, body) = client.post_message(&format!("message {n}")).await;
                (n, status, body)
            }
        },
        |(ok, other), (_, status, _)| {
            if *status == 200 {
                *ok += 1;
            } else {
                *other += 1;
            }
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_posts_run_loses_and_doubles_nothing() {
    const POSTS: usize = 2_000;
    const CONCURRENCY: usize = 32;
    let Some(redis) = RedisServer::start_if_installed().await else {
        return;
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let first = start_replica(&redis, any).await;
    let doomed = start_replica(&redis, any).await;
    let third = start_replica(&redis, any).await;
    let (facade, _messages) = facade_over(&[&first, &doomed, &third]).await;
    let client = Arc::new(Client::new(&facade));

    let (workers, mut answered) = post_concurrently(&client, POSTS, CONCURRENCY);

    // A quarter of the way, one replica dies: no chance to finish or answer anything.
    answered
        .wait_for(|(ok, other)| ok + other >= POSTS / 4)
        .await
        .unwrap();
    doomed.kill9().await;

    let mut failed = Vec::new();
    for worker in workers {
        for (n, status, body) in worker.await.unwrap() {
            if status != 200 {
                failed.push((n, status, body));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {POSTS} POSTs failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );

    // Every message stored once, whichever replica is asked.
    let (status, listed) = client.get_messages().await;
    assert_eq!(status, 200);
    let listed: Vec<String> = serde_json::from_value(listed["logged_messages"].clone()).unwrap();
    assert_eq!(listed.len(), POSTS, "stored {} messages", listed.len());
    let distinct: BTreeSet<&String> = listed.iter().collect();
    let expected: Vec<String> = (0..POSTS).map(|n| format!("message {n}")).collect();
    assert_eq!(distinct, expected.iter().collect::<BTreeSet<_>>());
    drop(first);
    drop(third);
}

/// Reads `stream` until `count` messages came, each as `(seq, text)`.
async fn watched(
    stream: &mut tonic::Streaming<msglog_proto::v1::WatchEvent>,
    count: usize,
) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen.len() < count {
            let event = stream.message().await.unwrap().expect("the watch goes on");
            if let Some(Event::Message(message)) = event.event {
                seen.push((message.seq, message.text));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {count} messages came: {seen:?}", seen.len()));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchers_feed_moves_to_another_replica_with_no_gap_or_double() {
    let Some(redis) = RedisServer::start_if_installed().await else {
        return;
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start_replica(&redis, any).await;
    let b = start_replica(&redis, any).await;
    let a_addr = a.addr;
    let (facade, _messages) = facade_over(&[&a, &b]).await;
    let channel = Channel::from_shared(facade.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = MessageLogClient::new(channel);
    let mut watch = client
        .watch(WatchRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut send = async |text: String| {
        client
            .send(SendRequest {
                text,
                ..Default::default()
            })
            .await
            .unwrap()
    };

    // The facade follows one of the two; each dies in turn (the first coming back before the
    // second goes), so its feed loses its replica at least once.
    for n in 0..10 {
        send(format!("round 1, {n}")).await;
    }
    a.kill9().await;
    for n in 0..10 {
        send(format!("round 2, {n}")).await;
    }
    let a = start_replica(&redis, a_addr).await;
    for n in 0..10 {
        send(format!("round 3, {n}")).await;
    }
    b.kill9().await;
    for n in 0..10 {
        send(format!("round 4, {n}")).await;
    }

    let seen = watched(&mut watch, 40).await;
    let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>(), "{seen:?}");
    let texts: Vec<&str> = seen.iter().map(|(_, text)| text.as_str()).collect();
    let expected: Vec<String> = (1..=4)
        .flat_map(|round| (0..10).map(move |n| format!("round {round}, {n}")))
        .collect();
    assert_eq!(texts, expected);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_under_load_keeps_every_answered_post_once() {
    const POSTS: usize = 1_000;
    const CONCURRENCY: usize = 16;
    let Some(mut redis) = RedisServer::start_if_installed().await else {
        return;
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start_replica(&redis, any).await;
    let b = start_replica(&redis, any).await;
    let (facade, _messages) = facade_over(&[&a, &b]).await;
    let client = Arc::new(Client::new(&facade));

    let (workers, mut answered) = post_concurrently(&client, POSTS, CONCURRENCY);

    // Redis goes away under load, and comes back once POSTs have failed for it.
    answered.wait_for(|(ok, _)| *ok >= POSTS / 5).await.unwrap();
    redis.kill();
    answered
        .wait_for(|(_, failed)| *failed >= 10)
        .await
        .unwrap();
    redis.restart().await;

    let mut ok = BTreeSet::new();
    for worker in workers {
        for (n, status, body) in worker.await.unwrap() {
            assert!(status == 200 || status >= 500, "POST {n}: {status} {body}");
            if status == 200 {
                ok.insert(format!("message {n}"));
            }
        }
    }
    // Recovered, with no restart of the services: POSTs succeed again.
    for n in 0..10 {
        let text = format!("after {n}");
        let (status, body) = client.post_message(&text).await;
        assert_eq!(status, 200, "{body}");
        ok.insert(text);
    }

    // Every POST answered 200 is stored, once; nothing is stored twice.
    let (status, listed) = client.get_messages().await;
    assert_eq!(status, 200);
    let listed: Vec<String> = serde_json::from_value(listed["logged_messages"].clone()).unwrap();
    let distinct: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(distinct.len(), listed.len(), "a message was stored twice");
    let missing: Vec<_> = ok.difference(&distinct).collect();
    assert!(
        missing.is_empty(),
        "answered 200 but not stored: {missing:?}"
    );
    assert!(ok.len() >= POSTS / 5 + 10);
    drop((a, b));
}
