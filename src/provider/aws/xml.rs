//! EC2's XML answers read into the few facts spuff needs, treating every
//! body as untrusted.
//!
//! The EC2 Query API answers `<XxxResponse xmlns=…>` with lists as
//! `<…Set><item>…</item></…Set>`, and errors as
//! `<Response><Errors><Error><Code>…`. We read by local element name (the
//! namespace changes with the API version), take text trimmed, treat an
//! empty element as absent (`<dnsName/>` while pending), and refuse what is
//! not XML, has a DTD (so no entity expansion), or holds a number that is
//! not one. Fields we do not use are never looked at.
//!
//! Checked against the real bodies botocore and libcloud test with, and
//! against botocore's own parse of them (`tests/data/aws/ec2-xml`).

use roxmltree::{Document, Node, ParsingOptions};

/// What a body that is not the XML we expect is reported as.
pub(crate) type XmlResult<T> = Result<T, String>;

/// One page of a `Describe*` answer: its items and the next page's token.
pub(crate) type Page<T> = XmlResult<(Vec<T>, Option<String>)>;

/// Parses a response body. No DTDs: a body with one is refused.
pub(crate) fn parse(body: &[u8]) -> XmlResult<Document<'_>> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: false,
            ..ParsingOptions::default()
        },
    )
    .map_err(|e| format!("the body is not XML: {e}"))
}

/// The first child element named `name` (local name, any namespace).
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of child `name`; `None` when absent or empty.
fn text(node: Node<'_, '_>, name: &str) -> Option<String> {
    let c = child(node, name)?;
    let t: String = c
        .children()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The `<item>` elements of the list `set` under `node`.
fn items<'a, 'i>(node: Node<'a, 'i>, set: &str) -> impl Iterator<Item = Node<'a, 'i>> {
    child(node, set)
        .into_iter()
        .flat_map(|s| s.children())
        .filter(|c| c.is_element() && c.tag_name().name() == "item")
}

fn required(node: Node<'_, '_>, name: &str, what: &str) -> XmlResult<String> {
    text(node, name).ok_or_else(|| format!("{what} without <{name}>"))
}

fn number<T: std::str::FromStr>(node: Node<'_, '_>, name: &str, what: &str) -> XmlResult<T> {
    let t = required(node, name, what)?;
    t.parse()
        .map_err(|_| format!("{what}: <{name}> is not a number: {t:?}"))
}

/// An EC2 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ec2Error {
    /// `InvalidInstanceID.NotFound`, `RequestLimitExceeded`, …
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
}

/// Reads an error body; `None` when it is not EC2's error XML (an HTML
/// page from a proxy, an empty body).
pub(crate) fn error(body: &[u8]) -> Option<Ec2Error> {
    let doc = parse(body).ok()?;
    let root = doc.root_element();
    // `<Response><Errors><Error>`; some endpoints answer `<ErrorResponse>`
    // with the `<Error>` directly under it.
    let err = child(root, "Errors")
        .and_then(|e| child(e, "Error"))
        .or_else(|| child(root, "Error"))?;
    Some(Ec2Error {
        code: text(err, "Code")?,
        message: text(err, "Message").unwrap_or_default(),
        request_id: text(root, "RequestID").or_else(|| text(root, "RequestId")),
    })
}

/// An instance as DescribeInstances and RunInstances describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    pub(crate) id: String,
    /// The state's low byte (the high byte is internal to EC2): 0 pending,
    /// 16 running, 32 shutting-down, 48 terminated, 64 stopping, 80 stopped.
    pub(crate) state_code: u8,
    pub(crate) state: String,
    pub(crate) image_id: Option<String>,
    pub(crate) instance_type: Option<String>,
    pub(crate) zone: Option<String>,
    pub(crate) launch_time: Option<String>,
    pub(crate) public_ip: Option<String>,
    pub(crate) private_ip: Option<String>,
    pub(crate) public_ipv6: Option<String>,
    pub(crate) key_name: Option<String>,
    pub(crate) architecture: Option<String>,
    /// `spot` for spot instances; absent for on-demand ones.
    pub(crate) lifecycle: Option<String>,
    /// Why the state last changed (`Server.SpotInstanceTermination`, …).
    pub(crate) state_reason: Option<(String, String)>,
    pub(crate) tags: Vec<(String, String)>,
}

