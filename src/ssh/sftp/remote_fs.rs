//! Remote filesystem operations on an [`Sftp`] session, one request each.

use russh_sftp::client::error::Error as RawError;
use russh_sftp::protocol::{FileAttributes, Packet, StatusCode};

use super::{DirEntry, Metadata, Sftp, is_status, not_a_dir};
use crate::ssh::{Error, Result};

/// `dir/name` for remote paths, which always use `/`.
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
