//! The server every fake cloud API runs on: real TLS, scripted faults,
//! counting, rate limiting and paging, written once.
//!
//! A fake API ([`Api`]) gives only its routes, JSON shapes, error bodies and
//! header names; [`Server`] does the rest:
//!
//! - TLS with a certificate from a CA made per server (rcgen); clients trust
//!   it through `HttpConfig::extra_ca_pem`, so the real TLS path runs, with
//!   HTTP/2 by ALPN and HTTP/1.1 as the fallback;
//! - counts of TCP connections, TLS handshakes and requests ([`Stats`]), so
//!   tests can prove that a whole `up` runs over one connection;
//! - scripted [`Fault`]s: 5xx, 429 with the rate-limit headers, delayed,
//!   held, truncated and dropped responses, and requests that are processed
//!   before their answer is lost;
//! - rate limiting as the real APIs do it: after a 429, every request that
//!   comes before the announced reset is refused again (and counted), so a
//!   test proves that a client waited without measuring time itself;
//! - `ratelimit-*` headers on every answer, gzip when the client accepts it,
//!   and the page arithmetic ([`Paging`]) each API renders its own way.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;

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
    /// Answer with this 5xx status and the API's own `server_error` body
    /// without doing anything.
    ServerError(u16),
    /// Refuse with this status and the API's own error body for `code`
    /// (`bad_request`, `invalid_input`…) without doing anything.
    Refuse { status: u16, code: &'static str },
    /// 429 with the API's body, `ratelimit-remaining: 0`, `ratelimit-reset`
    /// `reset_in` seconds from now and `retry-after` when given; requests
    /// before then are refused too.
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
    /// Handle normally (the VM *is* created), then drop the response.
    ProcessThenDrop,
    /// Handle normally (the VM *is* created), then answer with this 5xx
    /// status, as a gateway that timed out waiting for the API does.
    ProcessThenServerError(u16),
    /// Drop the request without handling it.
    Drop,
}

impl FaultKind {
    /// [`FaultKind::Respond`] with `body` (a real one from tests/data) and
    /// no extra headers.
    pub fn respond(status: u16, body: &str) -> Self {
        FaultKind::Respond {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }
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

/// Counters, for assertions and bench figures.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub tcp_connections: u64,
    pub tls_handshakes: u64,
    /// Handshakes that failed (the client did not trust the certificate).
    pub tls_failures: u64,
    pub requests: u64,
    pub http2_requests: u64,
    pub gzip_responses: u64,
    /// 429s sent: the scripted ones, and one for every request that came
    /// back before the reset they announced.
    pub rate_limited: u64,
    /// The `User-Agent` of the last request.
    pub user_agent: String,
    /// `METHOD /path` of every request, in order.
    pub log: Vec<String>,
    /// `METHOD /path?query` of every request, in order, the query as sent.
    pub targets: Vec<String>,
    /// `METHOD /path` and JSON body of every request that had one, in order.
    pub bodies: Vec<(String, Value)>,
    /// Which token each request carried: `main`, `scoped` or `none/other`.
    pub tokens: Vec<String>,
}

impl Stats {
    /// Requests logged as exactly `what` (`GET /v2/droplets`).
    pub fn count(&self, what: &str) -> usize {
        self.log.iter().filter(|l| l.as_str() == what).count()
    }

    /// Requests whose `METHOD /path` starts with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.log.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

/// One request, as a route sees it.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    /// The path without the query (`/v2/droplets/7`).
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The JSON body (`null` when there is none).
    pub body: Value,
    /// `https://127.0.0.1:PORT`, for absolute links.
    pub origin: String,
}

impl Call {
    /// The path's segments below the API's root (`["droplets", "7"]`); a
    /// trailing slash (godo's page links have one) is ignored.
    pub fn segments<A: Api>(&self) -> Vec<&str> {
        self.path
            .strip_prefix(A::ROOT)
            .map_or_else(Vec::new, |rest| {
                rest.trim_end_matches('/').split('/').collect()
            })
    }

