//! The Hetzner Cloud provider against the fake Hetzner API
//! (tests/fakecloud/hetzner.rs), over real TLS: a whole `up` on one
//! connection, pagination, label selection, rate limits, an interrupted
//! create, user data limits, SSH key import, snapshots, the IPv6 /64, and
//! conformance with real API bodies (tests/data/hetzner).

use std::sync::Arc;

use http::Method;
use spuff::provider::{
    ImageSpec, InstanceRequest, InstanceStatus, Provider, ProviderConfig, ProviderError,
    ProviderRegistry,
};

use crate::fakecloud::hetzner::FakeHetzner;
use crate::fakecloud::{Fault, FaultKind};

fn provider(config: ProviderConfig) -> Arc<dyn Provider> {
    ProviderRegistry::with_defaults()
        .create_by_name("hcloud", config)
        .expect("provider")
}

fn request(name: &str) -> InstanceRequest {
    InstanceRequest::new(name, "nbg1", "cx22")
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

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 test";

#[tokio::test]
async fn hetzner_up_should_run_over_one_tls_connection() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    assert_eq!(h.name(), "hetzner");
    let vm = h
        .create_instance(&request("spuff-up-1"))
        .await
        .expect("create");
    assert_eq!(vm.status, InstanceStatus::New);
    assert_eq!(vm.public_ipv4, None, "ipv4 is null right after create");
    {
        let st = fake.state();
        let srv = st.servers.values().next().expect("server");
        assert_eq!(srv.request["image"], serde_json::json!("ubuntu-24.04"));
        assert_eq!(srv.request["labels"]["spuff"], "");
        assert_eq!(srv.request["user_data"], "#cloud-config\n");
    }
    let vm = h.wait_ready(&vm.id).await.expect("ready");
    assert!(vm.is_ready());
    assert!(
        vm.public_ipv4
            .expect("ip")
            .to_string()
            .starts_with("198.51.100.")
    );
    assert_eq!(
        vm.region, "nbg1",
        "location used when datacenter is missing"
    );
    assert_eq!(vm.size, "cx22");
    assert_eq!(vm.created_at.as_deref(), Some("2026-11-23T17:36+00:00"));
    assert_eq!(vm.labels.get("owner").map(String::as_str), Some("ana"));
    h.destroy_instance(&vm.id).await.expect("destroy");
    h.destroy_instance(&vm.id)
        .await
        .expect("destroying again is fine");
    assert!(h.get_instance(&vm.id).await.expect("get").is_none());

    let s = fake.stats();
    assert_eq!(s.tls_handshakes, 1, "one handshake for the whole up: {s:?}");
    assert_eq!(h.http_stats().connections, 1);
    assert!(s.count(&format!("GET /v1/servers/{}", vm.id)) >= 3);
}

#[tokio::test]
async fn hetzner_ipv6_network_should_map_to_host_one() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    let id = fake.seed_server("spuff-v6", &[("spuff", "")]);
    let vm = h
        .get_instance(&id.to_string())
        .await
        .expect("get")
        .expect("vm");
    let v6 = vm.public_ipv6.expect("ipv6").to_string();
    assert!(
        v6.starts_with("2a01:4f8:c0c:") && v6.ends_with("::1"),
        "{v6}"
    );
}

#[tokio::test]
async fn hetzner_list_should_follow_pagination_and_label_selector() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    for i in 0..120 {
        fake.seed_server(&format!("spuff-{i}"), &[("spuff", "")]);
    }
    for i in 0..7 {
        fake.seed_server(&format!("other-{i}"), &[("team", "x")]);
    }
    let list = h.list_instances().await.expect("list");
    assert_eq!(list.len(), 120, "only spuff-labelled servers, all pages");
    assert!(list.iter().all(|v| v.name.starts_with("spuff-")));
    let s = fake.stats();
    assert_eq!(s.count("GET /v1/servers"), 3, "120 / 50 per page = 3 pages");
}

#[tokio::test]
async fn hetzner_rate_limit_then_success() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    fake.seed_server("spuff-rl", &[("spuff", "")]);
    fake.push_fault(Fault::new(
        Method::GET,
        "/v1/servers",
        FaultKind::RateLimit {
            retry_after: None,
            reset_in: 1,
        },
    ));
    let list = h.list_instances().await.expect("list after 429");
    assert_eq!(list.len(), 1);
    assert_eq!(fake.stats().count("GET /v1/servers"), 2);
    // A create refused with 429 is resent (nothing was made) and made once.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers",
        FaultKind::RateLimit {
            retry_after: Some(0),
            reset_in: 0,
        },
    ));
    h.create_instance(&request("spuff-rl-2"))
        .await
        .expect("create");
    assert_eq!(fake.state().servers.len(), 2);
}

