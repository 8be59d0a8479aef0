//! `SRC`/`DST` arguments of a copy: a local path or `NAME:path` on a VM.
//!
//! `spuff cp` takes scp-style locations. The syntax has to stay unambiguous on
//! Windows, where `C:\Users` is a local path and not a VM called `C`, so the
//! rules are written down here and tested for both platforms on either.
//!
//! A location is **local** when any of these holds, checked in order:
//!
//! 1. it has no `:` at all (`notes.txt`);
//! 2. a `/` or `\` comes before the first `:`: absolute Unix paths (`/a:b`),
//!    relative paths that name a directory (`./name:with:colons`,
//!    `dir/x:y`), UNC and verbatim paths (`\\server\share`, `\\?\C:\x`);
//! 3. the part before the first `:` is one ASCII letter, a drive letter, and
//!    either the rules are Windows' ([`PathStyle::Windows`]) or the `:` is
//!    followed by `\` or `/` (`C:\x`, `c:/x`). So on Windows `c:x` is the
//!    drive-relative path it is to every Windows program, while on Unix it
//!    names the file `x` in the home directory of the VM `c`.
//!
//! Otherwise it is **remote**: `NAME:path`, where `NAME` must be a valid
//! instance name ([`is_instance_name`]) and `path` is taken as is. An empty
//! path (`dev:`) means the remote home directory, and a relative path is
//! relative to it, as with scp. A prefix that is not a valid name (`Dev:x`,
//! `my vm:x`, `file.txt:stream`) is an error rather than a guess; write
//! `./Dev:x` for a local file with a colon in its name.
//!
//! One consequence of rule 3: a VM with a one-letter name cannot be given an
//! absolute path as `c:/etc`; use a relative path, or a longer name.
//!
//! # Examples
//!
//! ```
//! use spuff::location::{Location, PathStyle};
//!
//! let dst: Location = "dev:src/app".parse()?;
//! assert_eq!(dst, Location::Remote { instance: "dev".into(), path: "src/app".into() });
//!
//! let src = Location::parse(r"C:\Users\me\app", PathStyle::Unix)?;
//! assert!(!src.is_remote());
//! # Ok::<(), spuff::location::ParseError>(())
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The longest instance name: a DNS label, since the name becomes the VM's
/// host name at the provider.
pub const INSTANCE_NAME_MAX: usize = 63;

/// One end of a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A path on this machine.
    Local(PathBuf),
    /// A path on a spuff VM.
    Remote {
        /// The instance's name.
        instance: String,
        /// The path on the VM; empty for its home directory. Relative paths
        /// are relative to the home directory.
        path: String,
    },
}

/// Whose path rules to apply to drive letters (rule 3 in the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyle {
    /// `c:x` is the VM `c`; only `c:\x` and `c:/x` are drive paths.
    Unix,
    /// Any single letter before the `:` is a drive letter.
    Windows,
}

impl PathStyle {
    /// The rules of the platform this build runs on.
    pub const fn native() -> PathStyle {
        if cfg!(windows) {
            PathStyle::Windows
        } else {
            PathStyle::Unix
        }
    }
}

/// Why a location could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The argument was empty.
    #[error("empty location: give a local path or NAME:path")]
    Empty,
    /// The part before the `:` is not a valid instance name.
    #[error(
        "`{input}`: `{instance}` is not an instance name (1-{INSTANCE_NAME_MAX} lowercase \
         letters, digits and `-`); for a local file with `:` in its name write `./{input}`"
    )]
    InvalidInstance {
        /// The whole argument.
        input: String,
        /// The part before the first `:`.
        instance: String,
    },
}

impl Location {
    /// Parse `input` under the given drive letter rules; [`str::parse`]
    /// uses [`PathStyle::native`].
    ///
    /// # Errors
    /// [`ParseError::Empty`] for `""`; [`ParseError::InvalidInstance`] when it
    /// looks remote but the name is not a valid instance name.
    pub fn parse(input: &str, style: PathStyle) -> Result<Location, ParseError> {
        if input.is_empty() {
            return Err(ParseError::Empty);
        }
        let local = || Location::Local(PathBuf::from(input));
        let Some((prefix, rest)) = input.split_once(':') else {
            return Ok(local());
        };
        if prefix.contains(['/', '\\']) {
            return Ok(local());
        }
        let is_drive = prefix.len() == 1 && prefix.bytes().all(|b| b.is_ascii_alphabetic());
        if is_drive && (style == PathStyle::Windows || rest.starts_with(['/', '\\'])) {
            return Ok(local());
        }
        if !is_instance_name(prefix) {
            return Err(ParseError::InvalidInstance {
                input: input.to_string(),
                instance: prefix.to_string(),
            });
        }
        Ok(Location::Remote {
            instance: prefix.to_string(),
            path: rest.to_string(),
        })
    }

    /// Whether this is a path on a VM.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote { .. })
    }
}

impl FromStr for Location {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Location, ParseError> {
        Location::parse(s, PathStyle::native())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote { instance, path } => write!(f, "{instance}:{path}"),
        }
    }
}

