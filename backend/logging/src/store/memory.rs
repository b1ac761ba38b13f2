//! Messages in memory, as the original kept them: lost when the process stops.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use uuid::Uuid;

use super::{Cursor, Inserted, NewMessage, Publisher, Store, StoreError, Stored, Subscription};

/// Messages in memory.
///
/// An index from id to position gives O(1) duplicate checks (the original scanned every
/// stored text). The lock is a plain mutex held for a map look-up and a push, never across an
/// `.await`.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    /// Tells subscribers of each insert, under the lock so seqs go out in order.
    publisher: Publisher,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            publisher: Publisher::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct MemoryInner {
    /// Position of each id in `texts` (and `ids`); a message's seq is its position + 1.
    index: HashMap<Uuid, usize>,
    /// Ids in insertion order.
    ids: Vec<Uuid>,
    /// Texts in insertion order.
    texts: Vec<String>,
    /// Set by [`Store::close`]: nothing is served after it.
    closed: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The contents, while open.
    fn open_inner(&self) -> Result<MutexGuard<'_, MemoryInner>, StoreError> {
        // A panic while holding the lock cannot leave the map half-updated (the push comes
        // after the index insert and neither can fail midway), so a poisoned lock is usable.
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.closed {
            return Err(StoreError::Unavailable("the store is closed".to_owned()));
        }
        Ok(inner)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        let mut inner = self.open_inner()?;
        if let Some(&position) = inner.index.get(&message.id) {
            return if inner.texts[position] == message.text.as_str() {
                Ok(Inserted::Duplicate)
            } else {
                Err(StoreError::Conflict { id: message.id })
            };
        }
        let position = inner.texts.len();
        let seq = position as u64 + 1;
        let text = message.text.into_inner();
        let published = self.publisher.wants_messages().then(|| Stored {
            seq,
            id: message.id,
            text: text.clone(),
        });
        inner.index.insert(message.id, position);
        inner.ids.push(message.id);
        inner.texts.push(text);
        self.publisher.publish(published, seq);
        Ok(Inserted::Stored)
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.open_inner()?.texts.clone())
    }

    async fn page(&self, cursor: Cursor, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let inner = self.open_inner()?;
        let len = inner.texts.len();
        // Positions are seq - 1: seq > n starts at position n; seq < n ends before n - 1.
        let (start, end) = match cursor {
            Cursor::After(seq) => {
                let start = usize::try_from(seq).unwrap_or(usize::MAX).min(len);
                (start, start.saturating_add(limit).min(len))
            }
            Cursor::Before(seq) => {
                let end = usize::try_from(seq.saturating_sub(1))
                    .unwrap_or(usize::MAX)
                    .min(len);
                (end.saturating_sub(limit), end)
            }
        };
        Ok((start..end)
            .map(|position| Stored {
                seq: position as u64 + 1,
                id: inner.ids[position],
                text: inner.texts[position].clone(),
            })
            .collect())
    }

    fn subscribe(&self) -> Subscription {
        self.publisher.subscribe()
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.open_inner().map(drop)
    }

    async fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn open(_dir: std::path::PathBuf) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    store_contract_tests!(open);
}
