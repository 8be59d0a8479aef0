//! Open an interactive shell with a PTY, optionally forwarding your ssh-agent.
//!
//! Run with: cargo run --example shell -- HOST PORT USER KEY [--forward-agent]

mod common;

use spuff::ssh::{AgentLocation, Session, ShellOptions};

#[tokio::main]
async fn main() {
    let (config, rest) = common::config_from_args("shell HOST PORT USER KEY [--forward-agent]");
    let forward = rest.iter().any(|a| a == "--forward-agent");
    let session = Session::connect(config)
        .await
        .unwrap_or_else(|e| common::fail(e));
    let opts = ShellOptions {
        forward_agent: forward.then_some(AgentLocation::Default),
        ..ShellOptions::default()
    };
    let status = session
        .shell(opts)
        .await
        .unwrap_or_else(|e| common::fail(e));
    let _ = session.close().await;
    std::process::exit(status.shell_code());
}
