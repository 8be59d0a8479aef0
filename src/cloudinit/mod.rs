//! cloud-init user-data for spuff VMs: the `#cloud-config` document a new VM
//! boots with, and the steps that get the agent onto it.
//!
//! A VM is only as trustworthy as its first boot, and user-data is where that
//! boot is decided, so this module renders it from checked input only:
//!
//! - **Everything is validated first** (login name, public keys, package
//!   names, URLs, branch, hostname) and refused with a typed [`Error`].
//! - **Every value is escaped for where it lands**: YAML values become
//!   double-quoted scalars or literal blocks, values inside the bootstrap
//!   scripts become single-quoted shell words. The document is pure ASCII.
//! - **The host key is made by spuff** ([`HostKeyPair`], from
//!   [`ssh`](crate::ssh)), installed by the user-data and pinned by the CLI,
//!   so the first SSH connection is verified rather than trusted.
//! - **The agent's token stays out of argv and the environment**: it is in
//!   `/etc/spuff/agent.json` (0600, root), which the agent's unit points at.
//! - **Only root reaches the metadata service**: clouds serve the user-data
//!   (host private key, agent token) to any process that asks, for the VM's
//!   whole life; `bootcmd` runs [`METADATA_GUARD_SCRIPT`] on every boot to
//!   reject everyone else (nft, else iptables).
//! - **Size is checked** against the provider's limit ([`Limit`]); over it,
//!   the files are compressed (`gz+b64`) before giving up.
//!
//! The boot runs in two phases (phase 1 synchronous under cloud-init, phase 2
//! in the background) and reports progress in
//! [`BOOTSTRAP_STATUS_PATH`]. cloud-init itself installs no packages
//! (`package_update: false`, no `packages:`): phase 2 does, so the first login
//! waits for no apt. docs/cloud-init.md has the whole picture: files written,
//! status values, the agent's two delivery paths.
//!
//! # Examples
//!
//! ```
//! use spuff::cloudinit::{self, AgentSource, Config, Limit};
//! use spuff::ssh::HostKeyPair;
//! use spuff_agent_api::AgentConfig;
//!
//! # fn demo() -> Result<(), cloudinit::Error> {
//! let host_key = HostKeyPair::generate()?;
//! let config = Config {
//!     authorized_keys: vec![
//!         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgHLYZ0D1TAE1sVz0HkKvLfp7ivUGBbzLoZkRkRMdXz me@laptop".into(),
//!     ],
//!     ..Config::new(host_key.clone(), AgentConfig::new("a-long-random-token"), AgentSource::Upload)
//! };
//! let hetzner = spuff::provider::ProviderType::Hetzner.info();
//! let user_data = cloudinit::render_with_limit(&config, Limit::of(hetzner))?;
//! assert!(user_data.as_str().starts_with("#cloud-config\n"));
//! // Pin host_key.public_key() when connecting to the VM.
//! # Ok(()) }
//! # demo().unwrap();
//! ```

mod error;
pub(crate) mod escape;
mod first_login;
pub mod nocloud;

use std::io::Write as _;
use std::sync::OnceLock;

use crate::ssh::HostKeyPair;
use crate::validate;
use handlebars::Handlebars;
use serde::Serialize;
use spuff_agent_api::{
    AgentConfig, BINARY_PATH, BOOTSTRAP_LOG_PATH, BOOTSTRAP_STATUS_PATH, CONFIG_PATH,
};
use zeroize::Zeroizing;

pub use error::{Error, Result};
pub use first_login::{FirstLoginScript, first_login_script};

