//! `spuff status`: local state plus what the VM's agent says (status,
//! metrics, activity), fetched through the SSH channel, and the bootstrap's
//! phase, read from the VM's status file and log over the same connection
//! (so it shows while the agent is not up yet, or is too old to know
//! `installing`).

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use spuff::agent::api::BootstrapStatus;
use spuff::agent::{Client, ClientConfig, api};
use spuff::state::Instance;
use spuff::vm::bootstrap::Progress;

use super::context::Context;
use crate::cli::args::StatusArgs;

pub(crate) async fn run(args: StatusArgs, ctx: &Context) -> anyhow::Result<u8> {
    if let Some(fleet) = &args.fleet {
        return super::fleet::status(fleet, args.json.json, ctx).await;
    }
    let instance = ctx.store.resolve(args.name.as_deref())?;
    if args.watch {
        return watch(&instance, args.json.json, ctx).await;
    }
    let session = match ctx.connect(&instance).await {
        Ok(session) => session,
        Err(e) => {
            // A VM its idle or lifetime stop powered off (or one gone) is
            // news, not a connection error (issue 12).
            if let Some(w) = super::context::whereabouts(&instance, ctx).await {
                report_unreachable(&instance, &w, args.json.json, ctx)?;
                return Ok(0);
            }
            // State alone is still worth showing.
            report(
                &instance,
                None,
                args.json.json,
                ctx,
                &mut std::io::stdout().lock(),
            )?;
            return Err(e);
        }
    };
    let agent = fetch(&agent_client(&instance, session, None), true).await;
    report(
        &instance,
        Some(&agent),
        args.json.json,
        ctx,
        &mut std::io::stdout().lock(),
    )?;
    Ok(0)
}

/// The agent of `instance` through `session`.
fn agent_client(
    instance: &Instance,
    session: spuff::ssh::Session,
    timeout: Option<Duration>,
) -> Client {
    let mut config = ClientConfig::new(instance.agent_token.clone());
    config.port = super::context::agent_port();
    if let Some(timeout) = timeout {
        config.request_timeout = timeout;
    }
    Client::new(session, config)
}

