//! A memory store that misbehaves on demand (feature `testing`): what the services do when a
//! store fails is tested with it, with no copy of a store in each test.

use std::sync::{Mutex, PoisonError};

use super::{
    Cursor, DedupBy, Inserted, NewMessage, Store, StoreError, Stored, Subscription,
    memory::MemoryStore,
};

/// How [`FaultyStore`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// It does not: a plain memory store.
    #[default]
    None,
    /// Every call fails with [`StoreError::Unavailable`], as on a dead disk.
    Unavailable,
    /// The next insert stores its message and then fails, once: the caller cannot know the
    /// message was kept.
    LoseNextAnswer,
    /// Inserts never finish.
    Hang,
    /// Forward pages that start after this seq or a later one fail; everything else works (a
    /// store that fails in the middle of a long read).
    PagesAfter(u64),
}

/// A [`MemoryStore`] with a [`Fault`] switch.
#[derive(Debug)]
pub struct FaultyStore {
    /// Where messages are kept when nothing fails.
    inner: MemoryStore,
    /// The fault in force.
    fault: Mutex<Fault>,
}

impl FaultyStore {
    /// A store with `fault` in force.
    pub fn new(fault: Fault) -> Self {
        Self {
            // The id rule: tests that fail a store resend the same id.
            inner: MemoryStore::new(DedupBy::Id),
            fault: Mutex::new(fault),
        }
    }

    /// Puts `fault` in force.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable("the store fails on purpose".to_owned())
    }
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn insert(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        match self.fault() {
            Fault::None | Fault::PagesAfter(_) => self.inner.insert(message).await,
            Fault::Unavailable => Err(Self::unavailable()),
            Fault::LoseNextAnswer => {
                self.inner.insert(message).await?;
                self.set(Fault::None);
                Err(StoreError::Unavailable("the answer was lost".to_owned()))
            }
            Fault::Hang => std::future::pending().await,
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        match self.fault() {
            Fault::Unavailable => Err(Self::unavailable()),
            _ => self.inner.list().await,
        }
    }

    async fn page(&self, cursor: Cursor, limit: usize) -> Result<Vec<Stored>, StoreError> {
        match (self.fault(), cursor) {
            (Fault::Unavailable, _) => Err(Self::unavailable()),
            (Fault::PagesAfter(seq), Cursor::After(after)) if after >= seq => {
                Err(Self::unavailable())
            }
            _ => self.inner.page(cursor, limit).await,
        }
    }

    fn subscribe(&self) -> Subscription {
        self.inner.subscribe()
    }

    async fn check(&self) -> Result<(), StoreError> {
        match self.fault() {
            Fault::Unavailable => Err(Self::unavailable()),
            _ => self.inner.check().await,
        }
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
