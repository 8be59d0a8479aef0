//! Running commands: output streamed as it arrives, the exit status or signal
//! at the end, and a lost connection reported as such.
//!
//! OpenSSH sends a command's output, then `exit-status` (or `exit-signal`),
//! then EOF and close. A channel that closes without either means the command's
//! fate is unknown; we never turn that into a made-up status.

use bytes::Bytes;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::AsyncWrite;

use super::Session;
use super::error::{Error, Result};

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by a signal.
    Signal {
        /// Signal name without `SIG`: `TERM`, `KILL`, `SEGV`, …
        name: String,
        /// Whether it dumped core.
        core_dumped: bool,
        /// The server's message, often empty.
        message: String,
    },
    /// The user left an interactive session with its escape sequence
    /// (`~.`) before the remote side ended; how it ended is unknown.
    Disconnected,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }

    /// The exit code, if it exited rather than being killed.
    pub fn code(&self) -> Option<u32> {
        match self {
            ExitStatus::Code(c) => Some(*c),
            ExitStatus::Signal { .. } | ExitStatus::Disconnected => None,
        }
    }

    /// The code a shell would report: the exit code, or 128 + the signal
    /// number for a signal (255 when the signal is not a standard one, and
    /// after a disconnect, as `ssh` exits then).
    pub fn shell_code(&self) -> i32 {
        match self {
            ExitStatus::Code(c) => i32::try_from(*c).unwrap_or(255),
            ExitStatus::Signal { name, .. } => signal_number(name).map_or(255, |n| 128 + n),
            ExitStatus::Disconnected => 255,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal {
                name, core_dumped, ..
            } => write!(
                f,
                "killed by signal {name}{}",
                if *core_dumped { " (core dumped)" } else { "" }
            ),
            ExitStatus::Disconnected => f.write_str("disconnected by the user"),
        }
    }
}

fn signal_number(name: &str) -> Option<i32> {
    // POSIX numbers as on Linux, which is what spuff VMs run.
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "USR1" => 10,
        "USR2" => 12,
        _ => return None,
    })
}

pub(crate) fn sig_name(sig: &Sig) -> String {
    match sig {
        Sig::ABRT => "ABRT".into(),
        Sig::ALRM => "ALRM".into(),
        Sig::FPE => "FPE".into(),
        Sig::HUP => "HUP".into(),
        Sig::ILL => "ILL".into(),
        Sig::INT => "INT".into(),
        Sig::KILL => "KILL".into(),
        Sig::PIPE => "PIPE".into(),
        Sig::QUIT => "QUIT".into(),
        Sig::SEGV => "SEGV".into(),
        Sig::TERM => "TERM".into(),
        Sig::USR1 => "USR1".into(),
        Sig::Custom(s) => s.clone(),
    }
}

fn sig_from_name(name: &str) -> Sig {
    match name.trim_start_matches("SIG") {
        "ABRT" => Sig::ABRT,
        "ALRM" => Sig::ALRM,
        "FPE" => Sig::FPE,
        "HUP" => Sig::HUP,
        "ILL" => Sig::ILL,
        "INT" => Sig::INT,
        "KILL" => Sig::KILL,
        "PIPE" => Sig::PIPE,
        "QUIT" => Sig::QUIT,
        "SEGV" => Sig::SEGV,
        "TERM" => Sig::TERM,
        "USR1" => Sig::USR1,
        other => Sig::Custom(other.to_string()),
    }
}

/// Everything a finished command wrote, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error, kept apart from stdout.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub status: ExitStatus,
}

/// Something a running command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Bytes on standard output.
    Stdout(Bytes),
    /// Bytes on standard error.
    Stderr(Bytes),
    /// The command ended. Output may in principle still follow until the
    /// channel closes; keep reading until [`RemoteCommand::next_event`] gives `None`.
    Exit(ExitStatus),
}

/// A command running on the remote host.
pub struct RemoteCommand {
    session: Session,
    operation: String,
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    status: Option<ExitStatus>,
    done: bool,
}

