//! Entry points for fuzzing the agent's request parsing (issue 13). Built
//! only for the unit tests and under cargo-fuzz (`--cfg fuzzing`, the
//! targets in `fuzz/`), never into the agent. The agent serves whatever
//! reaches 127.0.0.1:7575 on the VM, so every process there is a client.
//!
//! - [`http`]: raw bytes as one connection's input to the real service
//!   (hyper's HTTP/1 parser, the router, the token check, the error
//!   bodies), without the token: no command can run.
//! - [`logs_query`]: a query string as `GET /logs` reads it, against a log
//!   directory of its own: an answer never names a file outside it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use spuff_agent_api::{AgentConfig, LogsQuery};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{AgentOptions, AppState, SystemPaths};

struct World {
    rt: tokio::runtime::Runtime,
    state: AppState,
    log_dir: PathBuf,
}

struct NoAction;

impl crate::IdleActionRunner for NoAction {
    fn run(&self, _: spuff_agent_api::IdleAction) -> std::io::Result<()> {
        Ok(())
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("spuff-agent-fuzz-{}", std::process::id()));
        let log_dir = root.join("var/log");
        std::fs::create_dir_all(log_dir.join("sub")).expect("fuzz log dir");
        std::fs::write(log_dir.join("syslog"), "one\ntwo\nthree\n").expect("fuzz log");
        std::fs::write(root.join("outside"), "not a log\n").expect("fuzz file");
        #[cfg(unix)]
        let _ = std::os::unix::fs::symlink(root.join("outside"), log_dir.join("link"));
        let state = AppState::new(AgentOptions {
            config: AgentConfig::new("fuzz-token-never-sent-0123456789"),
            paths: SystemPaths::under(&root),
            idle_runner: Arc::new(NoAction),
            ..AgentOptions::default()
        })
        .expect("fuzz agent state");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        World { rt, state, log_dir }
    })
}

/// `data` as everything a client sends on one connection.
pub fn http(data: &[u8]) {
    let w = world();
    w.rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let service = hyper_util::service::TowerToHyperService::new(crate::app(w.state.clone()));
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let task = tokio::spawn(conn);
        let (mut rx, mut tx) = tokio::io::split(client);
        let _ = tx.write_all(data).await;
        let _ = tx.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut out)).await;
        task.abort();
        // Whatever came in, the answers are HTTP responses, and none is a
        // server error: bad input is the client's (4xx).
        if !out.is_empty() {
            assert!(
                out.starts_with(b"HTTP/1."),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
        }
        assert!(
            !out.windows(10)
                .any(|w| w.starts_with(b"HTTP/1.") && w[8..].starts_with(b" 5")),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    });
}

/// `data` as the query string of `GET /logs`.
pub fn logs_query(data: &[u8]) {
    let w = world();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/logs?{text}").parse::<axum::http::Uri>() else {
        return;
    };
    let Ok(axum::extract::Query(query)) = axum::extract::Query::<LogsQuery>::try_from_uri(&uri)
    else {
        return;
    };
    if let Ok(logs) = crate::logs::read(&w.log_dir, &query) {
        let root = w.log_dir.canonicalize().expect("log dir");
        assert!(
            std::path::Path::new(&logs.file).starts_with(&root),
            "{} is outside {}",
            logs.file,
            root.display()
        );
        assert!(logs.lines.len() <= crate::logs::MAX_LINES);
    }
}

#[cfg(test)]
#[path = "../../src/fuzz_mutator.rs"]
mod mutator;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_mutants() {
        let seeds: Vec<Vec<u8>> = [
            &b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET /status HTTP/1.1\r\nHost: a\r\nX-Spuff-Token: x\r\n\r\n",
            b"POST /exec HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"command\":\"true\"}\r\n",
            b"GET /logs?file=%2Fvar%2Flog%2Fsyslog&lines=5 HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
            b"POST /heartbeat HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        mutator::run(&seeds, 20_000, http);
    }

    #[test]
    fn logs_queries_survive_mutants() {
        let log_dir = world().log_dir.to_string_lossy().into_owned();
        let seeds: Vec<Vec<u8>> = [
            format!("file={log_dir}/syslog&lines=2"),
            format!("file={log_dir}/link"),
            format!("file={log_dir}/sub/../syslog"),
            format!("file={log_dir}/sub"),
            "file=/etc/passwd&lines=99999999999999999999".into(),
            format!("file={log_dir}/%2e%2e/outside&lines=-1"),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        mutator::run(&seeds, 20_000, logs_query);
    }
}
