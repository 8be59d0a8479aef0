//! `up`: from nothing to a VM that answers SSH with its pinned host key and
//! has finished its bootstrap, recording it before anything can fail.
//!
//! The order is what keeps a VM from billing unseen:
//! 1. render the user-data (refused before anything is created if invalid
//!    or over the provider's limit);
//! 2. insert a state record with no provider id yet, so even a kill during
//!    the create call leaves a name `spuff list` can match with the
//!    provider's spuff-labelled VMs;
//! 3. create, and write the provider id into the record at once;
//! 4. wait for an address, log in with the host key spuff generated
//!    (never trust on first use), upload the agent when asked, follow the
//!    bootstrap until phase 1 is done (`installing` or `ready`): a shell and
//!    the agent are usable then, and phase 2 (packages, dotfiles) goes on in
//!    the background, which `up` does not wait for (issue 11).
//!
//! Every step reports through an [`Observer`]; the library never prints.
//! If a step after the create fails, the record stays (marked
//! [`Lifecycle::Failed`]) and the error says so: the caller decides whether
//! to destroy (`spuff up` asks, or destroys when not interactive).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::AgentInstall;
use crate::agent::api::BootstrapStatus;
use crate::cloudinit::{self, Limit};
use crate::provider::{ImageSpec, InstanceRequest, Provider, ProviderError};
use crate::ssh::{self, RetryPolicy};
use crate::state::{self, Instance, Lifecycle, Store};

// `up`'s steps are reported through the lifecycle's one observer.
use super::{Event, Observer};

/// Everything `up` needs.
#[derive(Clone)]
#[non_exhaustive]
pub struct Plan {
    /// The VM's name (unique in the state store).
    pub name: String,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// Image or snapshot.
    pub image: ImageSpec,
    /// The user-data to boot with; its host key is the one pinned.
    pub user_data: cloudinit::Config,
    /// The provider's user-data limit.
    pub limit: Limit,
    /// How to log in (auth, timeouts); `host`, `port`, `user` and
    /// `host_keys` are filled in by `up` from the provider's
    /// [`SshEndpoint`](crate::provider::SshEndpoint) and the pinned key.
    pub ssh: ssh::Config,
    /// The agent binary to upload, with how to install it; `None` when
    /// the VM downloads it itself (a release URL in the user-data).
    pub upload_agent: Option<(AgentBinary, AgentInstall)>,
    /// How long to wait for the provider to report the VM running.
    pub ready_timeout: Duration,
    /// How to wait for the first login.
    pub login: RetryPolicy,
    /// How long to wait for phase 1 of the bootstrap to finish
    /// (`installing` or `ready`).
    pub bootstrap_timeout: Duration,
    /// How often to look at the bootstrap.
    pub bootstrap_poll: Duration,
    /// A spot VM (EC2), when asked for.
    pub spot: Option<crate::provider::SpotRequest>,
    /// The boot disk's size in GB, when asked for (`up --disk`).
    pub disk_gb: Option<u64>,
    /// The fleet it is part of (`up --count`): recorded, and carried as the
    /// [`FLEET_LABEL`](crate::provider::FLEET_LABEL) label.
    pub fleet: Option<String>,
}

impl Plan {
    /// A plan with spuff's default waits: 5 minutes for the provider, the
    /// default [`RetryPolicy`] for the first login, 20 minutes for the
    /// bootstrap, polled every second.
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        size: impl Into<String>,
        image: ImageSpec,
        user_data: cloudinit::Config,
        limit: Limit,
        ssh: ssh::Config,
    ) -> Self {
        Plan {
            name: name.into(),
            region: region.into(),
            size: size.into(),
            image,
            user_data,
            limit,
            ssh,
            upload_agent: None,
            ready_timeout: Duration::from_secs(300),
            login: RetryPolicy::default(),
            bootstrap_timeout: Duration::from_secs(1200),
            bootstrap_poll: Duration::from_secs(1),
            spot: None,
            disk_gb: None,
            fleet: None,
        }
    }
}

