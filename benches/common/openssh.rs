//! The OpenSSH side of the benchmarks: one command builder for `ssh`,
//! `sftp` and `scp`, so every bench pins the same cipher and key exchange
//! and ignores the user's own configuration.

use std::process::{Command, Stdio};

use crate::util::Sshd;

/// The key exchange every side of a benchmark uses.
pub(crate) const KEX: &str = "curve25519-sha256";

/// `program` (`ssh`, `sftp` or `scp`) set up for `sshd`: no user config,
/// quiet, `cipher` and [`KEX`] pinned, no connection sharing, stdin closed
/// and stdout discarded. The caller adds the destination and the rest.
pub(crate) fn openssh(sshd: &Sshd, program: &str, cipher: &str) -> Command {
    let mut c = Command::new(program);
    c.args(["-F", "/dev/null", "-q"])
        .args(["-o", &format!("Ciphers={cipher}")])
        .args(["-o", &format!("KexAlgorithms={KEX}")])
        .args(["-o", "ControlMaster=no"]);
    let mut args = sshd.ssh_args().into_iter();
    while let Some(a) = args.next() {
        // `sftp` and `scp` spell the port `-P` and take no `-l`.
        match a.as_str() {
            "-p" if program != "ssh" => {
                c.arg("-P").arg(args.next().expect("port"));
            }
            "-l" if program != "ssh" => {
                c.arg("-o")
                    .arg(format!("User={}", args.next().expect("user")));
            }
            _ => {
                c.arg(a);
            }
        }
    }
    c.stdin(Stdio::null()).stdout(Stdio::null());
    c
}

/// spuff's side of a bench, as its child process builds it: the same sshd
/// on 127.0.0.1 with its host key pinned, the test key, and `cipher` and
/// [`KEX`] pinned as for OpenSSH.
pub(crate) fn spuff_config(
    port: &str,
    user: &str,
    key: &str,
    host_key: &str,
    cipher: &str,
) -> spuff::ssh::Config {
    spuff::ssh::Config {
        port: port.parse().expect("port"),
        host_keys: spuff::ssh::HostKeyPolicy::pinned([spuff::ssh::PublicKey::from_openssh(
            host_key,
        )
        .expect("host key")]),
        auth: vec![spuff::ssh::AuthMethod::KeyFile(key.into())],
        ciphers: vec![cipher.to_string()],
        kex: vec![KEX.to_string()],
        ..spuff::ssh::Config::new("127.0.0.1", user)
    }
}
