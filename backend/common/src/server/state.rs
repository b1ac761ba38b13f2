//! What the server knows of one open connection: its requests in flight, its last activity,
//! whether its requests wait on bodies that do not come, and the signals that close it.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::limits::ConnectionLimits;

/// How long every request of a busy connection must have waited for its body, with no byte
/// coming, before the connection may be closed to make room for a new one (see the module
/// documentation).
pub const STALLED: Duration = Duration::from_secs(1);

/// What the server knows of one open connection.
#[derive(Debug)]
pub(super) struct ConnectionState {
    /// When the connection was accepted: the origin of `last_activity_ms`.
    pub(super) started: Instant,
    /// Requests being answered now (until their answer's body is finished or dropped).
    pub(super) in_flight: AtomicUsize,
    /// Requests begun on this connection.
    pub(super) served: AtomicU64,
    /// Milliseconds from `started` to the last start or end of a request.
    pub(super) last_activity_ms: AtomicU64,
    /// Woken to ask the connection to close and free its slot.
    pub(super) evict: Notify,
    /// Requests in flight whose body has not all come yet.
    pub(super) receiving: AtomicUsize,
    /// Milliseconds from `started` to the last byte of a request body (or the start of a
    /// request that has one).
    pub(super) body_progress_ms: AtomicU64,
    /// Woken when the first request starts: the connection's deadline changes from the
    /// header-read timeout to the idle timeout, which may be shorter. (Later requests only
    /// move the deadline later, which the watch finds when it wakes.)
    pub(super) first_request: Notify,
}

impl ConnectionState {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(0),
            receiving: AtomicUsize::new(0),
            body_progress_ms: AtomicU64::new(0),
            evict: Notify::new(),
            first_request: Notify::new(),
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn touch(&self) {
        self.last_activity_ms
            .store(self.elapsed_ms(), Ordering::SeqCst);
    }

    pub(super) fn body_progressed(&self) {
        self.body_progress_ms
            .store(self.elapsed_ms(), Ordering::SeqCst);
    }

    /// Since when every request in flight has waited for its body, if they all have and it
    /// has been at least [`STALLED`].
    pub(super) fn stalled_since(&self) -> Option<Instant> {
        let in_flight = self.in_flight();
        if in_flight == 0 || self.receiving.load(Ordering::SeqCst) < in_flight {
            return None;
        }
        let since =
            self.started + Duration::from_millis(self.body_progress_ms.load(Ordering::SeqCst));
        (since + STALLED <= Instant::now()).then_some(since)
    }

    pub(super) fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.last_activity_ms.load(Ordering::SeqCst))
    }

    /// When the connection will have been quiet too long if nothing happens: a header-read
    /// timeout after it opened (before its first request), an idle timeout after its last
    /// request otherwise. While a request is in flight, the question is asked again later.
    pub(super) fn quiet_deadline(&self, limits: &ConnectionLimits) -> Instant {
        if self.in_flight() > 0 {
            return Instant::now() + limits.idle_timeout;
        }
        let quiet_for = if self.served.load(Ordering::SeqCst) == 0 {
            limits.header_read_timeout
        } else {
            limits.idle_timeout
        };
        self.last_activity() + quiet_for
    }
}
