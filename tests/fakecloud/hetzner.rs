//! A fake Hetzner Cloud API v1 over real TLS (same per-run CA scheme as the
//! DigitalOcean fake), for tests/provider_hetzner.rs.
//!
//! It follows the official contract where spuff depends on it: 201 for a
//! create (`{server, action, next_actions, root_password}`), for actions and
//! key imports; 200 for gets, lists and a server delete (which returns an
//! action); 204 for an image delete; `meta.pagination` with `next_page`;
//! `{"error":{code,message,details}}` bodies with `X-Correlation-Id`; 429 with
//! `RateLimit-Limit/Remaining/Reset`; servers that go `initializing` →
//! `running` with `public_net.ipv4` null until a few polls have passed and a
//! /64 IPv6 network. The DigitalOcean fake's [`Fault`]s are reused.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{Body, BoxError, FakeStats, Fault, FaultKind, now_epoch, query, tls_material};

/// The token the fake accepts.
pub const TOKEN: &str = "fake-hcloud-token-5ecret";

/// One server in the fake project.
#[derive(Debug, Clone)]
pub struct HServer {
    pub id: u64,
    pub name: String,
    pub location: String,
    pub server_type: String,
    pub image: Value,
    pub labels: BTreeMap<String, String>,
    pub status: String,
    pub polls: u32,
    pub user_data: Option<String>,
}

#[derive(Debug, Clone)]
struct HAction {
    id: u64,
    command: String,
    server: u64,
    polls_left: u32,
}

/// Knobs and state.
#[derive(Debug)]
pub struct HState {
    /// GETs of a server before it is running with an IPv4 address.
    pub ready_after_polls: u32,
    /// Polls of an action before it succeeds.
    pub action_polls: u32,
    /// Largest page (the real API: 50).
    pub max_per_page: usize,
    pub faults: VecDeque<Fault>,
    pub servers: BTreeMap<u64, HServer>,
    /// id, description, server id, labels.
    pub images: Vec<(u64, String, u64, BTreeMap<String, String>)>,
    /// id, name, fingerprint, public key.
    pub keys: Vec<(u64, String, String, String)>,
    actions: BTreeMap<u64, HAction>,
    next_id: u64,
    pub stats: FakeStats,
}

