//! The pipelined transfer engine: one file up or down with many requests in flight.
//!
//! SFTP moves a file one READ or WRITE request at a time, each answered
//! separately; waiting for every answer caps throughput at one chunk per
//! round trip. This engine keeps many requests outstanding instead:
//!
//! - A [`Transfer`] is one public call's budget (a semaphore of requests in
//!   flight, capped at [`UPLOAD_BYTES_IN_FLIGHT`] or
//!   [`DOWNLOAD_BYTES_IN_FLIGHT`]) and its progress counters, shared by
//!   every file of a tree transfer.
//! - Uploads read the local file in order and send WRITEs at increasing
//!   offsets as permits allow ([`Sftp::write_chunks`]).
//! - Downloads send READs ahead and write the replies in order through a
//!   reorder buffer whose chunks keep their permits, so a slow reply cannot
//!   make memory grow ([`Sftp::read_chunks`]). Short reads ask for the rest.
//! - Both sides write to a hidden temporary file next to the target and
//!   rename it over the target once complete.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::remote_fs::{join_remote, split_remote};
use super::{Metadata, Sftp, is_status, local_err};
use crate::ssh::{Error, Result};

/// Most bytes of WRITE requests sent and not yet answered, per upload
/// call. OpenSSH's sshd gives a session channel a 2 MiB window: more in
/// flight only waits in our memory for the window to open. Measured whole
/// process (benches/copy.rs, 256 MiB): 2 MiB was 1.12x OpenSSH's `sftp`
/// at 12-13.5 MiB peak RSS; 4 MiB 0.99-1.08x at 15-17 MiB (issue 14).
pub(super) const UPLOAD_BYTES_IN_FLIGHT: u32 = 2 * 1024 * 1024;

/// Most bytes of READ requests sent and not yet written locally, per
/// download call. Replies wait in the reorder buffer under these permits,
/// so this bounds memory too; with our 16 MiB channel window the server
/// never waits for window. 8 MiB measured no faster and 3 MiB more RSS.
pub(super) const DOWNLOAD_BYTES_IN_FLIGHT: u32 = 4 * 1024 * 1024;

/// Called as a transfer moves forward; see [`TransferOptions::progress`].
///
/// An `Arc` so that options can be cloned and shared between transfers;
/// `Send + Sync` because transfers sharing one may run on several tasks.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Where a transfer stands. Counts cover the whole call: for a tree, all files.
///
/// `bytes_done` never exceeds `bytes_total` (a file that grows while it is
/// copied raises the total). When a call succeeds its last report (if it
/// made any) has `files_done == files_total`.
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
    /// Files to transfer in all (regular files only, for a tree).
    pub files_total: u64,
}

