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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{ActionProgress, ActionState, IdText, Paging, Rest, path_id};
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
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com/v2/";

/// The API's largest page (`per_page` maximum).
const PER_PAGE: u32 = 200;

/// Pages link to the next one with an absolute URL.
const PAGING: Paging = Paging::NextLink("/links/pages/next");

/// `{"id","message","request_id"}`, any of them possibly missing; the
/// request id may also come as `x-request-id`.
const ERRORS: ErrorShape = ErrorShape {
    code: "/id",
    message: "/message",
    request_id: Some("/request_id"),
    request_id_header: "x-request-id",
};

fn info() -> &'static ProviderInfo {
    ProviderType::DigitalOcean.info()
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

/// A DigitalOcean account.
#[derive(Debug, Clone)]
pub struct Client {
    rest: Rest,
}

impl Client {
    /// A client for the account `config.token` belongs to.
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

    fn id<'a>(&self, id: &'a str) -> ProviderResult<&'a str> {
        path_id(self.rest.name(), id)
    }

    /// Droplets carrying `tag`, with the malformed ones skipped.
    async fn droplets(&self, tag: &str) -> ProviderResult<Listing> {
        let (droplets, skipped) = self
            .rest
            .list_lenient::<Droplet>(
                &format!(
                    "droplets?tag_name={}&per_page={PER_PAGE}",
                    super::engine::query_value(tag)
                ),
                "droplets",
                PAGING,
                "droplet",
            )
            .await?;
        Ok(Listing {
            instances: droplets.into_iter().map(Droplet::into_instance).collect(),
            skipped,
        })
    }

    /// Starts a droplet action and waits for it to complete.
    async fn run_action(&self, droplet_id: &str, body: Value, what: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(
            Method::POST,
            format!("droplets/{}/actions", self.id(droplet_id)?),
        )
        .json(&body)
        .resource("droplet", droplet_id);
        let started: ActionEnvelope = self.rest.json(req).await?;
        self.rest
            .wait_action(started.action.state(), what, |id| async move {
                let req = ApiRequest::get(format!("actions/{}", self.id(&id)?))
                    .resource("action", id.clone());
                Ok(self.rest.json::<ActionEnvelope>(req).await?.action.state())
            })
            .await
            .map(drop)
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
        let mut body = json!({
            "name": request.name,
            "region": request.region,
            "size": request.size,
            "image": image_ref(&request.image)?,
            "ssh_keys": id_values(&request.ssh_keys),
            "tags": tags,
            "ipv6": true,
            "monitoring": false,
        });
        if let Some(ud) = &request.user_data {
            let limit = info().user_data_limit;
            if ud.len() > limit {
                return Err(self.rest.invalid(
                    "user_data",
                    format!("{} bytes; DigitalOcean accepts at most {limit}", ud.len()),
                ));
            }
            body["user_data"] = json!(ud);
        }
        Ok(body)
    }
}

/// Key or image ids: integers when they are numbers, else strings.
pub(crate) fn id_values(ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|k| match k.parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => json!(k),
        })
        .collect()
}

#[async_trait::async_trait]
impl Provider for Client {
    fn info(&self) -> &'static ProviderInfo {
        info()
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        let body = self.create_body(request)?;
        let create = || async {
            // POST is not idempotent, so the HTTP layer resends it only after
            // a 429 (which the API refused before doing anything).
            let req = ApiRequest::new(Method::POST, "droplets")
                .json(&body)
                .resource("droplet", &request.name);
            let env: DropletEnvelope = self.rest.json(req).await?;
            Ok(env.droplet.into_instance())
        };
        let find = || self.find_by_spuff_id(&request.spuff_id);
        self.rest.create_then_find(request, create, find).await
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("droplets/{}", self.id(id)?))
            .resource("droplet", id);
        self.rest.delete(req).await
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let req = ApiRequest::get(format!("droplets/{}", self.id(id)?)).resource("droplet", id);
        Ok(self
            .rest
            .json_optional::<DropletEnvelope>(req)
            .await?
            .map(|env| env.droplet.into_instance()))
    }

    async fn list_instances(&self) -> ProviderResult<Listing> {
        self.droplets(MANAGED_LABEL).await
    }

    async fn find_by_spuff_id(&self, spuff_id: &str) -> ProviderResult<Vec<ProviderInstance>> {
        // DigitalOcean filters by one tag, so the spuff id tag alone narrows
        // the listing to this VM.
        let listing = self
            .droplets(&format!("{SPUFF_ID_LABEL}:{spuff_id}"))
            .await?;
        Ok(listing
            .instances
            .into_iter()
            .filter(|i| i.is_managed() && i.spuff_id() == Some(spuff_id))
            .collect())
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        self.rest
            .wait_ready(
                id,
                "droplet",
                &[InstanceStatus::Archive, InstanceStatus::Off],
                || self.get_instance(id),
            )
            .await
    }

    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
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
                    self.id(instance_id)?
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

    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        let snaps: Vec<DoSnapshot> = self
            .rest
            .list_all(
                &format!("snapshots?resource_type=droplet&per_page={PER_PAGE}"),
                "snapshots",
                PAGING,
            )
            .await?;
        Ok(snaps.into_iter().map(|s| s.into_snapshot(None)).collect())
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("snapshots/{}", self.id(id)?))
            .resource("snapshot", id);
        self.rest.delete(req).await
    }

    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        self.run_action(
            id,
            json!({"type": "power_off"}),
            &format!("power off droplet {id}"),
        )
        .await
    }

    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        self.run_action(
            id,
            json!({"type": "power_on"}),
            &format!("power on droplet {id}"),
        )
        .await
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        let keys: Vec<DoSshKey> = self
            .rest
            .list_all(
                &format!("account/keys?per_page={PER_PAGE}"),
                "ssh_keys",
                PAGING,
            )
            .await?;
        Ok(keys.into_iter().map(DoSshKey::into_info).collect())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let fingerprint = md5_fingerprint(public_key).ok_or_else(|| {
            self.rest.invalid(
                "ssh_key",
                "not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)",
            )
        })?;
        let find = |keys: Vec<SshKeyInfo>| {
            keys.into_iter()
                .find(|k| k.fingerprint.eq_ignore_ascii_case(&fingerprint))
        };
        if let Some(k) = find(self.list_ssh_keys().await?) {
            return Ok(k);
        }
        let req = ApiRequest::new(Method::POST, "account/keys")
            .json(&json!({"name": name, "public_key": public_key.trim()}))
            .resource("ssh key", name);
        match self.rest.json::<SshKeyEnvelope>(req).await {
            Ok(env) => Ok(env.ssh_key.into_info()),
            // Another spuff may have imported it meanwhile (DigitalOcean
            // answers 422 "already in use"), or the answer was lost: look again.
            Err(e) if e.is_retryable() || matches!(e, ProviderError::Api { status: 422, .. }) => {
                find(self.list_ssh_keys().await?).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        let sizes: Vec<DoSize> = self
            .rest
            .list_all(&format!("sizes?per_page={PER_PAGE}"), "sizes", PAGING)
            .await?;
        Ok(sizes
            .into_iter()
            .map(|s| SizeInfo {
                slug: s.slug,
                vcpus: s.vcpus,
                memory_mb: s.memory,
                disk_gb: s.disk,
                price_monthly: s.price_monthly,
                regions: s.regions,
                available: s.available,
            })
            .collect())
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        let regions: Vec<DoRegion> = self
            .rest
            .list_all(&format!("regions?per_page={PER_PAGE}"), "regions", PAGING)
            .await?;
        Ok(regions
            .into_iter()
            .map(|r| RegionInfo {
                slug: r.slug,
                name: r.name,
                available: r.available,
            })
            .collect())
    }

    fn http_stats(&self) -> HttpStats {
        self.rest.http.stats()
    }
}

