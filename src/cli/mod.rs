//! The `spuff` command line: parse, run, report.
//!
//! Everything a user sees is decided here: progress on stderr, results on
//! stdout (text or `--json`), errors with their cause chain and a hint, and
//! the exit code. The library underneath never prints.

pub(crate) mod args;
mod commands;
mod draw;
pub(crate) mod ui;

use std::process::ExitCode;

use clap::Parser;

pub(crate) use args::Cli;
pub(crate) use ui::Ui;

/// Exit code for a failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code when the user interrupted (128 + SIGINT, as shells report it).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Runs the command line and returns the process's exit code.
pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help, version and usage errors itself, with exit
        // code 0 for help and 2 for errors.
        Err(e) => e.exit(),
    };
    let ui = Ui::new();
    init_tracing(cli.verbose, &ui);
    // One thread runs everything but blocking file work (tokio's blocking
    // pool): a copy then costs 10-15% less CPU than with a worker per core,
    // whose hand-offs between threads cost more than the parallelism gives
    // an SSH session, which decrypts on one task anyway (docs/performance.md,
    // 2026-12-02). Nothing here may block that thread for long.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            ui.report_error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(commands::run(cli, ui.clone()));
    // Background tasks (forwards, keepalives) must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                // `spuff list | head` is not an error.
                return ExitCode::SUCCESS;
            }
            ui.report_error(&e);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `-v` levels map onto spuff's own targets; `RUST_LOG` replaces them.
fn init_tracing(verbose: u8, ui: &Ui) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => EnvFilter::new(value),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "warn,spuff=info",
            2 => "info,spuff=debug",
            _ => "debug,spuff=trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ui.color())
        .with_target(verbose >= 2)
        .try_init();
}
