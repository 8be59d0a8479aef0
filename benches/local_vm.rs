//! Time to a shell on the local provider, beside a plain QEMU boot of the
//! same image in the same run, so spuff's own overhead shows as a ratio.
//!
//! - **plain**: what a user could do by hand. `qemu-img` overlay, a NoCloud
//!   seed with a minimal user-data (one user, one key, a pre-generated host
//!   key), QEMU with the same flags and acceleration the provider uses, then
//!   OpenSSH retried every 250 ms until it logs in with the host key pinned.
//!   Timed from QEMU's start to the first login.
//! - **spuff**: the `spuff up --no-connect` process with spuff's real
//!   user-data and the release agent uploaded (`--dev`), timed from the
//!   process start to its exit, which is when a shell can open (phase 1
//!   done); then until `bootstrap.status` says `ready` (phase 2 done).
//!
//! Pairs alternate (plain first, then spuff first); medians, min and max are
//! printed, and the ratio both of the medians and per pair (the two runs of
//! a pair are back to back, so host load disturbs their ratio least). Both run with the network isolated (`restrict=on`) and no
//! packages, so nothing depends on the internet.
//!
//! Run: `cargo bench --bench local_vm` (needs QEMU and an image from
//! `ci/build-image.sh`, by default in /var/cache/spuff-ci/image, else
//! `SPUFF_BENCH_IMAGE=DIR`; `SPUFF_BENCH_RUNS=N` pairs, default 3).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let image = PathBuf::from(
        std::env::var_os("SPUFF_BENCH_IMAGE").unwrap_or_else(|| "/var/cache/spuff-ci/image".into()),
    );
    if !image.join("base.qcow2").is_file() {
        println!(
            "local_vm: skipped, no image in {} (build one with `ci/build-image.sh DIR`, set SPUFF_BENCH_IMAGE=DIR)",
            image.display()
        );
        return;
    }
    let runs: usize = std::env::var("SPUFF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let agent = release_agent();
    let accel =
        spuff::provider::local::accel::choose(&spuff::provider::local::accel::HostFacts::probe());
    println!("local_vm: image {}, acceleration {accel}", image.display());
    println!("  ({})", accel.describe());

    let (mut plain, mut shell, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let mut one_plain = || {
            let t = plain_boot(&image, &accel);
            println!(
                "  run {i}: plain QEMU boot → OpenSSH login   {:6.1} s",
                t.as_secs_f64()
            );
            plain.push(t);
        };
        let mut one_spuff = || {
            let (s, r) = spuff_up(&image, &agent, i);
            println!(
                "  run {i}: spuff up → shell {:6.1} s, → bootstrap ready {:6.1} s",
                s.as_secs_f64(),
                r.as_secs_f64()
            );
            shell.push(s);
            ready.push(r);
        };
        if i % 2 == 0 {
            one_plain();
            one_spuff();
        } else {
            one_spuff();
            one_plain();
        }
    }
    // Each pair ran back to back, so its ratio is the least disturbed by
    // the host's load drifting over the run (TCG timings swing by 2x here).
    let mut pair_ratios: Vec<f64> = plain
        .iter()
        .zip(&shell)
        .map(|(p, s)| s.as_secs_f64() / p.as_secs_f64())
        .collect();
    pair_ratios.sort_by(f64::total_cmp);
    let pair_median = pair_ratios[pair_ratios.len() / 2];
    let p = stats("plain boot → login", &mut plain);
    let s = stats("spuff up → shell", &mut shell);
    let r = stats("spuff up → bootstrap ready", &mut ready);
    println!(
        "local_vm: spuff up → shell / plain boot → login = {:.2}x (target ≤ 1.10x); → ready {:.2}x",
        s / p,
        r / p
    );
    println!(
        "local_vm: per pair, spuff up → shell / plain boot → login: median {pair_median:.2}x, {}",
        pair_ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// Prints median, min and max; returns the median in seconds.
fn stats(name: &str, samples: &mut [Duration]) -> f64 {
    samples.sort();
    let median = samples[samples.len() / 2].as_secs_f64();
    println!(
        "{name:<32} median {median:6.1} s   min {:6.1} s   max {:6.1} s   (n={})",
        samples[0].as_secs_f64(),
        samples[samples.len() - 1].as_secs_f64(),
        samples.len()
    );
    median
}

/// The release `spuff-agent`, built if missing (benches run in release).
fn release_agent() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let agent = dir.join("spuff-agent");
    if !agent.is_file() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", "spuff-agent"])
            .status()
            .expect("cargo build");
        assert!(ok.success(), "building the agent failed");
    }
    agent
}

