//! Messages in Redis, shared by every logging process that names the same server: the store
//! for several replicas. The server is one `redis-server`, or a primary with replicas that
//! Redis Sentinel watches and fails over (`primary.rs`: finding the primary, again after a
//! failover; `replication.rs`: acknowledging a write only once replicas hold it).
//!
//! Five keys, with one hash tag so that a cluster keeps them on one node:
//! - `{msglog}:log`, a stream: one entry per message, `id` and `text`, under the entry id
//!   `0-<seq>`, so the stream's order is the insertion order and a page is one range read;
//! - `{msglog}:seq`, the counter that gives each message its seq;
//! - `{msglog}:ids`, a hash from each id to its text (the id rule, and conflicts);
//! - `{msglog}:texts`, a hash from each text to the first id stored with it (the text rule);
//! - `{msglog}:acks`, the counter that rounds of replication confirmation write.
//!
//! An insert is one Lua script, which Redis runs atomically: the checks, the next seq and the
//! writes happen with nothing in between, whichever replica sent it. Every replica tails the
//! stream with a blocking `XREAD` on a connection of its own and tells its watchers of each
//! message, so a watcher on any replica sees the writes of all of them.
//!
//! What a stored message survives is Redis's own setting: with `appendonly yes` and
//! `appendfsync always`, Redis writes and fsyncs the script's writes before it answers. With
//! [`Acks::replicas`] above 0, nothing is answered, listed or told to a watcher before that
//! many replicas hold it, so a seq that anyone saw survives the primary's loss (a seq the old
//! primary gave and no replica received is given again, to whichever message comes next:
//! no one saw it); and on each new connection the seq counter is raised to the newest seq
//! this process told of, should a failover have lost it, so a seq is never given twice.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{
    Client, FromRedisValue, RedisError, RedisResult, Script, Value,
    aio::MultiplexedConnection,
    sentinel::{Sentinel, SentinelNodeConnectionInfo},
    streams::{StreamId, StreamRangeReply, StreamReadReply},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    Cursor, DedupBy, Inserted, NewMessage, Publisher, Store, StoreError, Stored, Subscription,
};

mod primary;
mod replication;

use primary::{CONNECT_TIMEOUT, Locator, Primary, RESPONSE_TIMEOUT};
pub use replication::Acks;
use replication::Replication;

/// How long one blocking read of the tail waits before it is made again (it returns at once
/// when a message comes).
const TAIL_BLOCK: Duration = Duration::from_secs(5);
/// The most messages one read of the tail (or of the whole log, for `list`) takes.
const READ_COUNT: usize = 1000;
/// The longest wait between two attempts to reconnect the tail.
const TAIL_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The insert, atomically: `KEYS` are the seq counter, the stream, the id hash and the text
/// hash; `ARGV` the id, the text, `1` for the text rule, and the time of the insert (this
/// logging's clock, milliseconds since the epoch), kept in the entry as `at`. Answers the new
/// seq, `0` for a duplicate of the same id, `-1` for a conflict, and the id the text is held
/// under for a duplicate by the text rule.
const INSERT: &str = r"
local held = redis.call('HGET', KEYS[3], ARGV[1])
if held then
  if held == ARGV[2] then return 0 end
  return -1
end
if ARGV[3] == '1' then
  local other = redis.call('HGET', KEYS[4], ARGV[2])
  if other then return other end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], '0-' .. seq, 'id', ARGV[1], 'text', ARGV[2], 'at', ARGV[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[4], ARGV[2], ARGV[1])
return seq
";

/// The names of the store's keys under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    seq: String,
    log: String,
    ids: String,
    texts: String,
    acks: String,
    probe: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{{{prefix}}}:{name}");
        Self {
            seq: key("seq"),
            log: key("log"),
            ids: key("ids"),
            texts: key("texts"),
            acks: key("acks"),
            probe: key("probe"),
        }
    }
}

