//! Whole directory trees up and down: walk, then copy through the transfer engine.
//!
//! A tree transfer is four passes, in an order chosen so that the result is
//! right even though files move several at a time:
//!
//! 1. Walk the whole source tree first, so that progress knows the totals
//!    and a problem with a local name is found before anything is sent.
//! 2. Create the directories, kept writable by us for now.
//! 3. Copy the files, [`FILES_AT_ONCE`] at a time, all under one
//!    [`Transfer`] budget; small files are dominated by round trips, which
//!    overlap this way.
//! 4. Recreate symlinks, then set directory modes and times deepest first
//!    (a parent's mtime set earlier would be changed again by its children).

use std::path::{Path, PathBuf};

use futures::stream::StreamExt;
use russh_sftp::protocol::FileAttributes;

use super::remote_fs::join_remote;
use super::transfer::{LocalAttrs, Transfer};
use super::{FileType, Metadata, Sftp, TransferOptions, local_err, not_a_dir};
use crate::ssh::{Error, Result};

/// Files moved at the same time in tree transfers: small files are dominated
/// by round trips (open, close, setstat, rename), which overlap this way.
const FILES_AT_ONCE: usize = 4;

/// What a tree transfer did, from [`Sftp::upload_dir`] and
/// [`Sftp::download_dir`].
///
/// Every entry of the tree is counted once: `dirs + files + symlinks +
/// skipped` is the number of entries, the top directory included.
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
    /// Whether the tree went through one `tar` stream (see
    /// [`TransferOptions::stream`]) rather than file by file over SFTP.
    pub streamed: bool,
}

