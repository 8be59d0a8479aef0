//! `spuff snapshot create | list | delete`.

use std::io::Write;

use spuff::terminal_safe;

use super::context::Context;
use crate::cli::args::SnapshotCommand;
use crate::cli::draw::Drawer;

pub(crate) async fn run(command: SnapshotCommand, ctx: &Context) -> anyhow::Result<u8> {
    match command {
        SnapshotCommand::Create {
            name,
            snapshot_name,
            json,
        } => {
            let instance = ctx.store.resolve(name.as_deref())?;
            let provider = ctx.provider(&instance.provider)?;
            let snapshot_name =
                snapshot_name.unwrap_or_else(|| spuff::vm::snapshot::default_name(&instance.name));
            let drawer = Drawer::new(&ctx.ui);
            let result = spuff::vm::snapshot(&*provider, &instance, &snapshot_name, &drawer).await;
            drawer.abandon();
            let snapshot = result?;
            if json.json {
                ctx.ui
                    .json(&serde_json::json!({ "id": snapshot.id, "name": snapshot.name }))?;
            }
        }
        SnapshotCommand::List(json) => {
            let provider = ctx.default_provider()?;
            let snapshots = provider.list_snapshots().await?;
            if json.json {
                let rows: Vec<_> = snapshots
                    .iter()
                    .map(|s| serde_json::json!({ "id": s.id, "name": s.name, "created_at": s.created_at, "size_gb": s.size_gb }))
                    .collect();
                ctx.ui.json(&serde_json::json!({ "snapshots": rows }))?;
            } else {
                let mut out = std::io::stdout().lock();
                if snapshots.is_empty() {
                    writeln!(out, "No snapshots.")?;
                }
                for s in &snapshots {
                    writeln!(
                        out,
                        "{:<14} {:<40} {}",
                        terminal_safe(&s.id),
                        terminal_safe(&s.name),
                        terminal_safe(s.created_at.as_deref().unwrap_or("-"))
                    )?;
                }
            }
        }
        SnapshotCommand::Rollback { id, force } => {
            let provider = ctx.default_provider()?;
            let shown = terminal_safe(&id);
            if !force {
                if !ctx.ui.interactive() {
                    anyhow::bail!(
                        "refusing to roll back without confirmation: no terminal to ask on (add --force)"
                    );
                }
                let question = format!(
                    "Roll the VM back to snapshot {shown}? Everything written on it since is lost."
                );
                if !ctx.ui.confirm(&question, false)? {
                    ctx.ui.info("nothing was rolled back");
                    return Ok(0);
                }
            }
            let step = ctx.ui.spinner(format!("Rolling back to {shown}"));
            let vm_id = match provider.rollback_snapshot(&id).await {
                Ok(vm_id) => vm_id,
                Err(e) => {
                    step.fail();
                    let unsupported =
                        matches!(e, spuff::provider::ProviderError::Unsupported { .. });
                    let e = anyhow::Error::from(e)
                        .context(format!("cannot roll back to snapshot {shown}"));
                    return Err(if unsupported {
                        e.context(format!(
                            "{}'s snapshots are images for new VMs: `spuff up --snapshot {shown}` makes one from it",
                            provider.name()
                        ))
                    } else {
                        e
                    });
                }
            };
            step.finish(format!(
                "VM {} is back at {shown} and starting",
                terminal_safe(&vm_id)
            ));
            // This machine's record of it, if it has one: where it answers
            // now, and that it does.
            let record = ctx
                .store
                .list()?
                .into_iter()
                .find(|i| i.provider == provider.name() && i.provider_id == vm_id);
            if let Some(record) = record {
                let vm = provider.wait_ready(&vm_id).await?;
                let record = super::start::record_address(&record, &vm, ctx)?;
                super::start::wait_for_ssh(&record, ctx).await?;
            }
        }
        SnapshotCommand::Delete { id, force } => {
            if !force {
                if !ctx.ui.interactive() {
                    anyhow::bail!(
                        "refusing to delete without confirmation: no terminal to ask on (add --force)"
                    );
                }
                if !ctx.ui.confirm(&format!("Delete snapshot {id}?"), false)? {
                    ctx.ui.info("Nothing was deleted.");
                    return Ok(0);
                }
            }
            let provider = ctx.default_provider()?;
            provider.delete_snapshot(&id).await?;
            ctx.ui.success(format!("deleted snapshot {id}"));
        }
    }
    Ok(0)
}
