use clap::Parser as _;
use facade_service::{Application, Settings};
use msglog_common::runtime::{Share, run};

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    run("FACADE", Share::Half, || async move {
        let app = Application::build(&settings).await?;
        app.run_until(msglog_common::shutdown::signal()).await
    })
}
