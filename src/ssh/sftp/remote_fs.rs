//! Remote filesystem operations on an [`Sftp`] session, one request each.
//!
//! These are the SFTP counterparts of [`std::fs`] (stat, mkdir, rename,
//! symlinks, permissions, directory listings), with the few extra steps a
//! plain SFTP version 3 request lacks: `mkdir -p`, a rename that replaces
//! its target, and an `exists` that is not an error. The transfer engine and
//! the tree transfers build on them. Also here: joining and splitting remote
//! paths, which use `/` whatever the local platform.

use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::{FileAttributes, Packet, StatusCode};

use super::{DirEntry, Metadata, Sftp, is_status, not_a_dir};
use crate::ssh::{Error, Result};

/// `dir/name` for remote paths, which always use `/`.
/// The most entries [`Sftp::read_dir`] accepts in one listing: far beyond
/// real directories (a million names), and a bound on the memory a server
/// that lists without end can take.
pub const MAX_DIR_ENTRIES: usize = 1 << 20;

pub(super) fn join_remote(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Directory and file name of a remote path.
pub(super) fn split_remote(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", trimmed),
    }
}

/// Encode an SFTP `string`.
fn put_string(buf: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

impl Sftp {
    /// Attributes of `path`, following symlinks, like [`std::fs::metadata`].
    /// See [`Metadata`] for an example.
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

    /// Same as [`Sftp::metadata`], under the SFTP (and POSIX) name.
    ///
    /// # Errors
    /// As for [`Sftp::metadata`].
    pub async fn stat(&self, path: &str) -> Result<Metadata> {
        self.metadata(path).await
    }

    /// Attributes of `path` itself, not following a symlink, like
    /// [`std::fs::symlink_metadata`]: a symlink reports
    /// [`FileType::Symlink`](super::FileType::Symlink).
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
    /// [`Error::Sftp`] for failures other than "no such file", such as a
    /// parent directory the user may not search.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// if !sftp.exists(".config/app").await? {
    ///     sftp.mkdir_p(".config/app").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.raw().lstat(path).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(false),
            Err(e) => Err(self.err("lstat", path, e)),
        }
    }

    /// Create `path` and any missing parents, like `mkdir -p`. Existing
    /// directories are fine; an existing non-directory is an error. New
    /// directories get the server's default mode (OpenSSH: `0777` less its umask).
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the component that could not be created, or
    /// that exists and is not a directory.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// sftp.mkdir_p("/srv/app/releases/42").await?;
    /// sftp.mkdir_p("/srv/app/releases/42").await?; // already there: fine
    /// # Ok(()) }
    /// ```
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
    pub(super) async fn mkdir_if_missing(&self, path: &str, mode: Option<u32>) -> Result<()> {
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

    /// Create one directory, like [`std::fs::create_dir`]; its parent must
    /// exist. See [`Sftp::mkdir_p`] to create parents too.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason, including
    /// when `path` already exists.
    pub async fn create_dir(&self, path: &str) -> Result<()> {
        self.raw()
            .mkdir(path, FileAttributes::default())
            .await
            .map(drop)
            .map_err(|e| self.err("mkdir", path, e))
    }

    /// Remove an empty directory, like [`std::fs::remove_dir`].
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

    /// Remove a file or symlink (the link itself, not its target), like
    /// [`std::fs::remove_file`].
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
    ///
    /// # Examples
    ///
    /// Switch a `current` symlink over to a new release in one step:
    ///
    /// ```no_run
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// sftp.symlink("releases/42", "/srv/app/current.new").await?;
    /// sftp.rename("/srv/app/current.new", "/srv/app/current").await?;
    /// # Ok(()) }
    /// ```
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.replace(from, to)
            .await
            .map_err(|e| self.err("rename", from, e))
    }

    /// [`Sftp::rename`] with the raw error, so that uploads can name the
    /// operation and path their own way.
    pub(super) async fn replace(&self, from: &str, to: &str) -> Result<(), RawError> {
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

    /// Where the symlink at `path` points: the target as stored, not
    /// resolved, like [`std::fs::read_link`].
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

    /// Create a symlink at `link` pointing to `target`: the argument order
    /// of `ln -s` and `std::os::unix::fs::symlink`. `target` is stored as
    /// given and need not exist; a relative one is relative to the link's
    /// directory.
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

    /// Set the permission bits of `path` (`0o755`); bits above `0o7777` are
    /// ignored. Follows symlinks.
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
    /// Their metadata does not follow symlinks. The whole listing is read
    /// before this returns; a listing of more than [`MAX_DIR_ENTRIES`]
    /// entries is refused.
    ///
    /// # Errors
    /// [`Error::Sftp`] naming the path and the server's reason, or saying
    /// the listing was too long.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
    /// let logs: Vec<String> = sftp
    ///     .read_dir("/var/log/app")
    ///     .await?
    ///     .into_iter()
    ///     .filter(|e| e.metadata.is_file() && e.name.ends_with(".log"))
    ///     .map(|e| e.path)
    ///     .collect();
    /// # Ok(()) }
    /// ```
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
                    // A server can answer READDIR without end; the listing
                    // is held in memory, so it is bounded (issue 13).
                    if out.len() + name.files.len() > MAX_DIR_ENTRIES {
                        break Err(Error::Sftp {
                            operation: "readdir",
                            path: path.to_string(),
                            message: format!(
                                "the listing goes past {MAX_DIR_ENTRIES} entries (a listing without end?); refusing"
                            ),
                        });
                    }
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
}
