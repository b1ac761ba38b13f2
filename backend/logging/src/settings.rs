//! The logging service's settings: every flag has an environment variable, and the default
//! address is the original's.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, sync::Arc};

use anyhow::Context as _;
use http::HeaderValue;

use crate::store::{
    DedupBy, Store,
    memory::MemoryStore,
    redis::{Acks, RedisStore, Target},
    sqlite::SqliteStore,
};

msglog_common::connection_settings!("LOGGING");

/// Default limit on a message text: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Settings, from flags or environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "logging-service",
    version,
    about = "The logging service (gRPC + gRPC-web)."
)]
pub struct Settings {
    /// Address to listen on (gRPC over HTTP/2, gRPC-web over HTTP/1.1). Loopback by default:
    /// logging is the facade's, not the public's. To listen wider (`0.0.0.0:8081`, for a
    /// facade on another machine), require a token (`--token-file`).
    #[arg(long, env = "LOGGING_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
    /// Serve TLS on `--addr` with this certificate chain (PEM, the server's first; with
    /// `--tls-key`): gRPC over HTTP/2 and gRPC-web, by ALPN. The facade then calls
    /// `https://` with `--logging-ca-file`. Off by default (loopback needs none).
    #[arg(long, env = "LOGGING_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); with `--tls-cert`.
    #[arg(long, env = "LOGGING_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A file holding the bearer token every caller must present (`authorization: Bearer
    /// TOKEN`; at least 16 visible ASCII characters): calls without it are refused
    /// `UNAUTHENTICATED`, all but the health check. None by default: on loopback only this
    /// machine's processes can call.
    #[arg(long, env = "LOGGING_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve gRPC reflection (for `grpcurl` and the like): `true` or `false`. Behind the token
    /// when there is one.
    #[arg(long, env = "LOGGING_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub reflection: bool,
    /// Address of the admin port, which answers `GET /metrics` (Prometheus text) over plain
    /// HTTP, e.g. `127.0.0.1:9081`. Off by default: the service keeps the original's one port.
    #[arg(long, env = "LOGGING_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Origins allowed to call over gRPC-web from a browser (repeat the flag or separate
    /// with commas), e.g. `http://localhost:8080`. None by default: same-origin only.
    #[arg(
        long = "cors-origin",
        env = "LOGGING_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Where messages are kept: `memory` (lost on exit, as the original), `sqlite:PATH`,
    /// `redis://HOST:PORT[/DB]` (shared by every logging process that names it: for several
    /// replicas), or `redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]` (the primary that
    /// these Redis Sentinels name for the master MASTER, found again after a failover).
    /// Default: a SQLite file, `logging.sqlite3` in the data directory.
    #[arg(long, env = "LOGGING_STORE")]
    pub store: Option<StoreChoice>,
    /// On Redis: how many replicas must hold a write before it is acknowledged (and before
    /// anyone reads it); a write they do not confirm within `--redis-ack-timeout-ms` is
    /// answered `UNAVAILABLE` (the facade sends it again, with the same id). Default: 1 with
    /// `redis-sentinel://`, 0 (no waiting) with `redis://`.
    #[arg(long, env = "LOGGING_REDIS_ACK_REPLICAS")]
    pub redis_ack_replicas: Option<u32>,
    /// On Redis, with replicas to confirm writes: how long they have, in milliseconds.
    #[arg(long, env = "LOGGING_REDIS_ACK_TIMEOUT_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_ack_timeout_ms: u64,
    /// Which messages are the same message: `text` (the original's rule: a text already held,
    /// under any id, is a duplicate) or `id` (only the id: equal texts under other ids are
    /// separate messages). In both, an id is stored once and the same id with another text is
    /// refused. A facade run with `--dedup unique` (random ids, equal texts kept apart) needs
    /// `id`.
    #[arg(long, env = "LOGGING_DEDUP_BY", value_enum, default_value_t = DedupBy::Text)]
    pub dedup_by: DedupBy,
    /// Directory of the default SQLite file; created if missing.
    #[arg(long, env = "LOGGING_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Longest message text accepted, in UTF-8 bytes.
    #[arg(long, env = "LOGGING_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// While the store fails, how often it is checked for recovery (health turns SERVING
    /// again when it works), in milliseconds.
    #[arg(long, env = "LOGGING_STORE_PROBE_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_probe_ms: u64,
    /// How long a `WatchMessages` stream may stay silent before a heartbeat is sent, in
    /// milliseconds.
    #[arg(long, env = "LOGGING_WATCH_HEARTBEAT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_heartbeat_ms: u64,
    /// After SIGINT/SIGTERM, how long in-flight calls may take to finish, in milliseconds.
    #[arg(long, env = "LOGGING_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Limits on client connections.
    #[command(flatten)]
    pub connections: ConnectionSettings,
}

/// Which store keeps the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// In memory: fast, lost on exit.
    Memory,
    /// A SQLite file at this path.
    Sqlite(PathBuf),
    /// A Redis server (`redis://HOST:PORT[/DB]`), or the primary Sentinel names.
    Redis(Target),
}

