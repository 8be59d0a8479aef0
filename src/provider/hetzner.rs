//! Hetzner Cloud (API v1): servers, server actions, snapshot images, SSH keys,
//! server types and locations.
//!
//! Why a module of its own rather than a DigitalOcean variant: Hetzner's
//! shapes differ everywhere that matters to spuff, and real bodies differ
//! from the spec (see tests/data/hetzner/SOURCES.tsv): `public_net.ipv4` is
//! `null` until an address is assigned, IPv6 comes as a /64 network (spuff
//! uses `<prefix>::1`, the address Hetzner configures), `datacenter` may be
//! missing (then `location` names the region), timestamps may omit seconds
//! (kept as text), and an action may be `running` while carrying an `error`
//! object, so only `status` decides whether an action is done. Lists are
//! paged by `page`/`per_page` and followed through `meta.pagination.next_page`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{
    Extras, IdText, Paging, Selector, VmHead, WireAction, WireSshKey, id_values, image_id, path_id,
    query_value, rest_provider,
};
use super::error::ProviderResult;
use super::http::ApiRequest;
use super::types::{
    ImageSpec, InstanceRequest, ProviderInstance, RegionInfo, SizeInfo, Snapshot, SshKeyInfo,
};
use super::{MANAGED_LABEL, SPUFF_ID_LABEL};

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1/";

rest_provider! {
    /// A Hetzner Cloud project (tokens are per project).
    Hetzner at DEFAULT_BASE_URL, VMs Server as "server" in "servers" (stuck: Off);
    // Numbered pages; 50 per page is the API's maximum.
    pages: Paging::PageNumber { per_page: 50, next: "/meta/pagination/next_page" };
    // `{"error":{"code","message","details"}}`; the request id is a header.
    errors: "/error/code", "/error/message", None, "x-correlation-id";
    actions: "success" | "error";
    statuses: "initializing" | "starting" => New, "running" => Active, "off" => Off,
        "stopping" | "migrating" | "rebuilding" => Transitioning, "deleting" => Deleting;
    // Snapshots are images of type `snapshot`; spuff's carry its label.
    snapshots: Image as "image" in "images"
        listed at format!("images?type=snapshot&label_selector={MANAGED_LABEL}");
}

impl Client {
    /// Starts a server action (`poweroff`, …) and waits for it.
    async fn run_action(&self, server_id: &str, action: &str, what: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(
            Method::POST,
            format!("servers/{}/actions/{action}", self.check_id(server_id)?),
        )
        .resource("server", server_id);
        self.rest.run_action(req, ACTIONS, what).await
    }
}

#[async_trait::async_trait]
impl Extras for Client {
    /// The `cax` server types are Ampere (arm64); the rest are x86_64.
    fn size_arch(&self, size: &str) -> Option<crate::agent_bin::Arch> {
        Some(if size.starts_with("cax") {
            crate::agent_bin::Arch::Aarch64
        } else {
            crate::agent_bin::Arch::X86_64
        })
    }

