//! `spuff::vm::up` end to end: the fake DigitalOcean API (tests/fakecloud)
//! boots each droplet it creates into a fake VM (tests/fakevm): a real
//! OpenSSH sshd on 127.0.0.1, built from the create request's user-data: its
//! host key is the user-data's `ssh_keys.ed25519_private`, its
//! authorized_keys the user's `ssh_authorized_keys`. So a login proves that
//! spuff pins the key it generated and that cloud-init would install it, and
//! that the key it sent is the key that lets it in.
//!
//! `up` learns where to log in from the API alone: the droplet's address and
//! its `spuff-ssh-port` / `spuff-ssh-user` tags (the sshd runs as the
//! current user, root in CI, so that is the login user rather than the
//! user-data's `dev`). The VM plays its bootstrap in its own
//! `/opt/spuff/bootstrap.status` and `/var/log/spuff-bootstrap.log` (under
//! its root, [`fakevm::Bootstrap`]): `running` before sshd answers, then,
//! once `up` has reported it running, the end of phase 1 and `installing`
//! (where `up` returns), and once `up` has returned, `ready`; or a failure
//! in either phase.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::Method;
use spuff::agent::api::{self, AgentConfig, BootstrapStatus};
use spuff::agent_bin::Arch;
use spuff::cloudinit::{self, AgentSource, Limit};
use spuff::provider::{ImageSpec, MANAGED_LABEL, Provider, ProviderRegistry};
use spuff::ssh::HostKeyPair;
use spuff::ssh::{self, AuthMethod, RetryPolicy};
use spuff::state::{self, Instance, Lifecycle, Store};
use spuff::vm::AgentInstall;
use spuff::vm::up::{AgentBinary, Error, Plan};
use spuff::vm::{self, Tracking};
use spuff::vm::{Event, Observer};

use crate::fakecloud::{FakeCloud, FakeDroplet, Fault, FaultKind};
use crate::fakevm::{self, FakeVm};
use crate::util::{current_user, keys};

use crate::fakevm::log_line::{
    PHASE_1_DONE, PHASE_1_FAILED, PHASE_1_STARTED, PHASE_2_FAILED, PHASE_2_PACKAGES,
};

/// How the fake VM behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boot {
    /// `running`, `installing`, and `ready` once `up` has returned.
    Ready,
    /// `running`, then `installing` for good: phase 2 never ends.
    Installing,
    /// A VM from before `installing`: `running` straight to `ready`.
    ReadyWithoutInstalling,
    /// Phase 1 fails.
    Failed,
    /// Phase 1 finishes and phase 2 fails before `up` sees `installing`.
    Phase2Failed,
    /// sshd presents a host key other than the user-data's.
    WrongHostKey,
}

/// Locks `m`, also after a panic elsewhere (the panic is the failure to see).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records `up`'s events.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Observer for Recorder {
    fn event(&self, event: Event) {
        lock(&self.0).push(event);
    }
}

impl Recorder {
    fn events(&self) -> Vec<Event> {
        lock(&self.0).clone()
    }

    fn saw_bootstrap_running(&self) -> bool {
        lock(&self.0).iter().any(|e| {
            matches!(
                e,
                Event::Bootstrap {
                    status: BootstrapStatus::Running,
                    ..
                }
            )
        })
    }

    fn saw_ready(&self) -> bool {
        lock(&self.0).contains(&Event::Ready)
    }
}

/// A fake cloud whose droplets boot into fake VMs, and a state store.
struct Lab {
    fake: FakeCloud,
    provider: Arc<dyn Provider>,
    store: Store,
    /// Holds the state file.
    _dir: tempfile::TempDir,
    /// The booted VMs.
    vms: Arc<Mutex<Vec<FakeVm>>>,
    recorder: Recorder,
}

impl Lab {
    async fn start(boot: Boot) -> Lab {
        Self::start_with(boot, |c| c).await
    }

