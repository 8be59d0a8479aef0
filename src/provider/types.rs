//! Provider-agnostic types: what spuff asks a cloud for and what it gets back.
//!
//! Everything here is plain data so that the CLI, the state store and every
//! provider speak the same language; each provider maps these to its own API
//! (an [`ImageSpec::Ubuntu`] version becomes a DigitalOcean slug or a Hetzner
//! image name). Timestamps stay the provider's text: real APIs send forms a
//! strict RFC 3339 parser rejects (Hetzner omits seconds in some bodies).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::{MANAGED_LABEL, SPUFF_ID_LABEL, SSH_PORT_LABEL, SSH_USER_LABEL};

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

/// What to create.
///
/// `spuff_id` is unique per create (a fresh random id from
/// [`InstanceRequest::new`]); the provider labels the VM with it, and when a
/// create's answer was lost it looks the VM up by that label (for as long as
/// the provider's listing may lag) before it sends anything again, so a lost
/// answer never makes a second VM. Names need not be unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceRequest {
    /// VM name (`spuff-a1b2c3d4`).
    pub name: String,
    /// spuff's own id for this VM, carried as the [`SPUFF_ID_LABEL`] label.
    pub spuff_id: String,
    /// Region or location slug (`fra1`, `nbg1`).
    pub region: String,
    /// Size or server type slug (`s-2vcpu-4gb`, `cx22`).
    pub size: String,
    /// OS image.
    pub image: ImageSpec,
    /// cloud-init user data, plain text (the provider encodes it if its API needs that).
    pub user_data: Option<String>,
    /// Labels; spuff's own [`MANAGED_LABEL`] and [`SPUFF_ID_LABEL`] are
    /// added by the provider.
    pub labels: BTreeMap<String, String>,
    /// SSH keys to install, as provider key ids or fingerprints (see
    /// [`crate::provider::Provider::ensure_ssh_key`]).
    pub ssh_keys: Vec<String>,
    /// Spare capacity at a discount, which the provider may take back
    /// (EC2 spot); providers without it refuse the request.
    pub spot: Option<SpotRequest>,
    /// The boot disk's size in GB, when more than the size or template
    /// gives is wanted (Proxmox grows the clone's disk); providers whose
    /// disk comes with the size refuse it.
    pub disk_gb: Option<u64>,
    /// The user to create for [`ssh_keys`](Self::ssh_keys), for providers
    /// that cannot boot a VM with spuff's user-data and make the login user
    /// themselves (Proxmox's `ciuser`; see
    /// [`Provider::delivers_user_data`](crate::provider::Provider::delivers_user_data)).
    /// Others ignore it: the user-data makes the user.
    pub login_user: Option<String>,
}

/// Something spuff made at a provider, found by its label or tag: what
/// `spuff nuke` lists and deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// What it is.
    pub kind: ResourceKind,
    /// The provider's id for it (what deleting it takes).
    pub id: String,
    /// Its name, when it has one.
    pub name: String,
    /// Its region, for regional providers.
    pub region: Option<String>,
}

/// The kinds of [`Resource`], in the order they must be deleted (a VM
/// holds its security group until it is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ResourceKind {
    /// A VM.
    Vm,
    /// A snapshot (an image, with its disk snapshots).
    Snapshot,
    /// A firewall or security group spuff made for its VMs.
    SecurityGroup,
    /// An SSH key spuff imported.
    SshKey,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Vm => "VM",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::SecurityGroup => "security group",
            ResourceKind::SshKey => "SSH key",
        })
    }
}

/// How to ask for a spot VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpotRequest {
    /// The most to pay per hour, in US dollars as the API takes it
    /// (`"0.05"`); none: the current spot price, never above on-demand.
    pub max_price: Option<String>,
    /// Place the VM in the region's zone where the spot price is lowest now.
    pub cheapest_zone: bool,
}

