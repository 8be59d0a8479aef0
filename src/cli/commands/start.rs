//! `spuff start`: power a stopped VM (one its idle stop powered off) back on
//! and wait until it answers over SSH (issue 12).

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use spuff::terminal_safe;

use super::context::Context;
use crate::cli::args::StartArgs;

/// How long a VM may take from power-on to answering SSH: minutes under
/// QEMU without acceleration, seconds on a cloud.
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) async fn run(args: StartArgs, ctx: &Context) -> anyhow::Result<u8> {
    let instance = ctx.store.resolve(args.name.as_deref())?;
    let name = terminal_safe(&instance.name);
    if let Some(at) = instance.expires_at
        && at.0 <= SystemTime::now()
    {
        anyhow::bail!(
            "{name}'s lifetime (up --ttl) ended at {at}: its agent would power it off again at \
             once. `spuff up` makes a new VM; `spuff down {name}` removes this one"
        );
    }
    let provider = ctx.provider(&instance.provider)?;
    let step = ctx.ui.spinner(format!("Powering {name} on"));
    let on = provider.power_on(&instance.provider_id).await;
    let vm = match on {
        Ok(()) => provider.get_instance(&instance.provider_id).await,
        Err(e) => Err(e),
    };
    let vm = match vm {
        Ok(Some(vm)) => vm,
        Ok(None) => {
            step.fail();
            anyhow::bail!(
                "{name} is gone at {}; `spuff down {name}` forgets it",
                instance.provider
            );
        }
        Err(e) => {
            step.fail();
            return Err(anyhow::Error::from(e).context(format!("cannot power {name} on")));
        }
    };
    step.finish(format!("{name} is powered on"));
    // A local VM gets a new forwarded port: record where it is now.
    let record = match &vm.ssh {
        Some(endpoint) => ctx
            .store
            .update(&instance.name, |i| {
                spuff::vm::apply_endpoint(i, &vm, endpoint)
            })
            .context("cannot record the VM's address")?,
        None => instance.clone(),
    };

    let step = ctx
        .ui
        .spinner(format!("Waiting for {name} to answer over SSH"));
    let started = Instant::now();
    let session = loop {
        match ctx.connect(&record).await {
            Ok(session) => break session,
            Err(e) if started.elapsed() >= BOOT_TIMEOUT => {
                step.fail();
                return Err(e.context(format!(
                    "{name} did not answer over SSH within {}",
                    humantime::format_duration(BOOT_TIMEOUT)
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    };
    let _ = session.close().await;
    step.finish(format!("{name} is running again"));
    Ok(0)
}
