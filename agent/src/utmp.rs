//! Reading logged-in sessions from utmp (`/run/utmp`).
//!
//! Logged-in SSH sessions are the main sign that someone uses a VM, and utmp
//! is where sshd records them (one `USER_PROCESS` record per terminal
//! session; `ssh host cmd` without a terminal leaves none). The format is a
//! plain array of glibc `struct utmp` records; parsing them here is about 60
//! lines, smaller than any crate for it and portable to build everywhere. The
//! layout is glibc's for the two architectures spuff VMs run on: x86_64
//! (384 bytes, 32-bit `ut_session` and `ut_tv`) and aarch64 (400 bytes,
//! 64-bit ones). See `man 5 utmp` and glibc's `bits/utmp.h`.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// `ut_type` of a normal login session (`USER_PROCESS` in `utmp.h`).
const USER_PROCESS: i16 = 7;

/// Byte offsets of the fields spuff reads in one `struct utmp`.
struct Layout {
    size: usize,
    pid: usize,
    line: usize,
    user: usize,
    host: usize,
    tv_sec: usize,
    /// Width of `ut_tv.tv_sec` in bytes (4 or 8).
    tv_sec_len: usize,
}

const LINE_LEN: usize = 32;
const USER_LEN: usize = 32;
const HOST_LEN: usize = 256;

/// x86_64 glibc keeps 32-bit `ut_session`/`ut_tv` for compatibility with
/// 32-bit programs (`__WORDSIZE_TIME64_COMPAT32`).
#[cfg(not(target_arch = "aarch64"))]
const LAYOUT: Layout = Layout {
    size: 384,
    pid: 4,
    line: 8,
    user: 44,
    host: 76,
    tv_sec: 340,
    tv_sec_len: 4,
};

/// aarch64 glibc uses a `long` `ut_session` and a native `struct timeval`.
#[cfg(target_arch = "aarch64")]
const LAYOUT: Layout = Layout {
    size: 400,
    pid: 4,
    line: 8,
    user: 44,
    host: 76,
    tv_sec: 344,
    tv_sec_len: 8,
};

/// One login session record from utmp.
///
/// Public so tests (the agent's and the spuff library's) can write utmp
/// fixtures with [`UtmpEntry::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpEntry {
    /// The session's process (the login shell's parent, usually sshd).
    pub pid: i32,
    /// The terminal below `/dev`, such as `pts/0`.
    pub line: String,
    /// The user name.
    pub user: String,
    /// The remote host the session came from, if any.
    pub host: String,
    /// When the session started.
    pub login_time: SystemTime,
}

impl UtmpEntry {
    /// Encodes this entry as one native-layout `USER_PROCESS` record.
    pub fn to_bytes(&self) -> Vec<u8> {
        let l = &LAYOUT;
        let mut rec = vec![0u8; l.size];
        rec[0..2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
        rec[l.pid..l.pid + 4].copy_from_slice(&self.pid.to_ne_bytes());
        put_str(&mut rec[l.line..l.line + LINE_LEN], &self.line);
        put_str(&mut rec[l.user..l.user + USER_LEN], &self.user);
        put_str(&mut rec[l.host..l.host + HOST_LEN], &self.host);
        let secs = self
            .login_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if l.tv_sec_len == 4 {
            let secs = u32::try_from(secs).unwrap_or(u32::MAX);
            rec[l.tv_sec..l.tv_sec + 4].copy_from_slice(&secs.to_ne_bytes());
        } else {
            rec[l.tv_sec..l.tv_sec + 8].copy_from_slice(&secs.to_ne_bytes());
        }
        rec
    }
}

fn put_str(dst: &mut [u8], s: &str) {
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// A NUL-padded C string field; invalid UTF-8 is replaced, not an error.
fn get_str(src: &[u8]) -> String {
    let end = src.iter().position(|&b| b == 0).unwrap_or(src.len());
    String::from_utf8_lossy(&src[..end]).into_owned()
}

fn read_ne<const N: usize>(rec: &[u8], at: usize) -> [u8; N] {
    let mut buf = [0u8; N];
    buf.copy_from_slice(&rec[at..at + N]);
    buf
}

/// Parses the `USER_PROCESS` records of a utmp file's content; other record
/// types (boot time, dead processes, run level) and a truncated tail are
/// skipped.
pub(crate) fn parse(data: &[u8]) -> Vec<UtmpEntry> {
    let l = &LAYOUT;
    data.chunks_exact(l.size)
        .filter(|rec| i16::from_ne_bytes(read_ne(rec, 0)) == USER_PROCESS)
        .map(|rec| {
            let secs = if l.tv_sec_len == 4 {
                u64::from(u32::from_ne_bytes(read_ne(rec, l.tv_sec)))
            } else {
                u64::from_ne_bytes(read_ne(rec, l.tv_sec))
            };
            UtmpEntry {
                pid: i32::from_ne_bytes(read_ne(rec, l.pid)),
                line: get_str(&rec[l.line..l.line + LINE_LEN]),
                user: get_str(&rec[l.user..l.user + USER_LEN]),
                host: get_str(&rec[l.host..l.host + HOST_LEN]),
                login_time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            }
        })
        .filter(|e| !e.line.is_empty())
        .collect()
}

/// Reads the live sessions from a utmp file: `USER_PROCESS` records whose
/// process still exists. A missing file means no sessions.
pub(crate) fn live_sessions(path: &Path) -> Vec<UtmpEntry> {
    match std::fs::read(path) {
        Ok(data) => parse(&data)
            .into_iter()
            .filter(|e| crate::platform::pid_alive(e.pid))
            .collect(),
        Err(err) => {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(path = %path.display(), %err, "cannot read utmp");
            }
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_round_trip_user_process_records() {
        let e = UtmpEntry {
            pid: 4242,
            line: "pts/3".into(),
            user: "dev".into(),
            host: "203.0.113.7".into(),
            login_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        let mut data = e.to_bytes();
        // A non-session record (BOOT_TIME = 2) and a truncated tail are skipped.
        let mut boot = vec![0u8; LAYOUT.size];
        boot[0..2].copy_from_slice(&2i16.to_ne_bytes());
        data.extend_from_slice(&boot);
        data.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&data), vec![e]);
    }

    #[test]
    fn parse_should_read_a_real_x86_64_record() {
        // Bytes laid out by hand from glibc's x86_64 struct utmp, independent
        // of `to_bytes`.
        if cfg!(target_arch = "aarch64") {
            return;
        }
        let mut rec = vec![0u8; 384];
        rec[0] = 7;
        rec[4..8].copy_from_slice(&100i32.to_le_bytes());
        rec[8..13].copy_from_slice(b"pts/0");
        rec[44..47].copy_from_slice(b"dev");
        rec[340..344].copy_from_slice(&1_000u32.to_le_bytes());
        let got = parse(&rec);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].line, "pts/0");
        assert_eq!(got[0].user, "dev");
        assert_eq!(got[0].pid, 100);
        assert_eq!(
            got[0].login_time,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000)
        );
    }
}
