//! One short command on many hosts (issue 15), whole process against whole
//! process: spuff's fleet API against `parallel-ssh` (Debian's `pssh`) and
//! a shell loop over OpenSSH (`xargs -P`), with the same parallelism.
//!
//! Run with: cargo bench --bench fleet
//!
//! Every host is the same private sshd on 127.0.0.1 (`MaxStartups` raised
//! so that it accepts them all at once), reached once per host: N
//! connections, key exchanges, authentications and commands on every side.
//! spuff's side is this bench binary re-run as `fleet-child`, a program
//! that builds N hosts and calls `spuff::fleet::exec_all`, as an SDK user
//! would. Cipher and key exchange are pinned alike. SPUFF_BENCH_HOSTS
//! (default 50) hosts, SPUFF_BENCH_RUNS (default 5) rounds, each round
//! every side once in turn. Lines:
//!
//! `figure: fleet_exec_NN_hosts_vs_PEER_ms spuff=X openssh=Y ratio=Z spread_spuff=A..B spread_openssh=C..D`
//!
//! (medians of wall time, ratio below 1 is better), then
//! `cpu: fleet_exec_NN_hosts_client_s spuff=X pssh=Y ssh_loop=Z` (median
//! CPU seconds of each side's processes) and
//! `rss: fleet_exec_NN_hosts_peak_mib spuff=X` (the whole spuff process's
//! largest peak RSS of any round, from `wait4`).

#[path = "common/openssh.rs"]
mod openssh;
#[path = "common/process.rs"]
mod process;
#[path = "../tests/util/mod.rs"]
mod util;

use std::process::{Command, Stdio};

use process::{Run, timed};
use util::Sshd;

const CIPHER: &str = "chacha20-poly1305@openssh.com";

/// How one side's process is made, once per round.
type Side<'a> = Box<dyn Fn() -> Command + 'a>;
const COMMAND: &str = "uname -n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fleet-child") {
        return fleet_child(&args[1..]);
    }
    let env_num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
            .max(1)
    };
    let hosts = env_num("SPUFF_BENCH_HOSTS", 50);
    let runs = env_num("SPUFF_BENCH_RUNS", 5);
    let sshd = Sshd::start_with("MaxStartups 1000\n");
    eprintln!(
        "sshd on 127.0.0.1:{}, {hosts} hosts, {runs} rounds",
        sshd.port
    );

    let work = tempfile::tempdir().expect("tempdir");
    let host_file = work.path().join("hosts");
    std::fs::write(
        &host_file,
        (0..hosts)
            .map(|_| format!("127.0.0.1:{}\n", sshd.port))
            .collect::<String>(),
    )
    .expect("hosts file");

    let mut sides: Vec<(&str, Side)> = vec![
        ("spuff", Box::new(|| spuff_cmd(&sshd, hosts))),
        ("ssh_loop", Box::new(|| loop_cmd(&sshd, hosts))),
    ];
    let has_pssh = Command::new("parallel-ssh")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if has_pssh {
        sides.insert(1, ("pssh", Box::new(|| pssh_cmd(&sshd, &host_file, hosts))));
    } else {
        eprintln!(
            "parallel-ssh is not installed (Debian: apt-get install pssh); comparing with the ssh loop only"
        );
    }
    // One round first that is not counted: the page cache and sshd warm up
    // for everybody.
    for (_, cmd) in &sides {
        timed(cmd());
    }
    let mut results: Vec<Vec<Run>> = sides.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (i, (_, cmd)) in sides.iter().enumerate() {
            results[i].push(timed(cmd()));
        }
    }
    let stats = |v: &[Run]| {
        let mut s: Vec<f64> = v.iter().map(|r| r.time.as_secs_f64() * 1000.0).collect();
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2], s[0], s[s.len() - 1])
    };
    let case = format!("fleet_exec_{hosts}_hosts");
    let (med, lo, hi) = stats(&results[0]);
    for (i, (peer, _)) in sides.iter().enumerate().skip(1) {
        let (pmed, plo, phi) = stats(&results[i]);
        println!(
            "figure: {case}_vs_{peer}_ms spuff={med:.1} openssh={pmed:.1} ratio={:.3} \
             spread_spuff={lo:.1}..{hi:.1} spread_openssh={plo:.1}..{phi:.1}",
            med / pmed
        );
    }
    // The client side's CPU (each process with the children it waited for:
    // parallel-ssh's and xargs's `ssh` processes count to them).
    let cpu = |v: &[Run]| {
        let mut c: Vec<f64> = v.iter().map(|r| r.cpu.as_secs_f64()).collect();
        c.sort_by(f64::total_cmp);
        c[c.len() / 2]
    };
    let cpus: Vec<String> = sides
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name}={:.2}", cpu(&results[i])))
        .collect();
    println!("cpu: {case}_client_s {}", cpus.join(" "));
    let peak = results[0].iter().map(|r| r.rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    println!("rss: {case}_peak_mib spuff={peak:.1}");
}

