//! What only the EC2 provider does, against the fake EC2
//! (tests/fakecloud/aws.rs), which checks every request's SigV4 signature:
//! the RunInstances request (AMI found by publisher, security group, key
//! pair, tags at launch, user data, shutdown = terminate), idempotency by
//! client token, eventual consistency, throttling, capacity errors, spot
//! requests, prices and interruptions, regions in ids, and the address
//! lookup that narrows SSH to the caller. What every provider does is in
//! tests/provider_contract.rs.

use std::sync::Arc;

use http::Method;
use spuff::Hint as _;
use spuff::provider::aws::{Credentials, Ec2};
use spuff::provider::{
    ImageSpec, InstanceRequest, InstanceStatus, MANAGED_LABEL, Provider, ProviderError,
    SPUFF_ID_LABEL, SpotRequest,
};

use crate::fakecloud::aws::{self, ACCESS_KEY, CALLER, SECRET, State};
use crate::fakecloud::server::{Fault, FaultKind, Server};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 ana@laptop";

async fn start() -> (Server<State>, Arc<dyn Provider>) {
    let fake = Server::<State>::start().await;
    let p: Arc<dyn Provider> = Arc::new(Ec2::new(aws::config(&fake)).expect("client"));
    (fake, p)
}

/// The caller's own AMI `ami-0eee000000000001`, in eu-west-1 only.
fn eu_image(fake: &Server<State>, name: &str) {
    fake.state().images.push(aws::Image {
        id: "ami-0eee000000000001".into(),
        region: "eu-west-1".into(),
        name: name.into(),
        owner: "111122223333".into(),
        arch: "x86_64".into(),
        created: "2026-11-01T00:00:00.000Z".into(),
        state: "available".into(),
        polls_left: 0,
        snapshots: vec![],
        tags: vec![],
    });
}

fn request(name: &str) -> InstanceRequest {
    InstanceRequest::new(name, "us-east-1", "t3.small")
        .with_image(ImageSpec::ubuntu("24.04"))
        .with_user_data("#cloud-config\nlocale: C.UTF-8\n")
        .with_label("owner", "ana")
}

/// The form of the last request naming `action`.
fn sent(fake: &Server<State>, action: &str) -> serde_json::Value {
    let bodies = fake.stats().bodies;
    bodies
        .iter()
        .rev()
        .find(|(_, b)| b["Action"] == action)
        .map(|(_, b)| b.clone())
        .unwrap_or_else(|| panic!("no {action} sent"))
}

#[tokio::test]
async fn run_instances_should_carry_everything_a_vm_needs() {
    let (fake, p) = start().await;
    let key = p.ensure_ssh_key("spuff-ana", KEY).await.expect("key");
    let vm = p
        .create_instance(&request("spuff-up-1").with_ssh_key(&key.id))
        .await
        .expect("create");
    assert!(vm.id.starts_with("us-east-1/i-"), "{}", vm.id);
    let run = sent(&fake, "RunInstances");
    // The newest Ubuntu 24.04 for x86 from Canonical, not a look-alike.
    assert_eq!(run["ImageId"], "ami-0aaa000000000002");
    assert_eq!(run["InstanceInitiatedShutdownBehavior"], "terminate");
    assert_eq!(run["KeyName"], "spuff-ana");
    assert_eq!(run["NetworkInterface.1.AssociatePublicIpAddress"], "true");
    let instance = fake.instance(&vm.id).expect("made");
    assert_eq!(
        instance.user_data.as_deref(),
        Some("#cloud-config\nlocale: C.UTF-8\n")
    );
    assert_eq!(instance.tag("Name"), Some("spuff-up-1"));
    assert_eq!(instance.tag(MANAGED_LABEL), Some(""));
    assert_eq!(instance.tag("owner"), Some("ana"));
    let spuff_id = instance.tag(SPUFF_ID_LABEL).expect("spuff id").to_string();
    assert_eq!(instance.client_token.as_deref(), Some(spuff_id.as_str()));
    // One security group, letting in only this machine's range.
    let st = fake.state();
    assert_eq!(st.groups.len(), 1);
    assert_eq!(st.groups[0].ssh_from, [format!("{CALLER}/32")]);
    assert_eq!(instance.groups, [st.groups[0].id.clone()]);
    assert_eq!(st.bad_signatures, 0);
}

