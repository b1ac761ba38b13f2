use std::time::Duration;

use clap::Parser as _;
use logging_service::{ServerConfig, Settings, store::MemoryStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    msglog_common::telemetry::init("info");
    let config = ServerConfig::from_settings(&settings)?;
    let listener = msglog_common::bind(settings.addr).await?;
    msglog_common::shutdown::serve(
        |stop| logging_service::run(listener, config, MemoryStore::new(), stop),
        msglog_common::shutdown::signal(),
        Duration::from_millis(settings.shutdown_grace_ms),
    )
    .await
}
