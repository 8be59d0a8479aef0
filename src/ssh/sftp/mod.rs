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

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use russh::ChannelMsg;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
/// Most bytes requested and not yet answered, per call. Beyond the SSH
/// channel window the server just waits, and queued replies cost memory.
const MAX_BYTES_IN_FLIGHT: u32 = 4 * 1024 * 1024;
/// Files moved at the same time in tree transfers: small files are dominated
/// by round trips (open, close, setstat, rename), which overlap this way.
const FILES_AT_ONCE: usize = 4;

/// Called as a transfer moves forward.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Where a transfer stands. Counts cover the whole call: for a tree, all files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Remote path of the file that just moved forward.
    pub path: String,
    /// Bytes transferred so far.
    pub bytes_done: u64,
    /// Bytes to transfer in all (sizes when the transfer started).
    pub bytes_total: u64,
    /// Files completed so far.
    pub files_done: u64,
    /// Files to transfer in all.
    pub files_total: u64,
}

/// How to transfer files.
#[derive(Clone)]
pub struct TransferOptions {
    /// Keep permission bits and modification times (true).
    pub preserve: bool,
    /// Called each time a chunk completes and each time a file completes;
    /// keep it quick, it runs on the transfer's task.
    pub progress: Option<ProgressFn>,
    /// Most READ/WRITE requests outstanding at once, across all files of the
    /// call (64). Memory use is about this times the chunk size. Further
    /// capped so that at most 4 MiB is outstanding: more only overflows the
    /// SSH channel window and was measured to slow downloads down.
    pub max_in_flight: usize,
    /// Bytes per request. `None`: the largest the server allows (OpenSSH
    /// advertises 255 KiB), or 32 KiB when it does not say. Capped to that.
    pub chunk_size: Option<u32>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            preserve: true,
            progress: None,
            max_in_flight: 64,
            chunk_size: None,
        }
    }
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("preserve", &self.preserve)
            .field("progress", &self.progress.is_some())
            .field("max_in_flight", &self.max_in_flight)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

/// What a tree transfer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferSummary {
    /// Regular files copied.
    pub files: u64,
    /// Directories created or updated, the top one included.
    pub dirs: u64,
    /// Symbolic links recreated.
    pub symlinks: u64,
    /// Entries skipped (special files; symlinks where they cannot be made),
    /// each with a `tracing` warning.
    pub skipped: u64,
    /// Bytes of file data copied.
    pub bytes: u64,
}

/// Kind of a remote file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only from [`Sftp::symlink_metadata`] and [`Sftp::read_dir`]).
    Symlink,
    /// A device, socket or FIFO, or the server did not say.
    Other,
}

/// Attributes of a remote file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Size in bytes.
    pub size: u64,
    /// Unix mode: type and permission bits (`0o100644`).
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// What kind of file it is.
    pub file_type: FileType,
}

impl Metadata {
    fn from_attrs(a: &FileAttributes) -> Metadata {
        let mode = a.permissions.unwrap_or(0);
        let file_type = match mode & 0o170_000 {
            0o040_000 => FileType::Dir,
            0o100_000 => FileType::File,
            0o120_000 => FileType::Symlink,
            _ => FileType::Other,
        };
        Metadata {
            size: a.size.unwrap_or(0),
            mode,
            mtime: u64::from(a.mtime.unwrap_or(0)),
            file_type,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Dir
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type == FileType::File
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type == FileType::Symlink
    }

    /// Permission bits only (`0o644`), setuid/setgid/sticky included.
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Modification time.
    pub fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.mtime)
    }
}

/// One entry of a remote directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name within the directory.
    pub name: String,
    /// Full remote path.
    pub path: String,
    /// Its attributes, not following symlinks.
    pub metadata: Metadata,
}

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

/// Shared state of one public call: progress counters and the in-flight budget.
struct Transfer<'a> {
    opts: &'a TransferOptions,
    permits: Arc<Semaphore>,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: u64,
}

impl<'a> Transfer<'a> {
    fn new(opts: &'a TransferOptions, chunk: u32, bytes_total: u64, files_total: u64) -> Self {
        let by_bytes = (MAX_BYTES_IN_FLIGHT / chunk.max(1)).max(4) as usize;
        Transfer {
            opts,
            permits: Arc::new(Semaphore::new(opts.max_in_flight.clamp(1, by_bytes))),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(bytes_total),
            files_done: AtomicU64::new(0),
            files_total,
        }
    }