/// Where the store's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server, at this URL (`redis://HOST:PORT[/DB]`).
    Server(String),
    /// The primary that these sentinels (`redis://HOST:PORT` each) name for the master
    /// `master`, in database `db`.
    Sentinel {
        /// The sentinels' URLs.
        sentinels: Vec<String>,
        /// The master's name in their configuration.
        master: String,
        /// The database on the primary.
        db: i64,
    },
}

impl Target {
    /// Reads `redis://HOST:PORT[/DB]` or `redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if let Some(rest) = value.strip_prefix("redis://")
            && !rest.is_empty()
        {
            return Ok(Self::Server(value.to_owned()));
        }
        let sentinel = || -> Option<Self> {
            let rest = value.strip_prefix("redis-sentinel://")?;
            let (hosts, path) = rest.split_once('/')?;
            let (master, db) = match path.split_once('/') {
                Some((master, db)) => (master, db.parse().ok()?),
                None => (path, 0),
            };
            let sentinels: Vec<String> = hosts
                .split(',')
                .map(|host| {
                    let (name, port) = host.rsplit_once(':')?;
                    (!name.is_empty() && port.parse::<u16>().is_ok())
                        .then(|| format!("redis://{host}"))
                })
                .collect::<Option<_>>()?;
            (!master.is_empty()).then(|| Self::Sentinel {
                sentinels,
                master: master.to_owned(),
                db,
            })
        };
        sentinel().ok_or_else(|| {
            format!(
                "expected `redis://HOST:PORT[/DB]` or `redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]`, got {value:?}"
            )
        })
    }

    /// How the store finds its primary.
    fn locator(&self) -> anyhow::Result<Locator> {
        use anyhow::Context as _;
        Ok(match self {
            Self::Server(url) => Locator::Server(
                Client::open(url.as_str()).with_context(|| format!("invalid Redis URL {url:?}"))?,
            ),
            Self::Sentinel {
                sentinels,
                master,
                db,
            } => Locator::Sentinel {
                sentinels: tokio::sync::Mutex::new(
                    Sentinel::build(sentinels.iter().map(String::as_str).collect())
                        .context("invalid sentinel addresses")?,
                ),
                master: master.clone(),
                node: SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(redis::RedisConnectionInfo::default().set_db(*db)),
            },
        })
    }

    /// Where it is, for messages.
    fn describe(&self) -> String {
        match self {
            Self::Server(url) => url.clone(),
            Self::Sentinel {
                sentinels, master, ..
            } => format!(
                "the primary of {master:?} (sentinels {})",
                sentinels.join(", ")
            ),
        }
    }
}

/// Messages in Redis. See the module documentation.
pub struct RedisStore {
    /// Where commands go, found again after a failure.
    primary: Arc<Primary>,
    /// Confirms writes are replicated, when replicas are to confirm them.
    replication: Option<Replication>,
    /// The insert script (sent by its SHA-1, loaded again if Redis lost it).
    insert: Script,
    keys: Keys,
    dedup_by: DedupBy,
    /// Tells watchers of the messages the tail reads.
    publisher: Arc<Publisher>,
    /// The newest seq the tail has told of: an insert returns once its message is told, so a
    /// subscriber sees it as soon as its writer does (as with the other stores).
    told: tokio::sync::watch::Receiver<u64>,
    /// Stops the tail.
    stop: CancellationToken,
    /// Set by [`Store::close`].
    closed: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("primary", &self.primary)
            .field("keys", &self.keys)
            .field("dedup_by", &self.dedup_by)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The store on the one Redis at `url` (`redis://HOST:PORT[/DB]`), with the keys under
    /// `prefix` (a log of each test's own), acknowledging writes at once.
    #[cfg(test)]
    async fn open_with_prefix(url: &str, prefix: &str, dedup_by: DedupBy) -> anyhow::Result<Self> {
        let no_acks = Acks {
            replicas: 0,
            timeout: Duration::ZERO,
        };
        Self::connect(&Target::Server(url.to_owned()), prefix, dedup_by, no_acks).await
    }

