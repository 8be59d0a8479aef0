//! spuff's SSH layer beside OpenSSH's own clients, against the same local sshd.
//!
//! Run with: cargo bench --bench ssh            (everything)
//!           cargo bench --bench ssh -- connect (figures whose name contains "connect")
//!
//! Each figure prints one line, `figure: NAME spuff=X openssh=Y ratio=Z`, with
//! ratio = spuff / openssh. For throughput (`*_mib_s`) higher is better; for
//! times (`*_ms`) and memory (`*_mib`) lower is better. Both clients are pinned
//! to the same cipher and key exchange, named in the figure.

#[path = "common/openssh.rs"]
mod openssh;
#[path = "../tests/util/mod.rs"]
mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openssh::{KEX, openssh};
use spuff::forward::LocalForwardSpec;
use spuff::sftp::TransferOptions;
use spuff::ssh::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::Sshd;

const MIB: u64 = 1024 * 1024;

const CIPHERS: &[(&str, &str)] = &[
    ("chacha20-poly1305@openssh.com", "chacha20"),
    ("aes128-gcm@openssh.com", "aes128gcm"),
];

fn main() {
    if std::env::var("SPUFF_BENCH_CHILD").as_deref() == Ok("upload") {
        return rss_child();
    }
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
    let work = tempfile::tempdir().expect("tempdir");
    if wanted("sftp") || wanted("upload") || wanted("download") {
        transfers(&rt, &sshd, work.path());
    }
    if wanted("forward") {
        forward_throughput(&rt, &sshd);
        forward_round_trips(&rt, &sshd);
    }
    if wanted("rss") {
        peak_rss(&sshd, work.path());
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
    // SPUFF_BENCH_WINDOW explores the per-channel window size.
    if let Some(w) = std::env::var("SPUFF_BENCH_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.window_size = w;
    }
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

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn best(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[0]
}

/// 256 MiB up and down: spuff's SFTP against OpenSSH's `sftp` and `scp`, per cipher.
fn transfers(rt: &tokio::runtime::Runtime, sshd: &Sshd, work: &std::path::Path) {
    let size = 256 * MIB;
    let local = work.join("payload");
    util::write_pattern_file(&local, size);
    let remote_dir = sshd.dir.path().join("remote");
    std::fs::create_dir_all(&remote_dir).expect("remote dir");
    let remote = remote_dir.join("payload");
    let back = work.join("payload.back");
    let runs = 3;
    for (cipher, short) in CIPHERS {
        let cfg = spuff_config(sshd, cipher);
        let remote_s = remote.display().to_string();
        let (up, down) = rt.block_on(async {
            let session = Session::connect(cfg).await.expect("connect");
            let sftp = session.sftp().await.expect("sftp");
            // SPUFF_BENCH_CHUNK / SPUFF_BENCH_IN_FLIGHT explore the pipelining settings.
            let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
            let mut opts = TransferOptions {
                chunk_size: env_num("SPUFF_BENCH_CHUNK"),
                ..TransferOptions::default()
            };
            if let Some(n) = env_num("SPUFF_BENCH_IN_FLIGHT") {
                opts.max_in_flight = n as usize;
            }
            let mut up = Vec::new();
            let mut down = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                sftp.upload_file(&local, &remote_s, &opts)
                    .await
                    .expect("upload");
                up.push(t.elapsed());
                let t = Instant::now();
                sftp.download_file(&remote_s, &back, &opts)
                    .await
                    .expect("download");
                down.push(t.elapsed());
            }
            (best(up), best(down))
        });
        assert_eq!(util::sha256_file(&back), util::sha256_file(&local));
        let batch = work.join("batch");
        let sftp_time = |cmd: String| {
            std::fs::write(&batch, cmd).expect("batch");
            best(
                (0..runs)
                    .map(|_| {
                        let t = Instant::now();
                        let st = openssh(sshd, "sftp", cipher)
                            .arg("-q")
                            .arg("-b")
                            .arg(&batch)
                            .arg("127.0.0.1")
                            .stdout(Stdio::null())
                            .status()
                            .expect("sftp");
                        assert!(st.success());
                        t.elapsed()
                    })
                    .collect(),
            )
        };
        let sftp_up = sftp_time(format!("put {} {}\n", local.display(), remote.display()));
        let sftp_down = sftp_time(format!("get {} {}\n", remote.display(), back.display()));
        let scp_time = |from: String, to: String| {
            best(
                (0..runs)
                    .map(|_| {
                        let t = Instant::now();
                        let st = openssh(sshd, "scp", cipher)
                            .arg("-q")
                            .arg(&from)
                            .arg(&to)
                            .status()
                            .expect("scp");
                        assert!(st.success());
                        t.elapsed()
                    })
                    .collect(),
            )
        };
        let target = format!("127.0.0.1:{}", remote.display());
        let scp_up = scp_time(local.display().to_string(), target.clone());
        let scp_down = scp_time(target, back.display().to_string());
        figure(
            &format!("upload_256mib_vs_sftp_mib_s[{short}]"),
            mib_s(size, up),
            mib_s(size, sftp_up),
        );
        figure(
            &format!("upload_256mib_vs_scp_mib_s[{short}]"),
            mib_s(size, up),
            mib_s(size, scp_up),
        );
        figure(
            &format!("download_256mib_vs_sftp_mib_s[{short}]"),
            mib_s(size, down),
            mib_s(size, sftp_down),
        );
        figure(
            &format!("download_256mib_vs_scp_mib_s[{short}]"),
            mib_s(size, down),
            mib_s(size, scp_down),
        );
    }
}

/// A server that reads everything and answers with the byte count at EOF.
async fn sink_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k as u64,
                    }
                }
                let _ = s.write_all(&n.to_le_bytes()).await;
            });
        }
    });
    port
}

