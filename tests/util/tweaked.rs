//! A provider with a few answers changed, over one the tests can reach:
//! how they play a provider they cannot (Proxmox without node SSH on a
//! real QEMU VM, a cloud's arm64 sizes on the fake cloud) without a hook
//! in the product.

#![allow(dead_code)]

use std::sync::Arc;

use spuff::agent_bin::Arch;
use spuff::provider::{
    InstanceRequest, Listing, Provider, ProviderInfo, ProviderInstance, ProviderResult, RegionInfo,
    SizeInfo, SshKeyInfo,
};

/// Rewrites a create request before the inner provider sees it.
pub type Rewrite = dyn Fn(&InstanceRequest) -> InstanceRequest + Send + Sync;

/// `inner`, but for what is set here.
pub struct Tweaked {
    pub inner: Arc<dyn Provider>,
    /// What `delivers_user_data` says, when set.
    pub delivers_user_data: Option<bool>,
    /// What `arch_of_size` says for every size, when set.
    pub arch: Option<Arch>,
    /// Applied to every create request, when set.
    pub rewrite: Option<Box<Rewrite>>,
}

impl Tweaked {
    /// `inner` with nothing changed yet.
    pub fn new(inner: Arc<dyn Provider>) -> Tweaked {
        Tweaked {
            inner,
            delivers_user_data: None,
            arch: None,
            rewrite: None,
        }
    }
}

impl std::fmt::Debug for Tweaked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tweaked")
            .field("inner", &self.inner)
            .field("delivers_user_data", &self.delivers_user_data)
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Provider for Tweaked {
    fn info(&self) -> &'static ProviderInfo {
        self.inner.info()
    }

    fn delivers_user_data(&self) -> bool {
        self.delivers_user_data
            .unwrap_or_else(|| self.inner.delivers_user_data())
    }

    fn arch_of_size(&self, size: &str) -> Option<Arch> {
        self.arch.or_else(|| self.inner.arch_of_size(size))
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        match &self.rewrite {
            Some(rewrite) => self.inner.create_instance(&rewrite(request)).await,
            None => self.inner.create_instance(request).await,
        }
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        self.inner.destroy_instance(id).await
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        self.inner.get_instance(id).await
    }

    async fn list_instances(&self) -> ProviderResult<Listing> {
        self.inner.list_instances().await
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        self.inner.wait_ready(id).await
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        self.inner.list_ssh_keys().await
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        self.inner.ensure_ssh_key(name, public_key).await
    }

    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        self.inner.list_sizes().await
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        self.inner.list_regions().await
    }

    async fn console_tail(&self, id: &str) -> Option<(String, std::path::PathBuf)> {
        self.inner.console_tail(id).await
    }
}
