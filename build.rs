//! Embeds the VM agents `ci/build-agents.sh` built (issue 18), when there
//! are any.
//!
//! The agents are static Linux (musl) builds for x86_64 and aarch64,
//! gzip-compressed, each with its SHA-256 and size beside it:
//! `spuff-agent-ARCH.gz`, `spuff-agent-ARCH.sha256`, `spuff-agent-ARCH.size`.
//! They are looked for in `SPUFF_AGENTS_DIR` when set (a release build says
//! where), else in `target/agents` of this workspace, where the script
//! puts them. Without them spuff builds as before, carrying no agent, and
//! `spuff up` says how to get one: a plain `cargo build` needs no cross
//! toolchain.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const ARCHES: [(&str, &str); 2] = [("x86_64", "X86_64"), ("aarch64", "Aarch64")];

fn main() {
    println!("cargo:rerun-if-env-changed=SPUFF_AGENTS_DIR");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let (dir, asked) = match std::env::var_os("SPUFF_AGENTS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => (PathBuf::from(dir), true),
        None => (manifest.join("target").join("agents"), false),
    };
    // Watched as a folder (cargo scans it), so agents built later are
    // noticed; it is made when missing, since cargo reruns a build script
    // on every build while a watched path does not exist.
    if !asked {
        let _ = std::fs::create_dir_all(&dir);
    }
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut code = String::from("&[\n");
    for (arch, variant) in ARCHES {
        let file = |ext: &str| dir.join(format!("spuff-agent-{arch}.{ext}"));
        if !file("gz").is_file() {
            assert!(
                !asked,
                "SPUFF_AGENTS_DIR={} has no spuff-agent-{arch}.gz: run ci/build-agents.sh",
                dir.display()
            );
            continue;
        }
        let sha256 = read(&file("sha256"));
        assert!(
            sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}: not a SHA-256",
            file("sha256").display()
        );
        let size: u64 = read(&file("size"))
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", file("size").display()));
        let _ = writeln!(
            code,
            "    Embedded {{ arch: Arch::{variant}, sha256: {sha256:?}, size: {size}, \
             gz: include_bytes!({:?}) }},",
            file("gz").display().to_string()
        );
    }
    code.push(']');
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let path = out.join("embedded_agents.rs");
    // Unchanged content keeps its mtime, so nothing recompiles for it.
    if std::fs::read_to_string(&path).ok().as_deref() != Some(code.as_str()) {
        std::fs::write(&path, code).expect("write embedded_agents.rs");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run ci/build-agents.sh)", path.display()))
        .trim()
        .to_string()
}