/// Which agent binary `up` uploads to the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentBinary {
    /// The one spuff carries for the VM's architecture
    /// ([`agent_bin::embedded`](crate::agent_bin::embedded)).
    Embedded,
    /// A file, which must be a Linux executable for the VM's architecture
    /// ([`agent_bin::check_elf`](crate::agent_bin::check_elf)); it is
    /// checked before it is sent.
    File(PathBuf),
}

/// What `up` hands back: the record and a live session.
pub struct Up {
    /// The recorded instance (status [`Lifecycle::Ready`]).
    pub instance: Instance,
    /// The session used for the last steps, ready for a shell.
    pub session: ssh::Session,
    /// The bootstrap when `up` returned: [`BootstrapStatus::Installing`]
    /// while phase 2 still runs, `Ready`, or `Failed` when phase 2 failed
    /// (a phase 1 failure is an [`Error`]).
    pub bootstrap: BootstrapStatus,
}

/// Errors from `up`, saying which step failed and whether a VM exists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The user-data could not be rendered: nothing was created.
    #[error("cannot prepare the VM's cloud-init user-data")]
    UserData(#[source] cloudinit::Error),
    /// The state store failed before the create call (nothing was created;
    /// later failures are [`Error::AfterCreate`]).
    #[error("cannot record the VM in local state")]
    State(#[source] state::Error),
    /// The create call failed. `maybe_created` is true when the provider may
    /// have created the VM anyway (the answer was lost).
    #[error("the provider did not create {name}")]
    Create {
        /// The VM's name.
        name: String,
        /// Whether a VM may exist anyway; the record is kept if so.
        maybe_created: bool,
        /// The provider's error.
        #[source]
        source: ProviderError,
    },
    /// A step after the create failed; the VM exists and is recorded.
    #[error("{name} ({provider} {id}) was created, but {step} failed")]
    AfterCreate {
        /// The VM's name.
        name: String,
        /// The provider's name.
        provider: String,
        /// The provider's id.
        id: String,
        /// The step that failed.
        step: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// The name of a VM that exists (or may) and is recorded, if any: what
    /// the caller should offer to destroy.
    pub fn created(&self) -> Option<&str> {
        match self {
            Error::AfterCreate { name, .. } => Some(name),
            Error::Create {
                name,
                maybe_created: true,
                ..
            } => Some(name),
            _ => None,
        }
    }
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::UserData(source) => source.hint(),
            Error::State(source) => source.hint(),
            Error::Create { source, .. } => source.hint(),
            Error::AfterCreate { name, source, .. } => {
                let source: &(dyn std::error::Error + 'static) = source.as_ref();
                if let Some(e) = source.downcast_ref::<LoginFailed>() {
                    return super::pinned_key_refused(&e.source, name).or_else(|| {
                        match &e.console {
                            Some((_, log)) => Some(format!(
                                "the VM did not finish booting; its whole console log is {}",
                                log.display()
                            )),
                            None => crate::Hint::hint(&e.source),
                        }
                    });
                }
                source
                    .downcast_ref::<ssh::Error>()
                    .and_then(|e| super::pinned_key_refused(e, name))
                    .or_else(|| crate::chain_hint(source))
            }
        }
    }
}

/// The first SSH login failed; with the end of the VM's serial console when
/// the provider can read it (a local VM), since that is where a VM that
/// does not boot says why.
#[derive(Debug, thiserror::Error)]
#[error("the VM did not accept an SSH login{}", match console {
    Some((tail, _)) => format!("; its console ends with:\n{tail}"),
    None => String::new(),
})]
#[non_exhaustive]
pub struct LoginFailed {
    /// The last login attempt's error.
    #[source]
    pub source: ssh::Error,
    /// The console's last lines and the log's path.
    pub console: Option<(String, PathBuf)>,
}

