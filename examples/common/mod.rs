//! Argument handling shared by the examples: `HOST PORT USER KEY …`.

#![allow(dead_code)]

use spuff::Hint as _;
use spuff::ssh::{AgentLocation, AuthMethod, Config, HostKeyPolicy};

/// Build a session config from `HOST PORT USER KEY`, trusting new host keys on
/// first use and remembering them in `spuff_example_known_hosts` under the
/// temp dir (a changed key is still refused). The key is tried first, then the
/// ssh-agent. Returns the config and the remaining arguments.
pub(crate) fn config_from_args(usage: &str) -> (Config, Vec<String>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: {usage}");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().unwrap_or_else(|_| {
        eprintln!("bad port {:?}\nusage: {usage}", args[1]);
        std::process::exit(2)
    });
    let known_hosts = std::env::temp_dir().join("spuff_example_known_hosts");
    let config = Config {
        port,
        host_keys: HostKeyPolicy::accept_new(known_hosts),
        auth: vec![
            AuthMethod::KeyFile(args[3].clone().into()),
            AuthMethod::Agent(AgentLocation::Default),
        ],
        ..Config::new(args[0].clone(), args[2].clone())
    };
    (config, args[4..].to_vec())
}

/// Print an error with its hint and exit 1.
pub(crate) fn fail(err: spuff::ssh::Error) -> ! {
    eprintln!("error: {err}");
    if let Some(hint) = err.hint() {
        eprintln!("  try: {hint}");
    }
    std::process::exit(1)
}