    /// The body's string field `key`, or `""`.
    pub fn text(&self, key: &str) -> String {
        self.body[key].as_str().unwrap_or_default().to_string()
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    /// Sent as is instead of `body` (a real body from tests/data).
    pub raw: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            raw: None,
            headers: vec![],
        }
    }

    pub fn raw(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: None,
            raw: Some(body),
            headers: vec![],
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            raw: None,
            headers: vec![],
        }
    }
}

/// Headers as names and values.
pub type Headers = &'static [(&'static str, &'static str)];

/// The JSON media type.
pub const JSON: &str = "application/json";

/// Work a route leaves to be done after it answered but before the answer
/// goes out, outside the lock (the DigitalOcean fake boots a VM): it runs on
/// a blocking thread and returns what to change in the state.
pub type Job<A> = Box<dyn FnOnce() -> Box<dyn FnOnce(&mut A) + Send> + Send>;

/// One fake cloud API: its routes, shapes and names; [`Server`] runs it.
pub trait Api: Default + Send + Sized + 'static {
    /// The token it accepts (`Authorization: Bearer …`).
    const TOKEN: &'static str;
    /// The versioned root of every path (`/v2/`).
    const ROOT: &'static str;
    /// `ratelimit-limit`, and seconds until one spent request is back
    /// (`ratelimit-reset` on an answer that is not a 429).
    const RATE_LIMIT: (u64, u64);
    /// Headers on every answer (content type, request id).
    const HEADERS: Headers;

    /// An error answer as the API words it; `code` is the API's own
    /// (`not_found`, `unauthorized`, `too_many_requests`…).
    fn error(status: u16, code: &str) -> Reply;

    /// The answer to an authorized request.
    fn route(&mut self, call: &Call, paging: &Paging) -> Reply;

    /// Work to do after `reply` and before it is sent (see [`Job`]).
    fn after(&mut self, _call: &Call, _reply: &Reply) -> Option<Job<Self>> {
        None
    }

    /// Whether a request is let in, for an API that takes no bearer token
    /// (EC2 checks a signature over the whole request); `None` leaves it to
    /// the bearer check.
    fn authorize(&mut self, _raw: &Raw<'_>) -> Option<bool> {
        None
    }

    /// The request as routes, faults and counters see it, for an API that
    /// is not REST (EC2: a form POST to `/` naming an action, seen as
    /// `GET /ec2/instances/…`); `None` takes it as it came.
    fn view(_raw: &Raw<'_>) -> Option<View> {
        None
    }
}

/// A request as it arrived.
pub struct Raw<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// The query as sent, not decoded.
    pub query: &'a str,
    /// `host:port`: the Host header in HTTP/1.1, `:authority` in HTTP/2.
    pub authority: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// A request as an [`Api::view`] presents it.
pub struct View {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
}

/// What every fake account keeps alike: ids, SSH keys, and actions that
/// complete after a few polls, with the knobs of their timing.
#[derive(Debug)]
pub struct Account {
    /// GETs of a VM before it is ready with its public IPv4.
    pub ready_after_polls: u32,
    /// Polls of an action before it completes.
    pub action_polls: u32,
    /// Listings a new VM stays out of: the real listings are eventually
    /// consistent and lag a create by seconds, while a GET of the VM by its
    /// id finds it at once.
    pub listing_lag: u32,
    pub keys: Vec<Key>,
    actions: BTreeMap<u64, Action>,
    /// Listings each VM made by a create has been through.
    listed: BTreeMap<u64, u32>,
    next_id: u64,
}

impl Default for Account {
    /// VMs ready after 3 polls, actions done after 2.
    fn default() -> Self {
        Account {
            ready_after_polls: 3,
            action_polls: 2,
            listing_lag: 0,
            keys: Vec::new(),
            actions: BTreeMap::new(),
            listed: BTreeMap::new(),
            next_id: 3_164_444,
        }
    }
}

/// An imported SSH key.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: u64,
    pub name: String,
    /// MD5, as both APIs show it.
    pub fingerprint: String,
    pub public_key: String,
}

