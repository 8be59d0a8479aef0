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
//!
//! Under Wine (docs/windows.md) the VM is booted on the Linux side by the
//! sshd broker (`boot`), lives as long as the connection that asked for it,
//! and its files are reached through Wine's `Z:` drive.

#![allow(dead_code, unreachable_pub)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
#[cfg(not(windows))]
use std::process::Command;

use crate::fakecloud::BootedVm;
#[cfg(not(windows))]
use crate::util::{Sshd, SshdOptions, free_port};

/// The wrapper every session of a fake VM runs through.
#[cfg(not(windows))]
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
#[cfg(not(windows))]
pub struct FakeVm {
    /// The VM's sshd.
    pub sshd: Sshd,
    /// The port the agent's config names.
    pub agent_port: u16,
    /// Holds `vm.sh` and `root/`.
    dir: tempfile::TempDir,
}

#[cfg(not(windows))]
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

    /// The sshd's port.
    pub fn port(&self) -> u16 {
        self.sshd.port
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.sshd.user
    }

    /// The VM's `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The sshd's log.
    pub fn log(&self) -> String {
        self.sshd.log()
    }
}

/// Under Wine: a fake VM the broker booted on the Linux side, for as long as
/// this connection to the broker is open.
#[cfg(windows)]
pub struct FakeVm {
    port: u16,
    user: String,
    /// The VM's `/` and the sshd's directory, as this process reaches them.
    root: PathBuf,
    sshd_dir: PathBuf,
    /// The port the agent's config names.
    pub agent_port: u16,
    broker: crate::util::broker::Client,
}

#[cfg(windows)]
impl FakeVm {
    /// Boots a VM from cloud-init `user_data` as [`Options`] say, through
    /// the broker.
    pub fn boot(user_data: &str, opts: &Options<'_>) -> FakeVm {
        use crate::util::{broker, local_path};
        let mut broker = broker::Client::connect();
        let request = format!(
            "boot {} {} {}",
            hex::encode(user_data),
            opts.agent_port.unwrap_or(0),
            hex::encode(opts.host_key.unwrap_or_default()),
        );
        let fields = broker
            .request(&request)
            .unwrap_or_else(|e| panic!("the sshd broker could not boot a VM: {e}"));
        let [port, user, root, sshd_dir, agent_port] =
            <[String; 5]>::try_from(fields).expect("broker reply");
        FakeVm {
            port: port.parse().expect("port"),
            user,
            root: local_path(&root),
            sshd_dir: local_path(&sshd_dir),
            agent_port: agent_port.parse().expect("agent port"),
            broker,
        }
    }

    /// The sshd's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The VM's `/`.
    pub fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// The sshd's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sshd_dir.join("sshd.log")).unwrap_or_default()
    }
}

/// The parts that are the same on every platform.
impl FakeVm {
    /// What the cloud reports: the address, the sshd's port and the user.
    pub fn booted(&self) -> BootedVm {
        BootedVm {
            ipv4: Ipv4Addr::LOCALHOST,
            ssh_port: self.port(),
            ssh_user: self.user().to_string(),
        }
    }

    /// Where the VM's absolute `path` is on this machine.
    pub fn path(&self, path: &str) -> PathBuf {
        let mut local = self.root();
        local.extend(path.split('/').filter(|p| !p.is_empty()));
        local
    }
}

/// The spuff-agent a fake VM can run: this machine's Linux build (built
/// first if missing); under Wine the broker's, reached through `Z:`.
pub fn agent_binary() -> PathBuf {
    #[cfg(windows)]
    {
        let mut broker = crate::util::broker::Client::connect();
        let reply = broker
            .request("agent-binary")
            .unwrap_or_else(|e| panic!("the sshd broker has no agent binary: {e}"));
        crate::util::local_path(&reply[0])
    }
    #[cfg(not(windows))]
    {
        // tests → target/<profile>/deps/tests-…; the agent is in target/<profile>.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let path = profile_dir.join("spuff-agent");
        if !path.is_file() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "spuff-agent", "--bin", "spuff-agent"])
                .status()
                .expect("cargo build -p spuff-agent");
            assert!(status.success(), "building spuff-agent failed");
        }
        path
    }
}

/// The broker's requests for fake VMs (tests/util/broker.rs), for the Windows
/// side of [`FakeVm`] and [`agent_binary`]:
///
/// - `boot HEX(user-data) AGENT_PORT HEX(host key)` → port, user, root
///   directory, sshd directory and agent port of a VM booted from that
///   user-data, which lives as long as the connection (agent port 0: a free
///   one; no host key: the user-data's);
/// - `agent-binary` → the path of the Linux spuff-agent.
#[cfg(not(windows))]
pub fn broker_requests(
    op: &str,
    arg: &str,
    keep: &mut Vec<Box<dyn std::any::Any + Send>>,
) -> Option<Result<Vec<String>, String>> {
    match op {
        "agent-binary" => Some(Ok(vec![agent_binary().display().to_string()])),
        "boot" => Some(broker_boot(arg, keep)),
        _ => None,
    }
}

