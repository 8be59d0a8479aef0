//! A Proxmox VE cluster as a spuff [`Provider`]: VMs cloned from a
//! cloud-init template, every step a task waited for, addresses from the
//! guest agent, snapshots per VM.
//!
//! Ids are VM ids (`123`): a VM keeps its id when it migrates, so the node
//! it runs on is looked up (`/cluster/resources`) rather than recorded.
//! Regions are nodes. spuff's labels become Proxmox tags, which allow only
//! `[a-z0-9_+.-]`: `spuff`, `spuff-id-<id>` and `spuff-fleet-<name>`;
//! other labels are not kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::agent::{self, NoAddress};
use super::errors;
use super::task::{LogLine, TaskState, TaskStatus, Upid};
use crate::provider::engine::{Poll, Rest};
use crate::provider::http::{ApiRequest, ErrorRules, HttpClient};
use crate::provider::info::{ProviderInfo, ProviderType};
use crate::provider::{
    Auth, FLEET_LABEL, HttpStats, ImageSpec, InstanceRequest, InstanceStatus, Listing,
    MANAGED_LABEL, Provider, ProviderConfig, ProviderError, ProviderFactory, ProviderInstance,
    ProviderResult, RegionInfo, SPUFF_ID_LABEL, SSH_PORT_LABEL, SSH_USER_LABEL, SizeInfo, Snapshot,
    SshKeyInfo,
};

const NAME: &str = "proxmox";

/// The sizes spuff offers on Proxmox: cores and memory, by name.
pub const SIZES: &[(&str, u32, u64)] = &[
    ("small", 2, 2048),
    ("medium", 4, 4096),
    ("large", 8, 8192),
    ("xlarge", 16, 16384),
];

/// How spuff uses a Proxmox cluster.
#[derive(Debug, Clone, Default)]
pub struct ProxmoxConfig {
    /// The cloud-init-ready template VMs are cloned from (its VM id).
    pub template: Option<u32>,
    /// The node new VMs go to when a request names none (default: the
    /// template's).
    pub node: Option<String>,
    /// Full clones instead of linked ones (slower, independent of the
    /// template).
    pub full_clone: bool,
    /// The storage of a full clone's disks (default: the template's).
    pub storage: Option<String>,
    /// How spuff puts a VM's user-data on the node as a snippet; without
    /// it a VM gets no user-data (see docs/proxmox.md).
    pub node_ssh: Option<NodeSsh>,
    /// Log in with this user and password (a ticket) instead of an API
    /// token: `root@pam`, `ana@pve`.
    pub login: Option<(String, crate::util::Secret)>,
    /// `ipconfig0` for new VMs ([`ipconfig::DEFAULT`](super::ipconfig::DEFAULT),
    /// DHCP, when `None`). A static `ip=` is where spuff finds the VM, with
    /// no guest agent needed; it suits one VM at a time, so a second VM
    /// with an address a spuff VM already has is refused.
    pub ipconfig: Option<String>,
}

/// The VM's addresses and where SSH reaches it: IPv4 first, with the
/// port and user its tags name.
fn set_address(
    vm: &mut ProviderInstance,
    ipv4: Option<std::net::Ipv4Addr>,
    ipv6: Option<std::net::Ipv6Addr>,
) {
    vm.public_ipv4 = ipv4;
    vm.public_ipv6 = ipv6;
    vm.ssh = ipv4
        .map(std::net::IpAddr::V4)
        .or(ipv6.map(std::net::IpAddr::V6))
        .map(|ip| crate::provider::SshEndpoint::from_labels(ip, &vm.labels));
}

/// A ticket from `/access/ticket` and its CSRF token, with when it was
/// issued (tickets last 2 hours).
#[derive(Debug, Clone)]
struct Ticket {
    ticket: crate::util::Secret,
    csrf: crate::util::Secret,
    issued: std::time::Instant,
}

/// Adds the ticket to each request: the `PVEAuthCookie` cookie, and on
/// anything but a GET the `CSRFPreventionToken` header Proxmox requires
/// with tickets. Before the first login there is nothing to add.
#[derive(Debug, Default)]
struct TicketAuth(std::sync::Mutex<Option<Ticket>>);

impl crate::provider::RequestSigner for TicketAuth {
    fn sign(&self, request: crate::provider::SignRequest<'_>) -> Result<(), String> {
        let held = self
            .0
            .lock()
            .map_err(|_| "the ticket lock is poisoned".to_string())?;
        let Some(t) = held.as_ref() else {
            return Ok(());
        };
        let value = |s: String| {
            http::HeaderValue::from_str(&s)
                .map_err(|_| "a ticket that is not a header value".to_string())
        };
        let mut cookie = value(format!("PVEAuthCookie={}", t.ticket.expose()))?;
        cookie.set_sensitive(true);
        request.headers.insert(http::header::COOKIE, cookie);
        if request.method != Method::GET {
            let mut csrf = value(t.csrf.expose().to_string())?;
            csrf.set_sensitive(true);
            request.headers.insert("csrfpreventiontoken", csrf);
        }
        Ok(())
    }
}

/// SSH to a node, to write user-data snippets there: Proxmox's API cannot
/// upload snippets, and spuff's user-data (the pinned host key, the agent)
/// is needed by every VM.
#[derive(Debug, Clone)]
pub struct NodeSsh {
    /// How to log in to the node (host, user, keys, and its host key
    /// checked as configured: never accepted blindly).
    pub ssh: crate::ssh::Config,
    /// The storage holding snippets (`local`).
    pub storage: String,
    /// Where that storage keeps them on the node (`/var/lib/vz/snippets`).
    pub dir: String,
}

impl NodeSsh {
    /// Snippets on `local`, in `/var/lib/vz/snippets`, through `ssh`.
    pub fn new(ssh: crate::ssh::Config) -> Self {
        NodeSsh {
            ssh,
            storage: "local".into(),
            dir: "/var/lib/vz/snippets".into(),
        }
    }
}

/// Builds [`Proxmox`] providers.
#[derive(Debug, Clone, Copy)]
pub struct Factory;