    fn report(&self, path: &str, bytes: u64, file_done: bool) {
        let bytes_done = self.bytes_done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let files_done = self
            .files_done
            .fetch_add(u64::from(file_done), Ordering::Relaxed)
            + u64::from(file_done);
        // A file that grew while we copied it must not push done past total.
        let bytes_total = self
            .bytes_total
            .fetch_max(bytes_done, Ordering::Relaxed)
            .max(bytes_done);
        if let Some(p) = &self.opts.progress {
            p(Progress {
                path: path.to_string(),
                bytes_done,
                bytes_total,
                files_done,
                files_total: self.files_total,
            });
        }
    }

    /// A permit for one more request: at once if one is free, `None` if this
    /// file should first wait for one of its own requests, else when another
    /// file's request completes.
    async fn permit(&self, own_in_flight: usize) -> Option<OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if own_in_flight > 0 => None,
            // The semaphore is never closed, so this only fails in theory.
            Err(_) => self.permits.clone().acquire_owned().await.ok(),
        }
    }
}

/// Local attributes carried to the remote side.
#[derive(Debug, Clone, Copy)]
struct LocalAttrs {
    size: u64,
    mode: u32,
    atime: u32,
    mtime: u32,
}

impl LocalAttrs {
    fn of(meta: &std::fs::Metadata) -> LocalAttrs {
        let secs = |t: std::io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        };
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
        #[cfg(not(unix))]
        let mode = match (meta.is_dir(), meta.permissions().readonly()) {
            (true, _) => 0o755,
            (false, true) => 0o444,
            (false, false) => 0o644,
        };
        let mtime = secs(meta.modified());
        LocalAttrs {
            size: meta.len(),
            mode,
            atime: match secs(meta.accessed()) {
                0 => mtime,
                a => a,
            },
            mtime,
        }
    }

    fn sftp_attrs(&self) -> FileAttributes {
        FileAttributes {
            permissions: Some(self.mode),
            atime: Some(self.atime),
            mtime: Some(self.mtime),
            ..Default::default()
        }
    }
}

/// `dir/name` for remote paths, which always use `/`.
fn join_remote(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Directory and file name of a remote path.
fn split_remote(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", trimmed),
    }
}

/// A name nobody else will pick, without a random-number crate: std's
/// `RandomState` is seeded randomly per process, and the counter and clock
/// separate calls within one.
fn random_suffix() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = std::collections::hash_map::RandomState::new().hash_one((n, now, std::process::id()));
    format!("{h:016x}")
}

/// `.name.spuff-tmp-<random>`, short enough for 255-byte name limits.
fn temp_file_name(name: &str) -> String {
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.spuff-tmp-{}", &name[..end], random_suffix())
}