    /// An id that goes into a URL path: digits only (Hetzner ids are integers).
    fn check_id<'a>(&self, id: &'a str) -> ProviderResult<&'a str> {
        path_id(self.rest.name(), id).and_then(|id| {
            if id.chars().all(|c| c.is_ascii_digit()) {
                Ok(id)
            } else {
                Err(self
                    .rest
                    .invalid("id", format!("`{id}` is not a Hetzner id")))
            }
        })
    }

    /// Hetzner selects by label: `spuff` for all of spuff's servers, and
    /// `spuff,spuff-id=ID` for one.
    fn vms_query(&self, selector: Selector<'_>) -> ProviderResult<String> {
        let labels = match selector {
            Selector::Managed => MANAGED_LABEL.to_string(),
            Selector::SpuffId(id) if valid_label(id, false) => {
                format!("{MANAGED_LABEL},{SPUFF_ID_LABEL}={id}")
            }
            Selector::SpuffId(id) => {
                return Err(self
                    .rest
                    .invalid("spuff_id", format!("`{id}` is not a label value")));
            }
        };
        Ok(format!("servers?label_selector={}", query_value(&labels)))
    }

    fn create_body(&self, request: &InstanceRequest) -> ProviderResult<Value> {
        if request.name.is_empty() {
            return Err(self.rest.invalid("name", "a server needs a name"));
        }
        let mut labels = serde_json::Map::new();
        labels.insert(MANAGED_LABEL.into(), json!(""));
        labels.insert(SPUFF_ID_LABEL.into(), json!(request.spuff_id));
        for (k, v) in &request.labels {
            if !valid_label(k, true) || !valid_label(v, false) {
                return Err(self.rest.invalid(
                    "labels",
                    format!(
                        "`{k}={v}`: Hetzner labels allow letters, digits, `-`, `_` and `.` (at most 63, starting and ending alphanumeric)"
                    ),
                ));
            }
            labels.insert(k.clone(), json!(v));
        }
        let body = json!({
            "name": request.name,
            "server_type": request.size,
            "image": image_ref(&request.image)?,
            "location": request.region,
            "ssh_keys": id_values(&request.ssh_keys),
            "labels": labels,
            "start_after_create": true,
        });
        Ok(body)
    }

    async fn power(&self, id: &str, on: bool) -> ProviderResult<()> {
        let action = if on { "poweron" } else { "poweroff" };
        let what = format!("{action} server {id}");
        self.run_action(id, action, &what).await
    }

    async fn ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        self.rest
            .list_into::<WireSshKey, _>("ssh_keys", "ssh_keys", PAGING)
            .await
    }

    async fn import_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let import = ApiRequest::new(Method::POST, "ssh_keys")
            .json(&json!({
                "name": name,
                "public_key": public_key.trim(),
                "labels": { MANAGED_LABEL: "" },
            }))
            .resource("ssh key", name);
        // Hetzner filters keys by fingerprint, and answers 409
        // `uniqueness_error` to a duplicate.
        let keys = |fingerprint: String| async move {
            let path = format!("ssh_keys?fingerprint={}", query_value(&fingerprint));
            self.rest
                .list_into::<WireSshKey, _>(&path, "ssh_keys", PAGING)
                .await
        };
        self.rest.ensure_key(public_key, keys, import, 409).await
    }

    async fn sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        self.rest
            .list_into::<ServerType, _>("server_types", "server_types", PAGING)
            .await
    }

    async fn regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        // Locations say nothing of availability: all of them take servers.
        self.rest
            .list_into::<Location, _>("locations", "locations", PAGING)
            .await
    }

    // Snapshots are images of type `snapshot`.
    async fn snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let what = format!("snapshot `{name}` of server {instance_id}");
        let req = ApiRequest::new(
            Method::POST,
            format!(
                "servers/{}/actions/create_image",
                self.check_id(instance_id)?
            ),
        )
        .json(&json!({
            "description": name,
            "type": "snapshot",
            "labels": { MANAGED_LABEL: "" },
        }))
        .resource("server", instance_id);
        let started: CreateImageEnvelope = self.rest.json(req).await?;
        self.rest
            .await_action(started.action, ACTIONS, &what)
            .await?;
        let mut snap = started.image.into_snapshot();
        if snap.source_instance.is_none() {
            snap.source_instance = Some(instance_id.to_string());
        }
        Ok(snap)
    }
}

/// Hetzner's label rule: at most 63 characters of `[a-zA-Z0-9._-]`, starting
/// and ending alphanumeric; a value may be empty; a key may carry a DNS-name
/// prefix (`example.com/owner`).
fn valid_label(s: &str, is_key: bool) -> bool {
    if s.is_empty() {
        return !is_key;
    }
    if let (true, Some((prefix, name))) = (is_key, s.split_once('/')) {
        return prefix.len() <= 253
            && prefix
                .split('.')
                .all(|p| !p.is_empty() && valid_label(p, false))
            && !name.is_empty()
            && valid_label(name, false);
    }
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && ends(s.chars().next())
        && ends(s.chars().last())
}

/// Maps an [`ImageSpec`] to the `image` field: an image name or an integer id.
pub fn image_ref(image: &ImageSpec) -> ProviderResult<Value> {
    match image {
        ImageSpec::Ubuntu(v) => Ok(json!(format!("ubuntu-{v}"))),
        ImageSpec::Debian(v) => Ok(json!(format!(
            "debian-{}",
            v.split('.').next().unwrap_or(v)
        ))),
        ImageSpec::Custom(id) | ImageSpec::Snapshot(id) => image_id(info().name, id),
    }
}

// ---- wire types ----------------------------------------------------------

/// A server, as much of it as spuff uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Server {
    #[serde(flatten)]
    head: VmHead,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    public_net: Option<PublicNet>,
    #[serde(default)]
    private_net: Vec<PrivateNet>,
    #[serde(default)]
    server_type: Option<Value>,
    #[serde(default)]
    datacenter: Option<Value>,
    #[serde(default)]
    location: Option<Value>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct PublicNet {
    #[serde(default)]
    ipv4: Option<IpEntry>,
    #[serde(default)]
    ipv6: Option<IpEntry>,
}

#[derive(Debug, Deserialize)]
struct IpEntry {
    #[serde(default)]
    ip: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PrivateNet {
    #[serde(default)]
    ip: Option<String>,
}

/// `"name"` or `{"name": …}`.
fn name_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// The address Hetzner configures in a server's /64: `<prefix>::1`.
fn ipv6_host(network: &str) -> Option<Ipv6Addr> {
    let (addr, prefix) = match network.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok()?),
        None => return network.parse().ok(),
    };
    let net: Ipv6Addr = addr.parse().ok()?;
    if prefix >= 128 {
        return Some(net);
    }
    let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
    Some(Ipv6Addr::from((u128::from(net) & mask) | 1))
}

