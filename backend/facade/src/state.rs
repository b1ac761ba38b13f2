//! What every handler shares: one `Clone` struct of handles and copies.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use msglog_common::secret::Secret;

use crate::{
    clients::{RateLimit, WatchSlots},
    feed::Feed,
    ids::IdRule,
    logging_client::{CallSettings, LoggingClient},
    messages_client::MessagesClient,
    metrics::{CallMetrics, Metrics},
    retry::RetryBudget,
    settings::Settings,
};

/// Size limits on what clients send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest request body, in bytes.
    pub(crate) max_body_bytes: usize,
    /// Longest message text, in UTF-8 bytes.
    pub(crate) max_message_bytes: usize,
}

impl From<&Settings> for Limits {
    fn from(settings: &Settings) -> Self {
        Self {
            max_body_bytes: settings.max_body_bytes,
            max_message_bytes: settings.max_message_bytes,
        }
    }
}

impl Default for Limits {
    /// The settings' defaults.
    fn default() -> Self {
        Self {
            max_body_bytes: crate::settings::DEFAULT_MAX_BODY_BYTES,
            max_message_bytes: crate::settings::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// A check of logging and messages, shared by the status answers of the second after it.
#[derive(Debug, Clone)]
pub(crate) struct StatusChecks {
    /// When it was made.
    pub(crate) at: tokio::time::Instant,
    /// Logging's gRPC health check, or why it failed.
    pub(crate) logging: Result<(), String>,
    /// The messages service's text, or why there is none.
    pub(crate) messages: Result<String, String>,
}

/// Everything a handler needs, behind one `Arc`: the router clones the state for every
/// request, so a clone must cost one reference count, not a copy of each client.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The logging service, with retries.
    pub(crate) logging: LoggingClient,
    /// The messages service.
    pub(crate) messages: MessagesClient,
    /// The live feed from logging, for `Watch` calls.
    pub(crate) feed: Feed,
    /// How ids are picked.
    pub(crate) ids: IdRule,
    /// What clients may send.
    pub(crate) limits: Limits,
    /// Where the built page is (`index.html` and its assets).
    pub(crate) static_dir: Arc<Path>,
    /// The API's OpenAPI document with these limits, served at `/api/openapi.json`.
    pub(crate) openapi: axum::body::Bytes,
    /// Every metric, for `/metrics`.
    pub(crate) metrics: Metrics,
    /// What the calls to logging did (also in `metrics`), for the status answer.
    pub(crate) calls: Arc<CallMetrics>,
    /// Open `Watch` streams per client.
    pub(crate) watch_slots: Arc<WatchSlots>,
    /// Messages per client.
    pub(crate) write_rate: RateLimit,
    /// Status checks per client.
    pub(crate) status_rate: RateLimit,
    /// The last check of logging and messages for the status answer, and when it was made:
    /// the lock lets one check run at a time, and answers within a second of one share it.
    pub(crate) status_checks: tokio::sync::Mutex<Option<StatusChecks>>,
}

impl AppState {
    /// Builds the clients from the settings. Connects to nothing yet.
    /// The state for these settings, serving `openapi` as the API's document.
    pub(crate) fn from_settings(settings: &Settings, openapi: String) -> anyhow::Result<Self> {
        let policy = settings.retry_policy();
        let budget = RetryBudget::new(settings.retry_budget_tokens, settings.retry_budget_ratio);
        let calls = Arc::new(CallMetrics::default());
        let limits = Limits::from(settings);
        anyhow::ensure!(
            !settings.logging_urls.is_empty(),
            "--logging-url must name at least one logging service"
        );
        let read_secret = |path: &Option<std::path::PathBuf>, flag: &str| {
            path.as_deref()
                .map(Secret::read)
                .transpose()
                .with_context(|| flag.to_owned())
        };
        let id_secret = read_secret(&settings.id_secret_file, "--id-secret-file")?;
        let call_settings = CallSettings {
            max_message_bytes: settings.max_message_bytes,
            token: read_secret(&settings.logging_token_file, "--logging-token-file")?,
            ca: settings
                .logging_ca_file
                .as_deref()
                .map(|path| {
                    std::fs::read(path).with_context(|| {
                        format!("--logging-ca-file: cannot read {}", path.display())
                    })
                })
                .transpose()?,
        };
        let logging = LoggingClient::new(
            &settings.logging_urls,
            &call_settings,
            Duration::from_millis(settings.logging_health_ms),
            policy,
            settings.read_policy(),
            budget,
            Arc::clone(&calls),
        )
        .with_context(|| format!("invalid --logging-url {:?}", settings.logging_urls))?;
        let feed = Feed::new(logging.clone(), settings.feed_settings());
        let metrics = Metrics::new(&calls, |registry| {
            feed.register_metrics(registry);
            crate::allocator::register(registry);
        });
        Ok(Self(Arc::new(Shared {
            feed,
            logging,
            metrics,
            calls,
            watch_slots: WatchSlots::new(
                usize::try_from(settings.max_watches_per_client).unwrap_or(usize::MAX),
                settings.limit_loopback,
            ),
            write_rate: RateLimit::new(
                "messages",
                settings.write_rate,
                f64::from(settings.write_burst),
                settings.limit_loopback,
            ),
            status_rate: RateLimit::new(
                "status checks",
                settings.status_rate,
                f64::from(settings.status_burst),
                settings.limit_loopback,
            ),
            status_checks: tokio::sync::Mutex::new(None),
            messages: MessagesClient::new(
                &settings.messages_url,
                Duration::from_millis(settings.messages_timeout_ms),
            )
            .with_context(|| format!("invalid --messages-url {:?}", settings.messages_url))?,
            ids: IdRule::new(settings.dedup, id_secret.as_ref()),
            limits,
            openapi: openapi.into(),
            static_dir: Arc::from(settings.static_dir.as_path()),
        })))
    }
}
