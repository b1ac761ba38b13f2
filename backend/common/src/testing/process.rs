//! A service binary run as a real process: real signals, its memory, its log, a restart on
//! the same address.

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
    /// Keep reading it, so the process never blocks on a full pipe, keeping only the last
    /// [`KEPT_LINES`] (printed if the test fails).
    Drain,
    /// Keep reading it into [`ServiceProcess::log_lines`], with the log at debug level.
    Capture,
    /// Close it, as when whatever read the log went away.
    Close,
}

/// Lines of a drained log kept, to print when a test fails.
pub const KEPT_LINES: usize = 200;

/// A process's log lines, as captured, and a signal for each new one.
#[derive(Debug, Default)]
struct CapturedLog {
    lines: std::sync::Mutex<Vec<String>>,
    added: tokio::sync::Notify,
}

/// A running service binary; killed (SIGKILL) if still running when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    /// The process; `None` once stopped.
    child: Option<Child>,
    /// Where it listens, as it logged it.
    pub addr: SocketAddr,
    /// The log lines read so far, with [`LogAfterStart::Capture`] (the last ones with
    /// [`LogAfterStart::Drain`]), and a signal for each new one.
    log: std::sync::Arc<CapturedLog>,
    /// What was started, to name it.
    binary: String,
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
            // A captured log is there to be read: everything down to debug.
            .env(
                "RUST_LOG",
                if log == LogAfterStart::Capture {
                    "debug"
                } else {
                    "info"
                },
            )
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let stderr = child.stderr.take().unwrap();
        let binary_name = binary.to_owned();
        let log_lines = std::sync::Arc::new(CapturedLog::default());
        let captured = std::sync::Arc::clone(&log_lines);
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut seen = Vec::new();
            for line in lines.by_ref() {
                let line = line.unwrap();
                let found = line
                    .split_once("listening")
                    .and_then(|(_, rest)| rest.split_once(" addr="))
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|addr| addr.parse::<SocketAddr>().ok());
                seen.push(line);
                if let Some(addr) = found {
                    match log {
                        LogAfterStart::Drain => {
                            std::thread::spawn(move || {
                                for line in lines.map_while(Result::ok) {
                                    let mut kept = captured.lines.lock().unwrap();
                                    if kept.len() == KEPT_LINES {
                                        kept.remove(0);
                                    }
                                    kept.push(line);
                                }
                            });
                        }
                        LogAfterStart::Capture => {
                            std::thread::spawn(move || {
                                for line in lines.map_while(Result::ok) {
                                    captured.lines.lock().unwrap().push(line);
                                    captured.added.notify_waiters();
                                }
                            });
                        }
                        LogAfterStart::Close => {}
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
            log: log_lines,
            binary: binary.to_owned(),
        }
    }

    /// The log lines captured so far (see [`LogAfterStart::Capture`]).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lines.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until a captured log line satisfies `wanted`, and returns it.
    pub async fn wait_for_log_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        self.wait_for_log_lines(1, wanted).await.remove(0)
    }

    /// Waits (at most 10 s) until `count` captured log lines satisfy `wanted`, and returns them.
    pub async fn wait_for_log_lines(
        &self,
        count: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let added = self.log.added.notified();
                tokio::pin!(added);
                added.as_mut().enable();
                let lines: Vec<_> = self
                    .log_lines()
                    .into_iter()
                    .filter(|line| wanted(line))
                    .collect();
                if lines.len() >= count {
                    return lines;
                }
                added.await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "not {count} such log lines within 10 s:\n{:#?}",
                self.log_lines()
            )
        })
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
    /// Kills the process if it still runs. If the test is failing, prints the process's last
    /// log lines; if the process had exited with a failure nobody asked for, fails the test.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        let log = || self.log_lines().join("\n");
        if std::thread::panicking() {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "{} (pid {}), its last log lines:\n{}",
                    self.binary,
                    child.id(),
                    log()
                );
            }
            return;
        }
        if let Some(status) = exited.filter(|status| !status.success()) {
            panic!(
                "{} exited with {status} during the test:\n{}",
                self.binary,
                log()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_that_exited_with_a_failure_fails_the_test_that_drops_it_with_its_log() {
        let mut process = ServiceProcess::start(
            "sh",
            [
                "-c",
                "echo 'listening addr=127.0.0.1:9' >&2; echo 'the store would not open' >&2; exit 3",
            ],
            LogAfterStart::Drain,
        )
        .await;
        // Until it has exited (and its last line was read).
        while process
            .child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
            || process.log_lines().is_empty()
        {
            tokio::task::yield_now().await;
        }
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(process)));
        let message = dropped.expect_err("dropping it fails the test");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("the store would not open"), "{message}");
    }

    /// The process group of process `pid`, from `/proc` (the fifth field of `stat`, after the
    /// name in parentheses).
    #[cfg(target_os = "linux")]
    fn process_group(pid: &str) -> String {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let (_, after_name) = stat.rsplit_once(')').unwrap();
        after_name.split_whitespace().nth(2).unwrap().to_owned()
    }

    /// nextest runs each test in a process group of its own and ends the group on a timeout or
    /// Ctrl-C: a service started by a test stays in that group, so it never outlives the run.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_started_process_stays_in_the_test_process_group() {
        let process = ServiceProcess::start(
            "sh",
            ["-c", "echo 'listening addr=127.0.0.1:9' >&2; exec sleep 60"],
            LogAfterStart::Drain,
        )
        .await;
        assert_eq!(
            process_group(&process.pid().to_string()),
            process_group("self")
        );
        process.kill9().await;
    }
}
