//! Faults with real processes and real signals: the logging binary on a SQLite file is
//! stopped, restarted and killed with SIGKILL under load, with the facade in front of it.
//! What must hold: every message the facade acknowledged (200) is stored exactly once, no
//! message is ever stored twice, and every other answer is a JSON error.

#![cfg(unix)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use facade_service::Settings;
use msglog_common::testing::{InProcess, ServiceProcess, TempDir};
use tokio::{sync::Notify, task::JoinHandle};

use crate::helpers::{Client, facade_settings, spawn_facade, start_logging};

/// SIGTERM, and a clean exit.
async fn terminate(logging: ServiceProcess) {
    let status = logging.terminate().await;
    assert!(
        status.success(),
        "logging exits cleanly on SIGTERM: {status:?}"
    );
}

/// A database path in a directory removed when the guard drops.
fn temp_db() -> (TempDir, PathBuf) {
    let dir = TempDir::new("msglog-faults");
    let path = dir.join("messages.sqlite3");
    (dir, path)
}

/// The facade, in this process, in front of `logging`; `tweak` adjusts its settings.
async fn start_facade(logging: SocketAddr, tweak: impl FnOnce(&mut Settings)) -> InProcess {
    // No messages service: only POSTs and the list matter here.
    let mut settings = facade_settings(&format!("http://{logging}"), "http://127.0.0.1:9");
    settings.request_timeout_ms = 30_000;
    tweak(&mut settings);
    spawn_facade(settings).await
}

/// One POST's outcome: the status, and whether the body was a JSON object as promised.
#[derive(Debug, Clone)]
struct Outcome {
    status: u16,
    json_error: bool,
}

/// How far a load has got; waiters are woken on every answer.
#[derive(Default)]
struct Progress {
    /// POSTs answered.
    done: AtomicUsize,
    /// POSTs answered with anything but 200.
    failed: AtomicUsize,
    /// Notified on every answer.
    changed: Notify,
}

impl Progress {
    /// Waits (on the load's own answers, not on a clock) until `counter` reaches `target`.
    async fn wait(&self, counter: impl Fn(&Self) -> &AtomicUsize, target: usize) {
        loop {
            let changed = self.changed.notified();
            if counter(self).load(Ordering::SeqCst) >= target {
                return;
            }
            tokio::time::timeout(Duration::from_secs(60), changed)
                .await
                .expect("the load makes progress");
        }
    }
}

/// Starts sending `total` POSTs of distinct texts (`{prefix}-{i}`), 32 in flight.
fn start_load(
    facade: &str,
    prefix: &str,
    total: usize,
) -> (JoinHandle<Vec<Outcome>>, Arc<Progress>) {
    const CONCURRENCY: usize = 32;
    let progress = Arc::new(Progress::default());
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(std::sync::Mutex::new(vec![None; total]));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (http, next, outcomes) = (http.clone(), Arc::clone(&next), Arc::clone(&outcomes));
            let progress = Arc::clone(&progress);
            let url = format!("{facade}/send_message");
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    let response = http
                        .post(&url)
                        .json(&serde_json::json!({ "message": format!("{prefix}-{i}") }))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Option<serde_json::Value> = response.json().await.ok();
                    let json_error = body.as_ref().is_some_and(|b| b["error"].is_string());
                    if status != 200 {
                        progress.failed.fetch_add(1, Ordering::SeqCst);
                    }
                    outcomes.lock().unwrap()[i] = Some(Outcome { status, json_error });
                    progress.done.fetch_add(1, Ordering::SeqCst);
                    progress.changed.notify_waiters();
                }
            })
        })
        .collect();
    let all = tokio::spawn(async move {
        for worker in workers {
            worker.await.unwrap();
        }
        let outcomes = outcomes.lock().unwrap().clone();
        outcomes.into_iter().map(Option::unwrap).collect()
    });
    (all, progress)
}

/// Checks the invariants over the load's outcomes and the stored list; returns how many
/// POSTs were acknowledged.
fn check(prefix: &str, outcomes: &[Outcome], stored: &[String]) -> usize {
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for text in stored {
        *copies.entry(text.as_str()).or_default() += 1;
    }
    let doubled: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "stored more than once: {doubled:?}");
    let mut acknowledged = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        let text = format!("{prefix}-{i}");
        if outcome.status == 200 {
            acknowledged += 1;
            assert_eq!(
                copies.get(text.as_str()),
                Some(&1),
                "{text} was acknowledged but not stored"
            );
        } else {
            assert!(
                outcome.json_error,
                "{text}: HTTP {} without a JSON error body",
                outcome.status
            );
            assert_eq!(outcome.status, 500, "{text}");
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_logging_has_every_message_in_order() {
    let (_dir, db) = temp_db();
    let logging = start_logging(&db, "127.0.0.1:0".parse().unwrap()).await;
    let addr = logging.addr;
    let facade = start_facade(addr, |_| {}).await;
    let client = Client::new(&facade);
    let texts: Vec<_> = (0..100).map(|i| format!("kept-{i}")).collect();
    for text in &texts {
        assert_eq!(client.post_message(text).await.0, 200);
    }

    terminate(logging).await;
    // A clean close checkpoints the write-ahead log into the database and removes it.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(
        !wal.exists(),
        "{} left behind: the database was not closed cleanly",
        wal.display()
    );
    let logging = start_logging(&db, addr).await;
    assert_eq!(client.stored().await, texts);
    // Ids survive too: the same text is still a duplicate.
    let (_, again) = client.post_message("kept-7").await;
    assert_eq!(again["status"], "duplicate");
    terminate(logging).await;
}

