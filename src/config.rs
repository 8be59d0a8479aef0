//! The user's settings: `config.yaml` in spuff's config directory, plus
//! environment overrides.
//!
//! The keys are those of the original spuff (`provider`, `api_token`,
//! `region`, `size`, `image`, `idle_timeout`, `ttl`, `ssh_key_path`, `ssh_user`,
//! `dotfiles`, `agent_token`, `packages`), so an existing file keeps working;
//! `base_packages` is spuff's own addition.
//! Unknown keys are kept when spuff rewrites the file and reported as
//! warnings (with a suggestion when one is close), not errors: a typo should
//! be visible, but a key from a newer version should not stop an older one.
//!
//! The API token is looked up in this order: `SPUFF_API_TOKEN`, then the
//! provider's own variable (`DIGITALOCEAN_TOKEN`, `HETZNER_TOKEN`), then the
//! file. [`Settings::token_source`] says which one won, so `spuff config
//! show` can tell the user. The file is written with mode 0600 (through a
//! temporary file and a rename, so a crash never leaves half a config), and
//! [`Settings::warnings`] flags a token sitting in a file others can read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::provider::ProviderType;
use crate::util::{Secret, suggest};

/// The config file's name inside spuff's config directory.
pub const FILE_NAME: &str = "config.yaml";

/// The variable that overrides every provider's token.
pub const TOKEN_VAR: &str = "SPUFF_API_TOKEN";

/// The token VMs delete themselves with (`self_destroy: on`): one made for
/// that alone, kept apart from the main token (docs/idle.md says how).
pub const SELF_DESTROY_TOKEN_VAR: &str = "SPUFF_SELF_DESTROY_TOKEN";

/// The keys `config set` knows, with one line of help each.
pub const KEYS: &[(&str, &str)] = &[
    (
        "provider",
        "digitalocean (do), hetzner (hcloud), aws (ec2) or local (QEMU on this machine; the default when no cloud token is set)",
    ),
    (
        "api_token",
        "the provider's API token (prefer the environment: SPUFF_API_TOKEN)",
    ),
    ("region", "region or location slug, such as fra1 or nbg1"),
    (
        "size",
        "size or server type slug, such as s-2vcpu-4gb or cx22",
    ),
    (
        "image",
        "image slug, such as ubuntu-24-04-x64 or ubuntu-24.04",
    ),
    (
        "idle_timeout",
        "power off after this long idle: 2h, 30m, 90s, or off",
    ),
    (
        "ttl",
        "power off this long after creation, in use or not: 8h, 1d, or off (default)",
    ),
    (
        "forward_agent",
        "forward your ssh-agent to the VM in `up` and `ssh`: on (default) or off",
    ),
    (
        "self_destroy",
        "on: a stopped VM deletes itself through the API (DigitalOcean, Hetzner); off (default)",
    ),
    (
        "self_destroy_token",
        "the API token VMs delete themselves with (prefer SPUFF_SELF_DESTROY_TOKEN; see docs/idle.md)",
    ),
    (
        "ssh_key_path",
        "private key to log in with (its .pub is installed on the VM)",
    ),
    ("ssh_user", "the user created on the VM (default dev)"),
    (
        "dotfiles",
        "a git repository cloned into the VM user's home",
    ),
    (
        "agent_token",
        "a fixed agent token (default: a new random token per VM)",
    ),
    ("packages", "extra Debian/Ubuntu packages, comma-separated"),
    (
        "local_network",
        "local VMs' network: nat (default: the VM reaches what this machine reaches) or isolated (nothing but SSH from this machine)",
    ),
    (
        "local_qemu",
        "the qemu-system program local VMs run under (default: found in PATH)",
    ),
    (
        "aws_profile",
        "the AWS profile in ~/.aws (default: AWS_PROFILE, else `default`)",
    ),
    (
        "aws_regions",
        "AWS regions `list` and `gc` look in, comma-separated (default: the profile's region)",
    ),
    (
        "aws_ssh_cidr",
        "who may reach AWS VMs' SSH port, such as 203.0.113.7/32 (default: this machine's public address)",
    ),
    (
        "proxmox_url",
        "the Proxmox VE cluster, such as https://pve.example:8006 (its CA: SPUFF_CA_FILE)",
    ),
    (
        "proxmox_fingerprint",
        "the SHA-256 of the cluster's certificate (`pvenode cert info`), trusted instead of a CA",
    ),
    (
        "proxmox_user",
        "log in as this user (root@pam) with the password in PROXMOX_VE_PASSWORD, instead of an API token",
    ),
    (
        "proxmox_template",
        "the VM id of the cloud-init template Proxmox VMs are cloned from (docs/proxmox.md)",
    ),
    (
        "proxmox_node",
        "the node new Proxmox VMs go to (default: the template's)",
    ),
    (
        "proxmox_full_clone",
        "on: full clones, independent of the template; off (default): linked clones",
    ),
    (
        "proxmox_storage",
        "the storage of full clones' disks (default: the template's)",
    ),
    (
        "proxmox_node_ssh",
        "USER@HOST[:PORT] spuff logs in to, with your keys, to write VMs' user-data as snippets",
    ),
    (
        "proxmox_snippets",
        "STORAGE:DIR for those snippets (default local:/var/lib/vz/snippets)",
    ),
    (
        "proxmox_ipconfig",
        "ipconfig0 of new Proxmox VMs: ip=dhcp,ip6=auto (default) or ip=ADDR/PREFIX,gw=GW (found without the guest agent)",
    ),
    (
        "base_packages",
        "packages every VM gets, comma-separated, or none; `config show` lists the default",
    ),
];

