//! What only the Hetzner Cloud provider does, against the fake Hetzner API
//! (tests/fakecloud/hetzner.rs): the create body, the region taken from the
//! location, the IPv6 /64, the 32 KiB user-data limit, label-selected
//! snapshots, server types as sizes, and conformance with real API bodies
//! (tests/data/hetzner). What every provider does is in
//! tests/provider_contract.rs.

use http::Method;
use spuff::provider::{InstanceStatus, ProviderError};

use crate::fakecloud::hetzner::{FakeHetzner, State as Hetzner};
use crate::provider_contract::{ContractFake, request};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 test";

#[tokio::test]
async fn server_should_be_created_with_its_image_labels_and_user_data() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    assert_eq!(h.name(), "hetzner");
    let vm = h
        .create_instance(&request::<Hetzner>("spuff-up-1"))
        .await
        .expect("create");
    {
        let st = fake.state();
        let asked = &st.servers.values().next().expect("server").request;
        assert_eq!(asked["image"], "ubuntu-24.04");
        assert_eq!(asked["labels"]["spuff"], "");
        assert_eq!(asked["user_data"], "#cloud-config\n");
    }
    let vm = h.wait_ready(&vm.id).await.expect("ready");
    assert_eq!(
        vm.region, "nbg1",
        "location used when datacenter is missing"
    );
    assert_eq!(vm.created_at.as_deref(), Some("2026-11-23T17:36+00:00"));
}

#[tokio::test]
async fn ipv6_network_should_map_to_host_one() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
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
async fn user_data_over_32k_should_be_refused_before_sending() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    let big = "x".repeat(32 * 1024 + 1);
    let e = h
        .create_instance(&request::<Hetzner>("spuff-big").with_user_data(big))
        .await
        .expect_err("too big");
    assert!(
        matches!(&e, ProviderError::InvalidConfig { field, .. } if field == "user_data"),
        "{e}"
    );
    assert_eq!(fake.stats().requests, 0, "nothing sent");
    let ok = "x".repeat(32 * 1024);
    h.create_instance(&request::<Hetzner>("spuff-edge").with_user_data(ok))
        .await
        .expect("exactly 32 KiB is fine");
}

#[tokio::test]
async fn snapshots_should_list_only_spuff_labelled_images() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    let id = fake.seed_server("spuff-snap", &[("spuff", "")]).to_string();
    let snap = h.create_snapshot(&id, "spuff-snap-1").await.expect("snap");
    fake.state()
        .images
        .push((1, "someone else's".into(), 1, Default::default()));
    let list = h.list_snapshots().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, snap.id);
}

#[tokio::test]
async fn server_types_should_map_to_sizes_with_gross_prices() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    let sizes = h.list_sizes().await.expect("sizes");
    let cx22 = sizes.iter().find(|s| s.slug == "cx22").expect("cx22");
    assert_eq!((cx22.vcpus, cx22.memory_mb, cx22.disk_gb), (2, 4096, 40));
    assert_eq!(cx22.price_monthly, Some(4.51));
}

// ---- conformance: real API bodies parse --------------------------------

fn data(name: &str) -> String {
    crate::fakecloud::server::data("hetzner", name)
}

#[tokio::test]
async fn real_server_bodies_should_parse() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
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
        fake.serve(Method::GET, "/v1/servers/1", 200, &data(f));
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
        fake.serve(Method::GET, "/v1/servers", 200, &data(f));
        let list = h
            .list_instances()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(list.len(), n, "{f}");
    }
    fake.serve(
        Method::POST,
        "/v1/servers",
        201,
        &data("hcloud-python__servers__response_create_simple_server.json"),
    );
    let vm = h
        .create_instance(&request::<Hetzner>("spuff-conf"))
        .await
        .expect("create");
    assert_eq!(vm.id, "1");
    assert_eq!(vm.created_at.as_deref(), Some("2016-01-30T23:50+00:00"));
}