#[tokio::test]
async fn hetzner_interrupted_create_should_not_make_a_second_server() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers",
        FaultKind::ProcessThenDrop,
    ));
    let vm = h
        .create_instance(&request("spuff-lost-answer"))
        .await
        .expect("create");
    assert_eq!(vm.name, "spuff-lost-answer");
    assert_eq!(fake.state().servers.len(), 1);
    assert_eq!(fake.stats().count("POST /v1/servers"), 1);

    // Never got through: nothing found by name, so sent again, once.
    fake.push_fault(Fault::new(Method::POST, "/v1/servers", FaultKind::Drop));
    h.create_instance(&request("spuff-lost-request"))
        .await
        .expect("create");
    assert_eq!(fake.state().servers.len(), 2);
    assert_eq!(fake.stats().count("POST /v1/servers"), 3);

    // A 503: looked up by name first (not there), then sent again, once.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers",
        respond(
            503,
            r#"{"error":{"code":"unavailable","message":"try later","details":{}}}"#,
        ),
    ));
    h.create_instance(&request("spuff-503"))
        .await
        .expect("create");
    assert_eq!(fake.state().servers.len(), 3);
    assert_eq!(fake.stats().count("POST /v1/servers"), 5);
    let lookups = fake.stats().count("GET /v1/servers");
    assert_eq!(lookups, 3, "one name lookup per failed create");
}

#[tokio::test]
async fn hetzner_user_data_over_32k_should_be_refused_before_sending() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    let big = "x".repeat(32 * 1024 + 1);
    let e = h
        .create_instance(&request("spuff-big").with_user_data(big))
        .await
        .expect_err("too big");
    assert!(
        matches!(&e, ProviderError::InvalidConfig { field, .. } if field == "user_data"),
        "{e}"
    );
    assert_eq!(fake.stats().requests, 0, "nothing sent");
    let ok = "x".repeat(32 * 1024);
    h.create_instance(&request("spuff-edge").with_user_data(ok))
        .await
        .expect("exactly 32 KiB is fine");
}

#[tokio::test]
async fn hetzner_ssh_key_should_be_imported_once() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    let a = h.ensure_ssh_key("spuff-ana", KEY).await.expect("import");
    let b = h.ensure_ssh_key("spuff-ana", KEY).await.expect("again");
    assert_eq!(a, b);
    assert_eq!(
        a.fingerprint,
        "b0:ef:dd:3c:27:1c:ea:6a:ba:16:ba:b5:8c:58:a5:a0"
    );
    assert_eq!(fake.state().account.keys.len(), 1);
    assert_eq!(fake.stats().count("POST /v1/ssh_keys"), 1);
    // The import's answer is lost after the key was stored: found by fingerprint, not re-imported.
    fake.state().account.keys.clear();
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/ssh_keys",
        FaultKind::ProcessThenDrop,
    ));
    let c = h
        .ensure_ssh_key("spuff-ana", KEY)
        .await
        .expect("lost answer");
    assert_eq!(c.fingerprint, a.fingerprint);
    assert_eq!(fake.state().account.keys.len(), 1);
    assert_eq!(h.list_ssh_keys().await.expect("list").len(), 1);
}

#[tokio::test]
async fn hetzner_snapshots_and_power_actions_should_complete() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    let id = fake.seed_server("spuff-snap", &[("spuff", "")]).to_string();
    h.power_off(&id).await.expect("off");
    let vm = h.get_instance(&id).await.expect("get").expect("vm");
    assert_eq!(vm.status, InstanceStatus::Off);
    let snap = h.create_snapshot(&id, "spuff-snap-1").await.expect("snap");
    assert_eq!(snap.name, "spuff-snap-1");
    assert_eq!(snap.source_instance.as_deref(), Some(id.as_str()));
    h.power_on(&id).await.expect("on");
    // An unlabelled image (not spuff's) is not listed.
    fake.state()
        .images
        .push((1, "someone else's".into(), 1, Default::default()));
    let list = h.list_snapshots().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, snap.id);
    h.delete_snapshot(&snap.id).await.expect("delete");
    h.delete_snapshot(&snap.id).await.expect("already gone");
    assert!(h.list_snapshots().await.expect("list").is_empty());
    let polls = fake
        .stats()
        .log
        .iter()
        .filter(|l| l.starts_with("GET /v1/actions/"))
        .count();
    assert!(polls >= 3, "actions were polled to success: {polls}");
}

