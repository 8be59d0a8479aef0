//! Local forwards (OpenSSH `-L`): [`LocalForward`].
//!
//! For tools that need a port on this machine (a browser, `psql`, a
//! debugger) to reach a service on or near the VM. A task accepts on the
//! local listener and gives each connection its own `direct-tcpip`
//! channel, so connections run side by side and one slow connection holds
//! up no other. The task also watches the SSH connection: a forward whose
//! connection is gone stops listening rather than accept connections it
//! cannot carry.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::event::{EventSink, ForwardEvent};
use super::host_port;
use super::relay::{Stop, drain, relay, stop_forward};
use super::spec::LocalForwardSpec;
use super::stream::TunnelStream;
use crate::ssh::{Error, Result, Session};

/// A running local forward. Stop it with [`LocalForward::shutdown`]; dropping
/// it stops the listener and lets connections in progress finish.
///
/// Made by [`Session::forward_local`]. It holds a clone of the session, so
/// the SSH connection stays up while the forward runs.
///
/// # Examples
///
/// Reach the VM's PostgreSQL on a free local port for as long as a job runs:
///
/// ```no_run
/// use std::time::Duration;
///
/// use spuff::forward::LocalForwardSpec;
///
/// # async fn run_migrations(_: std::net::SocketAddr) {}
/// # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
/// let forward = session.forward_local("0:localhost:5432".parse()?).await?;
/// run_migrations(forward.local_addr()).await;
/// forward.shutdown_graceful(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
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
    /// asked for port 0): what to tell the local client to connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The forward as asked for.
    pub fn spec(&self) -> &LocalForwardSpec {
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

    /// Stop accepting, close the connections in progress and wait for the
    /// forward's tasks to end. The port is free when this returns.
    ///
    /// Cut connections report a [`ForwardEvent::Closed`] with an error.
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
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use spuff::forward::LocalForwardSpec;
    ///
    /// # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
    /// // ssh -L 8080:localhost:80
    /// let forward = session.forward_local(LocalForwardSpec::new(8080, "localhost", 80)).await?;
    /// println!("open http://{}/", forward.local_addr());
    /// # Ok(()) }
    /// ```
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

/// The forward's task: accept until stopped or the connection is gone, then
/// wait for the connections in progress.
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

/// One accepted connection: open its channel, report, relay until done.
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
