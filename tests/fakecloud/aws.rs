//! A fake EC2 (Query API, XML answers) on the shared fake-cloud server.
//!
//! EC2 is not REST: every request is a form POST to `/` naming an action,
//! signed with SigV4, answered in XML. [`State::view`] shows each action as
//! the REST call it amounts to (`RunInstances` is `POST /ec2/instances`,
//! `DescribeInstances` of one id is `GET /ec2/instances/REGION/ID`), so the
//! server's faults, counters and paging work on it as on the other fakes
//! and the provider contract can run against it.
//!
//! What it keeps as EC2 does:
//! - a request whose signature does not verify against [`SECRET`] is
//!   refused (401 `AuthFailure`), as is one for another access key;
//! - regions come from each request's credential scope, and instances,
//!   key pairs, security groups and images live in their region;
//! - `ClientToken` makes `RunInstances` idempotent: a resend gives the same
//!   instance;
//! - an instance may stay unknown to `DescribeInstances` and
//!   `TerminateInstances` for a few calls after `RunInstances`
//!   ([`State::invisible_calls`]);
//! - throttling is 503 `RequestLimitExceeded`; a spot instance can be
//!   interrupted ([`State::interrupt`]);
//! - the shapes of the XML are those of the real bodies in
//!   tests/data/aws/ec2-xml.

use std::collections::{BTreeMap, BTreeSet};

use http::Method;
use serde_json::{Value, json};
use spuff::provider::aws::sigv4::{self, Request, Scope};

use super::digitalocean::BootedVm;
use super::server::{Account, Api, Call, Headers, Job, Paging, Raw, Reply, Server, View};

/// Boots a VM from an instance's user data (see [`Server::on_run`]).
#[derive(Clone)]
pub struct Boot(std::sync::Arc<dyn Fn(&str) -> BootedVm + Send + Sync>);

impl std::fmt::Debug for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Boot")
    }
}

/// The access key id the fake accepts.
pub const ACCESS_KEY: &str = "AKIDSPUFFEXAMPLE";
/// Its secret.
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// The address the fake's address echo answers.
pub const CALLER: &str = "203.0.113.7";

const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// An instance in the fake account.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub region: String,
    pub size: String,
    pub image: String,
    /// EC2's state code: 0 pending, 16 running, 48 terminated, 80 stopped.
    pub code: u16,
    pub tags: Vec<(String, String)>,
    pub zone: String,
    pub polls: u32,
    pub spot: bool,
    pub interrupted: bool,
    pub client_token: Option<String>,
    pub key_name: Option<String>,
    pub groups: Vec<String>,
    pub user_data: Option<String>,
    pub shutdown_behavior: Option<String>,
    pub max_price: Option<String>,
    /// Calls that still answer "not found" (eventual consistency).
    pub invisible: u32,
    /// Requests until a shutting-down instance is terminated.
    pub ending: u32,
    /// The VM a boot hook stood up for it: its address once running, and
    /// the `spuff-ssh-port`/`spuff-ssh-user` tags it then carries.
    pub booted: Option<BootedVm>,
}

impl Instance {
    fn state(&self) -> &'static str {
        match self.code {
            0 => "pending",
            16 => "running",
            32 => "shutting-down",
            48 => "terminated",
            64 => "stopping",
            _ => "stopped",
        }
    }

    /// Whether EC2's reads know it yet; each call that does not brings
    /// the moment closer.
    fn visible(&mut self) -> bool {
        if self.invisible > 0 {
            self.invisible -= 1;
            return false;
        }
        true
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn ip(&self, n: u64) -> Option<String> {
        (self.code == 16).then(|| match &self.booted {
            Some(vm) => vm.ipv4.to_string(),
            None => format!("198.51.100.{}", n % 250 + 1),
        })
    }

    /// The `<item>` of an instance, as in ec2-describe-instances.xml.
    fn xml(&self, n: u64) -> String {
        let mut tags = self.tags.clone();
        if let (16, Some(vm)) = (self.code, &self.booted) {
            tags.extend(vm.tags().iter().filter_map(|t| {
                let (k, v) = t.split_once(':')?;
                Some((k.to_string(), v.to_string()))
            }));
        }
        let tags = tag_set(&tags);
        let ip = self
            .ip(n)
            .map(|ip| format!("<ipAddress>{ip}</ipAddress>"))
            .unwrap_or_default();
        let reason = if self.interrupted {
            "<stateReason><code>Server.SpotInstanceTermination</code><message>Server.SpotInstanceTermination: Spot instance termination</message></stateReason>"
        } else {
            ""
        };
        let lifecycle = if self.spot {
            "<instanceLifecycle>spot</instanceLifecycle>"
        } else {
            ""
        };
        format!(
            "<item><instanceId>{id}</instanceId><imageId>{image}</imageId>\
             <instanceState><code>{code}</code><name>{state}</name></instanceState>\
             <privateDnsName/><dnsName/><reason/><keyName>{key}</keyName><amiLaunchIndex>0</amiLaunchIndex>\
             <instanceType>{size}</instanceType><launchTime>2026-12-01T10:00:00.000Z</launchTime>\
             <placement><availabilityZone>{zone}</availabilityZone><tenancy>default</tenancy></placement>\
             <privateIpAddress>10.0.0.{n8}</privateIpAddress>{ip}<architecture>x86_64</architecture>\
             <rootDeviceType>ebs</rootDeviceType>{lifecycle}{reason}{tags}</item>",
            id = self.id,
            image = self.image,
            code = self.code,
            state = self.state(),
            key = self.key_name.as_deref().map(esc).unwrap_or_default(),
            size = esc(&self.size),
            zone = self.zone,
            n8 = n % 250 + 1,
        )
    }
}

