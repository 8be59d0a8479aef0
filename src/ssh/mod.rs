//! A pure-Rust SSH client: connect, verify the host, authenticate, then run
//! commands, shells, SFTP and port forwards over one connection.
//!
//! spuff must work where no `ssh` binary exists (Windows), so everything it
//! does on a VM goes through this module, built on [`russh`]. A [`Session`] is
//! cheap to clone and every operation on it can run at the same time as the
//! others: an exec, an SFTP upload and a dozen forwarded connections share one
//! TCP connection.
//!
//! # Examples
//!
//! ```no_run
//! use spuff::ssh::{AuthMethod, Config, HostKeyPolicy, Session};
//!
//! # async fn demo() -> Result<(), spuff::ssh::Error> {
//! let config = Config {
//!     host_keys: HostKeyPolicy::accept_new("/tmp/spuff_known_hosts"),
//!     auth: vec![AuthMethod::KeyFile("/home/me/.ssh/id_ed25519".into())],
//!     ..Config::new("203.0.113.7", "dev")
//! };
//! let session = Session::connect(config).await?;
//! let out = session.exec("uname -a").await?;
//! println!("{}", String::from_utf8_lossy(&out.stdout));
//! # Ok(()) }
//! ```
//!
//! File transfer ([`sftp`], opened with [`Session::sftp`]) and port
//! forwarding ([`forward`], started with [`Session::forward_local`] and its
//! kin) have modules of their own. [`HostKeyPair`] makes the key pairs spuff
//! installs on its VMs and pins.
//!
//! Runnable programs: `examples/exec.rs`, `examples/upload.rs`, `examples/tunnel.rs`.

mod agent;
mod auth;
mod error;
mod escape;
mod exec;
pub mod forward;
mod handler;
mod key_file;
mod key_pair;
mod known_hosts;
mod prompt_ack;
pub mod sftp;
mod shell;
mod wait;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::Algorithm;

pub use agent::{AgentLocation, WINDOWS_OPENSSH_AGENT_PIPE};
pub use auth::{AuthMethod, PassphraseFn, load_private_key};
pub use error::{AuthAttempt, Error, ExpectedKey, KeySource, Result};
pub use escape::parse_escape_char;
pub use exec::{COLLECT_LIMIT, ExecEvent, ExecOutput, ExitStatus, RemoteCommand};
pub use handler::ForwardedConnection;
pub use key_pair::HostKeyPair;
#[cfg(any(test, fuzzing))]
pub(crate) use known_hosts::fuzz as fuzz_known_hosts;
pub use known_hosts::{HostKeyCheck, HostKeyPolicy, fingerprint};
pub use russh::keys::{PrivateKey, PublicKey};
pub use shell::{ShellOptions, TermSize};
pub use wait::{RetryPolicy, wait_for_login, wait_for_port};

pub(crate) use error::fmt_duration;
use handler::ClientHandler;
pub(crate) use handler::Shared;

