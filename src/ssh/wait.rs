//! Waiting for a new VM: first for its SSH port, then for a login that works.
//!
//! A fresh VM opens port 22 well before cloud-init has created the user and
//! installed the key, so the first logins fail for reasons that go away.
//! [`wait_for_login`] retries those with exponential backoff and jitter until
//! a deadline, and if the deadline passes it returns the last real error (not
//! a bare "timed out"), because that says what is still wrong. Errors that
//! waiting cannot fix, such as a changed host key, end the wait at once.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use super::error::{Error, Result};
use super::{Config, Session};

/// How long and how often to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Give up after this long (3 minutes).
    pub timeout: Duration,
    /// First delay between attempts (250 ms).
    pub min_delay: Duration,
    /// Longest delay between attempts (5 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(180),
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(1.8)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Wait until a TCP connection to `host:port` succeeds. Returns how long it took.
///
/// # Errors
/// [`Error::PortTimeout`] with the last connect error once `policy.timeout` passes.
pub async fn wait_for_port(host: &str, port: u16, policy: &RetryPolicy) -> Result<Duration> {
    let start = Instant::now();
    let deadline = start + policy.timeout;
    let mut delays = policy.delays();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(
            remaining.min(Duration::from_secs(5)),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await;
        let last = match attempt {
            Ok(Ok(_)) => return Ok(start.elapsed()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        let delay = delays.next().unwrap_or(policy.max_delay);
        if Instant::now() + delay >= deadline {
            return Err(Error::PortTimeout {
                host: host.to_string(),
                port,
                elapsed: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(delay).await;
    }
}

/// Connect and log in, retrying failures that time can fix (refused
/// connections, handshakes cut short, a user or key not there yet) until
/// `policy.timeout` passes.
///
/// # Errors
/// An error that waiting cannot fix (a changed or unknown host key, a key file
/// that cannot be read) at once; otherwise [`Error::LoginTimeout`] carrying the
/// last error seen.
pub async fn wait_for_login(config: Config, policy: &RetryPolicy) -> Result<Session> {
    let start = Instant::now();
    let deadline = start + policy.timeout;
    let mut delays = policy.delays();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut cfg = config.clone();
        cfg.connect_timeout = cfg
            .connect_timeout
            .min(remaining.max(Duration::from_millis(100)));
        let err = match Session::connect(cfg).await {
            Ok(s) => return Ok(s),
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        tracing::debug!(attempt = attempts, error = %err, "login not possible yet");
        let delay = delays.next().unwrap_or(policy.max_delay);
        if Instant::now() + delay >= deadline {
            return Err(Error::LoginTimeout {
                host: config.host.clone(),
                port: config.port,
                elapsed: start.elapsed(),
                attempts,
                last: Box::new(err),
            });
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::default();
        let d: Vec<_> = p.delays().take(20).collect();
        assert!(d[0] >= p.min_delay && d[0] < p.min_delay * 3, "{d:?}");
        assert!(d.iter().all(|x| *x <= p.max_delay * 2), "{d:?}");
        assert!(d[10] > d[0]);
    }

    #[tokio::test]
    async fn closed_port_times_out_with_the_last_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let p = RetryPolicy {
            timeout: Duration::from_millis(600),
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
        };
        match wait_for_port("127.0.0.1", port, &p).await {
            Err(Error::PortTimeout { last, .. }) => assert!(!last.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
    }
}
