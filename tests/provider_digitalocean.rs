//! The DigitalOcean provider against the fake cloud (tests/fakecloud), over
//! real TLS: a whole `up` on one connection, pagination, rate limits, 5xx
//! storms, timeouts, truncated and dropped responses, an interrupted create,
//! proxies, and conformance with real API bodies (tests/data/digitalocean).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;
use spuff::Hint as _;
use spuff::provider::{
    ImageSpec, InstanceRequest, InstanceStatus, Provider, ProviderConfig, ProviderError,
    ProviderRegistry, ProxyConfig, suggest,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::fakecloud::{FakeCloud, Fault, FaultKind};

fn provider(config: ProviderConfig) -> Arc<dyn Provider> {
    ProviderRegistry::with_defaults()
        .create_by_name("digitalocean", config)
        .expect("provider")
}

fn request(name: &str) -> InstanceRequest {
    InstanceRequest::new(name, "fra1", "s-2vcpu-4gb")
        .with_image(ImageSpec::ubuntu("24.04"))
        .with_user_data("#cloud-config\n")
        .with_label("owner", "ana")
}

fn respond(status: u16, body: &str) -> FaultKind {
    FaultKind::Respond {
        status,
        headers: vec![],
        body: body.to_string(),
    }
}

#[tokio::test]
async fn up_should_run_over_one_tls_connection() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let vm = do_
        .create_instance(&request("spuff-up-1"))
        .await
        .expect("create");
    assert_eq!(vm.status, InstanceStatus::New);
    assert_eq!(vm.public_ipv4, None, "no IP right after create");
    let vm = do_.wait_ready(&vm.id).await.expect("ready");
    assert!(vm.is_ready());
    // The fake lists the private address first: chosen by type, not position.
    assert!(
        vm.public_ipv4
            .expect("ip")
            .to_string()
            .starts_with("203.0.113.")
    );
    assert!(
        vm.private_ipv4
            .expect("private")
            .to_string()
            .starts_with("10.114.")
    );
    assert_eq!(vm.labels.get("owner").map(String::as_str), Some("ana"));
    assert_eq!(vm.size, "s-2vcpu-4gb");
    do_.destroy_instance(&vm.id).await.expect("destroy");
    do_.destroy_instance(&vm.id)
        .await
        .expect("destroying again is fine");

    let s = fake.stats();
    assert_eq!(s.tls_handshakes, 1, "one handshake for the whole up: {s:?}");
    assert_eq!(do_.http_stats().connections, 1);
    assert_eq!(s.http2_requests, s.requests, "HTTP/2 negotiated by ALPN");
    assert!(
        s.user_agent
            .starts_with(&format!("spuff/{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        s.user_agent
    );
    assert_eq!(s.count("POST /v2/droplets"), 1);
    assert!(fake.state().droplets.is_empty());
    let sent = fake.state().stats.log.len() as u64;
    assert_eq!(do_.http_stats().requests, sent);
}

#[tokio::test]
async fn http1_only_should_reuse_the_connection() {
    let fake = FakeCloud::start().await;
    let mut c = fake.config();
    c.http.http2 = false;
    let do_ = provider(c);
    let vm = do_
        .create_instance(&request("spuff-h1"))
        .await
        .expect("create");
    do_.wait_ready(&vm.id).await.expect("ready");
    let s = fake.stats();
    assert_eq!(s.http2_requests, 0);
    assert_eq!(s.tls_handshakes, 1, "keep-alive: {s:?}");
}

#[tokio::test]
async fn list_should_follow_pagination_and_only_see_spuff_vms() {
    let fake = FakeCloud::start().await;
    fake.state().max_per_page = 2;
    for i in 0..5 {
        fake.seed_droplet(&format!("spuff-{i}"), &["spuff"]);
    }
    fake.seed_droplet("someone-elses", &["web"]);
    let do_ = provider(fake.config());
    let mut names: Vec<String> = do_
        .list_instances()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["spuff-0", "spuff-1", "spuff-2", "spuff-3", "spuff-4"]
    );
    assert_eq!(
        fake.stats().count("GET /v2/droplets"),
        3,
        "three pages of two"
    );
}

#[tokio::test]
async fn rate_limit_then_success_should_honour_retry_after() {
    let fake = FakeCloud::start().await;
    let id = fake.seed_droplet("spuff-rl", &["spuff"]);
    fake.push_fault(Fault::new(
        Method::GET,
        &format!("/v2/droplets/{id}"),
        FaultKind::RateLimit {
            retry_after: Some(1),
            reset_in: 1,
        },
    ));
    let do_ = provider(fake.config());
    let t = Instant::now();
    let vm = do_
        .get_instance(&id.to_string())
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(vm.name, "spuff-rl");
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(do_.http_stats().retries, 1);

    // A wait longer than allowed is reported, not slept through.
    fake.push_fault(Fault::new(
        Method::GET,
        &format!("/v2/droplets/{id}"),
        FaultKind::RateLimit {
            retry_after: None,
            reset_in: 3600,
        },
    ));
    let e = do_
        .get_instance(&id.to_string())
        .await
        .expect_err("rate limited");
    match &e {
        ProviderError::RateLimit {
            retry_after: Some(d),
            ..
        } => assert!(*d > Duration::from_secs(3000)),
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable() && e.hint().is_some());
}

#[tokio::test]
async fn server_error_storm_should_be_ridden_out_then_reported() {
    let fake = FakeCloud::start().await;
    let id = fake.seed_droplet("spuff-5xx", &["spuff"]);
    let path = format!("/v2/droplets/{id}");
    for status in [500, 502, 503] {
        fake.push_fault(Fault::new(
            Method::GET,
            &path,
            respond(status, "<html>bad gateway</html>"),
        ));
    }
    let do_ = provider(fake.config());
    assert!(
        do_.get_instance(&id.to_string())
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(fake.stats().count(&format!("GET {path}")), 4);

    for _ in 0..10 {
        fake.push_fault(Fault::new(Method::GET, &path, respond(503, r#"{"id":"server_error","message":"Server was unable to give you a response.","request_id":"req-9"}"#)));
    }
    let e = do_.get_instance(&id.to_string()).await.expect_err("storm");
    match &e {
        ProviderError::Api {
            status: 503,
            request_id,
            ..
        } => assert_eq!(request_id.as_deref(), Some("req-9")),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("digitalocean"), "{e}");
    assert_eq!(
        fake.stats().count(&format!("GET {path}")),
        4 + 5,
        "max_attempts = 5"
    );
}

#[tokio::test]
async fn slow_and_truncated_responses_should_be_retried_for_reads() {
    let fake = FakeCloud::start().await;
    let id = fake.seed_droplet("spuff-slow", &["spuff"]);
    let path = format!("/v2/droplets/{id}");
    let mut c = fake.config();
    c.timeouts.request = Duration::from_millis(300);
    let do_ = provider(c);
    fake.push_fault(Fault::new(
        Method::GET,
        &path,
        FaultKind::Delay(Duration::from_secs(2)),
    ));
    fake.push_fault(Fault::new(Method::GET, &path, FaultKind::Truncate));
    let t = Instant::now();
    assert!(
        do_.get_instance(&id.to_string())
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "gave up on the slow try: {:?}",
        t.elapsed()
    );
    assert_eq!(do_.http_stats().retries, 2);

    for _ in 0..5 {
        fake.push_fault(Fault::new(
            Method::GET,
            &path,
            FaultKind::Delay(Duration::from_secs(2)),
        ));
    }
    let e = do_
        .get_instance(&id.to_string())
        .await
        .expect_err("always slow");
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn wait_ready_timeout_should_name_the_last_state() {
    let fake = FakeCloud::start().await;
    fake.state().ready_after_polls = u32::MAX;
    let mut c = fake.config();
    c.timeouts.instance_ready = Duration::from_millis(300);
    let do_ = provider(c);
    let vm = do_
        .create_instance(&request("spuff-stuck"))
        .await
        .expect("create");
    let e = do_.wait_ready(&vm.id).await.expect_err("stuck");
    let text = e.to_string();
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e:?}");
    assert!(
        text.contains("status new, no public IPv4 yet") && text.contains(&vm.id),
        "{text}"
    );
    // Polling backs off: far fewer polls than 300ms / 10ms.
    let polls = fake.stats().count(&format!("GET /v2/droplets/{}", vm.id));
    assert!((3..25).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn interrupted_create_should_not_make_a_second_vm() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());

    // The droplet is made, then the answer is lost: found by name, not re-created.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        FaultKind::ProcessThenDrop,
    ));
    let vm = do_
        .create_instance(&request("spuff-lost-answer"))
        .await
        .expect("create");
    assert_eq!(vm.name, "spuff-lost-answer");
    assert_eq!(fake.state().droplets.len(), 1);
    assert_eq!(fake.stats().count("POST /v2/droplets"), 1);

    // The request never got through: nothing found, so it is sent again, once.
    fake.push_fault(Fault::new(Method::POST, "/v2/droplets", FaultKind::Drop));
    do_.create_instance(&request("spuff-lost-request"))
        .await
        .expect("create");
    assert_eq!(fake.state().droplets.len(), 2);
    assert_eq!(fake.stats().count("POST /v2/droplets"), 3);

    // A 5xx after processing is treated the same way.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        respond(504, "gateway timeout"),
    ));
    do_.create_instance(&request("spuff-504"))
        .await
        .expect("create");
    assert_eq!(fake.state().droplets.len(), 3);
}

#[tokio::test]
async fn quota_and_auth_errors_should_be_typed_and_hide_the_token() {
    let fake = FakeCloud::start().await;
    fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        respond(422, r#"{"id":"unprocessable_entity","message":"creating this/these droplet(s) will exceed your droplet limit","request_id":"r"}"#),
    ));
    let do_ = provider(fake.config());
    let e = do_
        .create_instance(&request("spuff-q"))
        .await
        .expect_err("quota");
    assert!(matches!(e, ProviderError::QuotaExceeded { .. }), "{e:?}");
    assert_eq!(fake.stats().count("POST /v2/droplets"), 1, "a 422 is final");

    let mut c = fake.config();
    c.token = "wrong-token-value".into();
    assert!(!format!("{c:?}").contains("wrong-token-value"));
    let bad = provider(c);
    assert!(!format!("{bad:?}").contains("wrong-token-value"));
    let e = bad.list_instances().await.expect_err("401");
    assert!(matches!(e, ProviderError::Authentication { .. }), "{e:?}");
    assert!(!format!("{e:?} {e}").contains("wrong-token-value"));
    assert!(e.hint().unwrap_or_default().contains("DIGITALOCEAN_TOKEN"));
}

