//! `spuff status`: local state plus what the VM's agent says (status,
//! metrics, activity), fetched through the SSH channel.

use std::io::Write;
use std::time::Duration;

use spuff::agent::{Client, ClientConfig, api};
use spuff::state::Instance;

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
}

async fn fetch(client: &Client) -> AgentView {
    let (status, metrics, activity) =
        tokio::join!(client.status(), client.metrics(), client.activity());
    AgentView {
        status,
        metrics: metrics.ok(),
        activity: activity.ok(),
    }
}

fn report(
    instance: &Instance,
    agent: Option<AgentView>,
    json: bool,
    ctx: &Context,
) -> anyhow::Result<()> {
    if json {
        let (status, error, metrics, activity) = match agent {
            Some(a) => match a.status {
                Ok(s) => (Some(s), None, a.metrics, a.activity),
                Err(e) => (None, Some(format!("{e}")), a.metrics, a.activity),
            },
            None => (None, Some("not connected".to_string()), None, None),
        };
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
    match agent.status {
        Ok(s) => {
            writeln!(
                out,
                "  agent     {} up {}, bootstrap {}, cloud-init {}",
                s.agent_version,
                humantime::format_duration(Duration::from_secs(s.uptime_seconds)),
                s.bootstrap_status,
                if s.cloud_init_done { "done" } else { "running" }
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
