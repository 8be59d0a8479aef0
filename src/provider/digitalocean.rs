//! DigitalOcean (API v2): droplets, droplet actions, snapshots, account SSH
//! keys, sizes and regions.
//!
//! The JSON types here are deliberately lenient because real bodies differ
//! from the spec (see tests/data/digitalocean/SOURCES.tsv for where each test
//! body comes from): snapshot ids arrive as strings from `/v2/snapshots` and as
//! integers elsewhere, `networks` may be missing, `size`/`image` may be `{}`,
//! `region` may be a plain string, and some snapshot lists repeat a key (so
//! no field we do not need is declared: serde ignores undeclared duplicates).
//! IPs are chosen by `type`, never by position.

use std::net::{Ipv4Addr, Ipv6Addr};

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{
    Extras, IdText, Paging, Selector, VmHead, WireSshKey, id_values, image_id, path_id,
    query_value, rest_provider,
};
use super::error::{ProviderError, ProviderResult};
use super::http::ApiRequest;
use super::types::{
    ImageSpec, InstanceRequest, ProviderInstance, RegionInfo, SizeInfo, Snapshot, SshKeyInfo,
};
use super::{MANAGED_LABEL, SPUFF_ID_LABEL};

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com/v2/";

/// The API's largest page (`per_page` maximum).
const PER_PAGE: u32 = 200;

rest_provider! {
    /// A DigitalOcean account.
    DigitalOcean at DEFAULT_BASE_URL, VMs Droplet as "droplet" in "droplets" (stuck: Archive, Off);
    pages: Paging::NextLink("/links/pages/next");
    // `{"id","message","request_id"}`, any of them possibly missing.
    errors: "/id", "/message", Some("/request_id"), "x-request-id";
    actions: "completed" | "errored";
    statuses: "new" => New, "active" => Active, "off" => Off, "archive" => Archive;
    snapshots: DoSnapshot as "snapshot" in "snapshots"
        listed at format!("snapshots?resource_type=droplet&per_page={PER_PAGE}");
}

impl Client {
    /// Starts a droplet action and waits for it to complete.
    async fn run_action(&self, droplet_id: &str, body: Value, what: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(
            Method::POST,
            format!("droplets/{}/actions", self.check_id(droplet_id)?),
        )
        .json(&body)
        .resource("droplet", droplet_id);
        self.rest.run_action(req, ACTIONS, what).await
    }
}

#[async_trait::async_trait]
impl Extras for Client {
    fn check_id<'a>(&self, id: &'a str) -> ProviderResult<&'a str> {
        path_id(self.rest.name(), id)
    }

    /// DigitalOcean filters by one tag: `spuff` for all of spuff's
    /// droplets, the spuff id's tag for one.
    fn vms_query(&self, selector: Selector<'_>) -> ProviderResult<String> {
        let tag = match selector {
            Selector::Managed => MANAGED_LABEL.to_string(),
            Selector::SpuffId(id) => format!("{SPUFF_ID_LABEL}:{id}"),
        };
        Ok(format!(
            "droplets?tag_name={}&per_page={PER_PAGE}",
            query_value(&tag)
        ))
    }

    fn create_body(&self, request: &InstanceRequest) -> ProviderResult<Value> {
        if request.name.is_empty() {
            return Err(self.rest.invalid("name", "a droplet needs a name"));
        }
        let mut tags = vec![
            MANAGED_LABEL.to_string(),
            format!("{SPUFF_ID_LABEL}:{}", request.spuff_id),
        ];
        for (k, v) in &request.labels {
            let tag = if v.is_empty() {
                k.clone()
            } else {
                format!("{k}:{v}")
            };
            let ok = !tag.is_empty()
                && tag.len() <= 255
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'));
            if !ok {
                return Err(self.rest.invalid(
                    "labels",
                    format!(
                        "`{tag}`: DigitalOcean tags allow only letters, digits, `_`, `-` and `:` (at most 255)"
                    ),
                ));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let body = json!({
            "name": request.name,
            "region": request.region,
            "size": request.size,
            "image": image_ref(&request.image)?,
            "ssh_keys": id_values(&request.ssh_keys),
            "tags": tags,
            "ipv6": true,
            "monitoring": false,
        });
        Ok(body)
    }

    async fn snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let what = format!("snapshot `{name}` of droplet {instance_id}");
        self.run_action(
            instance_id,
            json!({"type": "snapshot", "name": name}),
            &what,
        )
        .await?;
        let snaps: Vec<DoSnapshot> = self
            .rest
            .list_all(
                &format!(
                    "droplets/{}/snapshots?per_page={PER_PAGE}",
                    self.check_id(instance_id)?
                ),
                "snapshots",
                PAGING,
            )
            .await?;
        snaps
            .into_iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(name))
            .map(|s| s.into_snapshot(Some(instance_id)))
            .ok_or_else(|| ProviderError::InvalidResponse {
                provider: self.rest.name(),
                operation: what,
                message: "the snapshot action completed but the snapshot is not listed".into(),
            })
    }

    async fn power(&self, id: &str, on: bool) -> ProviderResult<()> {
        let (kind, what) = if on {
            ("power_on", "on")
        } else {
            ("power_off", "off")
        };
        self.run_action(
            id,
            json!({ "type": kind }),
            &format!("power {what} droplet {id}"),
        )
        .await
    }

    async fn ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        let path = format!("account/keys?per_page={PER_PAGE}");
        self.rest
            .list_into::<WireSshKey, _>(&path, "ssh_keys", PAGING)
            .await
    }

    async fn import_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let import = ApiRequest::new(Method::POST, "account/keys")
            .json(&json!({"name": name, "public_key": public_key.trim()}))
            .resource("ssh key", name);
        // DigitalOcean answers 422 "already in use" to a duplicate.
        let keys = |_fingerprint| self.ssh_keys();
        self.rest.ensure_key(public_key, keys, import, 422).await
    }

    async fn sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        let path = format!("sizes?per_page={PER_PAGE}");
        self.rest
            .list_into::<DoSize, _>(&path, "sizes", PAGING)
            .await
    }

    async fn regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        let path = format!("regions?per_page={PER_PAGE}");
        self.rest
            .list_into::<DoRegion, _>(&path, "regions", PAGING)
            .await
    }
}