#[tokio::test]
async fn images_groups_and_keys_should_be_looked_up_once_per_region() {
    let (fake, p) = start().await;
    p.ensure_ssh_key("spuff-ana", KEY).await.expect("key");
    for n in 0..3 {
        let req = request(&format!("spuff-many-{n}")).with_ssh_key("spuff-ana");
        p.create_instance(&req).await.expect("create");
    }
    let s = fake.stats();
    assert_eq!(s.count("GET /ec2/images"), 1, "AMI cached");
    assert_eq!(s.count("POST /ec2/security-groups"), 1, "group made once");
    assert_eq!(s.count("POST /ec2/key-pairs"), 1, "key imported once");
    // An arm64 size gets the arm64 image.
    let vm = p
        .create_instance(&InstanceRequest::new("spuff-arm", "us-east-1", "t4g.small"))
        .await
        .expect("create");
    assert_eq!(
        fake.instance(&vm.id).expect("made").image,
        "ami-0aaa000000000003"
    );
}

#[tokio::test]
async fn an_existing_group_and_key_should_be_reused_not_made_again() {
    let (fake, p) = start().await;
    p.ensure_ssh_key("spuff-ana", KEY).await.expect("key");
    p.create_instance(&request("spuff-a"))
        .await
        .expect("create");
    // A second spuff, with nothing remembered.
    let other: Arc<dyn Provider> = Arc::new(Ec2::new(aws::config(&fake)).expect("client"));
    let k = other.ensure_ssh_key("spuff-ana-2", KEY).await.expect("key");
    assert_eq!(k.name, "spuff-ana", "found by fingerprint");
    other
        .create_instance(&request("spuff-b"))
        .await
        .expect("create");
    let s = fake.stats();
    assert_eq!(s.count("POST /ec2/security-groups"), 1);
    assert_eq!(s.count("POST /ec2/key-pairs"), 1);
    assert_eq!(fake.state().groups[0].ssh_from.len(), 1, "rule not doubled");
}

#[tokio::test]
async fn a_key_should_be_imported_into_each_region_a_vm_goes_to() {
    let (fake, p) = start().await;
    let key = p.ensure_ssh_key("spuff-ana", KEY).await.expect("key");
    let req = InstanceRequest::new("spuff-eu", "eu-west-1", "t3.small")
        .with_image(ImageSpec::Custom("eu-west-1/ami-0eee000000000001".into()))
        .with_ssh_key(&key.id);
    // The image exists in eu-west-1 only.
    eu_image(&fake, "mine");
    let vm = p.create_instance(&req).await.expect("create in eu-west-1");
    assert!(vm.id.starts_with("eu-west-1/"), "{}", vm.id);
    {
        let st = fake.state();
        let regions: Vec<&str> = st.key_pairs.iter().map(|k| k.region.as_str()).collect();
        assert_eq!(regions, ["us-east-1", "eu-west-1"]);
        assert!(st.regions_seen.iter().any(|r| r == "eu-west-1"));
    }
    // It is listed with the others, from its own region.
    p.create_instance(&request("spuff-us"))
        .await
        .expect("create");
    let mut names: Vec<String> = p
        .list_instances()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.name)
        .collect();
    names.sort();
    assert_eq!(names, ["spuff-eu", "spuff-us"]);
    // An AMI of another region is refused before anything is sent.
    let wrong =
        request("spuff-x").with_image(ImageSpec::Custom("eu-west-1/ami-0eee000000000001".into()));
    let e = p.create_instance(&wrong).await.expect_err("regional");
    assert!(e.to_string().contains("AMIs are regional"), "{e}");
}

#[tokio::test]
async fn a_lost_answer_should_be_resent_with_its_token_and_make_one_vm() {
    let (fake, p) = start().await;
    fake.push_fault(Fault::new(
        Method::POST,
        "/ec2/instances",
        FaultKind::ProcessThenDrop,
    ));
    fake.push_fault(Fault::new(
        Method::POST,
        "/ec2/instances",
        FaultKind::ProcessThenServerError(503),
    ));
    let vm = p
        .create_instance(&request("spuff-lost"))
        .await
        .expect("create");
    assert_eq!(fake.state().live(), 1, "one VM for three sends");
    assert_eq!(fake.stats().count("POST /ec2/instances"), 3);
    assert_eq!(vm.name, "spuff-lost");
}

