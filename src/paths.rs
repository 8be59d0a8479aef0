//! Where spuff keeps its files, and where the user's SSH files are.
//!
//! spuff follows each platform's conventions rather than inventing a dotfile:
//!
//! | | config ([`config_dir`]) | data ([`data_dir`]) |
//! | --- | --- | --- |
//! | Linux, BSD | `$XDG_CONFIG_HOME/spuff` or `~/.config/spuff` | `$XDG_DATA_HOME/spuff` or `~/.local/share/spuff` |
//! | macOS | `~/Library/Application Support/spuff` | the same |
//! | Windows | `%APPDATA%\spuff` (roaming) | `%LOCALAPPDATA%\spuff` |
//!
//! `SPUFF_CONFIG_DIR` replaces the config directory on every platform (tests
//! and portable installs use it). spuff's own known_hosts file
//! ([`known_hosts_path`]) lives in the config directory, so trust decisions
//! follow the user's config between machines; the user's OpenSSH files
//! ([`user_known_hosts`], [`default_identity_files`]) are read where OpenSSH
//! keeps them, `~/.ssh`, which on Windows is `%USERPROFILE%\.ssh`.
//!
//! The environment wins over the system: a set `HOME`, `XDG_*`, `APPDATA`,
//! `LOCALAPPDATA` or `USERPROFILE` is used as is, and only when one is unset
//! does spuff ask the system through the [`dirs`] crate (the passwd entry on
//! Unix, the Known Folder API on Windows). That keeps the rules one pure
//! function of the environment, unit-tested for every platform on any of them,
//! and lets a test redirect every location with environment variables alone.
//! Empty variables count as unset, and relative `XDG_*` values are ignored,
//! as the XDG Base Directory specification asks.
//!
//! Nothing here creates directories; callers create what they write to.
//!
//! # Examples
//!
//! ```no_run
//! use spuff::ssh::HostKeyPolicy;
//!
//! # fn demo() -> Result<(), spuff::paths::Error> {
//! // Trust on first use, remembered in spuff's own known_hosts file:
//! let policy = HostKeyPolicy::accept_new(spuff::paths::known_hosts_path()?);
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::platform::Os;

/// The variable that replaces spuff's config directory on every platform.
pub const CONFIG_DIR_VAR: &str = "SPUFF_CONFIG_DIR";

/// The name of spuff's directories inside the platform's config and data dirs.
const APP: &str = "spuff";

/// Private keys OpenSSH tries by default, in its order, minus the DSA and
/// security-key types spuff does not use.
const IDENTITY_FILES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Why a location could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither the environment nor the system says where a directory is.
    #[error("cannot tell where the {what} is: {looked_at} not set and the system reports none")]
    NotFound {
        /// What was looked for: `"config directory"`, `"home directory"`, …
        what: &'static str,
        /// The environment variables consulted, such as `"SPUFF_CONFIG_DIR, XDG_CONFIG_HOME or HOME"`.
        looked_at: &'static str,
    },
}

impl crate::Hint for Error {
    /// One line of advice for the user.
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NotFound { .. } => {
                format!("set {CONFIG_DIR_VAR} to the directory spuff should keep its files in")
            }
        })
    }
}

/// A `Result` whose error is [`paths::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// spuff's config directory: config files and spuff's own known_hosts.
///
/// `SPUFF_CONFIG_DIR` when set; otherwise the platform's config directory
/// joined with `spuff` (see the [module docs](self)).
///
/// # Errors
/// [`Error::NotFound`] when neither the environment nor the system names a
/// home or config directory.
pub fn config_dir() -> Result<PathBuf> {
    config_dir_in(Os::CURRENT, &system_env)
}

/// spuff's data directory: state that is specific to this machine.
///
/// # Errors
/// [`Error::NotFound`] when neither the environment nor the system names a
/// home or data directory.
pub fn data_dir() -> Result<PathBuf> {
    data_dir_in(Os::CURRENT, &system_env)
}

/// spuff's own known_hosts file, `known_hosts` in [`config_dir`]. It may not
/// exist yet; [`HostKeyPolicy::record_in`](crate::ssh::HostKeyPolicy::record_in)
/// creates it.
///
/// # Errors
/// As [`config_dir`].
pub fn known_hosts_path() -> Result<PathBuf> {
    Ok(config_dir()?.join("known_hosts"))
}

/// The user's OpenSSH known_hosts file, `~/.ssh/known_hosts`
/// (`%USERPROFILE%\.ssh\known_hosts` on Windows). It may not exist.
///
/// # Errors
/// [`Error::NotFound`] when the home directory cannot be found.
pub fn user_known_hosts() -> Result<PathBuf> {
    Ok(ssh_dir_in(Os::CURRENT, &system_env)?.join("known_hosts"))
}

