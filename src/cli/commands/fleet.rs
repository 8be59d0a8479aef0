//! `spuff exec --all` and `spuff cp --all`: one command or one upload on
//! every recorded VM at once, through [`spuff::fleet`], with a line per VM
//! as it ends and a table at the end (issue 15).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use spuff::fleet::{FleetHost, FleetOptions, HostOutcome};
use spuff::terminal_safe;

use super::context::Context;
use crate::cli::args::{CpArgs, ExecArgs};

/// The recorded VMs of `fleet`.
///
/// # Errors
/// When there are none: a fleet that does not exist is a mistyped name.
pub(crate) fn members(fleet: &str, ctx: &Context) -> anyhow::Result<Vec<spuff::state::Instance>> {
    let all = ctx.store.list()?;
    let members: Vec<_> = all
        .iter()
        .filter(|i| i.fleet.as_deref() == Some(fleet))
        .cloned()
        .collect();
    if members.is_empty() {
        let mut fleets: Vec<&str> = all.iter().filter_map(|i| i.fleet.as_deref()).collect();
        fleets.sort_unstable();
        fleets.dedup();
        let known = if fleets.is_empty() {
            "there are none; `spuff up --count N --name NAME` makes one".to_string()
        } else {
            format!("fleets: {}", fleets.join(", "))
        };
        anyhow::bail!("no fleet called {}: {known}", terminal_safe(fleet));
    }
    Ok(members)
}

/// The recorded VMs (of `fleet`, or all) that can be reached, and the rows
/// of those that cannot (no address yet, an unreadable host key).
fn hosts(ctx: &Context, fleet: Option<&str>) -> anyhow::Result<(Vec<FleetHost>, Vec<Row>)> {
    let instances = match fleet {
        Some(fleet) => members(fleet, ctx)?,
        None => ctx.store.list()?,
    };
    if instances.is_empty() {
        anyhow::bail!("no VMs recorded; create one with `spuff up`");
    }
    let mut hosts = Vec::new();
    let mut unreachable = Vec::new();
    for instance in &instances {
        match ctx.ssh_config(instance) {
            Ok(ssh) => hosts.push(FleetHost {
                name: instance.name.clone(),
                ssh,
            }),
            Err(e) => unreachable.push(Row {
                name: instance.name.clone(),
                ok: false,
                result: "not reachable".into(),
                time: None,
                detail: format!("{e:#}"),
            }),
        }
    }
    Ok((hosts, unreachable))
}

/// One VM's line in the table.
struct Row {
    name: String,
    ok: bool,
    result: String,
    time: Option<Duration>,
    detail: String,
}

/// The table's rows: one per outcome, as `describe` words it (success,
/// result, detail), then the VMs that could not be reached.
fn rows<T>(
    outcomes: &[HostOutcome<T>],
    unreachable: Vec<Row>,
    describe: impl Fn(&HostOutcome<T>) -> (bool, String, String),
) -> Vec<Row> {
    let mut rows: Vec<Row> = outcomes
        .iter()
        .map(|o| {
            let (ok, result, detail) = describe(o);
            Row {
                name: o.name.clone(),
                ok,
                result,
                time: Some(o.duration),
                detail,
            }
        })
        .collect();
    rows.extend(unreachable);
    rows
}

/// Prints the table on stdout and returns the exit code: 0 when every VM
/// succeeded, 1 otherwise (with a warning naming how many did not).
fn finish(
    ctx: &Context,
    what: &str,
    rows: &[Row],
    output_dir: Option<&PathBuf>,
) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<20} {:<24} {:>8}  DETAIL", "VM", "RESULT", "TIME")?;
    for r in rows {
        writeln!(
            out,
            "{:<20} {:<24} {:>8}  {}",
            terminal_safe(&r.name),
            terminal_safe(&r.result),
            r.time.map_or_else(|| "-".to_string(), spuff::fmt_duration),
            terminal_safe(&r.detail)
        )?;
    }
    out.flush()?;
    if let Some(dir) = output_dir {
        ctx.ui.info(format!("whole outputs in {}", dir.display()));
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        ctx.ui
            .warn(format!("{failed} of {} VMs did not {what}", rows.len()));
        return Ok(1);
    }
    Ok(0)
}

