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
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use http::Method;
use http::header::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::digitalocean::IdText;
use super::error::{ProviderError, ProviderResult};
use super::http::{ApiRequest, ApiResponse, ErrorBody, HttpClient, HttpStats, RetryPolicy};
use super::registry::{ProviderConfig, ProviderFactory};
use super::types::{
    ImageSpec, InstanceRequest, InstanceStatus, ProviderInstance, ProviderTimeouts, ProviderType,
    RegionInfo, SizeInfo, Snapshot, SshKeyInfo,
};
use super::{MANAGED_LABEL, Provider, md5_fingerprint};

/// The public API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.hetzner.cloud/v1/";

const NAME: &str = "hetzner";

/// The page size spuff asks for (the API's maximum is 50).
const PER_PAGE: u32 = 50;

/// Hetzner refuses user data over 32 KiB.
const MAX_USER_DATA: usize = 32 * 1024;

/// Builds [`Client`]s for the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl ProviderFactory for Factory {
    fn provider_type(&self) -> ProviderType {
        ProviderType::Hetzner
    }

    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>> {
        Ok(Arc::new(Client::new(config)?))
    }
}

/// A Hetzner Cloud project (tokens are per project).
#[derive(Debug, Clone)]
pub struct Client {
    http: HttpClient,
    timeouts: ProviderTimeouts,
    retry: RetryPolicy,
}

impl Client {
    /// A client for the project `config.token` belongs to.
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

