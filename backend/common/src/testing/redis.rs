//! A `redis-server` of a test's own.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::temp_dir::TempDir;

/// A `redis-server` of a test's own on a free port of 127.0.0.1, keeping its data in a
/// directory of its own; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    /// Settings beyond the port and the data directory, kept for a restart.
    extra: Vec<String>,
    /// The server's log, as far as it has been read.
    log: Arc<Log>,
}

/// A process's log lines as they come, and a signal for each new one.
#[derive(Debug, Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    added: tokio::sync::Notify,
}

impl Log {
    /// Reads `lines` into the log until they end (a thread of its own).
    fn follow(
        self: &Arc<Self>,
        lines: impl Iterator<Item = std::io::Result<String>> + Send + 'static,
    ) {
        let log = Arc::clone(self);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                log.lines.lock().unwrap().push(line);
                log.added.notify_waiters();
            }
        });
    }

    /// Waits (at most 30 s, else panics with the log) until `count` lines say what `wanted`
    /// looks for, counting from line `from`; answers the index just past the last one.
    async fn wait_for(
        &self,
        from: usize,
        count: usize,
        wanted: impl Fn(&str) -> bool,
        what: &str,
    ) -> usize {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let added = self.added.notified();
                {
                    let lines = self.lines.lock().unwrap();
                    let mut found = 0;
                    for (index, line) in lines.iter().enumerate().skip(from) {
                        if wanted(line) {
                            found += 1;
                            if found == count {
                                return index + 1;
                            }
                        }
                    }
                }
                added.await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "waited 30 s for {what}; the log:\n{}",
                self.lines.lock().unwrap().join("\n")
            )
        })
    }
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
        Self::start_with(Vec::new()).await
    }

    /// Starts one with settings of `extra` (`--name value` pairs) beside the port and the
    /// data directory.
    async fn start_with(extra: Vec<String>) -> Self {
        let dir = TempDir::new("msglog-redis");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            extra,
            log: Arc::default(),
        };
        server.run(free_port()).await;
        server
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
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
                .args(&self.extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start redis-server: {error}"));
            let stdout = child.stdout.take().unwrap();
            let log = Arc::new(Log::default());
            let follow = Arc::clone(&log);
            let ready = tokio::task::spawn_blocking(move || {
                let mut lines = BufReader::new(stdout).lines();
                let mut seen = Vec::new();
                for line in lines.by_ref() {
                    let line = line.unwrap_or_default();
                    if line.contains("Ready to accept connections") {
                        // Keep reading, so the server never blocks on a full pipe.
                        follow.follow(lines);
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
                    self.log = log;
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

/// The master's name in the sentinels' configuration, as [`RedisReplicated`] runs them.
pub const SENTINEL_MASTER: &str = "msglog";

/// How long the sentinels of [`RedisReplicated`] wait before they call a silent server down:
/// low, so that a test's failover takes a few seconds, and as `scripts/services.sh` runs them.
/// Not lower: a server that fsyncs every write answers late while the rest of the test suite
/// fsyncs too, and at 500 ms the sentinels called a primary down half a second after they had
/// promoted it, four failovers in five seconds, writes refused throughout.
pub const SENTINEL_DOWN_AFTER_MS: u64 = 2_000;
/// The sentinels' `failover-timeout`. A sentinel that lost an election (two of them asked for
/// votes at once, which a loaded machine makes likelier) tries again only after twice this:
/// at Redis's example of 10 s a failover then took 23.5 s here, at 2 s one lost election costs
/// 4 s more, within the tests' bound. Loopback replicas resync well within it.
const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 2_000;

/// A replicated Redis of a test's own, as production runs one: a primary and two replicas
/// (`redis-server`s, each writing and fsyncing an append-only file, and a primary that takes a
/// write only while a replica is connected: `min-replicas-to-write 1`), watched by three
/// sentinels (`redis-server --sentinel`, quorum 2) that fail it over. Everything on free ports
/// of 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct RedisReplicated {
    /// The servers; the first was the primary at the start.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
}

/// A `redis-server --sentinel` and its log.
#[derive(Debug)]
struct Sentinel {
    child: Child,
    port: u16,
    log: Arc<Log>,
    _dir: TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisReplicated {
    /// Starts one, as [`RedisServer::start_if_installed`] does (skipped where Redis is not
    /// installed), and waits until the replicas are in sync and every sentinel monitors the
    /// primary (see [`RedisReplicated::wait_until_failover_is_possible`] for more).
    pub async fn start_if_installed() -> Option<Self> {
        let primary = RedisServer::start_if_installed().await?;
        let replica_settings = |primary: u16| {
            vec![
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                primary.to_string(),
            ]
        };
        // A write only while a replica is connected; a replica's first sync at once (the
        // default waits 5 s for more replicas to share it).
        let safety = [
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "10",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .map(str::to_owned);
        let mut primary = primary;
        primary.extra.extend(safety.iter().cloned());
        primary.restart().await;
        let mut servers = vec![primary];
        for _ in 0..2 {
            let mut extra = replica_settings(servers[0].port);
            extra.extend(safety.iter().cloned());
            let replica = RedisServer::start_with(extra).await;
            replica
                .log
                .wait_for(
                    0,
                    1,
                    |line| line.contains("MASTER <-> REPLICA sync: Finished with success"),
                    "a replica's first sync",
                )
                .await;
            servers.push(replica);
        }
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(Sentinel::start(servers[0].port).await);
        }
        Some(Self { servers, sentinels })
    }

    /// Waits until every sentinel knows both replicas and the other two sentinels: from then
    /// on a failover can happen (they learn of each other by messages every 2 s, and of the
    /// replicas from the primary every 10 s, so this takes up to about 10 s after the start).
    pub async fn wait_until_failover_is_possible(&self) {
        for sentinel in &self.sentinels {
            sentinel
                .log
                .wait_for(
                    0,
                    2,
                    |line| line.contains("+slave "),
                    "a sentinel to find both replicas",
                )
                .await;
            sentinel
                .log
                .wait_for(
                    0,
                    2,
                    |line| line.contains("+sentinel "),
                    "a sentinel to find the other two",
                )
                .await;
        }
    }

    /// The store URL for logging: `redis-sentinel://` and the three sentinels.
    pub fn store_url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!("redis-sentinel://{}/{SENTINEL_MASTER}", sentinels.join(","))
    }

    /// How many failovers a sentinel has announced so far (a mark to wait from).
    pub fn failovers(&self) -> usize {
        count_lines(&self.sentinels[0].log, "+switch-master ")
    }

    /// Waits until the first sentinel announces failover number `count` (see
    /// [`RedisReplicated::failovers`]), and answers the new primary's index in `servers`.
    pub async fn wait_for_failover(&self, count: usize) -> usize {
        let log = &self.sentinels[0].log;
        let end = log
            .wait_for(
                0,
                count,
                |line| line.contains("+switch-master "),
                "a failover",
            )
            .await;
        let line = log.lines.lock().unwrap()[end - 1].clone();
        // `+switch-master msglog 127.0.0.1 OLD 127.0.0.1 NEW`
        let new: u16 = line
            .split_whitespace()
            .last()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        self.servers
            .iter()
            .position(|server| server.port == new)
            .unwrap_or_else(|| panic!("the new primary {new} is not one of the servers"))
    }

    /// Waits until the server `index`, restarted, has been made a replica (by whichever
    /// sentinel saw it first) and has taken the primary's data: its first sync since the
    /// restart has finished.
    pub async fn wait_for_rejoin(&self, index: usize) {
        self.servers[index]
            .log
            .wait_for(
                0,
                1,
                |line| line.contains("MASTER <-> REPLICA sync: Finished with success"),
                "the old primary to rejoin as a replica",
            )
            .await;
    }
}

impl Drop for RedisReplicated {
    /// A failing test's Redis, told: every server's and sentinel's log (what the servers and
    /// the sentinels did, and when, is what a failover test's failure is about).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let servers = self
            .servers
            .iter()
            .map(|server| ("server", server.port, &server.log));
        let sentinels = self
            .sentinels
            .iter()
            .map(|sentinel| ("sentinel", sentinel.port, &sentinel.log));
        for (what, port, log) in servers.chain(sentinels) {
            let lines = log
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            #[allow(clippy::print_stderr)]
            {
                eprintln!("--- the {what} on port {port}:\n{}", lines.join("\n"));
            }
        }
    }
}

/// How many lines of `log` contain `needle`.
fn count_lines(log: &Log, needle: &str) -> usize {
    log.lines
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

impl Sentinel {
    /// A sentinel on a free port, monitoring the primary at `primary`.
    async fn start(primary: u16) -> Self {
        let dir = TempDir::new("msglog-sentinel");
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sentinel.conf");
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} {SENTINEL_DOWN_AFTER_MS}\n\
                     sentinel failover-timeout {SENTINEL_MASTER} {SENTINEL_FAILOVER_TIMEOUT_MS}\n",
                    dir = dir.path().display(),
                ),
            )
            .unwrap();
            let mut child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start redis-server --sentinel: {error}"));
            let stdout = child.stdout.take().unwrap();
            let log = Arc::new(Log::default());
            log.follow(BufReader::new(stdout).lines());
            // Started (monitoring), or gone (the port was taken meanwhile).
            let started = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let added = log.added.notified();
                    if count_lines(&log, "+monitor master") > 0 {
                        return true;
                    }
                    if child.try_wait().unwrap().is_some() {
                        return false;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(100), added).await;
                }
            })
            .await
            .unwrap_or(false);
            if started {
                return Self {
                    child,
                    port,
                    log,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("a sentinel did not start on any of five free ports");
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