impl std::fmt::Debug for RemoteCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCommand")
            .field("operation", &self.operation)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl RemoteCommand {
    /// The next piece of output or the exit; `None` once the channel has closed.
    ///
    /// # Errors
    /// [`Error::ConnectionLost`] if the connection drops before the command's
    /// exit status arrived; [`Error::ChannelRefused`] if the server refused to run it.
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let Some(msg) = self.read.wait().await else {
                self.done = true;
                return match self.status {
                    Some(_) => Ok(None),
                    None => Err(self.session.lost(&self.operation)),
                };
            };
            match msg {
                ChannelMsg::Data { data } => return Ok(Some(ExecEvent::Stdout(data))),
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    return Ok(Some(ExecEvent::Stderr(data)));
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    let s = ExitStatus::Code(exit_status);
                    self.status = Some(s.clone());
                    return Ok(Some(ExecEvent::Exit(s)));
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    ..
                } => {
                    let s = ExitStatus::Signal {
                        name: sig_name(&signal_name),
                        core_dumped,
                        message: error_message,
                    };
                    self.status = Some(s.clone());
                    return Ok(Some(ExecEvent::Exit(s)));
                }
                ChannelMsg::Failure if self.status.is_none() => {
                    self.done = true;
                    return Err(Error::ChannelRefused {
                        host: self.session.host().to_string(),
                        port: self.session.port(),
                        operation: self.operation.clone(),
                        reason: "the server refused the request".into(),
                    });
                }
                ChannelMsg::Close => {
                    self.done = true;
                    return match self.status {
                        Some(_) => Ok(None),
                        // Closed without a status: only a dying server or
                        // connection does this to a running command.
                        None => Err(self.session.lost(&self.operation)),
                    };
                }
                _ => {}
            }
        }
    }

    /// A writer for the command's standard input.
    pub fn stdin(&self) -> impl AsyncWrite + Send + Unpin + 'static {
        Box::pin(self.write.make_writer())
    }

    /// Write `data` to the command's standard input.
    pub async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        self.write
            .data_bytes(Bytes::copy_from_slice(data))
            .await
            .map_err(|e| self.session.op_error(&self.operation, e))
    }

    /// Close standard input (EOF), so commands reading it can finish.
    pub async fn close_stdin(&self) -> Result<()> {
        self.write
            .eof()
            .await
            .map_err(|e| self.session.op_error(&self.operation, e))
    }

    /// Send a signal (`"TERM"`, `"INT"`, …). OpenSSH only delivers signals to
    /// commands with a PTY or since 9.x to any; the result is best effort.
    pub async fn signal(&self, name: &str) -> Result<()> {
        self.write
            .signal(sig_from_name(name))
            .await
            .map_err(|e| self.session.op_error(&self.operation, e))
    }

    /// Close the channel without waiting for the command: the server hangs
    /// up on it (its output has nowhere to go), and nothing more arrives.
    pub async fn close(&self) -> Result<()> {
        self.write
            .close()
            .await
            .map_err(|e| self.session.op_error(&self.operation, e))
    }

    /// Wait for the command to end, discarding its output.
    pub async fn wait(mut self) -> Result<ExitStatus> {
        while self.next_event().await?.is_some() {}
        self.status
            .clone()
            .ok_or_else(|| self.session.lost(&self.operation))
    }

    /// Wait for the command to end, keeping its output, up to
    /// [`COLLECT_LIMIT`] bytes (stdout and stderr together).
    ///
    /// # Errors
    /// [`Error::OutputTooLarge`] past the limit (the server, not the caller,
    /// decides how much it sends); [`Error::ConnectionLost`] when the
    /// connection ends first.
    pub async fn collect(self) -> Result<ExecOutput> {
        self.collect_limited(COLLECT_LIMIT).await
    }

    /// [`RemoteCommand::collect`] with a limit of `limit` bytes, stdout and
    /// stderr together.
    ///
    /// # Errors
    /// As for [`RemoteCommand::collect`].
    pub async fn collect_limited(mut self, limit: usize) -> Result<ExecOutput> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(ev) = self.next_event().await? {
            let kept = stdout.len() + stderr.len();
            match ev {
                ExecEvent::Stdout(b) | ExecEvent::Stderr(b) if kept + b.len() > limit => {
                    return Err(Error::OutputTooLarge {
                        host: self.session.host().to_string(),
                        port: self.session.port(),
                        operation: self.operation.clone(),
                        limit,
                    });
                }
                ExecEvent::Stdout(b) => stdout.extend_from_slice(&b),
                ExecEvent::Stderr(b) => stderr.extend_from_slice(&b),
                ExecEvent::Exit(_) => {}
            }
        }
        let status = self
            .status
            .clone()
            .ok_or_else(|| self.session.lost(&self.operation))?;
        Ok(ExecOutput {
            stdout,
            stderr,
            status,
        })
    }
}

