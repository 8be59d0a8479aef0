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

    /// Ends a step left open by a failure or an interruption.
    pub(crate) fn abandon(&self) {
        if let Ok(mut step) = self.step.lock()
            && let Some(current) = step.take()
        {
            current.fail();
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
            Event::LoggedIn { .. } => self.next(
                Some("logged in with the pinned host key".into()),
                Some("Bootstrapping".into()),
            ),
            Event::AgentInstalled => self.ui.info("agent uploaded and started"),
            Event::Bootstrap { status, line } => self.set_message(match line {
                Some(line) => format!("Bootstrapping ({status}): {}", terminal_safe(&line)),
                None => format!("Bootstrapping ({status})"),
            }),
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
