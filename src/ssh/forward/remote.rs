//! Remote forwards (OpenSSH `-R`): [`RemoteForward`].
//!
//! For letting the VM reach a service on this machine (a dev server, a
//! local registry). The server does the listening (`tcpip-forward`, RFC 4254
//! section 7.1) and opens a `forwarded-tcpip` channel per connection. Those
//! arrive in the connection's handler, which looks the listening address
//! and port up in a table this module registers forwards in, and queues the
//! channel to the forward's task; the task connects it to the local target.

use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::event::{EventSink, ForwardEvent};
use super::host_port;
use super::relay::{Stop, drain, relay, stop_forward};
use super::spec::RemoteForwardSpec;
use super::stream::TunnelStream;
use crate::ssh::{Error, ForwardedConnection, Result, Session};

/// How many server-side connections may wait for us to pick them up.
const REMOTE_BACKLOG: usize = 64;

/// A running remote forward. Stop it with [`RemoteForward::shutdown`], which
/// also tells the server to stop listening; dropping it does the same in the
/// background.
///
/// Made by [`Session::forward_remote`]. It holds a clone of the session, so
/// the SSH connection stays up while the forward runs. One session can run
/// many remote forwards, each on its own address and port.
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
    /// for port 0): what to tell clients on the VM to connect to.
    pub fn bound_port(&self) -> u16 {
        self.bound_port
    }

    /// The forward as asked for.
    pub fn spec(&self) -> &RemoteForwardSpec {
        &self.spec
    }

    /// The connection events, from the start; `Some` on the first call only.
    /// Events not read pile up to a limit, then newer ones are dropped.
    ///
    /// Reading them is optional. The receiver ends once the forward has
    /// stopped and its last connection has reported. See [`ForwardEvent`]
    /// for an example.
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

/// Ask the server to stop listening for `address:port` (`cancel-tcpip-forward`).
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
    ///
    /// A connection whose local target refuses is reported as a
    /// [`ForwardEvent::Failed`]; the forward goes on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use spuff::forward::RemoteForwardSpec;
    ///
    /// # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
    /// // ssh -R 0:localhost:3000: the VM reaches our dev server on a port it picks.
    /// let forward = session.forward_remote(RemoteForwardSpec::new(0, "localhost", 3000)).await?;
    /// let cmd = format!("curl -s http://localhost:{}/", forward.bound_port());
    /// let out = session.exec(&cmd).await?;
    /// println!("{}", String::from_utf8_lossy(&out.stdout));
    /// forward.shutdown().await?;
    /// # Ok(()) }
    /// ```
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

    /// Route the server's connections for `spec.bind_address:port` to `tx`;
    /// one forward per address and port on a session.
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

/// The forward's task: take the connections the handler queues until
/// stopped or unregistered, then wait for the ones in progress.
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

/// One connection from the server: connect to the local target, report,
/// relay until done.
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
