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

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use http::Method;
use http::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{ProviderError, ProviderResult};
use super::http::{ApiRequest, ApiResponse, ErrorBody, HttpClient, HttpStats, RetryPolicy};
use super::registry::{ProviderConfig, ProviderFactory};
use super::types::{
    ImageSpec, InstanceRequest, InstanceStatus, ProviderInstance, ProviderTimeouts, ProviderType,
    RegionInfo, SizeInfo, Snapshot, SshKeyInfo,
};
use super::{MANAGED_LABEL, Provider, md5_fingerprint};

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com/v2/";

const NAME: &str = "digitalocean";

/// The API's largest page (`per_page` maximum).
const PER_PAGE: u32 = 200;

/// DigitalOcean refuses user data over 64 KiB.
const MAX_USER_DATA: usize = 64 * 1024;

/// Builds [`Client`]s for the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl ProviderFactory for Factory {
    fn provider_type(&self) -> ProviderType {
        ProviderType::DigitalOcean
    }

    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>> {
        Ok(Arc::new(Client::new(config)?))
    }
}

/// A DigitalOcean account.
#[derive(Debug, Clone)]
pub struct Client {
    http: HttpClient,
    timeouts: ProviderTimeouts,
    retry: RetryPolicy,
}

impl Client {
    /// A client for the account `config.token` belongs to.
    ///
    /// # Errors
    /// A missing token, a non-https base URL, or an unreadable CA file.
    pub fn new(config: ProviderConfig) -> ProviderResult<Self> {
        let base = config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let http = HttpClient::new(
            NAME,
            base,
            &config.token,
            &config.timeouts,
            &config.http,
            parse_error,
        )?;
        Ok(Client {
            http,
            timeouts: config.timeouts,
            retry: config.http.retry,
        })
    }

    /// Transport counters.
    pub fn stats(&self) -> HttpStats {
        self.http.stats()
    }

    async fn get_json<T: DeserializeOwned>(&self, req: ApiRequest) -> ProviderResult<T> {
        let resp = self.http.send(req).await?;
        parse(&resp)
    }