/// A line on stderr as each VM ends.
fn progress<T>(ctx: &Context, total: usize) -> impl FnMut(&HostOutcome<T>, String) + '_ {
    let mut done = 0;
    move |o, result| {
        done += 1;
        ctx.ui.info(format!(
            "[{done}/{total}] {}: {} ({})",
            terminal_safe(&o.name),
            terminal_safe(&result),
            spuff::fmt_duration(o.duration)
        ));
    }
}

/// `spuff exec --all`.
pub(crate) async fn exec_all(args: ExecArgs, ctx: &Context) -> anyhow::Result<u8> {
    let command = args.command.join(" ");
    let (hosts, unreachable) = hosts(ctx, args.fleet.as_deref())?;
    let mut options = FleetOptions::default().parallel(usize::from(args.parallel));
    if let Some(dir) = &args.output_dir {
        options = options.output_dir(dir);
    }
    let mut report = progress(ctx, hosts.len());
    let outcomes = spuff::fleet::exec_all(hosts, &command, &options, |o| {
        let result = match &o.result {
            Ok(run) => run.status.to_string(),
            Err(e) => format!("failed: {e}"),
        };
        report(o, result);
    })
    .await;
    let table = rows(&outcomes, unreachable, |o| match &o.result {
        Ok(run) => (
            o.success(),
            run.status.to_string(),
            run.last_line().unwrap_or("").to_string(),
        ),
        Err(e) => (false, "failed".to_string(), e.to_string()),
    });
    finish(
        ctx,
        "run the command to exit 0",
        &table,
        args.output_dir.as_ref(),
    )
}

/// `spuff cp --all LOCAL :REMOTE`.
pub(crate) async fn cp_all(args: CpArgs, ctx: &Context) -> anyhow::Result<u8> {
    let Some(remote) = args.destination.strip_prefix(':') else {
        anyhow::bail!(
            "with --all or --fleet the destination is `:path` (the same path on every VM), and the source a local path"
        );
    };
    let local = PathBuf::from(&args.source);
    // `:dir/` (or `:`) puts the source inside that directory, under its
    // own name, as `cp` does; anything else is the path it gets.
    let base = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let remote = if remote.is_empty() {
        base
    } else if remote.ends_with('/') {
        format!("{remote}{base}")
    } else {
        remote.to_string()
    };
    let (hosts, unreachable) = hosts(ctx, args.fleet.as_deref())?;
    let mut report = progress(ctx, hosts.len());
    let outcomes =
        spuff::fleet::upload_all(hosts, &local, &remote, &FleetOptions::default(), |o| {
            let result = match &o.result {
                Ok(u) => format!("copied {}", super::cp::human_bytes(u.bytes)),
                Err(e) => format!("failed: {e}"),
            };
            report(o, result);
        })
        .await?;
    let table = rows(&outcomes, unreachable, |o| match &o.result {
        Ok(u) => (
            true,
            format!("copied {}", super::cp::human_bytes(u.bytes)),
            format!(
                "{} file{}{}",
                u.files,
                if u.files == 1 { "" } else { "s" },
                if u.streamed { ", through tar" } else { "" }
            ),
        ),
        Err(e) => (false, "failed".to_string(), e.to_string()),
    });
    finish(ctx, &format!("receive {remote}"), &table, None)
}

