//! `spuff dash`: every spuff VM across the configured providers on one live
//! screen, with each VM's load from its agent, and keys for the things done
//! to a VM (shell, logs, snapshot, destroy).
//!
//! Watching is not using: the agent is asked over an SSH channel whose
//! bytes the agent does not count as activity, and only its read-only
//! endpoints are called, so a dashboard left open never keeps a VM from its
//! idle stop. Providers are asked every few refreshes, not on every one,
//! to stay far from their rate limits.
//!
//! Without a terminal on stdin and stdout (a pipe, a script, a CI log) it
//! prints the same columns once as a plain table.

mod model;
pub(crate) mod term;
mod view;

pub(crate) use model::short as short_duration;

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use spuff::agent::{Client, ClientConfig};
use spuff::state::Instance;
use spuff::terminal_safe;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::model::{AgentReport, Dash, Pending, Row, Sample, Tone};
use super::context::Context;
use crate::cli::args::{DashArgs, LogChoice, LogsArgs, SshArgs};

/// How long one connection to a VM may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between attempts to reach an agent that does not
/// answer.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long the plain table waits for providers and agents.
const ONCE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the background tasks tell the screen.
enum Update {
    Survey(anyhow::Result<super::list::Survey>),
    Prices(String, HashMap<String, f64>),
    Agent(String, AgentReport),
    /// An action's step.
    Progress(String, String),
    /// An action ended: what to say, and whether it went well.
    Done(String, String, bool),
}

