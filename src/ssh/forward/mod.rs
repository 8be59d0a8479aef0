//! Port forwarding over an SSH [`Session`]: in-process tunnels, local (`-L`)
//! and remote (`-R`) forwards.
//!
//! spuff talks to the agent on its VM, and lets users reach services there,
//! without an `ssh` binary and often without a local listener at all, so all
//! three kinds of forward live here on top of russh channels:
//!
//! - [`Session::open_tcp_stream`]: one `direct-tcpip` channel as an
//!   [`AsyncRead`] + [`AsyncWrite`] stream. The CLI speaks HTTP to the agent
//!   through it; nothing else on the machine can reach it.
//! - [`Session::forward_local`]: a local TCP listener whose connections each
//!   get their own channel to a host and port as seen from the server.
//! - [`Session::forward_remote`]: the server listens (`tcpip-forward`) and
//!   sends each connection back to us, and we connect it to a local address.
//!
//! Every forwarded connection is copied both ways with half-close kept: when
//! one side stops sending, the other side sees EOF and can still answer. A
//! forward reports each connection as a [`ForwardEvent`] (for `-v` logging)
//! and stops cleanly with `shutdown().await`, or when dropped.
//!
//! Specs use OpenSSH's syntax, so users can paste what they know:
//!
//! ```
//! use spuff::forward::{LocalForwardSpec, RemoteForwardSpec};
//!
//! let l: LocalForwardSpec = "8080:localhost:80".parse().expect("valid spec");
//! assert_eq!(l.bind.to_string(), "127.0.0.1:8080");
//! let r: RemoteForwardSpec = "0:127.0.0.1:3000".parse().expect("valid spec");
//! assert_eq!(r.bind_port, 0);
//! ```
//!
//! A running forward holds a clone of its [`Session`], so the SSH connection
//! stays up for as long as the forward does.
//!
//! # Stopping
//!
//! [`LocalForward::shutdown`] and [`RemoteForward::shutdown`] stop accepting,
//! cut the connections in progress and return once the forward's tasks have
//! ended; the `shutdown_graceful` variants first give connections a grace
//! period. Dropping a forward stops it accepting and lets its connections
//! finish in the background. A local forward also stops by itself when the
//! SSH connection is lost.
//!
//! # Errors
//!
//! Everything returns the SSH layer's [`Error`](crate::ssh::Error):
//! `Error::Forward` for a spec that does not parse or a listener that cannot
//! be set up, `Error::ChannelRefused` when the server will not connect or
//! listen (the reason says which `sshd_config` setting to look at),
//! `Error::ConnectionLost` when the connection is gone. Once a forward runs,
//! a connection that fails is not an error of the forward: it is reported
//! as a [`ForwardEvent::Failed`] and the forward goes on.
//!
//! Dynamic (SOCKS, `-D`) forwards and Unix socket forwards are not supported.
//!
//! Runnable program: `examples/tunnel.rs` (a local forward until Ctrl-C,
//! with a line per connection).
//!
//! [`Session`]: crate::ssh::Session
//! [`Session::open_tcp_stream`]: crate::ssh::Session::open_tcp_stream
//! [`Session::forward_local`]: crate::ssh::Session::forward_local
//! [`Session::forward_remote`]: crate::ssh::Session::forward_remote
//! [`AsyncRead`]: tokio::io::AsyncRead
//! [`AsyncWrite`]: tokio::io::AsyncWrite

mod event;
mod local;
mod relay;
mod remote;
mod spec;
mod stream;

pub use event::ForwardEvent;
pub use local::LocalForward;
pub use remote::RemoteForward;
pub use spec::{LocalForwardSpec, RemoteForwardSpec};
pub use stream::TunnelStream;

/// `host:port`, with IPv6 literals in brackets, as OpenSSH and URLs write it.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
