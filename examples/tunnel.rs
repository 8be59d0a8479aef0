//! Run with: cargo run --example tunnel -- HOST PORT USER KEY LOCAL_PORT REMOTE_HOST REMOTE_PORT
//!
//! Forward 127.0.0.1:LOCAL_PORT to REMOTE_HOST:REMOTE_PORT as seen from HOST
//! (like `ssh -L LOCAL_PORT:REMOTE_HOST:REMOTE_PORT`) until Ctrl-C, printing
//! a line per connection to stderr. LOCAL_PORT 0 picks a free port.
//!
//! New host keys are trusted on first use and recorded in
//! `spuff_example_known_hosts` under the temporary directory.

use std::process::ExitCode;

use spuff::Hint as _;
use spuff::forward::LocalForwardSpec;
use spuff::ssh::{AuthMethod, Config, HostKeyPolicy, Session};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, user, key, local_port, remote_host, remote_port] = args.as_slice() else {
        eprintln!("usage: tunnel HOST PORT USER KEY LOCAL_PORT REMOTE_HOST REMOTE_PORT");
        return ExitCode::from(2);
    };
    let (Ok(port), Ok(local_port), Ok(remote_port)) = (
        port.parse::<u16>(),
        local_port.parse::<u16>(),
        remote_port.parse::<u16>(),
    ) else {
        eprintln!("PORT, LOCAL_PORT and REMOTE_PORT must be port numbers");
        return ExitCode::from(2);
    };
    match run(
        host,
        port,
        user,
        key,
        LocalForwardSpec::new(local_port, remote_host.as_str(), remote_port),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(
    host: &str,
    port: u16,
    user: &str,
    key: &str,
    spec: LocalForwardSpec,
) -> Result<(), spuff::ssh::Error> {
    let config = Config {
        port,
        host_keys: HostKeyPolicy::accept_new(
            std::env::temp_dir().join("spuff_example_known_hosts"),
        ),
        auth: vec![AuthMethod::KeyFile(key.into())],
        ..Config::new(host, user)
    };
    let session = Session::connect(config).await?;
    let mut forward = session.forward_local(spec.clone()).await?;
    eprintln!(
        "forwarding {} -> {}:{} via {host}; Ctrl-C to stop",
        forward.local_addr(),
        spec.remote_host,
        spec.remote_port
    );
    if let Some(mut events) = forward.events() {
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                eprintln!("{event}");
            }
        });
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for Ctrl-C ({e}); stopping");
    }
    eprintln!("stopping");
    forward.shutdown().await;
    session.close().await
}
