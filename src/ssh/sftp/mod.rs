//! SFTP: files and whole trees to and from the VM, fast and with bounded memory.
//!
//! spuff copies projects, dotfiles and build outputs over the same SSH
//! connection it uses for everything else, so it cannot shell out to `scp`.
//! SFTP is one request, one reply: waiting for each reply before sending the
//! next request caps throughput at one chunk per round trip. Here every
//! transfer keeps many READ or WRITE requests outstanding on one
//! [`RawSftpSession`] (its methods take `&self`), so a link is kept busy while
//! memory stays near `chunk size × requests in flight`.
//!
//! Uploads are atomic: data goes to a hidden temporary file next to the target
//! and is renamed over it only once complete, so a reader on the VM never sees
//! half a file and a failed upload leaves the old file as it was. Downloads do
//! the same on the local side.
//!
//! # Examples
//!
//! ```no_run
//! use spuff::sftp::TransferOptions;
//! # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
//! let sftp = session.sftp().await?;
//! sftp.mkdir_p("/srv/app").await?;
//! sftp.upload_file("target/app", "/srv/app/app", &TransferOptions::default()).await?;
//! sftp.download_dir("/var/log/app", "logs", &TransferOptions::default()).await?;
//! # Ok(()) }
//! ```

mod metadata;
mod remote_fs;
mod transfer;
mod tree;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::StatusCode;

pub use metadata::{DirEntry, FileType, Metadata};
pub use transfer::{Progress, ProgressFn, TransferOptions};
pub use tree::TransferSummary;

use crate::ssh::{Error, Result, Session};

/// Chunk size every SFTP server must accept (draft-ietf-secsh-filexfer-02).
const DEFAULT_CHUNK: u32 = 32 * 1024;
/// OpenSSH's largest read/write (256 KiB message minus headroom), and our cap:
/// larger requests buy nothing once enough of them are in flight.
const MAX_CHUNK: u32 = 255 * 1024;
/// Largest packet we accept from the server: a full `MAX_CHUNK` DATA reply plus headers.
const MAX_PACKET: u32 = 256 * 1024 + 8 * 1024;
/// How long one request may wait for its reply. Generous because with many
/// requests queued on a slow link the last one waits for all the others;
/// a dead connection is caught sooner by SSH keepalives.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An SFTP session on an SSH connection. Clone it freely: clones share one
/// channel, and transfers on clones run at the same time.
#[derive(Clone)]
pub struct Sftp {
    inner: Arc<Inner>,
}

struct Inner {
    raw: RawSftpSession,
    session: Session,
    read_len: u32,
    write_len: u32,
    posix_rename: bool,
}

impl std::fmt::Debug for Sftp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sftp")
            .field("session", &self.inner.session)
            .field("read_len", &self.inner.read_len)
            .field("write_len", &self.inner.write_len)
            .field("posix_rename", &self.inner.posix_rename)
            .finish()
    }
}

impl Session {
    /// Start the SFTP subsystem on a new channel of this connection.
    ///
    /// # Errors
    /// [`Error::ChannelRefused`] when the server has no SFTP subsystem,
    /// [`Error::ConnectionLost`] when the connection drops,
    /// [`Error::Sftp`] when the server does not speak SFTP version 3.
    pub async fn sftp(&self) -> Result<Sftp> {
        const OP: &str = "sftp";
        let mut channel = self.open_session_channel(OP).await?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| self.op_error(OP, e))?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(Error::ChannelRefused {
                        host: self.host().to_string(),
                        port: self.port(),
                        operation: "sftp subsystem".into(),
                        reason:
                            "the server has no sftp subsystem (see `Subsystem sftp` in sshd_config)"
                                .into(),
                    });
                }
                Some(ChannelMsg::Close) | None => return Err(self.lost(OP)),
                Some(_) => {}
            }
        }
        let config = russh_sftp::client::Config {
            max_packet_len: MAX_PACKET,
            request_timeout_secs: REQUEST_TIMEOUT.as_secs(),
            ..Default::default()
        };
        let raw = RawSftpSession::new_with_config(channel.into_stream(), config);
        let version = raw
            .init()
            .await
            .map_err(|e| raw_error(self, "init", "", e))?;
        let has = |name: &str| version.extensions.contains_key(name);
        let (mut read_len, mut write_len) = (DEFAULT_CHUNK, DEFAULT_CHUNK);
        if has("limits@openssh.com") {
            match raw.limits().await {
                Ok(l) => {
                    let pick = |v: u64| {
                        if v == 0 {
                            MAX_CHUNK
                        } else {
                            v.min(u64::from(MAX_CHUNK)) as u32
                        }
                    };
                    read_len = pick(l.max_read_len);
                    write_len = pick(l.max_write_len);
                }
                Err(e) => {
                    tracing::debug!("sftp limits@openssh.com failed, using 32 KiB chunks: {e}")
                }
            }
        }
        tracing::debug!(
            version = version.version,
            read_len,
            write_len,
            extensions = ?version.extensions.keys().collect::<Vec<_>>(),
            "sftp session started"
        );
        Ok(Sftp {
            inner: Arc::new(Inner {
                raw,
                session: self.clone(),
                read_len,
                write_len,
                posix_rename: has("posix-rename@openssh.com"),
            }),
        })
    }
}

impl Sftp {
    /// The connection this SFTP session runs on.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    fn err(&self, operation: &'static str, path: &str, e: RawError) -> Error {
        raw_error(&self.inner.session, operation, path, e)
    }

    fn raw(&self) -> &RawSftpSession {
        &self.inner.raw
    }
}

/// Our error for a failed SFTP request on `path`.
fn raw_error(session: &Session, operation: &'static str, path: &str, e: RawError) -> Error {
    let sftp = |message: String| Error::Sftp {
        operation,
        path: path.to_string(),
        message,
    };
    match e {
        RawError::Status(s) if s.error_message.trim().is_empty() => sftp(s.status_code.to_string()),
        RawError::Status(s) => sftp(s.error_message),
        _ if session.is_closed() => session.lost(&format!("sftp {operation} {path}")),
        RawError::Timeout => sftp(format!(
            "no reply from the server within {}s",
            REQUEST_TIMEOUT.as_secs()
        )),
        // The channel's reader or writer stopped: the server closed the
        // channel or the connection is going down.
        RawError::UnexpectedBehavior(m)
            if m.contains("closed") || m.contains("dropped") || m.contains("SendError") =>
        {
            session.lost(&format!("sftp {operation} {path}"))
        }
        other => sftp(other.to_string()),
    }
}

fn local_err<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::LocalIo {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

fn is_status(e: &RawError, code: StatusCode) -> bool {
    matches!(e, RawError::Status(s) if s.status_code == code)
}

fn not_a_dir(operation: &'static str, path: &str) -> Error {
    Error::Sftp {
        operation,
        path: path.to_string(),
        message: "exists and is not a directory".into(),
    }
}
