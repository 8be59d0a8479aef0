//! One local VM's folder and its QEMU process: what is written before QEMU
//! starts, how QEMU is started, and how it is stopped.
//!
//! Everything about a VM lives in its folder (`vms/<id>/` under the local
//! provider's data dir), so that `list` can find every VM, running or not,
//! from the disk alone, and removing the folder removes the VM:
//!
//! | file | what |
//! |---|---|
//! | `vm.json` | the VM's facts (name, spuff id, labels, size, boot, port); written first |
//! | `disk.qcow2` | thin overlay on the shared base image |
//! | `seed.img` | the NoCloud seed (user-data, meta-data) |
//! | `qemu.pid`, `qmp.sock` | the running QEMU (removed by QEMU on a clean exit) |
//! | `console.log` | the serial console, for errors about a VM that does not boot |
//!
//! A pid file outlives a killed QEMU, and pids are reused: every signal is
//! sent only after [`process::names_disk`](super::process::names_disk) has
//! checked that the pid's command line names this VM's own disk.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::accel::Accel;
use super::qemu::Qemu;
use super::{LocalNetwork, NAME};
use crate::provider::ProviderError;

/// The facts of one VM, in `vm.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The provider id: the folder's name.
    pub(crate) id: String,
    /// The VM's name.
    pub(crate) name: String,
    /// Labels, spuff's own included.
    pub(crate) labels: BTreeMap<String, String>,
    /// When it was created (RFC 3339, UTC).
    pub(crate) created_at: String,
    /// The size slug.
    pub(crate) size: String,
    /// Virtual CPUs.
    pub(crate) cpus: u32,
    /// Memory, MiB.
    pub(crate) memory_mib: u32,
    /// How it boots.
    pub(crate) boot: Boot,
    /// The image it was made from, for people (`ubuntu 24.04`, a path, a snapshot).
    pub(crate) image: String,
    /// The base disk its overlay reads from (never written).
    pub(crate) base: PathBuf,
    /// The host port forwarded to the guest's port 22 (0 before the first start).
    pub(crate) ssh_port: u16,
    /// Whether the guest may reach the network.
    pub(crate) network: LocalNetwork,
}

/// How a VM's disk boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Boot {
    /// The disk has its own bootloader (a cloud image).
    Disk,
    /// QEMU loads the kernel directly (an image built by
    /// `ci/build-image.sh`: a bare ext4 filesystem, no bootloader).
    Kernel {
        /// The kernel.
        kernel: PathBuf,
        /// The initrd.
        initrd: Option<PathBuf>,
        /// The kernel command line.
        cmdline: String,
    },
}

/// The file names in a VM folder.
pub(crate) const META: &str = "vm.json";
pub(crate) const DISK: &str = "disk.qcow2";
pub(crate) const SEED: &str = "seed.img";
pub(crate) const PID: &str = "qemu.pid";
pub(crate) const QMP: &str = "qmp.sock";
pub(crate) const CONSOLE: &str = "console.log";

/// How many console lines an error about a VM that does not boot shows.
pub(crate) const CONSOLE_TAIL_LINES: usize = 25;

/// How many times a start is retried when the forwarded port was taken
/// between choosing it and QEMU binding it.
const PORT_TRIES: usize = 8;

/// A VM's folder.
#[derive(Debug, Clone)]
pub(crate) struct VmDir {
    pub(crate) path: PathBuf,
}

pub(crate) fn host_error(
    operation: impl Into<String>,
    message: impl Into<String>,
) -> ProviderError {
    ProviderError::Host {
        provider: NAME,
        operation: operation.into(),
        message: message.into(),
        detail: None,
        hint: None,
    }
}

fn io_error(operation: &str, path: &Path, e: std::io::Error) -> ProviderError {
    host_error(operation, format!("{}: {e}", path.display()))
}

/// How a VM is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// ACPI power button: the guest shuts down cleanly.
    PowerDown,
    /// QEMU quits at once (the disk is about to be deleted anyway).
    Quit,
}

impl VmDir {
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn disk(&self) -> PathBuf {
        self.file(DISK)
    }

    /// Reads `vm.json`.
    pub(crate) fn meta(&self) -> Result<Meta, ProviderError> {
        let path = self.file(META);
        let text = std::fs::read(&path).map_err(|e| io_error("reading a local VM", &path, e))?;
        serde_json::from_slice(&text).map_err(|e| {
            host_error(
                "reading a local VM",
                format!("{} is damaged: {e}", path.display()),
            )
        })
    }

