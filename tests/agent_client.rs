//! The agent client end to end: the real spuff-agent (served in-process on
//! 127.0.0.1 with a fake VM layout) reached through a real OpenSSH sshd over
//! the library's direct-tcpip stream, exactly as the CLI reaches a VM's
//! agent.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use spuff::Hint as _;
use spuff::agent::api::{self, ActivityKind, BootstrapStatus, ExecRequest};
use spuff::agent::{Client, ClientConfig, Error};
use spuff_agent::{AgentOptions, AppState, SystemPaths};
use tokio::net::TcpListener;

use crate::util::Sshd;

const TOKEN: &str = "agent-token-0123456789";

/// A running in-process agent: its port, its fake VM root, and how many TCP
/// connections it accepted (to check that the client reuses them).
struct TestAgent {
    port: u16,
    root: tempfile::TempDir,
    accepted: Arc<AtomicUsize>,
}

/// Serves `spuff_agent::app` on 127.0.0.1:0, counting connections.
async fn start_agent() -> TestAgent {
    start_agent_with(api::AgentConfig::new(TOKEN)).await
}

async fn start_agent_with(agent_config: api::AgentConfig) -> TestAgent {
    let root = tempfile::tempdir().expect("tempdir");
    let paths = SystemPaths::under(root.path());
    // The VM layout the agent reads: a bootstrap status and a log file.
    write(&root.path().join("opt/spuff/bootstrap.status"), "ready\n");
    let mut log = String::new();
    for i in 1..=300 {
        log.push_str(&format!("line {i}\n"));
    }
    write(&root.path().join("var/log/syslog"), &log);
    let state = AppState::new(AgentOptions {
        config: agent_config,
        paths,
        monitor_interval: Duration::from_millis(200),
        ..AgentOptions::default()
    })
    .expect("agent state");
    let monitor = state.start_monitor();
    let app = spuff_agent::app(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let _monitor = monitor;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(io, service)
                .await;
            });
        }
    });
    TestAgent {
        port,
        root,
        accepted,
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn client(session: spuff::ssh::Session, agent: &TestAgent, token: &str) -> Client {
    let mut config = ClientConfig::new(token);
    config.port = agent.port;
    Client::new(session, config)
}

#[tokio::test]
async fn agent_client_should_reach_every_endpoint_through_sshd() {
    let sshd = Sshd::start();
    let agent = start_agent().await;
    let agent_client = client(sshd.connect().await, &agent, TOKEN);

    let health = agent_client.health().await.expect("health");
    assert_eq!(health.status, "ok");
    assert_eq!(health.service, "spuff-agent");

    let status = agent_client.status().await.expect("status");
    assert_eq!(status.bootstrap_status, BootstrapStatus::Ready);
    assert!(status.bootstrap_ready);
    assert!(!status.hostname.is_empty());

    let metrics = agent_client.metrics().await.expect("metrics");
    assert!(metrics.memory_used_bytes <= metrics.memory_total_bytes);
    let processes = agent_client.processes().await.expect("processes");
    assert!(processes.processes.len() <= 10);
    // The agent runs on Linux VMs; built for Windows (these tests under
    // Wine) it reports no system figures, as agent/src/platform.rs says.
    #[cfg(unix)]
    {
        assert!(metrics.memory_total_bytes > 0);
        assert!(!processes.processes.is_empty());
    }

    let heartbeat = agent_client.heartbeat().await.expect("heartbeat");
    assert!(heartbeat.timestamp.elapsed() < Duration::from_secs(60));

    // The fake VM's /var/log is under the agent's root.
    let syslog = agent.root.path().join("var/log/syslog");
    let logs = agent_client
        .logs(&syslog.to_string_lossy(), Some(3))
        .await
        .expect("logs");
    assert_eq!(logs.lines, ["line 298", "line 299", "line 300"]);

    let cloud_init = agent_client.cloud_init().await.expect("cloud-init");
    assert!(!cloud_init.status.is_empty());

    let exec = agent_client
        .exec(&ExecRequest {
            command: "echo out; echo err >&2; exit 3".to_string(),
            timeout_secs: Some(10),
        })
        .await
        .expect("exec");
    // `/bin/sh` semantics are the VM's; the agent's Windows build (only
    // here so these tests run under Wine) has no such shell.
    #[cfg(unix)]
    {
        assert_eq!(exec.exit_code, 3);
        assert_eq!(exec.stdout, "out\n");
        assert_eq!(exec.stderr, "err\n");
    }
    #[cfg(not(unix))]
    let _ = exec;

    let activity = agent_client.activity().await.expect("activity");
    assert!(
        activity
            .recent
            .iter()
            .any(|e| e.kind == ActivityKind::Heartbeat),
        "{activity:?}"
    );
}

#[tokio::test]
async fn agent_client_should_reuse_one_channel_for_sequential_requests() {
    let sshd = Sshd::start();
    let agent = start_agent().await;
    let agent_client = client(sshd.connect().await, &agent, TOKEN);
    for _ in 0..20 {
        agent_client.status().await.expect("status");
    }
    assert_eq!(agent.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn agent_client_should_serve_concurrent_requests_on_one_session() {
    let sshd = Sshd::start();
    let agent = start_agent().await;
    let agent_client = Arc::new(client(sshd.connect().await, &agent, TOKEN));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = agent_client.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                c.metrics().await.map(|_| ())
            } else {
                c.status().await.map(|_| ())
            }
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("request");
    }
    // Concurrent requests opened more than one channel, but the pool keeps
    // the count bounded by the concurrency, not the request count.
    let accepted = agent.accepted.load(Ordering::SeqCst);
    assert!((1..=24).contains(&accepted), "{accepted}");
}

#[tokio::test]
async fn agent_client_should_report_a_wrong_token_as_unauthorized() {
    let sshd = Sshd::start();
    let agent = start_agent().await;
    let agent_client = client(sshd.connect().await, &agent, "wrong-token");
    // /health needs no token.
    agent_client.health().await.expect("health");
    let err = agent_client.status().await.expect_err("wrong token");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("token"), "{hint}");
    // The token never appears in the error.
    assert!(!format!("{err} {err:?}").contains("wrong-token"));
}

