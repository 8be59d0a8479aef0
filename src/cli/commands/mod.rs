//! One module per command; [`run`] dispatches.

mod config;
mod context;
mod cp;
mod dash;
mod down;
mod fleet;
mod gc;
mod list;
mod logs;
mod nuke;
mod snapshot;
mod ssh;
mod ssh_config;
mod start;
mod status;
mod tunnel;
mod up;

use std::io::Write;

use clap::CommandFactory;

use super::Ui;
use super::args::{Cli, Command, CompletionsArgs, JsonFlag, Shell};

/// Runs the parsed command; the result is the exit code.
pub(crate) async fn run(cli: Cli, ui: Ui) -> anyhow::Result<u8> {
    match cli.command {
        Command::Config(command) => config::run(command, &ui).await,
        Command::SshConfig(args) => ssh_config::run(args, &context::Context::load(&ui)?).await,
        Command::Up(args) => up::run(args, &context::Context::load(&ui)?).await,
        Command::List(args) => list::run(args, &context::Context::load(&ui)?).await,
        Command::Dash(args) => dash::run(args, &context::Context::load(&ui)?).await,
        Command::Gc(args) => gc::run(args, &context::Context::load(&ui)?).await,
        Command::Nuke(args) => nuke::run(args, &context::Context::load(&ui)?).await,
        Command::Start(args) => start::run(args, &context::Context::load(&ui)?).await,
        Command::Down(args) => down::run(args, &context::Context::load(&ui)?).await,
        Command::Tunnel(args) => {
            tunnel::run(args, cli.verbose > 0, &context::Context::load(&ui)?).await
        }
        Command::Status(args) => status::run(args, &context::Context::load(&ui)?).await,
        Command::Logs(args) => logs::run(args, &context::Context::load(&ui)?).await,
        Command::Snapshot(command) => snapshot::run(command, &context::Context::load(&ui)?).await,
        Command::Cp(args) => cp::run(args, &context::Context::load(&ui)?).await,
        Command::Ssh(args) => ssh::shell(args, &context::Context::load(&ui)?).await,
        Command::Exec(args) => ssh::exec(args, &context::Context::load(&ui)?).await,
        Command::Completions(args) => completions(args),
        Command::Version(args) => version(args, &ui),
    }
}

fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    use clap_complete::Shell as S;
    let shell = match args.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Powershell => S::PowerShell,
        Shell::Elvish => S::Elvish,
    };
    let mut command = Cli::command();
    // clap_complete panics on a write error; render first, then write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "spuff", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(0)
}

/// spuff's version, and the agents it carries for VMs (what `up` would
/// install as root there, by SHA-256).
fn version(args: JsonFlag, ui: &Ui) -> anyhow::Result<u8> {
    let version = env!("CARGO_PKG_VERSION");
    let agents = spuff::agent_bin::all();
    if args.json {
        let agents: Vec<_> = agents
            .iter()
            .map(|a| {
                serde_json::json!({
                    "arch": a.arch.name(),
                    "sha256": a.sha256,
                    "size": a.size,
                    "compressed_size": a.compressed().len(),
                })
            })
            .collect();
        ui.json(&serde_json::json!({
            "version": version,
            "agent_api": spuff::agent::api::DEFAULT_PORT,
            "target": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "agents": agents,
        }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "spuff {version}")?;
        if agents.is_empty() {
            writeln!(
                out,
                "agents: none carried (a developer build; `bash ci/build-agents.sh` and build again)"
            )?;
        }
        for a in agents {
            writeln!(
                out,
                "agent {}: {} bytes, SHA-256 {}",
                a.arch, a.size, a.sha256
            )?;
        }
    }
    Ok(0)
}
