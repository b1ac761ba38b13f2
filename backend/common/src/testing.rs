//! For tests: a service binary run as a real process, so tests can send it real signals
//! (SIGTERM, SIGKILL), read its memory, and restart it on the same address.
//!
//! Failures panic: these helpers only run inside tests, where a panic is the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

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