pub(crate) async fn run(args: DashArgs, ctx: &Context) -> anyhow::Result<u8> {
    let interval = Duration::from_secs(args.interval.max(1));
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) || args.once {
        return once(interval, ctx).await;
    }
    let (tx, mut updates) = mpsc::unbounded_channel();
    let (kick, _) = watch::channel(0u64);
    let survey = spawn_survey(ctx.clone(), interval, kick.subscribe(), tx.clone());
    let mut dash = Dash::new(interval);
    let mut watchers: HashMap<String, (String, JoinHandle<()>)> = HashMap::new();
    let mut priced: HashSet<String> = HashSet::new();
    let mut screen = term::Screen::enter()?;
    let mut keys = term::Keys::start();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let code = loop {
        screen.draw(|f| view::draw(f, &dash, color))?;
        tokio::select! {
            event = keys.next() => {
                let Some(event) = event else { break 0 };
                match event {
                    Event::Key(key) if key.kind != KeyEventKind::Release => {
                        match on_key(key, &mut dash) {
                            Some(Command::Quit(code)) => break code,
                            Some(Command::Refresh) => kick.send_modify(|k| *k += 1),
                            Some(Command::Shell(record)) => {
                                let said = lend(&mut screen, &keys, || shell(record, ctx)).await?;
                                dash.say(said.0, said.1);
                            }
                            Some(Command::Logs(record)) => {
                                let said = lend(&mut screen, &keys, || logs(record, ctx)).await?;
                                dash.say(said.0, said.1);
                            }
                            Some(Command::Snapshot(record)) => {
                                dash.busy.insert(record.name.clone(), "snapshotting".into());
                                spawn_snapshot(ctx.clone(), record, tx.clone());
                            }
                            Some(Command::Destroy(record)) => {
                                dash.busy.insert(record.name.clone(), "destroying".into());
                                if let Some((_, watcher)) = watchers.remove(&record.name) {
                                    watcher.abort();
                                }
                                spawn_destroy(ctx.clone(), record, tx.clone());
                            }
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
            Some(update) = updates.recv() => match update {
                Update::Survey(Ok(survey)) => {
                    apply_survey(&mut dash, survey);
                    for row in &dash.rows {
                        if priced.insert(row.entry.provider.clone()) {
                            spawn_prices(ctx.clone(), row.entry.provider.clone(), tx.clone());
                        }
                    }
                    sync_watchers(&dash, &mut watchers, ctx, &kick, &tx);
                }
                Update::Survey(Err(e)) => dash.say(format!("cannot read the VMs: {e:#}"), Tone::Bad),
                Update::Prices(provider, prices) => {
                    dash.prices.insert(provider, prices);
                }
                Update::Agent(name, report) => dash.agent_report(&name, report),
                Update::Progress(name, text) => dash.say(format!("{name}: {text}"), Tone::Info),
                Update::Done(name, text, ok) => {
                    dash.busy.remove(&name);
                    dash.say(text, if ok { Tone::Good } else { Tone::Bad });
                    kick.send_modify(|k| *k += 1);
                }
            },
            _ = tick.tick() => {}
        }
    };
    drop(keys);
    screen.hide()?;
    survey.abort();
    for (_, (_, watcher)) in watchers {
        watcher.abort();
    }
    if !dash.busy.is_empty() {
        let names: Vec<&String> = dash.busy.keys().collect();
        ctx.ui.warn(format!(
            "left while still working on {names:?}; `spuff list` shows where they stand"
        ));
    }
    Ok(code)
}

/// What a key asks for, beyond changing the view.
enum Command {
    Quit(u8),
    Refresh,
    Shell(Instance),
    Logs(Instance),
    Snapshot(Instance),
    Destroy(Instance),
}

fn on_key(key: KeyEvent, dash: &mut Dash) -> Option<Command> {
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl_c {
        // Interrupted, as the documented exit codes say.
        return Some(Command::Quit(crate::cli::EXIT_INTERRUPTED));
    }
    if let Some(pending) = dash.pending.take() {
        let confirmed = matches!(key.code, KeyCode::Char('y' | 'Y'));
        let name = match &pending {
            Pending::Destroy(name) | Pending::Snapshot(name) => name.clone(),
        };
        let record = dash
            .rows
            .iter()
            .find(|r| r.entry.name == name)
            .and_then(|r| r.record.clone());
        return match (confirmed, record, pending) {
            (false, _, Pending::Destroy(_)) => {
                dash.say(
                    format!("{} was not destroyed", terminal_safe(&name)),
                    Tone::Info,
                );
                None
            }
            (false, _, Pending::Snapshot(_)) => {
                dash.say("no snapshot taken", Tone::Info);
                None
            }
            (true, None, _) => {
                dash.say(
                    format!("{} is gone from the list", terminal_safe(&name)),
                    Tone::Bad,
                );
                None
            }
            (true, Some(record), Pending::Destroy(_)) => Some(Command::Destroy(record)),
            (true, Some(record), Pending::Snapshot(_)) => Some(Command::Snapshot(record)),
        };
    }
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return Some(Command::Quit(0)),
        KeyCode::Up | KeyCode::Char('k') => dash.select(-1),
        KeyCode::Down | KeyCode::Char('j') => dash.select(1),
        KeyCode::Home | KeyCode::Char('g') => dash.selected = 0,
        KeyCode::End | KeyCode::Char('G') => dash.select(isize::MAX),
        KeyCode::Char('r') => {
            dash.say("refreshing", Tone::Info);
            return Some(Command::Refresh);
        }
        KeyCode::Enter | KeyCode::Char('s' | 'l' | 'p' | 'x') | KeyCode::Delete => {
            return act(key.code, dash);
        }
        _ => {}
    }
    None
}

/// A key that acts on the selected VM: only on a VM recorded here, not
/// already being worked on.
fn act(code: KeyCode, dash: &mut Dash) -> Option<Command> {
    let row = dash.current()?;
    let name = row.entry.name.clone();
    let shown = terminal_safe(&name).into_owned();
    if let Some(action) = dash.busy.get(&name) {
        dash.say(format!("{shown} is {action}; wait for it"), Tone::Info);
        return None;
    }
    let Some(record) = row.record.clone() else {
        dash.say(
            format!("{shown} is not recorded on this machine; `spuff down {shown}` removes it"),
            Tone::Bad,
        );
        return None;
    };
    let running = row.watchable();
    match code {
        KeyCode::Enter | KeyCode::Char('s' | 'l') if !running => {
            dash.say(
                format!("{shown} is not running; `spuff start {shown}` starts it"),
                Tone::Bad,
            );
            None
        }
        KeyCode::Enter | KeyCode::Char('s') => Some(Command::Shell(record)),
        KeyCode::Char('l') => Some(Command::Logs(record)),
        KeyCode::Char('p') => {
            dash.pending = Some(Pending::Snapshot(name));
            None
        }
        _ => {
            dash.pending = Some(Pending::Destroy(name));
            None
        }
    }
}

/// Hands the terminal to `work` and takes it back, whatever `work` did.
async fn lend<F, Fut>(
    screen: &mut term::Screen,
    keys: &term::Keys,
    work: F,
) -> std::io::Result<(String, Tone)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (String, Tone)>,
{
    keys.pause();
    screen.hide()?;
    let said = work().await;
    screen.show()?;
    keys.resume();
    Ok(said)
}

async fn shell(record: Instance, ctx: &Context) -> (String, Tone) {
    let name = terminal_safe(&record.name).into_owned();
    let args = SshArgs {
        name: Some(record.name),
        no_agent: false,
        forward_agent: false,
        escape: crate::cli::args::EscapeArg {
            escape_char: crate::cli::args::Escape(Some(b'~')),
        },
    };
    match super::ssh::shell(args, ctx).await {
        Ok(code) => (
            format!("the shell on {name} ended (exit {code})"),
            Tone::Info,
        ),
        Err(e) => (format!("shell on {name}: {e:#}"), Tone::Bad),
    }
}

async fn logs(record: Instance, ctx: &Context) -> (String, Tone) {
    let name = terminal_safe(&record.name).into_owned();
    let _ = writeln!(
        std::io::stderr(),
        "Following the bootstrap log of {name}; Ctrl-C returns to the dashboard."
    );
    let args = LogsArgs {
        name: Some(record.name),
        which: LogChoice {
            cloud_init: false,
            bootstrap: true,
            agent: false,
        },
        follow: true,
        lines: 100,
    };
    match super::logs::run(args, ctx).await {
        Ok(_) => (format!("stopped following {name}'s log"), Tone::Info),
        Err(e) => (format!("logs of {name}: {e:#}"), Tone::Bad),
    }
}

fn apply_survey(dash: &mut Dash, survey: super::list::Survey) {
    let rows = survey
        .rows
        .into_iter()
        .map(|entry| {
            let record = survey
                .local
                .iter()
                .find(|i| i.name == entry.name && i.provider == entry.provider)
                .cloned();
            Row { entry, record }
        })
        .collect();
    dash.set_rows(rows);
    dash.failures = survey
        .failures
        .into_iter()
        .map(|(provider, e)| (provider, format!("{e:#}")))
        .collect();
    dash.surveyed = Some(Instant::now());
}

/// Starts a watcher for each running VM that has none, and stops those of
/// VMs no longer running (or whose record changed: a new address after a
/// restart).
fn sync_watchers(
    dash: &Dash,
    watchers: &mut HashMap<String, (String, JoinHandle<()>)>,
    ctx: &Context,
    kick: &watch::Sender<u64>,
    tx: &mpsc::UnboundedSender<Update>,
) {
    let mut wanted: HashMap<String, (String, Instance)> = HashMap::new();
    for row in &dash.rows {
        if let Some(record) = &row.record
            && row.watchable()
            && !dash.busy.contains_key(&record.name)
        {
            let key = format!(
                "{:?}:{}:{}",
                record.address(),
                record.ssh_port,
                record.host_key
            );
            wanted.insert(record.name.clone(), (key, record.clone()));
        }
    }
    watchers.retain(|name, (key, handle)| {
        let keep = wanted.get(name).is_some_and(|(k, _)| k == key);
        if !keep {
            handle.abort();
        }
        keep
    });
    for (name, (key, record)) in wanted {
        if let std::collections::hash_map::Entry::Vacant(slot) = watchers.entry(name) {
            let handle = spawn_watcher(
                ctx.clone(),
                record,
                dash.interval,
                kick.subscribe(),
                tx.clone(),
            );
            slot.insert((key, handle));
        }
    }
}

/// Asks the providers every few agent refreshes (and when kicked).
fn spawn_survey(
    ctx: Context,
    interval: Duration,
    mut kick: watch::Receiver<u64>,
    tx: mpsc::UnboundedSender<Update>,
) -> JoinHandle<()> {
    let every = (interval * 6).max(Duration::from_secs(15));
    tokio::spawn(async move {
        loop {
            let survey = super::list::survey(&ctx, false).await;
            if tx.send(Update::Survey(survey)).is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                changed = kick.changed() => if changed.is_err() { return },
            }
        }
    })
}

fn spawn_prices(ctx: Context, provider: String, tx: mpsc::UnboundedSender<Update>) {
    tokio::spawn(async move {
        let Ok(client) = ctx.provider(&provider) else {
            return;
        };
        // A price list is a hint: without one the column shows "-".
        if let Ok(Ok(sizes)) = tokio::time::timeout(ONCE_TIMEOUT, client.list_sizes()).await {
            let prices = sizes
                .into_iter()
                .filter_map(|s| Some((s.slug, s.price_monthly?)))
                .collect();
            let _ = tx.send(Update::Prices(provider, prices));
        }
    });
}

/// One VM's agent, asked every `interval` over one SSH connection kept
/// open; on failure the connection is dropped and tried again with a
/// growing wait.
fn spawn_watcher(
    ctx: Context,
    record: Instance,
    interval: Duration,
    mut kick: watch::Receiver<u64>,
    tx: mpsc::UnboundedSender<Update>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut client: Option<Client> = None;
        let mut failures = 0u32;
        loop {
            let wait = match sample(&ctx, &record, &mut client).await {
                Ok(sample) => {
                    failures = 0;
                    if tx
                        .send(Update::Agent(
                            record.name.clone(),
                            AgentReport::Sample(Box::new(sample)),
                        ))
                        .is_err()
                    {
                        return;
                    }
                    interval
                }
                Err(e) => {
                    client = None;
                    failures = failures.saturating_add(1);
                    let wait = interval
                        .saturating_mul(1 << failures.min(6).saturating_sub(1))
                        .min(MAX_BACKOFF);
                    let report = AgentReport::Failed {
                        error: format!("{e:#}"),
                        retry_at: Instant::now() + wait,
                    };
                    if tx.send(Update::Agent(record.name.clone(), report)).is_err() {
                        return;
                    }
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = kick.changed() => if changed.is_err() { return },
            }
        }
    })
}

