//! Upload a file or a directory tree over SFTP, showing progress.
//!
//! Run with: cargo run --example upload -- HOST PORT USER KEY LOCAL REMOTE
//!
//! The host key is trusted on first use and remembered in
//! `spuff_example_known_hosts` in the system temporary directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use spuff::sftp::TransferOptions;
use spuff::ssh::{AuthMethod, Config, HostKeyPolicy, Session};

// One thread is cheaper for a copy than a worker per core (see the `sftp`
// module's "Runtime" section).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, user, key, local, remote] = args.as_slice() else {
        eprintln!("usage: upload HOST PORT USER KEY LOCAL REMOTE");
        std::process::exit(2);
    };
    let config = Config {
        port: port.parse()?,
        auth: vec![AuthMethod::KeyFile(key.into())],
        host_keys: HostKeyPolicy::accept_new(
            std::env::temp_dir().join("spuff_example_known_hosts"),
        ),
        ..Config::new(host.as_str(), user.as_str())
    };
    let session = Session::connect(config).await?;
    let sftp = session.sftp().await?;

    // Print only when the whole percentage changes, not on every chunk.
    let last = Arc::new(AtomicU64::new(u64::MAX));
    let opts = TransferOptions {
        progress: Some(Arc::new(move |p| {
            let pct = (p.bytes_done * 100)
                .checked_div(p.bytes_total)
                .unwrap_or(100);
            if last.swap(pct, Ordering::Relaxed) != pct {
                eprint!("\r{pct:3}%  {}/{} files", p.files_done, p.files_total);
            }
        })),
        ..TransferOptions::default()
    };
    let started = std::time::Instant::now();
    let bytes = if std::fs::metadata(local)?.is_dir() {
        sftp.upload_dir(local, remote, &opts).await?.bytes
    } else {
        sftp.upload_file(local, remote, &opts).await?
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "\ruploaded {bytes} bytes in {secs:.1}s ({:.1} MiB/s)",
        bytes as f64 / 1048576.0 / secs.max(1e-9)
    );
    session.close().await?;
    Ok(())
}
