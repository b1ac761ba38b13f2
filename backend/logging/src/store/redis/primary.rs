//! Where the Redis store's commands go: the one server a `redis://` URL names, or the primary
//! that Redis Sentinel names for a master, found again after a failover.
//!
//! One connection at a time is kept (commands are multiplexed on it). A command that fails on
//! it, for whatever reason (the server gone, a timeout, a `READONLY` answer from a server that
//! was made a replica), makes the store forget it, and the next command finds the primary
//! again: through the sentinels, which name the new primary once they have failed over.
//! Each connection has a generation, so that work begun on one primary is never completed on
//! another (see `replication.rs`).

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use redis::{
    Client, RedisError, Script,
    aio::MultiplexedConnection,
    sentinel::{Sentinel, SentinelNodeConnectionInfo},
};

/// How long one command may take before the store calls Redis unavailable (longer with a
/// wait for replicas: see `replication.rs`).
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long finding the primary and connecting to it may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The seq counter's floor, run on each new connection: `KEYS[1]` the counter, `ARGV[1]` the
/// newest seq this process has told of. A counter below it (a failover lost messages that
/// were told) is raised to it, so the next seq is one no one has seen. Answers how far it was
/// raised.
const FLOOR: &str = r"
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if seq < floor then
  redis.call('SET', KEYS[1], floor)
  return floor - seq
end
return 0
";

/// How the primary is found.
pub(crate) enum Locator {
    /// One server: always this one.
    Server(Client),
    /// The primary that the sentinels name for the master `master`; asked again for each new
    /// connection.
    Sentinel {
        /// The sentinels (their connections are kept between lookups).
        sentinels: tokio::sync::Mutex<Sentinel>,
        /// The master's name in the sentinels' configuration.
        master: String,
        /// The database to select on the primary.
        node: SentinelNodeConnectionInfo,
    },
}

/// A connection to the primary, and which one it is.
#[derive(Clone)]
pub(crate) struct Link {
    /// Commands go here.
    pub(crate) connection: MultiplexedConnection,
    /// The server it is to, for a connection of one's own (a blocking read, say).
    pub(crate) client: Arc<Client>,
    /// Which connection this is: a new one (even to the same server) has a higher number.
    pub(crate) generation: u64,
}

/// The current primary's connection, found and made on demand.
pub(crate) struct Primary {
    locator: Locator,
    /// The connection commands use, until one fails.
    current: Mutex<Option<Link>>,
    /// One lookup at a time: the commands that find no connection wait for the one being made.
    finding: tokio::sync::Mutex<u64>,
    /// [`FLOOR`], run on each new connection before it is used.
    floor: Script,
    /// The seq counter's key.
    seq_key: String,
    /// The newest seq this process has told of.
    told: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.locator {
            Locator::Server(client) => format!("{:?}", client.get_connection_info().addr()),
            Locator::Sentinel { master, .. } => format!("sentinel master {master:?}"),
        };
        f.debug_struct("Primary")
            .field("at", &how)
            .finish_non_exhaustive()
    }
}

impl Primary {
    /// The primary `locator` finds, whose seq counter (at `seq_key`) is kept at or above
    /// `told`, the newest seq this process has told of, on every new connection.
    pub(crate) fn new(
        locator: Locator,
        seq_key: String,
        told: tokio::sync::watch::Receiver<u64>,
    ) -> Self {
        Self {
            locator,
            current: Mutex::new(None),
            finding: tokio::sync::Mutex::new(0),
            floor: Script::new(FLOOR),
            seq_key,
            told,
        }
    }

    /// The connection to the primary, made (after finding the primary) if there is none.
    pub(crate) async fn link(&self) -> Result<Link, RedisError> {
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let mut generation = self.finding.lock().await;
        // Made by another caller while this one waited.
        if let Some(link) = self.current() {
            return Ok(link);
        }
        let client = self.find().await?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let told = *self.told.borrow();
        let () = self
            .floor
            .key(&self.seq_key)
            .arg(told)
            .invoke_async::<redis::Value>(&mut connection)
            .await
            .map(drop)?;
        *generation += 1;
        let link = Link {
            connection,
            client: Arc::new(client),
            generation: *generation,
        };
        *self.lock() = Some(link.clone());
        Ok(link)
    }

    /// Forgets the connection of `generation` after `error` on it (or on another connection
    /// to the same server), unless a newer one replaced it already: the next command finds the
    /// primary again.
    pub(crate) fn failed(&self, generation: u64, error: &RedisError) {
        let mut current = self.lock();
        if current
            .as_ref()
            .is_some_and(|held| held.generation == generation)
        {
            tracing::warn!(%error, generation, "a Redis command failed; finding the primary again");
            *current = None;
        }
    }

    fn current(&self) -> Option<Link> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Link>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The primary's client: the server, or the one the sentinels name now (checked to answer
    /// `ROLE` as a master).
    async fn find(&self) -> Result<Client, RedisError> {
        match &self.locator {
            Locator::Server(client) => Ok(client.clone()),
            Locator::Sentinel {
                sentinels,
                master,
                node,
            } => {
                let lookup = async {
                    let mut sentinels = sentinels.lock().await;
                    sentinels.async_master_for(master, Some(node)).await
                };
                let client = tokio::time::timeout(CONNECT_TIMEOUT, lookup)
                    .await
                    .map_err(|_| {
                        RedisError::from((
                            redis::ErrorKind::Io,
                            "the sentinels did not name a primary in time",
                        ))
                    })??;
                tracing::info!(master, at = ?client.get_connection_info().addr(), "the sentinels name the primary");
                Ok(client)
            }
        }
    }
}
