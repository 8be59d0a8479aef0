//! spuff's SSH layer beside OpenSSH's own clients, against the same local sshd.
//!
//! Run with: cargo bench --bench ssh            (everything)
//!           cargo bench --bench ssh -- connect (figures whose name contains "connect")
//!
//! Each figure prints one line, `figure: NAME spuff=X openssh=Y ratio=Z`, with
//! ratio = spuff / openssh. For throughput (`*_mib_s`) higher is better; for
//! times (`*_ms`) and memory (`*_mib`) lower is better. Both clients are pinned
//! to the same cipher and key exchange, named in the figure.

#[path = "../tests/util/mod.rs"]
mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spuff::ssh::Session;
use util::Sshd;

const KEX: &str = "curve25519-sha256";
const CIPHERS: &[(&str, &str)] = &[
    ("chacha20-poly1305@openssh.com", "chacha20"),
    ("aes128-gcm@openssh.com", "aes128gcm"),
];

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sshd = Sshd::start();
    eprintln!("sshd on 127.0.0.1:{} ({})", sshd.port, ssh_version());

    if wanted("connect") {
        connect_exec(&rt, &sshd);
    }
}

fn ssh_version() -> String {
    let out = Command::new("ssh").arg("-V").output().expect("ssh -V");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Print one figure line.
fn figure(name: &str, spuff: f64, openssh: f64) {
    println!(
        "figure: {name} spuff={spuff:.2} openssh={openssh:.2} ratio={:.3}",
        spuff / openssh
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// OpenSSH `ssh` pinned to one cipher and kex, with a known_hosts for the test sshd.
fn ssh_cmd(sshd: &Sshd, cipher: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-T", "-o", "ControlMaster=no"])
        .args(["-o", &format!("Ciphers={cipher}")])
        .args(["-o", &format!("KexAlgorithms={KEX}")])
        .args(sshd.ssh_args())
        .stdin(Stdio::null());
    c
}

fn spuff_config(sshd: &Sshd, cipher: &str) -> spuff::ssh::Config {
    let mut cfg = sshd.config();
    cfg.ciphers = vec![cipher.to_string()];
    cfg.kex = vec![KEX.to_string()];
    cfg
}

/// connect + authenticate + `exec true` + disconnect, wall time (median of 20).
fn connect_exec(rt: &tokio::runtime::Runtime, sshd: &Sshd) {
    let (cipher, short) = CIPHERS[0];
    let runs = 20;
    let spuff_times: Vec<Duration> = (0..runs + 2)
        .map(|_| {
            let cfg = spuff_config(sshd, cipher);
            rt.block_on(async move {
                let t = Instant::now();
                let s = Session::connect(cfg).await.expect("connect");
                assert!(s.exec("true").await.expect("exec").status.success());
                s.close().await.expect("close");
                t.elapsed()
            })
        })
        .skip(2)
        .collect();
    let ssh_times: Vec<Duration> = (0..runs + 2)
        .map(|_| {
            let t = Instant::now();
            let st = ssh_cmd(sshd, cipher)
                .arg("127.0.0.1")
                .arg("true")
                .status()
                .expect("ssh");
            assert!(st.success(), "ssh failed");
            t.elapsed()
        })
        .skip(2)
        .collect();
    figure(
        &format!("connect_auth_exec_true_ms[{short},{KEX}]"),
        ms(median(spuff_times)),
        ms(median(ssh_times)),
    );
}
