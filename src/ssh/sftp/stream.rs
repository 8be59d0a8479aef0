//! Trees through one channel: `tar` runs on the VM, the archive is read or
//! written here.
//!
//! SFTP moves a tree one file at a time, and each small file costs round
//! trips (open, write, close, setstat, rename) that no pipelining hides:
//! 2,000 files of 4 KiB took twice as long as `tar c | ssh tar x` (issue
//! 14). When the VM has GNU tar, a tree is one stream on one exec channel
//! instead, and the rules of the SFTP path still hold:
//!
//! - Downloads: the VM runs `tar -c`; every entry is checked here as
//!   strictly as an SFTP name ([`local_component`], depth and count caps,
//!   listed twice), must sit in a directory the same stream created (so a
//!   symlink left by an earlier copy is never written through), is written
//!   to a temporary file renamed into place once its size is complete, and
//!   symlinks come last. Hard links, devices and FIFOs are skipped as over
//!   SFTP; PAX headers (which `--format=gnu` never writes) are refused, and
//!   long names are capped before they are read. tar's exit status must be 0.
//! - Uploads: the archive is built here (GNU format, directories and files
//!   in walk order, symlinks last); the VM runs `tar -x` keeping modes and
//!   times, never owners. Then one `stat` over every file checks its size,
//!   mode and mtime against the local file.
//!
//! A single file goes the same way when the VM has GNU coreutils, for the
//! sshd and `sftp-server` work it saves: up through `cat` into the hidden
//! temporary file SFTP would use, its size checked before it is renamed
//! into place and `stat` checked here after (a file of [`SPLIT_AT`] or
//! more as two halves on two channels at once, written at their offsets by
//! `dd`, for the overlap); down from `cat` of the file
//! opened once, after a line with its size, mode and mtime, into a local
//! temporary file renamed into place once exactly that many bytes came.
//!
//! The streams are only used with `preserve` set (tar keeps modes and
//! times; SFTP's other semantics would differ), when the caller did not
//! turn them off, and when the command's own check finds the GNU tools on
//! the VM (remembered once per [`Sftp`] when they are missing); otherwise
//! the copy goes over SFTP as before.
//!
//! The archive is produced or consumed on a blocking thread, handed over
//! in chunks through a short queue, so memory stays bounded by the queue
//! and the channel window whatever the tree holds.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::metadata::time_from_secs;
use super::transfer::{
    LocalAttrs, ProgressFn, Reader, Transfer, joined, local_temp, settle_local, temp_file_name,
};
use super::tree::{
    LocalEntry, LocalKind, MAX_DEPTH, MAX_TREE_ENTRIES, TransferSummary, local_component,
    make_local_symlink, set_local_dir_attrs,
};
use super::{Progress, Sftp, TransferOptions, local_err};
use crate::cloudinit::escape::sh_quote;
use crate::ssh::{Error, Result};
use crate::ssh::{ExecEvent, ExitStatus, RemoteCommand};

/// Bytes handed between the async side and the archive thread at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks queued between the two sides: with [`CHUNK`], 1 MiB.
const QUEUE: usize = 4;
/// The download channel's receive window: what tar on the VM may send
/// ahead of the archive thread. The session's 16 MiB (sized for SFTP's
/// requests in flight) took peak RSS to 24.5 MiB when the disk fell
/// behind; 4 MiB, as many bytes as a SFTP download keeps in flight, was
/// as fast and stayed under 15 MiB (benches/copy.rs, issue 14).
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// The longest GNU long name or link target read from a stream. Linux
/// paths stop at 4,096 bytes; a bigger claim would only make us allocate.
const MAX_LONG_NAME: u64 = 64 * 1024;
/// How much of tar's standard error is kept for messages.
const STDERR_KEPT: usize = 16 * 1024;
/// How much output after the end of the archive is read (and dropped) to
/// get tar's exit status: GNU tar pads to records of 10 KiB.
const TRAILER_KEPT: usize = 64 * 1024;
/// The line the download command prints before the archive: file count
/// and bytes, for progress.
const TOTALS_MARK: &[u8] = b"spuff-tar ";

/// Run with `sh -c` so the user's login shell (fish, csh) does not matter;
/// `LC_ALL=C` so messages and `--version` lines read the same everywhere.
fn sh(script: &str) -> String {
    format!("LC_ALL=C sh -c {}", sh_quote(script))
}

/// Exit code of the stream commands when the VM lacks a tool they need
/// (checked before anything is read or written): copy over SFTP instead.
const NO_TOOLS: u32 = 97;

/// The start of both stream commands: the GNU tools they rely on, or
/// [`NO_TOOLS`]. Checked in the same command rather than by a probe of its
/// own, because every command costs a round trip and the login shell's
/// start (which on a VM with a heavy `.bashrc` is most of it).
const NEEDS_GNU: &str = "gnu() { \"$1\" --version 2>/dev/null | head -n 1 | grep -q \"$2\"; }\n\
gnu tar 'GNU tar' && gnu find 'GNU findutils' && gnu stat 'GNU coreutils' && \
gnu head 'GNU coreutils' && command -v awk >/dev/null && command -v mktemp >/dev/null || exit 97\n";

/// The start of the single-file upload: GNU coreutils, which brings all
/// it runs (`cat`, `stat -c`, `chmod`, `touch -d @`, `mv -T`), or
/// [`NO_TOOLS`]. One program started where [`NEEDS_GNU`] starts a dozen:
/// about 10 ms less on every upload (a 256 MiB copy takes 0.7 s here).
const NEEDS_COREUTILS: &str =
    "case $(mv --version 2>/dev/null) in *'GNU coreutils'*) ;; *) exit 97 ;; esac\n";

/// The line the single-file download prints before the file: its size,
/// mode (decimal) and mtime.
const CAT_MARK: &[u8] = b"spuff-cat ";

/// Exit code of the single-file download when the path is not a readable
/// regular file: SFTP then says what it is, in its own words.
const NOT_A_FILE: u32 = 98;

/// Files this big or bigger are uploaded over two channels at once
/// ([`Sftp::upload_file_split`]); below it the extra command's start
/// costs more than the overlap saves.
const SPLIT_AT: u64 = 64 * 1024 * 1024;

/// The line the upload command prints once tar has finished, before the
/// check's `stat` lines.
const EXTRACTED_MARK: &str = "spuff-tar-extracted";

impl Sftp {
    /// Whether this tree call may try tar: the caller allows it, modes and
    /// times are kept (tar's semantics), and no earlier call found the
    /// tools missing.
    pub(super) fn may_stream(&self, opts: &TransferOptions) -> bool {
        opts.stream && opts.preserve && !self.inner.lacks_stream_tools.load(Ordering::Relaxed)
    }

