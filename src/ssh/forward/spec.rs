//! What to forward, parsed from OpenSSH's `-L`/`-R` syntax.
//!
//! Users already know `ssh -L 8080:localhost:80`, so the CLI takes the same
//! strings and the library parses them ([`FromStr`]), one set of rules and
//! error messages for both. IPv6 addresses go in brackets as in OpenSSH.
//! A spec that does not parse is an `Error::Forward` quoting it and saying
//! which part is wrong and what the syntax is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use super::host_port;
use crate::ssh::{Error, Result};

/// A local forward: listen on `bind` and connect each connection, through the
/// server, to `remote_host:remote_port`. OpenSSH `-L`.
///
/// Pass it to [`Session::forward_local`](crate::ssh::Session::forward_local).
/// Build it with [`LocalForwardSpec::new`], as a struct, or parse it from
/// OpenSSH's syntax; `Display` shows it as `127.0.0.1:8080 -> localhost:80`.
///
/// # Examples
///
/// ```
/// use spuff::forward::LocalForwardSpec;
///
/// let spec: LocalForwardSpec = "8080:localhost:80".parse()?;
/// assert_eq!(spec, LocalForwardSpec::new(8080, "localhost", 80));
///
/// // Every interface, and an IPv6 target.
/// let spec: LocalForwardSpec = "*:5432:[fd00::2]:5432".parse()?;
/// assert_eq!(spec.to_string(), "0.0.0.0:5432 -> [fd00::2]:5432");
///
/// let err = "8080:localhost".parse::<LocalForwardSpec>().unwrap_err();
/// assert!(err.to_string().contains("expected [bind_address:]port:host:hostport"));
/// # Ok::<(), spuff::ssh::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalForwardSpec {
    /// Local address to listen on; port 0 picks a free port (see
    /// [`LocalForward::local_addr`](super::LocalForward::local_addr)).
    pub bind: SocketAddr,
    /// Host to connect to, as resolved by the server (`localhost` is the
    /// server itself).
    pub remote_host: String,
    /// Port to connect to.
    pub remote_port: u16,
}

impl LocalForwardSpec {
    /// Listen on 127.0.0.1:`local_port` and forward to `remote_host:remote_port`.
    pub fn new(local_port: u16, remote_host: impl Into<String>, remote_port: u16) -> Self {
        LocalForwardSpec {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local_port),
            remote_host: remote_host.into(),
            remote_port,
        }
    }
}

impl std::fmt::Display for LocalForwardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {}",
            self.bind,
            host_port(&self.remote_host, self.remote_port)
        )
    }
}

impl FromStr for LocalForwardSpec {
    type Err = Error;

    /// Parse OpenSSH `-L` syntax: `port:host:hostport` or
    /// `bind_address:port:host:hostport`. IPv6 addresses go in brackets
    /// (`[::1]:8080:[fd00::2]:80`); a missing bind address means 127.0.0.1,
    /// and `*` (or an empty one) means every interface.
    fn from_str(s: &str) -> Result<Self> {
        const SYNTAX: &str =
            "expected [bind_address:]port:host:hostport, such as 8080:localhost:80";
        let fields = split_spec(s, SYNTAX)?;
        let (bind, port, host, hostport) = match fields.as_slice() {
            [port, host, hostport] => (None, port, host, hostport),
            [bind, port, host, hostport] => (Some(bind.as_str()), port, host, hostport),
            _ => return Err(spec_error(s, format!("{} fields; {SYNTAX}", fields.len()))),
        };
        let ip = match bind {
            None | Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some("" | "*") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(b) => b.parse::<IpAddr>().map_err(|_| {
                spec_error(
                    s,
                    format!(
                        "bind address `{b}` is not an IP address (use an IP, `localhost` or `*`)"
                    ),
                )
            })?,
        };
        Ok(LocalForwardSpec {
            bind: SocketAddr::new(ip, parse_port(s, "local port", port, true)?),
            remote_host: parse_host(s, host)?,
            remote_port: parse_port(s, "remote port", hostport, false)?,
        })
    }
}

