//! Run a command on a remote host, streaming its output, and exit with its code.
//!
//! Run with: cargo run --example exec -- HOST PORT USER KEY 'uname -a'

mod common;

use std::io::Write;

use spuff::ssh::{ExecEvent, Session};

#[tokio::main]
async fn main() {
    let (config, rest) = common::config_from_args("exec HOST PORT USER KEY COMMAND");
    let command = if rest.is_empty() {
        "uname -a".to_string()
    } else {
        rest.join(" ")
    };
    let session = Session::connect(config)
        .await
        .unwrap_or_else(|e| common::fail(e));
    let mut cmd = session
        .spawn(&command)
        .await
        .unwrap_or_else(|e| common::fail(e));
    cmd.close_stdin().await.unwrap_or_else(|e| common::fail(e));
    let mut code = 0;
    while let Some(event) = cmd.next_event().await.unwrap_or_else(|e| common::fail(e)) {
        match event {
            ExecEvent::Stdout(b) => {
                let _ = std::io::stdout().write_all(&b);
            }
            ExecEvent::Stderr(b) => {
                let _ = std::io::stderr().write_all(&b);
            }
            ExecEvent::Exit(status) => code = status.shell_code(),
        }
    }
    let _ = session.close().await;
    std::process::exit(code);
}
