//! Which recorded VMs are finished and only cost money: the client-side
//! sweep behind `spuff gc` (and the offer `list` and `up` make), issue 12.
//!
//! The VM's agent powers an idle VM off, and a VM whose lifetime
//! (`up --ttl`) has ended, without this machine being online. On providers
//! that bill a powered-off VM (DigitalOcean, Hetzner) that stops the work but
//! not the bill; destroying it needs the provider's API, which is here. So
//! every spuff VM that is powered off, past its lifetime, or already gone at
//! its provider is a candidate; the caller confirms and destroys each with
//! [`down`](super::down()).
//!
//! Only VMs in local state count: a spuff-labelled VM this machine does not
//! know (an orphan) may belong to another machine sharing the account, so
//! it is shown by `list` and destroyed only by name with `spuff down`.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

use super::{Entry, Tracking};
use crate::agent::api::Timestamp;
use crate::state::Instance;

/// Why a VM is finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finished {
    /// The provider says it is powered off: its agent's idle or lifetime
    /// stop ran, or someone powered it off.
    PoweredOff,
    /// Its lifetime (`up --ttl`) ended at `at`; its agent should have
    /// powered it off, and it must not run on regardless.
    LifetimeOver {
        /// When it ended.
        at: Timestamp,
    },
    /// Its provider has no such VM any more: only the record is left.
    Gone,
    /// Its provider took it back (an interrupted spot VM): it has ended.
    Interrupted,
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finished::PoweredOff => f.write_str("powered off"),
            Finished::LifetimeOver { at } => write!(f, "lifetime ended at {at}"),
            Finished::Gone => f.write_str("gone at its provider"),
            Finished::Interrupted => f.write_str("interrupted (spot) and ended"),
        }
    }
}

/// A recorded VM that is finished, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its record.
    pub instance: Instance,
    /// Why it is finished.
    pub finished: Finished,
}

/// The recorded VMs in `entries` (a [`reconcile`](super::reconcile) of
/// `local` with the providers' listings) that are finished at `now`.
///
/// VMs whose provider could not be asked are never candidates: nothing is
/// known of them.
pub fn finished(local: &[Instance], entries: &[Entry], now: SystemTime) -> Vec<Candidate> {
    entries
        .iter()
        .filter_map(|e| {
            let instance = local
                .iter()
                .find(|i| i.name == e.name && i.provider == e.provider)?;
            let finished = match e.tracking {
                Tracking::Gone => Finished::Gone,
                Tracking::Tracked if e.provider_status.as_deref() == Some("off") => {
                    Finished::PoweredOff
                }
                Tracking::Tracked
                    if e.provider_status.as_deref()
                        == Some(&crate::provider::InstanceStatus::Interrupted.to_string()) =>
                {
                    Finished::Interrupted
                }
                Tracking::Tracked => match instance.expires_at {
                    Some(at) if at.0 <= now => Finished::LifetimeOver { at },
                    _ => return None,
                },
                Tracking::Orphan | Tracking::Unchecked => return None,
            };
            Some(Candidate {
                instance: instance.clone(),
                finished,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::Lifecycle;
    use crate::util::Secret;

    fn record(name: &str, expires_in: Option<i64>, now: SystemTime) -> Instance {
        let mut i = Instance::new(
            name,
            "hetzner",
            format!("id-{name}"),
            "fsn1",
            "cx22",
            "debian-12",
            "dev",
            "ssh-ed25519 AAAA",
            Secret::new("t"),
        );
        i.status = Lifecycle::Ready;
        i.expires_at = expires_in.map(|s| {
            let d = Duration::from_secs(s.unsigned_abs());
            Timestamp(if s >= 0 { now + d } else { now - d })
        });
        i
    }

    fn entry(name: &str, tracking: Tracking, status: Option<&str>) -> Entry {
        Entry {
            name: name.into(),
            provider: "hetzner".into(),
            provider_id: format!("id-{name}"),
            tracking,
            local_status: Some(Lifecycle::Ready),
            provider_status: status.map(Into::into),
            ip: None,
            region: "fsn1".into(),
            size: "cx22".into(),
            active: false,
        }
    }

    #[test]
    fn only_finished_recorded_vms_should_be_candidates() {
        let now = SystemTime::now();
        let local = vec![
            record("running", None, now),
            record("off", None, now),
            record("expired", Some(-60), now),
            record("young", Some(3600), now),
            record("gone", None, now),
            record("unknown", Some(-60), now),
            record("spot", None, now),
        ];
        let entries = vec![
            entry("running", Tracking::Tracked, Some("running")),
            entry("off", Tracking::Tracked, Some("off")),
            entry("expired", Tracking::Tracked, Some("running")),
            entry("young", Tracking::Tracked, Some("running")),
            entry("gone", Tracking::Gone, None),
            // Its provider could not be asked: nothing is known.
            entry("unknown", Tracking::Unchecked, None),
            // Not this machine's.
            entry("orphan", Tracking::Orphan, Some("off")),
            entry("spot", Tracking::Tracked, Some("interrupted (spot)")),
        ];
        let found: Vec<(String, Finished)> = finished(&local, &entries, now)
            .into_iter()
            .map(|c| (c.instance.name, c.finished))
            .collect();
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found[0], ("off".to_string(), Finished::PoweredOff));
        assert!(matches!(found[1], (ref n, Finished::LifetimeOver { .. }) if n == "expired"));
        assert_eq!(found[2], ("gone".to_string(), Finished::Gone));
        assert_eq!(found[3], ("spot".to_string(), Finished::Interrupted));
    }
}
