//! What one client may take of the facade, so no client takes everyone's share: a client is
//! its peer's IP address.
//!
//! - [`WatchSlots`]: at most so many open `Watch` streams per client, and one catch-up read at
//!   a time per client (on top of the few the feed allows at once), so a client that opens a
//!   thousand watchers from the first message waits its turn and others keep theirs.
//! - [`RateLimit`]: a token bucket per client (a rate, and a burst it may spend at once); a
//!   request over it is answered 429 with `Retry-After` (`RESOURCE_EXHAUSTED` over gRPC).
//!
//! Loopback clients are not limited unless asked (`--limit-loopback`): this machine's own tools
//! and benches, and a reverse proxy on it, are one "client" for everyone behind them. (They
//! still take their catch-up turns one at a time.)
//!
//! Both forget a client once it holds nothing and its bucket is full again, so memory follows
//! the clients active now, not every address ever seen.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{sync::Semaphore, time::Instant};
use tonic::Status;

/// Open `Watch` streams per client, and each client's turn to catch up.
#[derive(Debug)]
pub(crate) struct WatchSlots {
    /// The most streams one client may hold open.
    max_per_client: usize,
    /// Whether loopback clients are held to it too.
    loopback: bool,
    open: Mutex<HashMap<IpAddr, Slots>>,
}

#[derive(Debug)]
struct Slots {
    /// Streams open.
    open: usize,
    /// One catch-up read at a time for this client.
    catch_up: Arc<Semaphore>,
}

/// One open stream's place, given back when dropped.
#[derive(Debug)]
pub(crate) struct WatchSlot {
    slots: Arc<WatchSlots>,
    client: Option<IpAddr>,
    catch_up: Arc<Semaphore>,
}