impl Instance {
    fn read(item: Node<'_, '_>) -> XmlResult<Instance> {
        let id = required(item, "instanceId", "an instance")?;
        let what = format!("instance {id}");
        let state = child(item, "instanceState")
            .ok_or_else(|| format!("{what} without <instanceState>"))?;
        let code: u32 = number(state, "code", &what)?;
        let reason = child(item, "stateReason").and_then(|r| {
            let code = text(r, "code")?;
            Some((code, text(r, "message").unwrap_or_default()))
        });
        let ipv6 = items(item, "networkInterfaceSet")
            .flat_map(|ni| items(ni, "ipv6AddressesSet").collect::<Vec<_>>())
            .find_map(|a| text(a, "ipv6Address"))
            .or_else(|| text(item, "ipv6Address"));
        Ok(Instance {
            state_code: (code & 0xff) as u8,
            state: required(state, "name", &what)?,
            image_id: text(item, "imageId"),
            instance_type: text(item, "instanceType"),
            zone: child(item, "placement").and_then(|p| text(p, "availabilityZone")),
            launch_time: text(item, "launchTime"),
            public_ip: text(item, "ipAddress"),
            private_ip: text(item, "privateIpAddress"),
            public_ipv6: ipv6,
            key_name: text(item, "keyName"),
            architecture: text(item, "architecture"),
            lifecycle: text(item, "instanceLifecycle"),
            state_reason: reason,
            tags: tags(item),
            id,
        })
    }

    /// The value of tag `key`.
    pub(crate) fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether EC2 took this spot instance back (capacity, price), rather
    /// than anyone stopping it: `list` and `status` say so.
    pub(crate) fn spot_interrupted(&self) -> bool {
        self.state_reason
            .as_ref()
            .is_some_and(|(code, _)| code.starts_with("Server.SpotInstance"))
    }
}

fn tags(node: Node<'_, '_>) -> Vec<(String, String)> {
    items(node, "tagSet")
        .filter_map(|t| Some((text(t, "key")?, text(t, "value").unwrap_or_default())))
        .collect()
}

/// DescribeInstances: every instance of every reservation, and the token
/// for the next page.
pub(crate) fn describe_instances(body: &[u8]) -> XmlResult<(Vec<Instance>, Option<String>)> {
    let doc = parse(body)?;
    let root = doc.root_element();
    let mut out = Vec::new();
    for reservation in items(root, "reservationSet") {
        for item in items(reservation, "instancesSet") {
            out.push(Instance::read(item)?);
        }
    }
    Ok((out, text(root, "nextToken")))
}

/// RunInstances: the instances just launched (pending).
pub(crate) fn run_instances(body: &[u8]) -> XmlResult<Vec<Instance>> {
    let doc = parse(body)?;
    let instances: Vec<Instance> = items(doc.root_element(), "instancesSet")
        .map(Instance::read)
        .collect::<XmlResult<_>>()?;
    if instances.is_empty() {
        return Err("RunInstances answered without any instance".into());
    }
    Ok(instances)
}

/// A state change (TerminateInstances, StopInstances, StartInstances):
/// instance id, previous and current state names.
pub(crate) fn state_changes(body: &[u8]) -> XmlResult<Vec<(String, String, String)>> {
    let doc = parse(body)?;
    items(doc.root_element(), "instancesSet")
        .map(|i| {
            let id = required(i, "instanceId", "a state change")?;
            let state = |name: &str| {
                child(i, name)
                    .and_then(|s| text(s, "name"))
                    .unwrap_or_default()
            };
            // libcloud's body names the current state `shutdownState`.
            let current = Some(state("currentState"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| state("shutdownState"));
            Ok((id, state("previousState"), current))
        })
        .collect()
}

/// An AMI, from DescribeImages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    /// `pending`, `available`, `failed`, …
    pub(crate) state: Option<String>,
    pub(crate) owner_id: Option<String>,
    pub(crate) creation_date: Option<String>,
    pub(crate) architecture: Option<String>,
    pub(crate) description: Option<String>,
    /// The EBS snapshots behind it (deleted with the image).
    pub(crate) snapshot_ids: Vec<String>,
    pub(crate) tags: Vec<(String, String)>,
}

