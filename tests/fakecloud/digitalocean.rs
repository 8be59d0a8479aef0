//! A fake DigitalOcean API v2: its routes, shapes and status names, run by
//! the shared [`Server`](super::server::Server).
//!
//! It follows the official contract where spuff depends on it: 202 for a
//! create, 201 for actions and key imports, 204 for deletes, pagination with
//! absolute `links.pages.next` URLs (and no `links.pages` on a short list),
//! errors as `{id, message}` (the real bodies from the OpenAPI spec in
//! tests/data/digitalocean/spec for 401, 404, 429 and 5xx) with an
//! `x-request-id` header, and droplets that go from `new` to `active` with
//! their IPs appearing only after a few polls (private listed before public,
//! as the real API does).
//!
//! A droplet can also *boot*: with a [`BootHook`] installed
//! ([`FakeCloud::on_create`]), each create hands the droplet (with its
//! user-data) to the hook, which stands a VM up (tests/fakevm starts a real
//! sshd from the user-data) and returns where it listens ([`BootedVm`]). The
//! API then reports the VM's public IPv4 and, once active, carries its SSH
//! port and user as the tags `spuff-ssh-port:PORT` and `spuff-ssh-user:USER`,
//! as a custom image would: spuff learns how to reach the VM from the API
//! alone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::server::{
    Account, Action, Api, Call, Headers, Job, Page, Paging, Refused, Reply, Server,
};

/// The content type of every answer.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The token the fake accepts.
pub const TOKEN: &str = "fake-do-token-5ecret";

/// A running fake DigitalOcean; stops when dropped.
pub type FakeCloud = Server<State>;

/// One droplet in the fake account.
#[derive(Debug, Clone)]
pub struct FakeDroplet {
    pub id: u64,
    pub name: String,
    pub region: String,
    pub size: String,
    pub image: Value,
    pub tags: Vec<String>,
    pub status: String,
    pub polls: u32,
    pub created: Instant,
    pub user_data: Option<String>,
    /// The VM a [`BootHook`] stood up; without one the public IPv4 is
    /// `203.0.113.N` and no SSH tags are added.
    pub booted: Option<BootedVm>,
}

/// What a [`BootHook`] stood up: where the VM's sshd listens, and whom it
/// lets in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootedVm {
    /// The public IPv4 the API reports once the droplet is active.
    pub ipv4: Ipv4Addr,
    /// The sshd's port: the tag `spuff-ssh-port:PORT`.
    pub ssh_port: u16,
    /// The login user: the tag `spuff-ssh-user:USER`.
    pub ssh_user: String,
}

impl BootedVm {
    /// The tags the droplet carries once active.
    pub fn tags(&self) -> [String; 2] {
        [
            format!("{}:{}", spuff::provider::SSH_PORT_LABEL, self.ssh_port),
            format!("{}:{}", spuff::provider::SSH_USER_LABEL, self.ssh_user),
        ]
    }
}

/// Stands a VM up for a droplet a create just made, and returns it.
///
/// It runs on a blocking thread before the create is answered, so the VM
/// exists when the client learns the droplet's id. A panic is reported on
/// stderr and the droplet stays without a VM.
#[derive(Clone)]
pub struct BootHook(Arc<BootFn>);

type BootFn = dyn Fn(&FakeDroplet) -> BootedVm + Send + Sync;

impl std::fmt::Debug for BootHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootHook")
    }
}

/// The account.
#[derive(Debug, Default)]
pub struct State {
    /// Ids, keys, actions and the poll counts of readiness.
    pub account: Account,
    /// Wall time after creation before a droplet is active (as well as
    /// `account.ready_after_polls` GETs).
    pub ready_after: Duration,
    pub droplets: BTreeMap<u64, FakeDroplet>,
    /// id, name, droplet id.
    pub snapshots: Vec<(u64, String, u64)>,
    /// Boots a VM for each created droplet ([`FakeCloud::on_create`]).
    pub boot: Option<BootHook>,
}

