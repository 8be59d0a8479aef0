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
//! # Overview
//!
//! [`Session::sftp`] opens an [`Sftp`], which offers three kinds of call:
//!
//! - **One request on a remote path**, much like [`std::fs`]:
//!   [`metadata`](Sftp::metadata), [`exists`](Sftp::exists),
//!   [`read_dir`](Sftp::read_dir), [`mkdir_p`](Sftp::mkdir_p),
//!   [`rename`](Sftp::rename), [`remove_file`](Sftp::remove_file),
//!   [`symlink`](Sftp::symlink), [`set_permissions`](Sftp::set_permissions)
//!   and the like.
//! - **One file** up or down: [`upload_file`](Sftp::upload_file),
//!   [`download_file`](Sftp::download_file).
//! - **A directory tree** up or down: [`upload_dir`](Sftp::upload_dir),
//!   [`download_dir`](Sftp::download_dir), which return a
//!   [`TransferSummary`].
//!
//! Transfers take [`TransferOptions`]: whether to keep modes and times, a
//! [`Progress`] callback, and the pipelining limits. The defaults are the
//! ones measured in `docs/performance.md` (faster than OpenSSH's `sftp` in
//! every run, a few MiB of memory whatever the file size).
//!
//! # Paths
//!
//! Remote paths are `&str` with `/` separators, whatever the local platform.
//! The server resolves relative ones, against the login directory for
//! OpenSSH (the user's home). Local paths are anything `AsRef<Path>`.
//!
//! # Errors
//!
//! Every call returns the SSH layer's [`Error`]: [`Error::Sftp`] names the
//! operation, the remote path and the server's reason ("No such file",
//! "Permission denied"); [`Error::LocalIo`] names the local path and the OS
//! error; [`Error::ConnectionLost`] says the connection went away during the
//! call. [`Hint::hint`](crate::Hint::hint) has advice for the user where there is some.
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
//!
//! Runnable program: `examples/upload.rs` (a file or a tree, with progress).
//!
//! # Runtime
//!
//! Any tokio runtime works; file reads and writes go to tokio's blocking
//! pool either way. A current-thread runtime
//! (`#[tokio::main(flavor = "current_thread")]`), which the `spuff` binary
//! uses, spent 10-15% less CPU per copy than the default of a worker per
//! core in our measurements: one SSH session decrypts on one task, and
//! handing its replies between threads costs more than it gains
//! (docs/performance.md).

mod metadata;
mod remote_fs;
mod stream;
mod transfer;
mod tree;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::ChannelMsg;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::StatusCode;

pub use metadata::{DirEntry, FileType, Metadata};
pub use remote_fs::MAX_DIR_ENTRIES;
pub use transfer::{Progress, ProgressFn, TransferOptions};
pub use tree::MAX_TREE_ENTRIES;
pub use tree::TransferSummary;

use crate::ssh::{Error, Result, Session};