/// How often `--watch` asks the agent.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// The longest wait between reconnection attempts.
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one connection or request may take before it counts as failed.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `status --watch`: the report redrawn every [`WATCH_EVERY`], with when
/// its figures were taken. When the VM stops answering the last figures
/// stay, marked stale with their age and the error, and the connection is
/// made again with a growing wait until the VM answers. `q` quits (0),
/// Ctrl-C interrupts (130). With `--json`, one document per answer (or
/// per failed attempt, with the error).
async fn watch(instance: &Instance, json: bool, ctx: &Context) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    let terminal = !json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let _raw = if terminal {
        Some(super::dash::term::Raw::enable()?)
    } else {
        None
    };
    let mut keys = terminal.then(super::dash::term::Keys::start);
    let mut client: Option<Client> = None;
    let mut last: Option<(AgentView, std::time::Instant)> = None;
    let mut trouble: Option<(String, std::time::Instant)> = None;
    let mut recovered: Option<std::time::Instant> = None;
    let mut failures = 0u32;
    let mut next_try = std::time::Instant::now();
    let mut first = true;
    loop {
        let now = std::time::Instant::now();
        let mut answered = false;
        if now >= next_try {
            let mut failed: Option<String> = None;
            if client.is_none() {
                match tokio::time::timeout(WATCH_TIMEOUT, ctx.connect(instance)).await {
                    Ok(Ok(session)) => {
                        client = Some(agent_client(instance, session, Some(WATCH_TIMEOUT)))
                    }
                    Ok(Err(e)) => failed = Some(format!("{e:#}")),
                    Err(_) => {
                        failed = Some(format!("no SSH answer in {}s", WATCH_TIMEOUT.as_secs()))
                    }
                }
            }
            if let Some(c) = &client {
                let view = fetch(c, first).await;
                match &view.status {
                    Ok(_) => {
                        first = false;
                        answered = true;
                        if trouble.take().is_some() {
                            recovered = Some(std::time::Instant::now());
                        }
                        failures = 0;
                        next_try = now + WATCH_EVERY;
                        last = Some((view, std::time::Instant::now()));
                    }
                    Err(e) => {
                        failed = Some(e.to_string());
                        client = None;
                    }
                }
            }
            if let Some(error) = failed {
                failures = failures.saturating_add(1);
                let wait = WATCH_EVERY
                    .saturating_mul(1 << failures.min(5).saturating_sub(1))
                    .min(WATCH_MAX_BACKOFF);
                next_try = std::time::Instant::now() + wait;
                let since = trouble.as_ref().map_or(now, |(_, since)| *since);
                trouble = Some((error, since));
            }
            if json {
                match (&trouble, &last) {
                    (None, Some((view, _))) if answered => report(instance, Some(view), true, ctx, &mut std::io::stdout().lock())?,
                    (Some((error, _)), _) => ctx.ui.json(&serde_json::json!({
                        "instance": { "name": instance.name },
                        "agent_error": error,
                        "stale_seconds": last.as_ref().map(|(_, at)| at.elapsed().as_secs()),
                        "retry_in_seconds": next_try.saturating_duration_since(std::time::Instant::now()).as_secs(),
                    }))?,
                    _ => {}
                }
            }
        }
        if !json {
            let mut screen: Vec<u8> = Vec::new();
            let now = std::time::Instant::now();
            let ago = |at: std::time::Instant| {
                super::dash::short_duration(now.saturating_duration_since(at))
            };
            match (&trouble, &last) {
                (None, Some((_, at))) => {
                    write!(
                        screen,
                        "Updated {} ago, every {}s",
                        ago(*at),
                        WATCH_EVERY.as_secs()
                    )?;
                    if let Some(r) = recovered
                        .filter(|r| now.saturating_duration_since(*r) < Duration::from_secs(10))
                    {
                        write!(screen, "; reconnected {} ago", ago(r))?;
                    }
                }
                (Some((error, since)), at) => {
                    match at {
                        Some((_, at)) => {
                            write!(screen, "STALE: the figures below are {} old. ", ago(*at))?
                        }
                        None => write!(
                            screen,
                            "Connecting to {}: ",
                            spuff::terminal_safe(&instance.name)
                        )?,
                    }
                    write!(
                        screen,
                        "No answer for {} ({}); trying again in {} (attempt {})",
                        ago(*since),
                        spuff::terminal_safe(error),
                        super::dash::short_duration(next_try.saturating_duration_since(now)),
                        failures + 1
                    )?;
                }
                (None, None) => write!(
                    screen,
                    "Connecting to {}…",
                    spuff::terminal_safe(&instance.name)
                )?,
            }
            writeln!(screen, " · q quits")?;
            report(
                instance,
                last.as_ref().map(|(v, _)| v),
                false,
                ctx,
                &mut screen,
            )?;
            let mut text = String::from_utf8_lossy(&screen).into_owned();
            if terminal {
                // Raw mode: a line feed does not return the carriage.
                text = text.replace('\n', "\r\n");
            }
            let mut out = std::io::stdout().lock();
            // Home, draw, clear what an older, longer screen left below.
            write!(out, "\x1b[H\x1b[2J{text}")?;
            out.flush()?;
        }
        tokio::select! {
            key = next_key(&mut keys) => match key {
                Some(Quit::Quit) => return Ok(0),
                Some(Quit::Interrupt) | None => return Ok(crate::cli::EXIT_INTERRUPTED),
            },
            _ = tokio::signal::ctrl_c() => return Ok(crate::cli::EXIT_INTERRUPTED),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

enum Quit {
    Quit,
    Interrupt,
}

/// The next key that ends a live view: `q`/Esc, or Ctrl-C (raw mode
/// turns it into a key). Without a terminal, never.
async fn next_key(keys: &mut Option<super::dash::term::Keys>) -> Option<Quit> {
    use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};
    let Some(keys) = keys else {
        return std::future::pending().await;
    };
    loop {
        match keys.next().await? {
            Event::Key(k) if k.kind != KeyEventKind::Release => match k.code {
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Some(Quit::Interrupt);
                }
                KeyCode::Char('q') | KeyCode::Esc => return Some(Quit::Quit),
                _ => {}
            },
            _ => {}
        }
    }
}