/// DescribeImages.
pub(crate) fn describe_images(body: &[u8]) -> XmlResult<(Vec<Image>, Option<String>)> {
    let doc = parse(body)?;
    let root = doc.root_element();
    let images = items(root, "imagesSet")
        .map(|i| {
            Ok(Image {
                id: required(i, "imageId", "an image")?,
                name: text(i, "name"),
                state: text(i, "imageState"),
                owner_id: text(i, "imageOwnerId"),
                creation_date: text(i, "creationDate"),
                architecture: text(i, "architecture"),
                description: text(i, "description"),
                snapshot_ids: items(i, "blockDeviceMapping")
                    .filter_map(|m| child(m, "ebs").and_then(|e| text(e, "snapshotId")))
                    .collect(),
                tags: tags(i),
            })
        })
        .collect::<XmlResult<_>>()?;
    Ok((images, text(root, "nextToken")))
}

/// CreateImage: the new image's id.
pub(crate) fn created_image(body: &[u8]) -> XmlResult<String> {
    let doc = parse(body)?;
    required(doc.root_element(), "imageId", "CreateImage's answer")
}

/// A key pair: name and fingerprint (DescribeKeyPairs, ImportKeyPair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPair {
    pub(crate) name: String,
    pub(crate) fingerprint: Option<String>,
    pub(crate) id: Option<String>,
}

fn key_pair(node: Node<'_, '_>) -> XmlResult<KeyPair> {
    Ok(KeyPair {
        name: required(node, "keyName", "a key pair")?,
        fingerprint: text(node, "keyFingerprint"),
        id: text(node, "keyPairId"),
    })
}

/// DescribeKeyPairs.
pub(crate) fn describe_key_pairs(body: &[u8]) -> XmlResult<Vec<KeyPair>> {
    let doc = parse(body)?;
    items(doc.root_element(), "keySet").map(key_pair).collect()
}

/// ImportKeyPair.
pub(crate) fn imported_key_pair(body: &[u8]) -> XmlResult<KeyPair> {
    let doc = parse(body)?;
    key_pair(doc.root_element())
}

/// DescribeRegions: region name and endpoint.
pub(crate) fn describe_regions(body: &[u8]) -> XmlResult<Vec<(String, Option<String>)>> {
    let doc = parse(body)?;
    items(doc.root_element(), "regionInfo")
        .map(|r| {
            Ok((
                required(r, "regionName", "a region")?,
                text(r, "regionEndpoint"),
            ))
        })
        .collect()
}

/// A security group: id and name (DescribeSecurityGroups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecurityGroup {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) vpc_id: Option<String>,
    pub(crate) tags: Vec<(String, String)>,
}

/// DescribeSecurityGroups, and the token for the next page.
pub(crate) fn describe_security_groups(
    body: &[u8],
) -> XmlResult<(Vec<SecurityGroup>, Option<String>)> {
    let doc = parse(body)?;
    let root = doc.root_element();
    let groups = items(root, "securityGroupInfo")
        .map(|g| {
            Ok(SecurityGroup {
                id: required(g, "groupId", "a security group")?,
                name: text(g, "groupName"),
                vpc_id: text(g, "vpcId"),
                tags: tags(g),
            })
        })
        .collect::<XmlResult<_>>()?;
    Ok((groups, text(root, "nextToken")))
}

/// CreateSecurityGroup: the new group's id.
pub(crate) fn created_security_group(body: &[u8]) -> XmlResult<String> {
    let doc = parse(body)?;
    required(
        doc.root_element(),
        "groupId",
        "CreateSecurityGroup's answer",
    )
}

