//! What the dashboard knows, apart from how it is drawn: the rows (a `list`
//! survey joined with local records), each VM's latest agent sample and how
//! old it is, price lists, actions under way, and the cells every view
//! shows. The full-screen view and the plain table read the same cells, so
//! what a script sees is what a person sees.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use spuff::agent::api;
use spuff::state::{Instance, Lifecycle};
use spuff::terminal_safe;
use spuff::vm::{Entry, Tracking};

/// One VM's latest answer from its agent.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// When it arrived.
    pub(crate) at: Instant,
    pub(crate) status: Option<api::Status>,
    pub(crate) metrics: Option<api::Metrics>,
    pub(crate) activity: Option<api::Activity>,
}

/// What the dashboard knows of one VM's agent.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentView {
    /// The latest sample, kept (and marked stale) while the agent cannot
    /// be reached.
    pub(crate) sample: Option<Sample>,
    /// Why the latest attempt failed, and since when attempts fail.
    pub(crate) error: Option<(String, Instant)>,
    /// When the next attempt is due, while failing.
    pub(crate) retry_at: Option<Instant>,
}

/// A report from the task that watches one VM's agent.
#[derive(Debug)]
pub(crate) enum AgentReport {
    /// The agent answered.
    Sample(Box<Sample>),
    /// It did not; the next attempt is at `retry_at`.
    Failed { error: String, retry_at: Instant },
}

/// One line of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The provider's view reconciled with local state.
    pub(crate) entry: Entry,
    /// The local record, for VMs this machine made.
    pub(crate) record: Option<Instance>,
}

impl Row {
    /// Whether its agent is worth asking: recorded, with an address and
    /// a pinned host key, and running (or running as far as this machine
    /// knows, when its provider could not be asked).
    pub(crate) fn watchable(&self) -> bool {
        let Some(record) = &self.record else {
            return false;
        };
        if record.address().is_none() || record.host_key.is_empty() {
            return false;
        }
        match self.entry.tracking {
            Tracking::Tracked => self.entry.provider_status.as_deref() == Some("active"),
            Tracking::Unchecked => record.status == Lifecycle::Ready,
            _ => false,
        }
    }
}

/// A question on screen, waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Destroy the named VM.
    Destroy(String),
    /// Snapshot the named VM.
    Snapshot(String),
}

/// How a status message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Info,
    Good,
    Bad,
}

/// The dashboard's whole state.
#[derive(Debug)]
pub(crate) struct Dash {
    pub(crate) rows: Vec<Row>,
    pub(crate) selected: usize,
    /// Per provider, the monthly price of each size, where it says.
    pub(crate) prices: HashMap<String, HashMap<String, f64>>,
    /// Providers that could not be asked, with why.
    pub(crate) failures: Vec<(String, String)>,
    /// When the providers were last asked; `None` before the first answer.
    pub(crate) surveyed: Option<Instant>,
    /// The agents, by VM name.
    pub(crate) agents: HashMap<String, AgentView>,
    /// Actions under way, by VM name ("destroying", "snapshotting").
    pub(crate) busy: HashMap<String, String>,
    /// The latest message, and when it was set.
    pub(crate) message: Option<(String, Tone, Instant)>,
    /// A question waiting for an answer.
    pub(crate) pending: Option<Pending>,
    /// How often agents are asked.
    pub(crate) interval: Duration,
}

/// The table's columns.
pub(crate) const COLUMNS: [&str; 12] = [
    "NAME",
    "PROVIDER",
    "STATE",
    "IP",
    "AGE",
    "IDLE",
    "NEXT STOP",
    "$/H",
    "CPU",
    "MEM",
    "DISK",
    "SEEN",
];

impl Dash {
    pub(crate) fn new(interval: Duration) -> Dash {
        Dash {
            rows: Vec::new(),
            selected: 0,
            prices: HashMap::new(),
            failures: Vec::new(),
            surveyed: None,
            agents: HashMap::new(),
            busy: HashMap::new(),
            message: None,
            pending: None,
            interval,
        }
    }