/// An echo server.
async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

async fn push_through(port: u16, total: u64) -> Duration {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let chunk = vec![0x5au8; 256 * 1024];
    let t = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&chunk).await.expect("write");
        sent += chunk.len() as u64;
    }
    s.shutdown().await.expect("shutdown");
    let mut n = [0u8; 8];
    s.read_exact(&mut n).await.expect("count");
    assert_eq!(u64::from_le_bytes(n), total);
    t.elapsed()
}

async fn round_trips(port: u16, n: usize) -> Duration {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    // One warm-up exchange opens the channel before timing.
    s.write_all(&msg).await.expect("write");
    s.read_exact(&mut buf).await.expect("read");
    let t = Instant::now();
    for _ in 0..n {
        s.write_all(&msg).await.expect("write");
        s.read_exact(&mut buf).await.expect("read");
    }
    t.elapsed()
}

/// Start `ssh -N -L` and wait until its listener accepts.
fn openssh_forward(sshd: &Sshd, cipher: &str, target_port: u16) -> (std::process::Child, u16) {
    let lport = util::free_port();
    let child = ssh_cmd(sshd, cipher)
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("127.0.0.1:{lport}:127.0.0.1:{target_port}"))
        .arg("127.0.0.1")
        .spawn()
        .expect("ssh -L");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", lport)).is_err() {
        assert!(Instant::now() < deadline, "ssh -L did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, lport)
}

/// 512 MiB through a local forward: spuff's against `ssh -L`.
fn forward_throughput(rt: &tokio::runtime::Runtime, sshd: &Sshd) {
    let total = 512 * MIB;
    for (cipher, short) in CIPHERS {
        let cfg = spuff_config(sshd, cipher);
        let (spuff_t, ssh_t) = rt.block_on(async {
            let sink = sink_server().await;
            let session = Session::connect(cfg).await.expect("connect");
            let fwd = session
                .forward_local(LocalForwardSpec::new(0, "127.0.0.1", sink))
                .await
                .expect("forward");
            let port = fwd.local_addr().port();
            let spuff_t = best(vec![
                push_through(port, total).await,
                push_through(port, total).await,
            ]);
            fwd.shutdown().await;
            let (mut child, lport) = openssh_forward(sshd, cipher, sink);
            let ssh_t = best(vec![
                push_through(lport, total).await,
                push_through(lport, total).await,
            ]);
            let _ = child.kill();
            let _ = child.wait();
            (spuff_t, ssh_t)
        });
        figure(
            &format!("forward_512mib_vs_ssh_L_mib_s[{short}]"),
            mib_s(total, spuff_t),
            mib_s(total, ssh_t),
        );
    }
}

