//! The facade's metrics, served at `GET /metrics` (see `msglog_common::metrics`):
//!
//! - `http_requests_total` and `http_request_duration_seconds`, by matched route (each gRPC
//!   method of `msglog.v1.MessageLog` is its own route);
//! - `messages_total{outcome}`: messages logging took, by what it did with them (`stored` or
//!   `duplicate`);
//! - calls to logging: `logging_calls_total{method, code}` (by the final code, once per call),
//!   `logging_call_attempts{method}` (attempts per call), `logging_retries_total{method}`,
//!   `logging_give_ups_total{method, reason}` (calls that failed with a retryable status and
//!   were not retried further: `attempts`, `deadline` or `budget`), and
//!   `logging_retry_budget_refusals_total` (retries the budget refused);
//! - the live feed: `watchers` (open `Watch` calls), `watch_lag_messages` (how far behind the
//!   newest message each watcher was when it took a batch), and `feed_live` (1 while the
//!   facade follows logging's feed).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use msglog_common::metrics::HttpMetrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets, linear_buckets},
    },
    registry::Registry,
};
use tonic::Code;

use crate::codes::code_name;

/// The gRPC paths of the facade's API, each counted as its own route.
pub(crate) const GRPC_PATHS: &[&str] = &[
    "/msglog.v1.MessageLog/Send",
    "/msglog.v1.MessageLog/List",
    "/msglog.v1.MessageLog/Watch",
    "/msglog.v1.MessageLog/Status",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GiveUpLabels {
    method: &'static str,
    reason: &'static str,
}

fn attempts_histogram() -> Histogram {
    // 1, 2, ... 8 attempts: the policy's maximum is a small number.
    Histogram::new(linear_buckets(1.0, 1.0, 8))
}

/// What the facade's calls to logging did.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    messages: Family<OutcomeLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    attempts: Family<MethodLabels, Histogram, fn() -> Histogram>,
    retries: Family<MethodLabels, Counter>,
    give_ups: Family<GiveUpLabels, Counter>,
    budget_refusals: Counter,
    batch_messages: Histogram,
    batch_queue: Gauge,
    replicas_up: Gauge,
    /// Retries since start, over every method (for the status answer).
    retries_since_start: AtomicU64,
    /// Calls that failed since start, over every method and code (for the status answer).
    failures_since_start: AtomicU64,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            messages: Family::default(),
            calls: Family::default(),
            attempts: Family::new_with_constructor(attempts_histogram),
            retries: Family::default(),
            give_ups: Family::default(),
            budget_refusals: Counter::default(),
            // 1, 2, 4, ... 256: a call carries at most 256.
            batch_messages: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            batch_queue: Gauge::default(),
            replicas_up: Gauge::default(),
            retries_since_start: AtomicU64::new(0),
            failures_since_start: AtomicU64::new(0),
        }
    }
}

