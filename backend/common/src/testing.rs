//! For tests, the one harness of the workspace, a file for each kind of thing a test starts:
//!
//! - [`InProcess`] (`in_process.rs`): a service built by its `Application` and run in the
//!   test's own runtime, stopped by a signal the test controls;
//! - [`ServiceProcess`] (`process.rs`): a service binary run as a real process, so tests can
//!   send it real signals (SIGTERM, SIGKILL), read its memory, and restart it on the same
//!   address;
//! - [`RedisServer`] (`redis.rs`): a `redis-server` of a test's own, on a free port, and
//!   [`RedisReplicated`]: a primary, two replicas and three sentinels;
//! - [`TempDir`] (`temp_dir.rs`): a directory removed with its content when dropped;
//! - [`siege`] and [`check_connection_limits`] (`load.rs`): clients that misbehave on purpose,
//!   and what the tests of connection limits share;
//! - [`grpc_frame`] and [`GrpcWebFrames`] (`grpc.rs`): gRPC frames by hand, and a gRPC-web body
//!   (binary or text) taken apart as it arrives.
//!
//! Failures panic: these helpers only run inside tests, where a panic is the report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grpc;
mod in_process;
mod load;
mod process;
mod redis;
mod temp_dir;

pub use grpc::{GrpcWebFrame, GrpcWebFrames, closing_status, grpc_frame, next_grpc_web_message};
pub use in_process::{InProcess, StopSignal};
pub use load::{
    SHORT_CONNECTION_LIMITS, SiegeReport, check_connection_limits, parse_http_answer, refused_addr,
    siege,
};
pub use process::{KEPT_LINES, LogAfterStart, ServiceProcess};
pub use redis::{RedisReplicated, RedisServer, SENTINEL_DOWN_AFTER_MS, SENTINEL_MASTER};
pub use temp_dir::TempDir;