#[tokio::test]
async fn an_instance_ec2_does_not_know_yet_should_be_waited_for_and_destroyed() {
    let (fake, p) = start().await;
    fake.state().invisible_calls = 2;
    let vm = p
        .create_instance(&request("spuff-lag"))
        .await
        .expect("create");
    let ready = p.wait_ready(&vm.id).await.expect("ready despite the lag");
    assert!(ready.is_ready() && ready.public_ipv4.is_some());
    // Destroyed at once after a create: EC2 may not know it yet either.
    fake.state().invisible_calls = 2;
    let vm = p
        .create_instance(&request("spuff-gone"))
        .await
        .expect("create");
    p.destroy_instance(&vm.id).await.expect("destroy");
    let instance = fake.instance(&vm.id).expect("there");
    assert!(
        matches!(instance.code, 32 | 48),
        "terminated, not taken for gone: {}",
        instance.code
    );
    // A bare id is in the default region; a malformed one is refused.
    assert!(
        p.get_instance("i-0123456789abcdef0")
            .await
            .expect("get")
            .is_none()
    );
    let e = p
        .get_instance("us-east-1/4242")
        .await
        .expect_err("malformed");
    assert!(matches!(e, ProviderError::InvalidConfig { .. }), "{e:?}");
}

#[tokio::test]
async fn throttling_should_be_retried_and_capacity_errors_explained() {
    let (fake, p) = start().await;
    let id = fake.seed_instance("spuff-t", &[(MANAGED_LABEL, "")]);
    for _ in 0..2 {
        fake.push_fault(Fault::new(
            Method::GET,
            &format!("/ec2/instances/{id}"),
            FaultKind::Refuse {
                status: 503,
                code: "RequestLimitExceeded",
            },
        ));
    }
    assert!(p.get_instance(&id).await.expect("get").is_some());
    assert_eq!(fake.stats().count(&format!("GET /ec2/instances/{id}")), 3);

    fake.push_fault(Fault::new(
        Method::POST,
        "/ec2/instances",
        FaultKind::Refuse {
            status: 500,
            code: "InsufficientInstanceCapacity",
        },
    ));
    let e = p
        .create_instance(&request("spuff-full"))
        .await
        .expect_err("no capacity");
    assert!(!e.is_retryable(), "{e:?}");
    let hint = e.hint().unwrap_or_default();
    assert!(hint.contains("another size"), "{hint}");
    assert_eq!(fake.state().live(), 1);
}

#[tokio::test]
async fn a_bad_signature_should_be_refused_by_ec2() {
    let fake = Server::<State>::start().await;
    let mut config = aws::config(&fake);
    config.aws.credentials = Some(Credentials::new(ACCESS_KEY, "not-the-secret"));
    let p = Ec2::new(config).expect("client");
    let e = p.list_instances().await.expect_err("refused");
    assert!(matches!(e, ProviderError::Authentication { .. }), "{e:?}");
    assert!(
        e.hint()
            .unwrap_or_default()
            .contains("AWS_SECRET_ACCESS_KEY")
    );
    assert!(!format!("{e:?} {p:?}").contains("not-the-secret"));
    assert!(!format!("{p:?}").contains(SECRET));
    assert_eq!(fake.state().bad_signatures, 1);
}

