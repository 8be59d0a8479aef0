//! The whole product on a real VM: the `spuff` binary, as a new user runs it
//! (no cloud token, so the local provider is the default), boots a QEMU VM
//! from the offline base image `ci/build-image.sh` builds, under a real
//! cloud-init and a real systemd, and goes through its whole life.
//!
//! Nothing here is a stand-in: the user-data is spuff's own, cloud-init must
//! report `done` without errors, the host key is the one spuff generated
//! (OpenSSH checks it strictly too), the agent runs as the systemd unit the
//! user-data installed and listens on 127.0.0.1 only. Then `up` is killed
//! with SIGKILL while a second VM boots, and `list`/`down` must find and
//! remove it, leaving no QEMU behind.
//!
//! The image comes from `SPUFF_TEST_IMAGE` (a folder made by
//! `ci/build-image.sh`; `ci/test.sh` builds and caches it). Without it the
//! test says it is skipped, except under CI (`CI` set), where that is a
//! failure: CI must run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sha2::Digest;
use spuff::agent::api;

use crate::cli_e2e::{assert_success, eventually, http_get, json};
use crate::util::{free_port, keys};

const IMAGE_VAR: &str = "SPUFF_TEST_IMAGE";

/// The base image folder, or `None` (skipped) outside CI.
fn image() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(IMAGE_VAR).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the real-VM test: set {IMAGE_VAR} (ci/test.sh builds the image with ci/build-image.sh)"
    );
    eprintln!(
        "skipped: no {IMAGE_VAR}; build an image with `ci/build-image.sh DIR` and set {IMAGE_VAR}=DIR"
    );
    None
}

