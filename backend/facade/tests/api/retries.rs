//! Retries against a logging service that is absent, late, restarted, hung or flaky.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use logging_service::store::{Inserted, MemoryStore, NewMessage, Store, StoreError};
use serde_json::json;
use tokio::sync::oneshot;

use crate::helpers::{
    Client, facade_settings, listener, refused_addr, spawn_facade, spawn_logging, spawn_messages,
};

/// Slack for the scheduler on a loaded machine: the bound proven is "the deadline plus this",
/// which no retry loop without a deadline would meet.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn logging_absent_answers_json_500_after_exactly_max_attempts_within_the_deadline() {
    let messages = spawn_messages().await;
    let logging_url = format!("http://{}", refused_addr().await);
    let settings = facade_settings(&logging_url, &messages.url());
    let deadline = settings.retry_policy().deadline;
    let facade = spawn_facade(settings).await;
    let client = Client::new(&facade);

    let started = Instant::now();
    let (status, body) = client.post_message("msg2").await;
    let elapsed = started.elapsed();

    assert_eq!(status, 500);
    assert_eq!(body["attempts"], 3);
    assert_eq!(body["code"], "UNAVAILABLE");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("Logging service error: UNAVAILABLE after 3 attempts"),
        "{error}"
    );
    assert!(elapsed < deadline + SLACK, "took {elapsed:?}");
}

#[tokio::test]
async fn a_dead_logging_drains_the_retry_budget_so_later_posts_make_one_attempt() {
    let messages = spawn_messages().await;
    let logging_url = format!("http://{}", refused_addr().await);
    let facade = spawn_facade(facade_settings(&logging_url, &messages.url())).await;
    let client = Client::new(&facade);
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let (status, body) = client.post_message("x").await;
        assert_eq!(status, 500);
        attempts.push(body["attempts"].as_u64().unwrap());
    }
    // 10 tokens, one per failed attempt, retries only above 5.
    assert_eq!(attempts, vec![3, 2, 1, 1]);
}

#[tokio::test]
async fn a_hung_logging_is_cut_off_by_the_deadline() {
    let messages = spawn_messages().await;
    // Bound but never served: connections wait in the backlog and no answer ever comes.
    let hung = listener().await;
    let settings = facade_settings(
        &format!("http://{}", hung.local_addr().unwrap()),
        &messages.url(),
    );
    let deadline = settings.retry_policy().deadline;
    let facade = spawn_facade(settings).await;

    let started = Instant::now();
    let (status, body) = Client::new(&facade).post_message("msg").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 500);
    // Whether the connection or the call is deemed stuck, both are retried until the deadline.
    let code = body["code"].as_str().unwrap();
    assert!(
        ["DEADLINE_EXCEEDED", "UNAVAILABLE"].contains(&code),
        "{body}"
    );
    assert!(body["attempts"].as_u64().unwrap() >= 2, "{body}");
    assert!(elapsed < deadline + SLACK, "took {elapsed:?}");
    drop(hung);
}

#[tokio::test]
async fn logging_that_starts_during_the_back_off_gets_the_message() {
    let messages = spawn_messages().await;
    let logging_listener = listener().await;
    let logging_url = format!("http://{}", logging_listener.local_addr().unwrap());
    let store = Arc::new(MemoryStore::new());

    // The first connection is accepted and closed at once (logging "not up yet"); right
    // after, the real logging service starts on the same listener.
    let (first_refused, refused) = oneshot::channel();
    let logging = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let (connection, _) = logging_listener.accept().await.unwrap();
            drop(connection);
            first_refused.send(()).unwrap();
            spawn_logging(logging_listener, store)
        })
    };

    let facade = spawn_facade(facade_settings(&logging_url, &messages.url())).await;
    let (status, body) = Client::new(&facade).post_message("late but kept").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    refused
        .await
        .expect("the first attempt met the closed connection");
    assert_eq!(store.list().await.unwrap(), vec!["late but kept"]);
    drop(logging.await.unwrap());
}

#[tokio::test]
async fn logging_restarted_on_the_same_port_gets_the_very_next_post() {
    let messages = spawn_messages().await;
    let store = Arc::new(MemoryStore::new());
    let first_listener = listener().await;
    let addr = first_listener.local_addr().unwrap();
    let logging = spawn_logging(first_listener, Arc::clone(&store));
    let facade = spawn_facade(facade_settings(&format!("http://{addr}"), &messages.url())).await;
    let client = Client::new(&facade);

    let (status, _) = client.post_message("before").await;
    assert_eq!(status, 200);

    logging.stop().await;
    let (status, body) = client.post_message("while down").await;
    assert_eq!(status, 500, "{body}");

    let logging = spawn_logging(
        tokio::net::TcpListener::bind(addr).await.unwrap(),
        Arc::clone(&store),
    );
    let (status, body) = client.post_message("after").await;
    assert_eq!(
        status, 200,
        "the first POST after the restart succeeds: {body}"
    );
    assert_eq!(body["status"], "success");

    let (_, body) = client.get_messages().await;
    assert_eq!(body["logged_messages"], json!(["before", "after"]));
    logging.stop().await;
}

/// A store that stores the message and then fails the answer, once: the facade cannot know
/// whether the message was kept, and must retry without doubling it.
struct StoresThenFailsOnce {
    inner: Arc<MemoryStore>,
    fail_next: AtomicBool,
}

impl Store for StoresThenFailsOnce {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        let inserted = self.inner.insert(message).await?;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("answer lost".to_owned()));
        }
        Ok(inserted)
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        self.inner.list().await
    }
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_leaves_exactly_one_copy() {
    for dedup in [
        facade_service::ids::DedupMode::Content,
        facade_service::ids::DedupMode::Unique,
    ] {
        let messages = spawn_messages().await;
        let store = Arc::new(MemoryStore::new());
        let logging = spawn_logging(
            listener().await,
            StoresThenFailsOnce {
                inner: Arc::clone(&store),
                fail_next: AtomicBool::new(true),
            },
        );
        let mut settings = facade_settings(&logging.url(), &messages.url());
        settings.dedup = dedup;
        let facade = spawn_facade(settings).await;

        let (status, body) = Client::new(&facade).post_message("exactly once").await;
        assert_eq!(status, 200, "{dedup:?}: {body}");
        // The second attempt found the copy the first one stored.
        assert_eq!(body["status"], "duplicate", "{dedup:?}");
        assert_eq!(
            store.list().await.unwrap(),
            vec!["exactly once"],
            "{dedup:?}"
        );
    }
}
