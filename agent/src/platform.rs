//! Everything the agent does that only exists on Unix, in one place.
//!
//! The agent runs on Linux VMs, but the workspace's tests are also built for
//! `x86_64-pc-windows-msvc` and the spuff library runs the agent in-process in
//! its own tests. So process groups (`killpg`), liveness checks, terminal
//! writes and `systemctl poweroff` live here behind `cfg(unix)`, each with a
//! simple fallback that compiles (and mostly does nothing) elsewhere. System
//! figures (`sysinfo`, in `metrics.rs`) are Unix-only too; [`metrics`] stands
//! in for them.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;
use std::process::ExitStatus;

use tokio::process::Command;

/// The shell that runs `POST /exec` command lines and its "run this string"
/// flag.
pub(crate) fn shell() -> (&'static str, &'static str) {
    if cfg!(unix) {
        ("/bin/sh", "-c")
    } else {
        ("cmd.exe", "/C")
    }
}

/// Puts the command in a new process group, so a timeout can kill everything
/// it started (children and grandchildren) with one `killpg`.
pub(crate) fn new_process_group(cmd: &mut Command) {
    #[cfg(unix)]
    {
        cmd.process_group(0);
    }
    #[cfg(not(unix))]
    {
        let _ = cmd;
    }
}

/// Kills the whole process group led by `pid` with SIGKILL (not SIGTERM: a
/// command that ignores SIGTERM must still die when its time is up).
///
/// Off Unix there are no process groups here; the caller also kills the direct
/// child, which is the best available.
pub(crate) fn kill_process_group(pid: u32) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;

        let Ok(pid) = i32::try_from(pid) else { return };
        // ESRCH (group already gone) is the normal race with a command that
        // exits on its own; nothing else can usefully be done with an error.
        if let Err(err) = killpg(Pid::from_raw(pid), Signal::SIGKILL)
            && err != nix::errno::Errno::ESRCH
        {
            tracing::warn!(pid, %err, "killpg failed");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
    }
}

/// The signal that ended a process, if one did.
pub(crate) fn exit_signal(status: &ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}

/// Whether a process with this pid exists (used to drop stale utmp entries,
/// which a crashed sshd can leave behind).
pub(crate) fn pid_alive(pid: i32) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        use nix::sys::signal::kill;
        use nix::unistd::Pid;

        if pid <= 0 {
            return false;
        }
        // Signal 0 checks existence; EPERM means it exists but is not ours.
        matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
    }
    #[cfg(not(unix))]
    {
        pid > 0
    }
}

/// Opens a terminal for the idle warning without making it our controlling
/// terminal and without blocking on a stuck one (`O_NOCTTY | O_NONBLOCK`, as
/// `wall` does). Never creates the file.
pub(crate) fn open_terminal(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK);
    }
    options.open(path)
}

/// The permission bits of a config file that others than its owner can read,
/// if any (the file holds the agent token).
pub(crate) fn group_or_world_access(meta: &Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Writes `line` to the kernel log at warning level, so it shows on the
/// console. Only an existing file is written (never created): in a test's
/// fake root without one, nothing happens.
pub(crate) fn announce(kmsg: &std::path::Path, line: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(kmsg)?;
    // One write is one record in /dev/kmsg.
    f.write_all(format!("<4>{line}\n").as_bytes())
}

/// Powers the machine off through systemd.
pub(crate) fn poweroff() -> io::Result<()> {
    if !cfg!(unix) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "power-off is only implemented on Linux",
        ));
    }
    let status = std::process::Command::new("systemctl")
        .arg("poweroff")
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "systemctl poweroff failed: {status}"
        )))
    }
}

/// Off Unix: no system figures (zeros, no processes), so the agent builds and
/// its tests run on Windows without `sysinfo` (whose PDH calls Wine lacks).
#[cfg(not(unix))]
pub(crate) mod metrics {
    use spuff_agent_api::{Metrics, ProcessList, Timestamp};

    /// Stands in for the Unix `metrics::Sampler`.
    #[derive(Debug)]
    pub(crate) struct Sampler;

    impl Sampler {
        pub(crate) fn new() -> Self {
            Sampler
        }

        pub(crate) fn cpu_percent(&self) -> f32 {
            0.0
        }

        pub(crate) fn metrics(&self) -> Metrics {
            Metrics {
                cpu_usage_percent: 0.0,
                memory_used_bytes: 0,
                memory_total_bytes: 0,
                disk_used_bytes: 0,
                disk_total_bytes: 0,
                load_average: [0.0; 3],
                timestamp: Timestamp::now(),
            }
        }

        pub(crate) fn uptime(&self) -> u64 {
            0
        }

        pub(crate) fn host_name(&self) -> String {
            std::env::var("COMPUTERNAME").unwrap_or_default()
        }

        pub(crate) fn top_processes(&self) -> ProcessList {
            ProcessList {
                processes: Vec::new(),
            }
        }
    }
}