/// Everything needed to open a [`Session`].
///
/// Fill in what you need and take the rest from [`Config::new`]:
/// `Config { auth: …, ..Config::new(host, user) }`.
#[derive(Clone)]
pub struct Config {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (22).
    pub port: u16,
    /// User to log in as.
    pub user: String,
    /// Authentication methods, tried in order.
    pub auth: Vec<AuthMethod>,
    /// Asked for the passphrase of encrypted key files.
    pub passphrase: Option<PassphraseFn>,
    /// Which host keys to trust. The default is strict with no known keys,
    /// which refuses every host: say what to trust.
    pub host_keys: HostKeyPolicy,
    /// Limit for the TCP connect and, separately, for the SSH handshake (10s).
    pub connect_timeout: Duration,
    /// Send a keepalive after this long without traffic from the server (5s);
    /// `None` turns keepalives off.
    pub keepalive_interval: Option<Duration>,
    /// Drop the connection after this many unanswered keepalives (3): a
    /// server that stops answering ends in [`Error::ConnectionLost`] rather
    /// than a wait for TCP (minutes), with `unanswered` set. With the
    /// defaults that is 20 s after the server's last packet (the check
    /// that finds the fourth interval unanswered); measured through `spuff
    /// ssh` against a stopped sshd: 20.2 s from the stall to the exit.
    pub keepalive_max: usize,
    /// Ciphers to offer, most preferred first, by SSH name
    /// (`chacha20-poly1305@openssh.com`, `aes256-gcm@openssh.com`, …).
    /// Empty: russh's defaults.
    pub ciphers: Vec<String>,
    /// Key exchange algorithms to offer, by SSH name. Empty: russh's defaults.
    pub kex: Vec<String>,
    /// Receive window per channel, in bytes (16 MiB): how much the server
    /// may send on a channel ahead of what we have read. It bounds the
    /// memory a stalled reader holds. Whole-process downloads measured like
    /// for like went from 0.5-0.8x OpenSSH's `sftp` with 4 MiB to 0.85-1.15x
    /// with 16 MiB: with 4 MiB in flight, a 4 MiB window ran dry while
    /// replies waited to be read (docs/performance.md, issue 14).
    pub window_size: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("auth", &self.auth)
            .field("host_keys", &self.host_keys)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("ciphers", &self.ciphers)
            .field("kex", &self.kex)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults for `user@host:22`: no auth methods and no trusted host keys yet.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        Config {
            host: host.into(),
            port: 22,
            user: user.into(),
            auth: Vec::new(),
            passphrase: None,
            host_keys: HostKeyPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Some(Duration::from_secs(5)),
            keepalive_max: 3,
            ciphers: Vec::new(),
            kex: Vec::new(),
            window_size: 16 * 1024 * 1024,
        }
    }

    fn russh_config(&self) -> Result<client::Config> {
        let mut preferred = russh::Preferred::default();
        if !self.ciphers.is_empty() {
            let names = self
                .ciphers
                .iter()
                .map(|c| {
                    russh::cipher::Name::try_from(c.as_str())
                        .map_err(|()| Error::Config(format!("unknown cipher `{c}`")))
                })
                .collect::<Result<Vec<_>>>()?;
            preferred.cipher = Cow::Owned(names);
        }
        if !self.kex.is_empty() {
            let mut names = self
                .kex
                .iter()
                .map(|c| {
                    russh::kex::Name::try_from(c.as_str())
                        .map_err(|()| Error::Config(format!("unknown key exchange `{c}`")))
                })
                .collect::<Result<Vec<_>>>()?;
            // Keep the protocol extensions russh relies on (strict kex, ext-info).
            names.extend(preferred.kex.iter().filter(|n| {
                n.as_ref().starts_with("ext-info") || n.as_ref().starts_with("kex-strict")
            }));
            preferred.kex = Cow::Owned(names);
        }
        // Offer host key algorithms we already know for this host first, as
        // OpenSSH does; otherwise a server with several host keys might show
        // one we have never seen and be refused as "unknown".
        let known: Vec<Algorithm> = self
            .host_keys
            .known_keys(&self.host, self.port)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k.algorithm())
            .collect();
        if !known.is_empty() {
            let mut keys: Vec<Algorithm> = Vec::new();
            for alg in preferred.key.iter() {
                if known.iter().any(|k| same_family(k, alg)) {
                    keys.push(alg.clone());
                }
            }
            for alg in preferred.key.iter() {
                if !keys.contains(alg) {
                    keys.push(alg.clone());
                }
            }
            preferred.key = Cow::Owned(keys);
        }
        Ok(client::Config {
            preferred,
            keepalive_interval: self.keepalive_interval,
            keepalive_max: self.keepalive_max,
            window_size: self.window_size,
            nodelay: true,
            ..Default::default()
        })
    }
}

/// RSA host keys are offered under several signature names; they are one key.
fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    a == b || (a.clone().is_rsa() && b.clone().is_rsa())
}

/// An authenticated SSH connection. Clone it freely; clones share the connection.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    handle: client::Handle<ClientHandler>,
    shared: Arc<Shared>,
    host: String,
    port: u16,
    user: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .field("user", &self.inner.user)
            .finish()
    }
}

