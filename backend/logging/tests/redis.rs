//! Several logging processes on one Redis: one copy of each message and one order whichever
//! replica took it, every replica's watchers seeing every write, and a Redis outage reported
//! as `UNAVAILABLE` and `NOT_SERVING` until Redis is back, then recovered without a restart.
//! Each test runs its own `redis-server` (skipped, saying why, where it is not installed,
//! except under `scripts/test.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use clap::Parser as _;
use futures_util::future::join_all;
use logging_service::Settings;
use msglog_common::testing::RedisServer;
use msglog_proto::logging::{
    ListMessagesRequest, LogRequest, LoggedMessage, WatchMessagesRequest,
    logging_service_client::LoggingServiceClient,
};
use support::{TestLogging, wait_for_health};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A logging replica on `redis`, and a channel to it.
async fn replica(redis: &RedisServer) -> (TestLogging, Channel) {
    let settings = Settings::try_parse_from([
        "logging-service",
        "--addr",
        "127.0.0.1:0",
        "--store",
        &redis.url(),
        "--dedup-by",
        "id",
        "--store-probe-ms",
        "20",
    ])
    .unwrap();
    let service = TestLogging::start_with(settings).await;
    let channel = service.channel().await;
    (service, channel)
}

fn request(id: u128, text: &str) -> LogRequest {
    LogRequest {
        id: uuid::Uuid::from_u128(id).to_string(),
        message: text.to_owned(),
    }
}

/// Every message through `channel`, a page at a time.
async fn all_messages(channel: &Channel) -> Vec<LoggedMessage> {
    let mut client = LoggingServiceClient::new(channel.clone());
    let mut messages = Vec::new();
    let mut cursor = 0;
    loop {
        let page = client
            .list_messages(ListMessagesRequest {
                cursor,
                limit: 7,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        messages.extend(page.messages);
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return messages,
        }
    }
}

#[tokio::test]
async fn three_replicas_store_each_id_once_in_one_order_that_all_of_them_see() {
    const IDS: u128 = 60;
    let Some(redis) = RedisServer::start_if_installed().await else {
        return;
    };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&redis).await);
    }
    // A watcher on the third replica, opened before anything is written.
    let mut watch = LoggingServiceClient::new(replicas[2].1.clone())
        .watch_messages(WatchMessagesRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();

    // Each id sent through all three replicas at once.
    let calls = (1..=IDS).flat_map(|id| {
        replicas.iter().map(move |(_, channel)| {
            let mut client = LoggingServiceClient::new(channel.clone());
            async move {
                let status = client
                    .log_message(request(id, &format!("message {id}")))
                    .await
                    .unwrap()
                    .into_inner()
                    .status;
                (id, status)
            }
        })
    });
    let answers = join_all(calls).await;
    for id in 1..=IDS {
        let stored = answers
            .iter()
            .filter(|(of, status)| *of == id && status == "Message logged successfully")
            .count();
        assert_eq!(stored, 1, "id {id} stored {stored} times: {answers:?}");
    }

    // One order, with seqs 1..=60, the same through every replica.
    let seen = all_messages(&replicas[0].1).await;
    assert_eq!(
        seen.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<u64>>()
    );
    let mut ids: Vec<_> = seen.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    for (_, channel) in &replicas[1..] {
        assert_eq!(all_messages(channel).await, seen);
    }

    // The third replica's watcher got every message, whichever replica took it, once each.
    let mut watched = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while watched.len() < seen.len() {
            let frame = watch.message().await.unwrap().expect("the watch goes on");
            watched.extend(frame.messages);
        }
    })
    .await
    .expect("the watcher sees every message within 10 s");
    assert_eq!(watched, seen);
}

#[tokio::test]
async fn a_redis_outage_is_unavailable_and_not_serving_until_redis_is_back() {
    let Some(mut redis) = RedisServer::start_if_installed().await else {
        return;
    };
    let (_service, channel) = replica(&redis).await;
    let mut client = LoggingServiceClient::new(channel.clone());
    let mut health = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut watch = LoggingServiceClient::new(channel.clone())
        .watch_messages(WatchMessagesRequest { after_seq: 0 })
        .await
        .unwrap()
        .into_inner();
    client.log_message(request(1, "before")).await.unwrap();

    redis.kill();
    let status = client
        .log_message(request(2, "during"))
        .await
        .expect_err("Redis is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    wait_for_health(&mut health, ServingStatus::NotServing).await;

    // Back, with what it had written (append-only file, fsynced at each write).
    redis.restart().await;
    wait_for_health(&mut health, ServingStatus::Serving).await;
    let status = client
        .log_message(request(2, "during"))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, "Message logged successfully");
    let texts: Vec<_> = all_messages(&channel)
        .await
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(texts, ["before", "during"]);

    // The watch opened before the outage went on: both messages, once each, in order.
    let mut watched = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while watched.len() < 2 {
            match watch.message().await {
                Ok(Some(frame)) => watched.extend(frame.messages),
                other => panic!("the watch ended: {other:?}"),
            }
        }
    })
    .await
    .expect("the watcher sees both messages within 10 s");
    let watched: Vec<_> = watched.into_iter().map(|m| (m.seq, m.message)).collect();
    assert_eq!(
        watched,
        [(1, "before".to_owned()), (2, "during".to_owned())]
    );
}
