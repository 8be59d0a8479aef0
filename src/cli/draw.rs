//! Draws the VM lifecycle's events (`spuff::vm::Event`) for `up`, `down` and
//! `snapshot`: one spinner per stage on a terminal, a line per stage
//! otherwise. Names may come from the provider's API (orphans), so they are
//! shown through `spuff::terminal_safe`.

use std::sync::Mutex;

use spuff::terminal_safe;
use spuff::vm::Event;

use super::Ui;
use super::ui::Step;

/// One observer for every lifecycle step.
pub(crate) struct Drawer {
    ui: Ui,
    step: Mutex<Option<Step>>,
}

impl Drawer {
    pub(crate) fn new(ui: &Ui) -> Self {
        Drawer {
            ui: ui.clone(),
            step: Mutex::new(None),
        }
    }

    /// Ends the current step (as done with `done`, or as failed), and starts
    /// `next`.
    fn next(&self, done: Option<String>, next: Option<String>) {
        let Ok(mut step) = self.step.lock() else {
            return;
        };
        if let Some(current) = step.take() {
            match done {
                Some(message) => current.finish(message),
                None => current.fail(),
            }
        } else if let Some(message) = done {
            self.ui.success(message);
        }
        *step = next.map(|m| self.ui.spinner(m));
    }

    fn set_message(&self, message: String) {
        if let Ok(step) = self.step.lock()
            && let Some(step) = step.as_ref()
        {
            step.set_message(message);
        }
    }

    /// Ends a step left open by a failure.
    pub(crate) fn abandon(&self) {
        if let Ok(mut step) = self.step.lock()
            && let Some(current) = step.take()
        {
            current.fail();
        }
    }

    /// Ends a step left open by Ctrl-C: it did not fail, it was stopped.
    pub(crate) fn interrupt(&self) {
        if let Ok(mut step) = self.step.lock()
            && let Some(current) = step.take()
        {
            current.interrupted();
        }
    }
}

fn ids(ids: &[String]) -> String {
    terminal_safe(&ids.join(", ")).into_owned()
}

