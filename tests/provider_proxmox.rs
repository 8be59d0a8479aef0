//! What only the Proxmox VE provider does, against the fake Proxmox API
//! (tests/fakecloud/proxmox.rs): a VM cloned from the template, configured
//! (tags, size, agent, DHCP, `sshkeys` encoded as Proxmox checks it) and
//! started, each step a task polled on the node its UPID names; the
//! address from the guest agent once it runs; a failed task reported with
//! its log; a clone whose answer was lost found by its new id; VMs made
//! from a snapshot; a running VM stopped before it is destroyed; errors in
//! Proxmox's words. What every provider does is in
//! tests/provider_contract.rs.

use std::sync::Arc;

use http::Method;
use spuff::Hint as _;
use spuff::provider::proxmox::Proxmox;
use spuff::provider::{
    FLEET_LABEL, ImageSpec, InstanceRequest, InstanceStatus, Provider, ProviderError,
};

use crate::fakecloud::proxmox::{self, State, TEMPLATE};
use crate::fakecloud::server::{Fault, FaultKind, Server};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 ana@laptop";

async fn start() -> (Server<State>, Arc<dyn Provider>) {
    let fake = Server::<State>::start().await;
    let p: Arc<dyn Provider> = Arc::new(Proxmox::new(proxmox::config(&fake)).expect("client"));
    (fake, p)
}

fn request(name: &str) -> InstanceRequest {
    InstanceRequest::new(name, "pve1", "medium")
        .with_image(ImageSpec::debian("12"))
        .with_ssh_key(KEY)
        .with_label(FLEET_LABEL, "batch")
}

#[tokio::test]
async fn a_vm_should_be_cloned_configured_started_and_reached() {
    let (fake, p) = start().await;
    let vm = p
        .create_instance(&request("spuff-pve-1"))
        .await
        .expect("create");
    assert_eq!(vm.status, InstanceStatus::New);
    let id: u64 = vm.id.parse().expect("a VM id");
    {
        let st = fake.state();
        let made = &st.vms[&id];
        assert!(made.running && !made.template);
        assert_eq!((made.cores, made.memory_mib), (4, 4096));
        assert!(made.tags.starts_with("spuff;spuff-id-"), "{}", made.tags);
        assert!(made.tags.ends_with(";spuff-fleet-batch"), "{}", made.tags);
        // Encoded once, as Proxmox's urlencoded check wants for JSON.
        assert_eq!(
            made.config["sshkeys"],
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48%2B1SZDuaUDysuuFaa4%20ana%40laptop"
        );
        assert_eq!(made.config["ipconfig0"], "ip=dhcp,ip6=auto");
        assert_eq!(made.config["agent"], "enabled=1");
    }
    let s = fake.stats();
    assert_eq!(
        s.count(&format!("POST /api2/json/nodes/pve1/qemu/{TEMPLATE}/clone")),
        1
    );
    assert!(
        s.count_prefix("GET /api2/json/nodes/pve1/tasks/UPID") >= 3,
        "{:?}",
        s.log
    );
    // The guest agent is "not running" for a few polls, then answers
    // loopback, docker0 and the VM's own address.
    let ready = p.wait_ready(&vm.id).await.expect("ready");
    assert_eq!(
        ready.public_ipv4,
        Some(format!("192.0.2.{}", id % 250).parse().expect("ip"))
    );
    assert_eq!(ready.region, "pve1");
    assert_eq!(ready.size, "medium");
    assert!(ready.spuff_id().is_some());
    assert_eq!(
        ready.labels.get(FLEET_LABEL).map(String::as_str),
        Some("batch")
    );
    // `list` asks the guest agent too: a VM with no record here still
    // shows where it is.
    let listed = p.list_instances().await.expect("list");
    let listed = listed
        .instances
        .iter()
        .find(|i| i.id == vm.id)
        .expect("listed");
    assert_eq!(listed.public_ipv4, ready.public_ipv4);
    assert!(listed.ssh.is_some());
    // Running, so it is stopped first, then destroyed with its disks.
    p.destroy_instance(&vm.id).await.expect("destroy");
    assert!(!fake.state().vms.contains_key(&id));
    let s = fake.stats();
    assert_eq!(
        s.count(&format!("POST /api2/json/nodes/pve1/qemu/{id}/status/stop")),
        1
    );
    assert!(p.get_instance(&vm.id).await.expect("get").is_none());
    p.destroy_instance(&vm.id).await.expect("gone is destroyed");
}