/// An action (power off, snapshot…) on one resource.
#[derive(Debug, Clone)]
pub struct Action {
    pub id: u64,
    /// The API's name for it (`power_off`, `create_image`).
    pub kind: String,
    /// The id of the VM it acts on.
    pub resource: u64,
    /// What it makes, when it is named (a snapshot).
    pub name: Option<String>,
    pub polls_left: u32,
}

impl Action {
    pub fn done(&self) -> bool {
        self.polls_left == 0
    }
}

/// Why a key import is refused.
#[derive(Debug)]
pub enum Refused {
    /// Not an OpenSSH public key line.
    Invalid,
    /// A key with the same fingerprint is there.
    Taken,
}

impl Account {
    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Notes that a create made VM `id`, for [`Account::listing_lag`].
    pub fn created(&mut self, id: u64) {
        self.listed.insert(id, 0);
    }

    /// One listing of VMs: the new ones it leaves out, as they have not yet
    /// been through [`Account::listing_lag`] listings.
    pub fn unlisted(&mut self) -> BTreeSet<u64> {
        let lag = self.listing_lag;
        (self.listed.iter_mut())
            .filter(|(_, seen)| **seen < lag)
            .map(|(id, seen)| {
                *seen += 1;
                *id
            })
            .collect()
    }

    /// Starts an action that completes after [`Account::action_polls`] polls.
    pub fn start(&mut self, kind: &str, resource: u64, name: Option<String>) -> Action {
        let action = Action {
            id: self.new_id(),
            kind: kind.to_string(),
            resource,
            name,
            polls_left: self.action_polls,
        };
        self.actions.insert(action.id, action.clone());
        action
    }

    /// One poll of action `id`: a step closer to done.
    pub fn poll(&mut self, id: u64) -> Option<Action> {
        let action = self.actions.get_mut(&id)?;
        action.polls_left = action.polls_left.saturating_sub(1);
        Some(action.clone())
    }

    /// Imports `public_key` unless it is invalid or already there.
    pub fn import_key(&mut self, name: String, public_key: String) -> Result<Key, Refused> {
        let fingerprint = spuff::provider::md5_fingerprint(&public_key).ok_or(Refused::Invalid)?;
        if self.keys.iter().any(|k| k.fingerprint == fingerprint) {
            return Err(Refused::Taken);
        }
        let key = Key {
            id: self.new_id(),
            name,
            fingerprint,
            public_key,
        };
        self.keys.push(key.clone());
        Ok(key)
    }
}

/// A fake API's state with the server's knobs, faults and counters.
#[derive(Debug)]
pub struct Shared<A> {
    pub api: A,
    pub faults: VecDeque<Fault>,
    pub stats: Stats,
    /// Added before every response.
    pub latency: Duration,
    /// Gzip bodies when the client accepts it.
    pub gzip: bool,
    /// Largest page handed out, when below the API's own maximum.
    pub max_per_page: usize,
    /// Every page claims a next one: a server whose pages never end.
    pub endless_pages: bool,
    /// Every page's next link points back at itself: a server whose paging
    /// does not move forward.
    pub pages_loop_back: bool,
    /// `(name, field)`: in every list answer, the entries named `name` have
    /// `field` set to `null` (a half-written entry, as real APIs sometimes
    /// list during a create or delete).
    pub malformed: Vec<(String, String)>,
    /// Tokens scoped as providers scope them (a DigitalOcean token with
    /// only Droplet delete rights): each allows `method` on paths under
    /// `prefix`, nothing else.
    pub scoped_tokens: Vec<ScopedToken>,
    /// Until when requests are refused with 429, and the reset announced.
    limited: Option<(SystemTime, u64)>,
}

impl<A> Deref for Shared<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.api
    }
}

impl<A> DerefMut for Shared<A> {
    fn deref_mut(&mut self) -> &mut A {
        &mut self.api
    }
}

/// A token that allows one kind of request (see [`Shared::scoped_tokens`]).
#[derive(Debug, Clone)]
pub struct ScopedToken {
    pub token: String,
    pub method: http::Method,
    pub prefix: String,
}

/// Which slice of a list a request asked for.
#[derive(Debug)]
pub struct Paging {
    max_per_page: usize,
    endless: bool,
    loop_back: bool,
}

