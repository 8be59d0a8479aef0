//! `spuff::vm::down` (and `up`'s failures that leave a VM) against the fake
//! DigitalOcean API (tests/fakecloud): every VM carrying a record's spuff id
//! is destroyed, the provider is asked again until none remains, and a
//! record is forgotten only on the provider's word; orphans are found by
//! name, however many share it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use spuff::agent::api::AgentConfig;
use spuff::cloudinit::{self, AgentSource, Limit};
use spuff::provider::{ImageSpec, Provider, ProviderConfig, ProviderRegistry};
use spuff::ssh::HostKeyPair;
use spuff::ssh::{self, AuthMethod, RetryPolicy};
use spuff::state::{Instance, Lifecycle, Store};
use spuff::vm::down::{self, Error, Options, Outcome};
use spuff::vm::up::Plan;
use spuff::vm::{self, Event, Observer};

use crate::fakecloud::{FakeCloud, Fault, FaultKind};
use crate::util::{Sshd, free_port, keys};

/// Records every event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Observer for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn provider(config: ProviderConfig) -> Arc<dyn Provider> {
    ProviderRegistry::with_defaults()
        .create_by_name("digitalocean", config)
        .expect("provider")
}

/// A config for a provider nobody answers for: a closed port on 127.0.0.1,
/// giving up after a short total wait.
pub(crate) fn unreachable_config(fake: &FakeCloud) -> ProviderConfig {
    let mut c = fake.config();
    c.base_url = Some(format!("https://127.0.0.1:{}/v2/", free_port()));
    c.http.retry.total = Duration::from_millis(500);
    c
}

/// Short waits, so a test never sits out the defaults.
fn quick() -> Options {
    Options {
        verify_timeout: Duration::from_secs(5),
        verify_poll: Duration::from_millis(20),
        verify_poll_max: Duration::from_millis(100),
        listing_lag: Duration::ZERO,
        ..Options::default()
    }
}

/// A local record as `up` writes it, for provider `digitalocean`.
pub(crate) fn record(name: &str, provider_id: &str, spuff_id: &str, status: Lifecycle) -> Instance {
    let mut i = Instance::new(
        name,
        "digitalocean",
        provider_id,
        "fra1",
        "s-1vcpu-1gb",
        "ubuntu-24.04",
        "dev",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4",
        spuff::Secret::new("agent-token"),
    );
    i.spuff_id = spuff_id.to_string();
    i.status = status;
    i
}

/// The droplet ids the fake holds.
fn droplet_ids(fake: &FakeCloud) -> Vec<String> {
    fake.state()
        .droplets
        .keys()
        .map(ToString::to_string)
        .collect()
}

/// The next `GET /v2/droplets/{id}` answers with an active droplet whose SSH
/// endpoint is 127.0.0.1:`port` (the `spuff-ssh-port` tag): the "VM" `up`
/// then tries to log in to is whatever listens there.
pub(crate) fn endpoint_fault(fake: &FakeCloud, name: &str, port: u16) {
    let body = serde_json::json!({"droplet": {
        "id": 1, "name": name, "status": "active",
        "networks": {"v4": [{"ip_address": "127.0.0.1", "type": "public"}], "v6": []},
        "region": {"slug": "fra1"}, "size_slug": "s-1vcpu-1gb",
        "tags": ["spuff", format!("spuff-ssh-port:{port}")],
    }});
    fake.push_fault(Fault::new(
        Method::GET,
        "/v2/droplets/*",
        FaultKind::Respond {
            status: 200,
            headers: vec![],
            body: body.to_string(),
        },
    ));
}