impl Server<State> {
    /// Adds a droplet directly (already active), as if made earlier.
    pub fn seed_droplet(&self, name: &str, tags: &[&str]) -> u64 {
        let mut s = self.state();
        let id = s.account.new_id();
        let d = FakeDroplet {
            id,
            name: name.to_string(),
            region: "fra1".into(),
            size: "s-1vcpu-1gb".into(),
            image: json!("ubuntu-24-04-x64"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            status: "active".into(),
            polls: 1000,
            created: Instant::now(),
            user_data: None,
            booted: None,
        };
        s.droplets.insert(id, d);
        id
    }

    /// Boots a VM with `hook` for every droplet a create makes from now on
    /// (see [`BootHook`]).
    pub fn on_create(&self, hook: impl Fn(&FakeDroplet) -> BootedVm + Send + Sync + 'static) {
        self.state().boot = Some(BootHook(Arc::new(hook)));
    }
}

impl Api for State {
    const TOKEN: &'static str = TOKEN;
    const ROOT: &'static str = "/v2/";
    /// 5,000 requests an hour; a spent one is back within the minute.
    const RATE_LIMIT: (u64, u64) = (5000, 60);
    const HEADERS: Headers = &[
        ("content-type", JSON_UTF8),
        ("x-request-id", "fake-hdr-req"),
    ];

    /// The real bodies of the OpenAPI spec's examples.
    fn error(status: u16, code: &str) -> Reply {
        let example = match code {
            "bad_request" => "400",
            "unauthorized" => "401",
            "not_found" => "404",
            "too_many_requests" => "429",
            "unprocessable_entity" => {
                return unprocessable("The request was well-formed but could not be followed");
            }
            _ => "500",
        };
        let body = super::server::data("digitalocean", &format!("spec/error.{example}.json"));
        Reply::raw(status, body)
    }

