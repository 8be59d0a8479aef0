//! Which platform's rules apply, as a value.
//!
//! Code that differs by platform (where files live, which agents to try, how
//! paths are spelled) decides on an [`Os`] passed in rather than on `cfg!`
//! directly, so the Windows rules are unit-tested on Linux and the other way
//! round. Only [`Os::CURRENT`] looks at the build target.

/// A family of platforms with the same rules for spuff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Os {
    /// Linux, the BSDs and other Unix systems that follow XDG.
    Unix,
    /// macOS: Unix, but files go under `~/Library`.
    Mac,
    /// Windows.
    Windows,
}

impl Os {
    /// The platform this build runs on.
    pub(crate) const CURRENT: Os = if cfg!(windows) {
        Os::Windows
    } else if cfg!(target_os = "macos") {
        Os::Mac
    } else {
        Os::Unix
    };
}

/// Creates `path` if missing, readable and writable by the owner only, and
/// tightens an existing file to that mode: spuff's files that hold secrets
/// (state, config) go through here.
///
/// On Windows, files under the user's profile already inherit an ACL that
/// keeps other users out, so the file is only created.
pub(crate) fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let file = opts.open(path)?;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    opts.open(path)?;
    Ok(())
}
