//! The spuff agent's HTTP API, defined once.
//!
//! `spuff-agent` runs on every spuff VM, bound to 127.0.0.1 only, and the
//! `spuff` library reaches it through an SSH `direct-tcpip` channel. Both
//! sides use the types in this crate, so a field renamed on one side cannot
//! silently become `null` on the other. The crate only depends on `serde`
//! (and `humantime` for RFC 3339 timestamps), so the client side does not pull
//! in the agent's server stack.
//!
//! The JSON shapes follow the original design (`GET /status` and friends); the
//! fields spuff adds are additive, so an older client still parses them.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The port the agent listens on, on the VM's loopback interface only.
pub const DEFAULT_PORT: u16 = 7575;

/// The header that carries the agent token on every route but `/health`.
pub const TOKEN_HEADER: &str = "X-Spuff-Token";

/// Where cloud-init writes the agent's configuration ([`AgentConfig`], JSON).
pub const CONFIG_PATH: &str = "/etc/spuff/agent.json";

/// Where the agent binary is installed on the VM.
pub const BINARY_PATH: &str = "/opt/spuff/spuff-agent";

/// The bootstrap's progress file: one of `running`, `installing`, `ready`,
/// `failed` ([`BootstrapStatus`]).
pub const BOOTSTRAP_STATUS_PATH: &str = "/opt/spuff/bootstrap.status";

/// The bootstrap's log file, the one `spuff logs --bootstrap` shows.
pub const BOOTSTRAP_LOG_PATH: &str = "/var/log/spuff-bootstrap.log";

/// The API paths, so neither side spells them by hand.
pub mod paths {
    /// `GET`, no token: [`Health`](crate::Health).
    pub const HEALTH: &str = "/health";
    /// `GET`: [`Status`](crate::Status).
    pub const STATUS: &str = "/status";
    /// `GET`: [`Metrics`](crate::Metrics).
    pub const METRICS: &str = "/metrics";
    /// `GET`: [`ProcessList`](crate::ProcessList).
    pub const PROCESSES: &str = "/processes";
    /// `POST` [`ExecRequest`](crate::ExecRequest): [`ExecResponse`](crate::ExecResponse).
    pub const EXEC: &str = "/exec";
    /// `POST`, empty body: [`Heartbeat`](crate::Heartbeat).
    pub const HEARTBEAT: &str = "/heartbeat";
    /// `GET ?file=&lines=` ([`LogsQuery`](crate::LogsQuery)): [`Logs`](crate::Logs).
    pub const LOGS: &str = "/logs";
    /// `GET`: [`CloudInit`](crate::CloudInit).
    pub const CLOUD_INIT: &str = "/cloud-init";
    /// `GET`: [`Activity`](crate::Activity).
    pub const ACTIVITY: &str = "/activity";
}

/// A point in time, on the wire as an RFC 3339 UTC string
/// (`2024-01-01T00:05:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(SystemTime::now())
    }

    /// How long ago this was, or zero if it is in the future (clock skew).
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed().unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole seconds are enough for every field that uses this, and they
        // keep the JSON stable to read.
        humantime::format_rfc3339_seconds(self.0).fmt(f)
    }
}

impl FromStr for Timestamp {
    type Err = humantime::TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_rfc3339_weak(s).map(Timestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `GET /health`: answered without a token, so "is the agent up" never needs
/// a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the agent answers.
    pub status: String,
    /// Always `"spuff-agent"`.
    pub service: String,
    /// The agent's version (`CARGO_PKG_VERSION`).
    pub version: String,
}

/// Progress of the VM's two-phase bootstrap, read from
/// [`BOOTSTRAP_STATUS_PATH`].
///
/// The file goes `running` (phase 1: what a login and the agent need) →
/// `installing` (phase 1 done, phase 2 installing packages and dotfiles in
/// the background) → `ready`, or `failed` from either phase. VMs booted
/// before `installing` existed go straight from `running` to `ready`; an
/// agent that predates it reads `installing` as [`BootstrapStatus::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootstrapStatus {
    /// The status file does not exist (yet), or holds something this
    /// version does not know (a newer VM's state).
    Unknown,
    /// Phase 1 is running: the VM is not ready for a login yet.
    Running,
    /// Phase 1 finished, so a shell and the agent are usable; phase 2
    /// (packages, dotfiles) is running in the background.
    Installing,
    /// Both phases finished.
    Ready,
    /// A phase hit an error; the bootstrap log says which step.
    Failed,
}