/// Maps an [`ImageSpec`] to the `image` field: a slug, or an integer id.
pub fn image_ref(image: &ImageSpec) -> ProviderResult<Value> {
    let as_id = |s: &str| match s.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(s),
    };
    Ok(match image {
        // "24.04" -> "ubuntu-24-04-x64", DigitalOcean's slug scheme.
        ImageSpec::Ubuntu(v) => json!(format!("ubuntu-{}-x64", v.replace('.', "-"))),
        ImageSpec::Debian(v) => json!(format!("debian-{}-x64", v.split('.').next().unwrap_or(v))),
        ImageSpec::Custom(id) | ImageSpec::Snapshot(id) => {
            if id.is_empty() {
                return Err(ProviderError::InvalidConfig {
                    provider: info().name,
                    field: "image".into(),
                    message: "empty image id".into(),
                });
            }
            as_id(id)
        }
    })
}

#[derive(Deserialize)]
struct DropletEnvelope {
    droplet: Droplet,
}

/// A droplet, as much of it as spuff uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Droplet {
    id: IdText,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
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
        let public_ipv4 = v4("public");
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
            private_ipv4: v4("private"),
            status: map_status(&self.status),
            region: slug_of(&self.region).unwrap_or_default(),
            size: self
                .size_slug
                .or_else(|| slug_of(&self.size))
                .unwrap_or_default(),
            created_at: self.created_at,
            labels,
        }
    }
}

/// Droplet status names to spuff's.
pub(crate) fn map_status(s: &str) -> InstanceStatus {
    match s {
        "new" => InstanceStatus::New,
        "active" => InstanceStatus::Active,
        "off" => InstanceStatus::Off,
        "archive" => InstanceStatus::Archive,
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
}

impl Action {
    /// `in-progress`, `completed` or `errored`.
    fn state(self) -> ActionState {
        let progress = match self.status.as_str() {
            "completed" => ActionProgress::Done,
            "errored" => ActionProgress::Failed("errored".into()),
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

#[derive(Deserialize)]
struct SshKeyEnvelope {
    ssh_key: DoSshKey,
}

#[derive(Debug, Deserialize)]
struct DoSshKey {
    id: IdText,
    #[serde(default)]
    name: String,
    #[serde(default)]
    fingerprint: String,
}

impl DoSshKey {
    fn into_info(self) -> SshKeyInfo {
        SshKeyInfo {
            id: self.id.0,
            name: self.name,
            fingerprint: self.fingerprint,
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
    fn images_map_to_slugs() {
        assert_eq!(
            image_ref(&ImageSpec::ubuntu("24.04")).ok(),
            Some(json!("ubuntu-24-04-x64"))
        );
        assert_eq!(
            image_ref(&ImageSpec::debian("12")).ok(),
            Some(json!("debian-12-x64"))
        );
        assert_eq!(
            image_ref(&ImageSpec::Snapshot("6372321".into())).ok(),
            Some(json!(6372321))
        );
        assert_eq!(
            image_ref(&ImageSpec::Custom("my-slug".into())).ok(),
            Some(json!("my-slug"))
        );
    }

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