/// Whether `name` is a valid instance name: 1 to [`INSTANCE_NAME_MAX`]
/// characters from `a-z`, `0-9` and `-`, not starting or ending with `-`
/// (a DNS label, as providers require of host names).
pub fn is_instance_name(name: &str) -> bool {
    (1..=INSTANCE_NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [PathStyle; 2] = [PathStyle::Unix, PathStyle::Windows];

    fn local(s: &str) -> Location {
        Location::Local(PathBuf::from(s))
    }

    fn remote(instance: &str, path: &str) -> Location {
        Location::Remote {
            instance: instance.into(),
            path: path.into(),
        }
    }

    #[track_caller]
    fn check(input: &str, style: PathStyle, want: Location) {
        assert_eq!(
            Location::parse(input, style),
            Ok(want),
            "{input} ({style:?})"
        );
    }

    #[test]
    fn names_with_a_colon_should_be_remote() {
        for style in BOTH {
            check("dev:src/app", style, remote("dev", "src/app"));
            check("dev:/etc/hosts", style, remote("dev", "/etc/hosts"));
            check("web-2:a:b", style, remote("web-2", "a:b"));
            check("dev:~/x", style, remote("dev", "~/x"));
        }
    }

    #[test]
    fn empty_remote_path_should_mean_the_home_dir() {
        for style in BOTH {
            check("dev:", style, remote("dev", ""));
        }
    }

    #[test]
    fn paths_without_a_colon_should_be_local() {
        for style in BOTH {
            check("notes.txt", style, local("notes.txt"));
            check("dir/sub", style, local("dir/sub"));
            check(r"dir\sub", style, local(r"dir\sub"));
        }
    }

    #[test]
    fn a_separator_before_the_colon_should_make_it_local() {
        for style in BOTH {
            check("/a:b", style, local("/a:b"));
            check("./name:with:colons", style, local("./name:with:colons"));
            check("../dev:x", style, local("../dev:x"));
            check("dir/x:y", style, local("dir/x:y"));
            check(r".\dev:x", style, local(r".\dev:x"));
        }
    }

    #[test]
    fn unc_and_verbatim_paths_should_be_local() {
        for style in BOTH {
            check(r"\\server\share\x", style, local(r"\\server\share\x"));
            check(r"\\server\share\a:b", style, local(r"\\server\share\a:b"));
            check(r"\\?\C:\x", style, local(r"\\?\C:\x"));
            check("//server/share/x:y", style, local("//server/share/x:y"));
        }
    }

    #[test]
    fn drive_letter_with_a_separator_should_be_local_everywhere() {
        for style in BOTH {
            check(r"C:\Users\me", style, local(r"C:\Users\me"));
            check("C:/Users/me", style, local("C:/Users/me"));
            check(r"c:\x", style, local(r"c:\x"));
            check("c:/x", style, local("c:/x"));
        }
    }

    #[test]
    fn drive_relative_paths_should_be_local_only_under_windows_rules() {
        check("c:x", PathStyle::Windows, local("c:x"));
        check("C:x", PathStyle::Windows, local("C:x"));
        check("c:", PathStyle::Windows, local("c:"));
        check("c:x", PathStyle::Unix, remote("c", "x"));
        check("c:", PathStyle::Unix, remote("c", ""));
        // Uppercase is never an instance name, so under Unix rules it is an error.
        assert!(Location::parse("C:x", PathStyle::Unix).is_err());
    }

    #[test]
    fn invalid_instance_names_should_be_errors_not_guesses() {
        for style in BOTH {
            for input in [
                "Dev:x",
                "my vm:x",
                "file.txt:stream",
                "a_b:x",
                "-dev:x",
                ":x",
            ] {
                let err = Location::parse(input, style).expect_err(input);
                assert!(
                    matches!(&err, ParseError::InvalidInstance { input: i, .. } if i == input),
                    "{input}: {err:?}"
                );
                assert!(err.to_string().contains(&format!("./{input}")), "{err}");
            }
        }
    }

    #[test]
    fn empty_input_should_be_an_error() {
        for style in BOTH {
            assert_eq!(Location::parse("", style), Err(ParseError::Empty));
        }
    }

    #[test]
    fn instance_names_should_be_dns_labels() {
        assert!(is_instance_name("a"));
        assert!(is_instance_name("dev-2"));
        assert!(is_instance_name(&"x".repeat(63)));
        assert!(!is_instance_name(&"x".repeat(64)));
        assert!(!is_instance_name(""));
        assert!(!is_instance_name("dev-"));
        assert!(!is_instance_name("-dev"));
        assert!(!is_instance_name("Dev"));
        assert!(!is_instance_name("dév"));
        assert!(!is_instance_name("a.b"));
    }

    #[test]
    fn display_should_round_trip() {
        for input in ["dev:src/app", "dev:", "notes.txt", "/a:b"] {
            let loc = Location::parse(input, PathStyle::Unix).expect(input);
            assert_eq!(loc.to_string(), input);
            assert_eq!(Location::parse(&loc.to_string(), PathStyle::Unix), Ok(loc));
        }
    }

    #[test]
    fn from_str_should_use_native_rules() {
        let parsed: Result<Location, _> = "c:x".parse();
        let want = Location::parse("c:x", PathStyle::native());
        assert_eq!(parsed, want);
        assert_eq!("dev:x".parse::<Location>(), Ok(remote("dev", "x")));
    }
}
