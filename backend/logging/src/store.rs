//! Where messages live: one object-safe trait, one file per back-end.
//!
//! - [`MemoryStore`](memory::MemoryStore) (`memory.rs`): in memory, as the original; lost on
//!   exit.
//! - [`SqliteStore`](sqlite::SqliteStore) (`sqlite.rs`): a SQLite file, durable, with group
//!   commit (the default).
//! - [`RedisStore`](redis::RedisStore) (`redis.rs`): a Redis server shared by several logging
//!   replicas.
//! - `FaultyStore` (`faulty.rs`, feature `testing`): a memory store that fails on demand.
//!
//! The service holds an `Arc<dyn Store>` chosen at start-up (see `StoreChoice`), so adding a
//! back-end is one file here and one arm in the settings parser. Every back-end passes the
//! same contract suite (`contract.rs`, run by each back-end's tests): inserts are atomic and
//! idempotent per id (two concurrent inserts of one id store it once; the same id with
//! another text is a conflict that stores nothing) and, under [`DedupBy::Text`], per text (a
//! text held under any id is a duplicate, found in O(1)); [`Store::list`] keeps insertion
//! order, every message has a `seq` (its place in that order) that [`Store::page`] reads by,
//! [`Store::subscribe`] tells watchers of each commit (through a [`Publisher`]), and a durable
//! store keeps messages, ids and seqs across a reopen. How a back-end does so (a lock, a
//! transaction, a script) is its own business.

use std::sync::Arc;

use msglog_proto::MessageText;
use uuid::Uuid;

#[cfg(test)]
#[macro_use]
mod contract;
// The back-ends depend on what this file defines, and nothing here on them: a user names the
// one it opens (`store::sqlite::SqliteStore`).
#[cfg(feature = "testing")]
pub mod faulty;
pub mod memory;
pub mod redis;
pub mod sqlite;

/// A message to store: its caller-chosen id and its checked text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The idempotency key: one id is stored at most once.
    pub id: Uuid,
    /// The text, already checked against the size limit.
    pub text: MessageText,
}

/// Which messages are the same message, so that the second is a duplicate.
///
/// In both rules an id is stored at most once, and the same id with another text is a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DedupBy {
    /// The original's rule: a text already held, under any id, is a duplicate (nothing is
    /// stored). Found in O(1) by an index on a hash of the text, the texts compared on a match.
    #[default]
    Text,
    /// The id alone: equal texts under other ids are separate messages.
    Id,
}

/// The hash the text index is keyed by: the first 8 bytes of the text's SHA-256, the same in
/// every process and every store (SQLite keeps it on disk). Texts are compared on a match, so a
/// collision costs a comparison, never a wrong answer.
pub fn text_hash(text: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The message was not held before and now is (durably, if the store is durable).
    Stored,
    /// The same id with the same text was already held; nothing changed.
    Duplicate,
    /// Under [`DedupBy::Text`], the same text was already held under this other id; nothing
    /// changed.
    DuplicateOf(uuid::Uuid),
}

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id is held with another text. Storing would break the id's meaning, so nothing is
    /// stored.
    #[error("id {id} is already used by another message")]
    Conflict {
        /// The id that clashed.
        id: Uuid,
    },
    /// The back-end failed (I/O, connection) or is closed. The caller may retry: inserts are
    /// idempotent.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A stored message and its place in insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its position, given by the store: the first message is 1, and each later one has a
    /// larger seq. Never reused, never changed.
    pub seq: u64,
    /// Its id.
    pub id: Uuid,
    /// Its text.
    pub text: String,
    /// When the store stored it, in milliseconds since the Unix epoch by this process's clock,
    /// taken as it was committed; `None` when not known (a row from before times were kept).
    pub stored_at_ms: Option<u64>,
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Where a page of messages starts (not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The messages just after this seq (0: from the first).
    After(u64),
    /// The messages just before this seq (`u64::MAX`: the newest).
    Before(u64),
}

/// The most committed messages a store keeps for its subscribers to take. A subscriber further
/// behind reads from the store instead, so this bounds memory however slow a subscriber is.
pub const PUBLISHED: usize = 1024;

/// What a store tells its subscribers after each commit ([`Store::subscribe`]).
#[derive(Debug)]
pub struct Subscription {
    /// The newest committed seq (0 while the store is empty). It changes once the new messages
    /// can be read with [`Store::page`].
    pub newest: tokio::sync::watch::Receiver<u64>,
    /// Each message committed since the subscription began, in seq order, sent before `newest`
    /// moves past it; at most [`PUBLISHED`] are held for a subscriber that does not take them
    /// (it is then told it lagged, and reads the rest from the store).
    pub committed: tokio::sync::broadcast::Receiver<Arc<Stored>>,
}

/// The sending side of [`Subscription`], one per store.
#[derive(Debug)]
pub struct Publisher {
    newest: tokio::sync::watch::Sender<u64>,
    committed: tokio::sync::broadcast::Sender<Arc<Stored>>,
}

impl Publisher {
    /// A publisher for a store whose newest seq is `newest`.
    pub fn new(newest: u64) -> Self {
        Self {
            newest: tokio::sync::watch::Sender::new(newest),
            committed: tokio::sync::broadcast::Sender::new(PUBLISHED),
        }
    }

    /// Whether anyone subscribed to the messages: a store need not copy them otherwise.
    pub fn wants_messages(&self) -> bool {
        self.committed.receiver_count() > 0
    }

    /// Publishes messages just committed (in seq order), then `newest`. Never waits.
    pub fn publish(&self, committed: impl IntoIterator<Item = Stored>, newest: u64) {
        for message in committed {
            // No subscriber is not an error: there is no one to tell.
            let _ = self.committed.send(Arc::new(message));
        }
        self.newest.send_if_modified(|seq| {
            let moved = newest > *seq;
            if moved {
                *seq = newest;
            }
            moved
        });
    }

    /// A new subscription. Subscribing to the messages before reading the newest seq means a
    /// message published meanwhile is in one or the other (or both), never in neither.
    pub fn subscribe(&self) -> Subscription {
        let committed = self.committed.subscribe();
        Subscription {
            newest: self.newest.subscribe(),
            committed,
        }
    }
}

/// A message store, shared by every call as an `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `message` unless it is already held by the store's [`DedupBy`] rule. Atomic per
    /// id, and per text under [`DedupBy::Text`].
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError>;

    /// Every stored text, in insertion order.
    async fn list(&self) -> Result<Vec<String>, StoreError>;

    /// At most `limit` messages next to `cursor`, in insertion order (ascending seq) whatever
    /// the direction. Costs the same at any store size.
    async fn page(&self, cursor: Cursor, limit: usize) -> Result<Vec<Stored>, StoreError>;

    /// Follows the store's commits: the newest committed seq, and the messages as they are
    /// committed. Writers never wait for a subscriber.
    fn subscribe(&self) -> Subscription;

    /// Registers what the store measures of itself (SQLite: its commit batch sizes). Most
    /// stores measure nothing more than the service does around them.
    fn register_metrics(&self, _registry: &mut prometheus_client::registry::Registry) {}

    /// Whether the store can take writes now; the health check asks this while the store is
    /// failing, to see it recover.
    async fn check(&self) -> Result<(), StoreError>;

    /// Finishes what is queued, then releases the back-end. Later calls fail with
    /// [`StoreError::Unavailable`]. Closing twice is harmless.
    async fn close(&self);
}
