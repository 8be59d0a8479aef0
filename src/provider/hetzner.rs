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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::digitalocean::id_values;
use super::engine::{ActionProgress, ActionState, IdText, Paging, Rest, path_id, query_value};
use super::error::{ProviderError, ProviderResult};
use super::factory::{ProviderConfig, ProviderFactory};
use super::http::{ApiRequest, Auth, ErrorShape, HttpStats};
use super::info::{ProviderInfo, ProviderType};
use super::types::{
    ImageSpec, InstanceRequest, InstanceStatus, Listing, ProviderInstance, RegionInfo, SizeInfo,
    Snapshot, SshEndpoint, SshKeyInfo,
};
use super::{MANAGED_LABEL, Provider, SPUFF_ID_LABEL, md5_fingerprint};

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1/";

/// Pages are numbered; the next number is in `meta.pagination.next_page`
/// (50 per page is the API's maximum).
const PAGING: Paging = Paging::PageNumber {
    per_page: 50,
    next: "/meta/pagination/next_page",
};

/// `{"error":{"code","message","details"}}`; the request id is the
/// `X-Correlation-Id` header.
const ERRORS: ErrorShape = ErrorShape {
    code: "/error/code",
    message: "/error/message",
    request_id: None,
    request_id_header: "x-correlation-id",
};

fn info() -> &'static ProviderInfo {
    ProviderType::Hetzner.info()
}

/// Builds [`Client`]s for the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl ProviderFactory for Factory {
    fn info(&self) -> &'static ProviderInfo {
        info()
    }

    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>> {
        Ok(Arc::new(Client::new(config)?))
    }
}

/// A Hetzner Cloud project (tokens are per project).
#[derive(Debug, Clone)]
pub struct Client {
    rest: Rest,
}

impl Client {
    /// A client for the project `config.token` belongs to.
    ///
    /// # Errors
    /// A missing token, a non-https base URL, or an unreadable CA file.
    pub fn new(config: ProviderConfig) -> ProviderResult<Self> {
        let auth = Auth::Bearer(config.token.clone());
        Ok(Client {
            rest: Rest::new(info(), &config, auth, DEFAULT_BASE_URL, ERRORS)?,
        })
    }

    /// Transport counters.
    pub fn stats(&self) -> HttpStats {
        self.rest.http.stats()
    }

    /// An id that goes into a URL path: digits only (Hetzner ids are integers).
    fn id<'a>(&self, id: &'a str) -> ProviderResult<&'a str> {
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

    /// Servers matching a label selector, with the malformed ones skipped.
    async fn servers(&self, selector: &str) -> ProviderResult<Listing> {
        let (servers, skipped) = self
            .rest
            .list_lenient::<Server>(
                &format!("servers?label_selector={}", query_value(selector)),
                "servers",
                PAGING,
                "server",
            )
            .await?;
        Ok(Listing {
            instances: servers.into_iter().map(Server::into_instance).collect(),
            skipped,
        })
    }

    /// Starts a server action (`poweroff`, …) and waits for it.
    async fn run_action(&self, server_id: &str, action: &str, what: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(
            Method::POST,
            format!("servers/{}/actions/{action}", self.id(server_id)?),
        )
        .resource("server", server_id);
        let started: ActionEnvelope = self.rest.json(req).await?;
        self.wait_action(started.action, what).await
    }

    async fn wait_action(&self, action: Action, what: &str) -> ProviderResult<()> {
        self.rest
            .wait_action(action.state(), what, |id| async move {
                let req = ApiRequest::get(format!("actions/{}", self.id(&id)?))
                    .resource("action", id.clone());
                Ok(self.rest.json::<ActionEnvelope>(req).await?.action.state())
            })
            .await
            .map(drop)
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
        let mut body = json!({
            "name": request.name,
            "server_type": request.size,
            "image": image_ref(&request.image)?,
            "location": request.region,
            "ssh_keys": id_values(&request.ssh_keys),
            "labels": labels,
            "start_after_create": true,
        });
        if let Some(ud) = &request.user_data {
            let limit = info().user_data_limit;
            if ud.len() > limit {
                return Err(self.rest.invalid(
                    "user_data",
                    format!("{} bytes; Hetzner accepts at most {limit}", ud.len()),
                ));
            }
            body["user_data"] = json!(ud);
        }
        Ok(body)
    }
}

