//! The open connections, so a new one can make room when the cap is reached.

use super::state::ConnectionState;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Open connections, so a new one can make room by closing the longest-idle.
#[derive(Debug, Clone, Default)]
pub(super) struct Registry {
    inner: Arc<Mutex<RegistryInner>>,
}

#[derive(Debug, Default)]
pub(super) struct RegistryInner {
    pub(super) next: u64,
    pub(super) open: HashMap<u64, Arc<ConnectionState>>,
}

impl Registry {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub(super) fn insert(&self) -> (u64, Arc<ConnectionState>) {
        let mut inner = self.lock();
        let key = inner.next;
        inner.next += 1;
        let state = Arc::new(ConnectionState::new());
        inner.open.insert(key, Arc::clone(&state));
        (key, state)
    }

    pub(super) fn remove(&self, key: u64) {
        self.lock().open.remove(&key);
    }

    /// Asks the connection idle the longest to close now, or when none is idle the one stalled
    /// the longest; `false` when every connection is busy and moving. The evicted one leaves
    /// the registry when its task ends.
    pub(super) fn evict_longest_idle(&self) -> bool {
        let mut inner = self.lock();
        let idle = inner
            .open
            .iter()
            .filter(|(_, state)| state.in_flight() == 0)
            .min_by_key(|(_, state)| state.last_activity())
            .map(|(key, _)| *key);
        let victim = idle.or_else(|| {
            inner
                .open
                .iter()
                .filter_map(|(key, state)| Some((*key, state.stalled_since()?)))
                .min_by_key(|(_, since)| *since)
                .map(|(key, _)| key)
        });
        match victim.and_then(|key| inner.open.remove(&key)) {
            Some(state) => {
                state.evict.notify_one();
                true
            }
            None => false,
        }
    }
}
