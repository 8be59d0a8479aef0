//! A fake spuff VM: what the fake cloud (tests/fakecloud) boots a droplet
//! into, so that spuff runs against it exactly as against a real VM, with no
//! hook in the product.
//!
//! [`FakeVm::boot`] reads the droplet's user-data as cloud-init would: its
//! `write_files` go under the VM's own root directory (a temporary
//! directory: `/etc/spuff/agent.json` is `ROOT/etc/spuff/agent.json`), and a
//! real OpenSSH sshd on 127.0.0.1 gets the user-data's host key and
//! authorized keys. The VM tells the cloud where its sshd listens and whom
//! it lets in ([`FakeVm::booted`]), which the fake API reports as the
//! droplet's `spuff-ssh-port` / `spuff-ssh-user` tags.
//!
//! Every SSH session runs through `vm.sh` (sshd's `ForceCommand`), which
//! maps the VM's paths (`/opt/spuff/`, `/etc/spuff/`, `/var/log/`) into
//! ROOT, drops `sudo -n `, plays `systemctl` for the agent (starts the
//! uploaded `ROOT/opt/spuff/spuff-agent` in the background) and
//! `journalctl -u spuff-agent` (its log), and passes the SFTP subsystem to
//! the real sftp-server (`internal-sftp` cannot be run by a ForceCommand).
//! The script says how.
//!
//! Differences from a real VM, on purpose: sshd runs as the test's user, who
//! is also the login user (root in CI: user-data users cannot be created
//! here), so the VM is logged in to as that user; every VM shares the test
//! machine's loopback, so the agent's config gets a free port and, so that
//! it never powers the test machine off, the idle action `none`. The
//! agent binary itself reads the machine's real paths.

#![allow(dead_code, unreachable_pub)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fakecloud::BootedVm;
use crate::util::{Sshd, SshdOptions, free_port};

/// The wrapper every session of a fake VM runs through.
const VM_SH: &str = include_str!("vm.sh");

/// How a fake VM differs from what its user-data says.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options<'a> {
    /// A host key other than the user-data's (an OpenSSH private key): a VM
    /// that is not the one spuff created.
    pub host_key: Option<&'a str>,
    /// The agent's port (written into its config); a free one if `None`.
    pub agent_port: Option<u16>,
}

/// A booted fake VM; its sshd stops and its agent is killed when dropped.
pub struct FakeVm {
    /// The VM's sshd.
    pub sshd: Sshd,
    /// The port the agent's config names.
    pub agent_port: u16,
    /// Holds `vm.sh` and `root/`.
    dir: tempfile::TempDir,
}

impl FakeVm {
    /// Boots a VM from cloud-init `user_data` as [`Options`] say.
    pub fn boot(user_data: &str, opts: &Options<'_>) -> FakeVm {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(user_data).expect("user-data is YAML");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let agent_port = opts.agent_port.unwrap_or_else(free_port);
        for file in doc["write_files"].as_sequence().expect("write_files") {
            write_file(&root, file, agent_port);
        }
        write(
            &root.join("var/log/cloud-init-output.log"),
            "Cloud-init v. fake running 'modules:final'\n",
            0o644,
        );

        let host_key = match opts.host_key {
            Some(key) => key,
            None => doc["ssh_keys"]["ed25519_private"]
                .as_str()
                .expect("ssh_keys.ed25519_private"),
        };
        let authorized: String = doc["users"][0]["ssh_authorized_keys"]
            .as_sequence()
            .expect("users[0].ssh_authorized_keys")
            .iter()
            .map(|k| format!("{}\n", k.as_str().expect("a key line")))
            .collect();
        let script = dir.path().join("vm.sh");
        std::fs::write(&script, VM_SH).expect("vm.sh");
        let sftp = sftp_server();
        // Paths without spaces or quotes (temporary directories): sshd hands
        // the line to the user's shell as it is.
        let extra = format!(
            "ForceCommand /bin/sh {} {} {}\nSubsystem sftp {}\n",
            script.display(),
            root.display(),
            sftp.display(),
            sftp.display(),
        );
        let sshd = Sshd::launch(&SshdOptions {
            extra: &extra,
            host_key: Some(host_key),
            authorized_keys: Some(&authorized),
            ..SshdOptions::default()
        });
        FakeVm {
            sshd,
            agent_port,
            dir,
        }
    }

    /// What the cloud reports: the address, the sshd's port and the user.
    pub fn booted(&self) -> BootedVm {
        BootedVm {
            ipv4: Ipv4Addr::LOCALHOST,
            ssh_port: self.sshd.port,
            ssh_user: self.sshd.user.clone(),
        }
    }

    /// The VM's `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Where the VM's absolute `path` is on this machine.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// The sshd's log.
    pub fn log(&self) -> String {
        self.sshd.log()
    }
}

/// Replaces `path` by a rename, as the bootstrap scripts write their status,
/// so a reader never sees half of it; false if that fails (the VM's
/// directory is gone once its test is over).
pub fn write_atomic(path: &Path, content: &str) -> bool {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).is_ok() && std::fs::rename(&tmp, path).is_ok()
}

/// Appends `line` and a newline to `path`; false if that fails.
pub fn append(path: &Path, line: &str) -> bool {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()))
        .is_ok()
}

impl Drop for FakeVm {
    fn drop(&mut self) {
        // The agent vm.sh started runs until killed. Its pid is checked
        // against its command line first: it may have exited long ago.
        let Ok(pid) = std::fs::read_to_string(self.path("/run/spuff-agent.pid")) else {
            return;
        };
        let pid = pid.trim();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let agent = self.path(spuff::agent::api::BINARY_PATH);
        if String::from_utf8_lossy(&cmdline).contains(&*agent.to_string_lossy()) {
            let _ = Command::new("kill").arg(pid).status();
        }
    }
}

/// Writes one `write_files` entry under `root`, as cloud-init would (the
/// owner aside); the agent's config gets `agent_port` and no idle action.
fn write_file(root: &Path, file: &serde_yaml_ng::Value, agent_port: u16) {
    let path = file["path"].as_str().expect("write_files path");
    let content = file["content"].as_str().unwrap_or_default();
    let mut bytes = match file["encoding"].as_str() {
        None | Some("text/plain") => content.as_bytes().to_vec(),
        Some("b64" | "base64") => data_encoding::BASE64
            .decode(content.trim().as_bytes())
            .expect("base64 content"),
        Some("gz+b64" | "gzip+base64") => {
            let gz = data_encoding::BASE64
                .decode(content.trim().as_bytes())
                .expect("base64 content");
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
                .expect("gzip content");
            out
        }
        Some(other) => panic!("{path}: encoding {other} is not one cloud-init knows"),
    };
    if path == spuff::agent::api::CONFIG_PATH {
        let mut config: serde_json::Value = serde_json::from_slice(&bytes).expect("agent.json");
        config["port"] = serde_json::json!(agent_port);
        config["idle_action"] = serde_json::json!("none");
        bytes = config.to_string().into_bytes();
    }
    let mode = file["permissions"]
        .as_str()
        .and_then(|p| u32::from_str_radix(p, 8).ok())
        .unwrap_or(0o644);
    write(&root.join(path.trim_start_matches('/')), bytes, mode);
}

/// Writes `path` (and its directories) with `mode`.
fn write(path: &Path, content: impl AsRef<[u8]>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// OpenSSH's sftp-server, which the SFTP subsystem execs.
fn sftp_server() -> PathBuf {
    [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("OpenSSH's sftp-server (openssh-sftp-server)")
}
