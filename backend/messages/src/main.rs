use clap::Parser as _;
use messages_service::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    msglog_common::telemetry::init("info");
    let app = Application::build(&settings).await?;
    app.run_until(msglog_common::shutdown::signal()).await
}
