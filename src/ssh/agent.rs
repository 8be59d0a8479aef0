//! Reaching the user's ssh-agent, wherever the platform keeps it.
//!
//! On Unix the agent is the socket named by `SSH_AUTH_SOCK`. On Windows it is
//! the OpenSSH agent's named pipe (`\\.\pipe\openssh-ssh-agent`) or Pageant,
//! chosen automatically, with `SSH_AUTH_SOCK` still honoured when it names a
//! pipe. Everything platform-specific about agents lives in this file.

use std::path::PathBuf;

use russh::keys::agent::client::{AgentClient, AgentStream};

use super::error::{Error, Result};

/// A boxed byte stream to an agent, whatever the transport.
pub(crate) type BoxedAgentStream = Box<dyn AgentStream + Send + Unpin>;

/// Where to find the ssh-agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AgentLocation {
    /// The platform default: `SSH_AUTH_SOCK`; on Windows also the OpenSSH
    /// agent's named pipe, then Pageant.
    #[default]
    Default,
    /// A specific Unix socket path, or on Windows a named pipe path.
    Path(PathBuf),
}

impl std::fmt::Display for AgentLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentLocation::Default => f.write_str("default agent"),
            AgentLocation::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The OpenSSH for Windows agent's pipe.
#[cfg(windows)]
pub const WINDOWS_OPENSSH_AGENT_PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// Open a stream to the agent at `location`; returns the stream and a
/// description of where it was found (for messages).
pub(crate) async fn connect_stream(location: &AgentLocation) -> Result<(BoxedAgentStream, String)> {
    match location {
        AgentLocation::Path(p) => Ok((connect_path(p).await?, p.display().to_string())),
        AgentLocation::Default => connect_default().await,
    }
}

/// An agent client at `location`, ready for identity and signing requests.
pub(crate) async fn connect(
    location: &AgentLocation,
) -> Result<(AgentClient<BoxedAgentStream>, String)> {
    let (stream, desc) = connect_stream(location).await?;
    Ok((AgentClient::connect(stream), desc))
}

fn agent_err(location: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Agent {
        location: location.into(),
        reason: reason.to_string(),
    }
}

#[cfg(unix)]
async fn connect_path(path: &std::path::Path) -> Result<BoxedAgentStream> {
    let s = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| agent_err(path.display().to_string(), e))?;
    Ok(Box::new(s))
}

#[cfg(unix)]
async fn connect_default() -> Result<(BoxedAgentStream, String)> {
    let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
        return Err(agent_err(
            "SSH_AUTH_SOCK",
            "not set: no agent is running in this session",
        ));
    };
    let path = PathBuf::from(sock);
    Ok((connect_path(&path).await?, path.display().to_string()))
}

#[cfg(windows)]
async fn connect_path(path: &std::path::Path) -> Result<BoxedAgentStream> {
    open_pipe(path.as_os_str()).await
}

#[cfg(windows)]
async fn open_pipe(name: &std::ffi::OsStr) -> Result<BoxedAgentStream> {
    use tokio::net::windows::named_pipe::ClientOptions;
    const ERROR_PIPE_BUSY: i32 = 231;
    let desc = name.to_string_lossy().to_string();
    for _ in 0..100 {
        match ClientOptions::new().open(name) {
            Ok(c) => return Ok(Box::new(c)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => return Err(agent_err(desc, e)),
        }
    }
    Err(agent_err(desc, "pipe stayed busy for 5s"))
}

#[cfg(windows)]
async fn connect_default() -> Result<(BoxedAgentStream, String)> {
    // SSH_AUTH_SOCK wins when set, as on Unix (Git for Windows and WSL bridges set it).
    if let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
        let desc = sock.to_string_lossy().to_string();
        return Ok((open_pipe(&sock).await?, desc));
    }
    let pipe_err = match open_pipe(std::ffi::OsStr::new(WINDOWS_OPENSSH_AGENT_PIPE)).await {
        Ok(s) => return Ok((s, WINDOWS_OPENSSH_AGENT_PIPE.to_string())),
        Err(e) => e,
    };
    match AgentClient::connect_pageant().await {
        Ok(c) => Ok((c.into_inner(), "Pageant".to_string())),
        Err(pageant) => Err(agent_err(
            "Windows agents",
            format!("OpenSSH agent: {pipe_err}; Pageant: {pageant}"),
        )),
    }
}
