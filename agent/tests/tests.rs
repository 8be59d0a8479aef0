//! The agent's integration tests: one binary, topic modules, every request
//! over a real socket on 127.0.0.1 (rg's tests/tests.rs layout).
//!
//! Tests that need Unix (process groups, signals, symlinks, utmp, the
//! binary's SIGTERM) are `#[cfg(unix)]`; the rest also run on Windows.

mod util;

mod activity;
mod api;
mod binary;
mod exec;
// Misbehaving clients against the real server loop (issue 13).
mod hostile;
mod logs;
mod status;