    /// How an upload command ended, from its collected output: `None` when
    /// it stopped at its start because the server lacks the tools (then
    /// remembered), else its status, standard error and the lines it
    /// printed after [`EXTRACTED_MARK`] (`None` if it never got there).
    fn upload_ended(
        &self,
        ended: Result<(ExitStatus, Vec<u8>, Vec<u8>)>,
    ) -> Result<Option<UploadEnd>> {
        let (status, stdout, stderr) = ended?;
        let after = lines_after_mark(&stdout);
        if after.is_none() && matches!(status.code(), Some(NO_TOOLS | 127)) {
            self.tools_missing(&status);
            return Ok(None);
        }
        Ok(Some(UploadEnd {
            status,
            stderr,
            after,
        }))
    }

    /// The server has no GNU tar (or no `sh`): remember, and say so once.
    fn tools_missing(&self, status: &ExitStatus) {
        if !self.inner.lacks_stream_tools.swap(true, Ordering::Relaxed) {
            tracing::debug!(%status, "no GNU tar on the server: copies go over SFTP");
        }
    }

    /// Start a download command: no input, and the stream's own receive
    /// window (see [`STREAM_WINDOW`]); `None` when the server refused the
    /// channel (see [`granted`]).
    async fn spawn_download(&self, script: &str) -> Result<Option<RemoteCommand>> {
        let spawned = self
            .inner
            .session
            .spawn_with_window(&sh(script), Some(STREAM_WINDOW))
            .await;
        let Some(cmd) = granted(spawned)? else {
            return Ok(None);
        };
        cmd.close_stdin().await?;
        Ok(Some(cmd))
    }