#[tokio::test]
async fn a_failed_task_should_be_reported_with_its_log() {
    let (fake, p) = start().await;
    fake.state().fail_next = Some((
        "qmstart".into(),
        "start failed: no space left on device".into(),
    ));
    let e = p
        .create_instance(&request("spuff-full"))
        .await
        .expect_err("start fails");
    let text = e.to_string();
    assert!(matches!(e, ProviderError::ActionFailed { .. }), "{e:?}");
    assert!(
        text.contains("start failed: no space left on device"),
        "{text}"
    );
    assert!(text.contains("TASK ERROR"), "the log's end: {text}");
}

#[tokio::test]
async fn a_lost_clone_answer_should_find_the_clone_not_make_another() {
    let (fake, p) = start().await;
    fake.push_fault(Fault::new(
        Method::POST,
        &format!("/api2/json/nodes/pve1/qemu/{TEMPLATE}/clone"),
        FaultKind::ProcessThenDrop,
    ));
    let vm = p
        .create_instance(&request("spuff-lost"))
        .await
        .expect("create");
    assert_eq!(vm.name, "spuff-lost");
    let st = fake.state();
    assert_eq!(
        st.vms.values().filter(|v| !v.template).count(),
        1,
        "one clone"
    );
}

#[tokio::test]
async fn a_vm_should_be_made_from_another_vms_snapshot() {
    let (fake, p) = start().await;
    let first = p
        .create_instance(&request("spuff-a"))
        .await
        .expect("create");
    let snap = p
        .create_snapshot(&first.id, "before upgrade")
        .await
        .expect("snapshot");
    assert_eq!(snap.name, "before_upgrade");
    let from = request("spuff-b").with_image(ImageSpec::Snapshot(snap.id.clone()));
    let second = p.create_instance(&from).await.expect("from snapshot");
    assert_ne!(first.id, second.id);
    let clones = fake.stats().count(&format!(
        "POST /api2/json/nodes/pve1/qemu/{}/clone",
        first.id
    ));
    assert_eq!(clones, 1);
    let e = p
        .create_instance(&request("spuff-c").with_image(ImageSpec::Snapshot("4242/none".into())))
        .await
        .expect_err("no such VM");
    assert!(e.to_string().contains("4242"), "{e}");
}

#[tokio::test]
async fn errors_should_be_in_proxmoxs_words_with_what_to_do() {
    let fake = Server::<State>::start().await;
    // A well-formed token Proxmox does not know: its 401 has no body.
    let mut config = proxmox::config(&fake);
    config.token = "spuff@pve!ci=00000000-0000-0000-0000-000000000000".into();
    let p = Proxmox::new(config).expect("client");
    let e = p.list_instances().await.expect_err("401");
    assert!(matches!(e, ProviderError::Authentication { .. }), "{e:?}");
    assert!(
        e.hint()
            .unwrap_or_default()
            .contains("PROXMOX_VE_API_TOKEN")
    );
    assert!(!format!("{e:?} {p:?}").contains("00000000-0000"));
    // A token in the wrong shape is refused before anything is sent.
    let mut config = proxmox::config(&fake);
    config.token = "just-a-secret".into();
    let e = Proxmox::new(config).expect_err("shape");
    assert!(e.to_string().contains("USER@REALM!TOKENID=SECRET"), "{e}");
    // No template configured: said, with how to set one.
    let mut config = proxmox::config(&fake);
    config.proxmox.template = None;
    let p = Proxmox::new(config).expect("client");
    let e = p
        .create_instance(&request("x"))
        .await
        .expect_err("no template");
    assert!(e.to_string().contains("proxmox_template"), "{e}");
    // A size that is not one.
    let (_fake, p) = start().await;
    let e = p
        .create_instance(&InstanceRequest::new("x", "pve1", "huge"))
        .await
        .expect_err("size");
    assert!(e.to_string().contains("small, medium"), "{e}");
    // A VM id that is not one never reaches a path.
    assert!(matches!(
        p.get_instance("../nodes").await,
        Err(ProviderError::InvalidConfig { .. })
    ));
}