/// One page of a list, for the API to render.
#[derive(Debug)]
pub struct Page {
    /// 1-based.
    pub number: usize,
    pub per_page: usize,
    pub last: usize,
    /// The page the next link names, if any.
    pub next: Option<usize>,
    pub total: usize,
    pub items: Vec<Value>,
}

impl Paging {
    /// The page `query` asks for (`page`, `per_page`) out of `items`, for
    /// an API whose `per_page` is `default` when not given and at most `max`.
    pub fn page(
        &self,
        query: &BTreeMap<String, String>,
        (default, max): (usize, usize),
        items: Vec<Value>,
    ) -> Page {
        let number = |key: &str| query.get(key).and_then(|v| v.parse::<usize>().ok());
        let per_page = number("per_page")
            .unwrap_or(default)
            .clamp(1, max.min(self.max_per_page));
        let page = number("page").unwrap_or(1).max(1);
        let total = items.len();
        let last = if self.endless {
            page + 1
        } else {
            total.div_ceil(per_page).max(1)
        };
        let next = if self.loop_back {
            Some(page)
        } else {
            (page < last).then_some(page + 1)
        };
        Page {
            number: page,
            per_page,
            last,
            next,
            total,
            items: items
                .into_iter()
                .skip((page - 1).saturating_mul(per_page))
                .take(per_page)
                .collect(),
        }
    }
}

/// A running fake; stops when dropped.
pub struct Server<A: Api> {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT/v2/` (the API's root).
    pub base_url: String,
    /// The CA that issued the server certificate, PEM.
    pub ca_pem: String,
    state: Arc<Mutex<Shared<A>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<A: Api> Drop for Server<A> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<A: Api> Server<A> {
    /// Starts a fake on 127.0.0.1 with the API's default state.
    pub async fn start() -> Self {
        let (ca_pem, tls) = tls_material();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let origin = format!("https://127.0.0.1:{}", addr.port());
        let state = Arc::new(Mutex::new(Shared {
            api: A::default(),
            faults: VecDeque::new(),
            stats: Stats::default(),
            latency: Duration::ZERO,
            gzip: true,
            max_per_page: usize::MAX,
            endless_pages: false,
            pages_loop_back: false,
            malformed: Vec::new(),
            scoped_tokens: Vec::new(),
            limited: None,
        }));
        let st = state.clone();
        let base_url = format!("{origin}{}", A::ROOT);
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
                        lock(&st).stats.tls_failures += 1;
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
        Server {
            addr,
            base_url,
            ca_pem,
            state,
            task,
        }
    }

    /// Locks the state to change knobs or look inside.
    pub fn state(&self) -> MutexGuard<'_, Shared<A>> {
        lock(&self.state)
    }

    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Answers the next `method path` with `status` and `body` (a real one
    /// from tests/data) instead of handling it.
    pub fn serve(&self, method: Method, path: &str, status: u16, body: &str) {
        self.push_fault(Fault::new(method, path, FaultKind::respond(status, body)));
    }

    /// `https://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// A provider config pointing at this fake, trusting its CA, fast polling.
    pub fn config(&self) -> spuff::provider::ProviderConfig {
        let mut c = spuff::provider::ProviderConfig::new(A::TOKEN);
        c.base_url = Some(self.base_url.clone());
        c.http.extra_ca_pem = Some(self.ca_pem.clone());
        c.http.native_roots = false;
        c.http.proxy = spuff::provider::ProxyConfig::None;
        c.http.retry.min_delay = Duration::from_millis(20);
        c.http.retry.max_delay = Duration::from_millis(200);
        c.timeouts.poll_initial = Duration::from_millis(10);
        c.timeouts.poll_max = Duration::from_millis(50);
        c.timeouts.request = Duration::from_secs(5);
        // Nothing lags here unless a test says so (`Account::listing_lag`).
        c.timeouts.create_lookup = Duration::from_secs(1);
        c
    }
}

