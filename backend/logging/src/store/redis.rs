//! Messages in Redis, shared by every logging process that names the same server: the store
//! for several replicas.
//!
//! Four keys, with one hash tag so that a cluster keeps them on one node:
//! - `{msglog}:log`, a stream: one entry per message, `id` and `text`, under the entry id
//!   `0-<seq>`, so the stream's order is the insertion order and a page is one range read;
//! - `{msglog}:seq`, the counter that gives each message its seq;
//! - `{msglog}:ids`, a hash from each id to its text (the id rule, and conflicts);
//! - `{msglog}:texts`, a hash from each text to the first id stored with it (the text rule).
//!
//! An insert is one Lua script, which Redis runs atomically: the checks, the next seq and the
//! writes happen with nothing in between, whichever replica sent it. Every replica tails the
//! stream with a blocking `XREAD` on a connection of its own and tells its watchers of each
//! message, so a watcher on any replica sees the writes of all of them.
//!
//! What a stored message survives is Redis's own setting: with `appendonly yes` and
//! `appendfsync always`, Redis writes and fsyncs the script's writes before it answers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncCommands as _, Client, RedisError, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    streams::{StreamId, StreamRangeReply, StreamReadReply},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    Cursor, DedupBy, Inserted, NewMessage, Publisher, Store, StoreError, Stored, Subscription,
};

/// How long one command may take before the store calls Redis unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one blocking read of the tail waits before it is made again (it returns at once
/// when a message comes).
const TAIL_BLOCK: Duration = Duration::from_secs(5);
/// The most messages one read of the tail (or of the whole log, for `list`) takes.
const READ_COUNT: usize = 1000;
/// The longest wait between two attempts to reconnect the tail.
const TAIL_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The insert, atomically: `KEYS` are the seq counter, the stream, the id hash and the text
/// hash; `ARGV` the id, the text, `1` for the text rule, and the time of the insert (this
/// logging's clock, milliseconds since the epoch), kept in the entry as `at`. Answers the new seq, `0` for a
/// duplicate of the same id, `-1` for a conflict, and the id the text is held under for a
/// duplicate by the text rule.
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
            probe: key("probe"),
        }
    }
}

/// Messages in Redis. See the module documentation.
pub struct RedisStore {
    /// Commands, on a connection that reconnects by itself after a failure.
    connection: ConnectionManager,
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
            .field("keys", &self.keys)
            .field("dedup_by", &self.dedup_by)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://HOST:PORT[/DB]`) and starts following its
    /// log, with the keys under the prefix `msglog`. Fails if Redis cannot be reached now.
    pub async fn open(url: &str, dedup_by: DedupBy) -> anyhow::Result<Self> {
        Self::open_with_prefix(url, "msglog", dedup_by).await
    }

    /// As [`RedisStore::open`], with the keys under `prefix` (so that several logs share one
    /// Redis database: one per test, say).
    pub async fn open_with_prefix(
        url: &str,
        prefix: &str,
        dedup_by: DedupBy,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let client = Client::open(url).with_context(|| format!("invalid Redis URL {url:?}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Reconnects quickly: a command during an outage fails at once (the caller retries),
            // and the next one after Redis is back finds it.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let mut connection = client
            .get_connection_manager_with_config(config)
            .await
            .with_context(|| format!("cannot connect to Redis at {url}"))?;
        let keys = Keys::new(prefix);
        let newest: Option<u64> = connection
            .get(&keys.seq)
            .await
            .with_context(|| format!("cannot read the log's newest seq from Redis at {url}"))?;
        let publisher = Arc::new(Publisher::new(newest.unwrap_or(0)));
        let stop = CancellationToken::new();
        tokio::spawn(follow_tail(
            client,
            keys.log.clone(),
            newest.unwrap_or(0),
            Arc::clone(&publisher),
            stop.clone(),
        ));
        let told = publisher.subscribe().newest;
        Ok(Self {
            connection,
            insert: Script::new(INSERT),
            keys,
            dedup_by,
            publisher,
            told,
            stop,
            closed: AtomicBool::new(false),
        })
    }

    /// The connection, unless the store was closed.
    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".to_owned()));
        }
        Ok(self.connection.clone())
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
        let mut connection = self.connection()?;
        let command = if backward { "XREVRANGE" } else { "XRANGE" };
        let reply: StreamRangeReply = redis::cmd(command)
            .arg(&self.keys.log)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
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

/// Follows the log from `after`: blocking reads of what comes next, each message told to
/// `publisher`. A failed read is made again (after a short wait, growing while Redis is away)
/// from the last message told, so nothing is skipped or told twice.
async fn follow_tail(
    client: Client,
    log: String,
    mut after: u64,
    publisher: Arc<Publisher>,
    stop: CancellationToken,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let read = async {
            let tail = match &mut connection {
                Some(tail) => tail,
                None => {
                    // A connection of its own: a blocking read holds its connection.
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(Some(TAIL_BLOCK + RESPONSE_TIMEOUT));
                    connection.insert(
                        client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    )
                }
            };
            let reply: Option<StreamReadReply> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(TAIL_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&log)
                .arg(format!("0-{after}"))
                .query_async(tail)
                .await?;
            Ok::<_, RedisError>(reply)
        };
        let reply = tokio::select! {
            () = stop.cancelled() => return,
            reply = read => reply,
        };
        match reply {
            Ok(reply) => {
                backoff = Duration::from_millis(50);
                let entries = reply
                    .into_iter()
                    .flat_map(|reply| reply.keys)
                    .flat_map(|key| key.ids);
                let mut messages = Vec::new();
                for entry in entries {
                    match stored(&entry) {
                        Ok(message) => messages.push(message),
                        Err(error) => tracing::error!(%error, "skipping a log entry"),
                    }
                    if let Some(seq) = seq_of(&entry.id) {
                        after = after.max(seq);
                    }
                }
                if !messages.is_empty() {
                    publisher.publish(messages, after);
                }
            }
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

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        let mut connection = self.connection()?;
        let answer: redis::Value = self
            .insert
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
            .arg(super::now_ms())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let answer = match answer {
            redis::Value::Int(answer) => answer,
            // The text is held under another id (under this one, the id's look-up answered
            // first).
            redis::Value::BulkString(held_under) => {
                return Ok(match uuid::Uuid::try_parse_ascii(&held_under) {
                    Ok(held_under) => Inserted::DuplicateOf(held_under),
                    Err(_) => Inserted::Duplicate,
                });
            }
            other => {
                return Err(StoreError::Unavailable(format!(
                    "unexpected answer to the insert: {other:?}"
                )));
            }
        };
        match answer {
            0 => Ok(Inserted::Duplicate),
            -1 => Err(StoreError::Conflict { id: message.id }),
            seq => {
                // Stored; wait (briefly) until the tail has told watchers of it. If the tail is
                // cut off meanwhile, the message is stored all the same, and told once the tail
                // reads again.
                let seq = u64::try_from(seq).unwrap_or_default();
                let mut told = self.told.clone();
                if tokio::time::timeout(RESPONSE_TIMEOUT, told.wait_for(|newest| *newest >= seq))
                    .await
                    .is_err()
                {
                    tracing::warn!(seq, "stored, but the log's tail has not read it yet");
                }
                Ok(Inserted::Stored)
            }
        }
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
        let mut connection = self.connection()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        connection
            .set::<_, _, Value>(&self.keys.probe, now)
            .await
            .map(drop)
            .map_err(unavailable)
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
        let mut connection = Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
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
        let mut probe = Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
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