#[tokio::test]
async fn user_data_should_reach_the_node_as_a_private_snippet_and_go_with_the_vm() {
    use spuff::provider::proxmox::NodeSsh;
    let sshd = crate::util::Sshd::start();
    let fake = Server::<State>::start().await;
    let dir = sshd.remote("snippets");
    let mut node = NodeSsh::new(sshd.config());
    node.dir = dir.clone();
    let mut config = proxmox::config(&fake);
    config.proxmox.node_ssh = Some(node);
    let p = Proxmox::new(config).expect("client");
    let user_data = "#cloud-config\nhostname: spuff-ud\n";
    let vm = p
        .create_instance(&request("spuff-ud").with_user_data(user_data))
        .await
        .expect("create");
    let file = crate::util::local_path(&format!("{dir}/spuff-{}-user.yaml", vm.id));
    assert_eq!(std::fs::read_to_string(&file).expect("snippet"), user_data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the host key and agent token are in it"
        );
    }
    let id: u64 = vm.id.parse().expect("id");
    assert_eq!(
        fake.state().vms[&id].config["cicustom"],
        format!("user=local:snippets/spuff-{id}-user.yaml")
    );
    p.destroy_instance(&vm.id).await.expect("destroy");
    assert!(!file.exists(), "the snippet goes with its VM");

    // Without a way onto the node, refused before anything is made.
    let (fake, p) = start().await;
    let e = p
        .create_instance(&request("spuff-no-node").with_user_data(user_data))
        .await
        .expect_err("no node ssh");
    assert!(e.to_string().contains("proxmox_node_ssh"), "{e}");
    assert_eq!(fake.state().vms.len(), 1, "only the template");
}

/// Without node SSH (docs/proxmox.md): the provider says it cannot deliver
/// user-data, and a request with a login user instead gets Proxmox's own
/// cloud-init options, `ciuser` and `sshkeys`, and no `cicustom`; `up`
/// applies spuff's user-data at the first login (tests/local_vm.rs, on a
/// real VM). A login user Proxmox would not take is refused first.
#[tokio::test]
async fn without_node_ssh_the_vm_should_get_its_user_and_keys_from_proxmox() {
    let (fake, p) = start().await;
    assert!(!p.delivers_user_data());
    let mut req = request("spuff-ciuser");
    req.login_user = Some("dev".into());
    let vm = p.create_instance(&req).await.expect("create");
    let id: u64 = vm.id.parse().expect("id");
    {
        let st = fake.state();
        let config = &st.vms[&id].config;
        assert_eq!(config["ciuser"], "dev");
        assert!(
            config["sshkeys"]
                .as_str()
                .is_some_and(|k| k.starts_with("ssh-ed25519%20")),
            "{config:?}"
        );
        assert!(config.get("cicustom").is_none(), "{config:?}");
    }
    let mut bad = request("spuff-bad-user");
    bad.login_user = Some("dev\nroot".into());
    let e = p.create_instance(&bad).await.expect_err("bad user");
    assert!(e.to_string().contains("login_user"), "{e}");
}

