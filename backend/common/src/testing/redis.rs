//! A `redis-server` of a test's own.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
};

use super::temp_dir::TempDir;

/// A `redis-server` of a test's own on a free port of 127.0.0.1, keeping its data in a
/// directory of its own; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl RedisServer {
    /// Starts one. When `redis-server` is not installed, the test is skipped (`None`, saying
    /// so), unless `MSGLOG_REQUIRE_REDIS` is set (as `scripts/test.sh` sets it, having
    /// installed Redis), where a missing server fails the test.
    pub async fn start_if_installed() -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if installed {
            return Some(Self::start().await);
        }
        assert!(
            std::env::var_os("MSGLOG_REQUIRE_REDIS").is_none(),
            "redis-server is not installed (scripts/setup.sh redis installs it)"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "SKIPPED: redis-server is not installed (scripts/setup.sh redis installs it)"
            );
        }
        None
    }

    /// Starts one (panics if `redis-server` cannot run).
    pub async fn start() -> Self {
        let dir = TempDir::new("msglog-redis");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
        };
        server.run(free_port()).await;
        server
    }

    /// The URL the `redis` crate takes: `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and waits for the exit: Redis is gone until [`RedisServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the data it had written to its directory.
    pub async fn restart(&mut self) {
        self.kill();
        self.run(self.port).await;
    }

    /// Runs `redis-server` on `port` (retrying on other free ports if it was taken meanwhile,
    /// when no port was fixed yet) and waits for the line that says it accepts connections.
    async fn run(&mut self, port: u16) {
        let fixed = self.port != 0;
        let mut port = port;
        for _ in 0..5 {
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(self.dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start redis-server: {error}"));
            let stdout = child.stdout.take().unwrap();
            let ready = tokio::task::spawn_blocking(move || {
                let mut lines = BufReader::new(stdout).lines();
                let mut seen = Vec::new();
                for line in lines.by_ref() {
                    let line = line.unwrap_or_default();
                    if line.contains("Ready to accept connections") {
                        // Keep reading, so the server never blocks on a full pipe.
                        std::thread::spawn(move || lines.for_each(drop));
                        return Ok(());
                    }
                    seen.push(line);
                }
                Err(seen.join("\n"))
            })
            .await
            .unwrap();
            match ready {
                Ok(()) => {
                    self.child = Some(child);
                    self.port = port;
                    return;
                }
                Err(log) => {
                    let _ = child.wait();
                    assert!(!fixed, "redis-server did not start on port {port}:\n{log}");
                    port = free_port();
                }
            }
        }
        panic!("redis-server did not start on any of five free ports");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
