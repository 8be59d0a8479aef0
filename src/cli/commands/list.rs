//! `spuff list`: local state reconciled with the provider's spuff VMs.
//!
//! What it prints must be true: a provider that could not be asked is never
//! shown as having no VMs. Its local records are listed as unchecked, the
//! failure is reported with its cause, and the exit code is 1. Entries the
//! provider listed but spuff could not read are named, not dropped
//! silently. Names, statuses and messages from the API reach the terminal
//! through `spuff::terminal_safe`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use spuff::provider::Skipped;
use spuff::state::Lifecycle;
use spuff::terminal_safe;
use spuff::vm::{self, Entry, Tracking};

use super::context::Context;
use crate::cli::args::ListArgs;

/// Local state side by side with what the providers say.
pub(crate) struct Survey {
    pub(crate) local: Vec<spuff::state::Instance>,
    /// State records that cannot be read: reported, never fatal.
    pub(crate) damaged: Vec<spuff::state::Damaged>,
    pub(crate) rows: Vec<Entry>,
    pub(crate) failures: BTreeMap<String, anyhow::Error>,
    pub(crate) skipped: Vec<(String, Skipped)>,
}

/// Asks every provider that has a local record, and the configured one
/// (none with `local_only`), and reconciles their listings with state.
pub(crate) async fn survey(ctx: &Context, local_only: bool) -> anyhow::Result<Survey> {
    let (local, damaged) = ctx.store.list_checked()?;
    let active = ctx.store.active()?;
    let mut providers: BTreeSet<String> = local.iter().map(|i| i.provider.clone()).collect();
    providers.insert(ctx.settings.provider.name().to_string());
    let mut rows: Vec<Entry> = Vec::new();
    let mut unchecked = local.clone();
    let mut failures: BTreeMap<String, anyhow::Error> = BTreeMap::new();
    let mut skipped: Vec<(String, Skipped)> = Vec::new();
    if !local_only {
        for name in &providers {
            let listing = match ctx.provider(name) {
                Ok(provider) => provider.list_instances().await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match listing {
                Ok(listing) => {
                    let mine: Vec<_> = local
                        .iter()
                        .filter(|i| &i.provider == name)
                        .cloned()
                        .collect();
                    unchecked.retain(|i| &i.provider != name);
                    rows.extend(vm::reconcile(
                        &mine,
                        active.as_deref(),
                        name,
                        &listing.instances,
                    ));
                    skipped.extend(listing.skipped.into_iter().map(|s| (name.clone(), s)));
                }
                Err(e) => {
                    failures.insert(name.clone(), e);
                }
            }
        }
    }
    rows.extend(vm::reconcile(&unchecked, active.as_deref(), "", &[]));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Survey {
        local,
        damaged,
        rows,
        failures,
        skipped,
    })
}

pub(crate) async fn run(args: ListArgs, ctx: &Context) -> anyhow::Result<u8> {
    let Survey {
        local,
        damaged,
        rows,
        failures,
        skipped,
    } = survey(ctx, args.local).await?;
    let finished = vm::gc::finished(&local, &rows, std::time::SystemTime::now());

    if args.json.json {
        print_json(ctx, &rows, &finished, &failures, &skipped, &damaged)?;
    } else {
        for d in &damaged {
            ctx.ui.warn(format!(
                "the state record {} cannot be read ({}); `spuff down {}` forgets it, and its VM, \
                 if it has one, shows here as an orphan",
                terminal_safe(&d.name),
                terminal_safe(&d.message),
                terminal_safe(&d.name)
            ));
        }
        print_table(&rows, &failures, args.local)?;
        for row in &rows {
            let name = terminal_safe(&row.name);
            match (row.tracking, row.local_status) {
                (Tracking::Orphan, _) => ctx.ui.warn(format!(
                    "{name} ({} {}) is a spuff VM that local state does not know; it still bills. \
                     Remove it with `spuff down {name}`",
                    row.provider,
                    terminal_safe(&row.provider_id)
                )),
                (Tracking::Gone, Some(Lifecycle::Unconfirmed | Lifecycle::Creating))
                    if row.provider_id.is_empty() =>
                {
                    ctx.ui.warn(format!(
                        "{name}: its create was never answered and {} has no VM with its spuff id; \
                         forget it with `spuff down {name}`",
                        row.provider
                    ))
                }
                (Tracking::Gone, _) => ctx.ui.warn(format!(
                    "{name} is gone from {}; forget it with `spuff down {name}`",
                    row.provider
                )),
                (Tracking::Tracked, Some(Lifecycle::Failed)) => ctx.ui.warn(format!(
                    "{name} failed during `spuff up` and still bills; remove it with `spuff down {name}`"
                )),
                (Tracking::Unchecked, Some(Lifecycle::Failed)) => ctx.ui.warn(format!(
                    "{name} failed during `spuff up` and may still bill; remove it with `spuff down {name}`"
                )),
                (_, Some(Lifecycle::Unconfirmed)) => ctx.ui.warn(format!(
                    "{name} may exist: its create's answer was lost; `spuff down {name}` destroys \
                     whatever carries its spuff id"
                )),
                _ => {}
            }
        }
        for (provider, entry) in &skipped {
            // `Skipped`'s Display is terminal-safe.
            ctx.ui.warn(format!(
                "{provider} listed an entry spuff cannot read, so it is not shown: {entry}"
            ));
        }
    }
    let failed = !failures.is_empty();
    for (provider, error) in failures {
        ctx.ui.report_error(&error.context(format!(
            "could not ask {provider} for its VMs; its local records are shown unchecked"
        )));
    }
    if !args.json.json {
        super::gc::offer(&finished, ctx).await?;
    }
    Ok(if failed { crate::cli::EXIT_FAILURE } else { 0 })
}

