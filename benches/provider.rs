//! A whole `spuff up` (create + wait_ready + destroy) against the fake
//! DigitalOcean API (tests/fakecloud) over real TLS.
//!
//! Run with: cargo bench --bench provider
//!
//! Prints `figure: NAME value` lines:
//! - `up_requests` and `up_tls_handshakes`: per `up`, as the fake server saw
//!   them (the handshake count must be 1: the pool serves the whole `up`);
//! - `up_ms`: wall time of one `up` with the droplet ready `READY_AFTER` after
//!   creation and `LATENCY` added to every response;
//! - `up_overhead_ms`: `up_ms` minus the fake's minimum (the ready delay plus
//!   one latency per request): the client's own cost, polling granularity
//!   included.

#[path = "../tests/fakecloud/mod.rs"]
mod fakecloud;

use std::time::{Duration, Instant};

use spuff::provider::{ImageSpec, InstanceRequest, Provider, digitalocean};

const RUNS: u32 = 10;
const READY_AFTER: Duration = Duration::from_millis(300);
const LATENCY: Duration = Duration::from_millis(2);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ms = Vec::new();
        let mut overhead = Vec::new();
        let (mut requests, mut handshakes) = (0, 0);
        for i in 0..RUNS {
            let fake = fakecloud::FakeCloud::start().await;
            {
                let mut s = fake.state();
                s.account.ready_after_polls = 1;
                s.ready_after = READY_AFTER;
                s.latency = LATENCY;
            }
            let mut config = fake.config();
            // Default-like polling, scaled down: starts at 100 ms, at most 1 s.
            config.timeouts.poll_initial = Duration::from_millis(100);
            config.timeouts.poll_max = Duration::from_secs(1);
            let provider = digitalocean::Client::new(config).expect("client");
            let req = InstanceRequest::new(format!("spuff-bench-{i}"), "fra1", "s-2vcpu-4gb")
                .with_image(ImageSpec::ubuntu("24.04"));
            let t = Instant::now();
            let vm = provider.create_instance(&req).await.expect("create");
            let vm = provider.wait_ready(&vm.id).await.expect("ready");
            provider.destroy_instance(&vm.id).await.expect("destroy");
            let took = t.elapsed();
            let stats = fake.stats();
            let minimum = READY_AFTER + LATENCY * stats.requests as u32;
            ms.push(took.as_secs_f64() * 1e3);
            overhead.push(took.saturating_sub(minimum).as_secs_f64() * 1e3);
            requests = stats.requests;
            handshakes = stats.tls_handshakes;
            assert_eq!(provider.http_stats().connections, handshakes);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        println!("figure: up_requests {requests}");
        println!("figure: up_tls_handshakes {handshakes}");
        println!(
            "figure: up_ms median={:.1} runs={RUNS} ready_after_ms={} latency_ms={}",
            median(&mut ms),
            READY_AFTER.as_millis(),
            LATENCY.as_millis()
        );
        println!("figure: up_overhead_ms median={:.1}", median(&mut overhead));
    });
}