/// The value `config set base_packages` takes for an empty list.
pub const NO_PACKAGES: &str = "none";

/// The provider used when the config names none and no cloud token is set:
/// VMs on this machine, so a new user needs no account.
pub const DEFAULT_PROVIDER: ProviderType = ProviderType::Local;

/// Why [`Settings::provider`] is the provider it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderChoice {
    /// The config file names it.
    Configured,
    /// No provider configured, but this cloud's token variable is set.
    TokenInEnv(&'static str),
    /// No provider configured and a token without a provider (in
    /// `SPUFF_API_TOKEN` or the file): DigitalOcean, as before local VMs.
    BareToken,
    /// No provider and no cloud token: the local provider.
    NoCloud,
}

/// The VM user when the config names none.
pub const DEFAULT_SSH_USER: &str = "dev";

/// The idle timeout when the config names none.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// The file's contents, as written by the user. Every field is optional; the
/// defaults are applied by [`Settings`].
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigFile {
    /// `provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `api_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `idle_timeout` as written (`2h`, `30m`, `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// `ttl` as written (`8h`, `1d`, `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// `forward_agent`: `on` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_agent: Option<String>,
    /// `self_destroy`: `on` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_destroy: Option<String>,
    /// `self_destroy_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_destroy_token: Option<String>,
    /// `ssh_key_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key_path: Option<PathBuf>,
    /// `ssh_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_user: Option<String>,
    /// `dotfiles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dotfiles: Option<String>,
    /// `agent_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_token: Option<String>,
    /// `packages`: the user's extra packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// `local_network` (`nat` or `isolated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_network: Option<String>,
    /// `local_qemu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_qemu: Option<PathBuf>,
    /// `aws_profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_profile: Option<String>,
    /// `aws_regions`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aws_regions: Vec<String>,
    /// `aws_ssh_cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ssh_cidr: Option<String>,
    /// `proxmox_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_url: Option<String>,
    /// `proxmox_fingerprint`: the pinned certificate's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_fingerprint: Option<String>,
    /// `proxmox_user`: log in with a password rather than a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_user: Option<String>,
    /// `proxmox_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_template: Option<u32>,
    /// `proxmox_node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_node: Option<String>,
    /// `proxmox_full_clone`: `on` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_full_clone: Option<String>,
    /// `proxmox_storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_storage: Option<String>,
    /// `proxmox_node_ssh`: `USER@HOST[:PORT]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_node_ssh: Option<String>,
    /// `proxmox_snippets`: `STORAGE:DIR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_snippets: Option<String>,
    /// `proxmox_ipconfig`: Proxmox's `ipconfig0` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_ipconfig: Option<String>,
    /// `base_packages`: replaces [`DEFAULT_PACKAGES`](crate::cloudinit::DEFAULT_PACKAGES)
    /// when set; `Some(vec![])` installs none, for an image that already has
    /// them or a VM without network. [`ConfigFile::base_packages`] applies
    /// the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_packages: Option<Vec<String>>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_yaml_ng::Value>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("ConfigFile")
            .field("provider", &self.provider)
            .field("api_token", &mask(&self.api_token))
            .field("region", &self.region)
            .field("size", &self.size)
            .field("image", &self.image)
            .field("idle_timeout", &self.idle_timeout)
            .field("ttl", &self.ttl)
            .field("forward_agent", &self.forward_agent)
            .field("self_destroy", &self.self_destroy)
            .field("self_destroy_token", &mask(&self.self_destroy_token))
            .field("ssh_key_path", &self.ssh_key_path)
            .field("ssh_user", &self.ssh_user)
            .field("dotfiles", &self.dotfiles)
            .field("agent_token", &mask(&self.agent_token))
            .field("packages", &self.packages)
            .field("local_network", &self.local_network)
            .field("local_qemu", &self.local_qemu)
            .field("aws_profile", &self.aws_profile)
            .field("aws_regions", &self.aws_regions)
            .field("aws_ssh_cidr", &self.aws_ssh_cidr)
            .field("proxmox_url", &self.proxmox_url)
            .field("proxmox_template", &self.proxmox_template)
            .field("proxmox_node", &self.proxmox_node)
            .field("proxmox_node_ssh", &self.proxmox_node_ssh)
            .field("base_packages", &self.base_packages)
            .field("unknown", &self.unknown.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Errors from reading, validating and writing the config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The config file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The file is not valid YAML or has a value of the wrong type.
    #[error("{path}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Parse {
        /// The config file.
        path: PathBuf,
        /// Line and column, 1-based, when the parser knows them.
        location: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
    },

    /// A key `config set` does not know.
    #[error("unknown config key {key:?}")]
    UnknownKey {
        /// The key given.
        key: String,
        /// Close known keys.
        suggestions: Vec<String>,
    },

    /// A value that does not fit its key.
    #[error("invalid {key} {value:?}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value given (secrets are never echoed).
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// There is no config directory.
    #[error(transparent)]
    Paths(#[from] crate::paths::Error),
}

impl crate::Hint for Error {
    /// One line of advice the user can act on.
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Io { path, .. } => format!("check the permissions of {}", path.display()),
            Error::Parse { .. } => "fix the file with `spuff config edit`".to_string(),
            Error::UnknownKey { suggestions, .. } if !suggestions.is_empty() => {
                format!("did you mean {}?", suggestions.join(" or "))
            }
            Error::UnknownKey { .. } => format!(
                "known keys: {}",
                KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            ),
            Error::Invalid { key, .. } => match KEYS.iter().find(|(k, _)| k == key) {
                Some((_, help)) => format!("{key}: {help}"),
                None => "see `spuff config --help`".to_string(),
            },
            Error::Paths(e) => return crate::Hint::hint(e),
        })
    }
}