impl Sftp {
    /// Upload a directory tree: directories are created, files copied
    /// atomically (several at a time), symlinks recreated as symlinks with the
    /// same target, special files skipped with a warning. With
    /// `opts.preserve`, modes and mtimes of files and directories are kept.
    /// Existing remote files are replaced; extra remote files are left alone.
    ///
    /// The contents of `local_dir` land in `remote_dir` (like
    /// `cp -r local_dir/. remote_dir`), which is created with its parents
    /// when missing. Symlinks inside the tree are not followed, and their
    /// targets are copied as text, so an absolute target names a path on the
    /// server. Without `opts.preserve`, created directories still get their
    /// local permission bits (the top one keeps its own) but not their times.
    ///
    /// # Errors
    /// The first error met; files already copied stay, each one whole.
    /// [`Error::LocalIo`] when `local_dir` is not a directory, cannot be read
    /// or holds a name that is not UTF-8; otherwise as for
    /// [`Sftp::upload_file`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use spuff::sftp::TransferOptions;
    ///
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// let summary = sftp
    ///     .upload_dir("dotfiles", ".dotfiles", &TransferOptions::default())
    ///     .await?;
    /// println!("{} files, {} bytes", summary.files, summary.bytes);
    /// # Ok(()) }
    /// ```
    pub async fn upload_dir(
        &self,
        local_dir: impl AsRef<Path>,
        remote_dir: &str,
        opts: &TransferOptions,
    ) -> Result<TransferSummary> {
        let local_dir = local_dir.as_ref();
        let plan = std::sync::Arc::new(walk_local(local_dir).await?);
        if self.may_stream(opts)
            && let Some(summary) = self.upload_stream(plan.clone(), remote_dir, opts).await?
        {
            return Ok(summary);
        }
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
        let t = Transfer::new(
            opts,
            self.max_chunk(opts),
            super::transfer::UPLOAD_BYTES_IN_FLIGHT,
            bytes_total,
            files_total,
        );
        self.mkdir_p(remote_dir).await?;
        let remote_of = |rel: &str| {
            if rel.is_empty() {
                remote_dir.to_string()
            } else {
                join_remote(remote_dir, rel)
            }
        };
        for e in plan.iter() {
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
        for e in plan.iter() {
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
    /// directories are kept (directories only on Unix).
    ///
    /// The contents of `remote_dir` land in `local_dir`, which is created
    /// with its parents when missing. Existing local files and symlinks are
    /// replaced; extra local files are left alone. Symlinks inside the tree
    /// are not followed.
    ///
    /// # Errors
    /// The first error met; files already copied stay, each one whole.
    /// [`Error::Sftp`] when `remote_dir` is missing or not a directory, or a
    /// directory in it cannot be listed; otherwise as for
    /// [`Sftp::download_file`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use spuff::sftp::TransferOptions;
    ///
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// let summary = sftp
    ///     .download_dir("project/target/doc", "doc", &TransferOptions::default())
    ///     .await?;
    /// if summary.skipped > 0 {
    ///     eprintln!("{} entries skipped (see the log)", summary.skipped);
    /// }
    /// # Ok(()) }
    /// ```
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
        if self.may_stream(opts)
            && let Some(summary) = self.download_stream(remote_dir, local_dir, opts).await?
        {
            return Ok(summary);
        }
        // Walk first, so progress knows the totals.
        let mut plan: Vec<(String, PathBuf, Metadata)> =
            vec![(remote_dir.to_string(), local_dir.to_path_buf(), root)];
        let mut depth = vec![0usize];
        let mut i = 0;
        while i < plan.len() {
            if plan[i].2.is_dir() {
                let (remote, local) = (plan[i].0.clone(), plan[i].1.clone());
                // A server can list a directory inside every directory
                // forever: the walk would never end (issue 13).
                if depth[i] >= MAX_DEPTH {
                    return Err(Error::Sftp {
                        operation: "download",
                        path: remote,
                        message: format!(
                            "the tree is more than {MAX_DEPTH} directories deep (a loop on the server?); refusing"
                        ),
                    });
                }
                let mut seen = std::collections::HashSet::new();
                for entry in self.read_dir(&remote).await? {
                    // The names come from the VM: each must stay one entry
                    // of this directory (issue 13).
                    let unsafe_name = |reason| Error::UnsafeName {
                        operation: "sftp download",
                        dir: remote.clone(),
                        name: entry.name.clone(),
                        reason,
                    };
                    local_component(&entry.name).map_err(unsafe_name)?;
                    if !seen.insert(entry.name.clone()) {
                        return Err(unsafe_name("was listed twice"));
                    }
                    if plan.len() >= MAX_TREE_ENTRIES {
                        return Err(Error::Sftp {
                            operation: "download",
                            path: remote_dir.to_string(),
                            message: format!(
                                "the tree holds more than {MAX_TREE_ENTRIES} entries; refusing (copy its parts one at a time, or pack it with tar on the VM)"
                            ),
                        });
                    }
                    plan.push((entry.path, local.join(&entry.name), entry.metadata));
                    depth.push(depth[i] + 1);
                }
            }
            i += 1;
        }
        let mut summary = TransferSummary::default();
        let files: Vec<_> = plan.iter().filter(|(_, _, m)| m.is_file()).collect();
        let t = Transfer::new(
            opts,
            self.max_chunk(opts),
            super::transfer::DOWNLOAD_BYTES_IN_FLIGHT,
            files.iter().map(|(_, _, m)| m.size).sum(),
            files.len() as u64,
        );
        for (n, (_, local, m)) in plan.iter().enumerate() {
            if m.is_dir() {
                // A directory inside the tree must not be a symlink left by
                // an earlier copy: writing through it would land anywhere.
                // It is replaced, as files and symlinks are. (The root is
                // the user's own choice and may be one.)
                if n > 0 && std::fs::symlink_metadata(local).is_ok_and(|l| l.is_symlink()) {
                    std::fs::remove_file(local).map_err(local_err("remove", local))?;
                }
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
                    set_local_dir_attrs(local, m.permissions(), m.modified())
                        .map_err(local_err("set attributes of", local))?;
                }
            }
        }
        Ok(summary)
    }
}

/// What a local entry becomes on the remote side.
pub(super) enum LocalKind {
    Dir(LocalAttrs),
    File(LocalAttrs),
    Symlink(String),
    Skip(&'static str),
}

/// One entry of a local tree walk.
pub(super) struct LocalEntry {
    /// Path relative to the root, `/`-separated; empty for the root.
    pub(super) rel: String,
    pub(super) local: PathBuf,
    pub(super) kind: LocalKind,
}

/// The tree under `root`, parents before children, names sorted. Walked
/// on one blocking thread: a hop to the thread pool per entry (as
/// `tokio::fs` does) cost about 40 ms for 2,000 files.
async fn walk_local(root: &Path) -> Result<Vec<LocalEntry>> {
    let root = root.to_path_buf();
    let at = root.clone();
    tokio::task::spawn_blocking(move || walk_local_blocking(&root))
        .await
        .map_err(|e| Error::LocalIo {
            operation: "read directory",
            path: at,
            source: std::io::Error::other(e.to_string()),
        })?
}

fn walk_local_blocking(root: &Path) -> Result<Vec<LocalEntry>> {
    let meta = std::fs::metadata(root).map_err(local_err("stat", root))?;
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
            let mut children = std::fs::read_dir(&dir)
                .map_err(local_err("read directory", &dir))?
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(local_err("read directory", &dir))?;
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
                let meta = std::fs::symlink_metadata(&path).map_err(local_err("stat", &path))?;
                let kind = if meta.is_symlink() {
                    let target = std::fs::read_link(&path).map_err(local_err("readlink", &path))?;
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

/// Give a downloaded directory the remote mode and mtime (Unix only).
pub(super) fn set_local_dir_attrs(
    path: &Path,
    mode: u32,
    mtime: std::time::SystemTime,
) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::File::open(path)?.set_modified(mtime)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        // Windows opens directories only with backup semantics; their times
        // and modes matter little there.
        let _ = (path, mode, mtime);
        Ok(())
    }
}

/// The most entries a downloaded tree may hold: the walk is planned in
/// memory before the copy starts, so this bounds what a server that lists
/// wide trees without end can take (about a gigabyte at the limit).
pub const MAX_TREE_ENTRIES: usize = 1 << 22;

/// How deep a downloaded tree may go: far beyond real trees, and a bound on
/// a server that lists directories without end.
pub(super) const MAX_DEPTH: usize = 256;

/// Whether a name the server sent can be one entry of a local directory:
/// not empty, not `.` or `..`, no `/` or NUL, and on Windows also no `\`,
/// `:` (a drive or a stream) or the characters Windows forbids.
pub(super) fn local_component(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name == "." || name == ".." {
        return Err("names a directory itself, not an entry in it");
    }
    if name.contains('/') {
        return Err("holds a path separator");
    }
    if name.contains('\0') {
        return Err("holds a NUL byte");
    }
    if cfg!(windows) {
        if name.contains('\\') {
            return Err("holds a path separator");
        }
        if name.contains([':', '<', '>', '"', '|', '?', '*']) {
            return Err("holds a character Windows reserves (a drive, a stream or a wildcard)");
        }
        if name.ends_with(['.', ' ']) {
            return Err("ends with a dot or a space, which Windows drops");
        }
        if is_windows_device(name) {
            return Err("names a Windows device (CON, NUL, COM1, …), not a file");
        }
    }
    Ok(())
}

/// Whether Windows opens a device instead of a file for `name`: `CON`,
/// `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9` (and the superscript
/// digits), in any case, with or without an extension.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let (Some(head), Some(tail)) = (upper.get(..3), upper.get(3..)) else {
                return false;
            };
            (head == "COM" || head == "LPT")
                && matches!(
                    tail,
                    "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
                )
        }
    }
}