#[tokio::test]
async fn hetzner_sizes_and_regions() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    let sizes = h.list_sizes().await.expect("sizes");
    let cx22 = sizes.iter().find(|s| s.slug == "cx22").expect("cx22");
    assert_eq!((cx22.vcpus, cx22.memory_mb, cx22.disk_gb), (2, 4096, 40));
    assert_eq!(cx22.price_monthly, Some(4.51));
    let regions = h.list_regions().await.expect("regions");
    assert!(regions.iter().any(|r| r.slug == "fsn1"));
}

// ---- conformance: real API bodies parse --------------------------------

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/hetzner/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn hetzner_real_server_bodies_should_parse() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    for (f, ip, region) in [
        (
            "hcloud-go__server_test__GetByID.json",
            Some("46.62.147.153"),
            "hel1",
        ),
        (
            "hcloud-python__servers__response_simple_server.json",
            Some("1.2.3.4"),
            "",
        ),
        (
            "hcloud-python__servers__response_full_server.json",
            Some("1.2.3.4"),
            "",
        ),
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v1/servers/1",
            respond(200, &data(f)),
        ));
        let vm = h
            .get_instance("1")
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .expect(f);
        assert_eq!(vm.public_ipv4.map(|i| i.to_string()).as_deref(), ip, "{f}");
        assert!(vm.public_ipv6.expect(f).to_string().ends_with("::1"), "{f}");
        assert_eq!(vm.status, InstanceStatus::Active, "{f}");
        if !region.is_empty() {
            assert_eq!(vm.region, region, "{f}");
        }
    }
    for (f, n) in [
        ("hcloud-python__servers__response_simple_servers.json", 2),
        ("official-docs__list_servers_empty.json", 0),
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v1/servers",
            respond(200, &data(f)),
        ));
        let list = h
            .list_instances()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(list.len(), n, "{f}");
    }
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers",
        respond(
            201,
            &data("hcloud-python__servers__response_create_simple_server.json"),
        ),
    ));
    let vm = h
        .create_instance(&request("spuff-conf"))
        .await
        .expect("create");
    assert_eq!(vm.id, "1");
    assert_eq!(vm.created_at.as_deref(), Some("2016-01-30T23:50+00:00"));
}