/// A real body from `tests/data/<dir>/<name>` (each listed in that folder's
/// SOURCES.tsv).
pub fn data(dir: &str, name: &str) -> String {
    let path = format!("{}/tests/data/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `ratelimit-*` headers: `limit` per window, `remaining` left, refilled
/// at `reset` (a Unix time).
pub fn rate_limit_headers(limit: u64, remaining: u64, reset: u64) -> Vec<(String, String)> {
    vec![
        ("ratelimit-limit".into(), limit.to_string()),
        ("ratelimit-remaining".into(), remaining.to_string()),
        ("ratelimit-reset".into(), reset.to_string()),
    ]
}

pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn lock<A>(m: &Mutex<Shared<A>>) -> MutexGuard<'_, Shared<A>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The query's parameters, percent-decoded as a real server reads them.
fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A CA made for this server (its PEM, for `HttpConfig::extra_ca_pem`) and
/// a TLS config for `localhost` and 127.0.0.1 signed by it, offering h2 and
/// HTTP/1.1; tests/local_image.rs serves its files with it too.
pub fn tls_material() -> (String, rustls::ServerConfig) {
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
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca_cert.pem(), config)
}

/// What happens once a request was handled.
enum Then {
    Answer { truncate: bool },
    Drop,
    ServerError(u16),
}

async fn handle<A: Api>(
    st: Arc<Mutex<Shared<A>>>,
    origin: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let gzip_ok = header("accept-encoding").contains("gzip");
    let bearer = header("authorization");
    let user_agent = header("user-agent");
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let raw = Raw {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        authority: parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get("host").and_then(|h| h.to_str().ok()))
            .unwrap_or_default(),
        headers: &parts.headers,
        body: &bytes,
    };
    let view = A::view(&raw);
    let (method, path, target) = match &view {
        Some(v) => {
            let query: Vec<String> = v.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let target = match query.is_empty() {
                true => v.path.clone(),
                false => format!("{}?{}", v.path, query.join("&")),
            };
            (v.method.clone(), v.path.clone(), target)
        }
        None => {
            let pq = parts.uri.path_and_query().map(|pq| pq.as_str().to_string());
            let path = parts.uri.path().to_string();
            (parts.method.clone(), path.clone(), pq.unwrap_or(path))
        }
    };
    let (fault, latency, authorized) = {
        let mut s = lock(&st);
        let signed = s.api.authorize(&raw);
        let main = signed.unwrap_or(bearer == format!("Bearer {}", A::TOKEN));
        let scoped = s.scoped_tokens.iter().any(|t| {
            bearer == format!("Bearer {}", t.token)
                && t.method == method
                && path.starts_with(&t.prefix)
        });
        s.stats.tokens.push(
            match (main, scoped) {
                (true, _) => "main",
                (_, true) => "scoped",
                _ => "none/other",
            }
            .to_string(),
        );
        s.stats.requests += 1;
        if parts.version == http::Version::HTTP_2 {
            s.stats.http2_requests += 1;
        }
        s.stats.log.push(format!("{method} {path}"));
        s.stats.targets.push(format!("{method} {target}"));
        s.stats.user_agent = user_agent;
        let pos = s.faults.iter().position(|f| f.matches(&method, &path));
        (
            pos.and_then(|p| s.faults.remove(p)),
            s.latency,
            main || scoped,
        )
    };
    let call = match view {
        Some(v) => Call {
            method,
            path,
            query: v.query,
            body: v.body,
            origin,
        },
        None => Call {
            method,
            path,
            query: query(&parts.uri),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            origin,
        },
    };
    if !call.body.is_null() {
        let what = format!("{} {}", call.method, call.path);
        lock(&st).stats.bodies.push((what, call.body.clone()));
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let answer = |reply| Ok(render(&st, reply, gzip_ok, false));
    let mut then = Then::Answer { truncate: false };
    match fault.map(|f| f.kind) {
        Some(FaultKind::Respond {
            status,
            headers,
            body,
        }) => {
            let mut reply = Reply::raw(status, body);
            reply.headers = headers;
            return answer(reply);
        }
        Some(FaultKind::ServerError(status)) => return answer(A::error(status, "server_error")),
        Some(FaultKind::Refuse { status, code }) => return answer(A::error(status, code)),
        Some(FaultKind::RateLimit {
            retry_after,
            reset_in,
        }) => return answer(rate_limit(&st, retry_after, reset_in)),
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::Hold(gate)) => gate.notified().await,
        Some(FaultKind::Drop) => return Err("fault: dropped".into()),
        Some(FaultKind::Truncate) => then = Then::Answer { truncate: true },
        Some(FaultKind::ProcessThenDrop) => then = Then::Drop,
        Some(FaultKind::ProcessThenServerError(status)) => then = Then::ServerError(status),
        None => {}
    }
    if let Some(refused) = still_limited(&st) {
        return answer(refused);
    }
    if !authorized {
        return answer(A::error(401, "unauthorized"));
    }
    let (reply, job) = {
        let mut s = lock(&st);
        let paging = Paging {
            max_per_page: s.max_per_page,
            endless: s.endless_pages,
            loop_back: s.pages_loop_back,
        };
        let mut reply = s.api.route(&call, &paging);
        malform(&mut reply, &s.malformed);
        let job = s.api.after(&call, &reply);
        (reply, job)
    };
    if let Some(job) = job {
        match tokio::task::spawn_blocking(job).await {
            Ok(apply) => apply(&mut lock(&st).api),
            Err(e) => eprintln!("fake cloud: after {} {}: {e}", call.method, call.path),
        }
    }
    match then {
        Then::Answer { truncate } => Ok(render(&st, reply, gzip_ok, truncate)),
        Then::Drop => Err("fault: processed, then dropped".into()),
        Then::ServerError(status) => answer(A::error(status, "server_error")),
    }
}