/// How to transfer files: what to keep, whom to tell, how hard to push.
///
/// `TransferOptions::default()` keeps modes and times, reports nothing and
/// lets the server's limits pick the chunk size. Fill in what you need and
/// take the rest from the default.
///
/// # Examples
///
/// Report progress as a percentage, and do not carry local modes and times
/// over:
///
/// ```no_run
/// use std::sync::Arc;
///
/// use spuff::sftp::TransferOptions;
///
/// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
/// let opts = TransferOptions {
///     preserve: false,
///     progress: Some(Arc::new(|p| {
///         let pct = (p.bytes_done * 100).checked_div(p.bytes_total).unwrap_or(100);
///         eprint!("\r{pct:3}% {}", p.path);
///     })),
///     ..TransferOptions::default()
/// };
/// sftp.upload_dir("site/public", "/srv/www", &opts).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TransferOptions {
    /// Keep permission bits and modification times (true). Without it, an
    /// uploaded file keeps the mode of the file it replaces (`0644` when
    /// new) and gets the current time; downloads get the local defaults.
    pub preserve: bool,
    /// Called each time a chunk completes and each time a file completes;
    /// keep it quick, it runs on the transfer's task. It is not called again
    /// after an error.
    pub progress: Option<ProgressFn>,
    /// Most READ/WRITE requests outstanding at once, across all files of the
    /// call (64). Memory use is about this times the chunk size. Further
    /// capped by bytes: 2 MiB for uploads (the server's channel window; more
    /// only queues here) and 4 MiB for downloads (measured best, issue 14).
    pub max_in_flight: usize,
    /// Bytes per request. `None`: the largest the server allows (OpenSSH
    /// advertises 255 KiB), or 32 KiB when it does not say. Capped to that.
    pub chunk_size: Option<u32>,
    /// Stream through one exec channel instead of SFTP requests when the
    /// server has the GNU tools (tar, coreutils, findutils) and `preserve`
    /// is set (true): whole trees ([`Sftp::upload_dir`],
    /// [`Sftp::download_dir`]) through `tar`, 1.1-1.7x `tar c | ssh tar x`
    /// and several times SFTP for many small files, with the same name
    /// checks; single uploads ([`Sftp::upload_file`]) through `cat` into
    /// the same hidden temporary file (64 MiB and more as two halves over
    /// two channels at once, or one if the server refuses a second),
    /// 1.2-1.5x SFTP; single downloads ([`Sftp::download_file`]) from
    /// `cat` of the file after a line with its size, mode and mtime, into
    /// the same local temporary file, 1.2-2.3x SFTP (docs/performance.md).
    /// Every uploaded file's size, mode and mtime is checked afterwards,
    /// and a download must bring exactly the size announced. `false`, a
    /// server without the tools, or one that refuses the stream's channel
    /// (sshd's `MaxSessions`) uses SFTP. One difference: a tree upload
    /// cut off by a lost connection can leave the file tar was writing
    /// partly written (over SFTP and for single files it stays in a hidden
    /// temporary file).
    pub stream: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            preserve: true,
            progress: None,
            max_in_flight: 64,
            chunk_size: None,
            stream: true,
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
            .field("stream", &self.stream)
            .finish()
    }
}

/// Shared state of one public call: progress counters and the in-flight budget.
pub(super) struct Transfer<'a> {
    pub(super) opts: &'a TransferOptions,
    permits: Arc<Semaphore>,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    files_total: u64,
}

impl<'a> Transfer<'a> {
    /// `budget`: [`UPLOAD_BYTES_IN_FLIGHT`] or [`DOWNLOAD_BYTES_IN_FLIGHT`].
    pub(super) fn new(
        opts: &'a TransferOptions,
        chunk: u32,
        budget: u32,
        bytes_total: u64,
        files_total: u64,
    ) -> Self {
        let by_bytes = (budget / chunk.max(1)).max(4) as usize;
        Transfer {
            opts,
            permits: Arc::new(Semaphore::new(opts.max_in_flight.clamp(1, by_bytes))),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(bytes_total),
            files_done: AtomicU64::new(0),
            files_total,
        }
    }