/// An AMI.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub region: String,
    pub name: String,
    pub owner: String,
    pub arch: String,
    pub created: String,
    pub state: String,
    pub polls_left: u32,
    pub snapshots: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// A key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub region: String,
    pub name: String,
    pub fingerprint: String,
    pub tags: Vec<(String, String)>,
}

/// A security group.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub region: String,
    pub name: String,
    pub tags: Vec<(String, String)>,
    /// The CIDRs let in on port 22.
    pub ssh_from: Vec<String>,
}

/// The fake account.
#[derive(Debug)]
pub struct State {
    pub account: Account,
    /// Instances by numeric id (the `i-…` id is derived from it).
    pub instances: BTreeMap<u64, Instance>,
    pub images: Vec<Image>,
    pub snapshots: BTreeSet<String>,
    pub key_pairs: Vec<KeyPair>,
    pub groups: Vec<Group>,
    /// Calls for which a new instance stays unknown to EC2's reads.
    pub invisible_calls: u32,
    /// Regions requests were signed for, in order.
    pub regions_seen: Vec<String>,
    /// Requests refused because their signature did not verify.
    pub bad_signatures: u32,
    /// Spot prices (zone, instance type, USD, timestamp).
    pub spot_prices: Vec<(String, String, String, String)>,
    /// Boots each new instance (see [`Server::on_run`]).
    pub boot: Option<Boot>,
}

impl Default for State {
    fn default() -> Self {
        let image = |id: &str, name: &str, owner: &str, arch: &str, created: &str| Image {
            id: id.into(),
            region: "us-east-1".into(),
            name: name.into(),
            owner: owner.into(),
            arch: arch.into(),
            created: created.into(),
            state: "available".into(),
            polls_left: 0,
            snapshots: vec![],
            tags: vec![],
        };
        let price = |zone: &str, price: &str, at: &str| {
            (zone.into(), "t3.small".into(), price.into(), at.into())
        };
        State {
            account: Account::default(),
            instances: BTreeMap::new(),
            images: vec![
                image(
                    "ami-0aaa000000000001",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240423",
                    "099720109477",
                    "x86_64",
                    "2024-04-23T10:00:00.000Z",
                ),
                image(
                    "ami-0aaa000000000002",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261115",
                    "099720109477",
                    "x86_64",
                    "2026-11-15T10:00:00.000Z",
                ),
                image(
                    "ami-0aaa000000000003",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20261115",
                    "099720109477",
                    "arm64",
                    "2026-11-15T10:00:00.000Z",
                ),
                // Someone else's image with a matching name: never chosen.
                image(
                    "ami-0bad000000000004",
                    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20991231",
                    "123456789012",
                    "x86_64",
                    "2099-12-31T10:00:00.000Z",
                ),
                image(
                    "ami-0ddd000000000005",
                    "debian-12-amd64-20261110-1234",
                    "136693071363",
                    "x86_64",
                    "2026-11-10T10:00:00.000Z",
                ),
            ],
            snapshots: BTreeSet::new(),
            key_pairs: vec![],
            groups: vec![],
            invisible_calls: 0,
            regions_seen: vec![],
            bad_signatures: 0,
            spot_prices: vec![
                price("us-east-1a", "0.007100", "2026-12-01T09:00:00.000Z"),
                price("us-east-1b", "0.009000", "2026-11-30T09:00:00.000Z"),
                price("us-east-1b", "0.006200", "2026-12-01T09:00:00.000Z"),
                price("us-east-1c", "0.008300", "2026-12-01T08:00:00.000Z"),
            ],
            boot: None,
        }
    }
}

impl Server<State> {
    /// Boots a VM for each instance `RunInstances` makes, from its user
    /// data: the instance is reached where that VM listens once running.
    pub fn on_run(&self, boot: impl Fn(&str) -> BootedVm + Send + Sync + 'static) {
        self.state().boot = Some(Boot(std::sync::Arc::new(boot)));
    }

    /// Adds a running instance in us-east-1 with these tags (and `Name`).
    pub fn seed_instance(&self, name: &str, tags: &[(&str, &str)]) -> String {
        let mut s = self.state();
        let n = s.account.new_id();
        let mut all = vec![("Name".to_string(), name.to_string())];
        all.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let instance = Instance {
            id: instance_id(n),
            region: "us-east-1".into(),
            size: "t3.small".into(),
            image: "ami-0aaa000000000002".into(),
            code: 16,
            tags: all,
            zone: "us-east-1a".into(),
            polls: u32::MAX,
            spot: false,
            interrupted: false,
            client_token: None,
            key_name: None,
            groups: vec![],
            user_data: None,
            shutdown_behavior: None,
            max_price: None,
            invisible: 0,
            ending: 0,
            booted: None,
        };
        s.instances.insert(n, instance);
        format!("us-east-1/{}", instance_id(n))
    }

    /// The instance with this `region/i-…` id.
    pub fn instance(&self, id: &str) -> Option<Instance> {
        let bare = id.rsplit('/').next().unwrap_or(id);
        let s = self.state();
        s.instances.values().find(|i| i.id == bare).cloned()
    }
}

