//! A fake Hetzner Cloud API v1: its routes, shapes and status names, run by
//! the shared [`Server`](super::server::Server).
//!
//! It follows the official contract where spuff depends on it: 201 for a
//! create (`{server, action, next_actions, root_password}`), for actions and
//! key imports; 200 for gets, lists and a server delete (which returns an
//! action); 204 for an image delete; `meta.pagination` with `next_page`;
//! `{"error":{code,message,details}}` bodies (the official docs' own for a
//! duplicate key) with `X-Correlation-Id`; `RateLimit-*` headers, refilled
//! one request a second; servers that go `initializing` → `starting` →
//! `running` with `public_net.ipv4` null until a few polls have passed, and
//! a /64 IPv6 network.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::server::{
    Account, Action, Api, Call, Headers, JSON, Key, Page, Paging, Refused, Reply, Server,
};

/// One server in the fake project.
#[derive(Debug, Clone)]
pub struct HServer {
    pub status: String,
    pub polls: u32,
    /// The create's body: name, location, server type, image, labels, user data.
    pub request: Value,
}

impl HServer {
    /// As the API shows it.
    fn json(&self, id: u64) -> Value {
        let ready = self.status == "running";
        let n = id % 250;
        let asked = &self.request;
        json!({
            "id": id, "name": asked["name"], "status": self.status,
            // No seconds, as some real bodies have.
            "created": "2026-11-23T17:36+00:00",
            "public_net": {
                "ipv4": if ready { json!({"id": id, "ip": format!("198.51.100.{n}"), "blocked": false, "dns_ptr": "static.example"}) } else { Value::Null },
                "ipv6": {"id": id + 1, "ip": format!("2a01:4f8:c0c:{n:x}::/64"), "blocked": false, "dns_ptr": []},
                "floating_ips": [], "firewalls": []
            },
            "private_net": [],
            "server_type": {"id": 1, "name": asked["server_type"], "cores": 2, "memory": 4.0, "disk": 40},
            // The datacenter is left out: the location must be enough.
            "location": {"id": 1, "name": asked["location"], "city": "Nuremberg", "country": "DE"},
            "image": {"name": asked["image"]},
            "labels": labels_of(&asked["labels"]),
            "primary_disk_size": 40, "locked": false, "protection": {"delete": false, "rebuild": false}
        })
    }
}

/// The token the fake accepts.
pub const TOKEN: &str = "fake-hcloud-token-5ecret";

/// A running fake Hetzner Cloud; stops when dropped.
pub type FakeHetzner = Server<State>;

/// The project.
#[derive(Debug, Default)]
pub struct State {
    /// Ids, keys, actions and the poll counts of readiness.
    pub account: Account,
    pub servers: BTreeMap<u64, HServer>,
    /// id, description, server id, labels.
    pub images: Vec<(u64, String, u64, BTreeMap<String, String>)>,
}

impl Server<State> {
    /// Adds a running server directly, as if made earlier.
    pub fn seed_server(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let request = json!({"name": name, "location": "nbg1", "server_type": "cx22",
            "image": "ubuntu-24.04", "labels": labels});
        let mut s = self.state();
        let id = s.account.new_id();
        let status = "running".to_string();
        s.servers.insert(
            id,
            HServer {
                status,
                polls: 1000,
                request,
            },
        );
        id
    }
}

impl Api for State {
    const HEADERS: Headers = &[
        ("content-type", JSON),
        ("x-correlation-id", "fake-correlation-1"),
    ];
    /// 3,600 requests an hour, refilled one a second.
    const RATE_LIMIT: (u64, u64) = (3600, 1);
    const ROOT: &'static str = "/v1/";
    const TOKEN: &'static str = TOKEN;