impl spuff::vm::Observer for Drawer {
    fn event(&self, event: Event) {
        match event {
            Event::Rendered { bytes, compressed } => self.ui.info(format!(
                "user-data {bytes} bytes{}",
                if compressed { " (compressed)" } else { "" }
            )),
            Event::Creating => self.next(None, Some("Creating the VM".into())),
            Event::Created { id } => self.next(
                Some(format!(
                    "created (id {}), recorded in local state",
                    terminal_safe(&id)
                )),
                Some("Waiting for an address".into()),
            ),
            Event::Address { ip } => self.next(
                Some(format!("address {ip}")),
                Some("Waiting for SSH (pinned host key)".into()),
            ),
            Event::TrustedOnFirstUse { fingerprint } => {
                self.next(
                    Some(format!(
                        "logged in, trusting the VM's own host key {} on first use",
                        terminal_safe(&fingerprint)
                    )),
                    None,
                );
                self.ui.warn(
                    "the provider could not give the VM spuff's user-data, so this first login \
                     could not be verified; spuff's own host key replaces the VM's now and is \
                     pinned from the next login on (docs/proxmox.md)",
                );
                self.next(None, Some("Applying spuff's user-data over SSH".into()));
            }
            Event::UserDataApplied => self.next(
                Some("user-data applied, spuff's host key installed".into()),
                Some("Waiting for SSH (pinned host key)".into()),
            ),
            Event::LoggedIn { .. } => self.next(
                Some("logged in with the pinned host key".into()),
                Some("Bootstrapping".into()),
            ),
            Event::AgentInstalled {
                arch,
                sha256,
                embedded,
            } => self.ui.info(format!(
                "agent uploaded, SHA-256 checked on the VM, and started ({}{arch}, {}…)",
                if embedded { "spuff's own, " } else { "" },
                sha256.get(..16).unwrap_or(&sha256)
            )),
            Event::Bootstrap { status, line } => {
                use spuff::agent::api::BootstrapStatus as B;
                // The step the VM is in, in words, from its own status
                // file; its log's last line when there is one.
                let step = match status {
                    B::Unknown => "Waiting for cloud-init to start the bootstrap",
                    B::Running => "Bootstrapping, phase 1 (user, agent)",
                    B::Installing => "Bootstrapping, phase 2 (packages, dotfiles)",
                    B::Ready => "Bootstrap finished",
                    B::Failed => "Bootstrap failed",
                };
                self.set_message(match line {
                    Some(line) => format!("{step}: {}", terminal_safe(&line)),
                    None => step.to_string(),
                })
            }
            Event::ShellReady { phase_2 } => {
                use spuff::agent::api::BootstrapStatus;
                match phase_2 {
                    BootstrapStatus::Ready => {
                        self.next(Some("bootstrap finished".into()), None);
                    }
                    BootstrapStatus::Failed => {
                        self.next(Some("phase 1 finished: shell and agent ready".into()), None);
                        self.ui.warn(
                            "phase 2 (packages, dotfiles) failed; the VM is usable, \
                             `spuff logs --bootstrap` says what failed",
                        );
                    }
                    _ => {
                        self.next(Some("phase 1 finished: shell and agent ready".into()), None);
                        self.ui.info(
                            "phase 2 (packages, dotfiles) continues in the background; \
                             `spuff status` shows its progress",
                        );
                    }
                }
            }
            // The bootstrap's step ended with `ShellReady`.
            Event::Ready => {}

            Event::Snapshotting { name, snapshot } => self.next(
                None,
                Some(format!(
                    "Snapshotting {} as {}",
                    terminal_safe(&name),
                    terminal_safe(&snapshot)
                )),
            ),
            Event::Snapshotted { snapshot, .. } => self.next(
                Some(format!(
                    "snapshot {} ({})",
                    terminal_safe(&snapshot.name),
                    terminal_safe(&snapshot.id)
                )),
                None,
            ),

            Event::AwaitingCreate { name, at_most } if !at_most.is_zero() => self.next(
                None,
                Some(format!(
                    "Making sure the interrupted create of {} made no VM (up to {})",
                    terminal_safe(&name),
                    spuff::fmt_duration(at_most)
                )),
            ),
            Event::Found { ids: list, .. } => {
                // Ends the wait above, if there was one.
                if let Ok(mut step) = self.step.lock()
                    && let Some(current) = step.take()
                {
                    current.finish(if list.is_empty() {
                        "no VM carries its spuff id".to_string()
                    } else {
                        format!("found {}", ids(&list))
                    });
                }
            }
            Event::Forgotten { .. } => {}
            Event::Destroying { name, id } => {
                let done = self
                    .step
                    .lock()
                    .ok()
                    .and_then(|s| s.as_ref().map(|_| "destroy accepted".to_string()));
                self.next(
                    done,
                    Some(format!(
                        "Destroying {} (id {})",
                        terminal_safe(&name),
                        terminal_safe(&id)
                    )),
                )
            }
            Event::Verifying { name, ids: list } => self.next(
                Some("destroy accepted".into()),
                Some(format!(
                    "Confirming with the provider that {} ({}) is gone",
                    terminal_safe(&name),
                    ids(&list)
                )),
            ),
            Event::Destroyed { name, ids: list } => self.next(
                Some(format!(
                    "destroyed {} ({}); the provider no longer reports it",
                    terminal_safe(&name),
                    ids(&list)
                )),
                None,
            ),
            _ => {}
        }
    }
}

/// The live table of a fleet being created (`up --count`): one line per VM
/// with its state, address and time, redrawn in place on a terminal; a line
/// per VM as it ends otherwise.
pub(crate) struct Board {
    ui: Ui,
    multi: Option<indicatif::MultiProgress>,
    rows: Vec<BoardRow>,
    done: std::sync::atomic::AtomicUsize,
}

struct BoardRow {
    name: String,
    provider: String,
    region: String,
    bar: Option<indicatif::ProgressBar>,
    state: Mutex<RowState>,
}

#[derive(Clone)]
struct RowState {
    state: String,
    ip: Option<String>,
    started: Option<std::time::Instant>,
    took: Option<std::time::Duration>,
    ok: Option<bool>,
}

/// One VM's line of a [`Board`], as the table at the end shows it.
pub(crate) struct BoardLine {
    pub(crate) name: String,
    pub(crate) provider: String,
    pub(crate) region: String,
    pub(crate) state: String,
    pub(crate) ip: Option<String>,
    pub(crate) took: Option<std::time::Duration>,
    pub(crate) ok: bool,
}

