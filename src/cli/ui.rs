//! How the CLI talks to the user: colour rules, progress spinners, prompts,
//! errors with hints, and JSON output.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The terminal, as the commands see it. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Ui {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    color: bool,
    stderr_tty: bool,
    stdin_tty: bool,
    /// Every spinner and progress bar on screen: lines of text are printed
    /// through it, with the bars taken off the screen meanwhile, so no bar
    /// is left frozen above a message.
    bars: indicatif::MultiProgress,
}

impl Ui {
    /// Reads the environment: colour only on a terminal and without
    /// `NO_COLOR`.
    pub(crate) fn new() -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ui {
            inner: Arc::new(Inner {
                color: stderr_tty && !no_color,
                stderr_tty,
                stdin_tty: std::io::stdin().is_terminal(),
                bars: bars(stderr_tty),
            }),
        }
    }

    /// Whether stderr gets colour.
    /// Whether stderr is a terminal (live drawing) or a log (lines).
    pub(crate) fn stderr_tty(&self) -> bool {
        self.inner.stderr_tty
    }

    pub(crate) fn color(&self) -> bool {
        self.inner.color
    }

    /// Whether the user can answer questions.
    pub(crate) fn interactive(&self) -> bool {
        self.inner.stdin_tty && self.inner.stderr_tty
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.inner.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Prints `text` and a newline on stderr, with any bar or spinner off
    /// the screen meanwhile (they are drawn again below it).
    fn line(&self, text: &str) {
        self.inner.bars.suspend(|| eprintln!("{text}"));
    }

    /// The bars on screen, for a live table of its own (`up --count`).
    pub(crate) fn bars(&self) -> indicatif::MultiProgress {
        self.inner.bars.clone()
    }

    /// A line of status on stderr.
    pub(crate) fn info(&self, message: impl AsRef<str>) {
        self.line(message.as_ref());
    }

    /// A warning on stderr.
    pub(crate) fn warn(&self, message: impl AsRef<str>) {
        self.line(&format!(
            "{} {}",
            self.paint("33;1", "warning:"),
            message.as_ref()
        ));
    }

    /// A warning on stderr that reads right even while a remote shell has
    /// the terminal in raw mode (where a bare newline does not return the
    /// cursor).
    pub(crate) fn warn_anywhere(&self, message: impl AsRef<str>) {
        eprint!(
            "\r\n{} {}\r\n",
            self.paint("33;1", "warning:"),
            message.as_ref()
        );
    }

    /// A finished step on stderr.
    pub(crate) fn success(&self, message: impl AsRef<str>) {
        self.line(&format!("{} {}", self.paint("32;1", "✓"), message.as_ref()));
    }

    /// Prints an error, its causes and the first hint any of them offers.
    /// Messages carry text from outside (API bodies, VM names), so every
    /// line goes through [`spuff::terminal_safe`].
    pub(crate) fn report_error(&self, error: &anyhow::Error) {
        let safe = |text: String| spuff::terminal_safe(&text).into_owned();
        let mut out = format!(
            "{} {}",
            self.paint("31;1", "error:"),
            safe(error.to_string())
        );
        for cause in error.chain().skip(1) {
            out.push_str(&format!(
                "\n  {} {}",
                self.paint("2", "caused by:"),
                safe(cause.to_string())
            ));
        }
        if let Some(hint) = hint_for(error) {
            out.push_str(&format!(
                "\n  {} {}",
                self.paint("36;1", "try:"),
                safe(hint)
            ));
        }
        self.line(&out);
    }

    /// A spinner with elapsed time for a step; hidden when stderr is not a
    /// terminal, where the step's start and end are printed as lines instead.
    pub(crate) fn spinner(&self, message: impl Into<String>) -> Step {
        let message = message.into();
        let bar = if self.inner.stderr_tty {
            let bar = self.inner.bars.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(message.clone());
            Some(bar)
        } else {
            self.line(&format!("{message}…"));
            None
        };
        Step {
            ui: self.clone(),
            bar,
            message,
            started: std::time::Instant::now(),
        }
    }

    /// A byte progress bar for transfers; hidden when stderr is not a terminal.
    pub(crate) fn transfer_bar(&self) -> ProgressBar {
        if !self.inner.stderr_tty {
            return ProgressBar::hidden();
        }
        let bar = self.inner.bars.add(ProgressBar::new(0));
        let style = ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    }

    /// Asks a yes/no question; `default` when the user just presses Enter.
    /// Without a terminal the answer is `default`.
    pub(crate) fn confirm(&self, question: &str, default: bool) -> std::io::Result<bool> {
        if !self.interactive() {
            return Ok(default);
        }
        let choices = if default { "[Y/n]" } else { "[y/N]" };
        eprint!("{question} {choices} ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(match line.trim().to_ascii_lowercase().as_str() {
            "" => default,
            "y" | "yes" => true,
            _ => false,
        })
    }

    /// Asks for a line of text; `default` on Enter.
    pub(crate) fn prompt(&self, question: &str, default: Option<&str>) -> std::io::Result<String> {
        match default {
            Some(d) if !d.is_empty() => eprint!("{question} [{d}]: "),
            _ => eprint!("{question}: "),
        }
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let line = line.trim();
        Ok(if line.is_empty() {
            default.unwrap_or_default().to_string()
        } else {
            line.to_string()
        })
    }

    /// Asks for a secret on the terminal without showing what is typed
    /// (issue 13: a token typed in clear ends up on screen and in
    /// recordings). Backspace edits; Ctrl-C or Esc cancels.
    pub(crate) fn prompt_secret(&self, question: &str) -> std::io::Result<String> {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        eprint!("{question} (hidden): ");
        std::io::stderr().flush()?;
        crossterm::terminal::enable_raw_mode()?;
        let mut secret = String::new();
        let read = loop {
            match event::read() {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => match k.code {
                    KeyCode::Enter => break Ok(()),
                    KeyCode::Esc => break Err(std::io::ErrorKind::Interrupted.into()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        break Err(std::io::ErrorKind::Interrupted.into());
                    }
                    KeyCode::Backspace => {
                        secret.pop();
                    }
                    KeyCode::Char(c) => secret.push(c),
                    _ => {}
                },
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = crossterm::terminal::disable_raw_mode();
        eprintln!();
        read.map(|()| secret.trim().to_string())
    }

    /// Prints `value` as pretty JSON on stdout.
    pub(crate) fn json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
        Ok(())
    }
}

