//! A typed client for the spuff agent on a VM, reached through SSH.
//!
//! The agent listens on the VM's loopback interface only (port
//! [`api::DEFAULT_PORT`]), so nothing about it is exposed to the network.
//! [`Client`] speaks HTTP/1.1 to it over SSH `direct-tcpip` channels opened on
//! an existing [`ssh::Session`]: no local listener, no `curl` on the VM, and
//! the same host-key-verified connection the CLI already holds.
//!
//! Connections are kept alive and reused: a request takes an idle channel
//! from a small pool or opens a new one, so `spuff status --watch` costs one
//! channel, and concurrent requests do not queue behind each other.
//!
//! Request and response types come from [`api`] (the `spuff-agent-api`
//! crate), which the agent itself uses, so both sides agree on every field.
//!
//! # Examples
//! ```no_run
//! # async fn run(session: spuff::ssh::Session) -> Result<(), spuff::agent::Error> {
//! use spuff::agent::{Client, ClientConfig};
//!
//! let agent = Client::new(session, ClientConfig::new("the-agent-token"));
//! let status = agent.status().await?;
//! println!("idle for {} s, bootstrap {}", status.idle_seconds, status.bootstrap_status);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ssh::{self, fmt_duration};
use crate::util::Secret;

#[doc(inline)]
pub use spuff_agent_api as api;

/// The most response body the client reads (an exec's capped output fits
/// with room to spare); a larger body is an error, not an allocation.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Idle keep-alive connections kept per client.
const POOL_SIZE: usize = 4;

/// How much longer than the command's own timeout an exec request may take:
/// the agent needs a moment to kill the process group and answer.
const EXEC_GRACE: Duration = Duration::from_secs(15);

/// The agent's default exec timeout, used when a request sets none.
const AGENT_DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach and authenticate to the agent.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The agent token (sent as [`api::TOKEN_HEADER`]); never logged.
    pub token: Secret,
    /// The host the VM's sshd connects to for us: the agent's loopback address.
    pub host: String,
    /// The agent's port on the VM.
    pub port: u16,
    /// How long a request (other than exec) may take, channel opening included.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// The defaults (`127.0.0.1:7575`, 30 s requests) with `token`.
    pub fn new(token: impl Into<Secret>) -> Self {
        ClientConfig {
            token: token.into(),
            host: "127.0.0.1".to_string(),
            port: api::DEFAULT_PORT,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors from talking to the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SSH channel to the agent's port could not be opened: usually the
    /// agent is not running (yet).
    #[error("cannot reach the spuff agent at {target} on {vm}: {source}")]
    Unreachable {
        /// `user@host:port` of the VM's sshd.
        vm: String,
        /// The agent address on the VM (`127.0.0.1:7575`).
        target: String,
        /// The SSH layer's error.
        #[source]
        source: ssh::Error,
    },

    /// The agent refused the token (HTTP 401).
    #[error("the spuff agent on {vm} refused the token for {method} {path}: {message}")]
    Unauthorized {
        /// `user@host:port` of the VM's sshd.
        vm: String,
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The agent's message.
        message: String,
    },

    /// The agent answered with an error status.
    #[error("the spuff agent on {vm} answered {method} {path} with {status}: {message}")]
    Api {
        /// `user@host:port` of the VM's sshd.
        vm: String,
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: StatusCode,
        /// The agent's message (its JSON `error`, else the start of the body).
        message: String,
    },

    /// The HTTP exchange failed (the channel closed mid-request, a malformed
    /// response, a body over the client's limit).
    #[error("talking to the spuff agent on {vm} ({method} {path}) failed: {message}")]
    Http {
        /// `user@host:port` of the VM's sshd.
        vm: String,
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// What went wrong.
        message: String,
    },

    /// The agent's answer did not have the expected shape: usually a version
    /// mismatch between the CLI and the agent on the VM.
    #[error("the spuff agent on {vm} sent an unexpected {path} response: {source}; body: {body}")]
    Decode {
        /// `user@host:port` of the VM's sshd.
        vm: String,
        /// The request path.
        path: String,
        /// The start of the body.
        body: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// No answer within the request's timeout.
    #[error("the spuff agent on {vm} did not answer {method} {path} within {}", fmt_duration(*after))]
    Timeout {
        /// `user@host:port` of the VM's sshd.
        vm: String,
        /// The request method.
        method: Method,
        /// The request path.
        path: String,
        /// The timeout that passed.
        after: Duration,
    },
}

impl crate::Hint for Error {
    /// One line of advice the user can act on.
    fn hint(&self) -> Option<String> {
        Some(self.advice().to_string())
    }
}

impl Error {
    fn advice(&self) -> &'static str {
        match self {
            Error::Unreachable { source, .. } if source.is_retryable() => {
                "the SSH connection dropped; run the command again"
            }
            Error::Unreachable { .. } => {
                "the agent is not running yet or has stopped: check `spuff logs --agent` and \
                 `spuff logs --bootstrap`"
            }
            Error::Unauthorized { .. } => {
                "the agent token in spuff's state does not match the VM's /etc/spuff/agent.json"
            }
            Error::Api { status, .. } if status.is_server_error() => {
                "the agent failed; `spuff logs --agent` shows why"
            }
            Error::Api { .. } => "check the request's arguments",
            Error::Http { .. } | Error::Timeout { .. } => {
                "the VM may be overloaded or the connection slow; try again"
            }
            Error::Decode { .. } => {
                "the agent on the VM is a different version than this spuff; recreate the VM or \
                 upload a matching agent with `spuff up --dev`"
            }
        }
    }

    /// Whether trying again may succeed (the agent may still be starting).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Http { .. } | Error::Timeout { .. } => true,
            Error::Api { status, .. } => status.is_server_error(),
            Error::Unauthorized { .. } | Error::Decode { .. } => false,
        }
    }
}

