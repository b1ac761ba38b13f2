use std::time::Duration;

use clap::Parser as _;
use facade_service::{AppState, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    msglog_common::telemetry::init("info");
    let state = AppState::from_settings(&settings)?;
    tracing::info!(logging = %settings.logging_url, messages = %settings.messages_url, dedup = ?settings.dedup, "starting facade");
    let listener = msglog_common::bind(settings.addr).await?;
    let request_timeout = Duration::from_millis(settings.request_timeout_ms);
    msglog_common::shutdown::serve(
        |stop| facade_service::run(listener, state, request_timeout, stop),
        msglog_common::shutdown::signal(),
        Duration::from_millis(settings.shutdown_grace_ms),
    )
    .await
}
