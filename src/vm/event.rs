//! How the lifecycle steps report progress: one [`Event`] enum and one
//! [`Observer`] trait for `up`, `down` and `snapshot`.
//!
//! The library never prints. Each step pushes events as they happen, in the
//! style of ripgrep's `Sink`, and the caller draws them (the CLI turns them
//! into spinners and lines on stderr) or records them (the tests). One
//! mechanism for every step means one drawer in the CLI, and that a step
//! run inside another (the `down` that cleans up a failed `up`) reports
//! through the same observer.

use std::time::Duration;

use crate::agent::api::BootstrapStatus;
use crate::provider::Snapshot;

/// A step of the VM lifecycle, reported as it happens.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    // `up` (see [`up`](super::up)).
    /// The user-data is rendered.
    Rendered {
        /// Its size in bytes.
        bytes: usize,
        /// Whether files were compressed to fit the limit.
        compressed: bool,
    },
    /// The create request is about to be sent.
    Creating,
    /// The provider accepted it and the id is recorded.
    Created {
        /// The provider's id.
        id: String,
    },
    /// The VM has an address.
    Address {
        /// The address.
        ip: std::net::IpAddr,
    },
    /// The provider could not give the VM spuff's user-data (Proxmox
    /// without node SSH): the first login trusted the VM's own host key on
    /// first use, and spuff's user-data is being applied over that
    /// connection. The next login is verified against the pinned key.
    TrustedOnFirstUse {
        /// The fingerprint of the key that was trusted (`SHA256:…`).
        fingerprint: String,
    },
    /// spuff's user-data was applied over SSH at the first login (after
    /// [`Event::TrustedOnFirstUse`]); the VM now shows the pinned key.
    UserDataApplied,
    /// Logged in over SSH with the pinned host key.
    LoggedIn {
        /// Time from the address to the login.
        after: Duration,
    },
    /// The agent binary was uploaded, its SHA-256 checked on the VM, and
    /// started.
    AgentInstalled {
        /// The VM's architecture, which the binary is for.
        arch: crate::agent_bin::Arch,
        /// The binary's SHA-256, lowercase hex.
        sha256: String,
        /// Whether it was the one spuff carries (else a file).
        embedded: bool,
    },
    /// The bootstrap's state and latest log line.
    Bootstrap {
        /// The status file's state.
        status: BootstrapStatus,
        /// The last line of the bootstrap log, if any.
        line: Option<String>,
    },
    /// Phase 1 of the bootstrap is done: a shell and the agent are usable,
    /// and `up` stops following the bootstrap. Followed by [`Event::Ready`].
    ShellReady {
        /// Where phase 2 (packages, dotfiles) stood then:
        /// [`BootstrapStatus::Installing`] when it goes on in the background
        /// (`spuff status` shows its progress), `Ready` when it had
        /// finished, `Failed` when it had failed (the VM is usable; the
        /// bootstrap log says what failed).
        phase_2: BootstrapStatus,
    },
    /// Done: the VM is recorded as ready and made the active one.
    Ready,

    // `snapshot` (see [`snapshot`](super::snapshot)).
    /// A snapshot was requested; the provider is making it.
    Snapshotting {
        /// The VM's name.
        name: String,
        /// The snapshot's name.
        snapshot: String,
    },
    /// The snapshot is finished.
    Snapshotted {
        /// The VM's name.
        name: String,
        /// The snapshot.
        snapshot: Snapshot,
    },

    // `down` (see [`down`](super::down)).
    /// A record's create may still be under way at the provider; its
    /// spuff id is looked for until the listing cannot lag any more.
    AwaitingCreate {
        /// The VM's name.
        name: String,
        /// The longest it will wait.
        at_most: Duration,
    },
    /// The provider was asked which VMs the name stands for.
    Found {
        /// The VM's name.
        name: String,
        /// The provider ids of the VMs to destroy (empty: none exists).
        ids: Vec<String>,
    },
    /// A destroy request is being sent.
    Destroying {
        /// The VM's name.
        name: String,
        /// The provider id.
        id: String,
    },
    /// Every destroy was accepted; waiting for the provider to stop
    /// reporting the VMs.
    Verifying {
        /// The VM's name.
        name: String,
        /// The provider ids still to disappear.
        ids: Vec<String>,
    },
    /// The provider no longer reports any of the VMs.
    Destroyed {
        /// The VM's name.
        name: String,
        /// The provider ids that were destroyed.
        ids: Vec<String>,
    },
    /// The local record was removed.
    Forgotten {
        /// The VM's name.
        name: String,
    },
}

/// Receives [`Event`]s (the CLI draws them).
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync> Observer for F {
    fn event(&self, event: Event) {
        self(event)
    }
}

/// An observer that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ignore;

impl Observer for Ignore {
    fn event(&self, _event: Event) {}
}
