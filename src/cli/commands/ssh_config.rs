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
        // Off unless asked: plain `ssh` (and VS Code) sessions would
        // otherwise hand every VM the user's agent silently.
        let forward = if args.forward_agent { "yes" } else { "no" };
        let _ = writeln!(hosts, "  ForwardAgent {forward}");
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
    // Read exactly, or not at all: a file that cannot be read (or holds
    // bytes that are not UTF-8) must never be replaced by a guess (issue 13).
    let current = match std::fs::read(&user_config) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!(
            "cannot read {} ({e}), so it is left as it is; add this line to its top yourself:\n  {include}",
            user_config.display()
        ),
    };
    if has_line(&current, &include) {
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
    let backup = prepend(&user_config, &current, &include)?;
    ctx.ui.success(format!(
        "added the Include line to {}{}",
        user_config.display(),
        backup
            .map(|b| format!(" (the previous file is {})", b.display()))
            .unwrap_or_default()
    ));
    Ok(0)
}

/// Whether `text` has `line` as one of its lines (surrounding blanks aside).
fn has_line(text: &[u8], line: &str) -> bool {
    text.split(|b| *b == b'\n')
        .any(|l| l.trim_ascii() == line.as_bytes())
}

/// Puts `include` at the top of the user's ssh config (an Include after a
/// Host line would apply only to that host), keeping every byte of
/// `current` after it. The file is replaced in one rename, with the old one
/// kept beside it (`config.spuff-backup`) and its mode kept; a symlinked
/// config (dotfiles) is written where the link points, the link kept.
/// Returns the backup's path, if there was a file to back up.
fn prepend(path: &Path, current: &[u8], include: &str) -> anyhow::Result<Option<PathBuf>> {
    let path = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_symlink() => std::fs::canonicalize(path)
            .with_context(|| format!("cannot follow the link {}", path.display()))?,
        _ => path.to_path_buf(),
    };
    let dir = path.parent().context("the ssh config has no directory")?;
    std::fs::create_dir_all(dir)?;
    let existed = path.exists();
    let mut updated = format!("# Added by spuff\n{include}\n\n").into_bytes();
    updated.extend_from_slice(current);

    let backup = existed.then(|| PathBuf::from(format!("{}.spuff-backup", path.display())));
    if let Some(backup) = &backup {
        std::fs::copy(&path, backup)
            .with_context(|| format!("cannot back {} up; it is left as it is", path.display()))?;
    }
    #[cfg(unix)]
    // OpenSSH refuses a config others can write; a new one is private.
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&path).map_or(0o600, |m| m.permissions().mode() & 0o777)
    };
    #[cfg(not(unix))]
    let mode = 0o600;
    replace_file(&path, &updated, mode)
        .with_context(|| format!("cannot write {}; it is left as it is", path.display()))?;
    Ok(backup)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    replace_file(path, text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Replaces `path` with `bytes` in one rename: a reader sees the old file
/// or the new one, never a part. The new file gets `mode` (Unix) from its
/// creation on, so it is never readable by others, even for a moment; the
/// temporary file is removed if anything fails.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.spuff-tmp", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = (|| {
        let mut file = opts.open(&tmp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
#[path = "../../fuzz_mutator.rs"]
mod mutator;

#[cfg(test)]
mod tests {
    use super::*;

    const INCLUDE: &str = "Include \"/home/u/.config/spuff/ssh_config\"";

    /// The rewrite of a user's ssh config under random bytes (issue 13's
    /// fuzzing, briefly on stable): every byte is kept after the Include,
    /// the Include is found again, and a second run changes nothing.
    #[test]
    fn any_config_bytes_should_survive_the_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        let seeds: Vec<Vec<u8>> = vec![
            b"Host *\n  ForwardAgent no\n".to_vec(),
            b"Include ~/.ssh/other\r\nHost a\r\n\tUser caf\xe9\r\n".to_vec(),
            format!("  {INCLUDE}  \n").into_bytes(),
            Vec::new(),
        ];
        mutator::run(&seeds, 2_000, |current| {
            let _ = std::fs::remove_file(&config);
            if has_line(current, INCLUDE) {
                return;
            }
            std::fs::write(&config, current).expect("write");
            prepend(&config, current, INCLUDE).expect("prepend");
            let after = std::fs::read(&config).expect("read");
            assert!(after.ends_with(current));
            assert!(has_line(&after, INCLUDE));
        });
    }

    /// Issue 13: bytes spuff does not understand are kept, exactly.
    #[test]
    fn prepend_should_keep_every_byte_and_a_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        let original: &[u8] = b"Host old\n  User caf\xe9\n\xff\xfe not utf-8\n";
        std::fs::write(&config, original).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640))
                .expect("chmod");
        }
        let backup = prepend(&config, original, INCLUDE).expect("prepend");
        let written = std::fs::read(&config).expect("read");
        let mut expected = format!("# Added by spuff\n{INCLUDE}\n\n").into_bytes();
        expected.extend_from_slice(original);
        assert_eq!(written, expected);
        assert!(has_line(&written, INCLUDE));
        let backup = backup.expect("a backup");
        assert_eq!(std::fs::read(backup).expect("backup"), original);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o640, "the mode is kept");
        }
        assert!(!dir.path().join("config.spuff-tmp").exists());
    }

    /// A config that is a link (dotfiles) stays a link; its target changes.
    #[cfg(unix)]
    #[test]
    fn prepend_should_write_through_a_symlinked_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("dotfiles-ssh-config");
        std::fs::write(&real, "Host a\n").expect("write");
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        prepend(&link, b"Host a\n", INCLUDE).expect("prepend");
        assert!(std::fs::symlink_metadata(&link).expect("link").is_symlink());
        let text = std::fs::read_to_string(&real).expect("read");
        assert!(
            text.starts_with("# Added by spuff\n") && text.ends_with("Host a\n"),
            "{text}"
        );
    }

    #[test]
    fn a_new_config_should_be_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("ssh").join("config");
        assert_eq!(prepend(&config, b"", INCLUDE).expect("prepend"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