    /// The selected row, if there is one.
    pub(crate) fn current(&self) -> Option<&Row> {
        self.rows.get(self.selected)
    }

    /// Moves the selection by `by` rows, staying on the table.
    pub(crate) fn select(&mut self, by: isize) {
        if self.rows.is_empty() {
            self.selected = 0;
            return;
        }
        let last = self.rows.len() - 1;
        self.selected = self.selected.saturating_add_signed(by).min(last);
    }

    /// Replaces the rows with a new survey, keeping the selection on the
    /// same VM where it still exists, and forgetting agents of VMs that
    /// left.
    pub(crate) fn set_rows(&mut self, rows: Vec<Row>) {
        let selected = self.current().map(|r| r.entry.name.clone());
        self.rows = rows;
        self.selected = selected
            .and_then(|name| self.rows.iter().position(|r| r.entry.name == name))
            .unwrap_or(self.selected)
            .min(self.rows.len().saturating_sub(1));
        let names: Vec<&String> = self.rows.iter().map(|r| &r.entry.name).collect();
        self.agents.retain(|name, _| names.contains(&name));
    }

    /// Applies an agent watcher's report.
    pub(crate) fn agent_report(&mut self, name: &str, report: AgentReport) {
        let view = self.agents.entry(name.to_string()).or_default();
        match report {
            AgentReport::Sample(sample) => {
                view.sample = Some(*sample);
                view.error = None;
                view.retry_at = None;
            }
            AgentReport::Failed { error, retry_at } => {
                let since = view.error.as_ref().map_or_else(Instant::now, |(_, at)| *at);
                view.error = Some((error, since));
                view.retry_at = Some(retry_at);
            }
        }
    }

    /// Sets the status line.
    pub(crate) fn say(&mut self, text: impl Into<String>, tone: Tone) {
        self.message = Some((text.into(), tone, Instant::now()));
    }

    /// Whether `sample` is too old to be taken as now: three refreshes
    /// missed.
    pub(crate) fn stale(&self, sample: &Sample, now: Instant) -> bool {
        now.saturating_duration_since(sample.at) > self.interval * 3
    }

    /// The monthly price of `row`'s size, where its provider lists one.
    pub(crate) fn monthly_price(&self, row: &Row) -> Option<f64> {
        self.prices
            .get(&row.entry.provider)?
            .get(&row.entry.size)
            .copied()
    }

    /// The cells of `row`, in [`COLUMNS`] order, terminal-safe.
    pub(crate) fn cells(&self, row: &Row, now: Instant, wall: SystemTime) -> [String; 12] {
        let e = &row.entry;
        let agent = self.agents.get(&e.name);
        let sample = agent.and_then(|a| a.sample.as_ref());
        let metrics = sample.and_then(|s| s.metrics.as_ref());
        let activity = sample.and_then(|s| s.activity.as_ref());
        let state = match self.busy.get(&e.name) {
            Some(action) => format!("{action}…"),
            None => super::super::list::status(e),
        };
        let age = row
            .record
            .as_ref()
            .and_then(|r| wall.duration_since(r.created_at.0).ok())
            .map_or_else(|| "-".to_string(), short);
        // The agent's figures are as of the sample; what counts down is
        // aged by the time since.
        let since = sample.map_or(Duration::ZERO, |s| now.saturating_duration_since(s.at));
        let idle = match activity {
            Some(a) if !a.holding.is_empty() => "in use".to_string(),
            Some(a) => short(Duration::from_secs(a.idle_seconds) + since),
            None => sample.and_then(|s| s.status.as_ref()).map_or_else(
                || "-".into(),
                |s| short(Duration::from_secs(s.idle_seconds)),
            ),
        };
        let next_stop = next_stop(activity, row.record.as_ref(), wall);
        let cost = self
            .monthly_price(row)
            .map_or_else(|| "-".to_string(), |m| format!("{:.4}", hourly(m)));
        let cpu = metrics.map_or_else(|| "-".into(), |m| format!("{:.0}%", m.cpu_usage_percent));
        let mem = metrics.map_or_else(
            || "-".into(),
            |m| format!("{}/{}", gib(m.memory_used_bytes), gib(m.memory_total_bytes)),
        );
        let disk = metrics.map_or_else(
            || "-".into(),
            |m| match percent(m.disk_used_bytes, m.disk_total_bytes) {
                Some(p) => format!("{p:.0}%"),
                None => "-".into(),
            },
        );
        let seen = match (agent, sample) {
            (Some(a), _) if a.error.is_some() && sample.is_none() => "unreachable".to_string(),
            (Some(_), Some(s)) => format!("{} ago", short(now.saturating_duration_since(s.at))),
            _ if row.watchable() => "asking".to_string(),
            _ => "-".to_string(),
        };
        [
            format!(
                "{}{}",
                if e.active { "*" } else { "" },
                terminal_safe(&e.name)
            ),
            e.provider.clone(),
            terminal_safe(&state).into_owned(),
            e.ip.map_or_else(|| "-".into(), |ip| ip.to_string()),
            age,
            idle,
            next_stop,
            cost,
            cpu,
            mem,
            disk,
            seen,
        ]
    }

