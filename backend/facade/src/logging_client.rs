//! The facade's client of the logging service: the generated gRPC client on a lazily
//! connected channel, with every call made through [`with_retries`]. Messages travel in
//! `LogMessages` calls that carry whatever is being stored at the same time (see [`batch`]).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use msglog_proto::{
    MessageText,
    logging::{
        Empty, ListMessagesRequest, ListMessagesResponse, LogItem, LogRequest, STATUS_DUPLICATE,
        STATUS_LOGGED, WatchMessagesRequest, WatchMessagesResponse,
    },
};
use tonic::{Status, Streaming, metadata::MetadataValue};
use uuid::Uuid;

mod batch;
mod replicas;

use batch::Batcher;
pub(crate) use replicas::CallSettings;
use replicas::{Replica, Replicas, Tried};

use crate::{
    metrics::CallMetrics,
    retry::{Attempted, RetryBudget, RetryFailure, RetryPolicy, with_retries},
};

/// What logging did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logged {
    /// Stored by this call.
    Stored,
    /// Already held; nothing stored. With the id it is held under, when that is another id
    /// (the same text held under another id).
    Duplicate(Option<Uuid>),
}

/// A cheap-to-clone handle to the logging service.
#[derive(Debug, Clone)]
pub(crate) struct LoggingClient {
    /// The replicas, taking calls in turn.
    replicas: Arc<Replicas>,
    /// Sends concurrent `LogMessage` attempts together.
    batcher: Batcher,
    /// How writes (and the health check) are retried.
    policy: RetryPolicy,
    /// How reads are retried: with longer timeouts.
    read_policy: RetryPolicy,
    /// Shared by every write, so retries stop while logging is down.
    budget: Arc<RetryBudget>,
    /// The same for reads (lists, pages, the live feed's catch-up): a storm of reads that
    /// fail never leaves writes without retries.
    read_budget: Arc<RetryBudget>,
    /// What the calls did, for `/metrics` and the status answer.
    metrics: Arc<CallMetrics>,
    /// Set once logging answered `ListMessages` with `UNIMPLEMENTED` (the original's logging,
    /// which has none of the gateway's calls): lists are then read whole with `GetMessages`.
    /// (Its lack of `LogMessages` is the batcher's to know; of `WatchMessages`, the feed's,
    /// which keeps asking.)
    without_pages: Arc<AtomicBool>,
}

impl LoggingClient {
    /// A client of the logging replicas at `urls` (`http://host:port` each, at least one),
    /// whose health is checked every `check_every` when there are several, each called as
    /// `calls` says. Connects on first use, so the facade starts whether or not logging is up.
    pub(crate) fn new(
        urls: &[String],
        calls: &CallSettings,
        check_every: Duration,
        policy: RetryPolicy,
        read_policy: RetryPolicy,
        budget: RetryBudget,
        metrics: Arc<CallMetrics>,
    ) -> Result<Self, tonic::transport::Error> {
        let replicas = Replicas::new(
            urls,
            calls,
            policy.attempt_timeout,
            check_every,
            Arc::clone(&metrics),
        )?;
        Ok(Self {
            batcher: Batcher::start(Arc::clone(&replicas), Arc::clone(&metrics)),
            replicas,
            policy,
            read_policy,
            read_budget: Arc::new(budget.full_like()),
            budget: Arc::new(budget),
            metrics,
            without_pages: Arc::new(AtomicBool::new(false)),
        })
    }

    /// `status`, from a call to `replica`, as the caller sees it; a broken connection takes the
    /// replica out of the turn.
    fn failed(&self, replica: &Replica, status: Status) -> Status {
        let _broke = self.replicas.failed(replica, &status);
        connection_failure_is_unavailable(status)
    }

