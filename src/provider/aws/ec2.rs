//! EC2 as a spuff [`Provider`]: VMs, AMIs, key pairs, the SSH security
//! group, spot requests and snapshots, over the signed Query API.
//!
//! EC2 is regional where DigitalOcean and Hetzner are global: instances,
//! images, key pairs and security groups all live in one region and are
//! reached at that region's endpoint. So a spuff id for an EC2 VM carries
//! its region (`us-east-1/i-0abc…`), one client per region is kept, and the
//! things a VM needs there (its AMI, spuff's security group, the user's key
//! pair) are found or made once per region and remembered.
//!
//! What EC2 makes harder, and how this copes:
//! - Reads lag writes: an instance may be unknown to `DescribeInstances`
//!   for a moment after `RunInstances` said it exists. A miss right after a
//!   create is a "not yet" (see [`Rest::wait_ready`]); a destroy of a VM
//!   this process just made and EC2 does not know yet is tried again.
//! - A create is made idempotent by its `ClientToken` (the spuff id): a
//!   resend after a lost answer returns the first VM, never a second one.
//! - A VM that powers itself off ends: `InstanceInitiatedShutdownBehavior`
//!   is `terminate`, so the agent's idle stop ends the bill on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::client::Ec2Client;
use super::credentials::{AwsEnvironment, Credentials};
use super::query::Query;
use super::xml::{self, XmlResult};
use crate::provider::engine::{Poll, Rest};
use crate::provider::http::{ApiRequest, ErrorRules, HttpClient, RequestSigner, SignRequest};
use crate::provider::info::{PROVIDERS, ProviderInfo, ProviderType};
use crate::provider::{
    Auth, HttpConfig, HttpStats, ImageSpec, InstanceRequest, InstanceStatus, Listing,
    MANAGED_LABEL, Provider, ProviderConfig, ProviderError, ProviderFactory, ProviderInstance,
    ProviderResult, ProviderTimeouts, RegionInfo, Resource, ResourceKind, SPUFF_ID_LABEL, SizeInfo,
    Snapshot, SpotPrice, SshKeyInfo,
};

const NAME: &str = "aws";

/// The region used when neither spuff's config nor the AWS profile names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The security group spuff makes in each region: SSH in, nothing else.
pub const SECURITY_GROUP: &str = "spuff-ssh";

/// Where the caller's public address is asked, to let only it in over SSH.
pub const DEFAULT_ADDRESS_URL: &str = "https://checkip.amazonaws.com/";

/// The tag holding the VM a spuff snapshot was taken from.
const SOURCE_TAG: &str = "spuff-source";

/// Canonical's account, which publishes the Ubuntu AMIs.
const UBUNTU_OWNER: &str = "099720109477";
/// The Debian cloud team's account.
const DEBIAN_OWNER: &str = "136693071363";

/// The most pages one listing may take (a bound on a server that keeps
/// inventing next tokens).
const MAX_PAGES: usize = 1000;

/// How spuff uses an AWS account: which credentials, which regions, and who
/// may reach the VMs over SSH.
#[derive(Debug, Clone, Default)]
pub struct AwsConfig {
    /// The profile in `~/.aws/credentials` and `~/.aws/config` (default:
    /// `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Credentials to use instead of looking them up (SDK users who keep
    /// their own).
    pub credentials: Option<Credentials>,
    /// The region new VMs go to when a request names none, and snapshots
    /// and sizes are read from (default: the profile's, else
    /// [`DEFAULT_REGION`]).
    pub region: Option<String>,
    /// The regions `list` looks in (default: the default region); regions
    /// VMs are created in by this client are added.
    pub regions: Vec<String>,
    /// Who may connect to port 22 (`203.0.113.7/32`); default: this
    /// machine's public address as [`AwsConfig::address_url`] sees it, or
    /// anyone (with a warning) when that cannot be learned.
    pub ssh_cidr: Option<String>,
    /// Where to learn this machine's public address (default
    /// [`DEFAULT_ADDRESS_URL`]); it must answer the address as plain text.
    pub address_url: Option<String>,
}

/// Builds [`Ec2`] providers.
#[derive(Debug, Clone, Copy)]
pub struct Factory;

impl ProviderFactory for Factory {
    fn info(&self) -> &'static ProviderInfo {
        info()
    }

    fn create(&self, config: ProviderConfig) -> ProviderResult<Arc<dyn Provider>> {
        Ok(Arc::new(Ec2::new(config)?))
    }
}

fn info() -> &'static ProviderInfo {
    PROVIDERS
        .iter()
        .find(|p| p.kind == ProviderType::Aws)
        .unwrap_or(&PROVIDERS[0])
}

/// An AWS account's EC2, in every region it is used in.
#[derive(Debug)]
pub struct Ec2 {
    credentials: Credentials,
    endpoint: Option<String>,
    default_region: String,
    timeouts: ProviderTimeouts,
    http: HttpConfig,
    /// The polling and create-once logic every provider shares, over the
    /// default region's client.
    rest: Rest,
    clients: Mutex<HashMap<String, Ec2Client>>,
    /// Where `list` looks.
    regions: Mutex<BTreeSet<String>>,
    ssh_cidr: Option<String>,
    address_url: String,
    /// AMI ids by (region, architecture, spec).
    amis: tokio::sync::Mutex<HashMap<(String, String, String), String>>,
    /// spuff's security group id by region.
    groups: tokio::sync::Mutex<HashMap<String, String>>,
    /// Public keys given to [`Provider::ensure_ssh_key`], by the key name
    /// it answered, so a create in another region can import them there.
    keys: Mutex<BTreeMap<String, String>>,
    /// The key name each (region, key) has there.
    imported: tokio::sync::Mutex<HashMap<(String, String), String>>,
    /// Instances this client created, `region/id`: EC2 may not know them
    /// yet when a destroy follows at once.
    created: Mutex<HashSet<String>>,
    /// Who may reach port 22, learned once for every region.
    ssh_source: tokio::sync::OnceCell<String>,
}