    async fn start_with(
        boot: Boot,
        config: impl FnOnce(spuff::provider::ProviderConfig) -> spuff::provider::ProviderConfig,
    ) -> Lab {
        let fake = FakeCloud::start().await;
        let provider = ProviderRegistry::with_defaults()
            .create_by_name("digitalocean", config(fake.config()))
            .expect("provider");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("state.redb")).expect("store");
        let vms = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder::default();
        {
            let vms = vms.clone();
            let recorder = recorder.clone();
            fake.on_create(move |droplet| {
                let vm = boot_vm(droplet, boot, &recorder);
                let booted = vm.booted();
                lock(&vms).push(vm);
                booted
            });
        }
        Lab {
            fake,
            provider,
            store,
            _dir: dir,
            vms,
            recorder,
        }
    }

    /// A plan for `name` that logs in to the booted VM, with short waits.
    fn plan(&self, name: &str) -> Plan {
        let k = keys();
        let client_key = std::fs::read_to_string(k.ed25519.with_extension("pub")).expect("pub");
        let user_data = cloudinit::Config {
            authorized_keys: vec![client_key.trim().to_string()],
            ..cloudinit::Config::new(
                HostKeyPair::generate().expect("host key"),
                AgentConfig::new("agent-token-0123456789"),
                AgentSource::Upload,
            )
        };
        // Where and as whom `up` learns from the provider.
        let ssh = ssh::Config {
            auth: vec![AuthMethod::KeyFile(k.ed25519.clone())],
            ..ssh::Config::new("filled-in-by-up", "filled-in-by-up")
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
            timeout: Duration::from_secs(30),
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
        };
        plan.bootstrap_timeout = Duration::from_secs(30);
        plan.bootstrap_poll = Duration::from_millis(100);
        plan
    }

    async fn up(&self, plan: Plan) -> spuff::vm::up::Result<spuff::vm::up::Up> {
        vm::up(self.provider.clone(), &self.store, plan, &self.recorder).await
    }

    fn record(&self, name: &str) -> Instance {
        self.store
            .get(name)
            .expect("store")
            .unwrap_or_else(|| panic!("no record for {name}"))
    }

    fn vm_log(&self) -> String {
        lock(&self.vms).iter().map(FakeVm::log).collect()
    }

    /// The one VM booted so far: its sshd's port and its root.
    fn vm(&self) -> (u16, std::path::PathBuf) {
        let vms = lock(&self.vms);
        assert_eq!(vms.len(), 1, "one VM booted");
        (vms[0].sshd.port, vms[0].root())
    }

    /// `spuff list`'s view: local state against the fake's listing.
    async fn reconcile(&self) -> Vec<vm::Entry> {
        let remote = self.provider.list_instances().await.expect("list");
        let local = self.store.list().expect("local list");
        let active = self.store.active().expect("active");
        vm::reconcile(&local, active.as_deref(), "digitalocean", &remote)
    }
}

/// What the fake cloud does with a new droplet: boot a fake VM from its
/// user-data, and play the bootstrap.
fn boot_vm(droplet: &FakeDroplet, boot: Boot, recorder: &Recorder) -> FakeVm {
    let user_data = droplet
        .user_data
        .as_deref()
        .expect("the create sent user-data");
    let other_key = HostKeyPair::generate()
        .expect("host key")
        .private_key_openssh()
        .to_string();
    let vm = FakeVm::boot(
        user_data,
        &fakevm::Options {
            host_key: (boot == Boot::WrongHostKey).then_some(other_key.as_str()),
            ..fakevm::Options::default()
        },
    );

    // Phase 1 reports `running` before sshd can be reached: the cloud names
    // the VM's address only once this hook has returned.
    let bootstrap = vm.bootstrap();
    assert!(bootstrap.start());
    if boot == Boot::WrongHostKey {
        return vm;
    }

    // Phase 1 ends once `up` has seen it running (and a few polls later), so
    // the events are the same however fast the login is; phase 2 ends once
    // `up` has returned. The thread gives up quietly when the test is over
    // (the VM's directory gone) without that.
    let recorder = recorder.clone();
    std::thread::spawn(move || {
        let wait_for = |seen: &dyn Fn() -> bool| {
            while !seen() {
                if bootstrap.status().is_none() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        };
        if !wait_for(&|| recorder.saw_bootstrap_running()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
        match boot {
            Boot::Ready => {
                if bootstrap.phase_1_done()
                    && bootstrap.phase_2_installing()
                    && wait_for(&|| recorder.saw_ready())
                {
                    bootstrap.ready();
                }
            }
            Boot::Installing => {
                let _ = bootstrap.phase_1_done() && bootstrap.phase_2_installing();
            }
            Boot::ReadyWithoutInstalling => {
                bootstrap.ready_without_installing();
            }
            Boot::Failed => {
                bootstrap.phase_1_failed();
            }
            Boot::Phase2Failed => {
                // Both in one go: `up` never sees `installing`.
                bootstrap.phase_2_failed_at_once();
            }
            Boot::WrongHostKey => {}
        }
    });
    vm
}

/// The event's kind, for order checks.
fn kind(e: &Event) -> &'static str {
    match e {
        Event::Rendered { .. } => "Rendered",
        Event::Creating => "Creating",
        Event::Created { .. } => "Created",
        Event::Address { .. } => "Address",
        Event::LoggedIn { .. } => "LoggedIn",
        Event::AgentInstalled { .. } => "AgentInstalled",
        Event::Bootstrap { .. } => "Bootstrap",
        Event::ShellReady { .. } => "ShellReady",
        Event::Ready => "Ready",
        _ => "other",
    }
}

/// The kinds, with repeats of one kind in a row folded into one.
fn kinds(events: &[Event]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = events.iter().map(kind).collect();
    out.dedup();
    out
}

fn bootstraps(events: &[Event]) -> Vec<(BootstrapStatus, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Bootstrap { status, line } => Some((*status, line.clone())),
            _ => None,
        })
        .collect()
}