    /// Stores `text` under `id`, retrying with the same id. `request_id` is passed on in the
    /// `x-request-id` metadata.
    pub(crate) async fn log_message(
        &self,
        id: Uuid,
        text: &MessageText,
        request_id: &str,
    ) -> Result<Attempted<Logged>, RetryFailure> {
        let id = id.to_string();
        // Each attempt goes to a replica this call has not tried, while one is up.
        let tried = Arc::new(Tried::default());
        with_retries(
            "LogMessage",
            &self.policy,
            &self.budget,
            &self.metrics,
            |attempt, timeout| {
                let item = LogItem {
                    message: Some(LogRequest {
                        id: id.clone(),
                        message: text.as_str().to_owned(),
                    }),
                    request_id: request_id.to_owned(),
                    attempt,
                };
                let (id, tried) = (&id, &tried);
                async move {
                    let answer = match self.batcher.submit(item, tried, timeout).await {
                        Some(result) => result?,
                        // Logging is the original: the message goes alone.
                        None => {
                            let request = grpc_request(
                                LogRequest {
                                    id: id.clone(),
                                    message: text.as_str().to_owned(),
                                },
                                request_id,
                                attempt,
                                timeout,
                            );
                            // A turn of its own, among the replicas not tried yet.
                            let (index, replica) = self.replicas.pick(self.replicas.turn(), tried);
                            tried.add(index);
                            replica
                                .client
                                .clone()
                                .log_message(request)
                                .await
                                .map_err(|status| self.failed(replica, status))?
                                .into_inner()
                        }
                    };
                    match answer.status.as_str() {
                        STATUS_LOGGED => Ok(Logged::Stored),
                        // An id logging cannot give is no id (the original's logging gives none).
                        STATUS_DUPLICATE => {
                            Ok(Logged::Duplicate(Uuid::try_parse(&answer.held_id).ok()))
                        }
                        other => Err(Status::internal(format!(
                            "unexpected LogMessage status {other:?}"
                        ))),
                    }
                }
            },
        )
        .await
        .inspect(|logged| {
            self.metrics.logged(match logged.value {
                Logged::Stored => "stored",
                Logged::Duplicate(_) => "duplicate",
            });
        })
    }

    /// Asks each replica's gRPC health service whether it is serving: `Ok` if one is. One
    /// attempt each, bounded by the attempt timeout: a status check must answer quickly and not
    /// spend the retry budget.
    pub(crate) async fn health(&self) -> Result<(), String> {
        self.replicas.health().await
    }

    /// Every logged text, in insertion order.
    pub(crate) async fn get_messages(
        &self,
        request_id: &str,
    ) -> Result<Attempted<Vec<String>>, RetryFailure> {
        let (turn, tried) = (self.replicas.turn(), Tried::default());
        with_retries(
            "GetMessages",
            &self.read_policy,
            &self.read_budget,
            &self.metrics,
            |attempt, timeout| {
                let (index, replica) = self.replicas.pick(turn, &tried);
                tried.add(index);
                let request = grpc_request(Empty {}, request_id, attempt, timeout);
                async move {
                    let response = replica
                        .client
                        .clone()
                        .get_messages(request)
                        .await
                        .map_err(|status| self.failed(replica, status))?;
                    Ok(response.into_inner().messages)
                }
            },
        )
        .await
    }

    /// Whether logging turned out to have no `ListMessages` (the original's): lists must be
    /// read whole with [`LoggingClient::get_messages`].
    pub(crate) fn lacks_pages(&self) -> bool {
        self.without_pages.load(Ordering::Relaxed)
    }

