//! The terminal, taken over for the dashboard and handed back: raw mode and
//! the alternate screen while the view is up, the normal screen while a
//! shell or a log runs from it, and always restored on the way out (errors
//! and panics included).
//!
//! Keys are read on a thread of their own; while the terminal is lent to a
//! shell that thread is parked, so no keystroke meant for the VM is taken.

use std::io::{self, Stdout};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossterm::event::{self, Event};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

/// The full-screen terminal.
pub(crate) struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    shown: bool,
}

impl Screen {
    /// Enters raw mode and the alternate screen.
    pub(crate) fn enter() -> io::Result<Screen> {
        let mut screen = Screen {
            terminal: Terminal::new(CrosstermBackend::new(io::stdout()))?,
            shown: false,
        };
        screen.show()?;
        Ok(screen)
    }

    /// Takes the terminal (again).
    pub(crate) fn show(&mut self) -> io::Result<()> {
        terminal::enable_raw_mode()?;
        self.shown = true;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide,
            terminal::Clear(terminal::ClearType::All)
        )?;
        // A new terminal draws everything afresh; `Terminal::clear` would
        // ask the terminal where its cursor is, an answer some terminals
        // never give.
        self.terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(())
    }

    /// Hands the terminal back as it was.
    pub(crate) fn hide(&mut self) -> io::Result<()> {
        if !self.shown {
            return Ok(());
        }
        self.shown = false;
        let left = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
        terminal::disable_raw_mode()?;
        left
    }

    /// Draws a frame.
    pub(crate) fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame<'_>)) -> io::Result<()> {
        self.terminal.draw(render).map(|_| ())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.hide();
    }
}

/// Raw mode (keys one by one, no echo) for as long as this lives, for a
/// live view that stays on the normal screen (`status --watch`).
pub(crate) struct Raw(());

impl Raw {
    /// Enters raw mode.
    pub(crate) fn enable() -> io::Result<Raw> {
        terminal::enable_raw_mode()?;
        Ok(Raw(()))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

/// The terminal's input events, read on a thread that can be parked.
pub(crate) struct Keys {
    events: mpsc::UnboundedReceiver<Event>,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// The reader is asked to stop reading.
    paused: bool,
    /// The reader is not reading (parked, or ended).
    parked: bool,
    /// The reader is asked to end.
    stop: bool,
}

/// How long one wait for input lasts before the reader looks at the gate.
const POLL: Duration = Duration::from_millis(50);

impl Keys {
    /// Starts the reader.
    pub(crate) fn start() -> Keys {
        let (tx, events) = mpsc::unbounded_channel();
        let gate = Arc::new(Gate::default());
        let reader = gate.clone();
        std::thread::spawn(move || {
            read(&reader, &tx);
            if let Ok(mut s) = reader.state.lock() {
                s.parked = true;
            }
            reader.changed.notify_all();
        });
        Keys { events, gate }
    }

    /// The next event; `None` once the terminal cannot be read.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Parks the reader and waits until it is parked.
    pub(crate) fn pause(&self) {
        let Ok(mut s) = self.gate.state.lock() else {
            return;
        };
        s.paused = true;
        while !s.parked {
            s = match self.gate.changed.wait(s) {
                Ok(s) => s,
                Err(_) => return,
            };
        }
    }

    /// Lets the reader read again.
    pub(crate) fn resume(&self) {
        if let Ok(mut s) = self.gate.state.lock() {
            s.paused = false;
        }
        self.gate.changed.notify_all();
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Ok(mut s) = self.gate.state.lock() {
            s.stop = true;
            s.paused = false;
        }
        self.gate.changed.notify_all();
    }
}

fn read(gate: &Gate, tx: &mpsc::UnboundedSender<Event>) {
    loop {
        {
            let Ok(mut s) = gate.state.lock() else {
                return;
            };
            while s.paused && !s.stop {
                s.parked = true;
                gate.changed.notify_all();
                s = match gate.changed.wait(s) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            s.parked = false;
            if s.stop {
                return;
            }
        }
        match event::poll(POLL) {
            Ok(true) => match event::read() {
                Ok(ev) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}
