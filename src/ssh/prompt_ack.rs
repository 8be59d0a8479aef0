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
//!
//! Reads are buffered here too. russh reads each packet in two steps (its
//! first block for the length, then the rest), so a 1 GiB download cost
//! about 68,000 `recv` calls, each followed by the `TCP_QUICKACK` call:
//! measured with `perf stat` on `cargo bench --bench copy`, that was a
//! fifth of the client's CPU time in the kernel. One read of up to
//! [`READ_BUFFER`] bytes now serves several packets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How much one socket read may take ahead of what russh asked for.
const READ_BUFFER: usize = 64 * 1024;

/// A TCP stream that acknowledges every segment as it arrives.
#[derive(Debug)]
pub(crate) struct PromptAck {
    tcp: TcpStream,
    /// Read from the socket, not yet handed on: `buf[pos..end]`.
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
}

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
        let s = PromptAck {
            tcp,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
        };
        s.ack_now();
        s
    }

    fn ack_now(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = socket2::SockRef::from(&self.tcp).set_tcp_quickack(true);
        }
    }
}

impl AsyncRead for PromptAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos == this.end {
            if buf.remaining() >= this.buf.len() {
                // Large enough to take a whole read: no copy through ours.
                let before = buf.filled().len();
                let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
                if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    this.ack_now();
                }
                return r;
            }
            let mut ours = ReadBuf::new(&mut this.buf);
            match Pin::new(&mut this.tcp).poll_read(cx, &mut ours) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let n = ours.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
            this.pos = 0;
            this.end = n;
            this.ack_now();
        }
        let n = buf.remaining().min(this.end - this.pos);
        buf.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PromptAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Reads of every size, small ones served from our buffer and large
    /// ones straight from the socket, return the stream in order and then
    /// its end.
    #[tokio::test]
    async fn reads_of_any_size_should_return_the_stream_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent: Vec<u8> = (0..700_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let to_send = sent.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for part in to_send.chunks(12_345) {
                s.write_all(part).await.unwrap();
            }
        });
        let mut ours = PromptAck::new(TcpStream::connect(addr).await.unwrap());
        let mut got = Vec::new();
        let sizes = [4, 33_000, 1, READ_BUFFER, 70_000, 16];
        for size in sizes.iter().cycle() {
            let mut buf = vec![0; *size];
            let n = ours.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        server.await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the bytes came back out of order");
    }
}