    fn route(&mut self, call: &Call, paging: &Paging) -> Reply {
        // `per_page`: 25 when not given, at most 50.
        let list = |key: &str, items| meta(key, paging.page(&call.query, (25, 50), items));
        let id_of = |p: &str| p.parse::<u64>().ok().unwrap_or_default();
        let q = &call.query;
        match (call.method.as_str(), call.segments::<Self>().as_slice()) {
            ("POST", ["servers"]) => self.create(call),
            ("GET", ["servers"]) => {
                let unlisted = self.account.unlisted();
                list(
                    "servers",
                    (self.servers.iter())
                        .filter(|(id, _)| !unlisted.contains(id))
                        .filter(|(_, srv)| selected(&labels_of(&srv.request["labels"]), q))
                        .filter(|(_, srv)| q.get("name").is_none_or(|n| srv.request["name"] == **n))
                        .map(|(id, srv)| srv.json(*id))
                        .collect(),
                )
            }
            ("GET", ["servers", id]) => {
                let ready_after = self.account.ready_after_polls;
                let Some(srv) = self.servers.get_mut(&id_of(id)) else {
                    return fail(404, "not_found", "server not found");
                };
                srv.polls += 1;
                if srv.status == "initializing" {
                    srv.status = "starting".into();
                }
                if srv.status == "starting" && srv.polls >= ready_after {
                    srv.status = "running".into();
                }
                Reply::json(200, json!({"server": srv.json(id_of(id))}))
            }
            ("DELETE", ["servers", id]) => match self.servers.remove(&id_of(id)) {
                Some(_) => Reply::json(200, json!({"action": self.action("delete_server", id_of(id))})),
                None => fail(404, "not_found", "server not found"),
            },
            ("POST", ["servers", id, "actions", cmd]) if self.servers.contains_key(&id_of(id)) => {
                self.server_action(id_of(id), cmd, call)
            }
            ("POST", ["servers", _, "actions", _]) => fail(404, "not_found", "server not found"),
            ("GET", ["actions", id]) => match self.account.poll(id_of(id)) {
                Some(a) => Reply::json(200, json!({"action": action_json(&a)})),
                None => fail(404, "not_found", "action not found"),
            },
            ("GET", ["images"]) => list(
                "images",
                (self.images.iter())
                    .filter(|(_, _, _, l)| selected(l, q))
                    .map(|(id, desc, sid, labels)| image_json(*id, desc, *sid, labels, "available"))
                    .collect(),
            ),
            ("DELETE", ["images", id]) => {
                let before = self.images.len();
                self.images.retain(|i| i.0 != id_of(id));
                if self.images.len() < before {
                    Reply::empty(204)
                } else {
                    fail(404, "not_found", "image not found")
                }
            }
            ("GET", ["ssh_keys"]) => {
                let fp = q.get("fingerprint").map(|f| f.replace("%3A", ":").replace("%3a", ":"));
                list(
                    "ssh_keys",
                    (self.account.keys.iter())
                        .filter(|k| fp.as_ref().is_none_or(|f| *f == k.fingerprint))
                        .map(key_json)
                        .collect(),
                )
            }
            ("POST", ["ssh_keys"]) => self.import_key(call),
            ("GET", ["server_types"]) => list(
                "server_types",
                [("cx22", 2, 4.0, 40, "4.51"), ("cx32", 4, 8.0, 80, "8.09")]
                    .iter()
                    .enumerate()
                    .map(|(i, (name, cores, memory, disk, monthly))| json!({
                        "id": i + 1, "name": name, "description": name.to_uppercase(),
                        "cores": cores, "memory": memory, "disk": disk, "deprecation": null,
                        "storage_type": "local", "cpu_type": "shared", "architecture": "x86",
                        "prices": [{"location": "nbg1",
                            "price_hourly": {"net": "0.006", "gross": "0.0071"},
                            "price_monthly": {"net": "3.79", "gross": monthly}}]}))
                    .collect(),
            ),
            ("GET", ["locations"]) => list(
                "locations",
                ["nbg1", "fsn1", "hel1"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| json!({"id": i + 1, "name": n, "description": format!("DC {n}"), "city": n, "country": "DE", "network_zone": "eu-central"}))
                    .collect(),
            ),
            _ => fail(404, "not_found", "no such endpoint"),
        }
    }

    fn error(status: u16, code: &str) -> Reply {
        let message = match code {
            "unauthorized" => "unable to authenticate",
            "too_many_requests" => {
                return fail(
                    429,
                    "rate_limit_exceeded",
                    "limit of 3600 requests per hour reached",
                );
            }
            "invalid_input" => {
                let body =
                    super::server::data("hetzner", "official-docs__error_invalid_input.json");
                return Reply::raw(status, body);
            }
            "locked" => "the item is locked: there is already an action running",
            _ => "an internal error occurred",
        };
        fail(status, code, message)
    }
}

impl State {
    fn create(&mut self, call: &Call) -> Reply {
        let name = call.text("name");
        if self.servers.values().any(|v| v.request["name"] == name) {
            return fail(409, "uniqueness_error", "server name is already used");
        }
        let user_data = call.body["user_data"].as_str().map(str::to_string);
        if user_data.as_ref().is_some_and(|u| u.len() > 32 * 1024) {
            return fail(422, "invalid_input", "user_data too long");
        }
        let id = self.account.new_id();
        let srv = HServer {
            status: "initializing".into(),
            polls: 0,
            request: call.body.clone(),
        };
        let body = srv.json(id);
        self.servers.insert(id, srv);
        self.account.created(id);
        let action = self.action("create_server", id);
        let start = self.action("start_server", id);
        Reply::json(
            201,
            json!({"server": body, "action": action, "next_actions": [start], "root_password": null}),
        )
    }