/// Recreate a symlink; `false` when it was skipped.
pub(super) fn make_local_symlink(target: &str, link: &Path) -> Result<bool> {
    #[cfg(unix)]
    {
        // Replace what is there (never a directory: its contents are the
        // user's), without following it.
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
    fn names_that_leave_a_directory_are_refused() {
        for bad in ["", ".", "..", "../x", "/etc", "a/b", "a\0b"] {
            assert!(local_component(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "..a", ".bashrc", "é", "ñññ"] {
            assert!(local_component(good).is_ok(), "{good:?}");
        }
        assert_eq!(local_component("..\\x").is_err(), cfg!(windows));
        assert_eq!(local_component("c:x").is_err(), cfg!(windows));
        assert_eq!(local_component("NUL.txt").is_err(), cfg!(windows));
        // Windows drops a trailing dot: "a.." would become "a".
        assert_eq!(local_component("a..").is_err(), cfg!(windows));
    }

    #[test]
    fn windows_devices_are_known_in_any_case_and_with_extensions() {
        for dev in [
            "CON",
            "nul",
            "Aux.txt",
            "com1",
            "LPT9.log",
            "COM\u{b9}",
            "nul ",
            "conin$",
        ] {
            assert!(is_windows_device(dev), "{dev:?}");
        }
        for file in [
            "CONSOLE", "com", "COM10", "lpt", "nulx", "ñññ", "é", "x.CON", "",
        ] {
            assert!(!is_windows_device(file), "{file:?}");
        }
    }
}
