//! Footprint and latency of the `spuff-agent` binary, measured as a process.
//!
//! Run with: `cargo bench -p spuff-agent` (Linux: it reads `/proc/PID/status`).
//!
//! `cargo bench` builds the binary with the bench profile (the release
//! profile: thin LTO, no debug info), and this harness runs that binary
//! (`CARGO_BIN_EXE_spuff-agent`), or the one named by `SPUFF_AGENT_BIN`
//! (for example a `cargo build --release -p spuff-agent` binary or the one
//! installed on a VM). It prints `figure: NAME VALUE UNIT` lines:
//!
//! - the binary's size;
//! - its resident memory (VmRSS) after start-up and a warm-up of 100
//!   requests, then after 10 000 requests, and its peak (VmHWM);
//! - p50/p99 latency of `GET /health`, `/status` and `/metrics`, 3000 each,
//!   sequential on one keep-alive HTTP/1.1 connection (the client is in this
//!   process, so the figures include its share of the round trip).
//!
//! There is no peer to compare with: no other program answers these
//! endpoints, so the figures are absolute (docs/performance.md,
//! "spuff-agent").
#![allow(clippy::unwrap_used)] // A bench: failing loudly is the point.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

const TOKEN: &str = "bench-token";
const PER_ENDPOINT: usize = 3000;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary() -> PathBuf {
    std::env::var_os("SPUFF_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_spuff-agent")))
}

fn start(bin: &PathBuf, config: &std::path::Path) -> (Agent, SocketAddr) {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .env_remove("SPUFF_AGENT_TOKEN")
        .env_remove("SPUFF_AGENT_PORT")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("agent log").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining the log so the agent never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Agent(child), addr)
}

/// A `/proc/PID/status` field in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(sender: &mut Sender, path: &str) {
    sender.ready().await.unwrap();
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .header("x-spuff-token", TOKEN)
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.into_body().collect().await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench -- --bench` and friends pass flags; this harness has none.
    let bin = binary();
    if !bin.exists() {
        eprintln!(
            "no agent binary at {}; build it or set SPUFF_AGENT_BIN",
            bin.display()
        );
        return;
    }
    let size = std::fs::metadata(&bin).unwrap().len();
    println!(
        "figure: binary_size {:.2} MiB ({})",
        size as f64 / 1048576.0,
        bin.display()
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.json");
    std::fs::write(&config, format!(r#"{{"token": "{TOKEN}", "port": 0}}"#)).unwrap();
    let (agent, addr) = start(&bin, &config);
    let pid = agent.0.id();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sender = connect(addr).await;
        for _ in 0..100 {
            get(&mut sender, "/health").await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "figure: rss_idle {:.1} MiB",
            proc_kib(pid, "VmRSS") as f64 / 1024.0
        );

        let mut total = 100;
        for path in ["/health", "/status", "/metrics"] {
            let mut times = Vec::with_capacity(PER_ENDPOINT);
            for _ in 0..PER_ENDPOINT {
                let t = Instant::now();
                get(&mut sender, path).await;
                times.push(t.elapsed());
            }
            total += PER_ENDPOINT;
            times.sort();
            println!(
                "figure: latency {path} p50={:.0} us p99={:.0} us",
                percentile(&times, 0.50),
                percentile(&times, 0.99)
            );
        }
        while total < 10_000 {
            get(
                &mut sender,
                ["/health", "/status", "/metrics", "/activity"][total % 4],
            )
            .await;
            total += 1;
        }
        println!(
            "figure: rss_after_10k_requests {:.1} MiB (peak {:.1} MiB)",
            proc_kib(pid, "VmRSS") as f64 / 1024.0,
            proc_kib(pid, "VmHWM") as f64 / 1024.0
        );
    });
    drop(agent);
}
