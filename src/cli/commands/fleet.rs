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

/// The recorded VMs that can be reached, and the rows of those that
/// cannot (no address yet, an unreadable host key).
fn hosts(ctx: &Context) -> anyhow::Result<(Vec<FleetHost>, Vec<Row>)> {
    let instances = ctx.store.list()?;
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
    let (hosts, unreachable) = hosts(ctx)?;
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
            "with --all the destination is `:path` (the same path on every VM), and the source a local path"
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
    let (hosts, unreachable) = hosts(ctx)?;
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