/// A current spot price, from [`crate::provider::Provider::spot_prices`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpotPrice {
    /// The region.
    pub region: String,
    /// The availability zone within it.
    pub zone: String,
    /// The size it is for.
    pub size: String,
    /// US dollars per hour.
    pub usd_per_hour: f64,
    /// When the price was set, as the provider wrote it.
    pub at: Option<String>,
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
            spuff_id: new_spuff_id(),
            region: region.into(),
            size: size.into(),
            ..Default::default()
        }
    }

    /// Sets the spuff id (to look up or resend a create made earlier).
    pub fn with_spuff_id(mut self, id: impl Into<String>) -> Self {
        self.spuff_id = id.into();
        self
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

    /// Asks for a spot VM.
    pub fn with_spot(mut self, spot: SpotRequest) -> Self {
        self.spot = Some(spot);
        self
    }

    /// Adds an SSH key id or fingerprint.
    pub fn with_ssh_key(mut self, key: impl Into<String>) -> Self {
        self.ssh_keys.push(key.into());
        self
    }
}

/// A fresh spuff id: 16 lowercase hex digits from the OS's generator.
pub fn new_spuff_id() -> String {
    let mut bytes = [0u8; 8];
    // The OS generator does not fail on supported platforms; the fallback
    // still differs per process and per call.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = ((nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where and as whom to reach a VM over SSH, as its provider reports it.
///
/// For a cloud VM that is its public address on port 22, unless the VM
/// carries the [`SSH_PORT_LABEL`] / [`SSH_USER_LABEL`] labels (a custom
/// image whose sshd listens elsewhere); for a local VM it is a forwarded
/// port on 127.0.0.1. The host key is never part of it: that is pinned from
/// spuff's own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEndpoint {
    /// The address to connect to.
    pub host: IpAddr,
    /// The TCP port.
    pub port: u16,
    /// The login user, when the provider knows it (else the user-data's).
    pub user: Option<String>,
}

impl SshEndpoint {
    /// Port 22, no user.
    pub fn new(host: IpAddr) -> Self {
        SshEndpoint {
            host,
            port: 22,
            user: None,
        }
    }

    /// The endpoint at `host`, with port and user from the VM's labels when
    /// they are valid (a bad value is ignored, not trusted).
    ///
    /// The user may be `root`: spuff never *creates* a root login (the
    /// user-data's user is checked by [`crate::validate::username`]), but a
    /// VM that says it takes root (a custom image) is logged in to as root,
    /// and spuff's remote commands then run without `sudo`.
    pub fn from_labels(host: IpAddr, labels: &BTreeMap<String, String>) -> Self {
        let port = labels
            .get(SSH_PORT_LABEL)
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or(22);
        let user = labels
            .get(SSH_USER_LABEL)
            .filter(|u| *u == "root" || crate::validate::username(u).is_ok())
            .cloned();
        SshEndpoint { host, port, user }
    }
}

impl fmt::Display for SshEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match self.host {
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
        }
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
    /// Taken back by the provider: an interrupted spot VM.
    Interrupted,
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
            InstanceStatus::Interrupted => f.write_str("interrupted (spot)"),
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
    /// How to reach it over SSH, once it has an address.
    pub ssh: Option<SshEndpoint>,
}

impl ProviderInstance {
    /// A cloud VM reached at its public address (IPv4, else IPv6), with the
    /// SSH port and user from its labels; region, size and creation time
    /// are left for the caller to fill in.
    pub(crate) fn cloud(
        id: String,
        name: String,
        status: InstanceStatus,
        (public_ipv4, public_ipv6, private_ipv4): (
            Option<Ipv4Addr>,
            Option<Ipv6Addr>,
            Option<Ipv4Addr>,
        ),
        labels: BTreeMap<String, String>,
    ) -> Self {
        let ssh = public_ipv4
            .map(IpAddr::V4)
            .or(public_ipv6.map(IpAddr::V6))
            .map(|ip| SshEndpoint::from_labels(ip, &labels));
        ProviderInstance {
            id,
            name,
            public_ipv4,
            public_ipv6,
            private_ipv4,
            status,
            region: String::new(),
            size: String::new(),
            created_at: None,
            labels,
            ssh,
        }
    }

