//! What building a provider takes: [`ProviderConfig`] and the
//! [`ProviderFactory`] each provider implements.
//!
//! It sits apart from [`registry`](super::registry) so that providers depend
//! on this module and the registry depends on the providers, never both ways.

use std::sync::Arc;

use super::Provider;
use super::error::ProviderResult;
use super::http::HttpConfig;
use super::info::ProviderInfo;
use super::types::ProviderTimeouts;
use crate::util::Secret;

/// Everything needed to build a provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderConfig {
    /// The API token (each provider turns it into its own [`Auth`](super::Auth)).
    pub token: Secret,
    /// Time limits.
    pub timeouts: ProviderTimeouts,
    /// Transport settings (CA file, proxy, retries).
    pub http: HttpConfig,
    /// Override of the API base URL (an API gateway or proxy; tests point
    /// it at a fake cloud).
    pub base_url: Option<String>,
    /// The local provider's settings (ignored by clouds).
    pub local: super::local::LocalConfig,
    /// AWS's settings: profile, regions, who may SSH in (ignored by the
    /// others). AWS takes no token: its credentials come from here or from
    /// the environment and `~/.aws`.
    pub aws: super::aws::AwsConfig,
    /// Proxmox's settings: the template, node and clone kind (ignored by
    /// the others).
    pub proxmox: super::proxmox::ProxmoxConfig,
}

impl ProviderConfig {
    /// A config with this token and defaults for the rest.
    pub fn new(token: impl Into<Secret>) -> Self {
        ProviderConfig {
            token: token.into(),
            ..Default::default()
        }
    }
}

/// Builds one kind of provider.
pub trait ProviderFactory: Send + Sync {
    /// Which provider this factory builds.
    fn info(&self) -> &'static ProviderInfo;

    /// Builds a provider.
    ///
    /// # Errors
    /// [`ProviderError::Authentication`](super::ProviderError::Authentication)
    /// for a missing token,
    /// [`ProviderError::InvalidConfig`](super::ProviderError::InvalidConfig)
    /// for a bad base URL or CA file.
    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>>;
}
