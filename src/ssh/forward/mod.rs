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

use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use russh::ChannelStream;
use russh::client::Msg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::ssh::{Error, ForwardedConnection, Result, Session};

/// Events kept for a consumer that has not called `events()` yet, or reads
/// slowly; beyond this they are dropped rather than held without bound.
const EVENT_BUFFER: usize = 1024;

/// Copy buffer per direction. SSH packets carry up to 32 KiB; a larger buffer
/// lets one read fill several packets on fast links.
const COPY_BUFFER: usize = 64 * 1024;

/// How many server-side connections may wait for us to pick them up.
const REMOTE_BACKLOG: usize = 64;

// ---------------------------------------------------------------------------
// In-process tunnels
// ---------------------------------------------------------------------------

/// A TCP connection made from the server to `host:port`, carried over the
/// SSH connection: read and write it like a socket.
///
/// [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown) sends EOF
/// (the far end sees the connection half-closed and can still reply);
/// dropping the stream closes the channel.
pub struct TunnelStream {
    inner: ChannelStream<Msg>,
    target: String,
}

impl std::fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelStream")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl TunnelStream {
    /// `host:port` as asked for.
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // russh refuses empty writes; the socket convention is "wrote nothing".
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Session {
    /// Open a TCP connection from the server to `host:port` (a `direct-tcpip`
    /// channel) and return it as a stream, with no local listener.
    ///
    /// `host` is resolved by the server: `127.0.0.1` is the server itself.
    ///
    /// # Errors
    /// [`Error::ChannelRefused`] naming `host:port` when the server cannot
    /// connect (nothing listens there) or does not allow forwarding;
    /// [`Error::ConnectionLost`] when the SSH connection is gone.
    pub async fn open_tcp_stream(&self, host: &str, port: u16) -> Result<TunnelStream> {
        // The originator is informational for the server; we have no socket.
        let channel = self.open_direct_tcpip(host, port, "127.0.0.1", 0).await?;
        Ok(TunnelStream {
            inner: channel.into_stream(),
            target: host_port(host, port),
        })
    }

    async fn open_direct_tcpip(
        &self,
        host: &str,
        port: u16,
        originator: &str,
        originator_port: u16,
    ) -> Result<russh::Channel<Msg>> {
        let operation = format!("tunnel to {}", host_port(host, port));
        let open = self.handle().channel_open_direct_tcpip(
            host,
            u32::from(port),
            originator,
            u32::from(originator_port),
        );
        open.await.map_err(|e| match e {
            russh::Error::ChannelOpenFailure(reason) if !self.is_closed() => {
                Error::ChannelRefused {
                    host: self.host().to_string(),
                    port: self.port(),
                    operation,
                    reason: open_failure_reason(&reason, host, port),
                }
            }
            other => self.op_error(&operation, other),
        })
    }
}

/// Say why the server would not open a tunnel in words a user can act on.
fn open_failure_reason(reason: &russh::ChannelOpenFailure, host: &str, port: u16) -> String {
    let target = host_port(host, port);
    match reason {
        russh::ChannelOpenFailure::ConnectFailed => {
            format!(
                "the server could not connect to {target} (nothing listening there, or unreachable from the server)"
            )
        }
        russh::ChannelOpenFailure::AdministrativelyProhibited => format!(
            "forwarding to {target} is not allowed by the server (AllowTcpForwarding or PermitOpen in sshd_config)"
        ),
        russh::ChannelOpenFailure::ResourceShortage => {
            format!("the server is out of resources for a tunnel to {target}")
        }
        russh::ChannelOpenFailure::UnknownChannelType => {
            "the server does not support TCP forwarding (direct-tcpip)".to_string()
        }
        russh::ChannelOpenFailure::Other { code, reason } => {
            format!("connecting to {target} failed (code {code}): {reason}")
        }
    }
}

