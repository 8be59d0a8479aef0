//! Prints the user-data spuff would send for a new VM, with a fresh host key.
//!
//! Run with: cargo run --example render_user_data -- "$(cat ~/.ssh/id_ed25519.pub)" [AGENT_URL SHA256]

use spuff::cloudinit::{self, AgentSource, Config, Limit};
use spuff::ssh::HostKeyPair;
use spuff_agent_api::AgentConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let key = args
        .next()
        .ok_or("usage: render_user_data PUBKEY [AGENT_URL SHA256]")?;
    let agent_source = match (args.next(), args.next()) {
        (Some(url), Some(sha256)) => AgentSource::Download { url, sha256 },
        _ => AgentSource::Upload,
    };
    let host_key = HostKeyPair::generate()?;
    let config = Config {
        authorized_keys: vec![key],
        ..Config::new(
            host_key.clone(),
            AgentConfig::new("example-token"),
            agent_source,
        )
    };
    let user_data = cloudinit::render_with_limit(
        &config,
        Limit::of(spuff::provider::ProviderType::Hetzner.info()),
    )?;
    eprintln!(
        "{} bytes (compressed: {}); pin host key {}",
        user_data.len(),
        user_data.is_compressed(),
        host_key.fingerprint()
    );
    print!("{}", user_data.as_str());
    Ok(())
}