/// A `Result` whose error is `up`'s [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Creates, records, waits for and bootstraps a VM (see the module docs).
///
/// # Errors
/// See [`Error`]; [`Error::created`] tells whether a VM is left to clean up.
pub async fn up(
    provider: Arc<dyn Provider>,
    store: &Store,
    plan: Plan,
    observer: &dyn Observer,
) -> Result<Up> {
    let user_data =
        cloudinit::render_with_limit(&plan.user_data, plan.limit).map_err(Error::UserData)?;
    observer.event(Event::Rendered {
        bytes: user_data.len(),
        compressed: user_data.is_compressed(),
    });
    let host_key = plan.user_data.host_key.public_key().clone();
    let image_label = match &plan.image {
        ImageSpec::Ubuntu(v) => format!("ubuntu-{v}"),
        ImageSpec::Debian(v) => format!("debian-{v}"),
        ImageSpec::Custom(v) | ImageSpec::Snapshot(v) => v.clone(),
    };

    // A provider that cannot boot the VM with spuff's user-data makes the
    // login user with the keys; the rest is applied at the first login.
    // Rendered now, so bad input is refused before anything exists.
    let first_login = if provider.delivers_user_data() {
        None
    } else {
        Some(cloudinit::first_login_script(&plan.user_data).map_err(Error::UserData)?)
    };
    let mut request =
        InstanceRequest::new(&plan.name, &plan.region, &plan.size).with_image(plan.image.clone());
    if first_login.is_some() {
        request.login_user = Some(plan.user_data.username.clone());
        request.ssh_keys = plan.user_data.authorized_keys.clone();
    } else {
        request = request.with_user_data(user_data.as_str());
    }
    request.spot = plan.spot.clone();
    request.disk_gb = plan.disk_gb;
    if let Some(fleet) = &plan.fleet {
        request = request.with_label(crate::provider::FLEET_LABEL, fleet);
    }

    // Recorded before the create call, with the spuff id the VM will carry:
    // a kill from here on leaves a record that finds the VM.
    let mut record = Instance::new(
        &plan.name,
        provider.name(),
        "",
        &plan.region,
        &plan.size,
        image_label,
        &plan.user_data.username,
        plan.user_data.host_key.public_key_openssh(),
        crate::util::Secret::new(plan.user_data.agent.token.clone()),
    );
    record.spuff_id = request.spuff_id.clone();
    record.dev = plan.upload_agent.is_some();
    record.expires_at = plan.user_data.agent.expires_at;
    record.fleet = plan.fleet.clone();
    store.insert(&record).map_err(Error::State)?;

    observer.event(Event::Creating);
    let created = match provider.create_instance(&request).await {
        Ok(created) => created,
        Err(source) => {
            // A refusal (bad size, quota, token) created nothing; anything
            // else (a timeout, a 5xx) may have, although the provider did
            // not find it by its spuff id: keep the record as "may exist".
            let maybe_created = source.is_retryable();
            if maybe_created {
                let _ = store.update(&plan.name, |i| i.status = Lifecycle::Unconfirmed);
            } else {
                let _ = store.remove(&plan.name);
            }
            return Err(Error::Create {
                name: plan.name.clone(),
                maybe_created,
                source,
            });
        }
    };
    let id = created.id.clone();
    // From here on a VM exists: every failure, the state store's included,
    // is an `AfterCreate` that names it, so the caller can offer to destroy.
    let after_create = |step: &'static str, source: Box<dyn std::error::Error + Send + Sync>| {
        let _ = store.update(&plan.name, |i| i.status = Lifecycle::Failed);
        Error::AfterCreate {
            name: plan.name.clone(),
            provider: provider.name().to_string(),
            id: id.clone(),
            step,
            source,
        }
    };
    let recording = |e: state::Error| after_create("recording it in local state", Box::new(e));
    store
        .update(&plan.name, |i| i.provider_id = id.clone())
        .map_err(recording)?;
    observer.event(Event::Created { id: id.clone() });

    // The address.
    let ready = if created.is_ready() {
        Ok(created)
    } else {
        match tokio::time::timeout(plan.ready_timeout, provider.wait_ready(&id)).await {
            Ok(result) => result.map_err(|e| Box::new(e) as _),
            Err(_) => Err(format!(
                "the provider did not report it running within {}",
                ssh::fmt_duration(plan.ready_timeout)
            )
            .into()),
        }
    }
    .map_err(|e| after_create("waiting for the VM to start", e))?;
    let endpoint = ready.ssh.clone().ok_or_else(|| {
        after_create(
            "waiting for an address",
            "the provider reports no address to reach it over SSH".into(),
        )
    })?;
    let record = store
        .update(&plan.name, |i| {
            super::apply_endpoint(i, &ready, &endpoint);
            i.status = Lifecycle::Provisioning;
        })
        .map_err(recording)?;
    observer.event(Event::Address { ip: endpoint.host });

    // The first login, with the host key we generated: nothing else passes.
    let started = Instant::now();
    let mut ssh_config = plan.ssh.clone();
    ssh_config.host = endpoint.host.to_string();
    ssh_config.port = record.ssh_port;
    ssh_config.user = record.ssh_user.clone();
    if let Some(script) = &first_login {
        apply_at_first_login(&ssh_config, &plan.login, script, observer)
            .await
            .map_err(|e| after_create("applying spuff's user-data at the first login", e))?;
    }
    ssh_config.host_keys = ssh::HostKeyPolicy::pinned([host_key]);
    let session = match ssh::wait_for_login(ssh_config, &plan.login).await {
        Ok(session) => session,
        Err(source) => {
            // Wrapped only when there is a console to show: callers that
            // look for the SSH error itself still find it otherwise.
            let error: Box<dyn std::error::Error + Send + Sync> =
                match provider.console_tail(&id).await {
                    Some(console) => Box::new(LoginFailed {
                        source,
                        console: Some(console),
                    }),
                    None => Box::new(source),
                };
            return Err(after_create("logging in over SSH", error));
        }
    };
    observer.event(Event::LoggedIn {
        after: started.elapsed(),
    });

    if let Some((binary, install)) = &plan.upload_agent {
        let hint = provider.arch_of_size(&plan.size);
        let (payload, arch) = agent_for_vm(&session, hint, binary)
            .await
            .map_err(|e| after_create("choosing the agent for the VM", e))?;
        let sha256 = payload.sha256().to_string();
        super::install_agent(&session, payload, install)
            .await
            .map_err(|e| after_create("uploading the agent", Box::new(e)))?;
        observer.event(Event::AgentInstalled {
            arch,
            sha256,
            embedded: *binary == AgentBinary::Embedded,
        });
    }

    let bootstrap = follow_bootstrap(&session, &plan, observer)
        .await
        .map_err(|e| after_create("the bootstrap", e))?;
    observer.event(Event::ShellReady { phase_2: bootstrap });

    let instance = store
        .update(&plan.name, |i| i.status = Lifecycle::Ready)
        .map_err(recording)?;
    store.set_active(&plan.name).map_err(recording)?;
    observer.event(Event::Ready);
    Ok(Up {
        instance,
        session,
        bootstrap,
    })
}

