//! Waits between tries that double after each failure up to a ceiling, and start again from
//! the first after a success: the one rule the page's live list and its outbox both follow.

use std::time::Duration;

/// The waits of one task that tries again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits of `first`, then twice as long each time, never more than `max`.
    pub(crate) const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The wait after a failure; the one after the next failure is twice as long.
    pub(crate) fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// A success: the next failure waits the first wait again.
    pub(crate) fn succeeded(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_a_ceiling_and_start_again_after_a_success() {
        let (first, max) = (Duration::from_millis(500), Duration::from_secs(5));
        let mut backoff = Backoff::new(first, max);
        let waits: Vec<_> = (0..6).map(|_| backoff.failed()).collect();
        assert_eq!(
            waits,
            [first, first * 2, first * 4, first * 8, max, max],
            "500 ms, 1 s, 2 s, 4 s, then 5 s"
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(), first);
        // However many failures, never past the ceiling.
        let mut long = Backoff::new(first, max);
        assert_eq!((0..200).map(|_| long.failed()).last(), Some(max));
    }
}