/// An instance type (DescribeInstanceTypes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceType {
    pub(crate) name: String,
    pub(crate) vcpus: u32,
    pub(crate) memory_mib: u64,
    /// `x86_64`, `arm64`, …
    pub(crate) architectures: Vec<String>,
    /// Local instance storage, when it has some.
    pub(crate) storage_gb: Option<u64>,
}

/// DescribeInstanceTypes, and the token for the next page.
pub(crate) fn describe_instance_types(
    body: &[u8],
) -> XmlResult<(Vec<InstanceType>, Option<String>)> {
    let doc = parse(body)?;
    let root = doc.root_element();
    let types = items(root, "instanceTypeSet")
        .map(|t| {
            let name = required(t, "instanceType", "an instance type")?;
            let what = format!("instance type {name}");
            let vcpu = child(t, "vCpuInfo").ok_or_else(|| format!("{what} without <vCpuInfo>"))?;
            let memory =
                child(t, "memoryInfo").ok_or_else(|| format!("{what} without <memoryInfo>"))?;
            let architectures = child(t, "processorInfo")
                .into_iter()
                .flat_map(|p| items(p, "supportedArchitectures").collect::<Vec<_>>())
                .filter_map(|a| a.text().map(|t| t.trim().to_string()))
                .filter(|a| !a.is_empty())
                .collect();
            let storage_gb = match child(t, "instanceStorageInfo") {
                Some(s) if text(s, "totalSizeInGB").is_some() => {
                    Some(number(s, "totalSizeInGB", &what)?)
                }
                _ => None,
            };
            Ok(InstanceType {
                vcpus: number(vcpu, "defaultVCpus", &what)?,
                memory_mib: number(memory, "sizeInMiB", &what)?,
                architectures,
                storage_gb,
                name,
            })
        })
        .collect::<XmlResult<_>>()?;
    Ok((types, text(root, "nextToken")))
}

/// One spot price (DescribeSpotPriceHistory).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpotPrice {
    pub(crate) instance_type: String,
    pub(crate) zone: String,
    /// US dollars per hour.
    pub(crate) price: f64,
    pub(crate) timestamp: Option<String>,
}