fn respond(status: u16, body: &str) -> FaultKind {
    FaultKind::Respond {
        status,
        headers: vec![],
        body: body.to_string(),
    }
}

#[tokio::test]
async fn up_should_create_pin_the_host_key_and_follow_the_bootstrap_to_ready() {
    let lab = Lab::start(Boot::Ready).await;
    let plan = lab.plan("vm-happy");
    let host_key = plan.user_data.host_key.clone();
    let expected_user_data = cloudinit::render_with_limit(
        &plan.user_data,
        Limit::of(spuff::provider::ProviderType::DigitalOcean.info()),
    )
    .expect("render");
    let up = match lab.up(plan).await {
        Ok(up) => up,
        Err(e) => panic!("up failed: {e:?}\n--- sshd ---\n{}", lab.vm_log()),
    };

    let out = up.session.exec("echo hi").await.expect("exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    // The droplet as the fake cloud received it, tagged by its VM with how
    // to reach its sshd.
    let droplet = {
        let s = lab.fake.state();
        assert_eq!(s.droplets.len(), 1);
        s.droplets.values().next().cloned().expect("droplet")
    };
    let (vm_port, _) = lab.vm();
    for tag in [
        MANAGED_LABEL.to_string(),
        format!("spuff-ssh-port:{vm_port}"),
        format!("spuff-ssh-user:{}", current_user()),
    ] {
        assert!(droplet.tags.contains(&tag), "{tag} in {:?}", droplet.tags);
    }
    assert_eq!(
        droplet.user_data.as_deref(),
        Some(expected_user_data.as_str())
    );
    assert_eq!(lab.fake.stats().count("POST /v2/droplets"), 1);

    // The VM's sshd had the user-data's key, and spuff logged in to it.
    {
        let vms = lock(&lab.vms);
        assert_eq!(vms.len(), 1);
        let vms: Vec<_> = vms.iter().map(|vm| &vm.sshd).collect();
        assert_eq!(vms[0].host_key.key_data(), host_key.public_key().key_data());
        assert!(
            vms[0].log().contains("Accepted publickey"),
            "{}",
            vms[0].log()
        );
    }

    // The record.
    let record = lab.record("vm-happy");
    assert_eq!(record, up.instance);
    assert_eq!(record.status, Lifecycle::Ready);
    assert_eq!(record.provider, "digitalocean");
    assert_eq!(record.provider_id, droplet.id.to_string());
    assert_eq!(record.ipv4, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    // Where later commands log in: where `up` logged in, from the tags.
    assert_eq!(record.ssh_port, vm_port);
    assert_eq!(record.ssh_host, None, "the public address");
    assert_eq!(record.host_key, host_key.public_key_openssh());
    assert_eq!(record.ssh_user, current_user());
    assert!(!record.dev);
    assert_eq!(
        lab.store.active().expect("active").as_deref(),
        Some("vm-happy")
    );

    // The events, in order.
    let events = lab.recorder.events();
    assert_eq!(
        kinds(&events),
        [
            "Rendered",
            "Creating",
            "Created",
            "Address",
            "LoggedIn",
            "Bootstrap",
            "ShellReady",
            "Ready"
        ],
        "{events:?}"
    );
    assert!(matches!(
        &events[0],
        Event::Rendered { bytes, compressed: false } if *bytes == expected_user_data.len()
    ));
    assert!(events.contains(&Event::Created {
        id: droplet.id.to_string()
    }));
    assert!(events.contains(&Event::Address {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST)
    }));
    // `up` follows phase 1 and returns on `installing`: phase 2 goes on.
    let boot = bootstraps(&events);
    assert_eq!(
        boot.first(),
        Some(&(BootstrapStatus::Running, Some(PHASE_1_STARTED.to_string()))),
        "{boot:?}"
    );
    assert_eq!(
        boot.last().map(|(s, _)| *s),
        Some(BootstrapStatus::Installing),
        "{boot:?}"
    );
    assert!(
        boot[..boot.len() - 1]
            .iter()
            .all(|(s, _)| *s == BootstrapStatus::Running),
        "{boot:?}"
    );
    assert!(events.contains(&Event::ShellReady {
        phase_2: BootstrapStatus::Installing
    }));
    assert_eq!(up.bootstrap, BootstrapStatus::Installing);

    // The VM finishes phase 2 on its own; `up` is long gone.
    let files = fakevm::Bootstrap::under(&lab.vm().1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while files.status().as_deref() != Some("ready\n") {
        assert!(Instant::now() < deadline, "{:?}", files.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 11: `up` returns as soon as phase 1 is done, while phase 2
/// (packages, dotfiles) is still `installing`, which may take minutes.
#[tokio::test]
async fn up_should_return_while_phase_2_is_installing() {
    let lab = Lab::start(Boot::Installing).await;
    let mut plan = lab.plan("vm-installing");
    // Far longer than the test waits: `up` must not wait for phase 2.
    plan.bootstrap_timeout = Duration::from_secs(600);
    let started = Instant::now();
    let up = match lab.up(plan).await {
        Ok(up) => up,
        Err(e) => panic!("up failed: {e:?}\n--- sshd ---\n{}", lab.vm_log()),
    };
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(up.bootstrap, BootstrapStatus::Installing);
    assert_eq!(up.instance.status, Lifecycle::Ready);
    let files = fakevm::Bootstrap::under(&lab.vm().1);
    assert_eq!(files.status().as_deref(), Some("installing\n"));
    let events = lab.recorder.events();
    assert_eq!(
        &kinds(&events)[kinds(&events).len() - 3..],
        ["Bootstrap", "ShellReady", "Ready"],
        "{events:?}"
    );
    assert!(events.contains(&Event::ShellReady {
        phase_2: BootstrapStatus::Installing
    }));
    // The last line is phase 1's or already phase 2's first.
    let (status, line) = bootstraps(&events).last().cloned().expect("bootstrap");
    assert_eq!(status, BootstrapStatus::Installing);
    assert!(
        [PHASE_1_DONE, PHASE_2_PACKAGES].contains(&line.as_deref().unwrap_or_default()),
        "{line:?}"
    );
    // The shell is usable now.
    let out = up.session.exec("echo hi").await.expect("exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

/// A VM whose bootstrap never writes `installing` (booted from user-data
/// before it existed) is followed to `ready`, as before.
#[tokio::test]
async fn up_should_follow_a_vm_without_installing_to_ready() {
    let lab = Lab::start(Boot::ReadyWithoutInstalling).await;
    let up = lab.up(lab.plan("vm-old")).await.expect("up");
    assert_eq!(up.bootstrap, BootstrapStatus::Ready);
    let events = lab.recorder.events();
    let boot = bootstraps(&events);
    assert_eq!(
        boot.last().map(|(s, _)| *s),
        Some(BootstrapStatus::Ready),
        "{boot:?}"
    );
    assert!(events.contains(&Event::ShellReady {
        phase_2: BootstrapStatus::Ready
    }));
}

/// Phase 2 failing is no failure of `up`: the VM is usable, and destroying
/// it (what a failed `up` leads to) would lose it over a package. The log
/// tells it from a phase 1 failure, even when `installing` was never seen.
#[tokio::test]
async fn up_should_succeed_when_only_phase_2_failed() {
    let lab = Lab::start(Boot::Phase2Failed).await;
    let up = lab.up(lab.plan("vm-phase2")).await.expect("up");
    assert_eq!(up.bootstrap, BootstrapStatus::Failed);
    assert_eq!(up.instance.status, Lifecycle::Ready);
    let events = lab.recorder.events();
    assert!(
        !bootstraps(&events)
            .iter()
            .any(|(s, _)| *s == BootstrapStatus::Installing),
        "{events:?}"
    );
    assert_eq!(
        bootstraps(&events).last(),
        Some(&(BootstrapStatus::Failed, Some(PHASE_2_FAILED.to_string()))),
        "{events:?}"
    );
    assert!(events.contains(&Event::ShellReady {
        phase_2: BootstrapStatus::Failed
    }));
}

#[tokio::test]
async fn up_should_record_the_vm_before_the_create_call_returns() {
    let lab = Lab::start(Boot::Ready).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    lab.fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        FaultKind::Hold(gate.clone()),
    ));
    let plan = lab.plan("vm-early");
    let host_key = plan.user_data.host_key.public_key_openssh();

    let in_flight = async {
        // The create has reached the cloud and is held there.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lab.fake.stats().count("POST /v2/droplets") == 0 {
            assert!(Instant::now() < deadline, "the create never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let record = lab.record("vm-early");
        gate.notify_one();
        record
    };
    let (result, record) = tokio::join!(lab.up(plan), in_flight);
    assert_eq!(
        record.provider_id, "",
        "no id while the create is in flight"
    );
    assert_eq!(record.status, Lifecycle::Creating);
    assert_eq!(record.host_key, host_key);
    assert_eq!(
        (record.ssh_port, record.ssh_user.as_str()),
        (22, "dev"),
        "the user-data's until the provider says otherwise"
    );

    let up = result.expect("up");
    assert_eq!(up.instance.status, Lifecycle::Ready);
    assert!(!up.instance.provider_id.is_empty());
    assert_eq!(up.instance.ssh_port, lab.vm().0);
}

/// The create succeeds but the state file is locked by another process when
/// its id is to be written: the VM exists, so the error must say so (and
/// carry the id), not pass for a state error before anything was created.
#[tokio::test]
async fn up_should_report_the_vm_when_recording_its_id_fails() {
    let lab = Lab::start(Boot::Ready).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    lab.fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        FaultKind::Hold(gate.clone()),
    ));
    let mut store = lab.store.clone();
    store.set_busy_timeout(Duration::from_millis(50));
    let in_flight = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while lab.fake.stats().count("POST /v2/droplets") == 0 {
            assert!(Instant::now() < deadline, "the create never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another process holds the state file while the answer comes back.
        let holder = redb::Database::create(store.path()).expect("hold the state file");
        gate.notify_one();
        holder
    };
    let (result, holder) = tokio::join!(
        vm::up(
            lab.provider.clone(),
            &store,
            lab.plan("vm-busy"),
            &lab.recorder
        ),
        in_flight
    );
    drop(holder);
    let err = result.err().expect("state busy");
    let droplet_id = {
        let s = lab.fake.state();
        s.droplets.keys().next().expect("created").to_string()
    };
    match &err {
        Error::AfterCreate { id, source, .. } => {
            assert_eq!(id, &droplet_id);
            assert!(
                matches!(
                    source.downcast_ref::<state::Error>(),
                    Some(state::Error::Busy { .. })
                ),
                "{source:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.created(), Some("vm-busy"));
    assert!(err.to_string().contains(&droplet_id), "{err}");

    // The record from before the create is there; `list` matches it by name.
    let record = lab.record("vm-busy");
    assert_eq!(record.provider_id, "");
    let rows = lab.reconcile().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].tracking, Tracking::Tracked);
    assert_eq!(rows[0].provider_id, droplet_id);
}

#[tokio::test]
async fn up_should_forget_the_vm_when_the_create_is_refused() {
    let lab = Lab::start(Boot::Ready).await;
    lab.fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        respond(
            422,
            include_str!("data/digitalocean/libcloud__error_invalid_image.json"),
        ),
    ));
    let err = lab.up(lab.plan("vm-refused")).await.err().expect("refused");
    match &err {
        Error::Create {
            name,
            maybe_created: false,
            source,
        } => {
            assert_eq!(name, "vm-refused");
            assert!(!source.is_retryable(), "{source:?}");
            assert!(source.to_string().contains("invalid image"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.created(), None);
    assert_eq!(lab.store.get("vm-refused").expect("store"), None);
    assert!(lab.store.list().expect("list").is_empty());
    assert_eq!(lab.fake.stats().count("POST /v2/droplets"), 1, "not resent");
    assert!(lab.fake.state().droplets.is_empty());
    assert_eq!(
        kinds(&lab.recorder.events()),
        ["Rendered", "Creating"],
        "nothing after the refusal"
    );
}

/// The create makes the droplet but its answer is lost, and the provider's
/// look for it by its spuff id fails for as long as it looks (a 5xx storm on
/// the listing): `up` cannot know, so the record stays, unconfirmed; `list`
/// later matches it.
#[tokio::test]
async fn up_should_keep_the_record_when_the_create_may_have_happened() {
    let lab = Lab::start_with(Boot::Ready, |mut c| {
        // One create, never resent, and a short look for it.
        c.http.retry.max_attempts = 1;
        c.timeouts.create_lookup = Duration::from_millis(300);
        c
    })
    .await;
    lab.fake.push_fault(Fault::new(
        Method::POST,
        "/v2/droplets",
        FaultKind::ProcessThenDrop,
    ));
    let server_error = include_str!("data/digitalocean/spec/error.500.json");
    // More than the look can use up in its time.
    for _ in 0..200 {
        lab.fake.push_fault(Fault::new(
            Method::GET,
            "/v2/droplets",
            respond(500, server_error),
        ));
    }
    let err = lab.up(lab.plan("vm-lost")).await.err().expect("lost");
    match &err {
        Error::Create {
            name,
            maybe_created: true,
            source,
        } => {
            assert_eq!(name, "vm-lost");
            // The create's own error (its answer was dropped).
            assert!(source.is_retryable(), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.created(), Some("vm-lost"));
    let record = lab.record("vm-lost");
    assert_eq!(record.status, Lifecycle::Unconfirmed);
    assert_eq!(record.provider_id, "");
    let stats = lab.fake.stats();
    assert_eq!(stats.count("POST /v2/droplets"), 1, "{:?}", stats.log);
    assert!(stats.count("GET /v2/droplets") >= 2, "{:?}", stats.log);
    // The storm is over.
    lab.fake.state().faults.clear();

    // `spuff list`: the droplet that was made is this record, not an orphan;
    // a spuff droplet nothing here knows of is.
    let droplet_id = {
        let s = lab.fake.state();
        let d = s.droplets.values().next().expect("the create did happen");
        assert_eq!(d.name, "vm-lost");
        d.id.to_string()
    };
    let stray = lab.fake.seed_droplet("vm-stray", &[MANAGED_LABEL]);
    let rows = lab.reconcile().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let lost = rows.iter().find(|r| r.name == "vm-lost").expect("vm-lost");
    assert_eq!(lost.tracking, Tracking::Tracked);
    assert_eq!(lost.provider_id, droplet_id);
    assert_eq!(lost.local_status, Some(Lifecycle::Unconfirmed));
    let stray_row = rows.iter().find(|r| r.name == "vm-stray").expect("stray");
    assert_eq!(stray_row.tracking, Tracking::Orphan);
    assert_eq!(stray_row.provider_id, stray.to_string());
}

#[tokio::test]
async fn up_should_refuse_a_vm_that_presents_another_host_key() {
    let lab = Lab::start(Boot::WrongHostKey).await;
    let plan = lab.plan("vm-mitm");
    let pinned = plan.user_data.host_key.fingerprint();
    let err = lab.up(plan).await.err().expect("wrong host key");
    let Error::AfterCreate {
        name,
        provider,
        id,
        step,
        source,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(name, "vm-mitm");
    assert_eq!(provider, "digitalocean");
    assert_eq!(*step, "logging in over SSH");
    match source.downcast_ref::<ssh::Error>() {
        Some(ssh::Error::HostKeyChanged {
            presented,
            expected,
            ..
        }) => {
            let vms = lock(&lab.vms);
            assert_eq!(presented, &ssh::fingerprint(&vms[0].sshd.host_key));
            assert_eq!(expected.len(), 1);
            assert_eq!(expected[0].fingerprint, pinned);
        }
        other => panic!("{other:?} from {source:?}"),
    }
    assert_eq!(err.created(), Some("vm-mitm"));
    let log = lab.vm_log();
    assert!(!log.contains("Accepted publickey"), "logged in:\n{log}");

    let record = lab.record("vm-mitm");
    assert_eq!(record.status, Lifecycle::Failed);
    assert_eq!(&record.provider_id, id);
    assert_eq!(lab.store.active().expect("active"), None);
    let events = lab.recorder.events();
    assert_eq!(
        kinds(&events),
        ["Rendered", "Creating", "Created", "Address"],
        "{events:?}"
    );

    // `spuff list` shows it as tracked, so `down` can remove it.
    let stray = lab.fake.seed_droplet("vm-stray", &[MANAGED_LABEL]);
    lab.fake.seed_droplet("not-spuff", &["web"]);
    let rows = lab.reconcile().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mitm = rows.iter().find(|r| r.name == "vm-mitm").expect("vm-mitm");
    assert_eq!(mitm.tracking, Tracking::Tracked);
    assert_eq!(&mitm.provider_id, id);
    assert_eq!(mitm.local_status, Some(Lifecycle::Failed));
    let stray_row = rows.iter().find(|r| r.name == "vm-stray").expect("stray");
    assert_eq!(stray_row.tracking, Tracking::Orphan);
    assert_eq!(stray_row.provider_id, stray.to_string());
}

#[tokio::test]
async fn up_should_fail_after_create_when_the_bootstrap_fails() {
    let lab = Lab::start(Boot::Failed).await;
    let err = lab
        .up(lab.plan("vm-broken"))
        .await
        .err()
        .expect("bootstrap failed");
    let Error::AfterCreate {
        step, source, id, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*step, "the bootstrap");
    assert!(
        source.to_string().contains(api::BOOTSTRAP_LOG_PATH),
        "names the log: {source}"
    );
    assert_eq!(err.created(), Some("vm-broken"));
    let record = lab.record("vm-broken");
    assert_eq!(record.status, Lifecycle::Failed);
    assert_eq!(&record.provider_id, id);
    assert_eq!(lab.store.active().expect("active"), None);
    let events = lab.recorder.events();
    assert_eq!(
        bootstraps(&events).last(),
        Some(&(BootstrapStatus::Failed, Some(PHASE_1_FAILED.to_string()))),
        "{events:?}"
    );
    assert!(!events.contains(&Event::Ready));
    assert!(!events.iter().any(|e| matches!(e, Event::ShellReady { .. })));
}

#[tokio::test]
async fn up_should_refuse_a_taken_name_before_creating_anything() {
    let lab = Lab::start(Boot::Ready).await;
    let existing = Instance::new(
        "vm-taken",
        "digitalocean",
        "42",
        "fra1",
        "s-1vcpu-1gb",
        "ubuntu-24.04",
        "dev",
        "ssh-ed25519 AAAA",
        spuff::Secret::new("t"),
    );
    lab.store.insert(&existing).expect("insert");
    let before = lab.record("vm-taken");
    let err = lab.up(lab.plan("vm-taken")).await.err().expect("taken");
    assert!(
        matches!(&err, Error::State(state::Error::NameTaken { name }) if name == "vm-taken"),
        "{err:?}"
    );
    assert_eq!(err.created(), None);
    assert_eq!(lab.fake.stats().count("POST /v2/droplets"), 0);
    assert!(lab.fake.state().droplets.is_empty());
    assert_eq!(lab.record("vm-taken"), before, "left as it was");
}

/// `--agent-binary`: a file goes up, its SHA-256 checked on the VM, and is
/// installed and started as on a real VM (mode 0755 at
/// /opt/spuff/spuff-agent, then systemd): the fake VM's start runs it with
/// the config cloud-init wrote, and it answers. A file that is no Linux
/// program for the VM is refused before it is sent.
#[tokio::test]
async fn up_should_upload_check_and_start_an_agent_file() {
    let lab = Lab::start(Boot::Ready).await;
    let binary = fakevm::agent_binary();
    let mut plan = lab.plan("vm-dev");
    plan.upload_agent = Some((AgentBinary::File(binary.clone()), AgentInstall::default()));
    let up = match lab.up(plan).await {
        Ok(up) => up,
        Err(e) => panic!("up failed: {e:?}\n--- sshd ---\n{}", lab.vm_log()),
    };

    let (_, root) = lab.vm();
    let dest = root.join(api::BINARY_PATH.trim_start_matches('/'));
    let sent = std::fs::read(&binary).expect("binary");
    assert!(std::fs::read(&dest).expect("installed") == sent);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).expect("dest").permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
    }
    // Started in the background, with the VM's config: it answers.
    let port = lock(&lab.vms)[0].agent_port;
    agent_answers(port);
    assert_eq!(up.instance.status, Lifecycle::Ready);
    let events = lab.recorder.events();
    assert_eq!(
        kinds(&events),
        [
            "Rendered",
            "Creating",
            "Created",
            "Address",
            "LoggedIn",
            "AgentInstalled",
            "Bootstrap",
            "ShellReady",
            "Ready"
        ],
        "{events:?}"
    );
    let installed = events
        .iter()
        .find_map(|e| match e {
            Event::AgentInstalled {
                arch,
                sha256,
                embedded,
            } => Some((*arch, sha256.clone(), *embedded)),
            _ => None,
        })
        .expect("installed");
    let sum = spuff::agent_bin::sha256_hex(&sent);
    assert_eq!(installed, (Arch::X86_64, sum, false));

    // A script is no agent: refused, nothing installed in its place.
    let work = tempfile::tempdir().expect("tempdir");
    let script = work.path().join("spuff-agent");
    std::fs::write(&script, "#!/bin/sh\necho pwned\n").expect("script");
    let mut plan = lab.plan("vm-script");
    plan.upload_agent = Some((AgentBinary::File(script), AgentInstall::default()));
    let e = lab.up(plan).await.err().expect("refused");
    let chain = format!("{:?}", anyhow::Error::new(e));
    assert!(chain.contains("it is a script"), "{chain}");
}

/// Polls the agent's health on `port` until it answers (30 s).
fn agent_answers(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match crate::cli_e2e::http_get(port, "/health") {
            Ok(reply) if reply.starts_with("HTTP/1.1 200") => return,
            other => assert!(
                Instant::now() < deadline,
                "the agent does not answer: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 18: an arm64 size gets the arm64 agent spuff carries, sent
/// compressed, checked on the VM against the SHA-256 recorded at build
/// time, and started; on this x86_64 machine the fake VM runs it under
/// qemu-aarch64-static, so this is also the arm64 agent's smoke run: it
/// must answer its health check. The x86_64 size gets the x86_64 one.
#[tokio::test]
async fn up_should_upload_the_embedded_agent_for_the_vms_architecture() {
    if spuff::agent_bin::all().is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must build spuff with its agents (ci/build-agents.sh)"
        );
        eprintln!("skipped: this spuff carries no agents (run ci/build-agents.sh)");
        return;
    }
    for arch in [Arch::Aarch64, Arch::X86_64] {
        let mut lab = Lab::start(Boot::Ready).await;
        if arch == Arch::Aarch64 {
            // Sizes that are arm64, as Hetzner's `cax*` and EC2's Graviton
            // types are (their mapping: provider_hetzner, provider_aws).
            let mut arm = crate::util::tweaked::Tweaked::new(lab.provider.clone());
            arm.arch = Some(Arch::Aarch64);
            lab.provider = Arc::new(arm);
        }
        let mut plan = lab.plan("vm-arch");
        plan.upload_agent = Some((AgentBinary::Embedded, AgentInstall::default()));
        if let Err(e) = lab.up(plan).await {
            panic!("up failed: {e:?}\n--- sshd ---\n{}", lab.vm_log());
        }
        let carried = spuff::agent_bin::embedded(arch).expect("carried");
        let (_, root) = lab.vm();
        let installed =
            std::fs::read(root.join(api::BINARY_PATH.trim_start_matches('/'))).expect("installed");
        assert_eq!(spuff::agent_bin::sha256_hex(&installed), carried.sha256);
        assert_eq!(
            spuff::agent_bin::check_elf(&installed, "installed", arch),
            Ok(())
        );
        let said = lab.recorder.events().into_iter().find_map(|e| match e {
            Event::AgentInstalled { arch, embedded, .. } => Some((arch, embedded)),
            _ => None,
        });
        assert_eq!(said, Some((arch, true)));
        let port = lock(&lab.vms)[0].agent_port;
        agent_answers(port);
    }
}