#[cfg(not(windows))]
fn broker_boot(
    arg: &str,
    keep: &mut Vec<Box<dyn std::any::Any + Send>>,
) -> Result<Vec<String>, String> {
    let text = |hex_text: &str| {
        hex::decode(hex_text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("boot: bad hex")
    };
    // No host key leaves a trailing space, which the broker's reader trims.
    let mut args = arg.splitn(3, ' ');
    let (Some(user_data), Some(agent_port)) = (args.next(), args.next()) else {
        return Err("boot: expected user-data, agent port, host key".into());
    };
    let user_data = text(user_data)?;
    let host_key = text(args.next().unwrap_or_default())?;
    let agent_port: u16 = agent_port.parse().map_err(|_| "boot: bad port")?;
    let vm = FakeVm::boot(
        &user_data,
        &Options {
            host_key: (!host_key.is_empty()).then_some(host_key.as_str()),
            agent_port: (agent_port != 0).then_some(agent_port),
        },
    );
    let fields = vec![
        vm.port().to_string(),
        vm.user().to_string(),
        vm.root().display().to_string(),
        vm.sshd.dir.path().display().to_string(),
        vm.agent_port.to_string(),
    ];
    keep.push(Box::new(vm));
    Ok(fields)
}

/// The log lines a fake VM's bootstrap writes, as the real scripts write
/// them (templates/bootstrap-*.sh.hbs; `spuff up` looks for phase 1's last
/// line to tell which phase a `failed` comes from).
pub mod log_line {
    /// Phase 1's first line.
    pub const PHASE_1_STARTED: &str = "[spuff fake] phase 1: started";
    /// Phase 1's last line, written just before `installing`.
    pub const PHASE_1_DONE: &str =
        "[spuff fake] phase 1: done; phase 2 continues in the background";
    /// Phase 1's line when it fails.
    pub const PHASE_1_FAILED: &str = "[spuff fake] phase 1: failed (exit 1)";
    /// Phase 2's line while it installs packages.
    pub const PHASE_2_PACKAGES: &str = "[spuff fake] phase 2: installing packages";
    /// Phase 2's last line, written just before `ready`.
    pub const PHASE_2_DONE: &str = "[spuff fake] phase 2: done; the VM is ready";
    /// Phase 2's line when it fails.
    pub const PHASE_2_FAILED: &str = "[spuff fake] phase 2: failed (exit 100)";
}

/// The bootstrap a fake VM plays in its own status file and log
/// (`ROOT/opt/spuff/bootstrap.status`, `ROOT/var/log/spuff-bootstrap.log`),
/// one step at a time, as the two phases would write them: `running`, then
/// `installing` at the end of phase 1, then `ready` (or `failed`). Each step
/// returns false once the VM's directory is gone (its test is over).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    status: PathBuf,
    log: PathBuf,
}

impl Bootstrap {
    /// The bootstrap files of the VM whose root is `root`.
    pub fn under(root: &Path) -> Bootstrap {
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        Bootstrap {
            status: at(spuff::agent::api::BOOTSTRAP_STATUS_PATH),
            log: at(spuff::agent::api::BOOTSTRAP_LOG_PATH),
        }
    }

    /// The status file's content, `None` before phase 1.
    pub fn status(&self) -> Option<String> {
        std::fs::read_to_string(&self.status).ok()
    }

    /// Phase 1 starts: `running`, a new log with its first line.
    pub fn start(&self) -> bool {
        std::fs::write(&self.log, format!("{}\n", log_line::PHASE_1_STARTED)).is_ok()
            && write_atomic(&self.status, "running\n")
    }

    /// Phase 1 ends: its last line, then `installing`; phase 2 starts.
    pub fn phase_1_done(&self) -> bool {
        append(&self.log, log_line::PHASE_1_DONE) && write_atomic(&self.status, "installing\n")
    }

    /// Phase 2 logs its progress (the status stays `installing`).
    pub fn phase_2_installing(&self) -> bool {
        append(&self.log, log_line::PHASE_2_PACKAGES)
    }

    /// Phase 2 ends: its last line, then `ready`.
    pub fn ready(&self) -> bool {
        append(&self.log, log_line::PHASE_2_DONE) && write_atomic(&self.status, "ready\n")
    }

    /// A VM from before the `installing` state: phase 1 and 2 done in one
    /// go, `running` straight to `ready`.
    pub fn ready_without_installing(&self) -> bool {
        append(&self.log, log_line::PHASE_1_DONE)
            && append(&self.log, log_line::PHASE_2_DONE)
            && write_atomic(&self.status, "ready\n")
    }

    /// Phase 1 fails.
    pub fn phase_1_failed(&self) -> bool {
        append(&self.log, log_line::PHASE_1_FAILED) && write_atomic(&self.status, "failed\n")
    }

    /// Phase 2 fails (after phase 1 finished).
    pub fn phase_2_failed(&self) -> bool {
        append(&self.log, log_line::PHASE_2_FAILED) && write_atomic(&self.status, "failed\n")
    }

    /// Phase 1 ends and phase 2 fails at once: whoever polls sees `running`,
    /// then `failed`, never `installing`; only the log tells that phase 1
    /// had finished.
    pub fn phase_2_failed_at_once(&self) -> bool {
        append(&self.log, log_line::PHASE_1_DONE) && self.phase_2_failed()
    }
}

impl FakeVm {
    /// The VM's bootstrap files, to play the bootstrap in.
    pub fn bootstrap(&self) -> Bootstrap {
        Bootstrap::under(&self.root())
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

#[cfg(not(windows))]
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
#[cfg(not(windows))]
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
#[cfg(not(windows))]
fn write(path: &Path, content: impl AsRef<[u8]>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// OpenSSH's sftp-server, which the SFTP subsystem execs.
#[cfg(not(windows))]
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