/// `spuff up --count N`: N VMs made at once, `parallel` at a time, each
/// through the whole `up` flow (recorded before its create, waited for,
/// bootstrapped), drawn as one live table. A failure of some leaves the
/// others usable; the table and the errors after it say which failed and
/// why, and the VMs that failed after their create are destroyed (asked on
/// a terminal, kept with --keep-on-failure).
pub(crate) async fn up_fleet(
    args: &crate::cli::args::UpArgs,
    count: u16,
    shared: &super::up::Shared,
    provider: std::sync::Arc<dyn spuff::provider::Provider>,
    self_destroy: Option<(spuff::Secret, bool)>,
    ctx: &Context,
) -> anyhow::Result<u8> {
    use futures::StreamExt as _;

    let fleet = match &args.name {
        Some(name) => name.clone(),
        None => format!("fleet-{:06x}", super::up::random_u64() & 0xff_ffff),
    };
    let names: Vec<String> = (1..=count).map(|i| format!("{fleet}-{i}")).collect();
    let existing = ctx.store.list()?;
    let members = existing
        .iter()
        .filter(|i| i.fleet.as_deref() == Some(fleet.as_str()))
        .count();
    if members > 0 {
        anyhow::bail!(
            "a fleet called {fleet} exists ({members} VMs); pick another --name, or remove it with `spuff down --fleet {fleet}`"
        );
    }
    if let Some(taken) = names
        .iter()
        .find(|n| existing.iter().any(|i| &i.name == *n))
    {
        anyhow::bail!("a VM called {taken} exists already; pick another --name");
    }
    let mut plans = Vec::with_capacity(names.len());
    for name in &names {
        let mut plan = shared.plan(name, ctx)?;
        plan.fleet = Some(fleet.clone());
        plans.push(plan);
    }
    if provider.name() == "local"
        && let Some(first) = plans.first_mut()
    {
        super::up::prepare_local(first, ctx).await?;
        let login = first.login.clone();
        for plan in &mut plans {
            plan.login = login.clone();
        }
    }
    let parallel = usize::from(args.parallel).min(names.len()).max(1);
    ctx.ui.info(format!(
        "Creating fleet {fleet}: {count} VMs on {} ({}, {}), {parallel} at a time",
        provider.name(),
        shared.region,
        shared.size
    ));
    let board = crate::cli::draw::Board::new(&ctx.ui, &names, provider.name(), &shared.region);
    let board = &board;
    let self_destroy = &self_destroy;
    let failures = std::sync::Mutex::new(Vec::new());
    let failures_ref = &failures;
    let flows = futures::stream::iter(plans.into_iter().enumerate())
        .map(|(index, plan)| {
            let provider = provider.clone();
            async move {
                let name = plan.name.clone();
                let observer = board.observer(index);
                match spuff::vm::up(provider.clone(), &ctx.store, plan, &observer).await {
                    Ok(up) => {
                        if let Some(token) = self_destroy.clone() {
                            super::up::arm_self_destroy(
                                &*provider,
                                &up.instance,
                                &up.session,
                                token,
                                ctx,
                            )
                            .await;
                        }
                        let _ = up.session.close().await;
                        board.finish(index, true, "ready".into());
                    }
                    Err(e) => {
                        board.finish(index, false, "failed".into());
                        if let Ok(mut f) = failures_ref.lock() {
                            f.push((name, e));
                        }
                    }
                }
            }
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>();
    tokio::select! {
        _ = flows => {}
        _ = tokio::signal::ctrl_c() => {
            board.abandon();
            ctx.ui.warn("interrupted");
            let made: Vec<String> = ctx.store.list()?.into_iter()
                .filter(|i| i.fleet.as_deref() == Some(fleet.as_str()))
                .map(|i| i.name)
                .collect();
            let destroy = !made.is_empty() && (!ctx.ui.interactive() || ctx.ui.confirm(
                &format!("Destroy the {} VMs of {fleet} made so far?", made.len()), true)?);
            if destroy {
                for name in &made {
                    if let Err(e) = super::up::clean_up(name, ctx).await {
                        ctx.ui.report_error(&e);
                    }
                }
            } else if !made.is_empty() {
                ctx.ui.info(format!("Kept them; `spuff down --fleet {fleet}` removes them."));
            }
            return Ok(crate::cli::EXIT_INTERRUPTED);
        }
    }
    let lines = board.lines();
    let failures = failures.into_inner().unwrap_or_default();
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{:<24} {:<12} {:<14} {:<10} {:<39} {:>8}",
            "VM", "PROVIDER", "REGION", "STATE", "IP", "TIME"
        )?;
        for l in &lines {
            writeln!(
                out,
                "{:<24} {:<12} {:<14} {:<10} {:<39} {:>8}",
                terminal_safe(&l.name),
                l.provider,
                terminal_safe(&l.region),
                terminal_safe(&l.state),
                l.ip.as_deref().unwrap_or("-"),
                l.took.map_or_else(|| "-".to_string(), spuff::fmt_duration)
            )?;
        }
        out.flush()?;
    }
    if failures.is_empty() {
        ctx.ui.success(format!(
            "fleet {fleet}: {count} VMs ready; `spuff exec --fleet {fleet} -- CMD` runs a command on all of them"
        ));
        return Ok(0);
    }
    // Which failed, and why, one error each; then what exists of them.
    let mut leftovers = Vec::new();
    for (name, e) in failures {
        if let Some(made) = e.created() {
            leftovers.push(made.to_string());
        }
        ctx.ui
            .report_error(&anyhow::Error::new(e).context(format!("{name} failed")));
    }
    let ready = lines.iter().filter(|l| l.ok).count();
    ctx.ui.warn(format!(
        "{} of {count} VMs failed; the {ready} ready ones are usable",
        count as usize - ready
    ));
    if !leftovers.is_empty() {
        let list = leftovers.join(", ");
        let destroy = if args.keep_on_failure {
            false
        } else if ctx.ui.interactive() {
            ctx.ui.confirm(
                &format!("{list} failed after being created (they may bill). Destroy them?"),
                true,
            )?
        } else {
            ctx.ui.info(format!(
                "{list} failed after being created; destroying them (no terminal to ask; --keep-on-failure keeps them)"
            ));
            true
        };
        if destroy {
            for name in &leftovers {
                if let Err(e) = super::up::clean_up(name, ctx).await {
                    ctx.ui.report_error(&e);
                }
            }
        } else {
            ctx.ui.warn(format!(
                "kept {list}; `spuff down NAME` removes one, `spuff down --fleet {fleet}` all"
            ));
        }
    }
    Ok(crate::cli::EXIT_FAILURE)
}