    /// [`Sftp::upload_dir`] through one tar stream; `None` when the server
    /// lacks the tools or refused the channel (nothing was written then).
    pub(super) async fn upload_stream(
        &self,
        plan: Arc<Vec<LocalEntry>>,
        remote_dir: &str,
        opts: &TransferOptions,
    ) -> Result<Option<TransferSummary>> {
        let session = &self.inner.session;
        let mut summary = TransferSummary::default();
        let mut files = Vec::new();
        let mut names = Vec::new();
        for e in plan.iter() {
            match &e.kind {
                LocalKind::Dir(_) => summary.dirs += 1,
                LocalKind::File(a) => {
                    summary.files += 1;
                    summary.bytes += a.size;
                    files.push((e.rel.clone(), *a));
                    names.extend_from_slice(b"./");
                    names.extend_from_slice(e.rel.as_bytes());
                    names.push(0);
                }
                LocalKind::Symlink(_) => summary.symlinks += 1,
                LocalKind::Skip(_) => summary.skipped += 1,
            }
        }
        let mut tally = Tally::new(
            opts.progress.clone(),
            remote_dir,
            summary.bytes,
            summary.files,
        );
        let q = sh_quote(remote_dir);
        // The names of the files come first on stdin (`head -c` reads no
        // further), then the archive; after tar, one `stat` checks them.
        let script = format!(
            "{NEEDS_GNU}mkdir -p -- {q} && cd -- {q} || exit 2\n\
             list=$(mktemp) || exit 2\n\
             trap 'rm -f \"$list\"' EXIT\n\
             head -c {n} > \"$list\" || exit 2\n\
             tar -x -f - --no-same-owner --same-permissions --delay-directory-restore || exit $?\n\
             echo {EXTRACTED_MARK}\n\
             xargs -0 -r stat --printf '%s %a %Y\\n' -- < \"$list\"",
            n = names.len()
        );
        let Some(mut cmd) = granted(session.spawn(&sh(&script)).await)? else {
            return Ok(None);
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let producer = tokio::task::spawn_blocking({
            let plan = plan.clone();
            move || {
                let mut sink = ChunkSink {
                    buf: Vec::with_capacity(CHUNK),
                    tx,
                };
                sink.write_all(&names)
                    .map_err(local_err("upload", Path::new(".")))?;
                write_archive(&plan, sink, &mut tally)
            }
        });
        let mut stdin = cmd.stdin();
        let all_written = AtomicBool::new(false);
        let send = async {
            while let Some(chunk) = rx.recv().await {
                if stdin.write_all(&chunk).await.is_err() {
                    // The command stopped reading; its status says why.
                    return;
                }
            }
            all_written.store(true, Ordering::Relaxed);
            let _ = stdin.shutdown().await;
        };
        let limit = 64 * files.len() + 64 * 1024;
        let output = collect_stdout(&mut cmd, limit, "upload", remote_dir);
        let (_, ended) = feed(send, output).await;
        let sent = all_written.load(Ordering::Relaxed);
        drop(rx);
        let produced = task_result(producer.await, "upload", Path::new(remote_dir));
        let Some(end) = self.upload_ended(ended)? else {
            return Ok(None);
        };
        // A local problem (a file that cannot be read) comes first: tar on
        // the VM then only saw an archive cut short.
        produced?;
        let Some(after) = end.after.filter(|_| sent) else {
            return Err(tar_failed(
                "upload",
                "tar",
                remote_dir,
                &end.status,
                &end.stderr,
            ));
        };
        let mut lines = after.into_iter();
        for (rel, a) in &files {
            let path = super::remote_fs::join_remote(remote_dir, rel);
            check_landed(&path, lines.next(), a, &end.status, &end.stderr)?;
        }
        if !end.status.success() {
            let (status, stderr) = (&end.status, &end.stderr);
            return Err(tar_failed(
                "upload",
                "the check (stat)",
                remote_dir,
                status,
                stderr,
            ));
        }
        for e in plan.iter() {
            if let LocalKind::Skip(why) = &e.kind {
                tracing::warn!(path = %e.local.display(), "not uploaded: {why}");
            }
        }
        summary.streamed = true;
        Ok(Some(summary))
    }

    /// [`Sftp::upload_file`] through `cat` on one exec channel, into a
    /// hidden temporary file given its mode and mtime, checked by `stat`
    /// and renamed over `remote` (as over SFTP); `None` when the server
    /// lacks the tools or refused the channel (nothing was written then).
    /// A file of [`SPLIT_AT`] bytes or more goes over two channels at once
    /// (see [`Sftp::upload_file_split`]).
    pub(super) async fn upload_file_stream(
        &self,
        local: &Path,
        remote: &str,
        attrs: LocalAttrs,
        t: &Transfer<'_>,
    ) -> Result<Option<u64>> {
        let (dir, name) = super::remote_fs::split_remote(remote);
        let tmp = super::remote_fs::join_remote(dir, &temp_file_name(name));
        if attrs.size >= SPLIT_AT {
            return self.upload_file_split(local, remote, &tmp, &attrs, t).await;
        }
        // `cat` into a file only we can read; then the finishing step.
        let script = format!(
            "{NEEDS_COREUTILS}tmp={tmp}
             (umask 077 && exec cat > \"$tmp\") || {{ rm -f -- \"$tmp\"; exit 2; }}
             {finish}",
            tmp = sh_quote(&tmp),
            finish = finish_script(&tmp, remote, &attrs),
        );
        // Opened before the command starts: a file that cannot be read
        // must not leave the VM waiting for it.
        let file = open_at(local, 0).await?;
        let Some(cmd) = granted(self.inner.session.spawn(&sh(&script)).await)? else {
            return Ok(None);
        };
        let part = send_part(cmd, file, local, 0..u64::MAX, remote, t, None).await;
        self.upload_checked(local, remote, &attrs, t, part, None)
    }

    /// A big [`Sftp::upload_file_stream`]: each half of the file through
    /// `dd` on its own exec channel, written at its offset into the same
    /// temporary file; the first command then waits for a word that the
    /// second half landed and does the finishing step. Two channels keep
    /// the VM's sshd, its writers and this side busy together where one
    /// stalls on the channel's window (sshd opens 2 MiB at a time), and on
    /// a real link they double what one round trip carries.
    ///
    /// When the server refuses the second channel (sshd's `MaxSessions`,
    /// 10 by default, counts every channel), the first command is told to
    /// take the whole file instead, as the one-channel upload does.
    async fn upload_file_split(
        &self,
        local: &Path,
        remote: &str,
        tmp: &str,
        attrs: &LocalAttrs,
        t: &Transfer<'_>,
    ) -> Result<Option<u64>> {
        let half = attrs.size / 2 / CHUNK as u64 * CHUNK as u64;
        // The first line says which: `all` (the second channel was
        // refused) or `half`. `conv=notrunc`: whichever `dd` starts first
        // creates the file, and neither cuts off what the other wrote;
        // `count` with `fullblock` reads exactly the first half, so the
        // word after it is left for `read`.
        let first = format!(
            "{NEEDS_COREUTILS}tmp={tmp}
             read -r part || exit 4
             case $part in
             all) (umask 077 && exec cat > \"$tmp\") || {{ rm -f -- \"$tmp\"; exit 2; }} ;;
             *) (umask 077 && exec dd of=\"$tmp\" bs=128K count={half} iflag=count_bytes,fullblock conv=notrunc status=none) || {{ rm -f -- \"$tmp\"; exit 2; }}
                read -r word && [ \"$word\" = landed ] || {{ rm -f -- \"$tmp\"; exit 4; }} ;;
             esac
             {finish}",
            tmp = sh_quote(tmp),
            finish = finish_script(tmp, remote, attrs),
        );
        let second = format!(
            "{NEEDS_COREUTILS}umask 077 && exec dd of={tmp} bs=128K seek={half} oflag=seek_bytes conv=notrunc status=none",
            tmp = sh_quote(tmp),
        );
        let (file, file2) = (open_at(local, 0).await?, open_at(local, half).await?);
        let Some(cmd) = granted(self.inner.session.spawn(&sh(&first)).await)? else {
            return Ok(None);
        };
        let (part, other) = match self.inner.session.spawn(&sh(&second)).await {
            Err(e) => {
                tracing::debug!(error = %e, "a second channel was refused: uploading over one");
                // Were it to fail, the command's status says why.
                let _ = cmd.write_stdin(b"all\n").await;
                let part = send_part(cmd, file, local, 0..u64::MAX, remote, t, None).await;
                (part, None)
            }
            Ok(cmd2) => {
                let (landed, word) = tokio::sync::oneshot::channel();
                let _ = cmd.write_stdin(b"half\n").await;
                let rest = async {
                    let p = send_part(cmd2, file2, local, half..u64::MAX, remote, t, None).await;
                    let ok =
                        p.all_sent && matches!(&p.ended, Ok((status, _, _)) if status.success());
                    let _ = landed.send(ok);
                    p
                };
                let (part, other) = tokio::join!(
                    send_part(cmd, file, local, 0..half, remote, t, Some(word)),
                    rest,
                );
                (part, Some(other))
            }
        };
        self.upload_checked(local, remote, attrs, t, part, other)
    }

    /// The end of an upload over one channel (`other` is `None`) or two:
    /// `None` when the server lacks the tools, else the bytes sent, once
    /// both commands succeeded and the size and `stat` checks passed.
    fn upload_checked(
        &self,
        local: &Path,
        remote: &str,
        attrs: &LocalAttrs,
        t: &Transfer<'_>,
        part: Part,
        other: Option<Part>,
    ) -> Result<Option<u64>> {
        let mut sent = part.sent;
        let tool = if other.is_some() { "dd" } else { "cat" };
        let Some(end) = self.upload_ended(part.ended)? else {
            return Ok(None);
        };
        // A local read error comes first (the command then only saw its
        // input end early), then what the second half's `dd` said (the
        // first only heard that it failed).
        part.read.unwrap_or(Ok(()))?;
        if let Some(other) = other {
            sent += other.sent;
            let (status, _, stderr) = other.ended?;
            other.read.unwrap_or(Ok(()))?;
            if !(other.all_sent && status.success()) {
                return Err(tar_failed("upload", "dd", remote, &status, &stderr));
            }
        }
        let Some(after) = end.after.filter(|_| part.all_sent && end.status.success()) else {
            return Err(tar_failed("upload", tool, remote, &end.status, &end.stderr));
        };
        check_sent(remote, sent, attrs)?;
        check_landed(
            remote,
            after.into_iter().next(),
            attrs,
            &end.status,
            &end.stderr,
        )?;
        t.report(remote, 0, true);
        tracing::debug!(local = %local.display(), remote, bytes = sent, tool, "uploaded");
        Ok(Some(sent))
    }

    /// [`Sftp::download_file`] through `cat` on one exec channel. The VM
    /// opens the file once, prints its size, mode and mtime (`stat` of the
    /// open file), then `cat`s it. Here the bytes go to the temporary file
    /// SFTP would use, renamed into place only once exactly that many came
    /// and `cat` exited 0; more than that is refused as it arrives. `None`
    /// when the VM lacks the tools, refused the channel, or `remote` is not
    /// a readable regular file (nothing was written then: SFTP goes on,
    /// and says why).
    pub(super) async fn download_file_stream(
        &self,
        remote: &str,
        local: &Path,
        t: &Transfer<'_>,
    ) -> Result<Option<u64>> {
        // `-f` follows a symlink, as SFTP's open does. The mode goes out in
        // decimal (`$((0644))` is octal in sh), an mtime before 1970 as 0
        // (SFTP's times cannot say it either).
        let script = format!(
            "{NEEDS_COREUTILS}src={src}\n\
             [ -f \"$src\" ] && [ -r \"$src\" ] || exit {NOT_A_FILE}\n\
             exec < \"$src\" || exit 2\n\
             set -- $(stat -c '%s %a %Y' -) && [ $# = 3 ] || exit 2\n\
             [ \"$3\" -ge 0 ] 2>/dev/null || set -- \"$1\" \"$2\" 0\n\
             echo \"spuff-cat $1 $((0$2)) $3\"\n\
             exec cat",
            src = sh_quote(remote),
        );
        let Some(mut cmd) = self.spawn_download(&script).await? else {
            return Ok(None);
        };
        let (mut stderr, mut status) = (Vec::new(), None);
        // Up to the header: a noisy login's output, then our line.
        let mut head = Vec::new();
        let header = loop {
            match cmd.next_event().await? {
                None => break None,
                Some(ExecEvent::Stdout(b)) => {
                    head.extend_from_slice(&b);
                    match find_numbers(&head, CAT_MARK) {
                        Numbers::More => {}
                        Numbers::Found(n, at) => break Some((n, at)),
                        Numbers::Missing => {
                            let _ = cmd.close().await;
                            return Err(not_ours(remote));
                        }
                    }
                }
                Some(ExecEvent::Stderr(b)) => keep_stderr(&mut stderr, &b),
                Some(ExecEvent::Exit(s)) => status = Some(s),
            }
        };
        let Some((numbers, at)) = header else {
            return match status {
                Some(s) if matches!(s.code(), Some(NO_TOOLS | 127)) => {
                    self.tools_missing(&s);
                    Ok(None)
                }
                Some(s) if s.code() == Some(NOT_A_FILE) => Ok(None),
                Some(s) => Err(tar_failed("download", "cat", remote, &s, &stderr)),
                None => Err(self.inner.session.lost("cat download")),
            };
        };
        let [size, mode, mtime] = numbers[..] else {
            let _ = cmd.close().await;
            return Err(not_ours(remote));
        };
        t.add_total(size);
        let tmp = local_temp(local);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(local_err("create", local));
        let file = match file {
            Ok(f) => f.into_std().await,
            Err(e) => {
                let _ = cmd.close().await;
                return Err(e);
            }
        };
        // The file is written on a blocking thread; packets queue for it
        // (about 1 MiB), then the channel's window holds the VM back.
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE * 8);
        let writer = tokio::task::spawn_blocking(move || {
            let mut file = file;
            while let Some(b) = rx.blocking_recv() {
                file.write_all(&b)?;
            }
            Ok::<_, std::io::Error>(file)
        });
        let mut data = Bytes::copy_from_slice(&head[at..]);
        drop(head);
        // Packets are at most 32 KiB: progress goes out per `chunk` (the
        // caller's chunk size, if any), not per packet.
        let chunk = t
            .opts
            .chunk_size
            .map_or(CHUNK, |c| (c as usize).clamp(512, CHUNK)) as u64;
        let copied = async {
            let (mut got, mut unreported) = (0u64, 0u64);
            loop {
                if !data.is_empty() {
                    let n = data.len() as u64;
                    got += n;
                    // An empty file may be /proc-like: read to its end.
                    if size > 0 && got > size {
                        return Err(Error::Stream {
                            operation: "download",
                            path: remote.to_string(),
                            message: format!(
                                "the VM sent more than the {size} bytes the file held when the copy began (did it change while it was read?)"
                            ),
                        });
                    }
                    if tx.send(data).await.is_err() {
                        // The writer stopped: its error says why.
                        break;
                    }
                    unreported += n;
                    if unreported >= chunk {
                        t.report(remote, unreported, false);
                        unreported = 0;
                    }
                }
                data = match cmd.next_event().await? {
                    None => break,
                    Some(ExecEvent::Stdout(b)) => b,
                    Some(ExecEvent::Stderr(b)) => {
                        keep_stderr(&mut stderr, &b);
                        Bytes::new()
                    }
                    Some(ExecEvent::Exit(s)) => {
                        status = Some(s);
                        Bytes::new()
                    }
                };
            }
            if unreported > 0 {
                t.report(remote, unreported, false);
            }
            Ok(got)
        }
        .await;
        drop(tx);
        let written = joined(writer.await).map_err(local_err("write", local));
        let result = (|| {
            // A local write error comes first: the VM then only lost its reader.
            let file = written?;
            let got = copied?;
            match &status {
                Some(s) if s.success() => {}
                Some(s) => return Err(tar_failed("download", "cat", remote, s, &stderr)),
                None => return Err(self.inner.session.lost("cat download")),
            }
            if size > 0 && got != size {
                return Err(Error::Stream {
                    operation: "download",
                    path: remote.to_string(),
                    message: format!(
                        "received {got} bytes of a file that held {size} when the copy began (did it change while it was read?)"
                    ),
                });
            }
            let attrs = t
                .opts
                .preserve
                .then(|| ((mode as u32) & 0o7777, time_from_secs(mtime)));
            settle_local(file, &tmp, local, attrs)?;
            Ok(got)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            let _ = cmd.close().await;
        }
        if let Ok(n) = result {
            t.report(remote, 0, true);
            tracing::debug!(remote, local = %local.display(), bytes = n, "downloaded through cat");
        }
        result.map(Some)
    }

    /// [`Sftp::download_dir`] through one tar stream; `None` when the
    /// server lacks the tools or refused the channel (nothing was written
    /// then). `remote_dir` is known to be a directory.
    pub(super) async fn download_stream(
        &self,
        remote_dir: &str,
        local_dir: &Path,
        opts: &TransferOptions,
    ) -> Result<Option<TransferSummary>> {
        tokio::fs::create_dir_all(local_dir)
            .await
            .map_err(local_err("create directory", local_dir))?;
        let script = format!(
            "{NEEDS_GNU}cd -- {} || exit 2\n\
             find . -type f -printf '%s\\n' | awk '{{ s += $1 }} END {{ printf \"spuff-tar %.0f %.0f\\n\", NR, s }}'\n\
             exec tar -c -f - --format=gnu --hard-dereference .",
            sh_quote(remote_dir)
        );
        let Some(mut cmd) = self.spawn_download(&script).await? else {
            return Ok(None);
        };
        // Channel packets (OpenSSH sends at most 32 KiB each): about 1 MiB.
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE * 8);
        let (totals_tx, totals_rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let extract = {
            let root = local_dir.to_path_buf();
            let remote = remote_dir.to_string();
            let progress = opts.progress.clone();
            tokio::task::spawn_blocking(move || {
                // No totals line: the command did not get as far as tar,
                // and nothing is to be read.
                let Ok((files, bytes)) = totals_rx.recv() else {
                    return Ok(None);
                };
                let mut tally = Tally::new(progress, &remote, bytes, files);
                let reader = ChannelReader {
                    rx,
                    cur: Bytes::new(),
                };
                read_archive(reader, &root, &remote, &mut tally).map(Some)
            })
        };
        let pumped = pump(&mut cmd, tx, totals_tx).await;
        if pumped.is_err() || matches!(pumped, Ok((None, _))) {
            // Stop tar on the VM: nobody reads what it sends any more.
            let _ = cmd.close().await;
        }
        let extracted = task_result(extract.await, "download", local_dir);
        let (status, stderr) = pumped?;
        // What was wrong with the stream comes first: tar on the VM then
        // only lost its reader.
        let Some(summary) = extracted? else {
            return match status {
                Some(s) if matches!(s.code(), Some(NO_TOOLS | 127)) => {
                    self.tools_missing(&s);
                    Ok(None)
                }
                Some(s) => Err(tar_failed("download", "tar", remote_dir, &s, &stderr)),
                None => Err(self.inner.session.lost("tar download")),
            };
        };
        match status {
            Some(s) if s.success() => Ok(Some(summary)),
            Some(s) => Err(tar_failed("download", "tar", remote_dir, &s, &stderr)),
            None => Err(Error::Stream {
                operation: "download",
                path: remote_dir.to_string(),
                message: "the archive ended, but tar on the VM did not".into(),
            }),
        }
    }
}

/// A stream's command, or `None` when the server refused its channel or
/// the command: the copy then goes over SFTP, whose channel is already
/// open. sshd's `MaxSessions` (10 by default) counts every channel of a
/// connection, so an SDK user running commands beside a copy could
/// otherwise see a copy fail that SFTP alone would have made.
fn granted(spawned: Result<RemoteCommand>) -> Result<Option<RemoteCommand>> {
    match spawned {
        Ok(cmd) => Ok(Some(cmd)),
        Err(Error::ChannelRefused { reason, .. }) => {
            tracing::debug!(%reason, "no channel for a stream: copying over SFTP");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The error for output that is not what our command prints.
fn not_ours(path: &str) -> Error {
    Error::Stream {
        operation: "download",
        path: path.to_string(),
        message: "the VM's output does not start with the line our command prints".into(),
    }
}

/// The result of an archive thread; one that panicked is an error like the
/// others.
fn task_result<T>(
    r: std::result::Result<Result<T>, tokio::task::JoinError>,
    operation: &'static str,
    path: &Path,
) -> Result<T> {
    r.map_err(|e| Error::LocalIo {
        operation,
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Feed `cmd` the bytes of `local` (open as `file`, at `range.start`) in
/// `range` (fewer when the file ends first), collecting its output
/// meanwhile; progress is reported as the bytes go. With `word`, once
/// every byte went, a line follows that says whether the other half
/// landed (`landed` or `failed`), when it is known.
async fn send_part(
    mut cmd: RemoteCommand,
    file: std::fs::File,
    local: &Path,
    range: std::ops::Range<u64>,
    remote: &str,
    t: &Transfer<'_>,
    word: Option<tokio::sync::oneshot::Receiver<bool>>,
) -> Part {
    let mut stdin = cmd.stdin();
    // The caller's chunk size, if any, sets how often progress reports.
    let chunk = t
        .opts
        .chunk_size
        .map_or(CHUNK, |c| (c as usize).clamp(512, CHUNK));
    let written = AtomicU64::new(0);
    let all_written = AtomicBool::new(false);
    let send = async {
        let copied = async {
            let mut reader = Reader::start(file, chunk);
            let mut left = range.end - range.start;
            while left > 0 {
                let mut buf = reader.next(chunk, local).await?;
                let short = buf.len() < chunk;
                buf.truncate(buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)));
                if buf.is_empty() {
                    break;
                }
                if stdin.write_all(&buf).await.is_err() {
                    // The command stopped reading; its status says why.
                    return Ok(());
                }
                left -= buf.len() as u64;
                written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                t.report(remote, buf.len() as u64, false);
                if short {
                    break;
                }
            }
            // Only after every byte: anything more would be read as data.
            if let Some(word) = word.filter(|_| left == 0) {
                let line: &[u8] = match word.await {
                    Ok(true) => b"landed\n",
                    _ => b"failed\n",
                };
                if stdin.write_all(line).await.is_err() {
                    return Ok(());
                }
            }
            all_written.store(true, Ordering::Relaxed);
            let _ = stdin.shutdown().await;
            Ok::<_, Error>(())
        }
        .await;
        // A local file that cannot be opened or read: the command must
        // still see its input end, or it would wait for ever (and its
        // own checks then fail and remove its temporary file).
        if copied.is_err() {
            let _ = stdin.shutdown().await;
        }
        copied
    };
    let output = collect_stdout(&mut cmd, 64 * 1024, "upload", remote);
    let (read, ended) = feed(send, output).await;
    Part {
        read,
        sent: written.load(Ordering::Relaxed),
        all_sent: all_written.load(Ordering::Relaxed),
        ended,
    }
}

/// `local` opened for reading at `offset`.
async fn open_at(local: &Path, offset: u64) -> Result<std::fs::File> {
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(local_err("open", local))?
        .into_std()
        .await;
    if offset > 0 {
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
            .map_err(local_err("read", local))?;
    }
    Ok(file)
}

/// One command fed part of a file; see [`send_part`].
struct Part {
    /// The local read's result, `None` when the command ended first.
    read: Option<Result<()>>,
    sent: u64,
    /// Whether the input was sent to its end and closed.
    all_sent: bool,
    ended: Result<(ExitStatus, Vec<u8>, Vec<u8>)>,
}

/// The finishing step of a single-file upload, once `tmp` holds the bytes:
/// its size is checked before it gets its mode and time and replaces the
/// target (`-T`: never into a directory of that name), and the result is
/// shown after [`EXTRACTED_MARK`].
fn finish_script(tmp: &str, remote: &str, attrs: &LocalAttrs) -> String {
    format!(
        "tmp={tmp}; dst={dst}
         size=$(stat -c %s -- \"$tmp\") && [ \"$size\" = {size} ] || {{ echo \"the file holds $size bytes, not {size}\" >&2; rm -f -- \"$tmp\"; exit 3; }}
         chmod {mode:o} -- \"$tmp\" && touch -m -d @{mtime} -- \"$tmp\" && mv -f -T -- \"$tmp\" \"$dst\" || {{ rm -f -- \"$tmp\"; exit 2; }}
         echo {EXTRACTED_MARK}
         exec stat -c '%s %a %Y' -- \"$dst\"",
        tmp = sh_quote(tmp),
        dst = sh_quote(remote),
        size = attrs.size,
        mode = attrs.mode & 0o7777,
        mtime = attrs.mtime,
    )
}

/// The bytes sent must be the size the file had when the copy began.
fn check_sent(remote: &str, sent: u64, attrs: &LocalAttrs) -> Result<()> {
    if sent == attrs.size {
        return Ok(());
    }
    Err(Error::Stream {
        operation: "upload",
        path: remote.to_string(),
        message: format!(
            "sent {sent} bytes of a file that held {} when the copy began (did it change while it was read?)",
            attrs.size
        ),
    })
}

/// An upload command that got past its start; see [`Sftp::upload_ended`].
struct UploadEnd {
    status: ExitStatus,
    stderr: Vec<u8>,
    after: Option<Vec<String>>,
}

/// Check one `stat` line (`size mode mtime`) from the VM against the local
/// file it should now match; no line means `stat` failed on it.
fn check_landed(
    path: &str,
    got: Option<String>,
    a: &LocalAttrs,
    status: &ExitStatus,
    stderr: &[u8],
) -> Result<()> {
    let want = format!("{} {:o} {}", a.size, a.mode & 0o7777, a.mtime);
    match got {
        Some(got) if got == want => Ok(()),
        Some(got) => Err(Error::Stream {
            operation: "upload",
            path: path.to_string(),
            message: format!(
                "after the copy the VM reports size, mode and mtime `{}` instead of `{want}` (did something change it meanwhile?)",
                crate::terminal_safe(&got)
            ),
        }),
        None => Err(tar_failed(
            "upload",
            "the check (stat)",
            path,
            status,
            stderr,
        )),
    }
}

/// The lines a stream command printed after [`EXTRACTED_MARK`] (`None`
/// when it never got there), whatever a noisy login script printed first.
fn lines_after_mark(stdout: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = text.lines().skip_while(|l| *l != EXTRACTED_MARK);
    lines.next()?;
    Some(lines.map(str::to_string).collect())
}

/// Write a command's input (`send`) while reading its output (`recv`).
/// When the command ends first (it failed, or stopped reading), `send` is
/// dropped: a write waiting for window the command will never open would
/// otherwise wait for ever. Returns `send`'s result if it finished.
async fn feed<S: Future, R: Future>(send: S, recv: R) -> (Option<S::Output>, R::Output) {
    let mut send = std::pin::pin!(send);
    let mut recv = std::pin::pin!(recv);
    tokio::select! {
        s = &mut send => (Some(s), recv.await),
        r = &mut recv => (None, r),
    }
}

/// A command's exit status, up to `limit` bytes of standard output (more is
/// an error: the server is not doing what we asked) and the first
/// [`STDERR_KEPT`] bytes of standard error.
async fn collect_stdout(
    cmd: &mut RemoteCommand,
    limit: usize,
    operation: &'static str,
    path: &str,
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
    while let Some(ev) = cmd.next_event().await? {
        match ev {
            ExecEvent::Stdout(b) => {
                if stdout.len() + b.len() > limit {
                    return Err(Error::Stream {
                        operation,
                        path: path.to_string(),
                        message: format!("the VM sent more than {limit} bytes of output"),
                    });
                }
                stdout.extend_from_slice(&b);
            }
            ExecEvent::Stderr(b) => keep_stderr(&mut stderr, &b),
            ExecEvent::Exit(s) => status = Some(s),
        }
    }
    let status = status.ok_or_else(|| Error::Stream {
        operation,
        path: path.to_string(),
        message: "the command ended without an exit status".into(),
    })?;
    Ok((status, stdout, stderr))
}

fn keep_stderr(kept: &mut Vec<u8>, more: &[u8]) {
    let room = STDERR_KEPT.saturating_sub(kept.len());
    kept.extend_from_slice(&more[..more.len().min(room)]);
}

/// Move the download's output to the archive thread: the totals line
/// first, then the archive. Returns tar's exit status (`None` when the
/// archive thread stopped reading first) and some of its standard error.
async fn pump(
    cmd: &mut RemoteCommand,
    tx: mpsc::Sender<Bytes>,
    totals: std::sync::mpsc::Sender<(u64, u64)>,
) -> Result<(Option<ExitStatus>, Vec<u8>)> {
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    let (mut stderr, mut status) = (Vec::new(), None);
    let mut totals = Some(totals);
    // Once the archive thread stops reading, what still comes is GNU tar's
    // padding to its 10 KiB record (after a complete archive) or the rest
    // of an archive that was refused: a little is read to get tar's exit
    // status; past that the command is stopped.
    let mut after_end: Option<usize> = None;
    while let Some(ev) = cmd.next_event().await? {
        let data = match ev {
            ExecEvent::Stdout(b) => b,
            ExecEvent::Stderr(b) => {
                keep_stderr(&mut stderr, &b);
                continue;
            }
            ExecEvent::Exit(s) => {
                status = Some(s);
                continue;
            }
        };
        let data = match head.as_mut() {
            None => data,
            Some(h) => {
                h.extend_from_slice(&data);
                match split_totals(h) {
                    Totals::More => continue,
                    Totals::Found(files, bytes, at) => {
                        if let Some(t) = totals.take() {
                            let _ = t.send((files, bytes));
                        }
                        let rest = Bytes::copy_from_slice(&h[at..]);
                        head = None;
                        rest
                    }
                    Totals::Missing => {
                        // Not our command's output: hand it all over, and
                        // let the archive reader say what is wrong with it.
                        totals.take();
                        Bytes::from(head.take().unwrap_or_default())
                    }
                }
            }
        };
        if let Some(n) = after_end.as_mut() {
            *n += data.len();
            if *n > TRAILER_KEPT {
                return Ok((None, stderr));
            }
        } else if !data.is_empty() && tx.send(data).await.is_err() {
            after_end = Some(0);
        }
    }
    if let Some(h) = head.take()
        && !h.is_empty()
    {
        let _ = tx.send(Bytes::from(h)).await;
    }
    Ok((status, stderr))
}

enum Totals {
    More,
    /// Files, bytes, and where the archive starts.
    Found(u64, u64, usize),
    Missing,
}

/// Find the `spuff-tar FILES BYTES` line in the first bytes of the output
/// (after whatever a noisy login script printed).
fn split_totals(head: &[u8]) -> Totals {
    match find_numbers(head, TOTALS_MARK) {
        Numbers::More => Totals::More,
        Numbers::Found(n, at) => match n[..] {
            [files, bytes] => Totals::Found(files, bytes, at),
            _ => Totals::Missing,
        },
        Numbers::Missing => Totals::Missing,
    }
}

/// What [`find_numbers`] saw.
enum Numbers {
    /// Not yet: read more.
    More,
    /// The numbers after the mark, and where the line after it starts.
    Found(Vec<u64>, usize),
    /// Not in the first 64 KiB: not our command's output.
    Missing,
}

/// Find the first line starting with `mark` in the first bytes of a
/// command's output (after whatever a noisy login script printed), and
/// read the space-separated decimal numbers after it; a line with
/// anything else after the mark is not ours and is passed over.
fn find_numbers(head: &[u8], mark: &[u8]) -> Numbers {
    const LOOK: usize = 64 * 1024;
    let mut start = 0;
    while let Some(nl) = head[start..].iter().position(|&b| b == b'\n') {
        let line = &head[start..start + nl];
        if let Some(rest) = line.strip_prefix(mark) {
            let nums: Option<Vec<u64>> = std::str::from_utf8(rest)
                .ok()
                .and_then(|r| r.split(' ').map(|n| n.parse().ok()).collect());
            if let Some(nums) = nums {
                return Numbers::Found(nums, start + nl + 1);
            }
        }
        start += nl + 1;
        if start > LOOK {
            return Numbers::Missing;
        }
    }
    if head.len() > LOOK {
        Numbers::Missing
    } else {
        Numbers::More
    }
}

/// The archive thread's view of the download: a `Read` over the chunks the
/// async side receives.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// The archive thread's view of the upload: a `Write` that hands over
/// chunks of [`CHUNK`] bytes.
struct ChunkSink {
    buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(full)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the copy stopped"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Progress of a streamed tree, counted on the archive thread.
struct Tally {
    progress: Option<ProgressFn>,
    remote_dir: String,
    bytes_done: u64,
    bytes_total: u64,
    files_done: u64,
    files_total: u64,
}

impl Tally {
    fn new(progress: Option<ProgressFn>, remote_dir: &str, bytes: u64, files: u64) -> Tally {
        Tally {
            progress,
            remote_dir: remote_dir.to_string(),
            bytes_done: 0,
            bytes_total: bytes,
            files_done: 0,
            files_total: files,
        }
    }

    fn report(&mut self, rel: &str, bytes: u64, file_done: bool) {
        self.bytes_done += bytes;
        self.files_done += u64::from(file_done);
        // The tree may have grown since it was counted.
        self.bytes_total = self.bytes_total.max(self.bytes_done);
        self.files_total = self.files_total.max(self.files_done);
        if let Some(p) = &self.progress {
            p(Progress {
                path: super::remote_fs::join_remote(&self.remote_dir, rel),
                bytes_done: self.bytes_done,
                bytes_total: self.bytes_total,
                files_done: self.files_done,
                files_total: self.files_total,
            });
        }
    }
}

/// Write the upload's archive: directories and files in walk order, then
/// symlinks (so tar on the VM never writes through one of ours).
fn write_archive(plan: &[LocalEntry], sink: ChunkSink, tally: &mut Tally) -> Result<()> {
    let mut b = tar::Builder::new(sink);
    fn broken(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        local_err("upload", path)
    }
    let header = |kind: tar::EntryType, mode: u32, mtime: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(u64::from(mtime));
        h.set_size(size);
        h
    };
    for e in plan.iter() {
        // `.` for the top directory, so it gets its own mode and times.
        let name = if e.rel.is_empty() {
            "."
        } else {
            e.rel.as_str()
        };
        match &e.kind {
            LocalKind::Dir(a) => {
                let mut h = header(tar::EntryType::Directory, a.mode, a.mtime, 0);
                b.append_data(&mut h, name, std::io::empty())
                    .map_err(broken(&e.local))?;
            }
            LocalKind::File(a) => {
                let file = std::fs::File::open(&e.local).map_err(local_err("open", &e.local))?;
                let mut h = header(tar::EntryType::Regular, a.mode, a.mtime, a.size);
                let reader = Exactly {
                    file,
                    left: a.size,
                    rel: &e.rel,
                    tally: &mut *tally,
                };
                b.append_data(&mut h, name, reader)
                    .map_err(broken(&e.local))?;
                tally.report(&e.rel, 0, true);
            }
            _ => {}
        }
    }
    // Symlinks carry no times of their own here (as over SFTP): now.
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    for e in plan.iter() {
        if let LocalKind::Symlink(target) = &e.kind {
            let mut h = header(tar::EntryType::Symlink, 0o777, now, 0);
            b.append_link(&mut h, &e.rel, target)
                .map_err(broken(&e.local))?;
        }
    }
    let mut sink = b.into_inner().map_err(broken(Path::new(".")))?;
    sink.flush().map_err(broken(Path::new(".")))
}

/// A local file read for the archive: exactly the size in its header. A
/// file that shrank since the walk is an error (the archive would be
/// corrupt); one that grew is cut at the size the header announced.
struct Exactly<'a> {
    file: std::fs::File,
    left: u64,
    rel: &'a str,
    tally: &'a mut Tally,
}

impl Read for Exactly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was copied",
            ));
        }
        self.left -= n as u64;
        self.tally.report(self.rel, n as u64, false);
        Ok(n)
    }
}

/// Unpack a downloaded archive into `root` by the rules in the module
/// documentation.
fn read_archive(
    reader: impl Read,
    root: &Path,
    remote_dir: &str,
    tally: &mut Tally,
) -> Result<TransferSummary> {
    let broken = |message: String| Error::Stream {
        operation: "download",
        path: remote_dir.to_string(),
        message,
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| broken(format!("cannot read the archive: {e}")))?
        .raw(true);
    let mut summary = TransferSummary {
        dirs: 1,
        streamed: true,
        ..Default::default()
    };
    let (mut long_name, mut long_link): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let mut seen: HashSet<String> = HashSet::new();
    let mut dirs: HashSet<String> = HashSet::from([String::new()]);
    let mut dir_attrs: Vec<(PathBuf, u32, u64)> = Vec::new();
    let mut links: Vec<(PathBuf, String)> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    for entry in entries {
        let mut entry = entry.map_err(|e| broken(format!("cannot read the archive: {e}")))?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            let size = entry.size();
            if size > MAX_LONG_NAME {
                return Err(broken(format!(
                    "the archive holds a {size}-byte name; refusing names over {MAX_LONG_NAME} bytes"
                )));
            }
            let mut v = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut v)
                .map_err(|e| broken(format!("cannot read the archive: {e}")))?;
            while v.last() == Some(&0) {
                v.pop();
            }
            if kind.is_gnu_longname() {
                long_name = Some(v);
            } else {
                long_link = Some(v);
            }
            continue;
        }
        if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
            return Err(broken(
                "the archive holds PAX headers, which `tar --format=gnu` never writes".into(),
            ));
        }
        let path = long_name
            .take()
            .unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let link = long_link
            .take()
            .or_else(|| entry.header().link_name_bytes().map(|l| l.into_owned()));
        let Some(parts) = entry_path(&path, remote_dir)? else {
            // The top directory itself.
            if !kind.is_dir() {
                return Err(broken("the archive's top entry is not a directory".into()));
            }
            if !seen.insert(String::new()) {
                return Err(broken("the archive lists its top directory twice".into()));
            }
            dir_attrs.push((root.to_path_buf(), mode_of(&entry), mtime_of(&entry)));
            continue;
        };
        let (name, parent) = parts.split_last().expect("at least one part");
        let parent_rel = parent.join("/");
        let rel = if parent_rel.is_empty() {
            name.to_string()
        } else {
            format!("{parent_rel}/{name}")
        };
        let unsafe_name = |reason| Error::UnsafeName {
            operation: "tar download",
            dir: super::remote_fs::join_remote(remote_dir, &parent_rel),
            name: name.to_string(),
            reason,
        };
        if !dirs.contains(&parent_rel) {
            return Err(unsafe_name(
                "arrived before its directory (or inside something that is not one)",
            ));
        }
        if !seen.insert(rel.clone()) {
            return Err(unsafe_name("was listed twice"));
        }
        if seen.len() > MAX_TREE_ENTRIES {
            return Err(broken(format!(
                "the tree holds more than {MAX_TREE_ENTRIES} entries; refusing"
            )));
        }
        let mut local = root.to_path_buf();
        local.extend(parts.iter());
        if kind.is_dir() {
            // A symlink left here by an earlier copy is replaced, never
            // followed (as over SFTP).
            match std::fs::symlink_metadata(&local) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.is_symlink() => {
                    std::fs::remove_file(&local).map_err(local_err("remove", &local))?;
                    std::fs::create_dir(&local).map_err(local_err("create directory", &local))?;
                }
                _ => std::fs::create_dir(&local).map_err(local_err("create directory", &local))?,
            }
            dirs.insert(rel);
            dir_attrs.push((local, mode_of(&entry), mtime_of(&entry)));
            summary.dirs += 1;
        } else if kind.is_file() {
            let size = entry.size();
            let tmp = local.with_file_name(temp_file_name(name));
            let written = write_entry(&mut entry, &tmp, &local, size, &mut buf, |n| {
                tally.report(&rel, n, false)
            });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(match e {
                    Short(got) => broken(format!(
                        "the archive ended inside {rel:?} after {got} of its {size} bytes"
                    )),
                    Local(e) => e,
                });
            }
            tally.report(&rel, 0, true);
            summary.files += 1;
            summary.bytes += size;
        } else if kind.is_symlink() {
            match link.map(String::from_utf8) {
                Some(Ok(target)) => links.push((local, target)),
                _ => {
                    tracing::warn!(path = %local.display(), "not downloaded: symlink target is not UTF-8");
                    summary.skipped += 1;
                }
            }
        } else {
            tracing::warn!(path = %local.display(), "not downloaded: not a regular file, directory or symlink");
            summary.skipped += 1;
        }
    }
    for (link, target) in links {
        if make_local_symlink(&target, &link)? {
            summary.symlinks += 1;
        } else {
            summary.skipped += 1;
        }
    }
    // Deepest first, so children do not change a parent's time again; the
    // stream lists parents before their children.
    for (dir, mode, mtime) in dir_attrs.iter().rev() {
        let mtime = time_from_secs(*mtime);
        set_local_dir_attrs(dir, *mode, mtime).map_err(local_err("set attributes of", dir))?;
    }
    Ok(summary)
}

