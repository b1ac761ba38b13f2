use clap::Parser as _;
use facade_service::{Application, Settings};

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    msglog_common::telemetry::init("info");
    // The service runs as a task on the runtime's workers, like every task it spawns (see
    // msglog_common::runtime).
    msglog_common::runtime::build("FACADE", msglog_common::runtime::Share::Half)?.block_on(
        async move {
            tokio::spawn(async move {
                let app = Application::build(&settings).await?;
                app.run_until(msglog_common::shutdown::signal()).await
            })
            .await?
        },
    )
}