#[tokio::test]
async fn down_should_destroy_every_vm_sharing_the_spuff_id_and_verify() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    // A resent create made two VMs with one spuff id; the record knows one.
    let first = fake.seed_droplet("web", &["spuff", "spuff-id:0011223344556677"]);
    let second = fake.seed_droplet("web", &["spuff", "spuff-id:0011223344556677"]);
    let other = fake.seed_droplet("web2", &["spuff", "spuff-id:ffffffffffffffff"]);
    let r = record(
        "web",
        &first.to_string(),
        "0011223344556677",
        Lifecycle::Ready,
    );
    store.insert(&r).expect("insert");

    let recorder = Recorder::default();
    let outcome = down::down(&*do_, &store, &r, &quick(), &recorder)
        .await
        .expect("down");
    let Outcome::Destroyed { mut ids, snapshots } = outcome else {
        panic!("unexpected {outcome:?}");
    };
    ids.sort();
    assert_eq!(ids, vec![first.to_string(), second.to_string()]);
    assert!(snapshots.is_empty());
    assert_eq!(droplet_ids(&fake), vec![other.to_string()]);
    assert!(store.get("web").expect("get").is_none(), "forgotten");

    // Verified before forgetting: each destroyed id was asked for after its
    // DELETE, and the events say so in that order.
    let log = fake.stats().log;
    for id in [first, second] {
        let deleted = log
            .iter()
            .position(|l| *l == format!("DELETE /v2/droplets/{id}"))
            .expect("deleted");
        assert!(
            log[deleted..]
                .iter()
                .any(|l| *l == format!("GET /v2/droplets/{id}")),
            "{log:?}"
        );
    }
    let kinds: Vec<&str> = recorder
        .events()
        .iter()
        .map(|e| match e {
            Event::Found { .. } => "found",
            Event::Destroying { .. } => "destroying",
            Event::Verifying { .. } => "verifying",
            Event::Destroyed { .. } => "destroyed",
            Event::Forgotten { .. } => "forgotten",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "found",
            "destroying",
            "destroying",
            "verifying",
            "destroyed",
            "forgotten"
        ]
    );
}

#[tokio::test]
async fn down_should_say_never_created_only_when_the_provider_answers() {
    let fake = FakeCloud::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    let r = record("lost", "", "8899aabbccddeeff", Lifecycle::Unconfirmed);
    store.insert(&r).expect("insert");

    // The provider cannot be asked: nothing is claimed, the record stays.
    let unreachable = provider(unreachable_config(&fake));
    let err = down::down(&*unreachable, &store, &r, &quick(), &vm::Ignore)
        .await
        .expect_err("no answer, no verdict");
    assert!(matches!(err, Error::Lookup { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was destroyed"), "{err}");
    assert_eq!(
        store.get("lost").expect("get").expect("kept").status,
        Lifecycle::Unconfirmed
    );

    // The provider answers that nothing carries the spuff id.
    let do_ = provider(fake.config());
    let outcome = down::down(&*do_, &store, &r, &quick(), &vm::Ignore)
        .await
        .expect("down");
    assert_eq!(outcome, Outcome::NeverCreated);
    assert!(store.get("lost").expect("get").is_none());
}

#[tokio::test]
async fn down_should_destroy_an_unconfirmed_vm_found_by_its_spuff_id() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    let made = fake.seed_droplet("lost", &["spuff", "spuff-id:1234123412341234"]);
    let r = record("lost", "", "1234123412341234", Lifecycle::Unconfirmed);
    store.insert(&r).expect("insert");
    let outcome = down::down(&*do_, &store, &r, &quick(), &vm::Ignore)
        .await
        .expect("down");
    assert_eq!(
        outcome,
        Outcome::Destroyed {
            ids: vec![made.to_string()],
            snapshots: vec![]
        }
    );
    assert!(droplet_ids(&fake).is_empty());
}

#[tokio::test]
async fn down_should_keep_the_record_while_the_provider_still_reports_the_vm() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    let id = fake.seed_droplet("sticky", &["spuff", "spuff-id:5555666677778888"]);
    let r = record(
        "sticky",
        &id.to_string(),
        "5555666677778888",
        Lifecycle::Ready,
    );
    store.insert(&r).expect("insert");
    // The API accepts the destroy but the droplet stays.
    fake.push_fault(Fault::new(
        Method::DELETE,
        &format!("/v2/droplets/{id}"),
        FaultKind::Respond {
            status: 204,
            headers: vec![],
            body: String::new(),
        },
    ));
    let options = Options {
        verify_timeout: Duration::from_millis(300),
        ..quick()
    };
    let err = down::down(&*do_, &store, &r, &options, &vm::Ignore)
        .await
        .expect_err("not confirmed");
    match &err {
        Error::NotConfirmed {
            remaining,
            recorded: true,
            ..
        } => assert_eq!(remaining, &vec![id.to_string()]),
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("still reports") && text.contains("stays in local state"),
        "{text}"
    );
    assert!(
        spuff::Hint::hint(&err)
            .unwrap_or_default()
            .contains("spuff down sticky")
    );
    let kept = store.get("sticky").expect("get").expect("kept");
    assert_eq!(kept.status, Lifecycle::Destroying);
}

#[tokio::test]
async fn orphans_should_be_every_unclaimed_spuff_vm_of_the_name() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    let a = fake.seed_droplet("twin", &["spuff", "spuff-id:aaaaaaaaaaaaaaaa"]);
    let b = fake.seed_droplet("twin", &["spuff", "spuff-id:bbbbbbbbbbbbbbbb"]);
    // Same name, but a record claims it by spuff id; and one that is not spuff's.
    let claimed = fake.seed_droplet("twin", &["spuff", "spuff-id:cccccccccccccccc"]);
    let foreign = fake.seed_droplet("twin", &["web"]);
    store
        .insert(&record(
            "renamed",
            "",
            "cccccccccccccccc",
            Lifecycle::Unconfirmed,
        ))
        .expect("insert");

    let orphans = down::find_orphans(&*do_, &store, "twin")
        .await
        .expect("orphans");
    let mut ids: Vec<String> = orphans.iter().map(|o| o.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec![a.to_string(), b.to_string()]);

    let outcome = down::destroy_orphans(&*do_, &store, "twin", &orphans, &quick(), &vm::Ignore)
        .await
        .expect("destroy");
    assert!(matches!(outcome, Outcome::Destroyed { ref ids, .. } if ids.len() == 2));
    let mut left = droplet_ids(&fake);
    left.sort();
    assert_eq!(left, vec![claimed.to_string(), foreign.to_string()]);
}

