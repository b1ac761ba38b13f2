//! Retries for gRPC calls, after gRPC's retry design (gRFC A6), done here since tonic has none.
//!
//! A call is retried only when all of these hold:
//! - its status is retryable: `UNAVAILABLE` or `DEADLINE_EXCEEDED` (every call the facade
//!   makes is idempotent: `LogMessage` resends the same id, the rest are reads);
//! - fewer than [`RetryPolicy::max_attempts`] attempts were made;
//! - the overall [`RetryPolicy::deadline`] leaves time for the back-off and another attempt;
//! - the [`RetryBudget`] has tokens left, so a dead backend is not hammered by every request.
//!
//! Each attempt is bounded by [`RetryPolicy::attempt_timeout`] (and by what is left of the
//! deadline), and between attempts the caller waits a [`Backoff`] delay with full jitter.

mod budget;

use std::{future::Future, time::Duration};

pub(crate) use budget::RetryBudget;

use tokio::time::Instant;
use tonic::{Code, Status};

use crate::metrics::CallMetrics;
use crate::settings::Settings;

/// Exponential back-off with full jitter: before retry `n` (1-based) the caller waits a
/// uniformly random time in `[0, min(max, initial * multiplier^(n-1))]`.
///
/// Full jitter spreads the retries of many clients that failed together, so a backend that
/// comes back is not met by a synchronised wave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Upper bound of the first delay.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth of the bound from one retry to the next (at least 1).
    pub multiplier: f64,
}

impl Backoff {
    /// The upper bound of the delay before retry `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        if grown.is_finite() && grown < self.max.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.max
        }
    }

    /// A random delay in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32) -> Duration {
        self.ceiling(retry).mul_f64(rand::random::<f64>())
    }
}

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// The longest one attempt may take.
    pub attempt_timeout: Duration,
    /// The longest all attempts and waits together may take.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// Defaults for a person waiting on a page: 3 attempts, 50 ms then 100 ms back-off
    /// ceilings, 500 ms per attempt, 1.5 s in all.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(400),
                multiplier: 2.0,
            },
            attempt_timeout: Duration::from_millis(500),
            deadline: Duration::from_millis(1500),
        }
    }
}

/// Why a call stopped being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// The status is not one that a retry can help.
    NotRetryable,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// No time was left before the overall deadline.
    DeadlineReached,
    /// The retry budget is spent: the backend has been failing for a while.
    BudgetExhausted,
}

/// A call that failed, after however many attempts.
#[derive(Debug)]
pub(crate) struct RetryFailure {
    /// The status of the last attempt.
    pub status: Status,
    /// Attempts made.
    pub attempts: u32,
    /// Why no further attempt was made.
    pub gave_up: GiveUp,
}

/// A call that succeeded, and on which attempt.
#[derive(Debug)]
pub(crate) struct Attempted<T> {
    /// The answer.
    pub value: T,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// Whether a failed attempt with `code` may be retried. Every call the facade makes is
/// idempotent (`LogMessage` resends the same id; the rest are reads), so a call that ran out
/// of time may be made again.
pub(crate) fn is_retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::DeadlineExceeded)
}

/// Whether a failed call's `code` is an answer about the request rather than a sign of
/// trouble: a conflict, a bad argument, a method this logging does not have (the original's,
/// which the caller may answer another way). Not retried, and traced at `info`: the caller
/// answers it, and logging is working as it should.
fn is_an_answer(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::AlreadyExists
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
    )
}