struct AgentView {
    status: Result<api::Status, spuff::agent::Error>,
    metrics: Option<api::Metrics>,
    activity: Option<api::Activity>,
    progress: Option<Progress>,
}

/// Asks the agent; reads the bootstrap's files over SSH only while the
/// agent cannot say the bootstrap is over. Those reads are SSH channel
/// traffic, which the agent counts as use (issue 12): a finished VM is
/// looked at through the agent alone, whose requests never count, so
/// `status` and a forgotten `status --watch` never keep it awake.
///
/// A failed bootstrap is read once (which phase failed is worth the one
/// read), not on every refresh of `--watch`.
async fn fetch(client: &Client, first: bool) -> AgentView {
    let (status, metrics, activity) =
        tokio::join!(client.status(), client.metrics(), client.activity());
    let finished = status.as_ref().is_ok_and(|s| match s.bootstrap_status {
        BootstrapStatus::Ready => true,
        BootstrapStatus::Failed => !first,
        _ => false,
    });
    let progress = if finished {
        None
    } else {
        spuff::vm::bootstrap::progress(client.session()).await.ok()
    };
    AgentView {
        status,
        metrics: metrics.ok(),
        activity: activity.ok(),
        progress,
    }
}

/// The bootstrap as `status` shows it.
#[derive(Debug, Serialize)]
struct BootstrapView {
    /// The status file's state.
    status: BootstrapStatus,
    /// 1 or 2 while a phase runs or after it failed.
    phase: Option<u8>,
    /// One line for people.
    summary: String,
    /// The bootstrap log's last line.
    line: Option<String>,
    /// What to run to see more.
    hint: Option<&'static str>,
}

const BOOTSTRAP_LOG_HINT: &str = "spuff logs --bootstrap";

/// From the files read over SSH when that worked, else from the agent
/// (which cannot tell which phase failed).
fn bootstrap_view(
    progress: Option<&Progress>,
    agent: Option<&api::Status>,
) -> Option<BootstrapView> {
    let (status, phase, line) = match (progress, agent) {
        (Some(p), _) => (p.status, p.phase(), p.line.clone()),
        (None, Some(s)) => {
            let phase = match s.bootstrap_status {
                BootstrapStatus::Running => Some(1),
                BootstrapStatus::Installing => Some(2),
                _ => None,
            };
            (s.bootstrap_status, phase, None)
        }
        (None, None) => return None,
    };
    let (summary, hint) = match (status, phase) {
        (BootstrapStatus::Unknown, _) => ("not started yet".to_string(), None),
        (BootstrapStatus::Running, _) => (
            "phase 1 running (user, agent); no login yet".to_string(),
            Some(BOOTSTRAP_LOG_HINT),
        ),
        (BootstrapStatus::Installing, _) => (
            "phase 2 running (installing packages, dotfiles); the VM is usable".to_string(),
            Some(BOOTSTRAP_LOG_HINT),
        ),
        (BootstrapStatus::Ready, _) => ("ready".to_string(), None),
        (BootstrapStatus::Failed, Some(2)) => (
            "phase 2 failed (packages, dotfiles); the VM is usable".to_string(),
            Some(BOOTSTRAP_LOG_HINT),
        ),
        (BootstrapStatus::Failed, Some(1)) => {
            ("phase 1 failed".to_string(), Some(BOOTSTRAP_LOG_HINT))
        }
        (BootstrapStatus::Failed, _) => ("failed".to_string(), Some(BOOTSTRAP_LOG_HINT)),
    };
    Some(BootstrapView {
        status,
        phase,
        summary,
        line,
        hint,
    })
}

