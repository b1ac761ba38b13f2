//! Messages in memory, as the original kept them: lost when the process stops.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use uuid::Uuid;

use super::{
    Cursor, DedupBy, Inserted, NewMessage, Publisher, Store, StoreError, Stored, Subscription,
    text_hash,
};

/// Messages in memory.
///
/// An index from id to position, and one from a hash of the text to positions, give O(1)
/// duplicate checks (the original scanned every stored text). The lock is a plain mutex held
/// for look-ups and a push, never across an `.await`, so an insert is atomic per id and per text.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    /// Which messages count as the same.
    dedup_by: DedupBy,
    /// Tells subscribers of each insert, under the lock so seqs go out in order.
    publisher: Publisher,
}

#[derive(Debug, Default)]
struct MemoryInner {
    /// Position of each id in `texts` (and `ids`); a message's seq is its position + 1.
    index: HashMap<Uuid, usize>,
    /// Under the text rule, the positions of the texts with each hash (one, unless hashes
    /// collide).
    by_text: HashMap<i64, Vec<usize>>,
    /// Ids in insertion order.
    ids: Vec<Uuid>,
    /// Texts in insertion order.
    texts: Vec<String>,
    /// When each was stored (milliseconds since the epoch), in insertion order.
    stored_at: Vec<u64>,
    /// Set by [`Store::close`]: nothing is served after it.
    closed: bool,
}

impl MemoryStore {
    /// An empty store with the given duplicate rule.
    pub fn new(dedup_by: DedupBy) -> Self {
        Self {
            inner: Mutex::default(),
            dedup_by,
            publisher: Publisher::new(0),
        }
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
        // The text index, kept under the text rule only (a memory store is never reopened
        // under another rule).
        let hash = (self.dedup_by == DedupBy::Text).then(|| text_hash(message.text.as_str()));
        if let Some(hash) = hash {
            let held = inner.by_text.get(&hash).and_then(|positions| {
                positions
                    .iter()
                    .find(|&&position| inner.texts[position] == message.text.as_str())
            });
            if let Some(&position) = held {
                return Ok(Inserted::DuplicateOf(inner.ids[position]));
            }
        }
        let position = inner.texts.len();
        let seq = position as u64 + 1;
        let text = message.text.into_inner();
        let stored_at = super::now_ms();
        let published = self.publisher.wants_messages().then(|| Stored {
            seq,
            id: message.id,
            text: text.clone(),
            stored_at_ms: Some(stored_at),
        });
        inner.index.insert(message.id, position);
        if let Some(hash) = hash {
            inner.by_text.entry(hash).or_default().push(position);
        }
        inner.ids.push(message.id);
        inner.texts.push(text);
        inner.stored_at.push(stored_at);
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
                stored_at_ms: Some(inner.stored_at[position]),
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

    async fn open(_dir: std::path::PathBuf, dedup_by: DedupBy) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new(dedup_by))
    }

    store_contract_tests!(open);
}