impl ProviderFactory for Factory {
    fn info(&self) -> &'static ProviderInfo {
        ProviderType::Proxmox.info()
    }

    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>> {
        Ok(Arc::new(Proxmox::new(config)?))
    }
}

/// A Proxmox VE cluster, reached with an API token or a user's ticket.
#[derive(Debug)]
pub struct Proxmox {
    rest: Rest,
    config: ProxmoxConfig,
    /// Set when logging in with a password.
    ticket: Option<Arc<TicketAuth>>,
    /// One login at a time.
    login_lock: tokio::sync::Mutex<()>,
}

/// One VM as `/cluster/resources?type=vm` lists it.
#[derive(Debug, Clone, Deserialize)]
struct Resource {
    #[serde(deserialize_with = "number")]
    vmid: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    node: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tags: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    template: bool,
    #[serde(default, deserialize_with = "opt_number")]
    maxcpu: Option<u64>,
    #[serde(default, deserialize_with = "opt_number")]
    maxmem: Option<u64>,
    /// What holds the VM (`clone` while it is being cloned).
    #[serde(default)]
    lock: Option<String>,
}

/// A number Proxmox may send as a string (`"123"`).
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    opt_number(d)?.ok_or_else(|| serde::de::Error::custom("a number was null"))
}

fn opt_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_u64().or_else(|| n.as_f64().map(|f| f as u64))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a number"))),
        Some(other) => Err(serde::de::Error::custom(format!("{other} is not a number"))),
    }
}

/// `0`/`1`, `""`, `"1"` or a boolean.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => b,
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) != 0,
        Some(Value::String(s)) => matches!(s.trim(), "1" | "true"),
        _ => false,
    })
}

/// spuff's labels as tags, and back.
fn tags_of(request: &InstanceRequest) -> ProviderResult<String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+.-".contains(&b))
    };
    let mut tags = vec![MANAGED_LABEL.to_string()];
    let id = format!("{SPUFF_ID_LABEL}-{}", request.spuff_id);
    if !valid(&id) {
        return Err(invalid("spuff_id", "a spuff id is lower-case hex"));
    }
    tags.push(id);
    if let Some(fleet) = request.labels.get(FLEET_LABEL) {
        let tag = format!("{FLEET_LABEL}-{fleet}");
        if !valid(&tag) {
            return Err(invalid(
                "fleet",
                format!("`{fleet}` cannot be a Proxmox tag"),
            ));
        }
        tags.push(tag);
    }
    Ok(tags.join(";"))
}

fn labels_of(tags: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for tag in tags.unwrap_or_default().split([';', ',', ' ']) {
        if tag == MANAGED_LABEL {
            labels.insert(MANAGED_LABEL.to_string(), String::new());
        } else if let Some(id) = tag.strip_prefix(&format!("{SPUFF_ID_LABEL}-")) {
            labels.insert(SPUFF_ID_LABEL.to_string(), id.to_string());
        } else if let Some(f) = tag.strip_prefix(&format!("{FLEET_LABEL}-")) {
            labels.insert(FLEET_LABEL.to_string(), f.to_string());
        } else if let Some(port) = tag.strip_prefix(&format!("{SSH_PORT_LABEL}-")) {
            // A template whose sshd listens elsewhere says so with a tag
            // (`spuff-ssh-port-2222`); checked where it is used.
            labels.insert(SSH_PORT_LABEL.to_string(), port.to_string());
        } else if let Some(user) = tag.strip_prefix(&format!("{SSH_USER_LABEL}-")) {
            labels.insert(SSH_USER_LABEL.to_string(), user.to_string());
        }
    }
    labels
}

fn invalid(field: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig {
        provider: NAME,
        field: field.into(),
        message: message.into(),
    }
}

/// A VM id as it goes into a path: digits only.
fn vmid(id: &str) -> ProviderResult<u64> {
    id.parse::<u64>()
        .ok()
        .filter(|n| (100..1_000_000_000).contains(n))
        .ok_or_else(|| invalid("id", format!("`{id}` is not a Proxmox VM id")))
}

/// A node name as it goes into a path.
/// The VM's boot disk in its config: the first disk in `boot`'s order
/// (`order=scsi0;ide2;net0`), else the older `bootdisk`, else the first
/// disk present; never the cloud-init drive or a CD-ROM.
fn boot_disk(config: &Value) -> Option<String> {
    let is_disk = |key: &str| {
        let bus = key.trim_end_matches(|c: char| c.is_ascii_digit());
        matches!(bus, "scsi" | "virtio" | "sata" | "ide")
            && bus.len() < key.len()
            && config[key]
                .as_str()
                .is_some_and(|v| !v.contains("media=cdrom") && !v.contains("cloudinit"))
    };
    let order = config["boot"]
        .as_str()
        .and_then(|b| b.split(',').find_map(|p| p.strip_prefix("order=")))
        .map(|o| o.split(';').map(str::to_string).collect::<Vec<_>>())
        .unwrap_or_default();
    order
        .into_iter()
        .chain(config["bootdisk"].as_str().map(str::to_string))
        .find(|k| is_disk(k))
        .or_else(|| {
            ["scsi", "virtio", "sata", "ide"]
                .iter()
                .find_map(|bus| (0..31).map(|n| format!("{bus}{n}")).find(|k| is_disk(k)))
        })
}

/// The `size=` of a disk's config value (`local-lvm:vm-101-disk-0,size=2G`)
/// in bytes.
fn disk_size_bytes(value: &str) -> Option<u64> {
    let size = value.split(',').find_map(|p| p.strip_prefix("size="))?;
    let (digits, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// A snapshot id, `VMID/NAME`, taken apart and checked (the name goes
/// into a URL path).
fn snapshot_id(id: &str) -> ProviderResult<(u64, &str)> {
    let (vm, snap) = id
        .split_once('/')
        .ok_or_else(|| invalid("snapshot", format!("`{id}` is not VMID/SNAPSHOT")))?;
    let n = vmid(vm)?;
    if snap.is_empty()
        || !snap
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "snapshot",
            format!("`{snap}` is not a snapshot name"),
        ));
    }
    Ok((n, snap))
}