/// A running fake; stops when dropped.
pub struct FakeHetzner {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT/v1/`
    pub base_url: String,
    pub ca_pem: String,
    state: Arc<Mutex<HState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHetzner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Mutex<HState>) -> MutexGuard<'_, HState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeHetzner {
    /// Starts a fake on 127.0.0.1 with servers ready after 3 polls.
    pub async fn start() -> FakeHetzner {
        let (ca_pem, tls) = tls_material();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base_url = format!("https://127.0.0.1:{}/v1/", addr.port());
        let state = Arc::new(Mutex::new(HState {
            ready_after_polls: 3,
            action_polls: 2,
            max_per_page: 50,
            faults: VecDeque::new(),
            servers: BTreeMap::new(),
            images: Vec::new(),
            keys: Vec::new(),
            actions: BTreeMap::new(),
            next_id: 42_000_000,
            stats: FakeStats::default(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                lock(&st).stats.tcp_connections += 1;
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    lock(&st).stats.tls_handshakes += 1;
                    let service = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeHetzner {
            addr,
            base_url,
            ca_pem,
            state,
            task,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, HState> {
        lock(&self.state)
    }

    pub fn stats(&self) -> FakeStats {
        self.state().stats.clone()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Adds a running server directly, as if made earlier.
    pub fn seed_server(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut s = self.state();
        s.next_id += 1;
        let id = s.next_id;
        let srv = HServer {
            id,
            name: name.to_string(),
            location: "nbg1".into(),
            server_type: "cx22".into(),
            image: json!("ubuntu-24.04"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status: "running".into(),
            polls: 1000,
            user_data: None,
        };
        s.servers.insert(id, srv);
        id
    }

    /// A provider config pointing at this fake, trusting its CA, fast polling.
    pub fn config(&self) -> spuff::provider::ProviderConfig {
        let mut c = spuff::provider::ProviderConfig::new(TOKEN);
        c.base_url = Some(self.base_url.clone());
        c.http.extra_ca_pem = Some(self.ca_pem.clone());
        c.http.native_roots = false;
        c.http.proxy = spuff::provider::ProxyConfig::None;
        c.http.retry.min_delay = Duration::from_millis(20);
        c.http.retry.max_delay = Duration::from_millis(200);
        c.timeouts.poll_initial = Duration::from_millis(10);
        c.timeouts.poll_max = Duration::from_millis(50);
        c.timeouts.request = Duration::from_secs(5);
        c
    }
}

struct Reply {
    status: u16,
    body: Option<String>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body.to_string()),
            headers: vec![],
        }
    }
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: vec![],
        }
    }
    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {"code": code, "message": message, "details": {}}}),
        )
    }
}

async fn handle(
    st: Arc<Mutex<HState>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = query(req.uri());
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let fault = {
        let mut s = lock(&st);
        s.stats.requests += 1;
        if req.version() == http::Version::HTTP_2 {
            s.stats.http2_requests += 1;
        }
        s.stats.log.push(format!("{method} {path}"));
        let pos = s.faults.iter().position(|f| f.matches(&method, &path));
        pos.and_then(|p| s.faults.remove(p))
    };
    let body_bytes = req.into_body().collect().await?.to_bytes();
    let mut drop_after = false;
    match fault.map(|f| f.kind) {
        Some(FaultKind::Respond {
            status,
            headers,
            body,
        }) => {
            return Ok(render(Reply {
                status,
                body: Some(body),
                headers,
            }));
        }
        Some(FaultKind::RateLimit {
            retry_after,
            reset_in,
        }) => {
            let mut r = Reply::error(
                429,
                "rate_limit_exceeded",
                "limit of 3600 requests per hour reached",
            );
            r.headers.push(("RateLimit-Limit".into(), "3600".into()));
            r.headers.push(("RateLimit-Remaining".into(), "0".into()));
            r.headers.push((
                "RateLimit-Reset".into(),
                (now_epoch() + reset_in).to_string(),
            ));
            if let Some(s) = retry_after {
                r.headers.push(("Retry-After".into(), s.to_string()));
            }
            return Ok(render(r));
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::Hold(gate)) => gate.notified().await,
        Some(FaultKind::Drop) => return Err("fault: dropped".into()),
        Some(FaultKind::ProcessThenDrop) => drop_after = true,
        Some(FaultKind::Truncate) | None => {}
    }
    let reply = if !authorized {
        Reply::error(401, "unauthorized", "unable to authenticate")
    } else {
        let input: Value = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
        route(&mut lock(&st), &method, &path, &q, input)
    };
    if drop_after {
        return Err("fault: processed, then dropped".into());
    }
    Ok(render(reply))
}

fn render(r: Reply) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("x-correlation-id", "fake-correlation-1");
    let defaults = [
        ("RateLimit-Limit", "3600".to_string()),
        ("RateLimit-Remaining", "3599".to_string()),
        ("RateLimit-Reset", (now_epoch() + 1).to_string()),
    ];
    for (k, v) in defaults {
        if !r.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)) {
            builder = builder.header(k, v);
        }
    }
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let bytes = r.body.unwrap_or_default().into_bytes();
    builder
        .body(
            Full::new(Bytes::from(bytes))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}

/// A page of `items` under `key` with Hetzner's `meta.pagination`.
fn paginate(s: &HState, q: &BTreeMap<String, String>, key: &str, items: Vec<Value>) -> Reply {
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 50)
        .min(s.max_per_page);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let opt = |c: bool, p: usize| if c { json!(p) } else { Value::Null };
    Reply::json(
        200,
        json!({
            key: slice,
            "meta": {"pagination": {
                "page": page, "per_page": per_page,
                "previous_page": opt(page > 1, page.saturating_sub(1)),
                "next_page": opt(page < last, page + 1),
                "last_page": last, "total_entries": total
            }}
        }),
    )
}

/// `label_selector=k` or `k=v` (the only forms spuff uses).
fn selected(labels: &BTreeMap<String, String>, q: &BTreeMap<String, String>) -> bool {
    match q.get("label_selector") {
        None => true,
        Some(sel) => match sel.split_once("%3D").or_else(|| sel.split_once('=')) {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(sel.as_str()),
        },
    }
}

fn server_json(srv: &HServer) -> Value {
    let ready = srv.status == "running";
    let n = srv.id % 250;
    json!({
        "id": srv.id, "name": srv.name, "status": srv.status,
        // No seconds, as some real bodies have.
        "created": "2026-11-23T17:36+00:00",
        "public_net": {
            "ipv4": if ready { json!({"id": srv.id, "ip": format!("198.51.100.{n}"), "blocked": false, "dns_ptr": "static.example"}) } else { Value::Null },
            "ipv6": {"id": srv.id + 1, "ip": format!("2a01:4f8:c0c:{n:x}::/64"), "blocked": false, "dns_ptr": []},
            "floating_ips": [], "firewalls": []
        },
        "private_net": [],
        "server_type": {"id": 1, "name": srv.server_type, "cores": 2, "memory": 4.0, "disk": 40},
        // The datacenter is left out: the location must be enough.
        "location": {"id": 1, "name": srv.location, "city": "Nuremberg", "country": "DE"},
        "image": {"name": srv.image},
        "labels": srv.labels,
        "primary_disk_size": 40, "locked": false, "protection": {"delete": false, "rebuild": false}
    })
}

fn action_json(a: &HAction) -> Value {
    let done = a.polls_left == 0;
    json!({
        "id": a.id, "command": a.command,
        "status": if done { "success" } else { "running" },
        "progress": if done { 100 } else { 50 },
        "started": "2026-11-23T17:36:00+00:00",
        "finished": if done { json!("2026-11-23T17:37:00+00:00") } else { Value::Null },
        "resources": [{"id": a.server, "type": "server"}],
        "error": null
    })
}

fn new_action(s: &mut HState, command: &str, server: u64) -> Value {
    s.next_id += 1;
    let a = HAction {
        id: s.next_id,
        command: command.into(),
        server,
        polls_left: s.action_polls,
    };
    let v = action_json(&a);
    s.actions.insert(a.id, a);
    v
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn route(
    s: &mut HState,
    method: &Method,
    path: &str,
    q: &BTreeMap<String, String>,
    input: Value,
) -> Reply {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Reply::error(404, "not_found", "no such endpoint");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let id_of = |p: &str| p.parse::<u64>().ok();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["servers"]) => {
            let name = input["name"].as_str().unwrap_or_default().to_string();
            if s.servers.values().any(|v| v.name == name) {
                return Reply::error(409, "uniqueness_error", "server name is already used");
            }
            let ud = input["user_data"].as_str().map(str::to_string);
            if ud.as_ref().is_some_and(|u| u.len() > 32 * 1024) {
                return Reply::error(422, "invalid_input", "user_data too long");
            }
            s.next_id += 1;
            let id = s.next_id;
            let srv = HServer {
                id,
                name,
                location: input["location"].as_str().unwrap_or("nbg1").to_string(),
                server_type: input["server_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                image: input["image"].clone(),
                labels: labels_of(&input["labels"]),
                status: "initializing".into(),
                polls: 0,
                user_data: ud,
            };
            let body = server_json(&srv);
            s.servers.insert(id, srv);
            let action = new_action(s, "create_server", id);
            let start = new_action(s, "start_server", id);
            Reply::json(
                201,
                json!({"server": body, "action": action, "next_actions": [start], "root_password": null}),
            )
        }
        ("GET", ["servers"]) => {
            let mut items: Vec<Value> = Vec::new();
            for srv in s.servers.values() {
                if !selected(&srv.labels, q) {
                    continue;
                }
                if q.get("name").is_some_and(|n| *n != srv.name) {
                    continue;
                }
                items.push(server_json(srv));
            }
            paginate(s, q, "servers", items)
        }
        ("GET", ["servers", id]) => {
            let ready_after = s.ready_after_polls;
            match id_of(id).and_then(|i| s.servers.get_mut(&i)) {
                Some(srv) => {
                    srv.polls += 1;
                    if srv.status == "initializing" && srv.polls >= 1 {
                        srv.status = "starting".into();
                    }
                    if srv.status == "starting" && srv.polls >= ready_after {
                        srv.status = "running".into();
                    }
                    Reply::json(200, json!({"server": server_json(srv)}))
                }
                None => Reply::error(404, "not_found", "server not found"),
            }
        }
        ("DELETE", ["servers", id]) => match id_of(id).and_then(|i| s.servers.remove(&i)) {
            Some(srv) => {
                let a = new_action(s, "delete_server", srv.id);
                Reply::json(200, json!({"action": a}))
            }
            None => Reply::error(404, "not_found", "server not found"),
        },
        ("POST", ["servers", id, "actions", cmd]) => {
            let Some(sid) = id_of(id).filter(|i| s.servers.contains_key(i)) else {
                return Reply::error(404, "not_found", "server not found");
            };
            match *cmd {
                "poweroff" | "poweron" => {
                    if let Some(srv) = s.servers.get_mut(&sid) {
                        srv.status = if *cmd == "poweroff" { "off" } else { "running" }.into();
                    }
                    let a = new_action(
                        s,
                        if *cmd == "poweroff" {
                            "stop_server"
                        } else {
                            "start_server"
                        },
                        sid,
                    );
                    Reply::json(201, json!({"action": a}))
                }
                "create_image" => {
                    s.next_id += 1;
                    let img = s.next_id;
                    let desc = input["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let labels = labels_of(&input["labels"]);
                    s.images.push((img, desc.clone(), sid, labels.clone()));
                    let a = new_action(s, "create_image", sid);
                    Reply::json(
                        201,
                        json!({"image": {
                            "id": img, "type": "snapshot", "status": "creating", "name": null,
                            "description": desc, "image_size": null, "disk_size": 40,
                            "created": "2026-11-23T17:40+00:00",
                            "created_from": {"id": sid, "name": "srv"}, "labels": labels
                        }, "action": a}),
                    )
                }
                _ => Reply::error(404, "not_found", "no such action"),
            }
        }
        ("GET", ["actions", id]) => match id_of(id).and_then(|i| s.actions.get_mut(&i)) {
            Some(a) => {
                a.polls_left = a.polls_left.saturating_sub(1);
                Reply::json(200, json!({"action": action_json(a)}))
            }
            None => Reply::error(404, "not_found", "action not found"),
        },
        ("GET", ["images"]) => {
            let items = s
                .images
                .iter()
                .filter(|(_, _, _, l)| selected(l, q))
                .map(|(id, desc, sid, labels)| {
                    json!({"id": id, "type": "snapshot", "status": "available", "name": null,
                        "description": desc, "image_size": 1.5, "disk_size": 40,
                        "created": "2026-11-23T17:40:00+00:00",
                        "created_from": {"id": sid, "name": "srv"}, "labels": labels})
                })
                .collect();
            paginate(s, q, "images", items)
        }
        ("DELETE", ["images", id]) => {
            let before = s.images.len();
            let id = id_of(id).unwrap_or_default();
            s.images.retain(|i| i.0 != id);
            if s.images.len() < before {
                Reply::empty(204)
            } else {
                Reply::error(404, "not_found", "image not found")
            }
        }
        ("GET", ["ssh_keys"]) => {
            let fp = q
                .get("fingerprint")
                .map(|f| f.replace("%3A", ":").replace("%3a", ":"));
            let items = s
                .keys
                .iter()
                .filter(|k| fp.as_ref().is_none_or(|f| *f == k.2))
                .map(|(id, name, fp, pk)| {
                    json!({"id": id, "name": name, "fingerprint": fp, "public_key": pk,
                        "labels": {}, "created": "2026-11-23T17:00:00+00:00"})
                })
                .collect();
            paginate(s, q, "ssh_keys", items)
        }
        ("POST", ["ssh_keys"]) => {
            let name = input["name"].as_str().unwrap_or_default().to_string();
            let pk = input["public_key"].as_str().unwrap_or_default().to_string();
            let Some(fp) = spuff::provider::md5_fingerprint(&pk) else {
                return Reply::error(422, "invalid_input", "invalid public key");
            };
            if s.keys.iter().any(|k| k.1 == name || k.2 == fp) {
                return Reply::error(
                    409,
                    "uniqueness_error",
                    "SSH key with the same fingerprint already exists",
                );
            }
            s.next_id += 1;
            let id = s.next_id;
            s.keys.push((id, name.clone(), fp.clone(), pk.clone()));
            Reply::json(
                201,
                json!({"ssh_key": {"id": id, "name": name, "fingerprint": fp, "public_key": pk, "labels": {}, "created": "2026-11-23T17:00:00+00:00"}}),
            )
        }
        ("GET", ["server_types"]) => {
            let items = vec![
                json!({"id": 1, "name": "cx22", "description": "CX22", "cores": 2, "memory": 4.0, "disk": 40,
                    "deprecation": null, "storage_type": "local", "cpu_type": "shared", "architecture": "x86",
                    "prices": [{"location": "nbg1", "price_hourly": {"net": "0.006", "gross": "0.0071"}, "price_monthly": {"net": "3.79", "gross": "4.51"}}]}),
                json!({"id": 2, "name": "cx32", "description": "CX32", "cores": 4, "memory": 8.0, "disk": 80,
                    "deprecation": null, "storage_type": "local", "cpu_type": "shared", "architecture": "x86",
                    "prices": [{"location": "nbg1", "price_hourly": {"net": "0.01", "gross": "0.012"}, "price_monthly": {"net": "6.8", "gross": "8.09"}}]}),
            ];
            paginate(s, q, "server_types", items)
        }
        ("GET", ["locations"]) => {
            let items = ["nbg1", "fsn1", "hel1"]
                .iter()
                .enumerate()
                .map(|(i, n)| json!({"id": i + 1, "name": n, "description": format!("DC {n}"), "city": n, "country": "DE", "network_zone": "eu-central"}))
                .collect();
            paginate(s, q, "locations", items)
        }
        _ => Reply::error(404, "not_found", "no such endpoint"),
    }
}
