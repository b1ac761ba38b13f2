//! The facade in front of several logging replicas: calls taken in turn by the replicas that
//! are up, a replica that fails its health check out of the turn until it serves again, and a
//! failed attempt retried on another replica.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use msglog_proto::logging::{LogMessagesRequest, LogMessagesResponse, LogResult, STATUS_LOGGED};
use tonic::{Code, Status};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    helpers::{
        Client, InProcess, LogMessagesOnly, OnLogMessages, facade_settings, spawn_facade,
        spawn_logging_stand_in_with_health, spawn_messages,
    },
    metrics::until_value,
};

/// A logging stand-in that counts the items it is sent and answers each stored, or each
/// `UNAVAILABLE` (as a replica whose store fails) when `failing`.
#[derive(Clone, Default)]
struct CountingLogging {
    items: Arc<AtomicUsize>,
    failing: bool,
}

impl OnLogMessages for CountingLogging {
    async fn log_messages(
        &self,
        request: LogMessagesRequest,
    ) -> Result<LogMessagesResponse, Status> {
        let count = request.items.len();
        self.items.fetch_add(count, Ordering::SeqCst);
        let result = if self.failing {
            LogResult {
                code: Code::Unavailable as i32,
                status: "message store unavailable".to_owned(),
                held_id: String::new(),
            }
        } else {
            LogResult {
                code: 0,
                status: STATUS_LOGGED.to_owned(),
                held_id: String::new(),
            }
        };
        Ok(LogMessagesResponse {
            results: vec![result; count],
        })
    }
}

/// Three stand-ins (the ones in `failing` answering every item `UNAVAILABLE`), and a facade in
/// front of them checking their health every 20 ms.
async fn three_replicas(
    failing: [bool; 3],
) -> (
    Vec<(InProcess, HealthReporter, Arc<AtomicUsize>)>,
    InProcess,
    InProcess,
) {
    let mut replicas = Vec::new();
    for failing in failing {
        let service = CountingLogging {
            failing,
            ..CountingLogging::default()
        };
        let items = Arc::clone(&service.items);
        let (process, health) = spawn_logging_stand_in_with_health(LogMessagesOnly(service)).await;
        replicas.push((process, health, items));
    }
    let messages = spawn_messages().await;
    let mut settings = facade_settings(&replicas[0].0.url(), &messages.url());
    settings.logging_urls = replicas.iter().map(|(process, ..)| process.url()).collect();
    settings.logging_health_ms = 20;
    let facade = spawn_facade(settings).await;
    (replicas, facade, messages)
}

fn counts(replicas: &[(InProcess, HealthReporter, Arc<AtomicUsize>)]) -> Vec<usize> {
    replicas
        .iter()
        .map(|(.., items)| items.load(Ordering::SeqCst))
        .collect()
}

/// Sends `count` messages one after the other; each must be stored.
async fn post(client: &Client, count: usize, label: &str) {
    for n in 0..count {
        let (status, body) = client.post_message(&format!("{label} {n}")).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn calls_take_turns_among_the_replicas_that_serve() {
    let (replicas, facade, _messages) = three_replicas([false; 3]).await;
    let client = Client::new(&facade);
    let metrics = format!("{}/metrics", client.base);
    until_value(&metrics, "logging_replicas_up", &[], 3.0).await;

    // The turn is shared with the facade's own calls (its live feed), so a replica may take
    // one more or one less than a third.
    post(&client, 30, "all three").await;
    let first = counts(&replicas);
    assert!(first.iter().all(|&n| (8..=12).contains(&n)), "{first:?}");

    // The second stops serving: it leaves the turn, the other two share the calls.
    replicas[1]
        .1
        .set_service_status("", ServingStatus::NotServing)
        .await;
    until_value(&metrics, "logging_replicas_up", &[], 2.0).await;
    post(&client, 30, "two").await;
    let second = counts(&replicas);
    assert_eq!(second[1], first[1], "{second:?}");
    for n in [0, 2] {
        assert!((13..=17).contains(&(second[n] - first[n])), "{second:?}");
    }

    // It serves again, and takes its turn again.
    replicas[1]
        .1
        .set_service_status("", ServingStatus::Serving)
        .await;
    until_value(&metrics, "logging_replicas_up", &[], 3.0).await;
    post(&client, 30, "three again").await;
    let third = counts(&replicas);
    assert!(
        third
            .iter()
            .zip(&second)
            .all(|(now, before)| (8..=12).contains(&(now - before))),
        "{third:?}"
    );
}

#[tokio::test]
async fn an_attempt_that_fails_on_one_replica_is_retried_on_another() {
    // The first replica's store fails (its health check still says serving).
    let (replicas, facade, _messages) = three_replicas([true, false, false]).await;
    let client = Client::new(&facade);
    for n in 0..6 {
        let (status, body) = client.post_message(&format!("message {n}")).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["attempts"].as_u64().unwrap_or(1) <= 2,
            "a retry went to the failing replica again: {body}"
        );
    }
    // Each message stored once, by the two working replicas; the failing one saw only first
    // attempts.
    let [failed, second, third] = counts(&replicas)[..] else {
        unreachable!()
    };
    assert_eq!(second + third, 6);
    assert!(failed >= 1, "the failing replica took no turn");
}