impl From<Server> for ProviderInstance {
    fn from(s: Server) -> ProviderInstance {
        s.into_instance()
    }
}

impl Server {
    pub(crate) fn into_instance(self) -> ProviderInstance {
        let net = self.public_net.unwrap_or_default();
        let public_ipv4 = net
            .ipv4
            .and_then(|e| e.ip)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let public_ipv6 = net.ipv6.and_then(|e| e.ip).and_then(|ip| ipv6_host(&ip));
        let private_ipv4 = self
            .private_net
            .iter()
            .find_map(|n| n.ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()));
        // `datacenter.location.name`, else `location.name`, else the datacenter's own name.
        let region = self
            .datacenter
            .as_ref()
            .and_then(|d| name_of(d.get("location")))
            .or_else(|| name_of(self.location.as_ref()))
            .or_else(|| name_of(self.datacenter.as_ref()))
            .unwrap_or_default();
        let ips = (public_ipv4, public_ipv6, private_ipv4);
        let labels = self.labels.unwrap_or_default();
        let mut vm = self.head.into_instance(status_of, ips, labels);
        vm.size = name_of(self.server_type.as_ref()).unwrap_or_default();
        vm.created_at = self.created;
        vm.region = region;
        vm
    }
}

#[derive(Deserialize)]
struct CreateImageEnvelope {
    image: Image,
    action: WireAction,
}

#[derive(Debug, Deserialize)]
struct Image {
    id: IdText,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    image_size: Option<f64>,
    #[serde(default)]
    created_from: Option<Value>,
}

impl From<Location> for RegionInfo {
    fn from(l: Location) -> RegionInfo {
        RegionInfo {
            name: l.description.or(l.city).unwrap_or_else(|| l.name.clone()),
            slug: l.name,
            available: true,
        }
    }
}

impl From<Image> for Snapshot {
    fn from(i: Image) -> Snapshot {
        i.into_snapshot()
    }
}

impl From<ServerType> for SizeInfo {
    fn from(t: ServerType) -> SizeInfo {
        t.into_size()
    }
}

impl Image {
    fn into_snapshot(self) -> Snapshot {
        let source = self
            .created_from
            .as_ref()
            .and_then(|c| c.get("id"))
            .and_then(|id| match id {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            });
        Snapshot {
            id: self.id.0,
            // Snapshots have no name; spuff keeps it in `description`.
            name: self.description.or(self.name).unwrap_or_default(),
            created_at: self.created,
            size_gb: self.image_size,
            regions: Vec::new(),
            source_instance: source,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ServerType {
    name: String,
    #[serde(default)]
    cores: u32,
    /// GB, possibly fractional.
    #[serde(default)]
    memory: f64,
    #[serde(default)]
    disk: u64,
    #[serde(default)]
    prices: Vec<Price>,
    #[serde(default)]
    deprecated: Option<bool>,
    #[serde(default)]
    deprecation: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Price {
    #[serde(default)]
    location: String,
    #[serde(default)]
    price_monthly: Option<PriceAmount>,
}

#[derive(Debug, Deserialize)]
struct PriceAmount {
    #[serde(default)]
    gross: Option<String>,
}

impl ServerType {
    fn into_size(self) -> SizeInfo {
        let price_monthly = self
            .prices
            .iter()
            .filter_map(|p| {
                p.price_monthly
                    .as_ref()?
                    .gross
                    .as_deref()?
                    .parse::<f64>()
                    .ok()
            })
            .reduce(f64::min);
        let deprecated = self.deprecated.unwrap_or(false)
            || self.deprecation.as_ref().is_some_and(|d| !d.is_null());
        SizeInfo {
            slug: self.name,
            vcpus: self.cores,
            memory_mb: (self.memory * 1024.0).round() as u64,
            disk_gb: self.disk,
            price_monthly,
            regions: self.prices.into_iter().map(|p| p.location).collect(),
            available: !deprecated,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Location {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    city: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_network_maps_to_host_one() {
        assert_eq!(
            ipv6_host("2001:db8::/64"),
            "2001:db8::1".parse::<Ipv6Addr>().ok()
        );
        assert_eq!(
            ipv6_host("2a01:4f9:c012:fa81::/64"),
            "2a01:4f9:c012:fa81::1".parse::<Ipv6Addr>().ok()
        );
    }

    #[test]
    fn labels_follow_hetzner_rules() {
        assert!(valid_label("owner", true));
        assert!(valid_label("", false));
        assert!(!valid_label("", true));
        assert!(!valid_label("a b", false));
        assert!(valid_label("example.com/owner", true));
        assert!(!valid_label("/owner", true));
        assert!(!valid_label("a/b/c", true));
    }
}