impl State {
    /// EC2 takes a spot instance back.
    pub fn interrupt(&mut self, id: &str) {
        let bare = id.rsplit('/').next().unwrap_or(id);
        if let Some(i) = self.instances.values_mut().find(|i| i.id == bare) {
            i.code = 48;
            i.interrupted = true;
        }
    }

    /// Instances that are not terminated.
    pub fn live(&self) -> usize {
        self.instances.values().filter(|i| i.code != 48).count()
    }

    /// The instance, if EC2's reads know it yet (see [`Instance::visible`]).
    fn known(&mut self, region: &str, id: &str) -> Option<(u64, &mut Instance)> {
        let (n, i) = self.find(region, id)?;
        i.visible().then_some((n, i))
    }

    fn find(&mut self, region: &str, id: &str) -> Option<(u64, &mut Instance)> {
        self.instances
            .iter_mut()
            .find(|(_, i)| i.id == id && i.region == region)
            .map(|(n, i)| (*n, i))
    }
}

fn instance_id(n: u64) -> String {
    format!("i-{n:017x}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// EC2's answer for an instance it does not know (yet).
fn not_found(id: &str) -> Reply {
    refuse(
        400,
        "InvalidInstanceID.NotFound",
        &format!("The instance ID '{id}' does not exist"),
    )
}

/// An answer in EC2's envelope.
fn ok(action: &str, inner: &str) -> Reply {
    Reply::raw(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NS}\">\
             <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>{inner}</{action}Response>"
        ),
    )
}

/// An error as EC2 words it (error-ec2-describe-instances.xml).
fn refuse(status: u16, code: &str, message: &str) -> Reply {
    Reply::raw(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{}</Message></Error></Errors><RequestID>req-{code}</RequestID></Response>",
            esc(message)
        ),
    )
}

/// The form's `prefix.N` values, in order.
fn members(form: &Value, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|n| form[format!("{prefix}.{n}")].as_str().map(String::from))
        .collect()
}

/// The form's filters, by name.
fn filters(form: &Value) -> BTreeMap<String, Vec<String>> {
    (1..)
        .map_while(|n| {
            let name = form[format!("Filter.{n}.Name")].as_str()?;
            Some((
                name.to_string(),
                members(form, &format!("Filter.{n}.Value")),
            ))
        })
        .collect()
}

/// The tags of `TagSpecification.N` for `kind`.
fn tag_spec(form: &Value, kind: &str) -> Vec<(String, String)> {
    for n in 1.. {
        let Some(k) = form[format!("TagSpecification.{n}.ResourceType")].as_str() else {
            break;
        };
        if k != kind {
            continue;
        }
        return (1..)
            .map_while(|t| {
                let key = form[format!("TagSpecification.{n}.Tag.{t}.Key")].as_str()?;
                let value = form[format!("TagSpecification.{n}.Tag.{t}.Value")]
                    .as_str()
                    .unwrap_or_default();
                Some((key.to_string(), value.to_string()))
            })
            .collect();
    }
    vec![]
}

/// EC2's filter globbing: `*` any run, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(&p, &t)
}

fn tags_match(tags: &[(String, String)], filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(name, values)| {
        if name == "tag-key" {
            values.iter().any(|v| tags.iter().any(|(k, _)| k == v))
        } else if let Some(key) = name.strip_prefix("tag:") {
            tags.iter()
                .any(|(k, v)| k == key && values.iter().any(|w| glob(w, v)))
        } else {
            true
        }
    })
}

fn tag_set(tags: &[(String, String)]) -> String {
    let items: String = tags
        .iter()
        .map(|(k, v)| {
            format!(
                "<item><key>{}</key><value>{}</value></item>",
                esc(k),
                esc(v)
            )
        })
        .collect();
    format!("<tagSet>{items}</tagSet>")
}

/// The SHA-256 fingerprint EC2 shows for an imported ed25519 key, MD5 for
/// the others.
fn fingerprint(line: &str) -> Option<String> {
    use sha2::Digest;
    let mut parts = line.split_whitespace();
    let kind = parts.next()?;
    let raw = data_encoding::BASE64
        .decode(parts.next()?.as_bytes())
        .ok()?;
    Some(if kind == "ssh-ed25519" {
        data_encoding::BASE64.encode(&sha2::Sha256::digest(&raw))
    } else {
        spuff::provider::md5_fingerprint(line)?
    })
}

