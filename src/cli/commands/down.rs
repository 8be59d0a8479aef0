//! `spuff down`: confirm, then let `spuff::vm::down` destroy, verify and
//! forget; this draws its progress and says how it ended.

use spuff::state::Instance;
use spuff::terminal_safe;
use spuff::vm::down::{self, Options, Outcome};

use super::context::Context;
use crate::cli::args::DownArgs;
use crate::cli::draw::Drawer;

pub(crate) async fn run(args: DownArgs, ctx: &Context) -> anyhow::Result<u8> {
    let targets: Vec<Instance> = if args.all {
        ctx.store.list()?
    } else if let Some(fleet) = &args.fleet {
        super::fleet::members(fleet, ctx)?
    } else if let Some(name) = &args.name {
        match ctx.store.get(name) {
            Ok(Some(instance)) => vec![instance],
            // Not in state: it may be an orphan the provider has.
            Ok(None) => return destroy_orphans(name, &args, ctx).await,
            Err(spuff::state::Error::Corrupt { message, .. }) => {
                return forget_damaged(name, &message, &args, ctx);
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        vec![ctx.store.resolve(None)?]
    };
    if targets.is_empty() {
        ctx.ui.info("Local state has no VMs to destroy.");
        return Ok(0);
    }
    let names: Vec<&str> = targets.iter().map(|i| i.name.as_str()).collect();
    if !confirm(&format!("Destroy {}?", names.join(", ")), &args, ctx)? {
        return Ok(0);
    }

    let mut results = Vec::new();
    let mut failed = false;
    if targets.len() > 1 {
        // Many VMs (a fleet, --all): several at a time, a line each.
        use futures::StreamExt as _;
        let total = targets.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let done = &done;
        let ends: Vec<(&Instance, anyhow::Result<Outcome>)> = futures::stream::iter(&targets)
            .map(|instance| async move {
                let snapshot = args
                    .snapshot
                    .then(|| spuff::vm::snapshot::default_name(&instance.name));
                let result = destroy_with(instance, snapshot, ctx, &spuff::vm::Ignore).await;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let name = terminal_safe(&instance.name);
                let end = match &result {
                    Ok(Outcome::AlreadyGone) => "already gone; forgotten".to_string(),
                    Ok(Outcome::NeverCreated) => "never created; forgotten".to_string(),
                    Ok(_) => "destroyed and forgotten".to_string(),
                    Err(e) => format!("not destroyed: {e:#}"),
                };
                ctx.ui.info(format!("[{n}/{total}] {name}: {end}"));
                (instance, result)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (instance, result) in ends {
            match result {
                Ok(outcome) => results.push(result_json(&instance.name, &outcome)),
                Err(e) => {
                    failed = true;
                    results.push(serde_json::json!({
                        "name": instance.name,
                        "destroyed": false,
                        "error": format!("{e:#}"),
                    }));
                    ctx.ui.report_error(&e);
                }
            }
        }
        if args.json.json {
            ctx.ui.json(&serde_json::json!({ "results": results }))?;
        }
        return Ok(if failed { crate::cli::EXIT_FAILURE } else { 0 });
    }
    for instance in &targets {
        let snapshot = args
            .snapshot
            .then(|| spuff::vm::snapshot::default_name(&instance.name));
        match destroy_record(instance, snapshot, ctx).await {
            Ok(outcome) => results.push(result_json(&instance.name, &outcome)),
            Err(e) => {
                failed = true;
                ctx.ui.report_error(&e);
                results.push(serde_json::json!({
                    "name": instance.name,
                    "destroyed": false,
                    "error": format!("{e:#}"),
                }));
            }
        }
    }
    if args.json.json {
        ctx.ui.json(&serde_json::json!({ "results": results }))?;
    }
    Ok(if failed { crate::cli::EXIT_FAILURE } else { 0 })
}

/// `down NAME` for a record that cannot be read (issue 13): it is only
/// forgotten; its VM, if any, then shows in `list` as an orphan, which
/// `down NAME` destroys by name.
fn forget_damaged(name: &str, why: &str, args: &DownArgs, ctx: &Context) -> anyhow::Result<u8> {
    let shown = terminal_safe(name);
    ctx.ui.warn(format!(
        "the state record {shown} cannot be read ({}); spuff cannot tell which VM it stood for",
        terminal_safe(why)
    ));
    if !confirm(&format!("Forget the damaged record {shown}?"), args, ctx)? {
        return Ok(0);
    }
    ctx.store.forget_damaged(name)?;
    ctx.ui.success(format!(
        "forgot {shown}; if it had a VM, `spuff list` shows it as an orphan and `spuff down {shown}` destroys it"
    ));
    Ok(0)
}

/// Whether to go on: `--force`, or the user said yes. A no is a choice,
/// not a failure: the caller says nothing was destroyed and exits 0.
fn confirm(question: &str, args: &DownArgs, ctx: &Context) -> anyhow::Result<bool> {
    if args.force {
        return Ok(true);
    }
    if !ctx.ui.interactive() {
        anyhow::bail!(
            "refusing to destroy without confirmation: no terminal to ask on (add --force)"
        );
    }
    let yes = ctx.ui.confirm(question, false)?;
    if !yes {
        ctx.ui.info("Nothing was destroyed.");
    }
    Ok(yes)
}

fn result_json(name: &str, outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Destroyed { ids, snapshots } => serde_json::json!({
            "name": name,
            "destroyed": true,
            "outcome": "destroyed",
            "ids": ids,
            "snapshots": snapshots
                .iter()
                .map(|s| serde_json::json!({ "id": s.id, "name": s.name }))
                .collect::<Vec<_>>(),
        }),
        Outcome::AlreadyGone => {
            serde_json::json!({ "name": name, "destroyed": true, "outcome": "already_gone" })
        }
        Outcome::NeverCreated => {
            serde_json::json!({ "name": name, "destroyed": true, "outcome": "never_created" })
        }
        _ => serde_json::json!({ "name": name, "destroyed": true }),
    }
}

/// Destroys what `record` stands for (every VM with its spuff id), waits for
/// the provider to confirm, and forgets it; says how it ended. Used by
/// `down`, and by `up` to clean up after a failure or Ctrl-C.
pub(crate) async fn destroy_record(
    record: &Instance,
    snapshot: Option<String>,
    ctx: &Context,
) -> anyhow::Result<Outcome> {
    let drawer = Drawer::new(&ctx.ui);
    let result = destroy_with(record, snapshot, ctx, &drawer).await;
    drawer.abandon();
    let outcome = result?;
    let name = &record.name;
    match &outcome {
        Outcome::Destroyed { .. } => ctx.ui.success(format!("{name} is forgotten")),
        Outcome::AlreadyGone => ctx.ui.success(format!(
            "{name} was already gone at {}; forgotten",
            record.provider
        )),
        Outcome::NeverCreated => ctx.ui.success(format!(
            "{name} was never created ({} has no VM with its spuff id); forgotten",
            record.provider
        )),
        _ => {}
    }
    Ok(outcome)
}

/// How many VMs `down --all`/`--fleet` destroys at a time.
const PARALLEL: usize = 8;

/// `spuff::vm::down` for `record`, its steps reported to `observer`
/// (a drawer for one VM, nothing when many run at once).
pub(crate) async fn destroy_with(
    record: &Instance,
    snapshot: Option<String>,
    ctx: &Context,
    observer: &dyn spuff::vm::Observer,
) -> anyhow::Result<Outcome> {
    let provider = ctx.provider(&record.provider)?;
    let options = Options {
        snapshot,
        ..Options::default()
    };
    Ok(down::down(&*provider, &ctx.store, record, &options, observer).await?)
}

/// `spuff down NAME` for a name state does not know: destroy every
/// spuff-labelled VM of that name that no record claims.
async fn destroy_orphans(name: &str, args: &DownArgs, ctx: &Context) -> anyhow::Result<u8> {
    let provider = ctx.default_provider()?;
    let orphans = down::find_orphans(&*provider, &ctx.store, name).await?;
    if orphans.is_empty() {
        return Err(spuff::state::Error::NotFound {
            name: name.to_string(),
            known: ctx.store.list()?.into_iter().map(|i| i.name).collect(),
        }
        .into());
    }
    let ids: Vec<&str> = orphans.iter().map(|vm| vm.id.as_str()).collect();
    let shown = terminal_safe(name);
    if !confirm(
        &format!(
            "Destroy {} orphan VM{} named {shown} ({} {})?",
            orphans.len(),
            if orphans.len() == 1 { "" } else { "s" },
            provider.name(),
            terminal_safe(&ids.join(", "))
        ),
        args,
        ctx,
    )? {
        return Ok(0);
    }
    let options = Options {
        snapshot: args
            .snapshot
            .then(|| spuff::vm::snapshot::default_name(name)),
        ..Options::default()
    };
    let drawer = Drawer::new(&ctx.ui);
    let result =
        down::destroy_orphans(&*provider, &ctx.store, name, &orphans, &options, &drawer).await;
    drawer.abandon();
    let outcome = result?;
    if args.json.json {
        ctx.ui
            .json(&serde_json::json!({ "results": [result_json(name, &outcome)] }))?;
    }
    Ok(0)
}