/// 1000 small request/response exchanges on one forwarded connection.
fn forward_round_trips(rt: &tokio::runtime::Runtime, sshd: &Sshd) {
    let (cipher, short) = CIPHERS[0];
    let n = 1000;
    let cfg = spuff_config(sshd, cipher);
    let (spuff_t, ssh_t) = rt.block_on(async {
        let echo = echo_server().await;
        let session = Session::connect(cfg).await.expect("connect");
        let fwd = session
            .forward_local(LocalForwardSpec::new(0, "127.0.0.1", echo))
            .await
            .expect("forward");
        let spuff_t = round_trips(fwd.local_addr().port(), n).await;
        fwd.shutdown().await;
        let (mut child, lport) = openssh_forward(sshd, cipher, echo);
        let ssh_t = round_trips(lport, n).await;
        let _ = child.kill();
        let _ = child.wait();
        (spuff_t, ssh_t)
    });
    figure(
        &format!("forward_1000_round_trips_ms[{short}]"),
        ms(spuff_t),
        ms(ssh_t),
    );
}

/// Peak RSS of a whole process while it uploads 1 GiB: spuff (this bench
/// binary re-run in child mode) against OpenSSH's `sftp`. Both are sampled the
/// same way, from /proc/PID/status VmHWM until the process exits.
fn peak_rss(sshd: &Sshd, work: &std::path::Path) {
    let size = 1024 * MIB;
    let local = work.join("payload-1g");
    util::write_pattern_file(&local, size);
    let remote = sshd.dir.path().join("payload-1g");
    let (cipher, short) = CIPHERS[0];
    let exe = std::env::current_exe().expect("exe");
    let spuff_child = Command::new(exe)
        .env("SPUFF_BENCH_CHILD", "upload")
        .env("SPUFF_BENCH_PORT", sshd.port.to_string())
        .env(
            "SPUFF_BENCH_HOSTKEY",
            sshd.host_key.to_openssh().expect("openssh"),
        )
        .env("SPUFF_BENCH_KEY", &util::keys().ed25519)
        .env("SPUFF_BENCH_USER", &sshd.user)
        .env("SPUFF_BENCH_CIPHER", cipher)
        .env("SPUFF_BENCH_LOCAL", &local)
        .env("SPUFF_BENCH_REMOTE", &remote)
        .spawn()
        .expect("child");
    let spuff_kib = watch_peak_rss(spuff_child);
    let batch = work.join("batch-1g");
    std::fs::write(
        &batch,
        format!("put {} {}\n", local.display(), remote.display()),
    )
    .expect("batch");
    let sftp_child = openssh(sshd, "sftp", cipher)
        .arg("-q")
        .arg("-b")
        .arg(&batch)
        .arg("127.0.0.1")
        .stdout(Stdio::null())
        .spawn()
        .expect("sftp");
    let sftp_kib = watch_peak_rss(sftp_child);
    figure(
        &format!("upload_1gib_peak_rss_mib[{short}]"),
        spuff_kib as f64 / 1024.0,
        sftp_kib as f64 / 1024.0,
    );
}

fn watch_peak_rss(mut child: std::process::Child) -> u64 {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Ok(Some(st)) = child.try_wait() {
            assert!(st.success(), "upload child failed");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Child mode for `peak_rss`: upload one file and exit, doing nothing else.
fn rss_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = openssh::spuff_config(
            &var("SPUFF_BENCH_PORT"),
            &var("SPUFF_BENCH_USER"),
            &var("SPUFF_BENCH_KEY"),
            &var("SPUFF_BENCH_HOSTKEY"),
            &var("SPUFF_BENCH_CIPHER"),
        );
        let session = Session::connect(cfg).await.expect("connect");
        let sftp = session.sftp().await.expect("sftp");
        sftp.upload_file(
            var("SPUFF_BENCH_LOCAL"),
            &var("SPUFF_BENCH_REMOTE"),
            &TransferOptions::default(),
        )
        .await
        .expect("upload");
        session.close().await.expect("close");
    });
}
