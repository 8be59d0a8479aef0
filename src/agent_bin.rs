//! The VM agent builds spuff carries inside its own binary (issue 18), and
//! the checks any agent binary passes before it is installed as root.
//!
//! A user on Windows or macOS has no Linux agent to upload, and a binary
//! found in the working directory is how a planted one would become root
//! on the VM. So release and CI builds embed static Linux (musl) builds of
//! `spuff-agent` for x86_64 and aarch64, gzip-compressed, with the SHA-256
//! of each recorded when spuff was built (`ci/build-agents.sh`, then
//! `build.rs`). `up` picks the one for the VM's architecture, streams it
//! still compressed, and the VM checks the SHA-256 of what it unpacked
//! before installing it. A developer build without them carries none
//! ([`embedded`] is empty) and `up` says how to get them.
//!
//! An agent given by path (`--agent-binary`) must be a Linux ELF for the
//! VM's architecture: [`check_elf`] refuses a Windows or macOS program, a
//! script, a 32-bit or big-endian build, or another architecture's, in
//! words a user can act on.

use std::fmt;
use std::io::Read as _;

/// A VM's CPU architecture, as far as agents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    /// x86_64 (amd64).
    X86_64,
    /// aarch64 (arm64).
    Aarch64,
}

impl Arch {
    /// Every architecture spuff has agents for.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The name `uname -m` prints on Linux (`x86_64`, `aarch64`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// From `uname -m` (or a name a user types: `amd64`, `arm64`).
    pub fn from_name(name: &str) -> Option<Arch> {
        match name.trim() {
            "x86_64" | "amd64" | "x64" => Some(Arch::X86_64),
            "aarch64" | "arm64" | "armv8" | "aarch64_be" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// The ELF `e_machine` of its executables.
    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Arch, String> {
        Arch::from_name(s).ok_or_else(|| format!("`{s}` is not x86_64 or aarch64"))
    }
}

/// An agent build carried inside spuff.
#[derive(Clone, Copy)]
pub struct Embedded {
    /// The architecture it runs on.
    pub arch: Arch,
    /// The SHA-256 of the binary (not of its compressed form), lowercase
    /// hex, recorded when spuff was built.
    pub sha256: &'static str,
    /// The binary's size in bytes.
    pub size: u64,
    gz: &'static [u8],
}

impl fmt::Debug for Embedded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedded")
            .field("arch", &self.arch)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("compressed", &self.gz.len())
            .finish()
    }
}

impl Embedded {
    /// The binary, gzip-compressed, as it is carried.
    pub fn compressed(&self) -> &'static [u8] {
        self.gz
    }

    /// The binary itself, checked against its recorded SHA-256 and size.
    ///
    /// # Errors
    /// When it does not unpack to what was recorded (a damaged spuff).
    pub fn binary(&self) -> Result<Vec<u8>, AgentError> {
        let mut out = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        flate2::read::GzDecoder::new(self.gz)
            .take(self.size.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| AgentError::Damaged {
                arch: self.arch,
                reason: e.to_string(),
            })?;
        let sum = sha256_hex(&out);
        if out.len() as u64 != self.size || sum != self.sha256 {
            return Err(AgentError::Damaged {
                arch: self.arch,
                reason: format!(
                    "it unpacks to {} bytes with SHA-256 {sum}, not {} bytes with {}",
                    out.len(),
                    self.size,
                    self.sha256
                ),
            });
        }
        Ok(out)
    }
}

static EMBEDDED: &[Embedded] = include!(concat!(env!("OUT_DIR"), "/embedded_agents.rs"));

/// The agents this spuff carries; empty in a build made without them.
pub fn all() -> &'static [Embedded] {
    EMBEDDED
}

/// The agent this spuff carries for `arch`, if any.
pub fn embedded(arch: Arch) -> Option<&'static Embedded> {
    EMBEDDED.iter().find(|e| e.arch == arch)
}

/// Why an agent binary is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Not a Linux executable for the VM.
    #[error("{what} is not a Linux agent for an {arch} VM: {reason}")]
    NotForVm {
        /// What was checked (a path).
        what: String,
        /// The VM's architecture.
        arch: Arch,
        /// What it is instead.
        reason: String,
    },
    /// An embedded agent does not unpack to what was recorded.
    #[error("the {arch} agent inside spuff is damaged: {reason}")]
    Damaged {
        /// Its architecture.
        arch: Arch,
        /// How.
        reason: String,
    },
    /// This spuff carries no agent for the VM's architecture.
    #[error("this spuff carries no agent for {arch} VMs")]
    NoneEmbedded {
        /// The VM's architecture.
        arch: Arch,
    },
}

impl crate::Hint for AgentError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            AgentError::NotForVm { arch, .. } => format!(
                "give --agent-binary a static Linux build for {arch} \
                 (`bash ci/build-agents.sh` makes them), or leave it out to use the one inside spuff"
            ),
            AgentError::Damaged { .. } => {
                "reinstall spuff; a copy that fails this check must not be trusted".into()
            }
            AgentError::NoneEmbedded { .. } => {
                "this is a developer build: run `bash ci/build-agents.sh` and build spuff again, \
                 pass --agent-binary PATH, or set SPUFF_AGENT_URL and SPUFF_AGENT_SHA256 to a release"
                    .into()
            }
        })
    }
}

