//! What the server says about a remote file: [`Metadata`], [`FileType`], [`DirEntry`].
//!
//! SFTP version 3 sends attributes as a set of optional fields, with the
//! file's type folded into the mode word. These types give them one plain
//! shape, close to [`std::fs::Metadata`], so callers never decode mode bits
//! or handle fields the server left out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::FileAttributes;

/// Kind of a remote file, decoded from the type bits of its mode
/// (`mode & 0o170000`) as `ls` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only from
    /// [`Sftp::symlink_metadata`](super::Sftp::symlink_metadata) and
    /// [`Sftp::read_dir`](super::Sftp::read_dir)).
    Symlink,
    /// A device, socket or FIFO, or the server did not say.
    Other,
}

/// Attributes of a remote file.
///
/// From [`Sftp::metadata`](super::Sftp::metadata) (following symlinks),
/// [`Sftp::symlink_metadata`](super::Sftp::symlink_metadata) and
/// [`Sftp::read_dir`](super::Sftp::read_dir) (not following them). SFTP makes
/// every attribute optional: one the server leaves out reads as 0, and a
/// missing mode gives [`FileType::Other`]. OpenSSH sends them all.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(sftp: spuff::sftp::Sftp) -> Result<(), spuff::ssh::Error> {
/// let m = sftp.metadata("/etc/hostname").await?;
/// assert!(m.is_file());
/// println!("{} bytes, mode {:o}, changed {:?}", m.size, m.permissions(), m.modified());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Size in bytes.
    pub size: u64,
    /// Unix mode: type and permission bits (`0o100644`).
    pub mode: u32,
    /// Modification time, whole seconds since the Unix epoch (SFTP version 3
    /// has nothing finer).
    pub mtime: u64,
    /// What kind of file it is.
    pub file_type: FileType,
}

impl Metadata {
    /// Decode the server's attributes; missing ones read as 0.
    pub(super) fn from_attrs(a: &FileAttributes) -> Metadata {
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
        time_from_secs(self.mtime)
    }
}

/// `secs` after the epoch, or the epoch itself where `SystemTime` cannot
/// hold that: a time the VM sends (an SFTP reply, a tar header, a stream's
/// line) must not overflow the addition, which panics.
pub(super) fn time_from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}

/// One entry of a remote directory, from [`Sftp::read_dir`](super::Sftp::read_dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name within the directory.
    pub name: String,
    /// The directory as given joined with `name` (so relative when the
    /// directory was).
    pub path: String,
    /// Its attributes, not following symlinks.
    pub metadata: Metadata,
}

#[cfg(test)]
mod tests {
    use super::*;

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