    /// Every item under `key` on every page, following `links.pages.next`.
    async fn list_all<T: DeserializeOwned>(
        &self,
        first: String,
        key: &str,
    ) -> ProviderResult<Vec<T>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(target) = next.take() {
            pages += 1;
            if pages > 1000 {
                // A server that links a page to itself must not loop us forever.
                return Err(ProviderError::InvalidResponse {
                    provider: NAME,
                    operation: format!("GET {key}"),
                    message: "more than 1000 pages; giving up".into(),
                });
            }
            let resp = self.http.send(ApiRequest::get(target)).await?;
            let page: Page = parse(&resp)?;
            if let Some(items) = page.items.get(key) {
                let items: Vec<T> = serde_json::from_value(items.clone()).map_err(|e| {
                    ProviderError::InvalidResponse {
                        provider: NAME,
                        operation: resp.operation.clone(),
                        message: format!("`{key}`: {e}"),
                    }
                })?;
                out.extend(items);
            }
            next = page.links.and_then(|l| l.pages).and_then(|p| p.next);
        }
        Ok(out)
    }

    async fn find_by_name(&self, name: &str) -> ProviderResult<Option<ProviderInstance>> {
        Ok(self
            .list_instances()
            .await?
            .into_iter()
            .find(|i| i.name == name))
    }

    /// Starts a droplet action and waits for it to complete.
    async fn run_action(
        &self,
        droplet_id: &str,
        body: Value,
        what: &str,
    ) -> ProviderResult<Action> {
        let req = ApiRequest::new(
            Method::POST,
            format!("droplets/{}/actions", path_id(droplet_id)?),
        )
        .json(&body)
        .resource("droplet", droplet_id);
        let started: ActionEnvelope = self.get_json(req).await?;
        self.wait_action(started.action, what).await
    }

    async fn wait_action(&self, mut action: Action, what: &str) -> ProviderResult<Action> {
        let start = Instant::now();
        let mut backoff = poll_backoff(&self.timeouts);
        loop {
            match action.status.as_str() {
                "completed" => return Ok(action),
                "errored" => {
                    return Err(ProviderError::ActionFailed {
                        provider: NAME,
                        operation: what.to_string(),
                        action_id: action.id.0,
                        status: action.status,
                    });
                }
                _ => {}
            }
            let elapsed = start.elapsed();
            if elapsed >= self.timeouts.action {
                return Err(ProviderError::Timeout {
                    provider: NAME,
                    operation: what.to_string(),
                    elapsed,
                    last_seen: Some(format!("action {} {}", action.id.0, action.status)),
                });
            }
            let delay = backoff.next().unwrap_or(self.timeouts.poll_max);
            tokio::time::sleep(delay.min(self.timeouts.action - elapsed)).await;
            let req = ApiRequest::get(format!("actions/{}", path_id(&action.id.0)?))
                .resource("action", action.id.0.clone());
            action = self.get_json::<ActionEnvelope>(req).await?.action;
        }
    }

    fn create_body(&self, request: &InstanceRequest) -> ProviderResult<Value> {
        let invalid = |field: &str, message: String| ProviderError::InvalidConfig {
            provider: NAME,
            field: field.into(),
            message,
        };
        if request.name.is_empty() {
            return Err(invalid("name", "a droplet needs a name".into()));
        }
        let mut tags = vec![MANAGED_LABEL.to_string()];
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
                return Err(invalid(
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
        let ssh_keys: Vec<Value> = request
            .ssh_keys
            .iter()
            .map(|k| match k.parse::<u64>() {
                Ok(n) => json!(n),
                Err(_) => json!(k),
            })
            .collect();
        let mut body = json!({
            "name": request.name,
            "region": request.region,
            "size": request.size,
            "image": image_ref(&request.image)?,
            "ssh_keys": ssh_keys,
            "tags": tags,
            "ipv6": true,
            "monitoring": false,
        });
        if let Some(ud) = &request.user_data {
            if ud.len() > MAX_USER_DATA {
                return Err(invalid(
                    "user_data",
                    format!(
                        "{} bytes; DigitalOcean accepts at most {MAX_USER_DATA}",
                        ud.len()
                    ),
                ));
            }
            body["user_data"] = json!(ud);
        }
        Ok(body)
    }
}

#[async_trait::async_trait]
impl Provider for Client {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        let body = self.create_body(request)?;
        let attempts = self.retry.max_attempts.max(1);
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt = 1;
        loop {
            // POST is not idempotent, so the HTTP layer resends it only after
            // a 429 (which the API refused before doing anything).
            let req = ApiRequest::new(Method::POST, "droplets")
                .json(&body)
                .resource("droplet", &request.name);
            let err = match self.get_json::<DropletEnvelope>(req).await {
                Ok(env) => return Ok(env.droplet.into_instance()),
                Err(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            // The request may have created the droplet before the answer was
            // lost: look for it by its unique name before sending it again.
            tracing::debug!(name = %request.name, attempt, error = %err, "create failed; looking for the droplet before resending");
            if let Some(found) = self.find_by_name(&request.name).await? {
                tracing::debug!(id = %found.id, "the lost create did make the droplet");
                return Ok(found);
            }
            if attempt >= attempts {
                return Err(err);
            }
            attempt += 1;
            let delay = backoff.next().unwrap_or(self.retry.max_delay);
            tokio::time::sleep(delay).await;
        }
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("droplets/{}", path_id(id)?))
            .resource("droplet", id);
        match self.http.send(req).await {
            // A resent DELETE whose first try went through sees 404: gone is gone.
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let req = ApiRequest::get(format!("droplets/{}", path_id(id)?)).resource("droplet", id);
        match self.get_json::<DropletEnvelope>(req).await {
            Ok(env) => Ok(Some(env.droplet.into_instance())),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_instances(&self) -> ProviderResult<Vec<ProviderInstance>> {
        let droplets: Vec<Droplet> = self
            .list_all(
                format!("droplets?tag_name={MANAGED_LABEL}&per_page={PER_PAGE}"),
                "droplets",
            )
            .await?;
        Ok(droplets.into_iter().map(Droplet::into_instance).collect())
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        let start = Instant::now();
        let mut backoff = poll_backoff(&self.timeouts);
        let mut last_seen: String;
        let mut missing = 0;
        loop {
            match self.get_instance(id).await {
                Ok(Some(vm)) if vm.is_ready() => return Ok(vm),
                Ok(Some(vm)) => {
                    if matches!(vm.status, InstanceStatus::Archive | InstanceStatus::Off) {
                        return Err(ProviderError::Api {
                            provider: NAME,
                            operation: format!("waiting for droplet {id} to become active"),
                            status: 200,
                            code: None,
                            message: format!(
                                "the droplet is {} and will not become active by itself",
                                vm.status
                            ),
                            request_id: None,
                        });
                    }
                    last_seen = vm.describe_state();
                }
                // Right after a create the droplet may not be visible yet.
                Ok(None) if missing < 3 => {
                    missing += 1;
                    last_seen = "not found".into();
                }
                Ok(None) => {
                    return Err(ProviderError::NotFound {
                        provider: NAME,
                        resource: "droplet",
                        id: id.to_string(),
                    });
                }
                Err(e) if e.is_retryable() => last_seen = format!("error: {e}"),
                Err(e) => return Err(e),
            }
            let elapsed = start.elapsed();
            if elapsed >= self.timeouts.instance_ready {
                return Err(ProviderError::Timeout {
                    provider: NAME,
                    operation: format!("waiting for droplet {id} to become active"),
                    elapsed,
                    last_seen: Some(last_seen),
                });
            }
            let delay = backoff.next().unwrap_or(self.timeouts.poll_max);
            tracing::trace!(id, state = %last_seen, delay_ms = delay.as_millis() as u64, "droplet not ready");
            tokio::time::sleep(delay.min(self.timeouts.instance_ready - elapsed)).await;
        }
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
            .list_all(
                format!(
                    "droplets/{}/snapshots?per_page={PER_PAGE}",
                    path_id(instance_id)?
                ),
                "snapshots",
            )
            .await?;
        snaps
            .into_iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(name))
            .map(|s| s.into_snapshot(Some(instance_id)))
            .ok_or_else(|| ProviderError::InvalidResponse {
                provider: NAME,
                operation: what,
                message: "the snapshot action completed but the snapshot is not listed".into(),
            })
    }

    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        let snaps: Vec<DoSnapshot> = self
            .list_all(
                format!("snapshots?resource_type=droplet&per_page={PER_PAGE}"),
                "snapshots",
            )
            .await?;
        Ok(snaps.into_iter().map(|s| s.into_snapshot(None)).collect())
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("snapshots/{}", path_id(id)?))
            .resource("snapshot", id);
        match self.http.send(req).await {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        self.run_action(
            id,
            json!({"type": "power_off"}),
            &format!("power off droplet {id}"),
        )
        .await
        .map(drop)
    }

    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        self.run_action(
            id,
            json!({"type": "power_on"}),
            &format!("power on droplet {id}"),
        )
        .await
        .map(drop)
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        let keys: Vec<DoSshKey> = self
            .list_all(format!("account/keys?per_page={PER_PAGE}"), "ssh_keys")
            .await?;
        Ok(keys.into_iter().map(DoSshKey::into_info).collect())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let fingerprint =
            md5_fingerprint(public_key).ok_or_else(|| ProviderError::InvalidConfig {
                provider: NAME,
                field: "ssh_key".into(),
                message: "not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)".into(),
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
        match self.get_json::<SshKeyEnvelope>(req).await {
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
            .list_all(format!("sizes?per_page={PER_PAGE}"), "sizes")
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
            .list_all(format!("regions?per_page={PER_PAGE}"), "regions")
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
        self.http.stats()
    }
}

/// Poll intervals: fast at first (a droplet is often up in 30 s), ×1.5 up to
/// `poll_max` so a slow boot does not burn the 250/minute rate limit.
fn poll_backoff(t: &ProviderTimeouts) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(t.poll_initial)
        .with_max_delay(t.poll_max.max(t.poll_initial))
        .with_factor(1.5)
        .without_max_times()
        .build()
}

/// An id that goes into a URL path: digits or a UUID, nothing that could
/// change the path.
fn path_id(id: &str) -> ProviderResult<&str> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(id)
    } else {
        Err(ProviderError::InvalidConfig {
            provider: NAME,
            field: "id".into(),
            message: format!("`{id}` is not a DigitalOcean id"),
        })
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
                    provider: NAME,
                    field: "image".into(),
                    message: "empty image id".into(),
                });
            }
            as_id(id)
        }
    })
}