/// A step in progress (see [`Ui::spinner`]).
pub(crate) struct Step {
    ui: Ui,
    bar: Option<ProgressBar>,
    message: String,
    started: std::time::Instant,
}

impl Step {
    /// Replaces the step's message (the current cloud-init line, say).
    pub(crate) fn set_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.into());
        }
    }

    /// Takes the spinner off the screen for good, saying nothing (a
    /// question whose answer is reported elsewhere).
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.bar {
            // The ticker thread first: a tick racing the clear could draw
            // the spinner again after it was taken off (seen after Ctrl-C
            // at the first tick), and nothing would clear it then.
            bar.disable_steady_tick();
            bar.finish_and_clear();
            self.ui.inner.bars.remove(bar);
        }
    }

    /// Ends the step as done.
    pub(crate) fn finish(self, message: impl AsRef<str>) {
        self.clear();
        let secs = self.started.elapsed().as_secs_f64();
        self.ui
            .success(format!("{} ({secs:.1}s)", message.as_ref()));
    }

    /// Ends the step as failed (the error is reported by the caller): one
    /// plain line, no spinner left behind.
    pub(crate) fn fail(self) {
        self.end("failed");
    }

    /// Ends the step as stopped by the user (Ctrl-C).
    pub(crate) fn interrupted(self) {
        self.end("interrupted");
    }

    fn end(self, how: &str) {
        self.clear();
        let secs = self.started.elapsed().as_secs_f64();
        self.ui.line(&format!(
            "{} {} {how} ({secs:.1}s)",
            self.ui.paint("31;1", "✗"),
            self.message
        ));
    }
}

/// The first hint any of spuff's errors in the chain offers, outermost
/// first (each chooses by its variant; see [`spuff::Hint`]).
pub(crate) fn hint_for(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(spuff::hint_of)
}

/// The bars' drawing target: stderr, on a terminal drawn two columns short
/// of its width (Unix).
///
/// indicatif pads each line to the terminal's width so that the cursor
/// waits at the right margin; a `^C` the terminal echoes there wraps to a
/// new line, indicatif then clears that line instead of the spinner's, and
/// the spinner stays on screen above "interrupted" (issue 17, seen in the
/// raw pane output of `status_watch_should_mark_stale_figures_and_recover`).
/// Two spare columns hold the echo on the spinner's own line.
fn bars(stderr_tty: bool) -> indicatif::MultiProgress {
    #[cfg(unix)]
    if stderr_tty {
        return indicatif::MultiProgress::with_draw_target(
            indicatif::ProgressDrawTarget::term_like(Box::new(Narrow)),
        );
    }
    let _ = stderr_tty;
    indicatif::MultiProgress::new()
}

/// stderr as a terminal two columns narrower than it is (see [`bars`]).
#[cfg(unix)]
#[derive(Debug)]
struct Narrow;

#[cfg(unix)]
impl Narrow {
    fn write(&self, text: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        std::io::stderr().lock().write_all(text.as_bytes())
    }
}

#[cfg(unix)]
impl indicatif::TermLike for Narrow {
    fn width(&self) -> u16 {
        let width = crossterm::terminal::size().map_or(80, |(w, _)| w);
        width.saturating_sub(2).max(10)
    }

    fn height(&self) -> u16 {
        crossterm::terminal::size().map_or(24, |(_, h)| h)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}A"))
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}B"))
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}C"))
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}D"))
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        use std::io::Write as _;
        std::io::stderr().flush()
    }
}
