//! `spuff down`: destroy VMs, optionally snapshotting first; forget them only
//! once the provider confirms.

use anyhow::Context as _;
use spuff::provider::MANAGED_LABEL;
use spuff::state::{Instance, Lifecycle};

use super::context::Context;
use crate::cli::args::DownArgs;

pub(crate) async fn run(args: DownArgs, ctx: &Context) -> anyhow::Result<u8> {
    let targets: Vec<Instance> = if args.all {
        ctx.store.list()?
    } else if let Some(name) = &args.name {
        match ctx.store.get(name)? {
            Some(instance) => vec![instance],
            // Not in state: it may be an orphan the provider has.
            None => return destroy_orphan(name, &args, ctx).await,
        }
    } else {
        vec![ctx.store.resolve(None)?]
    };
    if targets.is_empty() {
        ctx.ui.info("No VMs to destroy.");
        return Ok(0);
    }
    let names: Vec<&str> = targets.iter().map(|i| i.name.as_str()).collect();
    confirm(&format!("Destroy {}?", names.join(", ")), &args, ctx)?;

    let mut results = Vec::new();
    let mut failed = false;
    for instance in &targets {
        match destroy(instance, &args, ctx).await {
            Ok(snapshot) => {
                results.push(serde_json::json!({ "name": instance.name, "destroyed": true, "snapshot": snapshot }))
            }
            Err(e) => {
                failed = true;
                ctx.ui.report_error(&e);
                results.push(serde_json::json!({ "name": instance.name, "destroyed": false, "error": format!("{e:#}") }));
            }
        }
    }
    if args.json.json {
        ctx.ui.json(&serde_json::json!({ "results": results }))?;
    }
    Ok(if failed { crate::cli::EXIT_FAILURE } else { 0 })
}

fn confirm(question: &str, args: &DownArgs, ctx: &Context) -> anyhow::Result<()> {
    if args.force {
        return Ok(());
    }
    if !ctx.ui.interactive() {
        anyhow::bail!(
            "refusing to destroy without confirmation: no terminal to ask on (add --force)"
        );
    }
    if !ctx.ui.confirm(question, false)? {
        anyhow::bail!("cancelled; nothing was destroyed");
    }
    Ok(())
}

/// Destroys one recorded VM; returns the snapshot id if one was taken.
async fn destroy(
    instance: &Instance,
    args: &DownArgs,
    ctx: &Context,
) -> anyhow::Result<Option<String>> {
    let provider = ctx.provider(&instance.provider)?;
    let mut id = instance.provider_id.clone();
    if id.is_empty() {
        // The create call's answer never arrived: find the VM by name.
        let remote = provider.list_instances().await?;
        match remote
            .iter()
            .find(|r| r.name == instance.name && r.labels.contains_key(MANAGED_LABEL))
        {
            Some(r) => id = r.id.clone(),
            None => {
                ctx.store.remove(&instance.name)?;
                ctx.ui
                    .success(format!("{} was never created; forgotten", instance.name));
                return Ok(None);
            }
        }
    }
    let mut snapshot = None;
    if args.snapshot {
        let step = ctx.ui.spinner(format!("Snapshotting {}", instance.name));
        let name =
            format!("{}-{}", instance.name, spuff::agent::api::Timestamp::now()).replace(':', "-");
        match provider.create_snapshot(&id, &name).await {
            Ok(s) => {
                step.finish(format!("snapshot {} ({})", s.name, s.id));
                snapshot = Some(s.id);
            }
            Err(e) => {
                step.fail();
                return Err(anyhow::Error::from(e).context(format!(
                    "cannot snapshot {}; it was not destroyed",
                    instance.name
                )));
            }
        }
    }
    ctx.store
        .update(&instance.name, |i| i.status = Lifecycle::Destroying)?;
    let step = ctx.ui.spinner(format!("Destroying {}", instance.name));
    if let Err(e) = provider.destroy_instance(&id).await {
        step.fail();
        return Err(anyhow::Error::from(e).context(format!(
            "cannot destroy {} ({} {id})",
            instance.name, instance.provider
        )));
    }
    ctx.store
        .remove(&instance.name)
        .with_context(|| format!("{} was destroyed, but forgetting it failed", instance.name))?;
    step.finish(format!("destroyed {}", instance.name));
    Ok(snapshot)
}

/// `spuff down NAME` for a VM state does not know: destroy the provider's
/// spuff-labelled VM of that name, if there is one.
async fn destroy_orphan(name: &str, args: &DownArgs, ctx: &Context) -> anyhow::Result<u8> {
    let provider = ctx.default_provider()?;
    let remote = provider.list_instances().await?;
    let Some(vm) = remote
        .iter()
        .find(|r| r.name == name && r.labels.contains_key(MANAGED_LABEL))
    else {
        return Err(spuff::state::Error::NotFound {
            name: name.to_string(),
            known: ctx.store.list()?.into_iter().map(|i| i.name).collect(),
        }
        .into());
    };
    confirm(
        &format!("Destroy orphan {name} ({} {})?", provider.name(), vm.id),
        args,
        ctx,
    )?;
    let step = ctx.ui.spinner(format!("Destroying {name}"));
    provider.destroy_instance(&vm.id).await?;
    step.finish(format!("destroyed {name}"));
    Ok(0)
}
