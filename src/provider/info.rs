//! Everything spuff knows about a provider before talking to it, in one
//! table: names, token variables, user-data limit, defaults, billing and
//! capabilities.
//!
//! Before this table these facts lived in six places (the provider enum,
//! the config's token variables, error hints, the user-data limit, the
//! CLI's region/size fallbacks), and a provider missing from one of them
//! silently got DigitalOcean's answer. Now a provider is one [`ProviderInfo`]
//! entry; everything else reads it, and a question the entry cannot answer
//! is an error, never another provider's default.

use std::fmt;
use std::str::FromStr;

use crate::util::suggest;

/// The providers spuff knows by name, implemented in this build or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProviderType {
    /// DigitalOcean (`digitalocean`, `do`).
    DigitalOcean,
    /// Hetzner Cloud (`hetzner`, `hcloud`).
    Hetzner,
    /// AWS EC2 (`aws`, `ec2`).
    Aws,
    /// VMs on this machine with QEMU (`local`, `qemu`).
    Local,
    /// A Proxmox VE cluster (`proxmox`, `pve`).
    Proxmox,
}

/// What spuff picks when neither the command line nor the config names a
/// region, size or image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Region or location slug.
    pub region: &'static str,
    /// Size or server type slug.
    pub size: &'static str,
    /// The OS image booted by default.
    pub image: DefaultImage,
}

/// The OS a provider boots when no image is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultImage {
    /// Ubuntu, by release (`24.04`).
    Ubuntu(&'static str),
    /// Debian, by major version (`12`).
    Debian(&'static str),
}

impl DefaultImage {
    /// As an [`ImageSpec`](super::ImageSpec).
    pub fn spec(self) -> super::ImageSpec {
        match self {
            DefaultImage::Ubuntu(v) => super::ImageSpec::ubuntu(v),
            DefaultImage::Debian(v) => super::ImageSpec::debian(v),
        }
    }
}

/// What a provider can do beyond create, list and destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Disk snapshots, and creating a VM from one.
    pub snapshots: bool,
    /// Power off and on without destroying.
    pub power: bool,
    /// SSH keys registered with the account.
    pub account_ssh_keys: bool,
}

/// One provider's static facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderInfo {
    /// Which provider.
    pub kind: ProviderType,
    /// Canonical name, as in config files, state and errors (`digitalocean`).
    pub name: &'static str,
    /// Name for people (`DigitalOcean`).
    pub display_name: &'static str,
    /// Other names accepted on the command line (`do`).
    pub aliases: &'static [&'static str],
    /// Environment variables holding the API token, in order of preference
    /// (after spuff's own `SPUFF_API_TOKEN`).
    pub token_vars: &'static [&'static str],
    /// Where to create a token, for hints.
    pub token_url: &'static str,
    /// The largest user-data the API accepts, in bytes.
    pub user_data_limit: usize,
    /// Defaults, or `None` when every VM must name its region and size.
    pub defaults: Option<Defaults>,
    /// Whether a powered-off VM still bills (it does at DigitalOcean and
    /// Hetzner: only destroying stops the bill).
    pub stopped_vm_bills: bool,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Whether this build of spuff can talk to it.
    pub implemented: bool,
}

impl ProviderInfo {
    /// Whether this provider needs an API token (clouds do; the local
    /// provider does not).
    pub fn needs_token(&self) -> bool {
        !self.token_vars.is_empty()
    }
}

