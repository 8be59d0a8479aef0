//! Reaching the user's ssh-agent, wherever the platform keeps it.
//!
//! On Unix the agent is the socket named by `SSH_AUTH_SOCK`. On Windows it is
//! the pipe `SSH_AUTH_SOCK` names, else the OpenSSH agent's named pipe
//! (`\\.\pipe\openssh-ssh-agent`), else Pageant: tried in that order, and
//! when none answers the error lists each one's failure. The order is a pure
//! function (`candidates`) unit-tested for both platforms; only opening a
//! socket, a pipe or Pageant is behind `cfg`. Everything platform-specific
//! about agents lives in this file.

use std::ffi::OsStr;
use std::path::PathBuf;

use russh::keys::agent::client::{AgentClient, AgentStream};

use super::error::{Error, Result};
use crate::platform::Os;

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

/// The OpenSSH for Windows agent's named pipe, tried by
/// [`AgentLocation::Default`] on Windows. Named on every platform so that
/// messages and tests can refer to it.
pub const WINDOWS_OPENSSH_AGENT_PIPE: &str = r"\\.\pipe\openssh-ssh-agent";

/// One place an agent may be, in the order [`AgentLocation::Default`] tries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Candidate {
    /// What `SSH_AUTH_SOCK` names: a Unix socket, or on Windows a named pipe.
    AuthSock(PathBuf),
    /// The OpenSSH for Windows agent ([`WINDOWS_OPENSSH_AGENT_PIPE`]).
    OpenSshPipe,
    /// PuTTY's Pageant (Windows).
    Pageant,
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::AuthSock(p) => write!(f, "SSH_AUTH_SOCK={}", p.display()),
            Candidate::OpenSshPipe => f.write_str(WINDOWS_OPENSSH_AGENT_PIPE),
            Candidate::Pageant => f.write_str("Pageant"),
        }
    }
}

/// Where [`AgentLocation::Default`] looks on `os`, in order.
///
/// `SSH_AUTH_SOCK` comes first everywhere, as users expect from OpenSSH; an
/// empty value counts as unset. On Windows it is only a hint (Git for Windows
/// sets it to an MSYS socket path no native program can open), so the OpenSSH
/// agent's pipe and then Pageant are tried after it. On Unix nothing else is
/// standard: without `SSH_AUTH_SOCK` there is no agent to find.
pub(crate) fn candidates(os: Os, ssh_auth_sock: Option<&OsStr>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = ssh_auth_sock
        .filter(|s| !s.is_empty())
        .map(|s| Candidate::AuthSock(PathBuf::from(s)))
        .into_iter()
        .collect();
    if os == Os::Windows {
        out.extend([Candidate::OpenSshPipe, Candidate::Pageant]);
    }
    out
}

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

/// Try each candidate for this platform in turn; the first that answers wins.
async fn connect_default() -> Result<(BoxedAgentStream, String)> {
    let sock = std::env::var_os("SSH_AUTH_SOCK");
    let list = candidates(Os::CURRENT, sock.as_deref());
    if list.is_empty() {
        return Err(agent_err(
            "SSH_AUTH_SOCK",
            "not set: no agent is running in this session",
        ));
    }
    let mut failures = Vec::new();
    for candidate in list {
        match connect_candidate(&candidate).await {
            Ok(stream) => return Ok((stream, candidate.to_string())),
            Err(e) => failures.push((candidate, e)),
        }
    }
    Err(all_failed(failures))
}

