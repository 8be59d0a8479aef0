//! One `direct-tcpip` channel as a byte stream: [`TunnelStream`].

use std::pin::Pin;
use std::task::{Context, Poll};

use russh::ChannelStream;
use russh::client::Msg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::host_port;
use crate::ssh::{Error, Result, Session};

/// A TCP connection made from the server to `host:port`, carried over the
/// SSH connection: read and write it like a socket.
///
/// [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown) sends EOF
/// (the far end sees the connection half-closed and can still reply);
/// dropping the stream closes the channel.
pub struct TunnelStream {
    pub(super) inner: ChannelStream<Msg>,
    pub(super) target: String,
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

    pub(super) async fn open_direct_tcpip(
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