/// The SHA-256 of the certificate `fake` serves, as a user reads it from
/// `pvenode cert info`.
async fn served_cert_sha256(fake: &Server<State>) -> [u8; 32] {
    use rustls::pki_types::pem::PemObject as _;
    use sha2::Digest as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(fake.ca_pem.as_bytes()) {
        roots.add(cert.expect("ca")).expect("add");
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(fake.addr)
        .await
        .expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("tls");
    let leaf = conn.get_ref().1.peer_certificates().expect("certs")[0].clone();
    sha2::Sha256::digest(leaf.as_ref()).into()
}

#[tokio::test]
async fn a_pinned_certificate_should_be_trusted_alone() {
    let fake = Server::<State>::start().await;
    let pin = served_cert_sha256(&fake).await;
    let text: Vec<String> = pin.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(
        spuff::provider::parse_sha256_fingerprint(&text.join(":")),
        Ok(pin)
    );
    // No CA at all: the pin alone lets the cluster in.
    let mut config = proxmox::config(&fake);
    config.http.extra_ca_pem = None;
    config.http.webpki_roots = false;
    config.http.pinned_cert_sha256 = Some(pin);
    let p = Proxmox::new(config.clone()).expect("client");
    p.list_instances().await.expect("pinned");
    // Another pin: refused, whatever the CAs say.
    let mut wrong = pin;
    wrong[0] ^= 1;
    config.http.pinned_cert_sha256 = Some(wrong);
    config.http.extra_ca_pem = Some(fake.ca_pem.clone());
    let p = Proxmox::new(config).expect("client");
    let e = p.list_instances().await.expect_err("wrong pin");
    assert!(matches!(e, ProviderError::Tls { .. }), "{e:?}");
    assert!(spuff::provider::parse_sha256_fingerprint("AB:CD").is_err());
}

#[tokio::test]
async fn a_user_and_password_should_log_in_once_and_write_with_csrf() {
    let fake = Server::<State>::start().await;
    let mut config = proxmox::config(&fake);
    config.token = "".into();
    let (user, password) = proxmox::USER;
    config.proxmox.login = Some((user.into(), password.into()));
    let p = Proxmox::new(config.clone()).expect("client");
    assert!(!format!("{p:?}").contains(password));
    let vm = p
        .create_instance(&request("spuff-ticket"))
        .await
        .expect("create");
    p.power_off(&vm.id)
        .await
        .expect("a write, with the CSRF token");
    let s = fake.stats();
    assert_eq!(
        s.count("POST /api2/json/access/ticket"),
        1,
        "one login: {:?}",
        s.log
    );
    assert_eq!(
        s.log[0], "POST /api2/json/access/ticket",
        "before anything else"
    );
    // A wrong password: Proxmox's words, nothing else sent.
    config.proxmox.login = Some((user.into(), "wrong".into()));
    let p = Proxmox::new(config).expect("client");
    let e = p.list_instances().await.expect_err("401");
    assert!(matches!(e, ProviderError::Authentication { .. }), "{e:?}");
    assert!(e.to_string().contains("authentication failure"), "{e}");
}

#[tokio::test]
async fn nuke_should_find_spuffs_vms_and_their_snapshots_and_leave_the_rest() {
    use spuff::provider::ResourceKind;
    let (fake, p) = start().await;
    let vm = p
        .create_instance(&request("spuff-n"))
        .await
        .expect("create");
    p.create_snapshot(&vm.id, "keep").await.expect("snapshot");
    let theirs = fake.seed_vm("not-spuffs", "web");
    let found = spuff::vm::nuke::survey(&*p, None).await.expect("survey");
    let kinds: Vec<ResourceKind> = found.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [ResourceKind::Vm, ResourceKind::Snapshot],
        "{found:?}"
    );
    let left = spuff::vm::nuke::delete_all(&*p, found, 4, None, &|_, _| {}).await;
    assert!(left.is_empty(), "{left:?}");
    let st = fake.state();
    assert!(st.vms.contains_key(&theirs) && st.vms.contains_key(&TEMPLATE));
    assert_eq!(st.vms.len(), 2);
}

#[tokio::test]
async fn a_bigger_disk_should_grow_the_clones_boot_disk_before_it_starts() {
    let (fake, p) = start().await;
    let mut req = request("spuff-big");
    req.disk_gb = Some(20);
    let vm = p.create_instance(&req).await.expect("create");
    let id: u64 = vm.id.parse().expect("id");
    {
        let st = fake.state();
        let made = &st.vms[&id];
        assert_eq!(
            made.config["scsi0"],
            format!("local-lvm:base-{id}-disk-0,size=20G"),
            "the clone's own disk, grown"
        );
        assert!(made.running);
    }
    let log = fake.stats().log;
    let at = |what: &str| {
        log.iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} in {log:?}"))
    };
    assert!(at(&format!("PUT /api2/json/nodes/pve1/qemu/{id}/resize")) < at("/status/start"));

    // Asking for less than the template has is no change: disks only grow.
    let mut req = request("spuff-small");
    req.disk_gb = Some(1);
    let vm = p.create_instance(&req).await.expect("create");
    assert_eq!(
        fake.stats()
            .count(&format!("PUT /api2/json/nodes/pve1/qemu/{}/resize", vm.id)),
        0
    );
}

