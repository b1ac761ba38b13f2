//! The runtime each service runs on: tokio's multi-threaded scheduler, with as many workers as
//! `<PREFIX>_WORKER_THREADS` says (`FACADE_`, `LOGGING_`, `MESSAGES_`), else
//! `TOKIO_WORKER_THREADS`, else the service's default share of the machine's cores.
//!
//! The three services are made to share a machine: each with a worker per core, a message's
//! trip through two of them wakes threads that contend for the same cores, and at concurrency
//! 1 the wake-ups between threads cost more than the work (measured in docs/performance.md).

/// How many of the machine's cores a service's runtime takes by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Half of them, at least one.
    Half,
    /// One.
    One,
}

/// Builds the runtime of the service whose settings have the environment prefix `prefix`,
/// with `share` of the cores unless the environment says otherwise.
fn build(prefix: &str, share: Share) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let own = std::env::var(format!("{prefix}_WORKER_THREADS"))
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|workers| *workers > 0);
    match own {
        Some(workers) => {
            builder.worker_threads(workers);
        }
        // tokio reads it itself.
        None if std::env::var_os("TOKIO_WORKER_THREADS").is_some() => {}
        None => {
            builder.worker_threads(workers(share));
        }
    }
    builder.build()
}

/// Runs a service: its tracing set up, then `serve` as a task on the runtime [`build`] makes
/// (so the service, like every task it spawns, runs on the runtime's workers), until it ends.
pub fn run<F, Fut>(prefix: &str, share: Share, serve: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    crate::telemetry::init("info");
    build(prefix, share)?.block_on(async move { tokio::spawn(serve()).await? })
}

/// The workers `share` of this process's cores comes to.
fn workers(share: Share) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    match share {
        Share::Half => (cores / 2).max(1),
        Share::One => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_share_is_at_least_one_worker() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(workers(Share::Half), (cores / 2).max(1));
        assert_eq!(workers(Share::One), 1);
    }
}
