//! Self-destroy: the VM deletes itself through its provider's API, so a VM
//! that is done stops billing without the user's machine being online
//! (issue 12; opt-in, `self_destroy: on`).
//!
//! The request is one `DELETE` that `spuff up` prepared ([`SelfDestroy`]:
//! URL, bearer token, maybe a CA), so the agent needs no provider knowledge
//! and no TLS stack of its own: `curl` (in every cloud image) sends it. The
//! token never appears in argv or the environment: curl reads the header
//! from its standard input (`-H @-`).

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use spuff_agent_api::SelfDestroy;

/// Why a self-destroy did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DestroyError {
    /// The file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Others than root could read or change it: a token in such a file
    /// may be someone else's, or already leaked; it is not used.
    #[error("{path} must be owned by root and mode 0600 (it is {detail}); not using it")]
    Unsafe {
        /// The file.
        path: String,
        /// Its owner and mode.
        detail: String,
    },
    /// Not the JSON of [`SelfDestroy`], or not an https URL.
    #[error("{path} is not a valid self-destroy file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// curl could not be run or did not finish.
    #[error("cannot run curl: {0}")]
    Curl(io::Error),
    /// The provider refused or failed.
    #[error("{provider} answered HTTP {status} to the delete: {detail}")]
    Refused {
        /// The provider.
        provider: String,
        /// The status (0: no answer).
        status: u16,
        /// curl's error output.
        detail: String,
    },
}

/// Deletes this VM with the request in `path` (see
/// [`SELF_DESTROY_PATH`](spuff_agent_api::SELF_DESTROY_PATH)). A VM already
/// gone (404) counts as deleted.
///
/// # Errors
///
/// [`DestroyError`]: a missing, unsafe or invalid file, no curl, or a
/// refusal by the provider. The caller powers the VM off instead.
pub fn self_destroy(path: &Path) -> Result<String, DestroyError> {
    let shown = path.display().to_string();
    check_owner(path, &shown)?;
    let text = std::fs::read_to_string(path).map_err(|source| DestroyError::Read {
        path: shown.clone(),
        source,
    })?;
    let req: SelfDestroy = serde_json::from_str(&text).map_err(|e| DestroyError::Invalid {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    if !req.url.starts_with("https://") || req.url.contains(char::is_whitespace) {
        return Err(DestroyError::Invalid {
            path: shown,
            reason: "the URL must be https".into(),
        });
    }
    if req.token.is_empty() || req.token.contains(['\r', '\n']) {
        return Err(DestroyError::Invalid {
            path: shown,
            reason: "the token is empty or spans lines".into(),
        });
    }

    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--proto",
        "=https",
        "--max-time",
        "60",
        "--retry",
        "3",
        "--output",
        "/dev/null",
        "--write-out",
        "%{http_code}",
        "--request",
        "DELETE",
        "--header",
        "@-",
    ]);
    let ca = match &req.ca_pem {
        Some(pem) => {
            let ca = path.with_extension("ca.pem");
            write_private(&ca, pem.as_bytes()).map_err(DestroyError::Curl)?;
            cmd.arg("--cacert").arg(&ca);
            Some(ca)
        }
        None => None,
    };
    cmd.arg(&req.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let result = run(cmd, &req);
    if let Some(ca) = ca {
        let _ = std::fs::remove_file(ca);
    }
    let (status, detail) = result.map_err(DestroyError::Curl)?;
    if (200..300).contains(&status) || status == 404 {
        Ok(req.provider)
    } else {
        Err(DestroyError::Refused {
            provider: req.provider,
            status,
            detail,
        })
    }
}

/// Runs curl with the header on its stdin; the HTTP status and stderr.
fn run(mut cmd: Command, req: &SelfDestroy) -> io::Result<(u16, String)> {
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("Authorization: Bearer {}\n", req.token).as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let detail: String = String::from_utf8_lossy(&out.stderr)
        .trim()
        .chars()
        .take(300)
        .collect();
    Ok((status, detail))
}

#[cfg(unix)]
fn check_owner(path: &Path, shown: &str) -> Result<(), DestroyError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|source| DestroyError::Read {
        path: shown.to_string(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 || mode & 0o077 != 0 || !meta.file_type().is_file() {
        return Err(DestroyError::Unsafe {
            path: shown.to_string(),
            detail: format!("uid {}, mode {mode:o}", meta.uid()),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner(_path: &Path, _shown: &str) -> Result<(), DestroyError> {
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}
