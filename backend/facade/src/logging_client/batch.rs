//! Attempts at storing messages that are made at the same time, sent to logging together in
//! one `LogMessages` call.
//!
//! Each attempt is queued here, and one task takes what is queued whenever one of a few call
//! slots is free. Under light load a message goes alone and at once; under heavy load the
//! messages that arrive while the earlier calls are out go together in the next one, so one
//! gRPC round trip (and, on SQLite, one commit) serves many. Nothing waits to fill a batch.
//!
//! An item is one attempt: retries, timeouts and the retry budget stay per message, in
//! [`with_retries`](crate::retry::with_retries), and each item carries its request id and
//! attempt number, so logging traces it as it traces a `LogMessage` call.
//!
//! A logging without `LogMessages` (the original) answers the first call `UNIMPLEMENTED`;
//! from then on [`Batcher::submit`] says so and the caller sends each message alone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use msglog_proto::{
    limits::PageBudget,
    logging::{LogItem, LogMessagesRequest, LogResponse, LogResult, MAX_LOG_ITEMS},
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    time::Instant,
};
use tonic::{Code, Status};

use super::{Replicas, Tried, connection_failure_is_unavailable};
use crate::metrics::CallMetrics;

/// `LogMessages` calls out at once: two, so that one call is being answered while the next
/// is on its way, and under load each call carries many messages. (Measured with 32 clients
/// on the memory store: 1, 2, 4 and 8 calls gave 13.5, 12.9, 11.0 and 10.3 thousand
/// messages a second, and the batches shrank as the calls grew.)
const CALLS_IN_FLIGHT: usize = 2;
/// The most messages one call carries.
const MAX_CALL_ITEMS: usize = 256;
const _: () = assert!(MAX_CALL_ITEMS <= MAX_LOG_ITEMS);

/// One attempt waiting to be sent.
struct Queued {
    /// What is sent.
    item: LogItem,
    /// The replicas its call has tried: this call goes to another while there is one, and
    /// adds the ones it tried.
    tried: Arc<Tried>,
    /// When the attempt times out: the call's deadline is the latest of its items'.
    deadline: Instant,
    /// Where its result goes; closed when the attempt timed out or its request went away.
    reply: oneshot::Sender<Result<LogResponse, Status>>,
}

/// Hands attempts to the task that sends them (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    /// To the sending task, which ends when every `Batcher` is dropped. Unbounded, yet never
    /// longer than the requests in flight: each holds at most one attempt here.
    queue: mpsc::UnboundedSender<Queued>,
    /// Set once logging answered `LogMessages` with `UNIMPLEMENTED`.
    unsupported: Arc<AtomicBool>,
    /// Counts what waits in the queue.
    metrics: Arc<CallMetrics>,
}

impl Batcher {
    /// Starts the sending task (on the current tokio runtime).
    pub(crate) fn start(replicas: Arc<Replicas>, metrics: Arc<CallMetrics>) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        let unsupported = Arc::new(AtomicBool::new(false));
        tokio::spawn(send_queued(
            queued,
            replicas,
            Arc::clone(&unsupported),
            Arc::clone(&metrics),
        ));
        Self {
            queue,
            unsupported,
            metrics,
        }
    }

    /// Whether logging is known to lack `LogMessages`.
    pub(crate) fn unsupported(&self) -> bool {
        self.unsupported.load(Ordering::Relaxed)
    }

    /// Sends `item` in the next call (which gives up `timeout` from now, unless a later item
    /// in it may wait longer) and waits for its result: what `LogMessage` would answer, or the
    /// status the item failed with. `None` when logging lacks
    /// `LogMessages`: the caller sends the message alone, in the same attempt.
    pub(crate) async fn submit(
        &self,
        item: LogItem,
        tried: &Arc<Tried>,
        timeout: Duration,
    ) -> Option<Result<LogResponse, Status>> {
        if self.unsupported() {
            return None;
        }
        let (reply, result) = oneshot::channel();
        let queued = Queued {
            item,
            tried: Arc::clone(tried),
            deadline: Instant::now() + timeout,
            reply,
        };
        self.metrics.batch_queued(1);
        if self.queue.send(queued).is_err() {
            self.metrics.batch_queued(-1);
            return Some(Err(Status::unavailable("the facade is stopping")));
        }
        match result.await {
            Ok(result) => Some(result),
            // Dropped unanswered: the call found logging lacks `LogMessages` (the caller sends
            // the message alone), or ran out of time (as this attempt has, by now).
            Err(_) if self.unsupported() => None,
            Err(_) => Some(Err(Status::deadline_exceeded(format!(
                "no answer within {} ms",
                timeout.as_millis()
            )))),
        }
    }
}

