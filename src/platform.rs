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