/// Checks that `bytes` (read from `what`) is a 64-bit little-endian Linux
/// executable for `arch`, as the VM will run it.
///
/// # Errors
/// [`AgentError::NotForVm`] saying what it is instead.
pub fn check_elf(bytes: &[u8], what: &str, arch: Arch) -> Result<(), AgentError> {
    let refuse = |reason: String| AgentError::NotForVm {
        what: what.to_string(),
        arch,
        reason,
    };
    if bytes.starts_with(b"MZ") {
        return Err(refuse("it is a Windows program".into()));
    }
    if bytes.len() >= 4
        && matches!(
            bytes[..4],
            [0xfe, 0xed, 0xfa, 0xcf] | [0xcf, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe]
        )
    {
        return Err(refuse("it is a macOS program".into()));
    }
    if bytes.starts_with(b"#!") {
        return Err(refuse("it is a script".into()));
    }
    if bytes.len() < 64 || !bytes.starts_with(b"\x7fELF") {
        return Err(refuse("it is not an ELF executable".into()));
    }
    if bytes[4] != 2 {
        return Err(refuse("it is a 32-bit build".into()));
    }
    if bytes[5] != 1 {
        return Err(refuse("it is a big-endian build".into()));
    }
    // System V or Linux; FreeBSD and others put their own ABI here.
    if !matches!(bytes[7], 0 | 3) {
        return Err(refuse(format!("its OS ABI is {}, not Linux", bytes[7])));
    }
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    if !matches!(e_type, 2 | 3) {
        return Err(refuse(
            "it is not an executable (a library or object file?)".into(),
        ));
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != arch.elf_machine() {
        let built = Arch::ALL
            .into_iter()
            .find(|a| a.elf_machine() == machine)
            .map_or_else(
                || format!("ELF machine {machine}"),
                |a| a.name().to_string(),
            );
        return Err(refuse(format!("it is built for {built}")));
    }
    Ok(())
}

/// Lowercase hex SHA-256 of `bytes`, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, data: u8, abi: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[5] = data;
        b[6] = 1;
        b[7] = abi;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b
    }

    #[test]
    fn only_a_linux_executable_of_the_vms_arch_should_pass() {
        let x86 = elf(2, 1, 0, 3, 62);
        assert_eq!(check_elf(&x86, "a", Arch::X86_64), Ok(()));
        assert_eq!(check_elf(&elf(2, 1, 3, 2, 183), "a", Arch::Aarch64), Ok(()));
        let said = |bytes: &[u8], arch| check_elf(bytes, "f", arch).unwrap_err().to_string();
        assert!(said(&x86, Arch::Aarch64).contains("built for x86_64"));
        assert!(said(b"MZ\x90\x00rest", Arch::X86_64).contains("Windows program"));
        assert!(said(&[0xcf, 0xfa, 0xed, 0xfe, 0, 0], Arch::X86_64).contains("macOS"));
        assert!(said(b"#!/bin/sh\nrm -rf /\n", Arch::X86_64).contains("script"));
        assert!(said(&elf(1, 1, 0, 2, 62), Arch::X86_64).contains("32-bit"));
        assert!(said(&elf(2, 2, 0, 2, 62), Arch::X86_64).contains("big-endian"));
        assert!(said(&elf(2, 1, 9, 2, 62), Arch::X86_64).contains("OS ABI"));
        assert!(said(&elf(2, 1, 0, 1, 62), Arch::X86_64).contains("not an executable"));
        assert!(said(&elf(2, 1, 0, 2, 40), Arch::X86_64).contains("ELF machine 40"));
        assert!(said(b"", Arch::X86_64).contains("not an ELF"));
    }

    #[test]
    fn architectures_should_be_read_as_uname_and_people_write_them() {
        assert_eq!(Arch::from_name("x86_64\n"), Some(Arch::X86_64));
        assert_eq!(Arch::from_name("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_name("riscv64"), None);
        assert_eq!("aarch64".parse::<Arch>(), Ok(Arch::Aarch64));
    }

    /// In a build that carries agents (CI's): each unpacks to its recorded
    /// hash and size and is a Linux executable of its architecture.
    #[test]
    fn every_embedded_agent_should_unpack_to_its_recorded_hash() {
        // CI builds spuff with its agents (ci/test.sh, ci/windows-test.sh
        // run ci/build-agents.sh first): there, this must not pass empty.
        if std::env::var_os("CI").is_some() {
            let arches: Vec<Arch> = all().iter().map(|a| a.arch).collect();
            assert_eq!(arches, Arch::ALL, "CI's spuff must carry both agents");
        }
        for agent in all() {
            let binary = agent.binary().expect("unpacks");
            assert_eq!(check_elf(&binary, "embedded", agent.arch), Ok(()));
            assert!(agent.compressed().len() < binary.len(), "{agent:?}");
        }
    }
}