    fn route(&mut self, call: &Call, paging: &Paging) -> Reply {
        // `per_page`: 20 when not given, at most 200.
        let list = |key: &str, items| links(call, key, paging.page(&call.query, (20, 200), items));
        let id_of = |p: &str| p.parse::<u64>().ok();
        match (call.method.as_str(), call.segments::<Self>().as_slice()) {
            ("POST", ["droplets"]) => self.create(call),
            ("GET", ["droplets"]) => {
                let tag = call.query.get("tag_name");
                let unlisted = self.account.unlisted();
                let items = (self.droplets.values())
                    .filter(|d| tag.is_none_or(|t| d.tags.contains(t)))
                    .filter(|d| !unlisted.contains(&d.id))
                    .map(droplet_json)
                    .collect();
                list("droplets", items)
            }
            ("GET", ["droplets", id]) => {
                let (after_polls, after) = (self.account.ready_after_polls, self.ready_after);
                let Some(d) = id_of(id).and_then(|id| self.droplets.get_mut(&id)) else {
                    return Self::error(404, "not_found");
                };
                d.polls += 1;
                if d.status == "new" && d.polls >= after_polls && d.created.elapsed() >= after {
                    d.status = "active".into();
                    // The booted VM tags itself with how to reach its sshd.
                    for tag in d.booted.iter().flat_map(BootedVm::tags) {
                        if !d.tags.contains(&tag) {
                            d.tags.push(tag);
                        }
                    }
                }
                Reply::json(200, json!({"droplet": droplet_json(d)}))
            }
            ("DELETE", ["droplets", id]) => {
                match id_of(id).and_then(|id| self.droplets.remove(&id)) {
                    Some(_) => Reply::empty(204),
                    None => Self::error(404, "not_found"),
                }
            }
            ("POST", ["droplets", id, "actions"]) => match id_of(id) {
                Some(droplet) if self.droplets.contains_key(&droplet) => {
                    let name = call.body["name"].as_str().map(String::from);
                    let action = self.account.start(&call.text("type"), droplet, name);
                    Reply::json(201, json!({"action": action_json(&action)}))
                }
                _ => Self::error(404, "not_found"),
            },
            ("GET", ["actions", id]) => {
                let Some(action) = id_of(id).and_then(|id| self.account.poll(id)) else {
                    return Self::error(404, "not_found");
                };
                if action.done() {
                    self.finish(&action);
                }
                Reply::json(200, json!({"action": action_json(&action)}))
            }
            ("GET", ["droplets", id, "snapshots"]) => {
                let id = id_of(id).unwrap_or_default();
                let items = (self.snapshots.iter())
                    .filter(|(_, _, d)| *d == id)
                    .map(|(sid, name, _)| json!({"id": sid, "name": name, "distribution": "Ubuntu", "slug": null, "public": false, "regions": ["fra1"], "created_at": "2026-11-23T17:40:00Z", "min_disk_size": 25, "size_gigabytes": 1.2, "type": "snapshot"}))
                    .collect();
                list("snapshots", items)
            }
            ("GET", ["snapshots"]) => {
                // Like the real API, this endpoint sends ids as strings.
                let items = (self.snapshots.iter())
                    .map(|(sid, name, d)| json!({"id": sid.to_string(), "name": name, "regions": ["fra1"], "created_at": "2026-11-23T17:40:00Z", "resource_id": d.to_string(), "resource_type": "droplet", "min_disk_size": 25, "size_gigabytes": 1.2, "tags": []}))
                    .collect();
                list("snapshots", items)
            }
            ("DELETE", ["snapshots", id]) => {
                let before = self.snapshots.len();
                self.snapshots.retain(|(sid, _, _)| sid.to_string() != *id);
                if self.snapshots.len() < before {
                    Reply::empty(204)
                } else {
                    Self::error(404, "not_found")
                }
            }
            ("GET", ["account", "keys"]) => {
                let items = (self.account.keys.iter())
                    .map(|k| json!({"id": k.id, "name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key}))
                    .collect();
                list("ssh_keys", items)
            }
            ("POST", ["account", "keys"]) => {
                match (self.account).import_key(call.text("name"), call.text("public_key")) {
                    Ok(k) => Reply::json(
                        201,
                        json!({"ssh_key": {"id": k.id, "name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key}}),
                    ),
                    Err(Refused::Invalid) => unprocessable(
                        "Key invalid type, we support 'ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256'",
                    ),
                    Err(Refused::Taken) => {
                        unprocessable("SSH Key is already in use on your account")
                    }
                }
            }
            ("GET", ["sizes"]) => {
                let items = ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb", "c-4"]
                    .iter()
                    .enumerate()
                    .map(|(i, slug)| json!({"slug": slug, "memory": 1024 << i, "vcpus": 1 + i, "disk": 25 * (i + 1), "transfer": 1.0, "price_monthly": 6.0 * (i + 1) as f64, "price_hourly": 0.009, "regions": ["fra1", "nyc3"], "available": true, "description": "Basic"}))
                    .collect();
                list("sizes", items)
            }
            ("GET", ["regions"]) => {
                let items = [("nyc1", "New York 1", true), ("nyc3", "New York 3", true), ("fra1", "Frankfurt 1", true), ("sfo1", "San Francisco 1", false)]
                    .iter()
                    .map(|(slug, name, avail)| json!({"slug": slug, "name": name, "features": ["ipv6"], "available": avail, "sizes": ["s-1vcpu-1gb"]}))
                    .collect();
                list("regions", items)
            }
            _ => Self::error(404, "not_found"),
        }
    }

    /// Boots the droplet a create made, when a [`BootHook`] is installed.
    fn after(&mut self, call: &Call, reply: &Reply) -> Option<Job<Self>> {
        if call.method != http::Method::POST || call.path != "/v2/droplets" || reply.status != 202 {
            return None;
        }
        let id = reply.body.as_ref()?["droplet"]["id"].as_u64()?;
        let hook = self.boot.clone()?;
        let droplet = self.droplets.get(&id)?.clone();
        Some(Box::new(move || {
            let vm = (hook.0)(&droplet);
            Box::new(move |s: &mut State| {
                if let Some(d) = s.droplets.get_mut(&id) {
                    d.booted = Some(vm);
                }
            })
        }))
    }
}

impl State {
    fn create(&mut self, call: &Call) -> Reply {
        let Some(name) = call.body["name"].as_str() else {
            return unprocessable("Name is required");
        };
        let id = self.account.new_id();
        let d = FakeDroplet {
            id,
            name: name.to_string(),
            region: call.text("region"),
            size: call.text("size"),
            image: call.body["image"].clone(),
            tags: (call.body["tags"].as_array().into_iter().flatten())
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            status: "new".into(),
            polls: 0,
            created: Instant::now(),
            user_data: call.body["user_data"].as_str().map(String::from),
            booted: None,
        };
        let action = format!("{}/v2/actions/{}", call.origin, id + 1000);
        let body = json!({"droplet": droplet_json(&d), "links": {"actions": [{"id": id + 1000, "rel": "create", "href": action}]}});
        self.droplets.insert(id, d);
        self.account.created(id);
        Reply::json(202, body)
    }

    /// What a completed action did to the account.
    fn finish(&mut self, a: &Action) {
        let status = match a.kind.as_str() {
            "snapshot" => {
                let name = a.name.clone().unwrap_or_default();
                if !(self.snapshots.iter()).any(|(_, n, d)| *n == name && *d == a.resource) {
                    let id = self.account.new_id();
                    self.snapshots.push((id, name, a.resource));
                }
                return;
            }
            "power_off" | "shutdown" => "off",
            "power_on" => "active",
            _ => return,
        };
        if let Some(d) = self.droplets.get_mut(&a.resource) {
            d.status = status.into();
        }
    }
}

fn unprocessable(message: &str) -> Reply {
    Reply::json(
        422,
        json!({"id": "unprocessable_entity", "message": message, "request_id": "fake-req-1"}),
    )
}

/// A page under `key` with DigitalOcean's absolute `links.pages` and `meta`.
fn links(call: &Call, key: &str, page: Page) -> Reply {
    let link = |p: usize| {
        let mut q = call.query.clone();
        q.insert("page".into(), p.to_string());
        let qs: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}{}?{}", call.origin, call.path, qs.join("&"))
    };
    let mut pages = serde_json::Map::new();
    if page.number > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page.number - 1)));
    }
    if let Some(next) = page.next {
        pages.insert("next".into(), json!(link(next)));
        pages.insert("last".into(), json!(link(page.last)));
    }
    // The real API leaves `links.pages` out of a list that fits one page.
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    Reply::json(
        200,
        json!({ key: page.items, "links": links, "meta": {"total": page.total} }),
    )
}

fn droplet_json(d: &FakeDroplet) -> Value {
    let active = d.status != "new";
    let (v4, v6) = if active {
        let n = d.id % 250;
        let public = d
            .booted
            .as_ref()
            .map_or_else(|| format!("203.0.113.{n}"), |vm| vm.ipv4.to_string());
        (
            json!([
                {"ip_address": format!("10.114.0.{n}"), "netmask": "255.255.240.0", "gateway": "10.114.0.1", "type": "private"},
                {"ip_address": public, "netmask": "255.255.255.0", "gateway": "203.0.113.1", "type": "public"}
            ]),
            json!([{"ip_address": "2A03:B0C0:0003:00D0:0000:0000:0464:7001", "netmask": 64, "gateway": "2A03:B0C0:0003:00D0:0000:0000:0000:0001", "type": "public"}]),
        )
    } else {
        (json!([]), json!([]))
    };
    json!({
        "id": d.id, "name": d.name, "memory": 1024, "vcpus": 1, "disk": 25, "locked": false,
        "status": d.status, "kernel": null, "created_at": "2026-11-23T17:36:00Z",
        "features": ["ipv6"], "backup_ids": [], "snapshot_ids": [],
        "image": {"slug": d.image}, "size": {"slug": d.size}, "size_slug": d.size,
        "networks": {"v4": v4, "v6": v6},
        "region": {"slug": d.region, "name": "Frankfurt 1", "available": true, "features": [], "sizes": []},
        "tags": d.tags, "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4"
    })
}

fn action_json(a: &Action) -> Value {
    let done = a.done();
    json!({
        "id": a.id,
        "status": if done { "completed" } else { "in-progress" },
        "type": a.kind, "started_at": "2026-11-23T17:36:00Z",
        "completed_at": if done { json!("2026-11-23T17:37:00Z") } else { Value::Null },
        "resource_id": a.resource, "resource_type": "droplet", "region_slug": "fra1"
    })
}