/// A remote forward: the server listens on `bind_address:bind_port` and each
/// connection is connected, from here, to `local_host:local_port`. OpenSSH `-R`.
///
/// Pass it to [`Session::forward_remote`](crate::ssh::Session::forward_remote).
/// Build it with [`RemoteForwardSpec::new`], as a struct, or parse it from
/// OpenSSH's syntax; `Display` shows it as
/// `remote localhost:8080 -> localhost:3000`.
///
/// # Examples
///
/// ```
/// use spuff::forward::RemoteForwardSpec;
///
/// let spec: RemoteForwardSpec = "8080:localhost:3000".parse()?;
/// assert_eq!(spec, RemoteForwardSpec::new(8080, "localhost", 3000));
/// assert_eq!(spec.bind_address, "localhost");
///
/// // Port 0: the server picks one.
/// let spec: RemoteForwardSpec = "0:127.0.0.1:3000".parse()?;
/// assert_eq!(spec.bind_port, 0);
/// # Ok::<(), spuff::ssh::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteForwardSpec {
    /// Address for the server to listen on, sent as is: `localhost` (the
    /// server's loopback, the default), an IP, or empty for every interface
    /// (servers only honour that with `GatewayPorts` on).
    pub bind_address: String,
    /// Port for the server to listen on; 0 lets it choose (see
    /// [`RemoteForward::bound_port`](super::RemoteForward::bound_port)).
    pub bind_port: u16,
    /// Host to connect to from this machine.
    pub local_host: String,
    /// Port to connect to.
    pub local_port: u16,
}

impl RemoteForwardSpec {
    /// Listen on the server's loopback at `remote_port` and forward to
    /// `local_host:local_port`.
    pub fn new(remote_port: u16, local_host: impl Into<String>, local_port: u16) -> Self {
        RemoteForwardSpec {
            bind_address: "localhost".into(),
            bind_port: remote_port,
            local_host: local_host.into(),
            local_port,
        }
    }
}

impl std::fmt::Display for RemoteForwardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bind = if self.bind_address.is_empty() {
            "*"
        } else {
            &self.bind_address
        };
        write!(
            f,
            "remote {} -> {}",
            host_port(bind, self.bind_port),
            host_port(&self.local_host, self.local_port)
        )
    }
}

impl FromStr for RemoteForwardSpec {
    type Err = Error;

    /// Parse OpenSSH `-R` syntax: `port:host:hostport` or
    /// `bind_address:port:host:hostport`; port 0 lets the server choose. A
    /// missing bind address means the server's loopback (`localhost`), and
    /// `*` (or an empty one) every interface.
    fn from_str(s: &str) -> Result<Self> {
        const SYNTAX: &str =
            "expected [bind_address:]port:host:hostport, such as 8080:localhost:3000";
        let fields = split_spec(s, SYNTAX)?;
        let (bind, port, host, hostport) = match fields.as_slice() {
            [port, host, hostport] => (None, port, host, hostport),
            [bind, port, host, hostport] => (Some(bind.as_str()), port, host, hostport),
            [_] | [_, _] => {
                return Err(spec_error(
                    s,
                    format!("dynamic (SOCKS) and Unix socket forwards are not supported; {SYNTAX}"),
                ));
            }
            _ => return Err(spec_error(s, format!("{} fields; {SYNTAX}", fields.len()))),
        };
        let bind_address = match bind {
            None => "localhost".to_string(),
            Some("" | "*") => String::new(),
            Some(b) => b.to_string(),
        };
        Ok(RemoteForwardSpec {
            bind_address,
            bind_port: parse_port(s, "remote port", port, true)?,
            local_host: parse_host(s, host)?,
            local_port: parse_port(s, "local port", hostport, false)?,
        })
    }
}

/// `Error::Forward` for the spec as the user wrote it.
fn spec_error(spec: &str, reason: impl Into<String>) -> Error {
    Error::Forward {
        spec: format!("`{spec}`"),
        reason: reason.into(),
    }
}

/// Split on `:` outside brackets, keeping brackets on the fields.
fn split_spec(s: &str, syntax: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_brackets = false;
    for c in s.trim().chars() {
        match c {
            '[' if !in_brackets && cur.is_empty() => {
                in_brackets = true;
                cur.push(c);
            }
            ']' if in_brackets => {
                in_brackets = false;
                cur.push(c);
            }
            ':' if !in_brackets => fields.push(std::mem::take(&mut cur)),
            '[' | ']' => return Err(spec_error(s, format!("misplaced `{c}`; {syntax}"))),
            _ => {
                if !in_brackets && cur.ends_with(']') {
                    return Err(spec_error(s, format!("`:` expected after `]`; {syntax}")));
                }
                cur.push(c);
            }
        }
    }
    if in_brackets {
        return Err(spec_error(s, format!("unclosed `[`; {syntax}")));
    }
    fields.push(cur);
    Ok(fields
        .into_iter()
        .map(|f| {
            // A bracketed field is an IPv6 address (or any host) without its brackets.
            match f.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Some(inner) => inner.to_string(),
                None => f,
            }
        })
        .collect())
}

