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
    let mut opts = ShellOptions::default();
    if super::context::forward_agent(args.no_agent, args.forward_agent, ctx) {
        opts.forward_agent = Some(AgentLocation::Default);
    }
    let status = match session.shell(opts).await {
        Ok(status) => status,
        Err(e) => return Err(super::context::explain_loss(&instance, ctx, e.into()).await),
    };
    let _ = session.close().await;
    Ok(exit_code(status.shell_code()))
}

pub(crate) async fn exec(args: ExecArgs, ctx: &Context) -> anyhow::Result<u8> {
    if args.all {
        return exec_all(args, ctx).await;
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
            ..ShellOptions::default()
        };
        let status = session.shell(opts).await?;
        let _ = session.close().await;
        return Ok(exit_code(status.shell_code()));
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

/// `spuff exec --all`: the command on every recorded VM through
/// [`spuff::fleet`], a line per VM as it ends, then a table.
async fn exec_all(args: ExecArgs, ctx: &Context) -> anyhow::Result<u8> {
    use spuff::fleet::{FleetHost, FleetOptions};
    use spuff::terminal_safe;

    let command = args.command.join(" ");
    let instances = ctx.store.list()?;
    if instances.is_empty() {
        anyhow::bail!("no VMs recorded; create one with `spuff up`");
    }
    // A VM without an address or a readable host key cannot be reached:
    // it gets its row, and the exit code says something failed.
    let mut hosts = Vec::new();
    let mut unreachable = Vec::new();
    for instance in &instances {
        match ctx.ssh_config(instance) {
            Ok(ssh) => hosts.push(FleetHost {
                name: instance.name.clone(),
                ssh,
            }),
            Err(e) => unreachable.push((instance.name.clone(), format!("{e:#}"))),
        }
    }
    let mut options = FleetOptions::default().parallel(usize::from(args.parallel));
    if let Some(dir) = &args.output_dir {
        options = options.output_dir(dir);
    }
    let total = hosts.len();
    let mut done = 0;
    let outcomes = spuff::fleet::exec_all(hosts, &command, &options, |o| {
        done += 1;
        let result = match &o.result {
            Ok(run) => run.status.to_string(),
            Err(e) => format!("failed: {e}"),
        };
        ctx.ui.info(format!(
            "[{done}/{total}] {}: {result} ({})",
            terminal_safe(&o.name),
            spuff::fmt_duration(o.duration)
        ));
    })
    .await;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<24} {:>8}  LAST LINE",
        "VM", "RESULT", "TIME"
    )?;
    let mut failed = unreachable.len();
    for o in &outcomes {
        let (result, last) = match &o.result {
            Ok(run) => (run.status.to_string(), run.last_line().unwrap_or("")),
            Err(e) => (format!("failed: {e}"), ""),
        };
        if !o.success() {
            failed += 1;
        }
        writeln!(
            out,
            "{:<20} {:<24} {:>8}  {}",
            terminal_safe(&o.name),
            terminal_safe(&result),
            spuff::fmt_duration(o.duration),
            terminal_safe(last)
        )?;
    }
    for (name, why) in &unreachable {
        writeln!(
            out,
            "{:<20} {:<24} {:>8}  {}",
            terminal_safe(name),
            "not reachable",
            "-",
            terminal_safe(why)
        )?;
    }
    out.flush()?;
    if let Some(dir) = &args.output_dir {
        ctx.ui.info(format!("whole outputs in {}", dir.display()));
    }
    if failed > 0 {
        ctx.ui.warn(format!(
            "{failed} of {} VMs did not run the command to exit 0",
            instances.len()
        ));
        return Ok(1);
    }
    Ok(0)
}