/// The user's default private keys that exist, in the order OpenSSH tries
/// them: `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa`, `~/.ssh/id_rsa`.
///
/// # Errors
/// [`Error::NotFound`] when the home directory cannot be found.
pub fn default_identity_files() -> Result<Vec<PathBuf>> {
    Ok(identity_candidates(&ssh_dir_in(Os::CURRENT, &system_env)?)
        .into_iter()
        .filter(|p| p.is_file())
        .collect())
}

/// Reads an environment variable; `None` when unset.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The real environment, with the system's answer standing in for the
/// variables that name standard folders when they are unset.
fn system_env(name: &str) -> Option<OsString> {
    if let Some(v) = std::env::var_os(name).filter(|v| !v.is_empty()) {
        return Some(v);
    }
    let from_system = match name {
        "HOME" | "USERPROFILE" => dirs::home_dir(),
        // On Windows `dirs` asks the Known Folder API for exactly these two.
        "APPDATA" if cfg!(windows) => dirs::config_dir(),
        "LOCALAPPDATA" if cfg!(windows) => dirs::data_local_dir(),
        _ => None,
    };
    from_system.map(PathBuf::into_os_string)
}

/// `name`, unless unset or empty.
fn var(env: Lookup<'_>, name: &str) -> Option<PathBuf> {
    env(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// An `XDG_*` variable, which the specification says to ignore when relative.
/// `has_root` is `is_absolute` on Unix, and also accepts `/x` when these Unix
/// rules are tested on Windows.
fn xdg(env: Lookup<'_>, name: &str) -> Option<PathBuf> {
    var(env, name).filter(|p| p.has_root())
}

fn home_in(os: Os, env: Lookup<'_>) -> Result<PathBuf> {
    // OpenSSH for Windows looks in the profile directory and ignores HOME,
    // which Git for Windows and MSYS set to something else.
    let name = match os {
        Os::Windows => "USERPROFILE",
        Os::Unix | Os::Mac => "HOME",
    };
    var(env, name).ok_or(Error::NotFound {
        what: "home directory",
        looked_at: name,
    })
}

fn config_dir_in(os: Os, env: Lookup<'_>) -> Result<PathBuf> {
    if let Some(dir) = var(env, CONFIG_DIR_VAR) {
        return Ok(dir);
    }
    let not_found = |looked_at| Error::NotFound {
        what: "config directory",
        looked_at,
    };
    let base = match os {
        Os::Unix => match xdg(env, "XDG_CONFIG_HOME") {
            Some(dir) => dir,
            None => home_in(os, env)
                .map_err(|_| not_found("SPUFF_CONFIG_DIR, XDG_CONFIG_HOME or HOME"))?
                .join(".config"),
        },
        Os::Mac => home_in(os, env)
            .map_err(|_| not_found("SPUFF_CONFIG_DIR or HOME"))?
            .join("Library")
            .join("Application Support"),
        Os::Windows => {
            var(env, "APPDATA").ok_or_else(|| not_found("SPUFF_CONFIG_DIR or APPDATA"))?
        }
    };
    Ok(base.join(APP))
}

fn data_dir_in(os: Os, env: Lookup<'_>) -> Result<PathBuf> {
    let not_found = |looked_at| Error::NotFound {
        what: "data directory",
        looked_at,
    };
    let base = match os {
        Os::Unix => match xdg(env, "XDG_DATA_HOME") {
            Some(dir) => dir,
            None => home_in(os, env)
                .map_err(|_| not_found("XDG_DATA_HOME or HOME"))?
                .join(".local")
                .join("share"),
        },
        Os::Mac => home_in(os, env)
            .map_err(|_| not_found("HOME"))?
            .join("Library")
            .join("Application Support"),
        // Local, not roaming: data such as state is about this machine.
        Os::Windows => var(env, "LOCALAPPDATA").ok_or_else(|| not_found("LOCALAPPDATA"))?,
    };
    Ok(base.join(APP))
}

fn ssh_dir_in(os: Os, env: Lookup<'_>) -> Result<PathBuf> {
    Ok(home_in(os, env)?.join(".ssh"))
}

fn identity_candidates(ssh_dir: &Path) -> Vec<PathBuf> {
    IDENTITY_FILES.iter().map(|f| ssh_dir.join(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hint;

    /// A lookup over a fixed set of variables.
    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn p(base: &str, parts: &[&str]) -> PathBuf {
        parts.iter().fold(PathBuf::from(base), |acc, x| acc.join(x))
    }

    #[test]
    fn unix_dirs_should_default_under_home() {
        let e = env(&[("HOME", "/home/me")]);
        assert_eq!(
            config_dir_in(Os::Unix, &e),
            Ok(p("/home/me", &[".config", "spuff"]))
        );
        assert_eq!(
            data_dir_in(Os::Unix, &e),
            Ok(p("/home/me", &[".local", "share", "spuff"]))
        );
        assert_eq!(ssh_dir_in(Os::Unix, &e), Ok(p("/home/me", &[".ssh"])));
    }

    #[test]
    fn unix_dirs_should_honour_absolute_xdg_variables() {
        let e = env(&[
            ("HOME", "/home/me"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("XDG_DATA_HOME", "/data"),
        ]);
        assert_eq!(config_dir_in(Os::Unix, &e), Ok(p("/cfg", &["spuff"])));
        assert_eq!(data_dir_in(Os::Unix, &e), Ok(p("/data", &["spuff"])));
    }

    #[test]
    fn unix_dirs_should_ignore_relative_or_empty_xdg_variables() {
        let e = env(&[
            ("HOME", "/home/me"),
            ("XDG_CONFIG_HOME", "relative/cfg"),
            ("XDG_DATA_HOME", ""),
        ]);
        assert_eq!(
            config_dir_in(Os::Unix, &e),
            Ok(p("/home/me", &[".config", "spuff"]))
        );
        assert_eq!(
            data_dir_in(Os::Unix, &e),
            Ok(p("/home/me", &[".local", "share", "spuff"]))
        );
    }

    #[test]
    fn macos_dirs_should_be_in_application_support() {
        let e = env(&[("HOME", "/Users/me"), ("XDG_CONFIG_HOME", "/cfg")]);
        let want = p("/Users/me", &["Library", "Application Support", "spuff"]);
        assert_eq!(config_dir_in(Os::Mac, &e), Ok(want.clone()));
        assert_eq!(data_dir_in(Os::Mac, &e), Ok(want));
    }

    #[test]
    fn windows_dirs_should_use_appdata_and_localappdata() {
        let e = env(&[
            ("HOME", "/c/Users/me"),
            ("USERPROFILE", r"C:\Users\me"),
            ("APPDATA", r"C:\Users\me\AppData\Roaming"),
            ("LOCALAPPDATA", r"C:\Users\me\AppData\Local"),
        ]);
        assert_eq!(
            config_dir_in(Os::Windows, &e),
            Ok(p(r"C:\Users\me\AppData\Roaming", &["spuff"]))
        );
        assert_eq!(
            data_dir_in(Os::Windows, &e),
            Ok(p(r"C:\Users\me\AppData\Local", &["spuff"]))
        );
        // ~/.ssh is under the profile, not Git for Windows' HOME.
        assert_eq!(
            ssh_dir_in(Os::Windows, &e),
            Ok(p(r"C:\Users\me", &[".ssh"]))
        );
    }

    #[test]
    fn config_dir_should_take_the_override_on_every_platform() {
        let e = env(&[
            ("HOME", "/home/me"),
            ("APPDATA", r"C:\x"),
            ("SPUFF_CONFIG_DIR", "/tmp/spuff-test"),
        ]);
        for os in [Os::Unix, Os::Mac, Os::Windows] {
            assert_eq!(config_dir_in(os, &e), Ok(PathBuf::from("/tmp/spuff-test")));
        }
        // The data dir is not moved by it.
        assert_eq!(
            data_dir_in(Os::Unix, &e),
            Ok(p("/home/me", &[".local", "share", "spuff"]))
        );
    }

    #[test]
    fn empty_override_should_count_as_unset() {
        let e = env(&[("HOME", "/home/me"), ("SPUFF_CONFIG_DIR", "")]);
        assert_eq!(
            config_dir_in(Os::Unix, &e),
            Ok(p("/home/me", &[".config", "spuff"]))
        );
    }

    #[test]
    fn missing_home_should_name_what_was_looked_at() {
        let e = env(&[]);
        let err = config_dir_in(Os::Unix, &e).expect_err("no home");
        assert_eq!(
            err,
            Error::NotFound {
                what: "config directory",
                looked_at: "SPUFF_CONFIG_DIR, XDG_CONFIG_HOME or HOME"
            }
        );
        assert!(err.to_string().contains("XDG_CONFIG_HOME"));
        assert!(err.hint().unwrap_or_default().contains("SPUFF_CONFIG_DIR"));
        let err = ssh_dir_in(Os::Windows, &e).expect_err("no profile");
        assert!(err.to_string().contains("USERPROFILE"), "{err}");
        assert!(data_dir_in(Os::Windows, &e).is_err());
    }

    #[test]
    fn identity_candidates_should_follow_openssh_order() {
        let dir = Path::new("/h/.ssh");
        assert_eq!(
            identity_candidates(dir),
            ["id_ed25519", "id_ecdsa", "id_rsa"].map(|f| dir.join(f))
        );
    }

    #[test]
    fn public_functions_should_agree_with_the_override() {
        // Only reads the real environment; whatever it is, the known_hosts
        // file is inside the config dir.
        if let (Ok(dir), Ok(kh)) = (config_dir(), known_hosts_path()) {
            assert_eq!(kh, dir.join("known_hosts"));
        }
    }
}