/// The directory spuff's scripts and the agent binary live in on the VM.
pub const SPUFF_DIR: &str = "/opt/spuff";
/// Phase 1 of the bootstrap, run by cloud-init and waited for.
pub const BOOTSTRAP_SYNC_PATH: &str = "/opt/spuff/bootstrap-sync.sh";
/// Phase 2 of the bootstrap, run in the background.
pub const BOOTSTRAP_ASYNC_PATH: &str = "/opt/spuff/bootstrap-async.sh";
/// `install-agent.sh URL SHA256 DEST`: verified download of the agent.
pub const INSTALL_AGENT_PATH: &str = "/opt/spuff/install-agent.sh";
/// The agent's systemd unit name.
pub const AGENT_UNIT: &str = "spuff-agent.service";
/// Where the agent's unit file is written.
pub const AGENT_UNIT_PATH: &str = "/etc/systemd/system/spuff-agent.service";
/// The transient systemd unit the bootstrap (phase 1, then phase 2) runs
/// as (`journalctl -u` it).
pub const BOOTSTRAP_UNIT: &str = "spuff-bootstrap";
/// Written once `bootcmd` has queued [`BOOTSTRAP_UNIT`]; without it,
/// `runcmd` starts the bootstrap itself.
pub const BOOTSTRAP_LAUNCHED_PATH: &str = "/run/spuff-bootstrap.launched";
/// The login shell snippet that reports an unfinished or failed bootstrap.
pub const PROFILE_PATH: &str = "/etc/profile.d/spuff.sh";
/// The sshd drop-in that limits the host keys to the pinned one.
pub const SSHD_CONFIG_PATH: &str = "/etc/ssh/sshd_config.d/50-spuff.conf";

/// The packages every VM gets unless [`Config::base_packages`] says
/// otherwise (the `base_packages` config key).
pub const DEFAULT_PACKAGES: &[&str] = &["git", "curl", "vim", "htop", "unzip", "build-essential"];

/// Files smaller than this are never compressed: gzip and base64 would
/// make them larger or barely smaller.
const COMPRESS_MIN: usize = 256;

const TEMPLATE_DOC: &str = "cloud-init.yaml.hbs";
const TEMPLATE_SYNC: &str = "bootstrap-sync.sh.hbs";
const TEMPLATE_ASYNC: &str = "bootstrap-async.sh.hbs";
const TEMPLATE_PROFILE: &str = "profile.sh.hbs";

/// The templates, compiled into the binary (rendered by [`render`]).
const TEMPLATES: &[(&str, &str)] = &[
    (
        TEMPLATE_DOC,
        include_str!("../../templates/cloud-init.yaml.hbs"),
    ),
    (
        TEMPLATE_SYNC,
        include_str!("../../templates/bootstrap-sync.sh.hbs"),
    ),
    (
        TEMPLATE_ASYNC,
        include_str!("../../templates/bootstrap-async.sh.hbs"),
    ),
    (
        TEMPLATE_PROFILE,
        include_str!("../../templates/profile.sh.hbs"),
    ),
];

/// `templates/install-agent.sh`: static, its inputs are arguments.
pub const INSTALL_AGENT_SCRIPT: &str = include_str!("../../templates/install-agent.sh");
/// `templates/spuff-agent.service`: static, it names only fixed paths.
pub const AGENT_UNIT_FILE: &str = include_str!("../../templates/spuff-agent.service");
const SSHD_CONFIG_FILE: &str = include_str!("../../templates/sshd-spuff.conf");
/// `templates/metadata-guard.sh`: static. Run by `bootcmd` on every boot so
/// that only root can reach the provider's metadata service, which serves
/// the user-data (host private key, agent token) to whoever asks.
pub const METADATA_GUARD_SCRIPT: &str = include_str!("../../templates/metadata-guard.sh");

/// How the agent binary reaches the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// Phase 1 downloads it with `install-agent.sh`, which refuses it unless
    /// its SHA-256 matches; the checksum travels in the user-data.
    Download {
        /// An `https://` URL.
        url: String,
        /// The binary's SHA-256, 64 hex digits.
        sha256: String,
    },
    /// The CLI uploads it over SFTP once SSH is up (`spuff up --dev`), with
    /// [`install_uploaded_agent`](crate::vm::install_uploaded_agent). The unit is enabled but not started at
    /// boot: its `ConditionPathExists` keeps it quiet until the binary exists.
    Upload,
}

/// A dotfiles repository, cloned as the user into `~/dotfiles` by phase 2;
/// its `install.sh`, if any, is then run as the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dotfiles {
    /// `https://…` or `git@host:path`. An SSH URL needs a key on the VM that
    /// the host accepts; spuff installs none.
    pub url: String,
    /// The branch or tag; the remote's default branch when `None`.
    pub branch: Option<String>,
}

