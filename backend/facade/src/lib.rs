//! The facade: the system's public HTTP/JSON entry.
//!
//! `POST /send_message` gives a message an id and stores it in the logging service over gRPC,
//! retrying failed calls; `GET /get_messages` returns logging's list and the messages
//! service's text. Routes, JSON shapes and status strings are the original's. It also serves
//! the browser page, the page's API under `/api`, and the gateway's gRPC API
//! (`msglog.v1.MessageLog`: send, list by pages, watch live) as gRPC and gRPC-web on the
//! same port.
//!
//! Run it with `cargo run -p facade-service` (listens on `0.0.0.0:8080`; see `--help`).
//!
//! # Layout
//!
//! - [`settings`]: flags and environment variables.
//! - [`app`]: [`Application`], the one start-up path (build, then `run_until`), and the router.
//! - `clients`: what one client may take (open watches, a rate of writes and status checks).
//! - `state`: what handlers share; `extract`: request checking; `error`: every error answer,
//!   and what gRPC codes mean to a JSON client.
//! - `gateway`: what `Send`, `List` and `Status` mean, once for every door; `routes`: the
//!   doors, one module each (`original`, `api`, `grpc`), and `ops` (liveness, metrics);
//!   `feed`: the live feed from logging, fanned out to every `Watch` (`feed/follower`,
//!   `feed/watcher`).
//! - `web`: the browser page's static files and their security headers; `hosts`: the `Host`s
//!   the facade answers to.
//! - `ids`: how a message's id is picked (the key to safe retries).
//! - `retry` (with its budget): back-off, retry budget and the retry loop;
//!   `logging_client` and `messages_client`: the two dependencies.
//! - `codes`: gRPC codes as error bodies, logs and metric labels name them; `metrics`: the
//!   facade's Prometheus metrics; `compression`: the cap on answers compressed at once;
//!   `openapi`: the API document, from the routes' own descriptions; `negotiation`: what a
//!   client's headers ask (the codings it accepts, whether its copy is current);
//!   `allocator`: the allocator's figures on `/metrics`, when the binary allocates with
//!   jemalloc.

pub mod allocator;
pub mod app;
mod clients;
mod codes;
mod compression;
mod error;
mod extract;
mod feed;
mod gateway;
mod hosts;
mod ids;
mod logging_client;
mod messages_client;
mod metrics;
mod negotiation;
mod openapi;
mod retry;
mod routes;
pub mod settings;
mod state;
mod web;

pub use app::Application;
pub use ids::DedupMode;
pub use settings::{DEFAULT_MAX_MESSAGE_BYTES, Settings};
