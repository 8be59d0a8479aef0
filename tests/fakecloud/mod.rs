//! Fake cloud APIs over real TLS, for the provider tests, `vm::up`, the CLI
//! end to end and the provider bench.
//!
//! - [`server`]: what every fake shares: TLS with a per-server CA, scripted
//!   [`Fault`]s, counting ([`Stats`]), rate limiting and paging;
//! - [`digitalocean`]: DigitalOcean API v2 ([`FakeCloud`]), whose droplets can
//!   boot into real VMs through a [`BootHook`];
//! - [`hetzner`]: Hetzner Cloud API v1 ([`hetzner::FakeHetzner`]);
//! - [`aws`]: EC2's Query API, signed, in XML ([`aws::State`]).
//!
//! A new fake is one file with an [`server::Api`] impl: its routes, JSON
//! shapes and status names. tests/provider_contract.rs then runs it through
//! the scenarios every provider must pass.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod aws;
pub mod digitalocean;
pub mod hetzner;
pub mod proxmox;
pub mod server;

pub use digitalocean::{BootHook, BootedVm, FakeCloud, FakeDroplet, TOKEN};
pub use server::{Fault, FaultKind, Stats};
