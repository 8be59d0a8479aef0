//! What became of a recorded VM that does not answer: its provider says
//! whether it is powered off or gone, and the VM's console (where its
//! agent announces each stop decision) says why (issue 12).
//!
//! `status`, `ssh`, `exec` and `tunnel` use it so that a VM the idle or
//! lifetime stop powered off reads as "off, and why" rather than as a
//! connection error.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::agent::api::{STOP_ANNOUNCE_PREFIX, Timestamp};
use crate::provider::{InstanceStatus, Provider, ProviderError};
use crate::state::Instance;

/// The most of a console log read from its end for the decision line.
const CONSOLE_SCAN_BYTES: u64 = 4 << 20;

/// What the provider says of a VM that does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Whereabouts {
    /// Powered off.
    Off {
        /// The agent's last stop decision as its console shows it
        /// (`spuff-agent stop: poweroff: idle for 7200 s ...`), when the
        /// provider can show the console. Text from the VM: escape it.
        decision: Option<String>,
        /// When the console was last written (about when it went off).
        since: Option<Timestamp>,
    },
    /// The provider has no such VM.
    Gone,
    /// The provider took it back: an interrupted spot VM (ended; what was
    /// on its disk is gone).
    Interrupted,
    /// It exists in another state (running, starting, ...): the VM or the
    /// network between is at fault, not a stop.
    Other(InstanceStatus),
}

/// Asks `provider` about `instance`.
///
/// # Errors
/// The provider's error when it cannot be asked.
pub async fn whereabouts(
    provider: &dyn Provider,
    instance: &Instance,
) -> Result<Whereabouts, ProviderError> {
    if instance.provider_id.is_empty() {
        return Ok(Whereabouts::Gone);
    }
    let Some(vm) = provider.get_instance(&instance.provider_id).await? else {
        return Ok(Whereabouts::Gone);
    };
    if vm.status == InstanceStatus::Interrupted {
        return Ok(Whereabouts::Interrupted);
    }
    if vm.status != InstanceStatus::Off {
        return Ok(Whereabouts::Other(vm.status));
    }
    let (decision, since) = match provider.console_tail(&instance.provider_id).await {
        Some((_, path)) => (last_decision(&path), modified(&path)),
        None => (None, None),
    };
    Ok(Whereabouts::Off { decision, since })
}

/// The last stop decision in a console log, from its prefix on.
fn last_decision(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(CONSOLE_SCAN_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    f.take(CONSOLE_SCAN_BYTES).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines().rev().find_map(|line| {
        let at = line.find(STOP_ANNOUNCE_PREFIX)?;
        Some(line[at..].trim_end().to_string())
    })
}

fn modified(path: &Path) -> Option<Timestamp> {
    std::fs::metadata(path).ok()?.modified().ok().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_decision_should_be_found_among_shutdown_noise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        let mut log = String::from("[    1.0] booting\r\n");
        log.push_str(&format!(
            "[  100.0] {STOP_ANNOUNCE_PREFIX}poweroff: idle for 60 s (idle_timeout 60 s)\r\n"
        ));
        log.push_str(&format!(
            "[  200.0] {STOP_ANNOUNCE_PREFIX}poweroff: idle for 65 s (idle_timeout 60 s)\r\n"
        ));
        for i in 0..200 {
            log.push_str(&format!("[  201.{i}] systemd[1]: Stopped unit {i}.\r\n"));
        }
        std::fs::write(&path, log).expect("write");
        assert_eq!(
            last_decision(&path).as_deref(),
            Some("spuff-agent stop: poweroff: idle for 65 s (idle_timeout 60 s)")
        );
        std::fs::write(&path, "no decision\n").expect("write");
        assert_eq!(last_decision(&path), None);
        assert_eq!(last_decision(&dir.path().join("missing")), None);
    }
}