impl BootstrapStatus {
    /// Parses the status file's content; anything unexpected is `Unknown`.
    pub fn from_file_content(content: &str) -> Self {
        match content.trim() {
            "running" => BootstrapStatus::Running,
            "installing" => BootstrapStatus::Installing,
            "ready" => BootstrapStatus::Ready,
            "failed" => BootstrapStatus::Failed,
            _ => BootstrapStatus::Unknown,
        }
    }

    /// Whether phase 1 has finished: a login and the agent are usable
    /// (`installing` or `ready`). `failed` is not counted: which phase
    /// failed is in the log, not the status file.
    pub fn shell_ready(&self) -> bool {
        matches!(self, BootstrapStatus::Installing | BootstrapStatus::Ready)
    }

    /// The wire and file spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            BootstrapStatus::Unknown => "unknown",
            BootstrapStatus::Running => "running",
            BootstrapStatus::Installing => "installing",
            BootstrapStatus::Ready => "ready",
            BootstrapStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for BootstrapStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Seconds since the VM booted.
    pub uptime_seconds: u64,
    /// Seconds since the last activity that keeps the VM alive
    /// (see [`Activity`]); zero while something holds it.
    pub idle_seconds: u64,
    /// The VM's hostname.
    pub hostname: String,
    /// Whether cloud-init has finished (successfully or not).
    pub cloud_init_done: bool,
    /// cloud-init's own verdict, as in [`CloudInit::status`]: `running`,
    /// `done`, `error`, ... `cloud_init_done` is also true after an `error`,
    /// so this is what tells a clean boot from a failed one. `None` from an
    /// agent that predates the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init_status: Option<String>,
    /// The errors cloud-init recorded (empty when none, or from an agent
    /// that predates the field).
    #[serde(default)]
    pub cloud_init_errors: Vec<String>,
    /// The bootstrap's progress.
    pub bootstrap_status: BootstrapStatus,
    /// `bootstrap_status == ready`, kept for the original clients.
    pub bootstrap_ready: bool,
    /// The agent's version.
    pub agent_version: String,
}

/// `GET /metrics`: a snapshot of the VM's load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// CPU use over all cores, 0–100.
    pub cpu_usage_percent: f64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Physical memory, bytes.
    pub memory_total_bytes: u64,
    /// Space used on the root filesystem, bytes.
    pub disk_used_bytes: u64,
    /// Size of the root filesystem, bytes.
    pub disk_total_bytes: u64,
    /// 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    /// When the snapshot was taken.
    pub timestamp: Timestamp,
}

/// One process in [`ProcessList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Process name (`comm`).
    pub name: String,
    /// CPU use, percent of one core (may exceed 100 on several cores).
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub memory_bytes: u64,
    /// The command line, space-joined; may be empty for kernel threads.
    pub command: String,
}

/// `GET /processes`: the top processes by CPU use, highest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessList {
    /// At most ten processes.
    pub processes: Vec<ProcessInfo>,
}

/// `POST /exec` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// A shell command line, run by `/bin/sh -c`.
    pub command: String,
    /// Seconds before the command's whole process group is killed; the agent
    /// applies its default (30 s) when absent and caps it (1 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// `POST /exec` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecResponse {
    /// The exit code, or -1 when the command was killed by a signal.
    pub exit_code: i32,
    /// The signal that ended the command, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether the timeout killed the command.
    #[serde(default)]
    pub timed_out: bool,
    /// Standard output (lossy UTF-8), at most the agent's cap.
    pub stdout: String,
    /// Standard error (lossy UTF-8), at most the agent's cap.
    pub stderr: String,
    /// Whether output beyond the cap was dropped.
    #[serde(default)]
    pub output_truncated: bool,
    /// Wall time from spawn to exit, milliseconds.
    pub duration_ms: u64,
}

/// `POST /heartbeat` response: the idle timer was reset at `timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When the heartbeat was recorded.
    pub timestamp: Timestamp,
    /// The next stop the agent has planned, so a running command can warn
    /// its user (a heartbeat holds off the idle stop, never the TTL).
    #[serde(default)]
    pub next_stop: Option<PlannedStop>,
}