#[tokio::test]
async fn real_image_key_action_error_bodies_should_parse() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    let id = fake.seed_server("spuff-c", &[("spuff", "")]).to_string();

    // The action comes back `running` *with* an error object: not final.
    fake.serve(
        Method::POST,
        "/v1/servers/*",
        201,
        &data("hcloud-python__servers__response_server_create_image.json"),
    );
    let action: serde_json::Value =
        serde_json::from_str(&data("hcloud-python__unit__action1_running.json")).expect("json");
    let mut done = action.clone();
    done["status"] = "success".into();
    fake.serve(
        Method::GET,
        "/v1/actions/1",
        200,
        &serde_json::json!({"action": action}).to_string(),
    );
    fake.serve(
        Method::GET,
        "/v1/actions/1",
        200,
        &serde_json::json!({"action": done}).to_string(),
    );
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
    fake.serve(
        Method::POST,
        "/v1/servers/*",
        201,
        &serde_json::json!({"action": started}).to_string(),
    );
    fake.serve(
        Method::GET,
        &format!("/v1/actions/{aid}"),
        200,
        &serde_json::json!({"action": errored}).to_string(),
    );
    let e = h.power_off(&id).await.expect_err("action error");
    assert!(matches!(e, ProviderError::ActionFailed { .. }), "{e}");

    for (f, n) in [
        ("hcloud-python__images__two_images_response.json", 2),
        ("hcloud-python__images__one_images_response.json", 1),
    ] {
        fake.serve(Method::GET, "/v1/images", 200, &data(f));
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
        fake.serve(Method::GET, "/v1/ssh_keys", 200, &data(f));
        let keys = h
            .list_ssh_keys()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(keys.len(), n, "{f}");
        assert!(keys.iter().all(|k| k.fingerprint.len() == 47), "{f}");
    }
    // POST /ssh_keys answered with a real body.
    fake.serve(
        Method::POST,
        "/v1/ssh_keys",
        201,
        &data("hcloud-python__ssh_keys__ssh_key_response.json"),
    );
    let k = h.ensure_ssh_key("x", KEY).await.expect("key");
    assert_eq!(k.id, "2323");

    // server_types / locations built from the bare real objects.
    let st = data("hcloud-go__schema_test__ServerType.json");
    fake.serve(
        Method::GET,
        "/v1/server_types",
        200,
        &format!(
            r#"{{"server_types":[{st}],"meta":{{"pagination":{{"page":1,"next_page":null}}}}}}"#
        ),
    );
    let sizes = h.list_sizes().await.expect("sizes");
    assert_eq!((sizes[0].slug.as_str(), sizes[0].vcpus), ("cx22", 4));
    let loc = data("hcloud-go__schema_test__Location.json");
    fake.serve(
        Method::GET,
        "/v1/locations",
        200,
        &format!(r#"{{"locations":[{loc}]}}"#),
    );
    let regions = h.list_regions().await.expect("regions");
    assert_eq!(regions[0].slug, "fsn1");
}

#[tokio::test]
async fn real_error_bodies_should_map_to_variants() {
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    fake.serve(
        Method::POST,
        "/v1/servers",
        403,
        &data("official-docs__error_resource_limit_exceeded.json"),
    );
    let e = h
        .create_instance(&request::<Hetzner>("spuff-q"))
        .await
        .expect_err("quota");
    assert!(matches!(e, ProviderError::QuotaExceeded { .. }), "{e}");

    fake.serve(
        Method::POST,
        "/v1/servers",
        400,
        &data("official-docs__error_invalid_input.json"),
    );
    let e = h
        .create_instance(&request::<Hetzner>("spuff-i"))
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
    fake.serve(
        Method::POST,
        "/v1/ssh_keys",
        409,
        &data("official-docs__error_uniqueness_error.json"),
    );
    let e = h.ensure_ssh_key("dup", KEY).await.expect_err("conflict");
    assert!(matches!(e, ProviderError::Api { status: 409, .. }), "{e}");
}

/// Issue 18: the `cax` server types are arm64 (Ampere), the rest x86_64:
/// `up` picks the agent spuff carries by this before the VM exists.
#[tokio::test]
async fn server_types_should_say_their_architecture() {
    use spuff::agent_bin::Arch;
    let fake = FakeHetzner::start().await;
    let h = Hetzner::provider(fake.config());
    assert_eq!(h.arch_of_size("cax11"), Some(Arch::Aarch64));
    assert_eq!(h.arch_of_size("cax41"), Some(Arch::Aarch64));
    assert_eq!(h.arch_of_size("cx22"), Some(Arch::X86_64));
    assert_eq!(h.arch_of_size("ccx13"), Some(Arch::X86_64));
}
