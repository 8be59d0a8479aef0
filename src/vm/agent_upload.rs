//! The agent's second delivery path: `spuff up --dev` uploads a locally
//! built agent over SFTP instead of letting the VM download a release.
//!
//! It is a step of a VM's life (SFTP and `sudo` on a running VM), so it
//! lives with the lifecycle; its errors are the cloud-init layer's, since
//! it completes what the user-data's agent unit expects.
//!
//! The binary goes to a temporary file in the login user's home (writable
//! without privileges), is installed with `install -m 0755` (a new inode, so
//! a running agent keeps its old binary until restarted) and the agent's unit
//! is then enabled and started. The remote commands are fields of
//! [`AgentInstall`] so that tests against an sshd without systemd, or a VM
//! with other needs, can substitute them.

use std::path::Path;

use spuff_agent_api::BINARY_PATH;

use crate::cloudinit::escape::sh_quote;
use crate::cloudinit::{AGENT_UNIT, Error, Result};
use crate::sftp::{Sftp, TransferOptions};
use crate::ssh::Session;

/// Where and how [`install_uploaded_agent`] installs and starts the agent.
///
/// `AgentInstall::default()` is right for a spuff VM:
/// `sudo -n install -m 0755 <upload> /opt/spuff/spuff-agent`, then
/// `sudo -n sh -c 'systemctl --no-reload enable spuff-agent.service && …start…'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInstall {
    /// The binary's final path ([`BINARY_PATH`]); missing directories are
    /// created.
    pub dest: String,
    /// A shell command run after installing, with the same privileges
    /// (enable and start `spuff-agent.service`, with a daemon-reload only
    /// when the start fails: a reload takes seconds while the VM boots);
    /// `None` runs nothing.
    pub start_command: Option<String>,
    /// Whether to run the commands through `sudo -n` (never prompts).
    /// `None`: when the login user is not `root`.
    pub sudo: Option<bool>,
}

impl Default for AgentInstall {
    fn default() -> Self {
        AgentInstall {
            dest: BINARY_PATH.into(),
            start_command: Some(format!(
                "systemctl --no-reload enable {AGENT_UNIT} && \
                 {{ systemctl start {AGENT_UNIT} || \
                 {{ systemctl daemon-reload && systemctl start {AGENT_UNIT}; }}; }}"
            )),
            sudo: None,
        }
    }
}

/// Uploads the agent binary at `local` over `sftp`, installs it at
/// `opts.dest` with mode 0755 and runs `opts.start_command`.
///
/// The upload lands in a temporary file in the login user's home directory,
/// removed again whether the install works or not.
///
/// # Errors
/// [`Error::Ssh`] when reading `local`, the upload or running a command
/// fails at the SSH level; [`Error::RemoteCommand`] with the command, its
/// exit status and stderr when installing or starting fails on the VM.
pub async fn install_uploaded_agent(
    sftp: &Sftp,
    local: impl AsRef<Path>,
    opts: &AgentInstall,
) -> Result<()> {
    let session = sftp.session();
    // Relative paths are in the login user's home, for SFTP and exec alike.
    // Random, so that two uploads to one VM do not share a file.
    let nonce = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
    let tmp = format!(".spuff-agent.upload-{nonce:016x}");
    sftp.upload_file(local, &tmp, &TransferOptions::default())
        .await?;

    let sudo = if opts.sudo.unwrap_or(session.user() != "root") {
        "sudo -n "
    } else {
        ""
    };
    let install = format!(
        "{sudo}install -D -m 0755 {} {}",
        sh_quote(&tmp),
        sh_quote(&opts.dest)
    );
    let installed = run(session, &install).await;
    // Best effort: a leftover file in the home directory is harmless, and the
    // install's own error says more than this one would.
    let _ = session.exec(&format!("rm -f {}", sh_quote(&tmp))).await;
    installed?;

    if let Some(start) = &opts.start_command {
        run(session, &format!("{sudo}sh -c {}", sh_quote(start))).await?;
    }
    Ok(())
}

async fn run(session: &Session, command: &str) -> Result<()> {
    let out = session.exec(command).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::RemoteCommand {
        host: session.host().to_string(),
        command: command.to_string(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}