#[tokio::test]
async fn ssh_key_should_be_imported_once() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 ana@laptop";
    let a = do_.ensure_ssh_key("spuff-ana", key).await.expect("import");
    assert_eq!(
        a.fingerprint,
        "b0:ef:dd:3c:27:1c:ea:6a:ba:16:ba:b5:8c:58:a5:a0"
    );
    let b = do_
        .ensure_ssh_key("spuff-ana-again", key)
        .await
        .expect("found");
    assert_eq!(a.id, b.id);
    assert_eq!(fake.stats().count("POST /v2/account/keys"), 1);
    assert_eq!(do_.list_ssh_keys().await.expect("keys").len(), 1);
    let e = do_
        .ensure_ssh_key("x", "garbage")
        .await
        .expect_err("bad key");
    assert!(matches!(e, ProviderError::InvalidConfig { .. }));
}

#[tokio::test]
async fn snapshots_and_power_actions_should_complete() {
    let fake = FakeCloud::start().await;
    let id = fake.seed_droplet("spuff-snap", &["spuff"]).to_string();
    let do_ = provider(fake.config());
    do_.power_off(&id).await.expect("off");
    assert_eq!(
        do_.get_instance(&id)
            .await
            .expect("get")
            .expect("vm")
            .status,
        InstanceStatus::Off
    );
    let snap = do_
        .create_snapshot(&id, "spuff-snap-1")
        .await
        .expect("snapshot");
    assert_eq!(snap.name, "spuff-snap-1");
    do_.power_on(&id).await.expect("on");
    let all = do_.list_snapshots().await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].id, snap.id,
        "string ids from /v2/snapshots match integer ids"
    );
    assert_eq!(all[0].source_instance.as_deref(), Some(id.as_str()));
    do_.delete_snapshot(&snap.id).await.expect("delete");
    do_.delete_snapshot(&snap.id)
        .await
        .expect("already gone is fine");
    assert!(do_.list_snapshots().await.expect("list").is_empty());
}

