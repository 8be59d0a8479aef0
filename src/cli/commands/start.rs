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
    let record = record_address(&instance, &vm, ctx)?;
    wait_for_ssh(&record, ctx).await?;
    Ok(0)
}

/// Records where `vm` answers now: a local VM gets a new forwarded port on
/// each start, a VM on DHCP (Proxmox) may get a new address.
pub(crate) fn record_address(
    instance: &spuff::state::Instance,
    vm: &spuff::provider::ProviderInstance,
    ctx: &Context,
) -> anyhow::Result<spuff::state::Instance> {
    if vm.ssh.is_none() && vm.public_ipv4.is_none() && vm.public_ipv6.is_none() {
        return Ok(instance.clone());
    }
    ctx.store
        .update(&instance.name, |i| match &vm.ssh {
            Some(endpoint) => spuff::vm::apply_endpoint(i, vm, endpoint),
            None => {
                i.ipv4 = vm.public_ipv4.map(std::net::IpAddr::V4);
                i.ipv6 = vm.public_ipv6.map(std::net::IpAddr::V6);
            }
        })
        .context("cannot record the VM's address")
}

/// Waits (with a spinner) until `record` answers over SSH with its pinned
/// host key, after a power-on or a rollback.
pub(crate) async fn wait_for_ssh(
    record: &spuff::state::Instance,
    ctx: &Context,
) -> anyhow::Result<()> {
    let name = terminal_safe(&record.name);
    let step = ctx
        .ui
        .spinner(format!("Waiting for {name} to answer over SSH"));
    let started = Instant::now();
    let session = loop {
        match ctx.connect(record).await {
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
    Ok(())
}