/// What a VM's user-data is made from.
///
/// Start from [`Config::new`], which fills in the defaults, and set what you
/// need: `Config { authorized_keys: …, ..Config::new(key, agent, source) }`.
/// At least one authorized key is required.
#[derive(Debug, Clone)]
pub struct Config {
    /// The login user, created with passwordless sudo and a locked password
    /// (`dev`). Lowercase letters, digits, `_` and `-`; not `root`.
    pub username: String,
    /// Public keys allowed to log in as the user, OpenSSH one-line format
    /// (`ssh-ed25519 AAAA… comment`). At least one.
    pub authorized_keys: Vec<String>,
    /// The base packages ([`DEFAULT_PACKAGES`]); empty for none, as on an
    /// image that already has them or a VM without network. Phase 2
    /// installs them with [`Config::extra_packages`], in the background:
    /// cloud-init's own `packages:` ran before phase 1 and held the first
    /// login up by minutes (issue 11).
    pub base_packages: Vec<String>,
    /// The user's own packages, installed by phase 2 with the base ones
    /// (empty).
    pub extra_packages: Vec<String>,
    /// A dotfiles repository to clone in phase 2 (none).
    pub dotfiles: Option<Dotfiles>,
    /// The VM's hostname; the provider's choice when `None`.
    pub hostname: Option<String>,
    /// The VM's time zone (`Europe/Berlin`); the image's (usually UTC) when `None`.
    pub timezone: Option<String>,
    /// The VM's SSH host key, generated here and pinned by the caller.
    pub host_key: HostKeyPair,
    /// The agent's configuration, written to [`CONFIG_PATH`] (0600, root).
    /// Its token must not be empty.
    pub agent: AgentConfig,
    /// How the agent binary gets there.
    pub agent_source: AgentSource,
}

impl Config {
    /// Defaults: user `dev`, [`DEFAULT_PACKAGES`], no extra packages, no
    /// dotfiles, the provider's hostname, the image's time zone, and no
    /// authorized keys yet (add at least one).
    pub fn new(host_key: HostKeyPair, agent: AgentConfig, agent_source: AgentSource) -> Self {
        Config {
            username: "dev".into(),
            authorized_keys: Vec::new(),
            base_packages: DEFAULT_PACKAGES.iter().map(|p| (*p).to_string()).collect(),
            extra_packages: Vec::new(),
            dotfiles: None,
            hostname: None,
            timezone: None,
            host_key,
            agent,
            agent_source,
        }
    }
}

/// A provider's user-data size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The most bytes the provider accepts.
    pub bytes: usize,
    /// The provider, for error messages.
    pub provider: Option<&'static str>,
}

impl Limit {
    /// The limit of a provider, from its [`ProviderInfo`](crate::provider::ProviderInfo).
    pub const fn of(info: &crate::provider::ProviderInfo) -> Limit {
        Limit {
            bytes: info.user_data_limit,
            provider: Some(info.name),
        }
    }

    /// A limit of `bytes` with no provider name.
    pub const fn bytes(bytes: usize) -> Limit {
        Limit {
            bytes,
            provider: None,
        }
    }
}

/// Rendered user-data: the text to hand to the provider.
///
/// It holds secrets (the host's private key, the agent token), so it is
/// wiped from memory on drop and `Debug` shows only its size.
#[derive(Clone)]
pub struct UserData {
    text: Zeroizing<String>,
    compressed: bool,
}

impl std::fmt::Debug for UserData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserData")
            .field("len", &self.len())
            .field("compressed", &self.compressed)
            .finish_non_exhaustive()
    }
}

impl UserData {
    /// The `#cloud-config` document.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its size in bytes, the figure providers limit.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Never true: user-data always starts with `#cloud-config`.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether the files were compressed (`encoding: gz+b64`) to fit a limit.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }
}

/// Renders the user-data for `config`, files uncompressed, without a size
/// check.
///
/// # Errors
/// [`Error::Invalid`] naming the first value refused; [`Error::Template`]
/// only on a bug.
pub fn render(config: &Config) -> Result<UserData> {
    let checked = validate(config)?;
    render_checked(config, &checked, false)
}

/// Renders the user-data for `config` and makes sure it fits `limit`: when
/// it does not, the files are compressed (`gz+b64`, which cloud-init decodes)
/// and the size checked again. [`UserData::is_compressed`] says which
/// happened.
///
/// # Errors
/// [`Error::TooLarge`] when even the compressed form is over the limit; the
/// errors of [`render`].
pub fn render_with_limit(config: &Config, limit: Limit) -> Result<UserData> {
    let checked = validate(config)?;
    let plain = render_checked(config, &checked, false)?;
    if plain.len() <= limit.bytes {
        return Ok(plain);
    }
    let packed = render_checked(config, &checked, true)?;
    if packed.len() <= limit.bytes {
        return Ok(packed);
    }
    Err(Error::TooLarge {
        size: packed.len(),
        limit: limit.bytes,
        provider: limit.provider,
        compressed: true,
    })
}

