//! What the CLI adds on top of the network: user-data rendering, the state
//! store's transactions (each one opens and closes the redb file, see
//! src/state.rs), and the `spuff` binary's start-up, measured against
//! OpenSSH's `ssh -V` in the same run.
//!
//! Run with: `cargo bench --bench cli` (builds the release `spuff` binary
//! first through cargo's bench profile).

use std::process::Command;
use std::time::{Duration, Instant};

use spuff::Secret;
use spuff::agent::api::AgentConfig;
use spuff::cloudinit::{self, AgentSource, Limit};
use spuff::ssh::HostKeyPair;
use spuff::state::{Instance, Lifecycle, Store};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn time_n(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    let p50 = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!(
        "{name:<44} p50 {:>9.1} µs   p99 {:>9.1} µs",
        micros(p50),
        micros(p99)
    );
    p50
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // User-data rendering: host key generation plus the full template.
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ me";
    report(
        "host key generation (ed25519)",
        time_n(200, || {
            HostKeyPair::generate().expect("key");
        }),
    );
    let config = cloudinit::Config {
        authorized_keys: vec![key.to_string()],
        ..cloudinit::Config::new(
            HostKeyPair::generate().expect("key"),
            AgentConfig::new("0123456789abcdef0123456789abcdef"),
            AgentSource::Upload,
        )
    };
    let size = cloudinit::render(&config).expect("render").len();
    report(
        &format!("render user-data ({size} bytes)"),
        time_n(200, || {
            cloudinit::render_with_limit(
                &config,
                Limit::of(spuff::provider::ProviderType::DigitalOcean.info()),
            )
            .expect("render");
        }),
    );
    let small = Limit::bytes(size - 1);
    report(
        "render user-data, compressed to fit",
        time_n(100, || {
            cloudinit::render_with_limit(&config, small).expect("render");
        }),
    );

    // State: every call is open + one transaction + close, durable commits.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    let mut n = 0u32;
    report(
        "state insert (open, commit, close)",
        time_n(200, || {
            n += 1;
            let i = Instance::new(
                format!("vm-{n}"),
                "digitalocean",
                n.to_string(),
                "fra1",
                "s-2vcpu-4gb",
                "ubuntu-24-04-x64",
                "dev",
                key,
                Secret::new("token"),
            );
            store.insert(&i).expect("insert");
        }),
    );
    report(
        "state update (read-modify-write)",
        time_n(200, || {
            store
                .update("vm-1", |i| i.status = Lifecycle::Ready)
                .expect("update");
        }),
    );
    report(
        "state get",
        time_n(500, || {
            store.get("vm-100").expect("get");
        }),
    );
    report(
        "state list (200 instances)",
        time_n(200, || {
            store.list().expect("list");
        }),
    );

    // Start-up: `spuff version` against `ssh -V`, both doing next to nothing.
    let spuff = env!("CARGO_BIN_EXE_spuff");
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().expect("run");
        assert!(out.status.success(), "{program} failed");
    };
    let ours = report(
        "spuff version (process start to exit)",
        time_n(100, || run(spuff, &["version"])),
    );
    let ssh = std::path::Path::new("/usr/bin/ssh");
    if ssh.exists() {
        let peer = report(
            "ssh -V (OpenSSH, same)",
            time_n(100, || run("/usr/bin/ssh", &["-V"])),
        );
        println!(
            "start-up ratio spuff/ssh: {:.2}",
            ours.as_secs_f64() / peer.as_secs_f64()
        );
    }
    let config_dir = dir.path().join("cfg");
    let list = report(
        "spuff list --local --json (config + state)",
        time_n(50, || {
            let out = Command::new(spuff)
                .args(["list", "--local", "--json"])
                .env("SPUFF_CONFIG_DIR", &config_dir)
                .output()
                .expect("run");
            assert!(out.status.success());
        }),
    );
    let _ = list;
    let size = std::fs::metadata(spuff).map(|m| m.len()).unwrap_or(0);
    println!("spuff binary size: {:.2} MiB", size as f64 / 1048576.0);
}
