//! `spuff-agent`: parse the flags, run the agent, report the outcome.
//!
//! Everything else is in the library (`spuff_agent`). Exit codes: 0 after a
//! clean shutdown (SIGTERM, Ctrl-C), 1 when the agent cannot start or fails,
//! 2 for bad flags (clap).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use spuff_agent::{AgentOptions, AppState};
use spuff_agent_api::AgentConfig;

/// How long in-flight requests (a long exec) may delay the exit after a
/// shutdown signal; systemd's own stop timeout is 90 s.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The spuff VM agent: health, metrics and idleness over a loopback-only
/// HTTP API.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The JSON config file (token, port, idle deadline and action).
    #[arg(long, value_name = "PATH", default_value = spuff_agent_api::CONFIG_PATH)]
    config: PathBuf,

    /// The port to listen on [default: the config's `port`, else 7575].
    #[arg(long, env = "SPUFF_AGENT_PORT", value_name = "PORT")]
    port: Option<u16>,

    /// The address to listen on; only loopback addresses are accepted.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,

    /// Serve WITHOUT checking the token. Only for running the agent on a
    /// development machine; never on a VM.
    #[arg(long)]
    insecure_no_auth_for_local_development: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            // Also on stderr: under systemd the journal has the line above,
            // run by hand the user reads this one.
            eprintln!("spuff-agent: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Journal when started by systemd (it sets `JOURNAL_STREAM`), stderr
/// otherwise; `RUST_LOG` filters both (default `info`).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    #[cfg(target_os = "linux")]
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(journald) => {
                registry
                    .with(journald.with_syslog_identifier("spuff-agent".into()))
                    .init();
                return;
            }
            Err(err) => eprintln!("spuff-agent: journald unavailable ({err}); logging to stderr"),
        }
    }
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    registry.with(fmt).init();
}

fn run(args: Args) -> anyhow::Result<()> {
    let env_token = std::env::var("SPUFF_AGENT_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let mut config = match spuff_agent::load_config(&args.config) {
        Ok(config) => config,
        // Without a file the agent can still run from the environment (the
        // original design); the token check below decides.
        Err(spuff_agent::Error::ReadConfig { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound
                && (env_token.is_some() || args.insecure_no_auth_for_local_development) =>
        {
            tracing::info!(config = %args.config.display(), "no config file; using defaults");
            AgentConfig::new("")
        }
        Err(err) => return Err(err).context("cannot load the configuration"),
    };
    if let Some(token) = env_token {
        config.token = token;
    }
    if args.insecure_no_auth_for_local_development {
        tracing::warn!(
            "!!! AUTHENTICATION DISABLED (--insecure-no-auth-for-local-development): anyone who can \
             reach this port can run commands as this user. Never do this on a VM. !!!"
        );
    }
    let addr = SocketAddr::new(args.bind, args.port.unwrap_or(config.port));
    let options = AgentOptions {
        config,
        allow_no_auth: args.insecure_no_auth_for_local_development,
        ..AgentOptions::default()
    };
    tracing::debug!(?options, "starting");
    let state = AppState::new(options)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        // The agent is small and the VM is someone's dev machine: two
        // workers are plenty; blocking reads go to the blocking pool.
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = spuff_agent::bind(addr).await?;
        // The bound address, not the asked one: port 0 picks a free port.
        let addr = listener.local_addr().unwrap_or(addr);
        tracing::info!(%addr, version = env!("CARGO_PKG_VERSION"), "spuff-agent listening");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown_signal().await;
            let _ = tx.send(());
        };
        let serve = spuff_agent::serve(listener, state, signal);
        tokio::select! {
            res = serve => res.context("the server failed")?,
            () = async {
                let _ = rx.await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway"),
        }
        tracing::info!("spuff-agent stopped");
        Ok(())
    })
}

/// Completes on SIGTERM (systemd stop) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM; shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt; shutting down"),
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot watch SIGTERM; only Ctrl-C stops the agent");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupt; shutting down");
    }
}