/// DescribeSpotPriceHistory, and the token for the next page. An entry
/// without a zone or a price that is not a finite, non-negative number is
/// refused: a price is what a choice of zone rests on.
pub(crate) fn spot_price_history(body: &[u8]) -> XmlResult<(Vec<SpotPrice>, Option<String>)> {
    let doc = parse(body)?;
    let root = doc.root_element();
    let prices = items(root, "spotPriceHistorySet")
        .map(|p| {
            let what = "a spot price";
            let price: f64 = number(p, "spotPrice", what)?;
            if !price.is_finite() || price < 0.0 {
                return Err(format!("{what}: <spotPrice> is not a price: {price}"));
            }
            Ok(SpotPrice {
                instance_type: required(p, "instanceType", what)?,
                zone: required(p, "availabilityZone", what)?,
                price,
                timestamp: text(p, "timestamp"),
            })
        })
        .collect::<XmlResult<_>>()?;
    Ok((prices, text(root, "nextToken")))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    macro_rules! fixture {
        ($path:literal) => {
            include_bytes!(concat!("../../../tests/data/aws/ec2-xml/", $path)).as_slice()
        };
    }

    fn expected(json: &[u8]) -> Value {
        serde_json::from_slice(json).unwrap()
    }

    fn s(v: &Value) -> Option<String> {
        v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
    }

    /// Our instance against botocore's parse of the same XML.
    fn same_as_botocore(ours: &Instance, theirs: &Value) {
        let id = &ours.id;
        assert_eq!(Some(id.clone()), s(&theirs["InstanceId"]));
        assert_eq!(
            u64::from(ours.state_code),
            theirs["State"]["Code"].as_u64().unwrap() & 0xff,
            "{id}"
        );
        assert_eq!(
            Some(ours.state.clone()),
            s(&theirs["State"]["Name"]),
            "{id}"
        );
        assert_eq!(ours.image_id, s(&theirs["ImageId"]), "{id}");
        assert_eq!(ours.instance_type, s(&theirs["InstanceType"]), "{id}");
        assert_eq!(
            ours.zone,
            s(&theirs["Placement"]["AvailabilityZone"]),
            "{id}"
        );
        assert_eq!(ours.public_ip, s(&theirs["PublicIpAddress"]), "{id}");
        assert_eq!(ours.private_ip, s(&theirs["PrivateIpAddress"]), "{id}");
        assert_eq!(ours.key_name, s(&theirs["KeyName"]), "{id}");
        assert_eq!(ours.architecture, s(&theirs["Architecture"]), "{id}");
        let their_tags: Vec<(String, String)> = theirs["Tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| (s(&t["Key"]).unwrap(), s(&t["Value"]).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ours.tags, their_tags, "{id}");
        assert_eq!(
            ours.state_reason.as_ref().map(|r| r.0.clone()),
            s(&theirs["StateReason"]["Code"]),
            "{id}"
        );
    }

    #[test]
    fn describe_instances_should_read_what_botocore_reads() {
        let (ours, next) =
            describe_instances(fixture!("botocore/ec2-describe-instances.xml")).unwrap();
        let theirs = expected(fixture!(
            "botocore/ec2-describe-instances.expected-parsed.json"
        ));
        let theirs: Vec<&Value> = theirs["Reservations"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["Instances"].as_array().unwrap())
            .collect();
        assert_eq!(ours.len(), theirs.len());
        assert!(ours.len() >= 2);
        for (o, t) in ours.iter().zip(theirs) {
            same_as_botocore(o, t);
        }
        assert_eq!(next, None);
        // A stopped instance has no public address and says why it stopped.
        let stopped = &ours[0];
        assert_eq!(
            (stopped.state_code, stopped.state.as_str()),
            (80, "stopped")
        );
        assert_eq!(stopped.public_ip, None);
        assert!(!stopped.spot_interrupted());
    }

    #[test]
    fn run_instances_should_read_what_botocore_reads() {
        let ours = run_instances(fixture!("botocore/ec2-run-instances.xml")).unwrap();
        let theirs = expected(fixture!("botocore/ec2-run-instances.expected-parsed.json"));
        let theirs = theirs["Instances"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(theirs) {
            same_as_botocore(o, t);
        }
    }

    #[test]
    fn libcloud_bodies_should_parse_too() {
        let (instances, _) =
            describe_instances(fixture!("libcloud/describe_instances.xml")).unwrap();
        assert!(!instances.is_empty());
        assert!(
            instances
                .iter()
                .any(|i| i.public_ip.as_deref() == Some("1.2.3.4"))
        );
        assert!(instances.iter().any(|i| !i.tags.is_empty()));
        let run = run_instances(fixture!("libcloud/run_instances.xml")).unwrap();
        assert_eq!(run[0].state, "pending");
        let changes = state_changes(fixture!("libcloud/terminate_instances.xml")).unwrap();
        assert!(
            !changes.is_empty() && changes.iter().all(|c| !c.2.is_empty()),
            "{changes:?}"
        );
        let (images, _) = describe_images(fixture!("libcloud/describe_images.xml")).unwrap();
        assert!(!images.is_empty() && images.iter().all(|i| i.id.starts_with("ami-")));
        assert!(
            created_image(fixture!("libcloud/create_image.xml"))
                .unwrap()
                .starts_with("ami-")
        );
        let keys = describe_key_pairs(fixture!("libcloud/describe_key_pairs.xml")).unwrap();
        assert!(!keys.is_empty());
        assert!(
            imported_key_pair(fixture!("libcloud/import_key_pair.xml"))
                .unwrap()
                .fingerprint
                .is_some()
        );
    }

    #[test]
    fn key_pairs_and_regions_should_read_what_botocore_reads() {
        let ours = describe_key_pairs(fixture!("botocore/ec2-describe-key-pairs.xml")).unwrap();
        let theirs = expected(fixture!(
            "botocore/ec2-describe-key-pairs.expected-parsed.json"
        ));
        let theirs: Vec<KeyPair> = theirs["KeyPairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| KeyPair {
                name: s(&k["KeyName"]).unwrap(),
                fingerprint: s(&k["KeyFingerprint"]),
                id: s(&k["KeyPairId"]),
            })
            .collect();
        assert_eq!(ours, theirs);
        let ours = describe_regions(fixture!("botocore/ec2-describe-regions.xml")).unwrap();
        let theirs = expected(fixture!(
            "botocore/ec2-describe-regions.expected-parsed.json"
        ));
        let theirs: Vec<(String, Option<String>)> = theirs["Regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (s(&r["RegionName"]).unwrap(), s(&r["Endpoint"])))
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn errors_should_give_code_message_and_request_id() {
        let e = error(fixture!("botocore/error-ec2-describe-instances.xml")).unwrap();
        let theirs = expected(fixture!(
            "botocore/error-ec2-describe-instances.expected-parsed.json"
        ));
        assert_eq!(Some(e.code.clone()), s(&theirs["Error"]["Code"]));
        assert_eq!(Some(e.message.clone()), s(&theirs["Error"]["Message"]));
        assert_eq!(e.request_id, s(&theirs["ResponseMetadata"]["RequestId"]));
        let e = error(fixture!("libcloud/run_instances_idem_mismatch.xml")).unwrap();
        assert_eq!(e.code, "IdempotentParameterMismatch");
        assert!(
            e.message.starts_with("Arguments on this idempotent"),
            "{:?}",
            e.message
        );
        let e = error(fixture!("libcloud/describe_key_pairs_doesnt_exist.xml")).unwrap();
        assert_eq!(e.code, "InvalidKeyPair.NotFound");
    }

    #[test]
    fn hostile_bodies_should_be_refused_not_trusted() {
        // Not XML at all: a proxy's page.
        assert_eq!(error(b"<html><body>502 Bad Gateway</body></html"), None);
        assert!(describe_instances(b"<html>oops").is_err());
        // An entity bomb never expands: DTDs are refused outright.
        let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<DescribeInstancesResponse><reservationSet><item><instancesSet><item>
<instanceId>&b;</instanceId></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#;
        assert!(describe_instances(bomb).unwrap_err().contains("not XML"));
        // A state code that is not a number, and a missing id.
        let bad_code = b"<R><instancesSet><item><instanceId>i-1</instanceId>\
            <instanceState><code>sixteen</code><name>running</name></instanceState>\
            </item></instancesSet></R>";
        assert!(
            run_instances(bad_code)
                .unwrap_err()
                .contains("not a number")
        );
        let no_id = b"<R><instancesSet><item><instanceState><code>16</code>\
            <name>running</name></instanceState></item></instancesSet></R>";
        assert!(run_instances(no_id).unwrap_err().contains("instanceId"));
        assert!(run_instances(b"<R><instancesSet/></R>").is_err());
        // Not UTF-8.
        assert!(describe_instances(b"<R>\xff</R>").is_err());
    }

    #[test]
    fn spot_interruptions_and_internal_state_bits_should_be_read() {
        let body = b"<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
            <reservationSet><item><instancesSet><item>\
            <instanceId>i-0abc</instanceId>\
            <instanceState><code>272</code><name>running</name></instanceState>\
            <instanceLifecycle>spot</instanceLifecycle>\
            </item><item>\
            <instanceId>i-0def</instanceId>\
            <instanceState><code>48</code><name>terminated</name></instanceState>\
            <instanceLifecycle>spot</instanceLifecycle>\
            <stateReason><code>Server.SpotInstanceTermination</code>\
            <message>Server.SpotInstanceTermination: Spot instance termination</message></stateReason>\
            <tagSet><item><key>spuff-id</key><value>a1b2</value></item></tagSet>\
            </item></instancesSet></item></reservationSet>\
            <nextToken>page-2</nextToken></DescribeInstancesResponse>";
        let (list, next) = describe_instances(body).unwrap();
        // 272 = 256 (internal) + 16 (running).
        assert_eq!(list[0].state_code, 16);
        assert!(!list[0].spot_interrupted());
        assert!(list[1].spot_interrupted());
        assert_eq!(list[1].tag("spuff-id"), Some("a1b2"));
        assert_eq!(next.as_deref(), Some("page-2"));
    }
}
