//! SSH connections as activity: a logged-in connection of any client holds
//! the VM while it carries channel traffic, and counts through its last
//! traffic afterwards (issue 12).
//!
//! utmp only lists sessions with a terminal, so `exec` without one, SFTP,
//! port forwards and editors such as VS Code Remote-SSH were invisible and a
//! VM in use was powered off under them. Counting the connections' TCP
//! traffic is not enough either: keepalives are traffic, so a connection
//! left open on a laptop would keep a paid VM alive forever.
//!
//! What counts is the traffic between sshd and the channels' other ends
//! (the pty, the pipes of an `exec` or the SFTP server, a forwarded socket,
//! the forwarded ssh-agent), measured without reading any of it: sshd moves
//! every byte with `read`/`write`, so its `rchar + wchar`
//! (`/proc/PID/io`) is the connection socket's bytes plus the channels'
//! bytes. The socket's share is exact from the kernel's `tcp_info` (bytes
//! received minus the receive queue, bytes acknowledged plus the send
//! queue), read over `NETLINK_SOCK_DIAG` as `ss` does. A keepalive moves
//! bytes only on the socket, so it cancels out.
//!
//! spuff's own requests to the agent (`status --watch` polling through a
//! forwarded channel) must not count either: the agent counts every byte it
//! serves ([`Served`]) and subtracts them. The readings are taken so that
//! every error makes the measured channel bytes smaller, never larger, so a
//! race can delay seeing traffic by one sample but never invent it; see
//! [`Gauge::update`].
//!
//! Only post-authentication sshd processes count (`sshd: alice@notty`,
//! `sshd-session: alice@pts/0`): the bots that knock on every public
//! port 22 never log in, so they cannot keep a VM alive.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The bytes the agent has read and written on all its connections, and the
/// port it listens on: the share of sshd's traffic that is spuff talking to
/// the agent.
#[derive(Debug, Default)]
pub(crate) struct Served {
    bytes: AtomicU64,
    port: AtomicU16,
}

impl Served {
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    pub(crate) fn port(&self) -> Option<u16> {
        match self.port.load(Ordering::SeqCst) {
            0 => None,
            p => Some(p),
        }
    }

    fn add(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }
}

/// A connection to the agent whose bytes are counted as they move.
pub(crate) struct CountingStream {
    inner: TcpStream,
    served: Arc<Served>,
}

impl CountingStream {
    pub(crate) fn new(inner: TcpStream, served: Arc<Served>) -> Self {
        CountingStream { inner, served }
    }
}

impl Served {
    /// Records the port the agent listens on.
    pub(crate) fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::SeqCst);
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.served.add(n);
        res
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res {
            self.served.add(*n);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &res {
            self.served.add(*n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Who a connection is, for people: `alice@notty from 10.0.2.2:51234`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) user: String,
    pub(crate) tty: String,
    pub(crate) from: SocketAddr,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} from {}", self.user, self.tty, self.from)
    }
}

/// One logged-in connection as read at one moment.
#[derive(Debug, Clone)]
pub(crate) struct RawConnection {
    pub(crate) pid: u32,
    pub(crate) peer: Peer,
    /// sshd's `rchar + wchar` minus the connection socket's bytes: the
    /// channels' bytes so far (a lower bound, see the module docs).
    pub(crate) channel_bytes: i128,
    /// The bytes of this process's live connections to the agent.
    pub(crate) agent_bytes: i128,
}

/// One reading of every logged-in connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    pub(crate) connections: Vec<RawConnection>,
    /// Bytes in flight between sshd and the agent: written by one side,
    /// not yet read by the other (agent-side receive queues minus
    /// client-side ones).
    pub(crate) agent_in_flight: i128,
    /// Whether no sshd process moved a byte while the reading was taken
    /// (its counters read the same before and after the sockets), so the
    /// reading is exact rather than a lower bound.
    pub(crate) settled: bool,
}

/// A connection the gauge follows.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) pid: u32,
    pub(crate) peer: Peer,
    pub(crate) seen_at: Instant,
    pub(crate) last_traffic: Option<Instant>,
    first: i128,
    last: i128,
    own_best: i128,
}

/// What changed since the previous reading.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Update {
    pub(crate) opened: Vec<String>,
    pub(crate) closed: Vec<String>,
    /// Connections that carried traffic, when any did.
    pub(crate) traffic_on: Vec<String>,
    /// Whether any channel traffic happened (it may have been on a
    /// connection that has closed since).
    pub(crate) traffic: bool,
}

