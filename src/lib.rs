//! spuff: ephemeral cloud dev VMs in one command, and the async SSH and
//! provisioning SDK the `spuff` CLI is built on.
//!
//! The library never prints; it reports through return values, typed errors
//! and progress callbacks, and the CLI renders them.
//!
//! - [`agent`]: a typed client for the spuff agent on a VM, over SSH.
//! - [`state`]: the local record of every VM spuff created (redb).
//! - [`config`]: the user's `config.yaml` and environment overrides.
//! - [`cloudinit`]: the `#cloud-config` user-data a VM boots with (user,
//!   pinned host key, two-phase bootstrap, agent), escaped and size-checked.
//! - [`vm`]: local state and the provider's listing side by side (orphans, gone VMs).
//! - [`ssh`]: a pure-Rust SSH client (no `ssh` binary needed): host key
//!   policies, key/agent authentication, exec, interactive shells.
//! - [`sftp`]: pipelined, bounded-memory file and tree transfer (it lives
//!   in [`ssh::sftp`]; `spuff::sftp` is the same module).
//! - [`forward`]: local, in-process and remote port forwarding (in
//!   [`ssh::forward`], also at `spuff::forward`).
//! - [`paths`]: where spuff's config, data and known_hosts live on each platform.
//! - [`location`]: `NAME:path` copy arguments, with Windows drive letters.
//! - [`provider`]: cloud providers (DigitalOcean, Hetzner) behind one trait: create,
//!   wait for, list and destroy VMs, snapshots, SSH keys, sizes and regions.
//! - [`validate`]: the input checks `config set` and the user-data share.
//! - [`Hint`]: one line of advice from any of these modules' errors, chosen
//!   by variant ([`hint_of`], [`chain_hint`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod agent;
pub mod agent_bin;
pub mod cloudinit;
pub mod config;
pub mod fleet;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
mod hint;
pub mod location;
pub mod paths;
mod platform;
pub mod provider;
pub mod ssh;
pub mod state;
mod util;
pub mod validate;
pub mod vm;

#[doc(inline)]
pub use hint::{Hint, chain_hint, hint_of};
#[doc(inline)]
pub use util::{Secret, fmt_duration, suggest, summarize_body, terminal_safe};

// SFTP and forwarding run on an ssh::Session, so they live in ssh/; these
// keep the short paths `spuff::sftp` and `spuff::forward` working.
pub use ssh::{forward, sftp};