#[tokio::test]
async fn agent_client_should_report_a_refused_path_with_the_agents_message() {
    let sshd = Sshd::start();
    let agent = start_agent().await;
    let agent_client = client(sshd.connect().await, &agent, TOKEN);
    let err = agent_client
        .logs("/var/log/../../etc/shadow", None)
        .await
        .expect_err("escape");
    match &err {
        Error::Api {
            status, message, ..
        } => {
            assert_eq!(status.as_u16(), 400);
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn agent_client_should_say_the_agent_is_not_running_when_nothing_listens() {
    let sshd = Sshd::start();
    let mut config = ClientConfig::new(TOKEN);
    config.port = crate::util::free_port();
    let agent_client = Client::new(sshd.connect().await, config);
    let err = agent_client.status().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("agent"), "{hint}");
    assert!(err.to_string().contains("127.0.0.1:"), "{err}");
}

#[tokio::test]
async fn agent_client_should_time_out_a_request_the_agent_never_answers() {
    let sshd = Sshd::start();
    // A listener that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    tokio::spawn(hold);
    let mut config = ClientConfig::new(TOKEN);
    config.port = port;
    config.request_timeout = Duration::from_millis(500);
    let agent_client = Client::new(sshd.connect().await, config);
    let err = agent_client.status().await.expect_err("silent agent");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

/// Issue 12: a running command hears about its VM's coming TTL stop, once
/// per threshold, through its keep-awake heartbeats.
#[tokio::test]
async fn keep_awake_should_report_a_coming_ttl_stop_once() {
    let sshd = Sshd::start();
    let mut config = api::AgentConfig::new(TOKEN);
    config.expires_at = Some(api::Timestamp(
        std::time::SystemTime::now() + Duration::from_secs(30),
    ));
    let agent = start_agent_with(config).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let awake = spuff::agent::KeepAwake::start_with(
        client(sshd.connect().await, &agent, TOKEN),
        Duration::from_millis(100),
        move |stop| sink.lock().expect("lock").push(stop.clone()),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(awake);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].reason, api::StopReason::Ttl);
    assert!(seen[0].in_seconds <= 30);
}
