//! One `direct-tcpip` channel as a byte stream: [`TunnelStream`].
//!
//! The CLI talks to the agent on the VM's loopback through such a stream,
//! with no local port that other users of this machine could reach. Local
//! forwards open one per accepted connection and remote forwards wrap the
//! channels the server opens, so this is also where a refused channel is
//! turned into a reason a user can act on.

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
///
/// Made by [`Session::open_tcp_stream`]. It works with anything that takes
/// a tokio stream: [`tokio::io::copy_bidirectional`], an HTTP client
/// connection, a codec. Reads end with EOF when the far end closes.
///
/// # Examples
///
/// ```no_run
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn demo(session: spuff::ssh::Session) -> Result<(), Box<dyn std::error::Error>> {
/// let mut stream = session.open_tcp_stream("127.0.0.1", 8080).await?;
/// stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
/// stream.shutdown().await?; // EOF; the server can still answer
/// let mut reply = Vec::new();
/// stream.read_to_end(&mut reply).await?;
/// println!("{}", String::from_utf8_lossy(&reply));
/// # Ok(()) }
/// ```
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
    /// `host:port` as asked for (IPv6 literals in brackets).
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
    /// Each call opens its own channel, so any number of streams can be open
    /// at once on one session. See [`TunnelStream`] for an example.
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

    /// Open a `direct-tcpip` channel to `host:port`, naming the originator
    /// (the local peer of a forwarded connection) as RFC 4254 section 7.2 asks.
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