impl CallMetrics {
    fn register(&self, registry: &mut Registry) {
        for outcome in ["stored", "duplicate"] {
            drop(self.messages.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "messages",
            "Messages logging took, by what it did with them (stored, duplicate)",
            self.messages.clone(),
        );
        registry.register(
            "logging_calls",
            "Calls to logging, by method and final gRPC code (once per call, however many attempts)",
            self.calls.clone(),
        );
        registry.register(
            "logging_call_attempts",
            "Attempts per call to logging, by method",
            self.attempts.clone(),
        );
        registry.register(
            "logging_retries",
            "Attempts to logging that retried a failed one, by method",
            self.retries.clone(),
        );
        registry.register(
            "logging_give_ups",
            "Calls to logging that failed with a retryable status and were not retried further, by method and reason (attempts, deadline, budget)",
            self.give_ups.clone(),
        );
        registry.register(
            "logging_retry_budget_refusals",
            "Retries refused because the retry budget was spent",
            self.budget_refusals.clone(),
        );
        registry.register(
            "logging_batch_messages",
            "Messages per LogMessages call: the attempts at storing a message that went to logging together",
            self.batch_messages.clone(),
        );
        registry.register(
            "logging_replicas_up",
            "Logging replicas taking calls in turn (the others failed their health check or their connection broke)",
            self.replicas_up.clone(),
        );
        registry.register(
            "logging_batch_queue",
            "Attempts at storing a message that wait for a LogMessages call to go in",
            self.batch_queue.clone(),
        );
    }

    /// A call ended with `code` after `attempts` attempts.
    pub(crate) fn finished(&self, method: &'static str, code: Code, attempts: u32) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: code_name(code),
            })
            .inc();
        self.attempts
            .get_or_create(&MethodLabels { method })
            .observe(f64::from(attempts));
        if code != Code::Ok {
            self.failures_since_start.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Logging took a message: `stored` or `duplicate`.
    pub(crate) fn logged(&self, outcome: &'static str) {
        self.messages
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A failed attempt is about to be retried.
    pub(crate) fn retrying(&self, method: &'static str) {
        self.retries.get_or_create(&MethodLabels { method }).inc();
        self.retries_since_start.fetch_add(1, Ordering::Relaxed);
    }

    /// A call that failed with a retryable status was not retried further, for `reason`
    /// (`attempts`, `deadline` or `budget`).
    pub(crate) fn gave_up(&self, method: &'static str, reason: &'static str) {
        self.give_ups
            .get_or_create(&GiveUpLabels { method, reason })
            .inc();
    }

    /// A `LogMessages` call went out with `messages` attempts in it.
    pub(crate) fn batch_sent(&self, messages: usize) {
        self.batch_messages.observe(messages as f64);
    }

    /// `change` attempts joined (positive) or left (negative) the queue for a `LogMessages`
    /// call.
    pub(crate) fn batch_queued(&self, change: i64) {
        self.batch_queue.inc_by(change);
    }

    /// `up` logging replicas now take calls in turn.
    pub(crate) fn replicas_up(&self, up: usize) {
        self.replicas_up.set(i64::try_from(up).unwrap_or(i64::MAX));
    }

    /// The retry budget refused a retry.
    pub(crate) fn budget_refused(&self) {
        self.budget_refusals.inc();
    }

    /// Retries since start, over every method.
    pub(crate) fn retries_since_start(&self) -> u64 {
        self.retries_since_start.load(Ordering::Relaxed)
    }

    /// A call that failed was answered another way after all: the original's logging has no
    /// `ListMessages`, and the list was read whole instead. Still counted in
    /// `logging_calls_total` under its code; taken out of the errors the status answer gives,
    /// which are calls that failed someone.
    pub(crate) fn answered_another_way(&self) {
        let _ = self.failures_since_start.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |failures| failures.checked_sub(1),
        );
    }

    /// Calls to logging that failed since start, whatever the code, less those answered
    /// another way.
    pub(crate) fn failures_since_start(&self) -> u64 {
        self.failures_since_start.load(Ordering::Relaxed)
    }
}

/// Every metric of one facade.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// What `/metrics` encodes.
    pub(crate) registry: Arc<Registry>,
    /// Requests, for the tracking middleware.
    pub(crate) http: Arc<HttpMetrics>,
}

impl Metrics {
    /// Registers the request metrics, `calls` and what `more` registers (the live feed's).
    pub(crate) fn new(calls: &CallMetrics, more: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry, GRPC_PATHS);
        calls.register(&mut registry);
        more(&mut registry);
        Self {
            registry: Arc::new(registry),
            http,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_calls_count_as_errors_unless_answered_another_way() {
        let calls = CallMetrics::default();
        calls.finished("LogMessage", Code::Ok, 1);
        assert_eq!(calls.failures_since_start(), 0);
        // Nothing to take back: the count does not go below zero.
        calls.answered_another_way();
        assert_eq!(calls.failures_since_start(), 0);
        calls.finished("LogMessage", Code::Unavailable, 3);
        calls.finished("LogMessage", Code::AlreadyExists, 1);
        calls.finished("ListMessages", Code::Unimplemented, 1);
        assert_eq!(calls.failures_since_start(), 3);
        calls.answered_another_way();
        assert_eq!(calls.failures_since_start(), 2);
    }
}