fn mode_of<R: Read>(entry: &tar::Entry<'_, R>) -> u32 {
    entry.header().mode().unwrap_or(0o644) & 0o7777
}

fn mtime_of<R: Read>(entry: &tar::Entry<'_, R>) -> u64 {
    entry.header().mtime().unwrap_or(0)
}

/// The parts of an entry's path below the top directory (`None` for the
/// top directory itself), each one a safe local name.
fn entry_path(path: &[u8], remote_dir: &str) -> Result<Option<Vec<String>>> {
    let refuse = |name: String, reason| Error::UnsafeName {
        operation: "tar download",
        dir: remote_dir.to_string(),
        name,
        reason,
    };
    let Ok(text) = std::str::from_utf8(path) else {
        return Err(refuse(
            String::from_utf8_lossy(path).into_owned(),
            "is not UTF-8",
        ));
    };
    // tar names the top directory `./` and everything else `./a/b`; a
    // directory may end in `/`.
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    let Some(inner) = trimmed.strip_prefix("./") else {
        return if trimmed == "." {
            Ok(None)
        } else {
            Err(refuse(
                text.to_string(),
                "is not inside the directory asked for",
            ))
        };
    };
    let parts: Vec<String> = inner.split('/').map(str::to_string).collect();
    if parts.len() > MAX_DEPTH {
        return Err(refuse(
            text.to_string(),
            "is more than 256 directories deep (a loop on the server?)",
        ));
    }
    for p in &parts {
        local_component(p).map_err(|reason| refuse(p.clone(), reason))?;
    }
    Ok(Some(parts))
}