/// A plan whose login goes to the endpoint the test's fault names.
fn plan(name: &str, login_timeout: Duration) -> Plan {
    let k = keys();
    let client_key = std::fs::read_to_string(k.ed25519.with_extension("pub")).expect("pub");
    let user_data = cloudinit::Config {
        authorized_keys: vec![client_key.trim().to_string()],
        ..cloudinit::Config::new(
            HostKeyPair::generate().expect("host key"),
            AgentConfig::new("agent-token-0123456789"),
            AgentSource::Download {
                url: "https://example.invalid/spuff-agent".into(),
                sha256: "0".repeat(64),
            },
        )
    };
    let ssh = ssh::Config {
        auth: vec![AuthMethod::KeyFile(k.ed25519.clone())],
        ..ssh::Config::new("filled-in-by-up", "dev")
    };
    let mut plan = Plan::new(
        name,
        "fra1",
        "s-1vcpu-1gb",
        ImageSpec::ubuntu("24.04"),
        user_data,
        Limit::of(spuff::provider::ProviderType::DigitalOcean.info()),
        ssh,
    );
    plan.ready_timeout = Duration::from_secs(30);
    plan.login = RetryPolicy {
        timeout: login_timeout,
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
    };
    plan
}

#[tokio::test]
async fn up_should_leave_a_failed_record_that_down_destroys_when_the_vm_never_answers_ssh() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    // Nothing listens where the VM's sshd should be.
    endpoint_fault(&fake, "mute", free_port());

    let err = match vm::up(
        do_.clone(),
        &store,
        plan("mute", Duration::from_millis(600)),
        &vm::Ignore,
    )
    .await
    {
        Ok(_) => panic!("logged in to nothing"),
        Err(e) => e,
    };
    assert_eq!(err.created(), Some("mute"), "{err}");
    assert!(
        matches!(&err, spuff::vm::up::Error::AfterCreate { step, .. } if step.contains("logging in")),
        "{err}"
    );
    let failed = store.get("mute").expect("get").expect("recorded");
    assert_eq!(failed.status, Lifecycle::Failed);
    assert_eq!(droplet_ids(&fake), vec![failed.provider_id.clone()]);

    // What the CLI does without a terminal: destroy it, confirmed.
    let outcome = down::down(&*do_, &store, &failed, &quick(), &vm::Ignore)
        .await
        .expect("down");
    assert!(matches!(outcome, Outcome::Destroyed { .. }), "{outcome:?}");
    assert!(droplet_ids(&fake).is_empty());
    assert!(store.get("mute").expect("get").is_none());
}

#[tokio::test]
async fn up_should_explain_a_refused_host_key_as_the_one_spuff_pinned() {
    let fake = FakeCloud::start().await;
    let do_ = provider(fake.config());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("state.redb")).expect("store");
    // An sshd with a host key of its own, not the one in the user-data.
    let impostor = Sshd::start();
    endpoint_fault(&fake, "keyed", impostor.port);

    let err = match vm::up(
        do_.clone(),
        &store,
        plan("keyed", Duration::from_secs(30)),
        &vm::Ignore,
    )
    .await
    {
        Ok(_) => panic!("accepted a host key spuff did not pin"),
        Err(e) => e,
    };
    assert!(err.created().is_some());
    let chain = {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&format!(" / {s}"));
            source = s.source();
        }
        text
    };
    assert!(chain.contains("HOST KEY CHANGED"), "{chain}");
    let hint = spuff::chain_hint(&err).expect("hint");
    assert!(
        hint.contains("spuff's state") && hint.contains("user-data"),
        "{hint}"
    );
    assert!(!hint.contains("remove the old entry"), "{hint}");
}