    /// Connects to the Redis `target` names (finding its primary), with the keys under
    /// `prefix`, acknowledging a write once `acks` says, and starts following its log. Fails
    /// if no primary can be reached now.
    pub async fn connect(
        target: &Target,
        prefix: &str,
        dedup_by: DedupBy,
        acks: Acks,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let keys = Keys::new(prefix);
        // Told from the log's newest seq once it is read, below; the primary keeps the seq
        // counter at or above what was told.
        let publisher = Arc::new(Publisher::new(0));
        let told = publisher.subscribe().newest;
        let primary = Arc::new(Primary::new(
            target.locator()?,
            keys.seq.clone(),
            told.clone(),
        ));
        let where_ = target.describe();
        let mut link = primary
            .link()
            .await
            .with_context(|| format!("cannot connect to Redis at {where_}"))?;
        let newest: Option<u64> = redis::cmd("GET")
            .arg(&keys.seq)
            .query_async(&mut link.connection)
            .await
            .with_context(|| format!("cannot read the log's newest seq from Redis at {where_}"))?;
        let newest = newest.unwrap_or(0);
        publisher.publish(std::iter::empty(), newest);
        let stop = CancellationToken::new();
        let replication = (acks.replicas > 0).then(|| {
            Replication::start(Arc::clone(&primary), keys.acks.clone(), acks, stop.clone())
        });
        tokio::spawn(
            Tail {
                primary: Arc::clone(&primary),
                replication: replication.clone(),
                log: keys.log.clone(),
                publisher: Arc::clone(&publisher),
            }
            .follow(newest, stop.clone()),
        );
        Ok(Self {
            primary,
            replication,
            insert: Script::new(INSERT),
            keys,
            dedup_by,
            publisher,
            told,
            stop,
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `command` on the primary's connection, unless the store was closed; a failure
    /// makes the store find the primary again. Answers the connection's generation too.
    async fn on_primary<T, F, Fut>(&self, command: F) -> Result<(T, u64), StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".to_owned()));
        }
        let link = self.primary.link().await.map_err(unavailable)?;
        match command(link.connection).await {
            Ok(answer) => Ok((answer, link.generation)),
            Err(error) => {
                self.primary.failed(link.generation, &error);
                Err(unavailable(error))
            }
        }
    }

    /// Waits until what was written or read on the connection of `generation` is held by
    /// the replicas, when they are to confirm it.
    async fn replicated(&self, generation: u64) -> Result<(), StoreError> {
        match &self.replication {
            Some(replication) => replication.confirmed(generation).await,
            None => Ok(()),
        }
    }

    /// Runs `command` on the primary and answers once what it read is replicated.
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, StoreError> {
        let (answer, generation) = self
            .on_primary(|mut connection| async move { command.query_async(&mut connection).await })
            .await?;
        self.replicated(generation).await?;
        Ok(answer)
    }

    /// Up to `count` messages of the range `start`..`end` (stream ids; `(` excludes), in
    /// stream order, or reversed with `backward`.
    async fn range(
        &self,
        start: &str,
        end: &str,
        count: usize,
        backward: bool,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut command = redis::cmd(if backward { "XREVRANGE" } else { "XRANGE" });
        command
            .arg(&self.keys.log)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count);
        let reply: StreamRangeReply = self.query(&command).await?;
        reply.ids.iter().map(stored).collect()
    }
}

/// The tail's next wait after a failed read: twice the last, up to [`TAIL_MAX_BACKOFF`].
fn longer(backoff: Duration) -> Duration {
    (backoff * 2).min(TAIL_MAX_BACKOFF)
}

/// A Redis failure as the store reports it.
fn unavailable(error: RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {error}"))
}

/// The seq in a stream entry id `0-<seq>`.
fn seq_of(entry: &str) -> Option<u64> {
    entry.strip_prefix("0-")?.parse().ok()
}

