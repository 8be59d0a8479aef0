//! The `spuff` binary end to end, as a user runs it, against a test cloud:
//! the fake DigitalOcean API (tests/fakecloud) whose droplets boot into fake
//! VMs (tests/fakevm): a real OpenSSH sshd on 127.0.0.1 built from the create
//! request's user-data (host key, authorized keys, the agent's config file),
//! whose sessions see the VM's paths under its own root directory. The
//! binary learns where to log in from the API alone (the droplet's address
//! and its `spuff-ssh-port` / `spuff-ssh-user` tags) and runs the same
//! remote commands as on a real VM: no test hook in the product.
//!
//! `spuff up --dev --no-connect` runs the whole flow (create, record, wait,
//! log in with the pinned host key, SFTP upload of the agent, agent started,
//! bootstrap followed); then `exec`, `cp` both ways, `tunnel` (an HTTP
//! request through it reaches the agent), `status --json`, `list`,
//! `snapshot create/list/delete` and `down`. The binary runs with a `PATH`
//! that holds no `ssh`, `scp` or `sftp`, with a private config dir and
//! `HOME`, and without a terminal.
//!
//! Then `spuff up` is killed at each stage, and `list` must still show the VM
//! and `down` must remove it: no VM is ever lost.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use spuff::agent::api;

use crate::fakecloud::{FakeCloud, FakeDroplet, Fault, FaultKind, TOKEN};
use crate::fakevm::{self, FakeVm};
use crate::util::{free_port, keys, server_path, shared_tempdir};

/// How the fake VM's bootstrap goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bootstrap {
    /// Phase 1 ends (`installing`) shortly after boot; phase 2 runs until
    /// the test ends it ([`World::vm_bootstrap`]).
    Installing,
    /// Stays `running` in phase 1 (for killing `up` while it waits).
    Forever,
}

/// A test cloud and a user's machine (config dir, HOME, PATH without ssh)
/// in one temporary directory, and the VMs the cloud booted.
struct World {
    fake: FakeCloud,
    dir: tempfile::TempDir,
    /// The agent's port on the VMs (they share this machine's loopback).
    agent_port: u16,
    vms: Arc<Mutex<Vec<FakeVm>>>,
}

impl World {
    async fn start(bootstrap: Bootstrap) -> World {
        let fake = FakeCloud::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["config", "home", "bin"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("ca.pem"), &fake.ca_pem).expect("ca");
        let agent_port = free_port();
        let vms = Arc::new(Mutex::new(Vec::new()));
        {
            let vms = vms.clone();
            fake.on_create(move |droplet| {
                let vm = boot(droplet, agent_port, bootstrap);
                let booted = vm.booted();
                vms.lock().unwrap_or_else(|p| p.into_inner()).push(vm);
                booted
            });
        }
        let world = World {
            fake,
            dir,
            agent_port,
            vms,
        };
        // The user's setup: which key to log in with.
        let key = keys().ed25519.display().to_string();
        let out = world.spuff(&["config", "set", "ssh_key_path", &key]);
        assert_success(&out, "config set ssh_key_path");
        world
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The user's environment: nothing else reaches the binary.
    fn env(&self) -> Vec<(String, String)> {
        let path = |rel: &str| self.path(rel).display().to_string();
        vec![
            // No ssh, scp or sftp anywhere: spuff must not need them.
            ("PATH".into(), path("bin")),
            ("HOME".into(), path("home")),
            ("SPUFF_CONFIG_DIR".into(), path("config")),
            ("DIGITALOCEAN_TOKEN".into(), TOKEN.into()),
            ("SPUFF_API_URL".into(), self.fake.base_url.clone()),
            ("SPUFF_CA_FILE".into(), path("ca.pem")),
            ("SPUFF_AGENT_PORT".into(), self.agent_port.to_string()),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// `spuff ARGS` as a user on this machine runs it, minus a terminal.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spuff"));
        cmd.args(args)
            .env_clear()
            .envs(self.env())
            .stdin(Stdio::null());
        if cfg!(windows) {
            // What a Windows program (and Wine's loader) needs to start.
            for var in [
                "SystemRoot",
                "windir",
                "SystemDrive",
                "TEMP",
                "TMP",
                "USERPROFILE",
                "APPDATA",
                "LOCALAPPDATA",
                "WINEPREFIX",
                "WINEDEBUG",
            ] {
                if let Some(value) = std::env::var_os(var) {
                    cmd.env(var, value);
                }
            }
        }
        cmd
    }

    fn spuff(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run spuff")
    }

    fn up(&self, name: &str) -> Command {
        let agent = fakevm::agent_binary();
        let agent = agent.display().to_string();
        self.command(&[
            "up",
            "--name",
            name,
            "--dev",
            "--agent-binary",
            &agent,
            "--no-connect",
        ])
    }

    fn state_names(&self) -> Vec<String> {
        let out = self.spuff(&["list", "--local", "--json"]);
        assert_success(&out, "list --local");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until `up` has logged in to the VM (its sshd says so).
    fn wait_for_login(&self) {
        eventually("the login", Duration::from_secs(30), || {
            let log: String = self
                .vms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(FakeVm::log)
                .collect();
            log.contains("Accepted publickey").then_some(())
        });
    }

    /// The (one) VM's bootstrap files, to play its next step.
    fn vm_bootstrap(&self) -> fakevm::Bootstrap {
        let vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(vms.len(), 1, "one VM booted");
        vms[0].bootstrap()
    }

    /// Where the (one) VM's absolute `path` is on this machine.
    fn vm_path(&self, path: &str) -> PathBuf {
        let vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(vms.len(), 1, "one VM booted");
        vms[0].path(path)
    }

    /// Sends `signal` to the sessions of every VM's sshd: `STOP` is a VM
    /// that stops answering without closing anything, `CONT` its return.
    #[cfg(unix)]
    fn signal_sessions(&self, signal: &str) {
        for vm in self.vms.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            vm.sshd.signal_sessions(signal);
        }
    }

    fn droplet_names(&self) -> Vec<String> {
        self.fake
            .state()
            .droplets
            .values()
            .map(|d| d.name.clone())
            .collect()
    }
}

/// The fake cloud boots a droplet into a fake VM (the agent's config with
/// the test's port), whose bootstrap reports `running`, then maybe
/// `installing`.
fn boot(droplet: &FakeDroplet, agent_port: u16, bootstrap: Bootstrap) -> FakeVm {
    boot_user_data(
        droplet.user_data.as_deref().expect("user-data"),
        agent_port,
        bootstrap,
    )
}

/// A fake VM from `user_data` (see [`boot`]).
fn boot_user_data(user_data: &str, agent_port: u16, bootstrap: Bootstrap) -> FakeVm {
    let vm = FakeVm::boot(
        user_data,
        &fakevm::Options {
            agent_port: Some(agent_port),
            ..fakevm::Options::default()
        },
    );
    let files = vm.bootstrap();
    assert!(files.start());
    if bootstrap == Bootstrap::Installing {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = files.phase_1_done() && files.phase_2_installing();
        });
    }
    vm
}

