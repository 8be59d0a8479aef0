//! Cloud providers: create, find, wait for and destroy spuff's VMs, and keep
//! their snapshots and SSH keys.
//!
//! Everything above this module (the CLI, `up`, `down`) talks to an
//! `Arc<dyn` [`Provider`]`>` made by a [`ProviderRegistry`], so adding a cloud
//! is one module and one registration line (see [`ProviderRegistry`]). Providers talk
//! HTTP through one pooled, retrying client ([`HttpConfig`]); they differ only in
//! URLs, JSON shapes and status names.
//!
//! ```no_run
//! # async fn demo() -> Result<(), spuff::provider::ProviderError> {
//! use spuff::provider::{ImageSpec, InstanceRequest, ProviderConfig, ProviderRegistry};
//!
//! let registry = ProviderRegistry::with_defaults();
//! let do_ = registry.create_by_name("do", ProviderConfig::new("dop_v1_…"))?;
//! let req = InstanceRequest::new("spuff-a1b2c3d4", "fra1", "s-2vcpu-4gb")
//!     .with_image(ImageSpec::ubuntu("24.04"));
//! let vm = do_.create_instance(&req).await?;
//! let vm = do_.wait_ready(&vm.id).await?;
//! println!("ssh root@{:?}", vm.public_ipv4);
//! do_.destroy_instance(&vm.id).await?;
//! # Ok(()) }
//! ```

pub mod aws;
pub mod digitalocean;
mod engine;
mod error;
mod factory;
#[cfg(any(test, fuzzing))]
pub(crate) mod fuzzing;
pub mod hetzner;
mod http;
mod info;
pub mod local;
pub mod proxmox;
mod registry;
mod types;

pub use error::{ProviderError, ProviderResult};
pub use factory::{ProviderConfig, ProviderFactory};
pub use http::{
    Auth, HttpConfig, HttpStats, ProxyConfig, RequestSigner, RetryPolicy, SignRequest,
    parse_sha256_fingerprint,
};
pub use info::{
    Capabilities, DefaultImage, Defaults, NoDefaults, PROVIDERS, ProviderInfo, ProviderType,
    UnknownProvider,
};
pub use registry::ProviderRegistry;
pub use types::{
    ImageSpec, InstanceRequest, InstanceStatus, Listing, ProviderInstance, ProviderTimeouts,
    RegionInfo, Resource, ResourceKind, SizeInfo, Skipped, Snapshot, SpotPrice, SpotRequest,
    SshEndpoint, SshKeyInfo, new_spuff_id,
};

/// The label (DigitalOcean: tag) every spuff VM carries, so that listing
/// never touches VMs spuff did not create.
pub const MANAGED_LABEL: &str = "spuff";

/// The label holding a VM's spuff id ([`InstanceRequest::spuff_id`]): how a
/// create whose answer was lost is found, and how `down` finds every VM of
/// a record (DigitalOcean: the tag `spuff-id:ID`).
pub const SPUFF_ID_LABEL: &str = "spuff-id";

/// The label naming the fleet a VM was created in (`spuff up --count`),
/// so that a fleet can be found again, listed and removed as one.
pub const FLEET_LABEL: &str = "spuff-fleet";

/// A label giving a VM's SSH port when it is not 22 (a custom image whose
/// sshd listens elsewhere).
pub const SSH_PORT_LABEL: &str = "spuff-ssh-port";

/// A label giving the user to log in as, when it is not the user-data's.
pub const SSH_USER_LABEL: &str = "spuff-ssh-user";