fn parse<T: DeserializeOwned>(resp: &ApiResponse) -> ProviderResult<T> {
    serde_json::from_slice(&resp.body).map_err(|e| ProviderError::InvalidResponse {
        provider: NAME,
        operation: format!("{} (HTTP {})", resp.operation, resp.status.as_u16()),
        message: e.to_string(),
    })
}

/// DigitalOcean's error body: `{"id","message","request_id"}`, any of them
/// possibly missing; falls back to `x-request-id` and to the raw body.
pub(crate) fn parse_error(body: &[u8], headers: &HeaderMap) -> ErrorBody {
    #[derive(Deserialize, Default)]
    struct Raw {
        id: Option<String>,
        message: Option<String>,
        request_id: Option<String>,
    }
    let header_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match serde_json::from_slice::<Raw>(body) {
        Ok(raw) => ErrorBody {
            code: raw.id.filter(|s| !s.is_empty()),
            message: raw.message.unwrap_or_else(|| "(no message)".into()),
            request_id: raw.request_id.or(header_id),
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut message: String = text.trim().chars().take(300).collect();
            if message.is_empty() {
                message = "(empty body)".into();
            }
            ErrorBody {
                code: None,
                message,
                request_id: header_id,
            }
        }
    }
}

// ---- wire types ----------------------------------------------------------

/// An id that is a JSON string or number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IdText(pub(crate) String);

impl<'de> Deserialize<'de> for IdText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(IdText(s)),
            Value::Number(n) => Ok(IdText(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected an id, got {other}"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct Page {
    links: Option<Links>,
    #[serde(flatten)]
    items: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct Links {
    pages: Option<Pages>,
}

#[derive(Deserialize)]
struct Pages {
    next: Option<String>,
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
        let labels = self
            .tags
            .iter()
            .map(|t| match t.split_once(':') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect();
        ProviderInstance {
            id: self.id.0,
            name: self.name,
            public_ipv4: v4("public"),
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

    #[test]
    fn error_bodies_without_id_or_json() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", http::HeaderValue::from_static("hdr-1"));
        let e = parse_error(br#"{"message":"m","errors":[]}"#, &h);
        assert_eq!(
            (e.code, e.message.as_str(), e.request_id.as_deref()),
            (None, "m", Some("hdr-1"))
        );
        let e = parse_error(b"<html>bad gateway</html>", &HeaderMap::new());
        assert_eq!(e.message, "<html>bad gateway</html>");
        let e = parse_error(br#"{"id":"","message":"x","request_id":"r"}"#, &h);
        assert_eq!((e.code, e.request_id.as_deref()), (None, Some("r")));
    }
}
