//! The address of a Proxmox VM, from its QEMU guest agent.
//!
//! `agent/network-get-interfaces` passes QEMU's answer through: every
//! interface with its addresses, loopback, link-local and container
//! bridges included, and interfaces without addresses at all. spuff wants
//! the one address it can reach: the interface whose MAC is the VM's
//! `net0` when known, else the first that has a usable address. An answer
//! with only link-local addresses means DHCP has not finished: not yet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// The VM's addresses as its agent reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Addresses {
    pub(crate) ipv4: Option<Ipv4Addr>,
    pub(crate) ipv6: Option<Ipv6Addr>,
}

impl Addresses {
    /// Whether there is anything to connect to.
    pub(crate) fn any(&self) -> bool {
        self.ipv4.is_some() || self.ipv6.is_some()
    }
}

#[derive(Debug, Deserialize)]
struct Interface {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "hardware-address")]
    mac: Option<String>,
    #[serde(default, rename = "ip-addresses")]
    addresses: Option<Vec<Address>>,
}

#[derive(Debug, Deserialize)]
struct Address {
    #[serde(default, rename = "ip-address")]
    ip: Option<String>,
}

/// Why the agent's answer has no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoAddress {
    /// Not yet (only link-local or no addresses): poll again.
    NotYet,
    /// The agent said it cannot (PVE 6's `result.error`), with its words.
    Refused(String),
    /// Not the shape the agent answers with.
    Malformed(String),
}

/// Interfaces that are never the way in: loopback and container bridges.
fn ignored(name: &str) -> bool {
    name == "lo"
        || name.starts_with("docker")
        || name.starts_with("cni")
        || name.starts_with("veth")
        || name.starts_with("br-")
        || name.starts_with("virbr")
}

fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => {
            !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The addresses in `data` (the envelope's `data`: `{"result": […]}`),
/// preferring the interface with MAC `net0_mac`.
pub(crate) fn addresses(
    data: &serde_json::Value,
    net0_mac: Option<&str>,
) -> Result<Addresses, NoAddress> {
    let result = data.get("result").unwrap_or(data);
    if let Some(error) = result.get("error") {
        let desc = error
            .get("desc")
            .and_then(|d| d.as_str())
            .unwrap_or("the guest agent refused");
        return Err(NoAddress::Refused(
            crate::util::terminal_safe(desc).into_owned(),
        ));
    }
    let interfaces: Vec<Interface> = serde_json::from_value(result.clone())
        .map_err(|e| NoAddress::Malformed(format!("network-get-interfaces: {e}")))?;
    let mut candidates: Vec<&Interface> = interfaces.iter().filter(|i| !ignored(&i.name)).collect();
    if let Some(mac) = net0_mac {
        // The net0 interface first, the rest in the agent's order.
        candidates.sort_by_key(|i| {
            !i.mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        });
    }
    for interface in candidates {
        let ips = interface
            .addresses
            .iter()
            .flatten()
            .filter_map(|a| a.ip.as_deref()?.parse::<IpAddr>().ok())
            .filter(|ip| usable(*ip));
        let mut found = Addresses::default();
        for ip in ips {
            match ip {
                IpAddr::V4(v4) if found.ipv4.is_none() => found.ipv4 = Some(v4),
                IpAddr::V6(v6) if found.ipv6.is_none() => found.ipv6 = Some(v6),
                _ => {}
            }
        }
        if found.any() {
            return Ok(found);
        }
    }
    Err(NoAddress::NotYet)
}

/// The MAC of `net0` in a VM config (`virtio=BC:24:11:5A:3E:7F,bridge=vmbr0`).
pub(crate) fn net0_mac(net0: &str) -> Option<String> {
    net0.split(',').find_map(|part| {
        let (_, value) = part.split_once('=')?;
        let is_mac = value.len() == 17
            && value
                .split(':')
                .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
        is_mac.then(|| value.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(name: &str) -> serde_json::Value {
        let path = format!("{}/tests/data/proxmox/{name}", env!("CARGO_MANIFEST_DIR"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["data"].clone()
    }

    const AGENT: &str = "reconstructed/GET_nodes_pve1_qemu_123_agent_network-get-interfaces.200";

    #[test]
    fn the_vms_own_address_should_be_found_among_the_others() {
        let want = Addresses {
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 50)),
            ipv6: "2001:db8:10::be24:11ff:fe5a:3e7f".parse().ok(),
        };
        assert_eq!(
            addresses(&body(&format!("{AGENT}.json")), None),
            Ok(want.clone())
        );
        // docker0 listed first or not, its address is not the VM's.
        let with_docker = body(&format!("{AGENT}.with_docker0.json"));
        assert_eq!(addresses(&with_docker, None), Ok(want.clone()));
        assert_eq!(addresses(&with_docker, Some("bc:24:11:5a:3e:7f")), Ok(want));
        // An interface without `ip-addresses` is read, not an error: here
        // it is the only one besides lo, so not yet.
        let bare = addresses(
            &body(&format!("{AGENT}.iface_without_ip-addresses.json")),
            None,
        );
        assert_eq!(bare, Err(NoAddress::NotYet));
    }

    #[test]
    fn early_boot_and_refusals_should_be_told_apart() {
        assert_eq!(
            addresses(
                &body(&format!("{AGENT}.early_boot_link_local_only.json")),
                None
            ),
            Err(NoAddress::NotYet)
        );
        let legacy = addresses(
            &body(&format!("{AGENT}.legacy_pve6_result_error.json")),
            None,
        );
        assert!(
            matches!(&legacy, Err(NoAddress::Refused(m)) if m.contains("not currently supported")),
            "{legacy:?}"
        );
        let minimal = addresses(
            &body(
                "hand-written-mocks/go-proxmox__pve9x__GET_qemu_101_agent_network-get-interfaces.json",
            ),
            None,
        );
        assert!(minimal.is_ok(), "{minimal:?}");
        assert!(matches!(
            addresses(&serde_json::json!({"result": "nope"}), None),
            Err(NoAddress::Malformed(_))
        ));
    }

    #[test]
    fn net0s_mac_should_be_read_from_the_config() {
        assert_eq!(
            net0_mac("virtio=BC:24:11:5A:3E:7F,bridge=vmbr0,firewall=1").as_deref(),
            Some("bc:24:11:5a:3e:7f")
        );
        assert_eq!(net0_mac("virtio,bridge=vmbr0"), None);
    }
}
