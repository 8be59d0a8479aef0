//! A VM's `ipconfig0`: how its cloud-init sets up `net0`, and, when the
//! address is static, where spuff finds the VM without asking its guest
//! agent (a template without `qemu-guest-agent` still works then).
//!
//! Proxmox's format (`pve-qm-ipconfig`): comma-separated `ip=`, `gw=`,
//! `ip6=`, `gw6=`; `ip` is `dhcp` or an IPv4 CIDR, `ip6` is `dhcp`, `auto`
//! or an IPv6 CIDR, the gateways plain addresses. Anything else is refused
//! here rather than by Proxmox after the clone exists.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The default: DHCP for IPv4, SLAAC for IPv6.
pub const DEFAULT: &str = "ip=dhcp,ip6=auto";

/// What an `ipconfig0` value says about the VM's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Static {
    /// The static IPv4 address (`ip=A.B.C.D/NN`).
    pub ipv4: Option<Ipv4Addr>,
    /// The static IPv6 address (`ip6=…/NN`).
    pub ipv6: Option<Ipv6Addr>,
}

/// Checks `value` and returns its static addresses, if any.
///
/// # Errors
/// What is wrong with it, in words.
pub fn parse(value: &str) -> Result<Static, String> {
    let mut out = Static::default();
    let mut seen: Vec<&str> = Vec::new();
    for part in value.split(',') {
        let (key, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not KEY=VALUE (ip=, gw=, ip6=, gw6=)"))?;
        if seen.contains(&key) {
            return Err(format!("`{key}` is given twice"));
        }
        seen.push(key);
        match key {
            "ip" if v == "dhcp" => {}
            "ip" => out.ipv4 = Some(cidr::<Ipv4Addr>(v, 32, "ip")?),
            "ip6" if v == "dhcp" || v == "auto" => {}
            "ip6" => out.ipv6 = Some(cidr::<Ipv6Addr>(v, 128, "ip6")?),
            "gw" => {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| format!("gw `{v}` is not an IPv4 address"))?;
            }
            "gw6" => {
                v.parse::<Ipv6Addr>()
                    .map_err(|_| format!("gw6 `{v}` is not an IPv6 address"))?;
            }
            other => return Err(format!("unknown key `{other}` (ip=, gw=, ip6=, gw6=)")),
        }
    }
    if seen.contains(&"gw") && out.ipv4.is_none() {
        return Err("gw= goes with a static ip=ADDRESS/PREFIX".into());
    }
    if seen.contains(&"gw6") && out.ipv6.is_none() {
        return Err("gw6= goes with a static ip6=ADDRESS/PREFIX".into());
    }
    Ok(out)
}

fn cidr<A: std::str::FromStr>(v: &str, max: u8, key: &str) -> Result<A, String> {
    let wrong = || format!("{key} `{v}` is not dhcp or ADDRESS/PREFIX");
    let (addr, prefix) = v.split_once('/').ok_or_else(wrong)?;
    let prefix: u8 = prefix.parse().map_err(|_| wrong())?;
    if prefix == 0 || prefix > max {
        return Err(wrong());
    }
    addr.parse().map_err(|_| wrong())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_addresses_should_be_found_and_nonsense_refused() {
        assert_eq!(parse(DEFAULT), Ok(Static::default()));
        assert_eq!(
            parse("ip=192.168.1.50/24,gw=192.168.1.1"),
            Ok(Static {
                ipv4: Some(Ipv4Addr::new(192, 168, 1, 50)),
                ipv6: None
            })
        );
        let v6 = parse("ip=dhcp,ip6=2001:db8::5/64,gw6=2001:db8::1").expect("v6");
        assert_eq!(v6.ipv6, Some("2001:db8::5".parse().expect("ip")));
        for bad in [
            "",
            "ip",
            "ip=192.168.1.50",
            "ip=192.168.1.50/33",
            "ip=999.1.1.1/24",
            "ip=dhcp,ip=dhcp",
            "ip=dhcp,gw=192.168.1.1",
            "ip=10.0.0.2/8,gw=nope",
            "ip6=auto,gw6=::1",
            "ip=dhcp;rm -rf",
            "mtu=1500",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} passed");
        }
    }
}