    /// Starts an action on server `sid` and returns it as JSON.
    fn action(&mut self, command: &str, sid: u64) -> Value {
        action_json(&self.account.start(command, sid, None))
    }

    fn server_action(&mut self, sid: u64, cmd: &str, call: &Call) -> Reply {
        let (command, status) = match cmd {
            "poweroff" => ("stop_server", "off"),
            "poweron" => ("start_server", "running"),
            "create_image" => {
                let (img, desc) = (self.account.new_id(), call.text("description"));
                let labels = labels_of(&call.body["labels"]);
                let image = image_json(img, &desc, sid, &labels, "creating");
                self.images.push((img, desc, sid, labels));
                let action = self.action("create_image", sid);
                return Reply::json(201, json!({"image": image, "action": action}));
            }
            _ => return fail(404, "not_found", "no such action"),
        };
        if let Some(srv) = self.servers.get_mut(&sid) {
            srv.status = status.into();
        }
        Reply::json(201, json!({"action": self.action(command, sid)}))
    }

    fn import_key(&mut self, call: &Call) -> Reply {
        let name = call.text("name");
        let taken = || {
            Reply::raw(
                409,
                super::server::data("hetzner", "official-docs__error_uniqueness_error.json"),
            )
        };
        if self.account.keys.iter().any(|k| k.name == name) {
            return taken();
        }
        match self.account.import_key(name, call.text("public_key")) {
            Ok(key) => Reply::json(201, json!({"ssh_key": key_json(&key)})),
            Err(Refused::Invalid) => fail(422, "invalid_input", "invalid public key"),
            Err(Refused::Taken) => taken(),
        }
    }
}

/// An error in the documented `{"error": {code, message, details}}` shape.
fn fail(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": code, "message": message, "details": {}}}),
    )
}

/// A page under `key` with Hetzner's `meta.pagination`.
fn meta(key: &str, page: Page) -> Reply {
    let opt = |c: bool, p: usize| if c { json!(p) } else { Value::Null };
    let pagination = json!({
        "page": page.number, "per_page": page.per_page,
        "previous_page": opt(page.number > 1, page.number.saturating_sub(1)),
        "next_page": page.next,
        "last_page": page.last, "total_entries": page.total
    });
    Reply::json(
        200,
        json!({ key: page.items, "meta": {"pagination": pagination} }),
    )
}

/// A label selector as the API reads it: comma-separated requirements,
/// all of which must hold: `k`, `!k`, `k=v` (or `k==v`) and `k!=v`.
fn selected(labels: &BTreeMap<String, String>, q: &BTreeMap<String, String>) -> bool {
    let Some(sel) = q.get("label_selector") else {
        return true;
    };
    sel.split(',').map(str::trim).all(|req| {
        if let Some((k, v)) = req.split_once("!=") {
            labels.get(k) != Some(&v.to_string())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            labels.get(k).is_some_and(|x| x == v)
        } else if let Some(k) = req.strip_prefix('!') {
            !labels.contains_key(k)
        } else {
            labels.contains_key(req)
        }
    })
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    (v.as_object().into_iter().flatten())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn action_json(a: &Action) -> Value {
    let done = a.done();
    json!({
        "id": a.id, "command": a.kind,
        "status": if done { "success" } else { "running" },
        "progress": if done { 100 } else { 50 },
        "started": "2026-11-23T17:36:00+00:00",
        "finished": if done { json!("2026-11-23T17:37:00+00:00") } else { Value::Null },
        "resources": [{"id": a.resource, "type": "server"}],
        "error": null
    })
}

fn image_json(
    id: u64,
    description: &str,
    server: u64,
    labels: &BTreeMap<String, String>,
    status: &str,
) -> Value {
    json!({
        "id": id, "type": "snapshot", "status": status, "name": null,
        "description": description, "image_size": 1.5, "disk_size": 40,
        "created": "2026-11-23T17:40:00+00:00",
        "created_from": {"id": server, "name": "srv"}, "labels": labels
    })
}

fn key_json(k: &Key) -> Value {
    json!({"id": k.id, "name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key,
        "labels": {}, "created": "2026-11-23T17:00:00+00:00"})
}
