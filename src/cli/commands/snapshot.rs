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
        SnapshotCommand::Delete { id, force } => {
            if !force {
                if !ctx.ui.interactive() {
                    anyhow::bail!(
                        "refusing to delete without confirmation: no terminal to ask on (add --force)"
                    );
                }
                if !ctx.ui.confirm(&format!("Delete snapshot {id}?"), false)? {
                    anyhow::bail!("cancelled");
                }
            }
            let provider = ctx.default_provider()?;
            provider.delete_snapshot(&id).await?;
            ctx.ui.success(format!("deleted snapshot {id}"));
        }
    }
    Ok(0)
}
