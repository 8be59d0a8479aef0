//! `POST /exec`: run a shell command with a timeout and capped output.
//!
//! The command runs as `/bin/sh -c COMMAND` in a new process group, so the
//! timeout can kill everything it started with one `killpg(SIGKILL)`: a shell
//! that ignores SIGTERM and its background grandchildren die too. Output is
//! read concurrently from both pipes until EOF and only the first
//! `exec_output_cap` bytes of each are kept: a chatty command never blocks on
//! a full pipe and never grows the agent's memory.
//!
//! When the shell exits on its own, processes it left in the background keep
//! running (`nohup server &` is a legitimate use); the agent stops reading
//! their output after [`DRAIN_AFTER_EXIT`]. If the request is cancelled (the
//! client disconnects), the process group is killed as on a timeout.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spuff_agent_api::{ExecRequest, ExecResponse};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::activity::Tracker;
use crate::error::AppError;

/// How long to keep reading output after the shell exited, for data still
/// in the pipes or written by background processes that hold them.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Limits for one exec, from the agent's options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) default_timeout: Duration,
    pub(crate) max_timeout: Duration,
    pub(crate) output_cap: usize,
}

/// Kills the process group if the exec is abandoned before the command ended.
struct GroupGuard {
    pid: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            crate::platform::kill_process_group(pid);
        }
    }
}

/// Output of one pipe: the kept prefix and whether more was dropped.
#[derive(Debug, Default)]
struct Captured {
    data: Vec<u8>,
    truncated: bool,
}

async fn capture<R: AsyncRead + Unpin>(mut pipe: R, cap: usize, out: &mut Captured) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = cap.saturating_sub(out.data.len());
                let keep = n.min(room);
                out.data.extend_from_slice(&buf[..keep]);
                if keep < n {
                    out.truncated = true;
                }
            }
        }
    }
}

/// Runs the request's command.
pub(crate) async fn run(
    req: ExecRequest,
    limits: Limits,
    tracker: &Arc<Tracker>,
) -> Result<ExecResponse, AppError> {
    if req.command.trim().is_empty() {
        return Err(AppError::bad_request("command is empty"));
    }
    if req.command.contains('\0') {
        return Err(AppError::bad_request("command contains a NUL byte"));
    }
    let timeout = req
        .timeout_secs
        .map_or(limits.default_timeout, Duration::from_secs)
        .clamp(Duration::from_secs(1), limits.max_timeout);

    let (sh, flag) = crate::platform::shell();
    let mut cmd = Command::new(sh);
    cmd.arg(flag)
        .arg(&req.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::platform::new_process_group(&mut cmd);

    let _hold = tracker.exec_started(truncate_for_log(&req.command));
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| AppError::internal("cannot start the command", e))?;
    let mut group = GroupGuard { pid: child.id() };
    tracing::info!(pid = ?group.pid, timeout_secs = timeout.as_secs(), command = %truncate_for_log(&req.command), "exec");

    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (mut out, mut err) = (Captured::default(), Captured::default());
    let cap = limits.output_cap;
    let mut read_all = Box::pin(async {
        let a = async {
            if let Some(p) = stdout {
                capture(p, cap, &mut out).await;
            }
        };
        let b = async {
            if let Some(p) = stderr {
                capture(p, cap, &mut err).await;
            }
        };
        tokio::join!(a, b);
    });

    // Wait for the shell to exit while reading, within the timeout.
    let mut reads_done = false;
    let waited = tokio::time::timeout(timeout, async {
        loop {
            tokio::select! {
                status = child.wait() => break status,
                () = &mut read_all, if !reads_done => reads_done = true,
            }
        }
    })
    .await;

    let (status, timed_out) = match waited {
        Ok(status) => {
            // The shell is gone and reaped; its group may live on without it.
            group.pid = None;
            let status =
                status.map_err(|e| AppError::internal("cannot wait for the command", e))?;
            if !reads_done {
                let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut read_all).await;
            }
            (status, false)
        }
        Err(_elapsed) => {
            if let Some(pid) = group.pid.take() {
                crate::platform::kill_process_group(pid);
            }
            // Off Unix, or if the shell escaped its group, kill it directly.
            let _ = child.start_kill();
            let status = child
                .wait()
                .await
                .map_err(|e| AppError::internal("cannot wait for the command", e))?;
            if !reads_done {
                let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut read_all).await;
            }
            (status, true)
        }
    };
    // Stop reading (if the drain timed out) and release the buffers.
    drop(read_all);
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let signal = crate::platform::exit_signal(&status);
    Ok(ExecResponse {
        exit_code: status.code().unwrap_or(-1),
        signal,
        timed_out,
        stdout: String::from_utf8_lossy(&out.data).into_owned(),
        stderr: String::from_utf8_lossy(&err.data).into_owned(),
        output_truncated: out.truncated || err.truncated,
        duration_ms,
    })
}

/// A command line for the log and the activity list, cut to a sane length.
fn truncate_for_log(command: &str) -> String {
    const MAX: usize = 120;
    match command.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &command[..i]),
        None => command.to_string(),
    }
}
