//! The retry budget: a token bucket shared by every request (gRFC A6 "retry throttling").

use std::sync::atomic::{AtomicU32, Ordering};

/// A token bucket that stops retries while most calls fail (gRFC A6 "retry throttling").
///
/// It starts full with `max_tokens`. Every failed attempt takes one token; every successful
/// call gives back `token_ratio`. Retries are allowed only while more than half the tokens
/// are left. So while a backend is down each request makes a single attempt, and once calls
/// succeed again the bucket refills and retries resume. Kept in thousandths of a token in an
/// atomic, so it is shared by all requests without a lock.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    /// Thousandths of a token held now.
    milli_tokens: AtomicU32,
    /// Capacity, in thousandths.
    max_milli_tokens: u32,
    /// What a success gives back, in thousandths.
    milli_ratio: u32,
}

impl RetryBudget {
    /// A full bucket of `max_tokens` tokens refilled by `token_ratio` per success
    /// (gRPC's defaults are 10 and 0.1).
    pub(crate) fn new(max_tokens: u32, token_ratio: f64) -> Self {
        let max_milli_tokens = max_tokens.saturating_mul(1000);
        let milli_ratio = (token_ratio.clamp(0.0, f64::from(max_tokens)) * 1000.0).round() as u32;
        Self {
            milli_tokens: AtomicU32::new(max_milli_tokens),
            max_milli_tokens,
            milli_ratio,
        }
    }

    /// Another full bucket of the same size and refill: for calls that must not spend this
    /// one's tokens.
    pub(crate) fn full_like(&self) -> Self {
        Self {
            milli_tokens: AtomicU32::new(self.max_milli_tokens),
            max_milli_tokens: self.max_milli_tokens,
            milli_ratio: self.milli_ratio,
        }
    }

    /// Tokens left.
    #[cfg(test)]
    pub(crate) fn tokens(&self) -> f64 {
        f64::from(self.milli_tokens.load(Ordering::Relaxed)) / 1000.0
    }

    /// Whether a retry may be made now.
    pub(crate) fn allows_retry(&self) -> bool {
        self.milli_tokens.load(Ordering::Relaxed) > self.max_milli_tokens / 2
    }

    /// Records a failed attempt.
    pub(crate) fn record_failure(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                Some(tokens.saturating_sub(1000))
            });
    }

    /// Records a successful call.
    pub(crate) fn record_success(&self) {
        let _ = self
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                Some(
                    tokens
                        .saturating_add(self.milli_ratio)
                        .min(self.max_milli_tokens),
                )
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_retries_only_above_half_and_refills_on_success() {
        let budget = RetryBudget::new(10, 0.1);
        assert!(budget.allows_retry());
        for _ in 0..4 {
            budget.record_failure();
        }
        assert!(budget.allows_retry(), "6 tokens left");
        budget.record_failure();
        assert!(
            !budget.allows_retry(),
            "5 tokens left is not more than half"
        );
        budget.record_success();
        assert!(budget.allows_retry(), "5.1 tokens");
        for _ in 0..100 {
            budget.record_success();
        }
        assert_eq!(budget.tokens(), 10.0, "never above max");
        for _ in 0..100 {
            budget.record_failure();
        }
        assert_eq!(budget.tokens(), 0.0, "never below zero");
    }
}