#[tokio::test]
async fn spot_vms_should_go_to_the_cheapest_zone_and_show_their_interruption() {
    let (fake, p) = start().await;
    let prices = p
        .spot_prices("us-east-1", "t3.small")
        .await
        .expect("prices");
    let zones: Vec<(&str, f64)> = prices
        .iter()
        .map(|p| (p.zone.as_str(), p.usd_per_hour))
        .collect();
    // The newest price per zone, cheapest first.
    assert_eq!(
        zones,
        [
            ("us-east-1b", 0.0062),
            ("us-east-1a", 0.0071),
            ("us-east-1c", 0.0083)
        ]
    );
    let spot = SpotRequest {
        max_price: Some("0.01".into()),
        cheapest_zone: true,
    };
    let vm = p
        .create_instance(&request("spuff-spot").with_spot(spot))
        .await
        .expect("create");
    let run = sent(&fake, "RunInstances");
    assert_eq!(run["InstanceMarketOptions.MarketType"], "spot");
    assert_eq!(
        run["InstanceMarketOptions.SpotOptions.SpotInstanceType"],
        "one-time"
    );
    assert_eq!(run["InstanceMarketOptions.SpotOptions.MaxPrice"], "0.01");
    assert_eq!(run["Placement.AvailabilityZone"], "us-east-1b");
    p.wait_ready(&vm.id).await.expect("ready");
    fake.state().interrupt(&vm.id);
    let got = p
        .get_instance(&vm.id)
        .await
        .expect("get")
        .expect("still shown");
    assert_eq!(got.status, InstanceStatus::Interrupted);
    assert_eq!(got.status.to_string(), "interrupted (spot)");
    let listed = p.list_instances().await.expect("list");
    assert_eq!(listed[0].status, InstanceStatus::Interrupted);
    // Waiting for it is over at once: it will not come back.
    let e = p.wait_ready(&vm.id).await.expect_err("interrupted");
    assert!(e.to_string().contains("will not become running"), "{e}");
    // Other providers refuse spot rather than ignore it.
    let other = crate::fakecloud::hetzner::FakeHetzner::start().await;
    let h = spuff::provider::hetzner::Client::new(other.config()).expect("client");
    let e = h
        .create_instance(&request("x").with_spot(SpotRequest::default()))
        .await
        .expect_err("no spot");
    assert!(matches!(e, ProviderError::Unsupported { .. }), "{e:?}");
}

#[tokio::test]
async fn without_a_range_the_callers_address_should_be_asked_once() {
    let fake = Server::<State>::start().await;
    let mut config = aws::config(&fake);
    config.aws.ssh_cidr = None;
    config.aws.address_url = Some(format!("{}/checkip", fake.origin()));
    let p = Ec2::new(config.clone()).expect("client");
    p.create_instance(&request("spuff-a"))
        .await
        .expect("create");
    assert_eq!(fake.state().groups[0].ssh_from, [format!("{CALLER}/32")]);
    assert_eq!(fake.stats().count("GET /checkip"), 1);
    // An echo that answers nonsense: anyone may connect (warned), the VM
    // is still made.
    let fake = Server::<State>::start().await;
    let mut config = aws::config(&fake);
    config.aws.ssh_cidr = None;
    config.aws.address_url = Some(format!("{}/ec2/unknown", fake.origin()));
    let p = Ec2::new(config).expect("client");
    p.create_instance(&request("spuff-b"))
        .await
        .expect("create");
    assert_eq!(fake.state().groups[0].ssh_from, ["0.0.0.0/0"]);
}

#[tokio::test]
async fn bad_requests_should_be_refused_before_anything_is_sent() {
    let (fake, p) = start().await;
    let big = request("spuff-big").with_user_data("x".repeat(16 * 1024 + 1));
    let e = p.create_instance(&big).await.expect_err("too big");
    assert!(e.to_string().contains("16384"), "{e}");
    let e = p
        .create_instance(&request("spuff-tag").with_label("aws:owner", "x"))
        .await
        .expect_err("reserved tag");
    assert!(e.to_string().contains("aws:"), "{e}");
    let e = p
        .create_instance(&InstanceRequest::new(
            "x",
            "us-east-1.evil.example",
            "t3.small",
        ))
        .await
        .expect_err("bad region");
    assert!(e.to_string().contains("region"), "{e}");
    assert_eq!(fake.stats().count("POST /ec2/instances"), 0);
}

