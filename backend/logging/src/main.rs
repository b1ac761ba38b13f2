use std::{sync::Arc, time::Duration};

use clap::Parser as _;
use logging_service::{
    ServerConfig, Settings, StoreChoice,
    store::{MemoryStore, SqliteStore},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    msglog_common::telemetry::init("info");
    let config = ServerConfig::from_settings(&settings)?;
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    // The store opens before the port: a database that cannot be used stops the start-up
    // with its reason, and never falls back to memory.
    match settings.store_choice()? {
        StoreChoice::Memory => {
            tracing::warn!("messages are kept in memory and lost when the service stops");
            let listener = msglog_common::bind(settings.addr).await?;
            msglog_common::shutdown::serve(
                |stop| logging_service::run(listener, config, MemoryStore::new(), stop),
                msglog_common::shutdown::signal(),
                grace,
            )
            .await
        }
        StoreChoice::Sqlite(path) => {
            let store = Arc::new(SqliteStore::open(&path)?);
            let listener = msglog_common::bind(settings.addr).await?;
            let served = msglog_common::shutdown::serve(
                |stop| logging_service::run(listener, config, Arc::clone(&store), stop),
                msglog_common::shutdown::signal(),
                grace,
            )
            .await;
            // Every insert already queued is committed before the database closes.
            store.close();
            served
        }
    }
}