/// Encode an SFTP `string`.
fn put_string(buf: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
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

    fn chunk(&self, opts: &TransferOptions, server_max: u32) -> u32 {
        opts.chunk_size
            .map_or(server_max, |c| c.clamp(512, server_max))
    }

    fn max_chunk(&self, opts: &TransferOptions) -> u32 {
        self.chunk(opts, self.inner.read_len.max(self.inner.write_len))
    }

    /// Attributes of `path`, following symlinks.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason ("No such file").
    pub async fn metadata(&self, path: &str) -> Result<Metadata> {
        let a = self
            .raw()
            .stat(path)
            .await
            .map_err(|e| self.err("stat", path, e))?;
        Ok(Metadata::from_attrs(&a.attrs))
    }

    /// Same as [`Sftp::metadata`].
    pub async fn stat(&self, path: &str) -> Result<Metadata> {
        self.metadata(path).await
    }

    /// Attributes of `path` itself, not following a symlink.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn symlink_metadata(&self, path: &str) -> Result<Metadata> {
        let a = self
            .raw()
            .lstat(path)
            .await
            .map_err(|e| self.err("lstat", path, e))?;
        Ok(Metadata::from_attrs(&a.attrs))
    }

    /// Whether `path` exists (a dangling symlink counts).
    ///
    /// # Errors
    /// [`Error::Sftp`] for failures other than "no such file".
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.raw().lstat(path).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(false),
            Err(e) => Err(self.err("lstat", path, e)),
        }
    }

    /// Create `path` and any missing parents, like `mkdir -p`. Existing
    /// directories are fine; an existing non-directory is an error.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the component that could not be created.
    pub async fn mkdir_p(&self, path: &str) -> Result<()> {
        if let Ok(a) = self.raw().stat(path).await
            && Metadata::from_attrs(&a.attrs).is_dir()
        {
            return Ok(());
        }
        let mut current = if path.starts_with('/') {
            "/".to_string()
        } else {
            String::new()
        };
        let mut missing = false;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            current = join_remote(&current, part);
            if !missing {
                match self.raw().stat(current.as_str()).await {
                    Ok(a) if Metadata::from_attrs(&a.attrs).is_dir() => continue,
                    Ok(_) => return Err(not_a_dir("mkdir", &current)),
                    Err(e) if is_status(&e, StatusCode::NoSuchFile) => missing = true,
                    Err(e) => return Err(self.err("mkdir", &current, e)),
                }
            }
            self.mkdir_if_missing(&current, None).await?;
        }
        Ok(())
    }

    /// `mkdir`, accepting a directory that is already there (or was just
    /// made by someone else).
    async fn mkdir_if_missing(&self, path: &str, mode: Option<u32>) -> Result<()> {
        let attrs = FileAttributes {
            permissions: mode,
            ..Default::default()
        };
        match self.raw().mkdir(path, attrs).await {
            Ok(_) => Ok(()),
            Err(e) => match self.raw().stat(path).await {
                Ok(a) if Metadata::from_attrs(&a.attrs).is_dir() => Ok(()),
                Ok(_) => Err(not_a_dir("mkdir", path)),
                Err(_) => Err(self.err("mkdir", path, e)),
            },
        }
    }

    /// Create one directory; its parent must exist.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn create_dir(&self, path: &str) -> Result<()> {
        self.raw()
            .mkdir(path, FileAttributes::default())
            .await
            .map(drop)
            .map_err(|e| self.err("mkdir", path, e))
    }

    /// Remove an empty directory.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn remove_dir(&self, path: &str) -> Result<()> {
        self.raw()
            .rmdir(path)
            .await
            .map(drop)
            .map_err(|e| self.err("rmdir", path, e))
    }

    /// Remove a file or symlink.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn remove_file(&self, path: &str) -> Result<()> {
        self.raw()
            .remove(path)
            .await
            .map(drop)
            .map_err(|e| self.err("remove", path, e))
    }

    /// Rename `from` to `to`, replacing `to` if it exists. Atomic when the
    /// server has `posix-rename@openssh.com` (OpenSSH does); otherwise `to`
    /// is removed first.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming `from` and the server's reason.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.replace(from, to)
            .await
            .map_err(|e| self.err("rename", from, e))
    }

    async fn replace(&self, from: &str, to: &str) -> Result<(), RawError> {
        if self.inner.posix_rename {
            let mut data = Vec::with_capacity(from.len() + to.len() + 8);
            put_string(&mut data, from);
            put_string(&mut data, to);
            return match self
                .raw()
                .extended("posix-rename@openssh.com", data)
                .await?
            {
                Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
                Packet::Status(s) => Err(RawError::Status(s)),
                _ => Err(RawError::UnexpectedPacket),
            };
        }
        match self.raw().rename(from, to).await {
            Ok(_) => Ok(()),
            Err(first) => {
                // SFTPv3 rename refuses to replace; make room and try once more.
                if self.raw().remove(to).await.is_err() {
                    return Err(first);
                }
                self.raw().rename(from, to).await.map(drop)
            }
        }
    }

    /// Where the symlink at `path` points.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn read_link(&self, path: &str) -> Result<String> {
        let name = self
            .raw()
            .readlink(path)
            .await
            .map_err(|e| self.err("readlink", path, e))?;
        name.files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .ok_or_else(|| Error::Sftp {
                operation: "readlink",
                path: path.to_string(),
                message: "the server returned no target".into(),
            })
    }

    /// Create a symlink at `link` pointing to `target`.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the link and the server's reason.
    pub async fn symlink(&self, target: &str, link: &str) -> Result<()> {
        // OpenSSH sends and expects SSH_FXP_SYMLINK's two paths in the
        // reverse of the draft's order (target first), and russh-sftp writes
        // them in its fields' order: hand them over swapped.
        self.raw()
            .symlink(target, link)
            .await
            .map(drop)
            .map_err(|e| self.err("symlink", link, e))
    }

    /// Set the permission bits of `path`.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn set_permissions(&self, path: &str, mode: u32) -> Result<()> {
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..Default::default()
        };
        self.raw()
            .setstat(path, attrs)
            .await
            .map(drop)
            .map_err(|e| self.err("setstat", path, e))
    }

    /// The entries of a remote directory, without `.` and `..`, sorted by name.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason.
    pub async fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let handle = self
            .raw()
            .opendir(path)
            .await
            .map_err(|e| self.err("opendir", path, e))?
            .handle;
        let mut out = Vec::new();
        let result = loop {
            match self.raw().readdir(handle.as_str()).await {
                Ok(name) => {
                    for f in name.files {
                        if f.filename == "." || f.filename == ".." {
                            continue;
                        }
                        out.push(DirEntry {
                            path: join_remote(path, &f.filename),
                            metadata: Metadata::from_attrs(&f.attrs),
                            name: f.filename,
                        });
                    }
                }
                Err(e) if is_status(&e, StatusCode::Eof) => break Ok(()),
                Err(e) => break Err(self.err("readdir", path, e)),
            }
        };
        let _ = self.raw().close(handle).await;
        result?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Upload one file, atomically: the data goes to a temporary file next to
    /// `remote`, which is renamed over `remote` once complete. With
    /// `opts.preserve` the local mode and mtime are kept; otherwise an existing
    /// target keeps its mode and a new one gets `0644`.
    ///
    /// Returns the number of bytes sent.
    ///
    /// # Errors
    /// [`Error::LocalIo`] when `local` cannot be read, [`Error::Sftp`] naming
    /// `remote` and the server's reason, [`Error::ConnectionLost`]. On error
    /// the temporary file is removed and `remote` is untouched.
    pub async fn upload_file(
        &self,
        local: impl AsRef<Path>,
        remote: &str,
        opts: &TransferOptions,
    ) -> Result<u64> {
        let local = local.as_ref();
        let meta = tokio::fs::metadata(local)
            .await
            .map_err(local_err("stat", local))?;
        if !meta.is_file() {
            return Err(Error::LocalIo {
                operation: "upload",
                path: local.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        let attrs = LocalAttrs::of(&meta);
        let t = Transfer::new(opts, self.max_chunk(opts), attrs.size, 1);
        self.upload_one(local, remote, attrs, &t).await
    }

    async fn upload_one(
        &self,
        local: &Path,
        remote: &str,
        attrs: LocalAttrs,
        t: &Transfer<'_>,
    ) -> Result<u64> {
        let raw = self.raw();
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(local_err("open", local))?;
        let final_attrs = if t.opts.preserve {
            attrs.sftp_attrs()
        } else {
            let mode = match raw.stat(remote).await {
                Ok(a) => a.attrs.permissions.map_or(0o644, |m| m & 0o7777),
                Err(_) => 0o644,
            };
            FileAttributes {
                permissions: Some(mode),
                ..Default::default()
            }
        };
        let (dir, name) = split_remote(remote);
        let tmp = join_remote(dir, &temp_file_name(name));
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::EXCLUDE;
        // Private until complete; the final mode is set before the rename.
        let open_attrs = FileAttributes {
            permissions: Some(0o600),
            ..Default::default()
        };
        let handle = raw
            .open(tmp.as_str(), flags, open_attrs)
            .await
            .map_err(|e| self.err("open", remote, e))?
            .handle;
        let written = self
            .write_chunks(&handle, &mut file, local, remote, t)
            .await;
        // Close even after a failure so the server frees the handle; its
        // status matters only on success (it can report a failed flush).
        let closed = raw.close(handle).await;
        let result = match (written, closed) {
            (Ok(n), Ok(_)) => self
                .finish_upload(&tmp, remote, final_attrs)
                .await
                .map(|()| n),
            (Ok(_), Err(e)) => Err(self.err("close", remote, e)),
            (Err(e), _) => Err(e),
        };
        if result.is_err() && !self.inner.session.is_closed() {
            let _ = raw.remove(tmp.as_str()).await;
        }
        if let Ok(n) = result {
            t.report(remote, 0, true);
            tracing::debug!(local = %local.display(), remote, bytes = n, "uploaded");
        }
        result
    }

    async fn finish_upload(&self, tmp: &str, remote: &str, attrs: FileAttributes) -> Result<()> {
        self.raw()
            .setstat(tmp, attrs)
            .await
            .map_err(|e| self.err("setstat", remote, e))?;
        self.replace(tmp, remote)
            .await
            .map_err(|e| self.err("rename", remote, e))
    }

    /// The upload pipeline: read the local file in order, keep up to the
    /// in-flight budget of WRITEs outstanding, stop at the first failure.
    async fn write_chunks(
        &self,
        handle: &str,
        file: &mut tokio::fs::File,
        local: &Path,
        remote: &str,
        t: &Transfer<'_>,
    ) -> Result<u64> {
        let raw = self.raw();
        let chunk = self.chunk(t.opts, self.inner.write_len) as usize;
        let mut offset = 0u64;
        let mut eof = false;
        let mut in_flight = FuturesUnordered::new();
        loop {
            while !eof {
                let Some(permit) = t.permit(in_flight.len()).await else {
                    break;
                };
                let mut buf = vec![0u8; chunk];
                let n = read_full(file, &mut buf)
                    .await
                    .map_err(local_err("read", local))?;
                if n < chunk {
                    eof = true;
                }
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                let at = offset;
                offset += n as u64;
                let handle = handle.to_string();
                in_flight.push(async move {
                    let r = raw.write(handle, at, buf).await;
                    drop(permit);
                    (n as u64, r)
                });
            }
            match in_flight.next().await {
                None => return Ok(offset),
                Some((n, Ok(_))) => t.report(remote, n, false),
                Some((_, Err(e))) => return Err(self.err("write", remote, e)),
            }
        }
    }

    /// Download one file, atomically on the local side: the data goes to a
    /// temporary file next to `local`, renamed over it once complete. With
    /// `opts.preserve` the remote mode and mtime are kept.
    ///
    /// Returns the number of bytes received.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming `remote` and the server's reason ("No such
    /// file"), [`Error::LocalIo`] when `local` cannot be written,
    /// [`Error::ConnectionLost`]. On error `local` is untouched.
    pub async fn download_file(
        &self,
        remote: &str,
        local: impl AsRef<Path>,
        opts: &TransferOptions,
    ) -> Result<u64> {
        let t = Transfer::new(opts, self.max_chunk(opts), 0, 1);
        self.download_one(remote, local.as_ref(), &t, true).await
    }

    async fn download_one(
        &self,
        remote: &str,
        local: &Path,
        t: &Transfer<'_>,
        add_total: bool,
    ) -> Result<u64> {
        let raw = self.raw();
        let handle = raw
            .open(remote, OpenFlags::READ, FileAttributes::default())
            .await
            .map_err(|e| self.err("open", remote, e))?
            .handle;
        let result = self
            .download_open(&handle, remote, local, t, add_total)
            .await;
        let _ = raw.close(handle).await;
        if let Ok(n) = result {
            t.report(remote, 0, true);
            tracing::debug!(remote, local = %local.display(), bytes = n, "downloaded");
        }
        result
    }

    async fn download_open(
        &self,
        handle: &str,
        remote: &str,
        local: &Path,
        t: &Transfer<'_>,
        add_total: bool,
    ) -> Result<u64> {
        let attrs = self
            .raw()
            .fstat(handle)
            .await
            .map_err(|e| self.err("fstat", remote, e))?
            .attrs;
        let meta = Metadata::from_attrs(&attrs);
        if meta.is_dir() {
            return Err(Error::Sftp {
                operation: "download",
                path: remote.to_string(),
                message: "is a directory (use download_dir)".into(),
            });
        }
        if add_total {
            t.bytes_total.fetch_add(meta.size, Ordering::Relaxed);
        }
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = local.with_file_name(temp_file_name(&name));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(local_err("create", local))?;
        // Only regular files report a trustworthy size; others, and empty
        // files (which may be /proc-like), are read to EOF.
        let size = (meta.is_file() && meta.size > 0).then_some(meta.size);
        let result = async {
            let n = self
                .read_chunks(handle, remote, &mut file, local, size, t)
                .await?;
            file.flush().await.map_err(local_err("write", local))?;
            let std_file = file.into_std().await;
            if t.opts.preserve {
                set_local_attrs(&std_file, &tmp, &meta)
                    .map_err(local_err("set attributes of", local))?;
            }
            drop(std_file);
            std::fs::rename(&tmp, local).map_err(local_err("rename", local))?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// The download pipeline: READs at increasing offsets, up to the in-flight
    /// budget; replies written to the local file in order through a small
    /// reorder buffer (its chunks keep their permits, so memory stays
    /// bounded); short reads re-request the rest.
    async fn read_chunks(
        &self,
        handle: &str,
        remote: &str,
        file: &mut tokio::fs::File,
        local: &Path,
        size: Option<u64>,
        t: &Transfer<'_>,
    ) -> Result<u64> {
        let raw = self.raw();
        let chunk = self.chunk(t.opts, self.inner.read_len);
        let mut next = 0u64;
        let mut retry: VecDeque<(u64, u32, Option<OwnedSemaphorePermit>)> = VecDeque::new();
        let mut eof_at: Option<u64> = None;
        let mut written = 0u64;
        let mut reorder: BTreeMap<u64, (Vec<u8>, Option<OwnedSemaphorePermit>)> = BTreeMap::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            loop {
                let (at, len, permit) = if let Some(r) = retry.pop_front() {
                    r
                } else {
                    let more = match (eof_at, size) {
                        (Some(_), _) => false,
                        (None, Some(s)) => next < s,
                        // Unknown size: one read past what we have at a time.
                        (None, None) => in_flight.is_empty(),
                    };
                    if !more {
                        break;
                    }
                    let Some(permit) = t.permit(in_flight.len() + reorder.len()).await else {
                        break;
                    };
                    let len = size.map_or(chunk, |s| (s - next).min(u64::from(chunk)) as u32);
                    let r = (next, len, Some(permit));
                    next += u64::from(len);
                    r
                };
                if eof_at.is_some_and(|e| at >= e) {
                    continue;
                }
                let handle = handle.to_string();
                in_flight.push(async move {
                    let r = raw.read(handle, at, len).await;
                    (at, len, permit, r)
                });
            }
            let Some((at, len, permit, reply)) = in_flight.next().await else {
                break;
            };
            let data = match reply {
                Ok(d) => d.data,
                Err(e) if is_status(&e, StatusCode::Eof) => {
                    eof_at = Some(eof_at.map_or(at, |x| x.min(at)));
                    continue;
                }
                Err(e) => return Err(self.err("read", remote, e)),
            };
            let n = data.len() as u64;
            if n > u64::from(len) {
                return Err(Error::Sftp {
                    operation: "read",
                    path: remote.to_string(),
                    message: format!("server sent {n} bytes for a {len}-byte read"),
                });
            }
            if n == 0 {
                eof_at = Some(eof_at.map_or(at, |x| x.min(at)));
                continue;
            }
            if n < u64::from(len) {
                // A short read is not EOF: ask for the rest, under the same
                // budget as its first part.
                retry.push_back((at + n, len - n as u32, None));
            }
            reorder.insert(at, (data, permit));
            while let Some(entry) = reorder.first_entry() {
                if *entry.key() != written {
                    break;
                }
                let (data, permit) = entry.remove();
                file.write_all(&data)
                    .await
                    .map_err(local_err("write", local))?;
                written += data.len() as u64;
                drop(permit);
                t.report(remote, data.len() as u64, false);
            }
        }
        if !reorder.is_empty() {
            return Err(Error::Sftp {
                operation: "read",
                path: remote.to_string(),
                message: "the file changed while it was read".into(),
            });
        }
        Ok(written)
    }

    /// Upload a directory tree: directories are created, files copied
    /// atomically (several at a time), symlinks recreated as symlinks with the
    /// same target, special files skipped with a warning. With
    /// `opts.preserve`, modes and mtimes of files and directories are kept.
    /// Existing remote files are replaced; extra remote files are left alone.
    ///
    /// # Errors
    /// The first error met; files already copied stay.
    pub async fn upload_dir(
        &self,
        local_dir: impl AsRef<Path>,
        remote_dir: &str,
        opts: &TransferOptions,
    ) -> Result<TransferSummary> {
        let local_dir = local_dir.as_ref();
        let plan = walk_local(local_dir).await?;
        let mut summary = TransferSummary::default();
        let bytes_total = plan
            .iter()
            .map(|e| {
                if let LocalKind::File(a) = e.kind {
                    a.size
                } else {
                    0
                }
            })
            .sum();
        let files_total = plan
            .iter()
            .filter(|e| matches!(e.kind, LocalKind::File(_)))
            .count() as u64;
        let t = Transfer::new(opts, self.max_chunk(opts), bytes_total, files_total);
        self.mkdir_p(remote_dir).await?;
        let remote_of = |rel: &str| {
            if rel.is_empty() {
                remote_dir.to_string()
            } else {
                join_remote(remote_dir, rel)
            }
        };
        for e in &plan {
            if let LocalKind::Dir(a) = e.kind {
                if !e.rel.is_empty() {
                    // Writable by us until the end, when the real mode is set.
                    self.mkdir_if_missing(&remote_of(&e.rel), Some(a.mode | 0o700))
                        .await?;
                }
                summary.dirs += 1;
            }
        }
        let files = plan.iter().filter_map(|e| match e.kind {
            LocalKind::File(a) => Some((e, a)),
            _ => None,
        });
        let mut uploads = futures::stream::iter(files.map(|(e, a)| {
            let remote = remote_of(&e.rel);
            let t = &t;
            async move { self.upload_one(&e.local, &remote, a, t).await }
        }))
        .buffer_unordered(FILES_AT_ONCE);
        while let Some(r) = uploads.next().await {
            summary.bytes += r?;
            summary.files += 1;
        }
        drop(uploads);
        for e in &plan {
            match &e.kind {
                LocalKind::Symlink(target) => {
                    let link = remote_of(&e.rel);
                    if self.exists(&link).await? && !self.symlink_metadata(&link).await?.is_dir() {
                        self.remove_file(&link).await?;
                    }
                    self.symlink(target, &link).await?;
                    summary.symlinks += 1;
                }
                LocalKind::Skip(why) => {
                    tracing::warn!(path = %e.local.display(), "not uploaded: {why}");
                    summary.skipped += 1;
                }
                _ => {}
            }
        }
        // Deepest first: setting a parent's mtime before its children are
        // done would be undone by their changes.
        for e in plan.iter().rev() {
            if let LocalKind::Dir(a) = e.kind {
                let remote = remote_of(&e.rel);
                let attrs = if opts.preserve {
                    a.sftp_attrs()
                } else {
                    FileAttributes {
                        permissions: Some(a.mode),
                        ..Default::default()
                    }
                };
                if opts.preserve || !e.rel.is_empty() {
                    self.raw()
                        .setstat(remote.as_str(), attrs)
                        .await
                        .map_err(|err| self.err("setstat", &remote, err))?;
                }
            }
        }
        Ok(summary)
    }

    /// Download a directory tree: directories are created, files copied
    /// atomically (several at a time), symlinks recreated as symlinks on Unix
    /// (skipped with a warning elsewhere), special files skipped with a
    /// warning. With `opts.preserve`, modes and mtimes of files and
    /// directories are kept.
    ///
    /// # Errors
    /// The first error met; files already copied stay.
    pub async fn download_dir(
        &self,
        remote_dir: &str,
        local_dir: impl AsRef<Path>,
        opts: &TransferOptions,
    ) -> Result<TransferSummary> {
        let local_dir = local_dir.as_ref();
        let root = self.metadata(remote_dir).await?;
        if !root.is_dir() {
            return Err(not_a_dir("download", remote_dir));
        }
        // Walk first, so progress knows the totals.
        let mut plan: Vec<(String, PathBuf, Metadata)> =
            vec![(remote_dir.to_string(), local_dir.to_path_buf(), root)];
        let mut i = 0;
        while i < plan.len() {
            if plan[i].2.is_dir() {
                let (remote, local) = (plan[i].0.clone(), plan[i].1.clone());
                for entry in self.read_dir(&remote).await? {
                    plan.push((entry.path, local.join(&entry.name), entry.metadata));
                }
            }
            i += 1;
        }
        let mut summary = TransferSummary::default();
        let files: Vec<_> = plan.iter().filter(|(_, _, m)| m.is_file()).collect();
        let t = Transfer::new(
            opts,
            self.max_chunk(opts),
            files.iter().map(|(_, _, m)| m.size).sum(),
            files.len() as u64,
        );
        for (_, local, m) in &plan {
            if m.is_dir() {
                tokio::fs::create_dir_all(local)
                    .await
                    .map_err(local_err("create directory", local))?;
                summary.dirs += 1;
            }
        }
        let mut downloads = futures::stream::iter(files.iter().map(|(remote, local, _)| {
            let t = &t;
            async move { self.download_one(remote, local, t, false).await }
        }))
        .buffer_unordered(FILES_AT_ONCE);
        while let Some(r) = downloads.next().await {
            summary.bytes += r?;
            summary.files += 1;
        }
        drop(downloads);
        for (remote, local, m) in &plan {
            match m.file_type {
                FileType::Symlink => {
                    let target = self.read_link(remote).await?;
                    if make_local_symlink(&target, local)? {
                        summary.symlinks += 1;
                    } else {
                        summary.skipped += 1;
                    }
                }
                FileType::Other => {
                    tracing::warn!(path = %remote, "not downloaded: not a regular file, directory or symlink");
                    summary.skipped += 1;
                }
                _ => {}
            }
        }
        if opts.preserve {
            for (_, local, m) in plan.iter().rev() {
                if m.is_dir() {
                    set_local_dir_attrs(local, m).map_err(local_err("set attributes of", local))?;
                }
            }
        }
        Ok(summary)
    }
}

fn not_a_dir(operation: &'static str, path: &str) -> Error {
    Error::Sftp {
        operation,
        path: path.to_string(),
        message: "exists and is not a directory".into(),
    }
}

/// Fill `buf` unless EOF comes first; returns how much was read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

enum LocalKind {
    Dir(LocalAttrs),
    File(LocalAttrs),
    Symlink(String),
    Skip(&'static str),
}

struct LocalEntry {
    /// Path relative to the root, `/`-separated; empty for the root.
    rel: String,
    local: PathBuf,
    kind: LocalKind,
}

/// The tree under `root`, parents before children, names sorted.
async fn walk_local(root: &Path) -> Result<Vec<LocalEntry>> {
    let meta = tokio::fs::metadata(root)
        .await
        .map_err(local_err("stat", root))?;
    if !meta.is_dir() {
        return Err(Error::LocalIo {
            operation: "upload directory",
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
        });
    }
    let mut out = vec![LocalEntry {
        rel: String::new(),
        local: root.to_path_buf(),
        kind: LocalKind::Dir(LocalAttrs::of(&meta)),
    }];
    let mut i = 0;
    while i < out.len() {
        if matches!(out[i].kind, LocalKind::Dir(_)) {
            let dir = out[i].local.clone();
            let rel = out[i].rel.clone();
            let mut rd = tokio::fs::read_dir(&dir)
                .await
                .map_err(local_err("read directory", &dir))?;
            let mut children = Vec::new();
            while let Some(entry) = rd
                .next_entry()
                .await
                .map_err(local_err("read directory", &dir))?
            {
                children.push(entry);
            }
            children.sort_by_key(|e| e.file_name());
            for entry in children {
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    return Err(Error::LocalIo {
                        operation: "upload",
                        path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "file name is not UTF-8",
                        ),
                    });
                };
                let meta = tokio::fs::symlink_metadata(&path)
                    .await
                    .map_err(local_err("stat", &path))?;
                let kind = if meta.is_symlink() {
                    let target = tokio::fs::read_link(&path)
                        .await
                        .map_err(local_err("readlink", &path))?;
                    match target.to_str() {
                        Some(t) => LocalKind::Symlink(t.replace('\\', "/")),
                        None => LocalKind::Skip("symlink target is not UTF-8"),
                    }
                } else if meta.is_dir() {
                    LocalKind::Dir(LocalAttrs::of(&meta))
                } else if meta.is_file() {
                    LocalKind::File(LocalAttrs::of(&meta))
                } else {
                    LocalKind::Skip("not a regular file, directory or symlink")
                };
                out.push(LocalEntry {
                    rel: join_remote(&rel, &name),
                    local: path,
                    kind,
                });
            }
        }
        i += 1;
    }
    Ok(out)
}

fn set_local_attrs(file: &std::fs::File, path: &Path, meta: &Metadata) -> std::io::Result<()> {
    // Times first: a read-only file on Windows refuses new times.
    file.set_modified(meta.modified())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = path;
        file.set_permissions(std::fs::Permissions::from_mode(meta.permissions()))?;
    }
    #[cfg(not(unix))]
    {
        let mut p = file.metadata()?.permissions();
        p.set_readonly(meta.permissions() & 0o200 == 0);
        std::fs::set_permissions(path, p)?;
    }
    Ok(())
}

fn set_local_dir_attrs(path: &Path, meta: &Metadata) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::File::open(path)?.set_modified(meta.modified())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.permissions()))
    }
    #[cfg(not(unix))]
    {
        // Windows opens directories only with backup semantics; their times
        // and modes matter little there.
        let _ = (path, meta);
        Ok(())
    }
}