/// `host:port`, with IPv6 literals in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// What happened to one forwarded connection, for logging.
///
/// The peer is whoever connected: a local client for a local forward, a
/// client on the server for a remote forward.
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardEvent {
    /// A connection arrived and its other end is connected.
    Opened {
        /// Connection number, unique within the forward, from 1.
        id: u64,
        /// `address:port` of the peer.
        peer: String,
    },
    /// A connection ended; the counts are what moved before it did.
    Closed {
        /// Connection number.
        id: u64,
        /// `address:port` of the peer.
        peer: String,
        /// Bytes the peer sent through the forward.
        from_peer: u64,
        /// Bytes sent back to the peer.
        to_peer: u64,
        /// How long it was open.
        duration: Duration,
        /// Set when the connection broke or was cut by a shutdown rather than
        /// ending normally.
        error: Option<std::io::Error>,
    },
    /// A connection arrived but its other end could not be reached; the peer
    /// was disconnected.
    Failed {
        /// Connection number.
        id: u64,
        /// `address:port` of the peer.
        peer: String,
        /// Why (for a local forward usually [`Error::ChannelRefused`]).
        error: Error,
    },
}

impl std::fmt::Display for ForwardEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardEvent::Opened { id, peer } => write!(f, "#{id} opened from {peer}"),
            ForwardEvent::Closed {
                id,
                peer,
                from_peer,
                to_peer,
                duration,
                error,
            } => {
                write!(
                    f,
                    "#{id} from {peer} closed after {:.1}s ({from_peer} bytes sent, {to_peer} received)",
                    duration.as_secs_f64()
                )?;
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            ForwardEvent::Failed { id, peer, error } => {
                write!(f, "#{id} from {peer} failed: {error}")
            }
        }
    }
}

/// Where a forward's tasks send events. Sends never wait: a slow or absent
/// reader loses events, never connections.
#[derive(Clone)]
struct EventSink {
    tx: mpsc::Sender<ForwardEvent>,
    next_id: Arc<AtomicU64>,
}

