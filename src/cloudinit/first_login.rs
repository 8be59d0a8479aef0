//! spuff's user-data as a shell script, for VMs whose provider cannot hand
//! them a user-data document of spuff's making.
//!
//! Proxmox VE builds a VM's cloud-init drive from its own options (`ciuser`,
//! `sshkeys`, `ipconfig0`); a custom document must be a snippet file on the
//! node, which its API cannot write. Without SSH access to the node, such a
//! VM boots with a login user and keys only: no pinned host key, no agent,
//! no bootstrap. `spuff up` then logs in once, trusting the VM's own host
//! key on first use (and says so), and runs this script as root. It does
//! what cloud-init does with the document [`render`](super::render) makes,
//! from the same parts: writes the same files, installs spuff's host key
//! (dropping the image's others, as `ssh_deletekeys`), reloads sshd so every
//! later login is verified against the pinned key, and runs the same
//! `bootcmd` and `runcmd` commands, which queue the bootstrap.
//!
//! The script holds the host's private key and the agent's token: it goes
//! to the VM on stdin (`sudo -n sh -s`), never in a command line, and is
//! wiped from memory when dropped.

use zeroize::Zeroizing;

use super::escape::sh_quote;
use super::{Config, Result};

/// The script [`first_login_script`] renders; `Debug` shows only its size.
#[derive(Clone)]
pub struct FirstLoginScript {
    text: Zeroizing<String>,
}

impl std::fmt::Debug for FirstLoginScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstLoginScript")
            .field("len", &self.text.len())
            .finish_non_exhaustive()
    }
}

impl FirstLoginScript {
    /// The POSIX shell script, to run as root with `sh -s`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Where the host's keys are; every other `ssh_host_*` key is removed.
const HOST_KEY_PATH: &str = "/etc/ssh/ssh_host_ed25519_key";

/// Renders `config`'s user-data as a script for a VM that booted without
/// it (see the module docs). The login user is not created: the provider
/// made it, with the keys, through its own cloud-init.
///
/// # Errors
/// The errors of [`render`](super::render): the same input is checked.
pub fn first_login_script(config: &Config) -> Result<FirstLoginScript> {
    super::validate(config)?;
    let parts = super::parts(config, false)?;
    let mut out = String::from(HEADER);
    let mut put = |path: &str, owner: &str, mode: &str, content: &[u8]| {
        out.push_str(&format!(
            "put {} {} {} <<'SPUFF_FILE'\n",
            sh_quote(path),
            sh_quote(owner),
            sh_quote(mode)
        ));
        for line in data_encoding::BASE64.encode(content).as_bytes().chunks(76) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("SPUFF_FILE\n");
    };
    put(
        HOST_KEY_PATH,
        "root:root",
        "0600",
        config.host_key.private_key_openssh().as_bytes(),
    );
    put(
        &format!("{HOST_KEY_PATH}.pub"),
        "root:root",
        "0644",
        format!("{}\n", config.host_key.public_key_openssh()).as_bytes(),
    );
    for f in &parts.files {
        put(f.path, f.owner, f.permissions, f.content.as_bytes());
    }
    let command = |argv: &[String]| {
        argv.iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(name) = &config.hostname {
        let name = sh_quote(name);
        out.push_str(&format!(
            "hostnamectl set-hostname {name} 2>/dev/null || hostname {name}\n"
        ));
    }
    if let Some(tz) = &config.timezone {
        let tz = sh_quote(tz);
        out.push_str(&format!(
            "timedatectl set-timezone {tz} 2>/dev/null || ln -sf /usr/share/zoneinfo/{tz} /etc/localtime\n"
        ));
    }
    out.push_str(SSHD);
    out.push_str("# cloud-init's bootcmd, then its runcmd: they queue the bootstrap.\n");
    for argv in parts.bootcmd.iter().chain(&parts.runcmd) {
        out.push_str(&command(argv));
        out.push('\n');
    }
    out.push_str("echo 'spuff: user-data applied'\n");
    Ok(FirstLoginScript {
        text: Zeroizing::new(out),
    })
}

const HEADER: &str = r#"#!/bin/sh
# spuff's user-data, applied at the first login of a VM whose provider could
# not deliver it (src/cloudinit/first_login.rs). Run as root, from stdin.
set -eu
umask 077

# put PATH OWNER MODE, base64 content on stdin: written beside PATH and
# moved over it, so a file is never seen half written.
put() {
    mkdir -p "$(dirname "$1")"
    t="$1.spuff-new"
    rm -f "$t"
    base64 -d >"$t"
    chown "$2" "$t"
    chmod "$3" "$t"
    mv -f "$t" "$1"
}

"#;

const SSHD: &str = r#"# spuff's host key only, as ssh_deletekeys and the sshd drop-in want it;
# sshd reads its keys again on reload (open sessions stay).
for f in /etc/ssh/ssh_host_*; do
    case $f in
        */ssh_host_ed25519_key | */ssh_host_ed25519_key.pub) ;;
        *) rm -f "$f" ;;
    esac
done
sshd -t
systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || kill -HUP "$(cat /run/sshd.pid)"
"#;
