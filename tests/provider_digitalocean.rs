//! What only the DigitalOcean provider does, against the fake DigitalOcean
//! API (tests/fakecloud/digitalocean.rs): IPs chosen by type, the droplet
//! limit, and conformance with real API bodies (tests/data/digitalocean).
//! What every provider does is in tests/provider_contract.rs.

use http::Method;
use serde_json::Value;
use spuff::provider::ProviderError;

use crate::fakecloud::FakeCloud;
use crate::fakecloud::digitalocean::State as DigitalOcean;
use crate::provider_contract::{ContractFake, request};

#[tokio::test]
async fn droplet_should_take_its_ips_by_type_not_position() {
    let fake = FakeCloud::start().await;
    let do_ = DigitalOcean::provider(fake.config());
    let vm = do_
        .create_instance(&request::<DigitalOcean>("spuff-ips"))
        .await
        .expect("create");
    let vm = do_.wait_ready(&vm.id).await.expect("ready");
    // The fake lists the private address first, as the real API does.
    let public = vm.public_ipv4.expect("public").to_string();
    let private = vm.private_ipv4.expect("private").to_string();
    assert!(public.starts_with("203.0.113."), "{public}");
    assert!(private.starts_with("10.114."), "{private}");
}

#[tokio::test]
async fn droplet_limit_should_be_reported_as_quota_and_not_resent() {
    let fake = FakeCloud::start().await;
    fake.serve(Method::POST, "/v2/droplets", 422, r#"{"id":"unprocessable_entity","message":"creating this/these droplet(s) will exceed your droplet limit","request_id":"r"}"#);
    let do_ = DigitalOcean::provider(fake.config());
    let e = do_
        .create_instance(&request::<DigitalOcean>("spuff-q"))
        .await
        .expect_err("quota");
    assert!(matches!(e, ProviderError::QuotaExceeded { .. }), "{e:?}");
    assert_eq!(fake.stats().count("POST /v2/droplets"), 1, "a 422 is final");
}

// ---- conformance: real API bodies parse --------------------------------

fn data(name: &str) -> String {
    crate::fakecloud::server::data("digitalocean", name)
}

/// The body with api.digitalocean.com (and godo's example.com) links pointed at the fake, so pagination
/// links are followed (the client never sends the token to another host).
fn local(fake: &FakeCloud, body: &str) -> String {
    let origin = fake.origin();
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
    let do_ = DigitalOcean::provider(fake.config());
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
        fake.serve(Method::GET, "/v2/droplets", 200, &body);
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
        fake.serve(Method::GET, "/v2/droplets/1", 200, &data(f));
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
        fake.serve(Method::POST, "/v2/droplets", 202, &data(f));
        do_.create_instance(&request::<DigitalOcean>("spuff-conf"))
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[tokio::test]
async fn real_action_snapshot_key_size_region_bodies_should_parse() {
    let fake = FakeCloud::start().await;
    let id = fake.seed_droplet("spuff-conf", &["spuff"]).to_string();
    let do_ = DigitalOcean::provider(fake.config());
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
        fake.serve(
            Method::POST,
            &format!("/v2/droplets/{id}/actions"),
            201,
            &data(f),
        );
        fake.serve(Method::GET, "/v2/actions/*", 200, completed);
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
        fake.serve(
            Method::POST,
            &format!("/v2/droplets/{id}/actions"),
            201,
            started,
        );
        fake.serve(Method::GET, "/v2/actions/*", 200, &data(f));
        fake.serve(Method::GET, "/v2/actions/*", 200, completed);
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
        fake.serve(Method::GET, "/v2/snapshots", 200, &body);
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
        fake.serve(
            Method::GET,
            &format!("/v2/droplets/{id}/snapshots"),
            200,
            &body,
        );
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
        fake.serve(
            Method::GET,
            "/v2/account/keys",
            200,
            &local(&fake, &data(f)),
        );
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
        fake.serve(
            Method::GET,
            "/v2/account/keys",
            200,
            r#"{"ssh_keys":[],"links":{},"meta":{"total":0}}"#,
        );
        fake.serve(Method::POST, "/v2/account/keys", 201, &data(f));
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
        fake.serve(Method::GET, "/v2/sizes", 200, &local(&fake, &data(f)));
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
        fake.serve(Method::GET, "/v2/regions", 200, &local(&fake, &data(f)));
        let regions = do_
            .list_regions()
            .await
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(regions.len() >= array_len(&data(f), "regions"), "{f}");
    }
}

/// The spec's 401, 404, 429 and 500 bodies are the fake's own answers, so
/// tests/provider_contract.rs maps them; these are the others.
#[tokio::test]
async fn real_error_bodies_should_map_to_variants() {
    let fake = FakeCloud::start().await;
    let mut c = fake.config();
    c.http.retry.max_attempts = 1;
    let do_ = DigitalOcean::provider(c);
    let cases: &[(&str, u16, &str)] = &[
        ("spec/error.400.json", 400, "api"),
        ("godo__godo_test__error_bad_request.json", 400, "api"),
        ("godo__godo_test__error_no_request_id.json", 400, "api"),
        ("godo__godo_test__error_request_id_in_body.json", 400, "api"),
        ("libcloud__error.json", 401, "auth"),
        ("libcloud__error_invalid_image.json", 422, "api"),
    ];
    for (f, status, kind) in cases {
        fake.serve(Method::GET, "/v2/droplets/1", *status, &data(f));
        let e = do_.get_instance("1").await.expect_err(f);
        let ok = match *kind {
            "api" => {
                matches!(&e, ProviderError::Api { status: s, message, .. } if s == status && !message.is_empty())
            }
            _ => matches!(e, ProviderError::Authentication { .. }),
        };
        assert!(ok, "{f}: {e:?}");
    }
}
