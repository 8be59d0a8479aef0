//! `spuff-agent`: runs on a spuff VM and reports health, metrics and idleness to the CLI.
//!
//! This is a placeholder until the agent issue lands; it only answers `--version`.

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-V") => println!("spuff-agent {}", env!("CARGO_PKG_VERSION")),
        _ => {
            eprintln!("spuff-agent: not implemented yet (see the agent issue)");
            std::process::exit(2);
        }
    }
}
