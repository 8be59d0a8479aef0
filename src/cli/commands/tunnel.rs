//! `spuff tunnel`: the VM's agent port and `-L` forwards on this machine,
//! until Ctrl-C.

use std::time::Duration;

use anyhow::Context as _;
use spuff::forward::LocalForwardSpec;

use super::context::{Context, agent_port};
use crate::cli::args::TunnelArgs;

pub(crate) async fn run(args: TunnelArgs, verbose: bool, ctx: &Context) -> anyhow::Result<u8> {
    let mut specs = Vec::new();
    if !args.no_agent {
        specs.push(LocalForwardSpec::new(
            args.agent_port,
            "127.0.0.1",
            agent_port(),
        ));
    }
    for spec in &args.local {
        specs.push(
            spec.parse::<LocalForwardSpec>()
                .with_context(|| format!("bad -L {spec}"))?,
        );
    }
    if specs.is_empty() {
        anyhow::bail!("nothing to forward: drop --no-agent or add -L specs");
    }
    let instance = ctx.store.resolve(args.name.as_deref())?;
    let session = ctx.connect(&instance).await?;
    // The VM's agent cannot see this work: tell it the VM is in use.
    let _awake = super::context::keep_awake(&instance, &session, &ctx.ui);
    let mut forwards = Vec::new();
    for spec in specs {
        let mut forward = session
            .forward_local(spec.clone())
            .await
            .with_context(|| format!("cannot listen on {}", spec.bind))?;
        let what = if spec.remote_port == agent_port() && spec.remote_host == "127.0.0.1" {
            "agent".to_string()
        } else {
            format!("{}:{}", spec.remote_host, spec.remote_port)
        };
        ctx.ui.success(format!(
            "{} → {} on {}",
            forward.local_addr(),
            what,
            instance.name
        ));
        if verbose && let Some(mut events) = forward.events() {
            let ui = ctx.ui.clone();
            let label = forward.local_addr().to_string();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    ui.info(format!("{label}: {event}"));
                }
            });
        }
        forwards.push(forward);
    }
    ctx.ui.info("Forwarding; press Ctrl-C to stop.");
    let lost = tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = wait_closed(&session) => true,
    };
    for forward in forwards {
        forward.shutdown_graceful(Duration::from_secs(2)).await;
    }
    let _ = session.close().await;
    if lost {
        // Scripts must be able to tell: a tunnel whose VM went away fails.
        let e = anyhow::anyhow!(
            "the connection to {} was lost; the forwards are closed",
            spuff::terminal_safe(&instance.name)
        );
        return Err(super::context::explain_loss(&instance, ctx, e).await);
    }
    Ok(0)
}

async fn wait_closed(session: &spuff::ssh::Session) {
    while !session.is_closed() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