/// Why an entry could not be written.
enum WriteError {
    /// The archive ended after this many of the entry's bytes.
    Short(u64),
    Local(Error),
}
use WriteError::{Local, Short};

/// Copy one file's bytes from the archive into `tmp`, give it the entry's
/// mode and mtime, and rename it over `local`.
fn write_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    tmp: &Path,
    local: &Path,
    size: u64,
    buf: &mut [u8],
    mut progress: impl FnMut(u64),
) -> std::result::Result<(), WriteError> {
    let mode = mode_of(entry);
    let mtime = time_from_secs(mtime_of(entry));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| Local(local_err("create", local)(e)))?;
    let mut got = 0u64;
    loop {
        let n = entry
            .read(buf)
            .map_err(|e| Local(local_err("read the archive for", local)(e)))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(|e| Local(local_err("write", local)(e)))?;
        got += n as u64;
        progress(n as u64);
    }
    if got != size {
        return Err(Short(got));
    }
    settle_local(file, tmp, local, Some((mode, mtime))).map_err(Local)
}

/// An error for a `tool` that ended badly, with what it said.
fn tar_failed(
    operation: &'static str,
    tool: &str,
    path: &str,
    status: &ExitStatus,
    stderr: &[u8],
) -> Error {
    let said = if stderr.is_empty() {
        "(it said nothing)".to_string()
    } else {
        crate::summarize_body(stderr)
    };
    Error::Stream {
        operation,
        path: path.to_string(),
        message: format!("{tool} on the VM ended with {status}: {said}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_is_found_after_noise() {
        assert!(matches!(split_totals(b"spuff-tar 3 "), Totals::More));
        let head = b"welcome!\nspuff-tar 3 4096\n\0\0archive";
        match split_totals(head) {
            Totals::Found(3, 4096, at) => assert_eq!(&head[at..], b"\0\0archive"),
            _ => panic!("not found"),
        }
        assert!(matches!(
            split_totals(&vec![b'x'; 70 * 1024]),
            Totals::Missing
        ));
    }

    #[test]
    fn entry_paths_stay_inside_the_tree() {
        let ok = |p: &str| entry_path(p.as_bytes(), "d").expect(p);
        assert_eq!(ok("./"), None);
        assert_eq!(ok("."), None);
        assert_eq!(ok("./a/b/"), Some(vec!["a".to_string(), "b".to_string()]));
        for bad in [
            "../x",
            "./../x",
            "./a/../../x",
            "/etc/passwd",
            "./a//b",
            "a",
            "./a/./b",
            "",
        ] {
            assert!(entry_path(bad.as_bytes(), "d").is_err(), "{bad:?}");
        }
        assert!(entry_path(b"./\xff", "d").is_err());
        let deep = format!("./{}", vec!["d"; 257].join("/"));
        assert!(entry_path(deep.as_bytes(), "d").is_err());
    }
}