/// POSTs under load while logging goes through a fault.
const LOAD: usize = 2000;

/// What happens to logging a quarter of the way into the load.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL, and logging stays down until this many POSTs have failed for it.
    KillAndStayDown(usize),
    /// SIGKILL, and logging comes straight back.
    Kill,
    /// SIGTERM (a graceful stop), and logging comes straight back.
    Terminate,
}

/// Runs [`LOAD`] POSTs of texts `{prefix}-{i}` through the facade (set up by `tweak`) to a
/// logging binary on a SQLite file; a quarter of the way in, applies `fault` and brings
/// logging back on the same file and port while the load goes on. Checks the invariants
/// (see [`check`]) and returns the outcomes, how many were acknowledged, and what was stored.
async fn load_through_fault(
    prefix: &str,
    fault: Fault,
    tweak: impl FnOnce(&mut Settings),
) -> (Vec<Outcome>, usize, Vec<String>) {
    let (_dir, db) = temp_db();
    let logging = start_logging(&db, "127.0.0.1:0".parse().unwrap()).await;
    let addr = logging.addr;
    let facade = start_facade(addr, tweak).await;
    let (load, progress) = start_load(&facade.url(), prefix, LOAD);

    progress.wait(|p| &p.done, LOAD / 4).await;
    match fault {
        Fault::KillAndStayDown(failures) => {
            logging.kill9().await;
            progress.wait(|p| &p.failed, failures).await;
        }
        Fault::Kill => logging.kill9().await,
        Fault::Terminate => terminate(logging).await,
    }
    let logging = start_logging(&db, addr).await;

    let outcomes = load.await.unwrap();
    let stored = Client::new(&facade).stored().await;
    let acknowledged = check(prefix, &outcomes, &stored);
    terminate(logging).await;
    (outcomes, acknowledged, stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_message_and_doubles_none() {
    // Logging stays down until POSTs have failed for it, then comes back mid-load.
    let (outcomes, acknowledged, _) =
        load_through_fault("crash", Fault::KillAndStayDown(20), |_| {}).await;
    let failures = outcomes.iter().filter(|o| o.status != 200).count();
    assert!(failures >= 20, "the crash was felt: {failures} failures");
    assert!(acknowledged >= LOAD / 4, "{acknowledged} acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_writes_and_loses_nothing_acknowledged() {
    // A graceful stop: calls in flight finish (their messages committed before the
    // database closes).
    let (_, acknowledged, _) = load_through_fault("drain", Fault::Terminate, |_| {}).await;
    assert!(acknowledged >= LOAD / 4, "{acknowledged} acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_that_cross_a_sigkill_and_restart_succeed_without_doubling() {
    // Retries long and plentiful enough to outlast a restart.
    let (_, acknowledged, stored) = load_through_fault("cross", Fault::Kill, |settings| {
        settings.retry_max_attempts = 20;
        settings.retry_initial_backoff_ms = 50;
        settings.retry_max_backoff_ms = 500;
        settings.retry_attempt_timeout_ms = 2_000;
        settings.retry_deadline_ms = 15_000;
        settings.retry_budget_tokens = 1_000;
    })
    .await;
    assert_eq!(acknowledged, LOAD, "every POST outlasted the crash");
    assert_eq!(stored.len(), LOAD);
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_refused_without_growing_memory() {
    use msglog_proto::logging::{LogRequest, logging_service_client::LoggingServiceClient};

    let (_dir, db) = temp_db();
    let logging = start_logging(&db, "127.0.0.1:0".parse().unwrap()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", logging.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // A client willing to send what the server will not take.
    let mut client = LoggingServiceClient::new(channel).max_encoding_message_size(usize::MAX);
    let huge = |size: usize| LogRequest {
        id: "5f0e9d1c-2b3a-4c5d-8e7f-a1b2c3d4e5f6".to_owned(),
        message: "x".repeat(size),
    };

    let status = client.log_message(huge(8 << 20)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    let before = logging.rss_kib();
    for _ in 0..5 {
        let status = client.log_message(huge(32 << 20)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    }
    let after = logging.rss_kib();
    // 160 MB was offered; the service may not keep more than a few buffers of it.
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );

    let stored = client.log_message(huge(100)).await.unwrap().into_inner();
    assert_eq!(
        stored.status, "Message logged successfully",
        "still serving"
    );
    terminate(logging).await;
}
