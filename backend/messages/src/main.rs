use clap::Parser as _;
use messages_service::{Application, Settings};
use msglog_common::runtime::{Share, run};

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    run("MESSAGES", Share::One, || async move {
        let app = Application::build(&settings).await?;
        app.run_until(msglog_common::shutdown::signal()).await
    })
}