/// Recreate a symlink; `false` when it was skipped.
fn make_local_symlink(target: &str, link: &Path) -> Result<bool> {
    #[cfg(unix)]
    {
        if std::fs::symlink_metadata(link).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(link).map_err(local_err("remove", link))?;
        }
        std::os::unix::fs::symlink(target, link).map_err(local_err("create symlink", link))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        tracing::warn!(path = %link.display(), target, "symlink not created: needs privileges on Windows");
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_split_and_join() {
        assert_eq!(split_remote("/a/b/c"), ("/a/b", "c"));
        assert_eq!(split_remote("/c"), ("/", "c"));
        assert_eq!(split_remote("c"), ("", "c"));
        assert_eq!(join_remote("/", "c"), "/c");
        assert_eq!(join_remote("/a/", "c"), "/a/c");
        assert_eq!(join_remote("", "c"), "c");
    }

    #[test]
    fn temp_names_are_hidden_and_distinct() {
        let a = temp_file_name("app.tar");
        assert!(a.starts_with(".app.tar.spuff-tmp-"), "{a}");
        assert_ne!(a, temp_file_name("app.tar"));
        assert!(temp_file_name(&"é".repeat(200)).len() < 255);
    }

    #[test]
    fn modes_give_file_types() {
        let m = |mode| {
            Metadata::from_attrs(&FileAttributes {
                permissions: Some(mode),
                ..Default::default()
            })
        };
        assert!(m(0o040_755).is_dir());
        assert!(m(0o100_644).is_file());
        assert!(m(0o120_777).is_symlink());
        // A socket's type bits include the directory bit; it is no directory.
        assert_eq!(m(0o140_755).file_type, FileType::Other);
        assert_eq!(m(0o100_640).permissions(), 0o640);
    }
}