#[tokio::test]
async fn hetzner_real_image_key_action_error_bodies_should_parse() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    let id = fake.seed_server("spuff-c", &[("spuff", "")]).to_string();

    // The action comes back `running` *with* an error object: not final.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers/*",
        respond(
            201,
            &data("hcloud-python__servers__response_server_create_image.json"),
        ),
    ));
    let action: serde_json::Value =
        serde_json::from_str(&data("hcloud-python__unit__action1_running.json")).expect("json");
    let mut done = action.clone();
    done["status"] = "success".into();
    fake.push_fault(Fault::new(
        Method::GET,
        "/v1/actions/1",
        respond(200, &serde_json::json!({"action": action}).to_string()),
    ));
    fake.push_fault(Fault::new(
        Method::GET,
        "/v1/actions/1",
        respond(200, &serde_json::json!({"action": done}).to_string()),
    ));
    let snap = h.create_snapshot(&id, "my image").await.expect("snapshot");
    assert_eq!((snap.id.as_str(), snap.name.as_str()), ("4711", "my image"));
    assert_eq!(fake.stats().count("GET /v1/actions/1"), 2);

    // An action that ends in `error` fails with the API's message.
    let errored: serde_json::Value =
        serde_json::from_str(&data("hcloud-go__action_waiter_test__poll4_error.json"))
            .expect("json");
    let errored = &errored["actions"][0];
    let aid = errored["id"].to_string();
    let mut started = errored.clone();
    started["status"] = "running".into();
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers/*",
        respond(201, &serde_json::json!({"action": started}).to_string()),
    ));
    fake.push_fault(Fault::new(
        Method::GET,
        &format!("/v1/actions/{aid}"),
        respond(200, &serde_json::json!({"action": errored}).to_string()),
    ));
    let e = h.power_off(&id).await.expect_err("action error");
    assert!(matches!(e, ProviderError::ActionFailed { .. }), "{e}");

    for (f, n) in [
        ("hcloud-python__images__two_images_response.json", 2),
        ("hcloud-python__images__one_images_response.json", 1),
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v1/images",
            respond(200, &data(f)),
        ));
        let list = h
            .list_snapshots()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(list.len(), n, "{f}");
    }
    for (f, n) in [
        ("hcloud-go__ssh_key_test__List.json", 2),
        ("hcloud-python__ssh_keys__two_ssh_keys_response.json", 2),
    ] {
        fake.push_fault(Fault::new(
            Method::GET,
            "/v1/ssh_keys",
            respond(200, &data(f)),
        ));
        let keys = h
            .list_ssh_keys()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(keys.len(), n, "{f}");
        assert!(keys.iter().all(|k| k.fingerprint.len() == 47), "{f}");
    }
    // POST /ssh_keys answered with a real body.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/ssh_keys",
        respond(201, &data("hcloud-python__ssh_keys__ssh_key_response.json")),
    ));
    let k = h.ensure_ssh_key("x", KEY).await.expect("key");
    assert_eq!(k.id, "2323");

    // server_types / locations built from the bare real objects.
    let st = data("hcloud-go__schema_test__ServerType.json");
    fake.push_fault(Fault::new(
        Method::GET,
        "/v1/server_types",
        respond(
            200,
            &format!(
                r#"{{"server_types":[{st}],"meta":{{"pagination":{{"page":1,"next_page":null}}}}}}"#
            ),
        ),
    ));
    let sizes = h.list_sizes().await.expect("sizes");
    assert_eq!((sizes[0].slug.as_str(), sizes[0].vcpus), ("cx22", 4));
    let loc = data("hcloud-go__schema_test__Location.json");
    fake.push_fault(Fault::new(
        Method::GET,
        "/v1/locations",
        respond(200, &format!(r#"{{"locations":[{loc}]}}"#)),
    ));
    let regions = h.list_regions().await.expect("regions");
    assert_eq!(regions[0].slug, "fsn1");
}

#[tokio::test]
async fn hetzner_real_error_bodies_should_map_to_variants() {
    let fake = FakeHetzner::start().await;
    let h = provider(fake.config());
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers",
        respond(
            403,
            &data("official-docs__error_resource_limit_exceeded.json"),
        ),
    ));
    let e = h
        .create_instance(&request("spuff-q"))
        .await
        .expect_err("quota");
    assert!(matches!(e, ProviderError::QuotaExceeded { .. }), "{e}");

    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/servers",
        respond(400, &data("official-docs__error_invalid_input.json")),
    ));
    let e = h
        .create_instance(&request("spuff-i"))
        .await
        .expect_err("invalid");
    match &e {
        ProviderError::Api {
            status: 400,
            code,
            request_id,
            ..
        } => {
            assert_eq!(code.as_deref(), Some("invalid_input"));
            assert_eq!(request_id.as_deref(), Some("fake-correlation-1"));
        }
        other => panic!("{other}"),
    }

    // 409 uniqueness_error on key import with no key to be found: reported.
    fake.push_fault(Fault::new(
        Method::POST,
        "/v1/ssh_keys",
        respond(409, &data("official-docs__error_uniqueness_error.json")),
    ));
    let e = h.ensure_ssh_key("dup", KEY).await.expect_err("conflict");
    assert!(matches!(e, ProviderError::Api { status: 409, .. }), "{e}");

    let mut bad = fake.config();
    bad.token = "wrong".into();
    let e = provider(bad).list_instances().await.expect_err("auth");
    assert!(matches!(e, ProviderError::Authentication { .. }), "{e}");
    assert!(!e.to_string().contains(crate::fakecloud::hetzner::TOKEN));
}

#[tokio::test]
async fn hetzner_wait_ready_timeout_should_name_the_last_state() {
    let fake = FakeHetzner::start().await;
    fake.state().account.ready_after_polls = 10_000;
    let mut config = fake.config();
    config.timeouts.instance_ready = std::time::Duration::from_millis(300);
    let h = provider(config);
    let vm = h
        .create_instance(&request("spuff-slow"))
        .await
        .expect("create");
    let e = h.wait_ready(&vm.id).await.expect_err("timeout");
    let text = e.to_string();
    assert!(matches!(e, ProviderError::Timeout { .. }), "{text}");
    assert!(
        text.contains("status new, no public IPv4 yet") && text.contains(&vm.id),
        "{text}"
    );
}