/// Values that validation normalised (public keys re-encoded).
struct Checked {
    authorized_keys: Vec<String>,
}

fn invalid(field: impl Into<String>, value: Option<&str>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        value: value.map(|v| v.chars().take(120).collect()),
        reason: reason.into(),
    }
}

fn validate(config: &Config) -> Result<Checked> {
    validate_username(&config.username)?;
    if config.authorized_keys.is_empty() {
        return Err(invalid(
            "authorized_keys",
            None,
            "at least one public key is needed to log in",
        ));
    }
    let authorized_keys = config
        .authorized_keys
        .iter()
        .enumerate()
        .map(|(i, k)| normalize_public_key(&format!("authorized_keys[{i}]"), k))
        .collect::<Result<Vec<_>>>()?;
    for (field, list) in [
        ("base_packages", &config.base_packages),
        ("extra_packages", &config.extra_packages),
    ] {
        for (i, p) in list.iter().enumerate() {
            validate_package(&format!("{field}[{i}]"), p)?;
        }
    }
    if let Some(d) = &config.dotfiles {
        validate_repo_url("dotfiles.url", &d.url)?;
        if let Some(b) = &d.branch {
            validate_branch("dotfiles.branch", b)?;
        }
    }
    if let Some(h) = &config.hostname {
        validate_hostname(h)?;
    }
    if let Some(tz) = &config.timezone {
        validate_timezone(tz)?;
    }
    if config.agent.token.is_empty() {
        return Err(invalid("agent.token", None, "must not be empty"));
    }
    if let AgentSource::Download { url, sha256 } = &config.agent_source {
        if !url.starts_with("https://") || !validate::is_url_text(&url["https://".len()..]) {
            return Err(invalid(
                "agent_source.url",
                Some(url),
                "must be an https:// URL without spaces or control characters",
            ));
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "agent_source.sha256",
                Some(sha256),
                "must be a SHA-256 digest, 64 hex digits",
            ));
        }
    }
    Ok(Checked { authorized_keys })
}

fn validate_username(name: &str) -> Result<()> {
    validate::username(name).map_err(|r| invalid("username", Some(name), r))
}

/// Parses an OpenSSH public key line and returns it re-encoded, so that
/// only a key and its comment reach authorized_keys.
fn normalize_public_key(field: &str, line: &str) -> Result<String> {
    let line = line.trim();
    // A line break in the comment would start a second authorized_keys line.
    if line
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(invalid(
            field,
            None,
            "contains a line break or control character; give one key per entry",
        ));
    }
    let key = russh::keys::PublicKey::from_openssh(line)
        .map_err(|e| invalid(field, None, format!("not an OpenSSH public key: {e}")))?;
    key.to_openssh()
        .map_err(|e| invalid(field, None, format!("cannot encode the key: {e}")))
}

fn validate_package(field: &str, name: &str) -> Result<()> {
    validate::package(name).map_err(|r| invalid(field, Some(name), r))
}

fn validate_repo_url(field: &str, url: &str) -> Result<()> {
    validate::repo_url(url).map_err(|r| invalid(field, Some(url), r))
}

fn validate_branch(field: &str, branch: &str) -> Result<()> {
    validate::branch(branch).map_err(|r| invalid(field, Some(branch), r))
}

fn validate_hostname(name: &str) -> Result<()> {
    validate::hostname(name).map_err(|r| invalid("hostname", Some(name), r))
}

fn validate_timezone(tz: &str) -> Result<()> {
    validate::timezone(tz).map_err(|r| invalid("timezone", Some(tz), r))
}

/// The template helpers. A helper whose argument is not a string (a typo'd
/// field in strict mode, a number) fails the render instead of guessing.
mod helpers {
    // `handlebars_helper!` declares `pub struct`s without docs; they are
    // private to this module.
    #![allow(missing_docs)]
    use handlebars::handlebars_helper;

    use super::escape;

    handlebars_helper!(yaml: |v: str| escape::yaml_quote(v));
    handlebars_helper!(yaml_file: |v: str, indent: u64| {
        escape::yaml_block(v, usize::try_from(indent).unwrap_or(0))
    });
    handlebars_helper!(sh: |v: str| escape::sh_quote(v));
}

