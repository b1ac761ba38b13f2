//! The limit of one HTTP hop on this machine: a bare axum server answering `hello` to
//! `GET /`, measured by `scripts/bench/throughput.sh` with the same load tool and settings as the
//! services, so each service's figure can be given as a share of it.
//!
//!     bench-hello 127.0.0.1:19083

use anyhow::Context as _;
use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .context("usage: bench-hello HOST:PORT")?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app).await?;
    Ok(())
}
