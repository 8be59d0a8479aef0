//! The state every handler shares, and running the agent with its monitor.
//!
//! [`AppState`] is built once from [`AgentOptions`] and cloned into each
//! request (it is one `Arc`). The idle monitor is a separate task
//! ([`AppState::start_monitor`]) so that building a router in a test does not
//! spawn anything behind the caller's back; [`serve`] does both.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::activity::{Monitor, Tracker};
use crate::error::Error;
use crate::metrics::Sampler;
use crate::options::AgentOptions;
use crate::sshconn::{CountingStream, Gauge, Served};

/// The agent's shared state: options, activity bookkeeping and the sysinfo
/// cache. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) options: AgentOptions,
    /// `None` only when running without auth was explicitly allowed.
    token: Option<Vec<u8>>,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) sampler: Arc<Sampler>,
    pub(crate) cloud_init: crate::cloud_init::Reader,
    /// The bytes [`serve`] has moved, subtracted from sshd's traffic.
    pub(crate) served: Arc<Served>,
}

impl AppState {
    /// Builds the state.
    ///
    /// # Errors
    ///
    /// [`Error::MissingToken`] when the config's token is empty, blank or
    /// holds whitespace or control characters, and
    /// [`AgentOptions::allow_no_auth`] is not set.
    pub fn new(options: AgentOptions) -> Result<Self, Error> {
        let token = if options.allow_no_auth {
            None
        } else if options.config.token.trim().is_empty()
            || options
                .config
                .token
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            // A blank token (a single space) would be a guessable one.
            return Err(Error::MissingToken);
        } else {
            Some(options.config.token.as_bytes().to_vec())
        };
        let p = &options.paths;
        let cloud_init = crate::cloud_init::Reader::new(
            p.cloud_init_run_dir.clone(),
            p.cloud_lib_dir.clone(),
            p.cloud_init_cli.clone(),
        );
        Ok(AppState {
            inner: Arc::new(Inner {
                cloud_init,
                options,
                token,
                tracker: Arc::new(Tracker::new()),
                sampler: Arc::new(Sampler::new()),
                served: Arc::new(Served::default()),
            }),
        })
    }

    /// The options the state was built from.
    pub fn options(&self) -> &AgentOptions {
        &self.inner.options
    }

    /// Whether `given` (the [`TOKEN_HEADER`](spuff_agent_api::TOKEN_HEADER)
    /// value) is accepted. Compared in constant time, so response timing
    /// does not reveal how much of a guess was right (only the length can
    /// differ).
    pub(crate) fn token_ok(&self, given: Option<&[u8]>) -> bool {
        match (&self.inner.token, given) {
            (None, _) => true,
            (Some(expected), Some(given)) => bool::from(expected.as_slice().ct_eq(given)),
            (Some(_), None) => false,
        }
    }

    /// Starts the idle monitor: every
    /// [`monitor_interval`](AgentOptions::monitor_interval) it reads the
    /// sessions and CPU, warns terminals and runs the idle action when the
    /// deadline passes. It stops when the returned handle is dropped.
    ///
    /// Must be called within a Tokio runtime.
    #[must_use = "the monitor stops when the handle is dropped"]
    pub fn start_monitor(&self) -> MonitorHandle {
        let o = &self.inner.options;
        let monitor = Monitor {
            tracker: Arc::clone(&self.inner.tracker),
            sys: Arc::clone(&self.inner.sampler),
            config: o.config.clone(),
            utmp: o.paths.utmp.clone(),
            dev_dir: o.paths.dev_dir.clone(),
            runner: Arc::clone(&o.idle_runner),
            interval: o.monitor_interval.max(Duration::from_millis(10)),
            proc_dir: o.paths.proc_dir.clone(),
            served: Arc::clone(&self.inner.served),
            gauge: Arc::new(std::sync::Mutex::new(Gauge::default())),
            kmsg: o.paths.kmsg.clone(),
        };
        MonitorHandle {
            task: tokio::spawn(monitor.run()),
        }
    }
}

/// The running idle monitor; dropping it stops the monitor.
#[derive(Debug)]
pub struct MonitorHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the agent on `listener` with its idle monitor until `shutdown`
/// completes, then finishes in-flight requests (graceful shutdown).
///
/// # Errors
///
/// When accepting connections fails fatally.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use spuff_agent::{AgentOptions, AppState};
/// use spuff_agent_api::AgentConfig;
///
/// let state = AppState::new(AgentOptions { config: AgentConfig::new("s3cret"), ..Default::default() })?;
/// let listener = spuff_agent::bind("127.0.0.1:7575".parse()?).await?;
/// spuff_agent::serve(listener, state, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};

    let served = Arc::clone(&state.inner.served);
    if let Ok(addr) = listener.local_addr() {
        served.set_port(addr.port());
    }
    let o = &state.inner.options;
    let (max_connections, header_timeout) = (o.max_connections.max(1), o.header_read_timeout);
    let _monitor = state.start_monitor();
    let app = crate::routes::app(state);
    // At most `max_connections` at once: past it, connections wait in the
    // kernel's backlog instead of costing the agent memory (issue 13).
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let io = TokioIo::new(CountingStream::new(stream, Arc::clone(&served)));
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        // A client that does not finish its request head in time is cut
        // off (half-sent requests held 40 s before).
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    // In-flight requests finish (an exec has its own timeout); a client
    // holding a connection open cannot hold the shutdown for long.
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    Ok(())
}

/// How long [`serve`] waits for in-flight requests after its shutdown
/// signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