/// The VM's architecture: the provider's word for its size when it has
/// one, else the VM's own (`uname -m`).
///
/// # Errors
/// When the VM cannot be asked, or is neither x86_64 nor aarch64.
pub async fn vm_arch(
    session: &ssh::Session,
    hint: Option<crate::agent_bin::Arch>,
) -> std::result::Result<crate::agent_bin::Arch, Box<dyn std::error::Error + Send + Sync>> {
    if let Some(arch) = hint {
        return Ok(arch);
    }
    let out = session.exec("uname -m").await?;
    let machine = String::from_utf8_lossy(&out.stdout).trim().to_string();
    crate::agent_bin::Arch::from_name(&machine).ok_or_else(|| {
        format!(
            "the VM is a {} machine (`uname -m`); spuff has agents for x86_64 and aarch64",
            crate::terminal_safe(&machine)
        )
        .into()
    })
}

/// The agent to upload for the VM behind `session`, checked: the embedded
/// one for its architecture, or the file, which must be a Linux executable
/// for it.
async fn agent_for_vm(
    session: &ssh::Session,
    hint: Option<crate::agent_bin::Arch>,
    binary: &AgentBinary,
) -> std::result::Result<
    (super::AgentPayload, crate::agent_bin::Arch),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let arch = vm_arch(session, hint).await?;
    let payload = match binary {
        AgentBinary::Embedded => {
            let agent = crate::agent_bin::embedded(arch)
                .ok_or(crate::agent_bin::AgentError::NoneEmbedded { arch })?;
            super::AgentPayload::embedded(agent)
        }
        AgentBinary::File(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| ssh::Error::LocalIo {
                    operation: "reading the agent binary",
                    path: path.clone(),
                    source: e,
                })?;
            crate::agent_bin::check_elf(&bytes, &path.display().to_string(), arch)?;
            super::AgentPayload::hashed(bytes).await
        }
    };
    Ok((payload, arch))
}