/// Chunk size every SFTP server must accept (draft-ietf-secsh-filexfer-02).
const DEFAULT_CHUNK: u32 = 32 * 1024;
/// OpenSSH's largest read/write (256 KiB message minus headroom), and our cap:
/// larger requests buy nothing once enough of them are in flight.
const MAX_CHUNK: u32 = 255 * 1024;
/// Largest packet we accept from the server: a full `MAX_CHUNK` DATA reply plus headers.
const MAX_PACKET: u32 = 256 * 1024 + 8 * 1024;
/// How long one request may wait for its reply, unless
/// [`Sftp::set_request_timeout`] says otherwise. Generous because with many
/// requests queued on a slow link the last one waits for all the others;
/// a dead connection is caught sooner by SSH keepalives.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An SFTP session on an SSH connection. Clone it freely: clones share one
/// channel, and transfers on clones run at the same time.
///
/// Made by [`Session::sftp`]. It holds a clone of its [`Session`], so the
/// connection stays up while the `Sftp` is in use. Calls on one `Sftp` (or
/// on its clones) may run at the same time: each request waits only for its
/// own reply.
///
/// # Examples
///
/// Upload a build and a config file at the same time on one channel:
///
/// ```no_run
/// use spuff::sftp::TransferOptions;
/// # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
/// let sftp = session.sftp().await?;
/// let opts = TransferOptions::default();
/// let (app, conf) = tokio::join!(
///     sftp.upload_file("target/release/app", "app", &opts),
///     sftp.upload_file("app.toml", "app.toml", &opts),
/// );
/// println!("sent {} bytes", app? + conf?);
/// # Ok(()) }
/// ```
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
    /// The request timeout in seconds, for error messages (russh-sftp
    /// keeps its own copy).
    timeout_secs: AtomicU64,
    /// Set once a stream command found the server without the GNU tools:
    /// later copies go straight to SFTP.
    lacks_stream_tools: std::sync::atomic::AtomicBool,
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
    /// One [`Sftp`] is enough for any number of concurrent transfers; open
    /// more only to isolate them (a channel's requests share its flow
    /// control window). The chunk size is settled here: the largest the
    /// server advertises through `limits@openssh.com` (255 KiB for
    /// OpenSSH), 32 KiB when it does not say.
    ///
    /// # Errors
    /// [`Error::ChannelRefused`] when the server has no SFTP subsystem,
    /// [`Error::ConnectionLost`] when the connection drops,
    /// [`Error::Sftp`] when the server does not speak SFTP version 3.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
    /// let sftp = session.sftp().await?;
    /// for entry in sftp.read_dir(".").await? {
    ///     println!("{:>10} {}", entry.metadata.size, entry.name);
    /// }
    /// # Ok(()) }
    /// ```
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
            .map_err(|e| raw_error(self, "init", "", REQUEST_TIMEOUT.as_secs(), e))?;
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
                timeout_secs: AtomicU64::new(REQUEST_TIMEOUT.as_secs()),
                lacks_stream_tools: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

impl Sftp {
    /// The connection this SFTP session runs on.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Our error for a failed request of this session on `path`.
    /// How long one request may wait for its reply before it fails with
    /// [`Error::Sftp`] ("no reply from the server within …"): the bound on
    /// a server that stalls in the middle of a transfer. Two minutes by
    /// default, since with many requests queued on a slow link the last
    /// one waits for all the others. Whole seconds; at least one. Applies
    /// to requests sent after the call, on every clone of this `Sftp`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// sftp.set_request_timeout(std::time::Duration::from_secs(15));
    /// let text = sftp.read_dir("/var/log").await?;
    /// # Ok(()) }
    /// ```
    pub fn set_request_timeout(&self, timeout: Duration) {
        let secs = timeout.as_secs().max(1);
        self.inner.timeout_secs.store(secs, Ordering::Relaxed);
        self.inner.raw.set_timeout(secs);
    }

    fn err(&self, operation: &'static str, path: &str, e: RawError) -> Error {
        let secs = self.inner.timeout_secs.load(Ordering::Relaxed);
        raw_error(&self.inner.session, operation, path, secs, e)
    }

    fn raw(&self) -> &RawSftpSession {
        &self.inner.raw
    }
}

/// Our error for a failed SFTP request on `path`.
fn raw_error(
    session: &Session,
    operation: &'static str,
    path: &str,
    timeout_secs: u64,
    e: RawError,
) -> Error {
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
            "no reply from the server within {timeout_secs}s (a stalled or overloaded VM)"
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

/// A `map_err` adapter: our error for a failed local `operation` on `path`.
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

/// Whether the server answered with status `code` (EOF, no such file, …).
fn is_status(e: &RawError, code: StatusCode) -> bool {
    matches!(e, RawError::Status(s) if s.status_code == code)
}

/// Our error for a remote path that should be a directory and is not.
fn not_a_dir(operation: &'static str, path: &str) -> Error {
    Error::Sftp {
        operation,
        path: path.to_string(),
        message: "exists and is not a directory".into(),
    }
}
