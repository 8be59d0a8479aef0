//! Snapshots of local VMs: a standalone copy of the VM's disk (and its
//! kernel, for direct-kernel images) in its own folder, that `up --snapshot`
//! boots a new VM from.
//!
//! A running VM is copied by QEMU itself (QMP `drive-backup`, a
//! point-in-time copy while the guest runs, like a cloud's live snapshot);
//! a stopped one by `qemu-img convert`. Either way the copy holds the whole
//! disk, so it outlives the VM and the base image cache. It is written into
//! a `.tmp` folder and renamed when complete, so a snapshot that `list`
//! shows is always whole.

use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::qemu::Qemu;
use super::vm::{Boot, Meta, VmDir, host_error};
use crate::provider::{ProviderError, ProviderResult, Snapshot};

const META: &str = "snapshot.json";
const DISK: &str = "disk.qcow2";

/// How long a copy may take (a 20 GB disk under load).
#[cfg(unix)]
const COPY_TIMEOUT: Duration = Duration::from_secs(3600);

/// A snapshot's facts, in `snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapMeta {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_at: String,
    pub(crate) source_vm: String,
    /// How the disk boots; kernel paths point into the snapshot's folder.
    pub(crate) boot: Boot,
    pub(crate) size_bytes: u64,
}

/// A snapshot's folder, read.
#[derive(Debug, Clone)]
pub(crate) struct Snap {
    pub(crate) path: PathBuf,
    pub(crate) meta: SnapMeta,
}

impl Snap {
    pub(crate) fn disk(&self) -> PathBuf {
        self.path.join(DISK)
    }

    fn public(&self) -> Snapshot {
        Snapshot {
            id: self.meta.id.clone(),
            name: self.meta.name.clone(),
            created_at: Some(self.meta.created_at.clone()),
            size_gb: Some(self.meta.size_bytes as f64 / 1e9),
            regions: vec![super::REGION.into()],
            source_instance: Some(self.meta.source_vm.clone()),
        }
    }
}

fn read(path: &Path) -> Option<Snap> {
    let text = std::fs::read(path.join(META)).ok()?;
    let meta: SnapMeta = serde_json::from_slice(&text).ok()?;
    Some(Snap {
        path: path.to_path_buf(),
        meta,
    })
}

/// Every complete snapshot, oldest first.
pub(crate) fn list(dir: &Path) -> ProviderResult<Vec<Snapshot>> {
    let mut snaps: Vec<Snap> = super::read_dir_names(dir)?
        .iter()
        .filter(|n| !n.ends_with(".tmp"))
        .filter_map(|n| read(&dir.join(n)))
        .collect();
    snaps.sort_by(|a, b| a.meta.created_at.cmp(&b.meta.created_at));
    Ok(snaps.iter().map(Snap::public).collect())
}

/// The snapshot with this id, or else the one snapshot with this name.
pub(crate) fn find(dir: &Path, id_or_name: &str) -> ProviderResult<Snap> {
    if super::check_id("snapshot id", id_or_name).is_ok()
        && let Some(snap) = read(&dir.join(id_or_name))
    {
        return Ok(snap);
    }
    let named: Vec<Snap> = super::read_dir_names(dir)?
        .iter()
        .filter(|n| !n.ends_with(".tmp"))
        .filter_map(|n| read(&dir.join(n)))
        .filter(|s| s.meta.name == id_or_name)
        .collect();
    match named.len() {
        1 => Ok(named.into_iter().next().unwrap_or_else(|| unreachable!())),
        0 => Err(ProviderError::NotFound {
            provider: super::NAME,
            resource: "snapshot",
            id: id_or_name.to_string(),
        }),
        n => Err(super::invalid(
            "snapshot",
            format!("{n} snapshots are named {id_or_name:?}: give its id (`spuff snapshot list`)"),
        )),
    }
}