/// For a VM that booted without spuff's user-data: logs in trusting the
/// VM's own host key on first use (there is nothing to pin yet, and the
/// [`Event::TrustedOnFirstUse`] says so), runs the user-data as a script
/// as root, and leaves; the script installs spuff's host key and reloads
/// sshd, so the caller's next login is pinned like any other.
async fn apply_at_first_login(
    config: &ssh::Config,
    login: &RetryPolicy,
    script: &cloudinit::FirstLoginScript,
    observer: &dyn Observer,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The trusted key lives only as long as this login.
    let dir = tempfile::tempdir()?;
    let mut config = config.clone();
    config.host_keys = ssh::HostKeyPolicy::accept_new(dir.path().join("known_hosts"));
    let session = ssh::wait_for_login(config.clone(), login).await?;
    let fingerprint = config
        .host_keys
        .known_keys(&config.host, config.port)?
        .first()
        .map(|(key, _)| ssh::fingerprint(key))
        .unwrap_or_default();
    observer.event(Event::TrustedOnFirstUse { fingerprint });
    // On stdin: the script holds the host's private key and the agent's
    // token, which a command line would show to every user of the VM.
    let sudo = if session.user() == "root" {
        ""
    } else {
        "sudo -n "
    };
    let output = session
        .exec_with_input(
            &format!("{sudo}sh -s"),
            script.as_str().as_bytes(),
            64 * 1024,
        )
        .await?;
    let _ = session.close().await;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(5).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        return Err(format!(
            "the first-login script {} (as {}{}): {}",
            output.status,
            session.user(),
            if sudo.is_empty() { "" } else { " with sudo" },
            crate::terminal_safe(&last.join(" / "))
        )
        .into());
    }
    observer.event(Event::UserDataApplied);
    Ok(())
}

/// Polls the bootstrap over SSH until phase 1 is done, and returns the
/// status then (`installing`, `ready`, or `failed` from phase 2). A VM from
/// before the `installing` state goes from `running` straight to `ready`,
/// so it is followed to the end as before.
async fn follow_bootstrap(
    session: &ssh::Session,
    plan: &Plan,
    observer: &dyn Observer,
) -> std::result::Result<BootstrapStatus, Box<dyn std::error::Error + Send + Sync>> {
    let log_path = crate::agent::api::BOOTSTRAP_LOG_PATH;
    let deadline = Instant::now() + plan.bootstrap_timeout;
    let mut last: Option<(BootstrapStatus, Option<String>)> = None;
    loop {
        let progress = super::bootstrap::progress(session).await?;
        let status = progress.status;
        let now = (status, progress.line.clone());
        if last.as_ref() != Some(&now) {
            observer.event(Event::Bootstrap {
                status,
                line: progress.line.clone(),
            });
            last = Some(now);
        }
        if progress.shell_ready() {
            return Ok(status);
        }
        if status == BootstrapStatus::Failed {
            return Err(format!(
                "the VM's bootstrap failed in phase 1; its log is {log_path} \
                 (`spuff logs --bootstrap`)"
            )
            .into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "phase 1 of the bootstrap did not finish within {} (status {status})",
                ssh::fmt_duration(plan.bootstrap_timeout)
            )
            .into());
        }
        tokio::time::sleep(plan.bootstrap_poll).await;
    }
}