/// spuff's side: this binary as `fleet-child`.
fn spuff_cmd(sshd: &Sshd, hosts: usize) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.arg("fleet-child")
        .arg(sshd.port.to_string())
        .arg(&sshd.user)
        .arg(&util::keys().ed25519)
        .arg(sshd.host_key.to_openssh().expect("openssh"))
        .arg(hosts.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// `parallel-ssh` over the same hosts, all at once, with the same `ssh`
/// options as every OpenSSH side of the benches.
fn pssh_cmd(sshd: &Sshd, host_file: &std::path::Path, hosts: usize) -> Command {
    let ssh = openssh::openssh(sshd, "ssh", CIPHER);
    // parallel-ssh runs `ssh` itself: hand it the same options, minus the
    // port (the host file has it) and the user (`-l`).
    let mut opts: Vec<String> = Vec::new();
    let mut args = ssh.get_args().map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        match a.as_str() {
            "-p" | "-l" => {
                args.next();
            }
            _ => opts.push(a),
        }
    }
    let mut c = Command::new("parallel-ssh");
    c.arg("-h")
        .arg(host_file)
        .args(["-p", &hosts.to_string(), "-t", "120", "-l", &sshd.user])
        .arg("-x")
        .arg(opts.join(" "))
        .arg(COMMAND)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// A shell loop: `xargs -P N` running one `ssh` per host.
fn loop_cmd(sshd: &Sshd, hosts: usize) -> Command {
    let ssh = openssh::openssh(sshd, "ssh", CIPHER);
    let mut line = String::from("ssh");
    for a in ssh.get_args() {
        line.push(' ');
        line.push('\'');
        line.push_str(&a.to_string_lossy().replace('\'', "'\\''"));
        line.push('\'');
    }
    line.push_str(&format!(" 127.0.0.1 '{COMMAND}'"));
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "seq {hosts} | xargs -P {hosts} -I{{}} {line} > /dev/null"
        ))
        .stdin(Stdio::null());
    c
}

/// The spuff process: N hosts through the fleet API, every one must
/// succeed.
fn fleet_child(args: &[String]) {
    let [port, user, key, host_key, hosts] = args else {
        panic!("fleet-child PORT USER KEY HOSTKEY HOSTS");
    };
    let n: usize = hosts.parse().expect("hosts");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = openssh::spuff_config(port, user, key, host_key, CIPHER);
        let hosts = (0..n)
            .map(|i| spuff::fleet::FleetHost {
                name: format!("vm-{i}"),
                ssh: cfg.clone(),
            })
            .collect();
        let outcomes = spuff::fleet::exec_all(
            hosts,
            COMMAND,
            &spuff::fleet::FleetOptions::default().parallel(n),
            |_| {},
        )
        .await;
        let failed: Vec<_> = outcomes.iter().filter(|o| !o.success()).collect();
        assert!(failed.is_empty(), "{failed:?}");
    });
}
