//! A fake DigitalOcean API v2 over real TLS, for the provider tests and bench.
//!
//! It follows the official contract where spuff depends on it: 202 for a
//! create, 201 for actions and key imports, 204 for deletes, pagination with
//! absolute `links.pages.next` URLs, 429 with the `ratelimit-*` (and
//! `retry-after`) headers, and droplets that go from `new` to `active` with
//! their IPs appearing only after a few polls (private listed before public,
//! as the real API does). Scripted [`Fault`]s add 5xx storms, slow, truncated
//! and dropped responses. It counts TCP connections, TLS handshakes and
//! requests so tests can prove that a whole `up` runs over one connection.
//!
//! The certificate is issued by a CA generated per server (rcgen); clients
//! trust it through `HttpConfig::extra_ca_pem`, so the real TLS path runs.
//!
//! A droplet can also *boot*: with a [`BootHook`] installed
//! ([`FakeCloud::on_create`]), each create hands the droplet (with its
//! user-data) to the hook, which stands a VM up (tests/fakevm starts a real
//! sshd from the user-data) and returns where it listens ([`BootedVm`]). The
//! API then reports the VM's public IPv4 and, once active, carries its SSH
//! port and user as the tags `spuff-ssh-port:PORT` and `spuff-ssh-user:USER`,
//! as a custom image would: spuff learns how to reach the VM from the API
//! alone.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub mod hetzner;

/// The token the fake accepts.
pub const TOKEN: &str = "fake-do-token-5ecret";

type Body = BoxBody<Bytes, std::io::Error>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a fault does to the request it matches.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer with this status, headers and body without doing anything.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// 429 as DigitalOcean sends it: `ratelimit-remaining: 0`, `ratelimit-reset`
    /// `reset_in` seconds from now, and `retry-after` when given.
    RateLimit {
        retry_after: Option<u64>,
        reset_in: u64,
    },
    /// Wait, then handle normally.
    Delay(Duration),
    /// Wait until the test calls `notify_one` on it, then handle normally: a
    /// request held in flight for as long as the test needs.
    Hold(Arc<tokio::sync::Notify>),
    /// Handle normally, but cut the body in half and abort the stream.
    Truncate,
    /// Handle normally (the droplet *is* created), then drop the response.
    ProcessThenDrop,
    /// Drop the request without handling it.
    Drop,
}

/// A scripted fault: applies to the next request whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Method,
    /// Matches when the request path (no query) equals this or, when it ends
    /// with `*`, starts with the part before it.
    pub path: String,
    pub kind: FaultKind,
}

impl Fault {
    pub fn new(method: Method, path: &str, kind: FaultKind) -> Self {
        Fault {
            method,
            path: path.to_string(),
            kind,
        }
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method == method
            && match self.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == self.path,
            }
    }
}

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

#[derive(Debug, Clone)]
struct FakeAction {
    id: u64,
    kind: String,
    droplet: u64,
    polls_left: u32,
    snapshot_name: Option<String>,
}

/// Counters, for assertions and bench figures.
#[derive(Debug, Clone, Default)]
pub struct FakeStats {
    pub tcp_connections: u64,
    pub tls_handshakes: u64,
    pub requests: u64,
    pub http2_requests: u64,
    pub gzip_responses: u64,
    /// The `User-Agent` of the last request.
    pub user_agent: String,
    /// `METHOD /path` of every request, in order.
    pub log: Vec<String>,
}

impl FakeStats {
    pub fn count(&self, what: &str) -> usize {
        self.log.iter().filter(|l| l.as_str() == what).count()
    }
}

/// Knobs and state.
#[derive(Debug)]
pub struct State {
    /// GETs of a droplet before it is active with IPs.
    pub ready_after_polls: u32,
    /// Wall time after creation before it is active (also required).
    pub ready_after: Duration,
    /// Polls of an action before it completes.
    pub action_polls: u32,
    /// Added before every response.
    pub latency: Duration,
    /// Largest page the fake hands out (the real API: 200).
    pub max_per_page: usize,
    /// Gzip bodies when the client accepts it.
    pub gzip: bool,
    pub faults: VecDeque<Fault>,
    pub droplets: BTreeMap<u64, FakeDroplet>,
    /// id, name, droplet id, created_at.
    pub snapshots: Vec<(u64, String, u64)>,
    /// id, name, fingerprint, public key.
    pub keys: Vec<(u64, String, String, String)>,
    /// Boots a VM for each created droplet ([`FakeCloud::on_create`]).
    pub boot: Option<BootHook>,
    actions: BTreeMap<u64, FakeAction>,
    next_id: u64,
    pub stats: FakeStats,
}

