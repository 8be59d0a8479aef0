//! The local provider: VMs on this machine with QEMU and cloud-init, for a
//! user without a cloud account and for proving the whole product on a real
//! VM in CI.
//!
//! It is a [`Provider`] like the clouds, so `up`, `list`, `down` and
//! snapshots work unchanged; only the mechanics differ. A VM is a QEMU
//! process booting a thin qcow2 overlay on a shared, cached base image, with
//! a NoCloud seed ([`cloudinit::nocloud`](crate::cloudinit::nocloud))
//! carrying the user-data and user-mode networking forwarding a free
//! 127.0.0.1 port to the guest's SSH port, which is the VM's
//! [`SshEndpoint`]. Everything about a VM lives in its own folder
//! (`vm.rs`): `list` reads the folders, so it finds running and stopped VMs
//! alike, and nothing outside them is needed to clean up.
//!
//! - [`accel`]: KVM/HVF only where they really work, else TCG, said out loud.
//! - [`qemu`]: finding QEMU and `qemu-img`, with install commands.
//! - [`qmp`]: the QEMU Machine Protocol client (power down, backups).
//! - [`process`]: recognising a VM's QEMU by its disk before any signal.
//! - [`image`]: the official cloud images, downloaded once and verified.
//!
//! Base images are either a disk with its own bootloader (the official
//! cloud images, or any qcow2 given with `--image FILE`) or a folder built
//! by `ci/build-image.sh` (`base.qcow2`, `vmlinuz`, `initrd.img`,
//! `cmdline`: a bare filesystem booted with QEMU's direct kernel boot).

pub mod accel;
pub mod image;
pub mod process;
pub mod qemu;
pub mod qmp;
mod snapshot;
mod vm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::vm::{Boot, Meta, Stop, VmDir, host_error};
use super::{
    HttpConfig, ImageSpec, InstanceRequest, InstanceStatus, Listing, MANAGED_LABEL, Provider,
    ProviderConfig, ProviderError, ProviderFactory, ProviderInfo, ProviderInstance, ProviderResult,
    ProviderType, RegionInfo, SPUFF_ID_LABEL, SizeInfo, Snapshot, SshEndpoint, SshKeyInfo,
};

/// The provider's canonical name.
pub const NAME: &str = "local";

/// The one region: this machine.
pub const REGION: &str = "local";

/// The size `up` picks when none is given.
pub const DEFAULT_SIZE: &str = "medium";

/// The disk size a VM sees at least (the base image's own size if larger);
/// the overlay only takes what the guest writes, and cloud-init grows the
/// root filesystem at first boot.
pub const DISK_SIZE: u64 = 20 * 1024 * 1024 * 1024;

/// The sizes: (slug, vCPUs, memory MiB).
pub const SIZES: &[(&str, u32, u32)] = &[
    ("small", 1, 1024),
    ("medium", 2, 2048),
    ("large", 4, 4096),
    ("xlarge", 8, 8192),
];

/// Whether a local VM may reach the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalNetwork {
    /// QEMU's user-mode NAT: the guest reaches what this machine reaches.
    #[default]
    Nat,
    /// No traffic leaves the guest except the forwarded SSH port (QEMU's
    /// `restrict=on`): for untrusted code, and for tests that must not
    /// depend on the internet.
    Isolated,
}

impl std::str::FromStr for LocalNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nat" | "on" | "open" => Ok(LocalNetwork::Nat),
            "isolated" | "off" | "none" => Ok(LocalNetwork::Isolated),
            other => Err(format!(
                "`{other}` is not a network mode: use nat or isolated"
            )),
        }
    }
}

/// The local provider's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalConfig {
    /// Where VMs, images and snapshots live; `local` in spuff's data
    /// directory by default.
    pub dir: Option<PathBuf>,
    /// The `qemu-system-*` program; found in `PATH` by default.
    pub qemu: Option<PathBuf>,
    /// The guest's network.
    pub network: LocalNetwork,
}

impl LocalConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Registers the local provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl ProviderFactory for Factory {
    fn info(&self) -> &'static ProviderInfo {
        ProviderType::Local.info()
    }

    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>> {
        Ok(Arc::new(LocalProvider::new(config.local, config.http)?))
    }
}

/// VMs on this machine (see the module docs).
#[derive(Debug, Clone)]
pub struct LocalProvider {
    dir: PathBuf,
    config: LocalConfig,
    http: HttpConfig,
}

