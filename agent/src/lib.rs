//! `spuff-agent`: the small daemon on every spuff VM.
//!
//! It answers the spuff CLI's questions over HTTP on the VM's loopback
//! interface (reached through SSH, never exposed): is the VM up, how loaded
//! is it, is the bootstrap done, what do its logs say, and, above all, is
//! anyone using it. It tracks activity (SSH sessions, exec calls,
//! heartbeats, agent requests, CPU load) and powers an idle VM off after the
//! configured deadline, warning logged-in terminals first.
//!
//! The crate is a library so the spuff library's tests can run the agent
//! in-process; the `spuff-agent` binary only parses flags, loads the config
//! and calls [`serve`]. The HTTP shapes are in `spuff-agent-api`.
//!
//! # Examples
//!
//! Serving the agent on an ephemeral port with a fake VM layout:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use spuff_agent::{AgentOptions, AppState, SystemPaths};
//! use spuff_agent_api::AgentConfig;
//!
//! let state = AppState::new(AgentOptions {
//!     config: AgentConfig::new("s3cret"),
//!     paths: SystemPaths::under("/tmp/fake-vm"),
//!     ..Default::default()
//! })?;
//! let listener = spuff_agent::bind("127.0.0.1:0".parse()?).await?;
//! spuff_agent::serve(listener, state, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! agent/README.md has the flags, the config file, the endpoints and the
//! security notes.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod activity;
mod cloud_init;
mod destroy;
mod error;
mod exec;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
mod logs;
#[cfg(unix)]
mod metrics;
mod options;
mod platform;
mod routes;
mod sshconn;
mod state;
mod utmp;

#[cfg(not(unix))]
use crate::platform::metrics;

#[doc(inline)]
pub use crate::destroy::{DestroyError, self_destroy};
pub use crate::error::{AppError, Error};
#[doc(inline)]
pub use crate::options::{
    AgentOptions, IdleActionRunner, SystemIdleActionRunner, SystemPaths, bind, load_config,
};
#[doc(inline)]
pub use crate::routes::app;
#[doc(inline)]
pub use crate::state::{AppState, MonitorHandle, serve};
#[doc(inline)]
pub use crate::utmp::UtmpEntry;