fn print_json(
    ctx: &Context,
    rows: &[Entry],
    finished: &[vm::gc::Candidate],
    failures: &BTreeMap<String, anyhow::Error>,
    skipped: &[(String, Skipped)],
    damaged: &[spuff::state::Damaged],
) -> anyhow::Result<()> {
    let instances: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut value = serde_json::to_value(row)?;
            value["still_billing"] = still_billing(row).into();
            // Why `spuff gc` would destroy it, if it would.
            value["finished"] = finished
                .iter()
                .find(|c| c.instance.name == row.name)
                .map(|c| serde_json::to_value(&c.finished))
                .transpose()?
                .unwrap_or(serde_json::Value::Null);
            // Which rows are unchecked because asking failed, and why.
            if row.tracking == Tracking::Unchecked
                && let Some(e) = failures.get(&row.provider)
            {
                value["provider_error"] = format!("{e:#}").into();
            }
            Ok(value)
        })
        .collect::<serde_json::Result<_>>()?;
    let provider_errors: Vec<serde_json::Value> = failures
        .iter()
        .map(|(provider, e)| {
            serde_json::json!({
                "provider": provider,
                "error": format!("{e:#}"),
                "hint": crate::cli::ui::hint_for(e),
            })
        })
        .collect();
    let skipped: Vec<serde_json::Value> = skipped
        .iter()
        .map(|(provider, s)| {
            serde_json::json!({
                "provider": provider,
                "resource": s.resource,
                "id": s.id,
                "name": s.name,
                "reason": s.reason,
            })
        })
        .collect();
    ctx.ui.json(&serde_json::json!({
        "instances": instances,
        "provider_errors": provider_errors,
        "skipped": skipped,
        "damaged": damaged
            .iter()
            .map(|d| serde_json::json!({ "name": d.name, "error": d.message }))
            .collect::<Vec<_>>(),
    }))
}

fn print_table(
    rows: &[Entry],
    failures: &BTreeMap<String, anyhow::Error>,
    local_only: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        // "No VMs" only when every provider answered so.
        if local_only {
            writeln!(
                out,
                "Nothing in local state (providers not asked: --local)."
            )?;
        } else if failures.is_empty() {
            writeln!(out, "No VMs. Create one with `spuff up`.")?;
        } else {
            writeln!(
                out,
                "Nothing in local state, and {} could not be asked: VMs there are unknown.",
                failures.keys().cloned().collect::<Vec<_>>().join(", ")
            )?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "  {:<20} {:<13} {:<12} {:<16} {:<10} {:<20} NOTE",
        "NAME", "PROVIDER", "ID", "IP", "REGION", "STATUS"
    )?;
    for r in rows {
        let note = match r.tracking {
            Tracking::Tracked => "",
            Tracking::Orphan => "orphan: not in local state",
            Tracking::Gone if r.provider_id.is_empty() => "not found at the provider",
            Tracking::Gone => "gone at the provider",
            Tracking::Unchecked if failures.contains_key(&r.provider) => {
                "unchecked: provider unreachable"
            }
            Tracking::Unchecked => "unchecked",
            _ => "",
        };
        let note = match (note, still_billing(r)) {
            ("", true) => BILLING_NOTE.to_string(),
            (note, true) => format!("{note}; {BILLING_NOTE}"),
            (note, false) => note.to_string(),
        };
        writeln!(
            out,
            "{} {:<20} {:<13} {:<12} {:<16} {:<10} {:<20} {}",
            if r.active { "*" } else { " " },
            terminal_safe(&r.name),
            r.provider,
            if r.provider_id.is_empty() {
                "-".into()
            } else {
                terminal_safe(&r.provider_id)
            },
            r.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            terminal_safe(&r.region),
            terminal_safe(&status(r)),
            note
        )?;
    }
    Ok(())
}

/// The status to show: what went wrong locally (failed, may exist, being
/// destroyed) comes first, with the provider's view beside it; otherwise the
/// provider's status, else the local one.
pub(crate) fn status(r: &Entry) -> String {
    let attention = matches!(
        r.local_status,
        Some(
            Lifecycle::Failed
                | Lifecycle::Unconfirmed
                | Lifecycle::Destroying
                | Lifecycle::Creating
                | Lifecycle::Provisioning
        )
    );
    match (&r.local_status, &r.provider_status) {
        (Some(l), Some(p)) if attention => format!("{l} ({p})"),
        (_, Some(p)) => p.clone(),
        (Some(l), None) => l.to_string(),
        (None, None) => "-".to_string(),
    }
}

/// What `list` says of a VM [`still_billing`].
const BILLING_NOTE: &str = "off, still billing: `spuff down` ends it";

/// A powered-off VM on a provider that bills stopped VMs (DigitalOcean and
/// Hetzner keep charging for a VM that is off): worth saying, since "off"
/// reads like "free" (issue 12).
fn still_billing(r: &Entry) -> bool {
    r.provider_status.as_deref() == Some("off")
        && r.provider
            .parse::<spuff::provider::ProviderType>()
            .is_ok_and(|kind| kind.info().stopped_vm_bills)
}