    /// Every item under `key` on every page of `path` (which may carry a
    /// query), following `meta.pagination.next_page`.
    async fn list_all<T: DeserializeOwned>(&self, path: &str, key: &str) -> ProviderResult<Vec<T>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            if page > 1000 {
                return Err(ProviderError::InvalidResponse {
                    provider: NAME,
                    operation: format!("GET {path}"),
                    message: "more than 1000 pages; giving up".into(),
                });
            }
            let target = format!("{path}{sep}page={page}&per_page={PER_PAGE}");
            let resp = self.http.send(ApiRequest::get(target)).await?;
            let body: ListPage = parse(&resp)?;
            if let Some(items) = body.items.get(key) {
                let items: Vec<T> = serde_json::from_value(items.clone()).map_err(|e| {
                    ProviderError::InvalidResponse {
                        provider: NAME,
                        operation: resp.operation.clone(),
                        message: format!("`{key}`: {e}"),
                    }
                })?;
                out.extend(items);
            }
            match body
                .meta
                .and_then(|m| m.pagination)
                .and_then(|p| p.next_page)
            {
                // A next page that does not move forward must not loop us.
                Some(next) if next > page => page = next,
                _ => return Ok(out),
            }
        }
    }

    async fn find_by_name(&self, name: &str) -> ProviderResult<Option<ProviderInstance>> {
        let servers: Vec<Server> = self
            .list_all(&format!("servers?name={}", query_value(name)), "servers")
            .await?;
        Ok(servers
            .into_iter()
            .map(Server::into_instance)
            .find(|i| i.name == name))
    }

    /// Starts a server action (`poweroff`, …) and waits for it.
    async fn run_action(&self, server_id: &str, action: &str, what: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(
            Method::POST,
            format!("servers/{}/actions/{action}", path_id(server_id)?),
        )
        .resource("server", server_id);
        let started: ActionEnvelope = self.get_json(req).await?;
        self.wait_action(started.action, what).await.map(drop)
    }

    async fn wait_action(&self, mut action: Action, what: &str) -> ProviderResult<Action> {
        let start = Instant::now();
        let mut backoff = poll_backoff(&self.timeouts);
        loop {
            // Only `status` decides: a `running` action may already carry an
            // `error` object that is not final.
            match action.status.as_str() {
                "success" => return Ok(action),
                "error" => {
                    let detail = action
                        .error
                        .as_ref()
                        .and_then(|e| e.message.clone().or_else(|| e.code.clone()))
                        .map(|m| format!("error: {m}"))
                        .unwrap_or_else(|| "error".into());
                    return Err(ProviderError::ActionFailed {
                        provider: NAME,
                        operation: what.to_string(),
                        action_id: action.id.0,
                        status: detail,
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
            return Err(invalid("name", "a server needs a name".into()));
        }
        let mut labels = serde_json::Map::new();
        labels.insert(MANAGED_LABEL.into(), json!(""));
        for (k, v) in &request.labels {
            if !valid_label(k, true) || !valid_label(v, false) {
                return Err(invalid(
                    "labels",
                    format!(
                        "`{k}={v}`: Hetzner labels allow letters, digits, `-`, `_` and `.` (at most 63, starting and ending alphanumeric)"
                    ),
                ));
            }
            labels.insert(k.clone(), json!(v));
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
            "server_type": request.size,
            "image": image_ref(&request.image)?,
            "location": request.region,
            "ssh_keys": ssh_keys,
            "labels": labels,
            "start_after_create": true,
        });
        if let Some(ud) = &request.user_data {
            if ud.len() > MAX_USER_DATA {
                return Err(invalid(
                    "user_data",
                    format!(
                        "{} bytes; Hetzner accepts at most {MAX_USER_DATA}",
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
            // POST is not idempotent: the HTTP layer resends it only after a 429.
            let req = ApiRequest::new(Method::POST, "servers")
                .json(&body)
                .resource("server", &request.name);
            let err = match self.get_json::<ServerEnvelope>(req).await {
                Ok(env) => return Ok(env.server.into_instance()),
                Err(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            // The server may exist although the answer was lost: look it up
            // by its unique name before sending the create again.
            tracing::debug!(name = %request.name, attempt, error = %err, "create failed; looking for the server before resending");
            if let Some(found) = self.find_by_name(&request.name).await? {
                return Ok(found);
            }
            if attempt >= attempts {
                return Err(err);
            }
            attempt += 1;
            let delay = err
                .retry_after()
                .unwrap_or(self.retry.min_delay)
                .min(backoff.next().unwrap_or(self.retry.max_delay));
            tokio::time::sleep(delay).await;
        }
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("servers/{}", path_id(id)?))
            .resource("server", id);
        match self.http.send(req).await {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let req = ApiRequest::get(format!("servers/{}", path_id(id)?)).resource("server", id);
        match self.get_json::<ServerEnvelope>(req).await {
            Ok(env) => Ok(Some(env.server.into_instance())),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_instances(&self) -> ProviderResult<Vec<ProviderInstance>> {
        let servers: Vec<Server> = self
            .list_all(
                &format!("servers?label_selector={MANAGED_LABEL}"),
                "servers",
            )
            .await?;
        Ok(servers.into_iter().map(Server::into_instance).collect())
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        let start = Instant::now();
        let mut backoff = poll_backoff(&self.timeouts);
        let mut last_seen: String;
        let mut missing = 0;
        let operation = || format!("waiting for server {id} to become running");
        loop {
            match self.get_instance(id).await {
                Ok(Some(vm)) if vm.is_ready() => return Ok(vm),
                Ok(Some(vm)) => {
                    if vm.status == InstanceStatus::Off {
                        return Err(ProviderError::Api {
                            provider: NAME,
                            operation: operation(),
                            status: 200,
                            code: None,
                            message: "the server is off and will not start by itself".into(),
                            request_id: None,
                        });
                    }
                    last_seen = vm.describe_state();
                }
                Ok(None) if missing < 3 => {
                    missing += 1;
                    last_seen = "not found".into();
                }
                Ok(None) => {
                    return Err(ProviderError::NotFound {
                        provider: NAME,
                        resource: "server",
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
                    operation: operation(),
                    elapsed,
                    last_seen: Some(last_seen),
                });
            }
            let delay = backoff.next().unwrap_or(self.timeouts.poll_max);
            tokio::time::sleep(delay.min(self.timeouts.instance_ready - elapsed)).await;
        }
    }

    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let what = format!("snapshot `{name}` of server {instance_id}");
        let req = ApiRequest::new(
            Method::POST,
            format!("servers/{}/actions/create_image", path_id(instance_id)?),
        )
        .json(&json!({
            "description": name,
            "type": "snapshot",
            "labels": { MANAGED_LABEL: "" },
        }))
        .resource("server", instance_id);
        let started: CreateImageEnvelope = self.get_json(req).await?;
        self.wait_action(started.action, &what).await?;
        let mut snap = started.image.into_snapshot();
        if snap.source_instance.is_none() {
            snap.source_instance = Some(instance_id.to_string());
        }
        Ok(snap)
    }

    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        let images: Vec<Image> = self
            .list_all(
                &format!("images?type=snapshot&label_selector={MANAGED_LABEL}"),
                "images",
            )
            .await?;
        Ok(images.into_iter().map(Image::into_snapshot).collect())
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let req = ApiRequest::new(Method::DELETE, format!("images/{}", path_id(id)?))
            .resource("image", id);
        match self.http.send(req).await {
            Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
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
        let keys: Vec<HSshKey> = self.list_all("ssh_keys", "ssh_keys").await?;
        Ok(keys.into_iter().map(HSshKey::into_info).collect())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let fingerprint =
            md5_fingerprint(public_key).ok_or_else(|| ProviderError::InvalidConfig {
                provider: NAME,
                field: "ssh_key".into(),
                message: "not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)".into(),
            })?;
        let lookup = || async {
            let keys: Vec<HSshKey> = self
                .list_all(
                    &format!("ssh_keys?fingerprint={}", query_value(&fingerprint)),
                    "ssh_keys",
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
        match self.get_json::<SshKeyEnvelope>(req).await {
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
        let types: Vec<ServerType> = self.list_all("server_types", "server_types").await?;
        Ok(types.into_iter().map(ServerType::into_size).collect())
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        let locations: Vec<Location> = self.list_all("locations", "locations").await?;
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
        self.http.stats()
    }
}

/// Poll intervals: fast at first, ×1.5 up to `poll_max` so a slow boot does
/// not burn the 3600/hour rate limit.
fn poll_backoff(t: &ProviderTimeouts) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(t.poll_initial)
        .with_max_delay(t.poll_max.max(t.poll_initial))
        .with_factor(1.5)
        .without_max_times()
        .build()
}

/// An id that goes into a URL path: digits only (Hetzner ids are integers).
fn path_id(id: &str) -> ProviderResult<&str> {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(ProviderError::InvalidConfig {
            provider: NAME,
            field: "id".into(),
            message: format!("`{id}` is not a Hetzner id"),
        })
    }
}

/// Percent-encodes a query value (names and fingerprints contain `:` and
/// possibly other reserved characters).
fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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
                    provider: NAME,
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

fn parse<T: DeserializeOwned>(resp: &ApiResponse) -> ProviderResult<T> {
    serde_json::from_slice(&resp.body).map_err(|e| ProviderError::InvalidResponse {
        provider: NAME,
        operation: format!("{} (HTTP {})", resp.operation, resp.status.as_u16()),
        message: e.to_string(),
    })
}

/// Hetzner's error body: `{"error":{"code","message","details"}}`; the
/// request id is the `X-Correlation-Id` header. Falls back to the raw body.
pub(crate) fn parse_error(body: &[u8], headers: &HeaderMap) -> ErrorBody {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
    }
    let request_id = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => ErrorBody {
            code: env.error.code.filter(|s| !s.is_empty()),
            message: env.error.message.unwrap_or_else(|| "(no message)".into()),
            request_id,
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
                request_id,
            }
        }
    }
}

// ---- wire types ----------------------------------------------------------

#[derive(Deserialize)]
struct ListPage {
    meta: Option<Meta>,
    #[serde(flatten)]
    items: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct Meta {
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    next_page: Option<u64>,
}

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
        ProviderInstance {
            id: self.id.0,
            name: self.name,
            public_ipv4,
            public_ipv6,
            private_ipv4,
            status: map_status(&self.status),
            region,
            size: name_of(self.server_type.as_ref()).unwrap_or_default(),
            created_at: self.created,
            labels: self.labels.unwrap_or_default(),
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
    fn error_body_and_correlation_id() {
        let mut h = HeaderMap::new();
        h.insert("x-correlation-id", http::HeaderValue::from_static("c-1"));
        let e = parse_error(
            br#"{"error":{"code":"uniqueness_error","message":"SSH key not unique","details":{}}}"#,
            &h,
        );
        assert_eq!(e.code.as_deref(), Some("uniqueness_error"));
        assert_eq!(e.request_id.as_deref(), Some("c-1"));
        let e = parse_error(b"oops", &HeaderMap::new());
        assert_eq!(e.message, "oops");
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