impl Ec2 {
    /// A provider for the account in `config.aws` (credentials from there,
    /// else from the environment and `~/.aws`, as the AWS CLI finds them).
    /// `config.base_url` replaces every region's endpoint (a VPC endpoint,
    /// a proxy).
    ///
    /// # Errors
    /// [`ProviderError::InvalidConfig`] when no credentials can be found or
    /// a region name is not one.
    pub fn new(config: ProviderConfig) -> ProviderResult<Ec2> {
        let aws = &config.aws;
        let (credentials, env_region) = match &aws.credentials {
            Some(c) => (c.clone(), None),
            None => {
                let env = AwsEnvironment::load(aws.profile.as_deref())?;
                (env.credentials, env.region.map(|(r, _)| r))
            }
        };
        let default_region = aws
            .region
            .clone()
            .or(env_region)
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let endpoint = config.base_url.clone();
        let first = Ec2Client::new(
            &default_region,
            endpoint.as_deref(),
            credentials.clone(),
            &config.timeouts,
            &config.http,
        )?;
        let mut regions: BTreeSet<String> = aws.regions.iter().cloned().collect();
        if regions.is_empty() {
            regions.insert(default_region.clone());
        }
        for r in &regions {
            check_region(r)?;
        }
        if let Some(cidr) = &aws.ssh_cidr {
            check_cidr(cidr)?;
        }
        let rest = Rest {
            http: first.http().clone(),
            info: info(),
            timeouts: config.timeouts.clone(),
            retry: config.http.retry.clone(),
        };
        Ok(Ec2 {
            credentials,
            endpoint,
            timeouts: config.timeouts.clone(),
            http: config.http.clone(),
            rest,
            clients: Mutex::new(HashMap::from([(default_region.clone(), first)])),
            regions: Mutex::new(regions),
            default_region,
            ssh_cidr: aws.ssh_cidr.clone(),
            address_url: aws
                .address_url
                .clone()
                .unwrap_or_else(|| DEFAULT_ADDRESS_URL.to_string()),
            amis: Default::default(),
            groups: Default::default(),
            keys: Default::default(),
            imported: Default::default(),
            created: Default::default(),
            ssh_source: Default::default(),
        })
    }

    /// The region new VMs go to by default.
    pub fn default_region(&self) -> &str {
        &self.default_region
    }

    /// The region's client, made on first use.
    fn client(&self, region: &str) -> ProviderResult<Ec2Client> {
        let mut clients = lock(&self.clients);
        if let Some(c) = clients.get(region) {
            return Ok(c.clone());
        }
        let c = Ec2Client::new(
            region,
            self.endpoint.as_deref(),
            self.credentials.clone(),
            &self.timeouts,
            &self.http,
        )?;
        clients.insert(region.to_string(), c.clone());
        Ok(c)
    }

