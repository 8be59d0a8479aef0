//! Acknowledge the server's packets at once, so its small replies are not
//! held back for 40 ms each.
//!
//! OpenSSH's sshd leaves Nagle's algorithm on for sessions without a
//! terminal, so when it sends two small packets in a row (a channel's
//! `exit-status`, then `eof` and `close`; an `exec` reply, then window
//! space) the second waits until the first is acknowledged; and a client
//! that has nothing to send acknowledges only when its delayed-ACK timer
//! fires, 40 ms later on Linux. Measured on a warm session against a local
//! sshd: `exec true` took 130 ms, nearly all of it waiting; every
//! `spuff exec`, agent call and tree copy paid it (issue 14).
//!
//! The fix is on our side of the socket: Linux's `TCP_QUICKACK` (set again
//! after each read, because the kernel drops back to delayed ACKs by
//! itself) and Windows' ACK frequency of 1. Elsewhere (macOS) the stream is
//! used as it is.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that acknowledges every segment as it arrives.
#[derive(Debug)]
pub(crate) struct PromptAck(TcpStream);

impl PromptAck {
    /// Also turns Nagle's algorithm off on our side: russh does that only
    /// for sockets it opens itself, and ours are opened here (with a
    /// timeout).
    pub(crate) fn new(tcp: TcpStream) -> PromptAck {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        #[cfg(windows)]
        {
            // Once is enough: this setting stays.
            if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_ack_frequency(1) {
                tracing::debug!("cannot set the TCP ACK frequency: {e}");
            }
        }
        let s = PromptAck(tcp);
        s.ack_now();
        s
    }

    fn ack_now(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
    }
}

impl AsyncRead for PromptAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.ack_now();
        }
        r
    }
}

impl AsyncWrite for PromptAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
