//! `spuff list`: local state reconciled with the provider's spuff VMs.

use std::collections::BTreeSet;
use std::io::Write;

use spuff::vm::{self, Entry, Tracking};

use super::context::Context;
use crate::cli::args::ListArgs;

pub(crate) async fn run(args: ListArgs, ctx: &Context) -> anyhow::Result<u8> {
    let local = ctx.store.list()?;
    let active = ctx.store.active()?;
    // Ask every provider that has a local record, and the configured one.
    let mut providers: BTreeSet<String> = local.iter().map(|i| i.provider.clone()).collect();
    providers.insert(ctx.settings.provider.name().to_string());
    let mut rows: Vec<Entry> = Vec::new();
    let mut unchecked = local.clone();
    let mut failures = Vec::new();
    if !args.local {
        for name in &providers {
            let listing = match ctx.provider(name) {
                Ok(provider) => provider.list_instances().await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match listing {
                Ok(remote) => {
                    let mine: Vec<_> = local
                        .iter()
                        .filter(|i| &i.provider == name)
                        .cloned()
                        .collect();
                    unchecked.retain(|i| &i.provider != name);
                    rows.extend(vm::reconcile(&mine, active.as_deref(), name, &remote));
                }
                Err(e) => failures.push(format!("{name}: {e:#}")),
            }
        }
    }
    rows.extend(vm::reconcile(&unchecked, active.as_deref(), "", &[]));
    rows.sort_by(|a, b| a.name.cmp(&b.name));

    if args.json.json {
        ctx.ui
            .json(&serde_json::json!({ "instances": rows, "errors": failures }))?;
    } else {
        print_table(&rows)?;
        for row in &rows {
            match row.tracking {
                Tracking::Orphan => ctx.ui.warn(format!(
                    "{} ({} {}) is a spuff VM that local state does not know; it still bills. \
                     Remove it with `spuff down {}`",
                    row.name, row.provider, row.provider_id, row.name
                )),
                Tracking::Gone => ctx.ui.warn(format!(
                    "{} is gone from {}; forget it with `spuff down {} --force`",
                    row.name, row.provider, row.name
                )),
                _ => {}
            }
        }
    }
    for failure in &failures {
        ctx.ui.warn(format!("could not ask {failure}"));
    }
    Ok(if failures.is_empty() {
        0
    } else {
        crate::cli::EXIT_FAILURE
    })
}

fn print_table(rows: &[Entry]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "No VMs. Create one with `spuff up`.")?;
        return Ok(());
    }
    writeln!(
        out,
        "  {:<20} {:<13} {:<12} {:<16} {:<10} {:<14} NOTE",
        "NAME", "PROVIDER", "ID", "IP", "REGION", "STATUS"
    )?;
    for r in rows {
        let status = match (&r.local_status, &r.provider_status) {
            (_, Some(p)) => p.clone(),
            (Some(l), None) => l.to_string(),
            (None, None) => "-".to_string(),
        };
        let note = match r.tracking {
            Tracking::Tracked => "",
            Tracking::Orphan => "orphan: not in local state",
            Tracking::Gone => "gone at the provider",
            Tracking::Unchecked => "not checked",
            _ => "",
        };
        writeln!(
            out,
            "{} {:<20} {:<13} {:<12} {:<16} {:<10} {:<14} {}",
            if r.active { "*" } else { " " },
            r.name,
            r.provider,
            if r.provider_id.is_empty() {
                "-"
            } else {
                &r.provider_id
            },
            r.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            r.region,
            status,
            note
        )?;
    }
    Ok(())
}