impl WatchSlots {
    /// At most `max_per_client` streams per client, loopback clients included only when
    /// `loopback`.
    pub(crate) fn new(max_per_client: usize, loopback: bool) -> Arc<Self> {
        Arc::new(Self {
            max_per_client,
            loopback,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new stream of `client` (`None`: a client with no address, as in tests
    /// through a router with no socket: not limited), or `RESOURCE_EXHAUSTED` when it holds
    /// its share already.
    pub(crate) fn open(self: &Arc<Self>, client: Option<IpAddr>) -> Result<WatchSlot, Status> {
        let Some(ip) = client else {
            return Ok(WatchSlot {
                slots: Arc::clone(self),
                client: None,
                catch_up: Arc::new(Semaphore::new(1)),
            });
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let slots = open.entry(ip).or_insert_with(|| Slots {
            open: 0,
            catch_up: Arc::new(Semaphore::new(1)),
        });
        if slots.open >= self.max_per_client && (self.loopback || !ip.is_loopback()) {
            tracing::info!(client = %ip, open = slots.open, "watch refused: the client holds its share");
            return Err(Status::resource_exhausted(format!(
                "this address has {} live feeds open, the most one client may hold \
                 (--max-watches-per-client); close one first",
                slots.open
            )));
        }
        slots.open += 1;
        Ok(WatchSlot {
            slots: Arc::clone(self),
            client: Some(ip),
            catch_up: Arc::clone(&slots.catch_up),
        })
    }
}

impl WatchSlot {
    /// The client's turn to catch up: one read at a time per client.
    pub(crate) fn catch_up_turn(&self) -> &Arc<Semaphore> {
        &self.catch_up
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let Some(ip) = self.client else { return };
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slots) = open.get_mut(&ip) {
            slots.open = slots.open.saturating_sub(1);
            if slots.open == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// A rate per client: `rate` requests a second on average, up to `burst` at once.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// What is limited, for the answer: "messages", "status checks".
    what: &'static str,
    /// Tokens per second; 0 turns the limit off.
    rate: f64,
    /// The bucket's size.
    burst: f64,
    /// Whether loopback clients are limited too.
    loopback: bool,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones are forgotten.
const FORGET_AFTER: usize = 4096;

impl RateLimit {
    /// `rate` a second (0: no limit), `burst` at once, loopback clients limited only when
    /// `loopback`.
    pub(crate) fn new(what: &'static str, rate: f64, burst: f64, loopback: bool) -> Self {
        Self {
            what,
            rate,
            burst: burst.max(1.0),
            loopback,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`, or says how long until one is there.
    pub(crate) fn take(&self, client: Option<IpAddr>) -> Result<(), Limited> {
        let Some(ip) = client else { return Ok(()) };
        if self.rate <= 0.0 || (ip.is_loopback() && !self.loopback) {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= FORGET_AFTER {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, bucket| refill(*bucket, now, rate, burst) < burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = refill(*bucket, now, self.rate, self.burst);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - tokens) / self.rate);
        tracing::info!(client = %ip, what = self.what, "request over the client's rate refused");
        Err(Limited {
            what: self.what,
            rate: self.rate,
            retry_after: wait,
        })
    }
}

fn refill(bucket: Bucket, now: Instant, rate: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(burst)
}

/// A request over its client's rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limited {
    /// What is limited.
    pub(crate) what: &'static str,
    /// The rate, a second.
    pub(crate) rate: f64,
    /// How long until the next request would be taken.
    pub(crate) retry_after: Duration,
}

impl Limited {
    /// Whole seconds to wait, at least 1 (what `Retry-After` says).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const OTHER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));
    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[tokio::test(start_paused = true)]
    async fn a_client_spends_its_burst_then_its_rate_and_others_keep_theirs() {
        let limit = RateLimit::new("messages", 10.0, 5.0, false);
        for _ in 0..5 {
            limit.take(CLIENT).unwrap();
        }
        let limited = limit.take(CLIENT).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_millis(100));
        assert_eq!(limited.retry_after_secs(), 1);
        limit.take(OTHER).unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        limit.take(CLIENT).unwrap();
        assert!(limit.take(CLIENT).is_err());
        // Loopback and unknown clients are not limited; unless loopback is asked for.
        for _ in 0..100 {
            limit.take(LOCAL).unwrap();
            limit.take(None).unwrap();
        }
        let strict = RateLimit::new("messages", 10.0, 1.0, true);
        strict.take(LOCAL).unwrap();
        assert!(strict.take(LOCAL).is_err());
        // A rate of 0 is no limit.
        let off = RateLimit::new("messages", 0.0, 1.0, true);
        for _ in 0..100 {
            off.take(CLIENT).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_forgotten_once_there_are_many() {
        let limit = RateLimit::new("messages", 1000.0, 1.0, true);
        for n in 0..FORGET_AFTER as u32 {
            limit.take(Some(IpAddr::V4(n.into()))).unwrap();
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        limit.take(CLIENT).unwrap();
        assert_eq!(limit.buckets.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_streams_and_gets_them_back() {
        let slots = WatchSlots::new(2, false);
        let first = slots.open(CLIENT).unwrap();
        let _second = slots.open(CLIENT).unwrap();
        let refused = slots.open(CLIENT).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let _other = slots.open(OTHER).unwrap();
        drop(first);
        let _again = slots.open(CLIENT).unwrap();
        assert!(Arc::ptr_eq(_again.catch_up_turn(), _second.catch_up_turn()));
        drop((_again, _second, _other));
        assert!(
            slots.open.lock().unwrap().is_empty(),
            "nothing kept for idle clients"
        );
        // Loopback is held to it only when asked.
        let local: Vec<_> = (0..5).map(|_| slots.open(LOCAL).unwrap()).collect();
        let strict = WatchSlots::new(2, true);
        let _held = (strict.open(LOCAL).unwrap(), strict.open(LOCAL).unwrap());
        assert!(strict.open(LOCAL).is_err());
        drop(local);
    }
}
