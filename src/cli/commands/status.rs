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
    let instance = ctx.store.resolve(args.name.as_deref())?;
    let session = match ctx.connect(&instance).await {
        Ok(session) => Some(session),
        Err(e) if !args.watch => {
            // State alone is still worth showing.
            report(&instance, None, args.json.json, ctx)?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let client = session.map(|s| {
        let mut config = ClientConfig::new(instance.agent_token.clone());
        config.port = super::context::agent_port();
        Client::new(s, config)
    });
    loop {
        let agent = match &client {
            Some(c) => Some(fetch(c).await),
            None => None,
        };
        if args.watch && !args.json.json {
            // Clear the screen and home the cursor for a live redraw.
            print!("\x1b[2J\x1b[H");
        }
        report(&instance, agent, args.json.json, ctx)?;
        if !args.watch {
            return Ok(0);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(0),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

struct AgentView {
    status: Result<api::Status, spuff::agent::Error>,
    metrics: Option<api::Metrics>,
    activity: Option<api::Activity>,
    progress: Option<Progress>,
}

async fn fetch(client: &Client) -> AgentView {
    let (status, metrics, activity, progress) = tokio::join!(
        client.status(),
        client.metrics(),
        client.activity(),
        spuff::vm::bootstrap::progress(client.session())
    );
    AgentView {
        status,
        metrics: metrics.ok(),
        activity: activity.ok(),
        progress: progress.ok(),
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
    agent: Option<AgentView>,
    json: bool,
    ctx: &Context,
) -> anyhow::Result<()> {
    if json {
        let (status, error, metrics, activity, progress) = match agent {
            Some(a) => match a.status {
                Ok(s) => (Some(s), None, a.metrics, a.activity, a.progress),
                Err(e) => (
                    None,
                    Some(format!("{e}")),
                    a.metrics,
                    a.activity,
                    a.progress,
                ),
            },
            None => (None, Some("not connected".to_string()), None, None, None),
        };
        let bootstrap = bootstrap_view(progress.as_ref(), status.as_ref());
        let cloud_init = status.as_ref().map(cloud_init_view);
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
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} ({} {}, {} {})",
        instance.name, instance.provider, instance.provider_id, instance.region, instance.size
    )?;
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
    match agent.status {
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
                spuff::terminal_safe(&cloud_init_view(&s).summary)
            )?;
            writeln!(
                out,
                "  idle      {}",
                humantime::format_duration(Duration::from_secs(s.idle_seconds))
            )?;
        }
        Err(e) => {
            writeln!(
                out,
                "  agent     unavailable: {}",
                spuff::terminal_safe(&e.to_string())
            )?;
            if let Some(hint) = spuff::Hint::hint(&e) {
                writeln!(out, "            try: {}", spuff::terminal_safe(&hint))?;
            }
        }
    }
    if let Some(m) = agent.metrics {
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
    if let Some(a) = agent.activity {
        let holding: Vec<String> = a.holding.iter().map(|k| k.to_string()).collect();
        writeln!(
            out,
            "  activity  {}{}",
            if holding.is_empty() {
                "idle".to_string()
            } else {
                format!("busy: {}", holding.join(", "))
            },
            match (a.idle_action, a.action_in_seconds) {
                (api::IdleAction::None, _) | (_, None) => String::new(),
                (action, Some(secs)) => format!(
                    "; {action} in {} if nothing happens",
                    humantime::format_duration(Duration::from_secs(secs))
                ),
            }
        )?;
        for source in a.sources.iter().filter(|s| s.active) {
            writeln!(out, "            {}: {}", source.kind, source.detail)?;
        }
    }
    Ok(())
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