/// A `Result` whose error is the config's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the API token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable (named).
    Env(&'static str),
    /// The config file.
    File,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Env(var) => write!(f, "environment variable {var}"),
            TokenSource::File => f.write_str("config file"),
        }
    }
}

/// The config file plus the environment, with defaults applied: what
/// commands use.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it was read from (it may not exist).
    pub path: PathBuf,
    /// Whether the file exists.
    pub exists: bool,
    /// The file as read.
    pub file: ConfigFile,
    /// The provider to use.
    pub provider: ProviderType,
    /// Why it is that one.
    pub provider_choice: ProviderChoice,
    /// The local provider's settings.
    pub local: crate::provider::local::LocalConfig,
    /// The API token, if any source had one.
    pub token: Option<Secret>,
    /// Where [`Settings::token`] came from.
    pub token_source: Option<TokenSource>,
    /// The idle timeout; `None` means never power off.
    pub idle_timeout: Option<Duration>,
    /// The default lifetime of new VMs (`up --ttl` overrides it); `None`
    /// means no limit.
    pub ttl: Option<Duration>,
    /// Whether `up` and `ssh` forward the user's ssh-agent to the VM
    /// (`forward_agent`, default on: git over SSH on the VM needs it; a root
    /// user on a compromised VM could use it while a session is open).
    pub forward_agent: bool,
    /// Whether VMs on providers that bill stopped VMs delete themselves
    /// when their idle or lifetime stop comes (`self_destroy: on`).
    pub self_destroy: bool,
    /// The token they do it with: [`SELF_DESTROY_TOKEN_VAR`], else the
    /// file's `self_destroy_token`. Never the main token by default.
    pub self_destroy_token: Option<Secret>,
    /// The VM user.
    pub ssh_user: String,
    /// Things the user should know about the file (unknown keys, a token in a
    /// file others can read).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads `config.yaml` from spuff's config directory and the process
    /// environment.
    ///
    /// # Errors
    /// [`Error::Paths`], [`Error::Io`], [`Error::Parse`], [`Error::Invalid`].
    pub fn load_default() -> Result<Self> {
        let path = crate::paths::config_dir()?.join(FILE_NAME);
        Settings::load(&path, |var| std::env::var(var).ok())
    }

    /// Reads the file at `path` (a missing file is an empty config) and
    /// applies the environment, read through `env`.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Parse`], [`Error::Invalid`].
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (file, exists) = match std::fs::read_to_string(path) {
            Ok(text) => (parse(path, &text)?, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (ConfigFile::default(), false),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut warnings = Vec::new();
        for key in file.unknown.keys() {
            let names = KEYS.iter().map(|(k, _)| *k);
            let close = suggest(key, names);
            warnings.push(match close.first() {
                Some(s) => format!(
                    "{}: unknown key {key:?} (did you mean {s:?}?)",
                    path.display()
                ),
                None => format!("{}: unknown key {key:?} is ignored", path.display()),
            });
        }
        if exists
            && (file.api_token.is_some()
                || file.agent_token.is_some()
                || file.self_destroy_token.is_some())
            && readable_by_others(path)
        {
            warnings.push(format!(
                "{} holds a token and other users can read it; run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }

        let (provider, provider_choice) = match &file.provider {
            Some(name) => (parse_provider(name)?, ProviderChoice::Configured),
            None => default_provider(&file, &env),
        };
        let mut local = crate::provider::local::LocalConfig::new();
        if let Some(text) = &file.local_network {
            local.network = parse_local_network(text)?;
        }
        local.qemu = file.local_qemu.clone();
        let (token, token_source) = lookup_token(provider, &file, &env);
        let idle_timeout = match &file.idle_timeout {
            Some(text) => parse_idle_timeout(text)?,
            None => Some(DEFAULT_IDLE_TIMEOUT),
        };
        let ttl = match &file.ttl {
            Some(text) => parse_ttl(text)?,
            None => None,
        };
        let forward_agent = match &file.forward_agent {
            Some(text) => parse_on_off("forward_agent", text)?,
            None => true,
        };
        let self_destroy = match &file.self_destroy {
            Some(text) => parse_on_off("self_destroy", text)?,
            None => false,
        };
        let self_destroy_token = env(SELF_DESTROY_TOKEN_VAR)
            .or_else(|| file.self_destroy_token.clone())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        let ssh_user = match &file.ssh_user {
            Some(user) => validate_user(user)?,
            None => DEFAULT_SSH_USER.to_string(),
        };
        Ok(Settings {
            path: path.to_path_buf(),
            exists,
            file,
            provider,
            provider_choice,
            local,
            token,
            token_source,
            idle_timeout,
            ttl,
            forward_agent,
            self_destroy,
            self_destroy_token,
            ssh_user,
            warnings,
        })
    }
}

impl Settings {
    /// The token for `provider`, which may differ from the configured one
    /// (a VM created with `--provider`): the environment by the same
    /// precedence, then the file's token only if the file is for that
    /// provider.
    pub fn token_for(
        &self,
        provider: ProviderType,
        env: impl Fn(&str) -> Option<String>,
    ) -> Option<Secret> {
        let mut file = self.file.clone();
        if provider != self.provider {
            file.api_token = None;
        }
        lookup_token(provider, &file, &env).0
    }
}

fn parse(path: &Path, text: &str) -> Result<ConfigFile> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        location: e.location().map(|l| (l.line(), l.column())),
        message: e.to_string(),
    })
}