/// A stream entry as a stored message.
fn stored(entry: &StreamId) -> Result<Stored, StoreError> {
    let malformed = || StoreError::Unavailable(format!("malformed log entry {:?}", entry.id));
    let seq = seq_of(&entry.id).ok_or_else(malformed)?;
    let id = entry
        .get::<String>("id")
        .and_then(|id| Uuid::try_parse(&id).ok())
        .ok_or_else(malformed)?;
    let text = entry.get::<String>("text").ok_or_else(malformed)?;
    // Entries written before times were kept have none.
    let stored_at_ms = entry.get::<u64>("at");
    Ok(Stored {
        seq,
        id,
        text,
        stored_at_ms,
    })
}

/// Follows the log: blocking reads of what comes next, on a connection of its own to the
/// primary, each message told to the publisher once the replicas hold it.
struct Tail {
    primary: Arc<Primary>,
    replication: Option<Replication>,
    log: String,
    publisher: Arc<Publisher>,
}

impl Tail {
    /// Follows the log from `after`. A failed read (or a read the replicas do not confirm) is
    /// made again, after a short wait growing while Redis is away, from the last message
    /// told, so nothing is skipped or told twice.
    async fn follow(self, mut after: u64, stop: CancellationToken) {
        let mut connection: Option<(u64, MultiplexedConnection)> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let read = async {
                let (generation, tail) = match &mut connection {
                    Some(tail) => tail,
                    None => {
                        let link = self.primary.link().await.map_err(|error| (0, error))?;
                        // A connection of its own: a blocking read holds its connection.
                        let config = redis::AsyncConnectionConfig::new()
                            .set_connection_timeout(Some(CONNECT_TIMEOUT))
                            .set_response_timeout(Some(TAIL_BLOCK + RESPONSE_TIMEOUT));
                        let tail = link
                            .client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await
                            .map_err(|error| (link.generation, error))?;
                        connection.insert((link.generation, tail))
                    }
                };
                let reply: Option<StreamReadReply> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(TAIL_BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&self.log)
                    .arg(format!("0-{after}"))
                    .query_async(tail)
                    .await
                    .map_err(|error| (*generation, error))?;
                Ok::<_, (u64, RedisError)>((*generation, reply))
            };
            let reply = tokio::select! {
                () = stop.cancelled() => return,
                reply = read => reply,
            };
            let outcome = match reply {
                Ok((generation, reply)) => self.tell(reply, &mut after, generation).await,
                Err((generation, error)) => {
                    self.primary.failed(generation, &error);
                    Err(unavailable(error))
                }
            };
            match outcome {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(error) => {
                    tracing::warn!(%error, "reading the log's tail from Redis failed; reading again");
                    connection = None;
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = longer(backoff);
                }
            }
        }
    }

    /// Tells the messages of `reply` (read on the connection of `generation`) once the
    /// replicas hold them, and moves `after` past them.
    async fn tell(
        &self,
        reply: Option<StreamReadReply>,
        after: &mut u64,
        generation: u64,
    ) -> Result<(), StoreError> {
        let entries: Vec<StreamId> = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        if let Some(replication) = &self.replication {
            replication.confirmed(generation).await?;
        }
        let mut newest = *after;
        let mut messages = Vec::new();
        for entry in entries {
            match stored(&entry) {
                Ok(message) => messages.push(message),
                Err(error) => tracing::error!(%error, "skipping a log entry"),
            }
            if let Some(seq) = seq_of(&entry.id) {
                newest = newest.max(seq);
            }
        }
        if !messages.is_empty() {
            self.publisher.publish(messages, newest);
        }
        *after = newest;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        let mut invocation = self.insert.prepare_invoke();
        invocation
            .key(&self.keys.seq)
            .key(&self.keys.log)
            .key(&self.keys.ids)
            .key(&self.keys.texts)
            .arg(message.id.to_string())
            .arg(message.text.as_str())
            .arg(if self.dedup_by == DedupBy::Text {
                "1"
            } else {
                "0"
            })
            .arg(super::now_ms());
        let (answer, generation) = self
            .on_primary(|mut connection| async move {
                invocation.invoke_async::<Value>(&mut connection).await
            })
            .await?;
        // The new seq for a message stored now; nothing for a duplicate.
        let (inserted, seq) = match answer {
            Value::Int(-1) => return Err(StoreError::Conflict { id: message.id }),
            Value::Int(0) => (Inserted::Duplicate, None),
            Value::Int(seq) => (Inserted::Stored, u64::try_from(seq).ok()),
            // The text is held under another id (under this one, the id's look-up answered
            // first).
            Value::BulkString(held_under) => match Uuid::try_parse_ascii(&held_under) {
                Ok(held_under) => (Inserted::DuplicateOf(held_under), None),
                Err(_) => (Inserted::Duplicate, None),
            },
            other => {
                return Err(StoreError::Unavailable(format!(
                    "unexpected answer to the insert: {other:?}"
                )));
            }
        };
        // Answered only once the replicas hold it, a duplicate too: the first copy may not have
        // reached them yet (its insert answered UNAVAILABLE, and this is the retry).
        self.replicated(generation).await?;
        // Stored; wait (briefly) until the tail has told watchers of it. If the tail is cut off
        // meanwhile, the message is stored all the same, and told once the tail reads again.
        if let Some(seq) = seq {
            let mut told = self.told.clone();
            if tokio::time::timeout(RESPONSE_TIMEOUT, told.wait_for(|newest| *newest >= seq))
                .await
                .is_err()
            {
                tracing::warn!(seq, "stored, but the log's tail has not read it yet");
            }
        }
        Ok(inserted)
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut texts = Vec::new();
        let mut start = "-".to_owned();
        loop {
            let page = self.range(&start, "+", READ_COUNT, false).await?;
            let Some(last) = page.last().map(|message| message.seq) else {
                return Ok(texts);
            };
            let full = page.len() == READ_COUNT;
            texts.extend(page.into_iter().map(|message| message.text));
            if !full {
                return Ok(texts);
            }
            start = format!("(0-{last}");
        }
    }

    async fn page(&self, cursor: Cursor, limit: usize) -> Result<Vec<Stored>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match cursor {
            Cursor::After(0) => self.range("-", "+", limit, false).await,
            Cursor::After(seq) => self.range(&format!("(0-{seq}"), "+", limit, false).await,
            Cursor::Before(0 | 1) => Ok(Vec::new()),
            Cursor::Before(u64::MAX) => {
                let mut page = self.range("+", "-", limit, true).await?;
                page.reverse();
                Ok(page)
            }
            Cursor::Before(seq) => {
                let mut page = self.range(&format!("(0-{seq}"), "-", limit, true).await?;
                page.reverse();
                Ok(page)
            }
        }
    }

    fn subscribe(&self) -> Subscription {
        self.publisher.subscribe()
    }

    async fn check(&self) -> Result<(), StoreError> {
        // A write, confirmed by the replicas when they are to confirm writes: the store can
        // take writes only if both work.
        let mut command = redis::cmd("SET");
        command.arg(&self.keys.probe).arg(super::now_ms());
        self.query::<Value>(&command).await.map(drop)
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use msglog_common::testing::RedisServer;

    use super::*;
    use crate::store::contract::OpenFn;

    /// A Redis server of the test's own; each directory names a log in it (a prefix), so
    /// reopening on the same directory finds the same log.
    async fn backend() -> Option<Box<OpenFn>> {
        let server = Arc::new(RedisServer::start_if_installed().await?);
        Some(Box::new(move |dir, dedup_by| {
            let url = server.url();
            Box::pin(async move {
                let store =
                    RedisStore::open_with_prefix(&url, &dir.display().to_string(), dedup_by)
                        .await
                        .unwrap();
                Arc::new(store) as Arc<dyn Store>
            })
        }))
    }

    store_contract_tests!(backend backend, durable);

    /// A connection of the test's own to `server`, beside the store's.
    async fn connection_to(server: &RedisServer) -> redis::aio::MultiplexedConnection {
        Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The same contract on a replicated Redis found through Sentinel (a primary, two
    /// replicas, three sentinels), each write acknowledged once a replica holds it.
    mod replicated {
        use std::sync::Arc;

        use msglog_common::testing::RedisReplicated;

        use super::super::{Acks, RedisStore, Target};
        use crate::store::{Store, contract::OpenFn};

        async fn backend() -> Option<Box<OpenFn>> {
            let redis = Arc::new(RedisReplicated::start_if_installed().await?);
            let target = Target::parse(&redis.store_url()).unwrap();
            Some(Box::new(move |dir, dedup_by| {
                let (redis, target) = (Arc::clone(&redis), target.clone());
                Box::pin(async move {
                    let acks = Acks {
                        replicas: 1,
                        timeout: std::time::Duration::from_secs(1),
                    };
                    let store =
                        RedisStore::connect(&target, &dir.display().to_string(), dedup_by, acks)
                            .await
                            .unwrap();
                    drop(redis);
                    Arc::new(store) as Arc<dyn Store>
                })
            }))
        }

        store_contract_tests!(backend backend, durable);

        /// A write the replicas do not confirm in time is answered `UNAVAILABLE`, and neither
        /// read nor told meanwhile; sent again (the same id) once they can confirm it, it is a
        /// duplicate of the copy held, and the log holds it once.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_unconfirmed_write_is_unavailable_and_its_retry_is_stored_once() {
            use crate::store::{Cursor, DedupBy, Inserted, NewMessage, StoreError};
            let Some(redis) = RedisReplicated::start_if_installed().await else {
                return;
            };
            let target = Target::parse(&redis.store_url()).unwrap();
            // Three replicas asked for, of the two there are.
            let wanting = RedisStore::connect(
                &target,
                "unconfirmed",
                DedupBy::Id,
                Acks {
                    replicas: 3,
                    timeout: std::time::Duration::from_millis(200),
                },
            )
            .await
            .unwrap();
            let mut subscription = wanting.subscribe();
            let message = NewMessage {
                id: uuid::Uuid::from_u128(7),
                text: msglog_proto::MessageText::parse("wait for it".to_owned(), 100).unwrap(),
            };
            let error = wanting.insert(message.clone()).await.unwrap_err();
            assert!(
                matches!(&error, StoreError::Unavailable(why) if why.contains("of the 3 replicas")),
                "{error}"
            );
            assert!(wanting.page(Cursor::After(0), 10).await.is_err());
            assert!(
                subscription.committed.try_recv().is_err(),
                "told unconfirmed"
            );

            let store = RedisStore::connect(
                &target,
                "unconfirmed",
                DedupBy::Id,
                Acks {
                    replicas: 2,
                    timeout: std::time::Duration::from_secs(1),
                },
            )
            .await
            .unwrap();
            assert_eq!(
                store.insert(message.clone()).await.unwrap(),
                Inserted::Duplicate
            );
            let page = store.page(Cursor::After(0), 10).await.unwrap();
            let held: Vec<(u64, uuid::Uuid)> =
                page.iter().map(|stored| (stored.seq, stored.id)).collect();
            assert_eq!(held, [(1, message.id)]);
        }
    }

    /// A counter found below the newest seq this process told of (a failover lost messages
    /// that were told) is raised to it on the next connection, so no seq is given twice.
    #[tokio::test]
    async fn a_seq_counter_gone_back_is_raised_to_what_was_told() {
        let Some(server) = RedisServer::start_if_installed().await else {
            return;
        };
        let store = RedisStore::open_with_prefix(&server.url(), "floor", DedupBy::Id)
            .await
            .unwrap();
        let message = |n: u128| NewMessage {
            id: Uuid::from_u128(n),
            text: msglog_proto::MessageText::parse(format!("m{n}"), 100).unwrap(),
        };
        for n in 1..=3 {
            assert_eq!(store.insert(message(n)).await.unwrap(), Inserted::Stored);
        }
        // The counter goes back to 1, and the connection fails (as at a failover).
        let mut other = connection_to(&server).await;
        let () = redis::cmd("SET")
            .arg(&Keys::new("floor").seq)
            .arg(1)
            .query_async(&mut other)
            .await
            .unwrap();
        let generation = store.primary.link().await.unwrap().generation;
        store.primary.failed(
            generation,
            &RedisError::from((redis::ErrorKind::Io, "cut off for the test")),
        );
        assert_eq!(store.insert(message(4)).await.unwrap(), Inserted::Stored);
        let seqs: Vec<u64> = store
            .page(Cursor::After(3), 10)
            .await
            .unwrap()
            .iter()
            .map(|stored| stored.seq)
            .collect();
        assert_eq!(seqs, [4], "the new message took a seq already given");
    }

    /// `list` reads the log by pages of [`READ_COUNT`]: a log of two full pages and one more
    /// message is read whole, in order.
    #[tokio::test]
    async fn a_list_longer_than_one_read_is_read_whole() {
        let Some(server) = RedisServer::start_if_installed().await else {
            return;
        };
        // The log written as the insert script writes it, in one pipeline: this test is of
        // the reading alone.
        let texts: Vec<String> = (0..2 * READ_COUNT + 1).map(|n| format!("m{n}")).collect();
        let mut pipeline = redis::pipe();
        for (n, text) in texts.iter().enumerate() {
            pipeline
                .cmd("XADD")
                .arg(Keys::new("long").log)
                .arg(format!("0-{}", n + 1))
                .arg("id")
                .arg(Uuid::from_u128(n as u128 + 1).to_string())
                .arg("text")
                .arg(text)
                .arg("at")
                .arg(1)
                .ignore();
        }
        let mut connection = connection_to(&server).await;
        let () = pipeline.query_async(&mut connection).await.unwrap();
        let store = RedisStore::open_with_prefix(&server.url(), "long", DedupBy::Id)
            .await
            .unwrap();
        assert_eq!(store.list().await.unwrap(), texts);
    }

    #[test]
    fn the_tail_waits_longer_after_each_failed_read_up_to_its_ceiling() {
        let mut waits = vec![Duration::from_millis(50)];
        for _ in 0..6 {
            waits.push(longer(waits[waits.len() - 1]));
        }
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [50, 100, 200, 400, 800, 1000, 1000]);
    }

    /// Connections the Redis server has accepted since it started.
    async fn connections_received(connection: &mut MultiplexedConnection) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(connection)
            .await
            .unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap()
    }

    /// A blocking read that comes back empty (nothing written for [`TAIL_BLOCK`]) is the tail's
    /// ordinary idle state, not a failure: the tail reads again on the same connection, and a
    /// message written after the idle spell is told to subscribers before its insert returns.
    #[tokio::test]
    async fn an_idle_tail_keeps_its_connection_and_tells_what_comes_after() {
        let Some(server) = RedisServer::start_if_installed().await else {
            return;
        };
        let store = RedisStore::open_with_prefix(&server.url(), "idle", DedupBy::Id)
            .await
            .unwrap();
        let mut subscription = store.subscribe();
        let mut probe = connection_to(&server).await;
        let before = connections_received(&mut probe).await;
        tokio::time::sleep(TAIL_BLOCK + RESPONSE_TIMEOUT + Duration::from_secs(1)).await;
        assert_eq!(
            connections_received(&mut probe).await,
            before,
            "the tail connected again during an idle spell"
        );
        let message = NewMessage {
            id: Uuid::from_u128(1),
            text: msglog_proto::MessageText::parse("after the idle spell".to_owned(), 100).unwrap(),
        };
        assert_eq!(
            store.insert(message.clone()).await.unwrap(),
            Inserted::Stored
        );
        // Told by the time its insert returns.
        let told = subscription.committed.try_recv().map(|stored| stored.id);
        assert_eq!(told, Ok(message.id));
    }
}
