//! The cloud-init layer's error type.
//!
//! Variants carry the facts (the field at fault, the size and the provider's
//! limit, the remote command that failed) and its [`Hint`](crate::Hint) turns them into
//! one line of advice, like the SSH and provider errors.

use crate::ssh;

/// A `Result` whose error is the cloud-init layer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from rendering user-data and installing the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value was refused before anything was rendered.
    #[error("invalid {field}{}: {reason}", value.as_deref().map(|v| format!(" {v:?}")).unwrap_or_default())]
    Invalid {
        /// The option at fault (`username`, `authorized_keys[1]`, `dotfiles.url`, …).
        field: String,
        /// The value, when it is not a secret and short enough to show.
        value: Option<String>,
        /// What is wrong with it.
        reason: String,
    },

    /// The rendered user-data is larger than the provider accepts, even with
    /// its files compressed.
    #[error(
        "user-data is {size} bytes{}, over the {limit}-byte limit{}",
        if *compressed { " after compressing its files" } else { "" },
        provider.map(|p| format!(" of {p}")).unwrap_or_default()
    )]
    TooLarge {
        /// Size of the smallest rendering, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
        /// The provider whose limit this is, when known.
        provider: Option<&'static str>,
        /// Whether `size` is with the files compressed (`gz+b64`).
        compressed: bool,
    },

    /// A template failed to render: a bug in spuff, not in the input.
    #[error("cannot render {template}: {message}")]
    Template {
        /// The template's file name.
        template: &'static str,
        /// What handlebars reported.
        message: String,
    },

    /// The host key could not be generated or read. No longer produced:
    /// [`HostKeyPair`](crate::ssh::HostKeyPair) now reports
    /// [`ssh::Error::HostKeyPair`], which arrives here as [`Error::Ssh`].
    /// Kept so that existing matches compile.
    #[error("host key: {0}")]
    HostKey(String),

    /// An SSH or SFTP step of installing the uploaded agent failed.
    #[error(transparent)]
    Ssh(#[from] ssh::Error),

    /// A command run on the VM to install or start the uploaded agent failed.
    #[error("on {host}: `{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    RemoteCommand {
        /// The VM.
        host: String,
        /// The command line.
        command: String,
        /// How it ended (`exit code 1`).
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

impl crate::Hint for Error {
    /// One line of advice the user can act on, when there is one.
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Invalid { field, .. } if field.starts_with("authorized_keys") => {
                "give public keys as single OpenSSH lines, such as the content of ~/.ssh/id_ed25519.pub".into()
            }
            Error::Invalid { field, .. } if field == "username" => {
                "use a lowercase login name such as `dev`: letters, digits, `_` and `-`, at most 32".into()
            }
            Error::Invalid { field, .. } if field.starts_with("dotfiles") => {
                "use an https:// or git@host:path repository URL and a plain branch name".into()
            }
            Error::Invalid { field, .. } if field.contains("packages") => {
                "use Debian package names (lowercase letters, digits, `+`, `-`, `.`)".into()
            }
            Error::Invalid { .. } => return None,
            Error::TooLarge { .. } => {
                "drop extra packages or move setup into your dotfiles' install.sh (fetched at boot, not sent as user-data)".into()
            }
            Error::Template { .. } | Error::HostKey(_) => {
                "this is a bug in spuff; please report it with the command you ran".into()
            }
            Error::Ssh(e) => return crate::Hint::hint(e),
            Error::RemoteCommand { command, .. } if command.contains("sudo -n") => {
                "the login user must be able to run sudo without a password (spuff's VMs allow it; check `sudo -n true` on the VM)".into()
            }
            Error::RemoteCommand { .. } => {
                "run the command on the VM by hand to see why, or check `journalctl -u spuff-agent`".into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hint;

    #[test]
    fn too_large_should_name_size_limit_and_provider() {
        let e = Error::TooLarge {
            size: 70000,
            limit: 65536,
            provider: Some("digitalocean"),
            compressed: true,
        };
        let s = e.to_string();
        assert!(
            s.contains("70000") && s.contains("65536") && s.contains("digitalocean"),
            "{s}"
        );
        assert!(s.contains("compress"), "{s}");
        assert!(e.hint().is_some());
    }

    #[test]
    fn invalid_should_show_the_value_when_given() {
        let e = Error::Invalid {
            field: "username".into(),
            value: Some("Root".into()),
            reason: "must be lowercase".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"invalid username "Root": must be lowercase"#
        );
        assert!(e.hint().unwrap_or_default().contains("dev"));
    }
}
