//! Which process is a local VM's QEMU: checked by its command line before
//! any signal is sent.
//!
//! A pid file outlives its process, and pids are reused: the pid in a VM's
//! folder may by now belong to anything. spuff never kills by process name,
//! and never kills a pid whose command line does not name this VM's own
//! disk image. On Linux the command line is `/proc/PID/cmdline`; elsewhere
//! `ps -o command=`.

use std::path::Path;

/// The command line of process `pid`, its arguments in order, or `None`
/// when there is no such process (or it cannot be read).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    if cfg!(target_os = "linux") {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if raw.is_empty() {
            // A zombie or a kernel thread: nothing to recognise.
            return None;
        }
        return Some(
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        );
    }
    let out = std::process::Command::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty())
        .then(|| text.split_whitespace().map(String::from).collect())
}

/// Whether process `pid` is running and one of its arguments names `disk`
/// (as a path, or inside a QEMU option such as `file=PATH,if=virtio`).
pub fn names_disk(pid: u32, disk: &Path) -> bool {
    let Some(args) = cmdline(pid) else {
        return false;
    };
    let disk = disk.to_string_lossy();
    args.iter().any(|a| {
        a == disk.as_ref()
            || a.split(',')
                .any(|part| part.strip_prefix("file=") == Some(disk.as_ref()))
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_process_should_be_recognised_only_by_its_own_disk() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let disk = dir.path().join("disk.qcow2");
        let other = dir.path().join("other.qcow2");
        // `sh -c CMD ARG0 ARG1`: the disk appears as QEMU would show it.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30")
            .arg("qemu-system-x86_64")
            .arg(format!("file={},if=virtio", disk.display()))
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id();
        let mut seen = false;
        for _ in 0..100 {
            if cmdline(pid).is_some_and(|a| a.len() > 1) {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(seen, "{:?}", cmdline(pid));
        assert!(names_disk(pid, &disk), "{:?}", cmdline(pid));
        assert!(!names_disk(pid, &other));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!names_disk(pid, &disk), "a reaped pid names nothing");
    }
}
