//! A fake Proxmox VE API (`/api2/json/`) on the shared fake-cloud server.
//!
//! It keeps what spuff depends on, as tests/data/proxmox/README.md records
//! it: the `{"data": …}` envelope; `PVEAPIToken=USER@REALM!TOKENID=SECRET`
//! auth (401 with an empty body otherwise); errors with `{"data":null,
//! "message"}` and `errors` per parameter for a 400; a missing VM as a 500
//! "Configuration file … does not exist"; `cluster/nextid` as a string and
//! vmids as strings in listings; lxc entries beside the VMs; every change a
//! task (a UPID naming the node, and for a clone the source VM) that ends
//! after a few polls, `OK` or with an error and a log; `sshkeys` refused
//! unless percent-encoded; the guest agent "not running" for a few polls
//! after start, then loopback, docker0 and the VM's own addresses; the
//! snapshot list ending with `current`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::BootedVm;
use super::server::{Account, Api, Call, Headers, JSON, Job, Paging, Raw, Reply, Server};

/// The token the fake accepts (after `PVEAPIToken=`).
pub const TOKEN: &str = "spuff@pve!ci=0b0e2a3c-6d1f-4a2b-9c8d-7e6f5a4b3c2d";

/// A user who logs in with a password (a ticket).
pub const USER: (&str, &str) = ("ana@pve", "correct horse battery");
/// The CSRF token that goes with its tickets.
pub const CSRF: &str = "6789ABCD:Jr0G0R2bq4uHQk1b8y3m1c7lP5x9yT2sW4vA6nE8dKf";

/// The template the fake has, on `pve1`.
pub const TEMPLATE: u64 = 9000;

/// A VM (or the template) in the fake cluster.
#[derive(Debug, Clone)]
pub struct Vm {
    pub name: String,
    pub node: String,
    pub running: bool,
    pub template: bool,
    pub tags: String,
    pub cores: u64,
    pub memory_mib: u64,
    pub config: BTreeMap<String, Value>,
    /// Agent polls since it started.
    pub agent_polls: u32,
    pub snapshots: Vec<String>,
    /// The snapshots it was rolled back to, in order.
    pub rolled_back: Vec<String>,
    /// The VM a [`StartHook`] stood up for it.
    pub booted: Option<BootedVm>,
}

/// Stands a VM up when one is started for the first time (from the
/// snippet its `cicustom` names, as Proxmox's cloud-init drive would carry
/// it), and says where its sshd listens; the VM then carries the tags
/// `spuff-ssh-port-PORT` and `spuff-ssh-user-USER`. It runs on a blocking
/// thread before the start is answered.
#[derive(Clone)]
pub struct StartHook(Arc<StartFn>);

type StartFn = dyn Fn(u64, &Vm) -> BootedVm + Send + Sync;

impl std::fmt::Debug for StartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartHook")
    }
}

impl Vm {
    fn mac(&self, id: u64) -> String {
        format!("bc:24:11:00:{:02x}:{:02x}", (id >> 8) & 0xff, id & 0xff)
    }
}

/// A task: done after some polls, well or with `fail`.
#[derive(Debug, Clone)]
pub struct Task {
    pub upid: String,
    pub polls_left: u32,
    pub fail: Option<String>,
}

/// The fake cluster.
#[derive(Debug)]
pub struct State {
    pub account: Account,
    pub vms: BTreeMap<u64, Vm>,
    pub tasks: Vec<Task>,
    /// The next task of this worker type fails with this text.
    pub fail_next: Option<(String, String)>,
    /// Tickets handed out by `POST /access/ticket`.
    pub tickets: Vec<String>,
    /// Boots VMs when they start ([`Server::on_start`]).
    pub boot: Option<StartHook>,
    next_pid: u32,
}

impl Default for State {
    fn default() -> Self {
        let mut vms = BTreeMap::new();
        vms.insert(
            TEMPLATE,
            Vm {
                name: "debian-12-cloud-tmpl".into(),
                node: "pve1".into(),
                running: false,
                template: true,
                tags: String::new(),
                cores: 2,
                memory_mib: 2048,
                // As a template made from a cloud image is: its disk, the
                // cloud-init drive, the boot order.
                config: BTreeMap::from([
                    (
                        "scsi0".to_string(),
                        json!("local-lvm:base-9000-disk-0,size=2G"),
                    ),
                    (
                        "ide2".to_string(),
                        json!("local-lvm:vm-9000-cloudinit,media=cdrom"),
                    ),
                    ("boot".to_string(), json!("order=scsi0;ide2;net0")),
                ]),
                agent_polls: 0,
                snapshots: vec![],
                rolled_back: vec![],
                booted: None,
            },
        );
        State {
            account: Account::default(),
            vms,
            tasks: vec![],
            fail_next: None,
            tickets: vec![],
            boot: None,
            next_pid: 0x3a2f1,
        }
    }
}

