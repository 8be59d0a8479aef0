//! The russh client handler: host key verification and the channels the
//! server opens towards us (agent forwarding, remote port forwards).
//!
//! The handler is owned by russh's session task, so anything the rest of the
//! library needs to change after connecting (whether agent forwarding is on,
//! which remote forwards are registered) lives in [`Shared`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use russh::Channel;
use russh::client::{self, ChannelOpenHandle, Msg};
use russh::keys::PublicKeyOrCertificate;
use tokio::sync::mpsc;

use super::agent::{self, AgentLocation};
use super::error::Error;
use super::known_hosts::HostKeyPolicy;

/// A connection the server forwarded to us for a `tcpip-forward` we requested.
pub struct ForwardedConnection {
    /// The channel carrying the connection.
    pub channel: Channel<Msg>,
    /// Address of the peer that connected on the server side.
    pub originator_address: String,
    /// Port of that peer.
    pub originator_port: u32,
}

impl std::fmt::Debug for ForwardedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardedConnection")
            .field("originator_address", &self.originator_address)
            .field("originator_port", &self.originator_port)
            .finish_non_exhaustive()
    }
}

/// State shared between the handler (inside russh's task) and the session.
#[derive(Default)]
pub(crate) struct Shared {
    /// When set, agent channels opened by the server are relayed to this agent.
    pub(crate) agent_forward: Mutex<Option<AgentLocation>>,
    /// Remote forwards by (bound address, bound port) as the server reports them.
    pub(crate) remote_forwards: Mutex<HashMap<(String, u32), mpsc::Sender<ForwardedConnection>>>,
    /// Set once the connection is gone.
    pub(crate) disconnected: AtomicBool,
    /// Why it went, when known.
    pub(crate) disconnect_reason: Mutex<Option<String>>,
    /// It went because the server stopped answering keepalives.
    pub(crate) unanswered: AtomicBool,
}

impl Shared {
    pub(crate) fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::SeqCst)
    }
}

pub(crate) struct ClientHandler {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) policy: HostKeyPolicy,
    pub(crate) shared: Arc<Shared>,
}

impl client::Handler for ClientHandler {
    type Error = Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // We never advertise certificate host key algorithms, so a server
            // that sends one is misbehaving; we hold no CA to check it against.
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(Error::Config(format!(
                    "{}:{} presented a host certificate, which spuff does not trust",
                    self.host, self.port
                )));
            }
        };
        // File I/O on a few small files; not worth a blocking-pool hop.
        self.policy.verify(&self.host, self.port, key)?;
        Ok(true)
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Error> {
        let location = self
            .shared
            .agent_forward
            .lock()
            .ok()
            .and_then(|g| g.clone());
        let Some(location) = location else {
            // Agent forwarding was not asked for: a server that opens an agent
            // channel anyway gets nothing.
            tracing::warn!(host = %self.host, "refused an agent channel we did not ask for");
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(async move {
            match agent::connect_stream(&location).await {
                Ok((mut agent, _)) => {
                    let mut stream = channel.into_stream();
                    if let Err(e) = tokio::io::copy_bidirectional(&mut stream, &mut agent).await {
                        tracing::debug!(error = %e, "forwarded agent channel ended");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot relay forwarded agent request"),
            }
        });
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Error> {
        let target = self.shared.remote_forwards.lock().ok().and_then(|m| {
            m.get(&(connected_address.to_string(), connected_port))
                .or_else(|| {
                    // Servers may report the bound address differently from how it
                    // was requested ("localhost" vs "127.0.0.1"); the port decides.
                    m.iter()
                        .find(|((_, p), _)| *p == connected_port)
                        .map(|(_, tx)| tx)
                })
                .cloned()
        });
        let Some(tx) = target else {
            tracing::warn!(
                connected_address,
                connected_port,
                "refused a forwarded connection we did not ask for"
            );
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        reply.accept().await;
        let conn = ForwardedConnection {
            channel,
            originator_address: originator_address.to_string(),
            originator_port,
        };
        // Hand over outside the session task so a slow consumer never stalls
        // every other channel on the connection.
        tokio::spawn(async move {
            if tx.send(conn).await.is_err() {
                tracing::debug!(
                    connected_port,
                    "remote forward closed while a connection arrived"
                );
            }
        });
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        self.shared.disconnected.store(true, Ordering::SeqCst);
        let text = match &reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                format!("server disconnected: {}", info.message)
            }
            client::DisconnectReason::Error(e) => {
                if matches!(e, Error::Protocol(russh::Error::KeepaliveTimeout)) {
                    self.shared.unanswered.store(true, Ordering::SeqCst);
                    "the server stopped answering keepalives".to_string()
                } else {
                    e.to_string()
                }
            }
        };
        if let Ok(mut r) = self.shared.disconnect_reason.lock() {
            *r = Some(text);
        }
        match reason {
            client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}