#[tokio::test]
async fn sizes_and_regions_should_support_suggestions() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let sizes = do_.list_sizes().await.expect("sizes");
    assert!(sizes.iter().any(|s| s.slug == "s-2vcpu-4gb" && s.vcpus > 0));
    assert_eq!(
        suggest("s-2vcpu-4g", sizes.iter().map(|s| s.slug.as_str())),
        vec!["s-2vcpu-4gb"]
    );
    let regions = do_.list_regions().await.expect("regions");
    assert!(regions.iter().any(|r| r.slug == "sfo1" && !r.available));
    assert_eq!(
        suggest("fra", regions.iter().map(|r| r.slug.as_str())),
        vec!["fra1"]
    );
}

#[tokio::test]
async fn oversized_bodies_should_be_refused() {
    let fake = FakeCloud::start().await;
    let mut c = fake.config();
    c.http.max_body_bytes = 200;
    c.http.retry.max_attempts = 1;
    let do_ = provider(c);
    let e = do_.list_sizes().await.expect_err("too big");
    assert!(e.to_string().contains("larger than 200 bytes"), "{e}");
    assert!(fake.stats().gzip_responses > 0);
}

/// A minimal CONNECT proxy: records each target and splices bytes.
async fn connect_proxy() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut line = String::new();
                client.read_line(&mut line).await.ok()?;
                let target = line.split_whitespace().nth(1)?.to_string();
                loop {
                    let mut h = String::new();
                    client.read_line(&mut h).await.ok()?;
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                seen.lock().ok()?.push(target.clone());
                let mut upstream = tokio::net::TcpStream::connect(&target).await.ok()?;
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .ok()?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream)
                    .await
                    .ok()
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn requests_should_tunnel_through_a_proxy_unless_excluded() {
    let fake = FakeCloud::start().await;
    let (proxy_url, seen) = connect_proxy().await;
    let mut c = fake.config();
    c.http.proxy = ProxyConfig::Url {
        url: proxy_url.clone(),
        no_proxy: String::new(),
    };
    let do_ = provider(c);
    do_.list_regions().await.expect("through the proxy");
    do_.list_sizes().await.expect("same tunnel");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![format!("127.0.0.1:{}", fake.addr.port())]
    );

    let mut c = fake.config();
    c.http.proxy = ProxyConfig::Url {
        url: proxy_url,
        no_proxy: "127.0.0.1".into(),
    };
    provider(c).list_regions().await.expect("direct");
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "NO_PROXY host bypasses the proxy"
    );
}