/// Every provider spuff knows, implemented or not.
pub const PROVIDERS: &[ProviderInfo] = &[
    ProviderInfo {
        kind: ProviderType::DigitalOcean,
        name: "digitalocean",
        display_name: "DigitalOcean",
        aliases: &["do"],
        token_vars: &["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"],
        token_url: "https://cloud.digitalocean.com/account/api/tokens",
        user_data_limit: 64 * 1024,
        defaults: Some(Defaults {
            region: "fra1",
            size: "s-2vcpu-4gb",
            image: DefaultImage::Ubuntu("24.04"),
        }),
        stopped_vm_bills: true,
        capabilities: Capabilities {
            snapshots: true,
            power: true,
            account_ssh_keys: true,
        },
        implemented: true,
    },
    ProviderInfo {
        kind: ProviderType::Hetzner,
        name: "hetzner",
        display_name: "Hetzner Cloud",
        aliases: &["hcloud"],
        token_vars: &["HETZNER_TOKEN", "HCLOUD_TOKEN"],
        token_url: "https://console.hetzner.cloud/ (project > Security > API tokens)",
        user_data_limit: 32 * 1024,
        defaults: Some(Defaults {
            region: "nbg1",
            size: "cx22",
            image: DefaultImage::Ubuntu("24.04"),
        }),
        stopped_vm_bills: true,
        capabilities: Capabilities {
            snapshots: true,
            power: true,
            account_ssh_keys: true,
        },
        implemented: true,
    },
    ProviderInfo {
        kind: ProviderType::Aws,
        name: "aws",
        display_name: "AWS EC2",
        aliases: &["ec2"],
        token_vars: &["AWS_ACCESS_KEY_ID"],
        token_url: "https://console.aws.amazon.com/iam/",
        // EC2 accepts 16 KB of user data, before base64.
        user_data_limit: 16 * 1024,
        // The region is the AWS profile's when it has one (see
        // `Provider::default_region`).
        defaults: Some(Defaults {
            region: "us-east-1",
            size: "t3.small",
            image: DefaultImage::Ubuntu("24.04"),
        }),
        stopped_vm_bills: false,
        capabilities: Capabilities {
            snapshots: true,
            power: true,
            account_ssh_keys: true,
        },
        implemented: true,
    },
    ProviderInfo {
        kind: ProviderType::Local,
        name: "local",
        display_name: "local QEMU",
        aliases: &["qemu"],
        token_vars: &[],
        token_url: "",
        // The seed volume holds it; kept at the clouds' scale so a
        // user-data that boots here boots on a cloud too.
        user_data_limit: 64 * 1024,
        defaults: Some(Defaults {
            region: super::local::REGION,
            size: super::local::DEFAULT_SIZE,
            // The smallest official cloud image (about 330 MB), and the
            // system the offline CI image (ci/build-image.sh) reproduces.
            image: DefaultImage::Debian("12"),
        }),
        stopped_vm_bills: false,
        capabilities: Capabilities {
            snapshots: true,
            power: true,
            account_ssh_keys: false,
        },
        implemented: true,
    },
    ProviderInfo {
        kind: ProviderType::Proxmox,
        name: "proxmox",
        display_name: "Proxmox VE",
        aliases: &["pve"],
        token_vars: &["PROXMOX_VE_API_TOKEN"],
        token_url: "https://pve.proxmox.com/pve-docs/chapter-pveum.html#pveum_tokens",
        // A snippet on the node's storage: kept at the clouds' scale.
        user_data_limit: 64 * 1024,
        defaults: Some(Defaults {
            // The node name of a fresh installation.
            region: "pve",
            size: "small",
            image: DefaultImage::Debian("12"),
        }),
        stopped_vm_bills: false,
        capabilities: Capabilities {
            snapshots: true,
            power: true,
            account_ssh_keys: false,
        },
        implemented: true,
    },
];

impl ProviderType {
    /// Every known type.
    pub const ALL: &'static [ProviderType] = &[
        ProviderType::DigitalOcean,
        ProviderType::Hetzner,
        ProviderType::Aws,
        ProviderType::Local,
        ProviderType::Proxmox,
    ];

    /// This provider's facts.
    pub fn info(self) -> &'static ProviderInfo {
        // Every variant has exactly one entry (checked by a test); the
        // first entry is only a fallback the compiler needs.
        PROVIDERS
            .iter()
            .find(|p| p.kind == self)
            .unwrap_or(&PROVIDERS[0])
    }

    /// The canonical name, as used in config files and errors.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Other names accepted on the command line.
    pub fn aliases(self) -> &'static [&'static str] {
        self.info().aliases
    }

    /// Looks a name or alias up, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        ProviderInfo::by_name(name).map(|p| p.kind)
    }
}