/// cloud-init's own verdict as `status` shows it.
#[derive(Debug, Serialize)]
struct CloudInitView {
    /// `running`, `done`, `error`, ...; `finished` or `running` from an
    /// agent that only reports `cloud_init_done`.
    status: String,
    /// Whether it has finished, successfully or not.
    done: bool,
    /// The errors it recorded.
    errors: Vec<String>,
    /// One line for people.
    summary: String,
}

fn cloud_init_view(s: &api::Status) -> CloudInitView {
    let status = match &s.cloud_init_status {
        Some(status) => status.clone(),
        // An agent from before `cloud_init_status`: only "finished or not".
        None if s.cloud_init_done => "finished".to_string(),
        None => "running".to_string(),
    };
    let errors = s.cloud_init_errors.clone();
    let summary = match errors.first() {
        Some(first) => {
            let more = match errors.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            format!("{status}: {first}{more}; see `spuff logs --cloud-init`")
        }
        None => status.clone(),
    };
    CloudInitView {
        status,
        done: s.cloud_init_done,
        errors,
        summary,
    }
}

fn report(
    instance: &Instance,
    agent: Option<&AgentView>,
    json: bool,
    ctx: &Context,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if json {
        let (status, error, metrics, activity, progress) = match agent {
            Some(a) => match &a.status {
                Ok(s) => (
                    Some(s),
                    None,
                    a.metrics.as_ref(),
                    a.activity.as_ref(),
                    a.progress.as_ref(),
                ),
                Err(e) => (
                    None,
                    Some(format!("{e}")),
                    a.metrics.as_ref(),
                    a.activity.as_ref(),
                    a.progress.as_ref(),
                ),
            },
            None => (None, Some("not connected".to_string()), None, None, None),
        };
        let bootstrap = bootstrap_view(progress, status);
        let cloud_init = status.map(cloud_init_view);
        return ctx.ui.json(&serde_json::json!({
            "instance": {
                "name": instance.name,
                "provider": instance.provider,
                "provider_id": instance.provider_id,
                "region": instance.region,
                "size": instance.size,
                "ip": instance.address(),
                "ssh_port": instance.ssh_port,
                "ssh_user": instance.ssh_user,
                "status": instance.status,
                "created_at": instance.created_at,
            },
            "agent": status,
            "agent_error": error,
            "bootstrap": bootstrap,
            "cloud_init": cloud_init,
            "metrics": metrics,
            "activity": activity,
        }));
    }
    writeln!(out, "{}", title_line(instance))?;
    writeln!(
        out,
        "  address   {}:{} as {}",
        instance
            .address()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
        instance.ssh_port,
        instance.ssh_user
    )?;
    writeln!(
        out,
        "  state     {} since {}",
        instance.status, instance.created_at
    )?;
    let Some(agent) = agent else {
        return Ok(());
    };
    if let Some(b) = bootstrap_view(agent.progress.as_ref(), agent.status.as_ref().ok()) {
        write!(out, "  bootstrap {}", b.summary)?;
        match b.hint {
            Some(hint) => writeln!(out, "; see `{hint}`")?,
            None => writeln!(out)?,
        }
        if let (Some(line), Some(_)) = (&b.line, b.phase) {
            writeln!(out, "            {}", spuff::terminal_safe(line))?;
        }
    }
    match &agent.status {
        Ok(s) => {
            writeln!(
                out,
                "  agent     {} up {}",
                s.agent_version,
                humantime::format_duration(Duration::from_secs(s.uptime_seconds)),
            )?;
            // Its status and errors come from the VM: shown escaped.
            writeln!(
                out,
                "  cloud-init {}",
                spuff::terminal_safe(&cloud_init_view(s).summary)
            )?;
        }
        Err(e) => {
            writeln!(
                out,
                "  agent     unavailable: {}",
                spuff::terminal_safe(&e.to_string())
            )?;
            if let Some(hint) = spuff::Hint::hint(e) {
                writeln!(out, "            try: {}", spuff::terminal_safe(&hint))?;
            }
        }
    }
    if let Some(m) = &agent.metrics {
        writeln!(
            out,
            "  load      cpu {:.0}%, mem {}/{} MiB, disk {}/{} GiB, load {:.2} {:.2} {:.2}",
            m.cpu_usage_percent,
            m.memory_used_bytes >> 20,
            m.memory_total_bytes >> 20,
            m.disk_used_bytes >> 30,
            m.disk_total_bytes >> 30,
            m.load_average[0],
            m.load_average[1],
            m.load_average[2]
        )?;
    }
    if let Some(a) = &agent.activity {
        let bills = spuff::provider::ProviderInfo::by_name(&instance.provider)
            .is_some_and(|p| p.stopped_vm_bills);
        for line in activity_lines(a, bills) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// `status` of a VM that is off or gone at its provider.
fn report_unreachable(
    instance: &Instance,
    w: &spuff::vm::off::Whereabouts,
    json: bool,
    ctx: &Context,
) -> anyhow::Result<()> {
    use spuff::vm::off::Whereabouts;
    let bills = spuff::provider::ProviderInfo::by_name(&instance.provider)
        .is_some_and(|p| p.stopped_vm_bills);
    if json {
        let (state, decision, since) = match w {
            Whereabouts::Off { decision, since } => ("off", decision.clone(), *since),
            Whereabouts::Interrupted => ("interrupted", None, None),
            _ => ("gone", None, None),
        };
        return ctx.ui.json(&serde_json::json!({
            "instance": {
                "name": instance.name,
                "provider": instance.provider,
                "provider_id": instance.provider_id,
                "region": instance.region,
                "size": instance.size,
                "status": instance.status,
                "created_at": instance.created_at,
                "expires_at": instance.expires_at,
            },
            "vm_state": state,
            "off_since": since,
            "stop_decision": decision,
            "still_billing": state == "off" && bills,
            "agent": null,
            "agent_error": format!("the VM is {state}"),
        }));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", title_line(instance))?;
    writeln!(
        out,
        "  state     {}",
        super::context::describe_whereabouts(instance, w)
    )?;
    Ok(())
}

/// The first line of `status`: name, provider, id, region, size. The id,
/// region and size come from the provider's API: shown escaped.
fn title_line(instance: &Instance) -> String {
    format!(
        "{} ({} {}, {} {})",
        spuff::terminal_safe(&instance.name),
        instance.provider,
        spuff::terminal_safe(&instance.provider_id),
        spuff::terminal_safe(&instance.region),
        spuff::terminal_safe(&instance.size)
    )
}

fn human(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// The activity part of `status`, in plain words: how long the VM has been
/// idle, what holds it awake now (and each SSH connection's last traffic),
/// when and why it will stop, and whether it still bills then.
fn activity_lines(a: &api::Activity, stopped_vm_bills: bool) -> Vec<String> {
    use api::{ActivityKind, StopReason};
    let mut lines = Vec::new();
    let idle_rule = match (a.idle_timeout_seconds, a.idle_action) {
        (Some(t), api::IdleAction::Poweroff) => format!("powers off after {} idle", human(t)),
        _ => "no idle stop".to_string(),
    };
    if a.holding.is_empty() {
        lines.push(format!(
            "  idle      {} ({idle_rule})",
            human(a.idle_seconds)
        ));
    } else {
        lines.push(format!("  idle      no, in use ({idle_rule})"));
    }
    let mut held = Vec::new();
    for kind in &a.holding {
        let detail = a
            .sources
            .iter()
            .find(|s| s.kind == *kind)
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        if *kind != ActivityKind::SshTraffic {
            held.push(format!("{kind}: {detail}"));
        }
    }
    for c in &a.connections {
        let traffic = match c.last_traffic_seconds_ago {
            Some(s) => format!("traffic {} ago", human(s)),
            None => "no traffic seen".to_string(),
        };
        let holds = c.last_traffic_seconds_ago.is_some_and(|s| s <= 10);
        let line = format!(
            "ssh {}@{} from {}: {traffic}",
            spuff::terminal_safe(&c.user),
            spuff::terminal_safe(&c.tty),
            spuff::terminal_safe(&c.from)
        );
        if holds {
            held.push(line);
        } else {
            lines.push(format!("  connected {line}"));
        }
    }
    for (i, h) in held.iter().enumerate() {
        let label = if i == 0 { "held by" } else { "" };
        lines.push(format!("  {label:<9} {h}"));
    }
    if let Some(at) = a.expires_at {
        lines.push(format!(
            "  lifetime  ends {at} (spuff up --ttl), in use or not"
        ));
    }
    match &a.next_stop {
        Some(stop) => {
            let in_use = !a.holding.is_empty();
            let text = match stop.reason {
                StopReason::Idle if in_use => format!(
                    "{} {} after its last use (idle stop)",
                    stop.action,
                    human(a.idle_timeout_seconds.unwrap_or(0))
                ),
                StopReason::Idle => format!(
                    "{} in {} ({}) if nothing uses it until then",
                    stop.action,
                    human(stop.in_seconds),
                    stop.at
                ),
                StopReason::Ttl => format!(
                    "{} in {} ({}), when its lifetime ends",
                    stop.action,
                    human(stop.in_seconds),
                    stop.at
                ),
            };
            let bill = if stopped_vm_bills {
                "; a powered-off VM still bills here: `spuff down` or `spuff gc` ends it"
            } else {
                ""
            };
            lines.push(format!("  stops     {text}{bill}"));
        }
        None => lines.push("  stops     never by itself (no idle stop, no --ttl)".to_string()),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_status(bootstrap: BootstrapStatus) -> api::Status {
        api::Status {
            uptime_seconds: 60,
            idle_seconds: 0,
            hostname: "vm".into(),
            cloud_init_done: true,
            cloud_init_status: Some("done".into()),
            cloud_init_errors: Vec::new(),
            bootstrap_status: bootstrap,
            bootstrap_ready: bootstrap == BootstrapStatus::Ready,
            agent_version: "0.1.0".into(),
        }
    }

    fn progress(status: &str, phase_1_done: bool, line: &str) -> Progress {
        Progress::new(
            BootstrapStatus::from_file_content(status),
            Some(line.to_string()),
            phase_1_done,
        )
    }

    #[test]
    fn status_should_show_phase_2_running() {
        let p = progress("installing", true, "[spuff t] phase 2: installing packages");
        let b = bootstrap_view(Some(&p), None).expect("view");
        assert_eq!((b.status, b.phase), (BootstrapStatus::Installing, Some(2)));
        assert!(b.summary.starts_with("phase 2 running"), "{}", b.summary);
        assert_eq!(b.hint, Some("spuff logs --bootstrap"));
        assert_eq!(
            b.line.as_deref(),
            Some("[spuff t] phase 2: installing packages")
        );
        let json = serde_json::to_value(&b).expect("json");
        assert_eq!(json["status"], "installing");
        assert_eq!(json["phase"], 2);

        // An agent that knows `installing`, when the files could not be read.
        let b =
            bootstrap_view(None, Some(&agent_status(BootstrapStatus::Installing))).expect("view");
        assert_eq!(b.phase, Some(2));
    }

    #[test]
    fn status_should_tell_which_phase_failed() {
        let b = bootstrap_view(
            Some(&progress("failed", false, "phase 1: failed (exit 1)")),
            None,
        )
        .expect("view");
        assert_eq!(b.summary, "phase 1 failed");
        let b = bootstrap_view(
            Some(&progress("failed", true, "phase 2: failed (exit 100)")),
            None,
        )
        .expect("view");
        assert!(b.summary.starts_with("phase 2 failed"), "{}", b.summary);
        let b =
            bootstrap_view(Some(&progress("ready", true, "phase 2: done")), None).expect("view");
        assert_eq!((b.summary.as_str(), b.hint), ("ready", None));
        assert!(bootstrap_view(None, None).is_none());
    }

    fn activity() -> api::Activity {
        api::Activity {
            idle_seconds: 754,
            idle_timeout_seconds: Some(7200),
            idle_action: api::IdleAction::Poweroff,
            action_in_seconds: Some(6446),
            holding: Vec::new(),
            sources: Vec::new(),
            recent: Vec::new(),
            connections: vec![api::SshConnection {
                user: "dev".into(),
                tty: "notty".into(),
                from: "10.0.2.2:5123".into(),
                pid: 900,
                seen_for_seconds: 3000,
                last_traffic_seconds_ago: Some(754),
            }],
            expires_at: None,
            next_stop: Some(api::PlannedStop {
                reason: api::StopReason::Idle,
                action: api::IdleAction::Poweroff,
                at: "2026-12-01T10:00:00Z".parse().expect("time"),
                in_seconds: 6446,
            }),
        }
    }

    /// Issue 12: one screen says how long, what holds it, when and why it
    /// stops, and what that costs.
    #[test]
    fn status_should_explain_idleness_holders_and_the_next_stop() {
        let a = activity();
        let text = activity_lines(&a, true).join("\n");
        assert!(
            text.contains("idle      12m 34s (powers off after 2h idle)"),
            "{text}"
        );
        assert!(
            text.contains("connected ssh dev@notty from 10.0.2.2:5123: traffic 12m 34s ago"),
            "{text}"
        );
        assert!(
            text.contains(
                "stops     poweroff in 1h 47m 26s (2026-12-01T10:00:00Z) if nothing uses it"
            ),
            "{text}"
        );
        assert!(text.contains("still bills here"), "{text}");
        assert!(!activity_lines(&a, false).join("\n").contains("bills"));

        // In use: the connection with fresh traffic holds it; a TTL ends it.
        let mut a = activity();
        a.idle_seconds = 0;
        a.holding = vec![api::ActivityKind::SshTraffic];
        a.connections[0].last_traffic_seconds_ago = Some(2);
        a.expires_at = Some("2026-12-01T09:00:00Z".parse().expect("time"));
        a.next_stop = Some(api::PlannedStop {
            reason: api::StopReason::Ttl,
            action: api::IdleAction::Poweroff,
            at: "2026-12-01T09:00:00Z".parse().expect("time"),
            in_seconds: 600,
        });
        let text = activity_lines(&a, false).join("\n");
        assert!(text.contains("idle      no, in use"), "{text}");
        assert!(
            text.contains("held by   ssh dev@notty from 10.0.2.2:5123: traffic 2s ago"),
            "{text}"
        );
        assert!(
            text.contains("lifetime  ends 2026-12-01T09:00:00Z"),
            "{text}"
        );
        assert!(
            text.contains(
                "stops     poweroff in 10m (2026-12-01T09:00:00Z), when its lifetime ends"
            ),
            "{text}"
        );

        // A hostile VM's names are shown escaped.
        let mut a = activity();
        a.connections[0].user = "x\x1b]0;pwned\x07".into();
        assert!(!activity_lines(&a, false).join("").contains('\x1b'));
    }

    /// The offline boot of issue 11: the bootstrap is ready, but cloud-init
    /// failed, and `status` says so with its first error.
    #[test]
    fn status_should_show_cloud_inits_own_verdict() {
        let mut s = agent_status(BootstrapStatus::Ready);
        s.cloud_init_status = Some("error".into());
        s.cloud_init_errors = vec![
            "('package_update_upgrade_install', RuntimeError())".into(),
            "second".into(),
        ];
        let c = cloud_init_view(&s);
        assert_eq!((c.status.as_str(), c.done), ("error", true));
        assert!(
            c.summary
                .starts_with("error: ('package_update_upgrade_install'")
                && c.summary.contains("(and 1 more)"),
            "{}",
            c.summary
        );
        assert_eq!(
            cloud_init_view(&agent_status(BootstrapStatus::Ready)).summary,
            "done"
        );

        // An agent from before `cloud_init_status`.
        s.cloud_init_status = None;
        s.cloud_init_errors.clear();
        assert_eq!(cloud_init_view(&s).summary, "finished");
        s.cloud_init_done = false;
        assert_eq!(cloud_init_view(&s).summary, "running");
    }
}
