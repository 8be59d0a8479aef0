//! Issue 12, "in use means in use": the real agent (in-process, reading the
//! real `/proc` and the kernel's sockets) watching a real OpenSSH sshd while
//! real OpenSSH clients use it. Traffic on any logged-in connection holds
//! the VM (a command without a terminal, a tunnel); keepalives on a silent
//! connection and spuff's own polling of the agent do not.
//!
//! sshd makes its processes undumpable, so only root can read their
//! `/proc/PID/io`: like the agent on a VM, these tests need root (CI runs
//! them as root) and say so when skipped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spuff::agent::api::{self, Activity};
use spuff::agent::{Client, ClientConfig};
use spuff_agent::{AgentOptions, AppState, SystemPaths};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::{Sshd, free_port, is_root};

const TOKEN: &str = "activity-token-0123456789";

/// The agent watching `sshd`'s connections, and a client that polls it
/// through its own SSH connection every 300 ms, as `status --watch` does.
struct Watch {
    client: std::sync::Arc<Client>,
    _root: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn watch(sshd: &Sshd) -> Watch {
    let root = tempfile::tempdir().expect("tempdir");
    let mut config = api::AgentConfig::new(TOKEN);
    config.ssh_ports = vec![sshd.port];
    // The agent reads this machine's CPU, which other tests keep busy: only
    // SSH traffic may hold the VM here.
    config.cpu_busy_percent = 101.0;
    let state = AppState::new(AgentOptions {
        config,
        paths: SystemPaths {
            proc_dir: Some("/proc".into()),
            ..SystemPaths::under(root.path())
        },
        monitor_interval: Duration::from_millis(250),
        ..AgentOptions::default()
    })
    .expect("agent state");
    let listener = spuff_agent::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(spuff_agent::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let mut cc = ClientConfig::new(TOKEN);
    cc.port = port;
    let client = std::sync::Arc::new(Client::new(sshd.connect().await, cc));
    let poller = client.clone();
    tokio::spawn(async move {
        while poller.metrics().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    Watch {
        client,
        _root: root,
        _stop: stop,
    }
}

impl Watch {
    async fn activity(&self) -> Activity {
        self.client.activity().await.expect("GET /activity")
    }

    /// Waits until `n` connections are logged in (the watcher's own is one).
    async fn connections(&self, n: usize) -> Activity {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.activity().await;
            if a.connections.len() == n {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} connections, the agent sees: {:#?}",
                a.connections
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The idle time at each second for `secs` seconds.
    async fn idle_each_second(&self, secs: u64) -> Vec<u64> {
        let mut idle = Vec::new();
        for _ in 0..secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            idle.push(self.activity().await.idle_seconds);
        }
        idle
    }
}

/// An OpenSSH client without a terminal, sending a keepalive every second.
fn ssh(sshd: &Sshd, args: &[&str]) -> Child {
    Command::new("ssh")
        .args(sshd.ssh_args())
        .args([
            "-T",
            "-o",
            "ServerAliveInterval=1",
            "-o",
            "ExitOnForwardFailure=yes",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ssh")
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip_unless_root() -> bool {
    if !is_root() {
        eprintln!("skipped: reading sshd's /proc/PID/io needs root, as the agent has on a VM");
    }
    !is_root()
}

#[tokio::test]
async fn a_silent_connection_with_keepalives_should_not_hold_the_vm() {
    if skip_unless_root() {
        return;
    }
    let sshd = Sshd::start();
    let w = watch(&sshd).await;
    let _ssh = Kill(ssh(&sshd, &["127.0.0.1", "sleep 60"]));
    let a = w.connections(2).await;
    assert!(
        a.connections
            .iter()
            .all(|c| c.tty == "notty" && c.from.starts_with("127.0.0.1:")),
        "{:#?}",
        a.connections
    );
    // Let the login's own traffic pass, then watch keepalives (one a second
    // on the silent connection) and the poller (three requests a second).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = w.idle_each_second(5).await;
    assert!(
        idle.windows(2).all(|p| p[1] > p[0]) && idle[4] >= 4,
        "the idle time must keep growing under keepalives and polling: {idle:?}\n{:#?}",
        w.activity().await.recent
    );
    let a = w.activity().await;
    assert!(
        !a.holding.contains(&api::ActivityKind::SshTraffic),
        "{a:#?}"
    );
}

#[tokio::test]
async fn a_command_printing_without_a_terminal_should_hold_the_vm() {
    if skip_unless_root() {
        return;
    }
    let sshd = Sshd::start();
    let w = watch(&sshd).await;
    // Five bytes a second, no terminal: the case the agent used to power
    // off under a user.
    let _ssh = Kill(ssh(
        &sshd,
        &[
            "127.0.0.1",
            "for i in $(seq 60); do echo tick; sleep 1; done",
        ],
    ));
    w.connections(2).await;
    let idle = w.idle_each_second(5).await;
    assert!(
        idle.iter().all(|i| *i <= 2),
        "a command printing every second must hold the VM: {idle:?}"
    );
    let a = w.activity().await;
    let traffic: Vec<_> = a
        .connections
        .iter()
        .filter(|c| c.last_traffic_seconds_ago.is_some_and(|s| s <= 2))
        .collect();
    assert_eq!(
        traffic.len(),
        1,
        "only the command's connection: {:#?}",
        a.connections
    );
}

#[tokio::test]
async fn a_tunnel_carrying_traffic_should_hold_the_vm() {
    if skip_unless_root() {
        return;
    }
    let sshd = Sshd::start();
    let w = watch(&sshd).await;
    // A service on the VM, reached through `ssh -L` one short connection a
    // second, as a browser reaches a dev server.
    let service = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = service.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = service.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await {
                    let _ = s.write_all(&buf[..n]).await;
                }
            });
        }
    });
    let local = free_port();
    let forward = format!("{local}:127.0.0.1:{}", target.port());
    let _ssh = Kill(ssh(&sshd, &["-N", "-L", &forward, "127.0.0.1"]));
    w.connections(2).await;
    let traffic = tokio::spawn(async move {
        for _ in 0..8 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", local)).await {
                let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
                let mut back = [0u8; 64];
                let _ = s.read(&mut back).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let idle = w.idle_each_second(5).await;
    traffic.abort();
    assert!(
        idle.iter().all(|i| *i <= 2),
        "a tunnel carrying a request a second must hold the VM: {idle:?}"
    );
}
