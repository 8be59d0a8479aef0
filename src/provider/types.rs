//! Provider-agnostic types: what spuff asks a cloud for and what it gets back.
//!
//! Everything here is plain data so that the CLI, the state store and every
//! provider speak the same language; each provider maps these to its own API
//! (an [`ImageSpec::Ubuntu`] version becomes a DigitalOcean slug or a Hetzner
//! image name). Timestamps stay the provider's text: real APIs send forms a
//! strict RFC 3339 parser rejects (Hetzner omits seconds in some bodies).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

/// An API token. Its `Debug` and `Display` never show the value, so it cannot
/// leak through logs, errors or `{:?}` of a config struct.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The token itself, for the one place that needs it: the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no token was given.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// The OS image to boot, independent of any provider's naming.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageSpec {
    /// Ubuntu by release (`"24.04"`); the provider maps it to its image name.
    Ubuntu(String),
    /// Debian by major version (`"12"`).
    Debian(String),
    /// A provider-specific image id or slug, passed through.
    Custom(String),
    /// A snapshot id to restore from.
    Snapshot(String),
}

impl ImageSpec {
    /// Ubuntu `version`.
    pub fn ubuntu(version: impl Into<String>) -> Self {
        ImageSpec::Ubuntu(version.into())
    }

    /// Debian `version`.
    pub fn debian(version: impl Into<String>) -> Self {
        ImageSpec::Debian(version.into())
    }
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec::Ubuntu("24.04".into())
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSpec::Ubuntu(v) => write!(f, "ubuntu {v}"),
            ImageSpec::Debian(v) => write!(f, "debian {v}"),
            ImageSpec::Custom(id) => write!(f, "image {id}"),
            ImageSpec::Snapshot(id) => write!(f, "snapshot {id}"),
        }
    }
}

/// What to create. `name` must be unique among the account's spuff VMs: the
/// provider looks the VM up by it when a create's response was lost, instead
/// of creating a second one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceRequest {
    /// VM name (`spuff-a1b2c3d4`).
    pub name: String,
    /// Region or location slug (`fra1`, `nbg1`).
    pub region: String,
    /// Size or server type slug (`s-2vcpu-4gb`, `cx22`).
    pub size: String,
    /// OS image.
    pub image: ImageSpec,
    /// cloud-init user data, plain text (the provider encodes it if its API needs that).
    pub user_data: Option<String>,
    /// Labels; spuff's own marker label is added by the provider.
    pub labels: BTreeMap<String, String>,
    /// SSH keys to install, as provider key ids or fingerprints (see
    /// [`crate::provider::Provider::ensure_ssh_key`]).
    pub ssh_keys: Vec<String>,
}

impl InstanceRequest {
    /// A request with the required fields; the rest default.
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        size: impl Into<String>,
    ) -> Self {
        InstanceRequest {
            name: name.into(),
            region: region.into(),
            size: size.into(),
            ..Default::default()
        }
    }

    /// Sets the image.
    pub fn with_image(mut self, image: ImageSpec) -> Self {
        self.image = image;
        self
    }

    /// Sets cloud-init user data.
    pub fn with_user_data(mut self, user_data: impl Into<String>) -> Self {
        self.user_data = Some(user_data.into());
        self
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds an SSH key id or fingerprint.
    pub fn with_ssh_key(mut self, key: impl Into<String>) -> Self {
        self.ssh_keys.push(key.into());
        self
    }
}

/// A VM's lifecycle state, normalised across providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InstanceStatus {
    /// Being created or booting.
    New,
    /// Running.
    Active,
    /// Powered off.
    Off,
    /// Being stopped, started, rebuilt or migrated.
    Transitioning,
    /// Being deleted.
    Deleting,
    /// Archived (DigitalOcean) or otherwise out of service.
    Archive,
    /// A status this version of spuff does not know, kept verbatim.
    Unknown(String),
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceStatus::New => f.write_str("new"),
            InstanceStatus::Active => f.write_str("active"),
            InstanceStatus::Off => f.write_str("off"),
            InstanceStatus::Transitioning => f.write_str("transitioning"),
            InstanceStatus::Deleting => f.write_str("deleting"),
            InstanceStatus::Archive => f.write_str("archive"),
            InstanceStatus::Unknown(s) => write!(f, "unknown ({s})"),
        }
    }
}