/// The registry, built once. Templates are compiled in, so a parse error is
/// a bug; it is reported as [`Error::Template`] rather than a panic.
fn registry() -> Result<&'static Handlebars<'static>> {
    static REGISTRY: OnceLock<std::result::Result<Handlebars<'static>, (&'static str, String)>> =
        OnceLock::new();
    let built = REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        // Output is YAML and shell, not HTML: escaping is the helpers' job,
        // and a value used without one fails review, not silently.
        hb.register_escape_fn(handlebars::no_escape);
        // A misspelt or missing field is an error, not an empty string.
        hb.set_strict_mode(true);
        hb.register_helper("yaml", Box::new(helpers::yaml));
        hb.register_helper("yaml_file", Box::new(helpers::yaml_file));
        hb.register_helper("sh", Box::new(helpers::sh));
        for (name, text) in TEMPLATES {
            hb.register_template_string(name, text)
                .map_err(|e| (*name, e.to_string()))?;
        }
        Ok(hb)
    });
    built
        .as_ref()
        .map_err(|(template, message)| Error::Template {
            template,
            message: message.clone(),
        })
}

fn render_template(name: &'static str, data: &impl Serialize) -> Result<String> {
    registry()?.render(name, data).map_err(|e| Error::Template {
        template: name,
        message: e.to_string(),
    })
}

/// What the shell templates see. Every field is always present (`None` is
/// `null`) because strict mode refuses missing ones.
#[derive(Serialize)]
struct ScriptContext<'a> {
    status_path: &'static str,
    agent_unit: &'static str,
    log_path: &'static str,
    spuff_dir: &'static str,
    binary_path: &'static str,
    install_script: &'static str,
    username: &'a str,
    agent_download: Option<DownloadContext<'a>>,
    /// Everything phase 2 installs, base packages first, each once; empty
    /// means phase 2 runs no apt at all.
    packages: Vec<&'a str>,
    dotfiles: Option<&'a Dotfiles>,
}

#[derive(Serialize)]
struct DownloadContext<'a> {
    url: &'a str,
    sha256: String,
}

/// One `write_files` entry.
#[derive(Serialize)]
struct FileEntry {
    path: &'static str,
    owner: &'static str,
    permissions: &'static str,
    encoding: Option<&'static str>,
    content: String,
}

/// What `cloud-init.yaml.hbs` sees.
#[derive(Serialize)]
struct DocContext<'a> {
    hostname: Option<&'a str>,
    timezone: Option<&'a str>,
    username: &'a str,
    authorized_keys: &'a [String],
    host_key_private: &'a str,
    host_key_public: String,
    files: Vec<FileEntry>,
    bootcmd: Vec<Vec<String>>,
    runcmd: Vec<Vec<String>>,
}

/// What the user-data does, apart from the user: its files (compressed
/// when asked and worth it), and the commands of `bootcmd` and `runcmd`.
struct Parts {
    files: Vec<FileEntry>,
    compressed: bool,
    bootcmd: Vec<Vec<String>>,
    runcmd: Vec<Vec<String>>,
}

fn render_checked(config: &Config, checked: &Checked, compress: bool) -> Result<UserData> {
    let Parts {
        files,
        compressed,
        bootcmd,
        runcmd,
    } = parts(config, compress)?;
    let doc = DocContext {
        hostname: config.hostname.as_deref(),
        timezone: config.timezone.as_deref(),
        username: &config.username,
        authorized_keys: &checked.authorized_keys,
        host_key_private: config.host_key.private_key_openssh().as_str(),
        host_key_public: config.host_key.public_key_openssh(),
        files,
        bootcmd,
        runcmd,
    };
    let text = Zeroizing::new(render_template(TEMPLATE_DOC, &doc)?);
    Ok(UserData { text, compressed })
}