/// One error that names every candidate and why it failed.
fn all_failed(mut failures: Vec<(Candidate, Error)>) -> Error {
    if failures.len() == 1
        && let Some((_, e)) = failures.pop()
    {
        // A single candidate's error already names it.
        return e;
    }
    let reason = failures
        .iter()
        .map(|(c, e)| match e {
            Error::Agent { reason, .. } => format!("{c}: {reason}"),
            other => format!("{c}: {other}"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    agent_err("default agent", format!("none answered ({reason})"))
}

fn agent_err(location: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Agent {
        location: location.into(),
        reason: reason.to_string(),
    }
}

async fn connect_candidate(candidate: &Candidate) -> Result<BoxedAgentStream> {
    match candidate {
        Candidate::AuthSock(p) => connect_path(p).await,
        Candidate::OpenSshPipe => {
            connect_path(std::path::Path::new(WINDOWS_OPENSSH_AGENT_PIPE)).await
        }
        Candidate::Pageant => connect_pageant().await,
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
async fn connect_pageant() -> Result<BoxedAgentStream> {
    Err(agent_err("Pageant", "Pageant exists only on Windows"))
}

#[cfg(windows)]
async fn connect_path(path: &std::path::Path) -> Result<BoxedAgentStream> {
    use tokio::net::windows::named_pipe::ClientOptions;
    // All instances busy: the agent is serving someone else; wait our turn.
    const ERROR_PIPE_BUSY: i32 = 231;
    let desc = path.display().to_string();
    for _ in 0..100 {
        match ClientOptions::new().open(path) {
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
async fn connect_pageant() -> Result<BoxedAgentStream> {
    match AgentClient::connect_pageant().await {
        Ok(c) => Ok(c.into_inner()),
        Err(e) => Err(agent_err("Pageant", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn unix_should_use_only_ssh_auth_sock() {
        assert_eq!(
            candidates(Os::Unix, sock("/tmp/agent.1")),
            [Candidate::AuthSock("/tmp/agent.1".into())]
        );
        assert_eq!(
            candidates(Os::Mac, sock("/tmp/agent.1")),
            [Candidate::AuthSock("/tmp/agent.1".into())]
        );
        assert_eq!(candidates(Os::Unix, None), []);
        assert_eq!(candidates(Os::Unix, sock("")), []);
    }

    #[test]
    fn windows_should_try_ssh_auth_sock_then_openssh_then_pageant() {
        assert_eq!(
            candidates(Os::Windows, sock(r"\\.\pipe\my-agent")),
            [
                Candidate::AuthSock(r"\\.\pipe\my-agent".into()),
                Candidate::OpenSshPipe,
                Candidate::Pageant
            ]
        );
        for unset in [None, sock("")] {
            assert_eq!(
                candidates(Os::Windows, unset),
                [Candidate::OpenSshPipe, Candidate::Pageant]
            );
        }
    }

    #[test]
    fn candidates_should_describe_themselves() {
        assert_eq!(
            Candidate::OpenSshPipe.to_string(),
            r"\\.\pipe\openssh-ssh-agent"
        );
        assert_eq!(Candidate::Pageant.to_string(), "Pageant");
        assert!(
            Candidate::AuthSock("/tmp/a".into())
                .to_string()
                .starts_with("SSH_AUTH_SOCK=")
        );
    }

    #[test]
    fn all_failed_should_report_every_candidate() {
        let err = all_failed(vec![
            (
                Candidate::AuthSock("/tmp/msys/agent".into()),
                agent_err("/tmp/msys/agent", "not found"),
            ),
            (
                Candidate::OpenSshPipe,
                agent_err(WINDOWS_OPENSSH_AGENT_PIPE, "pipe not found"),
            ),
            (Candidate::Pageant, agent_err("Pageant", "not running")),
        ]);
        let text = err.to_string();
        for part in [
            "SSH_AUTH_SOCK=/tmp/msys/agent: not found",
            r"\\.\pipe\openssh-ssh-agent: pipe not found",
            "Pageant: not running",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }

    #[test]
    fn all_failed_should_pass_a_single_error_through() {
        let err = all_failed(vec![(
            Candidate::AuthSock("/tmp/a".into()),
            agent_err("/tmp/a", "connection refused"),
        )]);
        assert_eq!(err.to_string(), "ssh-agent (/tmp/a): connection refused");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn connect_path_should_name_the_socket_when_nothing_listens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let err = match connect_stream(&AgentLocation::Path(path.clone())).await {
            Ok(_) => panic!("nothing listens there"),
            Err(e) => e,
        };
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[cfg(windows)]
    #[tokio::test]
    async fn missing_pipe_should_be_named_in_the_error() {
        let pipe = r"\\.\pipe\spuff-test-no-such-agent";
        let err = match connect_stream(&AgentLocation::Path(pipe.into())).await {
            Ok(_) => panic!("nothing serves {pipe}"),
            Err(e) => e,
        };
        assert!(err.to_string().contains(pipe), "{err}");
    }

    #[cfg(windows)]
    #[tokio::test]
    async fn default_should_report_every_windows_candidate_when_none_answers() {
        // Only meaningful where no agent runs (CI, Wine); with one running
        // there is nothing to check.
        if let Err(e) = connect_default().await {
            let text = e.to_string();
            assert!(text.contains(WINDOWS_OPENSSH_AGENT_PIPE), "{text}");
            assert!(text.contains("Pageant"), "{text}");
        }
    }
}