/// The signature check EC2 does: recompute it from the signed headers as
/// received and the secret, for the scope the request names.
fn verify(raw: &Raw<'_>) -> Option<String> {
    let header = |n: &str| raw.headers.get(n).and_then(|v| v.to_str().ok());
    let auth = header("authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let field = |name: &str| {
        rest.split([' ', ','])
            .find_map(|p| p.strip_prefix(name))
            .map(str::to_string)
    };
    let (credential, signed, given) = (
        field("Credential=")?,
        field("SignedHeaders=")?,
        field("Signature=")?,
    );
    let mut scope = credential.splitn(5, '/');
    let (key, date, region, service) = (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    if key != ACCESS_KEY || service != "ec2" || !signed.split(';').any(|h| h == "host") {
        return None;
    }
    let headers: Vec<(String, String)> = signed
        .split(';')
        .map(|n| {
            let value = match n {
                "host" => raw.authority,
                _ => header(n).unwrap_or_default(),
            };
            (n.to_string(), value.to_string())
        })
        .collect();
    let canonical = sigv4::canonical_request(
        &Request {
            method: raw.method.as_str(),
            path: raw.path,
            query: raw.query,
            headers: &headers,
            body: raw.body,
        },
        true,
    );
    let scope = Scope { region, service };
    let sts = sigv4::string_to_sign(
        header("x-amz-date")?,
        &sigv4::scope_text(date, scope),
        &canonical.text,
    );
    (sigv4::signature(SECRET, date, scope, &sts) == given).then(|| region.to_string())
}

/// The region a request was signed for (checked by `authorize` first).
fn region_of(raw: &Raw<'_>) -> String {
    let auth = raw
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_string()
}

impl Api for State {
    const TOKEN: &'static str = SECRET;
    const ROOT: &'static str = "/";
    const RATE_LIMIT: (u64, u64) = (100, 1);
    const HEADERS: Headers = &[("content-type", "text/xml;charset=UTF-8")];

    fn error(status: u16, code: &str) -> Reply {
        match (status, code) {
            (_, "not_found") => refuse(
                400,
                "InvalidInstanceID.NotFound",
                "The instance ID does not exist",
            ),
            (_, "unauthorized") => refuse(
                401,
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
            ),
            (_, "too_many_requests") => {
                refuse(503, "RequestLimitExceeded", "Request limit exceeded.")
            }
            (503, "server_error") => refuse(503, "Unavailable", "The server is overloaded"),
            (s, "server_error") => refuse(s, "InternalError", "An internal error has occurred"),
            (s, c) => refuse(s, c, "refused"),
        }
    }

    /// Boots the instance a `RunInstances` made, when a hook is installed.
    fn after(&mut self, call: &Call, reply: &Reply) -> Option<Job<Self>> {
        if call.body["Action"] != "RunInstances" || reply.status != 200 {
            return None;
        }
        let hook = self.boot.clone()?;
        let token = call.body["ClientToken"].as_str()?;
        let (&n, instance) = self
            .instances
            .iter()
            .find(|(_, i)| i.client_token.as_deref() == Some(token))?;
        if instance.booted.is_some() {
            return None;
        }
        let user_data = instance.user_data.clone().unwrap_or_default();
        Some(Box::new(move || {
            let vm = (hook.0)(&user_data);
            Box::new(move |s: &mut State| {
                if let Some(i) = s.instances.get_mut(&n) {
                    i.booted = Some(vm);
                }
            })
        }))
    }

    fn authorize(&mut self, raw: &Raw<'_>) -> Option<bool> {
        // The address echo is public, as checkip.amazonaws.com is.
        if raw.path == "/checkip" {
            return Some(true);
        }
        match verify(raw) {
            Some(region) => {
                self.regions_seen.push(region);
                Some(true)
            }
            None => {
                self.bad_signatures += 1;
                Some(false)
            }
        }
    }

    fn view(raw: &Raw<'_>) -> Option<View> {
        if raw.path == "/checkip" {
            return None;
        }
        let text = String::from_utf8_lossy(raw.body);
        let mut form = serde_json::Map::new();
        for (k, v) in text.split('&').filter_map(|kv| kv.split_once('=')) {
            form.insert(
                super::server::percent_decode(k),
                Value::String(super::server::percent_decode(v)),
            );
        }
        let region = region_of(raw);
        form.insert("_region".into(), Value::String(region.clone()));
        let form = Value::Object(form);
        let action = form["Action"].as_str().unwrap_or_default().to_string();
        let one = |key: &str| form[key].as_str().map(String::from);
        let mut query = BTreeMap::new();
        // Paging as the server renders it: MaxResults is `per_page`, the
        // next token a page number.
        if let Some(n) = one("MaxResults") {
            query.insert("per_page".to_string(), n);
        }
        if let Some(t) = one("NextToken") {
            query.insert("page".to_string(), t);
        }
        for (name, values) in filters(&form) {
            query.insert(name, values.join(","));
        }
        let (method, path) = match action.as_str() {
            "RunInstances" => (Method::POST, "/ec2/instances".to_string()),
            "DescribeInstances" => match one("InstanceId.1") {
                Some(id) => (Method::GET, format!("/ec2/instances/{region}/{id}")),
                None => (Method::GET, "/ec2/instances".to_string()),
            },
            "TerminateInstances" => (
                Method::DELETE,
                format!(
                    "/ec2/instances/{region}/{}",
                    one("InstanceId.1").unwrap_or_default()
                ),
            ),
            "StopInstances" | "StartInstances" => (
                Method::POST,
                format!(
                    "/ec2/instances/{region}/{}/actions/{}",
                    one("InstanceId.1").unwrap_or_default(),
                    if action == "StopInstances" {
                        "stop"
                    } else {
                        "start"
                    }
                ),
            ),
            "DescribeImages" => match one("ImageId.1") {
                Some(id) => (Method::GET, format!("/ec2/images/{region}/{id}")),
                None => (Method::GET, "/ec2/images".to_string()),
            },
            "CreateImage" => (Method::POST, "/ec2/images".to_string()),
            "DeregisterImage" => (
                Method::DELETE,
                format!(
                    "/ec2/images/{region}/{}",
                    one("ImageId").unwrap_or_default()
                ),
            ),
            "DeleteSnapshot" => (
                Method::DELETE,
                format!("/ec2/snapshots/{}", one("SnapshotId").unwrap_or_default()),
            ),
            "DescribeSecurityGroups" => (Method::GET, "/ec2/security-groups".to_string()),
            "CreateSecurityGroup" => (Method::POST, "/ec2/security-groups".to_string()),
            "AuthorizeSecurityGroupIngress" => (
                Method::POST,
                format!(
                    "/ec2/security-groups/{}/rules",
                    one("GroupId").unwrap_or_default()
                ),
            ),
            "DescribeKeyPairs" => (Method::GET, "/ec2/key-pairs".to_string()),
            "DeleteKeyPair" => (
                Method::DELETE,
                format!("/ec2/key-pairs/{}", one("KeyName").unwrap_or_default()),
            ),
            "DeleteSecurityGroup" => (
                Method::DELETE,
                format!(
                    "/ec2/security-groups/{}",
                    one("GroupId").unwrap_or_default()
                ),
            ),
            "ImportKeyPair" => (Method::POST, "/ec2/key-pairs".to_string()),
            "DescribeInstanceTypes" => (Method::GET, "/ec2/instance-types".to_string()),
            "DescribeRegions" => (Method::GET, "/ec2/regions".to_string()),
            "DescribeSpotPriceHistory" => (Method::GET, "/ec2/spot-prices".to_string()),
            other => (Method::POST, format!("/ec2/unknown/{other}")),
        };
        Some(View {
            method,
            path,
            query,
            body: form,
        })
    }

    fn route(&mut self, call: &Call, paging: &Paging) -> Reply {
        if call.path == "/checkip" {
            return Reply::raw(200, format!("{CALLER}\n"));
        }
        // Time passes: instances shutting down end.
        for i in self.instances.values_mut().filter(|i| i.code == 32) {
            i.ending = i.ending.saturating_sub(1);
            if i.ending == 0 {
                i.code = 48;
            }
        }
        let form = &call.body;
        let region = form["_region"].as_str().unwrap_or("us-east-1").to_string();
        let action = form["Action"].as_str().unwrap_or_default();
        let one = |key: &str| form[key].as_str().unwrap_or_default().to_string();
        match action {
            "RunInstances" => self.run(form, &region),
            "DescribeInstances" => self.describe(call, paging, &region),
            "TerminateInstances" => {
                let id = one("InstanceId.1");
                let Some((_, i)) = self.known(&region, &id) else {
                    return not_found(&id);
                };
                let previous = i.state();
                if i.code != 48 {
                    // Shutting down for a few requests, as EC2 takes a while.
                    i.code = 32;
                    i.ending = 3;
                }
                ok(
                    "TerminateInstances",
                    &format!(
                        "<instancesSet><item><instanceId>{id}</instanceId><currentState><code>32</code>\
                         <name>shutting-down</name></currentState><previousState><code>16</code>\
                         <name>{previous}</name></previousState></item></instancesSet>"
                    ),
                )
            }
            "StopInstances" | "StartInstances" => {
                let id = one("InstanceId.1");
                let stop = action == "StopInstances";
                let Some((_, i)) = self.find(&region, &id) else {
                    return not_found(&id);
                };
                if i.spot && stop {
                    return refuse(
                        400,
                        "UnsupportedOperation",
                        "You can't stop the Spot Instance because it is a one-time Spot Instance request.",
                    );
                }
                let previous = i.state();
                i.code = if stop { 80 } else { 16 };
                let current = i.state();
                ok(
                    action,
                    &format!(
                        "<instancesSet><item><instanceId>{id}</instanceId><currentState><code>{}</code>\
                         <name>{current}</name></currentState><previousState><code>16</code>\
                         <name>{previous}</name></previousState></item></instancesSet>",
                        i.code
                    ),
                )
            }
            "DescribeImages" => self.describe_images(form, &region),
            "CreateImage" => {
                let id = one("InstanceId");
                if self.find(&region, &id).is_none() {
                    return not_found(&id);
                }
                let name = one("Name");
                if self
                    .images
                    .iter()
                    .any(|i| i.name == name && i.region == region)
                {
                    return refuse(
                        400,
                        "InvalidAMIName.Duplicate",
                        &format!("AMI name {name} is already in use"),
                    );
                }
                let n = self.account.new_id();
                let snap = format!("snap-{n:017x}");
                self.snapshots.insert(snap.clone());
                let ami = format!("ami-{n:017x}");
                self.images.push(Image {
                    id: ami.clone(),
                    region,
                    name,
                    owner: "111122223333".into(),
                    arch: "x86_64".into(),
                    created: "2026-12-01T11:00:00.000Z".into(),
                    state: "pending".into(),
                    polls_left: self.account.action_polls,
                    snapshots: vec![snap],
                    tags: tag_spec(form, "image"),
                });
                ok("CreateImage", &format!("<imageId>{ami}</imageId>"))
            }
            "DeregisterImage" => {
                let id = one("ImageId");
                let before = self.images.len();
                self.images.retain(|i| !(i.id == id && i.region == region));
                if self.images.len() == before {
                    return refuse(
                        400,
                        "InvalidAMIID.NotFound",
                        &format!("The image id '[{id}]' does not exist"),
                    );
                }
                ok("DeregisterImage", "<return>true</return>")
            }
            "DeleteSnapshot" => {
                let id = one("SnapshotId");
                if !self.snapshots.remove(&id) {
                    return refuse(
                        400,
                        "InvalidSnapshot.NotFound",
                        &format!("The snapshot '{id}' does not exist."),
                    );
                }
                ok("DeleteSnapshot", "<return>true</return>")
            }
            "DescribeSecurityGroups" => {
                let f = filters(form);
                let items: String = self
                    .groups
                    .iter()
                    .filter(|g| g.region == region)
                    .filter(|g| f.get("group-name").is_none_or(|n| n.contains(&g.name)))
                    .filter(|g| tags_match(&g.tags, &f))
                    .map(|g| {
                        format!(
                            "<item><ownerId>111122223333</ownerId><groupId>{}</groupId><groupName>{}</groupName>\
                             <groupDescription>x</groupDescription><vpcId>vpc-1a2b3c4d</vpcId>{}</item>",
                            g.id,
                            g.name,
                            tag_set(&g.tags)
                        )
                    })
                    .collect();
                ok(
                    "DescribeSecurityGroups",
                    &format!("<securityGroupInfo>{items}</securityGroupInfo>"),
                )
            }
            "CreateSecurityGroup" => {
                let name = one("GroupName");
                if self
                    .groups
                    .iter()
                    .any(|g| g.name == name && g.region == region)
                {
                    return refuse(
                        400,
                        "InvalidGroup.Duplicate",
                        &format!(
                            "The security group '{name}' already exists for VPC 'vpc-1a2b3c4d'"
                        ),
                    );
                }
                let id = format!("sg-{:017x}", self.account.new_id());
                self.groups.push(Group {
                    id: id.clone(),
                    region,
                    name,
                    tags: tag_spec(form, "security-group"),
                    ssh_from: vec![],
                });
                ok(
                    "CreateSecurityGroup",
                    &format!("<return>true</return><groupId>{id}</groupId>"),
                )
            }
            "AuthorizeSecurityGroupIngress" => {
                let id = one("GroupId");
                let cidr = form["IpPermissions.1.IpRanges.1.CidrIp"]
                    .as_str()
                    .or(form["IpPermissions.1.Ipv6Ranges.1.CidrIpv6"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let Some(g) = self.groups.iter_mut().find(|g| g.id == id) else {
                    return refuse(
                        400,
                        "InvalidGroup.NotFound",
                        &format!("The security group '{id}' does not exist"),
                    );
                };
                if one("IpPermissions.1.FromPort") != "22" || cidr.is_empty() {
                    return refuse(400, "InvalidParameterValue", "bad permission");
                }
                if g.ssh_from.contains(&cidr) {
                    return refuse(
                        400,
                        "InvalidPermission.Duplicate",
                        &format!(
                            "the specified rule \"peer: {cidr}, TCP, from port: 22, to port: 22, ALLOW\" already exists"
                        ),
                    );
                }
                g.ssh_from.push(cidr);
                ok("AuthorizeSecurityGroupIngress", "<return>true</return>")
            }
            "DescribeKeyPairs" => {
                let f = filters(form);
                let items: String = self
                    .key_pairs
                    .iter()
                    .filter(|k| k.region == region && tags_match(&k.tags, &f))
                    .map(|k| {
                        format!(
                            "<item><keyPairId>key-{:x}</keyPairId><keyName>{}</keyName><keyFingerprint>{}</keyFingerprint></item>",
                            k.name.len(),
                            esc(&k.name),
                            k.fingerprint
                        )
                    })
                    .collect();
                ok("DescribeKeyPairs", &format!("<keySet>{items}</keySet>"))
            }
            "ImportKeyPair" => {
                let name = one("KeyName");
                let line = data_encoding::BASE64
                    .decode(one("PublicKeyMaterial").as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                let Some(fingerprint) = fingerprint(&line) else {
                    return refuse(
                        400,
                        "InvalidKey.Format",
                        "Key is not in valid OpenSSH public key format",
                    );
                };
                if self
                    .key_pairs
                    .iter()
                    .any(|k| k.name == name && k.region == region)
                {
                    return refuse(
                        400,
                        "InvalidKeyPair.Duplicate",
                        &format!("The keypair '{name}' already exists."),
                    );
                }
                self.key_pairs.push(KeyPair {
                    region,
                    name: name.clone(),
                    fingerprint: fingerprint.clone(),
                    tags: tag_spec(form, "key-pair"),
                });
                ok(
                    "ImportKeyPair",
                    &format!(
                        "<keyName>{}</keyName><keyFingerprint>{fingerprint}</keyFingerprint><keyPairId>key-0abc</keyPairId>",
                        esc(&name)
                    ),
                )
            }
            "DeleteKeyPair" => {
                let name = one("KeyName");
                self.key_pairs
                    .retain(|k| !(k.name == name && k.region == region));
                ok("DeleteKeyPair", "<return>true</return>")
            }
            "DeleteSecurityGroup" => {
                let id = one("GroupId");
                if !self.groups.iter().any(|g| g.id == id) {
                    return refuse(
                        400,
                        "InvalidGroup.NotFound",
                        &format!("The security group '{id}' does not exist"),
                    );
                }
                if self
                    .instances
                    .values()
                    .any(|i| i.code != 48 && i.groups.contains(&id))
                {
                    return refuse(
                        400,
                        "DependencyViolation",
                        &format!("resource {id} has a dependent object"),
                    );
                }
                self.groups.retain(|g| g.id != id);
                ok("DeleteSecurityGroup", "<return>true</return>")
            }
            "DescribeInstanceTypes" => {
                let types = [
                    ("t3.small", 2, 2048, "x86_64"),
                    ("t4g.small", 2, 2048, "arm64"),
                    ("m7i.large", 2, 8192, "x86_64"),
                ];
                let items: Vec<Value> = types
                    .iter()
                    .map(|(n, c, m, a)| {
                        Value::String(format!(
                            "<item><instanceType>{n}</instanceType><currentGeneration>true</currentGeneration>\
                             <processorInfo><supportedArchitectures><item>{a}</item></supportedArchitectures></processorInfo>\
                             <vCpuInfo><defaultVCpus>{c}</defaultVCpus></vCpuInfo><memoryInfo><sizeInMiB>{m}</sizeInMiB></memoryInfo></item>"
                        ))
                    })
                    .collect();
                let page = paging.page(&call.query, (100, 100), items);
                let body: String = page.items.iter().filter_map(Value::as_str).collect();
                let next = page
                    .next
                    .map(|n| format!("<nextToken>{n}</nextToken>"))
                    .unwrap_or_default();
                ok(
                    "DescribeInstanceTypes",
                    &format!("<instanceTypeSet>{body}</instanceTypeSet>{next}"),
                )
            }
            "DescribeRegions" => {
                let items: String = ["us-east-1", "eu-west-1", "eu-central-1"]
                    .iter()
                    .map(|r| format!("<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item>"))
                    .collect();
                ok(
                    "DescribeRegions",
                    &format!("<regionInfo>{items}</regionInfo>"),
                )
            }
            "DescribeSpotPriceHistory" => {
                let size = one("InstanceType.1");
                let items: String = self
                    .spot_prices
                    .iter()
                    .filter(|(zone, t, ..)| *t == size && zone.starts_with(&region))
                    .map(|(zone, t, p, at)| {
                        format!(
                            "<item><instanceType>{t}</instanceType><productDescription>Linux/UNIX</productDescription>\
                             <spotPrice>{p}</spotPrice><timestamp>{at}</timestamp><availabilityZone>{zone}</availabilityZone></item>"
                        )
                    })
                    .collect();
                ok(
                    "DescribeSpotPriceHistory",
                    &format!("<spotPriceHistorySet>{items}</spotPriceHistorySet><nextToken/>"),
                )
            }
            other => refuse(
                400,
                "InvalidAction",
                &format!("The action {other} is not valid for this web service."),
            ),
        }
    }
}

impl State {
    fn run(&mut self, form: &Value, region: &str) -> Reply {
        let one = |key: &str| form[key].as_str().map(String::from);
        let token = one("ClientToken");
        // A resend with the same token: the same instance, never a second.
        if let Some(t) = &token
            && let Some((n, i)) = self
                .instances
                .iter()
                .find(|(_, i)| i.client_token.as_deref() == Some(t))
        {
            let n = *n;
            let item = i.xml(n);
            return ok(
                "RunInstances",
                &format!(
                    "<reservationId>r-1</reservationId><ownerId>111122223333</ownerId><instancesSet>{item}</instancesSet>"
                ),
            );
        }
        let image = one("ImageId").unwrap_or_default();
        if !self
            .images
            .iter()
            .any(|i| i.id == image && i.region == region)
        {
            return refuse(
                400,
                "InvalidAMIID.NotFound",
                &format!("The image id '[{image}]' does not exist"),
            );
        }
        let groups = members(form, "NetworkInterface.1.SecurityGroupId");
        if groups
            .iter()
            .any(|g| !self.groups.iter().any(|x| &x.id == g))
        {
            return refuse(
                400,
                "InvalidGroup.NotFound",
                "The security group does not exist",
            );
        }
        let key_name = one("KeyName");
        if let Some(k) = &key_name
            && !self
                .key_pairs
                .iter()
                .any(|p| &p.name == k && p.region == region)
        {
            return refuse(
                400,
                "InvalidKeyPair.NotFound",
                &format!("The key pair '{k}' does not exist"),
            );
        }
        let user_data = one("UserData").map(|b| {
            let raw = data_encoding::BASE64
                .decode(b.as_bytes())
                .unwrap_or_default();
            String::from_utf8_lossy(&raw).into_owned()
        });
        if user_data.as_ref().is_some_and(|u| u.len() > 16 * 1024) {
            return refuse(
                400,
                "InvalidParameterValue",
                "User data is limited to 16384 bytes",
            );
        }
        let spot = one("InstanceMarketOptions.MarketType").as_deref() == Some("spot");
        let zone = one("Placement.AvailabilityZone").unwrap_or_else(|| format!("{region}a"));
        let n = self.account.new_id();
        let instance = Instance {
            id: instance_id(n),
            region: region.to_string(),
            size: one("InstanceType").unwrap_or_default(),
            image,
            code: 0,
            tags: tag_spec(form, "instance"),
            zone,
            polls: 0,
            spot,
            interrupted: false,
            client_token: token,
            key_name,
            groups,
            user_data,
            shutdown_behavior: one("InstanceInitiatedShutdownBehavior"),
            max_price: one("InstanceMarketOptions.SpotOptions.MaxPrice"),
            invisible: self.invisible_calls,
            ending: 0,
            booted: None,
        };
        let item = instance.xml(n);
        self.instances.insert(n, instance);
        self.account.created(n);
        ok(
            "RunInstances",
            &format!(
                "<reservationId>r-1</reservationId><ownerId>111122223333</ownerId><groupSet/><instancesSet>{item}</instancesSet>"
            ),
        )
    }

    fn describe(&mut self, call: &Call, paging: &Paging, region: &str) -> Reply {
        let form = &call.body;
        let ids = members(form, "InstanceId");
        if !ids.is_empty() {
            let ready = self.account.ready_after_polls;
            let mut items = String::new();
            for id in &ids {
                let Some((n, i)) = self.known(region, id) else {
                    return not_found(id);
                };
                i.polls = i.polls.saturating_add(1);
                if i.code == 0 && i.polls >= ready {
                    i.code = 16;
                }
                items.push_str(&i.xml(n));
            }
            return ok(
                "DescribeInstances",
                &format!(
                    "<reservationSet><item><reservationId>r-1</reservationId><ownerId>111122223333</ownerId><groupSet/><instancesSet>{items}</instancesSet></item></reservationSet>"
                ),
            );
        }
        let f = filters(form);
        let unlisted = self.account.unlisted();
        let reservations: Vec<Value> = self
            .instances
            .iter()
            .filter(|(n, i)| i.region == region && !unlisted.contains(n))
            .filter(|(_, i)| tags_match(&i.tags, &f))
            .map(|(n, i)| {
                Value::String(format!(
                    "<item><reservationId>r-{n:x}</reservationId><ownerId>111122223333</ownerId><groupSet/><instancesSet>{}</instancesSet></item>",
                    i.xml(*n)
                ))
            })
            .collect();
        let page = paging.page(&call.query, (1000, 1000), reservations);
        let body: String = page.items.iter().filter_map(Value::as_str).collect();
        let next = page
            .next
            .map(|n| format!("<nextToken>{n}</nextToken>"))
            .unwrap_or_default();
        ok(
            "DescribeInstances",
            &format!("<reservationSet>{body}</reservationSet>{next}"),
        )
    }

    fn describe_images(&mut self, form: &Value, region: &str) -> Reply {
        let f = filters(form);
        let ids = members(form, "ImageId");
        let owners = members(form, "Owner");
        let mut items = String::new();
        for image in self.images.iter_mut().filter(|i| i.region == region) {
            if !ids.is_empty() && !ids.contains(&image.id) {
                continue;
            }
            let owner_ok = owners.is_empty()
                || owners
                    .iter()
                    .any(|o| *o == image.owner || (o == "self" && image.owner == "111122223333"));
            let name_ok = f
                .get("name")
                .is_none_or(|p| p.iter().any(|p| glob(p, &image.name)));
            let arch_ok = f
                .get("architecture")
                .is_none_or(|a| a.contains(&image.arch));
            let state_ok = f.get("state").is_none_or(|s| s.contains(&image.state));
            if !(owner_ok && name_ok && arch_ok && state_ok && tags_match(&image.tags, &f)) {
                continue;
            }
            if !ids.is_empty() && image.state == "pending" {
                image.polls_left = image.polls_left.saturating_sub(1);
                if image.polls_left == 0 {
                    image.state = "available".into();
                }
            }
            let devices: String = image
                .snapshots
                .iter()
                .map(|s| {
                    format!(
                        "<item><deviceName>/dev/sda1</deviceName><ebs><snapshotId>{s}</snapshotId>\
                         <volumeSize>8</volumeSize><deleteOnTermination>true</deleteOnTermination></ebs></item>"
                    )
                })
                .collect();
            items.push_str(&format!(
                "<item><imageId>{}</imageId><imageLocation>{}/{}</imageLocation><imageState>{}</imageState>\
                 <imageOwnerId>{}</imageOwnerId><creationDate>{}</creationDate><isPublic>false</isPublic>\
                 <architecture>{}</architecture><imageType>machine</imageType><name>{}</name>\
                 <rootDeviceType>ebs</rootDeviceType><blockDeviceMapping>{devices}</blockDeviceMapping>{}</item>",
                image.id,
                image.owner,
                esc(&image.name),
                image.state,
                image.owner,
                image.created,
                image.arch,
                esc(&image.name),
                tag_set(&image.tags)
            ));
        }
        if !ids.is_empty() && items.is_empty() {
            return refuse(
                400,
                "InvalidAMIID.NotFound",
                &format!("The image id '[{}]' does not exist", ids.join(",")),
            );
        }
        ok("DescribeImages", &format!("<imagesSet>{items}</imagesSet>"))
    }
}

/// A provider config for this fake: its credentials, one region, SSH from
/// a fixed range (no address lookup).
pub fn config(fake: &Server<State>) -> spuff::provider::ProviderConfig {
    let mut config = fake.config();
    config.aws.credentials = Some(spuff::provider::aws::Credentials::new(
        ACCESS_KEY,
        config.token.clone(),
    ));
    config.aws.region = Some("us-east-1".into());
    config.aws.ssh_cidr = Some(format!("{CALLER}/32"));
    config
}

/// The instance `json!` summary tests print on failure.
pub fn summary(i: &Instance) -> Value {
    json!({"id": i.id, "state": i.state(), "tags": i.tags})
}
