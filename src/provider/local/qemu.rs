//! Finding QEMU on the user's machine, checking it is new enough, and the
//! `qemu-img` calls a local VM's disks need.
//!
//! A missing or old QEMU is the first thing a new user of the local provider
//! meets, so its error says what was looked for, what was found, and the
//! install command for their platform. `qemu-img` is QEMU's own disk tool
//! (the overlay on the base image, snapshots of a stopped disk): writing
//! qcow2 by hand would be a second, less tested implementation of QEMU's
//! format.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::provider::ProviderError;

/// The oldest QEMU spuff drives: 6.2 (Ubuntu 22.04's) has every flag and
/// QMP command the provider uses.
pub const MIN_VERSION: (u32, u32) = (6, 2);

/// How long a `qemu-img` or `--version` call may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

/// The QEMU programs a local VM needs, found and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    /// `qemu-system-<arch>`.
    pub system: PathBuf,
    /// `qemu-img`.
    pub img: PathBuf,
    /// The system emulator's version (major, minor, micro).
    pub version: (u32, u32, u32),
}

/// The system emulator's file name for this host (`qemu-system-x86_64`).
pub fn system_name() -> String {
    // Rust's and QEMU's architecture names agree (x86_64, aarch64).
    format!(
        "qemu-system-{}{}",
        std::env::consts::ARCH,
        std::env::consts::EXE_SUFFIX
    )
}

/// How to install QEMU on this platform, as one command.
pub fn install_command() -> &'static str {
    match std::env::consts::OS {
        "macos" => "brew install qemu",
        "windows" => "winget install SoftwareFreedomConservancy.QEMU",
        _ if Path::new("/etc/debian_version").exists() => {
            "sudo apt-get install qemu-system-x86 qemu-utils (Debian 12: from bookworm-backports)"
        }
        _ if Path::new("/etc/fedora-release").exists()
            || Path::new("/etc/redhat-release").exists() =>
        {
            "sudo dnf install qemu-system-x86 qemu-img"
        }
        _ if Path::new("/etc/arch-release").exists() => "sudo pacman -S qemu-base",
        _ => "install QEMU (qemu-system and qemu-img) with your package manager",
    }
}

fn host_error(operation: &str, message: String, hint: Option<String>) -> ProviderError {
    ProviderError::Host {
        provider: super::NAME,
        operation: operation.to_string(),
        message,
        detail: None,
        hint,
    }
}

/// Looks `name` up in `PATH` (or takes `explicit` as given).
fn find(name: &str, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return path.is_file().then(|| path.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Parses `QEMU emulator version 10.0.2 (Debian …)`.
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let micro = parts.next().flatten().unwrap_or(0);
    Some((major, minor, micro))
}

impl Qemu {
    /// Finds `qemu-system-<arch>` and `qemu-img` (next to it first, then in
    /// `PATH`) and checks the version.
    ///
    /// # Errors
    /// [`ProviderError::Host`] saying what is missing or too old, with the
    /// install command.
    pub async fn find(explicit: Option<&Path>) -> Result<Qemu, ProviderError> {
        let name = system_name();
        let install = || Some(format!("install QEMU: {}", install_command()));
        let system = find(&name, explicit).ok_or_else(|| {
            host_error(
                "finding QEMU",
                match explicit {
                    Some(p) => format!("{} does not exist", p.display()),
                    None => format!("{name} is not installed (not found in PATH)"),
                },
                install(),
            )
        })?;
        let img_name = format!("qemu-img{}", std::env::consts::EXE_SUFFIX);
        let img = system
            .parent()
            .map(|d| d.join(&img_name))
            .filter(|p| p.is_file())
            .or_else(|| find(&img_name, None))
            .ok_or_else(|| {
                host_error(
                    "finding QEMU",
                    format!("{img_name} is not installed (not found next to {name} or in PATH)"),
                    install(),
                )
            })?;
        let out = run(
            &system,
            ["--version"].map(Into::into).as_slice(),
            "asking QEMU its version",
        )
        .await?;
        let version = parse_version(&out).ok_or_else(|| {
            host_error(
                "asking QEMU its version",
                format!(
                    "{} printed no version: {}",
                    system.display(),
                    crate::util::terminal_safe(out.lines().next().unwrap_or_default())
                ),
                install(),
            )
        })?;
        if (version.0, version.1) < MIN_VERSION {
            return Err(host_error(
                "checking QEMU",
                format!(
                    "{} is QEMU {}.{}.{}; spuff needs {}.{} or newer",
                    system.display(),
                    version.0,
                    version.1,
                    version.2,
                    MIN_VERSION.0,
                    MIN_VERSION.1
                ),
                Some(format!("upgrade QEMU: {}", install_command())),
            ));
        }
        Ok(Qemu {
            system,
            img,
            version,
        })
    }

    /// Runs `qemu-img` with `args` and returns its standard output.
    ///
    /// # Errors
    /// [`ProviderError::Host`] with what `qemu-img` said.
    pub async fn img(
        &self,
        args: &[std::ffi::OsString],
        operation: &str,
    ) -> Result<String, ProviderError> {
        run(&self.img, args, operation).await
    }

    /// Facts about an image file: its format and virtual size.
    ///
    /// # Errors
    /// [`ProviderError::Host`] when `qemu-img` cannot read it.
    pub async fn info(&self, image: &Path) -> Result<ImageInfo, ProviderError> {
        let out = self
            .img(
                &[
                    "info".into(),
                    "--output=json".into(),
                    "-U".into(),
                    image.into(),
                ],
                "reading the image",
            )
            .await?;
        let value: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
            host_error(
                "reading the image",
                format!("qemu-img info printed no JSON for {}: {e}", image.display()),
                None,
            )
        })?;
        let format = value
            .get("format")
            .and_then(serde_json::Value::as_str)
            .filter(|f| matches!(*f, "qcow2" | "raw" | "vmdk" | "vdi" | "vhdx" | "qed"))
            .ok_or_else(|| {
                host_error(
                    "reading the image",
                    format!("{} is not a disk image QEMU can boot", image.display()),
                    None,
                )
            })?
            .to_string();
        let virtual_size = value
            .get("virtual-size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        Ok(ImageInfo {
            format,
            virtual_size,
        })
    }
}

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `qcow2`, `raw`, …
    pub format: String,
    /// The disk size the guest sees, bytes.
    pub virtual_size: u64,
}

/// Runs a QEMU tool, returning stdout, or an error with its stderr.
async fn run(
    program: &Path,
    args: &[std::ffi::OsString],
    operation: &str,
) -> Result<String, ProviderError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            host_error(
                operation,
                format!("cannot run {}: {e}", program.display()),
                Some(format!("install QEMU: {}", install_command())),
            )
        })?;
    let out = tokio::time::timeout(TOOL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            host_error(
                operation,
                format!(
                    "{} did not finish within {}",
                    program.display(),
                    crate::util::fmt_duration(TOOL_TIMEOUT)
                ),
                None,
            )
        })?
        .map_err(|e| host_error(operation, format!("{}: {e}", program.display()), None))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(host_error(
            operation,
            format!(
                "{} failed ({}): {}",
                program.file_name().unwrap_or_default().to_string_lossy(),
                out.status,
                crate::util::terminal_safe(stderr.trim())
            ),
            None,
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_should_parse_from_qemus_banner() {
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright"),
            Some((10, 0, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 6.2.0"),
            Some((6, 2, 0))
        );
        assert_eq!(parse_version("QEMU emulator version 8"), Some((8, 0, 0)));
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn the_system_emulator_should_be_named_for_the_host() {
        assert!(system_name().starts_with("qemu-system-"));
    }
}