#[tokio::test]
async fn nuke_should_find_everything_spuff_made_in_every_region_and_delete_it_in_order() {
    use spuff::provider::ResourceKind;
    let (fake, p) = start().await;
    let key = p.ensure_ssh_key("spuff-ana", KEY).await.expect("key");
    let us = p
        .create_instance(&request("spuff-us").with_ssh_key(&key.id))
        .await
        .expect("create");
    let eu = InstanceRequest::new("spuff-eu", "eu-west-1", "t3.small")
        .with_image(ImageSpec::Custom("eu-west-1/ami-0eee000000000001".into()))
        .with_ssh_key(&key.id);
    eu_image(&fake, "someone's");
    p.create_instance(&eu).await.expect("create in eu");
    p.wait_ready(&us.id).await.expect("ready");
    p.create_snapshot(&us.id, "spuff-snap")
        .await
        .expect("snapshot");
    let theirs = fake.seed_instance("not-spuffs", &[("team", "x")]);

    // A new client, as after a lost state file: found by tag alone.
    let p: Arc<dyn Provider> = Arc::new(Ec2::new(aws::config(&fake)).expect("client"));
    let found = spuff::vm::nuke::survey(&*p, None).await.expect("survey");
    let mut kinds: Vec<(ResourceKind, Option<&str>)> = found
        .iter()
        .map(|r| (r.kind, r.region.as_deref()))
        .collect();
    assert!(kinds.is_sorted_by_key(|k| k.0), "deletion order: {kinds:?}");
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (ResourceKind::Vm, Some("eu-west-1")),
            (ResourceKind::Vm, Some("us-east-1")),
            (ResourceKind::Snapshot, Some("us-east-1")),
            (ResourceKind::SecurityGroup, Some("eu-west-1")),
            (ResourceKind::SecurityGroup, Some("us-east-1")),
            (ResourceKind::SshKey, Some("eu-west-1")),
            (ResourceKind::SshKey, Some("us-east-1")),
        ],
        "{found:#?}"
    );
    assert!(found.iter().all(|r| r.id != theirs));
    // EC2 throttles the deletions: waited out, not failed.
    fake.push_fault(Fault::new(
        Method::DELETE,
        "/ec2/security-groups/*",
        FaultKind::Refuse {
            status: 503,
            code: "RequestLimitExceeded",
        },
    ));
    let left = spuff::vm::nuke::delete_all(&*p, found, 4, None, &|_, _| {}).await;
    assert!(left.is_empty(), "{left:?}");
    let st = fake.state();
    assert_eq!(st.live(), 1, "only the VM spuff did not make is left");
    assert!(st.groups.is_empty() && st.key_pairs.is_empty() && st.snapshots.is_empty());
    assert!(
        st.images
            .iter()
            .all(|i| i.owner != "111122223333" || i.name == "someone's")
    );
}

#[tokio::test]
async fn nuke_should_keep_a_group_whose_vm_could_not_be_deleted_and_say_so() {
    use spuff::provider::ResourceKind;
    let (fake, p) = start().await;
    let vm = p
        .create_instance(&request("spuff-stuck"))
        .await
        .expect("create");
    let path = format!("/ec2/instances/{}", vm.id);
    fake.push_fault(Fault::new(
        Method::DELETE,
        &path,
        FaultKind::Refuse {
            status: 400,
            code: "OperationNotPermitted",
        },
    ));
    let found = spuff::vm::nuke::survey(&*p, Some("us-east-1"))
        .await
        .expect("survey");
    let left = spuff::vm::nuke::delete_all(&*p, found, 4, None, &|_, _| {}).await;
    let left: Vec<(ResourceKind, bool)> = left
        .iter()
        .map(|l| (l.resource.kind, l.error.is_some()))
        .collect();
    assert_eq!(
        left,
        [
            (ResourceKind::Vm, true),
            (ResourceKind::SecurityGroup, false)
        ],
        "the VM failed; its group was left alone rather than waited on"
    );
    assert_eq!(fake.state().groups.len(), 1);
    assert_eq!(fake.stats().count_prefix("DELETE /ec2/security-groups"), 0);
}

/// Issue 18: Graviton types are arm64 (the AMI and the agent follow), the
/// rest x86_64.
#[tokio::test]
async fn instance_types_should_say_their_architecture() {
    use spuff::agent_bin::Arch;
    let (_fake, p) = start().await;
    assert_eq!(p.arch_of_size("t4g.small"), Some(Arch::Aarch64));
    assert_eq!(p.arch_of_size("c7gn.large"), Some(Arch::Aarch64));
    assert_eq!(p.arch_of_size("t3.small"), Some(Arch::X86_64));
    assert_eq!(p.arch_of_size("g5.xlarge"), Some(Arch::X86_64));
}
