//! What keeps the VM busy, how long it has been idle, and the idle monitor
//! that warns logged-in terminals and then runs the idle action.
//!
//! The rules (also in agent/README.md, "Idleness"):
//! - **Holds** keep the idle time at zero while they last: a running
//!   `POST /exec`, and CPU use at or above `cpu_busy_percent` (sampled by the
//!   monitor). When a hold ends, the idle time counts from its end.
//! - **Events** reset the idle time: `POST /heartbeat` (spuff's `ssh`,
//!   `exec`, `cp` and `tunnel` send one every 30 s while they run), the
//!   start and end of an exec, authenticated requests that change something
//!   (never a `GET`: looking at a VM must not make it busy, or a forgotten
//!   `status --watch` would keep it alive forever), an SSH login or logout,
//!   and input in a logged-in terminal.
//! - **SSH connections** of any client, with or without a terminal (shell,
//!   `exec`, SFTP, port forwards, agent forwarding; OpenSSH, VS Code,
//!   spuff) count through their last channel traffic, measured by
//!   [`crate::sshconn`]: a connection carrying traffic holds the VM, one left
//!   open and silent does not. Keepalives and spuff's own requests to the
//!   agent are not traffic.
//! - **SSH sessions** (utmp `USER_PROCESS` records whose process is alive)
//!   count through their terminal's last input (the tty's access time, the
//!   IDLE column of `w`), not their mere existence: a session forgotten in a
//!   laptop's terminal must not keep a paid VM running for days. That is
//!   also what makes the warning useful: `idle_warning_secs` before the
//!   action, every logged-in terminal gets a `wall`-style message, and any
//!   key pressed there counts as activity.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use spuff_agent_api::{
    Activity, ActivityEvent, ActivityKind, ActivitySource, AgentConfig, IdleAction, PlannedStop,
    SshConnection, StopReason, Timestamp,
};

use crate::options::IdleActionRunner;
use crate::sshconn::{Gauge, Served, Tracked, Update};
use crate::utmp::UtmpEntry;

/// A spuff command heartbeats every 30 s while it runs; a heartbeat this
/// recent means one still runs, which `/activity` shows as holding the VM.
const HEARTBEAT_HOLDS: Duration = Duration::from_secs(75);

/// A connection's traffic is logged as an event again only after this much
/// silence, so a busy connection does not push everything else out of
/// [`Activity::recent`].
const TRAFFIC_EVENT_GAP: Duration = Duration::from_secs(60);

/// How many events [`Activity::recent`] keeps.
const RECENT_EVENTS: usize = 50;

/// Every kind, in the order `sources` lists them.
const KINDS: [ActivityKind; 6] = [
    ActivityKind::SshTraffic,
    ActivityKind::SshSession,
    ActivityKind::Exec,
    ActivityKind::Heartbeat,
    ActivityKind::AgentRequest,
    ActivityKind::CpuLoad,
];

fn kind_index(kind: ActivityKind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// A live session and its terminal's last input.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) entry: UtmpEntry,
    pub(crate) last_input: SystemTime,
}

impl Session {
    fn describe(&self) -> String {
        format!("{} on {}", self.entry.user, self.entry.line)
    }
}

#[derive(Debug)]
struct State {
    last_activity: Instant,
    last_seen: [Option<Instant>; KINDS.len()],
    exec_running: usize,
    cpu_percent: Option<f32>,
    cpu_busy: bool,
    /// The busiest processes while the CPU is busy (`cc1plus 95%, ...`).
    busiest: Option<String>,
    sessions: Vec<Session>,
    connections: Vec<Tracked>,
    /// Whether the latest reading of the connections saw traffic.
    ssh_traffic: bool,
    recent: VecDeque<ActivityEvent>,
    /// The idle period for which the warning was sent / the action run;
    /// cleared by any activity.
    warned: bool,
    fired: bool,
    /// The TTL warning was sent; the TTL action last ran at.
    ttl_warned: bool,
    ttl_fired: Option<Instant>,
}