fn parts(config: &Config, compress: bool) -> Result<Parts> {
    let scripts = ScriptContext {
        status_path: BOOTSTRAP_STATUS_PATH,
        agent_unit: AGENT_UNIT,
        log_path: BOOTSTRAP_LOG_PATH,
        spuff_dir: SPUFF_DIR,
        binary_path: BINARY_PATH,
        install_script: INSTALL_AGENT_PATH,
        username: &config.username,
        agent_download: match &config.agent_source {
            AgentSource::Download { url, sha256 } => Some(DownloadContext {
                url,
                sha256: sha256.to_ascii_lowercase(),
            }),
            AgentSource::Upload => None,
        },
        packages: phase_2_packages(config),
        dotfiles: config.dotfiles.as_ref(),
    };
    let agent_json = serde_json::to_string_pretty(&config.agent).map_err(|e| Error::Template {
        template: "agent.json",
        message: e.to_string(),
    })? + "\n";

    let file = |path, permissions, content: String| FileEntry {
        path,
        owner: "root:root",
        permissions,
        encoding: None,
        content,
    };
    let mut files = vec![
        file(INSTALL_AGENT_PATH, "0755", INSTALL_AGENT_SCRIPT.to_string()),
        file(
            BOOTSTRAP_SYNC_PATH,
            "0755",
            render_template(TEMPLATE_SYNC, &scripts)?,
        ),
        file(
            BOOTSTRAP_ASYNC_PATH,
            "0755",
            render_template(TEMPLATE_ASYNC, &scripts)?,
        ),
        file(AGENT_UNIT_PATH, "0644", AGENT_UNIT_FILE.to_string()),
        file(CONFIG_PATH, "0600", agent_json),
        file(
            PROFILE_PATH,
            "0644",
            render_template(TEMPLATE_PROFILE, &scripts)?,
        ),
        file(SSHD_CONFIG_PATH, "0644", SSHD_CONFIG_FILE.to_string()),
    ];
    let mut compressed = false;
    if compress {
        for f in &mut files {
            if f.content.len() < COMPRESS_MIN {
                continue;
            }
            let packed = gzip_base64(f.content.as_bytes());
            if packed.len() < f.content.len() {
                f.content = packed;
                f.encoding = Some("gz+b64");
                compressed = true;
            }
        }
    }

    // The bootstrap runs as its own transient unit, queued from `bootcmd`
    // to start as soon as cloud-init's network stage (users, keys,
    // write_files) is done: beside sshd, not after cloud-config and
    // cloud-final, which took 20-25 s under QEMU emulation. `--no-block`
    // matters: bootcmd runs inside cloud-init.service, which the unit is
    // ordered after, so waiting for it would never end. Phase 2 follows
    // phase 1 in the same unit, outside cloud-init's process tree.
    let launch = |block: &str| {
        format!(
            "systemd-run --quiet {block}--collect --unit={BOOTSTRAP_UNIT} \
             --property=After=cloud-init.service \
             /bin/sh -c '{BOOTSTRAP_SYNC_PATH}; exec {BOOTSTRAP_ASYNC_PATH}'"
        )
    };
    let bootcmd = vec![
        // Every boot: firewall rules do not survive a reboot.
        vec!["sh".to_string(), "-c".into(), METADATA_GUARD_SCRIPT.into()],
        vec![
            "cloud-init-per".to_string(),
            "instance".into(),
            "spuff-bootstrap-reset".into(),
            "rm".into(),
            "-f".into(),
            BOOTSTRAP_STATUS_PATH.into(),
        ],
        vec![
            "cloud-init-per".to_string(),
            "instance".into(),
            "spuff-bootstrap-launch".into(),
            "sh".into(),
            "-c".into(),
            format!(
                "{} && touch {BOOTSTRAP_LAUNCHED_PATH} || true",
                launch("--no-block ")
            ),
        ],
    ];
    // The safety net: had the early launch failed, the bootstrap still runs
    // (later), and a failure here shows in cloud-init's own status.
    let runcmd = vec![vec![
        "sh".to_string(),
        "-c".into(),
        format!("[ -e {BOOTSTRAP_LAUNCHED_PATH} ] || {}", launch("")),
    ]];

    Ok(Parts {
        files,
        compressed,
        bootcmd,
        runcmd,
    })
}

/// The base packages, then the extra ones, without repeats: one
/// `apt-get install` for all of them.
fn phase_2_packages(config: &Config) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for p in config.base_packages.iter().chain(&config.extra_packages) {
        if !out.contains(&p.as_str()) {
            out.push(p);
        }
    }
    out
}

/// gzip, then base64 on one line: cloud-init's `gz+b64` encoding.
fn gzip_base64(data: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(data);
    let bytes = gz.finish().unwrap_or_default();
    data_encoding::BASE64.encode(&bytes)
}

#[cfg(test)]
mod tests;
