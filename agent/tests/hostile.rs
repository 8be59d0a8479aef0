//! Issue 13: clients that misbehave. A request for a FIFO under /var/log is
//! refused at once instead of hanging; a client that never finishes its
//! request head is cut off; connections past the cap wait instead of
//! costing memory; a blank token is refused at start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use spuff_agent::{AgentOptions, AppState, SystemPaths};
use spuff_agent_api::{AgentConfig, TOKEN_HEADER};

const TOKEN: &str = "hostile-test-token-0123456789";

/// The real server loop (`spuff_agent::serve`) on 127.0.0.1:0.
async fn serve(f: impl FnOnce(&mut AgentOptions)) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("var/log")).expect("mkdir");
    let mut o = AgentOptions {
        config: AgentConfig::new(TOKEN),
        paths: SystemPaths::under(dir.path()),
        idle_runner: Arc::new(NoAction),
        ..AgentOptions::default()
    };
    f(&mut o);
    let state = AppState::new(o).expect("state");
    let listener = spuff_agent::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(spuff_agent::serve(listener, state, std::future::pending()));
    (addr, dir)
}

struct NoAction;

impl spuff_agent::IdleActionRunner for NoAction {
    fn run(&self, _: spuff_agent_api::IdleAction) -> std::io::Result<()> {
        Ok(())
    }
}

/// A whole request and its whole answer, on a blocking thread.
async fn get(addr: SocketAddr, path: &str) -> String {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: a\r\n{TOKEN_HEADER}: {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("thread")
}

#[cfg(unix)]
#[tokio::test]
async fn logs_should_refuse_a_fifo_without_hanging() {
    let (addr, dir) = serve(|_| {}).await;
    let fifo = dir.path().join("var/log/pipe");
    nix_mkfifo(&fifo);
    let query = format!("/logs?file={}", dir.path().join("var/log/pipe").display());
    let answer = get(addr, &query).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("regular file"), "{answer}");
}

#[cfg(unix)]
fn nix_mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[tokio::test]
async fn a_request_head_never_finished_should_be_cut_off() {
    let (addr, _dir) = serve(|o| o.header_read_timeout = Duration::from_millis(500)).await;
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n")
            .expect("write");
        let mut buf = [0u8; 256];
        // The server closes the connection (EOF, or a 408 first).
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut;
                }
            }
        }
    })
    .await
    .expect("thread");
    assert!(closed, "the half-sent request was held open");
}

#[tokio::test]
async fn connections_past_the_cap_should_wait_their_turn() {
    let (addr, _dir) = serve(|o| {
        o.max_connections = 2;
        o.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // Two clients that hold their connections without a request.
    let hold1 = TcpStream::connect(addr).expect("connect");
    let hold2 = TcpStream::connect(addr).expect("connect");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = tokio::spawn(get(addr, "/health"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap of 2"
    );
    drop(hold1);
    let answer = tokio::time::timeout(Duration::from_secs(20), third)
        .await
        .expect("served once a slot freed")
        .expect("task");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(hold2);
}

#[test]
fn a_blank_token_should_be_refused() {
    for token in [" ", "\t", "two words", ""] {
        let o = AgentOptions {
            config: AgentConfig::new(token),
            ..AgentOptions::default()
        };
        let err = AppState::new(o).expect_err(token);
        assert!(err.to_string().contains("no usable agent token"), "{err}");
    }
}
