//! gRPC health that follows the store: `NOT_SERVING` while the store fails, `SERVING` again
//! once it works.
//!
//! The store is checked at start. Every store outcome the API sees is reported here: a failure
//! turns the service (`""` and
//! `LoggingService`) `NOT_SERVING` at once, and a success turns it back. While not serving, a
//! probe asks the store ([`Store::check`]) at a fixed interval, so health recovers even when no
//! call comes in (the facade's status strip is a health check, not a write).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use msglog_proto::logging::logging_service_server::SERVICE_NAME;
use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::store::{Store, StoreError};

/// Reports the store's state to the gRPC health service. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct StoreHealth {
    /// The health service's handle.
    reporter: HealthReporter,
    /// The store being watched.
    store: Arc<dyn Store>,
    /// What was last reported.
    serving: Arc<AtomicBool>,
    /// Whether a probe task is running.
    probing: Arc<AtomicBool>,
    /// How often the probe asks a failing store.
    probe_every: Duration,
    /// Set when the service stops, so a probe task ends with it.
    stopped: watch::Receiver<bool>,
}

/// Ends the probe when dropped or told to.
#[derive(Debug)]
pub(crate) struct StopProbe(watch::Sender<bool>);

impl StopProbe {
    /// Ends the probe task, if one runs.
    pub(crate) fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl StoreHealth {
    /// Starts `SERVING` if the store passes its check now, `NOT_SERVING` (and probing until it
    /// does) if not: a store that cannot write is not reported as serving until the first
    /// write finds out.
    pub(crate) async fn new(
        reporter: HealthReporter,
        store: Arc<dyn Store>,
        probe_every: Duration,
    ) -> (Self, StopProbe) {
        let (stop, stopped) = watch::channel(false);
        let health = Self {
            reporter,
            store,
            serving: Arc::new(AtomicBool::new(false)),
            probing: Arc::new(AtomicBool::new(false)),
            probe_every,
            stopped,
        };
        match health.store.check().await {
            Ok(()) => health.report(true).await,
            Err(error) => {
                tracing::warn!(%error, "the store fails its check at start");
                // Reported whatever was reported before (the health service starts SERVING).
                health.serving.store(true, Ordering::SeqCst);
                health.failing().await;
            }
        }
        (health, StopProbe(stop))
    }

    /// Records what a store call did: a failure of the store flips health to `NOT_SERVING`;
    /// anything else (a conflict is the store working) confirms `SERVING`.
    pub(crate) async fn observe<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Err(StoreError::Unavailable(_)) => self.failing().await,
            _ => {
                if !self.serving.load(Ordering::SeqCst) {
                    self.report(true).await;
                }
            }
        }
    }

    async fn failing(&self) {
        if self.serving.load(Ordering::SeqCst) {
            self.report(false).await;
        }
        if !self.probing.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().probe_until_working());
        }
    }

    /// Asks the store every `probe_every` until it works (or the service stops).
    async fn probe_until_working(self) {
        let mut stopped = self.stopped.clone();
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stopped| *stopped) => break,
                () = tokio::time::sleep(self.probe_every) => {}
            }
            if self.serving.load(Ordering::SeqCst) {
                break;
            }
            match self.store.check().await {
                Ok(()) => {
                    self.report(true).await;
                    break;
                }
                Err(error) => tracing::debug!(%error, "the store still fails its check"),
            }
        }
        self.probing.store(false, Ordering::SeqCst);
    }

    async fn report(&self, serving: bool) {
        if self.serving.swap(serving, Ordering::SeqCst) == serving {
            return;
        }
        let status = if serving {
            tracing::info!("the store works: health is SERVING");
            ServingStatus::Serving
        } else {
            tracing::warn!("the store fails: health is NOT_SERVING until it recovers");
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(SERVICE_NAME, status).await;
    }
}