impl Session {
    /// Connect to `config.host:config.port`, verify its host key and authenticate.
    ///
    /// # Errors
    /// [`Error::Connect`]/[`Error::ConnectTimeout`] when the TCP connection
    /// fails, [`Error::Handshake`] when SSH does not come up,
    /// [`Error::HostKeyUnknown`]/[`Error::HostKeyChanged`] when the host key is
    /// not trusted, [`Error::AuthFailed`] listing what was tried.
    pub async fn connect(config: Config) -> Result<Session> {
        let russh_config = Arc::new(config.russh_config()?);
        let (host, port) = (config.host.clone(), config.port);
        let addr = (host.as_str(), port);
        let tcp = match tokio::time::timeout(
            config.connect_timeout,
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(Error::Connect { host, port, source }),
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    host,
                    port,
                    after: config.connect_timeout,
                });
            }
        };
        let shared = Arc::new(Shared::default());
        let handler = ClientHandler {
            host: host.clone(),
            port,
            policy: config.host_keys.clone(),
            shared: shared.clone(),
        };
        let tcp = prompt_ack::PromptAck::new(tcp);
        let handshake = client::connect_stream(russh_config, tcp, handler);
        let mut handle = match tokio::time::timeout(config.connect_timeout, handshake).await {
            Ok(Ok(h)) => h,
            Ok(Err(Error::Protocol(source))) => {
                return Err(Error::Handshake { host, port, source });
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Handshake {
                    host,
                    port,
                    source: russh::Error::ConnectionTimeout,
                });
            }
        };
        let auth = auth::authenticate(
            &mut handle,
            (&host, port),
            &config.user,
            &config.auth,
            config.passphrase.as_ref(),
        );
        match auth.await {
            Ok(()) => {}
            Err(Error::Protocol(source)) => return Err(Error::Handshake { host, port, source }),
            Err(e) => return Err(e),
        }
        tracing::debug!(host, port, user = %config.user, "ssh session established");
        Ok(Session {
            inner: Arc::new(Inner {
                handle,
                shared,
                host,
                port,
                user: config.user,
            }),
        })
    }

    /// The host this session is connected to.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The port this session is connected to.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The user this session is logged in as.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// Whether the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.inner.handle.is_closed() || self.inner.shared.is_disconnected()
    }

    /// Close the connection politely. Other clones see it closed.
    pub async fn close(&self) -> Result<()> {
        if self.is_closed() {
            return Ok(());
        }
        self.inner
            .handle
            .disconnect(russh::Disconnect::ByApplication, "bye", "en")
            .await
            .map_err(Error::from)
    }

    /// Turn agent forwarding on for this connection: agent channels the server
    /// opens from now on are relayed to `agent`. Off by default, and agent
    /// channels are refused while it is off. Shells started with
    /// [`ShellOptions::forward_agent`] turn it on themselves.
    pub fn enable_agent_forwarding(&self, agent: AgentLocation) {
        if let Ok(mut g) = self.inner.shared.agent_forward.lock() {
            *g = Some(agent);
        }
    }

    pub(crate) fn handle(&self) -> &client::Handle<ClientHandler> {
        &self.inner.handle
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// An error for a russh failure during `operation`, naming the connection
    /// as lost when it is.
    pub(crate) fn op_error(&self, operation: &str, err: russh::Error) -> Error {
        if self.is_closed()
            || matches!(
                err,
                russh::Error::SendError
                    | russh::Error::RecvError
                    | russh::Error::HUP
                    | russh::Error::Disconnect
            )
        {
            return self.lost(operation);
        }
        match err {
            russh::Error::ChannelOpenFailure(reason) => Error::ChannelRefused {
                host: self.inner.host.clone(),
                port: self.inner.port,
                operation: operation.to_string(),
                reason: format!("{reason:?}"),
            },
            russh::Error::RequestDenied => Error::ChannelRefused {
                host: self.inner.host.clone(),
                port: self.inner.port,
                operation: operation.to_string(),
                reason: "request denied".into(),
            },
            other => Error::Protocol(other),
        }
    }

    /// [`Error::ConnectionLost`] for `operation`.
    pub(crate) fn lost(&self, operation: &str) -> Error {
        let reason = self
            .inner
            .shared
            .disconnect_reason
            .lock()
            .ok()
            .and_then(|r| r.clone());
        Error::ConnectionLost {
            host: self.inner.host.clone(),
            port: self.inner.port,
            operation: match reason {
                Some(r) => format!("{operation} ({r})"),
                None => operation.to_string(),
            },
            unanswered: self
                .inner
                .shared
                .unanswered
                .load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Open a session channel for `operation`.
    pub(crate) async fn open_session_channel(
        &self,
        operation: &str,
    ) -> Result<russh::Channel<client::Msg>> {
        self.inner
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.op_error(operation, e))
    }

    /// A session channel whose receive window is `window` bytes (at most
    /// [`Config::window_size`]): what the server may send ahead, and so
    /// what can wait here unread, for a stream read slower than it comes.
    pub(crate) async fn open_session_channel_with_window(
        &self,
        operation: &str,
        window: u32,
    ) -> Result<russh::Channel<client::Msg>> {
        self.inner
            .handle
            .channel_open_session_with_window(window)
            .await
            .map_err(|e| self.op_error(operation, e))
    }
}