impl ProviderInfo {
    /// The entry for a name or alias, ignoring case.
    pub fn by_name(name: &str) -> Option<&'static ProviderInfo> {
        let name = name.trim().to_ascii_lowercase();
        PROVIDERS
            .iter()
            .find(|p| p.name == name || p.aliases.contains(&name.as_str()))
    }

    /// The entry whose canonical name is `name` (as the library's errors
    /// carry it).
    pub fn by_canonical(name: &str) -> Option<&'static ProviderInfo> {
        PROVIDERS.iter().find(|p| p.name == name)
    }

    /// The defaults, or an error naming what the user must choose.
    ///
    /// # Errors
    /// [`NoDefaults`] for a provider without defaults.
    pub fn require_defaults(&self) -> Result<Defaults, NoDefaults> {
        self.defaults.ok_or(NoDefaults {
            provider: self.name,
        })
    }

    /// How to set this provider's token, for hints: its variables, then
    /// `spuff config set api_token`.
    pub fn token_hint(&self) -> String {
        let set = "run `spuff config set api_token …`";
        match self.token_vars {
            [] => set.into(),
            [only] => format!("export {only}=…, or {set}"),
            [first, rest @ ..] => format!(
                "export {first}=… ({} also works), or {set}",
                rest.join(", ")
            ),
        }
    }
}

/// A provider was asked for a default it does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{provider} has no default region and size: give --region and --size (or set them with `spuff config set`)"
)]
pub struct NoDefaults {
    /// The provider.
    pub provider: &'static str,
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`ProviderType`]: the name, and close matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{name}`; known: {}{}", known_names().join(", "), if suggestions.is_empty() { String::new() } else { format!("; did you mean {}?", suggestions.join(" or ")) })]
pub struct UnknownProvider {
    /// What was given.
    pub name: String,
    /// Known names close to it.
    pub suggestions: Vec<String>,
}

fn known_names() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.name).collect()
}

impl FromStr for ProviderType {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderType::from_name(s).ok_or_else(|| {
            let names = PROVIDERS
                .iter()
                .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()));
            UnknownProvider {
                name: s.to_string(),
                suggestions: suggest(s, names).into_iter().map(str::to_string).collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_should_have_exactly_one_entry() {
        for t in ProviderType::ALL {
            assert_eq!(
                PROVIDERS.iter().filter(|p| p.kind == *t).count(),
                1,
                "{t:?}"
            );
            assert_eq!(t.info().kind, *t);
        }
        assert_eq!(PROVIDERS.len(), ProviderType::ALL.len());
    }

    #[test]
    fn names_and_aliases_should_parse() {
        assert_eq!("do".parse::<ProviderType>(), Ok(ProviderType::DigitalOcean));
        assert_eq!(
            "DigitalOcean".parse::<ProviderType>(),
            Ok(ProviderType::DigitalOcean)
        );
        assert_eq!("hcloud".parse::<ProviderType>(), Ok(ProviderType::Hetzner));
        let err = "hetzer".parse::<ProviderType>().expect_err("must fail");
        assert_eq!(err.suggestions, vec!["hetzner"]);
        assert!(err.to_string().contains("did you mean hetzner"));
    }

    #[test]
    fn a_provider_without_defaults_should_say_so() {
        let mut without = *ProviderType::Aws.info();
        without.defaults = None;
        let e = without.require_defaults().expect_err("no defaults");
        assert!(e.to_string().contains("--region"), "{e}");
        assert_eq!(
            ProviderType::Hetzner
                .info()
                .require_defaults()
                .map(|d| d.region),
            Ok("nbg1")
        );
    }
}