    /// Ready for SSH: running, with an SSH endpoint.
    pub fn is_ready(&self) -> bool {
        self.status == InstanceStatus::Active && self.ssh.is_some()
    }

    /// Whether spuff created it (it carries [`MANAGED_LABEL`]).
    pub fn is_managed(&self) -> bool {
        self.labels.contains_key(MANAGED_LABEL)
    }

    /// spuff's id for it (the [`SPUFF_ID_LABEL`] label), if it has one.
    pub fn spuff_id(&self) -> Option<&str> {
        self.labels
            .get(SPUFF_ID_LABEL)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A short description of the state, for timeout errors and progress.
    pub fn describe_state(&self) -> String {
        match &self.ssh {
            Some(ep) => format!("status {}, SSH at {ep}", self.status),
            None => format!("status {}, no address yet", self.status),
        }
    }
}

/// A provider's listing: the VMs it could read, and the entries it had to
/// skip because they were malformed (a null where a string was promised).
/// One bad entry must not hide every other VM, nor be dropped silently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// The VMs read.
    pub instances: Vec<ProviderInstance>,
    /// The entries skipped, with why.
    pub skipped: Vec<Skipped>,
}

/// An entry of a listing that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What it was (`droplet`, `server`).
    pub resource: &'static str,
    /// Its id, when that much could be read.
    pub id: Option<String>,
    /// Its name, when that much could be read.
    pub name: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.resource)?;
        if let Some(id) = &self.id {
            write!(f, " {}", crate::util::terminal_safe(id))?;
        }
        if let Some(name) = &self.name {
            write!(f, " ({})", crate::util::terminal_safe(name))?;
        }
        write!(f, ": {}", crate::util::terminal_safe(&self.reason))
    }
}

impl std::ops::Deref for Listing {
    type Target = [ProviderInstance];

    fn deref(&self) -> &[ProviderInstance] {
        &self.instances
    }
}

impl IntoIterator for Listing {
    type Item = ProviderInstance;
    type IntoIter = std::vec::IntoIter<ProviderInstance>;

    fn into_iter(self) -> Self::IntoIter {
        self.instances.into_iter()
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
    /// How long a create whose answer was lost is looked for (by its spuff
    /// id) before it is resent: a provider's listing can lag a create by
    /// seconds, and resending too early would make a second VM.
    pub create_lookup: Duration,
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
            create_lookup: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_should_carry_a_fresh_spuff_id() {
        let a = InstanceRequest::new("a", "fra1", "s-1");
        let b = InstanceRequest::new("a", "fra1", "s-1");
        assert_eq!(a.spuff_id.len(), 16);
        assert_ne!(a.spuff_id, b.spuff_id);
    }

    #[test]
    fn endpoint_should_come_from_labels_or_default_to_22() {
        let mut labels = BTreeMap::new();
        let ip: IpAddr = "203.0.113.9"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(SshEndpoint::from_labels(ip, &labels).port, 22);
        labels.insert(SSH_PORT_LABEL.to_string(), "2222".to_string());
        labels.insert(SSH_USER_LABEL.to_string(), "ana".to_string());
        let e = SshEndpoint::from_labels(ip, &labels);
        assert_eq!((e.port, e.user.as_deref()), (2222, Some("ana")));
        labels.insert(SSH_PORT_LABEL.to_string(), "0".to_string());
        labels.insert(SSH_USER_LABEL.to_string(), "bad user".to_string());
        let e = SshEndpoint::from_labels(ip, &labels);
        assert_eq!((e.port, e.user), (22, None));
        labels.insert(SSH_USER_LABEL.to_string(), "root".to_string());
        let e = SshEndpoint::from_labels(ip, &labels);
        assert_eq!(e.user.as_deref(), Some("root"));
    }
}
