//! Copies as a user feels them (issue 14): whole processes, like for like.
//!
//! Run with: cargo bench --bench copy                 (everything)
//!           cargo bench --bench copy -- file_256mib  (cases whose name contains it)
//!           cargo bench --bench copy -- busy         (the file cases with one core kept busy)
//!
//! Every side is one process, timed from its start to its exit: start,
//! connect, key exchange, authentication, the copy, close. spuff's side is
//! this bench binary re-run as `copy-child`, a program that does exactly
//! that through the SDK (`Session::connect`, `Session::sftp`, then
//! `upload_*`/`download_*`) with the host key pinned, on a current-thread
//! runtime as the `spuff` binary runs (SPUFF_BENCH_MULTI_THREAD=1 for
//! tokio's default of a worker per core). The peers are
//! OpenSSH's `sftp -b`, `scp` and, for trees, `tar c | ssh tar x`, against
//! the same sshd on 127.0.0.1, with the same cipher and key exchange. The
//! data lives on tmpfs (/dev/shm) so that a disk does not set the pace.
//!
//! That sshd is set up as a VM's is (see [`start_sshd`]): SFTP through the
//! `sftp-server` program, and commands whose login shell reads no rc file;
//! SPUFF_BENCH_SERVER=harness gives the test harness's sshd instead.
//!
//! Each case runs SPUFF_BENCH_RUNS rounds (default 5), each round every
//! side once, in turn, so that drifts in machine load hit all sides alike.
//! A line per case and peer:
//!
//! `figure: NAME spuff=X openssh=Y ratio=Z spread_spuff=A..B spread_openssh=C..D`
//!
//! with the medians of MiB/s (higher is better) and ratio = spuff / peer;
//! then `cpu: NAME spuff=X sftp=Y` with the median CPU seconds of the
//! client process alone and `rss: NAME spuff=X sftp=Y` with the largest
//! peak RSS (MiB) of any round, both from `wait4`'s `rusage`.

#[path = "common/openssh.rs"]
mod openssh;
#[path = "common/process.rs"]
mod process;
#[path = "../tests/util/mod.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use openssh::openssh;
use process::{Run, timed};
use spuff::sftp::TransferOptions;
use spuff::ssh::Session;
use util::Sshd;

