//! For tests, the one harness of the workspace:
//!
//! - [`InProcess`]: a service built by its `Application` and run in the test's own runtime,
//!   stopped by a signal the test controls;
//! - [`ServiceProcess`]: a service binary run as a real process, so tests can send it real
//!   signals (SIGTERM, SIGKILL), read its memory, and restart it on the same address;
//! - [`TempDir`]: a directory removed with its content when dropped;
//! - [`RedisServer`]: a `redis-server` of a test's own, on a free port;
//! - [`grpc_frame`] and [`GrpcWebFrames`]: gRPC frames by hand, and a gRPC-web body (binary or
//!   text) taken apart as it arrives.
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

/// What a [`siege`] found.
#[derive(Debug, Default)]
pub struct SiegeReport {
    /// How long each connection that never sent a whole request head lived (`None`: still
    /// open when the siege ended).
    pub slow_or_silent: Vec<Option<Duration>>,
    /// How long each connection lived after its one answered request (`None`: still open).
    pub idle_after_request: Vec<Option<Duration>>,
    /// Fresh requests sent during the siege, and how many were answered 200.
    pub probes: usize,
    /// Probes answered 200.
    pub probes_ok: usize,
}

/// Holds connections open against `addr` the ways a careless or hostile client does, while
/// a fresh client keeps asking `probe` (a whole HTTP/1.1 request) and expects a 200:
///
/// - `slow` connections send a request head one byte every 100 ms and never finish it;
/// - `silent` connections send nothing at all;
/// - `idle` connections send `probe` once, read the answer, and then stay open.
///
/// Each ends when the server closes it, or at `until`. Returns how long each lived.
pub async fn siege(
    addr: SocketAddr,
    probe: &'static [u8],
    slow: usize,
    silent: usize,
    idle: usize,
    until: Duration,
) -> SiegeReport {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpStream,
        time::Instant,
    };

    /// Reads until the server closes the connection (or `deadline`); writes `drip` one byte
    /// every 100 ms meanwhile. Returns the connection's lifetime when the server closed it.
    async fn hold(
        mut stream: TcpStream,
        started: Instant,
        drip: Option<&'static [u8]>,
        deadline: Instant,
    ) -> Option<Duration> {
        let mut buffer = [0_u8; 4096];
        let mut dripped = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return Some(started.elapsed()),
                    Ok(_) => {}
                },
                _ = tick.tick(), if drip.is_some() => {
                    let drip = drip.unwrap_or_default();
                    let byte = drip[dripped % drip.len()];
                    dripped += 1;
                    if stream.write_all(&[byte]).await.is_err() {
                        return Some(started.elapsed());
                    }
                }
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// One fresh request; whether it was answered 200 within 2 s.
    async fn ask(addr: SocketAddr, probe: &[u8]) -> bool {
        let attempt = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(probe).await.ok()?;
            let mut answer = vec![0_u8; 64];
            let n = stream.read(&mut answer).await.ok()?;
            Some(answer[..n].starts_with(b"HTTP/1.1 200"))
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), attempt).await,
            Ok(Some(true))
        )
    }

    const HEAD_THAT_NEVER_ENDS: &[u8] =
        b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaa";
    let deadline = Instant::now() + until;
    let mut holders = Vec::new();
    for n in 0..slow + silent {
        let stream = TcpStream::connect(addr).await.unwrap();
        let drip = (n < slow).then_some(HEAD_THAT_NEVER_ENDS);
        holders.push(tokio::spawn(hold(stream, Instant::now(), drip, deadline)));
    }
    let mut idlers = Vec::new();
    for _ in 0..idle {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(probe).await.unwrap();
        let mut answer = vec![0_u8; 4096];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&answer[..n])
        );
        idlers.push(tokio::spawn(hold(stream, Instant::now(), None, deadline)));
    }

    let mut report = SiegeReport::default();
    // Ask while any siege connection is still open.
    while Instant::now() < deadline
        && (holders.iter().any(|h| !h.is_finished()) || idlers.iter().any(|h| !h.is_finished()))
    {
        report.probes += 1;
        if ask(addr, probe).await {
            report.probes_ok += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for holder in holders {
        report.slow_or_silent.push(holder.await.unwrap());
    }
    for idler in idlers {
        report.idle_after_request.push(idler.await.unwrap());
    }
    report
}

/// The connection-limit flags [`check_connection_limits`] expects a service to run with: a
/// 500 ms header-read timeout and a 1 s idle timeout.
pub const SHORT_CONNECTION_LIMITS: [&str; 4] = [
    "--header-read-timeout-ms",
    "500",
    "--idle-timeout-ms",
    "1000",
];

/// Lays a [`siege`] of 50 slow, 100 silent and 100 idle connections on a service started with
/// [`SHORT_CONNECTION_LIMITS`], and checks that each is closed after its timeout (not before,
/// and well within a few seconds after) while every fresh request is answered meanwhile.
pub async fn check_connection_limits(addr: SocketAddr, probe: &'static [u8]) {
    let header_read = Duration::from_millis(500);
    let idle = Duration::from_millis(1000);
    let slack = Duration::from_secs(3);
    let report = siege(addr, probe, 50, 100, 100, idle + header_read + slack).await;
    let early = header_read.mul_f64(0.8);
    for (n, lived) in report.slow_or_silent.iter().enumerate() {
        let lived = lived
            .unwrap_or_else(|| panic!("connection {n} without a request head was never closed"));
        assert!(
            lived >= early,
            "connection {n} closed after {lived:?}, before the timeout"
        );
        assert!(
            lived <= header_read + slack,
            "connection {n} lived {lived:?}"
        );
    }
    for (n, lived) in report.idle_after_request.iter().enumerate() {
        let lived = lived.unwrap_or_else(|| panic!("idle connection {n} was never closed"));
        // HTTP/1.1 waits for the next request head at most the header-read timeout.
        assert!(lived >= early, "idle connection {n} closed after {lived:?}");
        assert!(lived <= idle + slack, "idle connection {n} lived {lived:?}");
    }
    assert!(report.probes > 0);
    assert_eq!(
        report.probes_ok, report.probes,
        "every fresh request was answered during the siege"
    );
}

/// An address where nothing listens: connections to it are refused. Its port stays bound (by
/// a socket that never listens) for as long as the test process runs, so nothing else can
/// take it meanwhile, as it could a port merely found free and let go.
pub async fn refused_addr() -> SocketAddr {
    static HELD: std::sync::Mutex<Vec<tokio::net::TcpSocket>> = std::sync::Mutex::new(Vec::new());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(socket);
    addr
}

/// The status code and body of a raw HTTP/1.1 answer read off a socket.
pub fn parse_http_answer(raw: &[u8]) -> (u16, String) {
    let answer = String::from_utf8_lossy(raw);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
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

/// A gRPC length-prefixed message frame (uncompressed).
pub fn grpc_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// One frame of a gRPC-web body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcWebFrame {
    /// A message's protobuf bytes.
    Message(Vec<u8>),
    /// The trailer block (`grpc-status:0\r\n...`).
    Trailers(String),
}

/// Takes a gRPC-web body apart as its chunks arrive, in binary (`application/grpc-web`) or
/// text (`application/grpc-web-text`, base64) form.
#[derive(Debug, Default)]
pub struct GrpcWebFrames {
    /// Base64 not yet decoded (text form): always less than one 4-character group.
    text: Vec<u8>,
    /// Whether the body is base64.
    is_text: bool,
    /// Bytes not yet taken as frames.
    bytes: Vec<u8>,
}

impl GrpcWebFrames {
    /// For a binary body.
    pub fn binary() -> Self {
        Self::default()
    }

    /// For a base64 body.
    pub fn text() -> Self {
        Self {
            is_text: true,
            ..Self::default()
        }
    }

    /// Adds a chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        use base64::Engine as _;
        if !self.is_text {
            self.bytes.extend_from_slice(chunk);
            return;
        }
        // Each frame is encoded on its own, so padding may come mid-body; every 4-character
        // group decodes on its own.
        self.text.extend_from_slice(chunk);
        let whole = self.text.len() / 4 * 4;
        for group in self.text[..whole].chunks(4) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(group)
                .unwrap();
            self.bytes.extend(decoded);
        }
        self.text.drain(..whole);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame(&mut self) -> Option<GrpcWebFrame> {
        if self.bytes.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.bytes[1..5].try_into().unwrap()) as usize;
        if self.bytes.len() < 5 + len {
            return None;
        }
        let flag = self.bytes[0];
        let payload = self.bytes[5..5 + len].to_vec();
        self.bytes.drain(..5 + len);
        Some(if flag & 0x80 != 0 {
            GrpcWebFrame::Trailers(String::from_utf8(payload).unwrap())
        } else {
            GrpcWebFrame::Message(payload)
        })
    }

    /// Whether every byte pushed was taken as a frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.text.is_empty()
    }
}

/// The next message of a gRPC-web call's streamed answer (its protobuf bytes), reading the
/// body as it arrives; fails if the call ends first or nothing comes within 10 s.
pub async fn next_grpc_web_message(
    response: &mut reqwest::Response,
    frames: &mut GrpcWebFrames,
) -> Vec<u8> {
    let next = async {
        loop {
            match frames.next_frame() {
                Some(GrpcWebFrame::Message(bytes)) => return bytes,
                Some(GrpcWebFrame::Trailers(trailers)) => panic!("the call ended: {trailers}"),
                None => {
                    let chunk = response.chunk().await.unwrap().expect("the body ended");
                    frames.push(&chunk);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("a message within 10 s")
}

/// Reads a server stream to its end and returns the status it ended with (within 10 s); fails
/// if it ended without one.
pub async fn closing_status<T>(stream: &mut tonic::Streaming<T>) -> tonic::Status {
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    });
    ended.await.expect("the stream ends within 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_address_refuses_and_stays_taken() {
        let addr = refused_addr().await;
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // Nobody else can listen there while the tests run.
        assert!(tokio::net::TcpListener::bind(addr).await.is_err());
    }

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
