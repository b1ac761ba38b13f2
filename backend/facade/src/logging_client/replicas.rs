//! The logging replicas the facade calls (`--logging-url`, once or several times): a channel
//! to each, calls taken in turn by the replicas that are up, each retry on one the call has not
//! tried while there is one (whatever other calls took their turns meanwhile), and
//! a health check of each that takes a failing replica out of the turn and brings it back
//! once it serves again.
//!
//! With one replica none of this shows: it is always the one called.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use msglog_common::secret::Secret;
use msglog_proto::logging::logging_service_client::LoggingServiceClient;
use tonic::{
    Status,
    metadata::{Ascii, MetadataValue},
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::connection_failure_is_unavailable;
use crate::{codes::status_text, metrics::CallMetrics};

/// How the facade's clients call logging, whichever replica.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallSettings {
    /// The longest text the facade takes: each client decodes pages of such texts
    /// ([`msglog_proto::limits`]).
    pub(crate) max_message_bytes: usize,
    /// The token logging requires, presented on every call but the health check.
    pub(crate) token: Option<Secret>,
    /// How `https://` replicas are trusted: their CA (PEM), or the system's roots when `None`.
    pub(crate) ca: Option<Vec<u8>>,
}

impl CallSettings {
    /// TLS for an `https://` replica (HTTP/2 by ALPN, the name checked against the URL's host).
    fn tls(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new();
        match &self.ca {
            Some(ca) => config.ca_certificate(tonic::transport::Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        }
    }
}

/// Puts the token in every call's metadata (`authorization: Bearer TOKEN`), when there is one.
#[derive(Debug, Clone)]
pub(crate) struct Authorize(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Authorize {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// The generated client of one replica, on its channel, presenting the token.
pub(crate) type Client = LoggingServiceClient<InterceptedService<Channel, Authorize>>;

/// One logging process.
#[derive(Debug)]
pub(crate) struct Replica {
    /// Where it is, as configured.
    pub(crate) url: String,
    /// Its gRPC client, on a channel that reconnects on demand.
    pub(crate) client: Client,
    /// Its standard gRPC health client, on the same channel.
    health: HealthClient<Channel>,
    /// Whether it takes its turn: cleared when a call finds its connection broken or its
    /// health check fails, set when its health check passes.
    up: AtomicBool,
}

/// The replicas a call has tried (replica `i` is bit `i % 64`: with more than 64 replicas, one
/// that shares a bit with a replica tried is passed over too). Shared by the call's attempts,
/// which may run on another task (the batcher's).
#[derive(Debug, Default)]
pub(crate) struct Tried(AtomicU64);

impl Tried {
    fn bit(index: usize) -> u64 {
        1 << (index % 64)
    }

    fn bits(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Marks replica `index` tried.
    pub(crate) fn add(&self, index: usize) {
        self.0.fetch_or(Self::bit(index), Ordering::Relaxed);
    }

    /// Adds what `other` tried.
    pub(crate) fn add_all(&self, other: &Self) {
        self.0.fetch_or(other.bits(), Ordering::Relaxed);
    }
}

impl Replica {
    /// Whether it takes its turn.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks its health service whether it is serving, within `timeout`.
    async fn check(&self, timeout: Duration) -> Result<(), String> {
        let mut health = self.health.clone();
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request.set_timeout(timeout);
        match tokio::time::timeout(timeout, health.check(request)).await {
            Ok(Ok(answer)) => match answer.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(other.as_str_name().to_owned()),
            },
            Ok(Err(status)) => Err(status_text(&connection_failure_is_unavailable(status))),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    /// Records what a health check found, saying so when it changes the replica's state;
    /// says whether it did.
    fn checked(&self, result: &Result<(), String>) -> bool {
        let up = result.is_ok();
        let changed = self.up.swap(up, Ordering::Relaxed) != up;
        if changed {
            match result {
                Ok(()) => tracing::info!(replica = %self.url, "logging replica back in turn"),
                Err(reason) => {
                    tracing::warn!(replica = %self.url, %reason, "logging replica out of turn");
                }
            }
        }
        changed
    }
}

/// Every replica, and whose turn is next.
#[derive(Debug)]
pub(crate) struct Replicas {
    list: Vec<Replica>,
    next: AtomicUsize,
    /// How long a health check may take.
    check_timeout: Duration,
    /// Counts the replicas in turn.
    metrics: Arc<CallMetrics>,
}

impl Replicas {
    /// Channels to each of `urls` (at least one), connecting on first use, each connect
    /// bounded by `connect_timeout`. With more than one, a task checks each replica's health
    /// every `check_every` for as long as the replicas are in use. Each client calls as `calls`
    /// says.
    pub(crate) fn new(
        urls: &[String],
        calls: &CallSettings,
        connect_timeout: Duration,
        check_every: Duration,
        metrics: Arc<CallMetrics>,
    ) -> Result<Arc<Self>, tonic::transport::Error> {
        let token = calls.token.as_ref().and_then(|token| {
            let mut value = MetadataValue::try_from(token.bearer().as_bytes()).ok()?;
            value.set_sensitive(true);
            Some(value)
        });
        let list = urls
            .iter()
            .map(|url| {
                let mut endpoint = Endpoint::from_shared(url.clone())?;
                if endpoint.uri().scheme_str() == Some("https") {
                    endpoint = endpoint.tls_config(calls.tls())?;
                }
                let channel = endpoint
                    // A refused or silent connect fails within one attempt's time, not the OS's.
                    .connect_timeout(connect_timeout)
                    .tcp_nodelay(true)
                    // Find a half-dead connection (peer gone without a FIN) between requests,
                    // so the next request reconnects instead of waiting on it.
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .keep_alive_while_idle(false)
                    .connect_lazy();
                Ok(Replica {
                    url: url.clone(),
                    client: LoggingServiceClient::with_interceptor(
                        channel.clone(),
                        Authorize(token.clone()),
                    )
                    .max_decoding_message_size(
                        msglog_proto::limits::page_decoding_limit(calls.max_message_bytes),
                    ),
                    health: HealthClient::new(channel),
                    up: AtomicBool::new(true),
                })
            })
            .collect::<Result<Vec<_>, tonic::transport::Error>>()?;
        let replicas = Arc::new(Self {
            list,
            next: AtomicUsize::new(0),
            check_timeout: connect_timeout,
            metrics,
        });
        replicas.metrics.replicas_up(replicas.list.len());
        if replicas.list.len() > 1 {
            tokio::spawn(check_health(Arc::downgrade(&replicas), check_every));
        }
        Ok(replicas)
    }

    /// A new call's turn: where its first attempt goes.
    pub(crate) fn turn(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The replica for the call whose turn is `turn` and which has tried `tried`: the turn's
    /// among the replicas that are up and not tried; once every replica up was tried, among
    /// those up; when none is up, among all of them (a stale health check must not stop every
    /// call). The call then marks it tried ([`Tried::add`]).
    pub(crate) fn pick(&self, turn: usize, tried: &Tried) -> (usize, &Replica) {
        let tried = tried.bits();
        let untried = |index: usize| tried & Tried::bit(index) == 0;
        let index = self
            .nth_where(turn, |index, replica| replica.is_up() && untried(index))
            .or_else(|| self.nth_where(turn, |_, replica| replica.is_up()))
            .unwrap_or(turn % self.list.len());
        (index, &self.list[index])
    }

    /// The index of the `turn`th replica (counting around) of those that `keep`.
    fn nth_where(&self, turn: usize, keep: impl Fn(usize, &Replica) -> bool) -> Option<usize> {
        let kept = || {
            self.list
                .iter()
                .enumerate()
                .filter(|(index, replica)| keep(*index, replica))
                .map(|(index, _)| index)
        };
        let count = kept().count();
        kept().nth(turn.checked_rem(count)?)
    }

    /// How many replicas there are.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether any replica takes its turn.
    pub(crate) fn any_up(&self) -> bool {
        self.list.iter().any(Replica::is_up)
    }

    /// A call to `replica` failed with `status`: if its connection broke (the replica is gone,
    /// not merely failing a call), it leaves the turn until its health check passes. Says
    /// whether the connection broke.
    pub(crate) fn failed(&self, replica: &Replica, status: &Status) -> bool {
        use std::error::Error as _;
        let broke = status.source().is_some();
        if broke && self.list.len() > 1 && replica.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                replica = %replica.url,
                reason = %status.message(),
                "logging replica out of turn"
            );
            self.counted();
        }
        broke
    }

    /// Tells the metrics how many replicas are in turn.
    fn counted(&self) {
        let up = self.list.iter().filter(|replica| replica.is_up()).count();
        self.metrics.replicas_up(up);
    }

    /// Whether any replica is serving now, asked of each at once: `Ok` if one is, otherwise
    /// why each is not.
    pub(crate) async fn health(&self) -> Result<(), String> {
        let results = futures_util::future::join_all(
            self.list
                .iter()
                .map(|replica| replica.check(self.check_timeout)),
        )
        .await;
        let mut changed = false;
        for (replica, result) in self.list.iter().zip(&results) {
            changed |= replica.checked(result);
        }
        if changed {
            self.counted();
        }
        if results.iter().any(Result::is_ok) {
            return Ok(());
        }
        let reasons: Vec<String> = match self.list.as_slice() {
            [_] => results.into_iter().filter_map(Result::err).collect(),
            _ => self
                .list
                .iter()
                .zip(results)
                .filter_map(|(replica, result)| {
                    result
                        .err()
                        .map(|reason| format!("{}: {reason}", replica.url))
                })
                .collect(),
        };
        Err(reasons.join("; "))
    }
}

/// Checks every replica every `every`, for as long as the replicas are in use.
async fn check_health(replicas: Weak<Replicas>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(replicas) = replicas.upgrade() else {
            return;
        };
        // The answer is in each replica's state.
        let _ = replicas.health().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn three() -> Arc<Replicas> {
        let urls: Vec<String> = (1..=3).map(|n| format!("http://127.0.0.1:{n}")).collect();
        Replicas::new(
            &urls,
            &CallSettings::default(),
            Duration::from_secs(1),
            // No health check runs during the test: the test sets who is up.
            Duration::from_secs(3600),
            Arc::new(CallMetrics::default()),
        )
        .unwrap()
    }

    /// The replicas a call's attempts go to, with `between` run before each retry.
    fn attempts(
        replicas: &Replicas,
        turn: usize,
        count: usize,
        between: impl Fn(usize),
    ) -> Vec<usize> {
        let tried = Tried::default();
        (0..count)
            .map(|n| {
                if n > 0 {
                    between(n);
                }
                let (index, _) = replicas.pick(turn, &tried);
                tried.add(index);
                index
            })
            .collect()
    }

    #[tokio::test]
    async fn each_retry_goes_to_a_replica_the_call_has_not_tried_while_one_is_up() {
        let replicas = three().await;
        for turn in 0..6 {
            let mut went = attempts(&replicas, turn, 3, |_| {});
            assert_eq!(went[0], turn % 3, "the first attempt takes the call's turn");
            went.sort_unstable();
            assert_eq!(went, [0, 1, 2], "turn {turn}");
        }
        // A replica that leaves the turn between attempts shifts nothing back onto one tried:
        // the second attempt goes to the one replica neither tried nor out.
        for turn in 0..6 {
            let first = turn % 3;
            let went = attempts(&replicas, turn, 2, |_| {
                let out = (first + 2) % 3;
                replicas.list[out].up.store(false, Ordering::Relaxed);
            });
            assert_eq!(went, [first, (first + 1) % 3], "turn {turn}");
            for replica in &replicas.list {
                replica.up.store(true, Ordering::Relaxed);
            }
        }
        // Every replica up tried: the turn's among those up; none up: among all.
        let tried = Tried::default();
        (0..3).for_each(|index| tried.add(index));
        assert_eq!(replicas.pick(4, &tried).0, 1);
        replicas.list[1].up.store(false, Ordering::Relaxed);
        assert_eq!(
            replicas.pick(4, &Tried::default()).0,
            0,
            "the turn among 0 and 2"
        );
        for replica in &replicas.list {
            replica.up.store(false, Ordering::Relaxed);
        }
        assert_eq!(replicas.pick(4, &Tried::default()).0, 1);
    }
}