/// Sets the fields [`Shared::malformed`] names to `null` in the list
/// entries it names.
fn malform(reply: &mut Reply, malformed: &[(String, String)]) {
    let Some(Value::Object(body)) = &mut reply.body else {
        return;
    };
    let entries = body.values_mut().filter_map(Value::as_array_mut).flatten();
    for entry in entries.filter_map(Value::as_object_mut) {
        let fields: Vec<&String> = (malformed.iter())
            .filter(|(name, _)| entry.get("name").and_then(Value::as_str) == Some(name))
            .map(|(_, field)| field)
            .collect();
        for field in fields {
            entry.insert(field.clone(), Value::Null);
        }
    }
}

/// A scripted 429; requests before the reset it announces are refused too.
fn rate_limit<A: Api>(st: &Mutex<Shared<A>>, retry_after: Option<u64>, reset_in: u64) -> Reply {
    let now = SystemTime::now();
    let reset = now_epoch() + reset_in;
    // The client may honour either header: refuse only what is early for both.
    let mut until = UNIX_EPOCH + Duration::from_secs(reset);
    if let Some(secs) = retry_after {
        until = until.min(now + Duration::from_secs(secs));
    }
    lock(st).limited = Some((until, reset));
    let mut reply = too_many_requests(st, reset);
    if let Some(secs) = retry_after {
        reply.headers.push(("retry-after".into(), secs.to_string()));
    }
    reply
}

/// The 429 for a request that came before the announced reset, if it did.
fn still_limited<A: Api>(st: &Mutex<Shared<A>>) -> Option<Reply> {
    let (until, reset) = lock(st).limited?;
    (SystemTime::now() < until).then(|| too_many_requests(st, reset))
}

fn too_many_requests<A: Api>(st: &Mutex<Shared<A>>, reset: u64) -> Reply {
    lock(st).stats.rate_limited += 1;
    let mut reply = A::error(429, "too_many_requests");
    reply.headers = rate_limit_headers(A::RATE_LIMIT.0, 0, reset);
    reply
}

fn render<A: Api>(
    st: &Mutex<Shared<A>>,
    r: Reply,
    gzip_ok: bool,
    truncate: bool,
) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (k, v) in A::HEADERS {
        builder = builder.header(*k, *v);
    }
    // Normal answers carry the rate-limit headers too; a fault may override them.
    let (limit, refill) = A::RATE_LIMIT;
    for (k, v) in rate_limit_headers(limit, limit - 1, now_epoch() + refill) {
        if !r.headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(&k)) {
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
    if gzip_ok && lock(st).gzip && bytes.len() > 64 {
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