/// How the agent's stop decisions start in the VM's kernel log, and so on
/// its console (`spuff-agent stop: poweroff: idle for 7200 s (idle_timeout
/// 7200 s)`), where they can still be read once the VM is off.
pub const STOP_ANNOUNCE_PREFIX: &str = "spuff-agent stop: ";

/// Why the agent stops a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Nothing used the VM for [`AgentConfig::idle_timeout_secs`].
    Idle,
    /// The VM reached [`AgentConfig::expires_at`] (`spuff up --ttl`), in use
    /// or not.
    Ttl,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Idle => "idle",
            StopReason::Ttl => "ttl",
        })
    }
}

/// A stop the agent will carry out unless something changes: the idle stop
/// moves with every activity, the TTL stop never does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStop {
    /// Why.
    pub reason: StopReason,
    /// What the agent will do then.
    pub action: IdleAction,
    /// When, at the earliest (the idle stop is this late only if nothing
    /// uses the VM until then).
    pub at: Timestamp,
    /// Seconds from now until [`PlannedStop::at`].
    pub in_seconds: u64,
}

/// `GET /logs` query string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsQuery {
    /// An absolute path of a regular file under `/var/log` (after resolving
    /// symlinks).
    pub file: String,
    /// How many lines from the end; the agent's default is 100, its cap 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
}

/// `GET /logs` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    /// The file read, after resolving symlinks.
    pub file: String,
    /// The last lines, oldest first, without line terminators.
    pub lines: Vec<String>,
}

/// `GET /cloud-init`: what cloud-init itself reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudInit {
    /// cloud-init's status: `not started`, `running`, `done`, `error`,
    /// `disabled`, or `unknown` when it cannot be read.
    pub status: String,
    /// Whether cloud-init has finished, with or without errors.
    pub done: bool,
    /// The errors cloud-init recorded.
    pub errors: Vec<String>,
    /// When `/var/lib/cloud/instance/boot-finished` was written.
    pub boot_finished: Option<Timestamp>,
}

/// What the agent does when the idle deadline passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleAction {
    /// Power the VM off (`systemctl poweroff`). DigitalOcean and Hetzner
    /// still bill a stopped VM: `spuff gc` (or `list`/`up`, which offer it)
    /// destroys it from the user's machine.
    #[default]
    Poweroff,
    /// Delete this VM through its provider's API with the credential in
    /// [`SELF_DESTROY_PATH`] (opt-in: `self_destroy: on`), so the bill ends
    /// without the user's machine; power off instead when that fails.
    Destroy,
    /// Only report idleness.
    None,
}

/// Where `spuff up` puts what a VM needs to delete itself
/// ([`SelfDestroy`], JSON, mode 0600, root): written after the create,
/// when the VM's id is known, and only with `self_destroy: on`.
pub const SELF_DESTROY_PATH: &str = "/etc/spuff/self-destroy.json";

/// The one request that deletes this VM, for [`IdleAction::Destroy`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfDestroy {
    /// The provider's name, for logs.
    pub provider: String,
    /// The https URL a `DELETE` to which deletes exactly this VM.
    pub url: String,
    /// The bearer token for it: one made for this purpose (a DigitalOcean
    /// token with only Droplet delete scopes, a Hetzner token of a project
    /// kept for spuff), or the user's main token only if they agreed.
    pub token: String,
    /// PEM certificates to trust for `url` beyond the system's (the CA a
    /// TLS-inspecting proxy presents), when spuff was given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

impl fmt::Debug for SelfDestroy {
    // The token is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfDestroy")
            .field("provider", &self.provider)
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .finish()
    }
}

impl fmt::Display for IdleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdleAction::Poweroff => "poweroff",
            IdleAction::Destroy => "destroy",
            IdleAction::None => "none",
        })
    }
}

impl FromStr for IdleAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "poweroff" => Ok(IdleAction::Poweroff),
            "destroy" => Ok(IdleAction::Destroy),
            "none" => Ok(IdleAction::None),
            other => Err(format!(
                "unknown idle action {other:?}: expected poweroff, destroy or none"
            )),
        }
    }
}