    /// Count `bytes` more towards the total, for a file whose size was
    /// learnt once the call had started.
    pub(super) fn add_total(&self, bytes: u64) {
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count `bytes` more (and a finished file) and tell the caller.
    pub(super) fn report(&self, path: &str, bytes: u64, file_done: bool) {
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

/// Local attributes carried to the remote side. Times are whole seconds, as
/// SFTP version 3 sends them; on Windows the mode is made up from the
/// read-only flag.
#[derive(Debug, Clone, Copy)]
pub(super) struct LocalAttrs {
    pub(super) size: u64,
    pub(super) mode: u32,
    pub(super) atime: u32,
    pub(super) mtime: u32,
}

impl LocalAttrs {
    pub(super) fn of(meta: &std::fs::Metadata) -> LocalAttrs {
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

    pub(super) fn sftp_attrs(&self) -> FileAttributes {
        FileAttributes {
            permissions: Some(self.mode),
            atime: Some(self.atime),
            mtime: Some(self.mtime),
            ..Default::default()
        }
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
pub(super) fn temp_file_name(name: &str) -> String {
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.spuff-tmp-{}", &name[..end], random_suffix())
}

/// Where a download into `local` is written until it is complete: a
/// hidden temporary file beside it.
pub(super) fn local_temp(local: &Path) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    local.with_file_name(temp_file_name(&name))
}

impl Sftp {
    /// Bytes per request: the caller's choice within `512..=server_max`.
    fn chunk(&self, opts: &TransferOptions, server_max: u32) -> u32 {
        opts.chunk_size
            .map_or(server_max, |c| c.clamp(512, server_max))
    }

    /// The larger of the read and write chunk, which sizes the in-flight budget.
    pub(super) fn max_chunk(&self, opts: &TransferOptions) -> u32 {
        self.chunk(opts, self.inner.read_len.max(self.inner.write_len))
    }

    /// Upload one file, atomically: the data goes to a temporary file next to
    /// `remote`, which is renamed over `remote` once complete. With
    /// `opts.preserve` the local mode and mtime are kept; otherwise an existing
    /// target keeps its mode and a new one gets `0644`.
    ///
    /// `remote`'s directory must exist ([`Sftp::mkdir_p`]); an existing
    /// `remote` is replaced. Returns the number of bytes sent.
    ///
    /// # Errors
    /// [`Error::LocalIo`] when `local` cannot be read or is not a regular
    /// file, [`Error::Sftp`] naming `remote` and the server's reason,
    /// [`Error::ConnectionLost`], and when streamed
    /// ([`TransferOptions::stream`]) [`Error::Stream`] with the VM's reason
    /// or what its check found. On error the temporary file is removed and
    /// `remote` is untouched; only when the connection is lost can the
    /// temporary file (`.<name>.spuff-tmp-<random>`) stay behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use spuff::sftp::TransferOptions;
    ///
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// sftp.mkdir_p("/srv/app/bin").await?;
    /// let n = sftp
    ///     .upload_file("target/release/app", "/srv/app/bin/app", &TransferOptions::default())
    ///     .await?;
    /// println!("sent {n} bytes");
    /// # Ok(()) }
    /// ```
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
        let t = Transfer::new(
            opts,
            self.max_chunk(opts),
            UPLOAD_BYTES_IN_FLIGHT,
            attrs.size,
            1,
        );
        if self.may_stream(opts)
            && let Some(n) = self.upload_file_stream(local, remote, attrs, &t).await?
        {
            return Ok(n);
        }
        self.upload_one(local, remote, attrs, &t).await
    }

    /// [`Sftp::upload_file`] within a call's [`Transfer`] (for trees too).
    pub(super) async fn upload_one(
        &self,
        local: &Path,
        remote: &str,
        attrs: LocalAttrs,
        t: &Transfer<'_>,
    ) -> Result<u64> {
        let raw = self.raw();
        let file = tokio::fs::File::open(local)
            .await
            .map_err(local_err("open", local))?
            .into_std()
            .await;
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
        let written = self.write_chunks(&handle, file, local, remote, t).await;
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

    /// Give the complete temporary file its final attributes, then rename it
    /// over `remote`.
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
        file: std::fs::File,
        local: &Path,
        remote: &str,
        t: &Transfer<'_>,
    ) -> Result<u64> {
        let raw = self.raw();
        let chunk = self.chunk(t.opts, self.inner.write_len) as usize;
        let mut offset = 0u64;
        let mut eof = false;
        let mut in_flight = FuturesUnordered::new();
        // The next chunk is read on a blocking thread while this one goes
        // out: straight into its own buffer (no zeroing, no copy out of a
        // buffer of tokio's).
        let mut reader = Reader::start(file, chunk);
        loop {
            while !eof {
                let Some(permit) = t.permit(in_flight.len()).await else {
                    break;
                };
                let buf = reader.next(chunk, local).await?;
                let n = buf.len();
                if n < chunk {
                    eof = true;
                }
                if n == 0 {
                    break;
                }
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
    /// `local`'s directory must exist; an existing `local` is replaced.
    /// Files that report no size (`/proc`-like) are read until EOF. Returns
    /// the number of bytes received.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming `remote` and the server's reason ("No such
    /// file"; also when it is a directory), [`Error::LocalIo`] when `local`
    /// cannot be written, [`Error::ConnectionLost`], and when streamed
    /// ([`TransferOptions::stream`]) [`Error::Stream`] saying what the VM's
    /// `cat` did wrong (more or fewer bytes than announced, a failed
    /// status). On error `local` is untouched and the temporary file removed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use spuff::sftp::TransferOptions;
    ///
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// let opts = TransferOptions::default();
    /// sftp.download_file("/var/log/syslog", "syslog", &opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn download_file(
        &self,
        remote: &str,
        local: impl AsRef<Path>,
        opts: &TransferOptions,
    ) -> Result<u64> {
        let t = Transfer::new(opts, self.max_chunk(opts), DOWNLOAD_BYTES_IN_FLIGHT, 0, 1);
        let local = local.as_ref();
        if self.may_stream(opts)
            && let Some(n) = self.download_file_stream(remote, local, &t).await?
        {
            return Ok(n);
        }
        self.download_one(remote, local, &t, true).await
    }

    /// [`Sftp::download_file`] within a call's [`Transfer`]; `add_total`
    /// when the size was not known when the call started.
    pub(super) async fn download_one(
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

    /// The part of a download with the remote file open: check it, copy it
    /// to a temporary file, set its attributes, rename it into place.
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
            t.add_total(meta.size);
        }
        let tmp = local_temp(local);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(local_err("create", local))?
            .into_std()
            .await;
        // Only regular files report a trustworthy size; others, and empty
        // files (which may be /proc-like), are read to EOF.
        let size = (meta.is_file() && meta.size > 0).then_some(meta.size);
        let result = async {
            let (n, std_file) = self
                .read_chunks(handle, remote, file, local, size, t)
                .await?;
            let attrs = t
                .opts
                .preserve
                .then(|| (meta.permissions(), meta.modified()));
            settle_local(std_file, &tmp, local, attrs)?;
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
        file: std::fs::File,
        local: &Path,
        size: Option<u64>,
        t: &Transfer<'_>,
    ) -> Result<(u64, std::fs::File)> {
        // The local file is written on a blocking thread, one chunk at a
        // time and in order, while this loop goes on sending READs: the
        // chunk moves there (no copy into a buffer of tokio's) and keeps
        // its permit until it is written, so memory stays bounded.
        let mut writer = Writer::Idle(file);
        let raw = self.raw();
        let chunk = self.chunk(t.opts, self.inner.read_len);
        let mut next = 0u64;
        let mut retry: VecDeque<(u64, u32, Option<OwnedSemaphorePermit>)> = VecDeque::new();
        let mut eof_at: Option<u64> = None;
        let mut written = 0u64;
        let mut reorder: BTreeMap<u64, (bytes::Bytes, Option<OwnedSemaphorePermit>)> =
            BTreeMap::new();
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
                let len = data.len() as u64;
                writer.write(data, permit, local).await?;
                written += len;
                t.report(remote, len, false);
            }
        }
        let file = writer.finish(local).await?;
        if !reorder.is_empty() {
            return Err(Error::Sftp {
                operation: "read",
                path: remote.to_string(),
                message: "the file changed while it was read".into(),
            });
        }
        Ok((written, file))
    }
}

/// A local file read ahead on a blocking thread, one chunk at a time.
pub(super) enum Reader {
    Busy(tokio::task::JoinHandle<std::io::Result<(std::fs::File, Vec<u8>)>>),
    /// At end of file, or after an error.
    Done,
}

impl Reader {
    pub(super) fn start(file: std::fs::File, chunk: usize) -> Reader {
        Reader::Busy(tokio::task::spawn_blocking(move || read_chunk(file, chunk)))
    }

    /// The next chunk (shorter than `chunk` at the end, empty after it),
    /// and the one after it started.
    pub(super) async fn next(&mut self, chunk: usize, local: &Path) -> Result<Vec<u8>> {
        let Reader::Busy(h) = std::mem::replace(self, Reader::Done) else {
            return Ok(Vec::new());
        };
        let (file, buf) = joined(h.await).map_err(local_err("read", local))?;
        if buf.len() == chunk {
            *self = Reader::start(file, chunk);
        }
        Ok(buf)
    }
}

/// Up to `chunk` bytes of `file`, fewer only at its end.
fn read_chunk(mut file: std::fs::File, chunk: usize) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    let mut buf = Vec::with_capacity(chunk);
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, chunk as u64), &mut buf)?;
    Ok((file, buf))
}

/// A local file being written on a blocking thread, one chunk at a time.
enum Writer {
    Idle(std::fs::File),
    Busy(tokio::task::JoinHandle<std::io::Result<std::fs::File>>),
    /// While switching between the two, and for good after a write failed
    /// (the file went with the failed task).
    Gone,
}

/// The result of a blocking file task: a task that panicked or was
/// cancelled is an I/O error like the others, for the caller to name.
pub(super) fn joined<T>(
    r: std::result::Result<std::io::Result<T>, tokio::task::JoinError>,
) -> std::io::Result<T> {
    r.map_err(|e| std::io::Error::other(e.to_string()))?
}

impl Writer {
    /// Waits for the chunk before (order, and one chunk in the works at a
    /// time), then starts writing `data`; `permit` is released once it is
    /// written.
    async fn write(
        &mut self,
        data: bytes::Bytes,
        permit: Option<OwnedSemaphorePermit>,
        local: &Path,
    ) -> Result<()> {
        let mut file = self.idle(local).await?;
        *self = Writer::Busy(tokio::task::spawn_blocking(move || {
            std::io::Write::write_all(&mut file, &data)?;
            drop(permit);
            Ok(file)
        }));
        Ok(())
    }