    /// Writes `vm.json` atomically (a temporary file renamed over it).
    pub(crate) fn write_meta(&self, meta: &Meta) -> Result<(), ProviderError> {
        let path = self.file(META);
        let tmp = self.file("vm.json.tmp");
        let text = serde_json::to_vec_pretty(meta).unwrap_or_default();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| io_error("recording a local VM", &path, e))
    }

    /// The pid of this VM's running QEMU: the pid file's, if that process's
    /// command line names this VM's disk.
    pub(crate) fn running_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.file(PID))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        super::process::names_disk(pid, &self.disk()).then_some(pid)
    }

    /// Removes what a QEMU that did not exit cleanly left behind.
    pub(crate) fn clear_stale(&self) {
        let _ = std::fs::remove_file(self.file(PID));
        let _ = std::fs::remove_file(self.file(QMP));
    }

    /// The last `lines` lines of the serial console, made safe to print
    /// (the guest writes it: it is untrusted). A guest that keeps
    /// restarting (a kernel panic with `panic=-1`) shows the end of its
    /// last complete boot, where it said why, and how often it restarted.
    pub(crate) fn console_tail(&self, lines: usize) -> Option<String> {
        /// Lines shown before a kernel panic: what the guest did last.
        const PANIC_CONTEXT: usize = 4;
        let bytes = std::fs::read(self.file(CONSOLE)).ok()?;
        // Only the end matters; a console log can be large.
        let start = bytes.len().saturating_sub(512 * 1024);
        let text = String::from_utf8_lossy(&bytes[start..]);
        let all: Vec<&str> = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .collect();
        // A kernel prints "Linux version" first thing in every boot.
        let boots: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("Linux version "))
            .map(|(i, _)| i)
            .collect();
        let (shown, note) = match boots.as_slice() {
            [.., previous, last] if *previous < *last => (
                &all[..*last],
                Some(format!(
                    "  (the VM restarted {} times; the end of its last complete boot:)",
                    boots.len() - 1
                )),
            ),
            _ => (&all[..], None),
        };
        // A panic's reason comes before its call trace, which alone fills
        // the tail; start a little before the panic so the reason shows.
        let end_start = shown.len().saturating_sub(lines);
        let start = match shown.iter().rposition(|l| l.contains("Kernel panic")) {
            Some(p) if p < end_start => p.saturating_sub(PANIC_CONTEXT),
            _ => end_start,
        };
        let tail = &shown[start..(start + lines).min(shown.len())];
        if tail.is_empty() {
            return None;
        }
        Some(
            note.into_iter()
                .chain(
                    tail.iter()
                        .map(|l| format!("  | {}", crate::util::terminal_safe(&strip_ansi(l)))),
                )
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// The QEMU command line for this VM, forwarding `port`.
    pub(crate) fn qemu_args(&self, meta: &Meta, accel: &Accel, port: u16) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        let process = format!("spuff-{}", meta.name);
        push("-name");
        push(&format!("{process},process={process}"));
        for a in accel.qemu_args() {
            push(a);
        }
        if std::env::consts::ARCH == "x86_64" {
            push("-machine");
            // vmport is an x86 port that only VMware guests use; off avoids
            // its emulation under TCG.
            push("q35,vmport=off");
        } else {
            push("-machine");
            push("virt");
        }
        push("-m");
        push(&meta.memory_mib.to_string());
        push("-smp");
        push(&meta.cpus.to_string());
        // Nothing the provider did not ask for: no default NIC, VGA or
        // monitor, no host config files.
        for a in [
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-vga",
            "none",
        ] {
            push(a);
        }
        if let Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } = &meta.boot
        {
            push("-kernel");
            push(&kernel.to_string_lossy());
            if let Some(initrd) = initrd {
                push("-initrd");
                push(&initrd.to_string_lossy());
            }
            push("-append");
            push(cmdline);
        }
        let restrict = match meta.network {
            LocalNetwork::Nat => "",
            LocalNetwork::Isolated => ",restrict=on",
        };
        let path = |name: &str| self.file(name).to_string_lossy().into_owned();
        for a in [
            "-drive".to_string(),
            format!(
                "if=virtio,id=root,file={},format=qcow2,discard=unmap",
                path(DISK)
            ),
            "-drive".into(),
            format!(
                "if=virtio,id=seed,file={},format=raw,readonly=on",
                path(SEED)
            ),
            "-netdev".into(),
            format!("user,id=n0{restrict},hostfwd=tcp:127.0.0.1:{port}-:22"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
            // Entropy for sshd and Python early in boot.
            "-device".into(),
            "virtio-rng-pci".into(),
            "-serial".into(),
            format!("file:{}", path(CONSOLE)),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(QMP)),
            "-pidfile".into(),
            path(PID),
            "-daemonize".into(),
        ] {
            push(&a);
        }
        args
    }

    /// Starts QEMU, detached, forwarding a free 127.0.0.1 port to the
    /// guest's port 22 (the recorded one first, so a restarted VM keeps its
    /// address); returns the port. A port taken between choosing and
    /// binding it is retried with another.
    pub(crate) async fn start(
        &self,
        qemu: &Qemu,
        accel: &Accel,
        meta: &mut Meta,
    ) -> Result<u16, ProviderError> {
        check_path(&self.path)?;
        let mut last = String::new();
        for attempt in 0..PORT_TRIES {
            let port = if attempt == 0 && meta.ssh_port != 0 {
                meta.ssh_port
            } else {
                free_port()?
            };
            let _ = std::fs::remove_file(self.file(CONSOLE));
            let out = tokio::process::Command::new(&qemu.system)
                .args(self.qemu_args(meta, accel, port))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(false)
                .output();
            // `-daemonize` returns once the VM runs (or failed to start).
            let out = tokio::time::timeout(Duration::from_secs(120), out)
                .await
                .map_err(|_| {
                    host_error("starting QEMU", "QEMU did not daemonize within 2 minutes")
                })?
                .map_err(|e| {
                    host_error(
                        "starting QEMU",
                        format!("cannot run {}: {e}", qemu.system.display()),
                    )
                })?;
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if out.status.success() {
                meta.ssh_port = port;
                self.write_meta(meta)?;
                return Ok(port);
            }
            if stderr.contains("host forwarding rule") {
                last = stderr;
                continue;
            }
            return Err(ProviderError::Host {
                provider: NAME,
                operation: "starting QEMU".into(),
                message: format!(
                    "{} failed ({}): {}",
                    qemu.system.display(),
                    out.status,
                    crate::util::terminal_safe(&stderr)
                ),
                detail: None,
                hint: Some(
                    "QEMU refused the VM's settings; `qemu-system-x86_64 --version` and the message above say which part".into(),
                ),
            });
        }
        Err(host_error(
            "starting QEMU",
            format!(
                "no free port on 127.0.0.1 after {PORT_TRIES} tries: {}",
                crate::util::terminal_safe(&last)
            ),
        ))
    }

    /// Opens a QMP session with this VM's QEMU.
    #[cfg(unix)]
    pub(crate) async fn qmp(
        &self,
    ) -> Result<super::qmp::Qmp<tokio::net::UnixStream>, ProviderError> {
        let path = self.file(QMP);
        let connect = async {
            let stream = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(super::qmp::Error::Io)?;
            super::qmp::Qmp::handshake(stream).await
        };
        tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| host_error("talking to QEMU", format!("{}: no answer", path.display())))?
            .map_err(|e| host_error("talking to QEMU", format!("{}: {e}", path.display())))
    }

    /// Stops this VM's QEMU: asks through QMP, then SIGTERM, then SIGKILL,
    /// each signal only after checking the pid still names this disk.
    /// Stopping a VM that is not running succeeds.
    pub(crate) async fn stop(&self, how: Stop, grace: Duration) -> Result<(), ProviderError> {
        let Some(pid) = self.running_pid() else {
            self.clear_stale();
            return Ok(());
        };
        // QMP is a Unix socket; elsewhere the signals below are all there is.
        #[cfg(not(unix))]
        let _ = how;
        #[cfg(unix)]
        {
            let command = match how {
                Stop::PowerDown => "system_powerdown",
                Stop::Quit => "quit",
            };
            if let Ok(mut qmp) = self.qmp().await {
                // `quit` may close the socket before it answers.
                let _ = qmp.execute(command, None).await;
            }
        }
        if self.wait_gone(pid, grace).await {
            self.clear_stale();
            return Ok(());
        }
        for (signal, wait) in [
            (Signal::Term, Duration::from_secs(10)),
            (Signal::Kill, Duration::from_secs(10)),
        ] {
            if !super::process::names_disk(pid, &self.disk()) {
                break;
            }
            send(pid, signal);
            if self.wait_gone(pid, wait).await {
                break;
            }
        }
        if super::process::names_disk(pid, &self.disk()) {
            return Err(host_error(
                "stopping a local VM",
                format!("QEMU (pid {pid}) is still running after SIGKILL"),
            ));
        }
        self.clear_stale();
        Ok(())
    }

    async fn wait_gone(&self, pid: u32, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if !super::process::names_disk(pid, &self.disk()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// Sends `signal` to `pid` (already checked to be this VM's QEMU).
#[cfg(unix)]
fn send(pid: u32, signal: Signal) {
    use rustix::process::{Pid, Signal as S, kill_process};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = kill_process(
        pid,
        match signal {
            Signal::Term => S::TERM,
            Signal::Kill => S::KILL,
        },
    );
}

#[cfg(not(unix))]
fn send(pid: u32, signal: Signal) {
    // Windows has no SIGTERM: both are a forced termination.
    let _ = signal;
    let _ = std::process::Command::new("taskkill")
        .args(["/F", "/PID", &pid.to_string()])
        .output();
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, ProviderError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| host_error("choosing a port", format!("cannot bind 127.0.0.1: {e}")))
}

/// QEMU options are comma-separated: a comma in a path would be read as the
/// start of another option, and a Unix socket path has a small size limit.
pub(crate) fn check_path(dir: &Path) -> Result<(), ProviderError> {
    let text = dir.to_string_lossy();
    if text.contains(',') {
        return Err(ProviderError::Host {
            provider: NAME,
            operation: "preparing a local VM".into(),
            message: format!(
                "{} contains a comma, which QEMU options cannot hold",
                dir.display()
            ),
            detail: None,
            hint: Some("set XDG_DATA_HOME to a folder without commas".into()),
        });
    }
    // sun_path is 108 bytes on Linux, 104 on macOS.
    if cfg!(unix) && dir.join(QMP).as_os_str().len() > 100 {
        return Err(ProviderError::Host {
            provider: NAME,
            operation: "preparing a local VM".into(),
            message: format!(
                "{} is too long for QEMU's control socket (Unix sockets take about 100 bytes)",
                dir.join(QMP).display()
            ),
            detail: None,
            hint: Some("set XDG_DATA_HOME to a shorter folder".into()),
        });
    }
    Ok(())
}

/// Removes ANSI escape sequences (the console is full of them).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_tail_should_be_the_last_lines_without_escapes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let vm = VmDir {
            path: dir.path().to_path_buf(),
        };
        assert_eq!(vm.console_tail(3), None);
        let mut log = String::new();
        for i in 0..40 {
            log.push_str(&format!("\u{1b}[0;32mline {i}\u{1b}[0m\r\n"));
        }
        log.push_str("Kernel panic - not syncing: VFS\u{7}\n");
        std::fs::write(vm.file(CONSOLE), log).unwrap_or_else(|e| panic!("{e}"));
        let tail = vm.console_tail(3).unwrap_or_default();
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 3, "{tail}");
        assert_eq!(lines[0], "  | line 38");
        assert!(lines[2].starts_with("  | Kernel panic"), "{tail}");
        assert!(
            !tail.contains('\u{1b}') && !tail.contains('\u{7}'),
            "{tail:?}"
        );
    }

    #[test]
    fn a_kernel_panic_should_stay_in_the_tail_above_its_call_trace() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let vm = VmDir {
            path: dir.path().to_path_buf(),
        };
        let mut log = String::from("[0.0] Linux version 6.1\n");
        for i in 0..10 {
            log.push_str(&format!("[1.{i}] booting {i}\n"));
        }
        log.push_str("[2.0] Kernel panic - not syncing: Attempted to kill init!\n");
        for i in 0..30 {
            log.push_str(&format!("[2.1] trace {i}\n"));
        }
        std::fs::write(vm.file(CONSOLE), log).unwrap_or_else(|e| panic!("{e}"));
        let tail = vm.console_tail(8).unwrap_or_default();
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), 8, "{tail}");
        assert_eq!(lines[0], "  | [1.6] booting 6", "{tail}");
        assert!(lines[4].contains("Attempted to kill init"), "{tail}");
        assert_eq!(lines[7], "  | [2.1] trace 2", "{tail}");
    }

    #[test]
    fn paths_qemu_cannot_take_should_be_refused() {
        assert!(check_path(Path::new("/home/a,b/vm")).is_err());
        // A Unix socket's path limit; QEMU on Windows takes QMP over TCP.
        if cfg!(unix) {
            assert!(check_path(Path::new(&format!("/{}", "x".repeat(120)))).is_err());
        }
        assert!(check_path(Path::new("/home/me/.local/share/spuff/local/vms/a")).is_ok());
    }
}