/// Copies VM `vm`'s disk into a new snapshot named `name`.
pub(crate) async fn create(
    dir: &Path,
    vm: &VmDir,
    meta: &Meta,
    qemu: &Qemu,
    name: &str,
) -> ProviderResult<Snapshot> {
    let id = format!("snap-{}", &crate::provider::new_spuff_id()[..12]);
    let tmp = dir.join(format!("{id}.tmp"));
    let done = dir.join(&id);
    std::fs::create_dir_all(&tmp)
        .map_err(|e| host_error("creating a snapshot", format!("{}: {e}", tmp.display())))?;
    let result = async {
        let boot = copy_boot(&meta.boot, &tmp, &done)?;
        let target = tmp.join(DISK);
        if vm.running_pid().is_some() {
            live_copy(vm, &target).await?;
        } else {
            qemu.img(
                &[
                    "convert".into(),
                    "-O".into(),
                    "qcow2".into(),
                    vm.disk().into(),
                    target.clone().into(),
                ],
                "copying the VM's disk",
            )
            .await?;
        }
        let snap = SnapMeta {
            id: id.clone(),
            name: name.to_string(),
            created_at: crate::agent::api::Timestamp::now().to_string(),
            source_vm: meta.id.clone(),
            boot,
            size_bytes: std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0),
        };
        std::fs::write(
            tmp.join(META),
            serde_json::to_vec_pretty(&snap).unwrap_or_default(),
        )
        .and_then(|()| std::fs::rename(&tmp, &done))
        .map_err(|e| host_error("creating a snapshot", format!("{}: {e}", done.display())))?;
        Ok(Snap {
            path: done.clone(),
            meta: snap,
        }
        .public())
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// A direct-kernel VM's kernel and initrd go with its snapshot, so the
/// snapshot boots after the image they came from is gone.
fn copy_boot(boot: &Boot, tmp: &Path, done: &Path) -> ProviderResult<Boot> {
    let Boot::Kernel {
        kernel,
        initrd,
        cmdline,
    } = boot
    else {
        return Ok(Boot::Disk);
    };
    let copy = |from: &Path, name: &str| -> ProviderResult<PathBuf> {
        std::fs::copy(from, tmp.join(name))
            .map_err(|e| host_error("creating a snapshot", format!("{}: {e}", from.display())))?;
        Ok(done.join(name))
    };
    Ok(Boot::Kernel {
        kernel: copy(kernel, "vmlinuz")?,
        initrd: initrd
            .as_deref()
            .map(|i| copy(i, "initrd.img"))
            .transpose()?,
        cmdline: cmdline.clone(),
    })
}

/// A point-in-time copy of a running VM's disk, made by its QEMU.
#[cfg(unix)]
async fn live_copy(vm: &VmDir, target: &Path) -> ProviderResult<()> {
    use serde_json::json;
    let fail = |m: String| host_error("copying the running VM's disk", m);
    let mut qmp = vm.qmp().await?;
    let job = "spuff-snapshot";
    qmp.execute(
        "drive-backup",
        Some(json!({
            "job-id": job,
            "device": "root",
            "target": target.to_string_lossy(),
            "sync": "full",
            "format": "qcow2",
            "auto-dismiss": false,
        })),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let jobs = qmp
            .execute("query-jobs", None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let this = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["id"] == job))
            .cloned();
        let Some(this) = this else {
            return Err(fail("QEMU lost the copy job".into()));
        };
        if this["status"] == "concluded" {
            let _ = qmp.execute("job-dismiss", Some(json!({ "id": job }))).await;
            return match this.get("error").and_then(serde_json::Value::as_str) {
                Some(e) => Err(fail(crate::util::terminal_safe(e).into_owned())),
                None => Ok(()),
            };
        }
        if started.elapsed() > COPY_TIMEOUT {
            let _ = qmp.execute("job-cancel", Some(json!({ "id": job }))).await;
            return Err(fail(format!(
                "not finished after {}",
                crate::util::fmt_duration(COPY_TIMEOUT)
            )));
        }
    }
}

#[cfg(not(unix))]
async fn live_copy(_vm: &VmDir, _target: &Path) -> ProviderResult<()> {
    Err(host_error(
        "copying the running VM's disk",
        "not supported on this platform",
    ))
}
