//! `spuff ssh-config`: a `Host` entry per VM in spuff's own file, with the
//! pinned host keys in spuff's own known_hosts, so plain `ssh NAME`, VS Code
//! Remote-SSH and friends work. `~/.ssh/config` gets one `Include` line, and
//! only with the user's consent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::context::Context;
use crate::cli::args::SshConfigArgs;

const HOSTS_FILE: &str = "ssh_config";
const KNOWN_HOSTS_FILE: &str = "known_hosts_vms";

pub(crate) async fn run(args: SshConfigArgs, ctx: &Context) -> anyhow::Result<u8> {
    let dir = spuff::paths::config_dir()?;
    let hosts_path = dir.join(HOSTS_FILE);
    let known_path = dir.join(KNOWN_HOSTS_FILE);
    let instances = ctx.store.list()?;
    let identity = ctx.settings.file.ssh_key_path.clone().or_else(|| {
        let own = dir.join("id_ed25519");
        own.is_file().then_some(own)
    });

    let mut hosts =
        String::from("# Written by `spuff ssh-config`; rewritten each time. Do not edit.\n");
    let mut known = String::from("# Host keys spuff generated for its VMs (pinned).\n");
    for instance in &instances {
        let Some(ip) = instance.address() else {
            continue;
        };
        let _ = writeln!(hosts, "\nHost {}", instance.name);
        let _ = writeln!(hosts, "  HostName {ip}");
        let _ = writeln!(hosts, "  Port {}", instance.ssh_port);
        let _ = writeln!(hosts, "  User {}", instance.ssh_user);
        let _ = writeln!(hosts, "  UserKnownHostsFile \"{}\"", known_path.display());
        let _ = writeln!(hosts, "  StrictHostKeyChecking yes");
        let _ = writeln!(hosts, "  ForwardAgent yes");
        if let Some(identity) = &identity {
            let _ = writeln!(hosts, "  IdentityFile \"{}\"", identity.display());
        }
        let host = if instance.ssh_port == 22 {
            ip.to_string()
        } else {
            format!("[{ip}]:{}", instance.ssh_port)
        };
        let _ = writeln!(known, "{host} {}", instance.host_key.trim());
    }
    write_private(&hosts_path, &hosts)?;
    write_private(&known_path, &known)?;
    ctx.ui.success(format!(
        "wrote {} ({} hosts) and {}",
        hosts_path.display(),
        instances.len(),
        known_path.display()
    ));

    if args.no_include {
        return Ok(0);
    }
    let user_config = spuff::paths::user_known_hosts()?
        .parent()
        .map(|d| d.join("config"))
        .context("cannot tell where ~/.ssh/config is")?;
    let include = format!("Include \"{}\"", hosts_path.display());
    let current = std::fs::read_to_string(&user_config).unwrap_or_default();
    if current.lines().any(|l| l.trim() == include) {
        return Ok(0);
    }
    let consent = args.include
        || (ctx.ui.interactive()
            && ctx.ui.confirm(
                &format!("Add `{include}` to the top of {}?", user_config.display()),
                false,
            )?);
    if !consent {
        ctx.ui.info(format!(
            "To use it, add this line to the top of {}:\n  {include}",
            user_config.display()
        ));
        return Ok(0);
    }
    // At the top: an Include after a Host line would apply only to that host.
    let updated = format!("# Added by spuff\n{include}\n\n{current}");
    write_keeping_mode(&user_config, &updated)?;
    ctx.ui.success(format!(
        "added the Include line to {}",
        user_config.display()
    ));
    Ok(0)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn write_keeping_mode(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