/// The sending task: whenever a call slot is free, everything queued (up to a call's limits)
/// goes in one call.
async fn send_queued(
    mut queued: mpsc::UnboundedReceiver<Queued>,
    replicas: Arc<Replicas>,
    unsupported: Arc<AtomicBool>,
    metrics: Arc<CallMetrics>,
) {
    let slots = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
    let mut carried: Option<Queued> = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match queued.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        // Waiting for a slot is what lets a batch form: meanwhile the queue fills.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Filled as a page is (its byte budget, the first always taken), so logging decodes
        // every call it is sent (`limits::log_call_decoding_limit`).
        let mut budget = PageBudget::new();
        budget.admit(text_bytes(&first));
        let mut batch = vec![first];
        while batch.len() < MAX_CALL_ITEMS {
            let Ok(next) = queued.try_recv() else { break };
            if !budget.admit(text_bytes(&next)) {
                carried = Some(next);
                break;
            }
            batch.push(next);
        }
        metrics.batch_queued(-i64::try_from(batch.len()).unwrap_or(i64::MAX));
        // Attempts that timed out meanwhile are not sent.
        batch.retain(|queued| !queued.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        tokio::spawn(send(
            batch,
            Arc::clone(&replicas),
            Arc::clone(&unsupported),
            Arc::clone(&metrics),
            slot,
        ));
    }
}

/// The length of the text an attempt carries.
fn text_bytes(queued: &Queued) -> usize {
    queued
        .item
        .message
        .as_ref()
        .map_or(0, |message| message.message.len())
}

/// One `LogMessages` call, to the replica whose turn it is among those no item's call has tried
/// (while one is up): each item's result to its attempt, and the replicas tried to its call.
async fn send(
    batch: Vec<Queued>,
    replicas: Arc<Replicas>,
    unsupported: Arc<AtomicBool>,
    metrics: Arc<CallMetrics>,
    _slot: OwnedSemaphorePermit,
) {
    let deadline = batch
        .iter()
        .map(|queued| queued.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    metrics.batch_sent(batch.len());
    let avoid = Tried::default();
    for queued in &batch {
        avoid.add_all(&queued.tried);
    }
    let (mut items, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|queued| (queued.item, (queued.reply, queued.tried)))
        .unzip();

    // A call whose connection broke goes at once to the next replica that is up, as the same
    // attempt of each item: the replica is gone, not failing, so this spends no retry (as gRPC's
    // transparent retries do not); the items are idempotent.
    let turn = replicas.turn();
    let mut tries: u32 = 0;
    let answer = loop {
        tries += 1;
        let (index, replica) = replicas.pick(turn, &avoid);
        // Each item's call learns it now, whatever the outcome (a timeout included).
        avoid.add(index);
        for (_, tried) in &replies {
            tried.add(index);
        }
        let more_to_try = replicas.len() > 1 && (tries as usize) < replicas.len();
        let sent = if more_to_try {
            items.clone()
        } else {
            std::mem::take(&mut items)
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        let mut request = tonic::Request::new(LogMessagesRequest { items: sent });
        request.set_timeout(timeout);
        let mut client = replica.client.clone();
        match tokio::time::timeout(timeout, client.log_messages(request)).await {
            Ok(Ok(answer)) => break Ok(answer.into_inner()),
            Ok(Err(status)) => {
                let broke = replicas.failed(replica, &status);
                if broke && more_to_try && replicas.any_up() {
                    tracing::info!(
                        replica = %replica.url,
                        messages = replies.len(),
                        "the call's connection broke: sending it to the next replica"
                    );
                    continue;
                }
                break Err(status);
            }
            // Every attempt in the call has timed out by now, and gone.
            Err(_elapsed) => return,
        }
    };
    match answer {
        Ok(answer) if answer.results.len() == replies.len() => {
            for ((reply, _), result) in replies.into_iter().zip(answer.results) {
                // An attempt that timed out meanwhile is gone; its result with it.
                let _ = reply.send(item_result(result));
            }
        }
        Ok(answer) => {
            let status = Status::internal(format!(
                "LogMessages answered {} results for {} items",
                answer.results.len(),
                replies.len()
            ));
            for (reply, _) in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
        Err(status) if status.code() == Code::Unimplemented => {
            if !unsupported.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    "logging has no LogMessages (it is the original's): each message goes alone"
                );
            }
            // The replies are dropped unanswered: each attempt goes alone instead.
        }
        Err(status) => {
            let status = connection_failure_is_unavailable(status);
            for (reply, _) in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

/// One item's result as `LogMessage` would have answered it.
fn item_result(result: LogResult) -> Result<LogResponse, Status> {
    match Code::from(result.code) {
        Code::Ok => Ok(LogResponse {
            status: result.status,
            held_id: result.held_id,
        }),
        code => Err(Status::new(code, result.status)),
    }
}