/// How often [`KeepAwake`] sends a heartbeat: well inside the shortest idle
/// timeout a user would set, and cheap (one channel, one small request).
pub const KEEP_AWAKE_EVERY: Duration = Duration::from_secs(30);

/// Keeps a VM awake while a command uses it: a heartbeat to its agent at
/// once and then every `every`, until dropped.
///
/// For work the agent cannot see: a non-tty command, a file copy or a
/// tunnel has no terminal, so without this the agent would find the VM idle
/// and stop it mid-work (issue 12). A failed heartbeat (no agent yet, an
/// agent that is restarting) is skipped and the next one tried; the command
/// itself never fails because of it.
#[derive(Debug)]
pub struct KeepAwake {
    task: tokio::task::JoinHandle<()>,
}

/// How long before a stop that holds whatever a command does (the VM's
/// TTL) [`KeepAwake::start_with`] warns: once at each of these many
/// seconds left.
pub const KEEP_AWAKE_WARN_AT: [u64; 2] = [600, 60];

impl KeepAwake {
    /// Starts sending heartbeats through `client` (needs a Tokio runtime).
    pub fn start(client: Client, every: Duration) -> KeepAwake {
        Self::start_with(client, every, |_| {})
    }

    /// Like [`KeepAwake::start`], and calls `on_stop` when the agent says it
    /// will stop the VM soon whatever this command does (its lifetime,
    /// `up --ttl`, ends): once when [`KEEP_AWAKE_WARN_AT`]`[0]` seconds or
    /// fewer are left, once more at [`KEEP_AWAKE_WARN_AT`]`[1]`. The idle
    /// stop never warns here: the heartbeats themselves hold it off.
    pub fn start_with(
        client: Client,
        every: Duration,
        on_stop: impl Fn(&api::PlannedStop) + Send + 'static,
    ) -> KeepAwake {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut warned = 0;
            loop {
                tick.tick().await;
                match client.heartbeat().await {
                    Ok(hb) => {
                        let Some(stop) = hb.next_stop.filter(|s| s.reason == api::StopReason::Ttl)
                        else {
                            continue;
                        };
                        let due = KEEP_AWAKE_WARN_AT
                            .iter()
                            .filter(|at| stop.in_seconds <= **at)
                            .count();
                        if due > warned {
                            warned = due;
                            on_stop(&stop);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "heartbeat to the agent failed"),
                }
            }
        });
        KeepAwake { task }
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `Result` whose error is the agent client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A typed client for one VM's agent, over an SSH session to that VM.
///
/// Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Client {
    session: ssh::Session,
    config: ClientConfig,
    idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("vm", &self.vm())
            .field("target", &self.target())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the agent on the VM `session` is connected to. Nothing
    /// is opened until the first request.
    pub fn new(session: ssh::Session, config: ClientConfig) -> Self {
        Client {
            session,
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The SSH session requests travel over.
    pub fn session(&self) -> &ssh::Session {
        &self.session
    }

    /// `GET /health`, which needs no token: whether the agent is up.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when the agent is not listening.
    pub async fn health(&self) -> Result<api::Health> {
        self.get(api::paths::HEALTH).await
    }

    /// `GET /status`: uptime, idleness, bootstrap and cloud-init progress.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn status(&self) -> Result<api::Status> {
        self.get(api::paths::STATUS).await
    }

    /// `GET /metrics`: CPU, memory, disk and load.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn metrics(&self) -> Result<api::Metrics> {
        self.get(api::paths::METRICS).await
    }

