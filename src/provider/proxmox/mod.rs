//! Proxmox VE: the pieces of the Proxmox provider (issue 16).
//!
//! A Proxmox cluster is a cloud without a bill: VMs are clones of a
//! cloud-init template, every change is a task (a UPID) to wait for, and
//! a VM's address comes from its QEMU guest agent. Its API has traps a
//! client must get right, each recorded in tests/data/proxmox/README.md
//! and covered here: the error message lives in the HTTP reason phrase on
//! older releases (`errors`), `sshkeys` is percent-encoded before the
//! body is (`encode`), numbers arrive as strings, tasks end `OK`,
//! `WARNINGS: n` or with an error text (`task`), and the guest agent
//! lists loopback, link-local and container addresses beside the one to
//! use (`agent`).

pub(crate) mod agent;
pub(crate) mod encode;
pub(crate) mod errors;
pub mod ipconfig;
pub(crate) mod task;
mod vm;

pub use vm::{Factory, NodeSsh, Proxmox, ProxmoxConfig, SIZES};