/// One cloud account, as spuff uses it.
///
/// Object safe (`Arc<dyn Provider>`); the async methods are boxed by
/// `async_trait` because native `async fn` in traits is not dyn-compatible
/// (docs/adr/0011-provider-trait-async-trait.md). Methods a cloud cannot do
/// return [`ProviderError::Unsupported`] by default.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The provider's static facts.
    fn info(&self) -> &'static ProviderInfo;

    /// The provider's canonical name (`digitalocean`).
    fn name(&self) -> &'static str {
        self.info().name
    }

    /// Creates a VM and returns it as first seen (usually without an IP yet).
    ///
    /// The VM carries [`MANAGED_LABEL`] and the request's spuff id
    /// ([`SPUFF_ID_LABEL`]). A create whose response was lost is not resent
    /// blindly: the provider looks for a VM with that spuff id, for as long
    /// as its listing may lag, and returns it if found. An error that
    /// [`is_retryable`](ProviderError::is_retryable) means a VM may exist
    /// anyway.
    ///
    /// # Errors
    /// [`ProviderError::InvalidConfig`] for unknown labels or images,
    /// [`ProviderError::QuotaExceeded`], and the usual API errors.
    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance>;

    /// Destroys a VM. Destroying one that is already gone succeeds.
    async fn destroy_instance(&self, id: &str) -> ProviderResult<()>;

    /// The VM with this id, or `None` if it does not exist.
    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>>;

    /// Every VM carrying [`MANAGED_LABEL`], across all pages; entries that
    /// could not be read are in [`Listing::skipped`].
    ///
    /// # Errors
    /// Any failure to get a complete answer, including a 200 without the
    /// expected list: never an empty listing in its place.
    async fn list_instances(&self) -> ProviderResult<Listing>;

    /// Every VM carrying this spuff id (normally one; two if a create was
    /// resent after its first answer was lost and both went through).
    async fn find_by_spuff_id(&self, spuff_id: &str) -> ProviderResult<Vec<ProviderInstance>> {
        Ok(self
            .list_instances()
            .await?
            .into_iter()
            .filter(|i| i.spuff_id() == Some(spuff_id))
            .collect())
    }

    /// Polls until the VM is running with an SSH endpoint, fast at first and
    /// slower later.
    ///
    /// # Errors
    /// [`ProviderError::Timeout`] naming the last state seen.
    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance>;

    /// Snapshots a VM and waits for the snapshot to finish.
    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let _ = (instance_id, name);
        Err(self.unsupported("snapshots"))
    }

    /// The account's VM snapshots.
    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        Err(self.unsupported("snapshots"))
    }

    /// Deletes a snapshot. Deleting one that is already gone succeeds.
    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let _ = id;
        Err(self.unsupported("snapshots"))
    }

    /// Rolls the VM snapshot `id` was taken of back to it, in place
    /// (everything written since is lost), and starts it again; returns
    /// that VM's id. Only where a snapshot belongs to its VM (Proxmox); on
    /// the clouds a snapshot is an image that `up --snapshot` makes new VMs
    /// from.
    async fn rollback_snapshot(&self, id: &str) -> ProviderResult<String> {
        let _ = id;
        Err(self.unsupported("rolling a VM back to a snapshot"))
    }

    /// The https URL a `DELETE` to which (with a bearer token) deletes
    /// exactly VM `id`: what a VM needs to delete itself when its idle or
    /// lifetime stop comes (`self_destroy: on`). `None` where that is not
    /// how it works (the local provider: its VMs end with their process).
    fn self_destroy_url(&self, id: &str) -> Option<String> {
        let _ = id;
        None
    }

    /// Powers a VM off and waits for it.
    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        let _ = id;
        Err(self.unsupported("power off"))
    }

    /// Powers a VM on and waits for it.
    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        let _ = id;
        Err(self.unsupported("power on"))
    }

    /// The SSH keys registered with the account.
    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>>;

    /// Makes sure `public_key` (OpenSSH one-line format) is registered,
    /// matching by fingerprint so it is never imported twice, and returns it.
    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo>;

    /// The sizes the account can create, for validating `--size`.
    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>>;

    /// The regions, for validating `--region`.
    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>>;

    /// The current spot prices of `size` in `region`'s zones, cheapest
    /// first (EC2); providers without spot VMs say so.
    async fn spot_prices(&self, region: &str, size: &str) -> ProviderResult<Vec<SpotPrice>> {
        let _ = (region, size);
        Err(self.unsupported("spot instances"))
    }

    /// Everything spuff made here that still exists, in `region` or in
    /// every region: its VMs and snapshots, and what else the provider
    /// needed (EC2: security groups and key pairs), found by spuff's label
    /// or tag. Sorted in the order they must be deleted.
    ///
    /// # Errors
    /// Any listing that fails: a partial survey would leave things billing.
    async fn managed_resources(&self, region: Option<&str>) -> ProviderResult<Vec<Resource>> {
        let in_region = |r: &str| region.is_none_or(|want| want == r);
        let mut out: Vec<Resource> = self
            .list_instances()
            .await?
            .into_iter()
            .filter(|vm| vm.is_managed() && in_region(&vm.region))
            .map(|vm| Resource {
                kind: ResourceKind::Vm,
                id: vm.id,
                name: vm.name,
                region: Some(vm.region),
            })
            .collect();
        // Only where the listing holds spuff's snapshots alone (Hetzner's is
        // label-selected, the local one is spuff's directory, Proxmox's are
        // those of spuff's VMs):
        // DigitalOcean lists every snapshot of the account, untagged, and
        // a user's own must never be taken for spuff's.
        let own_snapshots = matches!(
            self.info().kind,
            ProviderType::Hetzner | ProviderType::Local | ProviderType::Proxmox
        );
        if own_snapshots {
            match self.list_snapshots().await {
                Ok(snaps) => out.extend(
                    snaps
                        .into_iter()
                        .filter(|s| region.is_none_or(|r| s.regions.iter().any(|x| x == r)))
                        .map(|s| Resource {
                            kind: ResourceKind::Snapshot,
                            id: s.id,
                            name: s.name,
                            region: s.regions.into_iter().next(),
                        }),
                ),
                Err(ProviderError::Unsupported { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|r| r.kind);
        Ok(out)
    }

    /// Deletes one of [`Provider::managed_resources`]; gone is success.
    async fn delete_resource(&self, resource: &Resource) -> ProviderResult<()> {
        match resource.kind {
            ResourceKind::Vm => self.destroy_instance(&resource.id).await,
            ResourceKind::Snapshot => self.delete_snapshot(&resource.id).await,
            _ => Err(self.unsupported("deleting this kind of resource")),
        }
    }

    /// The CPU architecture of VMs of `size`, where the size says it
    /// (Hetzner's `cax*` and EC2's Graviton types are arm64); `None` where
    /// only the VM can tell (`uname -m`), as on Proxmox.
    fn arch_of_size(&self, size: &str) -> Option<crate::agent_bin::Arch> {
        let _ = size;
        None
    }

    /// Whether a VM boots with the request's user-data. When false, `up`
    /// sends none: the provider makes [`InstanceRequest::login_user`] with
    /// [`InstanceRequest::ssh_keys`] (key lines) through its own cloud-init,
    /// and spuff applies its user-data over SSH at the first login, with
    /// the VM's own host key trusted on first use (Proxmox without
    /// `proxmox_node_ssh`).
    fn delivers_user_data(&self) -> bool {
        true
    }

    /// Where new VMs go when the user names no region, if the account says
    /// (an AWS profile's region); `None` leaves it to spuff's defaults.
    fn default_region(&self) -> Option<String> {
        None
    }

    /// The end of the VM's serial console and where the whole log is, for
    /// errors about a VM that does not boot; `None` where the provider has
    /// no console to read (the clouds' consoles need their web UI).
    async fn console_tail(&self, id: &str) -> Option<(String, std::path::PathBuf)> {
        let _ = id;
        None
    }

    /// Transport counters (connections, requests, retries).
    fn http_stats(&self) -> HttpStats {
        HttpStats::default()
    }

    /// The error for an operation this provider does not implement.
    fn unsupported(&self, operation: &'static str) -> ProviderError {
        ProviderError::Unsupported {
            provider: self.name(),
            operation,
        }
    }
}

/// The MD5 fingerprint DigitalOcean and Hetzner show for an OpenSSH public
/// key line (`aa:bb:…`), or `None` if the line is not a key.
pub fn md5_fingerprint(public_key: &str) -> Option<String> {
    use md5::Digest;
    let blob = public_key.split_whitespace().nth(1)?;
    let raw = data_encoding::BASE64.decode(blob.as_bytes()).ok()?;
    let digest = md5::Md5::digest(&raw);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_specs_should_map_to_each_providers_names() {
        use serde_json::json;
        type ImageRef = fn(&ImageSpec) -> ProviderResult<serde_json::Value>;
        let (d, h): (ImageRef, ImageRef) = (digitalocean::image_ref, hetzner::image_ref);
        let cases = [
            (d, ImageSpec::ubuntu("24.04"), json!("ubuntu-24-04-x64")),
            (d, ImageSpec::debian("12"), json!("debian-12-x64")),
            (d, ImageSpec::Snapshot("6372321".into()), json!(6372321)),
            (d, ImageSpec::Custom("my-slug".into()), json!("my-slug")),
            (h, ImageSpec::ubuntu("24.04"), json!("ubuntu-24.04")),
            (h, ImageSpec::debian("12"), json!("debian-12")),
            (h, ImageSpec::Snapshot("4711".into()), json!(4711)),
        ];
        for (image_ref, spec, want) in cases {
            assert_eq!(image_ref(&spec).ok(), Some(want), "{spec}");
        }
        assert!(d(&ImageSpec::Custom(String::new())).is_err());
    }

    #[test]
    fn md5_fingerprint_matches_ssh_keygen() {
        // Expected value printed by `ssh-keygen -l -E md5 -f` for this key.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 test";
        assert_eq!(
            md5_fingerprint(key).as_deref(),
            Some("b0:ef:dd:3c:27:1c:ea:6a:ba:16:ba:b5:8c:58:a5:a0")
        );
        assert!(md5_fingerprint("not a key").is_none());
    }
}