    /// The detail lines for `row`: ids, costs, the agent's state in words.
    pub(crate) fn details(&self, row: &Row, now: Instant, wall: SystemTime) -> Vec<String> {
        let e = &row.entry;
        let mut lines = vec![format!(
            "{} · {} {} · {} {} · {}",
            terminal_safe(&e.name),
            e.provider,
            if e.provider_id.is_empty() {
                "-".into()
            } else {
                terminal_safe(&e.provider_id)
            },
            terminal_safe(&e.region),
            terminal_safe(&e.size),
            match e.tracking {
                Tracking::Tracked => "recorded here",
                Tracking::Orphan => "orphan: not in local state (`spuff down NAME` removes it)",
                Tracking::Gone => "gone at the provider (`spuff down NAME` forgets it)",
                Tracking::Unchecked => "unchecked: its provider was not asked",
                _ => "",
            }
        )];
        if let Some(monthly) = self.monthly_price(row) {
            let so_far = row
                .record
                .as_ref()
                .and_then(|r| wall.duration_since(r.created_at.0).ok())
                .map(|age| hourly(monthly) * age.as_secs_f64() / 3600.0);
            lines.push(format!(
                "price: {:.4}/h ({monthly:.2}/month list price){}",
                hourly(monthly),
                so_far
                    .map(|c| format!(", about {c:.2} since it was created"))
                    .unwrap_or_default()
            ));
        }
        let agent = self.agents.get(&e.name);
        let sample = agent.and_then(|a| a.sample.as_ref());
        match (agent, sample) {
            (Some(a), s) if a.error.is_some() => {
                let (error, since) = a.error.as_ref().expect("checked");
                let mut line = format!(
                    "agent: unreachable for {} ({})",
                    short(now.saturating_duration_since(*since)),
                    terminal_safe(error)
                );
                if let Some(s) = s {
                    line.push_str(&format!(
                        "; figures shown are {} old",
                        short(now.saturating_duration_since(s.at))
                    ));
                }
                if let Some(at) = a.retry_at {
                    line.push_str(&format!(
                        "; retrying in {}",
                        short(at.saturating_duration_since(now))
                    ));
                }
                lines.push(line);
            }
            (_, Some(s)) => {
                let mut line = format!(
                    "agent: answered {} ago{}",
                    short(now.saturating_duration_since(s.at)),
                    if self.stale(s, now) { " (stale)" } else { "" }
                );
                if let Some(st) = &s.status {
                    line.push_str(&format!(
                        " · version {} · bootstrap {} · up {}",
                        terminal_safe(&st.agent_version),
                        st.bootstrap_status,
                        short(Duration::from_secs(st.uptime_seconds))
                    ));
                }
                if let Some(m) = &s.metrics {
                    line.push_str(&format!(
                        " · load {:.2} {:.2} {:.2}",
                        m.load_average[0], m.load_average[1], m.load_average[2]
                    ));
                }
                lines.push(line);
                if let Some(a) = &s.activity {
                    let holding: Vec<String> = a.holding.iter().map(|k| k.to_string()).collect();
                    lines.push(if holding.is_empty() {
                        format!("idle for {}", short(Duration::from_secs(a.idle_seconds)))
                    } else {
                        format!("kept awake by {}", holding.join(", "))
                    });
                }
            }
            _ if row.watchable() => lines.push("agent: asking…".into()),
            _ => lines.push("agent: not asked (the VM is not running here)".into()),
        }
        lines
    }
}

