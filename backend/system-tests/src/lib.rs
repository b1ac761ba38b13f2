//! Tests of more than one service, in `tests/system/`: the three services together in this
//! process (each built by its own `Application`, as its `main.rs` does), and the real
//! binaries under faults (SIGKILL, SIGTERM, restarts). Each service's own tests stay in its
//! crate and depend on that service only.
//!
//! Run them with `cargo test -p msglog-system-tests` (or all tests with `scripts/test.sh`);
//! `TEST_LOG=1` prints the services' traces in a failing test's output.
