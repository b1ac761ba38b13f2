//! Logging's metrics, served at `GET /metrics` on the admin port (`--admin-addr`):
//!
//! - `store_inserts_total{outcome}`: inserts by outcome: `stored`, `duplicate`, `conflict`
//!   (the id holds another text) and `error` (the store failed);
//! - `store_insert_duration_seconds`: from the call to the store to its outcome (on SQLite this
//!   includes waiting for the batch's commit and its fsync);
//! - `store_commit_batch_size`: inserts per committed transaction (SQLite's group commit);
//! - `watchers`: open `WatchMessages` streams.

use std::{sync::Arc, time::Instant};

use futures_util::StreamExt as _;
use msglog_common::metrics::latency_histogram;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    store::{Inserted, StoreError},
    watch::WatchStream,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric of one logging service.
#[derive(Debug)]
pub(crate) struct Metrics {
    inserts: Family<OutcomeLabels, Counter>,
    insert_latency: Histogram,
    watchers: Gauge,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
        let metrics = Self {
            inserts: Family::default(),
            insert_latency: latency_histogram(),
            watchers: Gauge::default(),
        };
        // Every outcome is shown from the start, at 0.
        for outcome in ["stored", "duplicate", "conflict", "error"] {
            drop(metrics.inserts.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "store_inserts",
            "Inserts by outcome: stored, duplicate, conflict (the id holds another text), error (the store failed)",
            metrics.inserts.clone(),
        );
        registry.register(
            "store_insert_duration_seconds",
            "Time from an insert's call to the store to its outcome (on SQLite, its commit included)",
            metrics.insert_latency.clone(),
        );
        registry.register(
            "watchers",
            "Open WatchMessages streams",
            metrics.watchers.clone(),
        );
        Arc::new(metrics)
    }

    /// An insert that started at `started` ended with `outcome`.
    pub(crate) fn inserted(&self, started: Instant, outcome: &Result<Inserted, StoreError>) {
        self.insert_latency.observe(started.elapsed().as_secs_f64());
        let outcome = match outcome {
            Ok(Inserted::Stored) => "stored",
            Ok(Inserted::Duplicate | Inserted::DuplicateOf(_)) => "duplicate",
            Err(StoreError::Conflict { .. }) => "conflict",
            Err(StoreError::Unavailable(_)) => "error",
        };
        self.inserts.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// `stream`, counted in `watchers` while it is open.
    pub(crate) fn counted(&self, stream: WatchStream) -> WatchStream {
        let open = OpenWatcher::new(self.watchers.clone());
        Box::pin(stream.map(move |item| {
            let _counted = &open;
            item
        }))
    }
}

/// One open stream in the `watchers` gauge, until dropped.
#[derive(Debug)]
struct OpenWatcher(Gauge);

impl OpenWatcher {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenWatcher {
    fn drop(&mut self) {
        self.0.dec();
    }
}
