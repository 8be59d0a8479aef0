//! `spuff ssh` and `spuff exec`: a shell or a command on a VM, exiting with
//! the remote exit code.

use std::io::Write;

use spuff::ssh::{AgentLocation, ExecEvent, ShellOptions};
use tokio::io::AsyncReadExt;

use super::context::Context;
use crate::cli::args::{ExecArgs, SshArgs};

pub(crate) async fn shell(args: SshArgs, ctx: &Context) -> anyhow::Result<u8> {
    let instance = ctx.store.resolve(args.name.as_deref())?;
    let session = ctx.connect(&instance).await?;
    // The VM's agent cannot see this work: tell it the VM is in use.
    let _awake = super::context::keep_awake(&instance, &session, &ctx.ui);
    let mut opts = ShellOptions {
        escape: args.escape.escape_char.0,
        ..ShellOptions::default()
    };
    if super::context::forward_agent(args.no_agent, args.forward_agent, ctx) {
        opts.forward_agent = Some(AgentLocation::Default);
    }
    interactive(&session, opts, &instance, ctx).await
}

/// A shell (or a command on a terminal) on `instance` until it ends; its
/// exit code, 255 after `~.`. The terminal is back to normal and on a line
/// of its own before anything is said about how it ended.
pub(crate) async fn interactive(
    session: &spuff::ssh::Session,
    opts: ShellOptions,
    instance: &spuff::state::Instance,
    ctx: &Context,
) -> anyhow::Result<u8> {
    let result = session.shell(opts).await;
    if !matches!(result, Ok(ref s) if *s != spuff::ssh::ExitStatus::Disconnected) {
        // The remote side may have left the cursor mid-line (a prompt):
        // what is said next starts a line of its own.
        let _ = writeln!(std::io::stderr());
    }
    let status = match result {
        Ok(status) => status,
        Err(e) => return Err(super::context::explain_loss(instance, ctx, e.into()).await),
    };
    if status == spuff::ssh::ExitStatus::Disconnected {
        ctx.ui.info(format!(
            "left the session on {} (the VM keeps running)",
            spuff::terminal_safe(&instance.name)
        ));
        // A VM that stopped answering may never take a clean goodbye.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), session.close()).await;
    } else {
        let _ = session.close().await;
    }
    Ok(exit_code(status.shell_code()))
}

pub(crate) async fn exec(args: ExecArgs, ctx: &Context) -> anyhow::Result<u8> {
    if args.all || args.fleet.is_some() {
        return super::fleet::exec_all(args, ctx).await;
    }
    let instance = ctx.store.resolve(args.name.as_deref())?;
    let session = ctx.connect(&instance).await?;
    // The VM's agent cannot see this work: tell it the VM is in use.
    let _awake = super::context::keep_awake(&instance, &session, &ctx.ui);
    // As ssh does: the words are joined with spaces and the remote shell
    // parses them, so `spuff exec -- 'echo $HOME'` expands remotely.
    let command = args.command.join(" ");
    if args.tty {
        let opts = ShellOptions {
            command: Some(command),
            escape: args.escape.escape_char.0,
            ..ShellOptions::default()
        };
        return interactive(&session, opts, &instance, ctx).await;
    }
    let mut cmd = session.spawn(&command).await?;
    // Local stdin goes to the command, read on its own task so that a
    // command which never reads does not hold up its output.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let pump = tokio::spawn(async move {
        let mut input = tokio::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = input.read(&mut buf).await {
            if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut code = None;
    loop {
        tokio::select! {
            event = cmd.next_event() => match event {
                Err(e) => {
                    pump.abort();
                    return Err(super::context::explain_loss(&instance, ctx, e.into()).await);
                }
                Ok(Some(ExecEvent::Stdout(b))) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&b)?;
                    out.flush()?;
                }
                Ok(Some(ExecEvent::Stderr(b))) => {
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(&b);
                    let _ = err.flush();
                }
                Ok(Some(ExecEvent::Exit(status))) => code = Some(status.shell_code()),
                Ok(None) => break,
            },
            chunk = rx.recv(), if stdin_open => match chunk {
                Some(data) => {
                    // The command may have closed its stdin; its output and
                    // exit status still matter.
                    if cmd.write_stdin(&data).await.is_err() {
                        stdin_open = false;
                    }
                }
                None => {
                    stdin_open = false;
                    let _ = cmd.close_stdin().await;
                }
            },
        }
    }
    pump.abort();
    let Some(code) = code else {
        // The channel ended without an exit status: the connection (or the
        // VM) went away mid-command. Never report that as success.
        let lost = anyhow::anyhow!(
            "the connection to {} ended before the command finished",
            spuff::terminal_safe(&instance.name)
        );
        return Err(super::context::explain_loss(&instance, ctx, lost).await);
    };
    let _ = session.close().await;
    Ok(exit_code(code))
}

fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}
