//! A service built by its `Application` and run in the test's own runtime.

use std::{future::Future, net::SocketAddr, pin::Pin, time::Duration};

/// The shutdown signal an in-process service is given.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A service running in this process. Dropping it aborts it (and fails the test if it had
/// ended with an error or a panic); [`InProcess::stop`] stops it gracefully and checks that it
/// ended well.
#[derive(Debug)]
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Completes the service's shutdown signal.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The running service.
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Runs `run(stop_signal)` (an `Application::run_until`) in a task. `addr` is where the
    /// application is bound: it accepts connections from now on, so nobody waits for readiness.
    pub fn spawn<F, Fut>(addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        crate::telemetry::init_for_tests();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal: StopSignal = Box::pin(async {
            let _ = stopped.await;
        });
        Self {
            addr,
            stop: Some(stop),
            task: Some(tokio::spawn(run(signal))),
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the service and waits (at most 10 s) until it has closed its listener and
    /// connections, failing the test if it ended with an error.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the service stops within 10 s")
                .expect("the service task did not panic")
                .expect("the service ended without an error");
        }
    }
}

impl Drop for InProcess {
    /// Aborts the service if it still runs; if it already ended with an error or a panic, the
    /// test fails with it (unless it is failing already), rather than the end going unseen.
    fn drop(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let ended = match Pin::new(&mut task).poll(&mut context) {
            std::task::Poll::Pending => {
                task.abort();
                return;
            }
            std::task::Poll::Ready(ended) => ended,
        };
        if std::thread::panicking() {
            return;
        }
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!(
                "the service at {} ended with an error: {error:#}",
                self.addr
            ),
            Err(error) => panic!("the service at {} failed: {error}", self.addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_that_ended_with_an_error_fails_the_test_that_drops_it() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let failed = InProcess::spawn(addr, |_stop| async {
            Err(anyhow::anyhow!("the store would not open"))
        });
        let running = InProcess::spawn(addr, |stop| async move {
            stop.await;
            Ok(())
        });
        // Until the failing one has ended.
        while !failed.task.as_ref().is_some_and(|task| task.is_finished()) {
            tokio::task::yield_now().await;
        }
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(failed)));
        let message = dropped.expect_err("dropping it fails the test");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("the store would not open"), "{message}");
        // One still running is aborted quietly.
        drop(running);
    }
}