/// Something that keeps a VM from being idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A logged-in SSH session (seen in utmp / `/dev/pts`).
    SshSession,
    /// A `POST /exec` call, running or recent.
    Exec,
    /// A `POST /heartbeat` from the CLI.
    Heartbeat,
    /// Any other authenticated agent request that changes something (never
    /// a `GET`: looking at a VM is not using it).
    AgentRequest,
    /// CPU use above the configured threshold.
    CpuLoad,
    /// Channel traffic on a logged-in SSH connection of any client (shell,
    /// `exec` without a terminal, SFTP, port forwards, agent forwarding;
    /// OpenSSH, VS Code or spuff). Keepalives and spuff's own requests to the
    /// agent are not traffic.
    SshTraffic,
}

impl fmt::Display for ActivityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActivityKind::SshSession => "ssh_session",
            ActivityKind::Exec => "exec",
            ActivityKind::Heartbeat => "heartbeat",
            ActivityKind::AgentRequest => "agent_request",
            ActivityKind::CpuLoad => "cpu_load",
            ActivityKind::SshTraffic => "ssh_traffic",
        })
    }
}

/// One kind of activity and when it was last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySource {
    /// Which kind.
    pub kind: ActivityKind,
    /// Whether it holds the VM alive right now (a running exec, CPU above
    /// the threshold). For `ssh_session` it means a session is logged in:
    /// sessions count through their terminal's input (each keystroke resets
    /// the idle time), so they never appear in [`Activity::holding`] and a
    /// forgotten session cannot keep a VM alive forever.
    pub active: bool,
    /// Seconds since it was last seen, if ever.
    pub last_seen_seconds_ago: Option<u64>,
    /// A human detail: `2 sessions (dev on pts/0, ...)`, `cpu 73%`.
    pub detail: String,
}

/// One recent event in [`Activity::recent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEvent {
    /// Which kind.
    pub kind: ActivityKind,
    /// When it happened.
    pub at: Timestamp,
    /// A human detail (the request path, the session's user and tty).
    pub detail: String,
}

/// `GET /activity`: what keeps the VM busy, and when the idle action fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Seconds since the last activity; zero while something holds the VM.
    pub idle_seconds: u64,
    /// The idle deadline from the agent's config; `None` means never.
    pub idle_timeout_seconds: Option<u64>,
    /// What happens when the deadline passes.
    pub idle_action: IdleAction,
    /// Seconds until the idle action fires, if a deadline is set.
    pub action_in_seconds: Option<u64>,
    /// The kinds holding the VM alive right now (empty when idle).
    pub holding: Vec<ActivityKind>,
    /// Every kind the agent tracks, active or not.
    pub sources: Vec<ActivitySource>,
    /// The latest events, newest first (at most 50).
    pub recent: Vec<ActivityEvent>,
    /// Every logged-in SSH connection and when it last carried traffic.
    #[serde(default)]
    pub connections: Vec<SshConnection>,
    /// The hard end of the VM's life (`spuff up --ttl`), if it has one.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The earliest stop planned now: the idle stop or the TTL, whichever
    /// comes first; `None` when neither is set.
    #[serde(default)]
    pub next_stop: Option<PlannedStop>,
}

/// A logged-in SSH connection in [`Activity::connections`].
///
/// A connection holds the VM while it carries channel traffic and counts
/// through its last traffic afterwards, the way a terminal counts through
/// its last keystroke: one left open and silent does not keep a VM alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshConnection {
    /// The login user.
    pub user: String,
    /// The session's terminal (`pts/0`), or `notty` for connections without
    /// one (`exec`, SFTP, forwards, VS Code).
    pub tty: String,
    /// The client's address as the VM sees it.
    pub from: String,
    /// The pid of the sshd process serving it.
    pub pid: u32,
    /// Seconds since the agent first saw it.
    pub seen_for_seconds: u64,
    /// Seconds since its last channel traffic, if any was seen.
    pub last_traffic_seconds_ago: Option<u64>,
}

/// The JSON body of every error response (4xx and 5xx).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A message meant for the user; never internal details.
    pub error: String,
}