/// Turns readings into "was there channel traffic since the last one?".
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    tracked: HashMap<u32, Tracked>,
    /// The channel bytes of connections that have closed.
    retired: i128,
    /// The highest total seen; traffic is a total above it.
    reference: Option<i128>,
    /// The previous total, if it was exact.
    previous_exact: Option<i128>,
}

impl Gauge {
    /// Takes a reading and the agent's [`Served`] bytes read *after* it;
    /// `settled` says the agent served nothing while the reading was taken.
    ///
    /// The total compared across readings is the channel bytes of every
    /// connection since it was first seen, minus what the agent served.
    /// Each reading is a lower bound of the truth (the socket's bytes and
    /// the agent's are read after sshd's counters, so they can only be
    /// larger), and the truth never decreases, so a total above the highest
    /// one seen before is real traffic.
    ///
    /// Bytes the agent served that sshd's counters do not show (a
    /// connection that opened, asked the agent and closed between two
    /// readings; `curl` on the VM itself) lower the total for good. The
    /// reference follows the total down once two exact readings in a row
    /// (nothing moved while they were taken) are below it: a low reading
    /// from a race is never exact, so it cannot lower the reference and
    /// turn into invented traffic afterwards.
    pub(crate) fn update(
        &mut self,
        reading: Reading,
        served: u64,
        settled: bool,
        now: Instant,
    ) -> Update {
        let exact = settled && reading.settled;
        let mut update = Update::default();
        let mut rising = Vec::new();
        let mut live: HashMap<u32, Tracked> = HashMap::with_capacity(reading.connections.len());
        for c in reading.connections {
            let own = c.channel_bytes - c.agent_bytes;
            match self.tracked.remove(&c.pid) {
                Some(mut t) if t.peer == c.peer => {
                    t.last = c.channel_bytes;
                    if own > t.own_best {
                        t.own_best = own;
                        rising.push(c.pid);
                    }
                    live.insert(c.pid, t);
                }
                previous => {
                    if let Some(old) = previous {
                        // The pid was reused by another connection.
                        self.retired += old.last - old.first;
                        update.closed.push(old.peer.to_string());
                    }
                    update.opened.push(c.peer.to_string());
                    live.insert(
                        c.pid,
                        Tracked {
                            pid: c.pid,
                            peer: c.peer,
                            seen_at: now,
                            last_traffic: None,
                            first: c.channel_bytes,
                            last: c.channel_bytes,
                            own_best: own,
                        },
                    );
                }
            }
        }
        for (_, gone) in self.tracked.drain() {
            self.retired += gone.last - gone.first;
            update.closed.push(gone.peer.to_string());
        }
        self.tracked = live;

        let total = self.retired
            + self
                .tracked
                .values()
                .map(|t| t.last - t.first)
                .sum::<i128>()
            - i128::from(served)
            - reading.agent_in_flight;
        match self.reference {
            None => self.reference = Some(total),
            Some(r) if total > r => {
                update.traffic = true;
                self.reference = Some(total);
            }
            Some(r) if total < r && exact => {
                if let Some(p) = self.previous_exact.filter(|p| *p < r) {
                    self.reference = Some(p.max(total));
                }
            }
            Some(_) => {}
        }
        self.previous_exact = exact.then_some(total);

        if update.traffic {
            for pid in rising {
                if let Some(t) = self.tracked.get_mut(&pid) {
                    t.last_traffic = Some(now);
                    update.traffic_on.push(t.peer.to_string());
                }
            }
        }
        update
    }

    /// The connections being followed, oldest first.
    pub(crate) fn connections(&self) -> Vec<Tracked> {
        let mut v: Vec<Tracked> = self.tracked.values().cloned().collect();
        v.sort_by_key(|t| (t.seen_at, t.pid));
        v
    }
}

/// Reads every logged-in connection to `ssh_ports`; `agent_port` is where
/// the agent listens (its connections are subtracted).
///
/// # Errors
///
/// When `/proc` or the kernel's socket diagnostics cannot be read.
#[cfg(target_os = "linux")]
pub(crate) fn read(
    proc_dir: &std::path::Path,
    ssh_ports: &[u16],
    agent_port: Option<u16>,
) -> std::io::Result<Reading> {
    linux::read(proc_dir, ssh_ports, agent_port)
}

