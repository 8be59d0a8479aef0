//! Endpoint shapes, authentication and the JSON error bodies.

use std::time::Duration;

use spuff_agent::{AgentOptions, AppState};
use spuff_agent_api::{
    Activity, AgentConfig, CloudInit, Health, Heartbeat, Metrics, ProcessList, Status, paths,
};

use crate::util::{Agent, TOKEN, request};

#[tokio::test]
async fn health_should_answer_without_a_token() {
    let agent = Agent::start().await;
    let r = request(agent.addr, "GET", paths::HEALTH, None, None).await;
    assert_eq!(r.status, 200);
    let h: Health = r.json();
    assert_eq!(h.status, "ok");
    assert_eq!(h.service, "spuff-agent");
    assert_eq!(h.version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn endpoints_should_answer_with_their_api_types() {
    let agent = Agent::start().await;

    // Off Unix the agent reports no system figures (see platform.rs), only
    // the shapes.
    let unix = cfg!(unix);
    let s: Status = agent.get(paths::STATUS).await.json();
    assert_eq!(s.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(s.uptime_seconds > 0 || !unix);

    let m: Metrics = agent.get(paths::METRICS).await.json();
    assert!(m.memory_total_bytes > 0 || !unix);
    assert!(m.memory_used_bytes <= m.memory_total_bytes);
    assert!((0.0..=100.0).contains(&m.cpu_usage_percent));
    assert!(m.disk_total_bytes > 0 || !unix, "the root filesystem");
    assert!(m.disk_used_bytes <= m.disk_total_bytes);

    let p: ProcessList = agent.get(paths::PROCESSES).await.json();
    assert!((!p.processes.is_empty() || !unix) && p.processes.len() <= 10);
    let cpu: Vec<f64> = p.processes.iter().map(|p| p.cpu_percent).collect();
    assert!(
        cpu.windows(2).all(|w| w[0] >= w[1]),
        "sorted by CPU, highest first: {cpu:?}"
    );

    let r = agent.post(paths::HEARTBEAT, serde_json::json!({})).await;
    assert_eq!(r.status, 200);
    let hb: Heartbeat = r.json();
    assert!(hb.timestamp.elapsed() < Duration::from_secs(60));

    let c: CloudInit = agent.get(paths::CLOUD_INIT).await.json();
    assert_eq!(c.status, "unknown");

    let a: Activity = agent.get(paths::ACTIVITY).await.json();
    assert_eq!(a.sources.len(), 6);
}

#[tokio::test]
async fn heartbeat_should_accept_an_empty_body() {
    let agent = Agent::start().await;
    let r = request(agent.addr, "POST", paths::HEARTBEAT, Some(TOKEN), None).await;
    assert_eq!(r.status, 200);
    let _: Heartbeat = r.json();
}

#[tokio::test]
async fn every_authenticated_endpoint_should_refuse_a_missing_or_wrong_token() {
    let agent = Agent::start().await;
    let routes = [
        ("GET", paths::STATUS),
        ("GET", paths::METRICS),
        ("GET", paths::PROCESSES),
        ("POST", paths::EXEC),
        ("POST", paths::HEARTBEAT),
        ("GET", "/logs?file=/var/log/syslog"),
        ("GET", paths::CLOUD_INIT),
        ("GET", paths::ACTIVITY),
    ];
    for (method, path) in routes {
        for token in [
            None,
            Some("wrong"),
            Some(""),
            Some("test-token-0123456788"),
            Some("test-token-01234567890"),
        ] {
            let r = request(agent.addr, method, path, token, None).await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}");
            let e = r.error();
            assert!(e.error.contains("X-Spuff-Token"), "{}", e.error);
        }
    }
    let r = request(agent.addr, "GET", paths::STATUS, Some(TOKEN), None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unknown_routes_should_get_404_json() {
    let agent = Agent::start().await;
    for token in [None, Some(TOKEN)] {
        let r = request(agent.addr, "GET", "/nope", token, None).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.error().error, "no such endpoint");
    }
}

#[tokio::test]
async fn wrong_methods_should_get_405_json() {
    let agent = Agent::start().await;
    for (method, path) in [
        ("POST", paths::HEALTH),
        ("GET", paths::EXEC),
        ("DELETE", paths::STATUS),
    ] {
        let r = request(agent.addr, method, path, Some(TOKEN), None).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.error().error, "method not allowed");
        assert!(r.headers.contains_key("allow"));
    }
}

#[tokio::test]
async fn large_bodies_should_get_413_json() {
    let agent = Agent::start().await;
    let command = "x".repeat(100 * 1024);
    let body = serde_json::to_vec(&serde_json::json!({ "command": command })).expect("json");
    let r = request(
        agent.addr,
        "POST",
        paths::EXEC,
        Some(TOKEN),
        Some(("application/json", body)),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error().error, "request body too large");
}

#[tokio::test]
async fn bad_requests_should_get_4xx_json() {
    let agent = Agent::start().await;
    type Case = (
        &'static str,
        &'static str,
        Option<(&'static str, Vec<u8>)>,
        u16,
    );
    let cases: [Case; 5] = [
        (
            "POST",
            paths::EXEC,
            Some(("application/json", b"{not json".to_vec())),
            400,
        ),
        (
            "POST",
            paths::EXEC,
            Some(("application/json", b"{\"cmd\":1}".to_vec())),
            422,
        ),
        (
            "POST",
            paths::EXEC,
            Some(("text/plain", b"{\"command\":\"true\"}".to_vec())),
            415,
        ),
        ("GET", "/logs", None, 400),
        ("GET", "/logs?file=/var/log/x&lines=many", None, 400),
    ];
    for (method, path, body, status) in cases {
        let r = request(agent.addr, method, path, Some(TOKEN), body).await;
        assert_eq!(
            r.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(!r.error().error.is_empty());
    }
}

#[tokio::test]
async fn fifty_concurrent_requests_should_all_succeed() {
    let agent = Agent::start().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let addr = agent.addr;
        let path = [
            paths::STATUS,
            paths::METRICS,
            paths::ACTIVITY,
            paths::HEALTH,
            paths::CLOUD_INIT,
        ][i % 5];
        tasks.push(tokio::spawn(async move {
            request(addr, "GET", path, Some(TOKEN), None).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), 200);
    }
}

#[test]
fn state_should_refuse_an_empty_token_unless_no_auth_is_allowed() {
    let err = AppState::new(AgentOptions::default()).expect_err("empty token");
    assert!(matches!(err, spuff_agent::Error::MissingToken));
    let ok = AppState::new(AgentOptions {
        allow_no_auth: true,
        ..AgentOptions::default()
    });
    assert!(ok.is_ok());
}

#[tokio::test]
async fn no_auth_mode_should_serve_without_a_token() {
    let agent = Agent::start_with(|o| {
        o.allow_no_auth = true;
        o.config = AgentConfig {
            cpu_busy_percent: 1000.0,
            ..AgentConfig::new("")
        };
    })
    .await;
    let r = request(agent.addr, "GET", paths::STATUS, None, None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn bind_should_refuse_non_loopback_addresses() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:7575"] {
        let err = spuff_agent::bind(addr.parse().expect("addr"))
            .await
            .expect_err(addr);
        assert!(
            matches!(err, spuff_agent::Error::NonLoopbackBind { .. }),
            "{addr}: {err}"
        );
    }
}
