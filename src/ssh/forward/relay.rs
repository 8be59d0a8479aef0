//! What both forward kinds share: copying a connection both ways, and stopping.
//!
//! Local and remote forwards differ only in who listens and who connects.
//! Once a connection has both ends, both kinds carry it the same way: bytes
//! copied each way with half-close passed on, counted for the `Closed`
//! event, cut when the forward shuts down. And both stop the same way: stop
//! accepting, give connections in progress a grace period, then cut them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::event::{EventSink, ForwardEvent};

/// Copy buffer per direction. SSH packets carry up to 32 KiB; a larger buffer
/// lets one read fill several packets on fast links.
const COPY_BUFFER: usize = 64 * 1024;

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
pub(super) async fn relay<P, F>(
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
pub(super) struct Stop {
    pub(super) accepting: CancellationToken,
    pub(super) connections: CancellationToken,
}

/// Wait for every connection in `conns` to end (each watches
/// `Stop::connections` itself and reports its own end).
pub(super) async fn drain(conns: &mut JoinSet<()>) {
    while let Some(res) = conns.join_next().await {
        if let Err(e) = res
            && e.is_panic()
        {
            tracing::warn!("a forwarded connection task panicked");
        }
    }
}

/// Stop a forward: no new connections, then up to `grace` for the ones in
/// progress, then cut them; returns once the forward's task has ended.
pub(super) async fn stop_forward(stop: &Stop, task: &mut Option<JoinHandle<()>>, grace: Duration) {
    stop.accepting.cancel();
    let Some(handle) = task.take() else { return };
    let mut handle = handle;
    if tokio::time::timeout(grace, &mut handle).await.is_err() {
        stop.connections.cancel();
        let _ = handle.await;
    }
}