// ---- conformance: real API bodies parse --------------------------------

fn data(name: &str) -> String {
    let path = format!(
        "{}/tests/data/digitalocean/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The body with api.digitalocean.com (and godo's example.com) links pointed at the fake, so pagination
/// links are followed (the client never sends the token to another host).
fn local(fake: &FakeCloud, body: &str) -> String {
    let origin = format!("https://127.0.0.1:{}", fake.addr.port());
    body.replace("https://api.digitalocean.com", &origin)
        .replace("http://example.com", &origin)
}

fn array_len(body: &str, key: &str) -> usize {
    let v: Value = serde_json::from_str(body).expect("json");
    v[key].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn real_droplet_bodies_should_parse() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    for f in [
        "droplet_kit__droplets__all.json",
        "droplet_kit__droplets__all_empty.json",
        "libcloud__list_nodes.json",
        "libcloud__list_nodes_empty.json",
        "libcloud__list_nodes_page_1.json",
        "godo__droplets_test__ListDropletsWithGPUs.json",
        "godo__droplets_test__RetrievePageByNumber.json",
        "spec/droplets_list.200.All_Droplets.json",
        "spec/droplets_list.200.Droplets_Filtered_By_Tag.json",
    ] {
        let body = local(&fake, &data(f));
        fake.push_fault(Fault::new(Method::GET, "/v2/droplets", respond(200, &body)));
        let list = do_
            .list_instances()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(list.len() >= array_len(&body, "droplets"), "{f}");
    }
    for (f, public) in [
        ("droplet_kit__droplets__find.json", Some("127.0.0.19")),
        ("libcloud__list_node.json", None),
        ("doctl__integration__droplet_get.json", None),
        ("spec/droplets_get.200.Single_Droplet.json", None),
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/droplets/1",
            respond(200, &data(f)),
        ));
        let vm = do_
            .get_instance("1")
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .expect(f);
        if let Some(ip) = public {
            assert_eq!(
                vm.public_ipv4.map(|i| i.to_string()).as_deref(),
                Some(ip),
                "{f}"
            );
        }
        assert!(!vm.id.is_empty(), "{f}");
    }
    for f in [
        "droplet_kit__droplets__create.json",
        "godo__droplets_test__Create.json",
        "doctl__integration__droplet_create.json",
        "spec/droplets_create.202.Single_Droplet_Create_Response.json",
    ] {
        fake.push_fault(Fault::new(
            Method::POST,
            "/v2/droplets",
            respond(202, &data(f)),
        ));
        do_.create_instance(&request("spuff-conf"))
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[tokio::test]
async fn real_action_snapshot_key_size_region_bodies_should_parse() {
    let fake = FakeCloud::start().await;
    let id = fake.seed_droplet("spuff-conf", &["spuff"]).to_string();
    let do_ = provider(fake.config());
    let completed = r#"{"action":{"id":1,"status":"completed","type":"power_off"}}"#;
    for f in [
        "droplet_kit__droplet_actions__power_off.json",
        "droplet_kit__droplet_actions__power_on.json",
        "droplet_kit__droplet_actions__shutdown.json",
        "droplet_kit__droplet_actions__snapshot.json",
        "libcloud__create_image.json",
        "libcloud__ex_power_on_node.json",
        "libcloud__ex_shutdown_node.json",
    ] {
        fake.state().faults.clear();
        fake.push_fault(Fault::new(
            Method::POST,
            &format!("/v2/droplets/{id}/actions"),
            respond(201, &data(f)),
        ));
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/actions/*",
            respond(200, completed),
        ));
        do_.power_off(&id)
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    for f in [
        "droplet_kit__actions__find.json",
        "godo__action_test__Get.json",
    ] {
        fake.state().faults.clear();
        let started = r#"{"action":{"id":2,"status":"in-progress","type":"power_on"}}"#;
        fake.push_fault(Fault::new(
            Method::POST,
            &format!("/v2/droplets/{id}/actions"),
            respond(201, started),
        ));
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/actions/*",
            respond(200, &data(f)),
        ));
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/actions/*",
            respond(200, completed),
        ));
        do_.power_on(&id)
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    fake.state().faults.clear();

    for f in [
        "droplet_kit__snapshots__all.json",
        "droplet_kit__snapshots__resource_type.json",
        "godo__snapshots_test__List.json",
        "godo__snapshots_test__RetrievePageByNumber.json",
        "spec/snapshots_list.200.Droplets_Snapshots.json",
    ] {
        let body = local(&fake, &data(f));
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/snapshots",
            respond(200, &body),
        ));
        let snaps = do_
            .list_snapshots()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(snaps.len() >= array_len(&body, "snapshots"), "{f}");
    }
    for f in [
        "droplet_kit__droplets__list_snapshots.json",
        "spec/droplets_list_snapshots.200.json",
    ] {
        let body = data(f);
        let v: Value = serde_json::from_str(&body).expect("json");
        let name = v["snapshots"][0]["name"]
            .as_str()
            .expect("name")
            .to_string();
        fake.push_fault(Fault::new(
            Method::GET,
            &format!("/v2/droplets/{id}/snapshots"),
            respond(200, &body),
        ));
        let s = do_
            .create_snapshot(&id, &name)
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(s.name, name);
    }
    for f in [
        "droplet_kit__ssh_keys__all.json",
        "libcloud__list_key_pairs.json",
        "spec/sshKeys_list.200.json",
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/account/keys",
            respond(200, &local(&fake, &data(f))),
        ));
        let keys = do_
            .list_ssh_keys()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(keys.iter().all(|k| !k.fingerprint.is_empty()), "{f}");
    }
    for f in [
        "droplet_kit__ssh_keys__create.json",
        "libcloud__create_key_pair.json",
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/account/keys",
            respond(200, r#"{"ssh_keys":[],"links":{},"meta":{"total":0}}"#),
        ));
        fake.push_fault(Fault::new(
            Method::POST,
            "/v2/account/keys",
            respond(201, &data(f)),
        ));
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 t";
        do_.ensure_ssh_key("k", key)
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    for f in [
        "droplet_kit__sizes__all.json",
        "godo__sizes_test__List.json",
        "libcloud__list_sizes.json",
        "spec/sizes_list.200.json",
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/sizes",
            respond(200, &local(&fake, &data(f))),
        ));
        let sizes = do_
            .list_sizes()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(sizes.len() >= array_len(&data(f), "sizes"), "{f}");
    }
    for f in [
        "droplet_kit__regions__all.json",
        "libcloud__list_locations.json",
        "spec/regions_list.200.json",
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/regions",
            respond(200, &local(&fake, &data(f))),
        ));
        let regions = do_
            .list_regions()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(regions.len() >= array_len(&data(f), "regions"), "{f}");
    }
}

#[tokio::test]
async fn real_error_bodies_should_map_to_variants() {
    let fake = FakeCloud::start().await;
    let mut c = fake.config();
    c.http.retry.max_attempts = 1;
    let do_ = provider(c);
    let cases: &[(&str, u16, &str)] = &[
        ("spec/error.400.json", 400, "api"),
        ("spec/error.401.json", 401, "auth"),
        ("spec/error.429.json", 429, "ratelimit"),
        ("spec/error.500.json", 500, "api"),
        ("godo__godo_test__error_bad_request.json", 400, "api"),
        ("godo__godo_test__error_no_request_id.json", 400, "api"),
        ("godo__godo_test__error_request_id_in_body.json", 400, "api"),
        ("libcloud__error.json", 401, "auth"),
        ("libcloud__error_invalid_image.json", 422, "api"),
    ];
    for (f, status, kind) in cases {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v2/droplets/1",
            respond(*status, &data(f)),
        ));
        let e = do_.get_instance("1").await.expect_err(f);
        let ok = match *kind {
            "api" => {
                matches!(&e, ProviderError::Api { status: s, message, .. } if s == status && !message.is_empty())
            }
            "auth" => matches!(e, ProviderError::Authentication { .. }),
            _ => matches!(e, ProviderError::RateLimit { .. }),
        };
        assert!(ok, "{f}: {e:?}");
    }
    fake.push_fault(Fault::new(
        Method::GET,
        "/v2/droplets/1",
        respond(404, &data("spec/error.404.json")),
    ));
    assert!(do_.get_instance("1").await.expect("404 is None").is_none());
}
