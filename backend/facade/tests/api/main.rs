//! The facade as a real server on port 0, with real logging and messages services (or
//! stand-ins that fail on purpose), driven over HTTP. One test binary, as a test suite grows
//! faster that way.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod helpers;

mod abuse;

mod retries;
mod tracing_ids;
mod validation;
mod walkthrough;
mod web;