/// Runs `call` until it succeeds or the policy says stop.
///
/// `call` receives the attempt number (from 1) and the time the attempt may take, which it
/// should pass on as the gRPC deadline. `operation` names the call in traces and metrics.
pub(crate) async fn with_retries<T, F, Fut>(
    operation: &'static str,
    policy: &RetryPolicy,
    budget: &RetryBudget,
    metrics: &CallMetrics,
    mut call: F,
) -> Result<Attempted<T>, RetryFailure>
where
    F: FnMut(u32, Duration) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let deadline = Instant::now() + policy.deadline;
    let max_attempts = policy.max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = policy.attempt_timeout.min(left);
        let status = match tokio::time::timeout(timeout, call(attempt, timeout)).await {
            Ok(Ok(value)) => {
                budget.record_success();
                metrics.finished(operation, Code::Ok, attempt);
                if attempt > 1 {
                    tracing::info!(operation, attempt, "call succeeded after retrying");
                }
                return Ok(Attempted {
                    value,
                    attempts: attempt,
                });
            }
            Ok(Err(status)) => status,
            Err(_elapsed) => {
                Status::deadline_exceeded(format!("no answer within {} ms", timeout.as_millis()))
            }
        };
        // As in gRPC's retry throttling, only a failure a retry could help (logging down,
        // slow or hung) takes from the budget: a conflict or a bad argument says nothing of
        // logging's health, and must not stop the retries of the requests that follow it.
        if is_retryable(status.code()) {
            budget.record_failure();
        }
        if is_an_answer(status.code()) {
            tracing::info!(
                operation,
                attempt,
                code = ?status.code(),
                message = status.message(),
                "answered with an error: not retried"
            );
        } else {
            tracing::warn!(
                operation,
                attempt,
                max_attempts,
                code = ?status.code(),
                message = status.message(),
                "attempt failed"
            );
        }

        let give_up = |gave_up| {
            metrics.finished(operation, status.code(), attempt);
            let reason = match gave_up {
                GiveUp::NotRetryable => None,
                GiveUp::AttemptsExhausted => Some("attempts"),
                GiveUp::DeadlineReached => Some("deadline"),
                GiveUp::BudgetExhausted => {
                    metrics.budget_refused();
                    Some("budget")
                }
            };
            if let Some(reason) = reason {
                metrics.gave_up(operation, reason);
            }
            // An answer was traced as one already.
            if !is_an_answer(status.code()) {
                tracing::warn!(
                    operation,
                    attempts = attempt,
                    ?gave_up,
                    code = ?status.code(),
                    "giving up"
                );
            }
            Err(RetryFailure {
                status: status.clone(),
                attempts: attempt,
                gave_up,
            })
        };
        if !is_retryable(status.code()) {
            return give_up(GiveUp::NotRetryable);
        }
        if attempt >= max_attempts {
            return give_up(GiveUp::AttemptsExhausted);
        }
        if !budget.allows_retry() {
            return give_up(GiveUp::BudgetExhausted);
        }
        let delay = policy.backoff.delay(attempt);
        // Waiting is pointless if no time would be left for the next attempt.
        if Instant::now() + delay >= deadline {
            return give_up(GiveUp::DeadlineReached);
        }
        tracing::info!(
            operation,
            next_attempt = attempt + 1,
            delay_ms = delay.as_millis() as u64,
            "retrying after back-off"
        );
        metrics.retrying(operation);
        tokio::time::sleep(delay).await;
    }
}