    /// `GET /processes`: the top processes by CPU.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn processes(&self) -> Result<api::ProcessList> {
        self.get(api::paths::PROCESSES).await
    }

    /// `POST /exec`: run `/bin/sh -c command` on the VM through the agent.
    /// The request waits for the command's timeout plus a grace period.
    ///
    /// # Errors
    /// See [`Error`]; a command that fails is not an error (see
    /// [`api::ExecResponse::exit_code`]).
    pub async fn exec(&self, request: &api::ExecRequest) -> Result<api::ExecResponse> {
        let command_timeout = request
            .timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(AGENT_DEFAULT_EXEC_TIMEOUT);
        let timeout = command_timeout.saturating_add(EXEC_GRACE);
        let body = encode(request);
        self.call(
            Method::POST,
            api::paths::EXEC.to_string(),
            Some(body),
            timeout,
        )
        .await
    }

    /// `POST /heartbeat`: reset the VM's idle timer.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn heartbeat(&self) -> Result<api::Heartbeat> {
        let timeout = self.config.request_timeout;
        self.call(
            Method::POST,
            api::paths::HEARTBEAT.to_string(),
            None,
            timeout,
        )
        .await
    }

    /// `GET /logs`: the last `lines` lines (agent default 100) of a file under
    /// `/var/log` on the VM.
    ///
    /// # Errors
    /// [`Error::Api`] with 400 when the agent refuses the path.
    pub async fn logs(&self, file: &str, lines: Option<usize>) -> Result<api::Logs> {
        let mut path = format!("{}?file={}", api::paths::LOGS, query_escape(file));
        if let Some(lines) = lines {
            path.push_str(&format!("&lines={lines}"));
        }
        let timeout = self.config.request_timeout;
        self.call(Method::GET, path, None, timeout).await
    }

    /// `GET /cloud-init`: cloud-init's own status and errors.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn cloud_init(&self) -> Result<api::CloudInit> {
        self.get(api::paths::CLOUD_INIT).await
    }

    /// `GET /activity`: what keeps the VM busy and when the idle action fires.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn activity(&self) -> Result<api::Activity> {
        self.get(api::paths::ACTIVITY).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let timeout = self.config.request_timeout;
        self.call(Method::GET, path.to_string(), None, timeout)
            .await
    }

    /// One request with its timeout, decoded as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<T> {
        let exchange = self.exchange(method.clone(), &path, body);
        let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Timeout {
                    vm: self.vm(),
                    method,
                    path,
                    after: timeout,
                });
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                vm: self.vm(),
                method,
                path,
                message: error_message(&bytes),
            });
        }
        if !status.is_success() {
            return Err(Error::Api {
                vm: self.vm(),
                method,
                path,
                status,
                message: error_message(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            vm: self.vm(),
            path,
            body: snippet(&bytes),
            source,
        })
    }

    /// Sends one request on a pooled or new connection and reads the whole
    /// (bounded) body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes)> {
        let http_error = |message: String| Error::Http {
            vm: self.vm(),
            method: method.clone(),
            path: path.to_string(),
            message,
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, self.target())
            .header(header::ACCEPT, "application/json")
            .header(api::TOKEN_HEADER, self.config.token.expose());
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| http_error(format!("cannot build the request: {e}")))?;

        let mut sender = self.connection().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http_error(e.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| http_error(format!("reading the response: {e}")))?
            .to_bytes();
        // Only a connection whose exchange completed goes back to the pool:
        // one cut off by the timeout above is dropped with this future.
        self.release(sender);
        Ok((status, bytes))
    }

    /// An idle keep-alive connection, or a new channel.
    async fn connection(&self) -> Result<http1::SendRequest<Full<Bytes>>> {
        loop {
            let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
            match pooled {
                Some(mut sender) => {
                    // The agent may have closed an idle connection; a closed
                    // one fails `ready` at once.
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                None => break,
            }
        }
        let stream = self
            .session
            .open_tcp_stream(&self.config.host, self.config.port)
            .await
            .map_err(|source| Error::Unreachable {
                vm: self.vm(),
                target: self.target(),
                source,
            })?;
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| Error::Http {
                    vm: self.vm(),
                    method: Method::GET,
                    path: String::new(),
                    message: format!("HTTP handshake: {e}"),
                })?;
        // The connection task ends when the channel closes or the last
        // sender is dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "agent connection ended");
            }
        });
        Ok(sender)
    }

    fn release(&self, sender: http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_SIZE
        {
            idle.push(sender);
        }
    }

    fn vm(&self) -> String {
        format!(
            "{}@{}",
            self.session.user(),
            host_port(self.session.host(), self.session.port())
        )
    }

    fn target(&self) -> String {
        host_port(&self.config.host, self.config.port)
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serializing our own plain structs to a Vec cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// The agent's JSON `error` message, else the start of the body.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<api::ErrorBody>(body) {
        Ok(error) => error.error,
        Err(_) if body.is_empty() => "(empty body)".to_string(),
        Err(_) => snippet(body),
    }
}

fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    if body.len() > MAX {
        format!("{text}…")
    } else {
        text.into_owned()
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters and `/`
/// stay as they are).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_escape_should_encode_reserved_bytes() {
        assert_eq!(query_escape("/var/log/syslog"), "/var/log/syslog");
        assert_eq!(query_escape("/var/log/a b&c=d"), "/var/log/a%20b%26c%3Dd");
        assert_eq!(query_escape("é"), "%C3%A9");
    }

    #[test]
    fn error_message_should_prefer_the_json_error() {
        assert_eq!(error_message(br#"{"error":"bad path"}"#), "bad path");
        assert_eq!(error_message(b"plain"), "plain");
        assert_eq!(error_message(b""), "(empty body)");
    }
}