impl Server<State> {
    /// Boots a VM with `hook` whenever a VM starts for the first time (see
    /// [`StartHook`]).
    pub fn on_start(&self, hook: impl Fn(u64, &Vm) -> BootedVm + Send + Sync + 'static) {
        self.state().boot = Some(StartHook(Arc::new(hook)));
    }

    /// Adds a running VM with these tags on pve1; its id.
    pub fn seed_vm(&self, name: &str, tags: &str) -> u64 {
        let mut s = self.state();
        let id = 100 + s.vms.len() as u64 + s.account.new_id() % 1000;
        s.vms.insert(
            id,
            Vm {
                name: name.into(),
                node: "pve1".into(),
                running: true,
                template: false,
                tags: tags.into(),
                cores: 2,
                memory_mib: 2048,
                config: BTreeMap::new(),
                agent_polls: u32::MAX / 2,
                snapshots: vec![],
                rolled_back: vec![],
                booted: None,
            },
        );
        id
    }
}

fn ok(data: Value) -> Reply {
    Reply::json(200, json!({ "data": data }))
}

/// An error as libpve-http-server ≥ 5.2.0 sends it.
fn fail(status: u16, message: &str, errors: Option<Value>) -> Reply {
    let mut body = json!({"data": null, "message": format!("{message}\n")});
    if let Some(e) = errors {
        body["errors"] = e;
    }
    Reply::json(status, body)
}

fn no_vm(node: &str, id: &str) -> Reply {
    fail(
        500,
        &format!("Configuration file 'nodes/{node}/qemu-server/{id}.conf' does not exist"),
        None,
    )
}

/// Proxmox's `urlencoded` format.
fn urlencoded(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-%_.!~*'()".contains(&b))
}

impl State {
    /// Starts a task on `node`; its UPID.
    fn task(&mut self, node: &str, kind: &str, id: u64) -> Reply {
        self.next_pid += 1;
        let upid = format!(
            "UPID:{node}:{:08X}:01CD6D6B:6789ABCD:{kind}:{id}:spuff@pve!ci:",
            self.next_pid
        );
        let fail = match &self.fail_next {
            Some((k, msg)) if k == kind => {
                let msg = msg.clone();
                self.fail_next = None;
                Some(msg)
            }
            _ => None,
        };
        self.tasks.push(Task {
            upid: upid.clone(),
            polls_left: self.account.action_polls,
            fail,
        });
        ok(json!(upid))
    }

    fn resources(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .vms
            .iter()
            .map(|(id, vm)| {
                json!({
                    "id": format!("qemu/{id}"),
                    // Real bodies sometimes carry it as a string.
                    "vmid": if id % 2 == 0 { json!(id.to_string()) } else { json!(id) },
                    "name": vm.name, "node": vm.node, "type": "qemu",
                    "status": if vm.running { "running" } else { "stopped" },
                    "template": if vm.template { json!(1) } else { json!(0) },
                    "tags": vm.tags,
                    "maxcpu": vm.cores, "maxmem": vm.memory_mib * 1024 * 1024,
                    "uptime": if vm.running { 42 } else { 0 },
                })
            })
            .collect();
        // A container: listed with the VMs, not one.
        out.push(
            json!({"id": "lxc/200", "vmid": 200, "name": "ct", "node": "pve1",
            "type": "lxc", "status": "running", "tags": "spuff"}),
        );
        out
    }
}

impl Api for State {
    const TOKEN: &'static str = TOKEN;
    const ROOT: &'static str = "/api2/json/";
    const RATE_LIMIT: (u64, u64) = (1000, 1);
    const HEADERS: Headers = &[
        ("content-type", "application/json;charset=UTF-8"),
        ("server", "pve-api-daemon/3.0"),
    ];

    fn error(status: u16, code: &str) -> Reply {
        match code {
            // The auth layer's 401: no body at all.
            "unauthorized" => Reply::empty(401),
            "too_many_requests" => fail(503, "too many requests", None),
            "server_error" => fail(status, "internal error", None),
            "not_found" => fail(404, "no such resource", None),
            other => fail(status, other, None),
        }
    }