impl FromStr for StoreChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.split_once(':') {
            _ if value == "memory" => Ok(Self::Memory),
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            Some(("redis" | "redis-sentinel", _)) => Target::parse(value).map(Self::Redis),
            _ => Err(format!(
                "expected `memory`, `sqlite:PATH`, `redis://HOST:PORT[/DB]` or `redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]`, got {value:?}"
            )),
        }
    }
}

impl StoreChoice {
    /// Opens the store with the settings' duplicate rule (and, on Redis, what acknowledges a
    /// write). A database that cannot be used (or a Redis that cannot be reached) is an error
    /// with its reason; there is no fallback to memory.
    pub async fn open(&self, settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
        let dedup_by = settings.dedup_by;
        Ok(match self {
            Self::Memory => {
                tracing::warn!("messages are kept in memory and lost when the service stops");
                Arc::new(MemoryStore::new(dedup_by))
            }
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path, dedup_by)?),
            Self::Redis(target) => {
                let acks = Acks {
                    replicas: settings.redis_ack_replicas.unwrap_or(match target {
                        Target::Server(_) => 0,
                        Target::Sentinel { .. } => 1,
                    }),
                    timeout: std::time::Duration::from_millis(settings.redis_ack_timeout_ms),
                };
                Arc::new(RedisStore::connect(target, "msglog", dedup_by, acks).await?)
            }
        })
    }
}

impl Settings {
    /// The store to use: the one named, or the default file in the data directory (which is
    /// created if missing).
    pub fn store_choice(&self) -> anyhow::Result<StoreChoice> {
        match &self.store {
            Some(choice) => Ok(choice.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!(
                        "cannot create the data directory {}",
                        self.data_dir.display()
                    )
                })?;
                Ok(StoreChoice::Sqlite(self.data_dir.join("logging.sqlite3")))
            }
        }
    }

    /// The browser origins allowed to call cross-origin, checked.
    pub(crate) fn cors_origins(&self) -> anyhow::Result<Vec<HeaderValue>> {
        self.cors_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                HeaderValue::from_str(origin)
                    .with_context(|| format!("invalid --cors-origin {origin:?}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn store_choices_parse_and_bad_ones_are_refused() {
        assert_eq!("memory".parse(), Ok(StoreChoice::Memory));
        assert_eq!(
            "sqlite:/var/lib/msglog/db".parse(),
            Ok(StoreChoice::Sqlite(PathBuf::from("/var/lib/msglog/db")))
        );
        assert_eq!(
            "redis://127.0.0.1:6379/2".parse(),
            Ok(StoreChoice::Redis(Target::Server(
                "redis://127.0.0.1:6379/2".to_owned()
            )))
        );
        assert_eq!(
            "redis-sentinel://127.0.0.1:26379,[::1]:26380,sentinel.example:26381/msglog".parse(),
            Ok(StoreChoice::Redis(Target::Sentinel {
                sentinels: vec![
                    "redis://127.0.0.1:26379".to_owned(),
                    "redis://[::1]:26380".to_owned(),
                    "redis://sentinel.example:26381".to_owned(),
                ],
                master: "msglog".to_owned(),
                db: 0,
            }))
        );
        assert_eq!(
            "redis-sentinel://localhost:26379/main/3".parse(),
            Ok(StoreChoice::Redis(Target::Sentinel {
                sentinels: vec!["redis://localhost:26379".to_owned()],
                master: "main".to_owned(),
                db: 3,
            }))
        );
        for bad in [
            "",
            "sqlite:",
            "sqlite",
            "redis:",
            "redis://",
            "redis:x",
            "Memory",
            "redis-sentinel://",
            "redis-sentinel://localhost:26379",
            "redis-sentinel://localhost:26379/",
            "redis-sentinel://localhost/msglog",
            "redis-sentinel://localhost:x/msglog",
            "redis-sentinel://:26379/msglog",
            "redis-sentinel://a:1,,b:2/msglog",
            "redis-sentinel://localhost:26379/msglog/db",
        ] {
            assert!(bad.parse::<StoreChoice>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_store_is_a_sqlite_file_in_a_created_data_directory() {
        let temp = msglog_common::testing::TempDir::new("msglog-data");
        // A directory that does not exist yet, inside one removed afterwards.
        let dir = temp.join("data");
        let settings =
            Settings::try_parse_from(["logging-service", "--data-dir", dir.to_str().unwrap()])
                .unwrap();
        assert_eq!(settings.addr, "127.0.0.1:8081".parse().unwrap(), "loopback");
        assert!(settings.reflection);
        assert!(settings.token_file.is_none());
        assert_eq!(
            settings.store_choice().unwrap(),
            StoreChoice::Sqlite(dir.join("logging.sqlite3"))
        );
        assert!(dir.is_dir());
    }

    #[test]
    fn connection_limits_have_flags_with_the_services_env_prefix() {
        let settings = Settings::try_parse_from([
            "logging-service",
            "--header-read-timeout-ms",
            "250",
            "--max-connections",
            "8",
        ])
        .unwrap();
        let limits = settings.connections.limits();
        assert_eq!(limits.header_read_timeout.as_millis(), 250);
        assert_eq!(limits.max_connections, 8);
        assert!(Settings::try_parse_from(["l", "--idle-timeout-ms", "0"]).is_err());
        let help = <Settings as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("LOGGING_IDLE_TIMEOUT_MS"), "{help}");
    }
}