/// Maps an [`ImageSpec`] to the `image` field: a slug, or an integer id.
pub fn image_ref(image: &ImageSpec) -> ProviderResult<Value> {
    match image {
        // "24.04" -> "ubuntu-24-04-x64", DigitalOcean's slug scheme.
        ImageSpec::Ubuntu(v) => Ok(json!(format!("ubuntu-{}-x64", v.replace('.', "-")))),
        ImageSpec::Debian(v) => Ok(json!(format!(
            "debian-{}-x64",
            v.split('.').next().unwrap_or(v)
        ))),
        ImageSpec::Custom(id) | ImageSpec::Snapshot(id) => image_id(info().name, id),
    }
}

/// A droplet, as much of it as spuff uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Droplet {
    #[serde(flatten)]
    head: VmHead,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    size_slug: Option<String>,
    #[serde(default)]
    size: Option<Value>,
    #[serde(default)]
    region: Option<Value>,
    #[serde(default)]
    networks: Option<Networks>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Networks {
    #[serde(default)]
    v4: Vec<NetworkEntry>,
    #[serde(default)]
    v6: Vec<NetworkEntry>,
}

#[derive(Debug, Deserialize)]
struct NetworkEntry {
    ip_address: String,
    #[serde(rename = "type", default)]
    kind: String,
}

/// `"nyc3"` or `{"slug":"nyc3",…}`.
fn slug_of(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("slug").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl From<Droplet> for ProviderInstance {
    fn from(d: Droplet) -> ProviderInstance {
        d.into_instance()
    }
}

impl Droplet {
    pub(crate) fn into_instance(self) -> ProviderInstance {
        let nets = self.networks.unwrap_or_default();
        let v4 = |kind: &str| {
            nets.v4
                .iter()
                .filter(|n| n.kind == kind)
                .find_map(|n| n.ip_address.parse::<Ipv4Addr>().ok())
        };
        let public_ipv6 = nets
            .v6
            .iter()
            .filter(|n| n.kind == "public")
            .find_map(|n| n.ip_address.parse::<Ipv6Addr>().ok());
        let labels: std::collections::BTreeMap<String, String> = self
            .tags
            .iter()
            .map(|t| match t.split_once(':') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect();
        let ips = (v4("public"), public_ipv6, v4("private"));
        let mut vm = self.head.into_instance(status_of, ips, labels);
        vm.region = slug_of(&self.region).unwrap_or_default();
        vm.size = self
            .size_slug
            .or_else(|| slug_of(&self.size))
            .unwrap_or_default();
        vm.created_at = self.created_at;
        vm
    }
}

#[derive(Debug, Deserialize)]
struct DoSnapshot {
    id: IdText,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    size_gigabytes: Option<f64>,
    #[serde(default)]
    resource_id: Option<IdText>,
}

impl From<DoSnapshot> for Snapshot {
    fn from(s: DoSnapshot) -> Snapshot {
        s.into_snapshot(None)
    }
}

impl From<DoSize> for SizeInfo {
    fn from(s: DoSize) -> SizeInfo {
        SizeInfo {
            slug: s.slug,
            vcpus: s.vcpus,
            memory_mb: s.memory,
            disk_gb: s.disk,
            price_monthly: s.price_monthly,
            regions: s.regions,
            available: s.available,
        }
    }
}

impl From<DoRegion> for RegionInfo {
    fn from(r: DoRegion) -> RegionInfo {
        RegionInfo {
            slug: r.slug,
            name: r.name,
            available: r.available,
        }
    }
}

impl DoSnapshot {
    fn into_snapshot(self, source: Option<&str>) -> Snapshot {
        Snapshot {
            id: self.id.0,
            name: self.name.unwrap_or_default(),
            created_at: self.created_at,
            size_gb: self.size_gigabytes,
            regions: self.regions,
            source_instance: self.resource_id.map(|r| r.0).or(source.map(str::to_string)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct DoSize {
    slug: String,
    #[serde(default)]
    vcpus: u32,
    #[serde(default)]
    memory: u64,
    #[serde(default)]
    disk: u64,
    #[serde(default)]
    price_monthly: Option<f64>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default = "yes")]
    available: bool,
}

#[derive(Debug, Deserialize)]
struct DoRegion {
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default = "yes")]
    available: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_by_type_not_position() {
        let d: Droplet = serde_json::from_value(json!({
            "id": 1, "name": "x", "status": "active",
            "networks": {"v4": [
                {"ip_address": "10.0.0.5", "type": "private"},
                {"ip_address": "203.0.113.9", "type": "public"}
            ], "v6": [{"ip_address": "2A03:B0C0:0003:00D0:0000:0000:0464:7001", "netmask": 64, "type": "public"}]},
            "region": "nyc3", "size": {}, "tags": ["spuff", "owner:ana"]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let i = d.into_instance();
        assert_eq!(i.public_ipv4, Some(Ipv4Addr::new(203, 0, 113, 9)));
        assert_eq!(i.private_ipv4, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert!(i.public_ipv6.is_some());
        assert_eq!(i.region, "nyc3");
        assert_eq!(i.labels.get("owner").map(String::as_str), Some("ana"));
        assert!(i.is_ready());
    }
}
