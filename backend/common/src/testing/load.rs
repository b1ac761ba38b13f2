//! Clients that misbehave on purpose (slow, silent, idle connections), and what the tests of
//! connection limits share: a refused address and a raw HTTP answer read off a socket.

use std::{net::SocketAddr, time::Duration};

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
}
