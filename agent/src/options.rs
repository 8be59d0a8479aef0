//! How an agent is set up: its options, the filesystem paths it reads, the
//! idle action runner, loading the config file and binding the listener.
//!
//! Every path the agent reads is a field of [`SystemPaths`], so tests (the
//! agent's own and the spuff library's, which run the agent in-process) point
//! it at a temporary directory instead of `/var/log` and `/run`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use spuff_agent_api::{AgentConfig, IdleAction};

use crate::error::Error;

/// The filesystem paths the agent reads (and, for warnings, writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPaths {
    /// The only directory `GET /logs` serves files from (`/var/log`).
    pub log_dir: PathBuf,
    /// The bootstrap's status file (`/opt/spuff/bootstrap.status`).
    pub bootstrap_status: PathBuf,
    /// cloud-init's runtime directory, with `status.json` and `result.json`
    /// (`/run/cloud-init`).
    pub cloud_init_run_dir: PathBuf,
    /// cloud-init's state directory, with `instance/boot-finished`
    /// (`/var/lib/cloud`).
    pub cloud_lib_dir: PathBuf,
    /// The `cloud-init` program, asked (`status --format=json`) only when its
    /// files are missing; `None` never runs it.
    pub cloud_init_cli: Option<PathBuf>,
    /// The utmp file listing logged-in sessions (`/run/utmp`).
    pub utmp: PathBuf,
    /// Where terminal names from utmp live (`/dev`, so `pts/0` is
    /// `/dev/pts/0`); idle warnings are written there.
    pub dev_dir: PathBuf,
    /// The kernel's process table (`/proc`), read to find logged-in sshd
    /// processes whose traffic counts as activity; `None` does not count
    /// SSH connections (only utmp sessions).
    pub proc_dir: Option<PathBuf>,
    /// The kernel log (`/dev/kmsg`): each stop decision is written there
    /// too, so it reaches the VM's console, where the provider (and, for a
    /// local VM, spuff) can still read it once the VM is off.
    pub kmsg: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths {
            log_dir: PathBuf::from("/var/log"),
            bootstrap_status: PathBuf::from(spuff_agent_api::BOOTSTRAP_STATUS_PATH),
            cloud_init_run_dir: PathBuf::from("/run/cloud-init"),
            cloud_lib_dir: PathBuf::from("/var/lib/cloud"),
            cloud_init_cli: Some(PathBuf::from("cloud-init")),
            utmp: PathBuf::from("/run/utmp"),
            dev_dir: PathBuf::from("/dev"),
            proc_dir: Some(PathBuf::from("/proc")),
            kmsg: PathBuf::from("/dev/kmsg"),
        }
    }
}

impl SystemPaths {
    /// The default layout re-rooted under `root` (`root/var/log`,
    /// `root/opt/spuff/bootstrap.status`, `root/run/utmp`, ...), with the
    /// `cloud-init` program and the SSH connection count disabled (a
    /// directory tree cannot stand in for `/proc` and the kernel's sockets).
    /// Nothing is created.
    ///
    /// # Examples
    ///
    /// ```
    /// let paths = spuff_agent::SystemPaths::under("/tmp/fake-vm");
    /// assert_eq!(paths.log_dir, std::path::Path::new("/tmp/fake-vm/var/log"));
    /// ```
    pub fn under(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        let d = SystemPaths::default();
        let rebase = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        SystemPaths {
            log_dir: rebase(&d.log_dir),
            bootstrap_status: rebase(&d.bootstrap_status),
            cloud_init_run_dir: rebase(&d.cloud_init_run_dir),
            cloud_lib_dir: rebase(&d.cloud_lib_dir),
            cloud_init_cli: None,
            utmp: rebase(&d.utmp),
            dev_dir: rebase(&d.dev_dir),
            proc_dir: None,
            kmsg: rebase(&d.kmsg),
        }
    }
}

/// Carries out the idle action when the deadline passes.
///
/// The agent calls it from a blocking thread, at most once per idle period.
/// Tests inject their own to see the action fire without powering anything
/// off.
pub trait IdleActionRunner: Send + Sync + 'static {
    /// Performs `action` (never [`IdleAction::None`]).
    ///
    /// # Errors
    ///
    /// When the action could not be started; the agent logs it and tries
    /// again after the next activity and idle period.
    fn run(&self, action: IdleAction) -> io::Result<()>;
}

/// The real runner: `systemctl poweroff`, or a self-destroy with
/// [`SELF_DESTROY_PATH`](spuff_agent_api::SELF_DESTROY_PATH) that falls back
/// to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemIdleActionRunner;