/// A VM as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInstance {
    /// Provider id, as text (DigitalOcean and Hetzner ids are integers).
    pub id: String,
    /// VM name.
    pub name: String,
    /// Public IPv4 address, once assigned.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Public IPv6 address (for Hetzner, `::1` in the assigned /64).
    pub public_ipv6: Option<Ipv6Addr>,
    /// Private (VPC) IPv4 address.
    pub private_ipv4: Option<Ipv4Addr>,
    /// Lifecycle state.
    pub status: InstanceStatus,
    /// Region or location slug.
    pub region: String,
    /// Size or server type slug.
    pub size: String,
    /// Creation time as the provider wrote it.
    pub created_at: Option<String>,
    /// Labels (DigitalOcean tags `k:v` become `k = v`; a bare tag maps to an empty value).
    pub labels: BTreeMap<String, String>,
}

impl ProviderInstance {
    /// Ready for SSH: running and with a public IPv4 address.
    pub fn is_ready(&self) -> bool {
        self.status == InstanceStatus::Active && self.public_ipv4.is_some()
    }

    /// A short description of the state, for timeout errors and progress.
    pub fn describe_state(&self) -> String {
        match self.public_ipv4 {
            Some(ip) => format!("status {}, public IPv4 {ip}", self.status),
            None => format!("status {}, no public IPv4 yet", self.status),
        }
    }
}

/// A saved disk image of a VM.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Provider id, as text (DigitalOcean sends it as a string or an integer).
    pub id: String,
    /// Name or description.
    pub name: String,
    /// Creation time as the provider wrote it.
    pub created_at: Option<String>,
    /// Size in GB, when given.
    pub size_gb: Option<f64>,
    /// Regions where it can be used.
    pub regions: Vec<String>,
    /// The VM it was taken from, when known.
    pub source_instance: Option<String>,
}

/// An SSH public key registered with the provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyInfo {
    /// Provider id, as text.
    pub id: String,
    /// Key name in the account.
    pub name: String,
    /// The provider's fingerprint (MD5, colon-separated hex, for both DigitalOcean and Hetzner).
    pub fingerprint: String,
}

/// A VM size the provider offers.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeInfo {
    /// Slug (`s-2vcpu-4gb`).
    pub slug: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Disk in GB.
    pub disk_gb: u64,
    /// Monthly price in USD (or the provider's currency), when given.
    pub price_monthly: Option<f64>,
    /// Regions where it can be created.
    pub regions: Vec<String>,
    /// Whether it can be created at all right now.
    pub available: bool,
}

/// A region the provider offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// Slug (`fra1`).
    pub slug: String,
    /// Human name (`Frankfurt 1`).
    pub name: String,
    /// Whether new VMs can be created there.
    pub available: bool,
}

/// Time limits for provider operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTimeouts {
    /// TCP + proxy + TLS connect.
    pub connect: Duration,
    /// One HTTP request, from sending to the last byte of the body.
    pub request: Duration,
    /// Waiting for a new VM to be running with an IP.
    pub instance_ready: Duration,
    /// Waiting for a provider action (snapshot, power off) to finish.
    pub action: Duration,
    /// First poll interval; polling starts fast because a VM is often up within seconds.
    pub poll_initial: Duration,
    /// Longest poll interval; polling slows down to save the API quota.
    pub poll_max: Duration,
}

impl Default for ProviderTimeouts {
    fn default() -> Self {
        ProviderTimeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            instance_ready: Duration::from_secs(300),
            action: Duration::from_secs(900),
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(10),
        }
    }
}

/// The providers spuff knows by name, implemented or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProviderType {
    /// DigitalOcean (`digitalocean`, `do`).
    DigitalOcean,
    /// Hetzner Cloud (`hetzner`, `hcloud`).
    Hetzner,
    /// AWS EC2 (`aws`, `ec2`).
    Aws,
}

