use clap::Parser as _;
use facade_service::{Application, Settings};
use msglog_common::runtime::{Share, run};

/// jemalloc: thousands of connections come and go through the facade (each live watcher holds
/// its buffers while it is open), and glibc's allocator keeps what they freed for good, where
/// jemalloc returns it (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    run("FACADE", Share::Half, || async move {
        // The allocator gives back what closed connections held, over some seconds, from a
        // thread of its own: the facade's memory follows its open connections down as well
        // as up, idle or not.
        if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
            tracing::warn!(%error, "the allocator cannot give memory back by itself");
        }
        facade_service::allocator::jemalloc_is_the_allocator();
        let app = Application::build(&settings).await?;
        app.run_until(msglog_common::shutdown::signal()).await
    })
}