/// When the VM stops next, counted down from `wall`: the agent's plan, or
/// the recorded lifetime when the agent has not answered.
fn next_stop(
    activity: Option<&api::Activity>,
    record: Option<&Instance>,
    wall: SystemTime,
) -> String {
    let planned = activity.and_then(|a| a.next_stop.as_ref());
    let (at, what) = match (planned, record.and_then(|r| r.expires_at)) {
        (Some(stop), _) => (stop.at, stop.action.to_string()),
        (None, Some(at)) if activity.is_none() => (at, "ttl".to_string()),
        (None, _) if activity.is_some() => return "never".into(),
        (None, _) => return "-".into(),
    };
    match at.0.duration_since(wall) {
        Ok(left) => format!("{what} in {}", short(left)),
        Err(_) => format!("{what} due"),
    }
}

/// A monthly list price per hour (730 hours a month, as the clouds count).
fn hourly(monthly: f64) -> f64 {
    monthly / 730.0
}

fn percent(used: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| used as f64 * 100.0 / total as f64)
}

fn gib(bytes: u64) -> String {
    format!("{:.1}G", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// A duration in at most two units: `45s`, `12m`, `2h05m`, `3d04h`.
pub(crate) fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spuff::Secret;
    use spuff::agent::api::Timestamp;

    fn record(name: &str, created: SystemTime) -> Instance {
        let mut i = Instance::new(
            name,
            "hetzner",
            format!("id-{name}"),
            "fsn1",
            "cx22",
            "debian-12",
            "dev",
            "ssh-ed25519 AAAA",
            Secret::new("t"),
        );
        i.status = Lifecycle::Ready;
        i.created_at = Timestamp(created);
        i.ipv4 = Some("192.0.2.7".parse().expect("ip"));
        i
    }

    fn row(name: &str, status: &str, created: SystemTime) -> Row {
        Row {
            entry: Entry {
                name: name.into(),
                provider: "hetzner".into(),
                provider_id: format!("id-{name}"),
                tracking: Tracking::Tracked,
                local_status: Some(Lifecycle::Ready),
                provider_status: Some(status.into()),
                ip: Some("192.0.2.7".parse().expect("ip")),
                region: "fsn1".into(),
                size: "cx22".into(),
                active: false,
            },
            record: Some(record(name, created)),
        }
    }

    fn metrics() -> api::Metrics {
        api::Metrics {
            cpu_usage_percent: 12.4,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            disk_used_bytes: 30,
            disk_total_bytes: 120,
            load_average: [0.5, 0.25, 0.1],
            timestamp: Timestamp(SystemTime::now()),
        }
    }

    #[test]
    fn short_durations_should_keep_two_units() {
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(12 * 60 + 5)), "12m");
        assert_eq!(short(Duration::from_secs(2 * 3600 + 5 * 60)), "2h05m");
        assert_eq!(short(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d04h");
    }

    #[test]
    fn cells_should_show_age_cost_and_the_agents_figures() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut dash = Dash::new(Duration::from_secs(5));
        dash.prices.insert(
            "hetzner".into(),
            HashMap::from([("cx22".to_string(), 7.30)]),
        );
        let r = row("web", "active", wall - Duration::from_secs(2 * 3600));
        dash.set_rows(vec![r.clone()]);
        let cells = dash.cells(&r, now, wall);
        assert_eq!(cells[0], "web");
        assert_eq!(cells[2], "active");
        assert_eq!(cells[4], "2h00m");
        assert_eq!(cells[7], "0.0100");
        assert_eq!(cells[8], "-", "no sample yet");
        assert_eq!(cells[11], "asking");
        dash.agent_report(
            "web",
            AgentReport::Sample(Box::new(Sample {
                at: now,
                status: None,
                metrics: Some(metrics()),
                activity: None,
            })),
        );
        let cells = dash.cells(&r, now, wall);
        assert_eq!(&cells[8..11], ["12%", "1.0G/4.0G", "25%"]);
        assert_eq!(cells[11], "0s ago");
        let details = dash.details(&r, now, wall);
        assert!(
            details[1].contains("about 0.02 since it was created"),
            "{details:?}"
        );
    }

    #[test]
    fn a_failing_agent_should_keep_its_figures_marked_with_their_age() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut dash = Dash::new(Duration::from_secs(5));
        let r = row("web", "active", wall);
        dash.set_rows(vec![r.clone()]);
        let old = now.checked_sub(Duration::from_secs(40)).expect("instant");
        dash.agent_report(
            "web",
            AgentReport::Sample(Box::new(Sample {
                at: old,
                status: None,
                metrics: Some(metrics()),
                activity: None,
            })),
        );
        dash.agent_report(
            "web",
            AgentReport::Failed {
                error: "connection refused".into(),
                retry_at: now + Duration::from_secs(10),
            },
        );
        assert!(dash.stale(dash.agents["web"].sample.as_ref().expect("kept"), now));
        let cells = dash.cells(&r, now, wall);
        assert_eq!(cells[8], "12%");
        assert_eq!(cells[11], "40s ago");
        let details = dash.details(&r, now, wall).join("\n");
        assert!(details.contains("unreachable"), "{details}");
        assert!(details.contains("figures shown are 40s old"), "{details}");
        assert!(details.contains("retrying in 10s"), "{details}");
        // The agent answers again: the error goes.
        dash.agent_report(
            "web",
            AgentReport::Sample(Box::new(Sample {
                at: now,
                status: None,
                metrics: None,
                activity: None,
            })),
        );
        assert!(dash.agents["web"].error.is_none());
    }

    #[test]
    fn only_running_recorded_vms_should_be_watched() {
        let wall = SystemTime::now();
        assert!(row("a", "active", wall).watchable());
        assert!(!row("b", "off", wall).watchable());
        let mut orphan = row("c", "active", wall);
        orphan.record = None;
        orphan.entry.tracking = Tracking::Orphan;
        assert!(!orphan.watchable());
    }

    #[test]
    fn the_selection_should_follow_its_vm_across_surveys() {
        let wall = SystemTime::now();
        let mut dash = Dash::new(Duration::from_secs(5));
        dash.set_rows(vec![row("a", "active", wall), row("b", "active", wall)]);
        dash.select(1);
        assert_eq!(dash.current().expect("row").entry.name, "b");
        dash.set_rows(vec![
            row("0", "active", wall),
            row("a", "active", wall),
            row("b", "active", wall),
        ]);
        assert_eq!(dash.current().expect("row").entry.name, "b");
        dash.set_rows(vec![row("a", "active", wall)]);
        assert_eq!(dash.current().expect("row").entry.name, "a");
        dash.select(-5);
        assert_eq!(dash.selected, 0);
    }

    #[test]
    fn the_next_stop_should_count_down_from_the_agents_plan_or_the_ttl() {
        let wall = SystemTime::now();
        let mut r = record("a", wall);
        r.expires_at = Some(Timestamp(wall + Duration::from_secs(3600)));
        assert_eq!(next_stop(None, Some(&r), wall), "ttl in 1h00m");
        assert_eq!(next_stop(None, None, wall), "-");
    }
}
