//! For tests, the one harness of the workspace:
//!
//! - [`InProcess`]: a service built by its `Application` and run in the test's own runtime,
//!   stopped by a signal the test controls;
//! - [`ServiceProcess`]: a service binary run as a real process, so tests can send it real
//!   signals (SIGTERM, SIGKILL), read its memory, and restart it on the same address;
//! - [`TempDir`]: a directory removed with its content when dropped.
//!
//! Failures panic: these helpers only run inside tests, where a panic is the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    ffi::OsStr,
    future::Future,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    pin::Pin,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

/// The shutdown signal an in-process service is given.
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A service running in this process. Dropping it aborts it; [`InProcess::stop`] stops it
/// gracefully and checks that it ended well.
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
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What to do with the process's log once it has said where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAfterStart {
    /// Keep reading it (discarding), so the process never blocks on a full pipe.
    Drain,
    /// Close it, as when whatever read the log went away.
    Close,
}

/// A running service binary; killed (SIGKILL) if still running when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    /// The process; `None` once stopped.
    child: Option<Child>,
    /// Where it listens, as it logged it.
    pub addr: SocketAddr,
}

impl ServiceProcess {
    /// Starts `binary` with `args` (which set `--addr`, port 0 or a fixed one) and waits for
    /// the log line that says where it listens (`... listening ... addr=HOST:PORT`).
    pub async fn start<I, S>(binary: &str, args: I, log: LogAfterStart) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let stderr = child.stderr.take().unwrap();
        let binary_name = binary.to_owned();
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut seen = Vec::new();
            for line in lines.by_ref() {
                let line = line.unwrap();
                let found = line
                    .split_once("listening")
                    .and_then(|(_, rest)| rest.split_once("addr="))
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|addr| addr.parse::<SocketAddr>().ok());
                seen.push(line);
                if let Some(addr) = found {
                    if log == LogAfterStart::Drain {
                        std::thread::spawn(move || lines.for_each(drop));
                    }
                    return addr;
                }
            }
            panic!(
                "{binary_name} exited before listening:\n{}",
                seen.join("\n")
            );
        })
        .await
        .unwrap();
        Self {
            child: Some(child),
            addr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("the process was stopped")
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGTERM, then waits (at most 10 s) for the exit and returns its status.
    pub async fn terminate(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait().await
    }

    /// SIGKILL: no chance to flush or close anything. Waits for the exit.
    pub async fn kill9(mut self) {
        self.signal("KILL");
        self.wait().await;
    }

    async fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the process was stopped");
        let waited = tokio::task::spawn_blocking(move || child.wait().unwrap());
        tokio::time::timeout(Duration::from_secs(10), waited)
            .await
            .expect("the process exits within 10 s")
            .unwrap()
    }

    /// Resident memory in KiB, from `/proc`.
    #[cfg(target_os = "linux")]
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh directory under the system's temp directory, removed with everything in it when
/// dropped.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
