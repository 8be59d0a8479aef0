//! `spuff cp`: files and directories to or from a VM over SFTP, with a
//! progress bar; `NAME:path` on one side (`:path` means the active VM).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use spuff::location::{Location, PathStyle};
use spuff::sftp::{Progress, TransferOptions};

use super::context::Context;
use crate::cli::args::CpArgs;

pub(crate) async fn run(args: CpArgs, ctx: &Context) -> anyhow::Result<u8> {
    if args.all || args.fleet.is_some() {
        return super::fleet::cp_all(args, ctx).await;
    }
    let source = parse(&args.source, ctx)?;
    let destination = parse(&args.destination, ctx)?;
    let (instance_name, upload) = match (&source, &destination) {
        (Location::Local(_), Location::Remote { instance, .. }) => (instance.clone(), true),
        (Location::Remote { instance, .. }, Location::Local(_)) => (instance.clone(), false),
        (Location::Local(_), Location::Local(_)) => {
            anyhow::bail!(
                "both paths are local; name the VM on one side: NAME:path (or :path for the active VM)"
            )
        }
        (Location::Remote { .. }, Location::Remote { .. }) => {
            anyhow::bail!("copying between two VMs is not supported; copy through this machine")
        }
    };
    let instance = ctx.store.resolve(Some(&instance_name))?;
    let session = ctx.connect(&instance).await?;
    // The VM's agent cannot see this work: tell it the VM is in use.
    let _awake = super::context::keep_awake(&instance, &session, &ctx.ui);
    let sftp = session.sftp().await?;

    let bar = (!args.quiet).then(|| ctx.ui.transfer_bar());
    let mut options = TransferOptions::default();
    if let Some(bar) = &bar {
        let bar = bar.clone();
        options.progress = Some(Arc::new(move |p: Progress| {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(p.path);
        }));
    }

    let (bytes, what) = if upload {
        let (Location::Local(local), Location::Remote { path, .. }) = (&source, &destination)
        else {
            unreachable!("matched above")
        };
        let meta =
            std::fs::metadata(local).with_context(|| format!("cannot read {}", local.display()))?;
        let remote = remote_target(&sftp, path, local).await;
        let (bytes, tree) = if meta.is_dir() {
            let s = sftp.upload_dir(local, &remote, &options).await?;
            (s.bytes, Some(s))
        } else {
            (sftp.upload_file(local, &remote, &options).await?, None)
        };
        (
            bytes,
            format!(
                "{} → {}:{remote}{}",
                local.display(),
                instance.name,
                tree_note(tree)
            ),
        )
    } else {
        let (Location::Remote { path, .. }, Location::Local(local)) = (&source, &destination)
        else {
            unreachable!("matched above")
        };
        let meta = sftp.metadata(path).await?;
        let name = Path::new(path.trim_end_matches('/'))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("download"));
        let local = if local.is_dir() {
            local.join(name)
        } else {
            local.clone()
        };
        let (bytes, tree) = if meta.is_dir() {
            let s = sftp.download_dir(path, &local, &options).await?;
            (s.bytes, Some(s))
        } else {
            (sftp.download_file(path, &local, &options).await?, None)
        };
        (
            bytes,
            format!(
                "{}:{path} → {}{}",
                instance.name,
                local.display(),
                tree_note(tree)
            ),
        )
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let _ = session.close().await;
    if !args.quiet {
        ctx.ui
            .success(format!("copied {what} ({})", human_bytes(bytes)));
    }
    Ok(0)
}

/// What a tree copy did, for the closing line: counts, anything skipped,
/// and whether it went through one tar stream or file by file.
fn tree_note(summary: Option<spuff::sftp::TransferSummary>) -> String {
    let Some(s) = summary else {
        return String::new();
    };
    let count = |n: u64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let mut parts = vec![count(s.files, "file"), count(s.dirs, "dir")];
    if s.symlinks > 0 {
        parts.push(count(s.symlinks, "symlink"));
    }
    if s.skipped > 0 {
        parts.push(format!("{} skipped (see -v)", s.skipped));
    }
    let how = if s.streamed {
        "through tar"
    } else {
        "over SFTP"
    };
    format!(" ({}; {how})", parts.join(", "))
}

fn parse(input: &str, ctx: &Context) -> anyhow::Result<Location> {
    if let Some(path) = input.strip_prefix(':') {
        let instance = ctx.store.resolve(None)?;
        return Ok(Location::Remote {
            instance: instance.name,
            path: path.to_string(),
        });
    }
    Ok(Location::parse(input, PathStyle::native())?)
}

/// Where an upload lands: inside `path` when it is an existing directory (or
/// ends in `/`), as `cp` and `scp` do; else at `path`.
async fn remote_target(sftp: &spuff::sftp::Sftp, path: &str, local: &Path) -> String {
    let base = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_empty() {
        return base;
    }
    let is_dir = path.ends_with('/') || sftp.metadata(path).await.is_ok_and(|m| m.is_dir());
    if is_dir {
        format!("{}/{base}", path.trim_end_matches('/'))
    } else {
        path.to_string()
    }
}

pub(super) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
