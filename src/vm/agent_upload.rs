//! The agent's second delivery path: `spuff up --dev` uploads a locally
//! built agent instead of letting the VM download a release.
//!
//! It is a step of a VM's life (a command and `sudo` on a running VM), so it
//! lives with the lifecycle; its errors are the cloud-init layer's, since
//! it completes what the user-data's agent unit expects.
//!
//! The binary goes to a temporary file beside its destination and is renamed
//! over it (a new inode, so a running agent keeps its old binary until
//! restarted); the agent's unit is then enabled and started. The remote commands are fields of
//! [`AgentInstall`] so that tests against an sshd without systemd, or a VM
//! with other needs, can substitute them.

use std::path::Path;

use spuff_agent_api::BINARY_PATH;

use crate::cloudinit::escape::sh_quote;
use crate::cloudinit::{AGENT_UNIT, Error, Result};
use crate::ssh::Session;

/// Where and how [`install_uploaded_agent`] installs and starts the agent.
///
/// `AgentInstall::default()` is right for a spuff VM:
/// the binary unpacked (as root, through `sudo -n`) to `/opt/spuff/spuff-agent`, then
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

/// Uploads the agent binary at `local` to the VM, installs it at
/// `opts.dest` with mode 0755 and runs `opts.start_command`.
///
/// The binary is streamed gzip-compressed through one command's standard
/// input (about 40% of its size; under QEMU emulation the guest's sshd is
/// the bottleneck, so fewer bytes is most of the time saved) and unpacked
/// with `gzip -d` next to its destination, then renamed over it. A VM
/// without `gzip` gets the raw bytes. gzip checks its CRC, so a cut stream
/// installs nothing.
///
/// # Errors
/// [`Error::Ssh`] when reading `local`, sending it or running a command
/// fails at the SSH level; [`Error::RemoteCommand`] with the command, its
/// exit status and stderr when installing or starting fails on the VM.
pub async fn install_uploaded_agent(
    session: &Session,
    local: impl AsRef<Path>,
    opts: &AgentInstall,
) -> Result<()> {
    let local = local.as_ref().to_path_buf();
    let raw = tokio::fs::read(&local).await.map_err(|e| {
        Error::Ssh(crate::ssh::Error::LocalIo {
            operation: "reading the agent binary",
            path: local.clone(),
            source: e,
        })
    })?;
    install_agent(session, AgentPayload::hashed(raw).await, opts).await
}

/// An agent binary on its way to a VM: its bytes, compressed or not, and
/// the SHA-256 the VM checks before installing it.
#[derive(Clone)]
pub struct AgentPayload {
    raw: Option<std::sync::Arc<Vec<u8>>>,
    gz: Option<std::borrow::Cow<'static, [u8]>>,
    embedded: Option<&'static crate::agent_bin::Embedded>,
    sha256: String,
}