impl IdleActionRunner for SystemIdleActionRunner {
    fn run(&self, action: IdleAction) -> io::Result<()> {
        match action {
            IdleAction::Poweroff => crate::platform::poweroff(),
            IdleAction::Destroy => {
                let path = Path::new(spuff_agent_api::SELF_DESTROY_PATH);
                match crate::destroy::self_destroy(path) {
                    Ok(provider) => {
                        tracing::warn!(%provider, "self-destroy accepted; the provider deletes this VM");
                        // Stop the work at once; the delete ends the bill.
                        crate::platform::poweroff()
                    }
                    Err(err) => {
                        tracing::error!(%err, "self-destroy failed; powering off instead");
                        crate::platform::poweroff()
                    }
                }
            }
            IdleAction::None => Ok(()),
        }
    }
}

/// Everything an agent needs to run; give it to
/// [`AppState::new`](crate::AppState::new).
///
/// The defaults are the production ones with an empty token, which
/// [`AppState::new`](crate::AppState::new) refuses unless
/// [`allow_no_auth`](AgentOptions::allow_no_auth) is set.
///
/// # Examples
///
/// ```
/// use spuff_agent::{AgentOptions, SystemPaths};
/// use spuff_agent_api::AgentConfig;
///
/// let options = AgentOptions {
///     config: AgentConfig::new("s3cret"),
///     paths: SystemPaths::under("/tmp/fake-vm"),
///     ..AgentOptions::default()
/// };
/// let state = spuff_agent::AppState::new(options).unwrap();
/// # drop(state);
/// ```
#[derive(Clone)]
pub struct AgentOptions {
    /// The agent's configuration: token, idle deadline and action, CPU
    /// threshold. Its `port` is only used by the binary.
    pub config: AgentConfig,
    /// Serve without a token (the config's token is then ignored). Only for
    /// local development; the binary requires a loudly named flag for it.
    pub allow_no_auth: bool,
    /// Where the agent reads the system's state.
    pub paths: SystemPaths,
    /// What carries out the idle action.
    pub idle_runner: Arc<dyn IdleActionRunner>,
    /// How often the monitor samples CPU, reads utmp and checks the idle
    /// deadline (5 s).
    pub monitor_interval: Duration,
    /// `POST /exec` timeout when the request has none (30 s).
    pub exec_default_timeout: Duration,
    /// The longest `POST /exec` timeout a request may ask for (1 h).
    pub exec_max_timeout: Duration,
    /// The most bytes of stdout, and separately of stderr, an exec returns
    /// (1 MiB); the rest is read and dropped.
    pub exec_output_cap: usize,
    /// The largest request body accepted (64 KiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// How many connections [`serve`](crate::serve) handles at once (64);
    /// more wait to be accepted.
    pub max_connections: usize,
    /// How long a client has to send a request's head (10 s) before its
    /// connection is closed.
    pub header_read_timeout: Duration,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            config: AgentConfig::new(""),
            allow_no_auth: false,
            paths: SystemPaths::default(),
            idle_runner: Arc::new(SystemIdleActionRunner),
            monitor_interval: Duration::from_secs(5),
            exec_default_timeout: Duration::from_secs(30),
            exec_max_timeout: Duration::from_secs(3600),
            exec_output_cap: 1 << 20,
            max_body_bytes: 64 << 10,
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `config`'s own Debug redacts the token.
        f.debug_struct("AgentOptions")
            .field("config", &self.config)
            .field("allow_no_auth", &self.allow_no_auth)
            .field("paths", &self.paths)
            .field("monitor_interval", &self.monitor_interval)
            .field("exec_default_timeout", &self.exec_default_timeout)
            .field("exec_max_timeout", &self.exec_max_timeout)
            .field("exec_output_cap", &self.exec_output_cap)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// Reads the agent's JSON config file ([`AgentConfig`]).
///
/// The file holds the token, so it should be mode 0600; a file that its
/// group or others can read is accepted with a logged warning (refusing it
/// would leave a VM without its agent over a permission bit).
///
/// # Errors
///
/// [`Error::ReadConfig`] when the file cannot be read (including when it does
/// not exist) and [`Error::ParseConfig`] when it is not a valid config.
pub fn load_config(path: &Path) -> Result<AgentConfig, Error> {
    let read_err = |source| Error::ReadConfig {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if let Some(mode) = crate::platform::group_or_world_access(&meta) {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "the agent config holds the token but others can read it; chmod 600 it"
        );
    }
    let data = std::fs::read(path).map_err(read_err)?;
    serde_json::from_slice(&data).map_err(|source| Error::ParseConfig {
        path: path.to_path_buf(),
        source,
    })
}

/// Binds the agent's listener, refusing any address but a loopback one: the
/// agent is only ever reached through SSH on the VM itself.
///
/// # Errors
///
/// [`Error::NonLoopbackBind`] for an address like `0.0.0.0` and
/// [`Error::Bind`] when the port cannot be bound.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    if !addr.ip().is_loopback() {
        return Err(Error::NonLoopbackBind { addr });
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
