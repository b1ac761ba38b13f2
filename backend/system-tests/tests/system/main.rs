//! The services together, as users run them: in this process through their `Application`s
//! (or stand-ins that fail on purpose), and as real binaries under faults. One test binary,
//! as a test suite builds and runs faster that way.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod helpers;

mod balancing;
mod batching;
mod connect;
mod events;
mod failover;
mod fairness;
mod faults;
mod fuzz_grpc;
mod gateway;
mod large;
mod metrics;
mod reads;
mod replicas;
mod retries;
mod squatting;
mod tls;
mod tracing_ids;
mod validation;
mod walkthrough;
mod web;
