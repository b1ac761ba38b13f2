//! Acknowledged means replicated: before an insert is answered, and before the log's tail
//! tells watchers of a message, the primary's replicas confirm they hold it.
//!
//! Redis replicates one ordered stream of writes, so a replica that holds a write holds every
//! write before it. A round here is one write (`INCR` of a key of its own) and a `WAIT` for
//! `replicas` replicas to confirm it; every insert answered (and every tail read) before the
//! round began is then confirmed too. Rounds are shared, as a group commit: those who ask
//! while one runs share the next, so a round costs one trip to the replicas however many wait
//! on it. A round runs on a connection of its own (a `WAIT` holds its connection), to the
//! same primary as the work it confirms: work done on an earlier connection (an earlier
//! primary, perhaps) is never confirmed by a later one, and is answered `UNAVAILABLE` (the
//! facade sends it again, with the same id).

use std::{sync::Arc, time::Duration};

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use super::primary::{CONNECT_TIMEOUT, Primary, RESPONSE_TIMEOUT};
use crate::store::StoreError;

/// How many requests may wait for the next round before askers wait to ask.
const QUEUED: usize = 4096;

/// What a round confirms: that much was replicated, or why not.
type Outcome = Result<(), StoreError>;

/// A request: the connection generation the work was done on, and where to answer.
type Request = (u64, oneshot::Sender<Outcome>);

/// Confirms that writes are held by the replicas (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Replication {
    requests: mpsc::Sender<Request>,
}

/// How many replicas must confirm a write, and how long they have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acks {
    /// Replicas that must hold a write before it is acknowledged (0: none, no waiting).
    pub replicas: u32,
    /// How long they have to confirm it.
    pub timeout: Duration,
}

impl Replication {
    /// Starts the rounds (until `stop`), on connections to `primary`, with the round's key
    /// `key`.
    pub(crate) fn start(
        primary: Arc<Primary>,
        key: String,
        acks: Acks,
        stop: tokio_util::sync::CancellationToken,
    ) -> Self {
        let (requests, queue) = mpsc::channel(QUEUED);
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = rounds(primary, key, acks, queue) => {}
            }
        });
        Self { requests }
    }

    /// Waits until what was written on the connection of `generation`, up to now, is held by
    /// the replicas.
    pub(crate) async fn confirmed(&self, generation: u64) -> Outcome {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the store is closed".to_owned());
        self.requests
            .send((generation, answer))
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Takes the requests in rounds: all those waiting when a round begins share it.
async fn rounds(
    primary: Arc<Primary>,
    key: String,
    acks: Acks,
    mut queue: mpsc::Receiver<Request>,
) {
    // The round's own connection, and the generation of the primary's connection it was made
    // beside.
    let mut own: Option<(u64, MultiplexedConnection)> = None;
    while let Some(first) = queue.recv().await {
        let mut waiting = vec![first];
        while let Ok(more) = queue.try_recv() {
            waiting.push(more);
        }
        let outcome = round(&primary, &key, acks, &mut own).await;
        for (generation, answer) in waiting {
            let outcome = match &outcome {
                Ok(confirmed) if *confirmed == generation => Ok(()),
                Ok(_) => Err(StoreError::Unavailable(
                    "written to a primary that is no longer the store's; not known to be replicated"
                        .to_owned(),
                )),
                Err(error) => Err(StoreError::Unavailable(error.clone())),
            };
            // The asker may have gone (its call cancelled): no one to tell.
            let _ = answer.send(outcome);
        }
    }
}

/// One round: a write and a `WAIT` on the current primary. Answers the generation of the
/// primary's connection it confirms writes on.
async fn round(
    primary: &Primary,
    key: &str,
    acks: Acks,
    own: &mut Option<(u64, MultiplexedConnection)>,
) -> Result<u64, String> {
    let link = primary
        .link()
        .await
        .map_err(|error| format!("Redis: {error}"))?;
    let connection = match own {
        Some((generation, connection)) if *generation == link.generation => connection,
        _ => {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(acks.timeout + RESPONSE_TIMEOUT));
            let connection = link
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|error| format!("Redis: {error}"))?;
            &mut own.insert((link.generation, connection)).1
        }
    };
    let answer: Result<(u64, u32), _> = redis::pipe()
        .cmd("INCR")
        .arg(key)
        .cmd("WAIT")
        .arg(acks.replicas)
        .arg(u64::try_from(acks.timeout.as_millis()).unwrap_or(u64::MAX))
        .query_async(connection)
        .await;
    match answer {
        Ok((_, held)) if held >= acks.replicas => Ok(link.generation),
        Ok((_, held)) => Err(format!(
            "stored on the primary, but {held} of the {} replicas asked for confirmed it within {} ms",
            acks.replicas,
            acks.timeout.as_millis()
        )),
        Err(error) => {
            *own = None;
            primary.failed(link.generation, &error);
            Err(format!("Redis: {error}"))
        }
    }
}