impl EventSink {
    fn new() -> (EventSink, mpsc::Receiver<ForwardEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let sink = EventSink {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
        };
        (sink, rx)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn emit(&self, event: ForwardEvent) {
        if let Err(mpsc::error::TrySendError::Full(e)) = self.tx.try_send(event) {
            tracing::debug!(event = %e, "forward event dropped: reader too slow");
        }
    }
}

// ---------------------------------------------------------------------------
// Copying
// ---------------------------------------------------------------------------

/// Counts bytes read through a stream, so that a connection cut short can
/// still say how much it moved.
struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copy between the peer's side and the far side until both directions have
/// ended (EOF is passed on each way, so half-closed connections keep working),
/// or until `cancel` fires, then report the connection closed.
async fn relay<P, F>(
    peer_side: P,
    far_side: F,
    id: u64,
    peer: String,
    started: Instant,
    events: &EventSink,
    cancel: &CancellationToken,
) where
    P: AsyncRead + AsyncWrite + Unpin,
    F: AsyncRead + AsyncWrite + Unpin,
{
    let from_peer = Arc::new(AtomicU64::new(0));
    let to_peer = Arc::new(AtomicU64::new(0));
    let mut a = Counted {
        inner: peer_side,
        read: from_peer.clone(),
    };
    let mut b = Counted {
        inner: far_side,
        read: to_peer.clone(),
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, COPY_BUFFER, COPY_BUFFER);
    let error = tokio::select! {
        res = copy => res.err(),
        () = cancel.cancelled() => Some(std::io::Error::other("closed by forward shutdown")),
    };
    if let Some(e) = &error {
        tracing::debug!(id, peer, error = %e, "forwarded connection ended with an error");
    }
    events.emit(ForwardEvent::Closed {
        id,
        peer,
        from_peer: from_peer.load(Ordering::Relaxed),
        to_peer: to_peer.load(Ordering::Relaxed),
        duration: started.elapsed(),
        error,
    });
}

/// Stop signal shared by both forward kinds: `accepting` stops taking new
/// connections, `connections` cuts the ones in progress.
#[derive(Clone, Default)]
struct Stop {
    accepting: CancellationToken,
    connections: CancellationToken,
}

/// Wait for every connection in `conns` to end (each watches
/// `Stop::connections` itself and reports its own end).
async fn drain(conns: &mut JoinSet<()>) {
    while let Some(res) = conns.join_next().await {
        if let Err(e) = res
            && e.is_panic()
        {
            tracing::warn!("a forwarded connection task panicked");
        }
    }
}

async fn stop_forward(stop: &Stop, task: &mut Option<JoinHandle<()>>, grace: Duration) {
    stop.accepting.cancel();
    let Some(handle) = task.take() else { return };
    let mut handle = handle;
    if tokio::time::timeout(grace, &mut handle).await.is_err() {
        stop.connections.cancel();
        let _ = handle.await;
    }
}

// ---------------------------------------------------------------------------
// Local forwards
// ---------------------------------------------------------------------------

/// A local forward: listen on `bind` and connect each connection, through the
/// server, to `remote_host:remote_port`. OpenSSH `-L`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalForwardSpec {
    /// Local address to listen on; port 0 picks a free port (see
    /// [`LocalForward::local_addr`]).
    pub bind: SocketAddr,
    /// Host to connect to, as resolved by the server.
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

/// A running local forward. Stop it with [`LocalForward::shutdown`]; dropping
/// it stops the listener and lets connections in progress finish.
pub struct LocalForward {
    spec: LocalForwardSpec,
    local_addr: SocketAddr,
    events: Option<mpsc::Receiver<ForwardEvent>>,
    stop: Stop,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalForward")
            .field("spec", &self.spec)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl LocalForward {
    /// The address actually listened on (with the chosen port when the spec
    /// asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The forward as asked for.
    pub fn spec(&self) -> &LocalForwardSpec {
        &self.spec
    }

    /// The connection events, from the start; `Some` on the first call only.
    /// Events not read pile up to a limit, then newer ones are dropped.
    pub fn events(&mut self) -> Option<mpsc::Receiver<ForwardEvent>> {
        self.events.take()
    }

    /// Stop accepting, close the connections in progress and wait for the
    /// forward's tasks to end. The port is free when this returns.
    pub async fn shutdown(self) {
        self.shutdown_graceful(Duration::ZERO).await;
    }

    /// Stop accepting, give connections in progress up to `grace` to finish,
    /// then close the rest and wait for the forward's tasks to end.
    pub async fn shutdown_graceful(mut self, grace: Duration) {
        stop_forward(&self.stop, &mut self.task, grace).await;
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        // The task notices, closes the listener and ends once connections in
        // progress have.
        self.stop.accepting.cancel();
    }
}

impl Session {
    /// Listen on `spec.bind` and forward each connection, through the server,
    /// to `spec.remote_host:spec.remote_port` (OpenSSH `-L`).
    ///
    /// Each connection gets its own channel, so many can run at once. The
    /// remote end is only tried when a connection arrives: a target that
    /// refuses shows up as a [`ForwardEvent::Failed`], not here.
    ///
    /// # Errors
    /// [`Error::Forward`] when the local address cannot be listened on (in
    /// use, not permitted).
    pub async fn forward_local(&self, spec: LocalForwardSpec) -> Result<LocalForward> {
        let listener = TcpListener::bind(spec.bind)
            .await
            .map_err(|e| Error::Forward {
                spec: spec.to_string(),
                reason: format!("cannot listen on {}: {e}", spec.bind),
            })?;
        let local_addr = listener.local_addr().map_err(|e| Error::Forward {
            spec: spec.to_string(),
            reason: format!("cannot read the listening address: {e}"),
        })?;
        let (events, rx) = EventSink::new();
        let stop = Stop::default();
        let task = tokio::spawn(run_local(
            self.clone(),
            listener,
            spec.clone(),
            events,
            stop.clone(),
        ));
        tracing::debug!(%spec, %local_addr, "local forward listening");
        Ok(LocalForward {
            spec,
            local_addr,
            events: Some(rx),
            stop,
            task: Some(task),
        })
    }
}

async fn run_local(
    session: Session,
    listener: TcpListener,
    spec: LocalForwardSpec,
    events: EventSink,
    stop: Stop,
) {
    let mut conns = JoinSet::new();
    // Nothing tells us when the SSH connection drops; look now and then so a
    // dead forward stops listening instead of taking connections it cannot
    // carry.
    let mut liveness = tokio::time::interval(Duration::from_secs(1));
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.accepting.cancelled() => break,
            _ = liveness.tick() => {}
            // Reap finished connections as we go so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let id = events.next_id();
                    let fut = local_connection(session.clone(), spec.clone(), tcp, peer, id, events.clone(), stop.connections.clone());
                    conns.spawn(fut);
                }
                Err(e) => {
                    // Usually out of file descriptors: wait for some to free
                    // up instead of spinning.
                    tracing::warn!(error = %e, %spec, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        if session.is_closed() {
            tracing::debug!(%spec, "ssh connection gone; local forward stops");
            break;
        }
    }
    // No new connections from here on: the port is released now.
    drop(listener);
    drain(&mut conns).await;
    tracing::debug!(%spec, "local forward stopped");
}

async fn local_connection(
    session: Session,
    spec: LocalForwardSpec,
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    events: EventSink,
    cancel: CancellationToken,
) {
    let started = Instant::now();
    let peer_text = peer.to_string();
    let originator = peer.ip().to_string();
    let open = session.open_direct_tcpip(
        &spec.remote_host,
        spec.remote_port,
        &originator,
        peer.port(),
    );
    let channel = tokio::select! {
        res = open => res,
        () = cancel.cancelled() => return,
    };
    let channel = match channel {
        Ok(c) => c,
        Err(error) => {
            tracing::debug!(%spec, peer = %peer_text, %error, "forwarded connection failed");
            events.emit(ForwardEvent::Failed {
                id,
                peer: peer_text,
                error,
            });
            return;
        }
    };
    events.emit(ForwardEvent::Opened {
        id,
        peer: peer_text.clone(),
    });
    let tunnel = TunnelStream {
        inner: channel.into_stream(),
        target: host_port(&spec.remote_host, spec.remote_port),
    };
    relay(tcp, tunnel, id, peer_text, started, &events, &cancel).await;
}

// ---------------------------------------------------------------------------
// Remote forwards
// ---------------------------------------------------------------------------

/// A remote forward: the server listens on `bind_address:bind_port` and each
/// connection is connected, from here, to `local_host:local_port`. OpenSSH `-R`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteForwardSpec {
    /// Address for the server to listen on, sent as is: `localhost` (the
    /// server's loopback, the default), an IP, or empty for every interface
    /// (servers only honour that with `GatewayPorts` on).
    pub bind_address: String,
    /// Port for the server to listen on; 0 lets it choose (see
    /// [`RemoteForward::bound_port`]).
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

/// A running remote forward. Stop it with [`RemoteForward::shutdown`], which
/// also tells the server to stop listening; dropping it does the same in the
/// background.
pub struct RemoteForward {
    session: Session,
    spec: RemoteForwardSpec,
    bound_port: u16,
    events: Option<mpsc::Receiver<ForwardEvent>>,
    stop: Stop,
    task: Option<JoinHandle<()>>,
    cancelled: bool,
}

impl std::fmt::Debug for RemoteForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteForward")
            .field("spec", &self.spec)
            .field("bound_port", &self.bound_port)
            .finish_non_exhaustive()
    }
}