impl ProviderType {
    /// Every known type.
    pub const ALL: &'static [ProviderType] = &[
        ProviderType::DigitalOcean,
        ProviderType::Hetzner,
        ProviderType::Aws,
    ];

    /// The canonical name, as used in config files and errors.
    pub fn name(self) -> &'static str {
        match self {
            ProviderType::DigitalOcean => "digitalocean",
            ProviderType::Hetzner => "hetzner",
            ProviderType::Aws => "aws",
        }
    }

    /// Other names accepted on the command line.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            ProviderType::DigitalOcean => &["do"],
            ProviderType::Hetzner => &["hcloud"],
            ProviderType::Aws => &["ec2"],
        }
    }

    /// Looks a name or alias up, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        ProviderType::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name || t.aliases().contains(&name.as_str()))
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`ProviderType`]: the name, and close matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{name}`{}", if suggestions.is_empty() { String::new() } else { format!("; did you mean {}?", suggestions.join(" or ")) })]
pub struct UnknownProvider {
    /// What was given.
    pub name: String,
    /// Known names close to it.
    pub suggestions: Vec<String>,
}

impl FromStr for ProviderType {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderType::from_name(s).ok_or_else(|| {
            let names = ProviderType::ALL
                .iter()
                .flat_map(|t| std::iter::once(t.name()).chain(t.aliases().iter().copied()));
            UnknownProvider {
                name: s.to_string(),
                suggestions: suggest(s, names).into_iter().map(str::to_string).collect(),
            }
        })
    }
}

/// Candidates close to `input`, in the best tier found: exact
/// case-insensitive matches, else those that contain it, else those at the
/// smallest edit distance (at most a third of the length, at least 2). At
/// most 3 are returned.
///
/// The CLI uses this to answer `--size s-2vcpu-4g` with "did you mean
/// `s-2vcpu-4gb`?".
///
/// # Examples
/// ```
/// use spuff::provider::suggest;
/// let sizes = ["s-1vcpu-1gb", "s-2vcpu-4gb", "c-4"];
/// assert_eq!(suggest("s-2vcpu-4g", sizes), vec!["s-2vcpu-4gb"]);
/// ```
pub fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let needle = input.trim().to_ascii_lowercase();
    if needle.is_empty() {
        return Vec::new();
    }
    let max = (needle.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let lc = c.to_ascii_lowercase();
            let score = if lc == needle {
                0
            } else if lc.starts_with(&needle) || lc.contains(&needle) {
                1
            } else {
                let d = edit_distance(&needle, &lc);
                if d > max {
                    return None;
                }
                1 + d
            };
            Some((score, c))
        })
        .collect();
    scored.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.len().cmp(&b.1.len()))
            .then(a.1.cmp(b.1))
    });
    scored.dedup_by(|a, b| a.1 == b.1);
    // Only the best tier: a prefix match hides mere typos-away candidates.
    let best = scored.first().map_or(0, |s| s.0);
    scored
        .into_iter()
        .filter(|s| s.0 == best)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

/// Levenshtein distance over chars, two rows of memory.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows_in_debug() {
        let s = Secret::new("dop_v1_abcdef");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "dop_v1_abcdef");
    }

    #[test]
    fn provider_names_and_aliases() {
        assert_eq!("do".parse::<ProviderType>(), Ok(ProviderType::DigitalOcean));
        assert_eq!(
            "DigitalOcean".parse::<ProviderType>(),
            Ok(ProviderType::DigitalOcean)
        );
        assert_eq!("hcloud".parse::<ProviderType>(), Ok(ProviderType::Hetzner));
        assert_eq!("hetzner".parse::<ProviderType>(), Ok(ProviderType::Hetzner));
        let err = "hetzer".parse::<ProviderType>().expect_err("must fail");
        assert_eq!(err.suggestions, vec!["hetzner"]);
        assert!(err.to_string().contains("did you mean hetzner"));
    }

    #[test]
    fn suggestions_rank_close_matches() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let regions = ["nyc1", "nyc3", "fra1", "sfo3", "ams3"];
        assert_eq!(suggest("fra", regions), vec!["fra1"]);
        assert_eq!(suggest("nyc2", regions), vec!["nyc1", "nyc3"]);
        assert!(suggest("mars-1", regions).is_empty());
        assert!(suggest("", regions).is_empty());
    }
}
