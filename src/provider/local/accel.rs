//! Choosing how a local VM's CPU runs: hardware virtualization where it
//! really works, else QEMU's emulator (TCG), chosen explicitly and said out
//! loud.
//!
//! `/dev/kvm` existing is not enough. On this project's CI machines it is
//! the `kvm_pvm` flavour (KVM inside a VM without nested hardware
//! virtualization), under which a stock kernel dies; QEMU's `-accel kvm:tcg`
//! fallback would hide that choice from the user. So KVM is used only when
//! `/dev/kvm` opens read-write, the CPU flags show `vmx` or `svm`, and no
//! `kvm_pvm` module is loaded; HVF on macOS when `kern.hv_support` is 1;
//! otherwise TCG with `-cpu max`, and [`Accel::describe`] tells the user
//! what that means for speed.

use std::fmt;

/// What is known about the host, as [`choose`] needs it. Gathered by
/// [`HostFacts::probe`]; tests build it by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `linux`, `macos`, `windows`, … (`std::env::consts::OS`).
    pub os: String,
    /// Whether `/dev/kvm` opens for reading and writing.
    pub kvm_rw: bool,
    /// The CPU flags (Linux: the first `flags` line of `/proc/cpuinfo`).
    pub cpu_flags: Vec<String>,
    /// Kernel modules loaded or built in (`/proc/modules`, `/sys/module`).
    pub modules: Vec<String>,
    /// macOS: `sysctl kern.hv_support` said 1.
    pub hvf: bool,
}

impl HostFacts {
    /// Reads the facts of this machine. Never fails: what cannot be read
    /// counts as absent, which leads to TCG.
    pub fn probe() -> Self {
        let mut facts = HostFacts {
            os: std::env::consts::OS.to_string(),
            ..Default::default()
        };
        if cfg!(target_os = "linux") {
            facts.kvm_rw = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
            facts.cpu_flags = std::fs::read_to_string("/proc/cpuinfo")
                .map(|t| cpu_flags(&t))
                .unwrap_or_default();
            let mut modules: Vec<String> = std::fs::read_to_string("/proc/modules")
                .map(|t| {
                    t.lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(dir) = std::fs::read_dir("/sys/module") {
                modules.extend(
                    dir.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
            modules.sort();
            modules.dedup();
            facts.modules = modules;
        }
        if cfg!(target_os = "macos") {
            facts.hvf = std::process::Command::new("sysctl")
                .args(["-n", "kern.hv_support"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1");
        }
        facts
    }
}

/// The flags of the first CPU in a `/proc/cpuinfo` text.
fn cpu_flags(cpuinfo: &str) -> Vec<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, flags)| flags.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// How a local VM's CPU runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accel {
    /// Linux KVM.
    Kvm,
    /// macOS Hypervisor.framework.
    Hvf,
    /// QEMU's emulator, and why hardware virtualization was not used.
    Tcg {
        /// Why not KVM/HVF, for the user.
        why: String,
    },
}

/// The accelerator for these facts (see the module docs for the rules).
pub fn choose(facts: &HostFacts) -> Accel {
    let tcg = |why: &str| Accel::Tcg {
        why: why.to_string(),
    };
    match facts.os.as_str() {
        "linux" => {
            let has = |f: &str| facts.cpu_flags.iter().any(|x| x == f);
            if facts.modules.iter().any(|m| m == "kvm_pvm") {
                tcg(
                    "/dev/kvm is the kvm_pvm flavour (KVM inside a VM), which cannot run a stock kernel",
                )
            } else if !facts.kvm_rw {
                tcg("/dev/kvm is missing or not writable (add yourself to the kvm group)")
            } else if !(has("vmx") || has("svm")) {
                tcg("the CPU offers no vmx/svm virtualization to this machine")
            } else {
                Accel::Kvm
            }
        }
        "macos" if facts.hvf => Accel::Hvf,
        "macos" => tcg("Hypervisor.framework is not available (kern.hv_support is not 1)"),
        _ => tcg("hardware acceleration is not used on this platform yet"),
    }
}

impl Accel {
    /// QEMU's arguments for it: the accelerator, with no fallback, and the
    /// CPU model.
    pub fn qemu_args(&self) -> Vec<&'static str> {
        match self {
            Accel::Kvm => vec!["-accel", "kvm", "-cpu", "host"],
            Accel::Hvf => vec!["-accel", "hvf", "-cpu", "host"],
            Accel::Tcg { .. } => vec!["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }

    /// One line for the user: what runs the VM and what it means for speed.
    pub fn describe(&self) -> String {
        match self {
            Accel::Kvm => "KVM (hardware virtualization): near-native speed".into(),
            Accel::Hvf => {
                "Hypervisor.framework (hardware virtualization): near-native speed".into()
            }
            Accel::Tcg { why } => format!(
                "QEMU emulation (TCG), because {why}: expect a first boot of minutes, not seconds, and slow builds"
            ),
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Hvf => "hvf",
            Accel::Tcg { .. } => "tcg",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(kvm_rw: bool, flags: &str, modules: &[&str]) -> HostFacts {
        HostFacts {
            os: "linux".into(),
            kvm_rw,
            cpu_flags: cpu_flags(&format!("processor\t: 0\nflags\t\t: fpu {flags} sse2\n")),
            modules: modules.iter().map(|m| m.to_string()).collect(),
            hvf: false,
        }
    }

    #[test]
    fn kvm_should_need_the_device_the_flags_and_no_pvm() {
        assert_eq!(
            choose(&linux(true, "vmx", &["kvm", "kvm_intel"])),
            Accel::Kvm
        );
        assert_eq!(choose(&linux(true, "svm", &["kvm_amd"])), Accel::Kvm);
        for facts in [
            linux(true, "vmx", &["kvm", "kvm_pvm"]),
            linux(false, "vmx", &["kvm"]),
            linux(true, "hypervisor", &["kvm"]),
        ] {
            let a = choose(&facts);
            assert!(matches!(a, Accel::Tcg { .. }), "{facts:?} gave {a:?}");
            assert_eq!(a.qemu_args(), ["-accel", "tcg,thread=multi", "-cpu", "max"]);
            assert!(a.describe().contains("TCG"), "{}", a.describe());
        }
        let pvm = choose(&linux(true, "vmx", &["kvm_pvm"]));
        assert!(pvm.describe().contains("kvm_pvm"), "{}", pvm.describe());
    }

    #[test]
    fn macos_should_use_hvf_only_when_supported() {
        let mut m = HostFacts {
            os: "macos".into(),
            hvf: true,
            ..Default::default()
        };
        assert_eq!(choose(&m), Accel::Hvf);
        m.hvf = false;
        assert!(matches!(choose(&m), Accel::Tcg { .. }));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn probe_should_read_this_linux_machine() {
        let facts = HostFacts::probe();
        assert_eq!(facts.os, "linux");
        assert!(
            facts.cpu_flags.iter().any(|f| f == "fpu"),
            "{:?}",
            facts.cpu_flags
        );
        assert!(
            !facts.modules.is_empty(),
            "/sys/module lists built-in modules too"
        );
        // This project's machines have the kvm_pvm flavour: never KVM there.
        if facts.modules.iter().any(|m| m == "kvm_pvm") {
            assert!(matches!(choose(&facts), Accel::Tcg { .. }));
        }
    }
}
