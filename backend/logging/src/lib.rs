//! The logging service: stores messages idempotently by id.
//!
//! It speaks the original's gRPC contract (`logging.proto`, service `LoggingService`) over
//! HTTP/2, and gRPC-web over HTTP/1.1 so browsers can reach it (with CORS for the origins named
//! by `--cors-origin`). It also answers the standard gRPC health check (which follows the
//! store: `NOT_SERVING` while it fails) and server reflection.
//!
//! Run it with `cargo run -p logging-service` (listens on `127.0.0.1:8081`; see `--help`).
//!
//! # Layout
//!
//! - [`settings`]: flags and environment variables, and the choice of store.
//! - [`app`]: [`Application`], the one start-up path (build, then `run_until`).
//! - `service`: the gRPC API, which checks requests and maps store outcomes to statuses;
//!   `watch`: the `WatchMessages` stream (a cursor over the store, woken by each commit).
//! - `auth`: the bearer token callers must present when one is set. `health`: gRPC health
//!   kept in step with the store. Each call's `grpc-timeout` is enforced, streams included
//!   (`msglog_common::grpc_deadline`). `metrics`: the store's and the calls' Prometheus
//!   metrics, served on the admin port.
//! - [`store`]: the object-safe [`Store`](store::Store) trait, one file per back-end (memory,
//!   SQLite, Redis), and the contract suite every back-end passes.

pub mod app;
mod auth;
mod health;
mod metrics;
mod service;
pub mod settings;
pub mod store;
mod watch;

pub use app::Application;
pub use settings::{DEFAULT_MAX_MESSAGE_BYTES, Settings, StoreChoice};