/// The agent's configuration, written by cloud-init to [`CONFIG_PATH`]
/// (mode 0600, root) so the token never appears in argv, the environment or
/// `systemctl show`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The token clients send in [`TOKEN_HEADER`].
    pub token: String,
    /// The loopback port to listen on.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Seconds without activity before [`AgentConfig::idle_action`];
    /// `None` disables the deadline.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// What to do when the VM has been idle for `idle_timeout_secs`.
    #[serde(default)]
    pub idle_action: IdleAction,
    /// Seconds before acting at which logged-in terminals get a warning.
    #[serde(default = "default_warn_before")]
    pub idle_warning_secs: u64,
    /// CPU use (percent of all cores) at or above which the VM counts as busy.
    #[serde(default = "default_cpu_busy")]
    pub cpu_busy_percent: f64,
    /// The ports the VM's sshd listens on: connections to them count as
    /// activity through their traffic ([`ActivityKind::SshTraffic`]).
    #[serde(default = "default_ssh_ports")]
    pub ssh_ports: Vec<u16>,
    /// A hard end of the VM's life (`spuff up --ttl`): at this time the
    /// agent powers the VM off whether it is in use or not, after warning
    /// like the idle stop does. `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

fn default_ssh_ports() -> Vec<u16> {
    vec![22]
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_warn_before() -> u64 {
    300
}

fn default_cpu_busy() -> f64 {
    20.0
}

impl fmt::Debug for AgentConfig {
    // The token is a secret: a debug print of the config goes to logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("token", &"<redacted>")
            .field("port", &self.port)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("idle_action", &self.idle_action)
            .field("idle_warning_secs", &self.idle_warning_secs)
            .field("cpu_busy_percent", &self.cpu_busy_percent)
            .field("ssh_ports", &self.ssh_ports)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AgentConfig {
    /// A config with `token` and every other field at its default.
    pub fn new(token: impl Into<String>) -> Self {
        AgentConfig {
            token: token.into(),
            port: DEFAULT_PORT,
            idle_timeout_secs: None,
            idle_action: IdleAction::default(),
            idle_warning_secs: default_warn_before(),
            cpu_busy_percent: default_cpu_busy(),
            ssh_ports: default_ssh_ports(),
            expires_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_should_round_trip_as_rfc3339() {
        let t: Timestamp = "2024-01-01T00:05:00Z".parse().expect("parse");
        assert_eq!(t.to_string(), "2024-01-01T00:05:00Z");
    }

    #[test]
    fn bootstrap_status_should_read_the_file_format() {
        assert_eq!(
            BootstrapStatus::from_file_content("ready\n"),
            BootstrapStatus::Ready
        );
        assert_eq!(
            BootstrapStatus::from_file_content(""),
            BootstrapStatus::Unknown
        );
        assert_eq!(
            BootstrapStatus::from_file_content("weird"),
            BootstrapStatus::Unknown
        );
    }

    #[test]
    fn installing_should_round_trip_and_count_as_shell_ready() {
        let s = BootstrapStatus::from_file_content("installing\n");
        assert_eq!(s, BootstrapStatus::Installing);
        assert_eq!(s.as_str(), "installing");
        assert!(s.shell_ready() && BootstrapStatus::Ready.shell_ready());
        assert!(!BootstrapStatus::Running.shell_ready());
        assert!(!BootstrapStatus::Failed.shell_ready());
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(json, "\"installing\"");
        assert_eq!(
            serde_json::from_str::<BootstrapStatus>(&json).expect("parse"),
            s
        );
    }

    /// An agent from before `cloud_init_status` and `cloud_init_errors`
    /// (the original shape) still parses.
    #[test]
    fn status_should_parse_the_original_shape() {
        let s: Status = serde_json::from_str(
            r#"{"uptime_seconds":3600,"idle_seconds":120,"hostname":"spuff-a1b2c3d4",
                "cloud_init_done":true,"bootstrap_status":"ready","bootstrap_ready":true,
                "agent_version":"0.1.0"}"#,
        )
        .expect("parse");
        assert_eq!(s.cloud_init_status, None);
        assert!(s.cloud_init_errors.is_empty());
        assert_eq!(s.bootstrap_status, BootstrapStatus::Ready);
    }

    #[test]
    fn agent_config_debug_should_not_show_the_token() {
        let c = AgentConfig::new("s3cret-token");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn idle_action_should_parse_its_spellings() {
        assert_eq!(
            "none".parse::<IdleAction>().expect("parse"),
            IdleAction::None
        );
        assert!("reboot".parse::<IdleAction>().is_err());
    }
}
