//! `spuff logs`: the bootstrap log (default), cloud-init's output, or the
//! agent's journal, read over SSH; `-f` follows.

use std::io::Write;

use spuff::ssh::ExecEvent;

use super::context::Context;
use crate::cli::args::LogsArgs;

pub(crate) async fn run(args: LogsArgs, ctx: &Context) -> anyhow::Result<u8> {
    let instance = ctx.store.resolve(args.name.as_deref())?;
    let session = ctx.connect(&instance).await?;
    let lines = args.lines;
    let follow = if args.follow { " -f" } else { "" };
    // sudo -n: the logs may be root's; never prompt.
    let sudo = if instance.ssh_user == "root" {
        ""
    } else {
        "sudo -n "
    };
    let command = if args.which.agent {
        format!(
            "{sudo}journalctl -u spuff-agent --no-pager -n {lines}{}",
            if args.follow { " -f" } else { "" }
        )
    } else {
        let file = if args.which.cloud_init {
            "/var/log/cloud-init-output.log".to_string()
        } else {
            spuff::agent::api::BOOTSTRAP_LOG_PATH.to_string()
        };
        format!(
            "{sudo}tail -n {lines}{follow} -- '{}'",
            file.replace('\'', "'\\''")
        )
    };
    let mut cmd = session.spawn(&command).await?;
    cmd.close_stdin().await?;
    let mut code = 0;
    loop {
        let event = tokio::select! {
            event = cmd.next_event() => event?,
            _ = tokio::signal::ctrl_c() => {
                // Interrupted, as the documented exit codes say.
                code = i32::from(crate::cli::EXIT_INTERRUPTED);
                break;
            }
        };
        match event {
            Some(ExecEvent::Stdout(b)) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&b)?;
                out.flush()?;
            }
            Some(ExecEvent::Stderr(b)) => {
                let _ = std::io::stderr().lock().write_all(&b);
            }
            Some(ExecEvent::Exit(status)) => code = status.shell_code(),
            None => break,
        }
    }
    let _ = session.close().await;
    Ok(u8::try_from(code).unwrap_or(1))
}
