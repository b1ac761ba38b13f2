//! Fills a SQLite message database for a bench, through the logging service's own store (so
//! the file is exactly what logging writes): `COUNT` messages, 512 inserts in flight, so they
//! share commits.
//!
//!     bench-fill data/bench.sqlite3 1000000

use std::sync::Arc;

use anyhow::Context as _;
use logging_service::store::{DedupBy, NewMessage, Store, sqlite::SqliteStore};
use msglog_proto::MessageText;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(count)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bench-fill PATH COUNT");
    };
    let count: u128 = count.parse().context("COUNT must be a number")?;
    let store = Arc::new(SqliteStore::open(&path, DedupBy::Id)?);
    let mut next = 0_u128;
    while next < count {
        let batch: Vec<_> = (next..count.min(next + 512))
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let text = MessageText::parse(
                        format!("a stored message of an ordinary length, number {n}"),
                        1024,
                    )?;
                    let id = uuid::Uuid::from_u128(n + 1);
                    store.insert(NewMessage { id, text }).await?;
                    anyhow::Ok(())
                })
            })
            .collect();
        next = count.min(next + 512);
        for insert in batch {
            insert.await??;
        }
    }
    store.close().await;
    Ok(())
}