impl Board {
    pub(crate) fn new(ui: &Ui, names: &[String], provider: &str, region: &str) -> Board {
        // The Ui's own: its lines then print above the table, not into it.
        let multi = ui.stderr_tty().then(|| ui.bars());
        let width = names.iter().map(String::len).max().unwrap_or(4);
        let rows = names
            .iter()
            .map(|name| {
                let bar = multi.as_ref().map(|m| {
                    let style = indicatif::ProgressStyle::with_template(&format!(
                        "{{spinner}} {{prefix:<{width}}} {{msg}}"
                    ))
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
                    let bar = m.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(style);
                    bar.set_prefix(terminal_safe(name).into_owned());
                    bar.set_message(format!("{provider} {region}  queued"));
                    bar
                });
                BoardRow {
                    name: name.clone(),
                    provider: provider.to_string(),
                    region: region.to_string(),
                    bar,
                    state: Mutex::new(RowState {
                        state: "queued".into(),
                        ip: None,
                        started: None,
                        took: None,
                        ok: None,
                    }),
                }
            })
            .collect();
        Board {
            ui: ui.clone(),
            multi,
            rows,
            done: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The observer of row `index`'s `up`; the row's clock starts now.
    pub(crate) fn observer(&self, index: usize) -> RowObserver<'_> {
        if let Some(row) = self.rows.get(index) {
            if let Ok(mut s) = row.state.lock() {
                s.started = Some(std::time::Instant::now());
            }
            if let Some(bar) = &row.bar {
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
            }
        }
        RowObserver { board: self, index }
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut RowState)) {
        let Some(row) = self.rows.get(index) else {
            return;
        };
        let Ok(mut s) = row.state.lock() else {
            return;
        };
        change(&mut s);
        if let Some(bar) = &row.bar {
            let elapsed = s
                .took
                .or_else(|| s.started.map(|t| t.elapsed()))
                .map(|d| format!(" ({})", spuff::fmt_duration(d)))
                .unwrap_or_default();
            bar.set_message(format!(
                "{} {}  {}{}{elapsed}",
                row.provider,
                row.region,
                terminal_safe(&s.state),
                s.ip.as_deref()
                    .map(|ip| format!("  {ip}"))
                    .unwrap_or_default(),
            ));
        }
    }

    /// Ends row `index`: ready (`ok`) or failed, with what to show.
    pub(crate) fn finish(&self, index: usize, ok: bool, state: String) {
        let mut took = None;
        self.update(index, |s| {
            s.took = s.started.map(|t| t.elapsed());
            took = s.took;
            s.ok = Some(ok);
            s.state = state.clone();
        });
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let Some(row) = self.rows.get(index) else {
            return;
        };
        match &row.bar {
            Some(bar) => {
                bar.disable_steady_tick();
                bar.set_prefix(format!(
                    "{} {}",
                    if ok { "✓" } else { "✗" },
                    terminal_safe(&row.name)
                ));
                bar.tick();
                bar.abandon();
            }
            None => self.ui.info(format!(
                "[{done}/{}] {}: {}{}",
                self.rows.len(),
                terminal_safe(&row.name),
                terminal_safe(&state),
                took.map(|d| format!(" ({})", spuff::fmt_duration(d)))
                    .unwrap_or_default()
            )),
        }
    }

    /// Every row as it stands.
    pub(crate) fn lines(&self) -> Vec<BoardLine> {
        self.rows
            .iter()
            .map(|r| {
                let s = r.state.lock().map(|s| s.clone()).unwrap_or(RowState {
                    state: "unknown".into(),
                    ip: None,
                    started: None,
                    took: None,
                    ok: None,
                });
                BoardLine {
                    name: r.name.clone(),
                    provider: r.provider.clone(),
                    region: r.region.clone(),
                    state: s.state,
                    ip: s.ip,
                    took: s.took,
                    ok: s.ok == Some(true),
                }
            })
            .collect()
    }

    /// Stops drawing (an interruption).
    pub(crate) fn abandon(&self) {
        for bar in self.rows.iter().filter_map(|r| r.bar.as_ref()) {
            bar.disable_steady_tick();
            bar.abandon();
            if let Some(m) = &self.multi {
                m.remove(bar);
            }
        }
    }
}

/// The lifecycle events of one VM of a [`Board`].
pub(crate) struct RowObserver<'a> {
    board: &'a Board,
    index: usize,
}

impl spuff::vm::Observer for RowObserver<'_> {
    fn event(&self, event: Event) {
        let state = match event {
            Event::Creating => "creating".to_string(),
            Event::Created { .. } => "created, waiting for an address".to_string(),
            Event::Address { ip } => {
                let ip = ip.to_string();
                self.board.update(self.index, |s| s.ip = Some(ip));
                "waiting for SSH".to_string()
            }
            Event::TrustedOnFirstUse { .. } => "applying user-data".to_string(),
            Event::LoggedIn { .. } => "bootstrapping".to_string(),
            Event::AgentInstalled { .. } => "agent started".to_string(),
            Event::Bootstrap { status, .. } => format!("bootstrapping ({status})"),
            Event::ShellReady { .. } | Event::Ready => "ready".to_string(),
            _ => return,
        };
        self.board.update(self.index, |s| s.state = state);
    }
}
