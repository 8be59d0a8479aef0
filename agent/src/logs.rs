//! `GET /logs`: the last lines of a regular file under the log directory.
//!
//! The path is checked after resolving symlinks (`canonicalize`), so
//! `/var/log/../../etc/shadow` and a symlink in `/var/log` pointing at
//! `/etc/shadow` are both refused; the opened file is checked again (`fstat`)
//! so a file swapped after the check is still refused if it is not a regular
//! file. The tail is read backwards in blocks from the end, so a multi-GiB
//! log costs as much as its last lines.
//!
//! Status codes: 400 for a path that is not absolute, contains `..`, leaves
//! the log directory or is not a regular file; 404 for a path that does not
//! exist.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path};

use axum::http::StatusCode;
use spuff_agent_api::{Logs, LogsQuery};

use crate::error::AppError;

/// Lines returned when the query does not say.
pub(crate) const DEFAULT_LINES: usize = 100;
/// The most lines one request may ask for.
pub(crate) const MAX_LINES: usize = 10_000;
/// The most bytes read from the end of a file, whatever the line count: a
/// log of very long lines must not make the agent allocate gigabytes.
const MAX_TAIL_BYTES: u64 = 8 << 20;
/// Block size of the backwards read.
const BLOCK: u64 = 64 << 10;

/// Serves one `GET /logs` (blocking file I/O: run it off the async threads).
pub(crate) fn read(log_dir: &Path, query: &LogsQuery) -> Result<Logs, AppError> {
    let lines = query.lines.unwrap_or(DEFAULT_LINES).min(MAX_LINES);
    let requested = Path::new(&query.file);
    if !requested.is_absolute() {
        return Err(AppError::bad_request(
            "file must be an absolute path under /var/log",
        ));
    }
    if requested
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(AppError::bad_request("file must not contain '..'"));
    }
    let root = log_dir
        .canonicalize()
        .map_err(|e| AppError::internal("the log directory is not available", e))?;
    let path = match requested.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(AppError::client(StatusCode::NOT_FOUND, "no such log file"));
        }
        Err(_) => return Err(AppError::bad_request("file cannot be resolved")),
    };
    if !path.starts_with(&root) {
        return Err(AppError::bad_request("file must be under /var/log"));
    }
    let refuse = || AppError::bad_request("file must be a regular file");
    // Checked before opening (opening a FIFO for reading blocks until a
    // writer comes, holding the request and the agent's shutdown), and the
    // open itself never blocks; the opened file is checked again below.
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(refuse());
    }
    let mut file = open_nonblocking(&path).map_err(|_| refuse())?;
    let meta = file.metadata().map_err(|_| refuse())?;
    if !meta.is_file() {
        return Err(refuse());
    }
    let tail = tail(&mut file, meta.len(), lines)
        .map_err(|e| AppError::internal("cannot read the log file", e))?;
    Ok(Logs {
        file: path.to_string_lossy().into_owned(),
        lines: tail,
    })
}

/// Opens `path` for reading without blocking on a FIFO or a device.
fn open_nonblocking(path: &std::path::Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(nix::libc::O_NONBLOCK);
    }
    opts.open(path)
}

/// The last `n` lines of `file` (of length `len`), oldest first, without
/// terminators (`\n` or `\r\n`). A final line without a newline counts.
pub(crate) fn tail(file: &mut File, len: u64, n: usize) -> io::Result<Vec<String>> {
    if n == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // Read blocks backwards until the buffer holds more than `n` newlines
    // (the extra one bounds the first line) or the start is reached.
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    let mut newlines = 0usize;
    let limit = len.saturating_sub(MAX_TAIL_BYTES);
    // A trailing newline ends the last line; it does not start a new one.
    let mut skip_final_newline = true;
    while pos > limit {
        let start = pos.saturating_sub(BLOCK).max(limit);
        let size = usize::try_from(pos - start).unwrap_or(0);
        let mut block = vec![0u8; size];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        let mut count = block.iter().filter(|&&b| b == b'\n').count();
        if skip_final_newline && pos == len && block.last() == Some(&b'\n') {
            count -= 1;
        }
        skip_final_newline = false;
        newlines += count;
        block.extend_from_slice(&buf);
        buf = block;
        pos = start;
        if newlines >= n {
            break;
        }
    }
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    let mut all: Vec<&str> = text.split('\n').collect();
    // A partial first line (cut by a block or the byte limit) is dropped
    // unless it starts at the beginning of the file.
    if pos > 0 && !all.is_empty() {
        all.remove(0);
    }
    let from = all.len().saturating_sub(n);
    Ok(all[from..]
        .iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tail_of(content: &[u8], n: usize) -> Vec<String> {
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(content).expect("write");
        let len = content.len() as u64;
        tail(&mut f, len, n).expect("tail")
    }

    #[test]
    fn tail_should_match_a_naive_split() {
        let mut big = String::new();
        for i in 0..50_000 {
            big.push_str(&format!("line {i} {}\n", "x".repeat(i % 97)));
        }
        for content in [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "a\nb\n",
            "\n\n\n",
            "a\r\nb\r\n",
            big.as_str(),
        ] {
            for n in [0, 1, 2, 3, 100, 10_000] {
                let naive: Vec<String> = {
                    let t = content.strip_suffix('\n').unwrap_or(content);
                    if content.is_empty() {
                        vec![]
                    } else {
                        let v: Vec<&str> = t.split('\n').collect();
                        v[v.len().saturating_sub(n)..]
                            .iter()
                            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                            .collect()
                    }
                };
                assert_eq!(
                    tail_of(content.as_bytes(), n),
                    naive,
                    "content len {} n {n}",
                    content.len()
                );
            }
        }
    }
}