/// A running fake; stops when dropped.
pub struct FakeCloud {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT/v2/`
    pub base_url: String,
    /// The CA that issued the server certificate, PEM.
    pub ca_pem: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_material() -> (String, rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "spuff fake cloud test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    let chain = vec![cert.der().clone()];
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca_cert.pem(), config)
}

impl FakeCloud {
    /// Starts a fake on 127.0.0.1 with droplets ready after 3 polls.
    pub async fn start() -> FakeCloud {
        let (ca_pem, tls) = tls_material();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base_url = format!("https://127.0.0.1:{}/v2/", addr.port());
        let state = Arc::new(Mutex::new(State {
            ready_after_polls: 3,
            ready_after: Duration::ZERO,
            action_polls: 2,
            latency: Duration::ZERO,
            max_per_page: 200,
            gzip: true,
            faults: VecDeque::new(),
            droplets: BTreeMap::new(),
            snapshots: Vec::new(),
            keys: Vec::new(),
            boot: None,
            actions: BTreeMap::new(),
            next_id: 3_164_444,
            stats: FakeStats::default(),
        }));
        let st = state.clone();
        let origin = format!("https://127.0.0.1:{}", addr.port());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                lock(&st).stats.tcp_connections += 1;
                let acceptor = acceptor.clone();
                let st = st.clone();
                let origin = origin.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    lock(&st).stats.tls_handshakes += 1;
                    let service = hyper::service::service_fn(move |req| {
                        handle(st.clone(), origin.clone(), req)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeCloud {
            addr,
            base_url,
            ca_pem,
            state,
            task,
        }
    }

    /// Locks the state to change knobs or look inside.
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn stats(&self) -> FakeStats {
        self.state().stats.clone()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Adds a droplet directly (already active), as if made earlier.
    pub fn seed_droplet(&self, name: &str, tags: &[&str]) -> u64 {
        let mut s = self.state();
        s.next_id += 1;
        let id = s.next_id;
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

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Reply {
    status: u16,
    body: Option<Value>,
    raw: Option<String>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            raw: None,
            headers: vec![],
        }
    }
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            raw: None,
            headers: vec![],
        }
    }
    fn error(status: u16, id: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"id": id, "message": message, "request_id": "fake-req-1"}),
        )
    }
}

async fn handle(
    st: Arc<Mutex<State>>,
    origin: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = query(req.uri());
    let gzip_ok = req
        .headers()
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let (fault, latency) = {
        let mut s = lock(&st);
        s.stats.requests += 1;
        if req.version() == http::Version::HTTP_2 {
            s.stats.http2_requests += 1;
        }
        s.stats.log.push(format!("{method} {path}"));
        s.stats.user_agent = user_agent;
        let pos = s.faults.iter().position(|f| f.matches(&method, &path));
        (pos.and_then(|p| s.faults.remove(p)), s.latency)
    };
    let body_bytes = req.into_body().collect().await?.to_bytes();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut truncate = false;
    let mut drop_after = false;
    match &fault {
        Some(Fault {
            kind:
                FaultKind::Respond {
                    status,
                    headers,
                    body,
                },
            ..
        }) => {
            let r = Reply {
                status: *status,
                body: None,
                raw: Some(body.clone()),
                headers: headers.clone(),
            };
            return Ok(render(&st, r, gzip_ok, false));
        }
        Some(Fault {
            kind:
                FaultKind::RateLimit {
                    retry_after,
                    reset_in,
                },
            ..
        }) => {
            let mut r = Reply::json(
                429,
                json!({"id": "too_many_requests", "message": "API Rate limit exceeded."}),
            );
            r.headers.push(("ratelimit-limit".into(), "5000".into()));
            r.headers.push(("ratelimit-remaining".into(), "0".into()));
            r.headers.push((
                "ratelimit-reset".into(),
                (now_epoch() + reset_in).to_string(),
            ));
            if let Some(s) = retry_after {
                r.headers.push(("retry-after".into(), s.to_string()));
            }
            return Ok(render(&st, r, gzip_ok, false));
        }
        Some(Fault {
            kind: FaultKind::Delay(d),
            ..
        }) => tokio::time::sleep(*d).await,
        Some(Fault {
            kind: FaultKind::Hold(gate),
            ..
        }) => gate.notified().await,
        Some(Fault {
            kind: FaultKind::Drop,
            ..
        }) => return Err("fault: dropped".into()),
        Some(Fault {
            kind: FaultKind::Truncate,
            ..
        }) => truncate = true,
        Some(Fault {
            kind: FaultKind::ProcessThenDrop,
            ..
        }) => drop_after = true,
        None => {}
    }
    let reply = if !authorized {
        Reply::error(401, "unauthorized", "Unable to authenticate you")
    } else {
        let input: Value = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
        route(&mut lock(&st), &origin, &method, &path, &q, input)
    };
    if method == Method::POST && path == "/v2/droplets" && reply.status == 202 {
        boot(&st, &reply).await;
    }
    if drop_after {
        return Err("fault: processed, then dropped".into());
    }
    Ok(render(&st, reply, gzip_ok, truncate))
}

/// Runs the [`BootHook`], if any, for the droplet a create `reply` made.
async fn boot(st: &Arc<Mutex<State>>, reply: &Reply) {
    let Some(id) = reply
        .body
        .as_ref()
        .and_then(|b| b["droplet"]["id"].as_u64())
    else {
        return;
    };
    let (hook, droplet) = {
        let s = lock(st);
        match (s.boot.clone(), s.droplets.get(&id).cloned()) {
            (Some(hook), Some(droplet)) => (hook, droplet),
            _ => return,
        }
    };
    match tokio::task::spawn_blocking(move || (hook.0)(&droplet)).await {
        Ok(vm) => {
            if let Some(d) = lock(st).droplets.get_mut(&id) {
                d.booted = Some(vm);
            }
        }
        Err(e) => eprintln!("fake cloud: booting droplet {id} failed: {e}"),
    }
}

fn render(st: &Mutex<State>, r: Reply, gzip_ok: bool, truncate: bool) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-request-id", "fake-hdr-req");
    // Normal answers carry the rate-limit headers too; a fault may override them.
    let defaults = [
        ("ratelimit-limit", "5000".to_string()),
        ("ratelimit-remaining", "4999".to_string()),
        ("ratelimit-reset", (now_epoch() + 60).to_string()),
    ];
    for (k, v) in defaults {
        if !r.headers.iter().any(|(h, _)| h == k) {
            builder = builder.header(k, v);
        }
    }
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let mut bytes = match (r.raw, r.body) {
        (Some(raw), _) => raw.into_bytes(),
        (None, Some(v)) => v.to_string().into_bytes(),
        (None, None) => Vec::new(),
    };
    let gzip = gzip_ok && lock(st).gzip && bytes.len() > 64;
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(&bytes);
        bytes = enc.finish().unwrap_or_default();
        builder = builder.header("content-encoding", "gzip");
        lock(st).stats.gzip_responses += 1;
    }
    let body: Body = if truncate {
        builder = builder.header("content-length", bytes.len().to_string());
        let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(half)),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault: truncated",
            )),
        ];
        BodyExt::boxed(StreamBody::new(futures::stream::iter(frames)))
    } else {
        Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed()
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}

/// A page of `items` under `key` with DigitalOcean's links and meta.
fn paginate(
    s: &State,
    origin: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    key: &str,
    items: Vec<Value>,
) -> Reply {
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 200)
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
    let link = |p: usize| {
        let mut q2 = q.clone();
        q2.insert("page".into(), p.to_string());
        let qs: Vec<String> = q2.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{origin}{path}?{}", qs.join("&"))
    };
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("next".into(), json!(link(page + 1)));
        pages.insert("last".into(), json!(link(last)));
    }
    let mut body = json!({ key: slice, "meta": {"total": total} });
    // The real API omits `links` for short lists; keep `{}` otherwise.
    if total > per_page {
        body["links"] = json!({"pages": pages});
    } else {
        body["links"] = json!({});
    }
    Reply::json(200, body)
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

fn action_json(a: &FakeAction) -> Value {
    json!({
        "id": a.id,
        "status": if a.polls_left == 0 { "completed" } else { "in-progress" },
        "type": a.kind, "started_at": "2026-11-23T17:36:00Z",
        "completed_at": if a.polls_left == 0 { json!("2026-11-23T17:37:00Z") } else { Value::Null },
        "resource_id": a.droplet, "resource_type": "droplet", "region_slug": "fra1"
    })
}

fn route(
    s: &mut State,
    origin: &str,
    method: &Method,
    path: &str,
    q: &BTreeMap<String, String>,
    input: Value,
) -> Reply {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v2", "droplets"]) => {
            let Some(name) = input["name"].as_str() else {
                return Reply::error(422, "unprocessable_entity", "Name is required");
            };
            s.next_id += 1;
            let id = s.next_id;
            let d = FakeDroplet {
                id,
                name: name.to_string(),
                region: input["region"].as_str().unwrap_or_default().to_string(),
                size: input["size"].as_str().unwrap_or_default().to_string(),
                image: input["image"].clone(),
                tags: input["tags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                status: "new".into(),
                polls: 0,
                created: Instant::now(),
                user_data: input["user_data"].as_str().map(String::from),
                booted: None,
            };
            let body = json!({"droplet": droplet_json(&d), "links": {"actions": [{"id": id + 1000, "rel": "create", "href": format!("{origin}/v2/actions/{}", id + 1000)}]}});
            s.droplets.insert(id, d);
            Reply::json(202, body)
        }
        ("GET", ["v2", "droplets"]) => {
            let tag = q.get("tag_name");
            let items = s
                .droplets
                .values()
                .filter(|d| tag.is_none_or(|t| d.tags.contains(t)))
                .map(droplet_json)
                .collect();
            paginate(s, origin, path, q, "droplets", items)
        }
        ("GET", ["v2", "droplets", id]) => {
            let (after_polls, after) = (s.ready_after_polls, s.ready_after);
            match id
                .parse::<u64>()
                .ok()
                .and_then(|id| s.droplets.get_mut(&id))
            {
                Some(d) => {
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
                None => Reply::error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                ),
            }
        }
        ("DELETE", ["v2", "droplets", id]) => {
            match id.parse::<u64>().ok().and_then(|id| s.droplets.remove(&id)) {
                Some(_) => Reply::empty(204),
                None => Reply::error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                ),
            }
        }
        ("POST", ["v2", "droplets", id, "actions"]) => {
            let Some(droplet) = id
                .parse::<u64>()
                .ok()
                .filter(|id| s.droplets.contains_key(id))
            else {
                return Reply::error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                );
            };
            s.next_id += 1;
            let a = FakeAction {
                id: s.next_id,
                kind: input["type"].as_str().unwrap_or_default().to_string(),
                droplet,
                polls_left: s.action_polls,
                snapshot_name: input["name"].as_str().map(String::from),
            };
            let body = json!({"action": action_json(&a)});
            s.actions.insert(a.id, a);
            Reply::json(201, body)
        }
        ("GET", ["v2", "actions", id]) => {
            let Some(a) = id.parse::<u64>().ok().and_then(|id| s.actions.get_mut(&id)) else {
                return Reply::error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                );
            };
            a.polls_left = a.polls_left.saturating_sub(1);
            let a = a.clone();
            if a.polls_left == 0 {
                finish_action(s, &a);
            }
            Reply::json(200, json!({"action": action_json(&a)}))
        }
        ("GET", ["v2", "droplets", id, "snapshots"]) => {
            let id: u64 = id.parse().unwrap_or_default();
            let items = s
                .snapshots
                .iter()
                .filter(|(_, _, d)| *d == id)
                .map(|(sid, name, _)| json!({"id": sid, "name": name, "distribution": "Ubuntu", "slug": null, "public": false, "regions": ["fra1"], "created_at": "2026-11-23T17:40:00Z", "min_disk_size": 25, "size_gigabytes": 1.2, "type": "snapshot"}))
                .collect();
            paginate(s, origin, path, q, "snapshots", items)
        }
        ("GET", ["v2", "snapshots"]) => {
            // Like the real API, this endpoint sends ids as strings.
            let items = s
                .snapshots
                .iter()
                .map(|(sid, name, d)| json!({"id": sid.to_string(), "name": name, "regions": ["fra1"], "created_at": "2026-11-23T17:40:00Z", "resource_id": d.to_string(), "resource_type": "droplet", "min_disk_size": 25, "size_gigabytes": 1.2, "tags": []}))
                .collect();
            paginate(s, origin, path, q, "snapshots", items)
        }
        ("DELETE", ["v2", "snapshots", id]) => {
            let before = s.snapshots.len();
            s.snapshots.retain(|(sid, _, _)| sid.to_string() != *id);
            if s.snapshots.len() < before {
                Reply::empty(204)
            } else {
                Reply::error(
                    404,
                    "not_found",
                    "The resource you were accessing could not be found.",
                )
            }
        }
        ("GET", ["v2", "account", "keys"]) => {
            let items = s
                .keys
                .iter()
                .map(|(id, name, fp, pk)| json!({"id": id, "name": name, "fingerprint": fp, "public_key": pk}))
                .collect();
            paginate(s, origin, path, q, "ssh_keys", items)
        }
        ("POST", ["v2", "account", "keys"]) => {
            let pk = input["public_key"].as_str().unwrap_or_default().to_string();
            let Some(fp) = spuff::provider::md5_fingerprint(&pk) else {
                return Reply::error(
                    422,
                    "unprocessable_entity",
                    "Key invalid type, we support 'ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-nistp256'",
                );
            };
            if s.keys.iter().any(|k| k.2 == fp) {
                return Reply::error(
                    422,
                    "unprocessable_entity",
                    "SSH Key is already in use on your account",
                );
            }
            s.next_id += 1;
            let key = (
                s.next_id,
                input["name"].as_str().unwrap_or_default().to_string(),
                fp,
                pk,
            );
            let body = json!({"ssh_key": {"id": key.0, "name": key.1, "fingerprint": key.2, "public_key": key.3}});
            s.keys.push(key);
            Reply::json(201, body)
        }
        ("GET", ["v2", "sizes"]) => {
            let items = ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb", "c-4"]
                .iter()
                .enumerate()
                .map(|(i, slug)| json!({"slug": slug, "memory": 1024 << i, "vcpus": 1 + i, "disk": 25 * (i + 1), "transfer": 1.0, "price_monthly": 6.0 * (i + 1) as f64, "price_hourly": 0.009, "regions": ["fra1", "nyc3"], "available": true, "description": "Basic"}))
                .collect();
            paginate(s, origin, path, q, "sizes", items)
        }
        ("GET", ["v2", "regions"]) => {
            let items = [("nyc1", "New York 1", true), ("nyc3", "New York 3", true), ("fra1", "Frankfurt 1", true), ("sfo1", "San Francisco 1", false)]
                .iter()
                .map(|(slug, name, avail)| json!({"slug": slug, "name": name, "features": ["ipv6"], "available": avail, "sizes": ["s-1vcpu-1gb"]}))
                .collect();
            paginate(s, origin, path, q, "regions", items)
        }
        _ => Reply::error(
            404,
            "not_found",
            "The resource you were accessing could not be found.",
        ),
    }
}

fn finish_action(s: &mut State, a: &FakeAction) {
    match a.kind.as_str() {
        "snapshot" => {
            let name = a.snapshot_name.clone().unwrap_or_default();
            if !s
                .snapshots
                .iter()
                .any(|(_, n, d)| *n == name && *d == a.droplet)
            {
                s.next_id += 1;
                let id = s.next_id;
                s.snapshots.push((id, name, a.droplet));
            }
        }
        "power_off" | "shutdown" => {
            if let Some(d) = s.droplets.get_mut(&a.droplet) {
                d.status = "off".into();
            }
        }
        "power_on" => {
            if let Some(d) = s.droplets.get_mut(&a.droplet) {
                d.status = "active".into();
            }
        }
        _ => {}
    }
}
