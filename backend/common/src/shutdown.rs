//! Signal handling in one place.
//!
//! Services in this workspace take their shutdown signal as a future
//! (`Application::run_until(shutdown)`), so tests stop them by completing a future and
//! binaries by a signal; [`crate::server::serve`] bounds the drain that follows.

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