/// The token by precedence: `SPUFF_API_TOKEN`, the provider's own variable,
/// the file. Empty values count as unset.
fn lookup_token(
    provider: ProviderType,
    file: &ConfigFile,
    env: &impl Fn(&str) -> Option<String>,
) -> (Option<Secret>, Option<TokenSource>) {
    let mut vars = vec![TOKEN_VAR];
    vars.extend(provider_token_vars(provider));
    for var in vars {
        if let Some(value) = env(var).filter(|v| !v.trim().is_empty()) {
            return (Some(Secret::new(value.trim())), Some(TokenSource::Env(var)));
        }
    }
    match file.api_token.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(token) => (Some(Secret::new(token.trim())), Some(TokenSource::File)),
        None => (None, None),
    }
}

/// The environment variables a provider's own tools read their token from.
pub fn provider_token_vars(provider: ProviderType) -> &'static [&'static str] {
    match provider {
        ProviderType::DigitalOcean => &["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"],
        ProviderType::Hetzner => &["HETZNER_TOKEN", "HCLOUD_TOKEN"],
        ProviderType::Proxmox => &["PROXMOX_VE_API_TOKEN"],
        _ => &[],
    }
}

/// The provider when the file names none: the cloud whose token variable
/// is set, DigitalOcean for a token without a provider, else local.
fn default_provider(
    file: &ConfigFile,
    env: &impl Fn(&str) -> Option<String>,
) -> (ProviderType, ProviderChoice) {
    let set = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
    for info in crate::provider::PROVIDERS
        .iter()
        // AWS credentials in the environment are often there for other
        // work: spending them takes `provider: aws`, never a guess.
        .filter(|p| p.implemented && p.needs_token() && p.kind != ProviderType::Aws)
    {
        if let Some(var) = info.token_vars.iter().find(|v| set(v)) {
            return (info.kind, ProviderChoice::TokenInEnv(var));
        }
    }
    if set(TOKEN_VAR)
        || file
            .api_token
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty())
    {
        return (ProviderType::DigitalOcean, ProviderChoice::BareToken);
    }
    (DEFAULT_PROVIDER, ProviderChoice::NoCloud)
}

fn parse_local_network(text: &str) -> Result<crate::provider::local::LocalNetwork> {
    text.parse().map_err(|reason| Error::Invalid {
        key: "local_network".to_string(),
        value: text.to_string(),
        reason,
    })
}

fn parse_provider(name: &str) -> Result<ProviderType> {
    name.parse::<ProviderType>().map_err(|e| Error::Invalid {
        key: "provider".to_string(),
        value: name.to_string(),
        reason: e.to_string(),
    })
}

/// Parses `2h`, `30m`, `90s`, `1h30m`, `1h 30m`; `off`, `never`, `none` and
/// `0` disable the timeout (`Ok(None)`).
///
/// # Errors
/// [`Error::Invalid`] for anything else, or a timeout under a minute (the VM
/// would power off while booting).
pub fn parse_idle_timeout(text: &str) -> Result<Option<Duration>> {
    parse_stop_after("idle_timeout", text)
}

/// Parses a VM lifetime (`ttl`, `up --ttl`) like [`parse_idle_timeout`]:
/// `8h`, `1d`, `90m`; `off`, `never`, `none` and `0` mean no limit.
///
/// # Errors
/// [`Error::Invalid`] for anything else, or a lifetime under a minute.
pub fn parse_ttl(text: &str) -> Result<Option<Duration>> {
    parse_stop_after("ttl", text)
}

fn parse_stop_after(key: &str, text: &str) -> Result<Option<Duration>> {
    let trimmed = text.trim();
    if matches!(
        trimmed.to_ascii_lowercase().as_str(),
        "off" | "never" | "none" | "0"
    ) {
        return Ok(None);
    }
    let invalid = |reason: String| Error::Invalid {
        key: key.to_string(),
        value: text.to_string(),
        reason,
    };
    let duration = humantime::parse_duration(trimmed).map_err(|e| {
        invalid(format!(
            "{e}; write a duration such as 2h, 30m or 90s, or off"
        ))
    })?;
    if duration < Duration::from_secs(60) {
        return Err(invalid(
            "under a minute: the VM would power itself off while booting".to_string(),
        ));
    }
    Ok(Some(duration))
}