/// The most output [`RemoteCommand::collect`] and [`Session::exec`] keep:
/// 64 MiB. A command that prints more should be streamed
/// ([`Session::spawn`]).
pub const COLLECT_LIMIT: usize = 64 << 20;

impl Session {
    /// Start `command` and stream its output.
    ///
    /// # Errors
    /// [`Error::ChannelRefused`] or [`Error::ConnectionLost`] when the
    /// command cannot be started.
    pub async fn spawn(&self, command: &str) -> Result<RemoteCommand> {
        self.spawn_with_window(command, None).await
    }

    /// [`Session::spawn`], with the channel's receive window at `window`
    /// bytes when given: a command whose output is read slower than it
    /// arrives then holds at most that much here.
    pub(crate) async fn spawn_with_window(
        &self,
        command: &str,
        window: Option<u32>,
    ) -> Result<RemoteCommand> {
        let operation = format!("exec `{}`", truncate(command, 60));
        let channel = match window {
            Some(w) => self.open_session_channel_with_window(&operation, w).await?,
            None => self.open_session_channel(&operation).await?,
        };
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.op_error(&operation, e))?;
        let (read, write) = channel.split();
        Ok(RemoteCommand {
            session: self.clone(),
            operation,
            read,
            write,
            status: None,
            done: false,
        })
    }

    /// Run `command` to the end and return all of its output and its exit status.
    ///
    /// A non-zero exit is not an error: look at [`ExecOutput::status`].
    pub async fn exec(&self, command: &str) -> Result<ExecOutput> {
        self.exec_with_input(command, &[], COLLECT_LIMIT).await
    }

    /// Run `command` with `input` as its standard input, then EOF, and
    /// return its output (at most `limit` bytes, stdout and stderr together)
    /// and exit status. The way to hand a command a secret or a payload:
    /// a command line is visible to every user of the machine.
    ///
    /// A non-zero exit is not an error: look at [`ExecOutput::status`].
    ///
    /// All of `input` is sent before any output is read, so a command that
    /// prints more than the channel's window
    /// ([`Config::window_size`](super::Config::window_size)) before
    /// it has read its input would wait for ever; stream such a command with
    /// [`Session::spawn`].
    ///
    /// # Errors
    /// As for [`Session::spawn`] and [`RemoteCommand::collect`].
    pub async fn exec_with_input(
        &self,
        command: &str,
        input: &[u8],
        limit: usize,
    ) -> Result<ExecOutput> {
        let cmd = self.spawn(command).await?;
        // In pieces, so no one message holds the whole payload twice.
        for chunk in input.chunks(256 * 1024) {
            cmd.write_stdin(chunk).await?;
        }
        cmd.close_stdin().await?;
        cmd.collect_limited(limit).await
    }
}

fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().count() <= max {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("{}…", s.chars().take(max).collect::<String>()))
    }
}

use std::borrow::Cow;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_codes_follow_the_shell_convention() {
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        let killed = ExitStatus::Signal {
            name: "KILL".into(),
            core_dumped: false,
            message: String::new(),
        };
        assert_eq!(killed.shell_code(), 137);
        assert!(!killed.success());
        assert_eq!(killed.to_string(), "killed by signal KILL");
        assert_eq!(sig_name(&sig_from_name("SIGTERM")), "TERM");
        assert_eq!(sig_name(&sig_from_name("WINCH")), "WINCH");
    }

    #[test]
    fn long_commands_are_shortened_in_messages() {
        assert_eq!(truncate("ls", 60), "ls");
        assert_eq!(truncate(&"x".repeat(70), 60).chars().count(), 61);
    }
}
