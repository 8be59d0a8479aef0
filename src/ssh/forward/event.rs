//! What forwards report about each connection: [`ForwardEvent`].
//!
//! A forward runs in background tasks and the library never prints, yet the
//! CLI's `-v` wants a line per connection. So each forward hands its owner a
//! bounded channel of events. Sending never waits: a reader that is slow, or
//! never reads, loses events and never holds up a connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ssh::Error;

/// Events kept for a consumer that has not called `events()` yet, or reads
/// slowly; beyond this they are dropped rather than held without bound.
const EVENT_BUFFER: usize = 1024;

/// What happened to one forwarded connection, for logging.
///
/// The peer is whoever connected: a local client for a local forward, a
/// client on the server for a remote forward. A connection normally gets an
/// `Opened` then a `Closed`, or a single `Failed`; one cut by a shutdown
/// while its other end was still connecting gets none, and events are
/// dropped while the reader is 1024 behind. `Display` gives one log line (`#3 from 127.0.0.1:50412 closed after 1.5s (10 bytes sent, 20
/// received)`).
///
/// Read them from [`LocalForward::events`](super::LocalForward::events) or
/// [`RemoteForward::events`](super::RemoteForward::events).
///
/// # Examples
///
/// ```no_run
/// use spuff::forward::{ForwardEvent, LocalForwardSpec};
///
/// # async fn demo(session: spuff::ssh::Session) -> Result<(), spuff::ssh::Error> {
/// let mut forward = session.forward_local(LocalForwardSpec::new(0, "localhost", 5432)).await?;
/// if let Some(mut events) = forward.events() {
///     tokio::spawn(async move {
///         while let Some(event) = events.recv().await {
///             match event {
///                 ForwardEvent::Failed { error, .. } => eprintln!("failed: {error}"),
///                 other => eprintln!("{other}"),
///             }
///         }
///     });
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardEvent {
    /// A connection arrived and its other end is connected.
    Opened {
        /// Connection number, unique within the forward, from 1.
        id: u64,
        /// `address:port` of the peer.
        peer: String,
    },
    /// A connection ended; the counts are what moved before it did.
    Closed {
        /// Connection number.
        id: u64,
        /// `address:port` of the peer.
        peer: String,
        /// Bytes the peer sent through the forward.
        from_peer: u64,
        /// Bytes sent back to the peer.
        to_peer: u64,
        /// How long it was open.
        duration: Duration,
        /// Set when the connection broke or was cut by a shutdown rather than
        /// ending normally.
        error: Option<std::io::Error>,
    },
    /// A connection arrived but its other end could not be reached; the peer
    /// was disconnected.
    Failed {
        /// Connection number.
        id: u64,
        /// `address:port` of the peer.
        peer: String,
        /// Why (for a local forward usually [`Error::ChannelRefused`]).
        error: Error,
    },
}

impl std::fmt::Display for ForwardEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardEvent::Opened { id, peer } => write!(f, "#{id} opened from {peer}"),
            ForwardEvent::Closed {
                id,
                peer,
                from_peer,
                to_peer,
                duration,
                error,
            } => {
                write!(
                    f,
                    "#{id} from {peer} closed after {:.1}s ({from_peer} bytes sent, {to_peer} received)",
                    duration.as_secs_f64()
                )?;
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            ForwardEvent::Failed { id, peer, error } => {
                write!(f, "#{id} from {peer} failed: {error}")
            }
        }
    }
}

/// Where a forward's tasks send events. Sends never wait: a slow or absent
/// reader loses events, never connections.
#[derive(Clone)]
pub(super) struct EventSink {
    tx: mpsc::Sender<ForwardEvent>,
    next_id: Arc<AtomicU64>,
}

impl EventSink {
    /// A sink and the receiver its forward hands out.
    pub(super) fn new() -> (EventSink, mpsc::Receiver<ForwardEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let sink = EventSink {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
        };
        (sink, rx)
    }

    /// The next connection number.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue `event`, or drop it when the reader is too far behind.
    pub(super) fn emit(&self, event: ForwardEvent) {
        if let Err(mpsc::error::TrySendError::Full(e)) = self.tx.try_send(event) {
            tracing::debug!(event = %e, "forward event dropped: reader too slow");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_should_read_well() {
        let e = ForwardEvent::Closed {
            id: 3,
            peer: "127.0.0.1:5555".into(),
            from_peer: 10,
            to_peer: 20,
            duration: Duration::from_millis(1500),
            error: None,
        };
        assert_eq!(
            e.to_string(),
            "#3 from 127.0.0.1:5555 closed after 1.5s (10 bytes sent, 20 received)"
        );
    }
}