fn node_name(node: &str) -> ProviderResult<&str> {
    let ok = !node.is_empty()
        && node.len() <= 63
        && node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(node)
        .ok_or_else(|| invalid("region", format!("`{node}` is not a Proxmox node name")))
}

impl Proxmox {
    /// A client for the cluster at `config.base_url`
    /// (`https://HOST:8006/api2/json/`), with the API token in
    /// `config.token` (`USER@REALM!TOKENID=SECRET`).
    ///
    /// # Errors
    /// A missing URL or token, an unreadable CA file.
    pub fn new(config: ProviderConfig) -> ProviderResult<Proxmox> {
        let info = ProviderType::Proxmox.info();
        let base = config.base_url.clone().ok_or_else(|| {
            invalid(
                "url",
                "no cluster URL: `spuff config set proxmox_url https://HOST:8006`",
            )
        })?;
        let token = config.token.expose().trim();
        let well_formed = token.contains('@') && token.contains('!') && token.contains('=');
        let ticket = config
            .proxmox
            .login
            .is_some()
            .then(|| Arc::new(TicketAuth::default()));
        if ticket.is_none() && token.is_empty() {
            return Err(ProviderError::Authentication {
                provider: NAME,
                message: "no credentials: an API token (PROXMOX_VE_API_TOKEN), or proxmox_user with PROXMOX_VE_PASSWORD".into(),
            });
        }
        if ticket.is_none() && !well_formed {
            return Err(ProviderError::Authentication {
                provider: NAME,
                message: "the token is not USER@REALM!TOKENID=SECRET".into(),
            });
        }
        let auth = match &ticket {
            Some(t) => Auth::Signer(t.clone()),
            None => Auth::PveApiToken(config.token.clone()),
        };
        let http = HttpClient::new(
            NAME,
            &base,
            &auth,
            &config.timeouts,
            &config.http,
            ErrorRules::Custom(errors::classify),
        )?;
        Ok(Proxmox {
            rest: Rest {
                http,
                info,
                timeouts: config.timeouts.clone(),
                retry: config.http.retry.clone(),
            },
            config: config.proxmox.clone(),
            ticket,
            login_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Logs in with the password when there is no ticket yet or it is
    /// more than an hour old (they last two).
    async fn ensure_ticket(&self) -> ProviderResult<()> {
        let (Some(auth), Some((user, password))) = (&self.ticket, &self.config.login) else {
            return Ok(());
        };
        let _one = self.login_lock.lock().await;
        let fresh = |a: &TicketAuth| {
            a.0.lock().ok().is_some_and(|t| {
                t.as_ref()
                    .is_some_and(|t| t.issued.elapsed() < std::time::Duration::from_secs(3600))
            })
        };
        if fresh(auth) {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Answer {
            ticket: String,
            #[serde(rename = "CSRFPreventionToken")]
            csrf: String,
            #[serde(default, rename = "NeedTFA", deserialize_with = "flag")]
            need_tfa: bool,
        }
        if let Ok(mut held) = auth.0.lock() {
            *held = None;
        }
        let req = ApiRequest::new(Method::POST, "access/ticket")
            .json(&json!({"username": user, "password": password.expose()}));
        let answer: Answer = self.data(req).await?;
        if answer.need_tfa {
            return Err(ProviderError::Authentication {
                provider: NAME,
                message: format!("{user} has two-factor authentication: use an API token instead"),
            });
        }
        if let Ok(mut held) = auth.0.lock() {
            *held = Some(Ticket {
                ticket: crate::util::Secret::new(answer.ticket),
                csrf: crate::util::Secret::new(answer.csrf),
                issued: std::time::Instant::now(),
            });
        }
        Ok(())
    }

    /// `data` of the answer to `req`.
    async fn data<T: DeserializeOwned>(&self, req: ApiRequest) -> ProviderResult<T> {
        #[derive(Deserialize)]
        struct Envelope<T> {
            data: T,
        }
        if req.target != "access/ticket" {
            Box::pin(self.ensure_ticket()).await?;
        }
        let resp = self.rest.http.send(req).await?;
        serde_json::from_slice::<Envelope<T>>(&resp.body)
            .map(|e| e.data)
            .map_err(|e| ProviderError::InvalidResponse {
                provider: NAME,
                operation: resp.operation.clone(),
                message: format!("`data`: {e}"),
            })
    }

    async fn resources(&self) -> ProviderResult<Vec<Resource>> {
        let all: Vec<Value> = self
            .data(ApiRequest::get("cluster/resources?type=vm"))
            .await?;
        // lxc containers come in the same list.
        Ok(all
            .into_iter()
            .filter(|v| v["type"] == "qemu")
            .filter_map(|v| serde_json::from_value::<Resource>(v).ok())
            .collect())
    }

    async fn resource(&self, id: u64) -> ProviderResult<Option<Resource>> {
        Ok(self.resources().await?.into_iter().find(|r| r.vmid == id))
    }

    /// Waits for a task to stop; a failed task is an error carrying the
    /// end of its log.
    async fn wait_task(&self, upid: &str, what: &str) -> ProviderResult<()> {
        let task = Upid::parse(upid).ok_or_else(|| ProviderError::InvalidResponse {
            provider: NAME,
            operation: what.to_string(),
            message: format!("`{}` is not a task id", crate::util::terminal_safe(upid)),
        })?;
        let node = node_name(&task.node)?.to_string();
        let path = format!(
            "nodes/{node}/tasks/{}",
            crate::provider::engine::query_value(upid)
        );
        let state = self
            .rest
            .poll(what, self.rest.timeouts.action, || async {
                let status: TaskStatus = self
                    .data(ApiRequest::get(format!("{path}/status")).resource("task", upid))
                    .await?;
                Ok(match status.state() {
                    TaskState::Running => Poll::Pending(format!("task {} running", task.kind)),
                    done => Poll::Done(done),
                })
            })
            .await?;
        let TaskState::Failed(text) = state else {
            return Ok(());
        };
        let log: Vec<LogLine> = self
            .data(ApiRequest::get(format!("{path}/log?start=0&limit=50")))
            .await
            .unwrap_or_default();
        let tail: Vec<String> = log
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|l| crate::util::terminal_safe(&l.t).into_owned())
            .collect();
        Err(ProviderError::ActionFailed {
            provider: NAME,
            operation: what.to_string(),
            action_id: upid.to_string(),
            status: if tail.is_empty() {
                crate::util::terminal_safe(&text).into_owned()
            } else {
                format!(
                    "{}; log: {}",
                    crate::util::terminal_safe(&text),
                    tail.join(" | ")
                )
            },
        })
    }

    /// Sends `req`, which answers a task id (or `null` when it finished
    /// at once), and waits for the task.
    async fn run(&self, req: ApiRequest, what: &str) -> ProviderResult<()> {
        let upid: Option<String> = self.data(req).await?;
        match upid {
            Some(upid) => self.wait_task(&upid, what).await,
            None => Ok(()),
        }
    }

    /// The template to clone and the node it is on.
    async fn template(&self, image: &ImageSpec) -> ProviderResult<(Resource, Option<String>)> {
        let (source, snapshot) = match image {
            ImageSpec::Snapshot(id) => {
                let (vm, snap) = id
                    .split_once('/')
                    .ok_or_else(|| invalid("snapshot", format!("`{id}` is not VMID/SNAPSHOT")))?;
                (vmid(vm)?, Some(snap.to_string()))
            }
            ImageSpec::Custom(id) => (vmid(id)?, None),
            ImageSpec::Ubuntu(_) | ImageSpec::Debian(_) => {
                let t = self.config.template.ok_or_else(|| {
                    invalid(
                        "template",
                        "no template to clone: `spuff config set proxmox_template VMID` (docs/proxmox.md makes one from the official cloud image)",
                    )
                })?;
                (u64::from(t), None)
            }
        };
        let found = self
            .resource(source)
            .await?
            .ok_or_else(|| invalid("template", format!("VM {source} does not exist")))?;
        Ok((found, snapshot))
    }

    fn to_instance(&self, r: Resource) -> ProviderInstance {
        let status = match r.status.as_deref() {
            Some("running") => InstanceStatus::Active,
            Some("stopped") => InstanceStatus::Off,
            Some(other) => InstanceStatus::Unknown(other.to_string()),
            None => InstanceStatus::New,
        };
        let mut vm = ProviderInstance::cloud(
            r.vmid.to_string(),
            r.name.clone().unwrap_or_default(),
            status,
            (None, None, None),
            labels_of(r.tags.as_deref()),
        );
        vm.region = r.node.clone();
        vm.size = size_name(r.maxcpu, r.maxmem);
        vm
    }

    /// The VM with its address, asked of its guest agent when running.
    async fn with_address(&self, r: Resource) -> ProviderResult<ProviderInstance> {
        let running = r.status.as_deref() == Some("running");
        let node = r.node.clone();
        let id = r.vmid;
        let mut vm = self.to_instance(r);
        if !running {
            return Ok(vm);
        }
        let base = format!("nodes/{}/qemu/{id}", node_name(&node)?);
        let config: Value = self.data(ApiRequest::get(format!("{base}/config"))).await?;
        // A static address is known without the guest agent.
        let fixed = config["ipconfig0"]
            .as_str()
            .and_then(|v| super::ipconfig::parse(v).ok())
            .unwrap_or_default();
        if fixed.ipv4.is_some() || fixed.ipv6.is_some() {
            set_address(&mut vm, fixed.ipv4, fixed.ipv6);
            return Ok(vm);
        }
        let mac = config["net0"].as_str().and_then(agent::net0_mac);
        let asked: ProviderResult<Value> = self
            .data(ApiRequest::get(format!(
                "{base}/agent/network-get-interfaces"
            )))
            .await;
        let found = match asked {
            Ok(data) => agent::addresses(&data, mac.as_deref()),
            // Not up yet ("QEMU guest agent is not running"): no address yet.
            Err(e) if e.is_retryable() => Err(NoAddress::NotYet),
            Err(e) => return Err(e),
        };
        match found {
            Ok(a) => set_address(&mut vm, a.ipv4, a.ipv6),
            Err(NoAddress::NotYet) => {}
            Err(NoAddress::Refused(why) | NoAddress::Malformed(why)) => {
                return Err(ProviderError::InvalidResponse {
                    provider: NAME,
                    operation: format!("GET {base}/agent/network-get-interfaces"),
                    message: why,
                });
            }
        }
        Ok(vm)
    }

    /// Refuses a static address a spuff VM already has: two VMs with one
    /// address make neither reachable.
    async fn refuse_taken_address(&self, wanted: super::ipconfig::Static) -> ProviderResult<()> {
        let spuffs: Vec<Resource> = self
            .resources()
            .await?
            .into_iter()
            .filter(|r| !r.template && self.to_instance(r.clone()).is_managed())
            .collect();
        for r in spuffs {
            let base = format!("nodes/{}/qemu/{}", node_name(&r.node)?, r.vmid);
            let config: Value = match self.data(ApiRequest::get(format!("{base}/config"))).await {
                Ok(c) => c,
                Err(ProviderError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let has = config["ipconfig0"]
                .as_str()
                .and_then(|v| super::ipconfig::parse(v).ok())
                .unwrap_or_default();
            let clash = (wanted.ipv4.is_some() && has.ipv4 == wanted.ipv4)
                || (wanted.ipv6.is_some() && has.ipv6 == wanted.ipv6);
            if clash {
                return Err(invalid(
                    "ipconfig",
                    format!(
                        "VM {} ({}) already has this static address; remove it first \
                         (`spuff down`) or set another with `spuff config set proxmox_ipconfig`",
                        r.vmid,
                        crate::util::terminal_safe(r.name.as_deref().unwrap_or("unnamed"))
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs `command` on the node with `stdin`; its failure in words.
    async fn on_node(&self, command: &str, stdin: &[u8]) -> ProviderResult<()> {
        let Some(node) = &self.config.node_ssh else {
            return Err(invalid(
                "node_ssh",
                "spuff's user-data reaches a Proxmox VM as a snippet written over SSH: `spuff config set proxmox_node_ssh root@NODE`",
            ));
        };
        let failed = |message: String| {
            ProviderError::Host {
            provider: NAME,
            operation: format!("writing the VM's user-data on {}", node.ssh.host),
            message,
            detail: None,
            hint: Some(
                "spuff logs in to the node as proxmox_node_ssh says, with your SSH keys; its host key must be in ~/.ssh/known_hosts (ssh to it once)".into(),
            ),
        }
        };
        let session = crate::ssh::Session::connect(node.ssh.clone())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let out = session
            .exec_with_input(command, stdin, 64 * 1024)
            .await
            .map_err(|e| failed(e.to_string()));
        let _ = session.close().await;
        let out = out?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed(format!(
                "`{command}` failed ({}): {}",
                out.status,
                crate::util::terminal_safe(String::from_utf8_lossy(&out.stderr).trim())
            )))
        }
    }

    /// The snippet's file name for VM `id`.
    fn snippet(id: u64) -> String {
        format!("spuff-{id}-user.yaml")
    }

    /// Writes `user_data` as VM `id`'s snippet (0600, atomically) and
    /// returns the volume `cicustom` names.
    async fn put_snippet(&self, id: u64, user_data: &str) -> ProviderResult<String> {
        let node = self.config.node_ssh.as_ref();
        let (storage, dir) = node.map_or(("local", "/var/lib/vz/snippets"), |n| {
            (n.storage.as_str(), n.dir.as_str())
        });
        let name = Self::snippet(id);
        let path = format!("{dir}/{name}");
        let tmp = format!("{path}.tmp");
        let q = crate::cloudinit::escape::sh_quote;
        let command = format!(
            "umask 077 && mkdir -p {} && cat > {} && mv -f {} {}",
            q(dir),
            q(&tmp),
            q(&tmp),
            q(&path)
        );
        self.on_node(&command, user_data.as_bytes()).await?;
        Ok(format!("{storage}:snippets/{name}"))
    }

    /// Grows VM `id`'s boot disk (the first disk in its boot order) to
    /// `gb` GB; one that is that big already is left as it is (disks only
    /// grow). cloud-init grows the root filesystem at first boot.
    async fn grow_disk(&self, node: &str, id: u64, gb: u64) -> ProviderResult<()> {
        let config: Value = self
            .data(ApiRequest::get(format!("nodes/{node}/qemu/{id}/config")))
            .await?;
        let disk = boot_disk(&config).ok_or_else(|| {
            invalid(
                "disk",
                format!("VM {id} has no disk in its boot order to grow (see its template's Options > Boot Order)"),
            )
        })?;
        let current = config[&disk].as_str().and_then(disk_size_bytes);
        if current.is_some_and(|bytes| bytes >= gb.saturating_mul(1 << 30)) {
            return Ok(());
        }
        let req = ApiRequest::new(Method::PUT, format!("nodes/{node}/qemu/{id}/resize"))
            .json(&json!({ "disk": disk, "size": format!("{gb}G") }))
            .resource("VM", id.to_string());
        // Proxmox VE 8 answers with a task; older versions with null,
        // once done.
        self.run(req, &format!("grow VM {id}'s disk {disk} to {gb} GB"))
            .await
    }

    async fn power(&self, id: &str, on: bool) -> ProviderResult<()> {
        let n = vmid(id)?;
        let r = self.resource(n).await?.ok_or(ProviderError::NotFound {
            provider: NAME,
            resource: "VM",
            id: id.to_string(),
        })?;
        let action = if on { "start" } else { "stop" };
        let req = ApiRequest::new(
            Method::POST,
            format!("nodes/{}/qemu/{n}/status/{action}", node_name(&r.node)?),
        )
        .json(&json!({}))
        .resource("VM", id);
        self.run(req, &format!("{action} VM {n}")).await
    }
}

/// A size's name for `cores` and `memory` (bytes), or `Nc-MG`.
fn size_name(cores: Option<u64>, memory: Option<u64>) -> String {
    let (Some(c), Some(m)) = (cores, memory) else {
        return String::new();
    };
    let mib = m / (1024 * 1024);
    SIZES
        .iter()
        .find(|(_, sc, sm)| u64::from(*sc) == c && *sm == mib)
        .map(|(n, ..)| (*n).to_string())
        .unwrap_or_else(|| format!("{c}c-{}g", mib.div_ceil(1024)))
}

/// Cores and MiB for a size name (`small`, or `4c-8g`).
fn size_of(name: &str) -> ProviderResult<(u32, u64)> {
    if let Some((_, c, m)) = SIZES.iter().find(|(n, ..)| *n == name) {
        return Ok((*c, *m));
    }
    let parsed = name.split_once("c-").and_then(|(c, g)| {
        let cores: u32 = c.parse().ok()?;
        let gib: u64 = g.strip_suffix('g')?.parse().ok()?;
        ((1..=512).contains(&cores) && (1..=4096).contains(&gib)).then_some((cores, gib * 1024))
    });
    parsed.ok_or_else(|| {
        let names: Vec<&str> = SIZES.iter().map(|(n, ..)| *n).collect();
        invalid(
            "size",
            format!("`{name}`: use {} or CORESc-GIBg (4c-8g)", names.join(", ")),
        )
    })
}

#[async_trait::async_trait]
impl Provider for Proxmox {
    fn info(&self) -> &'static ProviderInfo {
        ProviderType::Proxmox.info()
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        if request.spot.is_some() {
            return Err(self.unsupported("spot instances"));
        }
        if !crate::location::is_instance_name(&request.name) {
            return Err(invalid(
                "name",
                format!(
                    "{:?}: use 1-63 lowercase letters, digits and '-'",
                    request.name
                ),
            ));
        }
        let (cores, memory) = size_of(&request.size)?;
        let tags = tags_of(request)?;
        if let Some(user_data) = &request.user_data {
            let limit = ProviderType::Proxmox.info().user_data_limit;
            if user_data.len() > limit {
                return Err(invalid(
                    "user_data",
                    format!("{} bytes; at most {limit}", user_data.len()),
                ));
            }
            if self.config.node_ssh.is_none() {
                return Err(invalid(
                    "node_ssh",
                    "spuff's user-data reaches a Proxmox VM as a snippet written over SSH: `spuff config set proxmox_node_ssh root@NODE` (docs/proxmox.md); without it, send none and set `login_user` (spuff applies the user-data at the first login)",
                ));
            }
        }
        let ipconfig = self
            .config
            .ipconfig
            .clone()
            .unwrap_or_else(|| super::ipconfig::DEFAULT.to_string());
        let fixed = super::ipconfig::parse(&ipconfig).map_err(|why| invalid("ipconfig", why))?;
        if fixed.ipv4.is_some() || fixed.ipv6.is_some() {
            self.refuse_taken_address(fixed).await?;
        }
        let (template, snapshot) = self.template(&request.image).await?;
        let node = if request.region.is_empty() {
            self.config.node.clone().unwrap_or(template.node.clone())
        } else {
            request.region.clone()
        };
        node_name(&node)?;
        let next: Value = self.data(ApiRequest::get("cluster/nextid")).await?;
        let new = match &next {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| ProviderError::InvalidResponse {
            provider: NAME,
            operation: "GET cluster/nextid".into(),
            message: format!("`{next}` is not a VM id"),
        })?;
        let mut clone = json!({
            "newid": new,
            "name": request.name,
            "full": u8::from(self.config.full_clone),
            "description": format!("spuff VM {} ({})", request.name, request.spuff_id),
        });
        // Another node only when asked: Proxmox allows it for templates on
        // shared storage.
        if node != template.node {
            clone["target"] = json!(node);
        }
        if let Some(s) = &snapshot {
            clone["snapname"] = json!(s);
        }
        if let (true, Some(storage)) = (self.config.full_clone, &self.config.storage) {
            clone["storage"] = json!(storage);
        }
        let req = ApiRequest::new(
            Method::POST,
            format!(
                "nodes/{}/qemu/{}/clone",
                node_name(&template.node)?,
                template.vmid
            ),
        )
        .json(&clone)
        .resource("VM", template.vmid.to_string());
        // A clone is not idempotent, but its new id is ours: after a lost
        // answer, a VM with that id and this name is the one we made.
        let made = || async {
            Ok(match self.resource(new).await? {
                Some(r) if r.name.as_deref() == Some(request.name.as_str()) => {
                    vec![self.to_instance(r)]
                }
                _ => vec![],
            })
        };
        let create = || async {
            self.run(req.clone(), &format!("clone VM {} to {new}", template.vmid))
                .await?;
            Ok(ProviderInstance {
                status: InstanceStatus::New,
                ..self.to_instance(Resource {
                    vmid: new,
                    name: Some(request.name.clone()),
                    node: node.clone(),
                    status: None,
                    tags: Some(tags.clone()),
                    template: false,
                    maxcpu: Some(u64::from(cores)),
                    maxmem: Some(memory * 1024 * 1024),
                    lock: None,
                })
            })
        };
        let vm = self.rest.create_then_find(request, create, made).await?;
        // A clone found after a lost answer may still be copying: its
        // config is locked until then.
        let what = format!("waiting for the clone of VM {new} to finish");
        self.rest
            .poll(&what, self.rest.timeouts.action, || async {
                Ok(match self.resource(new).await?.and_then(|r| r.lock) {
                    Some(lock) => Poll::Pending(format!("locked ({lock})")),
                    None => Poll::Done(()),
                })
            })
            .await?;
        // Tagged first, so that whatever fails later leaves a VM that is
        // found by its spuff id; then its user-data, then it starts.
        let setup = async {
            let base = format!("nodes/{node}/qemu/{new}");
            let configure = |config: Value, what: String| {
                let req = ApiRequest::new(Method::POST, format!("{base}/config"))
                    .json(&config)
                    .resource("VM", new.to_string());
                async move { self.run(req, &what).await }
            };
            let mut config = json!({
                "tags": tags,
                "cores": cores,
                "memory": memory.to_string(),
                "agent": "enabled=1",
                "ipconfig0": ipconfig,
            });
            // Without a snippet, Proxmox's own cloud-init makes the login
            // user (with the image's default sudo rights) and its keys.
            if let Some(user) = &request.login_user {
                crate::validate::username(user).map_err(|why| invalid("login_user", why))?;
                config["ciuser"] = json!(user);
            }
            if !request.ssh_keys.is_empty() {
                let keys = super::encode::sshkeys(&request.ssh_keys);
                if !super::encode::is_urlencoded(&keys) {
                    return Err(invalid(
                        "ssh_keys",
                        "the keys could not be encoded for Proxmox",
                    ));
                }
                config["sshkeys"] = json!(keys);
            }
            configure(config, format!("configure VM {new}")).await?;
            if let Some(gb) = request.disk_gb {
                self.grow_disk(&node, new, gb).await?;
            }
            if let Some(user_data) = &request.user_data {
                let volume = self.put_snippet(new, user_data).await?;
                configure(
                    json!({ "cicustom": format!("user={volume}") }),
                    format!("give VM {new} its user-data"),
                )
                .await?;
            }
            self.run(
                ApiRequest::new(Method::POST, format!("{base}/status/start"))
                    .json(&json!({}))
                    .resource("VM", new.to_string()),
                &format!("start VM {new}"),
            )
            .await
        };
        if let Err(e) = setup.await {
            // A clone that cannot be set up is of no use: removed, unless
            // that fails too, and then said so (it may exist, `down` or
            // `gc` finds it by its tags).
            return match self.destroy_instance(&new.to_string()).await {
                Ok(()) => Err(e),
                Err(cleanup) => Err(ProviderError::Api {
                    provider: NAME,
                    operation: format!("setting up VM {new}"),
                    status: 500,
                    code: None,
                    message: format!("{e}; removing it failed too: {cleanup}"),
                    request_id: None,
                }),
            };
        }
        Ok(vm)
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let n = vmid(id)?;
        let Some(r) = self.resource(n).await? else {
            return Ok(());
        };
        let base = format!("nodes/{}/qemu/{n}", node_name(&r.node)?);
        if r.status.as_deref() == Some("running") {
            self.run(
                ApiRequest::new(Method::POST, format!("{base}/status/stop"))
                    .json(&json!({}))
                    .resource("VM", id),
                &format!("stop VM {n}"),
            )
            .await?;
        }
        let req = ApiRequest::new(
            Method::DELETE,
            format!("{base}?purge=1&destroy-unreferenced-disks=1"),
        )
        .resource("VM", id);
        match self.run(req, &format!("destroy VM {n}")).await {
            Ok(()) | Err(ProviderError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        // Its user-data holds its host key and agent token: not left behind.
        if let Some(node) = &self.config.node_ssh {
            let path = format!("{}/{}", node.dir, Self::snippet(n));
            let command = format!("rm -f {}", crate::cloudinit::escape::sh_quote(&path));
            if let Err(e) = self.on_node(&command, b"").await {
                tracing::warn!(vm = n, error = %e, "the VM's user-data snippet could not be removed");
            }
        }
        Ok(())
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let n = vmid(id)?;
        match self.resource(n).await? {
            Some(r) if !r.template => Ok(Some(self.with_address(r).await?)),
            _ => Ok(None),
        }
    }

    async fn list_instances(&self) -> ProviderResult<Listing> {
        // The address is the guest agent's, asked per running VM (at once):
        // without it, a VM this machine has no record of would be listed
        // without one. A VM whose agent cannot say is listed without.
        let asked = self
            .resources()
            .await?
            .into_iter()
            .filter(|r| !r.template)
            .map(|r| async move {
                let plain = self.to_instance(r.clone());
                if !plain.is_managed() {
                    return None;
                }
                Some(self.with_address(r).await.unwrap_or(plain))
            });
        let instances = futures::future::join_all(asked)
            .await
            .into_iter()
            .flatten()
            .collect();
        Ok(Listing {
            instances,
            skipped: Vec::new(),
        })
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        self.rest
            .wait_ready(id, "VM", &[InstanceStatus::Off], || self.get_instance(id))
            .await
    }

    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let n = vmid(instance_id)?;
        let r = self.resource(n).await?.ok_or(ProviderError::NotFound {
            provider: NAME,
            resource: "VM",
            id: instance_id.to_string(),
        })?;
        // Snapshot names: a letter, then letters, digits, `-` and `_`.
        let mut snap: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        if !snap.starts_with(|c: char| c.is_ascii_alphabetic()) {
            snap.insert(0, 's');
        }
        let req = ApiRequest::new(
            Method::POST,
            format!("nodes/{}/qemu/{n}/snapshot", node_name(&r.node)?),
        )
        .json(&json!({"snapname": snap, "description": format!("spuff snapshot {name}")}))
        .resource("VM", instance_id);
        self.run(req, &format!("snapshot `{snap}` of VM {n}"))
            .await?;
        Ok(Snapshot {
            id: format!("{n}/{snap}"),
            name: snap,
            created_at: None,
            size_gb: None,
            regions: vec![r.node],
            source_instance: Some(instance_id.to_string()),
        })
    }

    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        #[derive(Deserialize)]
        struct Snap {
            name: String,
            #[serde(default, deserialize_with = "opt_number")]
            snaptime: Option<u64>,
        }
        let mut out = Vec::new();
        for vm in self.list_instances().await? {
            let n = vmid(&vm.id)?;
            let snaps: Vec<Snap> = self
                .data(ApiRequest::get(format!(
                    "nodes/{}/qemu/{n}/snapshot",
                    node_name(&vm.region)?
                )))
                .await?;
            // `current` is "You are here", not a snapshot.
            out.extend(
                snaps
                    .into_iter()
                    .filter(|s| s.name != "current")
                    .map(|s| Snapshot {
                        id: format!("{n}/{}", s.name),
                        created_at: s.snaptime.filter(|t| *t > 0).map(|t| t.to_string()),
                        name: s.name,
                        size_gb: None,
                        regions: vec![vm.region.clone()],
                        source_instance: Some(vm.id.clone()),
                    }),
            );
        }
        Ok(out)
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let (n, snap) = snapshot_id(id)?;
        let Some(r) = self.resource(n).await? else {
            return Ok(());
        };
        // Gone is deleted: Proxmox answers a 500 for a missing snapshot.
        let names: Vec<Value> = self
            .data(ApiRequest::get(format!(
                "nodes/{}/qemu/{n}/snapshot",
                node_name(&r.node)?
            )))
            .await?;
        if !names.iter().any(|s| s["name"] == snap) {
            return Ok(());
        }
        let req = ApiRequest::new(
            Method::DELETE,
            format!("nodes/{}/qemu/{n}/snapshot/{snap}", node_name(&r.node)?),
        )
        .resource("snapshot", id);
        match self
            .run(req, &format!("delete snapshot `{snap}` of VM {n}"))
            .await
        {
            Ok(()) | Err(ProviderError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn rollback_snapshot(&self, id: &str) -> ProviderResult<String> {
        let (n, snap) = snapshot_id(id)?;
        let r = self.resource(n).await?.ok_or(ProviderError::NotFound {
            provider: NAME,
            resource: "VM",
            id: n.to_string(),
        })?;
        // Only spuff's own VMs: a snapshot id is easily mistyped, and a
        // rollback loses everything written since.
        if !labels_of(r.tags.as_deref()).contains_key(MANAGED_LABEL) {
            return Err(invalid(
                "snapshot",
                format!("VM {n} is not a spuff VM (it has no `{MANAGED_LABEL}` tag)"),
            ));
        }
        let node = node_name(&r.node)?.to_string();
        let names: Vec<Value> = self
            .data(ApiRequest::get(format!("nodes/{node}/qemu/{n}/snapshot")))
            .await?;
        if !names.iter().any(|s| s["name"] == snap) {
            return Err(ProviderError::NotFound {
                provider: NAME,
                resource: "snapshot",
                id: id.to_string(),
            });
        }
        // A snapshot without the VM's memory leaves the VM stopped after
        // the rollback: started again, as it was before.
        self.run(
            ApiRequest::new(
                Method::POST,
                format!("nodes/{node}/qemu/{n}/snapshot/{snap}/rollback"),
            )
            .json(&json!({}))
            .resource("snapshot", id),
            &format!("roll VM {n} back to `{snap}`"),
        )
        .await?;
        let running = self
            .resource(n)
            .await?
            .and_then(|r| r.status)
            .is_some_and(|s| s == "running");
        if !running {
            self.power(&n.to_string(), true).await?;
        }
        Ok(n.to_string())
    }

    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        self.power(id, false).await
    }

    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        self.power(id, true).await
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        // Keys go into each VM's cloud-init (`sshkeys`); there is no account.
        Ok(Vec::new())
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let fingerprint = crate::provider::md5_fingerprint(public_key)
            .ok_or_else(|| invalid("ssh_key", "not an OpenSSH public key line"))?;
        // The key itself is the id: it goes into the VM's `sshkeys`.
        Ok(SshKeyInfo {
            id: public_key.trim().to_string(),
            name: name.to_string(),
            fingerprint,
        })
    }

    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        Ok(SIZES
            .iter()
            .map(|(slug, cores, mib)| SizeInfo {
                slug: (*slug).to_string(),
                vcpus: *cores,
                memory_mb: *mib,
                disk_gb: 0,
                price_monthly: None,
                regions: Vec::new(),
                available: true,
            })
            .collect())
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        #[derive(Deserialize)]
        struct Node {
            node: String,
            #[serde(default)]
            status: Option<String>,
        }
        let nodes: Vec<Node> = self.data(ApiRequest::get("nodes")).await?;
        Ok(nodes
            .into_iter()
            .map(|n| RegionInfo {
                available: n.status.as_deref() == Some("online"),
                name: n.node.clone(),
                slug: n.node,
            })
            .collect())
    }

    /// Only through a snippet on the node, which takes node SSH.
    fn delivers_user_data(&self) -> bool {
        self.config.node_ssh.is_some()
    }

    fn default_region(&self) -> Option<String> {
        self.config.node.clone()
    }

    fn http_stats(&self) -> HttpStats {
        self.rest.http.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_disk_should_come_from_the_boot_order() {
        let config = json!({
            "boot": "order=ide2;scsi1;net0",
            "ide2": "local-lvm:vm-101-cloudinit,media=cdrom",
            "scsi0": "local-lvm:vm-101-disk-0,size=2G",
            "scsi1": "local-lvm:vm-101-disk-1,size=8G",
        });
        assert_eq!(boot_disk(&config).as_deref(), Some("scsi1"));
        // Older configs: `bootdisk`; none at all: the first disk.
        let config =
            json!({"bootdisk": "virtio0", "virtio0": "local:101/vm-101-disk-0.qcow2,size=4G"});
        assert_eq!(boot_disk(&config).as_deref(), Some("virtio0"));
        let config = json!({"ide0": "local-lvm:vm-101-cloudinit,media=cdrom", "sata2": "local-lvm:vm-101-disk-0,size=4G"});
        assert_eq!(boot_disk(&config).as_deref(), Some("sata2"));
        assert_eq!(boot_disk(&json!({"net0": "virtio=AA:BB"})), None);
    }

    #[test]
    fn disk_sizes_should_read_in_their_units() {
        assert_eq!(
            disk_size_bytes("local-lvm:vm-1-disk-0,size=2G"),
            Some(2 << 30)
        );
        assert_eq!(
            disk_size_bytes("local:1/a.qcow2,discard=on,size=512M,ssd=1"),
            Some(512 << 20)
        );
        assert_eq!(disk_size_bytes("x,size=1T"), Some(1 << 40));
        assert_eq!(disk_size_bytes("x,size=4096"), Some(4096));
        assert_eq!(disk_size_bytes("x,size=2P"), None);
        assert_eq!(disk_size_bytes("local-lvm:vm-1-disk-0"), None);
    }

    #[test]
    fn sizes_should_have_names_and_parse_back() {
        assert_eq!(size_of("small").ok(), Some((2, 2048)));
        assert_eq!(size_of("4c-8g").ok(), Some((4, 8192)));
        assert!(size_of("huge").is_err() && size_of("0c-1g").is_err());
        assert_eq!(size_name(Some(2), Some(2048 * 1024 * 1024)), "small");
        assert_eq!(size_name(Some(3), Some(3 * 1024 * 1024 * 1024)), "3c-3g");
    }

    #[test]
    fn labels_should_round_trip_through_tags() {
        let request = InstanceRequest::new("a", "pve", "small")
            .with_spuff_id("0123456789abcdef")
            .with_label(FLEET_LABEL, "batch-1");
        let tags = tags_of(&request).unwrap();
        assert_eq!(tags, "spuff;spuff-id-0123456789abcdef;spuff-fleet-batch-1");
        let labels = labels_of(Some(&tags));
        assert_eq!(
            labels.get(SPUFF_ID_LABEL).map(String::as_str),
            Some("0123456789abcdef")
        );
        assert_eq!(labels.get(FLEET_LABEL).map(String::as_str), Some("batch-1"));
        assert!(labels.contains_key(MANAGED_LABEL));
        // A template that says where its sshd listens, as on the clouds.
        let labels = labels_of(Some("spuff;spuff-ssh-port-2222;spuff-ssh-user-ana"));
        let ip = std::net::IpAddr::from([192, 0, 2, 9]);
        let ep = crate::provider::SshEndpoint::from_labels(ip, &labels);
        assert_eq!((ep.port, ep.user.as_deref()), (2222, Some("ana")));
        let bad = labels_of(Some("spuff-ssh-port-0;spuff-ssh-user-bad+user"));
        let ep = crate::provider::SshEndpoint::from_labels(ip, &bad);
        assert_eq!((ep.port, ep.user), (22, None), "bad values are ignored");
    }

    #[test]
    fn numbers_may_come_as_strings_and_templates_as_empty_strings() {
        let path = format!(
            "{}/tests/data/proxmox/real-bodies/go-proxmox__nodes_test__GET_node1_qemu_template_pid_null.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let vms: Vec<Resource> = serde_json::from_value(v["data"].clone()).unwrap();
        assert!(!vms.is_empty());
        assert!(vms.iter().any(|r| r.template) && vms.iter().any(|r| !r.template));
        assert!(vmid("4242").is_ok() && vmid("12a").is_err() && vmid("99").is_err());
    }
}