    async fn call(
        &self,
        region: &str,
        query: &Query,
        idempotent: bool,
        resource: Option<(&'static str, &str)>,
    ) -> ProviderResult<bytes::Bytes> {
        self.client(region)?.call(query, idempotent, resource).await
    }

    /// Every page of a `Describe*` call, read by `read`.
    async fn describe_all<T>(
        &self,
        region: &str,
        query: Query,
        read: fn(&[u8]) -> xml::Page<T>,
    ) -> ProviderResult<Vec<T>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let q = query.clone().set_opt("NextToken", token.as_deref());
            let body = self.call(region, &q, true, None).await?;
            let (items, next) = parse(query.action(), read(&body))?;
            out.extend(items);
            match next {
                Some(t) if seen.len() < MAX_PAGES && seen.insert(t.clone()) => token = Some(t),
                Some(_) => {
                    return Err(ProviderError::InvalidResponse {
                        provider: NAME,
                        operation: query.action().to_string(),
                        message: format!(
                            "the pages loop back to one already read (after {} pages); not following",
                            seen.len()
                        ),
                    });
                }
                None => return Ok(out),
            }
        }
    }

    /// The instances in `region` matching `query`'s filters, as spuff sees
    /// them: terminated ones are gone, unless a spot interruption ended
    /// them (the user is told so, until EC2 forgets them).
    async fn instances(&self, region: &str, query: Query) -> ProviderResult<Vec<ProviderInstance>> {
        let all = self
            .describe_all(region, query, xml::describe_instances)
            .await?;
        Ok(all
            .into_iter()
            .filter(|i| i.state != "terminated" || i.spot_interrupted())
            .map(|i| to_instance(region, i))
            .collect())
    }

    /// spuff's instances in `region`, or those carrying `spuff_id`.
    async fn list_region(
        &self,
        region: &str,
        spuff_id: Option<&str>,
    ) -> ProviderResult<Vec<ProviderInstance>> {
        let tag = format!("tag:{SPUFF_ID_LABEL}");
        let q = Query::new("DescribeInstances").set("MaxResults", 1000);
        let q = match spuff_id {
            Some(id) => q.filters(&[(&tag, &[id])]),
            None => q.filters(&[("tag-key", &[MANAGED_LABEL])]),
        };
        self.instances(region, q).await
    }

    fn listed_regions(&self) -> Vec<String> {
        lock(&self.regions).iter().cloned().collect()
    }

    /// The AMI to boot for `spec` on `size` in `region`: a given id, or the
    /// newest Ubuntu or Debian image from its publisher, looked up once.
    async fn image(&self, region: &str, spec: &ImageSpec, size: &str) -> ProviderResult<String> {
        let (owner, pattern) = match spec {
            ImageSpec::Custom(id) | ImageSpec::Snapshot(id) => {
                let (r, ami) = split_id(id, &self.default_region);
                if r != region {
                    return Err(invalid(
                        "image",
                        format!(
                            "{ami} is in {r}, not {region}: AMIs are regional; create the VM in {r} or copy the image"
                        ),
                    ));
                }
                check_resource_id(ami, "ami-", "image")?;
                return Ok(ami.to_string());
            }
            ImageSpec::Ubuntu(v) | ImageSpec::Debian(v)
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
            {
                return Err(invalid("image", format!("`{v}` is not a release number")));
            }
            ImageSpec::Ubuntu(v) => {
                let arch = if arm64(size) { "arm64" } else { "amd64" };
                (
                    UBUNTU_OWNER,
                    format!("ubuntu/images/*/ubuntu-*-{v}-{arch}-server-*"),
                )
            }
            ImageSpec::Debian(v) => {
                let arch = if arm64(size) { "arm64" } else { "amd64" };
                let major = v.split('.').next().unwrap_or(v);
                (DEBIAN_OWNER, format!("debian-{major}-{arch}-*"))
            }
        };
        let arch = if arm64(size) { "arm64" } else { "x86_64" };
        let key = (region.to_string(), arch.to_string(), pattern.clone());
        let mut cache = self.amis.lock().await;
        if let Some(id) = cache.get(&key) {
            return Ok(id.clone());
        }
        let q = Query::new("DescribeImages")
            .set("Owner.1", owner)
            .filters(&[
                ("name", &[&pattern]),
                ("state", &["available"]),
                ("architecture", &[arch]),
            ]);
        let images = self.describe_all(region, q, xml::describe_images).await?;
        // ISO 8601 times in one format sort as text.
        let newest = images
            .into_iter()
            .max_by(|a, b| a.creation_date.cmp(&b.creation_date))
            .ok_or_else(|| {
                invalid(
                    "image",
                    format!(
                        "no {spec} image for {arch} in {region} (owner {owner}, name {pattern}); pass an AMI id with --image"
                    ),
                )
            })?;
        cache.insert(key, newest.id.clone());
        Ok(newest.id)
    }

    /// spuff's security group in `region`, made if missing, letting the
    /// caller in on port 22.
    async fn security_group(&self, region: &str) -> ProviderResult<String> {
        let mut groups = self.groups.lock().await;
        if let Some(id) = groups.get(region) {
            return Ok(id.clone());
        }
        let find = || async {
            let q = Query::new("DescribeSecurityGroups").filters(&[
                ("group-name", &[SECURITY_GROUP]),
                ("tag-key", &[MANAGED_LABEL]),
            ]);
            let found = self
                .describe_all(region, q, xml::describe_security_groups)
                .await?;
            Ok::<_, ProviderError>(found.into_iter().next().map(|g| g.id))
        };
        let id = match find().await? {
            Some(id) => id,
            None => {
                let q = Query::new("CreateSecurityGroup")
                    .set("GroupName", SECURITY_GROUP)
                    .set(
                        "GroupDescription",
                        "spuff: SSH to spuff's VMs (made and removed by spuff)",
                    )
                    .set("TagSpecification.1.ResourceType", "security-group")
                    .set("TagSpecification.1.Tag.1.Key", MANAGED_LABEL)
                    .set("TagSpecification.1.Tag.1.Value", "");
                match self.call(region, &q, false, None).await {
                    Ok(body) => parse("CreateSecurityGroup", xml::created_security_group(&body))?,
                    // Another spuff made it meanwhile.
                    Err(e) if api_code(&e) == Some("InvalidGroup.Duplicate") => {
                        find().await?.ok_or(e)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let cidr = self
            .ssh_source
            .get_or_init(|| self.learn_ssh_source())
            .await
            .clone();
        let range = if cidr.contains(':') {
            "IpPermissions.1.Ipv6Ranges.1.CidrIpv6"
        } else {
            "IpPermissions.1.IpRanges.1.CidrIp"
        };
        let q = Query::new("AuthorizeSecurityGroupIngress")
            .set("GroupId", &id)
            .set("IpPermissions.1.IpProtocol", "tcp")
            .set("IpPermissions.1.FromPort", 22)
            .set("IpPermissions.1.ToPort", 22)
            .set(range, &cidr);
        match self
            .call(region, &q, true, Some(("security group", &id)))
            .await
        {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some("InvalidPermission.Duplicate") => {}
            Err(e) => return Err(e),
        }
        groups.insert(region.to_string(), id.clone());
        Ok(id)
    }

    /// Who may reach port 22: the configured range, else this machine's
    /// public address, else anyone (said loudly).
    async fn learn_ssh_source(&self) -> String {
        if let Some(cidr) = &self.ssh_cidr {
            return cidr.clone();
        }
        match self.public_address().await {
            Ok(IpAddr::V4(ip)) => format!("{ip}/32"),
            Ok(IpAddr::V6(ip)) => format!("{ip}/128"),
            Err(why) => {
                tracing::warn!(
                    "cannot learn this machine's public address ({why}); spuff's security group lets \
                     anyone reach port 22 (host keys are still pinned). `spuff config set aws_ssh_cidr \
                     ADDRESS/32` narrows it"
                );
                "0.0.0.0/0".to_string()
            }
        }
    }

    async fn public_address(&self) -> Result<IpAddr, String> {
        let client = HttpClient::new(
            NAME,
            &self.address_url,
            &Auth::Signer(Arc::new(Anonymous)),
            &self.timeouts,
            &self.http,
            ErrorRules::Custom(|answer| ProviderError::Api {
                provider: NAME,
                operation: answer.operation.to_string(),
                status: answer.status,
                code: None,
                message: crate::util::summarize_body(answer.body),
                request_id: None,
            }),
        )
        .map_err(|e| e.to_string())?;
        let resp = client
            // The URL as given: as a base it would gain a trailing slash.
            .send(ApiRequest::get(self.address_url.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&resp.body);
        text.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{} did not answer an address", self.address_url))
    }

    /// The key pair for `key` in `region`: a key given to `ensure_ssh_key`
    /// is imported there if needed; anything else is taken as the name of
    /// a key pair the user made.
    async fn key_in(&self, region: &str, key: &str) -> ProviderResult<String> {
        let public = lock(&self.keys).get(key).cloned();
        let Some(public) = public else {
            return Ok(key.to_string());
        };
        let cache_key = (region.to_string(), key.to_string());
        if let Some(name) = self.imported.lock().await.get(&cache_key) {
            return Ok(name.clone());
        }
        let info = self.ensure_key_in(region, key, &public).await?;
        self.imported
            .lock()
            .await
            .insert(cache_key, info.name.clone());
        Ok(info.name)
    }

    /// Imports `public_key` into `region` unless a key pair with its
    /// fingerprint is there already.
    async fn ensure_key_in(
        &self,
        region: &str,
        name: &str,
        public_key: &str,
    ) -> ProviderResult<SshKeyInfo> {
        let fingerprints = key_fingerprints(public_key).ok_or_else(|| {
            invalid(
                "ssh_key",
                "not an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)",
            )
        })?;
        let find = || async {
            let keys = self.key_pairs(region).await?;
            Ok::<_, ProviderError>(keys.into_iter().find(|k| {
                fingerprints
                    .iter()
                    .any(|f| same_fingerprint(f, &k.fingerprint))
            }))
        };
        if let Some(k) = find().await? {
            return Ok(k);
        }
        let material = data_encoding::BASE64.encode(public_key.trim().as_bytes());
        let import = |key_name: String| {
            Query::new("ImportKeyPair")
                .set("KeyName", key_name)
                .set("PublicKeyMaterial", &material)
                .set("TagSpecification.1.ResourceType", "key-pair")
                .set("TagSpecification.1.Tag.1.Key", MANAGED_LABEL)
                .set("TagSpecification.1.Tag.1.Value", "")
        };
        let imported = match self
            .call(region, &import(name.to_string()), false, None)
            .await
        {
            Ok(body) => body,
            Err(e) if e.is_retryable() || api_code(&e) == Some("InvalidKeyPair.Duplicate") => {
                // Imported meanwhile (or by the lost try), or the name is
                // another key's: look again, then use a name of its own.
                if let Some(k) = find().await? {
                    return Ok(k);
                }
                if e.is_retryable() {
                    return Err(e);
                }
                let unique = format!("{name}-{}", &fingerprints[0].replace(':', "")[..8]);
                self.call(region, &import(unique), false, None).await?
            }
            Err(e) => return Err(e),
        };
        let k = parse("ImportKeyPair", xml::imported_key_pair(&imported))?;
        Ok(SshKeyInfo {
            id: k.name.clone(),
            fingerprint: k.fingerprint.unwrap_or_default(),
            name: k.name,
        })
    }

    async fn key_pairs(&self, region: &str) -> ProviderResult<Vec<SshKeyInfo>> {
        let body = self
            .call(region, &Query::new("DescribeKeyPairs"), true, None)
            .await?;
        Ok(parse("DescribeKeyPairs", xml::describe_key_pairs(&body))?
            .into_iter()
            .map(|k| SshKeyInfo {
                id: k.name.clone(),
                fingerprint: k.fingerprint.unwrap_or_default(),
                name: k.name,
            })
            .collect())
    }

    /// The current spot prices of `size` in `region`'s zones (Linux),
    /// cheapest first.
    async fn prices(&self, region: &str, size: &str) -> ProviderResult<Vec<SpotPrice>> {
        let now = super::sigv4::amz_date(std::time::SystemTime::now());
        // `yyyymmddThhmmssZ` → ISO 8601, which the API wants.
        let iso = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &now[0..4],
            &now[4..6],
            &now[6..8],
            &now[9..11],
            &now[11..13],
            &now[13..15]
        );
        let q = Query::new("DescribeSpotPriceHistory")
            .set("InstanceType.1", size)
            .set("ProductDescription.1", "Linux/UNIX")
            .set("StartTime", iso);
        let history = self
            .describe_all(region, q, xml::spot_price_history)
            .await?;
        // The newest price per zone.
        let mut newest: BTreeMap<String, xml::SpotPrice> = BTreeMap::new();
        for p in history.into_iter().filter(|p| p.instance_type == size) {
            match newest.get(&p.zone) {
                Some(seen) if seen.timestamp >= p.timestamp => {}
                _ => {
                    newest.insert(p.zone.clone(), p);
                }
            }
        }
        let mut prices: Vec<SpotPrice> = newest
            .into_values()
            .map(|p| SpotPrice {
                region: region.to_string(),
                zone: p.zone,
                size: p.instance_type,
                usd_per_hour: p.price,
                at: p.timestamp,
            })
            .collect();
        prices.sort_by(|a, b| a.usd_per_hour.total_cmp(&b.usd_per_hour));
        Ok(prices)
    }

    /// The RunInstances request for `request` in its region.
    async fn run_query(&self, request: &InstanceRequest) -> ProviderResult<Query> {
        let region = &request.region;
        if request.name.is_empty() {
            return Err(invalid("name", "an instance needs a name"));
        }
        if request.size.is_empty()
            || !request
                .size
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(invalid(
                "size",
                format!("`{}` is not an instance type", request.size),
            ));
        }
        if request.spuff_id.is_empty()
            || request.spuff_id.len() > 64
            || !request.spuff_id.is_ascii()
        {
            return Err(invalid(
                "spuff_id",
                "a create needs a spuff id of at most 64 ASCII characters (its client token)",
            ));
        }
        let mut tags: Vec<(String, String)> = vec![
            ("Name".into(), request.name.clone()),
            (MANAGED_LABEL.into(), String::new()),
            (SPUFF_ID_LABEL.into(), request.spuff_id.clone()),
        ];
        for (k, v) in &request.labels {
            if k.is_empty()
                || k.len() > 128
                || v.len() > 256
                || k.to_ascii_lowercase().starts_with("aws:")
                || k == "Name"
            {
                return Err(invalid(
                    "labels",
                    format!(
                        "`{k}={v}`: EC2 tags take keys of 1-128 characters (not `aws:…` or `Name`) and values of at most 256"
                    ),
                ));
            }
            tags.push((k.clone(), v.clone()));
        }
        if let Some(ud) = &request.user_data {
            let limit = info().user_data_limit;
            if ud.len() > limit {
                return Err(invalid(
                    "user_data",
                    format!("{} bytes; EC2 accepts at most {limit}", ud.len()),
                ));
            }
        }
        let image = self.image(region, &request.image, &request.size).await?;
        let group = self.security_group(region).await?;
        let mut q = Query::new("RunInstances")
            .set("ImageId", image)
            .set("InstanceType", &request.size)
            .set("MinCount", 1)
            .set("MaxCount", 1)
            // EC2 returns the instance it made for this token, not a second one.
            .set("ClientToken", &request.spuff_id)
            // The agent's idle power-off ends the bill.
            .set("InstanceInitiatedShutdownBehavior", "terminate")
            .set("NetworkInterface.1.DeviceIndex", 0)
            .set("NetworkInterface.1.AssociatePublicIpAddress", "true")
            .set("NetworkInterface.1.SecurityGroupId.1", group);
        if let Some(key) = request.ssh_keys.first() {
            q = q.set("KeyName", self.key_in(region, key).await?);
        }
        if let Some(ud) = &request.user_data {
            q = q.set("UserData", data_encoding::BASE64.encode(ud.as_bytes()));
        }
        let mut kinds = vec!["instance", "volume"];
        if let Some(spot) = &request.spot {
            kinds.push("spot-instances-request");
            q = q
                .set("InstanceMarketOptions.MarketType", "spot")
                .set(
                    "InstanceMarketOptions.SpotOptions.SpotInstanceType",
                    "one-time",
                )
                .set(
                    "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
                    "terminate",
                )
                .set_opt(
                    "InstanceMarketOptions.SpotOptions.MaxPrice",
                    spot.max_price.as_deref(),
                );
            if spot.cheapest_zone {
                let prices = self.prices(region, &request.size).await?;
                let cheapest = prices.first().ok_or_else(|| {
                    invalid(
                        "size",
                        format!(
                            "EC2 has no spot price for {} in {region}: it is not offered as spot there",
                            request.size
                        ),
                    )
                })?;
                q = q.set("Placement.AvailabilityZone", &cheapest.zone);
            }
        }
        for (n, kind) in kinds.iter().enumerate() {
            let prefix = format!("TagSpecification.{}", n + 1);
            q = q.set(format!("{prefix}.ResourceType"), kind);
            for (i, (k, v)) in tags.iter().enumerate() {
                q = q
                    .set(format!("{prefix}.Tag.{}.Key", i + 1), k)
                    .set(format!("{prefix}.Tag.{}.Value", i + 1), v);
            }
        }
        Ok(q)
    }

    /// Stops or starts an instance and waits for it to get there.
    async fn power(&self, id: &str, on: bool) -> ProviderResult<()> {
        let (region, instance) = self.instance_id(id)?;
        let action = if on {
            "StartInstances"
        } else {
            "StopInstances"
        };
        let q = Query::new(action).list("InstanceId", [instance]);
        let body = self.call(&region, &q, true, Some(("instance", id))).await?;
        let changes = parse(action, xml::state_changes(&body))?;
        if !changes.iter().any(|(i, ..)| i == instance) {
            return Err(ProviderError::InvalidResponse {
                provider: NAME,
                operation: action.to_string(),
                message: format!("the answer does not name {instance}"),
            });
        }
        let want = if on {
            InstanceStatus::Active
        } else {
            InstanceStatus::Off
        };
        let what = format!("{} instance {id}", if on { "start" } else { "stop" });
        self.rest
            .poll(&what, self.timeouts.action, || async {
                match self.get_instance(id).await? {
                    Some(vm) if vm.status == want => Ok(Poll::Done(())),
                    Some(vm) => Ok(Poll::Pending(vm.describe_state())),
                    None => Err(ProviderError::NotFound {
                        provider: NAME,
                        resource: "instance",
                        id: id.to_string(),
                    }),
                }
            })
            .await
    }

    /// What spuff made in `region`: its instances (not those already
    /// ending), images, security groups and key pairs, all by spuff's tag.
    async fn region_resources(&self, region: &str) -> ProviderResult<Vec<Resource>> {
        let managed: &[(&str, &[&str])] = &[("tag-key", &[MANAGED_LABEL])];
        let resource = |kind, id: &str, name: Option<String>| Resource {
            kind,
            id: format!("{region}/{id}"),
            name: name.unwrap_or_default(),
            region: Some(region.to_string()),
        };
        let (vms, images, groups, keys) = futures::try_join!(
            self.list_region(region, None),
            self.describe_all(
                region,
                Query::new("DescribeImages")
                    .set("Owner.1", "self")
                    .filters(managed),
                xml::describe_images,
            ),
            self.describe_all(
                region,
                Query::new("DescribeSecurityGroups").filters(managed),
                xml::describe_security_groups,
            ),
            async {
                let q = Query::new("DescribeKeyPairs").filters(managed);
                let body = self.call(region, &q, true, None).await?;
                parse("DescribeKeyPairs", xml::describe_key_pairs(&body))
            },
        )?;
        let mut out: Vec<Resource> = vms
            .into_iter()
            .filter(|vm| vm.status != InstanceStatus::Deleting)
            .map(|vm| Resource {
                kind: ResourceKind::Vm,
                name: vm.name,
                region: Some(region.to_string()),
                id: vm.id,
            })
            .collect();
        out.extend(
            images
                .into_iter()
                .map(|i| resource(ResourceKind::Snapshot, &i.id, i.name)),
        );
        out.extend(
            groups
                .into_iter()
                .map(|g| resource(ResourceKind::SecurityGroup, &g.id, g.name)),
        );
        out.extend(
            keys.into_iter()
                .map(|k| resource(ResourceKind::SshKey, &k.name, Some(k.name.clone()))),
        );
        Ok(out)
    }

    /// Deletes spuff's security group `group` in `region`, waiting while a
    /// VM that is still ending holds it.
    async fn delete_group(&self, region: &str, group: &str) -> ProviderResult<()> {
        if !group.starts_with("sg-") {
            return Err(invalid(
                "id",
                format!("`{group}` is not a security group id"),
            ));
        }
        let q = Query::new("DeleteSecurityGroup").set("GroupId", group);
        let what = format!("deleting security group {group} in {region}");
        self.rest
            .poll(&what, self.timeouts.action, || async {
                match self
                    .call(region, &q, true, Some(("security group", group)))
                    .await
                {
                    Ok(_) | Err(ProviderError::NotFound { .. }) => Ok(Poll::Done(())),
                    Err(e) if api_code(&e) == Some("DependencyViolation") => {
                        Ok(Poll::Pending("still used by a VM that is ending".into()))
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        self.groups.lock().await.remove(region);
        Ok(())
    }

    /// `region/i-…` (or a bare `i-…`, in the default region), checked.
    fn instance_id<'a>(&self, id: &'a str) -> ProviderResult<(String, &'a str)> {
        let (region, instance) = match id.split_once('/') {
            Some((r, i)) => (r.to_string(), i),
            None => (self.default_region.clone(), id),
        };
        check_region(&region)?;
        check_resource_id(instance, "i-", "instance")?;
        Ok((region, instance))
    }
}

#[async_trait::async_trait]
impl Provider for Ec2 {
    fn arch_of_size(&self, size: &str) -> Option<crate::agent_bin::Arch> {
        Some(if arm64(size) {
            crate::agent_bin::Arch::Aarch64
        } else {
            crate::agent_bin::Arch::X86_64
        })
    }

    fn info(&self) -> &'static ProviderInfo {
        info()
    }

    async fn create_instance(&self, request: &InstanceRequest) -> ProviderResult<ProviderInstance> {
        check_region(&request.region)?;
        if request.disk_gb.is_some() {
            return Err(self.unsupported(
                "a disk size of its own (pick an instance type, the AMI's disk is used)",
            ));
        }
        let region = request.region.as_str();
        let query = self.run_query(request).await?;
        let query = &query;
        let create = || async move {
            let body = self.call(region, query, true, None).await?;
            let made = parse("RunInstances", xml::run_instances(&body))?;
            let vm = made
                .into_iter()
                .next()
                .map(|i| to_instance(region, i))
                .ok_or_else(|| ProviderError::InvalidResponse {
                    provider: NAME,
                    operation: "RunInstances".into(),
                    message: "no instance in the answer".into(),
                })?;
            lock(&self.created).insert(vm.id.clone());
            Ok(vm)
        };
        let find = || self.list_region(region, Some(&request.spuff_id));
        let vm = self.rest.create_then_find(request, create, find).await?;
        lock(&self.regions).insert(region.to_string());
        Ok(vm)
    }

    async fn destroy_instance(&self, id: &str) -> ProviderResult<()> {
        let (region, instance) = self.instance_id(id)?;
        let q = Query::new("TerminateInstances").list("InstanceId", [instance]);
        let just_made = lock(&self.created).contains(id);
        let terminate = || async {
            match self.call(&region, &q, true, Some(("instance", id))).await {
                Ok(_) => Ok(Poll::Done(())),
                // EC2 may not know yet an instance it just made: not gone.
                Err(ProviderError::NotFound { .. }) if just_made => {
                    Ok(Poll::Pending("not known to EC2 yet".into()))
                }
                Err(ProviderError::NotFound { .. }) => Ok(Poll::Done(())),
                Err(e) => Err(e),
            }
        };
        let what = format!("terminating instance {id}");
        self.rest
            .poll(&what, self.timeouts.create_lookup, terminate)
            .await?;
        lock(&self.created).remove(id);
        Ok(())
    }

    async fn get_instance(&self, id: &str) -> ProviderResult<Option<ProviderInstance>> {
        let (region, instance) = self.instance_id(id)?;
        let q = Query::new("DescribeInstances").list("InstanceId", [instance]);
        match self.instances(&region, q).await {
            Ok(found) => Ok(found.into_iter().next()),
            Err(ProviderError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_instances(&self) -> ProviderResult<Listing> {
        let regions = self.listed_regions();
        let lists =
            futures::future::try_join_all(regions.iter().map(|r| self.list_region(r, None)))
                .await?;
        Ok(Listing {
            instances: lists.into_iter().flatten().collect(),
            skipped: Vec::new(),
        })
    }

    async fn find_by_spuff_id(&self, spuff_id: &str) -> ProviderResult<Vec<ProviderInstance>> {
        let regions = self.listed_regions();
        let lists = futures::future::try_join_all(
            regions.iter().map(|r| self.list_region(r, Some(spuff_id))),
        )
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn wait_ready(&self, id: &str) -> ProviderResult<ProviderInstance> {
        // None of these becomes running by itself.
        let stuck = [
            InstanceStatus::Off,
            InstanceStatus::Deleting,
            InstanceStatus::Interrupted,
        ];
        self.rest
            .wait_ready(id, "instance", &stuck, || self.get_instance(id))
            .await
    }

    async fn create_snapshot(&self, instance_id: &str, name: &str) -> ProviderResult<Snapshot> {
        let (region, instance) = self.instance_id(instance_id)?;
        let image_name = ami_name(name);
        let tag = |q: Query, n: usize, kind: &str| {
            let p = format!("TagSpecification.{n}");
            q.set(format!("{p}.ResourceType"), kind)
                .set(format!("{p}.Tag.1.Key"), MANAGED_LABEL)
                .set(format!("{p}.Tag.1.Value"), "")
                .set(format!("{p}.Tag.2.Key"), SOURCE_TAG)
                .set(format!("{p}.Tag.2.Value"), instance_id)
        };
        let q = Query::new("CreateImage")
            .set("InstanceId", instance)
            .set("Name", &image_name)
            .set("Description", format!("spuff snapshot of {instance_id}"))
            // The VM keeps running; the image is crash-consistent, as a
            // live snapshot on the other clouds.
            .set("NoReboot", "true");
        let q = tag(tag(q, 1, "image"), 2, "snapshot");
        let body = self
            .call(&region, &q, false, Some(("instance", instance_id)))
            .await?;
        let ami = parse("CreateImage", xml::created_image(&body))?;
        let what = format!("snapshot `{name}` of instance {instance_id}");
        let image = self
            .rest
            .poll(&what, self.timeouts.action, || async {
                let q = Query::new("DescribeImages").set("ImageId.1", &ami);
                let images = match self.describe_all(&region, q, xml::describe_images).await {
                    Err(ProviderError::NotFound { .. }) => Vec::new(),
                    other => other?,
                };
                match images.into_iter().next() {
                    Some(i) if i.state.as_deref() == Some("available") => Ok(Poll::Done(i)),
                    Some(i) if i.state.as_deref() == Some("failed") => {
                        Err(ProviderError::ActionFailed {
                            provider: NAME,
                            operation: what.clone(),
                            action_id: ami.clone(),
                            status: "failed".into(),
                        })
                    }
                    Some(i) => Ok(Poll::Pending(format!(
                        "image {} {}",
                        i.id,
                        i.state.unwrap_or_default()
                    ))),
                    None => Ok(Poll::Pending("not listed yet".into())),
                }
            })
            .await?;
        Ok(to_snapshot(&region, image, name))
    }

    async fn list_snapshots(&self) -> ProviderResult<Vec<Snapshot>> {
        let regions = self.listed_regions();
        let lists = futures::future::try_join_all(regions.iter().map(|r| async move {
            let q = Query::new("DescribeImages")
                .set("Owner.1", "self")
                .filters(&[("tag-key", &[MANAGED_LABEL])]);
            let images = self.describe_all(r, q, xml::describe_images).await?;
            Ok::<_, ProviderError>(
                images
                    .into_iter()
                    .map(|i| {
                        let name = i.name.clone().unwrap_or_default();
                        to_snapshot(r, i, &name)
                    })
                    .collect::<Vec<_>>(),
            )
        }))
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    async fn delete_snapshot(&self, id: &str) -> ProviderResult<()> {
        let (region, ami) = split_id(id, &self.default_region);
        check_region(region)?;
        check_resource_id(ami, "ami-", "image")?;
        let q = Query::new("DescribeImages").set("ImageId.1", ami);
        let images = match self.describe_all(region, q, xml::describe_images).await {
            Err(ProviderError::NotFound { .. }) => return Ok(()),
            other => other?,
        };
        let Some(image) = images.into_iter().next() else {
            return Ok(());
        };
        let q = Query::new("DeregisterImage").set("ImageId", ami);
        match self.call(region, &q, true, Some(("image", id))).await {
            Ok(_) | Err(ProviderError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        // The image's EBS snapshots bill on their own until deleted.
        for snap in &image.snapshot_ids {
            let q = Query::new("DeleteSnapshot").set("SnapshotId", snap);
            match self.call(region, &q, true, Some(("snapshot", snap))).await {
                Ok(_) | Err(ProviderError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn power_off(&self, id: &str) -> ProviderResult<()> {
        self.power(id, false).await
    }

    async fn power_on(&self, id: &str) -> ProviderResult<()> {
        self.power(id, true).await
    }

    async fn list_ssh_keys(&self) -> ProviderResult<Vec<SshKeyInfo>> {
        self.key_pairs(&self.default_region).await
    }

    async fn ensure_ssh_key(&self, name: &str, public_key: &str) -> ProviderResult<SshKeyInfo> {
        let info = self
            .ensure_key_in(&self.default_region, name, public_key)
            .await?;
        lock(&self.keys).insert(info.name.clone(), public_key.trim().to_string());
        self.imported.lock().await.insert(
            (self.default_region.clone(), info.name.clone()),
            info.name.clone(),
        );
        Ok(info)
    }

    async fn list_sizes(&self) -> ProviderResult<Vec<SizeInfo>> {
        let region = &self.default_region;
        let q = Query::new("DescribeInstanceTypes").set("MaxResults", 100);
        let types = self
            .describe_all(region, q, xml::describe_instance_types)
            .await?;
        Ok(types
            .into_iter()
            .map(|t| SizeInfo {
                slug: t.name,
                vcpus: t.vcpus,
                memory_mb: t.memory_mib,
                disk_gb: t.storage_gb.unwrap_or(0),
                price_monthly: None,
                regions: vec![region.clone()],
                available: true,
            })
            .collect())
    }

    async fn list_regions(&self) -> ProviderResult<Vec<RegionInfo>> {
        let body = self
            .call(
                &self.default_region,
                &Query::new("DescribeRegions"),
                true,
                None,
            )
            .await?;
        Ok(parse("DescribeRegions", xml::describe_regions(&body))?
            .into_iter()
            .map(|(slug, _)| RegionInfo {
                name: slug.clone(),
                slug,
                available: true,
            })
            .collect())
    }

    async fn managed_resources(&self, region: Option<&str>) -> ProviderResult<Vec<Resource>> {
        // spuff may have made things in any region: every enabled one is
        // looked at unless the user names one.
        let regions: Vec<String> = match region {
            Some(r) => {
                check_region(r)?;
                vec![r.to_string()]
            }
            None => self
                .list_regions()
                .await?
                .into_iter()
                .map(|r| r.slug)
                .collect(),
        };
        let per_region =
            futures::future::try_join_all(regions.iter().map(|r| self.region_resources(r))).await?;
        let mut out: Vec<Resource> = per_region.into_iter().flatten().collect();
        out.sort_by_key(|r| r.kind);
        Ok(out)
    }

    async fn delete_resource(&self, resource: &Resource) -> ProviderResult<()> {
        let (region, id) = match resource.id.split_once('/') {
            Some((r, id)) => (r.to_string(), id),
            None => (self.default_region.clone(), resource.id.as_str()),
        };
        check_region(&region)?;
        match resource.kind {
            ResourceKind::Vm => self.destroy_instance(&resource.id).await,
            ResourceKind::Snapshot => self.delete_snapshot(&resource.id).await,
            ResourceKind::SecurityGroup => self.delete_group(&region, id).await,
            ResourceKind::SshKey => {
                // Deleting a key pair that is not there succeeds.
                let q = Query::new("DeleteKeyPair").set("KeyName", id);
                self.call(&region, &q, true, Some(("key pair", id))).await?;
                self.imported
                    .lock()
                    .await
                    .retain(|(r, _), name| !(r == &region && name == id));
                Ok(())
            }
        }
    }

    async fn spot_prices(&self, region: &str, size: &str) -> ProviderResult<Vec<SpotPrice>> {
        check_region(region)?;
        self.prices(region, size).await
    }

    fn default_region(&self) -> Option<String> {
        Some(self.default_region.clone())
    }

    fn http_stats(&self) -> HttpStats {
        let clients = lock(&self.clients);
        clients.values().fold(HttpStats::default(), |mut sum, c| {
            let s = c.http().stats();
            sum.connections += s.connections;
            sum.requests += s.requests;
            sum.retries += s.retries;
            sum
        })
    }
}

/// Signs nothing: for the public address lookup, which takes no credentials.
struct Anonymous;

impl RequestSigner for Anonymous {
    fn sign(&self, _request: SignRequest<'_>) -> Result<(), String> {
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn invalid(field: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig {
        provider: NAME,
        field: field.into(),
        message: message.into(),
    }
}

fn parse<T>(operation: &str, read: XmlResult<T>) -> ProviderResult<T> {
    read.map_err(|message| ProviderError::InvalidResponse {
        provider: NAME,
        operation: operation.to_string(),
        message: crate::util::terminal_safe(&message).into_owned(),
    })
}

/// EC2's error code, for the few that are answers rather than failures.
fn api_code(e: &ProviderError) -> Option<&str> {
    match e {
        ProviderError::Api { code, .. } => code.as_deref(),
        _ => None,
    }
}

/// `region/rest` → (region, rest); a bare id is in `default`.
fn split_id<'a>(id: &'a str, default: &'a str) -> (&'a str, &'a str) {
    id.split_once('/').unwrap_or((default, id))
}

fn check_region(region: &str) -> ProviderResult<()> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "region",
            format!("`{region}` is not an AWS region name (like us-east-1)"),
        ))
    }
}

/// `i-0123abcd…`, `ami-…`: the prefix, then 8 or 17 hex digits.
fn check_resource_id(id: &str, prefix: &str, what: &str) -> ProviderResult<()> {
    let ok = id.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "id",
            format!("`{id}` is not an EC2 {what} id ({prefix}…)"),
        ))
    }
}

fn check_cidr(cidr: &str) -> ProviderResult<()> {
    crate::validate::cidr(cidr).map_err(|reason| invalid("ssh_cidr", format!("`{cidr}`: {reason}")))
}

/// Whether an instance type runs on Graviton (arm64): its family has a `g`
/// among the letters after the generation (`t4g`, `m7gd`, `c6gn`), or is
/// `a1`. GPU families (`g5`, `g4dn`) have theirs before it.
pub(crate) fn arm64(size: &str) -> bool {
    let family = size.split('.').next().unwrap_or(size);
    if family == "a1" {
        return true;
    }
    let after_digits = family
        .trim_start_matches(|c: char| c.is_ascii_lowercase() || c == '-')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    after_digits.contains('g')
}

/// The fingerprints EC2 may show for an imported key: MD5 (RSA) and
/// SHA-256 in base64 (ed25519).
fn key_fingerprints(public_key: &str) -> Option<Vec<String>> {
    use sha2::Digest;
    let md5 = crate::provider::md5_fingerprint(public_key)?;
    let blob = public_key.split_whitespace().nth(1)?;
    let raw = data_encoding::BASE64.decode(blob.as_bytes()).ok()?;
    let sha = data_encoding::BASE64_NOPAD.encode(&sha2::Sha256::digest(&raw));
    Some(vec![md5, sha])
}

fn same_fingerprint(ours: &str, theirs: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_start_matches("SHA256:")
            .trim_end_matches('=')
            .to_string()
    };
    let (a, b) = (norm(ours), norm(theirs));
    if a.contains(':') {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// An AMI name from a snapshot name: 3-128 of the characters EC2 allows.
fn ami_name(name: &str) -> String {
    let mut n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    while n.len() < 3 {
        n.push('-');
    }
    n
}

fn status_of(i: &xml::Instance) -> InstanceStatus {
    if i.spot_interrupted() && matches!(i.state_code, 32 | 48 | 64 | 80) {
        return InstanceStatus::Interrupted;
    }
    match i.state_code {
        0 => InstanceStatus::New,
        16 => InstanceStatus::Active,
        32 | 48 => InstanceStatus::Deleting,
        64 => InstanceStatus::Transitioning,
        80 => InstanceStatus::Off,
        _ => InstanceStatus::Unknown(i.state.clone()),
    }
}

fn to_instance(region: &str, i: xml::Instance) -> ProviderInstance {
    let status = status_of(&i);
    let name = i.tag("Name").unwrap_or_default().to_string();
    let labels: BTreeMap<String, String> = i
        .tags
        .iter()
        .filter(|(k, _)| k != "Name")
        .cloned()
        .collect();
    let mut vm = ProviderInstance::cloud(
        format!("{region}/{}", i.id),
        name,
        status,
        (
            i.public_ip.as_deref().and_then(|a| a.parse().ok()),
            i.public_ipv6.as_deref().and_then(|a| a.parse().ok()),
            i.private_ip.as_deref().and_then(|a| a.parse().ok()),
        ),
        labels,
    );
    vm.region = region.to_string();
    vm.size = i.instance_type.unwrap_or_default();
    vm.created_at = i.launch_time;
    vm
}

fn to_snapshot(region: &str, i: xml::Image, name: &str) -> Snapshot {
    let source = i
        .tags
        .iter()
        .find(|(k, _)| k == SOURCE_TAG)
        .map(|(_, v)| v.clone());
    Snapshot {
        id: format!("{region}/{}", i.id),
        name: name.to_string(),
        created_at: i.creation_date,
        size_gb: None,
        regions: vec![region.to_string()],
        source_instance: source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graviton_sizes_should_be_told_from_x86_ones() {
        for arm in [
            "t4g.small",
            "m7g.large",
            "c6gn.xlarge",
            "m6gd.metal",
            "a1.medium",
            "g5g.xlarge",
            "is4gen.large",
        ] {
            assert!(arm64(arm), "{arm}");
        }
        for x86 in [
            "t3.small",
            "m7i.large",
            "m7a.large",
            "g5.xlarge",
            "g4dn.xlarge",
            "c5n.large",
            "p5.48xlarge",
        ] {
            assert!(!arm64(x86), "{x86}");
        }
    }

    #[test]
    fn ids_should_carry_their_region_and_be_checked() {
        assert_eq!(
            split_id("eu-west-1/i-0abc12345678def01", DEFAULT_REGION),
            ("eu-west-1", "i-0abc12345678def01")
        );
        assert_eq!(
            split_id("i-0abc1234", "us-east-2"),
            ("us-east-2", "i-0abc1234")
        );
        assert!(check_resource_id("i-0abc12345678def01", "i-", "instance").is_ok());
        for bad in [
            "i-",
            "i-xyz12345",
            "4242",
            "ami-0abc1234",
            "i-0abc1234/../x",
        ] {
            assert!(check_resource_id(bad, "i-", "instance").is_err(), "{bad}");
        }
        assert!(check_region("us-east-1").is_ok());
        assert!(check_region("us-east-1.evil.com").is_err());
    }

    #[test]
    fn fingerprints_should_match_both_forms_ec2_shows() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHP8Yy4ecgYC4y0ezsYMvUG0K48+1SZDuaUDysuuFaa4 t";
        let fps = key_fingerprints(key).unwrap();
        assert!(same_fingerprint(
            &fps[0],
            "B0:EF:DD:3C:27:1C:EA:6A:BA:16:BA:B5:8C:58:A5:A0"
        ));
        assert!(same_fingerprint(&fps[1], &format!("{}=", fps[1])));
        assert!(!same_fingerprint(&fps[1], &fps[1].to_lowercase()));
    }

    #[test]
    fn cidrs_and_ami_names_should_be_checked() {
        assert!(check_cidr("203.0.113.7/32").is_ok());
        assert!(check_cidr("2001:db8::/64").is_ok());
        for bad in ["203.0.113.7", "203.0.113.7/33", "x/1"] {
            assert!(check_cidr(bad).is_err(), "{bad}");
        }
        assert_eq!(ami_name("my snap: v1"), "my snap- v1");
        assert_eq!(ami_name("a"), "a--");
    }
}