pub(crate) fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn json(out: &Output, what: &str) -> serde_json::Value {
    assert_success(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Polls `f` until it returns `Some`, or panics after `limit`.
pub(crate) fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A raw HTTP/1.1 GET on 127.0.0.1:`port`, returning the response text.
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_should_run_a_vm_through_its_whole_life() {
    let world = World::start(Bootstrap::Installing).await;
    // Blocking process calls below: keep them off the runtime's workers.
    let world = Arc::new(world);
    let w = world.clone();
    tokio::task::spawn_blocking(move || whole_life(&w))
        .await
        .expect("test thread");
}

fn whole_life(w: &World) {
    // Issue 12: with self-destroy on and its own token, the VM gets what it
    // needs to delete itself (the token on the command's stdin, root-only).
    assert_success(&w.spuff(&["config", "set", "self_destroy", "on"]), "config");
    // up: create, record, wait, pinned login, SFTP upload, agent, bootstrap.
    let out = w
        .up("e2e")
        .arg("--json")
        .env("SPUFF_SELF_DESTROY_TOKEN", "scoped-delete-only-0123456789")
        .output()
        .expect("spuff up");
    let up = json(&out, "up");
    assert_eq!(up["name"], "e2e");
    assert_eq!(up["status"], "ready");
    assert_eq!(up["ip"], "127.0.0.1");
    // Issue 11: `up` returned after phase 1; phase 2 still runs.
    assert_eq!(up["bootstrap"], "installing");
    let id = up["provider_id"].as_str().expect("id").to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pinned host key"), "{stderr}");
    assert!(
        stderr.contains("phase 2 (packages, dotfiles) continues in the background")
            && stderr.contains("`spuff status` shows its progress"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deletes itself at digitalocean (with the self-destroy token)"),
        "{stderr}"
    );
    {
        let file = w.vm_path(api::SELF_DESTROY_PATH);
        let req: api::SelfDestroy =
            serde_json::from_slice(&std::fs::read(&file).expect("self-destroy file"))
                .expect("self-destroy JSON");
        assert!(
            req.url.ends_with(&format!("/v2/droplets/{id}")),
            "{}",
            req.url
        );
        assert!(req.url.starts_with("https://127.0.0.1:"), "{}", req.url);
        assert_eq!(req.token, "scoped-delete-only-0123456789");
        assert!(req.ca_pem.is_some(), "the CA spuff trusts for the API");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The agent was told to destroy rather than power off (the fake
        // VM itself runs its agent with `none`).
        let user_data = w
            .fake
            .state()
            .droplets
            .values()
            .filter_map(|d| d.user_data.clone())
            .collect::<String>();
        assert!(
            user_data.contains("\"idle_action\": \"destroy\""),
            "{user_data}"
        );
    }
    // The agent binary was uploaded and installed 0755 where
    // systemd starts it from.
    {
        let installed = w.vm_path(api::BINARY_PATH);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&installed)
                .expect("agent installed")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755);
        }
        assert_eq!(
            std::fs::read(&installed).expect("installed"),
            std::fs::read(fakevm::agent_binary()).expect("built")
        );
    }

    // status --json: the agent answers through the SSH channel.
    let status = eventually("the agent through status", Duration::from_secs(20), || {
        let v = json(&w.spuff(&["status", "--json"]), "status");
        (!v["agent"].is_null()).then_some(v)
    });
    assert_eq!(status["instance"]["name"], "e2e");
    assert_eq!(status["agent"]["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        status["metrics"]["memory_total_bytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(status["activity"]["sources"].is_array());
    // The bootstrap's phase, read from the VM's files over SSH.
    assert_eq!(status["bootstrap"]["status"], "installing", "{status}");
    assert_eq!(status["bootstrap"]["phase"], 2, "{status}");
    assert_eq!(status["bootstrap"]["hint"], "spuff logs --bootstrap");
    // cloud-init's own verdict, whatever this machine's cloud-init says.
    assert!(status["cloud_init"]["status"].is_string(), "{status}");
    assert!(status["agent"]["cloud_init_status"].is_string(), "{status}");
    let out = w.spuff(&["status"]);
    assert_success(&out, "status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bootstrap phase 2 running (installing packages, dotfiles)")
            && text.contains("see `spuff logs --bootstrap`")
            && text.contains(fakevm::log_line::PHASE_2_PACKAGES)
            && text.contains("cloud-init "),
        "{text}"
    );
    // Phase 2 ends on the VM; `status` follows.
    assert!(w.vm_bootstrap().ready());
    let status = json(&w.spuff(&["status", "--json"]), "status");
    assert_eq!(status["bootstrap"]["status"], "ready", "{status}");
    assert!(status["bootstrap"]["phase"].is_null(), "{status}");

    // Issue 16: `dash` without a terminal prints its table once (what a
    // Windows pipe gets too).
    let out = w.spuff(&["dash"]);
    assert_success(&out, "dash");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(table_cell(&table, "e2e", "STATE"), "active", "{table}");
    assert!(
        table_cell(&table, "e2e", "SEEN").ends_with(" ago"),
        "{table}"
    );
    assert!(table_cell(&table, "e2e", "CPU").ends_with('%'), "{table}");

    // exec: output and exit code propagated; stdin forwarded.
    let out = w.spuff(&["exec", "e2e", "--", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let mut child = w
        .command(&["exec", "--", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn exec");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"piped in\n").expect("stdin");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("exec");
    assert_success(&out, "exec with stdin");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED IN\n");

    // Issue 15: `exec --all` runs on every recorded VM, prints a row per
    // VM, keeps whole outputs on request, and exits 0 only when every VM
    // exited 0.
    let fleet_out = w.path("fleet-out");
    let out = w.spuff(&[
        "exec",
        "--all",
        "--output-dir",
        fleet_out.to_str().expect("utf-8 path"),
        "--",
        "echo fleet-ok; echo to-stderr >&2",
    ]);
    assert_success(&out, "exec --all");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("e2e ") && l.contains("exit code 0") && l.ends_with("fleet-ok")),
        "{table}"
    );
    assert_eq!(
        std::fs::read_to_string(fleet_out.join("e2e.stdout")).expect("stdout file"),
        "fleet-ok\n"
    );
    assert_eq!(
        std::fs::read_to_string(fleet_out.join("e2e.stderr")).expect("stderr file"),
        "to-stderr\n"
    );
    let out = w.spuff(&["exec", "--all", "--", "exit 4"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a VM that failed fails the whole"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit code 4"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 1 VMs"));
    let out = w.spuff(&["exec", "--all", "e2e", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--all and a name is a usage error"
    );

    // Issue 12: a running command keeps the VM awake (the agent cannot see
    // a non-tty command); looking at it with `status` never does.
    let out = w.spuff(&["exec", "e2e", "--", "sleep 3"]);
    assert_success(&out, "exec sleep");
    assert_kept_awake_not_watched(&json(&w.spuff(&["status", "--json"]), "status"));

    // cp both ways: a file and a tree.
    let local = w.path("home/notes.txt");
    std::fs::write(&local, "some notes\n").expect("write");
    // A directory on the VM's machine (under Wine: the Linux side's /tmp).
    let remote_root = shared_tempdir();
    let remote_dir = remote_root.path().join("files");
    std::fs::create_dir_all(&remote_dir).expect("mkdir");
    let remote = format!("e2e:{}/", server_path(&remote_dir));
    assert_success(
        &w.spuff(&["cp", "-q", &local.display().to_string(), &remote]),
        "cp up",
    );
    assert_eq!(
        std::fs::read_to_string(remote_dir.join("notes.txt")).expect("uploaded"),
        "some notes\n"
    );
    let tree = w.path("home/tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::write(tree.join("sub/a.txt"), "a\n").expect("write");
    let out = w.spuff(&["cp", &tree.display().to_string(), &remote]);
    assert_success(&out, "cp tree up");
    // The test sshd has GNU tar: the tree goes as one stream (issue 14),
    // and the closing line says what was copied and how.
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(1 file, 2 dirs; through tar)"), "{said}");
    assert_eq!(
        std::fs::read_to_string(remote_dir.join("tree/sub/a.txt")).expect("tree"),
        "a\n"
    );
    // Issue 15: `cp --all` uploads to the same path on every recorded VM.
    let out = w.spuff(&[
        "cp",
        "--all",
        &tree.display().to_string(),
        &format!(":{}/fleet/", server_path(&remote_dir)),
    ]);
    assert_success(&out, "cp --all");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("e2e ")
            && l.contains("copied 2 B")
            && l.contains("1 file, through tar")),
        "{table}"
    );
    assert_eq!(
        std::fs::read_to_string(remote_dir.join("fleet/tree/sub/a.txt")).expect("fleet tree"),
        "a\n"
    );
    let out = w.spuff(&["cp", "--all", &tree.display().to_string(), "e2e:x"]);
    assert_eq!(out.status.code(), Some(1), "--all takes `:path`");
    let back = w.path("home/back.txt");
    let from = format!(":{}/notes.txt", server_path(&remote_dir));
    assert_success(
        &w.spuff(&["cp", &from, &back.display().to_string()]),
        "cp down",
    );
    assert_eq!(
        std::fs::read_to_string(&back).expect("downloaded"),
        "some notes\n"
    );

    // tunnel: the agent's port on localhost; an HTTP request reaches it.
    let local_port = free_port();
    let mut tunnel = w
        .command(&[
            "tunnel",
            "e2e",
            "-v",
            "--agent-port",
            &local_port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tunnel");
    let response = eventually("the tunnel", Duration::from_secs(20), || {
        http_get(local_port, "/health").ok()
    });
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("spuff-agent"), "{response}");
    // Ctrl-C ends it cleanly. (Wine has no console to send it through.)
    #[cfg(unix)]
    let _ = Command::new("kill")
        .args(["-INT", &tunnel.id().to_string()])
        .status();
    #[cfg(windows)]
    let _ = tunnel.kill();
    let status = tunnel.wait().expect("tunnel exit");
    let mut err = String::new();
    std::io::Read::read_to_string(tunnel.stderr.as_mut().expect("stderr"), &mut err).ok();
    if cfg!(unix) {
        assert!(status.success(), "tunnel: {status:?}\n{err}");
    }
    assert!(
        err.contains("opened from"),
        "a line per connection with -v: {err}"
    );

    // logs: the bootstrap log, cloud-init's and the agent's journal, read
    // over SSH.
    let out = w.spuff(&["logs", "--bootstrap", "-n", "1"]);
    assert_success(&out, "logs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", fakevm::log_line::PHASE_2_DONE)
    );
    let out = w.spuff(&["logs", "--cloud-init", "-n", "1"]);
    assert_success(&out, "logs --cloud-init");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("Cloud-init v."),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = w.spuff(&["logs", "--agent", "-n", "100"]);
    assert_success(&out, "logs --agent");
    let journal = String::from_utf8_lossy(&out.stdout);
    assert!(journal.contains("spuff-agent listening"), "{journal}");

    // ssh-config: a Host entry and the pinned key, good enough for OpenSSH
    // itself (the test's own ssh, not spuff's PATH; not under Wine) to log in
    // strictly.
    assert_success(&w.spuff(&["ssh-config", "--no-include"]), "ssh-config");
    let ssh_config = w.path("config/ssh_config");
    let text = std::fs::read_to_string(&ssh_config).expect("ssh_config");
    assert!(text.contains("Host e2e"), "{text}");
    #[cfg(unix)]
    openssh_should_log_in_with(&ssh_config);

    // list: reconciled with the provider, nothing flagged.
    let list = json(&w.spuff(&["list", "--json"]), "list");
    let rows = list["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["tracking"], "tracked");
    assert_eq!(rows[0]["provider_id"], id.as_str());
    assert_eq!(rows[0]["active"], true);

    // Issue 12: `start` powers a stopped VM on and waits until it answers.
    let droplet_status = || {
        w.fake
            .state()
            .droplets
            .values()
            .map(|d| d.status.clone())
            .collect::<Vec<_>>()
    };
    for d in w.fake.state().droplets.values_mut() {
        d.status = "off".into();
    }
    let out = w.spuff(&["start", "e2e"]);
    assert_success(&out, "start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("e2e is running again"), "{stderr}");
    assert_eq!(droplet_status(), ["active"]);

    // snapshots.
    let created = json(
        &w.spuff(&["snapshot", "create", "e2e", "--json"]),
        "snapshot create",
    );
    let snap_id = created["id"].as_str().expect("snapshot id").to_string();
    let listed = json(&w.spuff(&["snapshot", "list", "--json"]), "snapshot list");
    assert!(
        listed["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .any(|s| s["id"] == snap_id.as_str()),
        "{listed}"
    );
    // A cloud's snapshot is an image for new VMs: no rollback in place,
    // and the way that exists is named.
    let out = w.spuff(&["snapshot", "rollback", &snap_id, "--force"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rolling a VM back to a snapshot"),
        "{stderr}"
    );
    assert_success(
        &w.spuff(&["snapshot", "delete", &snap_id, "--force"]),
        "snapshot delete",
    );

    // down without a terminal needs --force.
    let out = w.spuff(&["down", "e2e"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_success(&w.spuff(&["down", "e2e", "--force"]), "down");
    assert!(w.state_names().is_empty(), "state is empty at the end");
    assert!(
        w.droplet_names().is_empty(),
        "the VM is gone at the provider"
    );

    // The API calls the test cloud received, in kind and number.
    let stats = w.fake.stats();
    assert_eq!(stats.count("POST /v2/droplets"), 1, "{:?}", stats.log);
    assert_eq!(
        stats.count(&format!("DELETE /v2/droplets/{id}")),
        1,
        "{:?}",
        stats.log
    );
    assert_eq!(
        stats.count(&format!("POST /v2/droplets/{id}/actions")),
        2,
        "one power-on and one snapshot action: {:?}",
        stats.log
    );
    assert!(
        stats
            .log
            .iter()
            .any(|l| l.starts_with("DELETE /v2/snapshots/")),
        "{:?}",
        stats.log
    );
    assert!(
        stats.log.iter().all(|l| !l.contains("/v2/account/keys")),
        "no key uploads"
    );
}

/// Issue 15: `up --count` makes a fleet (each VM recorded before its
/// create, one live table, no shell), and `exec`, `cp`, `status` and `down`
/// take `--fleet`.
#[tokio::test(flavor = "multi_thread")]
async fn cli_should_make_use_and_remove_a_fleet() {
    let world = Arc::new(World::start(Bootstrap::Installing).await);
    let w = world.clone();
    tokio::task::spawn_blocking(move || fleet_life(&w))
        .await
        .expect("test thread");
}

/// Issue 16: `spuff dash` in a real terminal (tmux), against two VMs of
/// the test cloud: the live table with the agents' figures, a snapshot
/// refused and a destroy confirmed by keys, a shell opened and left, `q`
/// and Ctrl-C with their exit codes; without a terminal, the same columns
/// once. Watching never counts as use of the VMs.
///
/// The test cloud's VMs share this machine's loopback and so the agent's
/// port: the first VM's agent answers, the second's cannot listen, and its
/// SSH channel reaches the first's agent, which refuses its token. So the
/// second VM is the one whose agent does not answer, as a VM's may not.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn dash_should_watch_and_act_on_vms_in_a_terminal() {
    let world = Arc::new(World::start(Bootstrap::Installing).await);
    let w = world.clone();
    tokio::task::spawn_blocking(move || dash_life(&w))
        .await
        .expect("test thread");
}

/// The text under `column` in the line of a plain table that starts with
/// `name`.
fn table_cell(table: &str, name: &str, column: &str) -> String {
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    let start = header.find(column).expect("column");
    let end = header[start + column.len()..]
        .find(|c: char| c != ' ')
        .map_or(usize::MAX, |n| start + column.len() + n);
    let line = lines
        .find(|l| l.trim_start_matches('*').starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{table}"));
    line.get(start..end.min(line.len()))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(unix)]
fn dash_life(w: &World) {
    use crate::util::tmux::Tmux;

    for name in ["db", "web"] {
        assert_success(&w.up(name).output().expect("up"), "up");
    }
    // No terminal: the table, once, with the agents' figures and prices.
    let out = w.spuff(&["dash"]);
    assert_success(&out, "dash without a terminal");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("NAME"), "{table}");
    for name in ["db", "web"] {
        assert_eq!(table_cell(&table, name, "STATE"), "active", "{table}");
        let price: f64 = table_cell(&table, name, "$/H").parse().expect("a price");
        assert!(price > 0.0, "{table}");
    }
    let cpu = table_cell(&table, "db", "CPU");
    assert!(cpu.ends_with('%'), "cpu {cpu:?}\n{table}");
    let mem = table_cell(&table, "db", "MEM");
    assert!(mem.contains("G/"), "mem {mem:?}\n{table}");
    assert_eq!(table_cell(&table, "db", "SEEN"), "0s ago", "{table}");
    assert_eq!(table_cell(&table, "web", "SEEN"), "unreachable", "{table}");
    assert_eq!(table_cell(&table, "web", "CPU"), "-", "{table}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("web: its agent did not answer"), "{stderr}");
    let watched_from = std::time::SystemTime::now();

    // A terminal: the live view.
    let spuff = std::path::Path::new(env!("CARGO_BIN_EXE_spuff"));
    let tmux = Tmux::start(spuff, &["dash", "--interval", "1"], &w.env(), 150, 32);
    let limit = Duration::from_secs(30);
    // The selection is on db (sorted by name): its details say when its
    // agent answered ("providers asked … ago" in the title does not count).
    let screen = tmux.wait("db's figures, web unreachable", limit, |s| {
        s.contains("spuff dash · 2 VMs")
            && s.contains("agent: answered")
            && s.contains("unreachable")
    });
    assert!(screen.contains("NEXT STOP"), "{screen}");
    // web's agent: why it does not answer, and when it is asked again.
    tmux.keys(&["Down"]);
    tmux.wait_for("agent: unreachable for", limit);
    tmux.wait_for("retrying in", limit);
    tmux.keys(&["Up"]);
    // Several refreshes.
    std::thread::sleep(Duration::from_secs(4));
    // The selection starts on db (sorted by name): a snapshot, refused.
    tmux.keys(&["p"]);
    tmux.wait_for("Snapshot db as", limit);
    tmux.keys(&["n"]);
    tmux.wait_for("no snapshot taken", limit);
    assert_eq!(w.fake.stats().count("POST /v2/droplets/*/actions"), 0);
    // Watching is not using: nothing the dashboard did counts as activity.
    let status = json(&w.spuff(&["status", "db", "--json"]), "status");
    let activity: api::Activity =
        serde_json::from_value(status["activity"].clone()).expect("activity");
    let since: Vec<_> = activity
        .recent
        .iter()
        .filter(|e| e.at.0 > watched_from)
        .collect();
    assert!(since.is_empty(), "watching counted as use: {since:?}");

    // Destroy web, confirmed.
    tmux.keys(&["Down", "x"]);
    tmux.wait_for("Destroy web?", limit);
    tmux.keys(&["y"]);
    tmux.wait_for("web is destroyed and forgotten", Duration::from_secs(60));
    assert_eq!(w.droplet_names(), ["db"]);
    assert_eq!(w.state_names(), ["db"]);
    tmux.wait_for("spuff dash · 1 VM ", limit);

    // A shell on db, and back.
    tmux.keys(&["Enter"]);
    std::thread::sleep(Duration::from_secs(2));
    tmux.type_text("echo from-the-shell-$((6*7))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("from-the-shell-42", limit);
    tmux.type_text("exit 3");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the shell on db ended (exit 3)", limit);

    tmux.keys(&["q"]);
    assert_eq!(tmux.wait_exit(limit), 0, "q quits with 0");
    drop(tmux);

    // Ctrl-C is an interruption, as the documented exit codes say.
    let tmux = Tmux::start(spuff, &["dash"], &w.env(), 150, 32);
    tmux.wait_for("spuff dash · 1 VM ", limit);
    tmux.keys(&["C-c"]);
    assert_eq!(tmux.wait_exit(limit), 130);
    // The terminal was handed back: the alternate screen is gone.
    let screen = tmux.screen();
    assert!(!screen.contains("NEXT STOP"), "{screen}");
    assert_success(&w.spuff(&["down", "db", "--force"]), "down");
}

/// Issue 17: `spuff ssh` in a real terminal against a VM that stops
/// answering (its sshd's session processes stopped, nothing closed): `~.`
/// leaves at once with 255, as `ssh` does; `~?` lists the escapes; left
/// alone, the keepalives give up on the VM by themselves and the error
/// starts a line of its own.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ssh_should_leave_a_stalled_vm_by_escape_or_keepalive() {
    let world = Arc::new(World::start(Bootstrap::Installing).await);
    let w = world.clone();
    tokio::task::spawn_blocking(move || stalled_life(&w))
        .await
        .expect("test thread");
}

#[cfg(unix)]
fn stalled_life(w: &World) {
    use crate::util::tmux::Tmux;

    assert_success(&w.up("st").output().expect("up"), "up");
    let spuff = std::path::Path::new(env!("CARGO_BIN_EXE_spuff"));
    let limit = Duration::from_secs(30);
    let stall = |signal: &str| w.signal_sessions(signal);

    let tmux = Tmux::start(spuff, &["ssh", "st"], &w.env(), 120, 30);
    tmux.wait_for("@vm", limit);
    tmux.type_text("echo alive-$((2*3))");
    tmux.keys(&["Enter"]);
    tmux.wait_for("alive-6", limit);
    tmux.type_text("~?");
    tmux.wait_for("Supported escape sequences", limit);
    // Mid-line, `~.` is text for the VM.
    tmux.type_text("echo a~.b");
    tmux.keys(&["Enter"]);
    tmux.wait_for("a~.b\n", limit);
    stall("STOP");
    tmux.type_text("echo never-seen");
    tmux.keys(&["Enter"]);
    tmux.type_text("~.");
    assert_eq!(tmux.wait_exit(limit), 255);
    let screen = tmux.screen();
    assert!(
        screen.contains("left the session on st (the VM keeps running)"),
        "{screen}"
    );
    stall("CONT");
    drop(tmux);

    // Left alone: the keepalives (every 5 s, 3 missed) end it.
    let tmux = Tmux::start(spuff, &["ssh", "st"], &w.env(), 120, 30);
    tmux.wait_for("@vm", limit);
    tmux.type_text("printf 'no newline here'");
    tmux.keys(&["Enter"]);
    tmux.wait_for("no newline here", limit);
    stall("STOP");
    let stalled = std::time::Instant::now();
    assert_eq!(tmux.wait_exit(Duration::from_secs(90)), 1);
    // A figure for the docs, not a threshold: 5 s × 3 keepalives plus one
    // question to the provider.
    eprintln!("stall to exit: {:.1}s", stalled.elapsed().as_secs_f64());
    let screen = tmux.screen();
    let error = screen
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or_else(|| panic!("no error on the screen:\n{screen}"));
    assert!(
        error.starts_with("error"),
        "the error shares a line: {screen}"
    );
    assert!(
        screen.contains("stopped answering keepalives"),
        "the error does not say the VM stopped answering: {screen}"
    );
    stall("CONT");
    drop(tmux);
    assert_success(&w.spuff(&["down", "st", "--force"]), "down");
}

/// Issue 17: `status --watch` in a real terminal across a connection
/// loss: the figures stay, marked stale with their age and the error, the
/// connection is made again once the VM answers, and the view says so;
/// `q` quits with 0, Ctrl-C with 130.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn status_watch_should_mark_stale_figures_and_recover() {
    let world = Arc::new(World::start(Bootstrap::Installing).await);
    let w = world.clone();
    tokio::task::spawn_blocking(move || watch_life(&w))
        .await
        .expect("test thread");
}

#[cfg(unix)]
fn watch_life(w: &World) {
    use crate::util::tmux::Tmux;

    let spuff = std::path::Path::new(env!("CARGO_BIN_EXE_spuff"));
    let limit = Duration::from_secs(30);
    let agent = fakevm::agent_binary().display().to_string();
    let spinners = ['⠁', '⠂', '⠄', '⡀', '⢀', '⠠', '⠐', '⠈'];
    // Ctrl-C during the bootstrap: the step says it was interrupted (not
    // failed), no spinner stays, the half-made VM is destroyed when the
    // user says so, and the exit code is 130.
    let up_args = [
        "up",
        "--name",
        "ic",
        "--dev",
        "--agent-binary",
        &agent,
        "--no-connect",
    ];
    let tmux = Tmux::start(spuff, &up_args, &w.env(), 160, 40);
    // The terminal echoes `^C` where the cursor is: it must not push the
    // spinner's line out of indicatif's reach (src/cli/ui.rs, `bars`).
    tmux.wait_for("Bootstrapping (", Duration::from_secs(120));
    tmux.keys(&["C-c"]);
    tmux.wait_for("Destroy ic, which was being created?", limit);
    tmux.type_text("y");
    tmux.keys(&["Enter"]);
    assert_eq!(tmux.wait_exit(Duration::from_secs(120)), 130);
    let screen = tmux.screen();
    assert!(screen.contains("✗ Bootstrapping interrupted ("), "{screen}");
    assert!(!screen.contains("failed"), "{screen}");
    assert!(
        !screen.contains(|c| spinners.contains(&c)),
        "a spinner was left on the screen:\n{screen}"
    );
    drop(tmux);
    assert!(w.state_names().is_empty(), "{:?}", w.state_names());

    // `up` on a terminal: spinners, and lines printed while they spin
    // (the uploaded agent) leave no frozen spinner behind.
    let up_args = [
        "up",
        "--name",
        "wa",
        "--dev",
        "--agent-binary",
        &agent,
        "--no-connect",
    ];
    let tmux = Tmux::start(spuff, &up_args, &w.env(), 160, 40);
    assert_eq!(
        tmux.wait_exit(Duration::from_secs(120)),
        0,
        "{}",
        tmux.screen()
    );
    let screen = tmux.screen();
    assert!(
        screen.contains("agent uploaded, SHA-256 checked on the VM, and started"),
        "{screen}"
    );
    assert!(screen.contains("✓ created"), "{screen}");
    assert!(
        !screen.contains(|c| spinners.contains(&c)),
        "a spinner was left on the screen:\n{screen}"
    );
    drop(tmux);
    let stall = |signal: &str| w.signal_sessions(signal);
    let tmux = Tmux::start(spuff, &["status", "wa", "--watch"], &w.env(), 120, 40);
    let screen = tmux.wait_for("Updated ", limit);
    assert!(screen.contains("load      cpu"), "{screen}");
    stall("STOP");
    let screen = tmux.wait_for("STALE: the figures below are", Duration::from_secs(90));
    assert!(screen.contains("trying again in"), "{screen}");
    // The last figures are still shown.
    assert!(screen.contains("load      cpu"), "{screen}");
    stall("CONT");
    tmux.wait_for("reconnected", Duration::from_secs(90));
    tmux.keys(&["q"]);
    assert_eq!(tmux.wait_exit(limit), 0);
    drop(tmux);

    let tmux = Tmux::start(spuff, &["status", "wa", "--watch"], &w.env(), 120, 40);
    tmux.wait_for("Updated ", limit);
    tmux.keys(&["C-c"]);
    assert_eq!(tmux.wait_exit(limit), 130);
    drop(tmux);
    // `logs -f` interrupted: 130 too (no terminal needed for that).
    let tmux = Tmux::start(spuff, &["logs", "wa", "-f"], &w.env(), 120, 20);
    std::thread::sleep(Duration::from_secs(3));
    tmux.keys(&["C-c"]);
    assert_eq!(tmux.wait_exit(limit), 130);
    drop(tmux);
    // "No" to `down` is a choice: said plainly, exit 0, nothing destroyed.
    let tmux = Tmux::start(spuff, &["down", "wa"], &w.env(), 120, 20);
    tmux.wait_for("Destroy wa?", limit);
    tmux.type_text("n");
    tmux.keys(&["Enter"]);
    assert_eq!(tmux.wait_exit(limit), 0);
    let screen = tmux.screen();
    assert!(screen.contains("Nothing was destroyed."), "{screen}");
    assert!(!screen.contains("error"), "{screen}");
    drop(tmux);
    assert_eq!(w.state_names(), ["wa"]);
    assert_success(&w.spuff(&["down", "wa", "--force"]), "down");
}

/// Issue 17: `config init` in a real terminal offers the defaults
/// `config show` knows: the region, size and image of the provider just
/// chosen, and the key spuff would use; Enter keeps them unset.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn config_init_should_offer_the_providers_defaults() {
    let world = Arc::new(World::start(Bootstrap::Installing).await);
    let w = world.clone();
    tokio::task::spawn_blocking(move || {
        use crate::util::tmux::Tmux;
        let spuff = std::path::Path::new(env!("CARGO_BIN_EXE_spuff"));
        let limit = Duration::from_secs(30);
        let tmux = Tmux::start(spuff, &["config", "init", "--force"], &w.env(), 200, 40);
        tmux.wait_for("provider (", limit);
        tmux.type_text("hetzner");
        tmux.keys(&["Enter"]);
        tmux.wait_for("api_token", limit);
        tmux.keys(&["Enter"]);
        let screen = tmux.wait_for("[nbg1]", limit);
        assert!(screen.contains("region ("), "{screen}");
        tmux.keys(&["Enter"]);
        tmux.wait_for("[cx22]", limit);
        tmux.keys(&["Enter"]);
        tmux.wait_for("[ubuntu 24.04]", limit);
        tmux.keys(&["C-c"]);
        tmux.wait_exit(limit);
    })
    .await
    .expect("test thread");
}

fn fleet_life(w: &World) {
    let agent = fakevm::agent_binary().display().to_string();
    let out = w.spuff(&[
        "up",
        "--count",
        "3",
        "--name",
        "fl",
        "--parallel",
        "2",
        "--dev",
        "--agent-binary",
        &agent,
    ]);
    assert_success(&out, "up --count");
    let table = String::from_utf8_lossy(&out.stdout);
    for n in 1..=3 {
        assert!(
            table.lines().any(|l| l.starts_with(&format!("fl-{n} "))
                && l.contains("ready")
                && l.contains("127.0.0.1")),
            "{table}"
        );
    }
    let mut names = w.state_names();
    names.sort();
    assert_eq!(names, ["fl-1", "fl-2", "fl-3"]);
    assert_eq!(w.fake.stats().count("POST /v2/droplets"), 3);
    // Every droplet carries the fleet's tag.
    for d in w.fake.state().droplets.values() {
        assert!(d.tags.iter().any(|t| t == "spuff-fleet:fl"), "{:?}", d.tags);
    }
    // The same name again is refused before anything is made.
    let out = w.spuff(&[
        "up",
        "--count",
        "2",
        "--name",
        "fl",
        "--dev",
        "--agent-binary",
        &agent,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a fleet called fl exists"));

    // One create of a fleet refused: the others are made and usable, the
    // table and the error say which failed and why, the exit code is 1.
    w.fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        FaultKind::Refuse {
            status: 422,
            code: "unprocessable_entity",
        },
    ));
    let out = w.spuff(&[
        "up",
        "--count",
        "3",
        "--name",
        "pf",
        "--parallel",
        "1",
        "--dev",
        "--agent-binary",
        &agent,
    ]);
    assert_eq!(out.status.code(), Some(1), "some failed");
    let table = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("pf-1 ") && l.contains("failed")),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.contains(" ready ")).count(),
        2,
        "{table}"
    );
    assert!(
        stderr.contains("pf-1 failed") && stderr.contains("HTTP 422"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 3 VMs failed; the 2 ready ones are usable"),
        "{stderr}"
    );
    let out = w.spuff(&["exec", "--fleet", "pf", "--", "true"]);
    assert_success(&out, "exec on what was made");
    assert_success(
        &w.spuff(&["down", "--fleet", "pf", "--force"]),
        "down --fleet pf",
    );

    let out = w.spuff(&["exec", "--fleet", "fl", "--", "echo hi-from-fleet"]);
    assert_success(&out, "exec --fleet");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.ends_with("hi-from-fleet"))
            .count(),
        3,
        "{table}"
    );
    let out = w.spuff(&["exec", "--fleet", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no fleet called nope: fleets: fl"));

    let file = w.path("fleet.txt");
    std::fs::write(&file, "to every VM\n").expect("write");
    let out = w.spuff(&[
        "cp",
        "--fleet",
        "fl",
        &file.display().to_string(),
        ":fleet.txt",
    ]);
    assert_success(&out, "cp --fleet");

    let status = json(
        &w.spuff(&["status", "--fleet", "fl", "--json"]),
        "status --fleet",
    );
    let vms = status["vms"].as_array().expect("vms");
    assert_eq!(vms.len(), 3);
    assert!(
        vms.iter().all(|v| v["provider_status"] == "active"),
        "{status}"
    );

    // `nuke` finds them by tag; without a terminal it wants --yes.
    let listed = json(&w.spuff(&["nuke", "--dry-run", "--json"]), "nuke --dry-run");
    assert_eq!(
        listed["resources"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let out = w.spuff(&["nuke"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    assert_eq!(w.droplet_names().len(), 3, "nothing deleted unasked");

    assert_success(
        &w.spuff(&["down", "--fleet", "fl", "--force"]),
        "down --fleet",
    );
    assert!(w.state_names().is_empty());
    assert!(w.droplet_names().is_empty());

    // `nuke --yes` deletes what it finds and forgets the records of the
    // VMs it deleted.
    assert_success(&w.up("lost").output().expect("up"), "up lost");
    let out = w.spuff(&["nuke", "--yes"]);
    assert_success(&out, "nuke --yes");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("VM ") && l.contains("lost")),
        "{table}"
    );
    assert!(w.droplet_names().is_empty());
    assert!(w.state_names().is_empty(), "its record went with it");
    let out = w.spuff(&["nuke", "--yes"]);
    assert_success(&out, "nuke again");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Nothing of spuff's is left"));
}

/// Issue 15: `spuff up --provider aws` end to end against the fake EC2
/// (signed requests, XML), whose instances boot into fake VMs: a spot VM
/// in the cheapest zone, used, seen interrupted, and removed by `nuke`.
#[tokio::test(flavor = "multi_thread")]
async fn cli_should_run_a_spot_vm_on_aws() {
    use crate::fakecloud::aws::{self, ACCESS_KEY, SECRET};
    let fake = crate::fakecloud::server::Server::<aws::State>::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["config", "home", "bin"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    std::fs::write(dir.path().join("ca.pem"), &fake.ca_pem).expect("ca");
    let agent_port = free_port();
    let vms = Arc::new(Mutex::new(Vec::new()));
    {
        let vms = vms.clone();
        fake.on_run(move |user_data| {
            let vm = boot_user_data(user_data, agent_port, Bootstrap::Installing);
            let booted = vm.booted();
            vms.lock().unwrap_or_else(|p| p.into_inner()).push(vm);
            booted
        });
    }
    let fake = Arc::new(fake);
    let (f, path) = (fake.clone(), dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let spuff = |args: &[&str]| -> Output {
            Command::new(env!("CARGO_BIN_EXE_spuff"))
                .args(args)
                .env_clear()
                .env("PATH", path.join("bin"))
                .env("HOME", path.join("home"))
                .env("SPUFF_CONFIG_DIR", path.join("config"))
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("SPUFF_API_URL", &f.base_url)
                .env("SPUFF_CA_FILE", path.join("ca.pem"))
                .env("SPUFF_AGENT_PORT", agent_port.to_string())
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .output()
                .expect("run spuff")
        };
        let key = keys().ed25519.display().to_string();
        for (k, v) in [
            ("provider", "aws"),
            ("ssh_key_path", key.as_str()),
            ("aws_ssh_cidr", "127.0.0.1/32"),
        ] {
            assert_success(&spuff(&["config", "set", k, v]), "config set");
        }
        let shown = spuff(&["config", "show"]);
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("aws credentials: key"), "{text}");
        assert!(text.contains("from environment"), "{text}");
        assert!(!text.contains(SECRET), "{text}");

        let agent = fakevm::agent_binary().display().to_string();
        let out = spuff(&[
            "up",
            "--name",
            "aws1",
            "--dev",
            "--agent-binary",
            &agent,
            "--no-connect",
            "--spot",
            "--cheapest-zone",
            "--json",
        ]);
        let up = json(&out, "up on aws");
        assert_eq!(up["provider"], "aws");
        assert_eq!(up["ip"], "127.0.0.1");
        let id = up["provider_id"].as_str().expect("id").to_string();
        assert!(id.starts_with("us-east-1/i-"), "{id}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Spot price of t3.small in us-east-1 now: $0.0062/h (us-east-1b)"),
            "{stderr}"
        );
        let instance = f.instance(&id).expect("instance");
        assert!(instance.spot && instance.zone == "us-east-1b");
        assert_eq!(instance.shutdown_behavior.as_deref(), Some("terminate"));
        assert_eq!(f.state().bad_signatures, 0);

        let out = spuff(&["exec", "aws1", "--", "echo on-ec2"]);
        assert_success(&out, "exec on aws");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "on-ec2\n");

        // AWS takes it back: `list` says so and `gc` would remove it.
        f.state().interrupt(&id);
        let listed = json(&spuff(&["list", "--json"]), "list");
        assert!(
            listed.to_string().contains("interrupted (spot)"),
            "{listed}"
        );
        let gc = json(&spuff(&["gc", "--dry-run", "--json"]), "gc --dry-run");
        assert!(gc.to_string().contains("interrupted"), "{gc}");

        // nuke finds the VM and spuff's security group by tag, in every
        // region, and removes them and the record.
        let out = spuff(&["nuke", "--yes"]);
        assert_success(&out, "nuke");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("security group") && table.contains("spuff-ssh"),
            "{table}"
        );
        assert!(f.state().groups.is_empty());
        let listed = json(&spuff(&["list", "--local", "--json"]), "list --local");
        assert_eq!(
            listed["instances"].as_array().map(Vec::len),
            Some(0),
            "{listed}"
        );
    })
    .await
    .expect("test thread");
    drop(vms);
}

/// OpenSSH logs in to the VM with spuff's `ssh_config` alone, strictly.
#[cfg(unix)]
fn openssh_should_log_in_with(ssh_config: &std::path::Path) {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(ssh_config)
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(&keys().ed25519)
        .args(["e2e", "echo", "openssh-ok"])
        .output()
        .expect("ssh");
    assert_success(&out, "OpenSSH with spuff's ssh-config");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "openssh-ok\n");
}

/// Where `up` is when the test kills it.
#[derive(Debug, Clone, Copy)]
enum Stage {
    /// The create request is in flight (held by the fake).
    Creating,
    /// The create was answered and the id recorded; waiting further.
    Recorded,
    /// Logged in, waiting for a bootstrap that never ends.
    Bootstrapping,
}

async fn kill_up_at(stage: Stage) {
    let world = Arc::new(World::start(Bootstrap::Forever).await);
    let gate = Arc::new(tokio::sync::Notify::new());
    if let Stage::Creating = stage {
        world.fake.push_fault(Fault::new(
            Method::POST,
            "/v2/droplets",
            FaultKind::Hold(gate.clone()),
        ));
    }
    let w = world.clone();
    let name = format!("kill-{}", format!("{stage:?}").to_lowercase());
    let gate2 = gate.clone();
    tokio::task::spawn_blocking(move || {
        let mut up = w
            .up(&name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("up");
        // Wait for the stage, as seen from outside: the state file and the VM.
        match stage {
            Stage::Creating => {
                eventually(
                    "the record before the create returns",
                    Duration::from_secs(20),
                    || w.state_names().contains(&name).then_some(()),
                );
                eventually("the create at the fake", Duration::from_secs(20), || {
                    w.fake
                        .stats()
                        .log
                        .iter()
                        .any(|l| l == "POST /v2/droplets")
                        .then_some(())
                });
            }
            Stage::Recorded => {
                eventually("the provider id in state", Duration::from_secs(20), || {
                    let v = json(&w.spuff(&["list", "--local", "--json"]), "list");
                    v["instances"][0]["provider_id"]
                        .as_str()
                        .filter(|id| !id.is_empty())
                        .map(|_| ())
                });
            }
            Stage::Bootstrapping => {
                w.wait_for_login();
            }
        }
        // SIGKILL: no cleanup code runs; the record must already be there.
        up.kill().expect("kill up");
        let _ = up.wait();
        // The create the fake was holding may still go through after the
        // kill (a real provider may have made the VM); either way the record
        // must be there.
        gate2.notify_one();
        std::thread::sleep(Duration::from_millis(500));
        let exists = w.droplet_names().contains(&name);

        // list shows it: tracked when the provider has it (matched by name if
        // the id never arrived), gone when the create never happened.
        let list = json(&w.spuff(&["list", "--json"]), "list");
        let rows = list["instances"].as_array().expect("rows");
        let row = rows
            .iter()
            .find(|r| r["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from list: {list}"));
        assert_eq!(
            row["tracking"],
            if exists { "tracked" } else { "gone" },
            "{list}"
        );
        if !matches!(stage, Stage::Creating) {
            assert!(exists, "the create was answered, so the VM exists");
        }

        // down removes it at the provider and in state.
        assert_success(&w.spuff(&["down", &name, "--force"]), "down");
        assert!(
            w.droplet_names().is_empty(),
            "VM left at the provider: {:?}",
            w.droplet_names()
        );
        assert!(w.state_names().is_empty(), "state not empty");
    })
    .await
    .expect("test thread");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_up_while_it_creates_should_not_lose_the_vm() {
    kill_up_at(Stage::Creating).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_up_after_the_create_should_not_lose_the_vm() {
    kill_up_at(Stage::Recorded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_up_while_it_bootstraps_should_not_lose_the_vm() {
    kill_up_at(Stage::Bootstrapping).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_up_without_a_terminal_should_destroy_the_vm() {
    let world = Arc::new(World::start(Bootstrap::Forever).await);
    let w = world.clone();
    tokio::task::spawn_blocking(move || {
        let up = w
            .up("interrupted")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("up");
        w.wait_for_login();
        let _ = Command::new("kill")
            .args(["-INT", &up.id().to_string()])
            .status();
        let out = up.wait_with_output().expect("up exit");
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(w.droplet_names().is_empty(), "destroyed at the provider");
        assert!(w.state_names().is_empty(), "forgotten in state");
    })
    .await
    .expect("test thread");
}

/// Issue 12, from `status --json` after a `spuff exec` that ran a few
/// seconds: the command's heartbeat reached the agent, and none of the
/// `status` calls before counted as activity.
pub(crate) fn assert_kept_awake_not_watched(status: &serde_json::Value) {
    let kinds: Vec<&str> = status["activity"]["recent"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        kinds.contains(&"heartbeat"),
        "exec sent no heartbeat: {kinds:?}"
    );
    assert!(
        !kinds.contains(&"agent_request"),
        "status counted as activity: {kinds:?}"
    );
}

/// Issue 16 through the binary: `spuff up` on a Proxmox cluster, as a user
/// sets it up (docs/proxmox.md): an API token, the cluster's CA, the
/// template, node SSH for the snippet (the node's host key in the user's
/// known_hosts) and a static `proxmox_ipconfig`. The fake Proxmox boots a
/// fake VM from the snippet its `cicustom` names when the VM starts, so
/// spuff logs in with its pinned host key, uploads the agent and follows
/// the bootstrap as on a real cluster; then `list`, `exec`, `status`,
/// `snapshot create` and `down`, which removes the VM and its snippet.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn proxmox_should_run_a_vm_through_the_binary() {
    use crate::fakecloud::proxmox::{self, State};
    use crate::fakecloud::server::Server;

    let fake = Server::<State>::start().await;
    let node = crate::util::Sshd::start();
    let snippets = node.remote("snippets");
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["config", "home/.ssh", "bin"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    std::fs::write(dir.path().join("ca.pem"), &fake.ca_pem).expect("ca");
    // The user ssh'd to the node once: its key is known.
    std::fs::write(
        dir.path().join("home/.ssh/known_hosts"),
        format!(
            "[127.0.0.1]:{} {}\n",
            node.port,
            node.host_key.to_openssh().expect("key")
        ),
    )
    .expect("known_hosts");
    let agent_port = free_port();
    let vms = Arc::new(Mutex::new(Vec::<FakeVm>::new()));
    {
        let vms = vms.clone();
        let snippets = snippets.clone();
        fake.on_start(move |id, _vm| {
            let user_data = std::fs::read_to_string(format!("{snippets}/spuff-{id}-user.yaml"))
                .expect("the VM's snippet");
            let vm = boot_user_data(&user_data, agent_port, Bootstrap::Installing);
            let booted = vm.booted();
            vms.lock().unwrap_or_else(|p| p.into_inner()).push(vm);
            booted
        });
    }
    let path = |rel: &str| dir.path().join(rel).display().to_string();
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_spuff"))
            .args(args)
            .env_clear()
            .env("PATH", path("bin"))
            .env("HOME", path("home"))
            .env("SPUFF_CONFIG_DIR", path("config"))
            .env("PROXMOX_VE_API_TOKEN", proxmox::TOKEN)
            .env("SPUFF_CA_FILE", path("ca.pem"))
            .env("SPUFF_AGENT_PORT", agent_port.to_string())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run spuff")
    };
    let url = format!("https://127.0.0.1:{}", fake.addr.port());
    let node_ssh = format!("{}@127.0.0.1:{}", node.user, node.port);
    let snippet_store = format!("local:{snippets}");
    let key = keys().ed25519.display().to_string();
    for (k, v) in [
        ("provider", "proxmox"),
        ("proxmox_url", url.as_str()),
        ("proxmox_template", "9000"),
        ("proxmox_node_ssh", node_ssh.as_str()),
        ("proxmox_snippets", snippet_store.as_str()),
        // Where the fake VM's sshd is (every fake VM shares loopback).
        ("proxmox_ipconfig", "ip=127.0.0.1/8"),
        ("ssh_key_path", key.as_str()),
        ("region", "pve1"),
        ("size", "small"),
    ] {
        assert_success(&run(&["config", "set", k, v]), &format!("config set {k}"));
    }
    let agent = fakevm::agent_binary().display().to_string();
    let up = run(&[
        "up",
        "--name",
        "pve",
        "--dev",
        "--agent-binary",
        &agent,
        "--no-connect",
    ]);
    assert_success(&up, "up");
    let said = String::from_utf8_lossy(&up.stderr);
    assert!(
        said.contains("logged in with the pinned host key"),
        "{said}"
    );
    let listed = json(&run(&["list", "--json"]), "list");
    let vm = &listed["instances"][0];
    assert_eq!(vm["name"], "pve", "{listed}");
    assert_eq!(vm["provider"], "proxmox", "{listed}");
    let id = vm["provider_id"].as_str().expect("id").to_string();
    let out = run(&["exec", "pve", "--", "echo", "hello-from-pve"]);
    assert_success(&out, "exec");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello-from-pve"
    );
    let status = json(&run(&["status", "pve", "--json"]), "status");
    assert!(status["agent"].is_object(), "{status}");
    assert_success(&run(&["snapshot", "create", "pve"]), "snapshot create");
    let snaps = run(&["snapshot", "list"]);
    assert_success(&snaps, "snapshot list");
    let snaps = String::from_utf8_lossy(&snaps.stdout);
    assert!(snaps.contains(&format!("{id}/")), "{snaps}");
    let snippet = std::path::PathBuf::from(format!("{snippets}/spuff-{id}-user.yaml"));
    assert!(snippet.exists());
    assert_success(&run(&["down", "pve", "--force"]), "down");
    assert!(
        !fake
            .state()
            .vms
            .contains_key(&id.parse::<u64>().expect("vmid")),
        "the VM is gone"
    );
    assert!(!snippet.exists(), "the snippet goes with its VM");
}
