//! Test harness: an agent served over a real socket on 127.0.0.1:0 with a
//! fake VM layout in a temporary directory, and a small HTTP/1.1 client.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use spuff_agent::{AgentOptions, AppState, IdleActionRunner, MonitorHandle, SystemPaths};
use spuff_agent_api::{AgentConfig, ErrorBody, IdleAction, TOKEN_HEADER};

/// The token every harness agent uses.
pub(crate) const TOKEN: &str = "test-token-0123456789";

/// An idle action runner that records calls instead of powering off.
#[derive(Default)]
pub(crate) struct RecordingRunner {
    pub(crate) calls: Mutex<Vec<IdleAction>>,
}

impl IdleActionRunner for RecordingRunner {
    fn run(&self, action: IdleAction) -> io::Result<()> {
        self.calls.lock().expect("lock").push(action);
        Ok(())
    }
}

impl RecordingRunner {
    pub(crate) fn calls(&self) -> Vec<IdleAction> {
        self.calls.lock().expect("lock").clone()
    }
}

/// A running agent.
pub(crate) struct Agent {
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) paths: SystemPaths,
    pub(crate) runner: Arc<RecordingRunner>,
    /// The served state, to start a monitor later ([`Agent::start_full`]).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Used by Linux-only tests.
    pub(crate) state: AppState,
    server: tokio::task::JoinHandle<()>,
    _monitor: Option<MonitorHandle>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    /// The body as `T`, panicking with the body text if it is not.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: {e}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as an [`ErrorBody`], checking the content type.
    pub(crate) fn error(&self) -> ErrorBody {
        let ct = self
            .headers
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_string());
        assert_eq!(
            ct.as_deref(),
            Some("application/json"),
            "status {}: {:?}",
            self.status,
            self.body
        );
        self.json()
    }
}

/// The test's options: a fake VM layout under `dir`, a recording runner, a
/// fast monitor, CPU never busy (other tests load the machine), no sessions.
pub(crate) fn options(dir: &Path, runner: Arc<RecordingRunner>) -> AgentOptions {
    let paths = SystemPaths::under(dir);
    for d in [
        &paths.log_dir,
        &paths.cloud_init_run_dir,
        &paths.cloud_lib_dir,
        &paths.dev_dir,
    ] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::create_dir_all(paths.bootstrap_status.parent().expect("parent")).expect("mkdir");
    std::fs::create_dir_all(paths.utmp.parent().expect("parent")).expect("mkdir");
    AgentOptions {
        config: AgentConfig {
            cpu_busy_percent: 1000.0,
            ..AgentConfig::new(TOKEN)
        },
        paths,
        idle_runner: runner,
        monitor_interval: Duration::from_millis(50),
        ..AgentOptions::default()
    }
}

impl Agent {
    /// An agent with the test defaults and its monitor running.
    pub(crate) async fn start() -> Agent {
        Agent::start_with(|_| {}).await
    }

    /// An agent with the test defaults changed by `f`, monitor running.
    pub(crate) async fn start_with(f: impl FnOnce(&mut AgentOptions)) -> Agent {
        Agent::start_full(true, f).await
    }

    /// As [`Agent::start_with`], choosing whether the monitor runs.
    pub(crate) async fn start_full(monitor: bool, f: impl FnOnce(&mut AgentOptions)) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner = Arc::new(RecordingRunner::default());
        let mut opts = options(dir.path(), Arc::clone(&runner));
        f(&mut opts);
        let paths = opts.paths.clone();
        let state = AppState::new(opts).expect("state");
        let listener = spuff_agent::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let monitor = monitor.then(|| state.start_monitor());
        let app = spuff_agent::app(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Agent {
            addr,
            dir,
            paths,
            runner,
            state,
            server,
            _monitor: monitor,
        }
    }

    /// A path inside the fake VM's root.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `GET path` with the token.
    pub(crate) async fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, Some(TOKEN), None).await
    }

    /// `POST path` with the token and a JSON body.
    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> Resp {
        let body = serde_json::to_vec(&body).expect("json");
        request(
            self.addr,
            "POST",
            path,
            Some(TOKEN),
            Some(("application/json", body)),
        )
        .await
    }
}

/// One request on a fresh connection.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(token) = token {
        req = req.header(TOKEN_HEADER, token);
    }
    let body = match body {
        Some((ct, data)) => {
            req = req.header("content-type", ct);
            Full::new(Bytes::from(data))
        }
        None => Full::new(Bytes::new()),
    };
    let resp = sender
        .send_request(req.body(body).expect("request"))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process exists and is not a zombie (in a container, nobody may
/// reap an orphan, so a killed process can linger as a zombie).
#[cfg(target_os = "linux")]
pub(crate) fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Waits until a freshly written script can be executed: another test
/// thread's fork may briefly hold its write descriptor (ETXTBSY).
#[cfg(unix)]
pub(crate) async fn wait_executable(path: &Path) {
    eventually(
        Duration::from_secs(10),
        "the script to be executable",
        || async {
            match std::process::Command::new(path).arg("--probe").output() {
                Err(e) if e.raw_os_error() == Some(26) => None, // ETXTBSY
                _ => Some(()),
            }
        },
    )
    .await;
}