/// Wraps a shared check ([`crate::validate`]) in this module's error.
fn checked(
    key: &str,
    value: &str,
    check: fn(&str) -> std::result::Result<(), crate::validate::Reason>,
) -> Result<String> {
    check(value)
        .map(|()| value.to_string())
        .map_err(|reason| Error::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        })
}

fn validate_user(user: &str) -> Result<String> {
    checked("ssh_user", user, crate::validate::username)
}

fn validate_slug(key: &str, value: &str) -> Result<String> {
    checked(key, value, crate::validate::slug)
}

/// A comma-separated package list, each name checked.
fn package_list(key: &str, value: &str) -> Result<Vec<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| checked(key, p, crate::validate::package))
        .collect()
}

/// A Proxmox cluster's API base: `https://HOST[:PORT]` (8006 by default)
/// becomes `https://HOST:PORT/api2/json/`.
pub fn proxmox_url(value: &str) -> Result<String> {
    let invalid = |reason: &str| Error::Invalid {
        key: "proxmox_url".into(),
        value: value.into(),
        reason: reason.into(),
    };
    let rest = value
        .trim()
        .strip_prefix("https://")
        .ok_or_else(|| invalid("an https:// URL (Proxmox serves its API over TLS)"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok {
        return Err(invalid("not a host name or address"));
    }
    let with_port = if host.ends_with(']') || !host.contains(':') {
        format!("{host}:8006")
    } else {
        host.to_string()
    };
    Ok(format!("https://{with_port}/api2/json/"))
}

/// `USER@HOST[:PORT]`: the user, the host and the port.
pub fn node_ssh(value: &str) -> Result<(String, String, u16)> {
    let invalid = |reason: &str| Error::Invalid {
        key: "proxmox_node_ssh".into(),
        value: value.into(),
        reason: reason.into(),
    };
    let (user, host) = value
        .trim()
        .split_once('@')
        .ok_or_else(|| invalid("USER@HOST[:PORT], such as root@pve1"))?;
    if user != "root" && crate::validate::username(user).is_err() {
        return Err(invalid("not a user name"));
    }
    let (host, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid("not a port"))?,
        ),
        _ => (host, 22),
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !ok {
        return Err(invalid("not a host name or address"));
    }
    Ok((user.to_string(), host.to_string(), port))
}

/// `STORAGE:DIR`: a storage name and the absolute directory of its
/// snippets on the node.
pub fn snippets(value: &str) -> Result<(String, String)> {
    let invalid = |reason: &str| Error::Invalid {
        key: "proxmox_snippets".into(),
        value: value.into(),
        reason: reason.into(),
    };
    let (storage, dir) = value
        .split_once(':')
        .ok_or_else(|| invalid("STORAGE:DIR, such as local:/var/lib/vz/snippets"))?;
    crate::validate::slug(storage).map_err(&invalid)?;
    if !dir.starts_with('/') || dir.contains("..") || dir.chars().any(char::is_control) {
        return Err(invalid("DIR must be an absolute path on the node"));
    }
    Ok((storage.to_string(), dir.to_string()))
}

fn validate_repo(value: &str) -> Result<String> {
    checked("dotfiles", value, crate::validate::repo_url)
}

impl ConfigFile {
    /// The base packages a VM gets: `base_packages` when set (an empty list
    /// included), else [`DEFAULT_PACKAGES`](crate::cloudinit::DEFAULT_PACKAGES).
    pub fn base_packages(&self) -> Vec<String> {
        match &self.base_packages {
            Some(list) => list.clone(),
            None => crate::cloudinit::DEFAULT_PACKAGES
                .iter()
                .map(|p| (*p).to_string())
                .collect(),
        }
    }

    /// Sets `key` to `value` after checking it; an empty value removes the
    /// key. `packages` and `base_packages` take a comma-separated list;
    /// `base_packages` also takes [`NO_PACKAGES`] for an empty list (an
    /// empty value brings the default back).
    ///
    /// # Errors
    /// [`Error::UnknownKey`], [`Error::Invalid`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let value = value.trim();
        let clear = value.is_empty();
        let opt = |v: Result<String>| -> Result<Option<String>> {
            if clear { Ok(None) } else { v.map(Some) }
        };
        match key {
            "provider" => self.provider = opt(parse_provider(value).map(|p| p.name().to_string()))?,
            "api_token" => self.api_token = opt(validate_secret(key, value))?,
            "agent_token" => self.agent_token = opt(validate_secret(key, value))?,
            "region" => self.region = opt(validate_slug(key, value))?,
            "size" => self.size = opt(validate_slug(key, value))?,
            "image" => self.image = opt(validate_slug(key, value))?,
            "idle_timeout" => {
                self.idle_timeout = opt(parse_idle_timeout(value).map(|_| value.to_string()))?
            }
            "ttl" => self.ttl = opt(parse_ttl(value).map(|_| value.to_string()))?,
            "self_destroy" => {
                self.self_destroy =
                    opt(parse_on_off(key, value)
                        .map(|on| if on { "on" } else { "off" }.to_string()))?
            }
            "self_destroy_token" => self.self_destroy_token = opt(validate_secret(key, value))?,
            "ssh_user" => self.ssh_user = opt(validate_user(value))?,
            "dotfiles" => self.dotfiles = opt(validate_repo(value))?,
            "ssh_key_path" => {
                self.ssh_key_path = if clear {
                    None
                } else {
                    Some(validate_key_path(value)?)
                }
            }
            "local_network" => {
                self.local_network = opt(parse_local_network(value).map(|n| match n {
                    crate::provider::local::LocalNetwork::Nat => "nat".to_string(),
                    crate::provider::local::LocalNetwork::Isolated => "isolated".to_string(),
                }))?
            }
            "local_qemu" => {
                self.local_qemu = if clear {
                    None
                } else {
                    Some(expand_home(value))
                }
            }
            "aws_profile" => self.aws_profile = opt(validate_slug(key, value))?,
            "aws_regions" => {
                self.aws_regions = value
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(|r| validate_slug(key, r))
                    .collect::<Result<_>>()?
            }
            "aws_ssh_cidr" => self.aws_ssh_cidr = opt(checked(key, value, crate::validate::cidr))?,
            "proxmox_url" => self.proxmox_url = opt(proxmox_url(value))?,
            "proxmox_template" => {
                self.proxmox_template = if clear {
                    None
                } else {
                    Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n >= 100)
                            .ok_or_else(|| Error::Invalid {
                                key: key.into(),
                                value: value.into(),
                                reason: "a Proxmox VM id (100 or more)".into(),
                            })?,
                    )
                }
            }
            "proxmox_node" => self.proxmox_node = opt(validate_slug(key, value))?,
            "proxmox_user" => {
                let ok = value.split_once('@').is_some_and(|(u, realm)| {
                    crate::validate::slug(u).is_ok() && crate::validate::slug(realm).is_ok()
                });
                self.proxmox_user = opt(if ok {
                    Ok(value.to_string())
                } else {
                    Err(Error::Invalid {
                        key: key.into(),
                        value: value.into(),
                        reason: "USER@REALM, such as root@pam".into(),
                    })
                })?
            }
            "proxmox_fingerprint" => {
                self.proxmox_fingerprint = opt(crate::provider::parse_sha256_fingerprint(value)
                    .map(|_| value.to_string())
                    .map_err(|reason| Error::Invalid {
                        key: key.into(),
                        value: value.into(),
                        reason,
                    }))?
            }
            "proxmox_full_clone" => {
                self.proxmox_full_clone =
                    opt(parse_on_off(key, value)
                        .map(|on| if on { "on" } else { "off" }.to_string()))?
            }
            "proxmox_storage" => self.proxmox_storage = opt(validate_slug(key, value))?,
            "proxmox_node_ssh" => {
                self.proxmox_node_ssh = opt(node_ssh(value).map(|_| value.to_string()))?
            }
            "proxmox_snippets" => {
                self.proxmox_snippets = opt(snippets(value).map(|_| value.to_string()))?
            }
            "proxmox_ipconfig" => {
                self.proxmox_ipconfig = opt(crate::provider::proxmox::ipconfig::parse(value)
                    .map(|_| value.to_string())
                    .map_err(|reason| Error::Invalid {
                        key: key.into(),
                        value: value.into(),
                        reason,
                    }))?
            }
            "packages" => self.packages = package_list(key, value)?,
            "base_packages" => {
                self.base_packages = if clear {
                    None
                } else if value.eq_ignore_ascii_case(NO_PACKAGES) {
                    Some(Vec::new())
                } else {
                    Some(package_list(key, value)?)
                }
            }
            other => {
                return Err(Error::UnknownKey {
                    key: other.to_string(),
                    suggestions: suggest(other, KEYS.iter().map(|(k, _)| *k))
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                });
            }
        }
        Ok(())
    }

    /// Writes the file with mode 0600, through a temporary file and a
    /// rename, creating the directory if needed.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let text = serde_yaml_ng::to_string(self).map_err(|e| io(std::io::Error::other(e)))?;
        let text = format!(
            "# spuff configuration: `spuff config --help` lists the keys.\n{}",
            if text.trim() == "{}" { "" } else { &text }
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("yaml.tmp");
        let _ = std::fs::remove_file(&tmp);
        crate::platform::create_private_file(&tmp).map_err(io)?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`).
///
/// # Errors
/// [`Error::Invalid`] for anything else.
pub fn parse_on_off(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(Error::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: "write on or off".to_string(),
        }),
    }
}

fn validate_secret(key: &str, value: &str) -> Result<String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid {
            key: key.to_string(),
            value: "***".to_string(),
            reason: "a token has no spaces or control characters".to_string(),
        });
    }
    Ok(value.to_string())
}

fn validate_key_path(value: &str) -> Result<PathBuf> {
    let path = expand_home(value);
    if !path.is_file() {
        return Err(Error::Invalid {
            key: "ssh_key_path".to_string(),
            value: value.to_string(),
            reason: "no such file".to_string(),
        });
    }
    Ok(path)
}

/// Replaces a leading `~` with the home directory.
pub fn expand_home(value: &str) -> PathBuf {
    if let Some(rest) = value.strip_prefix("~/").or(value.strip_prefix("~\\"))
        && let Some(home) = dirs::home_dir()
    {
        return home.join(rest);
    }
    if value == "~"
        && let Some(home) = dirs::home_dir()
    {
        return home;
    }
    PathBuf::from(value)
}

/// Shows a secret as its last four characters: `****abcd`.
pub fn mask(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if secret.chars().count() <= 8 {
        "****".to_string()
    } else {
        format!("****{tail}")
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    // The profile directory's inherited ACL keeps other users out.
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn settings_should_apply_defaults_for_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load(&dir.path().join("config.yaml"), no_env).unwrap();
        assert!(!s.exists);
        assert_eq!(s.provider, ProviderType::Local);
        assert_eq!(s.provider_choice, ProviderChoice::NoCloud);
        assert_eq!(s.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        assert_eq!(s.ssh_user, "dev");
        assert!(s.token.is_none());
    }

    #[test]
    fn without_a_provider_a_cloud_token_should_pick_its_cloud_else_local() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let load = |vars: &'static [(&'static str, &'static str)]| {
            Settings::load(&path, move |v: &str| {
                vars.iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, x)| x.to_string())
            })
            .unwrap()
        };
        let s = load(&[("HCLOUD_TOKEN", "h")]);
        assert_eq!(
            (s.provider, s.provider_choice),
            (
                ProviderType::Hetzner,
                ProviderChoice::TokenInEnv("HCLOUD_TOKEN")
            )
        );
        assert_eq!(
            s.token.map(|t| t.expose().to_string()).as_deref(),
            Some("h")
        );
        let s = load(&[("DIGITALOCEAN_TOKEN", "d")]);
        assert_eq!(s.provider, ProviderType::DigitalOcean);
        let s = load(&[("SPUFF_API_TOKEN", "x")]);
        assert_eq!(
            (s.provider, s.provider_choice),
            (ProviderType::DigitalOcean, ProviderChoice::BareToken)
        );
        // Empty variables count as unset.
        let s = load(&[("HETZNER_TOKEN", " ")]);
        assert_eq!(
            (s.provider, s.provider_choice),
            (ProviderType::Local, ProviderChoice::NoCloud)
        );
        // A configured provider wins over any token.
        std::fs::write(&path, "provider: local\n").unwrap();
        let s = load(&[("HCLOUD_TOKEN", "h")]);
        assert_eq!(
            (s.provider, s.provider_choice),
            (ProviderType::Local, ProviderChoice::Configured)
        );
        std::fs::write(&path, "local_network: sealed\n").unwrap();
        let e = Settings::load(&path, no_env).expect_err("bad network");
        assert!(e.to_string().contains("nat or isolated"), "{e}");
    }

    #[test]
    fn settings_should_read_the_original_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "provider: hetzner\napi_token: file-token-123\nregion: nbg1\nsize: cx22\n\
             idle_timeout: 30m\nssh_user: alice\npackages: [ripgrep, jq]\nfuture_key: 1\nregoin: x\n",
        )
        .unwrap();
        let s = Settings::load(&path, no_env).unwrap();
        assert_eq!(s.provider, ProviderType::Hetzner);
        assert_eq!(s.token.as_ref().unwrap().expose(), "file-token-123");
        assert_eq!(s.token_source, Some(TokenSource::File));
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(s.file.packages, ["ripgrep", "jq"]);
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("\"regoin\"") && w.contains("region"))
        );
        assert!(s.warnings.iter().any(|w| w.contains("future_key")));
    }

    #[test]
    fn token_should_come_from_env_before_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "provider: hcloud\napi_token: file\n").unwrap();
        let env = |v: &str| match v {
            "HCLOUD_TOKEN" => Some("hcloud-env".to_string()),
            "DIGITALOCEAN_TOKEN" => Some("wrong-provider".to_string()),
            _ => None,
        };
        let s = Settings::load(&path, env).unwrap();
        assert_eq!(s.token.unwrap().expose(), "hcloud-env");
        assert_eq!(s.token_source, Some(TokenSource::Env("HCLOUD_TOKEN")));
        let env = |v: &str| (v == TOKEN_VAR || v == "HCLOUD_TOKEN").then(|| format!("{v}-value"));
        let s = Settings::load(&path, env).unwrap();
        assert_eq!(s.token_source, Some(TokenSource::Env(TOKEN_VAR)));
    }

    #[test]
    fn parse_errors_should_carry_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "region: fra1\nidle_timeout: [\n").unwrap();
        match Settings::load(&path, no_env) {
            Err(Error::Parse {
                location: Some((line, _)),
                ..
            }) => assert!(line >= 2),
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, "idle_timeout: soon\n").unwrap();
        let e = Settings::load(&path, no_env).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
    }

    #[test]
    fn idle_timeout_should_parse_durations_and_off() {
        assert_eq!(
            parse_idle_timeout("2h").unwrap(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_idle_timeout("90s").unwrap(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_idle_timeout("1h 30m").unwrap(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_idle_timeout("off").unwrap(), None);
        assert!(parse_idle_timeout("10s").is_err());
        assert!(parse_idle_timeout("two hours").is_err());
        assert_eq!(parse_ttl("1d").unwrap(), Some(Duration::from_secs(86400)));
        assert_eq!(parse_ttl("off").unwrap(), None);
        let e = parse_ttl("30s").unwrap_err().to_string();
        assert!(e.contains("ttl"), "{e}");
    }

    #[test]
    fn set_should_validate_and_save_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.yaml");
        let mut file = ConfigFile::default();
        file.set("provider", "do").unwrap();
        file.set("region", "fra1").unwrap();
        file.set("packages", "ripgrep, jq").unwrap();
        file.set("api_token", "dop_v1_secret").unwrap();
        assert!(matches!(
            file.set("regoin", "x"),
            Err(Error::UnknownKey { .. })
        ));
        assert!(file.set("ssh_user", "Bad User").is_err());
        assert!(file.set("ssh_user", "root").is_err());
        assert!(file.set("packages", "rm -rf").is_err());
        assert!(file.set("dotfiles", "http://insecure").is_err());
        assert!(file.set("region", "fra1; rm").is_err());
        file.save(&path).unwrap();
        let s = Settings::load(&path, no_env).unwrap();
        assert_eq!(s.file.provider.as_deref(), Some("digitalocean"));
        assert_eq!(s.file.packages, ["ripgrep", "jq"]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        file.set("region", "").unwrap();
        assert!(file.region.is_none());
    }

    #[test]
    fn base_packages_should_default_be_replaced_and_be_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let mut file = ConfigFile::default();
        assert_eq!(file.base_packages(), crate::cloudinit::DEFAULT_PACKAGES);

        file.set("base_packages", "git, curl").unwrap();
        assert_eq!(file.base_packages(), ["git", "curl"]);
        assert!(file.set("base_packages", "git, rm -rf").is_err());
        assert_eq!(file.base_packages(), ["git", "curl"], "unchanged");

        file.set("base_packages", "none").unwrap();
        assert!(file.base_packages().is_empty());
        file.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("base_packages: []"), "{text}");
        let s = Settings::load(&path, no_env).unwrap();
        assert_eq!(s.file.base_packages, Some(vec![]));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);

        file.set("base_packages", "").unwrap();
        assert_eq!(file.base_packages, None);
        assert_eq!(file.base_packages(), crate::cloudinit::DEFAULT_PACKAGES);

        // As written by hand.
        std::fs::write(&path, "base_packages: [git]\n").unwrap();
        let s = Settings::load(&path, no_env).unwrap();
        assert_eq!(s.file.base_packages(), ["git"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_token_in_a_readable_file_should_warn() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "api_token: abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = Settings::load(&path, no_env).unwrap();
        assert!(
            s.warnings.iter().any(|w| w.contains("chmod 600")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn mask_should_keep_only_the_tail() {
        assert_eq!(mask("dop_v1_0123456789abcdef"), "****cdef");
        assert_eq!(mask("short"), "****");
    }
}

#[cfg(test)]
mod proxmox_tests {
    use super::*;

    #[test]
    fn proxmox_settings_should_be_checked_and_normalised() {
        assert_eq!(
            proxmox_url("https://pve1.lan").ok().as_deref(),
            Some("https://pve1.lan:8006/api2/json/")
        );
        assert_eq!(
            proxmox_url("https://192.0.2.5:8443/").ok().as_deref(),
            Some("https://192.0.2.5:8443/api2/json/")
        );
        assert!(proxmox_url("http://pve1").is_err(), "TLS only");
        assert!(proxmox_url("https://pve 1").is_err());
        assert_eq!(
            node_ssh("root@pve1").ok(),
            Some(("root".into(), "pve1".into(), 22))
        );
        assert_eq!(
            node_ssh("ana@192.0.2.5:2222").ok(),
            Some(("ana".into(), "192.0.2.5".into(), 2222))
        );
        for bad in ["pve1", "root@", "root@pve1:0", "ro ot@pve1", "root@pve1;rm"] {
            assert!(node_ssh(bad).is_err(), "{bad}");
        }
        assert_eq!(
            snippets("local:/var/lib/vz/snippets").ok(),
            Some(("local".into(), "/var/lib/vz/snippets".into()))
        );
        for bad in ["local", "local:relative", "local:/a/../etc", "lo cal:/x"] {
            assert!(snippets(bad).is_err(), "{bad}");
        }
        let mut file = ConfigFile::default();
        file.set("proxmox_template", "9000").expect("template");
        assert_eq!(file.proxmox_template, Some(9000));
        assert!(file.set("proxmox_template", "12").is_err());
        file.set("proxmox_full_clone", "on").expect("on");
        assert_eq!(file.proxmox_full_clone.as_deref(), Some("on"));
        file.set("proxmox_ipconfig", "ip=10.0.0.9/24,gw=10.0.0.1")
            .expect("static");
        assert!(file.set("proxmox_ipconfig", "ip=10.0.0.9").is_err());
        assert!(file.set("proxmox_ipconfig", "ip=dhcp;x").is_err());
        assert_eq!(
            file.proxmox_ipconfig.as_deref(),
            Some("ip=10.0.0.9/24,gw=10.0.0.1")
        );
    }
}
