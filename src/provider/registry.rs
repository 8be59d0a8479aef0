//! Making providers by name.
//!
//! The CLI knows a provider only by the name in the config file or `--provider`;
//! a [`ProviderRegistry`] maps that name (or an alias such as `do`) to a
//! [`ProviderFactory`]. Adding a cloud is its module plus one line in
//! [`ProviderRegistry::register_defaults`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Provider;
use super::error::{ProviderError, ProviderResult};
use super::factory::{ProviderConfig, ProviderFactory};
use super::info::{PROVIDERS, ProviderInfo, ProviderType};
use crate::util::suggest;

/// Factories by provider type.
#[derive(Default)]
pub struct ProviderRegistry {
    factories: BTreeMap<ProviderType, Box<dyn ProviderFactory>>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with every provider built into spuff.
    pub fn with_defaults() -> Self {
        let mut r = Self::new();
        r.register_defaults();
        r
    }

    /// Registers the built-in providers. One line per provider.
    pub fn register_defaults(&mut self) {
        self.register(super::digitalocean::Factory);
        self.register(super::hetzner::Factory);
        self.register(super::local::Factory);
        self.register(super::aws::Factory);
        self.register(super::proxmox::Factory);
    }

    /// Registers (or replaces) a factory.
    pub fn register(&mut self, factory: impl ProviderFactory + 'static) {
        self.factories
            .insert(factory.info().kind, Box::new(factory));
    }

    /// The registered provider types.
    pub fn available(&self) -> Vec<ProviderType> {
        self.factories.keys().copied().collect()
    }

    /// Whether a type is registered.
    pub fn is_available(&self, t: ProviderType) -> bool {
        self.factories.contains_key(&t)
    }

    /// Builds the provider of this type.
    pub fn create(
        &self,
        t: ProviderType,
        config: ProviderConfig,
    ) -> ProviderResult<Arc<dyn Provider>> {
        match self.factories.get(&t) {
            Some(f) => f.create(config),
            None => Err(ProviderError::InvalidConfig {
                provider: t.name(),
                field: "provider".into(),
                message: format!(
                    "{} is not supported by this build of spuff yet; available: {}",
                    t.info().display_name,
                    self.names().join(", ")
                ),
            }),
        }
    }

    /// Builds a provider from a name or alias (`do`, `digitalocean`, `hcloud`, …).
    pub fn create_by_name(
        &self,
        name: &str,
        config: ProviderConfig,
    ) -> ProviderResult<Arc<dyn Provider>> {
        match ProviderInfo::by_name(name) {
            Some(info) => self.create(info.kind, config),
            None => {
                let names = self.names();
                let all = PROVIDERS
                    .iter()
                    .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()));
                let close = suggest(name, all);
                let mut message =
                    format!("unknown provider `{name}`; available: {}", names.join(", "));
                if !close.is_empty() {
                    message.push_str(&format!("; did you mean {}?", close.join(" or ")));
                }
                Err(ProviderError::InvalidConfig {
                    provider: "spuff",
                    field: "provider".into(),
                    message,
                })
            }
        }
    }

    fn names(&self) -> Vec<&'static str> {
        self.factories.keys().map(|t| t.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_include_digitalocean_by_alias() {
        let r = ProviderRegistry::with_defaults();
        assert!(r.available().contains(&ProviderType::DigitalOcean));
        let p = r.create_by_name("do", ProviderConfig::new("t"));
        assert_eq!(p.map(|p| p.name()).ok(), Some("digitalocean"));
        let p = r.create_by_name("hcloud", ProviderConfig::new("t"));
        assert_eq!(p.map(|p| p.name()).ok(), Some("hetzner"));
    }

    #[test]
    fn unknown_and_missing_token_are_explained() {
        let r = ProviderRegistry::with_defaults();
        let e = r
            .create_by_name("digitalocaen", ProviderConfig::new("t"))
            .expect_err("must fail");
        assert!(e.to_string().contains("did you mean digitalocean"), "{e}");
        let mut only_do = ProviderRegistry::new();
        only_do.register(super::super::digitalocean::Factory);
        let e = only_do
            .create_by_name("hetzner", ProviderConfig::new("t"))
            .expect_err("must fail");
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = r
            .create_by_name("do", ProviderConfig::new(""))
            .expect_err("must fail");
        assert!(matches!(e, ProviderError::Authentication { .. }), "{e}");
    }
}