#[async_trait::async_trait]
impl Provider for Client {
    fn info(&self) -> &'static ProviderInfo {
        info()
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        let body = self.create_body(request)?;
        let create = || async {
            // POST is not idempotent: the HTTP layer resends it only after a 429.
            let req = ApiRequest::new(Method::POST, "servers")
                .json(&body)
                .resource("server", &request.name);
            let env: ServerEnvelope = self.rest.json(req).await?;
            Ok(env.server.into_instance())
        };
        let find = || self.find_by_spuff_id(&request.spuff_id);
        self.rest.create_then_find(request, create, find).await
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("servers/{}", self.id(id)?))
            .resource("server", id);
        self.rest.delete(req).await
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let req = ApiRequest::get(format!("servers/{}", self.id(id)?)).resource("server", id);
        Ok(self
            .rest
            .json_optional::<ServerEnvelope>(req)
            .await?
            .map(|env| env.server.into_instance()))
    }

    async fn list_instances(&self) -> ProviderResult<Listing> {
        self.servers(MANAGED_LABEL).await
    }

    async fn find_by_spuff_id(&self, spuff_id: &str) -> ProviderResult<Vec<ProviderInstance>> {
        if !valid_label(spuff_id, false) {
            return Err(self
                .rest
                .invalid("spuff_id", format!("`{spuff_id}` is not a label value")));
        }
        let listing = self
            .servers(&format!("{MANAGED_LABEL},{SPUFF_ID_LABEL}={spuff_id}"))
            .await?;
        Ok(listing
            .instances
            .into_iter()
            .filter(|i| i.spuff_id() == Some(spuff_id))
            .collect())
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        self.rest
            .wait_ready(id, "server", &[InstanceStatus::Off], || {
                self.get_instance(id)
            })
            .await
    }

    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let what = format!("snapshot `{name}` of server {instance_id}");
        let req = ApiRequest::new(
            Method::POST,
            format!("servers/{}/actions/create_image", self.id(instance_id)?),
        )
        .json(&json!({
            "description": name,
            "type": "snapshot",
            "labels": { MANAGED_LABEL: "" },
        }))
        .resource("server", instance_id);
        let started: CreateImageEnvelope = self.rest.json(req).await?;
        self.wait_action(started.action, &what).await?;
        let mut snap = started.image.into_snapshot();
        if snap.source_instance.is_none() {
            snap.source_instance = Some(instance_id.to_string());
        }
        Ok(snap)
    }
    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        let images: Vec<Image> = self
            .rest
            .list_all(
                &format!("images?type=snapshot&label_selector={MANAGED_LABEL}"),
                "images",
                PAGING,
            )
            .await?;
        Ok(images.into_iter().map(Image::into_snapshot).collect())
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("images/{}", self.id(id)?))
            .resource("image", id);
        self.rest.delete(req).await
    }

    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        self.run_action(id, "poweroff", &format!("power off server {id}"))
            .await
    }

    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        self.run_action(id, "poweron", &format!("power on server {id}"))
            .await
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        let keys: Vec<HSshKey> = self.rest.list_all("ssh_keys", "ssh_keys", PAGING).await?;
        Ok(keys.into_iter().map(HSshKey::into_info).collect())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let fingerprint = md5_fingerprint(public_key).ok_or_else(|| {
            self.rest.invalid(
                "ssh_key",
                "not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)",
            )
        })?;
        let lookup = || async {
            let keys: Vec<HSshKey> = self
                .rest
                .list_all(
                    &format!("ssh_keys?fingerprint={}", query_value(&fingerprint)),
                    "ssh_keys",
                    PAGING,
                )
                .await?;
            Ok::<_, ProviderError>(
                keys.into_iter()
                    .map(HSshKey::into_info)
                    .find(|k| k.fingerprint.eq_ignore_ascii_case(&fingerprint)),
            )
        };
        if let Some(k) = lookup().await? {
            return Ok(k);
        }
        let req = ApiRequest::new(Method::POST, "ssh_keys")
            .json(&json!({
                "name": name,
                "public_key": public_key.trim(),
                "labels": { MANAGED_LABEL: "" },
            }))
            .resource("ssh key", name);
        match self.rest.json::<SshKeyEnvelope>(req).await {
            Ok(env) => Ok(env.ssh_key.into_info()),
            // Imported meanwhile by another spuff (409 uniqueness_error), or
            // the answer was lost: look again.
            Err(e) if e.is_retryable() || matches!(e, ProviderError::Api { status: 409, .. }) => {
                lookup().await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        let types: Vec<ServerType> = self
            .rest
            .list_all("server_types", "server_types", PAGING)
            .await?;
        Ok(types.into_iter().map(ServerType::into_size).collect())
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        let locations: Vec<Location> = self.rest.list_all("locations", "locations", PAGING).await?;
        Ok(locations
            .into_iter()
            .map(|l| RegionInfo {
                name: l.description.or(l.city).unwrap_or_else(|| l.name.clone()),
                slug: l.name,
                available: true,
            })
            .collect())
    }

    fn http_stats(&self) -> HttpStats {
        self.rest.http.stats()
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
    Ok(match image {
        ImageSpec::Ubuntu(v) => json!(format!("ubuntu-{v}")),
        ImageSpec::Debian(v) => json!(format!("debian-{}", v.split('.').next().unwrap_or(v))),
        ImageSpec::Custom(id) | ImageSpec::Snapshot(id) => {
            if id.is_empty() {
                return Err(ProviderError::InvalidConfig {
                    provider: info().name,
                    field: "image".into(),
                    message: "empty image id".into(),
                });
            }
            match id.parse::<u64>() {
                Ok(n) => json!(n),
                Err(_) => json!(id),
            }
        }
    })
}

// ---- wire types ----------------------------------------------------------

#[derive(Deserialize)]
struct ServerEnvelope {
    server: Server,
}

/// A server, as much of it as spuff uses.
#[derive(Debug, Deserialize)]
struct Server {
    id: IdText,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
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

impl Server {
    fn into_instance(self) -> ProviderInstance {
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
        let labels = self.labels.unwrap_or_default();
        let ssh = public_ipv4
            .map(IpAddr::V4)
            .or(public_ipv6.map(IpAddr::V6))
            .map(|ip| SshEndpoint::from_labels(ip, &labels));
        ProviderInstance {
            id: self.id.0,
            name: self.name,
            ssh,
            public_ipv4,
            public_ipv6,
            private_ipv4,
            status: map_status(&self.status),
            region,
            size: name_of(self.server_type.as_ref()).unwrap_or_default(),
            created_at: self.created,
            labels,
        }
    }
}

/// Server status names to spuff's.
fn map_status(s: &str) -> InstanceStatus {
    match s {
        "initializing" | "starting" => InstanceStatus::New,
        "running" => InstanceStatus::Active,
        "off" => InstanceStatus::Off,
        "stopping" | "migrating" | "rebuilding" => InstanceStatus::Transitioning,
        "deleting" => InstanceStatus::Deleting,
        other => InstanceStatus::Unknown(other.to_string()),
    }
}

#[derive(Deserialize)]
struct ActionEnvelope {
    action: Action,
}

#[derive(Debug, Deserialize)]
struct Action {
    id: IdText,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<ActionError>,
}

impl Action {
    /// Only `status` decides: a `running` action may already carry an
    /// `error` object that is not final.
    fn state(self) -> ActionState {
        let progress = match self.status.as_str() {
            "success" => ActionProgress::Done,
            "error" => ActionProgress::Failed(
                self.error
                    .as_ref()
                    .and_then(|e| e.message.clone().or_else(|| e.code.clone()))
                    .map(|m| format!("error: {}", crate::util::terminal_safe(&m)))
                    .unwrap_or_else(|| "error".into()),
            ),
            _ => ActionProgress::Running,
        };
        ActionState {
            id: self.id.0,
            progress,
            status: self.status,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ActionError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct CreateImageEnvelope {
    image: Image,
    action: Action,
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

#[derive(Deserialize)]
struct SshKeyEnvelope {
    ssh_key: HSshKey,
}

#[derive(Debug, Deserialize)]
struct HSshKey {
    id: IdText,
    #[serde(default)]
    name: String,
    #[serde(default)]
    fingerprint: String,
}

impl HSshKey {
    fn into_info(self) -> SshKeyInfo {
        SshKeyInfo {
            id: self.id.0,
            name: self.name,
            fingerprint: self.fingerprint,
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
    fn images_map_to_names() {
        assert_eq!(
            image_ref(&ImageSpec::ubuntu("24.04")).ok(),
            Some(json!("ubuntu-24.04"))
        );
        assert_eq!(
            image_ref(&ImageSpec::debian("12")).ok(),
            Some(json!("debian-12"))
        );
        assert_eq!(
            image_ref(&ImageSpec::Snapshot("4711".into())).ok(),
            Some(json!(4711))
        );
    }

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