impl LocalProvider {
    /// A provider keeping its files in `config.dir` (spuff's data directory
    /// by default).
    ///
    /// # Errors
    /// [`ProviderError::Host`] when there is no data directory.
    pub fn new(config: LocalConfig, http: HttpConfig) -> ProviderResult<Self> {
        let dir = match &config.dir {
            Some(dir) => dir.clone(),
            None => crate::paths::data_dir()
                .map_err(|e| host_error("finding spuff's data directory", e.to_string()))?
                .join("local"),
        };
        Ok(LocalProvider { dir, config, http })
    }

    /// The folder holding VMs, images and snapshots.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of downloaded base images.
    pub fn image_dir(&self) -> PathBuf {
        self.dir.join("images")
    }

    fn vms_dir(&self) -> PathBuf {
        self.dir.join("vms")
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The folder of VM `id`, refusing ids that are not one plain name.
    fn vm(&self, id: &str) -> ProviderResult<VmDir> {
        check_id("VM id", id)?;
        Ok(VmDir {
            path: self.vms_dir().join(id),
        })
    }

    /// How this machine will run VMs, and why (for the user to see).
    pub fn acceleration(&self) -> accel::Accel {
        accel::choose(&accel::HostFacts::probe())
    }

    /// Makes sure the official image for `spec` is downloaded and verified,
    /// reporting progress; `up` calls it first so the download is shown.
    /// Other images need nothing.
    ///
    /// # Errors
    /// As [`image::ensure`].
    pub async fn prepare_image(
        &self,
        spec: &ImageSpec,
        progress: &(dyn Fn(image::DownloadProgress) + Send + Sync),
    ) -> ProviderResult<()> {
        if let Some(official) = official_image(spec)? {
            image::ensure(&official, &self.image_dir(), &self.http, progress)
                .await
                .map_err(image_error)?;
        }
        Ok(())
    }

    /// The base disk and boot method for `spec`, with a label for people.
    async fn resolve(&self, spec: &ImageSpec) -> ProviderResult<(PathBuf, Boot, String)> {
        if let Some(official) = official_image(spec)? {
            let path = image::ensure(&official, &self.image_dir(), &self.http, &|_| {})
                .await
                .map_err(image_error)?;
            return Ok((path, Boot::Disk, spec.to_string()));
        }
        match spec {
            ImageSpec::Snapshot(id) => {
                let snap = snapshot::find(&self.snapshots_dir(), id)?;
                Ok((
                    snap.disk(),
                    snap.meta.boot.clone(),
                    format!("snapshot {id}"),
                ))
            }
            ImageSpec::Custom(path) => {
                let path = std::path::absolute(Path::new(path))
                    .map_err(|e| invalid("image", format!("{path}: {e}")))?;
                if path.is_dir() {
                    built_image(&path)
                } else if path.is_file() {
                    Ok((path.clone(), Boot::Disk, path.display().to_string()))
                } else {
                    Err(invalid(
                        "image",
                        format!(
                            "{} does not exist: give a disk image file, a folder made by ci/build-image.sh, or ubuntu/debian",
                            path.display()
                        ),
                    ))
                }
            }
            _ => Err(invalid("image", format!("{spec} is not available locally"))),
        }
    }

    fn instance(&self, dir: &VmDir, meta: &Meta) -> ProviderInstance {
        let running = dir.running_pid().is_some();
        let ssh = (running && meta.ssh_port != 0).then(|| SshEndpoint {
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            port: meta.ssh_port,
            user: None,
        });
        ProviderInstance {
            id: meta.id.clone(),
            name: meta.name.clone(),
            public_ipv4: None,
            public_ipv6: None,
            private_ipv4: None,
            status: if running {
                InstanceStatus::Active
            } else {
                InstanceStatus::Off
            },
            region: REGION.into(),
            size: meta.size.clone(),
            created_at: Some(meta.created_at.clone()),
            labels: meta.labels.clone(),
            ssh,
        }
    }

    async fn qemu(&self) -> ProviderResult<qemu::Qemu> {
        if cfg!(windows) {
            return Err(ProviderError::Host {
                provider: NAME,
                operation: "starting a local VM".into(),
                message: "local VMs are not supported on Windows in this build yet".into(),
                detail: None,
                hint: Some(
                    "use a cloud provider: `spuff up --provider hetzner` (or digitalocean)".into(),
                ),
            });
        }
        qemu::Qemu::find(self.config.qemu.as_deref()).await
    }

    /// Creates the folder, disk and seed of a new VM and starts it.
    async fn create(
        &self,
        request: &InstanceRequest,
        dir: &VmDir,
    ) -> ProviderResult<ProviderInstance> {
        let (cpus, memory_mib) = size(&request.size)?;
        let qemu = self.qemu().await?;
        let (base, boot, image) = self.resolve(&request.image).await?;
        vm::check_path(&dir.path)?;
        create_private_dir(&dir.path)?;
        let mut labels = request.labels.clone();
        labels.insert(MANAGED_LABEL.into(), String::new());
        labels.insert(SPUFF_ID_LABEL.into(), request.spuff_id.clone());
        let mut meta = Meta {
            id: dir
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            name: request.name.clone(),
            labels,
            created_at: crate::agent::api::Timestamp::now().to_string(),
            size: request.size.clone(),
            cpus,
            memory_mib,
            boot,
            image,
            base: base.clone(),
            ssh_port: 0,
            network: self.config.network,
        };
        // Recorded before anything else, so `list` sees even a VM whose
        // creation was cut short, and `down` removes it.
        dir.write_meta(&meta)?;

        let info = qemu.info(&base).await?;
        qemu.img(
            &[
                "create".into(),
                "-q".into(),
                "-f".into(),
                "qcow2".into(),
                "-F".into(),
                info.format.clone().into(),
                "-b".into(),
                base.clone().into(),
                dir.disk().into(),
                // Asked for (`up --disk`), else the default; never
                // smaller than the image.
                info.virtual_size
                    .max(
                        request
                            .disk_gb
                            .map_or(DISK_SIZE, |gb| gb.saturating_mul(1 << 30)),
                    )
                    .to_string()
                    .into(),
            ],
            "creating the VM's disk",
        )
        .await?;
        let user_data = request.user_data.as_deref().unwrap_or("#cloud-config\n");
        let seed = crate::cloudinit::nocloud::Seed {
            user_data: user_data.as_bytes(),
            // A fresh instance id per VM makes cloud-init run again on a
            // disk made from a snapshot.
            meta_data: crate::cloudinit::nocloud::meta_data(
                &format!("spuff-{}", super::new_spuff_id()),
                &request.name,
            ),
            network_config: None,
        };
        let seed_path = dir.file(vm::SEED);
        seed.write(&seed_path).map_err(|e| {
            host_error(
                "writing the VM's cloud-init seed",
                format!("{}: {e}", seed_path.display()),
            )
        })?;
        let accel = self.acceleration();
        dir.start(&qemu, &accel, &mut meta).await?;
        Ok(self.instance(dir, &meta))
    }
}

/// Creates a VM's folder, readable by the user only: the seed holds the
/// VM's host key and agent token, the console may show secrets.
fn create_private_dir(path: &Path) -> ProviderResult<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|e| host_error("creating a local VM", format!("{}: {e}", path.display())))
}