/// Elsewhere there is no sshd to read: no connections.
#[cfg(not(target_os = "linux"))]
pub(crate) fn read(
    _proc_dir: &std::path::Path,
    _ssh_ports: &[u16],
    _agent_port: Option<u16>,
) -> std::io::Result<Reading> {
    Ok(Reading::default())
}

/// The user and terminal in a post-authentication sshd's process title:
/// `sshd: alice@notty`, `sshd-session: alice@pts/0`, or `sshd: root` (a
/// root login has no separate unprivileged process, and its title names no
/// terminal until a session has one). Titles of processes that are not (yet)
/// a logged-in user's (`sshd: alice [priv]`, `sshd: unknown [net]`, the
/// listener's own command line) give `None`.
// Only the Linux reader reads process titles; the tests run everywhere.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_title(title: &str) -> Option<(String, String)> {
    let title = title.trim_end_matches(['\0', ' ']);
    let (name, rest) = title.split_once(": ")?;
    if !name.starts_with("sshd") || rest.is_empty() || rest.contains([' ', '[', ']']) {
        return None;
    }
    let (user, tty) = rest.rsplit_once('@').unwrap_or((rest, "notty"));
    (!user.is_empty() && !tty.is_empty()).then(|| (user.to_string(), tty.to_string()))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, HashSet};
    use std::io;
    use std::net::{IpAddr, SocketAddr};
    use std::path::Path;

    use netlink_packet_core::{
        NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use netlink_packet_sock_diag::inet::{
        ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, nlas::Nla,
    };
    use netlink_packet_sock_diag::{AF_INET, AF_INET6, IPPROTO_TCP, SockDiagMessage};
    use netlink_sys::{Socket, SocketAddr as NlAddr, protocols::NETLINK_SOCK_DIAG};

    use super::{Peer, RawConnection, Reading, parse_title};

    /// A TCP socket as the kernel accounts it.
    struct Sock {
        local: SocketAddr,
        remote: SocketAddr,
        /// Bytes the owner has read plus bytes it has written.
        app_bytes: i128,
        recv_queue: i128,
    }

    pub(super) fn read(
        proc_dir: &Path,
        ssh_ports: &[u16],
        agent_port: Option<u16>,
    ) -> io::Result<Reading> {
        // sshd's counters first, the sockets after: see `Gauge::update`.
        let mut procs = Vec::new();
        for entry in std::fs::read_dir(proc_dir)? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let dir = entry.path();
            let is_sshd = std::fs::read(dir.join("comm")).is_ok_and(|c| c.starts_with(b"sshd"));
            if !is_sshd {
                continue;
            }
            let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
                continue;
            };
            let title = String::from_utf8_lossy(cmdline.split(|b| *b == 0).next().unwrap_or(&[]));
            let Some((user, tty)) = parse_title(&title) else {
                continue;
            };
            let Some(io_bytes) = read_io(&dir.join("io")) else {
                continue;
            };
            procs.push((pid, dir, user, tty, io_bytes));
        }
        let mut owned: Vec<HashSet<u32>> = Vec::with_capacity(procs.len());
        for (_, dir, ..) in &procs {
            owned.push(socket_inodes(&dir.join("fd")));
        }
        let mut sockets = dump(AF_INET)?;
        sockets.extend(dump(AF_INET6)?);

        let mut reading = Reading {
            settled: procs
                .iter()
                .all(|(_, dir, .., io_bytes)| read_io(&dir.join("io")) == Some(*io_bytes)),
            ..Reading::default()
        };
        if let Some(port) = agent_port {
            for s in sockets.values() {
                if s.local.port() == port && s.local.ip().is_loopback() {
                    reading.agent_in_flight += s.recv_queue;
                } else if s.remote.port() == port && s.remote.ip().is_loopback() {
                    reading.agent_in_flight -= s.recv_queue;
                }
            }
        }
        for ((pid, _, user, tty, io_bytes), inodes) in procs.into_iter().zip(owned) {
            let mine: Vec<&Sock> = inodes.iter().filter_map(|i| sockets.get(i)).collect();
            let Some(client) = mine.iter().find(|s| ssh_ports.contains(&s.local.port())) else {
                continue;
            };
            let agent_bytes = mine
                .iter()
                .filter(|s| {
                    agent_port.is_some_and(|p| s.remote.port() == p && s.remote.ip().is_loopback())
                })
                .map(|s| s.app_bytes)
                .sum();
            reading.connections.push(RawConnection {
                pid,
                peer: Peer {
                    user,
                    tty,
                    from: unmap(client.remote),
                },
                channel_bytes: i128::from(io_bytes) - client.app_bytes,
                agent_bytes,
            });
        }
        Ok(reading)
    }

    /// `rchar + wchar` from `/proc/PID/io`.
    fn read_io(path: &Path) -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        Some(field("rchar:")?.saturating_add(field("wchar:")?))
    }

    /// The inodes of the sockets among a process's open files.
    fn socket_inodes(fd_dir: &Path) -> HashSet<u32> {
        let Ok(entries) = std::fs::read_dir(fd_dir) else {
            return HashSet::new();
        };
        entries
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|target| {
                let t = target.to_str()?;
                t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect()
    }

    /// `::ffff:10.0.2.2` as `10.0.2.2`.
    fn unmap(addr: SocketAddr) -> SocketAddr {
        match addr.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
                None => addr,
            },
            IpAddr::V4(_) => addr,
        }
    }

    /// Offsets in the kernel's `struct tcp_info` (stable ABI since Linux 4.1).
    const BYTES_ACKED: usize = 120;
    const BYTES_RECEIVED: usize = 128;

    fn u64_at(b: &[u8], at: usize) -> Option<u64> {
        let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(u64::from_ne_bytes(bytes))
    }

    /// Every connected TCP socket of one address family, by inode.
    fn dump(family: u8) -> io::Result<HashMap<u32, Sock>> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&NlAddr::new(0, 0))?;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let states = StateFlags::all() - StateFlags::LISTEN - StateFlags::TIME_WAIT;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states,
                socket_id: if family == AF_INET6 {
                    SocketId::new_v6()
                } else {
                    SocketId::new_v4()
                },
            })
            .into(),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        socket.send(&buf, 0)?;

        let bad = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let mut out = HashMap::new();
        loop {
            let (data, _) = socket.recv_from_full()?;
            if data.is_empty() {
                return Err(bad("sock_diag: empty reply".into()));
            }
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&data[offset..])
                    .map_err(|e| bad(format!("sock_diag: {e}")))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        if let Some((inode, sock)) = sock(&r) {
                            out.insert(inode, sock);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return Err(bad(format!("sock_diag: {e}")));
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                // Messages are 4-byte aligned within a datagram.
                offset += (len + 3) & !3;
            }
        }
    }

    fn sock(r: &InetResponse) -> Option<(u32, Sock)> {
        let h = &r.header;
        let info = r.nlas.iter().find_map(|n| match n {
            Nla::TcpInfo(b) => Some(b.as_slice()),
            _ => None,
        })?;
        let acked = u64_at(info, BYTES_ACKED)?;
        let received = u64_at(info, BYTES_RECEIVED)?;
        let (rq, wq) = (i128::from(h.recv_queue), i128::from(h.send_queue));
        let id = &h.socket_id;
        Some((
            h.inode,
            Sock {
                local: SocketAddr::new(id.source_address, id.source_port),
                remote: SocketAddr::new(id.destination_address, id.destination_port),
                // Read by the owner: received minus still queued; written:
                // acknowledged plus still queued.
                app_bytes: i128::from(received) - rq + i128::from(acked) + wq,
                recv_queue: rq,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn titles_should_name_only_logged_in_users() {
        let t = |s: &str| parse_title(s);
        assert_eq!(
            t("sshd: alice@notty"),
            Some(("alice".into(), "notty".into()))
        );
        assert_eq!(
            t("sshd-session: bob@pts/3   "),
            Some(("bob".into(), "pts/3".into()))
        );
        assert_eq!(t("sshd: alice [priv]"), None);
        assert_eq!(t("sshd: unknown [net]"), None);
        assert_eq!(t("sshd: root@notty [preauth]"), None);
        assert_eq!(t("/usr/sbin/sshd -D"), None);
        assert_eq!(
            t("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"),
            None
        );
        assert_eq!(t("bash: x@y"), None);
        assert_eq!(t("sshd: root"), Some(("root".into(), "notty".into())));
        assert_eq!(t("sshd: "), None);
    }

    fn peer(n: u16) -> Peer {
        Peer {
            user: "dev".into(),
            tty: "notty".into(),
            from: SocketAddr::from(([10, 0, 2, 2], n)),
        }
    }

    fn conn(pid: u32, channel: i128, agent: i128) -> RawConnection {
        RawConnection {
            pid,
            peer: peer(pid as u16),
            channel_bytes: channel,
            agent_bytes: agent,
        }
    }

    fn reading(conns: Vec<RawConnection>, in_flight: i128) -> Reading {
        Reading {
            connections: conns,
            agent_in_flight: in_flight,
            settled: true,
        }
    }

    #[test]
    fn channel_bytes_should_be_traffic_and_silence_should_not() {
        let mut g = Gauge::default();
        let t0 = Instant::now();
        let u = g.update(reading(vec![conn(1, 100, 0)], 0), 0, true, t0);
        assert_eq!(u.opened.len(), 1);
        assert!(!u.traffic);
        // Keepalives cancel out: nothing changes.
        assert!(
            !g.update(reading(vec![conn(1, 100, 0)], 0), 0, true, t0)
                .traffic
        );
        // Five bytes of `exec` output.
        let u = g.update(
            reading(vec![conn(1, 105, 0)], 0),
            0,
            true,
            t0 + Duration::from_secs(5),
        );
        assert!(u.traffic);
        assert_eq!(u.traffic_on, vec![peer(1).to_string()]);
        assert_eq!(
            g.connections()[0].last_traffic,
            Some(t0 + Duration::from_secs(5))
        );
    }

    #[test]
    fn agent_requests_should_not_be_traffic() {
        let mut g = Gauge::default();
        let t = Instant::now();
        g.update(reading(vec![conn(1, 0, 0)], 0), 0, true, t);
        // A request in flight: sshd wrote 200 bytes the agent has not read.
        assert!(
            !g.update(reading(vec![conn(1, 200, 200)], 200), 0, true, t)
                .traffic
        );
        // Answered, on a connection that is still open.
        assert!(
            !g.update(reading(vec![conn(1, 2200, 2200)], 0), 2200, true, t)
                .traffic
        );
        // The channel closed: the agent's count carries it.
        assert!(
            !g.update(reading(vec![conn(1, 2200, 0)], 0), 2200, true, t)
                .traffic
        );
        // Then real traffic on top of it counts.
        assert!(
            g.update(reading(vec![conn(1, 2201, 0)], 0), 2200, true, t)
                .traffic
        );
    }

    #[test]
    fn a_deficit_should_be_followed_down_without_inventing_traffic() {
        let mut g = Gauge::default();
        let t = Instant::now();
        g.update(reading(vec![conn(1, 0, 0)], 0), 0, true, t);
        // A status request on a connection that came and went between two
        // readings: the agent served 1000 bytes no reading shows.
        assert!(
            !g.update(reading(vec![conn(1, 0, 0)], 0), 1000, true, t)
                .traffic
        );
        assert!(
            !g.update(reading(vec![conn(1, 0, 0)], 0), 1000, true, t)
                .traffic
        );
        // The reference has followed: 10 bytes of output count at once.
        assert!(
            g.update(reading(vec![conn(1, 10, 0)], 0), 1000, true, t)
                .traffic
        );
        // Low readings from races (never exact) then the truth: no traffic.
        let mut racy = reading(vec![conn(1, 4, 0)], 0);
        racy.settled = false;
        assert!(!g.update(racy.clone(), 1000, true, t).traffic);
        assert!(!g.update(racy, 1000, true, t).traffic);
        assert!(
            !g.update(reading(vec![conn(1, 6, 0)], 0), 1000, false, t)
                .traffic
        );
        assert!(
            !g.update(reading(vec![conn(1, 10, 0)], 0), 1000, true, t)
                .traffic
        );
    }

    #[test]
    fn connections_should_open_close_and_keep_their_bytes() {
        let mut g = Gauge::default();
        let t = Instant::now();
        g.update(reading(vec![conn(1, 50, 0), conn(2, 70, 0)], 0), 0, true, t);
        let u = g.update(reading(vec![conn(2, 70, 0)], 0), 0, true, t);
        assert_eq!(u.closed, vec![peer(1).to_string()]);
        assert!(
            !u.traffic,
            "a closed connection's bytes must not drop or jump"
        );
        let u = g.update(
            reading(vec![conn(2, 70, 0), conn(3, 9000, 0)], 0),
            0,
            true,
            t,
        );
        assert_eq!(u.opened, vec![peer(3).to_string()]);
        assert!(
            !u.traffic,
            "bytes from before a connection was seen are not new"
        );
        assert_eq!(g.connections().len(), 2);
    }
}