/// The policies the facade's settings describe (here, so the settings need not know this
/// module).
impl Settings {
    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry_max_attempts,
            backoff: Backoff {
                initial: Duration::from_millis(self.retry_initial_backoff_ms),
                max: Duration::from_millis(self.retry_max_backoff_ms),
                multiplier: self.retry_backoff_multiplier,
            },
            attempt_timeout: Duration::from_millis(self.retry_attempt_timeout_ms),
            deadline: Duration::from_millis(self.retry_deadline_ms),
        }
    }

    /// The retry policy of reads from logging: the same attempts and back-off, with the read
    /// timeouts.
    pub fn read_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempt_timeout: Duration::from_millis(self.read_attempt_timeout_ms),
            deadline: Duration::from_millis(self.read_deadline_ms),
            ..self.retry_policy()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        cell::Cell,
        sync::{Arc, Mutex},
    };

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(250),
                multiplier: 2.0,
            },
            attempt_timeout: Duration::from_millis(500),
            deadline: Duration::from_secs(10),
        }
    }

    fn unavailable() -> Status {
        Status::unavailable("down")
    }

    #[test]
    fn ceiling_grows_exponentially_up_to_max() {
        let backoff = policy().backoff;
        assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(2), Duration::from_millis(200));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(250));
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(250));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let backoff = policy().backoff;
        let delays: Vec<_> = (0..1000).map(|_| backoff.delay(2)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(200)));
        // Full jitter: the delays spread over the whole range, not around one value.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(50)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(150)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_recovers_succeeds_on_a_later_attempt_after_bounded_waits() {
        let budget = RetryBudget::new(10, 0.1);
        let started = Instant::now();
        let attempts_seen = Cell::new(0);
        let result = with_retries(
            "test",
            &policy(),
            &budget,
            &CallMetrics::default(),
            |attempt, _| {
                attempts_seen.set(attempt);
                async move {
                    if attempt < 3 {
                        Err(unavailable())
                    } else {
                        Ok("done")
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!((result.value, result.attempts), ("done", 3));
        assert_eq!(attempts_seen.get(), 3);
        // Two waits, bounded by their ceilings (100 ms + 200 ms); calls take no time here.
        assert!(
            started.elapsed() <= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_stop_at_max_attempts_with_the_last_status() {
        let budget = RetryBudget::new(10, 0.1);
        let failure = with_retries(
            "test",
            &policy(),
            &budget,
            &CallMetrics::default(),
            |_, _| async { Err::<(), _>(unavailable()) },
        )
        .await
        .unwrap_err();
        assert_eq!(failure.attempts, 3);
        assert_eq!(failure.gave_up, GiveUp::AttemptsExhausted);
        assert_eq!(failure.status.code(), Code::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retryable_status_is_not_retried() {
        let budget = RetryBudget::new(10, 0.1);
        for code in [Code::InvalidArgument, Code::AlreadyExists, Code::Internal] {
            let failure = with_retries(
                "test",
                &policy(),
                &budget,
                &CallMetrics::default(),
                |_, _| async move { Err::<(), _>(Status::new(code, "no")) },
            )
            .await
            .unwrap_err();
            assert_eq!(
                (failure.attempts, failure.gave_up),
                (1, GiveUp::NotRetryable)
            );
        }
        // Nor do they take from the budget: they say nothing of the backend's health.
        assert!((budget.tokens() - 10.0).abs() < 1e-9, "{}", budget.tokens());
    }

    /// Runs `with_retries` once over a call that fails with `code`, and gives what it traced
    /// at `info` and above.
    async fn traced_failure(code: Code) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let policy = RetryPolicy {
            max_attempts: 1,
            ..policy()
        };
        let _ = with_retries(
            "test",
            &policy,
            &RetryBudget::new(10, 0.1),
            &CallMetrics::default(),
            |_, _| async move { Err::<(), _>(Status::new(code, "no")) },
        )
        .await;
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_about_the_request_is_traced_as_information_and_trouble_as_a_warning() {
        for code in [
            Code::AlreadyExists,
            Code::InvalidArgument,
            Code::Unimplemented,
        ] {
            let traced = traced_failure(code).await;
            assert!(!traced.contains("WARN"), "{code:?}: {traced}");
            assert!(
                traced.contains("INFO") && traced.contains("not retried"),
                "{code:?}: {traced}"
            );
        }
        for code in [Code::Unavailable, Code::Internal] {
            let traced = traced_failure(code).await;
            assert!(
                traced.contains("WARN") && traced.contains("giving up"),
                "{code:?}: {traced}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_exceeded_is_retried() {
        let budget = RetryBudget::new(10, 0.1);
        let call = |_, _| async { Err::<(), _>(Status::deadline_exceeded("slow")) };
        let failure = with_retries("test", &policy(), &budget, &CallMetrics::default(), call)
            .await
            .unwrap_err();
        assert_eq!(
            (failure.attempts, failure.gave_up),
            (3, GiveUp::AttemptsExhausted)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_attempt_is_cut_at_the_attempt_timeout_and_retried() {
        let budget = RetryBudget::new(10, 0.1);
        let started = Instant::now();
        let timeouts = Arc::new(Mutex::new(Vec::new()));
        let failure = with_retries(
            "test",
            &policy(),
            &budget,
            &CallMetrics::default(),
            |_, timeout| {
                timeouts.lock().unwrap().push(timeout);
                std::future::pending::<Result<(), Status>>()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(failure.attempts, 3);
        assert_eq!(failure.status.code(), Code::DeadlineExceeded);
        // Each attempt was told it had 500 ms, and took exactly that.
        assert_eq!(
            *timeouts.lock().unwrap(),
            vec![Duration::from_millis(500); 3]
        );
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(1500 + 300), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_deadline_bounds_all_attempts_together() {
        let budget = RetryBudget::new(10, 0.1);
        let policy = RetryPolicy {
            max_attempts: 10,
            deadline: Duration::from_millis(1200),
            ..policy()
        };
        let started = Instant::now();
        let failure = with_retries("test", &policy, &budget, &CallMetrics::default(), |_, _| {
            std::future::pending::<Result<(), Status>>()
        })
        .await
        .unwrap_err();
        assert!(
            started.elapsed() <= Duration::from_millis(1200),
            "{:?}",
            started.elapsed()
        );
        assert!(failure.attempts < 10);
        assert_eq!(failure.status.code(), Code::DeadlineExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_backend_drains_the_budget_so_later_calls_make_one_attempt() {
        let budget = RetryBudget::new(10, 0.1);
        let mut attempts = Vec::new();
        for _ in 0..4 {
            let failure = with_retries(
                "test",
                &policy(),
                &budget,
                &CallMetrics::default(),
                |_, _| async { Err::<(), _>(unavailable()) },
            )
            .await
            .unwrap_err();
            attempts.push(failure.attempts);
        }
        // 10 tokens: 3 attempts (7 left), 2 attempts (5 left, no more retries), then 1 each.
        assert_eq!(attempts, vec![3, 2, 1, 1]);
        assert_eq!(
            with_retries(
                "test",
                &policy(),
                &budget,
                &CallMetrics::default(),
                |_, _| async { Err::<(), _>(unavailable()) }
            )
            .await
            .unwrap_err()
            .gave_up,
            GiveUp::BudgetExhausted
        );
    }
}
