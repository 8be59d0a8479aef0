//! The `spuff` command-line tool: a thin layer over the `spuff` library
//! (see `src/cli/`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