/// A user's machine in a temporary folder: config, HOME, spuff's data, and
/// a PATH holding QEMU but no ssh, scp or sftp.
struct Machine {
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl Machine {
    fn new(image: PathBuf) -> Machine {
        // Short: QEMU's control socket path must fit in a Unix socket address.
        let dir = tempfile::Builder::new()
            .prefix("spuff-vm")
            .tempdir_in("/tmp")
            .expect("tempdir");
        for sub in ["config", "home", "data", "bin", "work"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for tool in ["qemu-system-x86_64", "qemu-img"] {
            let found = which(tool).unwrap_or_else(|| panic!("{tool} is not installed"));
            std::os::unix::fs::symlink(found, dir.path().join("bin").join(tool)).expect("link");
        }
        let m = Machine { dir, image };
        let key = keys().ed25519.display().to_string();
        assert_success(&m.spuff(&["config", "set", "ssh_key_path", &key]), "config");
        // Nothing leaves the VM but SSH: the test never depends on the
        // internet, and apt fails at once instead of timing out.
        assert_success(
            &m.spuff(&["config", "set", "local_network", "isolated"]),
            "config",
        );
        // The image has what a shell needs; offline, packages cannot come.
        assert_success(
            &m.spuff(&["config", "set", "base_packages", "none"]),
            "config",
        );
        m
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spuff"));
        cmd.args(args)
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("HOME", self.path("home"))
            .env("SPUFF_CONFIG_DIR", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    fn spuff(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run spuff")
    }

    fn up(&self, name: &str) -> Command {
        let agent = crate::fakevm::agent_binary().display().to_string();
        let image = self.image.display().to_string();
        self.command(&[
            "up",
            "--name",
            name,
            "--image",
            &image,
            "--dev",
            "--agent-binary",
            &agent,
            "--no-connect",
        ])
    }

    fn vms_dir(&self) -> PathBuf {
        self.path("data/spuff/local/vms")
    }

    /// QEMU processes whose command line names this machine's files.
    fn qemus(&self) -> Vec<u32> {
        qemus_under(&self.path("data"))
    }

    fn exec(&self, command: &str) -> String {
        let out = self.spuff(&["exec", "e2e", "--", command]);
        assert_success(&out, command);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        kill_qemus_under(&self.path("data"));
    }
}

/// QEMU processes whose command line names a file under `dir`.
fn qemus_under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// A failed test must not leave VMs running on the CI machine.
fn kill_qemus_under(dir: &Path) {
    for pid in qemus_under(dir) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Kills what a test started under its folder, however the test ends.
struct KillGuard(PathBuf);

impl Drop for KillGuard {
    fn drop(&mut self) {
        kill_qemus_under(&self.0);
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("read")))
}

#[test]
fn a_real_vm_should_run_the_whole_product() {
    let Some(image) = image() else {
        return;
    };
    let m = Machine::new(image);

    // up, with no cloud token anywhere: the local provider, said in one line.
    let out = m.up("e2e").arg("--json").output().expect("spuff up");
    let up = json(&out, "up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No cloud configured: using the local provider"),
        "{stderr}"
    );
    assert!(stderr.contains("Acceleration:"), "{stderr}");
    assert!(stderr.contains("pinned host key"), "{stderr}");
    assert_eq!(up["provider"], "local");
    assert_eq!(up["status"], "ready");
    assert_eq!(up["ip"], "127.0.0.1");
    assert_ne!(up["ssh_port"], 22);

    // The host key: the only one on the VM is the one spuff generated and
    // printed (it logged in pinned to it; OpenSSH checks it below).
    let printed = stderr
        .split("(host key ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("up prints the host key")
        .to_string();
    let keys_on_vm = m.exec("ls /etc/ssh/ | grep '^ssh_host_.*key.pub$'");
    assert_eq!(keys_on_vm.trim(), "ssh_host_ed25519_key.pub");
    let vm_key = m.path("work/vm_key.pub");
    std::fs::write(
        &vm_key,
        m.exec("sudo cat /etc/ssh/ssh_host_ed25519_key.pub"),
    )
    .expect("write");
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&vm_key)
        .output()
        .expect("ssh-keygen");
    assert!(
        String::from_utf8_lossy(&fp.stdout).contains(&printed),
        "{printed} vs {}",
        String::from_utf8_lossy(&fp.stdout)
    );

    // cloud-init ran spuff's user-data to the end, without errors.
    let out = m.spuff(&[
        "exec",
        "e2e",
        "--",
        "cloud-init status --wait --format=json",
    ]);
    let ci: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cloud-init status: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(ci["status"], "done", "{ci}");
    assert_eq!(ci["errors"], serde_json::json!([]), "{ci}");

    // Issue 17: the login banner, from the real profile script in a real
    // interactive shell, points to the bootstrap log when it exists and
    // says how to follow it before it does (the status file and the log
    // are put aside for a moment to play a bootstrap that has not begun,
    // once phase 2 has ended and writes neither).
    let status = api::BOOTSTRAP_STATUS_PATH;
    let log = api::BOOTSTRAP_LOG_PATH;
    let banners = m.exec(&format!(
        "timeout 600 sh -c 'until grep -qxE \"ready|failed\" {status}; do sleep 1; done'; \
         sudo sh -c 'cp {status} /tmp/st.bak && echo running > {status} && mv {log} /tmp/log.bak'; \
         before=$(sh -ic '. /etc/profile.d/spuff.sh' 2>/dev/null); \
         sudo mv /tmp/log.bak {log}; \
         after=$(sh -ic '. /etc/profile.d/spuff.sh' 2>/dev/null); \
         sudo cp /tmp/st.bak {status}; \
         printf '%s\\n---\\n%s\\n' \"$before\" \"$after\""
    ));
    let (before, after) = banners.split_once("---").expect("two banners");
    assert!(
        before.contains(&format!(
            "tail -F {log} (it starts shortly), or spuff logs -f"
        )),
        "{banners}"
    );
    assert!(
        after.contains(&format!("follow it with: tail -f {log}")),
        "{banners}"
    );

    // The agent: the systemd unit from the user-data, on 127.0.0.1 only.
    assert_eq!(
        m.exec("systemctl is-active spuff-agent.service").trim(),
        "active"
    );
    let listening = m.exec("ss -Hltn");
    let agent: Vec<&str> = listening.lines().filter(|l| l.contains(":7575")).collect();
    assert!(!agent.is_empty(), "{listening}");
    assert!(
        agent.iter().all(|l| l.contains("127.0.0.1:7575")),
        "{listening}"
    );

    // Issue 13: only root reaches the metadata service (it would serve the
    // user-data with the host key and the agent token): the guard's rule is
    // in place, and a non-root connection is rejected inside the VM. (The
    // connection is only tried once the rule is seen, so nothing leaves.)
    let rules = m.exec("sudo nft list table inet spuff_metadata");
    assert!(
        rules.contains("169.254.169.254") && rules.contains("skuid != 0"),
        "{rules}"
    );
    let out = m.spuff(&[
        "exec",
        "e2e",
        "--",
        "sudo nft list table inet spuff_metadata >/dev/null && \
         curl -sS --max-time 5 http://169.254.169.254/ ; echo \"curl=$?\"",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("curl=7"),
        "rejected (curl: couldn't connect): {text}"
    );

    // status --json: the agent's metrics and activity through SSH.
    let status = eventually("the agent through status", Duration::from_secs(60), || {
        let v = json(&m.spuff(&["status", "--json"]), "status");
        (!v["agent"].is_null() && !v["metrics"].is_null()).then_some(v)
    });
    assert_eq!(status["instance"]["name"], "e2e");
    assert!(
        status["metrics"]["memory_total_bytes"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert!(status["activity"]["sources"].is_array());

    // exec: exit code, separate streams, stdin.
    let out = m.spuff(&["exec", "e2e", "--", "echo hello; echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let mut child = m
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

    // Issue 12, on the real agent under systemd: a running non-tty command
    // keeps the VM awake through heartbeats; `status` (several calls by
    // now) never counted as activity.
    let out = m.spuff(&["exec", "e2e", "--", "sleep 4"]);
    assert_success(&out, "exec sleep");
    crate::cli_e2e::assert_kept_awake_not_watched(&json(&m.spuff(&["status", "--json"]), "status"));

    // cp: a file and a tree, both ways, checked by checksum.
    let big = m.path("work/big.bin");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &data).expect("write");
    let tree = m.path("work/tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).expect("mkdir");
    std::fs::write(tree.join("a.txt"), "a\n").expect("write");
    std::fs::write(tree.join("sub/b.bin"), &data[..100_000]).expect("write");
    std::fs::write(tree.join("sub/deeper/c.txt"), "c\n").expect("write");
    m.exec("mkdir -p in");
    assert_success(
        &m.spuff(&["cp", "-q", &big.display().to_string(), "e2e:in/"]),
        "cp file up",
    );
    // The VM has GNU tar: the tree goes as one stream (issue 14).
    let out = m.spuff(&["cp", &tree.display().to_string(), "e2e:in/"]);
    assert_success(&out, "cp tree up");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(3 files, 3 dirs; through tar)"), "{said}");
    let remote_sums =
        m.exec("cd in && sha256sum big.bin tree/a.txt tree/sub/b.bin tree/sub/deeper/c.txt");
    for (rel, local) in [
        ("big.bin", big.clone()),
        ("tree/a.txt", tree.join("a.txt")),
        ("tree/sub/b.bin", tree.join("sub/b.bin")),
        ("tree/sub/deeper/c.txt", tree.join("sub/deeper/c.txt")),
    ] {
        let line = format!("{}  {rel}", sha256(&local));
        assert!(remote_sums.contains(&line), "{line}\n{remote_sums}");
    }
    let back = m.path("work/back");
    std::fs::create_dir_all(&back).expect("mkdir");
    assert_success(
        &m.spuff(&["cp", "-q", "e2e:in/big.bin", &back.display().to_string()]),
        "cp file down",
    );
    let out = m.spuff(&["cp", "e2e:in/tree", &back.display().to_string()]);
    assert_success(&out, "cp tree down");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(3 files, 3 dirs; through tar)"), "{said}");
    assert_eq!(sha256(&back.join("big.bin")), sha256(&big));
    for rel in ["a.txt", "sub/b.bin", "sub/deeper/c.txt"] {
        assert_eq!(
            sha256(&back.join("tree").join(rel)),
            sha256(&tree.join(rel)),
            "{rel}"
        );
    }

    // tunnel: the agent's port here; an HTTP request reaches it.
    let local_port = free_port();
    let mut tunnel = m
        .command(&["tunnel", "e2e", "--agent-port", &local_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tunnel");
    let response = eventually("the tunnel", Duration::from_secs(60), || {
        http_get(local_port, "/health").ok()
    });
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("spuff-agent"), "{response}");
    let _ = Command::new("kill")
        .args(["-INT", &tunnel.id().to_string()])
        .status();
    assert!(tunnel.wait().expect("tunnel").success());

    // logs: the bootstrap log and the agent's journal.
    let out = m.spuff(&["logs", "--bootstrap", "-n", "50"]);
    assert_success(&out, "logs --bootstrap");
    assert!(String::from_utf8_lossy(&out.stdout).contains("phase 1"));
    let out = m.spuff(&["logs", "--agent", "-n", "100"]);
    assert_success(&out, "logs --agent");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("spuff-agent listening"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // ssh-config: OpenSSH itself logs in, checking the host key strictly.
    assert_success(&m.spuff(&["ssh-config", "--no-include"]), "ssh-config");
    let out = Command::new("ssh")
        .arg("-F")
        .arg(m.path("config/ssh_config"))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(&keys().ed25519)
        .args(["e2e", "echo", "openssh-ok"])
        .output()
        .expect("ssh");
    assert_success(&out, "OpenSSH with spuff's ssh-config");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "openssh-ok\n");

    // list: reconciled with the provider (the VM folders).
    let list = json(&m.spuff(&["list", "--json"]), "list");
    let rows = list["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["tracking"], "tracked", "{list}");
    assert_eq!(rows[0]["active"], true, "{list}");

    // snapshot of the running VM.
    let created = json(
        &m.spuff(&["snapshot", "create", "e2e", "--json"]),
        "snapshot create",
    );
    let snap_id = created["id"].as_str().expect("snapshot id").to_string();
    let listed = json(&m.spuff(&["snapshot", "list", "--json"]), "snapshot list");
    assert!(
        listed["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .any(|s| s["id"] == snap_id.as_str()),
        "{listed}"
    );

    // down: the VM, its folder and its QEMU are gone.
    assert_success(&m.spuff(&["down", "e2e", "--force"]), "down");
    assert!(m.qemus().is_empty(), "QEMU left running: {:?}", m.qemus());
    let left: Vec<_> = std::fs::read_dir(m.vms_dir())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "VM folders left: {left:?}");
    assert_success(
        &m.spuff(&["snapshot", "delete", &snap_id, "--force"]),
        "snapshot delete",
    );

    // `up` killed with SIGKILL while the VM boots: `list` shows the VM,
    // `down` removes it, no QEMU is left.
    let mut up = m
        .up("killed")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn up");
    eventually("QEMU to start", Duration::from_secs(120), || {
        (!m.qemus().is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    up.kill().expect("SIGKILL");
    let _ = up.wait();
    assert!(!m.qemus().is_empty(), "the VM outlives spuff");
    let list = json(&m.spuff(&["list", "--json"]), "list after the kill");
    let rows = list["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["name"], "killed", "{list}");
    assert_success(
        &m.spuff(&["down", "killed", "--force"]),
        "down after the kill",
    );
    assert!(m.qemus().is_empty(), "QEMU left running: {:?}", m.qemus());
    let list = json(&m.spuff(&["list", "--json"]), "list at the end");
    assert_eq!(list["instances"], serde_json::json!([]), "{list}");
}

/// Without QEMU, `up` fails before anything exists and names the install
/// command; nothing is left in state.
#[test]
fn without_qemu_up_should_say_how_to_install_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    std::fs::create_dir_all(&image).expect("mkdir");
    let m = Machine {
        dir: tempfile::Builder::new()
            .prefix("spuff-vm")
            .tempdir_in("/tmp")
            .expect("tempdir"),
        image,
    };
    for sub in ["config", "home", "data", "bin"] {
        std::fs::create_dir_all(m.path(sub)).expect("mkdir");
    }
    let key = keys().ed25519.display().to_string();
    assert_success(&m.spuff(&["config", "set", "ssh_key_path", &key]), "config");
    let out = m.up("noqemu").output().expect("up");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("qemu-system-x86_64 is not installed"),
        "{stderr}"
    );
    assert!(stderr.contains("install QEMU:"), "{stderr}");
    let list = json(&m.spuff(&["list", "--local", "--json"]), "list");
    assert_eq!(list["instances"], serde_json::json!([]), "{list}");
}

/// An image whose kernel QEMU cannot load: QEMU's own words, nothing left.
#[test]
fn an_image_qemu_cannot_boot_should_say_why() {
    if which("qemu-system-x86_64").is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI has QEMU");
        eprintln!("skipped: no QEMU");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let image = work.path().join("image");
    std::fs::create_dir_all(&image).expect("mkdir");
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(image.join("base.qcow2"))
        .arg("1G")
        .status()
        .expect("qemu-img");
    assert!(ok.success());
    std::fs::write(image.join("vmlinuz"), b"not a kernel").expect("write");
    std::fs::write(image.join("cmdline"), "console=ttyS0\n").expect("write");
    let m = Machine::new(image);
    let out = m.up("badkernel").output().expect("up");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("starting QEMU"), "{stderr}");
    assert!(
        stderr.contains("kernel"),
        "QEMU says what it could not load: {stderr}"
    );
    assert!(m.qemus().is_empty());
    let left: Vec<_> = std::fs::read_dir(m.vms_dir())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing of it is left: {left:?}");
}

/// A VM that boots but never reaches SSH: `up` gives up with the end of
/// its serial console in the error, where the guest says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_vm_that_never_answers_should_show_its_console() {
    use spuff::agent::api::AgentConfig;
    use spuff::cloudinit::{self, AgentSource, Limit};
    use spuff::provider::local::{LocalConfig, LocalNetwork, LocalProvider};
    use spuff::provider::{HttpConfig, ImageSpec, ProviderType};
    use spuff::ssh::{self, AuthMethod, HostKeyPair, RetryPolicy};

    let Some(image) = image() else {
        return;
    };
    // The real kernel, told to run an init that exits: it panics at once,
    // and stays there (`panic=0`), so the console ends with the panic
    // however long the login took to give up (a guest that rebooted would
    // leave the next boot, or on a busy machine its stall reports, at the
    // end).
    let work = tempfile::Builder::new()
        .prefix("spuff-vm")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let _guard = KillGuard(work.path().to_path_buf());
    let broken = work.path().join("image");
    std::fs::create_dir_all(&broken).expect("mkdir");
    for f in ["base.qcow2", "vmlinuz", "initrd.img"] {
        std::os::unix::fs::symlink(image.join(f), broken.join(f)).expect("link");
    }
    std::fs::write(
        broken.join("cmdline"),
        "root=/dev/vda rw console=ttyS0 panic=0 init=/bin/false\n",
    )
    .expect("write");

    let mut config = LocalConfig::new();
    config.dir = Some(work.path().join("local"));
    config.network = LocalNetwork::Isolated;
    let provider =
        std::sync::Arc::new(LocalProvider::new(config, HttpConfig::default()).expect("provider"));
    let store = spuff::state::Store::open(work.path().join("state.redb")).expect("store");
    let client_key = std::fs::read_to_string(keys().ed25519.with_extension("pub")).expect("pub");
    let user_data = cloudinit::Config {
        authorized_keys: vec![client_key.trim().to_string()],
        ..cloudinit::Config::new(
            HostKeyPair::generate().expect("host key"),
            AgentConfig::new("agent-token-0123456789"),
            AgentSource::Upload,
        )
    };
    let ssh = ssh::Config {
        auth: vec![AuthMethod::KeyFile(keys().ed25519.clone())],
        ..ssh::Config::new("", "dev")
    };
    let mut plan = spuff::vm::up::Plan::new(
        "noboot",
        "local",
        "medium",
        ImageSpec::Custom(broken.display().to_string()),
        user_data,
        Limit::of(ProviderType::Local.info()),
        ssh,
    );
    plan.login = RetryPolicy {
        timeout: Duration::from_secs(45),
        min_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(1),
    };
    let e = match spuff::vm::up(provider.clone(), &store, plan, &|_| {}).await {
        Ok(_) => panic!("a VM without init logged in"),
        Err(e) => e,
    };
    let chain = format!("{:?}", anyhow::Error::new(e));
    assert!(chain.contains("logging in over SSH"), "{chain}");
    assert!(chain.contains("console ends with"), "{chain}");
    assert!(
        chain.contains("Kernel panic") || chain.contains("Attempted to kill init"),
        "the guest's own words: {chain}"
    );
    // The failed VM is recorded and removable.
    let record = store.get("noboot").expect("state").expect("recorded");
    spuff::provider::Provider::destroy_instance(provider.as_ref(), &record.provider_id)
        .await
        .expect("destroy");
    assert!(
        !work
            .path()
            .join("local/vms")
            .join(&record.provider_id)
            .exists(),
        "folder removed"
    );
}

/// A background process that is killed when dropped.
struct Bg(std::process::Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Machine {
    /// OpenSSH (not spuff) to `name` with spuff's `ssh_config`, no
    /// terminal, a keepalive every 5 s: how VS Code or a user's own ssh
    /// reach the VM.
    fn openssh(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(self.path("config/ssh_config"))
            .args([
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ExitOnForwardFailure=yes",
                "-i",
            ])
            .arg(&keys().ed25519)
            .args(args)
            .arg(name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn activity(&self, name: &str) -> serde_json::Value {
        let v = json(&self.spuff(&["status", name, "--json"]), "status");
        v["activity"].clone()
    }
}

/// Issue 12 on a real VM (real sshd, real systemd, the agent under it),
/// with `idle_timeout: 1m`: work over SSH that the old agent could not see
/// holds the VM past its deadline (a command without a terminal printing
/// every 4 s, then a tunnel carrying a request every 2 s, both from
/// OpenSSH), while a silent connection with keepalives and a running
/// `status --watch` do not; once nothing is used, the idle stop powers it
/// off after the deadline, `status` says so and why, `start` brings it
/// back, and `gc` removes it (no QEMU, no disk).
#[test]
fn a_real_vm_should_stop_only_when_unused() {
    let Some(image) = image() else {
        return;
    };
    let m = Machine::new(image);
    let _guard = KillGuard(m.path("data"));
    assert_success(&m.spuff(&["config", "set", "idle_timeout", "1m"]), "config");
    assert_success(
        &m.up("idler").stdout(Stdio::null()).output().expect("up"),
        "up",
    );
    assert_success(&m.spuff(&["ssh-config", "--no-include"]), "ssh-config");
    // A web server on the VM for the tunnel, started now (while the VM is
    // fresh from `up`), answering on 127.0.0.1:8000 there.
    assert_success(
        &m.spuff(&[
            "exec",
            "idler",
            "--",
            "nohup python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &",
        ]),
        "http.server",
    );

    let _silent = Bg(m
        .openssh("idler", &[])
        .arg("sleep 3600")
        .spawn()
        .expect("ssh"));
    let _watch = Bg(m
        .command(&["status", "idler", "--watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("status --watch"));

    // A: a command without a terminal, printing every 4 s, from OpenSSH.
    let printer = Bg(m
        .openssh("idler", &[])
        .arg("while true; do echo tick; sleep 4; done")
        .spawn()
        .expect("ssh"));
    std::thread::sleep(Duration::from_secs(80));
    assert!(
        !m.qemus().is_empty(),
        "powered off under a printing command"
    );
    let a = m.activity("idler");
    assert!(a["idle_seconds"].as_u64().unwrap_or(999) <= 10, "{a:#}");
    assert!(
        a["connections"].as_array().map_or(0, Vec::len) >= 3,
        "the printer, the silent one and status --watch: {a:#}"
    );
    drop(printer);

    // B: a tunnel carrying a request every 2 s.
    let port = free_port();
    let forward = format!("{port}:127.0.0.1:8000");
    let _tunnel = Bg(m
        .openssh("idler", &["-N", "-L", &forward])
        .spawn()
        .expect("ssh -L"));
    let started = std::time::Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_secs(80) {
        if http_get(port, "/").is_ok_and(|r| r.starts_with("HTTP/1.0 200")) {
            served += 1;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(served >= 20, "the tunnel carried only {served} requests");
    assert!(!m.qemus().is_empty(), "powered off under a busy tunnel");
    drop(_tunnel);

    // C: only the silent connection and status --watch are left: the idle
    // stop comes after the deadline, not before.
    let idle_from = std::time::Instant::now();
    eventually("the idle stop", Duration::from_secs(300), || {
        m.qemus().is_empty().then_some(())
    });
    let took = idle_from.elapsed();
    assert!(
        took >= Duration::from_secs(55),
        "powered off {took:?} after the last use, before its 1m deadline"
    );
    eprintln!("idle stop: powered off {took:?} after the last use (idle_timeout 1m)");

    let status = json(&m.spuff(&["status", "idler", "--json"]), "status off");
    assert_eq!(status["vm_state"], "off", "{status:#}");
    assert_eq!(status["still_billing"], false, "{status:#}");
    let decision = status["stop_decision"].as_str().unwrap_or_default();
    assert!(
        decision.starts_with("spuff-agent stop: poweroff: idle for"),
        "{status:#}"
    );
    let out = m.spuff(&["status", "idler"]);
    assert_success(&out, "status off");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("idler is powered off since"), "{text}");
    let list = json(&m.spuff(&["list", "--json"]), "list");
    assert_eq!(
        list["instances"][0]["finished"]["reason"], "powered_off",
        "{list:#}"
    );

    // start: powered on again, reachable at its new port.
    let out = m.spuff(&["start", "idler"]);
    assert_success(&out, "start");
    let out = m.spuff(&["exec", "idler", "--", "echo back"]);
    assert_success(&out, "exec after start");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "back\n");
    // The decision is in the agent's journal, from the boot before.
    let out = m.spuff(&["logs", "idler", "--agent", "-n", "1000"]);
    assert_success(&out, "logs --agent");
    let journal = String::from_utf8_lossy(&out.stdout);
    assert!(
        journal.contains("(idle_timeout 60 s); running the action"),
        "{journal}"
    );

    // Unused again, off again; then gc removes it for good.
    eventually("the second idle stop", Duration::from_secs(300), || {
        m.qemus().is_empty().then_some(())
    });
    assert_success(&m.spuff(&["gc", "--yes"]), "gc");
    assert!(m.qemus().is_empty());
    let left: Vec<_> = std::fs::read_dir(m.vms_dir())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "VM folders (disks) left: {left:?}");
    let list = json(&m.spuff(&["list", "--json"]), "list at the end");
    assert_eq!(list["instances"], serde_json::json!([]), "{list}");
}

/// Issue 12: `up --ttl` is a hard end enforced on the VM: a command that
/// keeps the VM busy is warned, then cut off when the lifetime ends, and
/// fails saying so; `start` refuses to revive it; `gc` removes it.
#[test]
fn a_real_vm_should_end_with_its_lifetime_even_in_use() {
    let Some(image) = image() else {
        return;
    };
    let m = Machine::new(image);
    let _guard = KillGuard(m.path("data"));
    let out = m.up("short").args(["--ttl", "4m"]).output().expect("up");
    assert_success(&out, "up --ttl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Its lifetime is 4m"), "{stderr}");

    // A tunnel running alongside must fail with the reason too.
    let tunnel = m
        .command(&["tunnel", "short", "--agent-port", &free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tunnel");
    let out = m.spuff(&[
        "exec",
        "short",
        "--",
        "while true; do echo tick; sleep 5; done",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exec must fail when the VM ends: {stderr}"
    );
    assert!(
        stderr.contains("its lifetime (up --ttl) ends, in use or not"),
        "the running command warns first: {stderr}"
    );
    assert!(
        stderr.contains("short is powered off") && stderr.contains("its lifetime (up --ttl) ended"),
        "and says why it failed: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tick"));
    let tunnel = tunnel.wait_with_output().expect("tunnel");
    let tunnel_err = String::from_utf8_lossy(&tunnel.stderr);
    assert!(
        !tunnel.status.success(),
        "a tunnel whose VM went away must fail: {tunnel_err}"
    );
    assert!(tunnel_err.contains("short is powered off"), "{tunnel_err}");
    eventually("QEMU to exit", Duration::from_secs(120), || {
        m.qemus().is_empty().then_some(())
    });
    let out = m.spuff(&["start", "short"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lifetime (up --ttl) ended"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_success(&m.spuff(&["gc", "--yes"]), "gc");
    let list = json(&m.spuff(&["list", "--json"]), "list at the end");
    assert_eq!(list["instances"], serde_json::json!([]), "{list}");
}

/// What Proxmox VE gives a VM without a snippet, played over the local
/// provider on a real VM: the VM's cloud-init gets only the login user
/// (`ciuser`) with the keys (`sshkeys`), in the document Proxmox generates
/// for them (`user:` renames the image's default user, which keeps its
/// passwordless sudo), never spuff's user-data; and it says so
/// (`delivers_user_data`). (Proxmox also writes `package_upgrade: true`;
/// offline that would only fail apt, so it is left out.)
fn proxmox_like(local: spuff::provider::local::LocalProvider) -> crate::util::tweaked::Tweaked {
    let mut p = crate::util::tweaked::Tweaked::new(std::sync::Arc::new(local));
    p.delivers_user_data = Some(false);
    p.rewrite = Some(Box::new(|request| {
        assert!(
            request.user_data.is_none(),
            "user-data sent to a provider that cannot deliver it"
        );
        let user = request.login_user.as_deref().expect("a login user");
        let mut doc = format!(
            "#cloud-config\nhostname: {}\nmanage_etc_hosts: true\nuser: {user}\nssh_authorized_keys:\n",
            request.name
        );
        for key in &request.ssh_keys {
            doc.push_str(&format!("  - {key}\n"));
        }
        doc.push_str("chpasswd:\n  expire: False\nusers:\n  - default\n");
        let mut request = request.clone();
        request.user_data = Some(doc);
        request
    }));
    p
}

/// Issue 16, Proxmox without node SSH, on a real VM (real cloud-init, sshd,
/// sudo and systemd): `up` logs in once trusting the VM's own host key (and
/// says so), applies spuff's user-data as root over that connection, and
/// from then on the VM shows only the key spuff generated: the next login
/// is pinned, the agent runs under the unit the script wrote, the
/// bootstrap finished phase 1, and the image's other host keys are gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_vm_without_spuffs_user_data_should_get_it_at_the_first_login() {
    use spuff::agent::api::AgentConfig;
    use spuff::cloudinit::{self, AgentSource, Limit};
    use spuff::provider::local::{LocalConfig, LocalNetwork, LocalProvider};
    use spuff::provider::{HttpConfig, ImageSpec, ProviderType};
    use spuff::ssh::{self, AuthMethod, HostKeyPair, RetryPolicy};
    use spuff::vm::Event;

    let Some(image) = image() else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("spuff-vm")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let _guard = KillGuard(work.path().to_path_buf());
    let mut config = LocalConfig::new();
    config.dir = Some(work.path().join("local"));
    config.network = LocalNetwork::Isolated;
    let provider = std::sync::Arc::new(proxmox_like(
        LocalProvider::new(config, HttpConfig::default()).expect("provider"),
    ));
    let store = spuff::state::Store::open(work.path().join("state.redb")).expect("store");
    let client_key = std::fs::read_to_string(keys().ed25519.with_extension("pub")).expect("pub");
    let host_key = HostKeyPair::generate().expect("host key");
    let mut user_data = cloudinit::Config {
        authorized_keys: vec![client_key.trim().to_string()],
        ..cloudinit::Config::new(
            host_key.clone(),
            AgentConfig::new("agent-token-0123456789"),
            AgentSource::Upload,
        )
    };
    user_data.base_packages.clear();
    let ssh = ssh::Config {
        auth: vec![AuthMethod::KeyFile(keys().ed25519.clone())],
        ..ssh::Config::new("", "dev")
    };
    let mut plan = spuff::vm::up::Plan::new(
        "firstlogin",
        "local",
        "medium",
        ImageSpec::Custom(image.display().to_string()),
        user_data,
        Limit::of(ProviderType::Local.info()),
        ssh.clone(),
    );
    plan.upload_agent = Some((
        spuff::vm::up::AgentBinary::File(crate::fakevm::agent_binary()),
        spuff::vm::AgentInstall::default(),
    ));
    plan.login = RetryPolicy {
        timeout: Duration::from_secs(600),
        min_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(2),
    };
    let events = std::sync::Mutex::new(Vec::new());
    let observer = |e: Event| events.lock().expect("events").push(e);
    let up = spuff::vm::up(provider.clone(), &store, plan, &observer)
        .await
        .unwrap_or_else(|e| panic!("up: {:?}", anyhow::Error::new(e)));
    let events = events.into_inner().expect("events");
    let at = |pred: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("missing event in {events:?}"))
    };
    let tofu = at(
        &|e| matches!(e, Event::TrustedOnFirstUse { fingerprint } if fingerprint.starts_with("SHA256:")),
    );
    let applied = at(&|e| matches!(e, Event::UserDataApplied));
    let pinned = at(&|e| matches!(e, Event::LoggedIn { .. }));
    assert!(tofu < applied && applied < pinned, "{events:?}");
    // The key trusted at first was the VM's own, not spuff's.
    let Event::TrustedOnFirstUse { fingerprint } = &events[tofu] else {
        unreachable!()
    };
    assert_ne!(fingerprint, &host_key.fingerprint(), "{events:?}");

    let run = |session: &ssh::Session, cmd: &'static str| {
        let session = session.clone();
        async move {
            let out = session.exec(cmd).await.expect(cmd);
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let keys_left = run(&up.session, "ls /etc/ssh/ | grep ssh_host_").await;
    assert_eq!(
        keys_left.split_whitespace().collect::<Vec<_>>(),
        ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    );
    let config_mode = run(&up.session, "sudo -n stat -c '%a %U' /etc/spuff/agent.json").await;
    assert_eq!(config_mode.trim(), "600 root");
    let active = run(&up.session, "systemctl is-active spuff-agent").await;
    assert_eq!(active.trim(), "active");
    // A new connection sees spuff's key and nothing else passes: pinned
    // to it, the login works; pinned to another, it is refused.
    let record = store.get("firstlogin").expect("state").expect("recorded");
    let mut again = ssh.clone();
    again.host = record.address().expect("address").to_string();
    again.port = record.ssh_port;
    again.host_keys = ssh::HostKeyPolicy::pinned([host_key.public_key().clone()]);
    let second = ssh::Session::connect(again.clone())
        .await
        .expect("pinned login");
    assert_eq!(run(&second, "id -un").await.trim(), "dev");
    let _ = second.close().await;
    let other = HostKeyPair::generate().expect("key");
    again.host_keys = ssh::HostKeyPolicy::pinned([other.public_key().clone()]);
    assert!(
        ssh::Session::connect(again).await.is_err(),
        "another key passed"
    );

    let _ = up.session.close().await;
    spuff::provider::Provider::destroy_instance(provider.as_ref(), &record.provider_id)
        .await
        .expect("destroy");
}
