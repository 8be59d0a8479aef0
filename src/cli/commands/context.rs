//! What most commands need: settings, the state store, a provider client for
//! a VM's provider, and an SSH config that pins the VM's host key.

use std::sync::Arc;

use anyhow::Context as _;
use spuff::config::Settings;
use spuff::provider::{Provider, ProviderConfig, ProviderRegistry, ProviderType};
use spuff::ssh::{self, AgentLocation, AuthMethod, HostKeyPolicy};
use spuff::state::{Instance, Store};

use crate::cli::Ui;

/// Overrides the provider API's base URL (a proxy, a fake cloud in tests).
pub(crate) const API_URL_VAR: &str = "SPUFF_API_URL";
/// An extra CA certificate (PEM file) to trust for the provider API.
pub(crate) const CA_FILE_VAR: &str = "SPUFF_CA_FILE";
/// The most one provider request may take, retries included (`10s`, `2m`;
/// default 40s): a script that must fail fast on an unreachable API sets it
/// low.
pub(crate) const API_TIMEOUT_VAR: &str = "SPUFF_API_TIMEOUT";

/// The agent's port on the VM, when it is not the default (the agent reads
/// the same variable).
pub(crate) const AGENT_PORT_VAR: &str = "SPUFF_AGENT_PORT";

/// The agent's port on the VM.
pub(crate) fn agent_port() -> u16 {
    std::env::var(AGENT_PORT_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(spuff::agent::api::DEFAULT_PORT)
}

/// Holds `instance` awake while a command uses it through `session`: its
/// agent gets a heartbeat now and every [`spuff::agent::KEEP_AWAKE_EVERY`]
/// until the returned guard is dropped.
///
/// When the VM's lifetime (`up --ttl`) is about to end, `ui` gets a warning
/// line: the command cannot hold that stop off, and its user should know.
pub(crate) fn keep_awake(
    instance: &Instance,
    session: &ssh::Session,
    ui: &Ui,
) -> spuff::agent::KeepAwake {
    let mut config = spuff::agent::ClientConfig::new(instance.agent_token.clone());
    config.port = agent_port();
    let (ui, name) = (ui.clone(), instance.name.clone());
    spuff::agent::KeepAwake::start_with(
        spuff::agent::Client::new(session.clone(), config),
        spuff::agent::KEEP_AWAKE_EVERY,
        move |stop| ui.warn_anywhere(ttl_warning(&name, stop)),
    )
}

/// When `instance` does not answer: what its provider says (off, and why;
/// gone), or `None` when it is running or the provider cannot be asked in
/// a few seconds (then the connection error itself is the news).
pub(crate) async fn whereabouts(
    instance: &Instance,
    ctx: &Context,
) -> Option<spuff::vm::off::Whereabouts> {
    use spuff::vm::off::Whereabouts;
    let provider = ctx.provider(&instance.provider).ok()?;
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        spuff::vm::off::whereabouts(&*provider, instance),
    )
    .await;
    match asked {
        Ok(Ok(w @ (Whereabouts::Off { .. } | Whereabouts::Gone | Whereabouts::Interrupted))) => {
            Some(w)
        }
        _ => None,
    }
}