    async fn idle(&mut self, local: &Path) -> Result<std::fs::File> {
        match std::mem::replace(self, Writer::Gone) {
            Writer::Idle(f) => Ok(f),
            Writer::Busy(h) => joined(h.await).map_err(local_err("write", local)),
            Writer::Gone => Err(Error::LocalIo {
                operation: "write",
                path: local.to_path_buf(),
                source: std::io::Error::other("an earlier write failed"),
            }),
        }
    }

    /// The file, once every chunk is written.
    async fn finish(mut self, local: &Path) -> Result<std::fs::File> {
        self.idle(local).await
    }
}

/// The last step of every download (SFTP's, `cat`'s, and each file of a
/// tar stream): give the complete temporary file `tmp` its mode and mtime
/// when `attrs` has them, close it, and rename it over `local`.
pub(super) fn settle_local(
    file: std::fs::File,
    tmp: &Path,
    local: &Path,
    attrs: Option<(u32, SystemTime)>,
) -> Result<()> {
    if let Some((mode, mtime)) = attrs {
        set_file_attrs(&file, tmp, mode, mtime).map_err(local_err("set attributes of", local))?;
    }
    drop(file);
    std::fs::rename(tmp, local).map_err(local_err("rename", local))
}

/// Give a local file `mode` and `mtime` (on Windows only the read-only flag
/// follows the mode).
fn set_file_attrs(
    file: &std::fs::File,
    path: &Path,
    mode: u32,
    mtime: SystemTime,
) -> std::io::Result<()> {
    // Times first: a read-only file on Windows refuses new times.
    file.set_modified(mtime)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = path;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    {
        let mut p = file.metadata()?.permissions();
        p.set_readonly(mode & 0o200 == 0);
        std::fs::set_permissions(path, p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_and_distinct() {
        let a = temp_file_name("app.tar");
        assert!(a.starts_with(".app.tar.spuff-tmp-"), "{a}");
        assert_ne!(a, temp_file_name("app.tar"));
        assert!(temp_file_name(&"é".repeat(200)).len() < 255);
    }
}