const MIB: u64 = 1024 * 1024;
const CIPHERS: &[(&str, &str)] = &[
    ("aes128-gcm@openssh.com", "aes128gcm"),
    ("chacha20-poly1305@openssh.com", "chacha20"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("copy-child") {
        return copy_child(&args[1..]);
    }
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let busy_only = filter.iter().any(|f| f.as_str() == "busy");
    let runs: usize = std::env::var("SPUFF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);

    let (sshd, server) = start_sshd();
    eprintln!(
        "sshd on 127.0.0.1:{} ({}; {server})",
        sshd.port,
        ssh_version()
    );
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tempdir");
    let data = Data::make(work.path(), &wanted, busy_only);

    let mut cases: Vec<(String, &Path, u64, Kind)> = Vec::new();
    for (name, path, bytes) in [
        ("file_256mib", &data.file_256, 256 * MIB),
        ("file_1gib", &data.file_1g, 1024 * MIB),
    ] {
        if let Some(p) = path {
            cases.push((name.into(), p, bytes, Kind::File));
        }
    }
    if let Some(t) = &data.tree {
        cases.push(("tree_2020".into(), t, data.tree_bytes, Kind::Tree));
    }
    for (cipher, short) in CIPHERS {
        for (name, src, bytes, kind) in &cases {
            for dir in [Dir::Up, Dir::Down] {
                let case = format!("{}_{name}[{short}]", dir.name());
                if busy_only {
                    if *kind == Kind::File && *name == "file_256mib" {
                        let _busy = Busy::start();
                        run_case(
                            &sshd,
                            work.path(),
                            &format!("busy_{case}"),
                            src,
                            *bytes,
                            *kind,
                            dir,
                            cipher,
                            runs,
                        );
                    }
                } else if wanted(&case) {
                    run_case(
                        &sshd,
                        work.path(),
                        &case,
                        src,
                        *bytes,
                        *kind,
                        dir,
                        cipher,
                        runs,
                    );
                }
            }
        }
    }
}

/// The bench's sshd, and a word on how it is set up.
///
/// Like a VM's, unless SPUFF_BENCH_SERVER=harness:
/// - `Subsystem sftp` runs the `sftp-server` program, as in the sshd_config
///   of the Debian, Ubuntu, Fedora and Amazon Linux images spuff boots (the
///   harness's `internal-sftp` starts no process, so `sftp` would be spared
///   the login shell that every command, spuff's streams among them, pays);
/// - the login shell reads no rc file. A VM user's `~/.bashrc` (Debian's
///   and Ubuntu's skeleton) returns at once when not interactive, but the
///   user running this bench may have one that does real work: root's on
///   our build machine runs `pyenv init`, 175 ms for every command. bash
///   reads `~/.bashrc` for an ssh command only at shell level 1, so
///   `SetEnv SHLVL=1` skips it, for every side alike.
fn start_sshd() -> (Sshd, &'static str) {
    if std::env::var("SPUFF_BENCH_SERVER").as_deref() == Ok("harness") {
        return (Sshd::start(), "the test harness's sshd: internal-sftp");
    }
    let program = [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file());
    match program {
        Some(p) => (
            Sshd::start_with(&format!("Subsystem sftp {p}\nSetEnv SHLVL=1\n")),
            "as a VM's: sftp-server, no rc file",
        ),
        None => (
            Sshd::start_with("SetEnv SHLVL=1\n"),
            "no sftp-server program found: internal-sftp, no rc file",
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Tree,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Up => "upload",
            Dir::Down => "download",
        }
    }
}

/// The payloads, made once: only those a wanted case needs.
struct Data {
    file_256: Option<PathBuf>,
    file_1g: Option<PathBuf>,
    tree: Option<PathBuf>,
    tree_bytes: u64,
}

impl Data {
    fn make(dir: &Path, wanted: &dyn Fn(&str) -> bool, busy: bool) -> Data {
        let any = |what: &str| {
            CIPHERS.iter().any(|(_, short)| {
                ["upload", "download"]
                    .iter()
                    .any(|d| wanted(&format!("{d}_{what}[{short}]")))
            })
        };
        let file = |name: &str, size: u64, want: bool| {
            want.then(|| {
                let p = dir.join(name);
                util::write_pattern_file(&p, size);
                p
            })
        };
        let file_256 = file("payload-256m", 256 * MIB, busy || any("file_256mib"));
        let file_1g = file("payload-1g", 1024 * MIB, !busy && any("file_1gib"));
        let mut tree_bytes = 0;
        let tree = (!busy && any("tree_2020")).then(|| {
            // 2,000 files of 4 KiB in 20 directories, and 20 of 5 MiB.
            let root = dir.join("tree");
            for d in 0..20 {
                let sub = root.join(format!("small-{d:02}"));
                std::fs::create_dir_all(&sub).expect("mkdir");
                for f in 0..100 {
                    util::write_pattern_file(&sub.join(format!("f{f:03}.txt")), 4096);
                    tree_bytes += 4096;
                }
            }
            let big = root.join("big");
            std::fs::create_dir_all(&big).expect("mkdir");
            for f in 0..20 {
                util::write_pattern_file(&big.join(format!("b{f:02}.bin")), 5 * MIB);
                tree_bytes += 5 * MIB;
            }
            root
        });
        Data {
            file_256,
            file_1g,
            tree,
            tree_bytes,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_case(
    sshd: &Sshd,
    work: &Path,
    case: &str,
    src: &Path,
    bytes: u64,
    kind: Kind,
    dir: Dir,
    cipher: &str,
    runs: usize,
) {
    // Downloads read from a copy on the "remote" side; uploads write into
    // a fresh destination each round.
    let remote_src = work.join("remote-src");
    let dst = work.join("dst");
    let _ = std::fs::remove_dir_all(&remote_src);
    let _ = std::fs::remove_file(&remote_src);
    if dir == Dir::Down {
        copy_all(src, &remote_src);
    }
    let (from, to) = match dir {
        Dir::Up => (src.to_path_buf(), dst.clone()),
        Dir::Down => (remote_src.clone(), dst.clone()),
    };
    let mut peers: Vec<&str> = vec!["spuff", "sftp", "scp"];
    if kind == Kind::Tree {
        peers.push("tar");
    }
    // One untimed copy first: memory this machine's host took back (pages
    // freed a while ago) is slow to touch again, and made whichever side
    // went first pay for it (one round of a 1 GiB download took 3.7 s
    // against 1.3-1.9 s, its time in the kernel's copy into tmpfs).
    clear(&dst);
    copy_all(&from, &dst);
    clear(&dst);
    let mut results: Vec<Vec<Run>> = peers.iter().map(|_| Vec::new()).collect();
    // SPUFF_BENCH_VERBOSE=1 prints every run, to see a spread's outliers.
    let verbose = std::env::var_os("SPUFF_BENCH_VERBOSE").is_some();
    for round in 0..runs {
        // Rotate who goes first, so no side always follows another.
        for k in 0..peers.len() {
            let i = (k + round) % peers.len();
            clear(&dst);
            if kind == Kind::Tree {
                // Tree copies go into an existing directory, as `scp -r`
                // and `tar x -C` need.
                std::fs::create_dir_all(&dst).expect("mkdir");
            }
            let cmd = match peers[i] {
                "spuff" => spuff_cmd(
                    sshd,
                    cipher,
                    kind,
                    dir,
                    &from,
                    &tree_target(kind, &from, &to),
                ),
                "sftp" => sftp_cmd(sshd, work, cipher, kind, dir, &from, &to),
                "scp" => scp_cmd(sshd, cipher, kind, dir, &from, &to),
                _ => tar_cmd(sshd, cipher, dir, &from, &to),
            };
            let run = timed(cmd);
            if verbose {
                eprintln!(
                    "round {round} {case} {}: {:.3} s, client CPU {:.2} s, peak RSS {:.1} MiB",
                    peers[i],
                    run.time.as_secs_f64(),
                    run.cpu.as_secs_f64(),
                    run.rss_kib as f64 / 1024.0
                );
            }
            results[i].push(run);
            verify(kind, &from, &tree_target(kind, &from, &to), bytes, peers[i]);
        }
    }
    clear(&dst);
    let _ = std::fs::remove_dir_all(&remote_src);
    let _ = std::fs::remove_file(&remote_src);

    let mib_s = |r: &Run| bytes as f64 / MIB as f64 / r.time.as_secs_f64();
    let stats = |v: &[Run]| {
        let mut s: Vec<f64> = v.iter().map(mib_s).collect();
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2], s[0], s[s.len() - 1])
    };
    let (spuff_med, spuff_lo, spuff_hi) = stats(&results[0]);
    for (i, peer) in peers.iter().enumerate().skip(1) {
        let (med, lo, hi) = stats(&results[i]);
        println!(
            "figure: {case}_vs_{peer}_mib_s spuff={spuff_med:.1} openssh={med:.1} ratio={:.3} \
             spread_spuff={spuff_lo:.1}..{spuff_hi:.1} spread_openssh={lo:.1}..{hi:.1}",
            spuff_med / med
        );
    }
    // The client's own CPU per copy (the server side is the same sshd for
    // all): where a side spends more, two cores shared with sshd go slower.
    let cpu = |v: &[Run]| {
        let mut c: Vec<f64> = v.iter().map(|r| r.cpu.as_secs_f64()).collect();
        c.sort_by(f64::total_cmp);
        c[c.len() / 2]
    };
    println!(
        "cpu: {case}_client_s spuff={:.2} sftp={:.2} scp={:.2}",
        cpu(&results[0]),
        cpu(&results[1]),
        cpu(&results[2])
    );
    let peak = |v: &[Run]| v.iter().map(|r| r.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "rss: {case}_peak_mib spuff={:.1} sftp={:.1} scp={:.1}",
        peak(&results[0]),
        peak(&results[1]),
        peak(&results[2])
    );
}

/// Where a tree copy lands: inside `to`, under the source's own name (as
/// `scp -r SRC DIR` and `tar x -C DIR` put it); a file lands at `to`.
fn tree_target(kind: Kind, from: &Path, to: &Path) -> PathBuf {
    match kind {
        Kind::File => to.to_path_buf(),
        Kind::Tree => to.join(from.file_name().expect("a name")),
    }
}

fn clear(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
    let _ = std::fs::remove_file(p);
}

fn copy_all(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

/// Every side must have copied everything: sizes (and for a file, the
/// bytes of its first and last MiB) match.
fn verify(kind: Kind, from: &Path, to: &Path, bytes: u64, who: &str) {
    match kind {
        Kind::File => {
            let got = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
            assert_eq!(got, bytes, "{who}: {} has {got} bytes", to.display());
        }
        Kind::Tree => {
            let size = |p: &Path| {
                let out = Command::new("du")
                    .args(["-sb", "--apparent-size"])
                    .arg(p)
                    .output()
                    .expect("du");
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .next()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            };
            let count = |p: &Path| {
                let out = Command::new("find")
                    .arg(p)
                    .args(["-type", "f"])
                    .output()
                    .expect("find");
                out.stdout.iter().filter(|b| **b == b'\n').count()
            };
            assert_eq!(count(to), count(from), "{who}: files in {}", to.display());
            assert_eq!(size(to), size(from), "{who}: bytes in {}", to.display());
        }
    }
}

fn ssh_version() -> String {
    let out = Command::new("ssh").arg("-V").output().expect("ssh -V");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn sftp_cmd(
    sshd: &Sshd,
    work: &Path,
    cipher: &str,
    kind: Kind,
    dir: Dir,
    from: &Path,
    to: &Path,
) -> Command {
    let r = if kind == Kind::Tree { "-R " } else { "" };
    let line = match dir {
        Dir::Up => format!("put {r}{} {}\n", from.display(), to.display()),
        Dir::Down => format!("get {r}{} {}\n", from.display(), to.display()),
    };
    let batch = work.join("batch");
    std::fs::write(&batch, line).expect("batch");
    let mut c = openssh(sshd, "sftp", cipher);
    c.arg("-b").arg(batch).arg("127.0.0.1");
    c
}

fn scp_cmd(sshd: &Sshd, cipher: &str, kind: Kind, dir: Dir, from: &Path, to: &Path) -> Command {
    let mut c = openssh(sshd, "scp", cipher);
    if kind == Kind::Tree {
        c.arg("-r");
    }
    match dir {
        Dir::Up => c.arg(from).arg(format!("127.0.0.1:{}", to.display())),
        Dir::Down => c.arg(format!("127.0.0.1:{}", from.display())).arg(to),
    };
    c
}

/// `tar c | ssh tar x` (or the other way round), as one `sh -c` pipeline.
fn tar_cmd(sshd: &Sshd, cipher: &str, dir: Dir, from: &Path, to: &Path) -> Command {
    let ssh = openssh(sshd, "ssh", cipher);
    let mut words: Vec<String> = vec![ssh.get_program().to_string_lossy().into_owned()];
    words.extend(ssh.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.push("127.0.0.1".into());
    let ssh_line = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let parent = from.parent().expect("parent").display().to_string();
    let name = from
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let to = to.display().to_string();
    let line = match dir {
        Dir::Up => format!("tar cf - -C '{parent}' '{name}' | {ssh_line} \"tar xf - -C '{to}'\""),
        Dir::Down => format!("{ssh_line} \"tar cf - -C '{parent}' '{name}'\" | tar xf - -C '{to}'"),
    };
    let mut c = Command::new("sh");
    c.arg("-c").arg(line).stdin(Stdio::null());
    c
}

/// spuff's side: this binary as `copy-child`.
fn spuff_cmd(sshd: &Sshd, cipher: &str, kind: Kind, dir: Dir, from: &Path, to: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.arg("copy-child")
        .arg(sshd.port.to_string())
        .arg(&sshd.user)
        .arg(&util::keys().ed25519)
        .arg(sshd.host_key.to_openssh().expect("openssh"))
        .arg(cipher)
        .arg(match (dir, kind) {
            (Dir::Up, Kind::File) => "upload-file",
            (Dir::Up, Kind::Tree) => "upload-dir",
            (Dir::Down, Kind::File) => "download-file",
            (Dir::Down, Kind::Tree) => "download-dir",
        })
        .arg(from)
        .arg(to)
        .stdin(Stdio::null());
    c
}

/// The spuff process: connect with the host key pinned, copy, close, exit.
/// What a program built on the SDK does, and nothing more.
fn copy_child(args: &[String]) {
    let [port, user, key, host_key, cipher, op, from, to] = args else {
        panic!("copy-child PORT USER KEY HOSTKEY CIPHER OP FROM TO");
    };
    // The runtime the `spuff` binary uses (src/cli/mod.rs);
    // SPUFF_BENCH_MULTI_THREAD=1 measures tokio's default instead.
    let rt = if std::env::var_os("SPUFF_BENCH_MULTI_THREAD").is_some() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .expect("runtime");
    rt.block_on(async {
        let cfg = openssh::spuff_config(port, user, key, host_key, cipher);
        // SPUFF_BENCH_WINDOW, _CHUNK and _IN_FLIGHT explore the settings.
        let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        let mut cfg = cfg;
        if let Some(w) = env_num("SPUFF_BENCH_WINDOW") {
            cfg.window_size = w;
        }
        let session = Session::connect(cfg).await.expect("connect");
        let sftp = session.sftp().await.expect("sftp");
        let mut opts = TransferOptions {
            chunk_size: env_num("SPUFF_BENCH_CHUNK"),
            ..TransferOptions::default()
        };
        if let Some(n) = env_num("SPUFF_BENCH_IN_FLIGHT") {
            opts.max_in_flight = n as usize;
        }
        match op.as_str() {
            "upload-file" => drop(sftp.upload_file(from, to, &opts).await.expect("upload")),
            "upload-dir" => drop(sftp.upload_dir(from, to, &opts).await.expect("upload")),
            "download-file" => drop(sftp.download_file(from, to, &opts).await.expect("download")),
            "download-dir" => drop(sftp.download_dir(from, to, &opts).await.expect("download")),
            other => panic!("unknown op {other}"),
        }
        session.close().await.expect("close");
    });
}

/// Another process keeping one core busy while it lives.
struct Busy(Child);

impl Busy {
    fn start() -> Busy {
        // It looks for the bench now and then, so that a bench stopped by a
        // signal (no Drop) does not leave a core spinning under the next run.
        let script = format!(
            "i=0; while :; do i=$((i+1)); if [ $i -ge 200000 ]; then kill -0 {} 2>/dev/null || exit 0; i=0; fi; done",
            std::process::id()
        );
        Busy(
            Command::new("sh")
                .args(["-c", &script])
                .spawn()
                .expect("busy loop"),
        )
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
