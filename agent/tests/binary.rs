//! The `spuff-agent` binary: flags, refusing to start without a token or on
//! a non-loopback address, serving, and stopping on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use spuff_agent_api::{Health, paths};

const BIN: &str = env!("CARGO_BIN_EXE_spuff-agent");

/// The binary with a clean environment for the variables it reads.
fn agent_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("SPUFF_AGENT_TOKEN")
        .env_remove("SPUFF_AGENT_PORT")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "info");
    cmd
}

fn write_config(dir: &Path, json: &str) -> std::path::PathBuf {
    let path = dir.join("agent.json");
    std::fs::write(&path, json).expect("write config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    path
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run spuff-agent")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running agent process, killed when dropped (also when a test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts the binary on port 0 and reads the bound address from its log.
fn spawn_serving(cmd: &mut Command) -> (Running, std::net::SocketAddr, Log) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = Running(child);
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut early = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the agent to log its address");
        early.push(line.clone());
        // `addr=127.0.0.1:PORT` in the fmt layer's plain (non-tty) output.
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("addr")
                .parse()
                .expect("socket addr");
        }
    };
    (child, addr, Log { early, rx })
}

/// The agent's stderr lines.
struct Log {
    early: Vec<String>,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Log {
    /// Everything logged; blocks until the process has exited.
    fn all(self) -> String {
        let mut lines = self.early;
        lines.extend(self.rx.iter());
        lines.join("\n")
    }
}

#[test]
fn help_and_version_should_work() {
    let o = run(agent_cmd().arg("--help"));
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--config",
        "--port",
        "--bind",
        "--insecure-no-auth-for-local-development",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let o = run(agent_cmd().arg("--version"));
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("spuff-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn binary_should_refuse_to_start_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No config file and no environment token.
    let o = run(agent_cmd()
        .arg("--config")
        .arg(dir.path().join("absent.json")));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read the agent config"),
        "{}",
        stderr(&o)
    );

    // A config with an empty token.
    let config = write_config(dir.path(), r#"{"token": ""}"#);
    let o = run(agent_cmd()
        .arg("--config")
        .arg(&config)
        .args(["--port", "0"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no usable agent token"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn binary_should_refuse_an_invalid_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"{"token": "t", "idle_action": "explode"}"#);
    let o = run(agent_cmd().arg("--config").arg(&config));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invalid agent config"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn binary_should_refuse_a_non_loopback_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"{"token": "t"}"#);
    let o = run(agent_cmd()
        .arg("--config")
        .arg(&config)
        .args(["--bind", "0.0.0.0", "--port", "0"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("only listens on loopback"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn binary_should_refuse_bad_flags_with_exit_code_2() {
    let o = run(agent_cmd().args(["--port", "many"]));
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn binary_should_serve_health_and_require_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"{"token": "file-token", "port": 0}"#);
    let (child, addr, _log) = spawn_serving(agent_cmd().arg("--config").arg(&config));
    let r = crate::util::request(addr, "GET", paths::HEALTH, None, None).await;
    let h: Health = r.json();
    assert_eq!(h.service, "spuff-agent");
    assert_eq!(
        crate::util::request(addr, "GET", paths::STATUS, None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        crate::util::request(addr, "GET", paths::STATUS, Some("file-token"), None)
            .await
            .status,
        200
    );
    drop(child);
}

#[tokio::test]
async fn binary_should_take_the_token_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, addr, _log) = spawn_serving(
        agent_cmd()
            .arg("--config")
            .arg(dir.path().join("absent.json"))
            .env("SPUFF_AGENT_TOKEN", "env-token")
            .env("SPUFF_AGENT_PORT", "0"),
    );
    assert_eq!(
        crate::util::request(addr, "GET", paths::STATUS, Some("env-token"), None)
            .await
            .status,
        200
    );
    drop(child);
}

#[tokio::test]
async fn insecure_flag_should_serve_without_a_token_and_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, addr, log) = spawn_serving(
        agent_cmd()
            .arg("--config")
            .arg(dir.path().join("absent.json"))
            .args(["--port", "0", "--insecure-no-auth-for-local-development"]),
    );
    assert_eq!(
        crate::util::request(addr, "GET", paths::STATUS, None, None)
            .await
            .status,
        200
    );
    drop(child);
    let log = log.all();
    assert!(log.contains("AUTHENTICATION DISABLED"), "{log}");
}

#[cfg(unix)] // SIGTERM and file modes.
#[tokio::test]
async fn binary_should_stop_cleanly_on_sigterm_and_warn_about_a_readable_config() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), r#"{"token": "t", "port": 0}"#);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (mut child, addr, log) = spawn_serving(agent_cmd().arg("--config").arg(&config));
    assert_eq!(
        crate::util::request(addr, "GET", paths::HEALTH, None, None)
            .await
            .status,
        200
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = crate::util::eventually(Duration::from_secs(30), "the agent to exit", || {
        let s = child.try_wait().expect("try_wait");
        async move { s }
    })
    .await;
    assert!(status.success(), "{status:?}");
    let log = log.all();
    assert!(log.contains("chmod 600"), "{log}");
    assert!(log.contains("SIGTERM; shutting down"), "{log}");
    assert!(log.contains("spuff-agent stopped"), "{log}");
}