/// A folder from `ci/build-image.sh`: its disk, kernel, initrd and command
/// line.
fn built_image(dir: &Path) -> ProviderResult<(PathBuf, Boot, String)> {
    let need = |name: &str| {
        let path = dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(invalid(
                "image",
                format!(
                    "{} has no {name}: an image folder holds base.qcow2, vmlinuz, initrd.img and cmdline (made by ci/build-image.sh)",
                    dir.display()
                ),
            ))
        }
    };
    let base = need("base.qcow2")?;
    let kernel = need("vmlinuz")?;
    let cmdline = std::fs::read_to_string(need("cmdline")?)
        .map_err(|e| invalid("image", format!("{}: {e}", dir.join("cmdline").display())))?
        .trim()
        .to_string();
    let initrd = Some(dir.join("initrd.img")).filter(|p| p.is_file());
    Ok((
        base,
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        },
        dir.display().to_string(),
    ))
}

/// The official cloud image for `spec`, or `None` for other specs.
fn official_image(spec: &ImageSpec) -> ProviderResult<Option<image::CloudImage>> {
    let (os, version) = match spec {
        ImageSpec::Ubuntu(v) => (image::Os::Ubuntu, v),
        ImageSpec::Debian(v) => (image::Os::Debian, v),
        _ => return Ok(None),
    };
    image::official(os, version, image::Arch::host().map_err(image_error)?)
        .map(Some)
        .map_err(image_error)
}