/// One sample from `record`'s agent, connecting first when `client` is
/// `None`. Only read-only endpoints: observation, not activity.
async fn sample(
    ctx: &Context,
    record: &Instance,
    client: &mut Option<Client>,
) -> anyhow::Result<Sample> {
    if client.is_none() {
        let session = tokio::time::timeout(CONNECT_TIMEOUT, ctx.connect(record))
            .await
            .map_err(|_| anyhow::anyhow!("no SSH answer in {}s", CONNECT_TIMEOUT.as_secs()))??;
        let mut config = ClientConfig::new(record.agent_token.clone());
        config.port = super::context::agent_port();
        *client = Some(Client::new(session, config));
    }
    let c = client.as_ref().expect("connected above");
    let (status, metrics, activity) = tokio::join!(c.status(), c.metrics(), c.activity());
    Ok(Sample {
        at: Instant::now(),
        status: Some(status?),
        metrics: metrics.ok(),
        activity: activity.ok(),
    })
}

fn spawn_snapshot(ctx: Context, record: Instance, tx: mpsc::UnboundedSender<Update>) {
    tokio::spawn(async move {
        let name = record.name.clone();
        let snapshot_name = spuff::vm::snapshot::default_name(&name);
        let progress = progress(&name, &tx);
        let result = match ctx.provider(&record.provider) {
            Ok(provider) => spuff::vm::snapshot(&*provider, &record, &snapshot_name, &progress)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        let shown = terminal_safe(&name);
        let _ = tx.send(match result {
            Ok(s) => Update::Done(
                name.clone(),
                format!(
                    "{shown}: snapshot {} ({}) made",
                    terminal_safe(&s.name),
                    terminal_safe(&s.id)
                ),
                true,
            ),
            Err(e) => Update::Done(name.clone(), format!("{shown}: no snapshot: {e:#}"), false),
        });
    });
}

fn spawn_destroy(ctx: Context, record: Instance, tx: mpsc::UnboundedSender<Update>) {
    tokio::spawn(async move {
        let name = record.name.clone();
        let progress = progress(&name, &tx);
        let result = super::down::destroy_with(&record, None, &ctx, &progress).await;
        let shown = terminal_safe(&name);
        let _ = tx.send(match result {
            Ok(_) => Update::Done(
                name.clone(),
                format!("{shown} is destroyed and forgotten"),
                true,
            ),
            Err(e) => Update::Done(
                name.clone(),
                format!("{shown} was not destroyed: {e:#}"),
                false,
            ),
        });
    });
}

/// An observer that shows an action's steps on the status line.
fn progress(name: &str, tx: &mpsc::UnboundedSender<Update>) -> impl spuff::vm::Observer + use<> {
    let (name, tx) = (name.to_string(), tx.clone());
    move |event: spuff::vm::Event| {
        use spuff::vm::Event as E;
        let text = match event {
            E::Snapshotting { snapshot, .. } => {
                format!("snapshotting as {}", terminal_safe(&snapshot))
            }
            E::Destroying { id, .. } => format!("destroying (id {})", terminal_safe(&id)),
            E::Verifying { .. } => "confirming with the provider that it is gone".to_string(),
            _ => return,
        };
        let _ = tx.send(Update::Progress(terminal_safe(&name).into_owned(), text));
    }
}

/// The plain table: one survey, one sample of each running VM's agent,
/// the price lists, printed once.
async fn once(interval: Duration, ctx: &Context) -> anyhow::Result<u8> {
    let mut dash = Dash::new(interval);
    apply_survey(&mut dash, super::list::survey(ctx, false).await?);
    let providers: HashSet<String> = dash.rows.iter().map(|r| r.entry.provider.clone()).collect();
    let prices = futures::future::join_all(providers.into_iter().map(|name| async move {
        let client = ctx.provider(&name).ok()?;
        let sizes = tokio::time::timeout(ONCE_TIMEOUT, client.list_sizes())
            .await
            .ok()?
            .ok()?;
        let prices: HashMap<String, f64> = sizes
            .into_iter()
            .filter_map(|s| Some((s.slug, s.price_monthly?)))
            .collect();
        Some((name, prices))
    }));
    let samples = futures::future::join_all(
        dash.rows
            .iter()
            .filter(|r| r.watchable())
            .filter_map(|r| r.record.clone())
            .map(|record| async move {
                let mut client = None;
                let result = tokio::time::timeout(ONCE_TIMEOUT, sample(ctx, &record, &mut client))
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!("no answer in {}s", ONCE_TIMEOUT.as_secs()))
                    });
                if let Some(c) = client {
                    let _ = c.session().close().await;
                }
                (record.name, result)
            }),
    );
    let (prices, samples) = tokio::join!(prices, samples);
    dash.prices.extend(prices.into_iter().flatten());
    for (name, result) in samples {
        let report = match result {
            Ok(sample) => AgentReport::Sample(Box::new(sample)),
            Err(e) => AgentReport::Failed {
                error: format!("{e:#}"),
                retry_at: Instant::now(),
            },
        };
        dash.agent_report(&name, report);
    }
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut table: Vec<Vec<String>> = vec![model::COLUMNS.iter().map(|c| c.to_string()).collect()];
    table.extend(dash.rows.iter().map(|r| dash.cells(r, now, wall).to_vec()));
    let widths: Vec<usize> = (0..model::COLUMNS.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if dash.rows.is_empty() {
        writeln!(out, "No VMs. Create one with `spuff up`.")?;
    } else {
        for line in &table {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            writeln!(out, "{}", cells.join("  ").trim_end())?;
        }
    }
    drop(out);
    for row in &dash.rows {
        if let Some(view) = dash.agents.get(&row.entry.name)
            && let Some((error, _)) = &view.error
        {
            ctx.ui.warn(format!(
                "{}: its agent did not answer: {}",
                terminal_safe(&row.entry.name),
                terminal_safe(error)
            ));
        }
    }
    for (provider, error) in &dash.failures {
        ctx.ui.warn(format!(
            "could not ask {provider} for its VMs ({}); its local records are shown unchecked",
            terminal_safe(error)
        ));
    }
    Ok(if dash.failures.is_empty() {
        0
    } else {
        crate::cli::EXIT_FAILURE
    })
}