/// A port field; `zero_ok` where 0 means "pick one".
fn parse_port(spec: &str, what: &str, field: &str, zero_ok: bool) -> Result<u16> {
    match field.parse::<u16>() {
        Ok(0) if !zero_ok => Err(spec_error(spec, format!("{what} must not be 0"))),
        Ok(p) => Ok(p),
        Err(_) if field.is_empty() => Err(spec_error(spec, format!("{what} is missing"))),
        Err(_) => Err(spec_error(
            spec,
            format!("{what} `{field}` is not a port number (0-65535)"),
        )),
    }
}

/// A host field: not empty, no spaces or slashes (a Unix socket path).
fn parse_host(spec: &str, field: &str) -> Result<String> {
    if field.is_empty() {
        return Err(spec_error(spec, "host to connect to is missing"));
    }
    if field.contains(char::is_whitespace) || field.contains('/') {
        return Err(spec_error(
            spec,
            format!("`{field}` is not a host name or address"),
        ));
    }
    Ok(field.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> LocalForwardSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn remote(s: &str) -> RemoteForwardSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn local_err(s: &str) -> String {
        match s.parse::<LocalForwardSpec>() {
            Ok(spec) => panic!("{s} parsed as {spec:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn local_spec_should_default_to_loopback() {
        let s = local("8080:localhost:80");
        assert_eq!(s.bind, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(s.remote_host, "localhost");
        assert_eq!(s.remote_port, 80);
        assert_eq!(s, LocalForwardSpec::new(8080, "localhost", 80));
        assert_eq!(s.to_string(), "127.0.0.1:8080 -> localhost:80");
    }

    #[test]
    fn local_spec_should_take_bind_addresses() {
        assert_eq!(
            local("0.0.0.0:0:db:5432").bind,
            "0.0.0.0:0".parse().expect("address")
        );
        assert_eq!(
            local("*:81:h:1").bind,
            "0.0.0.0:81".parse().expect("address")
        );
        assert_eq!(
            local(":81:h:1").bind,
            "0.0.0.0:81".parse().expect("address")
        );
        assert_eq!(
            local("localhost:81:h:1").bind,
            "127.0.0.1:81".parse().expect("address")
        );
        let s = local("[::1]:8080:[fd00::2]:80");
        assert_eq!(s.bind, "[::1]:8080".parse().expect("address"));
        assert_eq!(s.remote_host, "fd00::2");
        assert_eq!(s.to_string(), "[::1]:8080 -> [fd00::2]:80");
        assert_eq!(local("127.0.0.1:7575:127.0.0.1:7575").remote_port, 7575);
    }

    #[test]
    fn local_spec_should_explain_what_is_wrong() {
        assert!(local_err("8080").contains("[bind_address:]port:host:hostport"));
        assert!(local_err("8080:localhost").contains("2 fields"));
        assert!(local_err("a:b:c:d:e").contains("5 fields"));
        assert!(local_err("x:localhost:80").contains("local port `x` is not a port number"));
        assert!(local_err("70000:localhost:80").contains("local port `70000`"));
        assert!(local_err("8080:localhost:0").contains("remote port must not be 0"));
        assert!(local_err("8080:localhost:").contains("remote port is missing"));
        assert!(local_err("8080::80").contains("host to connect to is missing"));
        assert!(local_err("myhost:8080:h:80").contains("bind address `myhost` is not an IP"));
        assert!(local_err("[::1:8080:h:80").contains("unclosed `[`"));
        assert!(local_err("[::1]x:8080:h:80").contains("`:` expected after `]`"));
        assert!(local_err("8080:h:80x").starts_with("port forward `8080:h:80x`"));
    }

    #[test]
    fn remote_spec_should_parse_openssh_syntax() {
        let r = remote("8080:localhost:3000");
        assert_eq!(r, RemoteForwardSpec::new(8080, "localhost", 3000));
        assert_eq!(r.to_string(), "remote localhost:8080 -> localhost:3000");
        let r = remote("0:127.0.0.1:3000");
        assert_eq!(r.bind_port, 0);
        let r = remote("*:8080:localhost:3000");
        assert_eq!(r.bind_address, "");
        assert_eq!(r.to_string(), "remote *:8080 -> localhost:3000");
        let r = remote("[::1]:9000:[::1]:22");
        assert_eq!(r.bind_address, "::1");
        assert_eq!(r.local_host, "::1");
        let r = remote("vm.internal:9000:127.0.0.1:22");
        assert_eq!(r.bind_address, "vm.internal");
    }

    #[test]
    fn remote_spec_should_refuse_what_it_does_not_support() {
        let e = "1080"
            .parse::<RemoteForwardSpec>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("SOCKS"), "{e}");
        let e = "8080:/tmp/sock"
            .parse::<RemoteForwardSpec>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not supported"), "{e}");
        let e = "8080:h:0"
            .parse::<RemoteForwardSpec>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("local port must not be 0"), "{e}");
    }
}