impl RemoteForward {
    /// The port the server listens on (the one it chose when the spec asked
    /// for port 0).
    pub fn bound_port(&self) -> u16 {
        self.bound_port
    }

    /// The forward as asked for.
    pub fn spec(&self) -> &RemoteForwardSpec {
        &self.spec
    }

    /// The connection events, from the start; `Some` on the first call only.
    /// Events not read pile up to a limit, then newer ones are dropped.
    pub fn events(&mut self) -> Option<mpsc::Receiver<ForwardEvent>> {
        self.events.take()
    }

    /// Ask the server to stop listening, close the connections in progress
    /// and wait for the forward's tasks to end.
    ///
    /// # Errors
    /// [`Error::ChannelRefused`] when the server refuses to cancel the
    /// listener, [`Error::ConnectionLost`] when the connection is gone
    /// (its listener went with it). Local cleanup happens either way.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown_graceful(Duration::ZERO).await
    }

    /// Like [`RemoteForward::shutdown`], giving connections in progress up to
    /// `grace` to finish first.
    ///
    /// # Errors
    /// As for [`RemoteForward::shutdown`].
    pub async fn shutdown_graceful(mut self, grace: Duration) -> Result<()> {
        self.cancelled = true;
        self.unregister();
        let res = if self.session.is_closed() {
            Err(self.session.lost("cancelling a remote forward"))
        } else {
            cancel_remote(&self.session, &self.spec.bind_address, self.bound_port).await
        };
        stop_forward(&self.stop, &mut self.task, grace).await;
        res
    }

    /// Forget the forward in the connection's table: connections the server
    /// still sends are refused, and the task sees its queue close.
    fn unregister(&self) {
        if let Ok(mut map) = self.session.shared().remote_forwards.lock() {
            map.remove(&(self.spec.bind_address.clone(), u32::from(self.bound_port)));
        }
    }
}