/// `spuff status --fleet NAME`: each member as recorded and as its provider
/// reports it now (asked concurrently), with its address.
pub(crate) async fn status(fleet: &str, json: bool, ctx: &Context) -> anyhow::Result<u8> {
    use futures::StreamExt as _;
    let members = members(fleet, ctx)?;
    let mut providers = std::collections::BTreeMap::new();
    for m in &members {
        if !providers.contains_key(&m.provider) {
            let p = ctx.provider(&m.provider);
            providers.insert(m.provider.clone(), p);
        }
    }
    let providers = &providers;
    let now: Vec<(String, Option<String>)> = futures::stream::iter(members.iter())
        .map(|m| async move {
            let seen = match providers.get(&m.provider) {
                Some(Ok(p)) if !m.provider_id.is_empty() => {
                    match p.get_instance(&m.provider_id).await {
                        Ok(Some(vm)) => vm.status.to_string(),
                        Ok(None) => "gone".to_string(),
                        Err(e) => format!("unknown ({e})"),
                    }
                }
                Some(Ok(_)) => "not created".to_string(),
                Some(Err(e)) => format!("unknown ({e:#})"),
                None => "unknown".to_string(),
            };
            (m.name.clone(), Some(seen))
        })
        .buffered(16)
        .collect()
        .await;
    if json {
        let rows: Vec<serde_json::Value> = members
            .iter()
            .zip(&now)
            .map(|(m, (_, seen))| {
                serde_json::json!({
                    "name": m.name,
                    "provider": m.provider,
                    "region": m.region,
                    "status": m.status,
                    "provider_status": seen,
                    "ip": m.address(),
                })
            })
            .collect();
        ctx.ui
            .json(&serde_json::json!({ "fleet": fleet, "vms": rows }))?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<12} {:<14} {:<12} {:<24} IP",
        "VM", "PROVIDER", "REGION", "RECORDED", "PROVIDER SAYS"
    )?;
    for (m, (_, seen)) in members.iter().zip(&now) {
        writeln!(
            out,
            "{:<24} {:<12} {:<14} {:<12} {:<24} {}",
            terminal_safe(&m.name),
            m.provider,
            terminal_safe(&m.region),
            m.status.to_string(),
            terminal_safe(seen.as_deref().unwrap_or("-")),
            m.address()
                .map_or_else(|| "-".to_string(), |a| a.to_string())
        )?;
    }
    Ok(0)
}
