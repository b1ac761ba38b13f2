//! Where messages live: one trait, several back-ends.
//!
//! - [`MemoryStore`]: in memory, as the original; lost on exit.
//! - [`SqliteStore`]: a SQLite file, durable, with group commit (the default).
//!
//! The service only speaks to [`Store`]. An implementation must make [`Store::insert`] atomic
//! per id (two concurrent inserts of one id store it once) and keep insertion order for
//! [`Store::list`]; how it does so (a lock, a transaction, a script) is its own business.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use msglog_proto::MessageText;
use uuid::Uuid;

mod sqlite;

pub use sqlite::SqliteStore;

/// A message to store: its caller-chosen id and its checked text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The idempotency key: one id is stored at most once.
    pub id: Uuid,
    /// The text, already checked against the size limit.
    pub text: MessageText,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The message was not held before and now is (durably, if the store is durable).
    Stored,
    /// The same id with the same text was already held; nothing changed.
    Duplicate,
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
    /// The back-end failed (I/O, connection). The caller may retry: inserts are idempotent.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A message store. Cheap to share: the service holds it in an `Arc`.
pub trait Store: Send + Sync + 'static {
    /// Stores `message` unless its id is already held. Must be atomic per id.
    fn insert(
        &self,
        message: NewMessage,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    /// Every stored text, in insertion order.
    fn list(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

impl<S: Store> Store for Arc<S> {
    fn insert(
        &self,
        message: NewMessage,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send {
        S::insert(self, message)
    }

    fn list(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        S::list(self)
    }
}

/// Messages in memory, as the original kept them: lost when the process stops.
///
/// An index from id to position gives O(1) duplicate checks (the original scanned every
/// stored text). The lock is a plain mutex held for a map look-up and a push, never across an
/// `.await`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    /// Position of each id in `texts`.
    index: HashMap<Uuid, usize>,
    /// Texts in insertion order.
    texts: Vec<String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert_now(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        // A panic while holding the lock cannot leave the map half-updated (the push comes
        // after the index insert and neither can fail midway), so a poisoned lock is usable.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&position) = inner.index.get(&message.id) {
            return if inner.texts[position] == message.text.as_str() {
                Ok(Inserted::Duplicate)
            } else {
                Err(StoreError::Conflict { id: message.id })
            };
        }
        let position = inner.texts.len();
        inner.index.insert(message.id, position);
        inner.texts.push(message.text.into_inner());
        Ok(Inserted::Stored)
    }
}

impl Store for MemoryStore {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        self.insert_now(message)
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inner.texts.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u128, text: &str) -> NewMessage {
        NewMessage {
            id: Uuid::from_u128(id),
            text: MessageText::parse(text.to_owned(), 1024).unwrap(),
        }
    }

    #[tokio::test]
    async fn same_id_and_text_is_stored_once() {
        let store = MemoryStore::new();
        assert_eq!(
            store.insert(message(1, "a")).await.unwrap(),
            Inserted::Stored
        );
        assert_eq!(
            store.insert(message(1, "a")).await.unwrap(),
            Inserted::Duplicate
        );
        assert_eq!(store.list().await.unwrap(), vec!["a"]);
    }

    #[tokio::test]
    async fn same_id_with_other_text_is_a_conflict_and_stores_nothing() {
        let store = MemoryStore::new();
        store.insert(message(1, "a")).await.unwrap();
        let error = store.insert(message(1, "b")).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict { id } if id == Uuid::from_u128(1)));
        assert_eq!(store.list().await.unwrap(), vec!["a"]);
    }

    #[tokio::test]
    async fn list_keeps_insertion_order_and_allows_equal_texts_under_other_ids() {
        let store = MemoryStore::new();
        for (id, text) in [(3, "c"), (1, "a"), (2, "b"), (4, "a")] {
            store.insert(message(id, text)).await.unwrap();
        }
        assert_eq!(store.list().await.unwrap(), vec!["c", "a", "b", "a"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_of_one_id_store_it_once() {
        let store = Arc::new(MemoryStore::new());
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.insert(message(7, "same")).await.unwrap() })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            if task.await.unwrap() == Inserted::Stored {
                stored += 1;
            }
        }
        assert_eq!(stored, 1);
        assert_eq!(store.list().await.unwrap(), vec!["same"]);
    }
}