fn tempdir() -> tempfile::TempDir {
    // Short: QEMU's control socket must fit in a Unix socket address.
    tempfile::Builder::new()
        .prefix("spuff-b")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

fn ssh_keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// The plain boot: QEMU started by hand, OpenSSH until it logs in.
fn plain_boot(image: &Path, accel: &spuff::provider::local::accel::Accel) -> Duration {
    let dir = tempdir();
    let d = dir.path();
    let key = d.join("id");
    ssh_keygen(&key);
    let user_key = std::fs::read_to_string(d.join("id.pub")).expect("pub");
    let host = spuff::ssh::HostKeyPair::generate().expect("host key");
    let indented: String = host
        .private_key_openssh()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let user_data = format!(
        "#cloud-config\nusers:\n  - name: dev\n    shell: /bin/bash\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    ssh_authorized_keys: [\"{}\"]\nssh_deletekeys: true\nssh_genkeytypes: [ed25519]\nssh_keys:\n  ed25519_private: |\n{indented}  ed25519_public: \"{}\"\n",
        user_key.trim(),
        host.public_key_openssh()
    );
    spuff::cloudinit::nocloud::Seed {
        user_data: user_data.as_bytes(),
        meta_data: spuff::cloudinit::nocloud::meta_data("plain-boot", "plain"),
        network_config: None,
    }
    .write(d.join("seed.img"))
    .expect("seed");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(image.join("base.qcow2"))
        .arg(d.join("disk.qcow2"))
        .arg("20G"));
    let port = free_port();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {}\n", host.public_key_openssh()),
    )
    .expect("known_hosts");
    let cmdline = std::fs::read_to_string(image.join("cmdline")).expect("cmdline");
    let p = |name: &str| d.join(name).display().to_string();
    let started = Instant::now();
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-name", "plain-boot"])
        .args(accel.qemu_args())
        .args(["-machine", "q35,vmport=off", "-m", "2048", "-smp", "2"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-vga",
            "none",
        ])
        .arg("-kernel")
        .arg(image.join("vmlinuz"))
        .arg("-initrd")
        .arg(image.join("initrd.img"))
        .args(["-append", cmdline.trim()])
        .arg("-drive")
        .arg(format!(
            "if=virtio,file={},format=qcow2,discard=unmap",
            p("disk.qcow2")
        ))
        .arg("-drive")
        .arg(format!(
            "if=virtio,file={},format=raw,readonly=on",
            p("seed.img")
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"
        ))
        .args([
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-rng-pci",
        ])
        .arg("-serial")
        .arg(format!("file:{}", p("console.log")))
        .arg("-pidfile")
        .arg(p("qemu.pid"))
        .arg("-daemonize");
    run(&mut qemu);
    let login = loop {
        let ok = Command::new("ssh")
            .args([
                "-q",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", p("known_hosts")))
            .args(["-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes", "-i"])
            .arg(&key)
            .args(["-p", &port.to_string(), "dev@127.0.0.1", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ssh")
            .success();
        if ok {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the plain boot never answered"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let pid = std::fs::read_to_string(d.join("qemu.pid")).unwrap_or_default();
    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    std::thread::sleep(Duration::from_millis(300));
    login
}

/// `spuff up` as a user runs it; returns (→ shell, → bootstrap ready).
fn spuff_up(image: &Path, agent: &Path, i: usize) -> (Duration, Duration) {
    let dir = tempdir();
    let d = dir.path().to_path_buf();
    ssh_keygen(&d.join("id"));
    let spuff = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spuff"));
        cmd.args(args)
            .env("HOME", &d)
            .env("SPUFF_CONFIG_DIR", d.join("config"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("NO_COLOR", "1")
            .env_remove("DIGITALOCEAN_TOKEN")
            .env_remove("HETZNER_TOKEN")
            .env_remove("HCLOUD_TOKEN")
            .env_remove("SPUFF_API_TOKEN")
            .stdin(Stdio::null());
        cmd
    };
    let key = d.join("id").display().to_string();
    for (k, v) in [
        ("ssh_key_path", key.as_str()),
        ("local_network", "isolated"),
        ("base_packages", "none"),
    ] {
        run(&mut spuff(&["config", "set", k, v]));
    }
    let name = format!("bench{i}");
    let started = Instant::now();
    run(&mut spuff(&[
        "up",
        "--name",
        &name,
        "--image",
        &image.display().to_string(),
        "--dev",
        "--agent-binary",
        &agent.display().to_string(),
        "--no-connect",
    ]));
    let shell = started.elapsed();
    let ready = loop {
        let out = spuff(&["exec", &name, "--", "cat /opt/spuff/bootstrap.status"])
            .output()
            .expect("exec");
        if String::from_utf8_lossy(&out.stdout).trim() == "ready" {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(900), "never ready");
        std::thread::sleep(Duration::from_millis(250));
    };
    run(&mut spuff(&["down", &name, "--force"]));
    (shell, ready)
}
