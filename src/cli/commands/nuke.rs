//! `spuff nuke`: list everything spuff made at a provider (by its tag),
//! confirm, delete it all through [`spuff::vm::nuke`], and name whatever
//! could not be deleted.

use std::io::Write;

use spuff::provider::{Resource, ResourceKind};
use spuff::terminal_safe;

use super::context::Context;
use crate::cli::args::NukeArgs;

/// How many deletions of one kind run at once.
const PARALLEL: usize = 8;

pub(crate) async fn run(args: NukeArgs, ctx: &Context) -> anyhow::Result<u8> {
    let name = match &args.provider {
        Some(p) => p.parse::<spuff::provider::ProviderType>()?.name(),
        None => ctx.settings.provider.name(),
    };
    let provider = ctx.provider(name)?;
    let where_ = match &args.region {
        Some(r) => format!("{name} ({r})"),
        None => format!("{name} (every region)"),
    };
    let looking = ctx
        .ui
        .spinner(format!("Looking for what spuff made at {where_}"));
    let found = match spuff::vm::nuke::survey(&*provider, args.region.as_deref()).await {
        Ok(found) => {
            looking.finish(format!("{} found at {where_}", count(found.len())));
            found
        }
        Err(e) => {
            looking.fail();
            return Err(anyhow::Error::new(e).context(format!(
                "cannot list what spuff made at {where_}; nothing was deleted"
            )));
        }
    };
    if args.json.json && (args.dry_run || found.is_empty()) {
        ctx.ui.json(&serde_json::json!({
            "provider": name,
            "resources": found.iter().map(resource_json).collect::<Vec<_>>(),
            "deleted": [],
        }))?;
        return Ok(0);
    }
    if found.is_empty() {
        ctx.ui
            .success(format!("Nothing of spuff's is left at {where_}."));
        return Ok(0);
    }
    table(&found)?;
    if args.dry_run {
        return Ok(0);
    }
    if !args.yes {
        if !ctx.ui.interactive() {
            anyhow::bail!(
                "nuke deletes {} and asks first; without a terminal pass --yes (or --dry-run to only list)",
                count(found.len())
            );
        }
        let question = format!(
            "Delete all {} listed above? This cannot be undone",
            count(found.len())
        );
        if !ctx.ui.confirm(&question, false)? {
            ctx.ui.info("Nothing was deleted.");
            return Ok(0);
        }
    }
    let total = found.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let report = |r: &Resource, result: &spuff::provider::ProviderResult<()>| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let what = describe(r);
        match result {
            Ok(()) => ctx.ui.info(format!("[{n}/{total}] deleted {what}")),
            Err(e) => ctx
                .ui
                .warn(format!("[{n}/{total}] could not delete {what}: {e}")),
        }
    };
    let left = spuff::vm::nuke::delete_all(
        &*provider,
        found.clone(),
        PARALLEL,
        Some(&ctx.store),
        &report,
    )
    .await;
    if args.json.json {
        let kept: Vec<&Resource> = left.iter().map(|l| &l.resource).collect();
        ctx.ui.json(&serde_json::json!({
            "provider": name,
            "resources": found.iter().map(resource_json).collect::<Vec<_>>(),
            "not_deleted": left.iter().map(|l| serde_json::json!({
                "resource": resource_json(&l.resource),
                "error": l.error.as_ref().map(|e| e.to_string()),
            })).collect::<Vec<_>>(),
            "deleted": found.iter().filter(|r| !kept.contains(r)).map(resource_json).collect::<Vec<_>>(),
        }))?;
    }
    if left.is_empty() {
        ctx.ui
            .success(format!("Deleted all {} at {where_}.", count(total)));
        return Ok(0);
    }
    let failed = left.len();
    for l in left {
        match l.error {
            Some(e) => ctx.ui.report_error(
                &anyhow::Error::new(e).context(format!("not deleted: {}", describe(&l.resource))),
            ),
            None => ctx.ui.warn(format!(
                "not deleted: {} (a VM in its region could not be deleted; run nuke again)",
                describe(&l.resource)
            )),
        }
    }
    ctx.ui.warn(format!(
        "{failed} of {total} could not be deleted; `spuff nuke` again retries them"
    ));
    Ok(crate::cli::EXIT_FAILURE)
}

fn count(n: usize) -> String {
    format!("{n} resource{}", if n == 1 { "" } else { "s" })
}

fn describe(r: &Resource) -> String {
    let region = r
        .region
        .as_deref()
        .map(|g| format!(" in {g}"))
        .unwrap_or_default();
    if r.name.is_empty() || r.name == r.id {
        format!("{} {}{region}", r.kind, terminal_safe(&r.id))
    } else {
        format!(
            "{} {} ({}){region}",
            r.kind,
            terminal_safe(&r.name),
            terminal_safe(&r.id)
        )
    }
}

fn resource_json(r: &Resource) -> serde_json::Value {
    serde_json::json!({
        "kind": match r.kind {
            ResourceKind::Vm => "vm",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::SshKey => "ssh_key",
            _ => "other",
        },
        "id": r.id,
        "name": r.name,
        "region": r.region,
    })
}

fn table(found: &[Resource]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<16} {:<16} {:<30} ID", "KIND", "REGION", "NAME")?;
    for r in found {
        writeln!(
            out,
            "{:<16} {:<16} {:<30} {}",
            r.kind.to_string(),
            terminal_safe(r.region.as_deref().unwrap_or("-")),
            terminal_safe(if r.name.is_empty() { "-" } else { &r.name }),
            terminal_safe(&r.id)
        )?;
    }
    out.flush()?;
    Ok(())
}
