//! `spuff gc`: destroy, after confirming, the recorded VMs that are finished
//! (powered off, past their lifetime, or gone at their provider), and the
//! same offer at the end of `spuff list` and before `spuff up` (issue 12).
//!
//! The VM's agent stops the work without this machine; on providers that
//! bill a powered-off VM only the provider's API stops the bill, and that
//! is here.

use std::time::SystemTime;

use spuff::terminal_safe;
use spuff::vm::gc::{Candidate, Finished};

use super::context::Context;
use super::down::destroy_record;
use super::list::{Survey, survey};
use crate::cli::args::GcArgs;

pub(crate) async fn run(args: GcArgs, ctx: &Context) -> anyhow::Result<u8> {
    let Survey {
        local,
        rows,
        failures,
        ..
    } = survey(ctx, false).await?;
    let candidates = spuff::vm::gc::finished(&local, &rows, SystemTime::now());
    let unasked = !failures.is_empty();
    for (provider, error) in failures {
        ctx.ui.report_error(&error.context(format!(
            "could not ask {provider} for its VMs; they are left alone"
        )));
    }
    if candidates.is_empty() {
        if args.json.json {
            ctx.ui
                .json(&serde_json::json!({ "finished": [], "results": [] }))?;
        } else {
            ctx.ui.info(
                "Nothing to clean up: no recorded VM is powered off, past its lifetime or gone.",
            );
        }
        return Ok(if unasked { crate::cli::EXIT_FAILURE } else { 0 });
    }
    show(&candidates, ctx);
    let listed: Vec<serde_json::Value> = candidates.iter().map(candidate_json).collect();
    if args.dry_run {
        if args.json.json {
            ctx.ui
                .json(&serde_json::json!({ "finished": listed, "results": [] }))?;
        }
        return Ok(0);
    }
    if !args.yes {
        if !ctx.ui.interactive() {
            anyhow::bail!(
                "refusing to destroy without confirmation: no terminal to ask on (add --yes)"
            );
        }
        if !ctx.ui.confirm(&question(&candidates), false)? {
            ctx.ui.info("Nothing was destroyed.");
            return Ok(0);
        }
    }
    let (results, failed) = destroy(&candidates, ctx).await;
    if args.json.json {
        ctx.ui
            .json(&serde_json::json!({ "finished": listed, "results": results }))?;
    }
    Ok(if failed || unasked {
        crate::cli::EXIT_FAILURE
    } else {
        0
    })
}

/// Names finished VMs after `list` or before `up`; on a terminal, offers to
/// destroy them now, elsewhere points to `spuff gc`.
pub(crate) async fn offer(candidates: &[Candidate], ctx: &Context) -> anyhow::Result<()> {
    if candidates.is_empty() {
        return Ok(());
    }
    show(candidates, ctx);
    if !ctx.ui.interactive() {
        ctx.ui
            .warn("`spuff gc` destroys them (a powered-off VM may still bill)");
        return Ok(());
    }
    if ctx.ui.confirm(&question(candidates), false)? {
        destroy(candidates, ctx).await;
    }
    Ok(())
}

fn question(candidates: &[Candidate]) -> String {
    match candidates.len() {
        1 => format!("Destroy {}?", terminal_safe(&candidates[0].instance.name)),
        n => format!("Destroy these {n} VMs?"),
    }
}

fn show(candidates: &[Candidate], ctx: &Context) {
    ctx.ui.info(format!(
        "{} finished VM{}:",
        candidates.len(),
        if candidates.len() == 1 { "" } else { "s" }
    ));
    for c in candidates {
        let i = &c.instance;
        let bills =
            spuff::provider::ProviderInfo::by_name(&i.provider).is_some_and(|p| p.stopped_vm_bills);
        let cost = match (&c.finished, bills) {
            (Finished::Gone, _) => "",
            (_, true) => "; still billing",
            (_, false) => "",
        };
        ctx.ui.info(format!(
            "  {} ({} {}): {}{cost}",
            terminal_safe(&i.name),
            i.provider,
            terminal_safe(&i.provider_id),
            c.finished
        ));
    }
}

fn candidate_json(c: &Candidate) -> serde_json::Value {
    serde_json::json!({
        "name": c.instance.name,
        "provider": c.instance.provider,
        "provider_id": c.instance.provider_id,
        "finished": c.finished,
    })
}

/// Destroys each candidate; the JSON results and whether any failed.
async fn destroy(candidates: &[Candidate], ctx: &Context) -> (Vec<serde_json::Value>, bool) {
    let mut results = Vec::new();
    let mut failed = false;
    for c in candidates {
        let name = &c.instance.name;
        match destroy_record(&c.instance, None, ctx).await {
            Ok(_) => results.push(serde_json::json!({ "name": name, "destroyed": true })),
            Err(e) => {
                failed = true;
                ctx.ui.report_error(&e);
                results.push(serde_json::json!({
                    "name": name,
                    "destroyed": false,
                    "error": format!("{e:#}"),
                }));
            }
        }
    }
    (results, failed)
}
