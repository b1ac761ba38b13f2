use std::time::Duration;

use clap::Parser as _;
use messages_service::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    msglog_common::telemetry::init("info");
    let listener = msglog_common::bind(settings.addr).await?;
    let timeout = Duration::from_millis(settings.request_timeout_ms);
    msglog_common::shutdown::serve(
        |stop| messages_service::run(listener, timeout, stop),
        msglog_common::shutdown::signal(),
        Duration::from_millis(settings.shutdown_grace_ms),
    )
    .await
}