impl Drop for RemoteForward {
    fn drop(&mut self) {
        if self.cancelled {
            return;
        }
        self.unregister();
        self.stop.accepting.cancel();
        // Telling the server needs a round trip; do it in the background when
        // a runtime is around (it goes with the connection otherwise).
        if let Ok(rt) = tokio::runtime::Handle::try_current()
            && !self.session.is_closed()
        {
            let session = self.session.clone();
            let address = self.spec.bind_address.clone();
            let port = self.bound_port;
            rt.spawn(async move {
                if let Err(e) = cancel_remote(&session, &address, port).await {
                    tracing::debug!(error = %e, "cancelling a dropped remote forward failed");
                }
            });
        }
    }
}

async fn cancel_remote(session: &Session, address: &str, port: u16) -> Result<()> {
    session
        .handle()
        .cancel_tcpip_forward(address, u32::from(port))
        .await
        .map_err(|e| {
            session.op_error(
                &format!("cancel remote forward on {}", host_port(address, port)),
                e,
            )
        })
}

impl Session {
    /// Ask the server to listen on `spec.bind_address:spec.bind_port` and
    /// connect each connection it gets, from here, to
    /// `spec.local_host:spec.local_port` (OpenSSH `-R`).
    ///
    /// # Errors
    /// [`Error::Forward`] when this session already forwards that address and
    /// port; [`Error::ChannelRefused`] when the server refuses to listen
    /// (port in use or privileged, forwarding disabled);
    /// [`Error::ConnectionLost`] when the connection is gone.
    pub async fn forward_remote(&self, spec: RemoteForwardSpec) -> Result<RemoteForward> {
        let (tx, rx) = mpsc::channel::<ForwardedConnection>(REMOTE_BACKLOG);
        let address = spec.bind_address.clone();
        // With a fixed port, register before asking so that a connection
        // arriving right after the server starts listening finds its way.
        // With port 0 nobody can know the port before we return it, so
        // registering once the server has told us is early enough.
        if spec.bind_port != 0 {
            self.register_remote(&spec, spec.bind_port, tx.clone())?;
        }
        let operation = format!("remote forward on {}", host_port(&address, spec.bind_port));
        let bound = match self
            .handle()
            .tcpip_forward(address.as_str(), u32::from(spec.bind_port))
            .await
        {
            // A request for a fixed port is answered without the port.
            Ok(_) if spec.bind_port != 0 => spec.bind_port,
            Ok(p) => match u16::try_from(p) {
                Ok(p) if p != 0 => p,
                _ => {
                    let _ = self
                        .handle()
                        .cancel_tcpip_forward(address.as_str(), p)
                        .await;
                    return Err(Error::Forward {
                        spec: spec.to_string(),
                        reason: format!("the server reported an invalid bound port {p}"),
                    });
                }
            },
            Err(e) => {
                if spec.bind_port != 0
                    && let Ok(mut map) = self.shared().remote_forwards.lock()
                {
                    map.remove(&(address.clone(), u32::from(spec.bind_port)));
                }
                return Err(match e {
                    russh::Error::RequestDenied if !self.is_closed() => Error::ChannelRefused {
                        host: self.host().to_string(),
                        port: self.port(),
                        operation,
                        reason: "the server would not listen there (port in use or privileged, or forwarding disabled by AllowTcpForwarding)".into(),
                    },
                    other => self.op_error(&operation, other),
                });
            }
        };
        if spec.bind_port == 0
            && let Err(e) = self.register_remote(&spec, bound, tx)
        {
            let _ = self
                .handle()
                .cancel_tcpip_forward(address.as_str(), u32::from(bound))
                .await;
            return Err(e);
        }
        let (events, events_rx) = EventSink::new();
        let stop = Stop::default();
        let task = tokio::spawn(run_remote(rx, spec.clone(), events, stop.clone()));
        tracing::debug!(%spec, bound, "remote forward listening");
        Ok(RemoteForward {
            session: self.clone(),
            spec,
            bound_port: bound,
            events: Some(events_rx),
            stop,
            task: Some(task),
            cancelled: false,
        })
    }