    fn authorize(&mut self, raw: &Raw<'_>) -> Option<bool> {
        let header = |name: &str| {
            raw.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        if raw.path == "/api2/json/access/ticket" && raw.method == http::Method::POST {
            return Some(true);
        }
        if header("authorization") == format!("PVEAPIToken={TOKEN}") {
            return Some(true);
        }
        // A ticket: the cookie, and on writes the CSRF token too.
        let cookie = header("cookie");
        let ticket = cookie
            .split(';')
            .find_map(|c| c.trim().strip_prefix("PVEAuthCookie="))
            .unwrap_or_default();
        let known = !ticket.is_empty() && self.tickets.iter().any(|t| t == ticket);
        let csrf_ok = raw.method == http::Method::GET || header("csrfpreventiontoken") == CSRF;
        Some(known && csrf_ok)
    }

    /// Boots a VM started for the first time, when a [`StartHook`] is set.
    fn after(&mut self, call: &Call, reply: &Reply) -> Option<Job<Self>> {
        let seg = call.segments::<Self>();
        let ["nodes", _, "qemu", id, "status", "start"] = seg.as_slice() else {
            return None;
        };
        if call.method != http::Method::POST || reply.status != 200 {
            return None;
        }
        let id: u64 = id.parse().ok()?;
        let hook = self.boot.clone()?;
        let vm = self.vms.get(&id).filter(|vm| vm.booted.is_none())?.clone();
        Some(Box::new(move || {
            let booted = (hook.0)(id, &vm);
            Box::new(move |s: &mut State| {
                if let Some(vm) = s.vms.get_mut(&id) {
                    vm.tags = format!(
                        "{};{}-{};{}-{}",
                        vm.tags,
                        spuff::provider::SSH_PORT_LABEL,
                        booted.ssh_port,
                        spuff::provider::SSH_USER_LABEL,
                        booted.ssh_user
                    );
                    vm.booted = Some(booted);
                }
            })
        }))
    }

    fn route(&mut self, call: &Call, _paging: &Paging) -> Reply {
        let seg = call.segments::<Self>();
        let method = call.method.as_str();
        let body = &call.body;
        match (method, seg.as_slice()) {
            ("POST", ["access", "ticket"]) => {
                if body["username"] != USER.0 || body["password"] != USER.1 {
                    return fail(401, "authentication failure", None);
                }
                let ticket = format!(
                    "PVE:{}:6789ABCD::c2lnbmF0dXJl{}",
                    USER.0,
                    self.tickets.len()
                );
                self.tickets.push(ticket.clone());
                ok(
                    json!({"username": USER.0, "ticket": ticket, "CSRFPreventionToken": CSRF,
                    "clustername": "lab", "cap": {}}),
                )
            }
            ("GET", ["cluster", "resources"]) => ok(json!(self.resources())),
            ("GET", ["cluster", "nextid"]) => {
                let next = (100..).find(|n| !self.vms.contains_key(n)).unwrap_or(999);
                ok(json!(next.to_string()))
            }
            ("GET", ["nodes"]) => ok(json!([
                {"node": "pve1", "status": "online", "type": "node", "maxcpu": 16},
                {"node": "pve2", "status": "offline", "type": "node"}
            ])),
            ("GET", ["nodes", node, "tasks", upid, what]) => {
                let upid = super::server::percent_decode(upid);
                let upid = upid.as_str();
                let Some(task) = self.tasks.iter_mut().find(|t| t.upid == upid) else {
                    return fail(500, &format!("no such task '{upid}'"), None);
                };
                if *node != upid.split(':').nth(1).unwrap_or_default() {
                    return fail(500, "task is on another node", None);
                }
                match *what {
                    "status" => {
                        if task.polls_left > 0 {
                            task.polls_left -= 1;
                            return ok(json!({"upid": upid, "status": "running", "node": node}));
                        }
                        let exit = task.fail.clone().unwrap_or_else(|| "OK".into());
                        ok(
                            json!({"upid": upid, "status": "stopped", "exitstatus": exit, "node": node}),
                        )
                    }
                    "log" => {
                        let last = match &task.fail {
                            Some(msg) => format!("TASK ERROR: {msg}"),
                            None => "TASK OK".into(),
                        };
                        Reply::json(
                            200,
                            json!({"data": [{"n": 1, "t": "starting"}, {"n": 2, "t": last}], "total": 2}),
                        )
                    }
                    _ => fail(501, "not implemented", None),
                }
            }
            (_, ["nodes", node, "qemu", id, rest @ ..]) => {
                let Ok(vmid) = id.parse::<u64>() else {
                    return fail(
                        400,
                        "Parameter verification failed.",
                        Some(json!({"vmid": "type check ('integer') failed"})),
                    );
                };
                let node = node.to_string();
                let exists = self.vms.get(&vmid).is_some_and(|v| v.node == node);
                match (method, rest) {
                    ("POST", ["clone"]) => {
                        if !exists {
                            return no_vm(&node, id);
                        }
                        let Some(newid) = body["newid"].as_u64() else {
                            return fail(
                                400,
                                "Parameter verification failed.",
                                Some(
                                    json!({"newid": "property is missing and it is not optional"}),
                                ),
                            );
                        };
                        if self.vms.contains_key(&newid) {
                            return fail(
                                500,
                                &format!("unable to create VM {newid}: config file already exists"),
                                None,
                            );
                        }
                        let source = self.vms[&vmid].clone();
                        if let Some(snap) = body["snapname"].as_str()
                            && !source.snapshots.iter().any(|s| s == snap)
                        {
                            return fail(500, &format!("snapshot '{snap}' does not exist"), None);
                        }
                        let target = body["target"].as_str().unwrap_or(&node).to_string();
                        // The disks come along, as the clone's own volumes.
                        let config = source
                            .config
                            .iter()
                            .map(|(k, v)| {
                                let v = v.as_str().map_or(v.clone(), |s| {
                                    json!(s.replace(&format!("-{vmid}-"), &format!("-{newid}-")))
                                });
                                (k.clone(), v)
                            })
                            .collect();
                        self.vms.insert(
                            newid,
                            Vm {
                                name: body["name"].as_str().unwrap_or("clone").to_string(),
                                node: target,
                                running: false,
                                template: false,
                                tags: String::new(),
                                config,
                                agent_polls: 0,
                                snapshots: vec![],
                                rolled_back: vec![],
                                booted: None,
                                ..source
                            },
                        );
                        self.account.created(newid);
                        // The clone's task names the source VM.
                        self.task(&node, "qmclone", vmid)
                    }
                    _ if !exists => no_vm(&node, id),
                    ("POST", ["config"]) => {
                        if let Some(keys) = body["sshkeys"].as_str()
                            && !urlencoded(keys)
                        {
                            return fail(
                                400,
                                "Parameter verification failed.",
                                Some(
                                    json!({"sshkeys": format!("invalid format - invalid urlencoded string: {keys}\n")}),
                                ),
                            );
                        }
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        if let Some(obj) = body.as_object() {
                            for (k, v) in obj {
                                vm.config.insert(k.clone(), v.clone());
                            }
                        }
                        if let Some(t) = body["tags"].as_str() {
                            vm.tags = t.to_string();
                        }
                        if let Some(c) = body["cores"].as_u64() {
                            vm.cores = c;
                        }
                        if let Some(m) = body["memory"].as_str().and_then(|m| m.parse().ok()) {
                            vm.memory_mib = m;
                        }
                        self.task(&node, "qmconfig", vmid)
                    }
                    ("GET", ["config"]) => {
                        let vm = &self.vms[&vmid];
                        let mut config = json!({
                            "name": vm.name, "cores": vm.cores,
                            // A string, as the real config has it.
                            "memory": vm.memory_mib.to_string(),
                            "net0": format!("virtio={},bridge=vmbr0,firewall=1", vm.mac(vmid).to_uppercase()),
                            "digest": "0123456789abcdef",
                        });
                        for (k, v) in &vm.config {
                            config[k] = v.clone();
                        }
                        ok(config)
                    }
                    ("POST", ["status", action @ ("start" | "stop")]) => {
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        vm.running = *action == "start";
                        vm.agent_polls = 0;
                        let kind = if vm.running { "qmstart" } else { "qmstop" };
                        self.task(&node, kind, vmid)
                    }
                    ("DELETE", []) => {
                        if self.vms[&vmid].running {
                            return fail(
                                500,
                                &format!("VM {vmid} is running - destroy failed"),
                                None,
                            );
                        }
                        self.vms.remove(&vmid);
                        self.task(&node, "qmdestroy", vmid)
                    }
                    ("GET", ["agent", "network-get-interfaces"]) => {
                        let ready = self.account.ready_after_polls;
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        if !vm.running {
                            return fail(500, &format!("VM {vmid} is not running"), None);
                        }
                        vm.agent_polls = vm.agent_polls.saturating_add(1);
                        if vm.agent_polls < ready {
                            return fail(500, "QEMU guest agent is not running", None);
                        }
                        let mac = vm.mac(vmid);
                        let n = vmid % 250;
                        ok(json!({"result": [
                            {"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [
                                {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
                            {"name": "docker0", "hardware-address": "02:42:ac:11:00:01", "ip-addresses": [
                                {"ip-address": "172.17.0.1", "ip-address-type": "ipv4", "prefix": 16}]},
                            {"name": "ens18", "hardware-address": mac, "ip-addresses": [
                                {"ip-address": format!("192.0.2.{n}"), "ip-address-type": "ipv4", "prefix": 24},
                                {"ip-address": format!("fe80::be24:11ff:fe00:{n:x}"), "ip-address-type": "ipv6", "prefix": 64}]}
                        ]}))
                    }
                    ("GET", ["snapshot"]) => {
                        let vm = &self.vms[&vmid];
                        let mut list: Vec<Value> = vm
                            .snapshots
                            .iter()
                            .map(|s| json!({"name": s, "snaptime": 1764590000, "vmstate": 0, "description": ""}))
                            .collect();
                        list.push(json!({"name": "current", "description": "You are here!", "digest": "x", "running": 1}));
                        ok(json!(list))
                    }
                    ("POST", ["snapshot"]) => {
                        let name = body["snapname"].as_str().unwrap_or_default().to_string();
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        if vm.snapshots.contains(&name) {
                            return fail(
                                500,
                                &format!("snapshot name '{name}' already used"),
                                None,
                            );
                        }
                        vm.snapshots.push(name);
                        self.task(&node, "qmsnapshot", vmid)
                    }
                    ("POST", ["snapshot", name, "rollback"]) => {
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        if !vm.snapshots.iter().any(|s| s == name) {
                            return fail(500, &format!("snapshot '{name}' does not exist"), None);
                        }
                        // A snapshot without RAM: the VM is stopped after.
                        vm.running = false;
                        vm.agent_polls = 0;
                        vm.rolled_back.push(name.to_string());
                        self.task(&node, "qmrollback", vmid)
                    }
                    ("PUT", ["resize"]) => {
                        let disk = body["disk"].as_str().unwrap_or_default().to_string();
                        let size = body["size"].as_str().unwrap_or_default().to_string();
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        let Some(current) = vm
                            .config
                            .get(&disk)
                            .and_then(Value::as_str)
                            .map(str::to_string)
                        else {
                            return fail(500, &format!("disk '{disk}' does not exist"), None);
                        };
                        let gb = |s: &str| s.trim_end_matches('G').parse::<u64>().ok();
                        let old = current
                            .split(',')
                            .find_map(|p| p.strip_prefix("size="))
                            .and_then(gb)
                            .unwrap_or(0);
                        let Some(new) = gb(&size) else {
                            return fail(
                                400,
                                "Parameter verification failed.",
                                Some(json!({"size": "value does not match the regex pattern"})),
                            );
                        };
                        if new < old {
                            return fail(500, "shrinking disks is not supported", None);
                        }
                        let updated =
                            current.replace(&format!("size={old}G"), &format!("size={new}G"));
                        vm.config.insert(disk, json!(updated));
                        self.task(&node, "resize", vmid)
                    }
                    ("DELETE", ["snapshot", name]) => {
                        let vm = self.vms.get_mut(&vmid).expect("exists");
                        if !vm.snapshots.iter().any(|s| s == name) {
                            return fail(500, &format!("snapshot '{name}' does not exist"), None);
                        }
                        vm.snapshots.retain(|s| s != name);
                        self.task(&node, "qmdelsnapshot", vmid)
                    }
                    _ => fail(
                        501,
                        &format!("Method '{method} {}' not implemented", call.path),
                        None,
                    ),
                }
            }
            _ => fail(
                501,
                &format!("Method '{method} {}' not implemented", call.path),
                None,
            ),
        }
    }
}

/// The JSON media type, for tests that serve bodies.
pub const MEDIA: &str = JSON;

/// A provider config for this fake: the template, pve1.
pub fn config(fake: &Server<State>) -> spuff::provider::ProviderConfig {
    let mut config = fake.config();
    config.proxmox.template = Some(TEMPLATE as u32);
    config
}
