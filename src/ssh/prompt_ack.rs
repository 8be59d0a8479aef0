//! Our side of the TCP connection: no Nagle delay, and the server's
//! packets acknowledged at once, so short exchanges do not wait 40 ms.
//!
//! Two delays, both measured on a warm session against a local sshd
//! (issue 14), each about 40 ms, Linux's delayed-ACK timer:
//!
//! - Every `exec` waited 40 ms to start: russh turns Nagle's algorithm off
//!   only on sockets it opens itself, and ours are opened here (with a
//!   timeout), so our second small packet in a row waited for the ACK of
//!   the first. `TCP_NODELAY` fixes it.
//! - The first `exec` of a connection still waited 40 ms: OpenSSH's sshd
//!   leaves Nagle on for sessions without a terminal, so its second small
//!   reply waited for our ACK, which the kernel delays while it thinks the
//!   connection is interactive. Linux's `TCP_QUICKACK` (set again after
//!   each read: the kernel drops it by itself) fixes it; on Windows an ACK
//!   frequency of 1 does the same. Elsewhere (macOS) only the first fix
//!   applies.
//!
//! Every `spuff exec`, `cp` and agent call opens a connection and runs at
//! least one command: this was 40-80 ms of each.

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