impl std::fmt::Debug for AgentPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPayload")
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl AgentPayload {
    /// [`AgentPayload::raw`], hashed on a blocking thread (a debug build
    /// of the agent is hundreds of megabytes; the runtime must not stall).
    pub async fn hashed(bytes: Vec<u8>) -> Self {
        match tokio::task::spawn_blocking(move || AgentPayload::raw(bytes)).await {
            Ok(payload) => payload,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// A binary read from a file.
    pub fn raw(bytes: Vec<u8>) -> Self {
        let sha256 = crate::agent_bin::sha256_hex(&bytes);
        AgentPayload {
            raw: Some(std::sync::Arc::new(bytes)),
            gz: None,
            embedded: None,
            sha256,
        }
    }

    /// An agent spuff carries: sent as it is carried (compressed), checked
    /// on the VM against the SHA-256 recorded when spuff was built.
    pub fn embedded(agent: &'static crate::agent_bin::Embedded) -> Self {
        AgentPayload {
            raw: None,
            gz: Some(std::borrow::Cow::Borrowed(agent.compressed())),
            embedded: Some(agent),
            sha256: agent.sha256.to_string(),
        }
    }

    /// The SHA-256 the VM checks, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    async fn gz(&self) -> Option<std::borrow::Cow<'static, [u8]>> {
        if let Some(gz) = &self.gz {
            return Some(gz.clone());
        }
        let raw = self.raw.clone()?;
        tokio::task::spawn_blocking(move || gzip(&raw))
            .await
            .ok()
            .flatten()
            .map(std::borrow::Cow::Owned)
    }

    fn raw_bytes(&self) -> Result<std::sync::Arc<Vec<u8>>> {
        if let Some(raw) = &self.raw {
            return Ok(raw.clone());
        }
        match self.embedded.map(crate::agent_bin::Embedded::binary) {
            Some(Ok(bytes)) => Ok(std::sync::Arc::new(bytes)),
            Some(Err(e)) => Err(Error::Invalid {
                field: "agent".into(),
                value: None,
                reason: e.to_string(),
            }),
            None => Ok(std::sync::Arc::new(Vec::new())),
        }
    }
}

/// Installs `payload` on the VM as [`install_uploaded_agent`] does, the
/// VM checking its SHA-256 (`sha256sum`) before it replaces anything: a
/// binary that arrives other than it left is never installed.
///
/// # Errors
/// As [`install_uploaded_agent`]; a hash that does not match is an
/// [`Error::RemoteCommand`] saying so.
pub async fn install_agent(
    session: &Session,
    payload: AgentPayload,
    opts: &AgentInstall,
) -> Result<()> {
    let packed = payload.gz().await;
    let sudo = if opts.sudo.unwrap_or(session.user() != "root") {
        "sudo -n "
    } else {
        ""
    };
    // Random, so that two uploads to one VM do not share a file.
    let nonce = getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id()));
    let dest = sh_quote(&opts.dest);
    let sha = sh_quote(payload.sha256());
    let install = |unpack: &str| {
        let script = format!(
            "set -e; umask 022; t={dest}.upload-{nonce:016x}; \
             trap 'rm -f \"$t\"' EXIT; mkdir -p \"$(dirname \"$t\")\"; \
             {unpack} > \"$t\"; \
             got=$(sha256sum \"$t\" | cut -d' ' -f1); \
             if [ \"$got\" != {sha} ]; then \
             echo \"spuff: the agent's SHA-256 on the VM is $got, not \"{sha} >&2; exit 98; fi; \
             chmod 0755 \"$t\"; mv -f \"$t\" {dest}"
        );
        format!("{sudo}sh -c {}", sh_quote(&script))
    };
    // Reads all of its input either way, so the sender never writes into a
    // closed channel; 97 says "no gzip here".
    const NO_GZIP: u32 = 97;
    let gunzip = install(&format!(
        "if command -v gzip >/dev/null; then gzip -dc; else cat >/dev/null; exit {NO_GZIP}; fi"
    ));
    let out = match &packed {
        Some(packed) => send(session, &gunzip, packed).await?,
        None => send(session, &install("cat"), &payload.raw_bytes()?).await?,
    };
    let (command, out) = if packed.is_none() || out.status.code() == Some(NO_GZIP) {
        let plain = install("cat");
        let out = if packed.is_none() {
            out
        } else {
            send(session, &plain, &payload.raw_bytes()?).await?
        };
        (plain, out)
    } else {
        (gunzip, out)
    };
    check(session, &command, &out)?;

    if let Some(start) = &opts.start_command {
        run(session, &format!("{sudo}sh -c {}", sh_quote(start))).await?;
    }
    Ok(())
}

/// Puts `request` where the VM's agent looks for it
/// ([`SELF_DESTROY_PATH`](spuff_agent_api::SELF_DESTROY_PATH)), readable by
/// root only, so that its idle or lifetime stop deletes the VM through the
/// provider's API (`self_destroy: on`, issue 12). The JSON, token included,
/// travels on the command's standard input, never in its arguments;
/// `sudo -n` unless logged in as root.
///
/// # Errors
/// [`Error::Ssh`] when the command cannot run; [`Error::RemoteCommand`]
/// when it fails on the VM.
pub async fn arm_self_destroy(
    session: &Session,
    request: &spuff_agent_api::SelfDestroy,
) -> Result<()> {
    let sudo = if session.user() != "root" {
        "sudo -n "
    } else {
        ""
    };
    let script = format!(
        "set -e; umask 077; d={}; mkdir -p \"${{d%/*}}\"; cat > \"$d.new\"; \
         chmod 0600 \"$d.new\"; mv -f \"$d.new\" \"$d\"",
        sh_quote(spuff_agent_api::SELF_DESTROY_PATH)
    );
    let command = format!("{sudo}sh -c {}", sh_quote(&script));
    let json = serde_json::to_vec(request).unwrap_or_default();
    let out = send(session, &command, &json).await?;
    check(session, &command, &out)
}

/// `data`, gzip-compressed; `None` if compressing failed (never, in
/// memory).
fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).ok()?;
    gz.finish().ok()
}

/// Runs `command` with `data` as its standard input. The install scripts
/// print a line or two; 64 KiB is plenty, and all a VM gets to send back.
async fn send(session: &Session, command: &str, data: &[u8]) -> Result<crate::ssh::ExecOutput> {
    Ok(session.exec_with_input(command, data, 64 * 1024).await?)
}

fn check(session: &Session, command: &str, out: &crate::ssh::ExecOutput) -> Result<()> {
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

async fn run(session: &Session, command: &str) -> Result<()> {
    let out = session.exec(command).await?;
    check(session, command, &out)
}
