//! Messages stored at the same time travel to logging together: the attempts that arrive while
//! the facade's `LogMessages` calls are out go in the next call, each with its own answer.

use std::sync::Arc;

use msglog_proto::logging::{LogMessagesRequest, LogMessagesResponse, LogResult, STATUS_LOGGED};
use tokio::sync::{Semaphore, mpsc};
use tonic::Status;

use crate::{
    helpers::{
        Client, StandIn, StandInLogging, facade_settings, spawn_facade, spawn_logging_stand_in,
        spawn_messages,
    },
    metrics::{Metrics, until_value},
};

/// A logging stand-in whose `LogMessages` calls each report their size on arrival, then wait
/// for a permit of the gate before answering every item `Message logged successfully`.
#[derive(Clone)]
struct GatedLogging {
    arrived: mpsc::UnboundedSender<Vec<String>>,
    gate: Arc<Semaphore>,
}

impl StandInLogging for GatedLogging {
    async fn log_messages(
        &self,
        request: LogMessagesRequest,
    ) -> Result<LogMessagesResponse, Status> {
        let texts: Vec<String> = request
            .items
            .into_iter()
            .map(|item| item.message.unwrap().message)
            .collect();
        let count = texts.len();
        self.arrived.send(texts).unwrap();
        self.gate.acquire().await.unwrap().forget();
        Ok(LogMessagesResponse {
            results: (0..count)
                .map(|_| LogResult {
                    code: 0,
                    status: STATUS_LOGGED.to_owned(),
                    held_id: String::new(),
                })
                .collect(),
        })
    }
}

#[tokio::test]
async fn messages_that_arrive_while_calls_are_out_go_together_in_the_next() {
    let (arrived, mut calls) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let logging = spawn_logging_stand_in(StandIn(GatedLogging {
        arrived,
        gate: Arc::clone(&gate),
    }))
    .await;
    let messages = spawn_messages().await;
    let mut settings = facade_settings(&logging.url(), &messages.url());
    // The gated calls must not time out while the test holds them.
    settings.retry_attempt_timeout_ms = 60_000;
    settings.retry_deadline_ms = 60_000;
    let facade = spawn_facade(settings).await;
    let client = Arc::new(Client::new(&facade));
    let post = |text: String| {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.post_message(&text).await })
    };

    // Two messages, one after the other: each takes a call, and both calls are held.
    let mut answers = vec![post("first".to_owned())];
    assert_eq!(calls.recv().await.unwrap(), ["first"]);
    answers.push(post("second".to_owned()));
    assert_eq!(calls.recv().await.unwrap(), ["second"]);

    // Ten more wait, since both calls are out.
    let later: Vec<String> = (1..=10).map(|n| format!("later {n}")).collect();
    answers.extend(later.iter().cloned().map(post));
    let facade_metrics = format!("{}/metrics", client.base);
    until_value(&facade_metrics, "logging_batch_queue", &[], 10.0).await;

    // Once a call is answered, the ten go in one.
    gate.add_permits(3);
    let mut third = calls.recv().await.unwrap();
    third.sort();
    let mut expected = later.clone();
    expected.sort();
    assert_eq!(third, expected);

    for answer in answers {
        let (status, body) = answer.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Message logged successfully", "{body}");
    }
    let metrics = Metrics::scrape(&facade_metrics).await;
    assert_eq!(metrics.value("logging_batch_messages_count", &[]), 3.0);
    assert_eq!(metrics.value("logging_batch_messages_sum", &[]), 12.0);
    assert_eq!(metrics.value("logging_batch_queue", &[]), 0.0);
    assert_eq!(
        metrics.value("messages_total", &[("outcome", "stored")]),
        12.0
    );
    // Each message is one call with one attempt, whatever call carried it.
    let calls_ok = [("method", "LogMessage"), ("code", "OK")];
    assert_eq!(metrics.value("logging_calls_total", &calls_ok), 12.0);
}
