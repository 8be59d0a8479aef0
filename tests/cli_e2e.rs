//! The `spuff` binary end to end, as a user runs it, against a test cloud:
//! the fake DigitalOcean API (tests/fakecloud) whose droplets boot into a
//! real OpenSSH sshd on 127.0.0.1 built from the create request's user-data
//! (host key, authorized keys, the agent's config file).
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

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;

use crate::fakecloud::{FakeCloud, FakeDroplet, Fault, FaultKind, TOKEN};
use crate::util::{Sshd, SshdOptions, current_user, free_port, keys};

/// How the fake VM's bootstrap ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bootstrap {
    /// `ready` shortly after boot.
    Ready,
    /// Stays `running` (for killing `up` while it waits).
    Forever,
}

/// A test cloud, a user's machine (config dir, HOME, PATH without ssh) and
/// the "VM"'s files, in one temporary directory.
struct World {
    fake: FakeCloud,
    dir: tempfile::TempDir,
    ssh_port: u16,
    agent_port: u16,
    vms: Arc<Mutex<Vec<Sshd>>>,
}

impl World {
    async fn start(bootstrap: Bootstrap) -> World {
        let fake = FakeCloud::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["config", "home", "bin", "vm"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("ca.pem"), &fake.ca_pem).expect("ca");
        let ssh_port = free_port();
        let agent_port = free_port();
        let vms = Arc::new(Mutex::new(Vec::new()));
        {
            let vms = vms.clone();
            let vm_dir = dir.path().join("vm");
            fake.on_create(move |droplet| {
                let sshd = boot(droplet, &vm_dir, ssh_port, agent_port, bootstrap);
                vms.lock().unwrap_or_else(|p| p.into_inner()).push(sshd);
                Some(Ipv4Addr::LOCALHOST)
            });
        }
        let world = World {
            fake,
            dir,
            ssh_port,
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

    /// `spuff ARGS` as a user on this machine runs it, minus a terminal.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spuff"));
        cmd.args(args)
            .env_clear()
            // No ssh, scp or sftp anywhere: spuff must not need them.
            .env("PATH", self.path("bin"))
            .env("HOME", self.path("home"))
            .env("SPUFF_CONFIG_DIR", self.path("config"))
            .env("DIGITALOCEAN_TOKEN", TOKEN)
            .env("SPUFF_API_URL", &self.fake.base_url)
            .env("SPUFF_CA_FILE", self.path("ca.pem"))
            .env("SPUFF_SSH_PORT", self.ssh_port.to_string())
            .env("SPUFF_AGENT_PORT", self.agent_port.to_string())
            .env("SPUFF_TEST_LOGIN_USER", current_user())
            .env(
                "SPUFF_TEST_BOOTSTRAP_STATUS",
                self.path("vm/bootstrap.status"),
            )
            .env("SPUFF_TEST_BOOTSTRAP_LOG", self.path("vm/bootstrap.log"))
            .env("SPUFF_AGENT_INSTALL_DEST", self.path("vm/spuff-agent"))
            .env("SPUFF_AGENT_START_COMMAND", self.agent_start_command())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn spuff(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run spuff")
    }

    /// The "VM" starts the uploaded agent as systemd would: in the
    /// background, with the config cloud-init wrote.
    fn agent_start_command(&self) -> String {
        format!(
            "nohup {} --config {} > {} 2>&1 < /dev/null &",
            self.path("vm/spuff-agent").display(),
            self.path("vm/agent.json").display(),
            self.path("vm/agent.log").display()
        )
    }

    fn up(&self, name: &str) -> Command {
        let agent = agent_binary();
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

    /// Waits until `up` has logged in to the "VM" (its sshd says so).
    fn wait_for_login(&self) {
        eventually("the login", Duration::from_secs(30), || {
            let log: String = self
                .vms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(Sshd::log)
                .collect();
            log.contains("Accepted publickey").then_some(())
        });
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

impl Drop for World {
    fn drop(&mut self) {
        // The agent the "VM" started runs until killed.
        if let Ok(pid) = std::fs::read_to_string(self.path("vm/agent.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.path("vm/spuff-agent"))
            .status();
    }
}

/// The spuff-agent binary of this build (built first if missing).
fn agent_binary() -> PathBuf {
    // tests → target/<profile>/deps/tests-…; the agent is in target/<profile>.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let name = if cfg!(windows) {
        "spuff-agent.exe"
    } else {
        "spuff-agent"
    };
    let path = profile_dir.join(name);
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "spuff-agent", "--bin", "spuff-agent"])
            .status()
            .expect("cargo build -p spuff-agent");
        assert!(status.success(), "building spuff-agent failed");
    }
    path
}

/// The fake cloud boots a droplet: sshd from the user-data's host key and
/// authorized keys, the agent config from its `write_files` (with the test's
/// port), and a bootstrap that reports `running`, then maybe `ready`.
fn boot(
    droplet: &FakeDroplet,
    vm: &Path,
    port: u16,
    agent_port: u16,
    bootstrap: Bootstrap,
) -> Sshd {
    let text = droplet.user_data.as_deref().expect("user-data");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("user-data is YAML");
    let host_key = doc["ssh_keys"]["ed25519_private"]
        .as_str()
        .expect("ssh_keys.ed25519_private")
        .to_string();
    let authorized: String = doc["users"][0]["ssh_authorized_keys"]
        .as_sequence()
        .expect("ssh_authorized_keys")
        .iter()
        .map(|k| format!("{}\n", k.as_str().expect("key")))
        .collect();
    let agent_json = doc["write_files"]
        .as_sequence()
        .expect("write_files")
        .iter()
        .find(|f| f["path"].as_str() == Some(spuff::agent::api::CONFIG_PATH))
        .and_then(|f| f["content"].as_str())
        .expect("the agent's config in write_files");
    let mut config: serde_json::Value = serde_json::from_str(agent_json).expect("agent json");
    config["port"] = serde_json::json!(agent_port);
    write_private(&vm.join("agent.json"), &config.to_string());

    std::fs::write(vm.join("bootstrap.status"), "running\n").expect("status");
    std::fs::write(vm.join("bootstrap.log"), "phase 1: packages\n").expect("log");
    let sshd = Sshd::launch(&SshdOptions {
        host_key: Some(&host_key),
        authorized_keys: Some(&authorized),
        port: Some(port),
        ..SshdOptions::default()
    });
    if bootstrap == Bootstrap::Ready {
        let vm = vm.to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::fs::write(
                vm.join("bootstrap.log"),
                "phase 1: packages\nphase 2: done\n",
            );
            let _ = std::fs::write(vm.join("bootstrap.tmp"), "ready\n");
            let _ = std::fs::rename(vm.join("bootstrap.tmp"), vm.join("bootstrap.status"));
        });
    }
    sshd
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("write agent.json");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(out: &Output, what: &str) -> serde_json::Value {
    assert_success(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Polls `f` until it returns `Some`, or panics after `limit`.
fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
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
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
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
    let world = World::start(Bootstrap::Ready).await;
    // Blocking process calls below: keep them off the runtime's workers.
    let world = Arc::new(world);
    let w = world.clone();
    tokio::task::spawn_blocking(move || whole_life(&w))
        .await
        .expect("test thread");
}

fn whole_life(w: &World) {
    // up: create, record, wait, pinned login, SFTP upload, agent, bootstrap.
    let out = w.up("e2e").arg("--json").output().expect("spuff up");
    let up = json(&out, "up");
    assert_eq!(up["name"], "e2e");
    assert_eq!(up["status"], "ready");
    assert_eq!(up["ip"], "127.0.0.1");
    let id = up["provider_id"].as_str().expect("id").to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pinned host key"), "{stderr}");
    // The agent binary was uploaded over SFTP and installed 0755.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.path("vm/spuff-agent"))
            .expect("agent installed")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
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

    // cp both ways: a file and a tree.
    let local = w.path("home/notes.txt");
    std::fs::write(&local, "some notes\n").expect("write");
    let remote_dir = w.path("vm/files");
    std::fs::create_dir_all(&remote_dir).expect("mkdir");
    let remote = format!("e2e:{}/", remote_dir.display());
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
    assert_success(
        &w.spuff(&["cp", &tree.display().to_string(), &remote]),
        "cp tree up",
    );
    assert_eq!(
        std::fs::read_to_string(remote_dir.join("tree/sub/a.txt")).expect("tree"),
        "a\n"
    );
    let back = w.path("home/back.txt");
    let from = format!(":{}/notes.txt", remote_dir.display());
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
    // Ctrl-C ends it cleanly.
    let _ = Command::new("kill")
        .args(["-INT", &tunnel.id().to_string()])
        .status();
    let status = tunnel.wait().expect("tunnel exit");
    let mut err = String::new();
    std::io::Read::read_to_string(tunnel.stderr.as_mut().expect("stderr"), &mut err).ok();
    assert!(status.success(), "tunnel: {status:?}\n{err}");
    assert!(
        err.contains("opened from"),
        "a line per connection with -v: {err}"
    );

    // logs: the bootstrap log, read over SSH.
    let out = w.spuff(&["logs", "--bootstrap", "-n", "1"]);
    assert_success(&out, "logs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "phase 2: done\n");

    // ssh-config: a Host entry and the pinned key, good enough for OpenSSH
    // itself (the test's own ssh, not spuff's PATH) to log in strictly.
    assert_success(&w.spuff(&["ssh-config", "--no-include"]), "ssh-config");
    let ssh_config = w.path("config/ssh_config");
    let text = std::fs::read_to_string(&ssh_config).expect("ssh_config");
    assert!(text.contains("Host e2e"), "{text}");
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&ssh_config)
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
        .arg(&keys().ed25519)
        .args(["e2e", "echo", "openssh-ok"])
        .output()
        .expect("ssh");
    assert_success(&out, "OpenSSH with spuff's ssh-config");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "openssh-ok\n");

    // list: reconciled with the provider, nothing flagged.
    let list = json(&w.spuff(&["list", "--json"]), "list");
    let rows = list["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["tracking"], "tracked");
    assert_eq!(rows[0]["provider_id"], id.as_str());
    assert_eq!(rows[0]["active"], true);

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
        1,
        "one snapshot action: {:?}",
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
