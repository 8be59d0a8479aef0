//! Building blocks of the local provider: VMs on this machine with QEMU and
//! cloud-init (issue 11). The provider itself is not registered yet; what
//! is here is complete and tested on its own.
//!
//! - [`accel`]: KVM/HVF only where they really work, else TCG, said out loud.
//! - [`qmp`]: the QEMU Machine Protocol client (power down, status).
//! - [`process`]: recognising a VM's QEMU by its disk before any signal.
//!
//! The NoCloud seed a local VM boots with is written by
//! [`cloudinit::nocloud`](crate::cloudinit::nocloud).

pub mod accel;
pub mod image;
pub mod process;
pub mod qmp;