    fn register_remote(
        &self,
        spec: &RemoteForwardSpec,
        port: u16,
        tx: mpsc::Sender<ForwardedConnection>,
    ) -> Result<()> {
        let mut map = self
            .shared()
            .remote_forwards
            .lock()
            .map_err(|_| Error::Forward {
                spec: spec.to_string(),
                reason: "internal state poisoned by an earlier panic".into(),
            })?;
        match map.entry((spec.bind_address.clone(), u32::from(port))) {
            Entry::Occupied(_) => Err(Error::Forward {
                spec: spec.to_string(),
                reason: format!(
                    "this session already forwards {}",
                    host_port(&spec.bind_address, port)
                ),
            }),
            Entry::Vacant(v) => {
                v.insert(tx);
                Ok(())
            }
        }
    }
}

async fn run_remote(
    mut incoming: mpsc::Receiver<ForwardedConnection>,
    spec: RemoteForwardSpec,
    events: EventSink,
    stop: Stop,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.accepting.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            conn = incoming.recv() => match conn {
                Some(conn) => {
                    let id = events.next_id();
                    conns.spawn(remote_connection(spec.clone(), conn, id, events.clone(), stop.connections.clone()));
                }
                // Unregistered, or the connection is gone.
                None => break,
            },
        }
    }
    // Connections still queued are dropped, which closes their channels.
    drop(incoming);
    drain(&mut conns).await;
    tracing::debug!(%spec, "remote forward stopped");
}

async fn remote_connection(
    spec: RemoteForwardSpec,
    conn: ForwardedConnection,
    id: u64,
    events: EventSink,
    cancel: CancellationToken,
) {
    let started = Instant::now();
    let peer = host_port(
        &conn.originator_address,
        u16::try_from(conn.originator_port).unwrap_or(0),
    );
    let target = host_port(&spec.local_host, spec.local_port);
    let connect = TcpStream::connect((spec.local_host.as_str(), spec.local_port));
    let tcp = tokio::select! {
        res = connect => res,
        () = cancel.cancelled() => return,
    };
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(%spec, %peer, error = %e, "cannot connect a remote-forwarded connection");
            events.emit(ForwardEvent::Failed {
                id,
                peer,
                error: Error::Forward {
                    spec: spec.to_string(),
                    reason: format!("cannot connect to {target}: {e}"),
                },
            });
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    events.emit(ForwardEvent::Opened {
        id,
        peer: peer.clone(),
    });
    // Here the peer is at the channel's end.
    let tunnel = TunnelStream {
        inner: conn.channel.into_stream(),
        target,
    };
    relay(tunnel, tcp, id, peer, started, &events, &cancel).await;
}

// ---------------------------------------------------------------------------
// Spec parsing
// ---------------------------------------------------------------------------

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

    #[test]
    fn events_should_read_well() {
        let e = ForwardEvent::Closed {
            id: 3,
            peer: "127.0.0.1:5555".into(),
            from_peer: 10,
            to_peer: 20,
            duration: Duration::from_millis(1500),
            error: None,
        };
        assert_eq!(
            e.to_string(),
            "#3 from 127.0.0.1:5555 closed after 1.5s (10 bytes sent, 20 received)"
        );
    }
}