/// A connection to `instance` was lost mid-command: asks its provider
/// whether it is off or gone and puts that on top of `err`, so the user
/// (and a script, by the exit code) learns the VM went away and why.
/// Otherwise `err` as it is.
///
/// A closed connection may be a shutdown the provider has not noticed yet,
/// so it asks again for up to 30 s (and says so). A VM that stopped
/// answering has been silent for the keepalives' whole grace already; one
/// question is enough (issue 17: this wait made a hung VM take 52 s).
pub(crate) async fn explain_loss(
    instance: &Instance,
    ctx: &Context,
    err: anyhow::Error,
) -> anyhow::Error {
    let unanswered = err.chain().any(|e| {
        matches!(
            e.downcast_ref::<spuff::ssh::Error>(),
            Some(spuff::ssh::Error::ConnectionLost {
                unanswered: true,
                ..
            })
        )
    });
    let patience = if unanswered {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::from_secs(30)
    };
    let step = ctx.ui.spinner(format!(
        "Connection to {} lost; asking {} what became of it",
        spuff::terminal_safe(&instance.name),
        instance.provider
    ));
    let deadline = tokio::time::Instant::now() + patience;
    let found = loop {
        if let Some(w) = whereabouts(instance, ctx).await {
            break Some(w);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    step.clear();
    match found {
        Some(w) => err.context(describe_whereabouts(instance, &w)),
        None => err,
    }
}

/// One sentence on a VM that is off or gone, for people; text from the VM
/// (its console) is escaped.
pub(crate) fn describe_whereabouts(instance: &Instance, w: &spuff::vm::off::Whereabouts) -> String {
    use spuff::vm::off::Whereabouts;
    let name = spuff::terminal_safe(&instance.name);
    match w {
        Whereabouts::Off { decision, since } => {
            let bills = spuff::provider::ProviderInfo::by_name(&instance.provider)
                .is_some_and(|p| p.stopped_vm_bills);
            let since = since.map(|t| format!(" since {t}")).unwrap_or_default();
            let why = match decision {
                Some(d) => format!(" ({})", spuff::terminal_safe(d)),
                None => String::new(),
            };
            let cost = if bills {
                "it still bills while off; `spuff down` or `spuff gc` ends it"
            } else {
                "it does not bill while off; `spuff down` removes it"
            };
            format!("{name} is powered off{since}{why}; {cost}, `spuff start {name}` powers it on")
        }
        Whereabouts::Interrupted => format!(
            "{name} was taken back by {} (a spot interruption) and has ended; \
             `spuff down {name}` forgets it, `spuff up --spot` makes another",
            instance.provider
        ),
        _ => format!(
            "{name} is gone at {}; `spuff down {name}` forgets it",
            instance.provider
        ),
    }
}

/// Whether an interactive session forwards the user's ssh-agent: the flags
/// win, then the config's `forward_agent` (on by default). When it does, a
/// line says so, since a root user on a compromised VM could use the agent
/// while the session is open (issue 13).
pub(crate) fn forward_agent(no: bool, yes: bool, ctx: &Context) -> bool {
    let on = !no && (yes || ctx.settings.forward_agent);
    if on && ctx.ui.interactive() {
        ctx.ui.info(
            "Your ssh-agent is forwarded to the VM while this session is open \
             (`--no-agent` or `spuff config set forward_agent off` turns it off)",
        );
    }
    on
}

/// The warning a running command prints before its VM's lifetime ends.
pub(crate) fn ttl_warning(name: &str, stop: &spuff::agent::api::PlannedStop) -> String {
    format!(
        "{name} will {} in {} (at {}): its lifetime (up --ttl) ends, in use or not. \
         Save your work; `spuff up` makes a new VM.",
        stop.action,
        humantime::format_duration(std::time::Duration::from_secs(stop.in_seconds)),
        stop.at
    )
}

/// The Proxmox password for `proxmox_user` (never kept in the config).
const PROXMOX_PASSWORD_VAR: &str = "PROXMOX_VE_PASSWORD";

#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) ui: Ui,
    pub(crate) settings: Settings,
    pub(crate) store: Store,
}

impl Context {
    /// Loads the config (printing its warnings) and opens the state store.
    pub(crate) fn load(ui: &Ui) -> anyhow::Result<Context> {
        let settings = Settings::load_default().context("cannot load the configuration")?;
        for warning in &settings.warnings {
            ui.warn(warning);
        }
        let store = Store::open_default().context("cannot open spuff's state")?;
        Ok(Context {
            ui: ui.clone(),
            settings,
            store,
        })
    }

    /// A client for the named provider, with the token for it.
    pub(crate) fn provider(&self, name: &str) -> anyhow::Result<Arc<dyn Provider>> {
        let kind: ProviderType = name.parse()?;
        let token = self
            .settings
            .token_for(kind, |v| std::env::var(v).ok())
            .unwrap_or_default();
        let mut config = ProviderConfig::new(token);
        config.local = self.settings.local.clone();
        let file = &self.settings.file;
        config.aws.profile = file.aws_profile.clone();
        config.aws.regions = file.aws_regions.clone();
        config.aws.ssh_cidr = file.aws_ssh_cidr.clone();
        // The configured region is where new VMs go and where `list` looks
        // first; else the profile's.
        if self.settings.provider == ProviderType::Aws {
            config.aws.region = file.region.clone();
        }
        if kind == ProviderType::Proxmox {
            self.proxmox_config(&mut config)?;
        }
        if let Ok(url) = std::env::var(API_URL_VAR)
            && !url.is_empty()
        {
            config.base_url = Some(url);
        }
        if let Some(ca) = std::env::var_os(CA_FILE_VAR).filter(|v| !v.is_empty()) {
            config.http.extra_ca_file = Some(ca.into());
        }
        if let Ok(text) = std::env::var(API_TIMEOUT_VAR)
            && !text.trim().is_empty()
        {
            let total = humantime::parse_duration(text.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!("{API_TIMEOUT_VAR}={text:?} is not a duration such as 10s or 2m")
                })?;
            config.http.retry.total = total;
            // One try cannot outlast the whole budget.
            config.timeouts.request = config.timeouts.request.min(total);
            config.timeouts.connect = config.timeouts.connect.min(total);
        }
        Ok(ProviderRegistry::with_defaults().create(kind, config)?)
    }

    /// The Proxmox settings: the cluster's URL (SPUFF_API_URL still wins),
    /// the template, node and clone kind, and how to reach a node over SSH
    /// for snippets, its host key checked against the user's known_hosts
    /// and spuff's own (never accepted blindly).
    fn proxmox_config(&self, config: &mut ProviderConfig) -> anyhow::Result<()> {
        let file = &self.settings.file;
        if config.base_url.is_none() {
            config.base_url = file
                .proxmox_url
                .as_deref()
                .map(spuff::config::proxmox_url)
                .transpose()?;
        }
        if let Some(pin) = &file.proxmox_fingerprint {
            config.http.pinned_cert_sha256 =
                Some(spuff::provider::parse_sha256_fingerprint(pin).map_err(anyhow::Error::msg)?);
        }
        let p = &mut config.proxmox;
        if let Some(user) = &file.proxmox_user {
            // Never in the file: passwords come from the environment.
            let password = std::env::var(PROXMOX_PASSWORD_VAR)
                .ok()
                .filter(|p| !p.is_empty())
                .with_context(|| {
                    format!("proxmox_user is {user}: export {PROXMOX_PASSWORD_VAR} with its password (or use an API token)")
                })?;
            p.login = Some((user.clone(), spuff::Secret::new(password)));
        }
        p.template = file.proxmox_template;
        p.node = file.proxmox_node.clone();
        p.full_clone = file.proxmox_full_clone.as_deref() == Some("on");
        p.storage = file.proxmox_storage.clone();
        p.ipconfig = file.proxmox_ipconfig.clone();
        if let Some(text) = &file.proxmox_node_ssh {
            let (user, host, port) = spuff::config::node_ssh(text)?;
            let mut ssh = ssh::Config::new(host, user);
            ssh.port = port;
            ssh.auth = self.auth_methods();
            let mut known = Vec::new();
            known.extend(spuff::paths::user_known_hosts().ok());
            known.extend(spuff::paths::known_hosts_path().ok());
            ssh.host_keys = HostKeyPolicy::strict(known);
            let mut node = spuff::provider::proxmox::NodeSsh::new(ssh);
            if let Some(text) = &file.proxmox_snippets {
                let (storage, dir) = spuff::config::snippets(text)?;
                node.storage = storage;
                node.dir = dir;
            }
            p.node_ssh = Some(node);
        }
        Ok(())
    }

    /// The configured provider's client.
    pub(crate) fn default_provider(&self) -> anyhow::Result<Arc<dyn Provider>> {
        self.provider(self.settings.provider.name())
    }

    /// How to log in: the configured key (or OpenSSH's default files) and
    /// the ssh-agent.
    pub(crate) fn auth_methods(&self) -> Vec<AuthMethod> {
        let mut auth = Vec::new();
        match &self.settings.file.ssh_key_path {
            Some(path) => auth.push(AuthMethod::KeyFile(path.clone())),
            None => {
                for path in spuff::paths::default_identity_files().unwrap_or_default() {
                    if path.is_file() {
                        auth.push(AuthMethod::KeyFile(path));
                    }
                }
            }
        }
        // The agent comes last: an unreachable one is only noted in the
        // failure report, never an error by itself.
        auth.push(AuthMethod::Agent(AgentLocation::Default));
        auth
    }

    /// The SSH config for a recorded VM: its address, port and user, and its
    /// host key pinned from state (never trust on first use).
    pub(crate) fn ssh_config(&self, instance: &Instance) -> anyhow::Result<ssh::Config> {
        let ip = instance.address().with_context(|| {
            format!(
                "{} has no address yet (status {})",
                instance.name, instance.status
            )
        })?;
        let key = ssh::PublicKey::from_openssh(&instance.host_key).with_context(|| {
            format!("the host key recorded for {} is unreadable", instance.name)
        })?;
        let mut config = ssh::Config::new(ip.to_string(), &instance.ssh_user);
        config.port = instance.ssh_port;
        config.auth = self.auth_methods();
        config.host_keys = HostKeyPolicy::pinned([key]);
        Ok(config)
    }

    /// Connects to a recorded VM.
    pub(crate) async fn connect(&self, instance: &Instance) -> anyhow::Result<ssh::Session> {
        let config = self.ssh_config(instance)?;
        // A typed error, so a refused host key is explained as the key
        // spuff pinned for this VM (see `spuff::vm::ConnectError`).
        Ok(ssh::Session::connect(config)
            .await
            .map_err(|e| spuff::vm::ConnectError::new(&instance.name, e))?)
    }
}
