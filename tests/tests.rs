//! Integration tests: one binary, topic modules, real OpenSSH peers.
//!
//! Under Windows (Wine) the OpenSSH server runs on the Linux side, through the
//! sshd broker (tests/util/broker.rs, docs/windows.md).

mod fakecloud;
// A VM the fake cloud boots into: a local sshd (under Wine, booted by the
// broker on the Linux side).
mod fakevm;
mod util;

mod agent_client;
// SigV4 against the official AWS test suites.
mod aws_sigv4;
// The CLI end to end: the test cloud boots VMs into fake VMs (under Wine,
// through the broker).
mod cli_e2e;
mod cloudinit;
// One command on many hosts at once (issue 15).
mod fleet;
mod forward;
// Servers that lie or break the protocol: a hostile SFTP subsystem behind a
// real sshd, and an SSH server that ignores the window (issue 13).
mod hostile_server;
// Cloud image downloads for the local provider, against a local HTTPS server.
mod local_image;
mod provider_aws;
mod provider_contract;
mod provider_digitalocean;
mod provider_hetzner;
mod provider_proxmox;
mod sftp;
// The agent's count of SSH connections against a real sshd and real
// OpenSSH clients (reads the real /proc and the kernel's sockets).
#[cfg(target_os = "linux")]
mod ssh_activity;
mod ssh_auth;
mod ssh_concurrency;
mod ssh_exec;
mod ssh_host_keys;
mod ssh_shell;
// The lifecycle's clean-up and `list`'s truthfulness, through the library
// and through the binary, against the fake cloud.
#[cfg(not(windows))]
mod cli_lifecycle;
#[cfg(not(windows))]
mod vm_down;
// The whole product on a real VM booted by the local provider (QEMU under
// TCG on CI's machine).
#[cfg(target_os = "linux")]
mod local_vm;
// The QMP client against a real QEMU (a Unix socket on this machine).
#[cfg(not(windows))]
mod local_qmp;
// The fake cloud boots its droplets into local sshds with the user-data's host
// key and plays their bootstrap in local files: that needs sshd on this
// machine, which the Windows tests (under Wine) only reach through the broker.
#[cfg(not(windows))]
mod vm_up;

/// Not a test: the sshd broker the Windows tests under Wine use, run natively
/// by `.ci/run` with SPUFF_BROKER_LISTEN set (it returns at once without).
#[cfg(not(windows))]
#[test]
#[ignore = "the sshd broker for the Windows tests; .ci/run starts it"]
fn sshd_broker() {
    util::broker::server::serve_from_env(fakevm::broker_requests);
}