#[tokio::test]
async fn a_rollback_should_restore_the_vm_and_start_it_again() {
    let (fake, p) = start().await;
    let vm = p
        .create_instance(&request("spuff-rb"))
        .await
        .expect("create");
    let id: u64 = vm.id.parse().expect("id");
    let snap = p
        .create_snapshot(&vm.id, "before upgrade")
        .await
        .expect("snapshot");
    assert_eq!(snap.id, format!("{id}/before_upgrade"));
    assert_eq!(
        p.rollback_snapshot(&snap.id).await.expect("rollback"),
        vm.id
    );
    {
        let st = fake.state();
        assert_eq!(st.vms[&id].rolled_back, ["before_upgrade"]);
        assert!(st.vms[&id].running, "started again after the rollback");
    }
    // A snapshot that is not there, ids that are not ids, and VMs that are
    // not spuff's are refused before anything happens.
    let e = p
        .rollback_snapshot(&format!("{id}/nope"))
        .await
        .expect_err("no such snapshot");
    assert!(matches!(e, ProviderError::NotFound { .. }), "{e:?}");
    for bad in ["nope", "12/a b", "x/y", &format!("{id}/../../x")] {
        p.rollback_snapshot(bad).await.expect_err(bad);
    }
    let theirs = fake.seed_vm("their-db", "prod");
    fake.state()
        .vms
        .get_mut(&theirs)
        .expect("vm")
        .snapshots
        .push("nightly".into());
    let e = p
        .rollback_snapshot(&format!("{theirs}/nightly"))
        .await
        .expect_err("not a spuff VM");
    assert!(e.to_string().contains("not a spuff VM"), "{e}");
    assert!(fake.state().vms[&theirs].rolled_back.is_empty());
}

/// `proxmox_ipconfig` with a static address (docs/proxmox.md): the VM gets
/// it as `ipconfig0`, is found there without its guest agent being asked,
/// and a second VM with that address is refused before anything is made.
#[tokio::test]
async fn a_static_address_should_be_used_without_the_guest_agent_and_only_once() {
    let fake = Server::<State>::start().await;
    let mut config = proxmox::config(&fake);
    config.proxmox.ipconfig = Some("ip=192.168.7.50/24,gw=192.168.7.1".into());
    let p = Proxmox::new(config).expect("client");
    let vm = p
        .create_instance(&request("spuff-static"))
        .await
        .expect("create");
    let id: u64 = vm.id.parse().expect("id");
    assert_eq!(
        fake.state().vms[&id].config["ipconfig0"],
        "ip=192.168.7.50/24,gw=192.168.7.1"
    );
    let ready = p.wait_ready(&vm.id).await.expect("ready");
    assert_eq!(ready.public_ipv4, Some("192.168.7.50".parse().expect("ip")));
    assert_eq!(
        ready.ssh.as_ref().map(|s| s.host),
        Some("192.168.7.50".parse().expect("ip"))
    );
    assert_eq!(
        fake.stats()
            .count_prefix(&format!("GET /api2/json/nodes/pve1/qemu/{id}/agent")),
        0,
        "the guest agent was asked"
    );
    let before = fake.state().vms.len();
    let e = p
        .create_instance(&request("spuff-static-2"))
        .await
        .expect_err("the address is taken");
    assert!(e.to_string().contains(&format!("VM {id}")), "{e}");
    assert_eq!(fake.state().vms.len(), before, "nothing was made");
    // Refused when set, not by Proxmox after a clone exists.
    let mut bad = proxmox::config(&fake);
    bad.proxmox.ipconfig = Some("ip=192.168.7.50".into());
    let p = Proxmox::new(bad).expect("client");
    let e = p
        .create_instance(&request("spuff-bad-ip"))
        .await
        .expect_err("no prefix");
    assert!(e.to_string().contains("ADDRESS/PREFIX"), "{e}");
}
