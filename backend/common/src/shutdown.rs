//! Signal handling in one place, and a bound on graceful shutdown.
//!
//! Servers in this workspace take their shutdown signal as a future (`run(listener, ..,
//! shutdown)`), so tests stop them by completing a future and binaries by a signal. Graceful
//! shutdown waits for in-flight requests; [`serve`] bounds that wait so a stuck connection can
//! never keep a process alive.

use std::{future::Future, time::Duration};

use tokio::sync::watch;

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
///
/// If a handler cannot be installed the error is logged and that signal is ignored, rather
/// than stopping the server at once.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}

/// Runs the server that `start` builds until `stop` resolves, then lets it drain for at most
/// `grace`.
///
/// `start` receives the future the server must use as its own shutdown signal. Returns the
/// server's own result when it finishes in time, or `Ok(())` with a warning when the grace
/// period runs out first (the remaining connections are dropped with the process).
pub async fn serve<S, F>(
    start: S,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()>
where
    S: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
    F: Future<Output = anyhow::Result<()>>,
{
    let (tx, mut rx) = watch::channel(false);
    let server_stop = Box::pin(async move {
        // Resolves when `tx` sends, or when it is dropped.
        let _ = rx.wait_for(|stopping| *stopping).await;
    });
    let server = start(server_stop);
    tokio::pin!(server);

    tokio::select! {
        result = &mut server => return result,
        () = stop => {}
    }
    let _ = tx.send(true);
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "connections still open after the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_server_that_drains_in_time_returns_its_own_result() {
        let result = serve(
            |stop| async move {
                stop.await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                anyhow::bail!("server error")
            },
            async {},
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(
            result.map_err(|e| e.to_string()),
            Err("server error".to_owned())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_does_not_drain_is_abandoned_after_the_grace_period() {
        let started = tokio::time::Instant::now();
        let result = serve(
            |stop| async move {
                stop.await;
                std::future::pending::<()>().await;
                Ok(())
            },
            async {},
            Duration::from_secs(3),
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_stops_by_itself_is_not_waited_for() {
        let result = serve(
            |_stop| async { Ok(()) },
            std::future::pending(),
            Duration::from_secs(3),
        )
        .await;
        assert!(result.is_ok());
    }
}