    /// One page of stored messages (see `ListMessages`), retried like any read. An
    /// `UNIMPLEMENTED` answer is remembered ([`LoggingClient::lacks_pages`]).
    pub(crate) async fn list_messages(
        &self,
        page: ListMessagesRequest,
        request_id: &str,
    ) -> Result<Attempted<ListMessagesResponse>, RetryFailure> {
        let (turn, tried) = (self.replicas.turn(), Tried::default());
        let listed = with_retries(
            "ListMessages",
            &self.read_policy,
            &self.read_budget,
            &self.metrics,
            |attempt, timeout| {
                let (index, replica) = self.replicas.pick(turn, &tried);
                tried.add(index);
                let request = grpc_request(page, request_id, attempt, timeout);
                async move {
                    let response = replica
                        .client
                        .clone()
                        .list_messages(request)
                        .await
                        .map_err(|status| self.failed(replica, status))?;
                    Ok(response.into_inner())
                }
            },
        )
        .await;
        if let Err(failure) = &listed
            && failure.status.code() == tonic::Code::Unimplemented
        {
            tracing::info!("logging has no ListMessages (the original's): lists are read whole");
            self.without_pages.store(true, Ordering::Relaxed);
        }
        listed
    }

    /// One page of stored messages in one attempt, bounded by the attempt timeout, spending
    /// none of the retry budget: for the live feed, which retries with its own back-off.
    pub(crate) async fn list_messages_once(
        &self,
        page: ListMessagesRequest,
    ) -> Result<ListMessagesResponse, Status> {
        let mut request = tonic::Request::new(page);
        request.set_timeout(self.policy.attempt_timeout);
        self.once(|mut client| async move { client.list_messages(request).await })
            .await
    }

    /// Opens a `WatchMessages` stream from `after_seq`. One attempt, bounded by the attempt
    /// timeout until the stream opens (then unbounded): the caller reconnects with its own
    /// back-off.
    pub(crate) async fn watch_messages(
        &self,
        after_seq: u64,
    ) -> Result<Streaming<WatchMessagesResponse>, Status> {
        tracing::debug!(after_seq, "watching logging");
        self.once(|mut client| async move {
            client
                .watch_messages(WatchMessagesRequest { after_seq })
                .await
        })
        .await
    }

    /// One call to the replica whose turn it is, bounded by the attempt timeout (until its
    /// answer, or its stream, opens), with no retry.
    async fn once<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: FnOnce(replicas::Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let (_, replica) = self.replicas.pick(self.replicas.turn(), &Tried::default());
        let timeout = self.policy.attempt_timeout;
        tokio::time::timeout(timeout, call(replica.client.clone()))
            .await
            .map_err(|_| {
                Status::unavailable(format!("no answer within {} ms", timeout.as_millis()))
            })?
            .map(tonic::Response::into_inner)
            .map_err(|status| self.failed(replica, status))
    }
}

/// Treats a failure of the connection itself as `UNAVAILABLE`, as gRPC does.
///
/// tonic reports some connection failures with other codes: a request queued on a connection
/// that closed before it was sent comes back `CANCELLED` ("operation was canceled"), a reset
/// one `UNKNOWN` or `INTERNAL`. Such statuses are made on this side from a transport error,
/// which they keep as their `source`; a status sent by the server has none. Both calls here
/// are idempotent, so retrying after any connection failure is safe.
fn connection_failure_is_unavailable(status: Status) -> Status {
    use std::error::Error as _;
    let local = status.source().is_some();
    match status.code() {
        tonic::Code::Cancelled | tonic::Code::Unknown | tonic::Code::Internal if local => {
            Status::unavailable(format!(
                "connection to logging failed: {}",
                status.message()
            ))
        }
        _ => status,
    }
}

/// A request with the attempt's deadline (`grpc-timeout`) and the request id (settled by the
/// request-id rule, so short visible ASCII: it always fits in metadata).
fn grpc_request<T>(
    message: T,
    request_id: &str,
    attempt: u32,
    timeout: Duration,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    let metadata = request.metadata_mut();
    if let Ok(value) = MetadataValue::try_from(request_id) {
        metadata.insert("x-request-id", value);
    }
    // gRFC A6 names this header for the attempt number on retries.
    if attempt > 1 {
        metadata.insert(
            "grpc-previous-rpc-attempts",
            MetadataValue::from(attempt - 1),
        );
    }
    request
}
