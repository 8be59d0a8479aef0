//! Whole processes measured alike for every side of a benchmark: wall
//! time, peak RSS and CPU time from `wait4`.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// One process's run.
pub(crate) struct Run {
    pub(crate) time: Duration,
    /// Peak RSS, KiB (0 where `wait4` is not available).
    pub(crate) rss_kib: u64,
    /// User plus system CPU time of the process itself (and the children
    /// it waited for).
    pub(crate) cpu: Duration,
}

/// Runs `cmd` to its end; panics if it fails.
pub(crate) fn timed(mut cmd: Command) -> Run {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let (ok, rss_kib, cpu) = wait_rusage(child);
    let time = start.elapsed();
    assert!(ok, "{cmd:?} failed");
    Run { time, rss_kib, cpu }
}

/// Reaps `child` with `wait4`: success, its `ru_maxrss` in KiB and its
/// CPU time.
#[cfg(unix)]
fn wait_rusage(child: Child) -> (bool, u64, Duration) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; `pid` is our
    // child, not yet reaped (std's `Child` is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    drop(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    (ok, usage.ru_maxrss as u64, cpu)
}

/// Elsewhere: success only (no RSS or CPU figure).
#[cfg(not(unix))]
fn wait_rusage(mut child: Child) -> (bool, u64, Duration) {
    (child.wait().is_ok_and(|s| s.success()), 0, Duration::ZERO)
}