fn image_error(e: image::Error) -> ProviderError {
    let hint = crate::Hint::hint(&e);
    ProviderError::Host {
        provider: NAME,
        operation: "getting the base image".into(),
        message: e.to_string(),
        detail: None,
        hint,
    }
}

fn invalid(field: &str, message: String) -> ProviderError {
    ProviderError::InvalidConfig {
        provider: NAME,
        field: field.into(),
        message,
    }
}

/// Ids become folder names: one plain name, nothing that climbs out.
fn check_id(what: &str, id: &str) -> ProviderResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid(what, format!("{id:?} is not a local {what}")))
    }
}

/// vCPUs and memory of a size slug.
fn size(slug: &str) -> ProviderResult<(u32, u32)> {
    SIZES
        .iter()
        .find(|(s, ..)| *s == slug)
        .map(|(_, cpus, mem)| (*cpus, *mem))
        .ok_or_else(|| {
            let names: Vec<&str> = SIZES.iter().map(|(s, ..)| *s).collect();
            invalid(
                "size",
                format!("unknown size `{slug}`; local sizes: {}", names.join(", ")),
            )
        })
}

fn read_dir_names(dir: &Path) -> ProviderResult<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| check_id("id", n).is_ok())
                .collect();
            names.sort();
            Ok(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(host_error(
            "listing local VMs",
            format!("{}: {e}", dir.display()),
        )),
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    /// The VM is `qemu-system-x86_64`'s, whatever this machine is.
    fn arch_of_size(&self, _size: &str) -> Option<crate::agent_bin::Arch> {
        Some(crate::agent_bin::Arch::X86_64)
    }

    fn info(&self) -> &'static ProviderInfo {
        ProviderType::Local.info()
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        if request.spot.is_some() {
            return Err(self.unsupported("spot instances"));
        }
        if !crate::location::is_instance_name(&request.name) {
            return Err(invalid(
                "name",
                format!(
                    "{:?}: use 1-63 lowercase letters, digits and '-'",
                    request.name
                ),
            ));
        }
        check_id("spuff id", &request.spuff_id)?;
        let short: String = request.spuff_id.chars().take(8).collect();
        let dir = self.vm(&format!("{}-{short}", request.name))?;
        if let Ok(meta) = dir.meta()
            && meta.labels.get(SPUFF_ID_LABEL) == Some(&request.spuff_id)
            && dir.running_pid().is_some()
        {
            // The same request again: it is this VM.
            return Ok(self.instance(&dir, &meta));
        }
        if dir.path.exists() {
            return Err(invalid(
                "name",
                format!("{} exists already", dir.path.display()),
            ));
        }
        match self.create(request, &dir).await {
            Ok(instance) => Ok(instance),
            Err(e) => {
                // Nothing runs (the start is the last step): a half-made VM
                // is only files, removed so no folder is left behind.
                if dir.running_pid().is_none() {
                    let _ = std::fs::remove_dir_all(&dir.path);
                }
                Err(e)
            }
        }
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let dir = self.vm(id)?;
        if !dir.path.exists() {
            return Ok(());
        }
        dir.stop(Stop::Quit, Duration::from_secs(10)).await?;
        std::fs::remove_dir_all(&dir.path).map_err(|e| {
            host_error(
                "removing a local VM",
                format!("{}: {e}", dir.path.display()),
            )
        })
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let dir = self.vm(id)?;
        if !dir.path.exists() {
            return Ok(None);
        }
        Ok(Some(self.instance(&dir, &dir.meta()?)))
    }

    async fn list_instances(&self) -> ProviderResult<Listing> {
        let mut listing = Listing::default();
        for id in read_dir_names(&self.vms_dir())? {
            let dir = self.vm(&id)?;
            match dir.meta() {
                Ok(meta) => listing.instances.push(self.instance(&dir, &meta)),
                Err(e) => listing.skipped.push(super::Skipped {
                    resource: "VM",
                    id: Some(id),
                    name: None,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(listing)
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        let dir = self.vm(id)?;
        let instance = self
            .get_instance(id)
            .await?
            .ok_or_else(|| ProviderError::NotFound {
                provider: NAME,
                resource: "VM",
                id: id.to_string(),
            })?;
        if instance.is_ready() {
            return Ok(instance);
        }
        Err(ProviderError::Host {
            provider: NAME,
            operation: format!("waiting for {id}"),
            message: "QEMU is not running".into(),
            detail: dir.console_tail(vm::CONSOLE_TAIL_LINES),
            hint: Some(format!(
                "its console log is {}",
                dir.file(vm::CONSOLE).display()
            )),
        })
    }

    async fn console_tail(&self, id: &str) -> Option<(String, PathBuf)> {
        let dir = self.vm(id).ok()?;
        Some((
            dir.console_tail(vm::CONSOLE_TAIL_LINES)?,
            dir.file(vm::CONSOLE),
        ))
    }

    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let dir = self.vm(instance_id)?;
        let meta = dir.meta()?;
        let qemu = self.qemu().await?;
        snapshot::create(&self.snapshots_dir(), &dir, &meta, &qemu, name).await
    }

    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        snapshot::list(&self.snapshots_dir())
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        check_id("snapshot id", id)?;
        let path = self.snapshots_dir().join(id);
        if !path.exists() {
            return Ok(());
        }
        // A VM made from the snapshot boots from it (its disk's backing
        // file): refuse rather than break it.
        for vm_id in read_dir_names(&self.vms_dir())? {
            if let Ok(meta) = self.vm(&vm_id)?.meta()
                && meta.base.starts_with(&path)
            {
                return Err(ProviderError::Host {
                    provider: NAME,
                    operation: format!("deleting snapshot {id}"),
                    message: format!("VM {} was made from it and boots from its disk", meta.name),
                    detail: None,
                    hint: Some(format!(
                        "destroy {} first (`spuff down {}`)",
                        meta.name, meta.name
                    )),
                });
            }
        }
        std::fs::remove_dir_all(&path)
            .map_err(|e| host_error("deleting a snapshot", format!("{}: {e}", path.display())))
    }

    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        self.vm(id)?
            .stop(Stop::PowerDown, Duration::from_secs(60))
            .await
    }

    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        let dir = self.vm(id)?;
        if dir.running_pid().is_some() {
            return Ok(());
        }
        dir.clear_stale();
        let mut meta = dir.meta()?;
        let qemu = self.qemu().await?;
        dir.start(&qemu, &self.acceleration(), &mut meta).await?;
        Ok(())
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        // No account: keys reach the VM through the user-data only.
        Ok(Vec::new())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let fingerprint = super::md5_fingerprint(public_key)
            .ok_or_else(|| invalid("ssh key", "not an OpenSSH public key".into()))?;
        Ok(SshKeyInfo {
            id: fingerprint.clone(),
            name: name.to_string(),
            fingerprint,
        })
    }

    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        Ok(SIZES
            .iter()
            .map(|(slug, cpus, mem)| SizeInfo {
                slug: (*slug).into(),
                vcpus: *cpus,
                memory_mb: u64::from(*mem),
                disk_gb: DISK_SIZE / (1024 * 1024 * 1024),
                price_monthly: Some(0.0),
                regions: vec![REGION.into()],
                available: true,
            })
            .collect())
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        Ok(vec![RegionInfo {
            slug: REGION.into(),
            name: "this machine".into(),
            available: true,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_should_be_one_plain_name() {
        for bad in ["", "..", ".x", "a/b", "a\\b", "A", "/etc", "a b"] {
            assert!(check_id("id", bad).is_err(), "{bad:?}");
        }
        for good in ["spuff-1a2b3c-0123abcd", "snap-0123456789ab"] {
            assert!(check_id("id", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn sizes_should_be_known_or_listed() {
        assert_eq!(size("medium").ok(), Some((2, 2048)));
        let e = size("huge").expect_err("unknown");
        assert!(e.to_string().contains("small, medium, large"), "{e}");
    }

    #[test]
    fn an_image_folder_should_need_its_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let e = built_image(dir.path()).expect_err("empty folder");
        assert!(e.to_string().contains("base.qcow2"), "{e}");
        for f in ["base.qcow2", "vmlinuz", "initrd.img"] {
            std::fs::write(dir.path().join(f), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(dir.path().join("cmdline"), "root=/dev/vda rw\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let (base, boot, _) = built_image(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(base.ends_with("base.qcow2"));
        assert!(
            matches!(boot, Boot::Kernel { ref cmdline, initrd: Some(_), .. } if cmdline == "root=/dev/vda rw"),
            "{boot:?}"
        );
    }
}
