//! The VM's bootstrap as seen over SSH: its status file, the last line of
//! its log, and whether phase 1 finished.
//!
//! `up` follows it until phase 1 is done and `spuff status` shows it. Both
//! read the files themselves rather than ask the agent: during phase 1 the
//! agent may not run yet (`--dev` uploads it after the first login), and an
//! agent older than the `installing` state reports it as `unknown`.

use crate::agent::api::{BOOTSTRAP_LOG_PATH, BOOTSTRAP_STATUS_PATH, BootstrapStatus};
use crate::cloudinit::escape::sh_quote;
use crate::ssh;

/// What phase 1 writes to the log when it has finished
/// (templates/bootstrap-sync.sh.hbs, `step "done; …"`), also on VMs from
/// before the `installing` state.
const PHASE_1_DONE: &str = "phase 1: done";

/// The bootstrap at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The status file's state.
    pub status: BootstrapStatus,
    /// The last non-empty line of the bootstrap log, if any.
    pub line: Option<String>,
    /// Whether the log says phase 1 finished. With [`BootstrapStatus::Failed`]
    /// it tells which phase failed: the status file says only `failed`.
    pub phase_1_done: bool,
}

impl Progress {
    /// A progress from its facts, for callers that read them elsewhere
    /// (and for tests).
    pub fn new(status: BootstrapStatus, line: Option<String>, phase_1_done: bool) -> Self {
        Progress {
            status,
            line,
            phase_1_done,
        }
    }

    /// Whether a shell and the agent are usable: phase 1 finished (the
    /// status is `installing` or `ready`, or it is `failed` after phase 1
    /// had finished, so phase 2 failed).
    pub fn shell_ready(&self) -> bool {
        self.status.shell_ready() || (self.status == BootstrapStatus::Failed && self.phase_1_done)
    }

    /// Which phase is running or failed: 1, 2, or `None` before the status
    /// file exists and once `ready`.
    pub fn phase(&self) -> Option<u8> {
        match self.status {
            BootstrapStatus::Running => Some(1),
            BootstrapStatus::Installing => Some(2),
            BootstrapStatus::Failed if self.phase_1_done => Some(2),
            BootstrapStatus::Failed => Some(1),
            _ => None,
        }
    }
}

/// cloud-init's own output log: root's (and group adm's) to read.
const CLOUD_INIT_OUTPUT: &str = "/var/log/cloud-init-output.log";

/// One shell command that prints the three facts, one per line: the status
/// file, whether the log has phase 1's last line, the log's last line.
/// Before the bootstrap's log exists, the last line of cloud-init's output
/// stands in for it (which stage cloud-init is in), read with `sudo -n` by
/// a login user who cannot read it.
fn command() -> String {
    let (status, log, ci) = (
        sh_quote(BOOTSTRAP_STATUS_PATH),
        sh_quote(BOOTSTRAP_LOG_PATH),
        sh_quote(CLOUD_INIT_OUTPUT),
    );
    format!(
        "head -n 1 {status} 2>/dev/null; echo; \
         if grep -q {marker} {log} 2>/dev/null; then echo 1; else echo 0; fi; \
         if [ -e {log} ]; then tail -n 1 {log} 2>/dev/null; \
         else tail -n 1 {ci} 2>/dev/null || sudo -n tail -n 1 {ci} 2>/dev/null; fi",
        marker = sh_quote(PHASE_1_DONE)
    )
}

fn parse_output(output: &str) -> Progress {
    let mut lines = output.lines();
    let status = BootstrapStatus::from_file_content(lines.next().unwrap_or_default());
    // `head` of a file without a final newline leaves `echo`'s empty line.
    let mut next = lines.next().unwrap_or_default();
    if next.is_empty() {
        next = lines.next().unwrap_or_default();
    }
    let phase_1_done = next.trim() == "1";
    let line = lines
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    Progress {
        status,
        line,
        phase_1_done,
    }
}

/// The most output [`progress`] reads.
const PROGRESS_LIMIT: usize = 64 << 10;

/// Reads the bootstrap's progress over `session` (one remote command).
///
/// # Errors
/// The SSH layer's, when the command cannot be run.
pub async fn progress(session: &ssh::Session) -> Result<Progress, ssh::Error> {
    // A status word, a marker and one log line: a VM sending more is broken
    // or hostile, and must not fill this machine's memory (issue 13).
    let cmd = session.spawn(&command()).await?;
    cmd.close_stdin().await?;
    let output = cmd.collect_limited(PROGRESS_LIMIT).await?;
    Ok(parse_output(&String::from_utf8_lossy(&output.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_read_status_marker_and_line() {
        let p = parse_output("installing\n\n1\n[spuff t] phase 1: done; phase 2 continues\n");
        assert_eq!(p.status, BootstrapStatus::Installing);
        assert!(p.phase_1_done && p.shell_ready());
        assert_eq!(p.phase(), Some(2));
        assert_eq!(
            p.line.as_deref(),
            Some("[spuff t] phase 1: done; phase 2 continues")
        );

        // No status file, no log.
        let p = parse_output("\n0\n");
        assert_eq!(p.status, BootstrapStatus::Unknown);
        assert!(!p.phase_1_done && !p.shell_ready());
        assert_eq!((p.phase(), p.line), (None, None));

        // A status without a newline.
        let p = parse_output("running\n0\nphase 1: started\n");
        assert_eq!(p.status, BootstrapStatus::Running);
        assert_eq!(p.phase(), Some(1));
        assert_eq!(p.line.as_deref(), Some("phase 1: started"));
    }

    #[test]
    fn failed_should_name_its_phase_by_the_log() {
        let p1 = parse_output("failed\n\n0\nphase 1: failed (exit 1)\n");
        assert!(!p1.shell_ready());
        assert_eq!(p1.phase(), Some(1));
        let p2 = parse_output("failed\n\n1\nphase 2: failed (exit 100)\n");
        assert!(p2.shell_ready());
        assert_eq!(p2.phase(), Some(2));
    }

    #[test]
    fn the_command_should_quote_the_paths() {
        let c = command();
        assert!(c.contains("'/opt/spuff/bootstrap.status'"), "{c}");
        assert!(
            c.contains("'phase 1: done' '/var/log/spuff-bootstrap.log'"),
            "{c}"
        );
    }
}
