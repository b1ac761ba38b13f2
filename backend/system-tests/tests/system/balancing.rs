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
        Client, InProcess, StandIn, StandInLogging, facade_settings, spawn_facade,
        spawn_logging_stand_in_with_health, spawn_messages,
    },
    metrics::until_value,
};

/// What a stand-in was sent.
#[derive(Default)]
struct Seen {
    /// Items.
    items: AtomicUsize,
    /// Items that were a retry (an attempt after the first).
    retries: AtomicUsize,
}

/// A logging stand-in that counts the items it is sent and answers each stored, or each
/// `UNAVAILABLE` (as a replica whose store fails) when `failing`.
#[derive(Clone, Default)]
struct CountingLogging {
    seen: Arc<Seen>,
    failing: bool,
}

impl StandInLogging for CountingLogging {
    async fn log_messages(
        &self,
        request: LogMessagesRequest,
    ) -> Result<LogMessagesResponse, Status> {
        let count = request.items.len();
        self.seen.items.fetch_add(count, Ordering::SeqCst);
        let retries = request.items.iter().filter(|item| item.attempt > 1).count();
        self.seen.retries.fetch_add(retries, Ordering::SeqCst);
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
    Vec<(InProcess, HealthReporter, Arc<Seen>)>,
    InProcess,
    InProcess,
) {
    let mut replicas = Vec::new();
    for failing in failing {
        let service = CountingLogging {
            failing,
            ..CountingLogging::default()
        };
        let seen = Arc::clone(&service.seen);
        let (process, health) = spawn_logging_stand_in_with_health(StandIn(service)).await;
        replicas.push((process, health, seen));
    }
    let messages = spawn_messages().await;
    let mut settings = facade_settings(&replicas[0].0.url(), &messages.url());
    settings.logging_urls = replicas.iter().map(|(process, ..)| process.url()).collect();
    settings.logging_health_ms = 20;
    // Time enough for every call and health check on a loaded machine: only the failing
    // replica's answers make a retry, never a slow one.
    settings.retry_attempt_timeout_ms = 5_000;
    settings.retry_deadline_ms = 15_000;
    let facade = spawn_facade(settings).await;
    (replicas, facade, messages)
}

fn counts(replicas: &[(InProcess, HealthReporter, Arc<Seen>)]) -> Vec<usize> {
    replicas
        .iter()
        .map(|(.., seen)| seen.items.load(Ordering::SeqCst))
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
    let mut retried = 0;
    for n in 0..6 {
        // The page's route: its answer says how many calls were made.
        let response = client
            .http
            .post(format!("{}/api/messages", client.base))
            .json(&serde_json::json!({ "message": format!("message {n}") }))
            .send()
            .await
            .unwrap();
        let (status, body) = crate::helpers::status_and_json(response).await;
        assert_eq!(status, 200, "{body}");
        let attempts = body["attempts"].as_u64().unwrap();
        assert!(
            attempts <= 2,
            "a retry went to the failing replica again: {body}"
        );
        retried += usize::from(attempts == 2);
    }
    // Each message stored once, by the two working replicas; the failing one saw only first
    // attempts, and each message it failed was retried on a working one.
    let [failed, second, third] = counts(&replicas)[..] else {
        unreachable!()
    };
    assert_eq!(second + third, 6);
    assert!(failed >= 1, "the failing replica took no turn");
    assert_eq!(
        retried, failed,
        "each attempt the failing replica failed was retried once"
    );
    assert_eq!(
        replicas[0].2.retries.load(Ordering::SeqCst),
        0,
        "no retry went to the failing replica"
    );
    let retries_elsewhere: usize = replicas[1..]
        .iter()
        .map(|(.., seen)| seen.retries.load(Ordering::SeqCst))
        .sum();
    assert_eq!(
        retries_elsewhere, failed,
        "the retries went to the working replicas"
    );
}