/// The activity bookkeeping shared by the handlers and the monitor.
#[derive(Debug)]
pub(crate) struct Tracker {
    state: Mutex<State>,
}

impl Tracker {
    /// A tracker whose idle time counts from now (the agent's start: a VM
    /// nobody ever uses still reaches its deadline).
    pub(crate) fn new() -> Self {
        Tracker {
            state: Mutex::new(State {
                last_activity: Instant::now(),
                last_seen: [None; KINDS.len()],
                exec_running: 0,
                cpu_percent: None,
                cpu_busy: false,
                busiest: None,
                sessions: Vec::new(),
                connections: Vec::new(),
                ssh_traffic: false,
                recent: VecDeque::with_capacity(RECENT_EVENTS),
                warned: false,
                fired: false,
                ttl_warned: false,
                ttl_fired: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic in another holder (every
        // update is a few plain assignments), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an event of `kind` now.
    pub(crate) fn record(&self, kind: ActivityKind, detail: impl Into<String>) {
        let mut s = self.lock();
        s.touch(kind, Instant::now());
        s.push_event(kind, detail.into());
    }

    /// Records the start of an exec; the VM is held until the guard drops.
    pub(crate) fn exec_started(self: &Arc<Self>, detail: impl Into<String>) -> ExecHold {
        let mut s = self.lock();
        s.touch(ActivityKind::Exec, Instant::now());
        s.push_event(ActivityKind::Exec, detail.into());
        s.exec_running += 1;
        ExecHold {
            tracker: Arc::clone(self),
        }
    }

    /// Takes a CPU sample; at or above `threshold` percent the VM is held.
    pub(crate) fn set_cpu(&self, percent: f32, threshold: f64) {
        let mut s = self.lock();
        let busy = f64::from(percent) >= threshold;
        let now = Instant::now();
        if busy {
            s.touch(ActivityKind::CpuLoad, now);
            if !s.cpu_busy {
                s.push_event(ActivityKind::CpuLoad, format!("cpu {percent:.0}%"));
            }
        } else if s.cpu_busy {
            // The hold ends now: idle time counts from here.
            s.touch(ActivityKind::CpuLoad, now);
        }
        s.cpu_busy = busy;
        s.cpu_percent = Some(percent);
    }

    /// Names the busiest processes (or `None` once the CPU is not busy).
    pub(crate) fn set_busiest(&self, busiest: Option<String>) {
        self.lock().busiest = busiest.filter(|b| !b.is_empty());
    }

    /// Replaces the session list with a fresh read of utmp, recording logins,
    /// logouts and terminal input since the last read.
    pub(crate) fn set_sessions(&self, sessions: Vec<Session>) {
        let mut s = self.lock();
        let now = Instant::now();
        let key = |x: &Session| (x.entry.pid, x.entry.line.clone());
        let old = std::mem::take(&mut s.sessions);
        for gone in old
            .iter()
            .filter(|o| !sessions.iter().any(|n| key(n) == key(o)))
        {
            s.touch(ActivityKind::SshSession, now);
            s.push_event(
                ActivityKind::SshSession,
                format!("logout {}", gone.describe()),
            );
        }
        for new in &sessions {
            match old.iter().find(|o| key(o) == key(new)) {
                None => {
                    s.touch(ActivityKind::SshSession, now);
                    s.push_event(
                        ActivityKind::SshSession,
                        format!("login {}", new.describe()),
                    );
                }
                Some(o) if new.last_input > o.last_input => {
                    // Input happened at `last_input`, somewhere between the
                    // previous read and now.
                    let ago = new.last_input.elapsed().unwrap_or_default();
                    let at = now.checked_sub(ago).unwrap_or(now);
                    s.touch(ActivityKind::SshSession, at);
                    s.push_event(
                        ActivityKind::SshSession,
                        format!("input {}", new.describe()),
                    );
                }
                Some(_) => {}
            }
        }
        s.sessions = sessions;
    }

    /// Takes what the connection gauge saw in its latest reading.
    pub(crate) fn set_connections(&self, update: Update, connections: Vec<Tracked>, now: Instant) {
        let mut s = self.lock();
        let kind = ActivityKind::SshTraffic;
        // Connecting is not using: `spuff status` connects to look. A
        // connection counts through its traffic only.
        for c in &update.opened {
            s.push_event(kind, format!("connected {c}"));
        }
        for c in &update.closed {
            s.push_event(kind, format!("disconnected {c}"));
        }
        if update.traffic {
            s.touch(kind, now);
            for c in &update.traffic_on {
                let quiet_before = s
                    .connections
                    .iter()
                    .find(|t| t.peer.to_string() == *c)
                    .and_then(|t| t.last_traffic)
                    .is_none_or(|t| now.saturating_duration_since(t) >= TRAFFIC_EVENT_GAP);
                if quiet_before {
                    s.push_event(kind, format!("traffic {c}"));
                }
            }
        }
        s.ssh_traffic = update.traffic;
        s.connections = connections;
    }

    /// Seconds since the last activity, zero while something holds the VM.
    pub(crate) fn idle(&self) -> Duration {
        self.lock().idle(Instant::now())
    }

    /// The `GET /activity` answer.
    pub(crate) fn snapshot(&self, config: &AgentConfig) -> Activity {
        let s = self.lock();
        let now = Instant::now();
        let idle = s.idle(now);
        let deadline = config.idle_timeout_secs;
        let sources = KINDS
            .iter()
            .map(|&kind| {
                let last = s.last_seen[kind_index(kind)];
                let (active, detail) = match kind {
                    ActivityKind::SshSession => {
                        let names: Vec<String> = s.sessions.iter().map(Session::describe).collect();
                        let detail = match names.len() {
                            0 => "no sessions".to_string(),
                            1 => format!("1 session ({})", names.join(", ")),
                            n => format!("{n} sessions ({})", names.join(", ")),
                        };
                        (!s.sessions.is_empty(), detail)
                    }
                    ActivityKind::Exec => {
                        (s.exec_running > 0, format!("{} running", s.exec_running))
                    }
                    ActivityKind::CpuLoad => (
                        s.cpu_busy,
                        match (s.cpu_percent, &s.busiest) {
                            (Some(p), Some(top)) if s.cpu_busy => format!(
                                "cpu {p:.0}% (busy at {}%): {top}",
                                config.cpu_busy_percent
                            ),
                            (Some(p), _) => {
                                format!("cpu {p:.0}% (busy at {}%)", config.cpu_busy_percent)
                            }
                            (None, _) => "not sampled yet".to_string(),
                        },
                    ),
                    ActivityKind::SshTraffic => {
                        let n = s.connections.len();
                        let detail = match n {
                            0 => "no connections".to_string(),
                            1 => "1 connection".to_string(),
                            n => format!("{n} connections"),
                        };
                        (s.ssh_traffic, detail)
                    }
                    ActivityKind::Heartbeat => match last {
                        Some(t) if now.saturating_duration_since(t) <= HEARTBEAT_HOLDS => (
                            true,
                            format!(
                                "a spuff command is running (ssh, exec, cp or tunnel; last heartbeat {} s ago)",
                                now.saturating_duration_since(t).as_secs()
                            ),
                        ),
                        _ => (false, String::new()),
                    },
                    ActivityKind::AgentRequest => (false, String::new()),
                };
                ActivitySource {
                    kind,
                    active,
                    last_seen_seconds_ago: last.map(|t| now.saturating_duration_since(t).as_secs()),
                    detail,
                }
            })
            .collect();
        Activity {
            idle_seconds: idle.as_secs(),
            idle_timeout_seconds: deadline,
            idle_action: config.idle_action,
            action_in_seconds: deadline.map(|d| d.saturating_sub(idle.as_secs())),
            holding: {
                let mut h = s.holding();
                if s.last_seen[kind_index(ActivityKind::Heartbeat)]
                    .is_some_and(|t| now.saturating_duration_since(t) <= HEARTBEAT_HOLDS)
                {
                    h.push(ActivityKind::Heartbeat);
                }
                h
            },
            sources,
            recent: s.recent.iter().cloned().collect(),
            expires_at: config.expires_at,
            next_stop: next_stop(config, idle, SystemTime::now()),
            connections: s
                .connections
                .iter()
                .map(|t| SshConnection {
                    user: t.peer.user.clone(),
                    tty: t.peer.tty.clone(),
                    from: t.peer.from.to_string(),
                    pid: t.pid,
                    seen_for_seconds: now.saturating_duration_since(t.seen_at).as_secs(),
                    last_traffic_seconds_ago: t
                        .last_traffic
                        .map(|l| now.saturating_duration_since(l).as_secs()),
                })
                .collect(),
        }
    }

    /// The next stop planned now (for `POST /heartbeat`).
    pub(crate) fn next_stop(&self, config: &AgentConfig) -> Option<PlannedStop> {
        let idle = self.idle();
        next_stop(config, idle, SystemTime::now())
    }

    /// Live sessions as last read.
    fn sessions(&self) -> Vec<Session> {
        self.lock().sessions.clone()
    }
}

impl State {
    fn touch(&mut self, kind: ActivityKind, at: Instant) {
        let seen = &mut self.last_seen[kind_index(kind)];
        if seen.is_none_or(|t| t < at) {
            *seen = Some(at);
        }
        if at > self.last_activity {
            self.last_activity = at;
        }
        self.warned = false;
        self.fired = false;
    }

    fn push_event(&mut self, kind: ActivityKind, detail: String) {
        let at = Timestamp::now();
        // Coalesce repeats (a client polling /metrics) so they do not push
        // everything else out of the buffer.
        if let Some(front) = self.recent.front_mut()
            && front.kind == kind
            && front.detail == detail
        {
            front.at = at;
            return;
        }
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_back();
        }
        self.recent.push_front(ActivityEvent { kind, at, detail });
    }

    fn holding(&self) -> Vec<ActivityKind> {
        let mut h = Vec::new();
        if self.exec_running > 0 {
            h.push(ActivityKind::Exec);
        }
        if self.cpu_busy {
            h.push(ActivityKind::CpuLoad);
        }
        if self.ssh_traffic {
            h.push(ActivityKind::SshTraffic);
        }
        h
    }

    fn idle(&self, now: Instant) -> Duration {
        if self.exec_running > 0 || self.cpu_busy {
            Duration::ZERO
        } else {
            now.saturating_duration_since(self.last_activity)
        }
    }
}

/// Holds the VM while an exec runs; dropping it (also when the request is
/// cancelled) releases the hold.
#[derive(Debug)]
pub(crate) struct ExecHold {
    tracker: Arc<Tracker>,
}

impl Drop for ExecHold {
    fn drop(&mut self) {
        let mut s = self.tracker.lock();
        s.exec_running = s.exec_running.saturating_sub(1);
        s.touch(ActivityKind::Exec, Instant::now());
    }
}

/// What the monitor should do after a check.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Nothing,
    Warn {
        reason: StopReason,
        action_in: Duration,
    },
    Fire(StopReason),
}

/// How long after a TTL action that did not stop the VM (it failed, or
/// the VM is still shutting down) the agent tries again.
const TTL_RETRY: Duration = Duration::from_secs(60);

/// The earliest of the idle stop and the TTL at `now`, after `idle`.
fn next_stop(config: &AgentConfig, idle: Duration, now: SystemTime) -> Option<PlannedStop> {
    let idle_stop = config
        .idle_timeout_secs
        .filter(|_| config.idle_action != IdleAction::None)
        .map(|t| {
            let left = Duration::from_secs(t).saturating_sub(idle);
            (StopReason::Idle, config.idle_action, left)
        });
    let ttl_stop = config.expires_at.map(|e| {
        let left = e.0.duration_since(now).unwrap_or_default();
        (
            StopReason::Ttl,
            action_for(StopReason::Ttl, config.idle_action),
            left,
        )
    });
    let (reason, action, left) = [idle_stop, ttl_stop]
        .into_iter()
        .flatten()
        .min_by_key(|(_, _, left)| *left)?;
    Some(PlannedStop {
        reason,
        action,
        at: Timestamp(now + left),
        in_seconds: left.as_secs(),
    })
}

impl Tracker {
    /// Decides whether to warn and whether to act: the TTL once it is
    /// reached (in use or not), the idle action once per idle period.
    fn step(&self, config: &AgentConfig, now: SystemTime) -> Step {
        let mut s = self.lock();
        let warn_before = Duration::from_secs(config.idle_warning_secs);
        if let Some(expires) = config.expires_at {
            let left = expires.0.duration_since(now).unwrap_or_default();
            if left.is_zero() {
                let due = s.ttl_fired.is_none_or(|t| t.elapsed() >= TTL_RETRY);
                if due {
                    s.ttl_fired = Some(Instant::now());
                    return Step::Fire(StopReason::Ttl);
                }
                return Step::Nothing;
            }
            if left <= warn_before && !s.ttl_warned {
                s.ttl_warned = true;
                return Step::Warn {
                    reason: StopReason::Ttl,
                    action_in: left,
                };
            }
        }
        let Some(timeout) = config.idle_timeout_secs.map(Duration::from_secs) else {
            return Step::Nothing;
        };
        let idle = s.idle(Instant::now());
        if idle.is_zero() {
            return Step::Nothing;
        }
        if idle >= timeout && !s.fired {
            s.fired = true;
            s.warned = true;
            return Step::Fire(StopReason::Idle);
        }
        let warn_at = timeout.saturating_sub(warn_before);
        if idle >= warn_at && !s.warned && config.idle_action != IdleAction::None {
            s.warned = true;
            return Step::Warn {
                reason: StopReason::Idle,
                action_in: timeout.saturating_sub(idle),
            };
        }
        Step::Nothing
    }
}

/// Everything the monitor loop needs, cloned out of the app state.
pub(crate) struct Monitor {
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) sys: Arc<crate::metrics::Sampler>,
    pub(crate) config: AgentConfig,
    pub(crate) utmp: PathBuf,
    pub(crate) dev_dir: PathBuf,
    pub(crate) runner: Arc<dyn IdleActionRunner>,
    pub(crate) interval: Duration,
    /// `/proc`, or `None` to leave SSH connections uncounted.
    pub(crate) proc_dir: Option<PathBuf>,
    pub(crate) served: Arc<Served>,
    pub(crate) gauge: Arc<Mutex<Gauge>>,
    /// Where stop decisions are announced (see `SystemPaths::kmsg`).
    pub(crate) kmsg: PathBuf,
}

impl Monitor {
    /// Samples and checks every `interval` until the task is aborted.
    pub(crate) async fn run(self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.check().await;
        }
    }

    async fn check(&self) {
        let (utmp, dev) = (self.utmp.clone(), self.dev_dir.clone());
        let sys = Arc::clone(&self.sys);
        let threshold = self.config.cpu_busy_percent;
        let sampled = tokio::task::spawn_blocking(move || {
            let sessions = read_sessions(&utmp, &dev);
            let cpu = sys.cpu_percent();
            // Which processes keep the CPU busy, so `status` can name them;
            // only looked up while they do.
            let busiest = (f64::from(cpu) >= threshold).then(|| {
                sys.top_processes()
                    .processes
                    .iter()
                    .take(3)
                    .map(|p| format!("{} {:.0}%", p.name, p.cpu_percent))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            (sessions, cpu, busiest)
        })
        .await;
        let Ok((sessions, cpu, busiest)) = sampled else {
            return;
        };
        self.tracker.set_sessions(sessions);
        self.tracker.set_cpu(cpu, self.config.cpu_busy_percent);
        self.tracker.set_busiest(busiest);
        self.read_connections().await;

        match self.tracker.step(&self.config, SystemTime::now()) {
            Step::Nothing => {}
            Step::Warn { reason, action_in } => {
                let action = action_for(reason, self.config.idle_action);
                let message = warning_message(reason, action, action_in);
                tracing::warn!(%reason, %action, in_secs = action_in.as_secs(), "stop planned; warning logged-in terminals");
                let terminals: Vec<PathBuf> = self
                    .tracker
                    .sessions()
                    .iter()
                    .filter_map(|s| terminal_path(&self.dev_dir, &s.entry.line))
                    .collect();
                let _ =
                    tokio::task::spawn_blocking(move || warn_terminals(&terminals, &message)).await;
            }
            Step::Fire(reason) => {
                let action = action_for(reason, self.config.idle_action);
                let idle = self.tracker.idle().as_secs();
                if action == IdleAction::None {
                    tracing::info!(
                        idle_secs = idle,
                        "idle deadline passed; idle_action is none"
                    );
                    return;
                }
                let why = match reason {
                    StopReason::Ttl => format!(
                        "its lifetime (up --ttl) ended at {}",
                        self.config
                            .expires_at
                            .map(|t| t.to_string())
                            .unwrap_or_default()
                    ),
                    StopReason::Idle => format!(
                        "idle for {} s (idle_timeout {} s)",
                        idle,
                        self.config.idle_timeout_secs.unwrap_or(0)
                    ),
                };
                tracing::warn!(%action, %reason, "{why}; running the action");
                let line = format!("{}{action}: {why}", spuff_agent_api::STOP_ANNOUNCE_PREFIX);
                if let Err(err) = crate::platform::announce(&self.kmsg, &line) {
                    tracing::debug!(%err, "cannot write the decision to the kernel log");
                }
                let runner = Arc::clone(&self.runner);
                match tokio::task::spawn_blocking(move || runner.run(action)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!(%action, %err, "the action failed"),
                    Err(err) => tracing::error!(%action, %err, "the action panicked"),
                }
            }
        }
    }
}

/// The TTL always stops the VM (deleting it when self-destroy is set up);
/// the idle stop does what the config says.
fn action_for(reason: StopReason, idle_action: IdleAction) -> IdleAction {
    match (reason, idle_action) {
        (StopReason::Ttl, IdleAction::Destroy) => IdleAction::Destroy,
        (StopReason::Ttl, _) => IdleAction::Poweroff,
        (StopReason::Idle, action) => action,
    }
}

impl Monitor {
    /// Reads the SSH connections and feeds the gauge's verdict to the
    /// tracker.
    async fn read_connections(&self) {
        let Some(proc_dir) = self.proc_dir.clone() else {
            return;
        };
        let ports = self.config.ssh_ports.clone();
        let served = Arc::clone(&self.served);
        let gauge = Arc::clone(&self.gauge);
        let done = tokio::task::spawn_blocking(move || {
            let before = served.bytes();
            let reading = crate::sshconn::read(&proc_dir, &ports, served.port());
            // The agent's count is read after sshd's (see `Gauge::update`).
            let after = served.bytes();
            let now = Instant::now();
            let mut g = gauge.lock().unwrap_or_else(PoisonError::into_inner);
            reading.map(|r| {
                (
                    g.update(r, after, before == after, now),
                    g.connections(),
                    now,
                )
            })
        })
        .await;
        match done {
            Ok(Ok((update, connections, now))) => {
                self.tracker.set_connections(update, connections, now);
            }
            Ok(Err(err)) => {
                tracing::warn!(%err, "cannot read the SSH connections; only terminals count")
            }
            Err(err) => tracing::error!(%err, "reading the SSH connections panicked"),
        }
    }
}

fn warning_message(reason: StopReason, action: IdleAction, action_in: Duration) -> String {
    let what = match action {
        IdleAction::Poweroff => "power off",
        IdleAction::Destroy => "delete itself",
        IdleAction::None => "act",
    };
    let secs = action_in.as_secs();
    // \r\n: the terminal may be in raw mode (an editor); \x07 rings the bell.
    match reason {
        StopReason::Idle => format!(
            "\r\n\x07spuff: this VM has been idle and will {what} in about {secs} seconds.\r\n\
             spuff: press any key here (or run any command) to keep it.\r\n"
        ),
        StopReason::Ttl => format!(
            "\r\n\x07spuff: this VM reaches the end of its lifetime (spuff up --ttl) and will \
             {what} in about {secs} seconds, in use or not.\r\n\
             spuff: save your work now; nothing here can extend it.\r\n"
        ),
    }
}

/// The terminal device for a utmp line, if the line is a plain relative name
/// (`pts/0`), so a crafted utmp record cannot aim the warning at another file.
fn terminal_path(dev_dir: &Path, line: &str) -> Option<PathBuf> {
    let rel = Path::new(line);
    let plain = !line.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| dev_dir.join(rel))
}

/// Reads live sessions and their terminals' last input time.
fn read_sessions(utmp: &Path, dev_dir: &Path) -> Vec<Session> {
    crate::utmp::live_sessions(utmp)
        .into_iter()
        .map(|entry| {
            let last_input = terminal_path(dev_dir, &entry.line)
                .and_then(|p| std::fs::metadata(p).ok())
                .and_then(|m| m.accessed().ok())
                .map_or(entry.login_time, |a| a.max(entry.login_time));
            Session { entry, last_input }
        })
        .collect()
}

/// Writes the warning to each terminal, like `wall`; a terminal that cannot
/// be written (gone, full, not a regular file or tty) is skipped.
fn warn_terminals(terminals: &[PathBuf], message: &str) {
    for path in terminals {
        // Only existing files, never through a symlink.
        let ok = std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink());
        if !ok {
            continue;
        }
        let result =
            crate::platform::open_terminal(path).and_then(|mut f| f.write_all(message.as_bytes()));
        if let Err(err) = result {
            tracing::debug!(terminal = %path.display(), %err, "cannot write the idle warning");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(timeout: u64, warn: u64) -> AgentConfig {
        AgentConfig {
            idle_timeout_secs: Some(timeout),
            idle_warning_secs: warn,
            ..AgentConfig::new("t")
        }
    }

    #[test]
    fn step_should_warn_then_fire_once_per_idle_period() {
        let t = Tracker::new();
        let now = SystemTime::now();
        t.lock().last_activity = Instant::now() - Duration::from_secs(100);
        assert!(matches!(
            t.step(&config(150, 60), now),
            Step::Warn {
                reason: StopReason::Idle,
                ..
            }
        ));
        assert_eq!(t.step(&config(150, 60), now), Step::Nothing);
        t.lock().last_activity = Instant::now() - Duration::from_secs(200);
        assert_eq!(t.step(&config(150, 60), now), Step::Fire(StopReason::Idle));
        assert_eq!(t.step(&config(150, 60), now), Step::Nothing);
        // Activity starts a new period.
        t.record(ActivityKind::Heartbeat, "");
        t.lock().last_activity = Instant::now() - Duration::from_secs(200);
        assert_eq!(t.step(&config(150, 60), now), Step::Fire(StopReason::Idle));
    }

    #[test]
    fn the_ttl_should_warn_then_fire_even_while_the_vm_is_in_use() {
        let t = Arc::new(Tracker::new());
        let start = SystemTime::now();
        let c = AgentConfig {
            expires_at: Some(Timestamp(start + Duration::from_secs(1000))),
            idle_warning_secs: 300,
            ..config(7200, 300)
        };
        let _busy = t.exec_started("make");
        assert_eq!(t.step(&c, start), Step::Nothing);
        assert_eq!(
            t.step(&c, start + Duration::from_secs(800)),
            Step::Warn {
                reason: StopReason::Ttl,
                action_in: Duration::from_secs(200)
            }
        );
        assert_eq!(t.step(&c, start + Duration::from_secs(900)), Step::Nothing);
        let end = start + Duration::from_secs(1000);
        assert_eq!(t.step(&c, end), Step::Fire(StopReason::Ttl));
        // Not again at once; again after TTL_RETRY if the VM is still up.
        assert_eq!(t.step(&c, end), Step::Nothing);
        t.lock().ttl_fired = Some(Instant::now() - TTL_RETRY);
        assert_eq!(t.step(&c, end), Step::Fire(StopReason::Ttl));
        // The TTL powers off even with idle_action none.
        assert_eq!(
            action_for(StopReason::Ttl, IdleAction::None),
            IdleAction::Poweroff
        );
    }

    #[test]
    fn next_stop_should_be_the_earlier_of_idle_and_ttl() {
        let now = SystemTime::now();
        let c = config(3600, 300);
        let stop = next_stop(&c, Duration::from_secs(600), now).expect("a stop");
        assert_eq!((stop.reason, stop.in_seconds), (StopReason::Idle, 3000));
        let c = AgentConfig {
            expires_at: Some(Timestamp(now + Duration::from_secs(120))),
            ..c
        };
        let stop = next_stop(&c, Duration::from_secs(600), now).expect("a stop");
        assert_eq!((stop.reason, stop.in_seconds), (StopReason::Ttl, 120));
        assert_eq!(stop.action, IdleAction::Poweroff);
        let none = AgentConfig {
            idle_action: IdleAction::None,
            ..config(60, 10)
        };
        assert_eq!(next_stop(&none, Duration::ZERO, now), None);
    }

    #[test]
    fn holds_should_keep_idle_at_zero() {
        let t = Arc::new(Tracker::new());
        t.lock().last_activity = Instant::now() - Duration::from_secs(100);
        let hold = t.exec_started("sleep");
        t.lock().last_activity = Instant::now() - Duration::from_secs(100);
        assert_eq!(t.idle(), Duration::ZERO);
        assert_eq!(t.snapshot(&config(10, 5)).holding, vec![ActivityKind::Exec]);
        drop(hold);
        assert!(t.idle() < Duration::from_secs(100));
        t.set_cpu(90.0, 20.0);
        assert_eq!(t.idle(), Duration::ZERO);
        t.set_cpu(1.0, 20.0);
        assert!(t.snapshot(&config(10, 5)).holding.is_empty());
    }

    #[test]
    fn recent_should_keep_fifty_newest_first_and_coalesce_repeats() {
        let t = Tracker::new();
        for i in 0..60 {
            t.record(ActivityKind::AgentRequest, format!("GET /{i}"));
            t.record(ActivityKind::AgentRequest, format!("GET /{i}"));
        }
        let a = t.snapshot(&AgentConfig::new("t"));
        assert_eq!(a.recent.len(), RECENT_EVENTS);
        assert_eq!(a.recent[0].detail, "GET /59");
    }

    #[test]
    fn terminal_path_should_refuse_escapes() {
        let dev = Path::new("/dev");
        assert_eq!(
            terminal_path(dev, "pts/0"),
            Some(PathBuf::from("/dev/pts/0"))
        );
        assert_eq!(terminal_path(dev, "../etc/passwd"), None);
        assert_eq!(terminal_path(dev, "/etc/passwd"), None);
        assert_eq!(terminal_path(dev, ""), None);
    }
}
